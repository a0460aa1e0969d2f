//! A store's memory budget (SPEC 10): shared counters of what its entries and structures cost
//! against what it may hold, which writes take room from and give it back to, and the clocks
//! that guide eviction (the earliest deadline held, the recency epoch).
//!
//! A write takes what its new entry will cost under its shard's lock, and settles the
//! difference once done (an overwrite gives back what the old value cost); when it does not
//! fit, the write makes room (`table/room.rs` under the lock, `table/reserve.rs` without it).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::count::Count;
use super::slots::Tally;

pub(crate) struct Budget {
    pub(super) max_bytes: u64,
    pub(super) max_entries: u64,
    /// Charged to stored entries and to reservations in flight (below zero for an instant,
    /// read as zero: see [`Count`]; unsigned, the fixed bytes were seen wrapped at 148 less
    /// 1,568).
    bytes: Count,
    entries: Count,
    /// Of which eviction cannot free: entries their namespace's mode keeps, and the shards'
    /// structures (see [`Tally`]).
    fixed_bytes: Count,
    fixed_entries: Count,
    /// A lower bound of the deadlines held (driver-clock nanoseconds), `u64::MAX` for none:
    /// when it has passed, some entry may have expired.
    earliest: AtomicU64,
    /// Writes so far: the recency clock the sampled LRU marks entries with.
    epoch: AtomicU64,
    /// Namespaces whose entries may be evicted (`any` and `with-ttl`), as the registry lists
    /// them: with more than one, a write that needs room draws whose it takes
    /// ([`Table::room_elsewhere`](super::table::Table::room_elsewhere)).
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

impl Reservation {
    /// What `self` needs past `reserved`: nothing where `reserved` covers it.
    pub(super) fn past(self, reserved: Reservation) -> Reservation {
        Reservation {
            bytes: self.bytes.saturating_sub(reserved.bytes),
            entries: self.entries.saturating_sub(reserved.entries),
        }
    }

    /// Both together.
    pub(super) fn plus(self, more: Reservation) -> Reservation {
        Reservation {
            bytes: self.bytes + more.bytes,
            entries: self.entries + more.entries,
        }
    }

    /// Whether it is no room at all.
    pub(super) fn is_empty(self) -> bool {
        self.bytes == 0 && self.entries == 0
    }
}

/// Room that a write's own victims freed, kept for that write: their counts stay charged to
/// the budget until the write takes its room with them ([`Held::take`]), so that writes racing
/// it cannot take the room first (a batch that needs many entries' room at once, given back
/// one victim at a time, fed every single write beside it and went without). Given back to
/// the budget if the write does not take it: refused, or unwound by a panic.
pub(super) struct Held<'b> {
    budget: &'b Budget,
    /// The victims' bytes and entries (negative: what taking the write's room gives back).
    room: Tally,
    /// What the victims grew the structures by (their shards' ghosts; negative when their
    /// tables shrank more), settled with their namespaces.
    restructured: i64,
}

impl<'b> Held<'b> {
    pub(super) fn new(budget: &'b Budget) -> Self {
        Held {
            budget,
            room: Tally::new(),
            restructured: 0,
        }
    }

    /// Keeps the room `freed` (a victim's tally, about to be settled) made: its bytes and
    /// entries leave the tally for the write, the rest of it (what its namespace counts) is
    /// settled as before.
    pub(super) fn keep(&mut self, freed: &mut Tally) {
        self.restructured += freed.structures;
        let (bytes, entries) = freed.hand_over_room();
        self.room.bytes += bytes;
        self.room.entries += entries;
    }

    /// Takes `want` for the write, with the room kept: true when it fits, and the room kept
    /// then went to it.
    pub(super) fn take(&mut self, want: Reservation) -> bool {
        let taken = if self.is_empty() {
            self.budget.try_take(want)
        } else {
            self.budget.trade(want, &self.room)
        };
        if taken {
            self.room = Tally::new();
        }
        taken
    }

    /// Gives the room kept back to the budget, for any write to take.
    pub(super) fn give_back(&mut self) {
        if !self.is_empty() {
            self.budget.settle(Reservation::default(), &self.room);
            self.room = Tally::new();
        }
    }

    fn is_empty(&self) -> bool {
        self.room.bytes == 0 && self.room.entries == 0
    }

    /// What the victims kept so far grew the structures by, if they grew them.
    pub(super) fn grown(&self) -> u64 {
        self.restructured.max(0) as u64
    }

