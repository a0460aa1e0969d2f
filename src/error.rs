//! The one error type of namestore (SPEC 8.1).
//!
//! [`Error`] is a single pointer wide: every operation's `Result` then travels through the
//! async layers in registers. Measured on the memory driver, a 64-byte error enum cost about
//! 12 ns per call through two `async` layers, more than the hash lookup itself.

use std::fmt;
use std::time::Duration;

/// A boxed error from a driver's own stack (a socket, a database engine).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result of every fallible namestore call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kinds of failure a caller can act on, one variant each (SPEC 8.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A namespace `root` or `domain` broke SPEC 1.2.
    InvalidNamespace,
    /// A business key broke SPEC 1.4, or a listed key does not decode as the key type.
    InvalidKey,
    /// A glob pattern is malformed (SPEC 6.2).
    InvalidPattern,
    /// A TTL is zero on a write, or longer than [`Ttl::MAX`](crate::Ttl::MAX) (SPEC 3.1).
    InvalidTtl,
    /// A value is larger than [`MAX_VALUE_LEN`](crate::MAX_VALUE_LEN) (SPEC 2.1).
    ValueTooLarge,
    /// `incr`/`decr` met a value that is not a canonical base-10 i64 (SPEC 4.4).
    NotAnInteger,
    /// `incr`/`decr` would leave the i64 range (SPEC 4.4).
    Overflow,
    /// The backend could not be reached, so the call was never sent, or it refused to run the
    /// call for now: nothing was applied, and the call can simply be retried (a refused
    /// connection, a connection that could not be made in time, a store file that cannot be
    /// opened or is held by another process; a Redis server loading its data after a restart,
    /// busy with another client's script, a replica cut off from its primary, a cluster
    /// changing, one that stopped writes until it can save its snapshot, a write that reached a
    /// replica twice).
    Unavailable,
    /// The call was sent, and no answer came back: the backend did not answer within the
    /// configured bound (SPEC 8.3), or the connection was lost while the call was in flight.
    /// For a write the outcome is unknown: it may or may not have been applied, once at most.
    /// Read the key to find out before retrying a write that must not apply twice.
    Timeout,
    /// A store URL or driver setting is malformed, or names an unknown scheme (SPEC 9.1).
    InvalidUrl,
    /// The write needs more memory than the store may use: a memory store at its budget
    /// that may not evict enough (SPEC 10.3, 10.5), or a Redis server at `maxmemory` with
    /// `noeviction` (SPEC 10.8). Nothing was written.
    OutOfMemory,
    /// The store's data is damaged: a file that fails its storage engine's checks (a page
    /// overwritten or cut off on disk). The message says what was found. On the persistent
    /// driver, a file that made the engine fail this way leaves the handle failing every later
    /// call with this kind; `RedbDriver::check` (the `namestore check` command) runs the
    /// engine's integrity check and repair on the closed file.
    Corrupted,
    /// A stored value is not a valid encoding for the namespace's codec (SPEC 11.2): the
    /// message names the key and gives the codec's reason without what it quotes of the value
    /// (serde's messages quote the string or number they found, whole, and a stored value may
    /// be a secret or megabytes long), and the stored value is left as it was.
    /// The codec's own error, quotes included, is kept out of
    /// [`std::error::Error::source`] (error reporters such as `anyhow` print the whole chain
    /// of sources), and is [`Error::codec_error`]: log that only where the values may appear.
    Decode,
    /// The codec could not encode a value (a JSON map whose keys are not strings, say).
    /// Nothing was written.
    Encode,
    /// Any other backend failure; [`std::error::Error::source`] carries the cause.
    Backend,
}

impl ErrorKind {
    /// How many kinds there are: one more than the last one's discriminant (the kinds are
    /// numbered from 0, in order).
    #[cfg(feature = "metrics")]
    pub(crate) const COUNT: usize = ErrorKind::Backend as usize + 1;

