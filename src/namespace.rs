//! Typed namespaces: the public face of namestore (SPEC 1 to 6).

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;

use crate::at_once::{Call, Lazy, at_once};
use crate::driver::Driver;
use crate::error::Error;
use crate::glob::Pattern;
use crate::key::{self, Key, KeyBuf};
use crate::load::Flights;
use crate::name::NamespaceName;
use crate::ttl::{Expiry, KeyTtl, Ttl};
use crate::{AnyDriver, Result};

/// The largest value, in bytes: 512 MiB (SPEC 2.1).
pub const MAX_VALUE_LEN: usize = 512 * 1024 * 1024;

/// A handle on one namespace of a store, bound to the business key type `K`.
///
/// Every key is stored as `root:domain:key`. The handle validates all input before the driver
/// sees it: a bad key, value, TTL or pattern is an error and the store is left unchanged
/// (SPEC 8.2). It is cheap to clone (one `Arc`) and `Send + Sync`, so one handle serves a
/// whole program (SPEC 7.3).
///
/// `D` is the driver. With a concrete driver (`Namespace<K, MemoryDriver>`) every call is
/// statically dispatched; the default, [`AnyDriver`], is a store chosen at run time.
///
/// A namespace of `UserId`s does not take a `SessionId`:
///
/// ```compile_fail,E0308
/// # struct UserId(String);
/// # struct SessionId(String);
/// # namestore::newtype_key!(UserId, SessionId);
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> namestore::Result<()> {
/// let store = namestore::MemoryDriver::new();
/// let users = store.namespace::<UserId>("app", "users")?;
/// users.get(&SessionId("s1".into())).await?; // error[E0308]: mismatched types
/// # Ok(()) }
/// ```
pub struct Namespace<K, D: Driver = AnyDriver> {
    shared: Arc<Shared<D>>,
    _key: PhantomData<fn(&K) -> K>,
}

struct Shared<D: Driver> {
    driver: D,
    scope: D::Scope,
    name: NamespaceName,
    /// The keys being loaded by [`get_or_load`](Namespace::get_or_load).
    flights: Flights,
}

impl<K, D: Driver> Clone for Namespace<K, D> {
    fn clone(&self) -> Self {
        Namespace {
            shared: Arc::clone(&self.shared),
            _key: PhantomData,
        }
    }
}

impl<K, D: Driver> fmt::Debug for Namespace<K, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.shared.name)
            .field("key", &std::any::type_name::<K>())
            .finish()
    }
}

/// Batches of up to 16 items stay on the stack.
type Batch<T> = smallvec::SmallVec<[T; 16]>;

/// A namespace call: `$call` is an expression (which may return early with `?`) building
/// the driver's future for the encoded key, bound to `$k`.
///
/// On a driver that answers at once ([`Driver::answers_at_once`]) the call is a closure run
/// on first poll: the key is encoded on its stack and the driver's future polled in place, so
/// the namespace adds no state machine of its own and nothing of the key is kept (a 4 KiB
/// buffer in a future would be copied each time the future moves). On any other driver it is
/// an `async` block: the key borrowed when it already is a string, else encoded into an
/// owned `String` kept while the call waits.
macro_rules! call {
    ($self:ident, $key:ident, |$k:ident| $call:expr) => {
        if $self.shared.driver.answers_at_once() {
            Call::Now {
                now: Lazy(Some(move || {
                    let mut buf = KeyBuf::new();
                    let $k: &str = key::encode($key, &mut buf)?;
                    at_once($call)
                })),
            }
        } else {
            Call::Later {
                later: async move {
                    let owned = key::encode_owned($key)?;
                    let $k: &str = &owned;
                    $call.await
                },
            }
        }
    };
}

/// A batch call: `$body` is an `async` block that prepares the batch and awaits the driver.
///
/// On a driver that answers at once the block is built and polled in place on first poll, so
/// its state (the batch, the key buffer) lives on that poll's stack, not in the namespace's
/// future; on any other driver the block is the future.
macro_rules! batch_call {
    ($self:ident, $body:expr) => {
        if $self.shared.driver.answers_at_once() {
            Call::Now {
                now: Lazy(Some(move || at_once($body))),
            }
        } else {
            Call::Later { later: $body }
        }
    };
}

