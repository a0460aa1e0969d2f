//! A store's memory budget (SPEC 10): what its entries cost, what it may hold, and how a write
//! makes room.
//!
//! A write reserves what its new entry will cost before it locks its shard, and settles the
//! difference once done (an overwrite gives back what the old value cost). When the
//! reservation does not fit, the write makes room itself, holding no shard lock while it does:
//! first expired entries anywhere in the store (SPEC 10.4), then victims of its own shard, of
//! the other shards of its namespace, then of other namespaces in turn, each chosen by that
//! shard's eviction order and allowed by that namespace's mode. A write that even all the
//! evictable entries could not make room for is refused whole before anything is evicted
//! (SPEC 10.5).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hashbrown::HashSet;

use super::slots::Tally;
use super::spared::{SCANNED, Spared};
use super::table::Table;
use crate::{Error, Result};

/// How many victims a write evicts at least before it gives up (others may be taking the room
/// it frees as fast as it frees it); it goes on to twice the entries the store held when it
/// began: a shard whose table just doubled may need thousands of small entries evicted.
const ROUNDS: u64 = 10_000;
/// How many times in a row `make_room` finds nothing to evict before it refuses a write the
/// counts say eviction could make room for.
const FRUITLESS_ROUNDS: usize = 64;

pub(crate) struct Budget {
    pub(super) max_bytes: u64,
    pub(super) max_entries: u64,
    /// Charged to stored entries and to reservations in flight.
    bytes: AtomicU64,
    entries: AtomicU64,
    /// Of which eviction cannot free: entries their namespace's mode keeps, and the shards'
    /// structures (see [`Tally`]).
    fixed_bytes: AtomicU64,
    fixed_entries: AtomicU64,
    /// A lower bound of the deadlines held (driver-clock nanoseconds), `u64::MAX` for none:
    /// when it has passed, some entry may have expired.
    earliest: AtomicU64,
    /// Writes so far: the recency clock the sampled LRU marks entries with.
    epoch: AtomicU64,
    /// Namespaces whose entries may be evicted (`any` and `with-ttl`), as the registry lists
    /// them: with more than one, a write that needs room draws whose it takes
    /// ([`Table::room_elsewhere`]).
    tables: AtomicUsize,
    /// Draws made off the write path (`Table::evict_somewhere`).
    draws: AtomicU64,
}

/// SplitMix64's finalizer: spreads a counter (or a hash) over 64 bits.
pub(super) fn split_mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a write reserved.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Reservation {
    pub(super) bytes: u64,
    pub(super) entries: u64,
}

/// The budget's state, for [`MemoryDriver::usage`](super::MemoryDriver::usage).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Used {
    pub(crate) bytes: u64,
    pub(crate) entries: u64,
}

impl Budget {
    pub(crate) fn new(max_bytes: Option<u64>, max_entries: Option<u64>) -> Self {
        Budget {
            max_bytes: max_bytes.unwrap_or(u64::MAX),
            max_entries: max_entries.unwrap_or(u64::MAX),
            bytes: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            fixed_bytes: AtomicU64::new(0),
            fixed_entries: AtomicU64::new(0),
            earliest: AtomicU64::new(u64::MAX),
            epoch: AtomicU64::new(0),
            tables: AtomicUsize::new(0),
            draws: AtomicU64::new(0),
        }
    }

    pub(crate) fn used(&self) -> Used {
        Used {
            bytes: self.bytes.load(Ordering::Relaxed),
            entries: self.entries.load(Ordering::Relaxed),
        }
    }

