//! Typed business keys (SPEC 1.3, 1.4): how a key type becomes the string the store sees, into
//! a buffer on the caller's stack.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arrayvec::ArrayString;

/// The largest business key, in bytes (SPEC 1.4).
pub const MAX_KEY_LEN: usize = 4096;

/// A type usable as the business key of a [`Namespace`](crate::Namespace).
///
/// A namespace is bound to one key type, so a `UserId` cannot be passed where a `SessionId`
/// belongs: that is a compile error. Implemented for `String`, `Box<str>`, `Arc<str>`, every
/// integer type, [`IpAddr`] (and its two halves), `uuid::Uuid` (cargo feature `uuid`), and
/// tuples of two to four keys (composite keys, below).
///
/// A key encodes itself into a [`KeyBuf`] the namespace provides on its stack, so a computed
/// key (an integer, a UUID, a pair of ids) costs no allocation; a key that already is a string
/// hands it over with [`encoded`](Key::encoded) and costs no copy either.
///
/// # A newtype: one line
///
/// [`newtype_key!`](crate::newtype_key) implements `Key` for tuple structs around a key type,
/// encoding exactly as the inner key does:
///
/// ```
/// #[derive(Debug, Clone, PartialEq)]
/// struct SessionId(String);
///
/// #[derive(Debug, Clone, Copy, PartialEq)]
/// struct UserId(u64);
///
/// namestore::newtype_key!(SessionId, UserId);
/// ```
///
/// # Any other type: `encode` and `decode`
///
/// `encode` appends the key's text to the buffer (`write!` works, [`KeyBuf`] is a
/// [`fmt::Write`]); `decode` reads it back, accepting only what `encode` writes:
///
/// ```
/// use std::fmt::Write;
/// use namestore::{Key, KeyBuf};
///
/// #[derive(Debug, Clone, Copy, PartialEq)]
/// struct OrderId(u32);
///
/// impl Key for OrderId {
///     fn encode(&self, out: &mut KeyBuf) {
///         let _ = write!(out, "order-{}", self.0);
///     }
///     fn decode(key: &str) -> Option<Self> {
///         Some(OrderId(u32::decode(key.strip_prefix("order-")?)?))
///     }
/// }
/// ```
///
/// # Composite keys
///
/// A tuple `(A, B)`, `(A, B, C)` or `(A, B, C, D)` of keys is a key: its parts' encodings
/// joined by `:`, so `(42u64, 7u64)` is stored as `42:7` and a pattern such as `42:*` lists
/// every key whose first part is 42. Within a part, `%` is written `%25` and `:` is written
/// `%3A`, so a part may contain anything and the key still splits back unambiguously:
/// `("a:b".to_owned(), 1u8)` is `a%3Ab:1`. Patterns match the stored (escaped) form.
///
/// # Contract
///
/// - `decode` gives back a key equal to the one encoded, and accepts only the text `encode`
///   writes (one stored key, one value): `keys` and `scan` rely on it.
/// - The encoded form is what the store sees: it must be 1 to [`MAX_KEY_LEN`] bytes, or the
///   operation fails with [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey). Writing
///   more than `MAX_KEY_LEN` bytes into a [`KeyBuf`] is not an error there: the buffer keeps
///   the first `MAX_KEY_LEN` bytes and the namespace refuses the key.
pub trait Key: Send + Sync + Sized + 'static {
    /// Appends the business key, as the store sees it, to `out`.
    fn encode(&self, out: &mut KeyBuf);

    /// The business key as the store sees it, when the key already holds it as a string:
    /// the namespace then uses it without copying it into a buffer. The default is `None`
    /// (the key is encoded with [`encode`](Key::encode)); when both are given they must agree.
    #[inline]
    fn encoded(&self) -> Option<&str> {
        None
    }

    /// Builds a key back from a stored business key, or `None` when `key` is not a valid
    /// encoding of this type.
    fn decode(key: &str) -> Option<Self>;

    /// Whether an encoding never holds `:` or `%`, so that as a part of a composite key it
    /// is written as it is, without looking for characters to escape. `false` by default;
    /// `true` for the integers and UUIDs. A type that sets it and writes either character
    /// makes composite keys that do not decode.
    const NEVER_ESCAPED: bool = false;

    /// Like [`decode`](Key::decode), from a listed key the store hands over as an owned
    /// `String`; on failure the string comes back. The default calls `decode`; a type that
    /// holds a `String` overrides it to keep the buffer instead of copying it.
    #[inline]
    fn decode_owned(key: String) -> Result<Self, String> {
        Self::decode(&key).ok_or(key)
    }
}

