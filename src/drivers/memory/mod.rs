//! The in-memory driver: the default store, sharded, no server needed.
//!
//! Every namespace is its own sharded hash table, so a namespace handle hashes only the
//! business key and `keys`, `scan` and `clear` touch only that namespace's entries. Reads take
//! a shared lock on one shard; writes an exclusive lock on one shard; batches lock the shards
//! they touch in ascending order. Expired entries are invisible at once (checked on access,
//! reading the clock only for keys that have a TTL) and reclaimed by a background thread that
//! needs no async runtime, holds a shard lock for at most a few hundred buckets at a time, and
//! stops when the last handle on the driver is dropped.
//!
//! A namespace's table lives while a handle holds it or it holds keys: an empty namespace
//! whose handles are all dropped is freed, so millions of short-lived per-tenant or per-user
//! namespaces cost nothing once done. The reclaimer visits only the tables that hold keys with
//! a TTL, and in them only the shards that do.

mod answer;
mod budget;
mod builder;
mod clock;
mod config;
mod count;
mod entry;
mod eviction;
mod ghosts;
mod order;
mod pages;
mod registry;
mod schedule;
mod scope;
mod sketch;
mod slots;
mod spared;
mod stats;
mod table;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;

pub use builder::MemoryBuilder;
pub use clock::ManualClock;
pub use config::{MAX_SHARDS, MemoryConfig, SCHEME};
pub use eviction::{Eviction, Policy};
pub use scope::MemoryScope;
pub use stats::{MemoryUsage, NamespaceStats};

use self::answer::answer;
use self::clock::Clock;
use self::pages::{NamespacePages, ScanPages};
use self::registry::Registry;
use self::table::Table;
use crate::driver::Driver;
use crate::glob::Pattern;
use crate::name::{NamespaceInfo, NamespaceName, split_full_key};

use crate::ttl::{Expiry, KeyTtl, Ttl};
use crate::{Key, Namespace, Result};

/// The in-memory driver. Cheap to clone (one `Arc`); clones share the data.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> namestore::Result<()> {
/// use namestore::MemoryDriver;
///
/// let store = MemoryDriver::new();
/// let counters = store.namespace::<String>("app", "counters")?;
/// assert_eq!(counters.incr(&"visits".to_owned(), 1).await?, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryDriver {
    inner: Arc<Inner>,
}

struct Inner {
    config: MemoryConfig,
    /// Shards per namespace, as [`MemoryConfig::shards_per_namespace`] chose them when the
    /// store was built.
    shards: usize,
    clock: Clock,
    registry: Arc<Registry>,
}

impl crate::drivers::reaper::Reclaim for Inner {
    /// Reclaims expired entries, visiting only the tables whose keys with a TTL are due; in a
    /// nearly full store with a budget, now and then gives back what empty shards keep.
    fn round(self: Arc<Self>) {
        let round = self.registry.round();
        self.registry.reclaim(&round, self.clock.now(), false);
        drop(round);
        self.registry.release_in_background();
    }
}

impl MemoryDriver {
    /// A driver with default settings and its background reclaimer running.
    ///
    /// If the operating system refuses to start the reclaimer thread, the driver still works,
    /// with expiry on access only; use [`MemoryDriver::builder`] to see that error.
    pub fn new() -> Self {
        MemoryDriver::builder()
            .build()
            .unwrap_or_else(|_| MemoryDriver::without_reclaimer())
    }

    fn without_reclaimer() -> Self {
        let config = MemoryConfig {
            reap_interval: None,
            ..MemoryConfig::default()
        };
        MemoryDriver {
            inner: Arc::new(Inner {
                shards: config.shards_per_namespace(),
                config,
                clock: Clock::System(Instant::now()),
                registry: Arc::new(Registry::new(None, Eviction::Never, Policy::default())),
            }),
        }
    }

    /// A builder for non-default settings.
    pub fn builder() -> MemoryBuilder {
        MemoryBuilder::default()
    }

    /// A driver with the settings of a `memory://` URL; see [`MemoryConfig::from_url`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) for a malformed URL, [`ErrorKind::Backend`](crate::ErrorKind::Backend) as [`MemoryBuilder::build`].
    pub fn from_url(url: &str) -> Result<Self> {
        MemoryDriver::builder()
            .config(MemoryConfig::from_url(url)?)
            .build()
    }

