//! Opening a store from a URL (SPEC 9).

use crate::drivers::memory::{self, MemoryDriver};
use crate::{AnyDriver, Error, Result};

/// Opens the store a URL names, as an [`AnyDriver`] (SPEC 9.1).
///
/// | URL | store |
/// |-----|-------|
/// | `memory://` | the in-memory driver; see [`MemoryConfig::from_url`](memory::MemoryConfig::from_url) for its parameters |
/// | `redis://`, `rediss://` (TLS), `redis+cluster://` | the Redis driver (cargo feature `redis`); see `RedisConfig::from_url` |
/// | `redb:///path/file.redb` | the persistent driver (cargo feature `redb`); see `RedbConfig::from_url` |
///
/// The scheme is case-insensitive.
///
/// A store opened here behaves exactly as the same driver built in code (SPEC 9.2).
///
/// # Errors
///
/// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) for a URL without a scheme, an unknown scheme, or bad parameters. The
/// message names the scheme or parameter, never the URL's user or password.
///
/// ```
/// let store = namestore::open("memory://").unwrap();
/// let sessions = store.namespace::<String>("app", "sessions").unwrap();
/// # let _ = sessions;
/// assert!(namestore::open("nosuch://host").is_err());
/// ```
pub fn open(url: &str) -> Result<AnyDriver> {
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(Error::invalid_url(
            "expected `scheme://…`, such as `memory://`",
        ));
    };
    let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid_scheme {
        return Err(Error::invalid_url("the scheme before `://` is malformed"));
    }
    let available = match (cfg!(feature = "redis"), cfg!(feature = "redb")) {
        (true, true) => "memory, redis, rediss, redis+cluster, redb",
        (true, false) => "memory, redis, rediss, redis+cluster",
        (false, true) => "memory, redb",
        (false, false) => "memory",
    };
    // Schemes are case-insensitive (RFC 3986); the drivers' parsers read the lowercase form.
    let lowercase = scheme.to_ascii_lowercase();
    let normalized;
    let url = if lowercase == scheme {
        url
    } else {
        normalized = format!("{lowercase}{}", &url[scheme.len()..]);
        normalized.as_str()
    };
    match lowercase.as_str() {
        memory::SCHEME => Ok(AnyDriver::new(MemoryDriver::from_url(url)?)),
        #[cfg(feature = "redis")]
        crate::drivers::redis::SCHEME
        | crate::drivers::redis::TLS_SCHEME
        | crate::drivers::redis::CLUSTER_SCHEME => Ok(AnyDriver::new(
            crate::drivers::redis::RedisDriver::from_url(url)?,
        )),
        #[cfg(not(feature = "redis"))]
        known @ ("redis" | "rediss" | "redis+cluster") => Err(not_built(known, available)),
        #[cfg(feature = "redb")]
        crate::drivers::redb::SCHEME => Ok(AnyDriver::new(
            crate::drivers::redb::RedbDriver::from_url(url)?,
        )),
        #[cfg(not(feature = "redb"))]
        known @ "redb" => Err(not_built(known, available)),
        _ => Err(Error::invalid_url(format!(
            "unknown scheme `{}`; available: {available}",
            crate::error::shorten(scheme)
        ))),
    }
}

#[cfg(not(all(feature = "redis", feature = "redb")))]
fn not_built(scheme: &str, available: &str) -> Error {
    Error::invalid_url(format!(
        "the `{scheme}` driver is not part of this build of namestore; available: {available}"
    ))
}
