//! A lock over a namespace, on every driver: one holder at a time, a lease that ends a
//! crashed holder's hold, and a fencing token with every acquisition.
//!
//! # Protocol
//!
//! Each lock name has two keys in the namespace: `(name, "lock")` holds the current holder's
//! owner id (unique per acquisition) with the lease as its TTL, and `(name, "fence")` is a
//! counter without TTL. The counter stays when the lock is released, for ever (one that
//! expired would start the tokens again): name locks from a bounded set (jobs, shared
//! resources), not one per order or per user, whose fence counters would only accumulate.
//!
//! - **acquire**: `set_nx` of the owner id with the lease; on success, `incr` of the fence
//!   counter gives the token, then a compare-and-swap of the owner id with itself (renewing
//!   the lease) proves the lock was still held when the token was drawn. Every token is
//!   therefore drawn while its holder held the lock, and holds do not overlap, so **tokens
//!   strictly increase from one holder to the next**. If the lease ran out in between, the
//!   acquisition fails (`None`), its token unused.
//! - **renew**: compare-and-swap of the owner id with itself and a fresh lease: only the
//!   holder renews, and only while its lease runs.
//! - **release**: compare-and-delete of the owner id: a holder whose lease ran out cannot
//!   release the lock someone else took since.
//! - **a step that fails** (the store's error, a timeout whose command may still have run):
//!   the acquisition returns the error and first gives the lock back with a compare-and-delete
//!   of its owner id, so the lock is not left held by nobody until the lease ends.
//!
//! A lease is the only protection from a holder that stalls (a GC pause, a slow disk) past
//! it: it may still act believing it holds the lock. That is what the token is for: give it
//! to the resource the lock protects with every write, and have the resource refuse a token
//! lower than one it has seen.
//!
//! Keep the lock's keys: put locks in a namespace whose keys are never evicted and never
//! clear it. A lock's key evicted while held, the next caller takes the lock; a fence counter
//! evicted or cleared, tokens start again from 1. On an in-memory store with a budget,
//! [`Lock::new`] refuses a namespace in `any` or `with-ttl` mode (open it in `never` mode, the
//! default); on Redis the server's `maxmemory-policy` decides, which this crate does not see:
//! keep `noeviction` (Redis's default) on a server that holds locks.
//!
//! A lock is as durable as the store's writes. Redis replicates asynchronously: when a primary
//! fails and its replica takes over (Sentinel, a managed service's failover, a Redis Cluster),
//! the writes the replica had not received yet are lost, an acquisition among them (the lock
//! is free again on the new primary while its holder acts) and the fence counter's last
//! increments (the next tokens repeat ones already handed out, and a resource cannot tell a
//! repeated token from its holder's). Where that matters, keep locks on a store without
//! failover: one Redis primary (a restart from its append-only file with `appendfsync always`
//! keeps every acknowledged write), or the redb driver in one process, durable (its default:
//! in the non-durable mode a crash loses the last second of writes, fence increments among
//! them). The in-memory driver loses its locks only with its process.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> namestore::Result<()> {
//! use std::time::Duration;
//! use namestore::lock::Lock;
//!
//! let store = namestore::MemoryDriver::new();
//! let locks = Lock::new(store.namespace::<String>("jobs", "locks")?, Duration::from_secs(30))?;
//! let name = "nightly-report".to_owned();
//! let guard = locks.try_acquire(&name).await?.expect("nobody holds it");
//! assert!(locks.try_acquire(&name).await?.is_none()); // held
//! let token = guard.token(); // hand it to the resource with every write
//! assert!(guard.renew().await?);
//! assert!(guard.release().await?);
//! let next = locks.try_acquire(&name).await?.unwrap();
//! assert!(next.token() > token);
//! # Ok(()) }
//! ```

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::eviction::Eviction;
use crate::key::{Key, KeyBuf};
use crate::namespace::Namespace;
use crate::ttl::Ttl;

/// Which of a lock's two keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Lock,
    Fence,
}

impl Key for Part {
    fn encode(&self, out: &mut KeyBuf) {
        out.push_str(match self {
            Part::Lock => "lock",
            Part::Fence => "fence",
        });
    }

