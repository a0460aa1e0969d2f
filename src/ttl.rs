//! Time to live: the validated TTL a write takes, and the answer `ttl` gives (SPEC 3).

use std::num::NonZeroU64;
use std::time::Duration;

use crate::error::Error;

/// A validated, non-zero time to live with millisecond precision (SPEC 3.1).
///
/// Built from a [`Duration`] by [`Ttl::new`]: zero is refused, a non-zero duration under 1 ms
/// counts as 1 ms, sub-millisecond parts are dropped, and anything over [`Ttl::MAX`] is
/// refused, on every driver alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ttl(NonZeroU64);

/// A year of 365.25 days (a Julian year): the year that duration parsers such as `humantime`
/// read `100y` as, so `100y` is exactly the maximum everywhere.
const YEAR_MS: u64 = 31_557_600_000;
const MAX_TTL_MS: u64 = 100 * YEAR_MS;

impl Ttl {
    /// The longest TTL a store accepts: 100 years of 365.25 days (3,155,760,000 s), what
    /// `100y` means to `humantime` and to the `namestore` command. Use no TTL for a key that
    /// never expires.
    ///
    /// ```
    /// use std::time::Duration;
    /// use namestore::Ttl;
    ///
    /// assert_eq!(Ttl::MAX.as_duration(), Duration::from_secs(36_525 * 86_400));
    /// ```
    pub const MAX: Ttl = Ttl(NonZeroU64::new(MAX_TTL_MS).unwrap());

    /// Validates `duration` as a TTL.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidTtl`](crate::ErrorKind::InvalidTtl) when `duration` is zero or longer than [`Ttl::MAX`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use namestore::Ttl;
    ///
    /// assert_eq!(Ttl::new(Duration::from_micros(10)).unwrap().as_millis(), 1);
    /// assert!(Ttl::new(Duration::ZERO).is_err());
    /// assert!(Ttl::new(Duration::MAX).is_err());
    /// ```
    #[inline]
    pub fn new(duration: Duration) -> crate::Result<Ttl> {
        if duration.is_zero() {
            return Err(Error::invalid_ttl(
                duration,
                "a TTL on a write cannot be zero",
            ));
        }
        let millis = duration.as_millis().max(1);
        if millis > u128::from(MAX_TTL_MS) {
            return Err(Error::invalid_ttl(duration, "a TTL is at most 100 years"));
        }
        // In range per the check above, and at least 1.
        Ok(Ttl(
            NonZeroU64::new(millis as u64).unwrap_or(NonZeroU64::MIN)
        ))
    }

    /// Validates an optional TTL: `None` stays `None` (no expiry).
    ///
    /// # Errors
    ///
    /// As [`Ttl::new`].
    #[inline]
    pub fn from_option(duration: Option<Duration>) -> crate::Result<Option<Ttl>> {
        duration.map(Ttl::new).transpose()
    }

    /// The TTL in whole milliseconds, at least 1.
    #[inline]
    pub fn as_millis(self) -> u64 {
        self.0.get()
    }

    /// The TTL as a duration.
    #[inline]
    pub fn as_duration(self) -> Duration {
        Duration::from_millis(self.0.get())
    }
}

/// What `set` does with the key's expiry (SPEC 3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The key never expires; an old TTL is cleared.
    Never,
    /// The key expires after this TTL.
    After(Ttl),
    /// An existing, live key keeps its TTL (Redis `KEEPTTL`); a new key gets none.
    Keep,
}

impl From<Option<Ttl>> for Expiry {
    #[inline]
    fn from(ttl: Option<Ttl>) -> Self {
        ttl.map_or(Expiry::Never, Expiry::After)
    }
}

/// The answer of `ttl`: three cases, no sentinel numbers (SPEC 3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyTtl {
    /// The key is missing or expired.
    Missing,
    /// The key is present and never expires.
    NoExpiry,
    /// The key is present and expires after this much time: more than zero, at most the TTL
    /// it was given, rounded up to the millisecond.
    ExpiresIn(Duration),
}

impl KeyTtl {
    /// Whether the key is present.
    #[inline]
    pub fn exists(self) -> bool {
        !matches!(self, KeyTtl::Missing)
    }

    /// The time left, if the key is present and expires.
    #[inline]
    pub fn remaining(self) -> Option<Duration> {
        match self {
            KeyTtl::ExpiresIn(left) => Some(left),
            _ => None,
        }
    }
}
