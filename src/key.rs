//! Typed business keys (SPEC 1.3, 1.4).

use std::borrow::Cow;
use std::sync::Arc;

/// The largest business key, in bytes (SPEC 1.4).
pub const MAX_KEY_LEN: usize = 4096;

/// A type usable as the business key of a [`Namespace`](crate::Namespace).
///
/// A namespace is bound to one key type, so a `UserId` cannot be passed where a `SessionId`
/// belongs: that is a compile error. `String`, `Box<str>`, `Arc<str>` and the integer types
/// work out of the box. A newtype needs one short impl:
///
/// ```
/// use std::borrow::Cow;
///
/// #[derive(Debug, Clone, PartialEq)]
/// struct SessionId(String);
///
/// impl namestore::Key for SessionId {
///     fn encode(&self) -> Cow<'_, str> {
///         Cow::Borrowed(&self.0)
///     }
///     fn decode(key: &str) -> Option<Self> {
///         Some(SessionId(key.to_owned()))
///     }
/// }
/// ```
///
/// # Contract
///
/// - `decode(&encode(k))` gives back a key equal to `k`; `keys` and `scan` rely on it.
/// - The encoded form is what the store sees: it must be 1 to [`MAX_KEY_LEN`] bytes, or the
///   operation fails with [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey).
/// - Borrowing in `encode` keeps reads allocation-free; integer keys format into a small
///   owned string.
pub trait Key: Send + Sync + Sized + 'static {
    /// The business key as the store sees it.
    fn encode(&self) -> Cow<'_, str>;

    /// Builds a key back from a stored business key, or `None` when `key` is not a valid
    /// encoding of this type.
    fn decode(key: &str) -> Option<Self>;

    /// Like [`decode`](Key::decode), from a listed key the store hands over as an owned
    /// `String`; on failure the string comes back. The default calls `decode`; a type that
    /// holds a `String` overrides it to keep the buffer instead of copying it.
    fn decode_owned(key: String) -> Result<Self, String> {
        Self::decode(&key).ok_or(key)
    }
}

impl Key for String {
    fn encode(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }

    fn decode(key: &str) -> Option<Self> {
        Some(key.to_owned())
    }

    fn decode_owned(key: String) -> Result<Self, String> {
        Ok(key)
    }
}

impl Key for Box<str> {
    fn encode(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }

    fn decode(key: &str) -> Option<Self> {
        Some(key.into())
    }
}

impl Key for Arc<str> {
    fn encode(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }

    fn decode(key: &str) -> Option<Self> {
        Some(key.into())
    }
}

macro_rules! integer_keys {
    ($($t:ty),*) => {$(
        impl Key for $t {
            fn encode(&self) -> Cow<'_, str> {
                Cow::Owned(itoa::Buffer::new().format(*self).to_owned())
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

/// Checks a business key against SPEC 1.4.
#[inline]
pub(crate) fn validate(key: &str) -> crate::Result<()> {
    if key.is_empty() {
        return Err(crate::Error::invalid_key(key, "a key cannot be empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(crate::Error::invalid_key(
            key,
            "a key is at most 4096 bytes",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_keys_round_trip_only_canonical_forms() {
        assert_eq!(u64::decode(&42u64.encode()), Some(42));
        assert_eq!(i64::decode(&i64::MIN.encode()), Some(i64::MIN));
        assert_eq!(u64::decode("042"), None);
        assert_eq!(u64::decode("+42"), None);
        assert_eq!(i32::decode("-0"), None);
        assert_eq!(u8::decode("256"), None);
    }

    #[test]
    fn validation_follows_spec_1_4() {
        assert!(validate("").is_err());
        assert!(validate(&"k".repeat(MAX_KEY_LEN)).is_ok());
        assert!(validate(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
        assert!(validate("a:b*[?]\\{é}").is_ok());
    }
}
