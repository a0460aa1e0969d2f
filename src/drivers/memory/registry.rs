//! The memory driver's namespaces: one table each, created when a namespace is first opened
//! and dropped when it is empty and no handle holds it, so a store that sees millions of
//! short-lived namespaces (one per tenant, per user, per job) keeps only the ones with data.
//!
//! The reclaimer does not walk every table: a table is in its schedule (`schedule.rs`) at the
//! time its earliest deadline comes, from the write that stores that deadline, and leaves it
//! when it holds none, so background work scales with the keys that expire, not with the
//! namespaces ever opened or the keys that merely have a TTL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use super::budget::{Budget, Held};
use super::clock::Clock;
use super::eviction::{Eviction, Policy};
use super::schedule::Schedule;
use super::spared::Spared;
use super::table::{Bounds, Spare, Table};
use crate::name::NamespaceName;
use crate::{Error, Result};

/// The most entries a namespace may hold to be emptied whole by [`Registry::free_one`].
const FREED_WHOLE: usize = 64;

/// How many namespaces [`Registry::free_one`] looks at for one it may empty whole.
const FREE_CANDIDATES: usize = 16;

/// How many namespaces [`Registry::with_next_elsewhere`] looks at, for a write holding its
/// shard's lock.
const HELD_CANDIDATES: usize = 4;

/// How many freed tables' shards the registry keeps for tables to come: 70 KiB or so with
/// 16 shards, a fixed part of the store's memory, not charged to a budget.
const SPARE_SHARDS: usize = 32;

pub(crate) struct Registry {
    tables: Mutex<HashMap<Arc<str>, Table>>,
    /// The tables that hold keys with a TTL, by when their earliest deadline comes.
    schedule: Mutex<Schedule>,
    /// In a store with a budget: the budget, the default mode, the policy, and the tables
    /// whose mode lets them evict, taken in turn.
    budget: Option<Arc<Budget>>,
    eviction: Eviction,
    policy: Policy,
    evictable: Mutex<Vec<Table>>,
    hand: AtomicUsize,
    /// Shards of freed tables, for the next tables made (see [`Spare`]).
    spare: Mutex<Vec<Spare>>,
    /// Held through a reclaimer's round and through a write's purge of what expired
    /// ([`Registry::round`]).
    rounds: Mutex<()>,
    /// When the next look for empty shards may start ([`Registry::release_empty_shards`]),
    /// in nanoseconds since `made`; `u64::MAX` while one is under way.
    next_release: AtomicU64,
    /// When the background reclaimer may look next ([`Registry::release_in_background`]).
    next_background: AtomicU64,
    made: Instant,
}

/// How often at most the background reclaimer looks for empty shards in a nearly full store.
const BACKGROUND_RELEASE: Duration = Duration::from_secs(1);

/// A look for empty shards takes every shard's lock in turn; the next one waits this many
/// times as long as the last took, so that they take at most a tenth of the time.
const RELEASE_SPACING: u64 = 10;

/// The most namespaces a write about to be refused looks over for empty shards (about a
/// microsecond each: a few milliseconds of the write's time at most). In a store of more, the
/// background reclaimer gives them back ([`Registry::release_in_background`]).
pub(crate) const WRITE_RELEASE_TABLES: usize = 4_096;

/// One reclamation of expired entries at a time ([`Registry::round`]): held while it lasts.
pub(crate) struct Round<'r> {
    _one_at_a_time: MutexGuard<'r, ()>,
}

impl Registry {
    pub(crate) fn new(budget: Option<Arc<Budget>>, eviction: Eviction, policy: Policy) -> Self {
        Registry {
            tables: Mutex::default(),
            schedule: Mutex::default(),
            budget,
            eviction,
            policy,
            evictable: Mutex::default(),
            hand: AtomicUsize::new(0),
            spare: Mutex::default(),
            rounds: Mutex::default(),
            next_release: AtomicU64::new(0),
            next_background: AtomicU64::new(0),
            made: Instant::now(),
        }
    }