    fn decode(key: &str) -> Option<Self> {
        match key {
            "lock" => Some(Part::Lock),
            "fence" => Some(Part::Fence),
            _ => None,
        }
    }

    const NEVER_ESCAPED: bool = true;
}

/// Locks named by keys of type `K`, each held by one owner at a time for a lease; see the
/// [module](self).
pub struct Lock<K, D: Driver> {
    keys: Namespace<(K, Part), D>,
    lease: Duration,
}

impl<K, D: Driver> Clone for Lock<K, D> {
    fn clone(&self) -> Self {
        Lock {
            keys: self.keys.clone(),
            lease: self.lease,
        }
    }
}

impl<K, D: Driver> fmt::Debug for Lock<K, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("namespace", &self.keys)
            .field("lease", &self.lease)
            .finish()
    }
}

/// A held lock: its token, and the means to renew and release it. Dropping it does not
/// release the lock (that takes a call to the store); the lease then ends the hold.
pub struct LockGuard<K, D: Driver> {
    lock: Lock<K, D>,
    name: K,
    owner: Bytes,
    token: u64,
}

impl<K: fmt::Debug, D: Driver> fmt::Debug for LockGuard<K, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("name", &self.name)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl<K: Key + Clone, D: Driver> Lock<K, D> {
    /// Locks kept in `namespace` (give them one of their own), each hold lasting `lease`
    /// unless renewed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidTtl`](crate::ErrorKind::InvalidTtl) when `lease` is not a valid
    /// TTL; [`ErrorKind::InvalidNamespace`](crate::ErrorKind::InvalidNamespace) when the store
    /// may evict the namespace's keys ([`Namespace::eviction`]: an in-memory store with a
    /// budget, the namespace in `any` or `with-ttl` mode). A held lock's key evicted, the
    /// next caller takes it while its holder still acts; a fence counter evicted, tokens start
    /// again from 1. Open the namespace with [`Eviction::Never`]:
    /// [`MemoryDriver::namespace_with_eviction`](crate::MemoryDriver::namespace_with_eviction),
    /// or on a store opened from a URL
    /// [`AnyDriver::namespace_with_eviction`](crate::AnyDriver::namespace_with_eviction):
    ///
    /// ```
    /// # fn main() -> namestore::Result<()> {
    /// use std::time::Duration;
    /// use namestore::ErrorKind;
    /// use namestore::drivers::memory::{Eviction, MemoryDriver};
    /// use namestore::lock::Lock;
    ///
    /// let store = MemoryDriver::builder().max_bytes(64 << 20).eviction(Eviction::Any).build()?;
    /// let cache = store.namespace::<String>("jobs", "cache")?;
    /// let refused = Lock::new(cache, Duration::from_secs(30)).unwrap_err();
    /// assert_eq!(refused.kind(), ErrorKind::InvalidNamespace);
    /// let kept = store.namespace_with_eviction::<String>("jobs", "locks", Eviction::Never)?;
    /// let locks = Lock::new(kept, Duration::from_secs(30))?;
    /// # let _ = locks;
    /// # Ok(()) }
    /// ```
    pub fn new(namespace: Namespace<K, D>, lease: Duration) -> Result<Self> {
        Ttl::new(lease)?;
        let mode = namespace.eviction();
        if mode != Eviction::Never {
            return Err(Error::unsuited_namespace(
                namespace.name(),
                &format!(
                    "evicts in mode `{mode}`, and a lock's keys must not be evicted (a held lock \
                     would be taken by another, its fence counter start again): open it with \
                     eviction `never`"
                ),
            ));
        }
        Ok(Lock {
            keys: namespace.rekey(),
            lease,
        })
    }