    /// The budget the room is kept in.
    pub(super) fn budget(&self) -> &'b Budget {
        self.budget
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.give_back();
    }
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
            bytes: Count::default(),
            entries: Count::default(),
            fixed_bytes: Count::default(),
            fixed_entries: Count::default(),
            earliest: AtomicU64::new(u64::MAX),
            epoch: AtomicU64::new(0),
            tables: AtomicUsize::new(0),
            draws: AtomicU64::new(0),
        }
    }

    pub(crate) fn used(&self) -> Used {
        Used {
            bytes: self.bytes.get(),
            entries: self.entries.get(),
        }
    }

    /// Whether a write of `bytes` is a large part of the budget: a sixty-fourth of it or more.
    /// What such a write grows the store's structures by (the tables and eviction orders of
    /// the shards it opens, in a small store a good part of the budget) may find nothing left
    /// to evict to make up for it; a smaller write's growth is small beside what others hold.
    pub(super) fn large_for(&self, bytes: u64) -> bool {
        bytes >= self.max_bytes / 64
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
        self.entries.get().saturating_sub(self.fixed_entries.get())
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

    /// The lower bound of the deadlines held, `u64::MAX` for none.
    pub(super) fn earliest(&self) -> u64 {
        self.earliest.load(Ordering::Acquire)
    }

    /// After a purge that saw the earliest deadline at `seen`: sets it to the earliest left
    /// (`earliest`), unless a write stored an earlier deadline meanwhile (that one stays).
    pub(super) fn purged(&self, seen: u64, earliest: u64) {
        let _ = self
            .earliest
            .compare_exchange(seen, earliest, Ordering::AcqRel, Ordering::Acquire);
    }

    /// What eviction cannot free: bytes and entries.
    pub(super) fn fixed(&self) -> (u64, u64) {
        (self.fixed_bytes.get(), self.fixed_entries.get())
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
        let take = |counter: &Count, amount: u64, max: u64| {
            if amount == 0 {
                return want.entries == 0 || counter.get() <= max;
            }
            counter.add_within(amount as i64, max)
        };
        if !take(&self.entries, want.entries, self.max_entries) {
            return false;
        }
        if !take(&self.bytes, want.bytes, self.max_bytes) {
            self.entries.add(-(want.entries as i64));
            return false;
        }
        true
    }

    /// Takes `want` while giving back what `freed` removed (its counts are negative), in at
    /// most one update of each counter, if the result is within the budget; otherwise nothing
    /// changes. The caller settles the rest of `freed` (what of it was fixed) with the write.
    pub(super) fn trade(&self, want: Reservation, freed: &Tally) -> bool {
        let moved = |counter: &Count, amount: u64, delta: i64, max: u64| {
            let change = (amount as i64).saturating_add(delta);
            if change == 0 {
                // A victim the size of the new entry: nothing to move.
                return counter.get() <= max;
            }
            counter.add_within(change, max)
        };
        if !moved(&self.entries, want.entries, freed.entries, self.max_entries) {
            return false;
        }
        if !moved(&self.bytes, want.bytes, freed.bytes, self.max_bytes) {
            // Undo the entries' part.
            self.entries.add(-(want.entries as i64 + freed.entries));
            return false;
        }
        true
    }

    /// Takes `want` whatever is left, for a write that could not make its room under its
    /// locks (`LAST_ATTEMPT`, `table/room.rs`): the store goes over its budget,
    /// and the write's `tally` is marked for it to shed after ([`Tally::forced`]). Taken under
    /// the write's locks, before it stores: taken when it settled, once they were let go, what
    /// it stored could be evicted by another write first, the count below zero meanwhile.
    pub(super) fn take_over(&self, want: Reservation, tally: &mut Tally) {
        self.bytes.add(want.bytes as i64);
        self.entries.add(want.entries as i64);
        tally.forced = true;
    }

    /// Whether usage is within an eighth of a limit: where an evicting store stays once it
    /// has filled.
    pub(super) fn nearly_full(&self) -> bool {
        let near = |used: &Count, max: u64| used.get() >= max - max / 8;
        near(&self.bytes, self.max_bytes) || near(&self.entries, self.max_entries)
    }

    /// Whether eviction is making room for bytes, not only for entries: the bytes in use are
    /// within a sixteenth of the byte budget, or the entries are not within a sixteenth of
    /// theirs (a write larger than the room left is making its room: a large value, a large
    /// batch). (With the bytes in use alone, a batch of 600 KB making its room in a store at
    /// 60% of 1 MiB shrank no table as its victims went, and was refused after evicting
    /// hundreds of keys for it.)
    #[inline]
    pub(super) fn short_of_bytes(&self) -> bool {
        let near = |used: &Count, max: u64| used.get() > max - max / 16;
        near(&self.bytes, self.max_bytes) || !near(&self.entries, self.max_entries)
    }

    /// Whether the bytes of the entries eviction may take (what evicting them gives back,
    /// their tables' room aside) are fewer than the store is over its byte budget by: then
    /// only tables that shrink can make up the rest.
    pub(super) fn entries_cannot_make_up(&self) -> bool {
        let bytes = self.bytes.get();
        let fixed = self.fixed_bytes.get();
        bytes.saturating_sub(fixed) < bytes.saturating_sub(self.max_bytes)
    }

    /// Whether usage is over a limit: a write stored more than it reserved (the key it meant
    /// to overwrite was evicted by another write meanwhile).
    pub(super) fn over(&self) -> bool {
        self.bytes.get() > self.max_bytes || self.entries.get() > self.max_entries
    }

    /// How many bytes evicting every evictable entry would leave `want` short of (0: it
    /// would fit), not counting the namespaces freed with their last entry; `None` when it
    /// would not fit for its entries.
    pub(super) fn shortfall(&self, want: Reservation) -> Option<u64> {
        let fixed_bytes = self.fixed_bytes.get();
        let fixed_entries = self.fixed_entries.get();
        (fixed_entries.saturating_add(want.entries) <= self.max_entries).then(|| {
            fixed_bytes
                .saturating_add(want.bytes)
                .saturating_sub(self.max_bytes)
        })
    }

    /// Applies what changes to a shard did, net of what the write had reserved; true when
    /// they stored more than that and the store is now over its budget.
    pub(super) fn settle(&self, reserved: Reservation, tally: &Tally) -> bool {
        self.bytes.add(tally.bytes - reserved.bytes as i64);
        self.entries.add(tally.entries - reserved.entries as i64);
        self.fixed_bytes.add(tally.fixed_bytes);
        self.fixed_entries.add(tally.fixed_entries);
        if tally.earliest != u64::MAX {
            self.earliest.fetch_min(tally.earliest, Ordering::AcqRel);
        }
        let grew = tally.forced
            || tally.bytes > reserved.bytes as i64
            || tally.entries > reserved.entries as i64;
        grew && self.over()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a write settles once its locks are let go (a shard's structures grown) can come
    /// after another write gave the same back (the shard emptied, its structures released):
    /// the count is below zero meanwhile, reads as zero, takes writes as usual, and is exact
    /// once both are settled.
    #[test]
    fn a_count_below_zero_reads_as_zero_until_it_is_settled() {
        let budget = Budget::new(Some(1_000), Some(10));
        let mut released = Tally::new();
        released.restructure(-600);
        assert!(!budget.settle(Reservation::default(), &released));
        assert_eq!(
            budget.used(),
            Used {
                bytes: 0,
                entries: 0
            }
        );
        assert_eq!(budget.fixed(), (0, 0));
        assert!(!budget.over());
        let entry = Reservation {
            bytes: 300,
            entries: 1,
        };
        assert!(budget.try_take(entry));
        let mut grown = Tally::new();
        grown.restructure(600);
        assert!(!budget.settle(Reservation::default(), &grown));
        assert_eq!(
            budget.used(),
            Used {
                bytes: 300,
                entries: 1
            }
        );
        assert_eq!(budget.fixed(), (0, 0));
        assert!(!budget.try_take(Reservation {
            bytes: 701,
            entries: 1
        }));
    }

    /// A write that takes its room past the budget (`take_over`) is counted at once, and
    /// sheds after it: its settling says the store is over.
    #[test]
    fn room_taken_over_the_budget_is_counted_and_shed() {
        let budget = Budget::new(Some(1_000), None);
        let reserved = Reservation {
            bytes: 800,
            entries: 1,
        };
        assert!(budget.try_take(reserved));
        let extra = Reservation {
            bytes: 400,
            entries: 0,
        };
        assert!(!budget.try_take(extra));
        let mut stored = Tally::new();
        budget.take_over(extra, &mut stored);
        assert_eq!(budget.used().bytes, 1_200);
        stored.bytes = 1_200;
        stored.entries = 1;
        assert!(budget.settle(reserved.plus(extra), &stored));
        assert_eq!(budget.used().bytes, 1_200);
    }
}