    /// The registry listed (`joined`) or dropped a namespace whose entries may be evicted.
    pub(super) fn evictable_table(&self, joined: bool) {
        if joined {
            self.tables.fetch_add(1, Ordering::Relaxed);
        } else {
            self.tables.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Whether more than one namespace's entries may be evicted.
    #[inline]
    pub(super) fn shared(&self) -> bool {
        self.tables.load(Ordering::Relaxed) > 1
    }

    /// Entries eviction may take, store-wide.
    #[inline]
    pub(super) fn evictable_entries(&self) -> u64 {
        self.entries
            .load(Ordering::Relaxed)
            .saturating_sub(self.fixed_entries.load(Ordering::Relaxed))
    }

    /// A random number for a draw made off the write path.
    pub(super) fn draw(&self) -> u64 {
        split_mix(self.draws.fetch_add(1, Ordering::Relaxed))
    }

    /// Moves the recency clock on (a write, for the sampled LRU).
    #[inline]
    pub(super) fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether some stored entry may have expired by `now` (driver-clock nanoseconds).
    #[inline]
    pub(super) fn may_hold_expired(&self, now: impl FnOnce() -> u64) -> bool {
        let earliest = self.earliest.load(Ordering::Acquire);
        // No deadline stored: no clock read.
        earliest != u64::MAX && earliest <= now()
    }

    /// The recency clock, for marks.
    #[inline]
    pub(super) fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::Relaxed) as u32
    }

    /// Takes `want` if it fits now. Each counter only ever moves within its limit, so the
    /// usage a reader sees is never over the budget because of a reservation.
    ///
    /// A new entry is refused while the store is over its budget even if its key and value
    /// cost nothing (a counter under a short key): the table it goes into, charged as it grows,
    /// is what the store is over by.
    pub(super) fn try_take(&self, want: Reservation) -> bool {
        let take = |counter: &AtomicU64, amount: u64, max: u64| {
            if amount == 0 {
                return want.entries == 0 || counter.load(Ordering::Acquire) <= max;
            }
            counter
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                    used.checked_add(amount).filter(|&total| total <= max)
                })
                .is_ok()
        };
        if !take(&self.entries, want.entries, self.max_entries) {
            return false;
        }
        if !take(&self.bytes, want.bytes, self.max_bytes) {
            self.entries.fetch_sub(want.entries, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Takes `want` while giving back what `freed` removed (its counts are negative), in at
    /// most one update of each counter, if the result is within the budget; otherwise nothing
    /// changes. The caller settles the rest of `freed` (what of it was fixed) with the write.
    pub(super) fn trade(&self, want: Reservation, freed: &Tally) -> bool {
        let moved = |counter: &AtomicU64, amount: u64, delta: i64, max: u64| {
            let change = (amount as i128) + (delta as i128);
            if change == 0 {
                // A victim the size of the new entry: nothing to move.
                return counter.load(Ordering::Acquire) <= max;
            }
            counter
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                    let total = (used as i128) + change;
                    (0..=max as i128).contains(&total).then_some(total as u64)
                })
                .is_ok()
        };
        if !moved(&self.entries, want.entries, freed.entries, self.max_entries) {
            return false;
        }
        if !moved(&self.bytes, want.bytes, freed.bytes, self.max_bytes) {
            // Undo the entries' part.
            let back = want.entries as i64 + freed.entries;
            if back > 0 {
                self.entries.fetch_sub(back as u64, Ordering::AcqRel);
            } else if back < 0 {
                self.entries
                    .fetch_add(back.unsigned_abs(), Ordering::AcqRel);
            }
            return false;
        }
        true
    }

    /// Whether usage is over a limit: a write stored more than it reserved (the key it meant
    /// to overwrite was evicted by another write meanwhile).
    fn over(&self) -> bool {
        self.bytes.load(Ordering::Acquire) > self.max_bytes
            || self.entries.load(Ordering::Acquire) > self.max_entries
    }

    /// How many bytes evicting every evictable entry would leave `want` short of (0: it
    /// would fit), not counting the namespaces freed with their last entry; `None` when it
    /// would not fit for its entries.
    pub(super) fn shortfall(&self, want: Reservation) -> Option<u64> {
        let fixed_bytes = self.fixed_bytes.load(Ordering::Acquire);
        let fixed_entries = self.fixed_entries.load(Ordering::Acquire);
        (fixed_entries.saturating_add(want.entries) <= self.max_entries).then(|| {
            fixed_bytes
                .saturating_add(want.bytes)
                .saturating_sub(self.max_bytes)
        })
    }

    /// Applies what changes to a shard did, net of what the write had reserved; true when
    /// they stored more than that and the store is now over its budget.
    pub(super) fn settle(&self, reserved: Reservation, tally: &Tally) -> bool {
        let apply = |counter: &AtomicU64, delta: i64| {
            if delta > 0 {
                counter.fetch_add(delta as u64, Ordering::AcqRel);
            } else if delta < 0 {
                counter.fetch_sub(delta.unsigned_abs(), Ordering::AcqRel);
            }
        };
        apply(&self.bytes, tally.bytes - reserved.bytes as i64);
        apply(&self.entries, tally.entries - reserved.entries as i64);
        apply(&self.fixed_bytes, tally.fixed_bytes);
        apply(&self.fixed_entries, tally.fixed_entries);
        if tally.earliest != u64::MAX {
            self.earliest.fetch_min(tally.earliest, Ordering::AcqRel);
        }
        let grew = tally.bytes > reserved.bytes as i64 || tally.entries > reserved.entries as i64;
        grew && self.over()
    }
}

