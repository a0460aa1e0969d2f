//! One namespace's data: a sharded hash table of entries.
//!
//! Each shard is a `RwLock` around a `hashbrown::HashTable`, padded to its own cache lines.
//! Reads take a shared lock on one shard, writes an exclusive lock on one shard. Batches lock
//! every shard they touch in ascending shard order and hold them until done, which makes them
//! atomic without a global lock and free of deadlocks (everyone acquires in the same order).
//!
//! Keys are the business keys only: the namespace is the table, so nothing concatenates
//! `root:domain:key` and hashing covers only the business key.
//!
//! In a store with a budget, a write first reserves what it will store (see `budget.rs`),
//! holding no lock, then writes under its shard's lock, keeping the shard's eviction order,
//! and settles the budget once the lock is released. A read marks its entry for the eviction
//! order with one atomic store.

use std::hash::BuildHasher;
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use hashbrown::DefaultHashBuilder;

use super::budget::{Budget, Reservation};
use super::clock::{Clock, Now};
use super::entry::{Entry, Value, bytes_heap, cost, key_eq};
use super::eviction::{Eviction, Policy};
use super::order::{MAX_FREQUENCY, Order};
use super::registry::Registry;
use super::slots::{Removed, Slots, Tally};
use crate::glob::Pattern;
use crate::ttl::{Expiry, KeyTtl, Ttl};
use crate::{Error, Result};

/// Buckets the reclaimer inspects per lock acquisition: a few microseconds of lock time.
const REAP_CHUNK: usize = 256;

/// Batches of up to 16 keys plan and lock on the stack.
type Batch<T> = smallvec::SmallVec<[T; 16]>;

/// A batch's keys' hashes, by position in the batch.
type Plan = Batch<u64>;

/// Cheap to clone: clones share the shards. Held inline by each namespace handle, one
/// pointer away from the shard locks.
#[derive(Clone)]
pub(crate) struct Table {
    shards: Arc<[Shard]>,
    hasher: DefaultHashBuilder,
    clock: Clock,
    /// The store's budget, when it has one.
    budget: Option<Arc<Budget>>,
    pub(super) meta: Arc<Meta>,
}

/// What the driver's registry knows of a table, off the hot path.
pub(crate) struct Meta {
    /// The registry's key: the namespace prefix.
    pub(super) name: Arc<str>,
    /// Namespace handles (scopes) on the table; at 0, an empty table is dropped.
    pub(super) handles: AtomicUsize,
    /// Whether the table is on the reclaimer's list (it holds, or held, keys with a TTL).
    pub(super) reaping: AtomicBool,
    pub(super) registry: Weak<Registry>,
    /// What may be evicted from this namespace (SPEC 10.3), and how victims are picked.
    pub(super) mode: Eviction,
    policy: Policy,
    /// The shard the next eviction starts from.
    evict_hand: AtomicUsize,
    /// The namespace's eviction and expiration metrics, built on first use.
    #[cfg(feature = "metrics")]
    exported: std::sync::OnceLock<crate::instrument::meter::Removals>,
}

impl Meta {
    /// Exports what a change removed as metrics with the feature `metrics` (SPEC 12.1); the
    /// counts the program reads are the shards' own ([`Table::removed`]).
    #[cold]
    fn count(&self, tally: &Tally) {
        #[cfg(feature = "metrics")]
        if tally.evicted > 0 || tally.expired > 0 {
            self.exported
                .get_or_init(|| {
                    let namespace = self.name.strip_suffix(':').unwrap_or(&self.name);
                    crate::instrument::meter::Removals::new(namespace, "memory")
                })
                .record(tally.evicted, tally.expired);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = tally;
    }
}

/// A shard locked for a write, with room for it taken from the budget.
struct Locked<'t> {
    slots: RwLockWriteGuard<'t, Slots>,
    /// What the write reserved.
    reserved: Reservation,
    /// The tally the write goes on with: what evicting its victims did that is still to be
    /// settled with the budget.
    tally: Tally,
    /// Whether the lock showed no entry for the key, live or expired (only known in a store
    /// with a budget, where the room taken depends on it): the write then adds one without
    /// looking again.
    absent: bool,
}

#[repr(align(128))]
struct Shard {
    slots: RwLock<Slots>,
    reap_cursor: AtomicUsize,
}

#[inline]
fn read(shard: &Shard) -> RwLockReadGuard<'_, Slots> {
    // No code path panics while holding a shard lock, so a poisoned lock has consistent data.
    shard.slots.read().unwrap_or_else(PoisonError::into_inner)
}