/// A batch's keys as the store sees them, checked: a batch is validated whole before the
/// driver sees any of it (SPEC 5.4). `put(i, key)` gets each key's text by position. Keys
/// that already are strings are borrowed (one pass, no copy); computed keys are encoded one
/// after another into `arena` (one allocation for the batch) and borrowed from it.
#[inline]
fn encode_batch<'k, K: Key, Q: Borrow<K>>(
    keys: &'k [Q],
    arena: &'k mut String,
    mut put: impl FnMut(usize, &'k str),
) -> Result<()> {
    let mut borrowed = 0;
    for key in keys {
        match key.borrow().encoded() {
            Some(text) => {
                key::validate(text)?;
                put(borrowed, text);
                borrowed += 1;
            }
            None => break,
        }
    }
    if borrowed == keys.len() {
        return Ok(());
    }
    let mut ends: Batch<usize> = Batch::new();
    let mut buf = KeyBuf::new();
    for key in &keys[borrowed..] {
        buf.clear();
        arena.push_str(key::encode(key.borrow(), &mut buf)?);
        ends.push(arena.len());
    }
    let arena: &'k str = arena;
    let mut start = 0;
    for (i, end) in ends.into_iter().enumerate() {
        put(borrowed + i, &arena[start..end]);
        start = end;
    }
    Ok(())
}

/// A batch's keys, encoded and checked, in `refs`.
#[inline]
fn encode_keys<'k, K: Key, Q: Borrow<K>>(
    keys: &'k [Q],
    arena: &'k mut String,
    refs: &mut Batch<&'k str>,
) -> Result<()> {
    refs.reserve(keys.len());
    encode_batch::<K, Q>(keys, arena, |_, key| refs.push(key))
}

/// Checks a value's size (SPEC 2.1).
#[inline]
fn check_value(key: &str, value: &Bytes) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::value_too_large(key, value.len(), MAX_VALUE_LEN));
    }
    Ok(())
}

fn value<V: Into<Bytes>>(key: &str, value: V) -> Result<Bytes> {
    let value = value.into();
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::value_too_large(key, value.len(), MAX_VALUE_LEN));
    }
    Ok(value)
}

impl<K: Key, D: Driver> Namespace<K, D> {
    /// Opens the namespace (`root`, `domain`) on `driver`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidNamespace`](crate::ErrorKind::InvalidNamespace) when `root` or `domain` is not 1 to 64 bytes of ASCII
    /// letters, digits, `-`, `_` and `.` (SPEC 1.2).
    pub fn new(driver: D, root: &str, domain: &str) -> Result<Self> {
        let name = NamespaceName::new(root, domain)?;
        let scope = driver.scope(&name)?;
        Ok(Namespace::from_scope(driver, name, scope))
    }

    /// Opens the namespace (`root`, `domain`) on `driver` with its own eviction mode (SPEC
    /// 10.3): what an in-memory store over its budget may evict from it, whatever the store's
    /// default. On a driver chosen at run time ([`AnyDriver`](crate::AnyDriver), what
    /// [`open`](crate::open()) returns) this is how one store serves a cache and the locks
    /// beside it: the URL sets the default, the call site the exception.
    ///
    /// ```
    /// # fn main() -> namestore::Result<()> {
    /// use namestore::{Eviction, Namespace};
    ///
    /// let store = namestore::open("memory://?max_bytes=64MiB&eviction=any")?;
    /// let pages = store.namespace::<String>("app", "pages")?; // the URL's default: a cache
    /// let locks = Namespace::<String, _>::with_eviction(store, "app", "locks", Eviction::Never)?;
    /// assert_eq!(pages.eviction(), Eviction::Any);
    /// assert_eq!(locks.eviction(), Eviction::Never);
    /// # Ok(()) }
    /// ```
    ///
    /// A store that evicts nothing on its own (redb, an in-memory store without a budget)
    /// keeps every key whatever the mode, and its namespaces answer
    /// [`eviction`](Self::eviction) with `Never`; on Redis the server's `maxmemory-policy`
    /// rules (keep `noeviction` where locks live) and the mode is not sent anywhere.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new); [`ErrorKind::InvalidNamespace`](crate::ErrorKind::InvalidNamespace)
    /// when the namespace is already open (or holds keys) with another mode.
    pub fn with_eviction(
        driver: D,
        root: &str,
        domain: &str,
        mode: crate::Eviction,
    ) -> Result<Self> {
        let name = NamespaceName::new(root, domain)?;
        let scope = driver.scope_with_eviction(&name, mode)?;
        Ok(Namespace::from_scope(driver, name, scope))
    }