    /// The store's budget, if it has one.
    pub(crate) fn budget(&self) -> Option<&Budget> {
        self.budget.as_deref()
    }

    /// The table of `name`, made if the namespace has none, counted as one more handle.
    /// `mode`: the eviction mode the caller asks for, `None` for the store's default.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidNamespace`](crate::ErrorKind::InvalidNamespace) when the namespace
    /// already has another mode (SPEC 10.3), in a store with a budget.
    pub(crate) fn open(
        self: &Arc<Self>,
        name: &NamespaceName,
        shards: usize,
        clock: &Clock,
        mode: Option<Eviction>,
    ) -> Result<Table> {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let table = match tables.get(name.prefix()) {
            Some(table) => {
                // Without a budget nothing is evicted, and a table keeps no mode (`never`):
                // any mode asked is as good as another.
                let kept = self.budget.is_some();
                if let Some(asked) = mode.filter(|&m| kept && m != table.meta.mode) {
                    return Err(Error::invalid_namespace_mode(
                        name,
                        table.meta.mode.as_str(),
                        asked.as_str(),
                    ));
                }
                table.clone()
            }
            None => {
                let key: Arc<str> = name.prefix().into();
                let mode = mode.unwrap_or(self.eviction);
                let bounds = self.budget.as_ref().map(|budget| Bounds {
                    budget: Arc::clone(budget),
                    mode,
                    policy: self.policy,
                });
                let spare = self
                    .spare
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop();
                let table = Table::new(
                    shards,
                    clock.clone(),
                    key.clone(),
                    Arc::downgrade(self),
                    bounds,
                    spare,
                );
                tables.insert(key, table.clone());
                if self.budget.is_some() && mode != Eviction::Never {
                    let mut evictable = self
                        .evictable
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    table
                        .meta
                        .evictable_at
                        .store(evictable.len(), Ordering::Relaxed);
                    evictable.push(table.clone());
                    if let Some(budget) = &self.budget {
                        budget.evictable_table(true);
                    }
                }
                table
            }
        };
        // Under the lock: a release that sees no handle sees this one.
        table.meta.handles.fetch_add(1, Ordering::SeqCst);
        Ok(table)
    }

    /// Evicts one victim from a namespace other than `this`, taking the namespaces that may
    /// evict in turn and passing those that hold nothing eviction may take (a load of their
    /// count each); false when none of as many as the list held gave one. The room it frees is
    /// kept in `keep`, for the write it is made for, if there is one.
    ///
    /// The list is read a table at a time, under its lock only to take the next one: a copy
    /// of the whole list for each victim made every eviction from another namespace cost as
    /// much as the store had namespaces (3.9 ms a write with 100,000 of them, measured). While
    /// namespaces come and go beside it, the walk may see one twice and miss another; a write
    /// that found nothing tries again before it is refused.
    pub(crate) fn evict_elsewhere(
        &self,
        this: &Table,
        budget: &Budget,
        mut keep: Option<&mut Held<'_>>,
    ) -> bool {
        let start = self.hand.fetch_add(1, Ordering::Relaxed);
        let mut i = 0;
        loop {
            // The next table other than `this`, with the lock taken once for it.
            let table = {
                let evictable = self
                    .evictable
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let len = evictable.len();
                loop {
                    if i >= len {
                        return false;
                    }
                    let table = &evictable[(start + i) % len];
                    i += 1;
                    // One holding nothing eviction may take is passed at a load.
                    if !table.same(this) && table.evictable_entries() > 0 {
                        break table.clone();
                    }
                }
            };
            if table.evict_one(budget, &Spared::NONE, keep.as_deref_mut()) {
                return true;
            }
        }
    }