    /// The driver's settings, as given: [`MemoryConfig::shards`] is `None` unless it was set;
    /// [`shards`](Self::shards) says how many the store chose.
    pub fn config(&self) -> &MemoryConfig {
        &self.inner.config
    }

    /// How many shards each namespace of the store is split over: [`MemoryConfig::shards`]
    /// when given, else what [`MemoryConfig::shards_per_namespace`] chose when the store was
    /// built (from the CPU count and the budget).
    ///
    /// ```
    /// use namestore::drivers::memory::MemoryDriver;
    ///
    /// let cache = MemoryDriver::from_url("memory://?max_entries=100&eviction=any")?;
    /// assert_eq!(cache.config().shards, None);
    /// assert_eq!(cache.shards(), 2); // one shard per 32 entries of the budget, a power of two
    /// assert_eq!(MemoryDriver::from_url("memory://?shards=8")?.shards(), 8);
    /// # Ok::<(), namestore::Error>(())
    /// ```
    pub fn shards(&self) -> usize {
        self.inner.shards
    }

    /// Opens the namespace (`root`, `domain`) bound to key type `K`; see [`Namespace::new`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidNamespace`](crate::ErrorKind::InvalidNamespace) when a name breaks SPEC 1.2.
    pub fn namespace<K: Key>(
        &self,
        root: &str,
        domain: &str,
    ) -> Result<Namespace<K, MemoryDriver>> {
        Namespace::new(self.clone(), root, domain)
    }

    /// Opens the namespace (`root`, `domain`) with its own eviction mode (SPEC 10.3): what a
    /// store over its budget may evict from it, whatever the store's default. The call site
    /// shows the mode:
    ///
    /// ```
    /// # fn main() -> namestore::Result<()> {
    /// use namestore::drivers::memory::{Eviction, MemoryDriver};
    ///
    /// let store = MemoryDriver::builder().max_bytes(64 << 20).eviction(Eviction::Any).build()?;
    /// let pages = store.namespace::<String>("app", "pages")?; // the default: a cache
    /// let locks = store.namespace_with_eviction::<String>("app", "locks", Eviction::Never)?;
    /// # let _ = (pages, locks);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidNamespace`](crate::ErrorKind::InvalidNamespace) when a name breaks
    /// SPEC 1.2, or when the namespace is open (or holds keys) with another mode. A store
    /// without a budget evicts nothing and takes any mode, as many times as asked.
    pub fn namespace_with_eviction<K: Key>(
        &self,
        root: &str,
        domain: &str,
        mode: Eviction,
    ) -> Result<Namespace<K, MemoryDriver>> {
        Namespace::with_eviction(self.clone(), root, domain, mode)
    }

    fn scope_with(&self, name: &NamespaceName, mode: Option<Eviction>) -> Result<MemoryScope> {
        let table = self
            .inner
            .registry
            .open(name, self.inner.shards, &self.inner.clock, mode)?;
        Ok(MemoryScope(table))
    }

    /// What the store's entries cost against its budget (SPEC 10.2), or `None` for a store
    /// without one.
    pub fn usage(&self) -> Option<MemoryUsage> {
        let budget = self.inner.registry.budget()?;
        let used = budget.used();
        Some(MemoryUsage {
            bytes: used.bytes,
            entries: used.entries,
            // As given: the budget holds an absent limit as `u64::MAX`, which is also a limit
            // a program may give.
            max_bytes: self.inner.config.max_bytes,
            max_entries: self.inner.config.max_entries,
        })
    }

