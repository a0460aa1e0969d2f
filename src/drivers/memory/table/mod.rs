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
//! In a store with a budget, a single-key write takes the room it needs under its shard's lock,
//! evicting there or (when its shard is free to take) in another namespace's shard if it must
//! (`room.rs`); otherwise, and for a batch, it reserves the room holding no lock, making room
//! as needed (`reserve.rs`), then writes under its shards' locks. It keeps the shard's eviction
//! order and settles the budget once the lock is released. A thread holding a shard's lock
//! never waits for another shard's lock outside a batch's ascending order: it only tries it.
//! A read marks its entry for the eviction order with one atomic store.

use std::hash::BuildHasher;
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError, Weak};

use hashbrown::DefaultHashBuilder;

use super::budget::{Budget, Reservation};
use super::clock::{Clock, Now};
use super::count::Count;
use super::entry::Entry;
use super::eviction::{Eviction, Policy};
use super::order::{MAX_FREQUENCY, SPARED_REQUEUE};
use super::registry::{Registry, Round};
use super::slots::{OrderSeed, Removed, Slots, Tally};
use super::spared::Spared;
use crate::glob::Pattern;
use crate::ttl::Ttl;

mod batch;
mod keys;
mod own;
mod reap;
mod reserve;
mod room;

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
    /// The table's number, unique in the process: its key in the reclaimer's schedule.
    id: u64,
    /// At or before the earliest deadline the table's entries hold (`u64::MAX`: none):
    /// lowered by every write that stores a deadline, which then puts the table in the
    /// reclaimer's schedule at that time, and set by a reclaiming visit to what it left.
    pub(super) due: AtomicU64,
    pub(super) registry: Weak<Registry>,
    /// What may be evicted from this namespace (SPEC 10.3), and how victims are picked.
    pub(super) mode: Eviction,
    /// Whether the registry freed the table: its last clone gives its shards to the
    /// registry for a table to come ([`Spare`]).
    pub(crate) freed: AtomicBool,
    /// In a store with a budget: whether the budget holds the namespace's fixed part
    /// ([`Meta::fixed`]), charged with its first entry and given back when it is freed.
    pub(super) paid: AtomicBool,
    /// The heap the namespace takes whatever it holds ([`own::fixed_part`]).
    pub(super) fixed: u64,
    /// In a store with a budget: whether the budget holds the namespace's place in the
    /// reclaimer's schedule ([`own::SCHEDULED`]).
    pub(super) scheduled: AtomicBool,
    /// What the budget holds for the namespace's structures (its shards' tables and eviction
    /// orders) and its fixed part: what freeing it gives back.
    pub(super) structures: Count,
    /// In a store with a budget, shards `clear` emptied (bit `index % 64`, set under the
    /// shard's write lock): they may await their tables and eviction orders again, which a
    /// batch into them then reserves (`Table::growth_to_reserve_for`, which unsets a bit once
    /// its shard has an order, in a table of up to 64 shards). Not in each shard: that took
    /// a shard past its 128 bytes, to 256.
    pub(super) cleared: AtomicU64,
    /// In a store with a budget, the namespace's entries eviction may take (kept by
    /// `Table::settle`): its share of the store's, which a write that needs room draws against
    /// (`Table::room_elsewhere`).
    pub(super) evictable: Count,
    /// In a store with a budget and a `with-ttl` namespace, its keys without a TTL, which
    /// eviction may not take (kept by `Table::settle`; 0 in the other modes): their room in
    /// the tables stays when eviction takes the others (`Table::shrinks_by_at_least`).
    pub(super) fixed_entries: Count,
    policy: Policy,
    /// The shard the next eviction starts from.
    evict_hand: AtomicUsize,
    /// Where the table is in the registry's list of tables that may evict (`usize::MAX`
    /// when it is not there); changed under that list's lock.
    pub(super) evictable_at: AtomicUsize,
    /// The namespace's eviction and expiration metrics, built on first use.
    #[cfg(feature = "metrics")]
    exported: std::sync::OnceLock<crate::instrument::meter::Removals>,
    /// Whether the namespace was opened through the telemetry layer
    /// ([`Instrumented`](crate::Instrumented)), which has its evictions and expirations
    /// exported: a namespace that was not makes no series (one made from data, one a user,
    /// made a series each whatever the program asked).
    #[cfg(feature = "metrics")]
    pub(super) exports: AtomicBool,
}

