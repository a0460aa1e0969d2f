//! Opening a store from a URL (SPEC 9).

use crate::drivers::memory::{self, MemoryDriver};
use crate::{AnyDriver, Error, Result};

/// Opens the store a URL names, as an [`AnyDriver`] (SPEC 9.1).
///
/// | URL | store |
/// |-----|-------|
/// | `memory://` | the in-memory driver; see [`MemoryConfig::from_url`](memory::MemoryConfig::from_url) for its parameters |
/// | `redis://`, `rediss://` (TLS), `redis+cluster://`, `rediss+cluster://` (TLS), `redis+sentinel://`, `rediss+sentinel://` (TLS), `redis+unix://` (a Unix socket) | the Redis driver (cargo feature `redis`); see `RedisConfig::from_url` |
/// | `redb:///path/file.redb` | the persistent driver (cargo feature `redb`); see `RedbConfig::from_url` |
///
/// The scheme is case-insensitive. In the query, names and values may use `%XX` escapes
/// (RFC 3986; a `+` stays a `+`), as may a redb path and a Redis user and password. Any URL
/// may add `telemetry=1` to its query: the store is then wrapped in
/// [`Instrumented`](crate::Instrumented), a `tracing` span per operation (cargo feature
/// `tracing`; without it the parameter is refused).
///
/// A store opened here behaves exactly as the same driver built in code (SPEC 9.2).
///
/// # Errors
///
/// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) for a URL without a scheme, an
/// unknown scheme, or bad parameters: unknown, malformed, or given twice (rather than the last
/// one silently winning). The message names the scheme or parameter, never the URL's user or
/// password.
///
/// ```
/// let store = namestore::open("memory://").unwrap();
/// let sessions = store.namespace::<String>("app", "sessions").unwrap();
/// # let _ = sessions;
/// assert!(namestore::open("nosuch://host").is_err());
/// ```
pub fn open(url: &str) -> Result<AnyDriver> {
    let (url, telemetry) = take_telemetry(url)?;
    let driver = open_driver(&url)?;
    if !telemetry {
        return Ok(driver);
    }
    #[cfg(feature = "tracing")]
    return Ok(AnyDriver::new(crate::Instrumented::new(driver)));
    #[cfg(not(feature = "tracing"))]
    Err(Error::invalid_url(
        "`telemetry=1` needs namestore's `tracing` cargo feature",
    ))
}

/// Takes `telemetry=…` out of the URL's query, for every scheme; what is left goes to the
/// driver's own parser. The query starts at the first `?` after the credentials, which run to
/// the last `@` (a password may hold `?` and `@`), or, when a `?` naming a parameter of ours or
/// of a Redis URL comes before that `@`, first to the last `@` before that `?` (a parameter's
/// value may hold an `@`): the first reading that parses is kept.
fn take_telemetry(url: &str) -> Result<(std::borrow::Cow<'_, str>, bool)> {
    #[cfg(feature = "redis")]
    let redis: &[&str] = &crate::drivers::redis::PARAMETERS;
    #[cfg(not(feature = "redis"))]
    let redis: &[&str] = &[];
    let known: Vec<&str> = std::iter::once("telemetry")
        .chain(redis.iter().copied())
        .collect();
    let readings = crate::query::credentials_end(url, &known);
    let mut taken = Ok((url.into(), false));
    for &end in &readings {
        let from = end.map_or(0, |at| at + 1);
        let Some(mark) = url[from..].find('?').map(|at| from + at) else {
            return Ok((url.into(), false));
        };
        taken = take_telemetry_at(url, mark);
        if taken.is_ok() {
            return taken;
        }
    }
    match readings.len() {
        1 => taken,
        _ => taken.map_err(|e| e.with_note(crate::query::AT_IN_A_VALUE)),
    }
}