impl Table {
    /// Whether evicting everything evictable would make room for `want` (a write that does
    /// not fit even then is refused with nothing evicted, SPEC 10.5): the evictable entries,
    /// and the namespaces of `any` mode that no handle holds, freed with their last entry,
    /// their structures and fixed part with them (with few keys each, most of what they
    /// take).
    pub(super) fn could_fit(&self, budget: &Budget, want: Reservation) -> bool {
        match budget.shortfall(want) {
            Some(0) => true,
            None => false,
            Some(short) => self
                .meta
                .registry
                .upgrade()
                .is_some_and(|registry| registry.frees_at_least(self, short)),
        }
    }

    /// Reserves room for a write that may store `bytes` in one more entry (SPEC 10.2),
    /// making room if needed. Nothing to do without a budget.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::OutOfMemory`](crate::ErrorKind::OutOfMemory), with nothing evicted, when
    /// the write is larger than the room evicting every evictable entry would make.
    #[inline]
    pub(super) fn reserve(
        &self,
        key: &str,
        bytes: impl FnOnce() -> u64,
        entries: u64,
    ) -> Result<Reservation> {
        if self.budget().is_none() {
            return Ok(Reservation::default());
        }
        let bytes = bytes();
        self.reserve_with(&[key], Reservation { bytes, entries }, || {
            // A write over a present key only needs what it adds to it.
            match self.charge_of(key) {
                Some(old) => Reservation {
                    bytes: bytes.saturating_sub(old),
                    entries: 0,
                },
                None => Reservation { bytes, entries },
            }
        })
    }

    /// Reserves room for a write that only replaces a present value (`cas`): nothing when the
    /// key is missing, since the write then stores nothing.
    pub(super) fn reserve_replacement(
        &self,
        key: &str,
        bytes: impl FnOnce() -> u64,
    ) -> Result<Reservation> {
        if self.budget().is_none() {
            return Ok(Reservation::default());
        }
        let bytes = bytes();
        self.reserve_with(&[key], Reservation { bytes, entries: 0 }, || {
            match self.charge_of(key) {
                Some(old) => Reservation {
                    bytes: bytes.saturating_sub(old),
                    entries: 0,
                },
                None => Reservation::default(),
            }
        })
    }

    /// Reserves room for a batch: `keys`, what each new entry will cost, and what adding them
    /// may grow their shards' tables by.
    pub(super) fn reserve_batch(
        &self,
        keys: &[&str],
        costs: &[u64],
        growth: u64,
    ) -> Result<Reservation> {
        if self.budget().is_none() {
            return Ok(Reservation::default());
        }
        let all = Reservation {
            bytes: costs.iter().sum::<u64>() + growth,
            entries: keys.len() as u64,
        };
        self.reserve_with(keys, all, || {
            let mut want = Reservation::default();
            // A key given twice is stored once, as its last pair: the pairs are counted from
            // the last, each key once (in a set for a large batch, not searched for again in
            // the rest of the batch at every pair).
            let mut later: Option<HashSet<&str>> =
                (keys.len() > SCANNED).then(|| HashSet::with_capacity(keys.len()));
            for (at, (&key, &bytes)) in keys.iter().zip(costs).enumerate().rev() {
                let repeated = match &mut later {
                    Some(later) => !later.insert(key),
                    None => keys[at + 1..].contains(&key),
                };
                if repeated {
                    continue;
                }
                match self.charge_of(key) {
                    Some(old) => want.bytes += bytes.saturating_sub(old),
                    None => {
                        want.bytes += bytes;
                        want.entries += 1;
                    }
                }
            }
            if want.entries > 0 {
                want.bytes += growth;
            }
            want
        })
    }