    /// Every namespace that has a table, with its live keys, the bytes it is charged in a store
    /// with a budget, its eviction mode and the keys it evicted and removed after expiry since
    /// it was made (SPEC 10.7), in name order. Each namespace's entries are walked (a shard at
    /// a time, under its read lock).
    ///
    /// A namespace that no handle holds is freed when its last key goes (deleted, expired or
    /// evicted), and its counts with it: a store of many short-lived namespaces (one a user)
    /// lists those that hold keys or are open. The `metrics` export (feature `metrics`,
    /// SPEC 12; for namespaces opened through [`Instrumented`](crate::Instrumented)) counts
    /// every eviction and expiration as it happens, and keeps counting for a namespace that is
    /// freed and made again through the layer.
    pub fn namespace_stats(&self) -> Vec<NamespaceStats> {
        let mut stats: Vec<NamespaceStats> = self
            .inner
            .registry
            .named()
            .into_iter()
            .filter_map(|(prefix, table)| {
                let (name, _) = split_full_key(&prefix)?;
                let removed = table.removed();
                let (keys, bytes) = table.held();
                Some(NamespaceStats {
                    name,
                    keys,
                    bytes,
                    eviction: table.meta.mode,
                    evicted: removed.evicted,
                    expired: removed.expired,
                })
            })
            .collect();
        stats.sort_by(|a, b| {
            (a.name.root(), a.name.domain()).cmp(&(b.name.root(), b.name.domain()))
        });
        stats
    }

    /// Entries held in memory across all namespaces, counting expired entries that are not yet
    /// reclaimed.
    pub fn stored_entries(&self) -> usize {
        self.inner
            .registry
            .snapshot()
            .iter()
            .map(|t| t.stored())
            .sum()
    }

    /// Namespaces that have a table in memory: those with a live handle or with stored keys.
    /// A namespace whose handles are all dropped and which holds no key costs nothing: its
    /// table is freed.
    pub fn namespace_tables(&self) -> usize {
        self.inner.registry.len()
    }

    /// Reclaims every expired entry now, in every namespace, and frees the namespaces left with
    /// no key and no handle; returns how many entries were freed. The background thread does
    /// this incrementally; call it to free memory at a known moment, and now and then in a
    /// store built without the background thread ([`MemoryBuilder::reap_interval`]).
    pub fn purge_expired(&self) -> usize {
        let registry = &self.inner.registry;
        // The reclaimer's rounds wait: beside one, the look below lost namespaces from its
        // schedule, and their later deadlines were never reclaimed (`Registry::round`).
        let round = registry.round();
        let tables = registry.snapshot();
        let now = self.inner.clock.now();
        let mut freed = tables
            .iter()
            .map(|t| t.reclaim_with(&round, |t| t.reap(true)).0)
            .sum();
        for table in &tables {
            if table.meta.handles.load(Ordering::SeqCst) == 0 {
                registry.release(table);
            }
        }
        // And a full round of the reclaimer's, which sets every scheduled table's next time
        // (or lets go of it) after the look above. (Without a background reclaimer nothing
        // else did, and its list kept every namespace that ever held a key with a TTL in
        // memory, freed ones included.)
        freed += registry.reclaim(&round, now, true);
        freed
    }
}

impl Default for MemoryDriver {
    fn default() -> Self {
        MemoryDriver::new()
    }
}