    /// A handle on a namespace whose scope the driver already resolved (a driver's own way of
    /// opening a namespace, with settings of its own).
    pub(crate) fn from_scope(driver: D, name: NamespaceName, scope: D::Scope) -> Self {
        Namespace {
            shared: Arc::new(Shared {
                driver,
                scope,
                name,
                flights: Flights::default(),
            }),
            _key: PhantomData,
        }
    }

    /// The same namespace, addressed with another key type (the helpers built on a namespace
    /// store composite keys in it).
    pub(crate) fn rekey<K2: Key>(&self) -> Namespace<K2, D> {
        Namespace {
            shared: Arc::clone(&self.shared),
            _key: PhantomData,
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &NamespaceName {
        &self.shared.name
    }

    /// The keys [`get_or_load`](Self::get_or_load) is loading, shared by the handle's clones.
    pub(crate) fn flights(&self) -> &Flights {
        &self.shared.flights
    }

    /// The driver this namespace lives on.
    pub fn driver(&self) -> &D {
        &self.shared.driver
    }

    /// Which of the namespace's keys the store may evict on its own to keep a memory budget
    /// (SPEC 10.3): [`Eviction::Never`](crate::Eviction::Never) unless the
    /// namespace is in an in-memory store with a budget and evicts (its own mode, or the
    /// store's default).
    ///
    /// ```
    /// # fn main() -> namestore::Result<()> {
    /// use namestore::drivers::memory::{Eviction, MemoryDriver};
    ///
    /// let store = MemoryDriver::builder().max_bytes(64 << 20).eviction(Eviction::Any).build()?;
    /// assert_eq!(store.namespace::<String>("app", "pages")?.eviction(), Eviction::Any);
    /// let locks = store.namespace_with_eviction::<String>("app", "locks", Eviction::Never)?;
    /// assert_eq!(locks.eviction(), Eviction::Never);
    /// # Ok(()) }
    /// ```
    pub fn eviction(&self) -> crate::Eviction {
        self.shared.driver.eviction(&self.shared.scope)
    }

    /// The full stored key of `key`, `root:domain:key` (SPEC 1.1).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey) when `key` breaks SPEC 1.4.
    pub fn full_key(&self, key: &K) -> Result<String> {
        let mut buf = KeyBuf::new();
        Ok(self.shared.name.full_key(key::encode(key, &mut buf)?))
    }

    /// Stores `value` under `key`, replacing any value and TTL.
    ///
    /// # Behavior
    ///
    /// - `ttl: None` stores a key that never expires and clears an old TTL (SPEC 3.3).
    /// - `value` is taken without copying when it is already a `Bytes`, a `Vec<u8>`, a
    ///   `String` or a `&'static [u8]`; later changes to the caller's buffers cannot reach the
    ///   stored value (SPEC 2.2).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey), [`ErrorKind::ValueTooLarge`](crate::ErrorKind::ValueTooLarge), [`ErrorKind::InvalidTtl`](crate::ErrorKind::InvalidTtl) (zero or over
    /// [`Ttl::MAX`]); nothing is written.
    pub fn set(
        &self,
        key: &K,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> {
        call!(self, key, |key| {
            let value = self::value(key, value)?;
            let ttl = Ttl::from_option(ttl)?;
            self.shared
                .driver
                .set(&self.shared.scope, key, value, ttl.into())
        })
    }

    /// Stores `value` under `key` and keeps the key's current TTL (Redis `KEEPTTL`).
    ///
    /// # Behavior
    ///
    /// - A present key keeps its TTL, or its lack of one (SPEC 3.3).
    /// - A missing or expired key is created without a TTL.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey), [`ErrorKind::ValueTooLarge`](crate::ErrorKind::ValueTooLarge); nothing is written.
    pub fn set_keep_ttl(
        &self,
        key: &K,
        value: impl Into<Bytes>,
    ) -> impl Future<Output = Result<()>> {
        call!(self, key, |key| {
            let value = self::value(key, value)?;
            self.shared
                .driver
                .set(&self.shared.scope, key, value, Expiry::Keep)
        })
    }

    /// Stores `value` only if `key` is missing; returns whether it did (SPEC 4.1).
    ///
    /// # Behavior
    ///
    /// - An expired key counts as missing (SPEC 3.2).
    /// - Of many concurrent calls on a missing key, exactly one returns `true` (SPEC 7.1).
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn set_nx(
        &self,
        key: &K,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool>> {
        call!(self, key, |key| {
            let value = self::value(key, value)?;
            let ttl = Ttl::from_option(ttl)?;
            self.shared
                .driver
                .set_nx(&self.shared.scope, key, value, ttl)
        })
    }

    /// Stores `value` only if `key` is present; returns whether it did. Redis `SET … XX`,
    /// memcached's `replace`: the update that never brings back a key someone else deleted,
    /// or that expired, since the caller read it (a session saved after a logout removed it).
    ///
    /// # Behavior
    ///
    /// - An expired key counts as missing (SPEC 3.2): nothing is stored.
    /// - A replaced key gets `ttl`; `None` clears an old TTL, as [`set`](Self::set) does.
    /// - A counter is replaced like any other value.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> namestore::Result<()> {
    /// let ns = namestore::MemoryDriver::new().namespace::<String>("app", "sessions")?;
    /// let id = "s-1".to_owned();
    /// assert!(!ns.replace(&id, "late", None).await?); // missing: not created
    /// ns.set(&id, "v1", None).await?;
    /// assert!(ns.replace(&id, "v2", None).await?);
    /// ns.delete(&id).await?; // a logout
    /// assert!(!ns.replace(&id, "v3", None).await?); // a save racing it brings nothing back
    /// assert_eq!(ns.get(&id).await?, None);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    #[doc(alias = "set_xx")]
    pub fn replace(
        &self,
        key: &K,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool>> {
        call!(self, key, |key| {
            let value = self::value(key, value)?;
            let ttl = Ttl::from_option(ttl)?;
            self.shared
                .driver
                .replace(&self.shared.scope, key, value, ttl)
        })
    }

    /// Returns the value of `key`, or `None` when it is missing or expired (SPEC 4.2).
    ///
    /// # Behavior
    ///
    /// - The empty value is `Some(b"")`, not `None` (SPEC 2.1).
    /// - A counter reads back as decimal ASCII, e.g. `b"42"` (SPEC 4.4).
    /// - On the memory driver the returned `Bytes` shares the stored buffer: no copy.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey).
    pub fn get(&self, key: &K) -> impl Future<Output = Result<Option<Bytes>>> {
        call!(self, key, |key| {
            self.shared.driver.get(&self.shared.scope, key)
        })
    }

    /// Whether `key` is present and not expired (SPEC 4.3).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey).
    #[inline]
    pub fn exists(&self, key: &K) -> impl Future<Output = Result<bool>> {
        call!(self, key, |key| {
            self.shared.driver.exists(&self.shared.scope, key)
        })
    }

    /// Deletes `key`; returns whether a present key was removed (SPEC 4.3).
    ///
    /// # Behavior
    ///
    /// - An expired key reports `false` (SPEC 3.2).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey).
    pub fn delete(&self, key: &K) -> impl Future<Output = Result<bool>> {
        call!(self, key, |key| {
            self.shared.driver.delete(&self.shared.scope, key)
        })
    }

    /// The TTL state of `key`: missing, no expiry, or the time left (SPEC 3.5).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey).
    pub fn ttl(&self, key: &K) -> impl Future<Output = Result<KeyTtl>> {
        call!(self, key, |key| {
            self.shared.driver.ttl(&self.shared.scope, key)
        })
    }

    /// Gives a present key a new TTL; returns whether the key was present (SPEC 3.6).
    ///
    /// # Behavior
    ///
    /// - A zero `ttl` deletes the key at once, as Redis `EXPIRE key 0` does.
    /// - An expired key stays gone: `expire` never resurrects it (SPEC 3.2).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey), [`ErrorKind::InvalidTtl`](crate::ErrorKind::InvalidTtl) over [`Ttl::MAX`].
    pub fn expire(&self, key: &K, ttl: Duration) -> impl Future<Output = Result<bool>> {
        let (driver, scope) = (&self.shared.driver, &self.shared.scope);
        if driver.answers_at_once() {
            Call::Now {
                now: Lazy(Some(move || {
                    let mut buf = KeyBuf::new();
                    let key = key::encode(key, &mut buf)?;
                    if ttl.is_zero() {
                        return at_once(driver.delete(scope, key));
                    }
                    at_once(driver.expire(scope, key, Ttl::new(ttl)?))
                })),
            }
        } else {
            Call::Later {
                later: async move {
                    let key = key::encode_owned(key)?;
                    if ttl.is_zero() {
                        return driver.delete(scope, &key).await;
                    }
                    driver.expire(scope, &key, Ttl::new(ttl)?).await
                },
            }
        }
    }

    /// Removes the TTL of `key`; returns whether a TTL was removed (SPEC 3.6).
    ///
    /// # Behavior
    ///
    /// - A missing key, or one with no TTL, reports `false`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey).
    pub fn persist(&self, key: &K) -> impl Future<Output = Result<bool>> {
        call!(self, key, |key| {
            self.shared.driver.persist(&self.shared.scope, key)
        })
    }

    /// Adds `delta` to the counter at `key`; returns the new value (SPEC 4.4).
    ///
    /// # Behavior
    ///
    /// - A missing or expired key counts as 0 and is created without a TTL.
    /// - A present key keeps its TTL (SPEC 3.4).
    /// - The counter is stored as decimal ASCII, as Redis does, so `get` reads `b"42"`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotAnInteger`](crate::ErrorKind::NotAnInteger) when the value is not a canonical base-10 i64 (`+1`, `007`,
    /// `-0`, ` 1` are not), [`ErrorKind::Overflow`](crate::ErrorKind::Overflow) when the result leaves the i64 range; the
    /// value is left untouched. [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey).
    pub fn incr(&self, key: &K, delta: i64) -> impl Future<Output = Result<i64>> {
        call!(self, key, |key| {
            self.shared
                .driver
                .incr(&self.shared.scope, key, delta, None)
        })
    }

    /// Like [`incr`](Self::incr), but a key this call creates gets `ttl`; an existing key
    /// keeps its TTL. One atomic call makes a fixed-window rate limiter.
    ///
    /// # Errors
    ///
    /// As [`incr`](Self::incr), and [`ErrorKind::InvalidTtl`](crate::ErrorKind::InvalidTtl).
    pub fn incr_with_ttl(
        &self,
        key: &K,
        delta: i64,
        ttl: Duration,
    ) -> impl Future<Output = Result<i64>> {
        call!(self, key, |key| {
            let ttl = Ttl::new(ttl)?;
            self.shared
                .driver
                .incr(&self.shared.scope, key, delta, Some(ttl))
        })
    }

    /// Subtracts `delta` from the counter at `key`; see [`incr`](Self::incr).
    ///
    /// # Errors
    ///
    /// As [`incr`](Self::incr); `delta == i64::MIN` is [`ErrorKind::Overflow`](crate::ErrorKind::Overflow), as in Redis.
    pub fn decr(&self, key: &K, delta: i64) -> impl Future<Output = Result<i64>> {
        call!(self, key, |key| {
            let delta = delta.checked_neg().ok_or_else(|| Error::overflow(key))?;
            self.shared
                .driver
                .incr(&self.shared.scope, key, delta, None)
        })
    }

    /// Stores `value` with `ttl` and returns the previous value, or `None` (SPEC 4.5).
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn get_set(
        &self,
        key: &K,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<Option<Bytes>>> {
        call!(self, key, |key| {
            let value = self::value(key, value)?;
            let ttl = Ttl::from_option(ttl)?;
            self.shared
                .driver
                .get_set(&self.shared.scope, key, value, ttl)
        })
    }

    /// Compare-and-swap: replaces the value with `new` and the TTL with `ttl` only if `key` is
    /// present and its value equals `expected` byte for byte; returns whether it did
    /// (SPEC 4.6).
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub fn cas(
        &self,
        key: &K,
        expected: impl AsRef<[u8]>,
        new: impl Into<Bytes>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool>> {
        call!(self, key, |key| {
            let new = self::value(key, new)?;
            let ttl = Ttl::from_option(ttl)?;
            self.shared
                .driver
                .cas(&self.shared.scope, key, expected.as_ref(), new, ttl)
        })
    }

    /// Compare-and-delete: deletes `key` only if its value equals `expected`; returns whether
    /// it did (SPEC 4.6). With [`set_nx`](Self::set_nx) and a TTL, the safe release of a lock
    /// held by one owner.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey).
    pub fn cad(&self, key: &K, expected: impl AsRef<[u8]>) -> impl Future<Output = Result<bool>> {
        call!(self, key, |key| {
            self.shared
                .driver
                .cad(&self.shared.scope, key, expected.as_ref())
        })
    }

    /// Reads many keys at once: one answer per key, in order, duplicates included (SPEC 5.1).
    ///
    /// # Behavior
    ///
    /// - The read is atomic with respect to [`mset`](Self::mset) (SPEC 7.2).
    /// - No keys, no answers.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey) for any key; nothing is read.
    pub fn mget<Q: Borrow<K>>(
        &self,
        keys: impl IntoIterator<Item = Q>,
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>>> {
        let (driver, scope) = (&self.shared.driver, &self.shared.scope);
        batch_call!(self, async move {
            let keys: Batch<Q> = keys.into_iter().collect();
            let mut arena = String::new();
            let mut refs = Batch::new();
            encode_keys::<K, Q>(&keys, &mut arena, &mut refs)?;
            if refs.is_empty() {
                return Ok(Vec::new());
            }
            driver.mget(scope, &refs).await
        })
    }

    /// Writes many pairs with one TTL, atomically: no reader sees some and not others
    /// (SPEC 5.2). For a key given twice, the last pair wins.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey), [`ErrorKind::ValueTooLarge`](crate::ErrorKind::ValueTooLarge), [`ErrorKind::InvalidTtl`](crate::ErrorKind::InvalidTtl); every pair is
    /// checked first and nothing is written on error (SPEC 5.4). An empty batch is a no-op.
    pub fn mset<Q: Borrow<K>, V: Into<Bytes>>(
        &self,
        pairs: impl IntoIterator<Item = (Q, V)>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> {
        let (driver, scope) = (&self.shared.driver, &self.shared.scope);
        batch_call!(self, async move {
            let ttl = Ttl::from_option(ttl)?;
            let mut arena = String::new();
            let (mut keys, mut batch) = (Batch::<Q>::new(), Batch::new());
            for (key, value) in pairs {
                keys.push(key);
                batch.push(("", value.into()));
            }
            if batch.is_empty() {
                return Ok(());
            }
            encode_batch::<K, Q>(&keys, &mut arena, |i, key| batch[i].0 = key)?;
            for (key, value) in &batch {
                check_value(key, value)?;
            }
            driver.mset(scope, &mut batch, ttl).await
        })
    }

    /// Deletes many keys; returns how many distinct keys were present (SPEC 5.3).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey) for any key; nothing is deleted (SPEC 5.4).
    pub fn mdel<Q: Borrow<K>>(
        &self,
        keys: impl IntoIterator<Item = Q>,
    ) -> impl Future<Output = Result<u64>> {
        let (driver, scope) = (&self.shared.driver, &self.shared.scope);
        batch_call!(self, async move {
            let keys: Batch<Q> = keys.into_iter().collect();
            let mut arena = String::new();
            let mut refs = Batch::new();
            encode_keys::<K, Q>(&keys, &mut arena, &mut refs)?;
            if refs.is_empty() {
                return Ok(0);
            }
            driver.mdel(scope, &refs).await
        })
    }

    /// The live keys of this namespace that match `pattern`, in no particular order
    /// (SPEC 6.1). See [`Pattern`] for the syntax; `"*"` lists every key.
    ///
    /// For large namespaces prefer [`scan`](Self::scan), which holds one page at a time.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidPattern`](crate::ErrorKind::InvalidPattern) for a malformed pattern; [`ErrorKind::InvalidKey`](crate::ErrorKind::InvalidKey) when a stored
    /// key cannot be decoded as `K`.
    pub async fn keys(&self, pattern: &str) -> Result<Vec<K>> {
        let mut stream = self.scan(pattern)?;
        let mut keys = Vec::new();
        while let Some(key) = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
            keys.push(key?);
        }
        Ok(keys)
    }

    /// Streams the live keys that match `pattern`, fetching a page at a time (SPEC 6.3).
    ///
    /// # Behavior
    ///
    /// - Not a snapshot: keys written while the stream runs may or may not appear, but a key
    ///   deleted or expired before the call never does (SPEC 7.2).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidPattern`](crate::ErrorKind::InvalidPattern) at once; decoding and backend errors as stream items.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> namestore::Result<()> {
    /// use futures_util::TryStreamExt;
    ///
    /// let ns = namestore::MemoryDriver::new().namespace::<String>("app", "users")?;
    /// ns.set(&"u1".to_owned(), "a", None).await?;
    /// let keys: Vec<String> = ns.scan("u*")?.try_collect().await?;
    /// assert_eq!(keys, ["u1"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn scan(&self, pattern: &str) -> Result<KeyStream<K>> {
        let pattern = Pattern::new(pattern)?;
        let pages = self.shared.driver.scan(&self.shared.scope, &pattern);
        Ok(KeyStream {
            pages: Box::pin(pages),
            page: Vec::new().into_iter(),
            _key: PhantomData,
        })
    }

    /// Deletes every key of this namespace; returns how many live keys it deleted (SPEC 6.4).
    /// Other namespaces are untouched (SPEC 1.5).
    pub async fn clear(&self) -> Result<u64> {
        self.shared.driver.clear(&self.shared.scope).await
    }
}

/// The stream [`Namespace::scan`] returns: typed keys, one page buffered at a time.
pub struct KeyStream<K> {
    pages: Pin<Box<dyn Stream<Item = Result<Vec<String>>> + Send>>,
    page: std::vec::IntoIter<String>,
    _key: PhantomData<fn() -> K>,
}

impl<K: Key> Stream for KeyStream<K> {
    type Item = Result<K>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(raw) = self.page.next() {
                return Poll::Ready(Some(K::decode_owned(raw).map_err(|raw| {
                    Error::invalid_key(
                        &raw,
                        "stored key does not decode as the namespace's key type",
                    )
                })));
            }
            match self.pages.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(page))) => self.page = page.into_iter(),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<K> fmt::Debug for KeyStream<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStream")
            .field("buffered", &self.page.len())
            .finish()
    }
}