    /// The kind's name in snake case (`"not_an_integer"`), as telemetry records it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidNamespace => "invalid_namespace",
            ErrorKind::InvalidKey => "invalid_key",
            ErrorKind::InvalidPattern => "invalid_pattern",
            ErrorKind::InvalidTtl => "invalid_ttl",
            ErrorKind::ValueTooLarge => "value_too_large",
            ErrorKind::NotAnInteger => "not_an_integer",
            ErrorKind::Overflow => "overflow",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::InvalidUrl => "invalid_url",
            ErrorKind::OutOfMemory => "out_of_memory",
            ErrorKind::Corrupted => "corrupted",
            ErrorKind::Decode => "decode",
            ErrorKind::Encode => "encode",
            ErrorKind::Backend => "backend",
        }
    }
}

/// Everything that can go wrong in namestore.
///
/// Match on [`Error::kind`]. The message says which argument was wrong and why, and names
/// the key it failed on (shortened to 64 characters); it never holds a password or token
/// from a connection URL (SPEC 8.4).
///
/// ```
/// use namestore::ErrorKind;
///
/// let err = namestore::NamespaceName::new("app", "a:b").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidNamespace);
/// assert_eq!(err.argument(), Some("domain"));
/// ```
pub struct Error(Box<Inner>);

struct Inner {
    kind: ErrorKind,
    argument: Option<&'static str>,
    key: Option<String>,
    message: String,
    source: Option<BoxError>,
    /// A decode error's codec error, kept out of the `source()` chain (which error reporters
    /// such as `anyhow` print): it may quote the stored value.
    codec: Option<BoxError>,
}

const SHOWN_CHARS: usize = 64;

/// Shortens user input for an error message, so a 4 KiB key does not flood a log line.
pub(crate) fn shorten(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// The most characters of a codec's message a decode error shows.
const CODEC_MESSAGE_CHARS: usize = 200;

/// A codec's message for a value it could not decode, without what it quotes of the value.
/// serde's messages quote what they found: a string where something else was expected
/// (`invalid type: string "…", expected u32`, the whole string, however long), a number, an
/// enum variant or a field name read from the value (``unknown variant `…` ``); and a stored
/// value may be a secret (a session's token) or megabytes long. Whatever is in double quotes
/// (escaped quotes within included) or in backquotes becomes `…` (the names a codec expected
/// are quoted alike, and go too), so what stays is the kind of mismatch and where it is; the
/// whole is cut after [`CODEC_MESSAGE_CHARS`] of its characters (a quote counted as one).
fn without_values(message: &str) -> String {
    let mut out = String::new();
    let mut shown = 0;
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        if shown == CODEC_MESSAGE_CHARS {
            out.push('…');
            break;
        }
        match c {
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match c {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"…\"");
            }
            '`' => {
                chars.by_ref().find(|&c| c == '`');
                out.push_str("`…`");
            }
            c => out.push(c),
        }
        shown += 1;
    }
    out
}