    /// The lease each acquisition and renewal grants.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Takes the lock `name` if nobody holds it: `Some` guard with a fencing token, or `None`
    /// when it is held (or the lease ran out while the token was drawn). Does not wait:
    /// `acquire` does (feature `tokio`).
    ///
    /// Dropping the future part-way (a timeout around it) may leave the lock taken under an
    /// owner no guard knows, until the lease ends: give it a lease you can wait out.
    ///
    /// # Errors
    ///
    /// The store's errors; [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey) for a
    /// name breaking SPEC 1.4; [`ErrorKind::NotAnInteger`](crate::ErrorKind::NotAnInteger)
    /// if something else wrote the fence counter: a value that is not a counter, or one that
    /// gives no positive token (a count below zero, which a `decr` leaves: tokens counted from
    /// it would be no higher than the ones before). The lock is then not taken.
    pub async fn try_acquire(&self, name: &K) -> Result<Option<LockGuard<K, D>>> {
        let owner = owner_id();
        let lock_key = (name.clone(), Part::Lock);
        // A step that fails may still have been applied (a reply lost after the store ran
        // the command): the acquisition gives the lock back, if it holds it, rather than
        // leave it held by nobody until the lease ends. Only its own hold goes (`cad` of its
        // owner id); if that fails too, the lease ends it.
        let give_back = async |error| {
            let _ = self.keys.cad(&lock_key, &owner).await;
            Err(error)
        };
        match self
            .keys
            .set_nx(&lock_key, owner.clone(), Some(self.lease))
            .await
        {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(error) => return give_back(error).await,
        }
        let fence = (name.clone(), Part::Fence);
        let token = match self.keys.incr(&fence, 1).await {
            // The counter counts up from 0, so a token is positive. One that is not was
            // counted from a value something else wrote (a `decr`, a `set` of -5): it is no
            // higher than the tokens before it, and a resource would take its holder's
            // writes for a stale holder's, or a stale holder's for its own.
            Ok(token) if token <= 0 => return give_back(Self::foreign_fence(&fence, token)).await,
            Ok(token) => token,
            // No token, no hold.
            Err(error) => return give_back(error).await,
        };
        match self
            .keys
            .cas(&lock_key, &owner, owner.clone(), Some(self.lease))
            .await
        {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(error) => return give_back(error).await,
        }
        Ok(Some(LockGuard {
            lock: self.clone(),
            name: name.clone(),
            owner,
            token: token.unsigned_abs(),
        }))
    }

    /// Takes the lock `name`, waiting up to `wait` while someone else holds it: `Some` guard
    /// as soon as it is free (released, or its lease ended), `None` when `wait` passed first.
    /// `wait` of zero tries once, as [`try_acquire`](Self::try_acquire).
    ///
    /// Waiting is polling: the store tells no one when a lock is released, so the lock is
    /// tried again after a pause that starts at 5 ms and doubles up to 200 ms, each drawn at
    /// random between half and all of it (waiters that collided do not retry in step), and
    /// never past `wait`. A lock released is taken within 200 ms by one of its waiters;
    /// which one is not decided by who came first. Every try is a round trip (three to take
    /// the lock): a thousand waiters on one lock poll it about five thousand times a second.
    ///
    /// Needs a tokio runtime with timers (`#[tokio::main]`, `enable_all`; feature `tokio`,
    /// which the Redis and redb drivers bring in). Dropping the future part-way is as with
    /// [`try_acquire`](Self::try_acquire).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> namestore::Result<()> {
    /// use std::time::Duration;
    /// use namestore::lock::Lock;
    ///
    /// let store = namestore::MemoryDriver::new();
    /// let ns = store.namespace::<String>("jobs", "locks")?;
    /// let locks = Lock::new(ns, Duration::from_secs(30))?;
    /// let name = "nightly-report".to_owned();
    /// let held = locks.try_acquire(&name).await?.unwrap();
    /// // Held for as long as we wait: nothing.
    /// assert!(locks.acquire(&name, Duration::from_millis(50)).await?.is_none());
    /// let (waited, ()) = tokio::join!(locks.acquire(&name, Duration::from_secs(5)), async {
    ///     held.release().await.unwrap();
    /// });
    /// assert!(waited?.is_some());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire), at the first try that fails (it is not tried
    /// again); [`ErrorKind::Backend`](crate::ErrorKind::Backend) when called outside a tokio
    /// runtime.
    #[cfg(feature = "tokio")]
    pub async fn acquire(&self, name: &K, wait: Duration) -> Result<Option<LockGuard<K, D>>> {
        use tokio::time::Instant;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::backend(
                "Lock::acquire waits with tokio's timer, and was called outside a tokio \
                 runtime: call it from a task of one, or use try_acquire",
            ));
        }
        let deadline = Instant::now().checked_add(wait);
        let mut pause = FIRST_PAUSE;
        loop {
            if let Some(guard) = self.try_acquire(name).await? {
                return Ok(Some(guard));
            }
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if left.is_zero() {
                return Ok(None);
            }
            tokio::time::sleep(jittered(pause).min(left)).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }

    /// The error for a fence counter that reads `count`, which no acquisition counted.
    fn foreign_fence(fence: &(K, Part), count: i64) -> Error {
        Error::not_a_token(&fence_key(fence), count)
    }

    /// The last token handed out for `name` (0 before the first acquisition): what a
    /// resource compares a writer's token with.
    ///
    /// # Errors
    ///
    /// The store's errors; [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey) for a
    /// name breaking SPEC 1.4; [`ErrorKind::NotAnInteger`](crate::ErrorKind::NotAnInteger)
    /// when the fence counter holds something no acquisition counted (not an integer, or
    /// below zero), rather than a token that would mislead the resource.
    pub async fn last_token(&self, name: &K) -> Result<u64> {
        let fence = (name.clone(), Part::Fence);
        let Some(value) = self.keys.get(&fence).await? else {
            return Ok(0);
        };
        match crate::counter::parse_canonical(&value) {
            Some(count) if count >= 0 => Ok(count.unsigned_abs()),
            Some(count) => Err(Self::foreign_fence(&fence, count)),
            None => Err(Error::not_an_integer(&fence_key(&fence))),
        }
    }
}