    /// Takes `want` if it fits; when the store is full, takes what `needed` says the write
    /// adds to what is already there, making room for it.
    fn reserve_with(
        &self,
        keys: &[&str],
        want: Reservation,
        needed: impl FnOnce() -> Reservation,
    ) -> Result<Reservation> {
        let Some(budget) = self.budget() else {
            return Ok(Reservation::default());
        };
        if self.counts_writes() {
            budget.epoch.fetch_add(1, Ordering::Relaxed);
        }
        if budget.try_take(want) {
            return Ok(want);
        }
        let want = needed();
        if budget.try_take(want) {
            return Ok(want);
        }
        self.make_room(budget, keys, want)
    }

    /// Frees room for `want`, sparing `keys` (the write's own).
    #[cold]
    fn make_room(&self, budget: &Budget, keys: &[&str], want: Reservation) -> Result<Reservation> {
        let key = keys.first().copied().unwrap_or("");
        let spared = Spared::new(keys);
        let mut fruitless = 0;
        for _ in 0..rounds(budget) {
            // Expired entries first, wherever they are (SPEC 10.4).
            if budget.may_hold_expired(|| self.now()) {
                self.purge_expired_everywhere(budget);
                if budget.try_take(want) {
                    return Ok(want);
                }
            }
            if !self.could_fit(budget, want) {
                return Err(refused(budget, key, want, self.unpaid()));
            }
            // When evicting entries alone cannot make the room, a namespace goes whole first.
            let structural = budget.shortfall(want) != Some(0);
            if (structural && self.free_a_namespace()) || self.evict_somewhere(budget, &spared) {
                fruitless = 0;
            } else {
                // Nothing could go just now, though the counts say something may: the
                // entries other writes are evicting and storing at this instant. Try again
                // a few times before refusing.
                fruitless += 1;
                if fruitless > FRUITLESS_ROUNDS {
                    return Err(refused(budget, key, want, self.unpaid()));
                }
                std::thread::yield_now();
            }
            if budget.try_take(want) {
                return Ok(want);
            }
        }
        Err(refused(budget, key, want, self.unpaid()))
    }

    /// After a write that stored more than it reserved: evicts until the store is within
    /// its budget again (or nothing more may go).
    #[cold]
    pub(super) fn shed(&self, budget: &Budget) {
        for _ in 0..rounds(budget) {
            if !budget.over() {
                return;
            }
            // When what eviction cannot free is over the budget by itself (namespaces' own
            // memory), a namespace goes whole first: evicting this namespace's keys first
            // would free little of it (what their room in a table lets the table shrink by).
            let structural = budget.shortfall(Reservation::default()) != Some(0);
            let evicted = (structural && self.free_a_namespace())
                || self.evict_somewhere(budget, &Spared::NONE);
            if !evicted {
                return;
            }
        }
    }

    /// Evicts every entry of a namespace of `any` mode that no handle holds, of a few keys,
    /// other than this one, which frees it (`Registry::free_one`); false when there is none.
    fn free_a_namespace(&self) -> bool {
        self.meta
            .registry
            .upgrade()
            .is_some_and(|registry| registry.free_one(self))
    }

