//! A rate limiter over a namespace, on every driver: at most `limit` requests per key in each
//! window of time, decided in one atomic call to the store.
//!
//! # Algorithm: fixed windows aligned to the clock
//!
//! Time is cut into windows of `window` each, aligned to the Unix epoch (a 60-second window
//! runs from one whole minute to the next). A request for `key` at time `t` increments the
//! counter `(key, t / window)` with [`incr_with_ttl`](Namespace::incr_with_ttl): the counter
//! is created with a TTL of two windows, so it is gone one window after its own ends at the
//! latest. (One window would not do: a request decided at the window's last millisecond can
//! reach the store after a counter created at the window's first has expired, and start the
//! count again.) The request is allowed when the counter, after the increment, is at most
//! `limit`.
//!
//! Why this algorithm: it is the one whose decision is a single operation every driver
//! already makes atomic (`INCRBY` with a TTL on creation in one round trip on Redis, on a
//! Cluster too since it touches one key; one shard lock in memory; one transaction in redb),
//! so any number of service instances sharing a store allow **exactly `limit` requests per
//! window**, with no error term. The price is the fixed window's known burst: a client may
//! spend one window's limit at its very end and the next window's at the start of the next,
//! so up to `2 × limit` requests can pass within one window's length across a boundary. A
//! sliding-window estimate or GCRA smooths that, but needs a read and a conditional write
//! (a script on Redis), and the sliding estimate is only approximate.
//!
//! Every decision is a write. On a durable redb store it waits for its commit to reach the
//! disk (about 250 µs for a lone request, shared by requests deciding at once): counters that
//! need not outlive a crash belong in a file of their own opened `?durable=0`, or in memory.
//!
//! Every counter has a TTL, so on an in-memory store with a budget the limiter's namespace
//! belongs in `with-ttl` (or `any`) eviction mode: a flood of new keys then evicts old
//! counters (their clients start the window again) rather than failing the checks of new
//! keys with `OutOfMemory`, which a caller that lets requests through when the store cannot
//! answer (namestore-web's layer, by default) would turn into no limit for them. Give it
//! that mode where the namespace is opened, whatever the store's default:
//! `store.namespace_with_eviction::<IpAddr>("api", "rate", Eviction::WithTtl)` (on a
//! [`MemoryDriver`](crate::MemoryDriver) or a store opened from a URL, an
//! [`AnyDriver`](crate::AnyDriver)).
//!
//! Keys show wherever the store's keys do (listings, errors that name a key, TRACE spans of
//! the telemetry layer): count a limit by a credential, such as an API key, under its digest
//! (`namestore_web::Sha256Key`), never the credential itself.
//!
//! Denied requests are counted too (the counter is past `limit` until the window ends); they
//! change nothing but the counter. Instances must agree on the time to agree on windows:
//! processes on one machine do; across machines, the clocks' skew (NTP keeps it to
//! milliseconds) shifts their window boundaries by as much.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> namestore::Result<()> {
//! use std::time::Duration;
//! use namestore::rate_limit::RateLimiter;
//!
//! let store = namestore::MemoryDriver::new();
//! let limiter = RateLimiter::new(
//!     store.namespace::<std::net::IpAddr>("api", "rate")?,
//!     2,
//!     Duration::from_secs(60),
//! )?;
//! let client: std::net::IpAddr = "192.0.2.7".parse().unwrap();
//! assert!(limiter.check(&client).await?.allowed);
//! assert!(limiter.check(&client).await?.allowed);
//! let third = limiter.check(&client).await?;
//! assert!(!third.allowed);
//! assert_eq!(third.remaining, 0);
//! assert!(third.retry_after.unwrap() <= Duration::from_secs(60));
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::key::Key;
use crate::namespace::Namespace;
use crate::ttl::Ttl;

/// Allows `limit` requests per key in each window; see the [module](self).
pub struct RateLimiter<K, D: Driver> {
    counters: Namespace<(K, u64), D>,
    limit: u64,
    window: Duration,
    /// Two windows (one when two is beyond the longest TTL).
    counter_ttl: Duration,
    clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl<K, D: Driver> Clone for RateLimiter<K, D> {
    fn clone(&self) -> Self {
        RateLimiter {
            counters: self.counters.clone(),
            limit: self.limit,
            window: self.window,
            counter_ttl: self.counter_ttl,
            clock: Arc::clone(&self.clock),
        }
    }
}

impl<K, D: Driver> fmt::Debug for RateLimiter<K, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("namespace", &self.counters)
            .field("limit", &self.limit)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// The answer to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is within the limit.
    pub allowed: bool,
    /// The limit per window.
    pub limit: u64,
    /// Requests left in this window after this one.
    pub remaining: u64,
    /// The window's number: its start is `number × window` after the Unix epoch.
    pub window: u64,
    /// Time until this window ends and the count starts again.
    pub reset_after: Duration,
    /// For a denied request, when to try again: the end of the window (`reset_after`).
    /// `None` for a request that no window can allow, its cost over the limit (every request
    /// when the limit is 0): trying again will not help.
    pub retry_after: Option<Duration>,
}