/// The buffer a [`Key`] encodes into: up to [`MAX_KEY_LEN`] bytes of UTF-8, on the stack.
///
/// It implements [`fmt::Write`], so `write!(out, "…")` appends to it. Text beyond
/// `MAX_KEY_LEN` bytes is dropped and marks the buffer [`overflowed`](KeyBuf::overflowed): the
/// namespace then refuses the key with
/// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey) (SPEC 1.4), and `write!` reports
/// [`fmt::Error`] so a long formatting stops early.
///
/// ```
/// use namestore::{Key, KeyBuf};
///
/// let mut buf = KeyBuf::new();
/// (7u64, "a:b".to_owned()).encode(&mut buf);
/// assert_eq!(buf.as_str(), "7:a%3Ab");
/// ```
pub struct KeyBuf {
    text: ArrayString<MAX_KEY_LEN>,
    overflowed: bool,
}

impl KeyBuf {
    /// An empty buffer. Its storage is not initialised until written: making one is free.
    #[inline]
    pub fn new() -> Self {
        KeyBuf {
            // Not `new_const`: its storage is a constant that gets copied in (a memset).
            text: ArrayString::new(),
            overflowed: false,
        }
    }

    /// The text written so far (at most [`MAX_KEY_LEN`] bytes).
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The length of the text, in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// Whether nothing was written.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Whether more than [`MAX_KEY_LEN`] bytes were written (the excess was dropped).
    #[inline]
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Appends `text`; what does not fit is dropped and marks the buffer overflowed.
    #[inline]
    pub fn push_str(&mut self, text: &str) {
        if self.text.try_push_str(text).is_err() {
            self.overflow(text);
        }
    }

    /// Appends `c`; when it does not fit, marks the buffer overflowed.
    #[inline]
    pub fn push_char(&mut self, c: char) {
        if self.text.try_push(c).is_err() {
            self.overflowed = true;
        }
    }

    /// Appends the encoding of `key`: for keys built from other keys (a prefix, then an id).
    #[inline]
    pub fn push_key<K: Key>(&mut self, key: &K) {
        match key.encoded() {
            Some(text) => self.push_str(text),
            None => key.encode(self),
        }
    }

    /// Empties the buffer.
    #[inline]
    pub fn clear(&mut self) {
        self.text.clear();
        self.overflowed = false;
    }

    #[cold]
    fn overflow(&mut self, text: &str) {
        let room = MAX_KEY_LEN - self.text.len();
        let mut cut = room.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.push_str(&text[..cut]);
        self.overflowed = true;
    }

    /// Appends `key` as one part of a composite key: its encoding with `%` and `:` escaped.
    #[inline]
    fn push_part<K: Key>(&mut self, key: &K) {
        if K::NEVER_ESCAPED {
            return key.encode(self);
        }
        match key.encoded() {
            Some(text) if !needs_escape(text) => self.push_str(text),
            Some(text) => self.push_escaped(text),
            None => {
                let start = self.text.len();
                key.encode(self);
                if needs_escape(&self.text[start..]) {
                    self.escape_from(start);
                }
            }
        }
    }