impl fmt::Debug for MemoryDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryDriver")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Driver for MemoryDriver {
    type Scope = MemoryScope;

    fn system_name(&self) -> &'static str {
        "memory"
    }

    #[inline]
    fn answers_at_once(&self) -> bool {
        true
    }

    /// The namespace's mode in a store with a budget; [`Eviction::Never`] without one (nothing
    /// is evicted, whatever the mode).
    fn eviction(&self, scope: &MemoryScope) -> Eviction {
        scope.0.eviction()
    }

    fn scope(&self, namespace: &NamespaceName) -> Result<MemoryScope> {
        self.scope_with(namespace, None)
    }

    fn scope_with_eviction(
        &self,
        namespace: &NamespaceName,
        mode: Eviction,
    ) -> Result<MemoryScope> {
        self.scope_with(namespace, Some(mode))
    }

    #[inline]
    fn set(
        &self,
        s: &MemoryScope,
        key: &str,
        value: Bytes,
        expiry: Expiry,
    ) -> impl Future<Output = Result<()>> + Send {
        answer(move || s.0.set(key, value, expiry))
    }

    #[inline]
    fn set_nx(
        &self,
        s: &MemoryScope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<bool>> + Send {
        answer(move || s.0.set_nx(key, value, ttl))
    }

    #[inline]
    fn replace(
        &self,
        s: &MemoryScope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<bool>> + Send {
        answer(move || s.0.replace(key, value, ttl))
    }

    #[inline]
    fn get(
        &self,
        s: &MemoryScope,
        key: &str,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        // Inlined into the caller, with `Table::get`: with the read left a call of its own,
        // the telemetry layer added about 2 ns to a `get` (SPEC 12.3 allows 2); inlined, it
        // adds nothing measurable, and the plain `get` is as fast (docs/performance.md).
        answer(
            #[inline(always)]
            move || Ok(s.0.get(key)),
        )
    }

    #[inline]
    fn exists(&self, s: &MemoryScope, key: &str) -> impl Future<Output = Result<bool>> + Send {
        answer(move || Ok(s.0.exists(key)))
    }

    #[inline]
    fn delete(&self, s: &MemoryScope, key: &str) -> impl Future<Output = Result<bool>> + Send {
        answer(move || Ok(s.0.delete(key)))
    }

    #[inline]
    fn ttl(&self, s: &MemoryScope, key: &str) -> impl Future<Output = Result<KeyTtl>> + Send {
        answer(move || Ok(s.0.ttl(key)))
    }

    #[inline]
    fn expire(
        &self,
        s: &MemoryScope,
        key: &str,
        ttl: Ttl,
    ) -> impl Future<Output = Result<bool>> + Send {
        answer(move || Ok(s.0.expire(key, ttl)))
    }

    #[inline]
    fn persist(&self, s: &MemoryScope, key: &str) -> impl Future<Output = Result<bool>> + Send {
        answer(move || Ok(s.0.persist(key)))
    }

    #[inline]
    fn incr(
        &self,
        s: &MemoryScope,
        key: &str,
        delta: i64,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<i64>> + Send {
        answer(move || s.0.incr(key, delta, ttl))
    }

    #[inline]
    fn get_set(
        &self,
        s: &MemoryScope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        answer(move || s.0.get_set(key, value, ttl))
    }

    #[inline]
    fn cas(
        &self,
        s: &MemoryScope,
        key: &str,
        expected: &[u8],
        new: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<bool>> + Send {
        answer(move || s.0.cas(key, expected, new, ttl))
    }

    #[inline]
    fn cad(
        &self,
        s: &MemoryScope,
        key: &str,
        expected: &[u8],
    ) -> impl Future<Output = Result<bool>> + Send {
        answer(move || Ok(s.0.cad(key, expected)))
    }

    #[inline]
    fn mget(
        &self,
        s: &MemoryScope,
        keys: &[&str],
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>>> + Send {
        answer(move || Ok(s.0.mget(keys)))
    }

    #[inline]
    fn mset(
        &self,
        s: &MemoryScope,
        pairs: &mut [(&str, Bytes)],
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<()>> + Send {
        answer(move || s.0.mset(pairs, ttl))
    }

    #[inline]
    fn mdel(&self, s: &MemoryScope, keys: &[&str]) -> impl Future<Output = Result<u64>> + Send {
        answer(move || Ok(s.0.mdel(keys)))
    }

    fn scan(
        &self,
        s: &MemoryScope,
        pattern: &Pattern,
    ) -> impl Stream<Item = Result<Vec<String>>> + Send + 'static {
        ScanPages {
            table: s.0.clone(),
            pattern: pattern.clone(),
            next_shard: 0,
        }
    }

    #[inline]
    fn clear(&self, s: &MemoryScope) -> impl Future<Output = Result<u64>> + Send {
        answer(move || Ok(s.0.clear()))
    }

    fn namespaces(&self) -> impl Stream<Item = Result<NamespaceInfo>> + Send + 'static {
        let mut tables: Vec<(NamespaceName, Table)> = self
            .inner
            .registry
            .named()
            .into_iter()
            .filter_map(|(prefix, table)| Some((split_full_key(&prefix)?.0, table)))
            .collect();
        tables.sort_by(|a, b| (a.0.root(), a.0.domain()).cmp(&(b.0.root(), b.0.domain())));
        NamespacePages {
            tables: tables.into_iter(),
        }
    }
}