impl<K: Key, D: Driver> RateLimiter<K, D> {
    /// A limiter allowing `limit` requests per key in each `window`, counting in `namespace`
    /// (its keys are `(key, window number)` pairs; give the limiter a namespace of its own).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidTtl`](crate::ErrorKind::InvalidTtl) when `window` is not a valid
    /// TTL (zero, or not a whole number of milliseconds: windows are counted in milliseconds).
    pub fn new(namespace: Namespace<K, D>, limit: u64, window: Duration) -> Result<Self> {
        Ttl::new(window)?;
        if !window.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(Error::invalid_ttl(
                window,
                "a rate limit window is a whole number of milliseconds",
            ));
        }
        let counter_ttl = window
            .checked_mul(2)
            .filter(|ttl| Ttl::new(*ttl).is_ok())
            .unwrap_or(window);
        Ok(RateLimiter {
            counters: namespace.rekey(),
            limit,
            window,
            counter_ttl,
            clock: Arc::new(SystemTime::now),
        })
    }

    /// Reads the time from `clock` instead of the system's (tests; a clock shared by
    /// instances that do not share a system clock).
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The limit per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window's length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Counts one request for `key` and decides it.
    ///
    /// # Errors
    ///
    /// The store's errors (the request is then neither allowed nor denied: the caller
    /// chooses), [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey) for a key breaking
    /// SPEC 1.4, [`ErrorKind::NotAnInteger`](crate::ErrorKind::NotAnInteger) if something
    /// else wrote a non-counter under the limiter's key.
    pub async fn check(&self, key: &K) -> Result<Decision>
    where
        K: Clone,
    {
        self.check_n(key, 1).await
    }

    /// Counts `cost` requests for `key` at once (a batch, a costly call) and decides them
    /// together: allowed when all of them fit in what is left of the window.
    ///
    /// A cost over the limit is denied without being counted, with no `retry_after`: no
    /// window can allow it, and counted, it took what was left of the window from the key's
    /// other requests. A window's count is an `i64` in the store: a cost it cannot hold
    /// (taking the count past `i64::MAX`, with a limit that high) is denied and left
    /// uncounted too, never an error, so a cost taken from a request (its size, say) cannot
    /// turn into an error that a caller letting requests through when the store fails would
    /// let through. These denials read the count to tell what `remaining` is.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> namestore::Result<()> {
    /// # use std::time::Duration;
    /// # use namestore::rate_limit::RateLimiter;
    /// # let store = namestore::MemoryDriver::new();
    /// let limiter = RateLimiter::new(store.namespace::<String>("api", "bytes")?, 1 << 20, Duration::from_secs(60))?;
    /// let client = "client-7".to_owned();
    /// assert!(limiter.check_n(&client, 4096).await?.allowed);
    /// let flood = limiter.check_n(&client, u64::MAX).await?;
    /// assert!(!flood.allowed);
    /// assert_eq!(flood.retry_after, None, "no window allows it");
    /// assert_eq!(flood.remaining, (1 << 20) - 4096, "nothing counted");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check).
    pub async fn check_n(&self, key: &K, cost: u64) -> Result<Decision>
    where
        K: Clone,
    {
        let window_ms = self.window.as_millis();
        let now_ms = (self.clock)()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let number = now_ms / window_ms;
        let reset_after_ms = (number + 1) * window_ms - now_ms;
        let number = u64::try_from(number).unwrap_or(u64::MAX);
        let reset_after = Duration::from_millis(u64::try_from(reset_after_ms).unwrap_or(u64::MAX));
        let counter = (key.clone(), number);
        // `None`: the cost cannot fit in what the window may allow or count, and nothing was
        // counted (SPEC 4: an increment that would overflow changes nothing).
        let ever = cost <= self.limit;
        let counted = match i64::try_from(cost).ok().filter(|_| ever) {
            Some(delta) => {
                match self
                    .counters
                    .incr_with_ttl(&counter, delta, self.counter_ttl)
                    .await
                {
                    Ok(count) => Some(u64::try_from(count).unwrap_or(0)),
                    Err(error) if error.kind() == crate::ErrorKind::Overflow => None,
                    Err(error) => return Err(error),
                }
            }
            None => None,
        };
        let (allowed, count) = match counted {
            Some(count) => (count <= self.limit, count),
            None => {
                let count = self.counters.get(&counter).await?;
                (false, crate::counter::count_of(count.as_deref()))
            }
        };
        Ok(Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit.saturating_sub(count),
            window: number,
            reset_after,
            retry_after: (!allowed && ever).then_some(reset_after),
        })
    }
}