    /// Escapes, in place, what was written from byte `start` on.
    #[cold]
    fn escape_from(&mut self, start: usize) {
        let written: ArrayString<MAX_KEY_LEN> = ArrayString::from(&self.text[start..])
            .expect("a part of the buffer fits in a buffer of the same size");
        self.text.truncate(start);
        self.push_escaped(&written);
    }

    #[cold]
    fn push_escaped(&mut self, mut text: &str) {
        while let Some(at) = text.find([':', '%']) {
            self.push_str(&text[..at]);
            self.push_str(if text.as_bytes()[at] == b':' {
                "%3A"
            } else {
                "%25"
            });
            text = &text[at + 1..];
        }
        self.push_str(text);
    }
}

impl Default for KeyBuf {
    fn default() -> Self {
        KeyBuf::new()
    }
}

impl fmt::Write for KeyBuf {
    #[inline]
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.push_str(text);
        if self.overflowed {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

impl fmt::Debug for KeyBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyBuf")
            .field("text", &self.as_str())
            .field("overflowed", &self.overflowed)
            .finish()
    }
}

#[inline]
fn needs_escape(text: &str) -> bool {
    text.bytes().any(|b| b == b':' || b == b'%')
}

/// A part of a composite key as stored, unescaped; `None` for a `%` that is not `%25` or
/// `%3A` (not what [`KeyBuf`] writes, so not a key of this type).
fn unescape(part: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !part.contains('%') {
        return Some(std::borrow::Cow::Borrowed(part));
    }
    let mut out = String::with_capacity(part.len());
    let mut rest = part;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("%3A") => out.push(':'),
            Some("%25") => out.push('%'),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(std::borrow::Cow::Owned(out))
}

fn decode_part<K: Key>(part: &str) -> Option<K> {
    match unescape(part)? {
        std::borrow::Cow::Borrowed(text) => K::decode(text),
        std::borrow::Cow::Owned(text) => K::decode_owned(text).ok(),
    }
}

