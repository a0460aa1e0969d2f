//! The Redis driver's settings, parsed from a `redis://` URL or built in code.

use std::fmt;
use std::time::Duration;

use crate::{Error, Result};

/// The URL scheme of the standalone Redis driver.
pub const SCHEME: &str = "redis";

/// The URL scheme of the Redis Cluster driver: `redis+cluster://host1:port1,host2:port2`.
pub const CLUSTER_SCHEME: &str = "redis+cluster";

/// The URL scheme of a standalone Redis server over TLS.
pub const TLS_SCHEME: &str = "rediss";

/// Settings of a [`RedisDriver`](super::RedisDriver).
///
/// From a URL: `redis://[[user]:password@]host[:port][/db]` for a standalone server
/// (`rediss://` over TLS, verified against the system's roots or [`RedisConfig::tls_root_certificate`]), or
/// `redis+cluster://[[user]:password@]host1:port1,host2:port2,…` with any of a cluster's nodes
/// as seeds; with optional query parameters `connect_timeout_ms`, `response_timeout_ms`,
/// `hash_tag=1` and, for `rediss://`, `tls_ca_file=/path/ca.pem` (a CA to trust instead of the
/// system's roots, read when the URL is parsed). `Debug` never shows the password.
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
    /// One URL per seed node (one for a standalone server), without namestore's own query
    /// parameters; they hold the password, so they are private and never printed.
    urls: Vec<String>,
    cluster: bool,
    /// Store a namespace's keys as `{root:domain}:key`, so Redis Cluster keeps the whole
    /// namespace in one slot: batches, scripts and listings stay on one node and `mset` stays
    /// atomic, at the price of one node carrying the namespace's whole load. Without it, keys
    /// spread over the cluster, batches are split by slot (atomic per slot only), and listings
    /// walk every primary. Default: off.
    pub hash_tag: bool,
    /// For `rediss://`: a CA certificate (PEM) to trust instead of the system's roots, for a
    /// server with a private CA. Default: none (the system's roots).
    pub tls_root_certificate: Option<Vec<u8>>,
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
        let (cluster, tls, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
            (true, false, rest)
        } else if let Some(rest) = url.strip_prefix("redis://") {
            (false, false, rest)
        } else if let Some(rest) = url.strip_prefix("rediss://") {
            (false, true, rest)
        } else {
            return Err(Error::invalid_url(
                "a Redis URL starts with `redis://`, `rediss://` or `redis+cluster://`",
            ));
        };
        let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (credentials, hosts) = match address.rsplit_once('@') {
            Some((credentials, hosts)) => (Some(credentials), hosts),
            None => (None, address),
        };
        if hosts.is_empty() || hosts.starts_with('/') {
            return Err(Error::invalid_url(
                "a Redis URL names a host: `redis://host:port`",
            ));
        }
        let urls: Vec<String> = if cluster {
            hosts
                .split(',')
                .map(|host| match credentials {
                    Some(credentials) => {
                        format!("redis://{credentials}@{}", host.trim_end_matches('/'))
                    }
                    None => format!("redis://{}", host.trim_end_matches('/')),
                })
                .collect()
        } else {
            vec![format!(
                "{}://{address}",
                if tls { "rediss" } else { "redis" }
            )]
        };
        let mut config = RedisConfig {
            urls,
            cluster,
            hash_tag: false,
            tls_root_certificate: None,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if name == "tls_ca_file" {
                if !tls {
                    return Err(Error::invalid_url(
                        "Redis parameter `tls_ca_file` needs a `rediss://` URL",
                    ));
                }
                let pem = std::fs::read(value).map_err(|e| {
                    Error::invalid_url(format!(
                        "Redis parameter `tls_ca_file`: cannot read `{}`: {e}",
                        crate::error::shorten(value)
                    ))
                })?;
                config.tls_root_certificate = Some(pem);
                continue;
            }
            if name == "hash_tag" {
                config.hash_tag = match value {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => {
                        return Err(Error::invalid_url(
                            "Redis parameter `hash_tag` takes 1 or 0",
                        ));
                    }
                };
                continue;
            }
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
                        "unknown Redis parameter `{}` (known: connect_timeout_ms, response_timeout_ms, hash_tag, tls_ca_file)",
                        crate::error::shorten(other)
                    )));
                }
            }
        }
        // Let redis-rs validate hosts, ports, database and credentials now, not on first use.
        for url in &config.urls {
            redis::Client::open(url.as_str()).map_err(|_| {
                Error::invalid_url("malformed Redis URL (host, port, database or credentials)")
            })?;
        }
        Ok(config)
    }

    /// Whether this names a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    pub(crate) fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The bound on one whole call.
    pub(crate) fn call_timeout(&self) -> Duration {
        self.connect_timeout + self.response_timeout
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self
            .urls
            .iter()
            .map(|url| {
                let address = url.trim_start_matches("redis://");
                match address.rsplit_once('@') {
                    Some((credentials, host)) => {
                        let user = credentials
                            .split_once(':')
                            .map_or(credentials, |(user, _)| user);
                        format!("redis://{user}:<redacted>@{host}")
                    }
                    None => url.clone(),
                }
            })
            .collect();
        f.debug_struct("RedisConfig")
            .field("nodes", &shown)
            .field("cluster", &self.cluster)
            .field("hash_tag", &self.hash_tag)
            .field(
                "tls_root_certificate",
                &self.tls_root_certificate.as_ref().map(|_| "<set>"),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}
