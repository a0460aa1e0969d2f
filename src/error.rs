//! The one error type of namestore (SPEC 8.1).

use std::time::Duration;

/// A boxed error from a driver's own stack (a socket, a database engine).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result of every fallible namestore call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in namestore, one variant per kind of failure a caller can
/// act on.
///
/// Messages name the argument that was wrong and why; they never contain a password or token
/// from a connection URL (SPEC 8.4). Keys are shown shortened to 64 characters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A namespace `root` or `domain` broke SPEC 1.2.
    #[error("invalid namespace {part} {value:?}: {reason}")]
    InvalidNamespace {
        /// `"root"` or `"domain"`.
        part: &'static str,
        /// The refused value, shortened.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A business key broke SPEC 1.4, or a listed key could not be decoded into the
    /// namespace's key type.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The refused key, shortened.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A glob pattern is malformed (SPEC 6.2).
    #[error("invalid pattern {pattern:?} at byte {position}: {reason}")]
    InvalidPattern {
        /// The refused pattern, shortened.
        pattern: String,
        /// Byte offset in the pattern where the problem was found.
        position: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A TTL is zero on a write, or too large to add to the store's clock (SPEC 3.1).
    #[error("invalid TTL {ttl:?}: {reason}")]
    InvalidTtl {
        /// The refused duration.
        ttl: Duration,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value is larger than [`MAX_VALUE_LEN`](crate::MAX_VALUE_LEN) (SPEC 2.1).
    #[error("value of {len} bytes for key {key:?} is larger than the {max}-byte limit")]
    ValueTooLarge {
        /// The key it was written to, shortened.
        key: String,
        /// The value's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `incr`/`decr` met a value that is not a canonical base-10 i64 (SPEC 4.4).
    #[error("value of key {key:?} is not an integer")]
    NotAnInteger {
        /// The key, shortened.
        key: String,
    },
    /// `incr`/`decr` would leave the i64 range (SPEC 4.4).
    #[error("increment of key {key:?} would overflow")]
    Overflow {
        /// The key, shortened.
        key: String,
    },
    /// The backend cannot be reached; the operation may be retried later.
    #[error("backend unavailable: {reason}")]
    Unavailable {
        /// What failed, without secrets.
        reason: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The backend did not answer within the configured bound (SPEC 8.3). For a write, the
    /// outcome is unknown: it may or may not have been applied.
    #[error("backend timed out after {after:?}")]
    Timeout {
        /// The bound that was exceeded.
        after: Duration,
    },
    /// A store URL is malformed or names an unknown scheme (SPEC 9.1).
    #[error("invalid store URL: {reason}")]
    InvalidUrl {
        /// What is wrong, naming the part; never the URL's password.
        reason: String,
    },
    /// Any other backend failure, carrying its source.
    #[error("backend error: {source}")]
    Backend {
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

const SHOWN_CHARS: usize = 64;

/// Shortens user input for an error message, so a 4 KiB key does not flood a log line.
pub(crate) fn shorten(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

impl Error {
    pub(crate) fn invalid_key(key: &str, reason: &'static str) -> Self {
        Error::InvalidKey {
            key: shorten(key),
            reason,
        }
    }

    pub(crate) fn not_an_integer(key: &str) -> Self {
        Error::NotAnInteger { key: shorten(key) }
    }

    pub(crate) fn overflow(key: &str) -> Self {
        Error::Overflow { key: shorten(key) }
    }

    pub(crate) fn invalid_url(reason: impl Into<String>) -> Self {
        Error::InvalidUrl {
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_ttl(ttl: Duration, reason: &'static str) -> Self {
        Error::InvalidTtl { ttl, reason }
    }
}