/// Implements [`Key`] for tuple structs around a key type (`struct SessionId(String);`): the
/// newtype encodes and decodes exactly as the key it wraps.
///
/// ```
/// #[derive(Debug, Clone, PartialEq)]
/// struct SessionId(String);
/// #[derive(Debug, Clone, Copy, PartialEq)]
/// struct TenantUser((u64, u64));
///
/// namestore::newtype_key!(SessionId, TenantUser);
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> namestore::Result<()> {
/// let sessions = namestore::MemoryDriver::new().namespace::<SessionId>("app", "sessions")?;
/// sessions.set(&SessionId("s1".into()), "alice", None).await?;
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! newtype_key {
    ($($name:ty),+ $(,)?) => {$(
        impl $crate::Key for $name {
            #[inline]
            fn encode(&self, out: &mut $crate::KeyBuf) {
                $crate::Key::encode(&self.0, out)
            }
            #[inline]
            fn encoded(&self) -> ::core::option::Option<&str> {
                $crate::Key::encoded(&self.0)
            }
            #[inline]
            fn decode(key: &str) -> ::core::option::Option<Self> {
                $crate::Key::decode(key).map(Self)
            }
            #[inline]
            fn decode_owned(
                key: ::std::string::String,
            ) -> ::core::result::Result<Self, ::std::string::String> {
                $crate::Key::decode_owned(key).map(Self)
            }
        }
    )+};
}

/// Keys that are strings: handed over as they are, no copy.
macro_rules! string_keys {
    ($($t:ty => $from_string:expr),*) => {$(
        impl Key for $t {
            #[inline]
            fn encode(&self, out: &mut KeyBuf) {
                out.push_str(self);
            }

            #[inline]
            fn encoded(&self) -> Option<&str> {
                Some(self)
            }

            fn decode(key: &str) -> Option<Self> {
                Some(key.into())
            }

            fn decode_owned(key: String) -> Result<Self, String> {
                Ok($from_string(key))
            }
        }
    )*};
}

string_keys!(
    String => |key| key,
    Box<str> => String::into_boxed_str,
    Arc<str> => Arc::from
);

macro_rules! integer_keys {
    ($($t:ty),*) => {$(
        impl Key for $t {
            const NEVER_ESCAPED: bool = true;

            #[inline]
            fn encode(&self, out: &mut KeyBuf) {
                out.push_str(itoa::Buffer::new().format(*self));
            }

            /// Accepts only the canonical form `encode` writes, so every stored key maps to
            /// exactly one integer and back.
            fn decode(key: &str) -> Option<Self> {
                let value: $t = key.parse().ok()?;
                (itoa::Buffer::new().format(value) == key).then_some(value)
            }
        }
    )*};
}

integer_keys!(
    u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, usize, isize
);

/// Formats `value` into a small stack buffer and compares: an address decodes only from the
/// canonical text its `Display` writes (RFC 5952 for IPv6), one stored key per address.
fn canonical<T: fmt::Display>(value: T, text: &str) -> bool {
    let mut shown = ArrayString::<64>::new();
    write!(shown, "{value}").is_ok() && shown.as_str() == text
}

macro_rules! address_keys {
    ($($t:ty),*) => {$(
        /// The address as its `Display` writes it (`192.0.2.1`, `2001:db8::1`): rate
        /// limiting by client address keys a namespace by it.
        impl Key for $t {
            #[inline]
            fn encode(&self, out: &mut KeyBuf) {
                let _ = write!(out, "{self}");
            }

            fn decode(key: &str) -> Option<Self> {
                let value: $t = key.parse().ok()?;
                canonical(value, key).then_some(value)
            }
        }
    )*};
}

address_keys!(IpAddr, Ipv4Addr, Ipv6Addr);

/// The hyphenated lower-case form, `67e55044-10b1-426f-9247-bb680e5fe0c8`; only that form
/// decodes.
#[cfg(feature = "uuid")]
impl Key for uuid::Uuid {
    const NEVER_ESCAPED: bool = true;

    #[inline]
    fn encode(&self, out: &mut KeyBuf) {
        let mut text = [0; 36];
        out.push_str(self.hyphenated().encode_lower(&mut text));
    }

    fn decode(key: &str) -> Option<Self> {
        if key.len() != 36 {
            return None;
        }
        let value = uuid::Uuid::try_parse(key).ok()?;
        let mut text = [0; 36];
        (value.hyphenated().encode_lower(&mut text) == key).then_some(value)
    }
}

macro_rules! tuple_keys {
    ($(($($part:ident $index:tt),+)),+) => {$(
        impl<$($part: Key),+> Key for ($($part,)+) {
            #[inline]
            fn encode(&self, out: &mut KeyBuf) {
                $(
                    if $index > 0 {
                        out.push_char(':');
                    }
                    out.push_part(&self.$index);
                )+
            }

            fn decode(key: &str) -> Option<Self> {
                let mut parts = key.split(':');
                let key = ($(decode_part::<$part>(parts.next()?)?,)+);
                parts.next().is_none().then_some(key)
            }
        }
    )+};
}

tuple_keys!(
    (A 0, B 1),
    (A 0, B 1, C 2),
    (A 0, B 1, C 2, D 3)
);

/// Encodes `key` into `buf` and checks the result against SPEC 1.4.
#[inline]
pub(crate) fn encode<'a, K: Key>(key: &'a K, buf: &'a mut KeyBuf) -> crate::Result<&'a str> {
    let encoded = match key.encoded() {
        Some(text) => text,
        None => {
            key.encode(buf);
            if buf.overflowed {
                return Err(too_long(buf.as_str()));
            }
            buf.as_str()
        }
    };
    validate(encoded)?;
    Ok(encoded)
}

/// Encodes `key` for a call that keeps it while it waits: borrowed when the key already is a
/// string, else an owned copy.
#[inline]
pub(crate) fn encode_owned<K: Key>(key: &K) -> crate::Result<std::borrow::Cow<'_, str>> {
    if let Some(text) = key.encoded() {
        validate(text)?;
        return Ok(std::borrow::Cow::Borrowed(text));
    }
    let mut buf = KeyBuf::new();
    Ok(std::borrow::Cow::Owned(encode(key, &mut buf)?.to_owned()))
}

