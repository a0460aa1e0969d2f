//! The Redis driver's settings, parsed from a `redis://` URL or built in code.

use std::fmt;
use std::time::Duration;

use crate::{Error, Result};

/// The URL scheme of the standalone Redis driver.
pub const SCHEME: &str = "redis";

/// Settings of a [`RedisDriver`](super::RedisDriver).
///
/// From a URL: `redis://[[user]:password@]host[:port][/db]`, with optional query parameters
/// `connect_timeout_ms` and `response_timeout_ms`. `Debug` never shows the password.
///
/// ```
/// use namestore::drivers::redis::RedisConfig;
///
/// let config = RedisConfig::from_url("redis://:s3cret@127.0.0.1:6380/2?response_timeout_ms=500").unwrap();
/// assert_eq!(config.response_timeout.as_millis(), 500);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    /// The server URL without namestore's own query parameters; holds the password, so it is
    /// private and never printed.
    url: String,
    /// Bound on establishing a connection. Default: 2 s.
    pub connect_timeout: Duration,
    /// Bound on each command's answer. Default: 2 s. Every call answers or fails with
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) within `connect_timeout +
    /// response_timeout` (SPEC 8.3).
    pub response_timeout: Duration,
}

impl RedisConfig {
    /// Parses a `redis://` URL.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) for another scheme, a missing
    /// host, an unknown parameter or a bad value; the message never repeats the URL.
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| Error::invalid_url("a Redis URL starts with `redis://`"))?;
        let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
        let host_part = address.rsplit_once('@').map_or(address, |(_, host)| host);
        if host_part.is_empty() || host_part.starts_with('/') {
            return Err(Error::invalid_url(
                "a Redis URL names a host: `redis://host:port`",
            ));
        }
        let mut config = RedisConfig {
            url: format!("redis://{address}"),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let millis: u64 = value.parse().ok().filter(|&ms| ms > 0).ok_or_else(|| {
                Error::invalid_url(format!(
                    "Redis parameter `{}` takes a positive number of milliseconds",
                    crate::error::shorten(name)
                ))
            })?;
            match name {
                "connect_timeout_ms" => config.connect_timeout = Duration::from_millis(millis),
                "response_timeout_ms" => config.response_timeout = Duration::from_millis(millis),
                other => {
                    return Err(Error::invalid_url(format!(
                        "unknown Redis parameter `{}` (known: connect_timeout_ms, response_timeout_ms)",
                        crate::error::shorten(other)
                    )));
                }
            }
        }
        // Let redis-rs validate host, port, database and credentials now, not on first use.
        redis::Client::open(config.url.as_str()).map_err(|_| {
            Error::invalid_url("malformed Redis URL (host, port, database or credentials)")
        })?;
        Ok(config)
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The bound on one whole call.
    pub(crate) fn call_timeout(&self) -> Duration {
        self.connect_timeout + self.response_timeout
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let address = self.url.trim_start_matches("redis://");
        let shown = match address.rsplit_once('@') {
            Some((credentials, host)) => {
                let user = credentials
                    .split_once(':')
                    .map_or(credentials, |(user, _)| user);
                format!("redis://{user}:<redacted>@{host}")
            }
            None => self.url.clone(),
        };
        f.debug_struct("RedisConfig")
            .field("url", &shown)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}