impl Error {
    fn new(
        kind: ErrorKind,
        argument: Option<&'static str>,
        key: Option<&str>,
        message: String,
    ) -> Self {
        Error(Box::new(Inner {
            kind,
            argument,
            key: key.map(shorten),
            message,
            source: None,
            codec: None,
        }))
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The argument that was wrong (`"root"`, `"domain"`, `"key"`, `"pattern"`, `"ttl"`,
    /// `"value"`, `"url"`), for invalid-input errors.
    pub fn argument(&self) -> Option<&'static str> {
        self.0.argument
    }

    /// The business key the operation failed on, shortened to 64 characters, when there is
    /// one.
    pub fn key(&self) -> Option<&str> {
        self.0.key.as_deref()
    }

    /// The codec's own error, as it came, for a [`Decode`](ErrorKind::Decode) or
    /// [`Encode`](ErrorKind::Encode) error (`None` for any other kind): a
    /// `serde_json::Error` to downcast for its line and column, say.
    ///
    /// A decode error's codec error is not its [`source`](std::error::Error::source): serde's
    /// messages quote the value they could not read, whole (a session's token, or megabytes
    /// of it), and error reporters print every source (`anyhow`'s `{:?}` and `{:#}`). Reach
    /// it here, and log it only where the stored values may appear.
    ///
    /// ```
    /// use namestore::codec::Json;
    /// use namestore::drivers::memory::MemoryDriver;
    /// use namestore::ErrorKind;
    ///
    /// # futures_util::FutureExt::now_or_never(async {
    /// let store = MemoryDriver::new();
    /// let raw = store.namespace::<String>("app", "sessions").unwrap();
    /// raw.set(&"s1".to_owned(), "\"token-s3cr3t\"", None).await.unwrap();
    /// let counts = raw.with_codec(Json::<u32>::new());
    ///
    /// let err = counts.get(&"s1".to_owned()).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Decode);
    /// assert!(!err.to_string().contains("s3cr3t"));
    /// assert!(std::error::Error::source(&err).is_none());
    /// let json = err.codec_error().unwrap().downcast_ref::<serde_json::Error>().unwrap();
    /// assert_eq!((json.line(), json.column()), (1, 14));
    /// # }).unwrap();
    /// ```
    pub fn codec_error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self.0.kind {
            ErrorKind::Decode => self.0.codec.as_deref(),
            ErrorKind::Encode => self.0.source.as_deref(),
            _ => None,
        }
    }

    /// The backend cannot be reached (for driver authors). `reason` must hold no secret.
    pub fn unavailable(reason: impl fmt::Display, source: Option<BoxError>) -> Self {
        let mut error = Error::new(
            ErrorKind::Unavailable,
            None,
            None,
            format!("backend unavailable: {reason}"),
        );
        error.0.source = source;
        error
    }

    /// The backend did not answer within `after` (for driver authors).
    pub fn timeout(after: Duration) -> Self {
        Error::new(
            ErrorKind::Timeout,
            None,
            None,
            format!("backend timed out after {after:?}"),
        )
    }

    /// The call was sent and no answer came back, for `reason` (for driver authors): the
    /// outcome is unknown. `reason` must hold no secret.
    pub fn timeout_with_reason(reason: impl fmt::Display) -> Self {
        Error::new(
            ErrorKind::Timeout,
            None,
            None,
            format!("backend timed out: {reason}"),
        )
    }

    /// Attaches the underlying cause.
    #[cfg(feature = "redis")]
    pub(crate) fn set_source(&mut self, source: BoxError) {
        self.0.source = Some(source);
    }

    /// Any other backend failure (for driver authors). The source's message is shown, so it
    /// must hold no secret.
    pub fn backend(source: impl Into<BoxError>) -> Self {
        let source = source.into();
        let mut error = Error::new(
            ErrorKind::Backend,
            None,
            None,
            format!("backend error: {source}"),
        );
        error.0.source = Some(source);
        error
    }

    /// A Redis key holding another type than a string (a list, a hash, a set…, written by
    /// another client), which no call of namestore reads or counts: a backend error naming
    /// the key, `source` the server's `WRONGTYPE` answer.
    #[cfg(feature = "redis")]
    pub(crate) fn wrong_type(key: &str, source: BoxError) -> Self {
        let message = format!(
            "backend error: key {:?} holds another Redis type than a string value (a list, \
             a hash, a set…, written by another client)",
            shorten(key)
        );
        let mut error = Error::new(ErrorKind::Backend, None, Some(key), message);
        error.0.source = Some(source);
        error
    }

    /// Whether this is [`wrong_type`](Self::wrong_type)'s error.
    #[cfg(feature = "redis")]
    pub(crate) fn is_wrong_type(&self) -> bool {
        self.0.kind == ErrorKind::Backend
            && self.0.key.is_some()
            && self
                .0
                .source
                .as_ref()
                .is_some_and(|source| source.to_string().contains("WRONGTYPE"))
    }

    /// A write refused for lack of memory (for driver authors): nothing was written. `key`
    /// names the key (or the first of a batch); `reason` says which limit.
    pub fn out_of_memory(key: &str, reason: impl fmt::Display) -> Self {
        let message = format!("out of memory writing key {:?}: {reason}", shorten(key));
        Error::new(ErrorKind::OutOfMemory, None, Some(key), message)
    }