#[inline]
fn write(shard: &Shard) -> RwLockWriteGuard<'_, Slots> {
    shard.slots.write().unwrap_or_else(PoisonError::into_inner)
}

#[inline]
fn deadline(now: &mut Now<'_>, ttl: Ttl) -> u64 {
    now.get()
        .saturating_add(ttl.as_millis().saturating_mul(1_000_000))
}

#[inline]
fn deadline_of(now: &mut Now<'_>, ttl: Option<Ttl>) -> u64 {
    ttl.map_or(0, |ttl| deadline(now, ttl))
}

/// What the store knows when it makes a table: its budget, and the namespace's mode.
pub(crate) struct Bounds {
    pub(crate) budget: Arc<Budget>,
    pub(crate) mode: Eviction,
    pub(crate) policy: Policy,
}

impl Table {
    pub(crate) fn new(
        shards: usize,
        clock: Clock,
        name: Arc<str>,
        registry: Weak<Registry>,
        bounds: Option<Bounds>,
    ) -> Self {
        let (budget, mode, policy) = match bounds {
            Some(b) => (Some(b.budget), b.mode, b.policy),
            None => (None, Eviction::Never, Policy::default()),
        };
        let mut table = Table {
            shards: Arc::new([]),
            hasher: DefaultHashBuilder::default(),
            clock,
            budget,
            meta: Arc::new(Meta {
                name,
                handles: AtomicUsize::new(0),
                reaping: AtomicBool::new(false),
                registry,
                mode,
                policy,
                evict_hand: AtomicUsize::new(0),
                #[cfg(feature = "metrics")]
                exported: std::sync::OnceLock::new(),
            }),
        };
        table.shards = (0..shards)
            .map(|i| Shard {
                slots: RwLock::new(table.fresh_slots(i)),
                reap_cursor: AtomicUsize::new(0),
            })
            .collect();
        table
    }

    /// An empty shard, with an eviction order in a store with a budget.
    fn fresh_slots(&self, shard: usize) -> Slots {
        Slots {
            order: self.budget.as_ref().map(|_| {
                let seed = self.hasher.hash_one(shard) | 1;
                Box::new(Order::new(self.meta.mode, self.meta.policy, seed))
            }),
            ..Slots::default()
        }
    }

    /// The store's budget, when it has one.
    #[inline]
    pub(super) fn budget(&self) -> Option<&Budget> {
        self.budget.as_deref()
    }

    /// The namespace's eviction mode, in a store with a budget (what changes need accounted).
    #[inline]
    fn bounded_mode(&self) -> Option<Eviction> {
        self.budget.as_ref().map(|_| self.meta.mode)
    }

    /// The driver's clock now, in nanoseconds.
    pub(super) fn now(&self) -> u64 {
        self.clock.now()
    }

    /// After a write: settles the budget, counts evictions and expirations, and puts the
    /// table on the reclaimer's list if it stored a deadline.
    #[inline]
    fn finish(&self, reserved: Reservation, tally: &Tally, deadline: u64) {
        if let Some(budget) = &self.budget {
            if budget.settle(reserved, tally) {
                self.shed(budget);
            }
        }
        if cfg!(feature = "metrics") && tally.expired | tally.evicted != 0 {
            self.meta.count(tally);
        }
        self.reap_later(deadline);
    }

    /// Marks a read entry for the eviction order: a frequency (S3-FIFO) or a recency (the
    /// sampled LRU), with one atomic store.
    #[inline]
    fn mark(&self, entry: &Entry) {
        if let Some(budget) = &self.budget {
            match self.meta.policy {
                Policy::S3Fifo => {
                    let seen = entry.mark.load(Ordering::Relaxed);
                    if seen < MAX_FREQUENCY {
                        entry.mark.store(seen + 1, Ordering::Relaxed);
                    }
                }
                Policy::SampledLru => entry.mark.store(budget.epoch(), Ordering::Relaxed),
            }
        }
    }

    /// Whether the policy needs the store's recency clock to move with writes.
    #[inline]
    pub(super) fn counts_writes(&self) -> bool {
        self.meta.policy == Policy::SampledLru
    }

    /// The mark a new entry starts with.
    #[inline]
    fn first_mark(&self) -> u32 {
        match (&self.budget, self.meta.policy) {
            (Some(budget), Policy::SampledLru) => budget.epoch(),
            _ => 0,
        }
    }

