//! A key stored as the SHA-256 digest of the bytes it stands for: a credential (a session
//! id, an API key) as a namestore key that shows nothing usable.

use std::fmt;

use namestore::{Key, KeyBuf};
use sha2::{Digest, Sha256};

/// A namestore key that is the SHA-256 digest of some bytes, stored as 64 lowercase hex
/// digits: for keys that are credentials, such as an API key a rate limit is counted by.
///
/// Keys show: in listings of the store (`namestore keys`), backups, Redis's `MONITOR` and
/// slow log, errors that name a key, TRACE spans of the telemetry layer. SPEC 12.2 keeps
/// secrets out of telemetry; the store cannot know which keys are secrets, so a secret must
/// not be a key. Its digest can be: it tells the same credential apart from others, and it
/// cannot be turned back into one. Any bytes hash to a key of 64 characters, so a client
/// sending a huge or binary credential gets a key like any other.
///
/// ```
/// # fn main() -> namestore::Result<()> {
/// use std::time::Duration;
/// use namestore::rate_limit::RateLimiter;
/// use namestore_web::{RateLimitLayer, Sha256Key};
///
/// let store = namestore::open("memory://")?;
/// let limiter = RateLimiter::new(store.namespace::<Sha256Key>("api", "rate")?, 100, Duration::from_secs(60))?;
/// // One limit per API key, counted under its digest.
/// let layer = RateLimitLayer::new(limiter, |request: &http::Request<axum::body::Body>| {
///     Some(Sha256Key::of(request.headers().get("x-api-key")?.as_bytes()))
/// });
/// # let _ = layer;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Key([u8; 32]);

impl Sha256Key {
    /// The key of `secret`'s bytes.
    pub fn of(secret: impl AsRef<[u8]>) -> Self {
        Sha256Key(Sha256::digest(secret.as_ref()).into())
    }

    /// The digest's 32 bytes.
    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Sha256Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Key({self})")
    }
}

/// The 64 hex digits, as stored.
impl fmt::Display for Sha256Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl Key for Sha256Key {
    fn encode(&self, out: &mut KeyBuf) {
        use std::fmt::Write;
        let _ = write!(out, "{self}");
    }

    fn decode(key: &str) -> Option<Self> {
        let hex = key.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
            *byte = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(Sha256Key(digest))
    }

    // Hex digits.
    const NEVER_ESCAPED: bool = true;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_and_round_trip() {
        // `printf %s abc | sha256sum`
        let key = Sha256Key::of("abc");
        let text = key.to_string();
        assert_eq!(
            text,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Sha256Key::decode(&text), Some(key));
        assert_eq!(
            Sha256Key::of([0xffu8, 0, 0xfe]),
            Sha256Key::of(vec![0xffu8, 0, 0xfe])
        );
        for bad in [
            String::new(),
            "ba78".to_owned(),
            text.to_uppercase(),
            format!("{text}0"),
            format!("{}g", &text[..63]),
            "é".repeat(32),
        ] {
            assert_eq!(Sha256Key::decode(&bad), None, "{bad}");
        }
    }
}