    /// The store's data is damaged (for driver authors). `reason` says what was found.
    pub fn corrupted(reason: impl fmt::Display) -> Self {
        Error::new(
            ErrorKind::Corrupted,
            None,
            None,
            format!("the store is damaged: {reason}"),
        )
    }

    /// A second error with the same kind and message, for a failure shared by several calls
    /// (one failed commit answers every write it carried). The source is not carried over;
    /// its message already is.
    #[cfg(feature = "redb")]
    pub(crate) fn duplicate(&self) -> Self {
        Error(Box::new(Inner {
            kind: self.0.kind,
            argument: self.0.argument,
            key: self.0.key.clone(),
            message: self.0.message.clone(),
            source: None,
            codec: None,
        }))
    }

    /// The value of `key` is not a canonical integer (for driver authors).
    pub fn not_an_integer(key: &str) -> Self {
        let message = format!("value of key {:?} is not an integer", shorten(key));
        Error::new(ErrorKind::NotAnInteger, None, Some(key), message)
    }

    /// The fence counter `key` of a lock reads `count`, which no acquisition counted: the
    /// counter counts up from 0, so something else wrote it.
    pub(crate) fn not_a_token(key: &str, count: i64) -> Self {
        let message = format!(
            "lock fence counter {:?} reads {count}, which is no token: something other than \
             the lock wrote it, and tokens would not rise from one holder to the next",
            shorten(key)
        );
        Error::new(ErrorKind::NotAnInteger, None, Some(key), message)
    }

    /// An increment of `key` would overflow (for driver authors).
    pub fn overflow(key: &str) -> Self {
        let message = format!("increment of key {:?} would overflow", shorten(key));
        Error::new(ErrorKind::Overflow, None, Some(key), message)
    }

    /// A store URL or setting is malformed (for driver authors). `reason` names the part that
    /// is wrong, never the URL's user or password.
    pub fn invalid_url(reason: impl fmt::Display) -> Self {
        Error::new(
            ErrorKind::InvalidUrl,
            Some("url"),
            None,
            format!("invalid store URL: {reason}"),
        )
    }

    /// The same error, its message followed by `note`.
    pub(crate) fn with_note(mut self, note: &str) -> Self {
        self.0.message.push_str(note);
        self
    }

    pub(crate) fn invalid_namespace(part: &'static str, value: &str, reason: &str) -> Self {
        let message = format!("invalid namespace {part} {:?}: {reason}", shorten(value));
        Error::new(ErrorKind::InvalidNamespace, Some(part), None, message)
    }

    pub(crate) fn invalid_namespace_mode(
        name: &crate::NamespaceName,
        has: &str,
        asked: &str,
    ) -> Self {
        let message = format!(
            "namespace {name} already evicts `{has}`; it cannot be opened with eviction `{asked}` as well"
        );
        Error::new(ErrorKind::InvalidNamespace, None, None, message)
    }

    /// The namespace `name` cannot hold what it was given for: `reason` says why.
    pub(crate) fn unsuited_namespace(name: &crate::NamespaceName, reason: &str) -> Self {
        Error::new(
            ErrorKind::InvalidNamespace,
            None,
            None,
            format!("namespace {name} {reason}"),
        )
    }

    pub(crate) fn invalid_key(key: &str, reason: &str) -> Self {
        let message = format!("invalid key {:?}: {reason}", shorten(key));
        Error::new(ErrorKind::InvalidKey, Some("key"), Some(key), message)
    }

    pub(crate) fn invalid_pattern(pattern: &str, position: usize, reason: &str) -> Self {
        let message = format!(
            "invalid pattern {:?} at byte {position}: {reason}",
            shorten(pattern)
        );
        Error::new(ErrorKind::InvalidPattern, Some("pattern"), None, message)
    }

    pub(crate) fn invalid_ttl(ttl: Duration, reason: &str) -> Self {
        Error::new(
            ErrorKind::InvalidTtl,
            Some("ttl"),
            None,
            format!("invalid TTL {ttl:?}: {reason}"),
        )
    }