#[cold]
fn too_long(key: &str) -> crate::Error {
    crate::Error::invalid_key(key, "a key is at most 4096 bytes")
}

/// Checks a business key against SPEC 1.4.
#[inline]
pub(crate) fn validate(key: &str) -> crate::Result<()> {
    if key.is_empty() {
        return Err(crate::Error::invalid_key(key, "a key cannot be empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(too_long(key));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded<K: Key>(key: &K) -> String {
        let mut buf = KeyBuf::new();
        buf.push_key(key);
        buf.as_str().to_owned()
    }

    fn round_trips<K: Key + PartialEq + fmt::Debug>(key: K, text: &str) {
        assert_eq!(encoded(&key), text);
        assert_eq!(K::decode(text).as_ref(), Some(&key), "{text:?}");
        assert_eq!(K::decode_owned(text.to_owned()).ok().as_ref(), Some(&key));
    }

    #[test]
    fn integers_encode_as_display_writes_them() {
        let mut cases: Vec<u64> = (0..2000).collect();
        for p in 1..20 {
            let ten = 10u64.pow(p);
            cases.extend([
                ten - 1,
                ten,
                ten + 1,
                ten.saturating_mul(9).saturating_add(99),
            ]);
        }
        cases.extend([u64::MAX, u64::MAX - 1, 1 << 63]);
        for n in cases {
            assert_eq!(encoded(&n), n.to_string());
            assert_eq!(encoded(&(n as i64)), (n as i64).to_string());
            assert_eq!(encoded(&(n as u32)), (n as u32).to_string());
            assert_eq!(encoded(&(n as i8)), (n as i8).to_string());
        }
        assert_eq!(encoded(&i64::MIN), i64::MIN.to_string());
        assert_eq!(encoded(&i128::MIN), i128::MIN.to_string());
        assert_eq!(encoded(&usize::MAX), usize::MAX.to_string());
    }

    #[test]
    fn integer_keys_round_trip_only_canonical_forms() {
        round_trips(42u64, "42");
        round_trips(i64::MIN, "-9223372036854775808");
        round_trips(u128::MAX, "340282366920938463463374607431768211455");
        assert_eq!(u64::decode("042"), None);
        assert_eq!(u64::decode("+42"), None);
        assert_eq!(i32::decode("-0"), None);
        assert_eq!(u8::decode("256"), None);
    }

    #[test]
    fn addresses_round_trip_only_canonical_forms() {
        round_trips(IpAddr::from([192, 0, 2, 1]), "192.0.2.1");
        round_trips("2001:db8::1".parse::<IpAddr>().unwrap(), "2001:db8::1");
        round_trips(Ipv6Addr::LOCALHOST, "::1");
        round_trips(Ipv4Addr::BROADCAST, "255.255.255.255");
        assert_eq!(IpAddr::decode("2001:0db8::1"), None);
        assert_eq!(IpAddr::decode("2001:DB8::1"), None);
        assert_eq!(IpAddr::decode("0:0:0:0:0:0:0:1"), None);
        assert_eq!(Ipv4Addr::decode("192.0.2.1 "), None);
        assert_eq!(Ipv4Addr::decode("::1"), None);
    }

    #[cfg(feature = "uuid")]
    #[test]
    fn uuids_round_trip_only_the_hyphenated_lower_case_form() {
        let id = uuid::Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8);
        round_trips(id, "67e55044-10b1-426f-9247-bb680e5fe0c8");
        assert_eq!(
            uuid::Uuid::decode("67E55044-10B1-426F-9247-BB680E5FE0C8"),
            None
        );
        assert_eq!(uuid::Uuid::decode("67e5504410b1426f9247bb680e5fe0c8"), None);
        assert_eq!(
            uuid::Uuid::decode("{67e55044-10b1-426f-9247-bb680e5fe0c8}"),
            None
        );
        assert_eq!(
            uuid::Uuid::decode("urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8"),
            None
        );
    }

    #[test]
    fn composite_keys_split_back_whatever_their_parts_hold() {
        round_trips((42u64, 7u64), "42:7");
        round_trips(("a:b".to_owned(), 1u8), "a%3Ab:1");
        round_trips(("100%".to_owned(), "%3A".to_owned()), "100%25:%253A");
        round_trips((String::new(), String::new()), ":");
        round_trips(
            (1u8, "*?[\\{}".to_owned(), Ipv6Addr::LOCALHOST),
            "1:*?[\\{}:%3A%3A1",
        );
        round_trips(
            ((1u8, "x:y".to_owned()), 2u8, 3u8, "z".to_owned()),
            "1%3Ax%253Ay:2:3:z",
        );
        // A key that is not what the encoding writes is not a key of the type.
        assert_eq!(<(u64, u64)>::decode("1:2:3"), None);
        assert_eq!(<(u64, u64)>::decode("1"), None);
        assert_eq!(<(String, u64)>::decode("a%3ab:1"), None);
        assert_eq!(<(String, u64)>::decode("a%:1"), None);
        assert_eq!(<(String, u64)>::decode("a%4:1"), None);
        assert_eq!(<(u64, u64)>::decode("01:2"), None);
    }

    #[test]
    fn a_part_escaped_in_place_keeps_what_came_before() {
        let mut buf = KeyBuf::new();
        buf.push_str("prefix-");
        buf.push_part(&Ipv6Addr::LOCALHOST);
        assert_eq!(buf.as_str(), "prefix-%3A%3A1");
    }

    #[test]
    fn an_overlong_key_is_cut_at_a_character_and_marked() {
        let mut buf = KeyBuf::new();
        buf.push_str(&"k".repeat(MAX_KEY_LEN - 1));
        assert!(!buf.overflowed());
        buf.push_str("é");
        assert!(buf.overflowed());
        assert_eq!(buf.len(), MAX_KEY_LEN - 1);
        assert!(write!(buf, "{}", 1).is_err());

        let mut buf = KeyBuf::new();
        let long = ("k".repeat(MAX_KEY_LEN), 1u8);
        assert!(encode(&long, &mut buf).is_err());
        let mut buf = KeyBuf::new();
        assert!(encode(&"k".repeat(MAX_KEY_LEN + 1), &mut buf).is_err());
        let mut buf = KeyBuf::new();
        assert_eq!(
            encode(&"k".repeat(MAX_KEY_LEN), &mut buf).unwrap().len(),
            MAX_KEY_LEN
        );
    }

    #[test]
    fn newtypes_encode_as_what_they_wrap() {
        #[derive(Debug, PartialEq)]
        struct SessionId(String);
        #[derive(Debug, PartialEq)]
        struct UserId(u64);
        #[derive(Debug, PartialEq)]
        struct Pair((u64, String));
        crate::newtype_key!(SessionId, UserId, Pair);
        round_trips(SessionId("s:1".into()), "s:1");
        assert!(SessionId("s".into()).encoded().is_some());
        round_trips(UserId(7), "7");
        round_trips(Pair((7, "a:b".into())), "7:a%3Ab");
        assert_eq!(UserId::decode("07"), None);
    }

    #[test]
    fn validation_follows_spec_1_4() {
        assert!(validate("").is_err());
        assert!(validate(&"k".repeat(MAX_KEY_LEN)).is_ok());
        assert!(validate(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
        assert!(validate("a:b*[?]\\{é}").is_ok());
    }
}
