//! The memory driver's settings, built in code or parsed from a `memory://` URL.

use std::time::Duration;

use super::eviction::{BadSize, Eviction, Policy, parse_size};
use crate::{Error, Result};

/// The URL scheme of the memory driver.
pub const SCHEME: &str = "memory";

/// Settings of a [`MemoryDriver`](super::MemoryDriver).
///
/// From a URL: `memory://`, optionally with `?shards=N&reap_interval_ms=M` (`M = 0` turns
/// background reclamation off), and a budget: `max_bytes=256MiB` (sizes as people write them:
/// `k`, `m`, `g` are powers of 1000, `kb`/`KiB`, `mb`/`MiB`, `gb`/`GiB` powers of 1024, as in
/// Redis's configuration; `1.5GiB` is taken down to a whole byte), `max_entries=100000`
/// (numbers may group their digits, `100_000`), `eviction=never|any|with-ttl` (the store's
/// default mode) and `policy=s3-fifo|sampled-lru`, which a URL names only with a budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryConfig {
    /// Shards per namespace, a power of two. Default: 4 × the CPU count, at least 16.
    pub shards: usize,
    /// How often the background thread reclaims expired entries; `None` turns it off, leaving
    /// only expiry on access. Default: 100 ms.
    pub reap_interval: Option<Duration>,
    /// The most bytes the store's entries may cost (SPEC 10.1, 10.2: keys, values and the
    /// driver's own tables and queues). Default: none, an unbounded store.
    pub max_bytes: Option<u64>,
    /// The most entries the store may hold. Default: none.
    pub max_entries: Option<u64>,
    /// What a store over its budget may evict from a namespace that does not choose its own
    /// mode (SPEC 10.3). Default: [`Eviction::Never`], as Redis's `noeviction`.
    pub eviction: Eviction,
    /// How victims are picked. Default: [`Policy::S3Fifo`].
    pub policy: Policy,
}

/// The most shards a namespace may have.
pub const MAX_SHARDS: usize = 1 << 16;

impl Default for MemoryConfig {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        MemoryConfig {
            shards: (cpus * 4).max(16).next_power_of_two().min(MAX_SHARDS),
            reap_interval: Some(Duration::from_millis(100)),
            max_bytes: None,
            max_entries: None,
            eviction: Eviction::default(),
            policy: Policy::default(),
        }
    }
}

impl MemoryConfig {
    /// Parses a `memory://` URL.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) for another scheme, a host or path, an unknown parameter, a
    /// bad value, or `eviction` / `policy` without `max_bytes` or `max_entries` (nothing would
    /// be evicted: a cache that forgot its budget would grow without one).
    ///
    /// ```
    /// use namestore::drivers::memory::{Eviction, MemoryConfig};
    ///
    /// let config = MemoryConfig::from_url("memory://?shards=8").unwrap();
    /// assert_eq!(config.shards, 8);
    /// assert!(MemoryConfig::from_url("memory://?shards=3").is_err());
    ///
    /// let cache = MemoryConfig::from_url("memory://?max_bytes=256MiB&eviction=any").unwrap();
    /// assert_eq!(cache.max_bytes, Some(256 << 20));
    /// assert_eq!(cache.eviction, Eviction::Any);
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
        // A parameter that only a store with a budget uses, if the URL names one.
        let mut budget_only = None;
        for parameter in crate::query::parameters(query, "memory store")? {
            let (name, value) = (&*parameter.name, &*parameter.value);
            // Digits grouped as in Rust (`100_000`), as a size may be.
            let number = || {
                let digits = value.replace('_', "");
                (!value.starts_with('_'))
                    .then(|| digits.parse::<u64>().ok())
                    .flatten()
                    .ok_or_else(|| {
                        Error::invalid_url(format!(
                            "memory store parameter `{name}` takes a whole number such as 100000 or 100_000"
                        ))
                    })
            };
            match name {
                "shards" => config.shards = usize::try_from(number()?).unwrap_or(usize::MAX),
                "reap_interval_ms" => {
                    let ms = number()?;
                    config.reap_interval = (ms > 0).then(|| Duration::from_millis(ms));
                }
                "max_bytes" => {
                    config.max_bytes = Some(parse_size(value).map_err(|bad| {
                        Error::invalid_url(match bad {
                            BadSize::Malformed => format!(
                                "memory store parameter `max_bytes` takes a size such as 256MiB, 1.5gb or 1048576, not `{}`",
                                crate::error::shorten(value)
                            ),
                            BadSize::TooLarge => format!(
                                "memory store parameter `max_bytes` is more bytes than a 64-bit size holds: `{}`",
                                crate::error::shorten(value)
                            ),
                        })
                    })?);
                }
                "max_entries" => config.max_entries = Some(number()?),
                "eviction" => {
                    config.eviction = value.parse()?;
                    budget_only = Some("eviction");
                }
                "policy" => {
                    config.policy = value.parse()?;
                    budget_only = Some("policy");
                }
                other => {
                    return Err(Error::invalid_url(format!(
                        "unknown memory store parameter `{}` (known: shards, reap_interval_ms, max_bytes, max_entries, eviction, policy)",
                        crate::error::shorten(other)
                    )));
                }
            }
        }
        if let (Some(name), false) = (budget_only, config.bounded()) {
            // Without a budget nothing is ever evicted: a cache meant to be bounded that
            // forgot its budget would grow without one.
            return Err(Error::invalid_url(format!(
                "memory store parameter `{name}` applies to a store with a budget: add `max_bytes` or `max_entries`"
            )));
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
        if self.max_bytes == Some(0) || self.max_entries == Some(0) {
            return Err(Error::invalid_url(
                "a memory store budget (`max_bytes`, `max_entries`) is more than zero",
            ));
        }
        Ok(())
    }

    /// Whether the store has a budget.
    pub fn bounded(&self) -> bool {
        self.max_bytes.is_some() || self.max_entries.is_some()
    }
}