    /// Locks the shard of `key` for a write that stores a new value costing `bytes`, with
    /// room for it taken from the budget (nothing to take without one). `adds`: whether the
    /// write adds an entry when the key is missing. See [`Locked`] for what comes back.
    ///
    /// The room is taken under the lock, exactly: what the new value adds to the live entry
    /// the lock shows. When it does not fit, the shard's own victims make room under the same
    /// lock (the common case: a write evicts from its own shard first), unless an expired entry
    /// may still hold memory somewhere, or the room must come from elsewhere: then the lock is
    /// let go, room is made without it, and the shard is locked again.
    #[inline(always)]
    fn lock_with_room(
        &self,
        hash: u64,
        key: &str,
        bytes: impl FnOnce() -> u64,
        adds: bool,
    ) -> Result<Locked<'_>> {
        match &self.budget {
            None => Ok(Locked {
                slots: write(self.shard(hash)),
                reserved: Reservation::default(),
                tally: Tally::new(),
                absent: false,
            }),
            Some(budget) => self.lock_with_budget(budget, hash, key, bytes(), adds),
        }
    }

    fn lock_with_budget(
        &self,
        budget: &Budget,
        hash: u64,
        key: &str,
        bytes: u64,
        adds: bool,
    ) -> Result<Locked<'_>> {
        let shard = self.shard(hash);
        if self.counts_writes() {
            budget.bump_epoch();
        }
        let mut slots = write(shard);
        let mut now = Now::new(&self.clock);
        let found = slots.map.find(hash, |e| key_eq(&e.key, key));
        // No entry at all, live or expired: the write need not look again.
        let absent = found.is_none();
        let old = found.filter(|e| e.live(&mut now)).map(Entry::charge);
        let want = match old {
            Some(old) => Reservation {
                bytes: bytes.saturating_sub(old),
                entries: 0,
            },
            // A write that only replaces (`cas`) stores nothing when the key is missing.
            None if !adds => Reservation::default(),
            None => Reservation { bytes, entries: 1 },
        };
        if budget.try_take(want) {
            return Ok(Locked {
                slots,
                reserved: want,
                tally: Tally::new(),
                absent,
            });
        }
        if !budget.may_hold_expired(|| now.get()) && budget.could_fit(want) {
            // Victims go, and their room is traded for the write's in one update; the rest of
            // their accounting is settled with the write's own.
            let mut evicted = Tally::new();
            while slots.evict(budget.epoch(), &[key], &mut evicted) {
                if budget.trade(want, &evicted) {
                    // Victims are never the write's own key: it is still as it was.
                    let rest = Tally {
                        bytes: 0,
                        entries: 0,
                        ..evicted
                    };
                    return Ok(Locked {
                        slots,
                        reserved: want,
                        tally: rest,
                        absent,
                    });
                }
            }
            budget.settle(Reservation::default(), &evicted);
            self.meta.count(&evicted);
        }
        drop(slots);
        let reserved = if adds {
            self.reserve(key, || bytes, 1)?
        } else {
            self.reserve_replacement(key, || bytes)?
        };
        Ok(Locked {
            slots: write(shard),
            reserved,
            tally: Tally::new(),
            absent: false,
        })
    }

    /// What the live entry of `key` costs the budget, if there is one.
    pub(super) fn charge_of(&self, key: &str) -> Option<u64> {
        let hash = self.hash(key);
        let slots = read(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let entry = slots.map.find(hash, |e| key_eq(&e.key, key))?;
        entry.live(&mut now).then(|| entry.charge())
    }

    /// Evicts one victim from this namespace, none of `spared` (the keys being written):
    /// from the shard of the first of them first, so each shard keeps the room it has, then
    /// from the others in turn; false when none holds an evictable entry.
    pub(super) fn evict_one(&self, budget: &Budget, spared: &[&str]) -> bool {
        if self.meta.mode == Eviction::Never {
            return false;
        }
        let shards = self.shards.len();
        let start = match spared.first() {
            Some(key) => self.shard_index(self.hash(key)),
            None => self.meta.evict_hand.fetch_add(1, Ordering::Relaxed),
        };
        for i in 0..shards {
            let mut tally = Tally::new();
            let evicted =
                write(&self.shards[(start + i) % shards]).evict(budget.epoch(), spared, &mut tally);
            if evicted {
                budget.settle(Reservation::default(), &tally);
                self.meta.count(&tally);
                return true;
            }
        }
        false
    }

    /// Removes this namespace's expired entries (a store with a budget keeps them by
    /// deadline); returns the earliest deadline left, or `u64::MAX`.
    pub(super) fn purge(&self, now: u64) -> u64 {
        let mut earliest = u64::MAX;
        for shard in self.shards.iter() {
            if read(shard).with_ttl == 0 {
                continue;
            }
            let mut tally = Tally::new();
            let left = {
                let mut slots = write(shard);
                slots.purge(now, &mut tally);
                slots.earliest()
            };
            earliest = earliest.min(left);
            self.finish(Reservation::default(), &tally, 0);
        }
        earliest
    }

    /// After a write that may have stored a deadline: puts the table on the reclaimer's list
    /// if it is not there yet (one relaxed load when it is).
    #[inline]
    fn reap_later(&self, deadline: u64) {
        if deadline != 0 && !self.meta.reaping.load(Ordering::Relaxed) {
            self.enlist();
        }
    }

    #[cold]
    fn enlist(&self) {
        if !self.meta.reaping.swap(true, Ordering::SeqCst) {
            if let Some(registry) = self.meta.registry.upgrade() {
                registry.enlist(self.clone());
            }
        }
    }

    /// Whether no shard holds an entry, expired or not.
    pub(crate) fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| read(s).map.is_empty())
    }

    /// Entries with a deadline, counted one shard at a time.
    pub(crate) fn with_ttl(&self) -> usize {
        self.shards.iter().map(|s| read(s).with_ttl).sum()
    }

    /// Whether `self` and `other` are the same table.
    pub(crate) fn same(&self, other: &Table) -> bool {
        Arc::ptr_eq(&self.meta, &other.meta)
    }

    #[inline]
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The shard for a hash. hashbrown uses the low bits for the bucket and the top seven for
    /// its tag, so the shard takes bits from the middle.
    #[inline]
    fn shard_index(&self, hash: u64) -> usize {
        (hash >> 32) as usize & (self.shards.len() - 1)
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard {
        &self.shards[self.shard_index(hash)]
    }

    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        let hash = self.hash(key);
        let slots = read(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let entry = slots.map.find(hash, |e| key_eq(&e.key, key))?;
        if !entry.live(&mut now) {
            return None;
        }
        self.mark(entry);
        Some(entry.value.to_bytes())
    }

    #[inline]
    pub(crate) fn exists(&self, key: &str) -> bool {
        let hash = self.hash(key);
        let slots = read(self.shard(hash));
        let Some(entry) = slots.map.find(hash, |e| key_eq(&e.key, key)) else {
            return false;
        };
        entry.deadline == 0 || self.clock.now() < entry.deadline
    }

    #[inline]
    pub(crate) fn ttl(&self, key: &str) -> KeyTtl {
        let hash = self.hash(key);
        let slots = read(self.shard(hash));
        let Some(entry) = slots.map.find(hash, |e| key_eq(&e.key, key)) else {
            return KeyTtl::Missing;
        };
        if entry.deadline == 0 {
            return KeyTtl::NoExpiry;
        }
        match entry.deadline.checked_sub(self.clock.now()) {
            None | Some(0) => KeyTtl::Missing,
            // Rounded up to the millisecond: more than zero, at most the TTL that was set.
            Some(left) => KeyTtl::ExpiresIn(Duration::from_millis(left.div_ceil(1_000_000))),
        }
    }

    #[inline]
    pub(crate) fn set(&self, key: &str, value: Bytes, expiry: Expiry) -> Result<()> {
        let hash = self.hash(key);
        let value = Value::Bytes(value);
        let Locked {
            mut slots,
            reserved,
            mut tally,
            absent,
        } = self.lock_with_room(hash, key, || cost(key, value.heap()), true)?;
        let mode = self.bounded_mode();
        let mut now = Now::new(&self.clock);
        let found = if absent {
            None
        } else {
            slots.live_mut(hash, key, &mut now, &mut tally)
        };
        let stored = match found {
            Some(mut live) => {
                let before = live.before(mode);
                live.entry.value = value;
                let old = live.entry.deadline;
                match expiry {
                    Expiry::Never => live.entry.deadline = 0,
                    Expiry::After(ttl) => live.entry.deadline = deadline(&mut now, ttl),
                    Expiry::Keep => {}
                }
                let new = live.entry.deadline;
                live.retimed(old, new);
                live.changed(hash, before, &mut tally);
                new
            }
            None => {
                let deadline = match expiry {
                    Expiry::After(ttl) => deadline(&mut now, ttl),
                    Expiry::Never | Expiry::Keep => 0,
                };
                let mark = self.first_mark();
                slots.insert(&self.hasher, hash, key, value, deadline, mark, &mut tally);
                deadline
            }
        };
        drop(slots);
        self.finish(reserved, &tally, stored);
        Ok(())
    }

    #[inline]
    pub(crate) fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Ttl>) -> Result<bool> {
        let hash = self.hash(key);
        let value = Value::Bytes(value);
        let Locked {
            mut slots,
            reserved,
            mut tally,
            absent,
        } = self.lock_with_room(hash, key, || cost(key, value.heap()), true)?;
        let mut now = Now::new(&self.clock);
        let stored = if !absent && slots.live_mut(hash, key, &mut now, &mut tally).is_some() {
            None
        } else {
            let deadline = deadline_of(&mut now, ttl);
            let mark = self.first_mark();
            slots.insert(&self.hasher, hash, key, value, deadline, mark, &mut tally);
            Some(deadline)
        };
        drop(slots);
        self.finish(reserved, &tally, stored.unwrap_or(0));
        Ok(stored.is_some())
    }

    #[inline]
    pub(crate) fn delete(&self, key: &str) -> bool {
        let hash = self.hash(key);
        let mut tally = Tally::new();
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let deleted = slots.remove(hash, key, &mut now, &mut tally);
        drop(slots);
        self.finish(Reservation::default(), &tally, 0);
        deleted
    }

    #[inline]
    pub(crate) fn expire(&self, key: &str, ttl: Ttl) -> bool {
        let hash = self.hash(key);
        let mode = self.bounded_mode();
        let mut tally = Tally::new();
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let deadline = deadline(&mut now, ttl);
        let found = match slots.live_mut(hash, key, &mut now, &mut tally) {
            Some(mut live) => {
                let before = live.before(mode);
                let old = mem::replace(&mut live.entry.deadline, deadline);
                live.retimed(old, deadline);
                live.changed(hash, before, &mut tally);
                true
            }
            None => false,
        };
        drop(slots);
        self.finish(
            Reservation::default(),
            &tally,
            if found { deadline } else { 0 },
        );
        found
    }

    #[inline]
    pub(crate) fn persist(&self, key: &str) -> bool {
        let hash = self.hash(key);
        let mode = self.bounded_mode();
        let mut tally = Tally::new();
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let persisted = match slots.live_mut(hash, key, &mut now, &mut tally) {
            Some(mut live) if live.entry.deadline != 0 => {
                let before = live.before(mode);
                live.entry.deadline = 0;
                live.retimed(1, 0);
                live.changed(hash, before, &mut tally);
                true
            }
            _ => false,
        };
        drop(slots);
        self.finish(Reservation::default(), &tally, 0);
        persisted
    }

    /// Adds `delta` to a counter. In a store with a budget, room for a new counter is
    /// reserved only when the key turns out to be missing (then the shard is locked again).
    #[inline]
    pub(crate) fn incr(&self, key: &str, delta: i64, ttl_on_create: Option<Ttl>) -> Result<i64> {
        let hash = self.hash(key);
        let mode = self.bounded_mode();
        let mut reserved = match mode {
            None => Some(Reservation::default()),
            Some(_) => None,
        };
        loop {
            let mut tally = Tally::new();
            let mut slots = write(self.shard(hash));
            let mut now = Now::new(&self.clock);
            let (answer, stored) = match slots.live_mut(hash, key, &mut now, &mut tally) {
                Some(live) => {
                    let next = live
                        .entry
                        .value
                        .as_integer()
                        .ok_or_else(|| Error::not_an_integer(key))
                        .and_then(|current| {
                            current
                                .checked_add(delta)
                                .ok_or_else(|| Error::overflow(key))
                        });
                    if let Ok(next) = next {
                        let before = live.before(mode);
                        live.entry.value = Value::Int(next);
                        live.changed(hash, before, &mut tally);
                    }
                    (next, 0)
                }
                None => match reserved {
                    None => {
                        // A new counter: reserve its room without holding the lock, then look
                        // again.
                        drop(slots);
                        self.finish(Reservation::default(), &tally, 0);
                        reserved = Some(self.reserve(key, || cost(key, 0), 1)?);
                        continue;
                    }
                    Some(_) => {
                        let deadline = deadline_of(&mut now, ttl_on_create);
                        let mark = self.first_mark();
                        slots.insert(
                            &self.hasher,
                            hash,
                            key,
                            Value::Int(delta),
                            deadline,
                            mark,
                            &mut tally,
                        );
                        (Ok(delta), deadline)
                    }
                },
            };
            drop(slots);
            self.finish(reserved.unwrap_or_default(), &tally, stored);
            return answer;
        }
    }

    #[inline]
    pub(crate) fn get_set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<Option<Bytes>> {
        let hash = self.hash(key);
        let value = Value::Bytes(value);
        let Locked {
            mut slots,
            reserved,
            mut tally,
            absent,
        } = self.lock_with_room(hash, key, || cost(key, value.heap()), true)?;
        let mode = self.bounded_mode();
        let mut now = Now::new(&self.clock);
        let deadline = deadline_of(&mut now, ttl);
        let found = if absent {
            None
        } else {
            slots.live_mut(hash, key, &mut now, &mut tally)
        };
        let previous = match found {
            Some(mut live) => {
                let before = live.before(mode);
                let previous = mem::replace(&mut live.entry.value, value);
                let old = mem::replace(&mut live.entry.deadline, deadline);
                live.retimed(old, deadline);
                live.changed(hash, before, &mut tally);
                Some(previous)
            }
            None => {
                let mark = self.first_mark();
                slots.insert(&self.hasher, hash, key, value, deadline, mark, &mut tally);
                None
            }
        };
        drop(slots);
        self.finish(reserved, &tally, deadline);
        Ok(previous.map(Value::into_bytes))
    }

    #[inline]
    pub(crate) fn cas(
        &self,
        key: &str,
        expected: &[u8],
        new: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<bool> {
        let hash = self.hash(key);
        let new = Value::Bytes(new);
        let Locked {
            mut slots,
            reserved,
            mut tally,
            absent,
        } = self.lock_with_room(hash, key, || cost(key, new.heap()), false)?;
        let mode = self.bounded_mode();
        let mut now = Now::new(&self.clock);
        let deadline = deadline_of(&mut now, ttl);
        let found = if absent {
            None
        } else {
            slots.live_mut(hash, key, &mut now, &mut tally)
        };
        let swapped = match found {
            Some(mut live) if live.entry.value.eq_bytes(expected) => {
                let before = live.before(mode);
                live.entry.value = new;
                let old = mem::replace(&mut live.entry.deadline, deadline);
                live.retimed(old, deadline);
                live.changed(hash, before, &mut tally);
                true
            }
            _ => false,
        };
        drop(slots);
        self.finish(reserved, &tally, if swapped { deadline } else { 0 });
        Ok(swapped)
    }

    #[inline]
    pub(crate) fn cad(&self, key: &str, expected: &[u8]) -> bool {
        let hash = self.hash(key);
        let mut tally = Tally::new();
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let deleted = match slots.map.find(hash, |e| key_eq(&e.key, key)) {
            Some(found) if found.live(&mut now) && found.value.eq_bytes(expected) => {
                slots.remove(hash, key, &mut now, &mut tally);
                true
            }
            _ => false,
        };
        drop(slots);
        self.finish(Reservation::default(), &tally, 0);
        deleted
    }

    /// The hash of each key of a batch. (An out-parameter: a returned inline batch is
    /// copied whole.)
    fn plan<'k>(&self, keys: impl ExactSizeIterator<Item = &'k str>, plan: &mut Plan) {
        plan.reserve(keys.len());
        plan.extend(keys.map(|key| self.hash(key)));
    }

    /// Visits a batch's keys (`plan`), locking the shards they fall in with `lock`, in
    /// ascending shard order, and holding every lock until all keys are visited: the batch is
    /// atomic, and as everyone takes shard locks in the same order, batches cannot deadlock.
    /// Keys are visited in the caller's order, so for a key given twice the last one wins.
    /// `visit` gets the shard's guard, the key's position in the batch and its hash.
    ///
    /// With up to 64 shards (the default up to 16 CPUs) the shards are a bit set, locked by
    /// walking its bits and found again by counting the bits below a key's shard: no sort.
    fn locked<'s, G>(
        &'s self,
        plan: &Plan,
        lock: impl Fn(&'s Shard) -> G,
        mut visit: impl FnMut(&mut G, usize, u64),
    ) {
        let mut guards: Batch<G> = Batch::new();
        if self.shards.len() <= 64 {
            let mut set = 0u64;
            for &hash in plan.iter() {
                set |= 1 << self.shard_index(hash);
            }
            let mut rest = set;
            while rest != 0 {
                guards.push(lock(&self.shards[rest.trailing_zeros() as usize]));
                rest &= rest - 1;
            }
            for (i, &hash) in plan.iter().enumerate() {
                let below = set & ((1 << self.shard_index(hash)) - 1);
                visit(&mut guards[below.count_ones() as usize], i, hash);
            }
        } else {
            // Each step: the shard index (below 2^16) in the top 16 bits, the position below.
            let mut steps: Batch<u64> = Batch::new();
            steps.extend(plan.iter().enumerate().map(|(i, &hash)| {
                debug_assert!((i as u64) < 1 << 48);
                (self.shard_index(hash) as u64) << 48 | i as u64
            }));
            steps.sort_unstable();
            let mut held = usize::MAX;
            for step in steps {
                let shard = (step >> 48) as usize;
                if shard != held {
                    guards.push(lock(&self.shards[shard]));
                    held = shard;
                }
                let i = (step & ((1 << 48) - 1)) as usize;
                if let Some(guard) = guards.last_mut() {
                    visit(guard, i, plan[i]);
                }
            }
        }
    }

    pub(crate) fn mget(&self, keys: &[&str]) -> Vec<Option<Bytes>> {
        let mut answers = vec![None; keys.len()];
        let mut now = Now::new(&self.clock);
        let mut plan = Plan::new();
        self.plan(keys.iter().copied(), &mut plan);
        self.locked(&plan, read, |slots, i, hash| {
            let key = keys[i];
            answers[i] = slots
                .map
                .find(hash, |e| key_eq(&e.key, key))
                .filter(|e| e.live(&mut now))
                .map(|e| {
                    self.mark(e);
                    e.value.to_bytes()
                });
        });
        answers
    }

    pub(crate) fn mset(&self, pairs: &mut [(&str, Bytes)], ttl: Option<Ttl>) -> Result<()> {
        let reserved = match self.budget {
            None => Reservation::default(),
            Some(_) => {
                let keys: Batch<&str> = pairs.iter().map(|(key, _)| *key).collect();
                let costs: Batch<u64> = pairs
                    .iter()
                    .map(|(key, value)| cost(key, bytes_heap(value)))
                    .collect();
                self.reserve_batch(&keys, &costs)?
            }
        };
        let mode = self.bounded_mode();
        let mark = self.first_mark();
        let mut tally = Tally::new();
        let mut now = Now::new(&self.clock);
        let deadline = deadline_of(&mut now, ttl);
        let mut plan = Plan::new();
        self.plan(pairs.iter().map(|(k, _)| *k), &mut plan);
        self.locked(&plan, write, |slots, i, hash| {
            let (key, value) = &mut pairs[i];
            let value = Value::Bytes(mem::take(value));
            match slots.live_mut(hash, key, &mut now, &mut tally) {
                Some(mut live) => {
                    let before = live.before(mode);
                    live.entry.value = value;
                    let old = mem::replace(&mut live.entry.deadline, deadline);
                    live.retimed(old, deadline);
                    live.changed(hash, before, &mut tally);
                }
                None => slots.insert(&self.hasher, hash, key, value, deadline, mark, &mut tally),
            }
        });
        self.finish(reserved, &tally, deadline);
        Ok(())
    }

    pub(crate) fn mdel(&self, keys: &[&str]) -> u64 {
        let mut tally = Tally::new();
        let mut now = Now::new(&self.clock);
        let mut removed = 0;
        let mut plan = Plan::new();
        self.plan(keys.iter().copied(), &mut plan);
        self.locked(&plan, write, |slots, i, hash| {
            if slots.remove(hash, keys[i], &mut now, &mut tally) {
                removed += 1;
            }
        });
        self.finish(Reservation::default(), &tally, 0);
        removed
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The live keys of one shard that match `pattern`: one page of a scan.
    pub(crate) fn scan_shard(&self, shard: usize, pattern: &Pattern) -> Vec<String> {
        let Some(shard) = self.shards.get(shard) else {
            return Vec::new();
        };
        let slots = read(shard);
        let mut now = Now::new(&self.clock);
        slots
            .map
            .iter()
            .filter(|e| e.live(&mut now) && pattern.matches(&e.key))
            .map(|e| e.key.to_string())
            .collect()
    }

    /// Empties every shard; returns how many live entries there were. Each shard's table is
    /// swapped out under its lock and freed after the lock is released.
    pub(crate) fn clear(&self) -> u64 {
        let mut cleared = 0;
        for (i, shard) in self.shards.iter().enumerate() {
            let mut slots = write(shard);
            let mut fresh = self.fresh_slots(i);
            // What the shard removed before stays counted.
            fresh.removed = slots.removed;
            let taken = mem::replace(&mut *slots, fresh);
            drop(slots);
            let now = self.clock.now();
            cleared += taken.map.iter().filter(|e| !e.expired_at(now)).count() as u64;
            if let (Some(budget), Some(order)) = (&self.budget, &taken.order) {
                let mut tally = Tally::new();
                for entry in taken.map.iter() {
                    tally.count(order, entry, -1);
                }
                budget.settle(Reservation::default(), &tally);
            }
        }
        cleared
    }

    /// Keys the namespace evicted, and removed after they expired, since it was made
    /// (SPEC 10.7): the sum of its shards' counts.
    pub(crate) fn removed(&self) -> Removed {
        self.shards.iter().fold(Removed::default(), |sum, shard| {
            let removed = read(shard).removed;
            Removed {
                evicted: sum.evicted + removed.evicted,
                expired: sum.expired + removed.expired,
            }
        })
    }

    /// Live entries, counted one shard at a time under its read lock.
    pub(crate) fn live(&self) -> u64 {
        let now = self.clock.now();
        self.shards
            .iter()
            .map(|s| read(s).map.iter().filter(|e| !e.expired_at(now)).count() as u64)
            .sum()
    }

    /// Entries held, expired ones not yet reclaimed included.
    pub(crate) fn stored(&self) -> usize {
        self.shards.iter().map(|s| read(s).map.len()).sum()
    }

    /// Reclaims expired entries, resuming each shard where the last call stopped.
    ///
    /// A full reap inspects every bucket. Otherwise each shard is inspected for 1/32 of its
    /// buckets (at least one chunk), and further while the last chunk was at least a quarter
    /// expired, up to one full pass: a full pass takes about 32 calls whatever the size. A chunk is first read
    /// under the shared lock; only a chunk holding expired entries takes the exclusive lock.
    /// Returns how many entries were freed.
    pub(crate) fn reap(&self, full: bool) -> usize {
        if self.budget.is_some() {
            return self.reap_by_deadline();
        }
        let mut freed = 0;
        for shard in self.shards.iter() {
            let (buckets, with_ttl) = {
                let slots = read(shard);
                (slots.map.num_buckets(), slots.with_ttl)
            };
            if with_ttl == 0 {
                // Nothing here can expire.
                continue;
            }
            let budget = if full {
                buckets
            } else {
                (buckets / 32).max(REAP_CHUNK)
            };
            let mut cursor = shard.reap_cursor.load(Ordering::Relaxed);
            let mut scanned = 0;
            while scanned < buckets {
                let now = self.clock.now();
                let (end, expired) = {
                    let slots = read(shard);
                    let buckets = slots.map.num_buckets();
                    if cursor >= buckets {
                        cursor = 0;
                    }
                    let end = (cursor + REAP_CHUNK).min(buckets);
                    let expired = (cursor..end)
                        .filter(|&i| slots.map.get_bucket(i).is_some_and(|e| e.expired_at(now)))
                        .count();
                    (end, expired)
                };
                if expired > 0 {
                    let mut dropped = Vec::with_capacity(expired);
                    let mut slots = write(shard);
                    // Buckets may have moved since the shared read; any expired entry found
                    // here is fair game, whichever it is.
                    for i in cursor..end {
                        if let Ok(found) = slots.map.get_bucket_entry(i) {
                            if found.get().expired_at(now) {
                                dropped.push(found.remove().0);
                            }
                        }
                    }
                    slots.with_ttl -= dropped.len();
                    slots.removed.expired += dropped.len() as u64;
                    drop(slots);
                    freed += dropped.len();
                    self.finish(
                        Reservation::default(),
                        &Tally {
                            expired: dropped.len() as u64,
                            ..Tally::new()
                        },
                        0,
                    );
                }
                scanned += end.saturating_sub(cursor).max(1);
                cursor = end;
                if scanned >= budget && expired * 4 < REAP_CHUNK {
                    break;
                }
            }
            shard.reap_cursor.store(cursor, Ordering::Relaxed);
        }
        freed
    }

    /// Reclaims expired entries in a store with a budget, which keeps them by deadline: at
    /// most a chunk per lock acquisition, until none is left.
    fn reap_by_deadline(&self) -> usize {
        let mut freed = 0;
        for shard in self.shards.iter() {
            loop {
                if read(shard).with_ttl == 0 {
                    break;
                }
                let now = self.clock.now();
                let mut tally = Tally::new();
                let purged = write(shard).purge_some(now, REAP_CHUNK, &mut tally);
                self.finish(Reservation::default(), &tally, 0);
                freed += purged;
                if purged < REAP_CHUNK {
                    break;
                }
            }
        }
        freed
    }
}
