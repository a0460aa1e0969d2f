//! The driver trait: what a storage backend must do, nothing more.
//!
//! The [`Namespace`](crate::Namespace) layer above it validates every input (namespace names,
//! keys, values, TTLs, patterns) before a driver sees it, encodes typed keys, and builds the
//! conveniences (`decr`, `keys`, `expire` with a zero duration). A driver receives only valid
//! input and implements SPEC's semantics on it, atomically.

use std::future::Future;

use bytes::Bytes;
use futures_core::Stream;

use crate::Result;
use crate::eviction::Eviction;
use crate::glob::Pattern;
use crate::name::{NamespaceInfo, NamespaceName};
use crate::ttl::{Expiry, KeyTtl, Ttl};

/// A storage backend for namespaced keys.
///
/// Implement it to add a backend; every method has the meaning given by `SPEC.md`, and the
/// conformance suite (cargo feature `conformance`) checks an implementation rule by rule.
///
/// # What the caller guarantees
///
/// - `key` is 1 to 4096 bytes of UTF-8 (SPEC 1.4); `pattern` is validated; values are at most
///   [`MAX_VALUE_LEN`](crate::MAX_VALUE_LEN) bytes; batches hold at least one key.
/// - A [`Ttl`] is non-zero, whole milliseconds, at most [`Ttl::MAX`].
/// - `scope` came from [`Driver::scope`] (or [`Driver::scope_with_eviction`]) on this driver.
///
/// # What the driver guarantees
///
/// - Every single-key method is atomic and linearizable (SPEC 7.1); `mset` and `mget` are
///   atomic with respect to each other and to single-key methods (SPEC 7.2).
/// - An expired key is missing for every method, from the instant it expires (SPEC 3.2).
/// - A method on one scope never reads or changes a key of another scope (SPEC 1.5).
/// - A network driver answers or fails with [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) within
///   its configured bound (SPEC 8.3), and never retries a non-idempotent write on its own.
///
/// Futures must be `Send`; a driver that answers synchronously returns
/// [`std::future::ready`].
pub trait Driver: Clone + Send + Sync + 'static {
    /// The driver's resolved form of a namespace: a key prefix for a network driver, a table
    /// handle for an in-process one. Built once per [`Namespace`](crate::Namespace) handle.
    type Scope: Clone + Send + Sync + 'static;

    /// Whether every future this driver returns is ready when first polled: an in-process
    /// driver that never waits (the memory driver). `false` by default.
    ///
    /// A [`Namespace`](crate::Namespace) on such a driver runs each call as one computation
    /// on first poll: a computed key is encoded on the stack and the driver's future polled in
    /// place, with no state machine of the namespace's own around it. On any other driver the
    /// namespace awaits the driver's future, and a computed key is copied into an owned string
    /// for as long as the call waits. A driver that answers `true` and returns a pending
    /// future fails that call with [`ErrorKind::Backend`](crate::ErrorKind::Backend).
    #[inline]
    fn answers_at_once(&self) -> bool {
        false
    }

    /// The store's kind as telemetry names it (OpenTelemetry's `db.system.name`): `"memory"`,
    /// `"redis"`, `"redb"`; `"other"` by default.
    fn system_name(&self) -> &'static str {
        "other"
    }

    /// Resolves a validated namespace name into this driver's scope.
    fn scope(&self, namespace: &NamespaceName) -> Result<Self::Scope>;

    /// Resolves a validated namespace name into this driver's scope, the namespace asking for
    /// its own eviction mode (SPEC 10.3) instead of the store's default.
    ///
    /// By default the mode is not the driver's to apply and this is [`scope`](Self::scope): a
    /// store that evicts nothing on its own (redb) keeps every namespace as `never` asks,
    /// whatever the mode, and a Redis server's own `maxmemory-policy` rules its keys. The
    /// in-memory store applies the mode when it has a budget, and refuses one that differs
    /// from the mode the namespace already has. A driver that wraps another must hand the
    /// mode on.
    ///
    /// # Errors
    ///
    /// As [`scope`](Self::scope);
    /// [`ErrorKind::InvalidNamespace`](crate::ErrorKind::InvalidNamespace) when the namespace
    /// already has another mode.
    fn scope_with_eviction(
        &self,
        namespace: &NamespaceName,
        mode: Eviction,
    ) -> Result<Self::Scope> {
        let _ = mode;
        self.scope(namespace)
    }

    /// Which keys of the namespace the store may evict on its own to keep a memory budget
    /// (SPEC 10.3). [`Eviction::Never`] by default: what a store that keeps every key until
    /// it is deleted or expires answers. The in-memory store with a budget answers the
    /// namespace's mode. (A Redis server's `maxmemory-policy` is the server's own setting,
    /// not seen here: the Redis driver answers `Never`.) A driver that wraps another answers
    /// as the wrapped one: [`Lock::new`](crate::lock::Lock::new) relies on it to refuse a
    /// namespace whose keys may be evicted.
    fn eviction(&self, scope: &Self::Scope) -> Eviction {
        let _ = scope;
        Eviction::Never
    }

    /// Stores `value` under `key` with the given expiry (SPEC 3.3, 4.1).
    fn set(
        &self,
        scope: &Self::Scope,
        key: &str,
        value: Bytes,
        expiry: Expiry,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Stores `value` only if `key` is missing or expired; returns whether it did (SPEC 4.1).
    fn set_nx(
        &self,
        scope: &Self::Scope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Stores `value` only if `key` is present (neither missing nor expired), with the TTL
    /// given (`None` clears an old one); returns whether it did. Redis `SET … XX`, memcached's
    /// `replace`: an update that never brings back a key deleted or expired in the meantime.
    fn replace(
        &self,
        scope: &Self::Scope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Returns the value, or `None` when the key is missing or expired (SPEC 4.2). A counter
    /// reads back as its decimal ASCII form (SPEC 4.4).
    fn get(
        &self,
        scope: &Self::Scope,
        key: &str,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// Whether the key is present (SPEC 4.3).
    fn exists(&self, scope: &Self::Scope, key: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Deletes the key; returns whether a present key was removed (SPEC 4.3).
    fn delete(&self, scope: &Self::Scope, key: &str) -> impl Future<Output = Result<bool>> + Send;

    /// The key's TTL state (SPEC 3.5).
    fn ttl(&self, scope: &Self::Scope, key: &str) -> impl Future<Output = Result<KeyTtl>> + Send;

    /// Sets a new TTL on a present key; returns whether the key was present (SPEC 3.6). An
    /// expired key stays gone.
    fn expire(
        &self,
        scope: &Self::Scope,
        key: &str,
        ttl: Ttl,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Removes the TTL of a present key; returns whether a TTL was removed (SPEC 3.6).
    fn persist(&self, scope: &Self::Scope, key: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Adds `delta` to the counter at `key` and returns the new value (SPEC 4.4).
    ///
    /// A missing key counts as 0 and, when created here, gets `ttl_on_create`; a present key
    /// keeps its TTL. A value that is not a canonical integer is
    /// [`ErrorKind::NotAnInteger`](crate::ErrorKind::NotAnInteger), a result out of range is
    /// [`ErrorKind::Overflow`](crate::ErrorKind::Overflow); both leave the value untouched.
    fn incr(
        &self,
        scope: &Self::Scope,
        key: &str,
        delta: i64,
        ttl_on_create: Option<Ttl>,
    ) -> impl Future<Output = Result<i64>> + Send;

    /// Stores `value` with `ttl` and returns the previous value, if any (SPEC 4.5).
    fn get_set(
        &self,
        scope: &Self::Scope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// Replaces the value with `new` (and its TTL with `ttl`) only if the key is present and
    /// its value equals `expected`; returns whether it did (SPEC 4.6).
    fn cas(
        &self,
        scope: &Self::Scope,
        key: &str,
        expected: &[u8],
        new: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Deletes the key only if its value equals `expected`; returns whether it did (SPEC 4.6).
    fn cad(
        &self,
        scope: &Self::Scope,
        key: &str,
        expected: &[u8],
    ) -> impl Future<Output = Result<bool>> + Send;

    /// One answer per key, in order, duplicates included, read atomically (SPEC 5.1, 7.2).
    fn mget(
        &self,
        scope: &Self::Scope,
        keys: &[&str],
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>>> + Send;

    /// Writes every pair with the same TTL, atomically; for a key given twice, the last pair
    /// wins (SPEC 5.2).
    ///
    /// The values are the driver's to take (`std::mem::take` leaves an empty `Bytes`): the
    /// caller drops them afterwards, so an in-process driver stores them without cloning.
    fn mset(
        &self,
        scope: &Self::Scope,
        pairs: &mut [(&str, Bytes)],
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Deletes the keys; returns how many distinct keys were present (SPEC 5.3).
    fn mdel(&self, scope: &Self::Scope, keys: &[&str]) -> impl Future<Output = Result<u64>> + Send;

    /// The live keys matching `pattern`, page by page (SPEC 6.1, 6.3). Holds one page in
    /// memory; not a snapshot, but never yields a key deleted or expired before the stream
    /// was created (SPEC 7.2).
    fn scan(
        &self,
        scope: &Self::Scope,
        pattern: &Pattern,
    ) -> impl Stream<Item = Result<Vec<String>>> + Send + 'static;

    /// Deletes every key of the scope; returns how many live keys it deleted (SPEC 6.4).
    fn clear(&self, scope: &Self::Scope) -> impl Future<Output = Result<u64>> + Send;

    /// Every namespace holding at least one live key, with its count of live keys, one item
    /// per namespace, in no particular order. Not a snapshot: each namespace is counted when
    /// it is reached. Keys the store holds that namestore did not write (no valid
    /// `root:domain:` prefix, or an empty business key) are not counted.
    ///
    /// This is the store-wide listing behind the `namestore namespaces` command; SPEC has no
    /// rule for it, and the conformance suite's `namespace_listing` checks it.
    fn namespaces(&self) -> impl Stream<Item = Result<NamespaceInfo>> + Send + 'static;
}