    /// The value stored under `key` does not decode with the namespace's codec. The message
    /// gives the codec's own without what it quotes of the value ([`without_values`]); the
    /// codec's error, as it came, is [`Error::codec_error`] and not the source.
    pub(crate) fn decode(key: &str, codec: &str, source: BoxError) -> Self {
        let message = format!(
            "value of key {:?} is not valid {codec}: {}",
            shorten(key),
            without_values(&source.to_string())
        );
        let mut error = Error::new(ErrorKind::Decode, Some("value"), Some(key), message);
        error.0.codec = Some(source);
        error
    }

    /// A value for `key` does not encode with the namespace's codec.
    pub(crate) fn encode(key: &str, codec: &str, source: BoxError) -> Self {
        let message = format!(
            "value for key {:?} cannot be encoded as {codec}: {source}",
            shorten(key)
        );
        let mut error = Error::new(ErrorKind::Encode, Some("value"), Some(key), message);
        error.0.source = Some(source);
        error
    }

    pub(crate) fn value_too_large(key: &str, len: usize, max: usize) -> Self {
        let message = format!(
            "value of {len} bytes for key {:?} is larger than the {max}-byte limit",
            shorten(key)
        );
        Error::new(ErrorKind::ValueTooLarge, Some("value"), Some(key), message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.0.kind)
            .field("message", &self.0.message)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|s| &**s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::{CODEC_MESSAGE_CHARS, ErrorKind, without_values};

    /// `ErrorKind::COUNT` counts every kind, numbered in order from 0 (telemetry keeps a
    /// failed call's metrics at `kind as usize`). A new kind fails to compile in the match
    /// until it is listed here.
    #[cfg(feature = "metrics")]
    #[test]
    fn every_kind_is_numbered_below_the_count() {
        use ErrorKind::*;
        let all = [
            InvalidNamespace,
            InvalidKey,
            InvalidPattern,
            InvalidTtl,
            ValueTooLarge,
            NotAnInteger,
            Overflow,
            Unavailable,
            Timeout,
            InvalidUrl,
            OutOfMemory,
            Corrupted,
            Decode,
            Encode,
            Backend,
        ];
        for (number, kind) in all.into_iter().enumerate() {
            match kind {
                InvalidNamespace | InvalidKey | InvalidPattern | InvalidTtl | ValueTooLarge
                | NotAnInteger | Overflow | Unavailable | Timeout | InvalidUrl | OutOfMemory
                | Corrupted | Decode | Encode | Backend => {}
            }
            assert_eq!(kind as usize, number, "{kind:?}");
        }
        assert_eq!(all.len(), ErrorKind::COUNT);
    }

    #[test]
    fn codec_messages_lose_the_values_they_quote() {
        for (message, shown) in [
            (
                r#"invalid type: string "token-s3cr3t\"x", expected u32 at line 1 column 20"#,
                r#"invalid type: string "…", expected u32 at line 1 column 20"#,
            ),
            (
                "invalid value: integer `123456`, expected u8",
                "invalid value: integer `…`, expected u8",
            ),
            (
                "unknown variant `sup3rs3cret`, expected `admin` or `user`",
                "unknown variant `…`, expected `…` or `…`",
            ),
            (
                "EOF while parsing a value at line 1 column 0",
                "EOF while parsing a value at line 1 column 0",
            ),
            (r#"unclosed "quote"#, r#"unclosed "…""#),
            ("unclosed `backquote", "unclosed `…`"),
            ("", ""),
        ] {
            assert_eq!(without_values(message), shown, "{message}");
        }
        let long = "x".repeat(10_000);
        let shown = without_values(&long);
        assert_eq!(shown.chars().count(), CODEC_MESSAGE_CHARS + 1);
        assert!(shown.ends_with('…'));
        let exactly = "y".repeat(CODEC_MESSAGE_CHARS);
        assert_eq!(without_values(&exactly), exactly);
    }
}
