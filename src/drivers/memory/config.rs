//! The memory driver's settings, built in code or parsed from a `memory://` URL.

use std::time::Duration;

use crate::{Error, Result};

/// The URL scheme of the memory driver.
pub const SCHEME: &str = "memory";

/// Settings of a [`MemoryDriver`](super::MemoryDriver).
///
/// From a URL: `memory://`, optionally with `?shards=N&reap_interval_ms=M` (`M = 0` turns
/// background reclamation off).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryConfig {
    /// Shards per namespace, a power of two. Default: 4 × the CPU count, at least 16.
    pub shards: usize,
    /// How often the background thread reclaims expired entries; `None` turns it off, leaving
    /// only expiry on access. Default: 100 ms.
    pub reap_interval: Option<Duration>,
}

/// The most shards a namespace may have.
pub const MAX_SHARDS: usize = 1 << 16;

impl Default for MemoryConfig {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        MemoryConfig {
            shards: (cpus * 4).max(16).next_power_of_two().min(MAX_SHARDS),
            reap_interval: Some(Duration::from_millis(100)),
        }
    }
}

impl MemoryConfig {
    /// Parses a `memory://` URL.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) for another scheme, a host or path, an unknown parameter, or a
    /// bad value.
    ///
    /// ```
    /// use namestore::drivers::memory::MemoryConfig;
    ///
    /// let config = MemoryConfig::from_url("memory://?shards=8").unwrap();
    /// assert_eq!(config.shards, 8);
    /// assert!(MemoryConfig::from_url("memory://?shards=3").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("memory://")
            .ok_or_else(|| Error::invalid_url("a memory store URL starts with `memory://`"))?;
        let query = match rest.split_once('?') {
            Some(("", query)) => query,
            None if rest.is_empty() => "",
            _ => {
                return Err(Error::invalid_url(
                    "a memory store URL has no host or path: use `memory://`",
                ));
            }
        };
        let mut config = MemoryConfig::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number: u64 = value.parse().map_err(|_| {
                Error::invalid_url(format!(
                    "memory store parameter `{name}` takes a whole number"
                ))
            })?;
            match name {
                "shards" => config.shards = usize::try_from(number).unwrap_or(usize::MAX),
                "reap_interval_ms" => {
                    config.reap_interval = (number > 0).then(|| Duration::from_millis(number));
                }
                other => {
                    return Err(Error::invalid_url(format!(
                        "unknown memory store parameter `{}` (known: shards, reap_interval_ms)",
                        crate::error::shorten(other)
                    )));
                }
            }
        }
        config.validate()?;
        Ok(config)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !self.shards.is_power_of_two() || self.shards > MAX_SHARDS {
            return Err(Error::invalid_url(format!(
                "memory store `shards` must be a power of two from 1 to {MAX_SHARDS}, not {}",
                self.shards
            )));
        }
        Ok(())
    }
}