    /// For a write that holds its own shard's lock and takes its room elsewhere without
    /// letting go of it ([`Table::lock_with_budget`](super::table::Table)): `take` given the
    /// next namespace other than `this`, taken in turn as
    /// [`evict_elsewhere`](Self::evict_elsewhere) takes them, that holds more than one entry
    /// eviction may take (so a victim there does not empty and free it), under the list's
    /// lock (a clone of the table, made and dropped for each write, cost 5% of it). `None`
    /// when the list's lock is held (it is not waited for, see `try_write` in `table`) or none
    /// of the next [`HELD_CANDIDATES`] is such a namespace: the write then makes its room the
    /// slow way.
    pub(crate) fn with_next_elsewhere<R>(
        &self,
        this: &Table,
        take: impl FnOnce(&Table) -> Option<R>,
    ) -> Option<R> {
        let evictable = match self.evictable.try_lock() {
            Ok(evictable) => evictable,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        let len = evictable.len();
        let start = self.hand.fetch_add(1, Ordering::Relaxed);
        let other = (0..len.min(HELD_CANDIDATES))
            .map(|i| &evictable[(start + i) % len])
            .find(|table| !table.same(this) && table.evictable_entries() > 1)?;
        take(other)
    }

    /// Whether evicting every entry eviction may take would free at least `bytes` of the
    /// namespaces' structures and fixed parts: all of them for the namespaces that eviction
    /// empties ([`Table::empties_when_evicted`]) and no handle holds, other than `this` (they
    /// then go), and what the others' tables and
    /// eviction orders shrink by ([`Table::shrinks_by_at_least`]; `this` keeps the room of its
    /// `spared` entries, the write's own keys). Reads the list until it has
    /// seen enough: on the path of a write that does not fit otherwise, in a store whose
    /// namespaces' own memory is most of its budget.
    #[cold]
    pub(crate) fn frees_at_least(&self, this: &Table, spared: u64, bytes: u64) -> bool {
        let evictable = self
            .evictable
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut freed = 0u64;
        evictable.iter().any(|table| {
            freed += if table.empties_when_evicted()
                && !table.same(this)
                && table.meta.handles.load(Ordering::SeqCst) == 0
            {
                table.meta.structures.get()
            } else if table.same(this) {
                table.shrinks_by_at_least(spared)
            } else {
                table.shrinks_by_at_least(0)
            };
            freed >= bytes
        })
    }

    /// Evicts every entry of the next namespace that eviction empties
    /// ([`Table::empties_when_evicted`]) and no handle holds, other than `this`, holding at
    /// most [`FREED_WHOLE`] entries, in turn, which frees it with its structures and fixed
    /// part: what makes room when the namespaces' own memory, not their entries, fills the
    /// budget. False when no such namespace is among the next
    /// [`FREE_CANDIDATES`] (a larger namespace gives its tables' room back as its keys go one
    /// by one: emptied whole for one write, a cache whose handle is made per request would
    /// lose all its keys at once).
    pub(crate) fn free_one(&self, this: &Table) -> bool {
        let Some(budget) = self.budget.as_deref() else {
            return false;
        };
        let start = self.hand.fetch_add(1, Ordering::Relaxed);
        let candidates: Vec<Table> = {
            let evictable = self
                .evictable
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let len = evictable.len();
            (0..len)
                .map(|i| &evictable[(start + i) % len])
                .filter(|table| {
                    !table.same(this)
                        && table.empties_when_evicted()
                        && table.meta.handles.load(Ordering::SeqCst) == 0
                        && table.meta.structures.get() > 0
                })
                .take(FREE_CANDIDATES)
                .cloned()
                .collect()
        };
        // Counted outside the list's lock: a count takes each shard's lock in turn.
        let Some(table) = candidates
            .into_iter()
            .find(|table| table.stored() <= FREED_WHOLE)
        else {
            return false;
        };
        let mut evicted = false;
        // Until a handle comes to hold it: its entries are then written again.
        while table.meta.handles.load(Ordering::SeqCst) == 0
            && table.evict_one(budget, &Spared::NONE, None)
        {
            evicted = true;
        }
        evicted
    }

    /// Keeps the shards of a freed table for a table to come, when it has few.
    pub(crate) fn keep_spare(&self, spare: Spare) {
        // Emptied first: a table without a budget keeps its hash tables' room.
        let spare = spare.emptied();
        let mut kept = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < SPARE_SHARDS {
            kept.push(spare);
        }
    }

    /// Taken by whatever reclaims tables' expired entries, for as long as it looks at them:
    /// a reclaimer's round, a write's purge before it evicts (SPEC 10.4), and
    /// [`MemoryDriver::purge_expired`](super::MemoryDriver::purge_expired). While a round had
    /// a table out of the schedule, a purge did not see it, and a write in a store whose room
    /// an expired entry of that table held was refused; while a purge had a table's due time
    /// raised ([`Table::reclaim_with`]), a round took the table's time out of the schedule for
    /// good, and its later deadlines were never reclaimed (the model test caught both).
    pub(crate) fn round(&self) -> Round<'_> {
        Round {
            _one_at_a_time: self.rounds.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// Schedules `table`'s reclamation at `at`.
    pub(crate) fn schedule(&self, at: u64, table: &Table) {
        self.schedule
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(at, table);
    }

    /// Takes out of the schedule the tables due at `now` (`u64::MAX`: all), and says when
    /// the next is due (`u64::MAX`: none is).
    pub(crate) fn take_due(&self, _round: &Round<'_>, now: u64) -> (Vec<Table>, u64) {
        let mut schedule = self.schedule.lock().unwrap_or_else(PoisonError::into_inner);
        let due = schedule.take_due(now);
        schedule.trim();
        due
    }

    /// After a visit that reclaimed `table`'s expired entries and left `left` its earliest
    /// deadline: the table is scheduled then, or, holding no deadline any more, is freed if
    /// it is empty and no handle holds it.
    pub(crate) fn reschedule(&self, table: &Table, left: u64) {
        if left != u64::MAX {
            self.schedule(left, table);
        } else if table.meta.handles.load(Ordering::SeqCst) == 0 {
            self.release(table);
        }
    }

    /// Drops `table` from the registry if no handle holds it and it holds no entry; the next
    /// open of the namespace makes a new, empty table, which is the same thing.
    pub(crate) fn release(&self, table: &Table) {
        let removed = {
            let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
            let unused = table.meta.handles.load(Ordering::SeqCst) == 0 && table.is_empty();
            let registered = tables.get(&table.meta.name).is_some_and(|t| t.same(table));
            let removed = (unused && registered)
                .then(|| tables.remove(&table.meta.name))
                .flatten();
            if let Some(removed) = &removed {
                // Its times go too once they outnumber the scheduled tables (`trim`): left to
                // the reclaimer's rounds, with the reclaimer off they were kept for every
                // namespace that ever held a deadline.
                let mut schedule = self.schedule.lock().unwrap_or_else(PoisonError::into_inner);
                schedule.remove(removed);
                schedule.trim();
                drop(schedule);
                let mut evictable = self
                    .evictable
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                // Out of the list in place of its last table (a search of the list on every
                // release made releases cost as much as there were namespaces).
                let at = table.meta.evictable_at.swap(usize::MAX, Ordering::Relaxed);
                if evictable.get(at).is_some_and(|t| t.same(table)) {
                    evictable.swap_remove(at);
                    if let Some(budget) = &self.budget {
                        budget.evictable_table(false);
                    }
                    if let Some(moved) = evictable.get(at) {
                        moved.meta.evictable_at.store(at, Ordering::Relaxed);
                    }
                }
                if evictable.capacity() > 64 && evictable.len() < evictable.capacity() / 4 {
                    evictable.shrink_to_fit();
                }
            }
            if tables.capacity() > 64 && tables.len() < tables.capacity() / 4 {
                tables.shrink_to_fit();
            }
            removed
        };
        // Freed outside the lock, its structures' charge given back to the budget; its last
        // clone gives its shards to `keep_spare`.
        if let Some(table) = removed {
            table.meta.freed.store(true, Ordering::Release);
            table.give_back();
        }
    }

    /// One round of reclamation at `now`: the tables whose earliest deadline has come (all of
    /// them when `full`) have their expired entries reclaimed (`full`: all of them, not a
    /// share of a large table's) and are scheduled again, or freed if left empty with no
    /// handle. Returns how many entries it freed.
    pub(crate) fn reclaim(&self, round: &Round<'_>, now: u64, full: bool) -> usize {
        let (due, _) = self.take_due(round, if full { u64::MAX } else { now });
        let mut freed = 0;
        for table in due {
            let (reaped, left) = table.reclaim_with(round, |t| t.reap(full));
            freed += reaped;
            self.reschedule(&table, left);
        }
        freed
    }

    /// Gives back what the empty shards of every namespace hold ([`Table::release_empty_shards`])
    /// for a write the budget has no room for otherwise, in a store of at most `most`
    /// namespaces; true when some was given back. One look at a time, and none sooner after
    /// the last than [`RELEASE_SPACING`] times what it took (false then): with many namespaces
    /// a look takes a while, and writes refused one after another must not each repeat it.
    pub(crate) fn release_empty_shards(&self, most: usize) -> bool {
        let start = self.since_made();
        let next = self.next_release.load(Ordering::Acquire);
        if start < next
            || self.len() > most
            || self
                .next_release
                .compare_exchange(next, u64::MAX, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return false;
        }
        // The next look's time is set when this one ends, a panic included: left at "under
        // way", it would stop every later look.
        struct Spaced<'r> {
            registry: &'r Registry,
            start: u64,
        }
        impl Drop for Spaced<'_> {
            fn drop(&mut self) {
                let end = self.registry.since_made();
                let took = end.saturating_sub(self.start);
                self.registry.next_release.store(
                    end.saturating_add(took.saturating_mul(RELEASE_SPACING)),
                    Ordering::Release,
                );
            }
        }
        let _spaced = Spaced {
            registry: self,
            start,
        };
        let released: u64 = self
            .snapshot()
            .iter()
            .map(Table::release_empty_shards)
            .sum();
        released > 0
    }

