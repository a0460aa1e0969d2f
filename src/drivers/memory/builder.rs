//! [`MemoryBuilder`]: a memory store's settings, and the background reclaimer it starts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::budget::Budget;
use super::clock::{Clock, ManualClock};
use super::config::{MAX_SHARDS, MemoryConfig};
use super::eviction::{Eviction, Policy};
use super::registry::Registry;
use super::{Inner, MemoryDriver};
use crate::Result;

/// Builds a [`MemoryDriver`] with non-default settings.
///
/// A clone builds stores of the same settings; a [manual clock](Self::manual_clock) given
/// before it was cloned is shared by them (a clock is a handle).
#[derive(Clone, Debug, Default)]
pub struct MemoryBuilder {
    config: MemoryConfig,
    clock: Option<ManualClock>,
}

impl MemoryBuilder {
    /// Shards per namespace, rounded up to a power of two, from 1 to [`MAX_SHARDS`]. Unset,
    /// the store chooses them from the CPU count and its budget
    /// ([`MemoryConfig::shards_per_namespace`]): a small budget gets few shards.
    pub fn shards(mut self, shards: usize) -> Self {
        self.config.shards = Some(shards.clamp(1, MAX_SHARDS).next_power_of_two());
        self
    }

    /// How often expired entries are reclaimed in the background; `None` turns the
    /// background thread off, leaving only expiry on access (and a write that needs room in
    /// a store with a budget reclaims them first). Without it, call
    /// [`MemoryDriver::purge_expired`] now and then: until then, expired keys no one reads
    /// stay in memory, and so does every namespace that held a key with a TTL since the
    /// last call. In a store with a budget the thread also gives back, once a second while
    /// the store is nearly full, the tables and eviction orders that empty shards keep (see
    /// [`max_bytes`](Self::max_bytes)).
    pub fn reap_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.reap_interval = interval.filter(|i| !i.is_zero());
        self
    }

    /// Gives the store a budget of `bytes` (SPEC 10.1): what its entries may cost, keys and
    /// values, and the driver's own tables and queues as they really are (SPEC 10.2; a table
    /// grows by doubling, and a write that makes one double reserves the doubling first). A
    /// write that would go over it evicts what the namespaces' modes allow, or fails with
    /// [`ErrorKind::OutOfMemory`](crate::ErrorKind::OutOfMemory).
    ///
    /// Each namespace's own memory counts as well: about 2.7 KiB with 16 shards, and about
    /// 0.9 KiB for each shard that holds a key, charged with its first key and given back when
    /// it is freed (its last key gone, no handle held); so a small budget gets few shards
    /// unless [`shards`](Self::shards) says otherwise (one for each 64 KiB, see
    /// [`MemoryConfig::shards_per_namespace`]). A budget of a few KiB still holds little: the
    /// first write into a namespace is refused (or, in an evicting namespace, makes room) for
    /// more than its key and value, about 1.8 KiB more with one shard. A shard whose keys have
    /// all gone keeps its table and eviction order for the keys to come while a handle holds
    /// its namespace; a
    /// write that would be refused for want of room first has the store give those back (in
    /// a store of up to 4,096 namespaces), and the background reclaimer
    /// ([`reap_interval`](Self::reap_interval)) gives them back once a second while the store
    /// is within an eighth of its budget.
    ///
    /// Values are kept as the [`Bytes`](bytes::Bytes) handed in, without a copy, and charged
    /// for their length: a `Bytes` that is part of a larger buffer (`Bytes::slice`, a frame
    /// split off a read buffer with `BytesMut::split_to(…).freeze()`, a chunk of an HTTP body,
    /// a `Vec` with spare capacity) keeps the whole buffer alive, which no `Bytes` API lets the
    /// store see. Under a budget, store values that own their bytes:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> namestore::Result<()> {
    /// use bytes::Bytes;
    /// use namestore::MemoryDriver;
    /// use namestore::drivers::memory::Eviction;
    ///
    /// let store = MemoryDriver::builder().max_bytes(64 << 20).eviction(Eviction::Any).build()?;
    /// let cache = store.namespace::<String>("app", "cache")?;
    /// let body = Bytes::from(vec![b'x'; 1 << 20]); // a 1 MiB response body, say
    /// // `body.slice(..16)` would keep the whole MiB alive, charged 16 bytes: copy the part.
    /// cache.set(&"head".to_owned(), Bytes::copy_from_slice(&body[..16]), None).await?;
    /// drop(body);
    /// assert!(store.usage().unwrap().bytes < 64 << 10);
    /// # Ok(()) }
    /// ```
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.config.max_bytes = Some(bytes);
        self
    }

    /// Caps the number of entries the store holds (for items of one size, and for comparing
    /// eviction policies by entry count).
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.config.max_entries = Some(entries);
        self
    }

    /// What a store over its budget may evict from namespaces that do not choose their own
    /// mode. Default: [`Eviction::Never`].
    pub fn eviction(mut self, mode: Eviction) -> Self {
        self.config.eviction = mode;
        self
    }

    /// How victims are picked. Default: [`Policy::S3Fifo`].
    pub fn policy(mut self, policy: Policy) -> Self {
        self.config.policy = policy;
        self
    }

    /// Reads time from `clock` instead of the system's monotonic clock, for tests.
    pub fn manual_clock(mut self, clock: ManualClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Takes every setting from `config`.
    pub fn config(mut self, config: MemoryConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds the driver, its expired entries reclaimed in the background by the thread that
    /// serves every memory store of the process (started with the first store that needs it,
    /// ended when the last is dropped).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Backend`](crate::ErrorKind::Backend) when that thread is not running and
    /// the operating system refuses to start it.
    pub fn build(self) -> Result<MemoryDriver> {
        let clock = match self.clock {
            Some(manual) => Clock::Manual(manual),
            None => Clock::System(Instant::now()),
        };
        self.config.validate()?;
        // Zero turns the reclaimer off, as `None` does (a config given whole may hold it).
        let interval = self.config.reap_interval.filter(|i| !i.is_zero());
        let budget = self
            .config
            .bounded()
            .then(|| Arc::new(Budget::new(self.config.max_bytes, self.config.max_entries)));
        let registry = Arc::new(Registry::new(
            budget,
            self.config.eviction,
            self.config.policy,
        ));
        let inner = Arc::new(Inner {
            shards: self.config.shards_per_namespace(),
            config: self.config,
            clock,
            registry,
        });
        if let Some(interval) = interval {
            let weak = Arc::downgrade(&inner);
            crate::drivers::reaper::watch(&crate::drivers::reaper::MEMORY, weak, interval)?;
        }
        Ok(MemoryDriver { inner })
    }
}