    /// Evicts one victim: from this namespace's shards first, then from other namespaces; or,
    /// in a store of several namespaces that may evict, from the others first when the draw
    /// says so ([`Table::room_elsewhere`]).
    fn evict_somewhere(&self, budget: &Budget, spared: &Spared<'_>) -> bool {
        let elsewhere_first = budget.shared() && self.drawn_elsewhere(budget, spared);
        if !elsewhere_first && self.evict_one(budget, spared) {
            return true;
        }
        let elsewhere = self
            .meta
            .registry
            .upgrade()
            .is_some_and(|registry| registry.evict_elsewhere(self, budget));
        elsewhere || (elsewhere_first && self.evict_one(budget, spared))
    }

    /// Removes expired entries from every namespace that holds keys with a TTL, and lowers the
    /// store's earliest deadline to what remains.
    fn purge_expired_everywhere(&self, budget: &Budget) {
        let seen = budget.earliest.load(Ordering::Acquire);
        let now = self.now();
        let earliest = match self.meta.registry.upgrade() {
            // The tables with something expired, from the schedule (the others' deadlines are
            // ahead: the next of them is when the earliest is).
            Some(registry) => {
                let _round = registry.round();
                let (due, next) = registry.take_due(now);
                let mut earliest = next;
                for table in due {
                    let (_, left) = table.reclaim_with(|t| (0, t.purge(now)));
                    earliest = earliest.min(left);
                    // Scheduled again; or, emptied with no handle, freed as the reclaimer
                    // frees what its rounds empty (left in the registry, it kept its memory,
                    // and eviction walked over it).
                    registry.reschedule(&table, left);
                }
                earliest
            }
            // The store is going: this namespace alone.
            None => self.reclaim_with(|t| (0, t.purge(now))).1,
        };
        // A write that stored an earlier deadline meanwhile lowered it further: keep that.
        let _ =
            budget
                .earliest
                .compare_exchange(seen, earliest, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// How many victims a write evicts at most: see [`ROUNDS`].
fn rounds(budget: &Budget) -> u64 {
    ROUNDS.max(budget.used().entries.saturating_mul(2))
}

/// The error for a write refused for want of room; `opening`: the namespace's own memory,
/// when the write was to give the namespace its first key and reserved it too.
fn refused(budget: &Budget, key: &str, want: Reservation, opening: u64) -> Error {
    let used = budget.used();
    // What went over: the bytes, or else the entries; and of what is in use, what eviction
    // cannot free (without it, a refusal in a store that looks half empty is a riddle).
    let (wanted, limit, in_use, kept, what) =
        if want.bytes > budget.max_bytes || used.bytes + want.bytes > budget.max_bytes {
            let first = if opening > 0 && opening <= want.bytes {
                format!(" ({opening} of them the namespace's own memory, with its first key)")
            } else {
                String::new()
            };
            (
                format!("{}{first}", counted(want.bytes, "byte")),
                format!("budget of {}", counted(budget.max_bytes, "byte")),
                used.bytes,
                budget.fixed_bytes.load(Ordering::Acquire),
                ": what `never` and `with-ttl` namespaces keep, and namespaces' own memory",
            )
        } else {
            (
                format!("{} more {}", want.entries, noun(want.entries, "entry")),
                format!("limit of {}", counted(budget.max_entries, "entry")),
                used.entries,
                budget.fixed_entries.load(Ordering::Acquire),
                ", kept by their namespaces' modes",
            )
        };
    Error::out_of_memory(
        key,
        format!(
            "{wanted} would go over the store's {limit} ({in_use} in use, {} not \
             evictable{what}), and eviction may not free enough",
            kept.min(in_use),
        ),
    )
}

/// `n` and `thing` for it: `1 byte`, `2 entries`.
fn counted(n: u64, thing: &str) -> String {
    format!("{n} {}", noun(n, thing))
}

/// `thing` for a count of `n`: singular for one (`byte`, `entry`), plural otherwise.
fn noun(n: u64, thing: &str) -> String {
    match (n, thing.strip_suffix('y')) {
        (1, _) => thing.to_owned(),
        (_, Some(stem)) => format!("{stem}ies"),
        (_, None) => format!("{thing}s"),
    }
}