impl<K: Key + Clone, D: Driver> LockGuard<K, D> {
    /// The fencing token of this acquisition: higher than every earlier holder's.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The lock's name.
    pub fn name(&self) -> &K {
        &self.name
    }

    /// Extends the hold by a fresh lease, if it is still held by this guard: `false` when the
    /// lease already ran out (someone else may hold the lock now; stop acting on it).
    ///
    /// # Errors
    ///
    /// The store's errors.
    pub async fn renew(&self) -> Result<bool> {
        self.lock
            .keys
            .cas(
                &(self.name.clone(), Part::Lock),
                &self.owner,
                self.owner.clone(),
                Some(self.lock.lease),
            )
            .await
    }

    /// Whether this guard still holds the lock.
    ///
    /// # Errors
    ///
    /// The store's errors.
    pub async fn is_held(&self) -> Result<bool> {
        let value = self.lock.keys.get(&(self.name.clone(), Part::Lock)).await?;
        Ok(value.as_deref() == Some(&self.owner[..]))
    }

    /// Releases the lock if this guard still holds it: `false` when the lease had run out
    /// (the lock, possibly someone else's now, is left as it is).
    ///
    /// # Errors
    ///
    /// The store's errors.
    pub async fn release(self) -> Result<bool> {
        self.lock
            .keys
            .cad(&(self.name.clone(), Part::Lock), &self.owner)
            .await
    }
}

/// The business key of a fence counter, as errors name keys (it was encoded once already: the
/// call that read or counted it).
fn fence_key<K: Key>(fence: &(K, Part)) -> String {
    crate::key::encode_owned(fence)
        .map(Into::into)
        .unwrap_or_default()
}

/// The first pause of [`Lock::acquire`] between tries, and the longest it doubles up to.
#[cfg(feature = "tokio")]
const FIRST_PAUSE: Duration = Duration::from_millis(5);
#[cfg(feature = "tokio")]
const LONGEST_PAUSE: Duration = Duration::from_millis(200);

/// A pause drawn at random between half of `pause` and all of it.
#[cfg(feature = "tokio")]
fn jittered(pause: Duration) -> Duration {
    let mut random = RandomState::new().build_hasher();
    random.write_u64(0);
    // 0 to 1023 1024ths of the half that varies.
    let share = u32::try_from(random.finish() % 1024).unwrap_or(0);
    pause / 2 + pause / 2 * share / 1024
}

/// An id no other acquisition, in this process or another, shares: the process id, the
/// time, a per-process sequence number and 64 random bits.
fn owner_id() -> Bytes {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut random = RandomState::new().build_hasher();
    random.write_u64(sequence);
    let random = random.finish();
    Bytes::from(format!(
        "{:x}-{nanos:x}-{sequence:x}-{random:016x}",
        std::process::id()
    ))
}