impl Meta {
    /// Exports what a change removed as metrics with the feature `metrics` (SPEC 12.1); the
    /// counts the program reads are the shards' own ([`Table::removed`]). This calls the
    /// program's recorder, which may panic: callers call it once their change is accounted
    /// for whole, so that a panic fails the call and leaves the store and its budget as
    /// they should be (`tests/metrics.rs`).
    #[cold]
    fn count(&self, tally: &Tally) {
        #[cfg(feature = "metrics")]
        if (tally.evicted > 0 || tally.expired > 0) && self.exports.load(Ordering::Relaxed) {
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

/// The next table's number.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The shards of a freed table, kept by the registry for the next table it makes. They are
/// one block aligned to 128 bytes: an aligned block freed and allocated for every namespace
/// that comes and goes fragments glibc's heap (1,000,000 one-key namespaces written in turn
/// under a 64 MiB budget grew the process by 96 MiB with each freed block given back to the
/// allocator; by 68 MiB with unaligned shards).
pub(crate) struct Spare(Arc<[Shard]>);

impl Spare {
    /// The shards with nothing in them, their tables' room given back to the allocator.
    pub(crate) fn emptied(self) -> Spare {
        for shard in self.0.iter() {
            *write(shard) = Slots::default();
        }
        self
    }
}

/// An empty set of shards, made once: what a table holds before it has its own, and after
/// its last clone gave them to the registry.
fn no_shards() -> Arc<[Shard]> {
    static NONE: std::sync::OnceLock<Arc<[Shard]>> = std::sync::OnceLock::new();
    Arc::clone(NONE.get_or_init(|| Arc::new([])))
}

impl Drop for Table {
    /// The last clone of a table the registry freed gives its shards back to the registry,
    /// for a table to come.
    fn drop(&mut self) {
        if self.meta.freed.load(Ordering::Acquire)
            && Arc::get_mut(&mut self.shards).is_some_and(|shards| !shards.is_empty())
            && let Some(registry) = self.meta.registry.upgrade()
        {
            registry.keep_spare(Spare(mem::replace(&mut self.shards, no_shards())));
        }
    }
}

#[repr(align(128))]
struct Shard {
    slots: RwLock<Slots>,
    reap_cursor: AtomicUsize,
}

#[inline]
fn read(shard: &Shard) -> RwLockReadGuard<'_, Slots> {
    // No code of the store panics while holding a shard lock; a program's metrics recorder
    // may (`Meta::count`), called only once the change is accounted for: a poisoned lock
    // has consistent data.
    shard.slots.read().unwrap_or_else(PoisonError::into_inner)
}

#[inline]
fn write(shard: &Shard) -> RwLockWriteGuard<'_, Slots> {
    shard.slots.write().unwrap_or_else(PoisonError::into_inner)
}

/// The shard's write lock if no one holds it now: for a thread that holds another shard's
/// lock, which must never wait for a second one (two writes doing so, each holding the
/// other's next shard, would wait for ever).
fn try_write(shard: &Shard) -> Option<RwLockWriteGuard<'_, Slots>> {
    match shard.slots.try_write() {
        Ok(slots) => Some(slots),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// The shard's read lock if no writer holds it now; see [`try_write`].
fn try_read(shard: &Shard) -> Option<RwLockReadGuard<'_, Slots>> {
    match shard.slots.try_read() {
        Ok(slots) => Some(slots),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
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
        spare: Option<Spare>,
    ) -> Self {
        let (budget, mode, policy) = match bounds {
            Some(b) => (Some(b.budget), b.mode, b.policy),
            None => (None, Eviction::Never, Policy::default()),
        };
        let fixed = own::fixed_part(shards, &name);
        let mut table = Table {
            shards: no_shards(),
            hasher: DefaultHashBuilder::default(),
            clock,
            budget,
            meta: Arc::new(Meta {
                name,
                handles: AtomicUsize::new(0),
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                due: AtomicU64::new(u64::MAX),
                registry,
                mode,
                freed: AtomicBool::new(false),
                paid: AtomicBool::new(false),
                scheduled: AtomicBool::new(false),
                structures: Count::default(),
                cleared: AtomicU64::new(0),
                evictable: Count::default(),
                fixed_entries: Count::default(),
                fixed,
                policy,
                evict_hand: AtomicUsize::new(0),
                evictable_at: AtomicUsize::new(usize::MAX),
                #[cfg(feature = "metrics")]
                exported: std::sync::OnceLock::new(),
                #[cfg(feature = "metrics")]
                exports: AtomicBool::new(false),
            }),
        };
        table.shards = match spare {
            Some(Spare(spare)) if spare.len() == shards => {
                for (i, shard) in spare.iter().enumerate() {
                    *write(shard) = table.fresh_slots(i);
                    shard.reap_cursor.store(0, Ordering::Relaxed);
                }
                spare
            }
            _ => (0..shards)
                .map(|i| Shard {
                    slots: RwLock::new(table.fresh_slots(i)),
                    reap_cursor: AtomicUsize::new(0),
                })
                .collect(),
        };
        table
    }

    /// An empty shard, with an eviction order to come in a store with a budget.
    fn fresh_slots(&self, shard: usize) -> Slots {
        Slots::new(self.budget.as_ref().map(|_| OrderSeed {
            mode: self.meta.mode,
            policy: self.meta.policy,
            seed: self.hasher.hash_one(shard) | 1,
        }))
    }

    /// The store's budget, when it has one.
    #[inline]
    pub(super) fn budget(&self) -> Option<&Budget> {
        self.budget.as_deref()
    }

    /// What the store may evict from the namespace: its mode in a store with a budget, else
    /// nothing.
    pub(crate) fn eviction(&self) -> Eviction {
        self.bounded_mode().unwrap_or(Eviction::Never)
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
    /// table in the reclaimer's schedule if it stored a deadline earlier than its due time.
    #[inline]
    fn finish(&self, reserved: Reservation, tally: &Tally, deadline: u64) {
        self.finish_storing(reserved, tally, deadline, &[]);
    }

    /// [`finish`](Self::finish) for a write that stored `written`: a store it took over its
    /// budget sheds other keys than those.
    #[inline]
    fn finish_storing(
        &self,
        reserved: Reservation,
        tally: &Tally,
        deadline: u64,
        written: &[&str],
    ) {
        if let Some(budget) = &self.budget {
            let over = if tally.opened {
                self.settle_opened(budget, reserved, *tally)
            } else {
                self.settle(budget, reserved, tally)
            };
            if over {
                self.shed(budget, tally.doubled, &Spared::new(written));
            }
        }
        self.reap_later(deadline, written);
        // Last: a recorder that panics here leaves the write's accounting done.
        if cfg!(feature = "metrics") && tally.expired | tally.evicted != 0 {
            self.meta.count(tally);
        }
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

    /// What each key a write spares may add to the queues while it makes its room
    /// ([`SPARED_REQUEUE`]; nothing under the sampled LRU, which keeps no queue).
    pub(super) fn requeued_when_spared(&self) -> u64 {
        match self.meta.policy {
            Policy::S3Fifo => SPARED_REQUEUE,
            Policy::SampledLru => 0,
        }
    }

    /// Whether the policy needs the store's recency clock to move with writes.
    #[inline]
    pub(super) fn counts_writes(&self) -> bool {
        self.meta.policy == Policy::SampledLru
    }

    /// What adding `n` entries to a shard (`slots`) may grow its table by, to be reserved
    /// with them: in a `never` namespace, whose writes must not take the store over its
    /// budget at all, and in a shard that holds no entry yet. Elsewhere a table's growth is
    /// charged as it happens and victims make up for it right after: a write reserving it
    /// would be refused for want of room that evicting one victim from its shard makes (a
    /// removal leaves the table room). A shard with no entry has no victim, and the victims
    /// taken after would have been the write's own new keys (a namespace's first `set` into
    /// a full store was evicted right after it). And in a shard whose table doubles whatever
    /// eviction takes from it ([`Slots::doubles_whatever_goes`]: a `with-ttl` namespace's
    /// keys without a TTL fill it): no victim there can make up for the doubling. (Charged as
    /// it came, a 64 KiB store whose `with-ttl` namespace held keys without a TTL in one shard
    /// went 17% over its budget with a write of one key, and stayed over: nothing could be
    /// shed.)
    pub(super) fn growth_to_reserve(&self, slots: &Slots, n: usize) -> u64 {
        let reserves = match self.meta.mode {
            Eviction::Never => true,
            Eviction::Any => slots.awaits_order(),
            Eviction::WithTtl => slots.awaits_order() || slots.doubles_whatever_goes(n),
        };
        if reserves {
            slots.growth_if_adding(n)
        } else {
            0
        }
    }

    /// Whether writes reserve their tables' growth: see
    /// [`growth_to_reserve`](Self::growth_to_reserve).
    pub(super) fn reserves_growth(&self) -> bool {
        self.meta.mode == Eviction::Never
    }

    /// The mark a new entry starts with.
    #[inline]
    fn first_mark(&self) -> u32 {
        match (&self.budget, self.meta.policy) {
            (Some(budget), Policy::SampledLru) => budget.epoch(),
            _ => 0,
        }
    }

    /// After a write that may have stored a deadline (with the keys it stored, `written`):
    /// when it is earlier than the table's due time, lowers that to it and schedules the
    /// table's reclamation then (one relaxed load when it is not).
    #[inline]
    fn reap_later(&self, deadline: u64, written: &[&str]) {
        if deadline != 0 && deadline < self.meta.due.load(Ordering::Relaxed) {
            self.reap_at(deadline, written);
        }
    }

    #[cold]
    fn reap_at(&self, deadline: u64, written: &[&str]) {
        self.meta.due.fetch_min(deadline, Ordering::SeqCst);
        if let Some(registry) = self.meta.registry.upgrade() {
            registry.schedule(deadline, self);
        }
        self.charge_scheduled(written);
    }

    /// The table's number, unique in the process.
    pub(super) fn id(&self) -> u64 {
        self.meta.id
    }

    /// Reclaims the table's expired entries with `reap` (it returns what it freed and a time
    /// at or before the earliest deadline it left) and sets the table's due time. Returns
    /// what was freed and the table's due time.
    ///
    /// The due time goes to `u64::MAX` before the entries are looked at, and down to what is
    /// left after: a write that stores a deadline either lowers it after that (its own
    /// `fetch_min`) or was in its shard before the look, which then counts it. Only in a
    /// `round`: the schedule drops a table's time when the table's due time is past it.
    pub(super) fn reclaim_with(
        &self,
        _round: &Round<'_>,
        reap: impl FnOnce(&Table) -> (usize, u64),
    ) -> (usize, u64) {
        self.meta.due.store(u64::MAX, Ordering::SeqCst);
        let (freed, left) = reap(self);
        self.meta.due.fetch_min(left, Ordering::SeqCst);
        (freed, left.min(self.meta.due.load(Ordering::Relaxed)))
    }

    /// Whether no shard holds an entry, expired or not.
    pub(crate) fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| read(s).map.is_empty())
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
            let taken = self.reset(i, &mut slots);
            drop(slots);
            let now = self.clock.now();
            cleared += taken.map.iter().filter(|e| !e.expired_at(now)).count() as u64;
            if let (Some(budget), Some(order)) = (&self.budget, &taken.order) {
                let mut tally = Tally::new();
                for entry in taken.map.iter() {
                    tally.count(order, entry, -1);
                }
                tally.restructure(-(taken.charged_structures() as i64));
                self.settle(budget, Reservation::default(), &tally);
            }
        }
        cleared
    }