/// [`take_telemetry`] from the query starting at `mark`.
fn take_telemetry_at(url: &str, mark: usize) -> Result<(std::borrow::Cow<'_, str>, bool)> {
    let (base, query) = (&url[..mark], &url[mark + 1..]);
    let parameters = crate::query::parameters(query, "store")?;
    let mut telemetry = None;
    let mut rest = Vec::new();
    for parameter in &parameters {
        match (&*parameter.name, &*parameter.value) {
            ("telemetry", "1" | "true" | "on") => telemetry = Some(true),
            ("telemetry", "0" | "false" | "off") => telemetry = Some(false),
            ("telemetry", _) => {
                return Err(Error::invalid_url(
                    "`telemetry` takes 1 or 0 (true/false, on/off)",
                ));
            }
            // Passed on as written, escapes and all.
            _ => rest.push(parameter.text),
        }
    }
    let Some(telemetry) = telemetry else {
        return Ok((url.into(), false));
    };
    Ok(match rest.is_empty() {
        true => (base.to_owned().into(), telemetry),
        false => (format!("{base}?{}", rest.join("&")).into(), telemetry),
    })
}

fn open_driver(url: &str) -> Result<AnyDriver> {
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
        (true, true) => {
            "memory, redis, rediss, redis+unix, redis+cluster, rediss+cluster, redis+sentinel, \
             rediss+sentinel, redb"
        }
        (true, false) => {
            "memory, redis, rediss, redis+unix, redis+cluster, rediss+cluster, redis+sentinel, \
             rediss+sentinel"
        }
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
        | crate::drivers::redis::CLUSTER_SCHEME
        | crate::drivers::redis::TLS_CLUSTER_SCHEME
        | crate::drivers::redis::SENTINEL_SCHEME
        | crate::drivers::redis::TLS_SENTINEL_SCHEME
        | crate::drivers::redis::UNIX_SCHEME => Ok(AnyDriver::new(
            crate::drivers::redis::RedisDriver::from_url(url)?,
        )),
        #[cfg(not(feature = "redis"))]
        known @ ("redis" | "rediss" | "redis+unix" | "redis+cluster" | "rediss+cluster"
        | "redis+sentinel" | "rediss+sentinel") => Err(not_built(known, available)),
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

#[cfg(test)]
mod tests {
    use super::take_telemetry;

    #[test]
    fn telemetry_is_taken_from_the_query_only() {
        let taken = |url| {
            let (rest, on) = take_telemetry(url).unwrap();
            (rest.into_owned(), on)
        };
        assert_eq!(taken("memory://"), ("memory://".to_owned(), false));
        assert_eq!(
            taken("memory://?telemetry=1"),
            ("memory://".to_owned(), true)
        );
        assert_eq!(
            taken("memory://?max_entries=5&telemetry=on&shards=4"),
            ("memory://?max_entries=5&shards=4".to_owned(), true)
        );
        assert_eq!(
            taken("memory://?max_entries=5"),
            ("memory://?max_entries=5".to_owned(), false)
        );
        // A password may hold `?` and `@`: the query starts after the last `@` ...
        assert_eq!(
            taken("redis://u:p?x=1@host:6379/0"),
            ("redis://u:p?x=1@host:6379/0".to_owned(), false)
        );
        // ... and even `?telemetry=1` ...
        assert_eq!(
            taken("redis://u:p?telemetry=1@host:6379/0"),
            ("redis://u:p?telemetry=1@host:6379/0".to_owned(), false)
        );
        // ... while a parameter's value may hold an `@` (a path).
        assert_eq!(
            taken("rediss://h/0?tls_ca_file=/etc/redis@6380/ca.pem&telemetry=1"),
            (
                "rediss://h/0?tls_ca_file=/etc/redis@6380/ca.pem".to_owned(),
                true
            )
        );
        assert_eq!(
            taken("rediss://u:p?x@h/0?tls_ca_file=/etc/redis@6380/ca.pem&telemetry=on"),
            (
                "rediss://u:p?x@h/0?tls_ca_file=/etc/redis@6380/ca.pem".to_owned(),
                true
            )
        );
        assert_eq!(
            taken("redis://u:p?x@host:6379/0?telemetry=1&response_timeout_ms=5"),
            (
                "redis://u:p?x@host:6379/0?response_timeout_ms=5".to_owned(),
                true
            )
        );
        assert!(take_telemetry("memory://?telemetry=maybe").is_err());
    }
}