    /// For the background reclaimer's rounds: in a store with a budget that is nearly full,
    /// gives back what empty shards keep ([`Registry::release_empty_shards`]), at most once
    /// every [`BACKGROUND_RELEASE`], and no sooner after the last look than a hundred times
    /// what it took (a store of a million namespaces takes a while to look over; a nearly
    /// full one stays so). A store whose namespaces evict refuses no write for room, so
    /// without this the tables and orders of shards a handle's namespace emptied would keep
    /// their room while writes evict live keys.
    pub(crate) fn release_in_background(&self) {
        if !self.budget.as_deref().is_some_and(Budget::nearly_full) {
            return;
        }
        let start = self.since_made();
        if start < self.next_background.load(Ordering::Relaxed) {
            return;
        }
        self.release_empty_shards(usize::MAX);
        let end = self.since_made();
        let spacing = u64::try_from(BACKGROUND_RELEASE.as_nanos())
            .unwrap_or(u64::MAX)
            .max(end.saturating_sub(start).saturating_mul(100));
        self.next_background
            .store(end.saturating_add(spacing), Ordering::Relaxed);
    }

    /// Nanoseconds since the registry was made (below `u64::MAX`, which marks a look under
    /// way).
    fn since_made(&self) -> u64 {
        u64::try_from(self.made.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Every registered table.
    pub(crate) fn snapshot(&self) -> Vec<Table> {
        self.tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Every registered table with its namespace prefix.
    pub(crate) fn named(&self) -> Vec<(Arc<str>, Table)> {
        self.tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, table)| (Arc::clone(name), table.clone()))
            .collect()
    }

    /// How many namespaces have a table.
    pub(crate) fn len(&self) -> usize {
        self.tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}