    /// Puts a fresh shard in place of shard `i`'s, locked in `slots`, and returns what that
    /// held: as `clear` leaves a shard, its table and eviction order to come with its next
    /// entry, its counts of removed keys kept.
    fn reset(&self, i: usize, slots: &mut Slots) -> Slots {
        let mut fresh = self.fresh_slots(i);
        // What the shard removed before stays counted, and its count of inserts goes on (a
        // reclaimer looking it over a chunk at a time compares it: set back to 0, as many
        // inserts after would look like none).
        fresh.removed = slots.removed;
        fresh.inserts = slots.inserts;
        let taken = mem::replace(slots, fresh);
        if self.budget.is_some() {
            self.meta.cleared.fetch_or(1 << (i % 64), Ordering::Release);
        }
        taken
    }

    /// In a store with a budget, gives back what the namespace's empty shards hold: the
    /// tables and eviction orders a shard keeps once its entries have gone (so that one that
    /// fills again does not rebuild them each time), about 2.7 KiB a shard that held a few
    /// hundred. Each becomes as `clear` leaves it. For a write the budget has no room for
    /// otherwise ([`Registry::release_empty_shards`]); returns the bytes given back.
    pub(crate) fn release_empty_shards(&self) -> u64 {
        let Some(budget) = &self.budget else {
            return 0;
        };
        let mut released = 0;
        for (i, shard) in self.shards.iter().enumerate() {
            // A look under the read lock first: most shards hold entries or nothing.
            if !read(shard).idle() {
                continue;
            }
            let mut slots = write(shard);
            if !slots.idle() {
                continue;
            }
            let taken = self.reset(i, &mut slots);
            drop(slots);
            let bytes = taken.charged_structures();
            let mut tally = Tally::new();
            tally.restructure(-(bytes as i64));
            self.settle(budget, Reservation::default(), &tally);
            released += bytes;
        }
        released
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

    /// Live entries, and in a store with a budget what the namespace is charged (SPEC 10.2):
    /// its entries, expired ones not yet reclaimed included, and its structures and fixed
    /// part; counted one shard at a time under its read lock.
    pub(crate) fn held(&self) -> (u64, Option<u64>) {
        if self.budget.is_none() {
            return (self.live(), None);
        }
        let now = self.clock.now();
        let (mut live, mut entries) = (0, 0u64);
        for shard in self.shards.iter() {
            for entry in read(shard).map.iter() {
                live += u64::from(!entry.expired_at(now));
                entries += entry.charge();
            }
        }
        (live, Some(entries + self.meta.structures.get()))
    }

    /// Entries held, expired ones not yet reclaimed included.
    pub(crate) fn stored(&self) -> usize {
        self.shards.iter().map(|s| read(s).map.len()).sum()
    }
}
