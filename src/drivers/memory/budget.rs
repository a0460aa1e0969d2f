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

use std::sync::atomic::{AtomicU64, Ordering};

use super::slots::Tally;
use super::table::Table;
use crate::{Error, Result};

/// How many rounds of freeing a write tries before it gives up (others may be taking the room
/// it frees).
const ROUNDS: usize = 64;

pub(crate) struct Budget {
    pub(super) max_bytes: u64,
    pub(super) max_entries: u64,
    /// Charged to stored entries and to reservations in flight.
    bytes: AtomicU64,
    entries: AtomicU64,
    /// Of which evictable under their namespace's mode.
    evictable_bytes: AtomicU64,
    evictable_entries: AtomicU64,
    /// A lower bound of the deadlines held (driver-clock nanoseconds), `u64::MAX` for none:
    /// when it has passed, some entry may have expired.
    earliest: AtomicU64,
    /// Writes so far: the recency clock the sampled LRU marks entries with.
    epoch: AtomicU64,
}

/// What a write reserved.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Reservation {
    bytes: u64,
    entries: u64,
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
            evictable_bytes: AtomicU64::new(0),
            evictable_entries: AtomicU64::new(0),
            earliest: AtomicU64::new(u64::MAX),
            epoch: AtomicU64::new(0),
        }
    }

    pub(crate) fn used(&self) -> Used {
        Used {
            bytes: self.bytes.load(Ordering::Relaxed),
            entries: self.entries.load(Ordering::Relaxed),
        }
    }

    /// The recency clock, for marks.
    #[inline]
    pub(super) fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::Relaxed) as u32
    }

    /// Takes `want` if it fits now.
    fn try_take(&self, want: Reservation) -> bool {
        let bytes = self.bytes.fetch_add(want.bytes, Ordering::AcqRel) + want.bytes;
        let entries = self.entries.fetch_add(want.entries, Ordering::AcqRel) + want.entries;
        if bytes <= self.max_bytes && entries <= self.max_entries {
            return true;
        }
        self.bytes.fetch_sub(want.bytes, Ordering::AcqRel);
        self.entries.fetch_sub(want.entries, Ordering::AcqRel);
        false
    }

    /// Whether evicting everything evictable would make room for `want`.
    fn could_fit(&self, want: Reservation) -> bool {
        let fixed_bytes = self
            .bytes
            .load(Ordering::Acquire)
            .saturating_sub(self.evictable_bytes.load(Ordering::Acquire));
        let fixed_entries = self
            .entries
            .load(Ordering::Acquire)
            .saturating_sub(self.evictable_entries.load(Ordering::Acquire));
        fixed_bytes.saturating_add(want.bytes) <= self.max_bytes
            && fixed_entries.saturating_add(want.entries) <= self.max_entries
    }

    /// Applies what changes to a shard did, net of what the write had reserved.
    pub(super) fn settle(&self, reserved: Reservation, tally: &Tally) {
        let apply = |counter: &AtomicU64, delta: i64| {
            if delta > 0 {
                counter.fetch_add(delta as u64, Ordering::AcqRel);
            } else if delta < 0 {
                counter.fetch_sub(delta.unsigned_abs(), Ordering::AcqRel);
            }
        };
        apply(&self.bytes, tally.bytes - reserved.bytes as i64);
        apply(&self.entries, tally.entries - reserved.entries as i64);
        apply(&self.evictable_bytes, tally.evictable_bytes);
        apply(&self.evictable_entries, tally.evictable_entries);
        if tally.earliest != u64::MAX {
            self.earliest.fetch_min(tally.earliest, Ordering::AcqRel);
        }
    }
}

impl Table {
    /// Reserves room for a write that may store `bytes` in one more entry (SPEC 10.2),
    /// making room if needed. Nothing to do without a budget.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::OutOfMemory`](crate::ErrorKind::OutOfMemory), with nothing evicted, when
    /// the write is larger than the room evicting every evictable entry would make.
    #[inline]
    pub(super) fn reserve(&self, key: &str, bytes: u64, entries: u64) -> Result<Reservation> {
        if self.budget().is_none() {
            return Ok(Reservation::default());
        }
        self.reserve_with(key, Reservation { bytes, entries }, || {
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

    /// Reserves room for a batch: `pairs` are the keys and what each new entry will cost.
    pub(super) fn reserve_batch(&self, pairs: &[(&str, u64)]) -> Result<Reservation> {
        if self.budget().is_none() {
            return Ok(Reservation::default());
        }
        let first = pairs.first().map_or("", |(key, _)| *key);
        let all = Reservation {
            bytes: pairs.iter().map(|(_, bytes)| bytes).sum(),
            entries: pairs.len() as u64,
        };
        self.reserve_with(first, all, || {
            let mut want = Reservation::default();
            for &(key, bytes) in pairs {
                match self.charge_of(key) {
                    Some(old) => want.bytes += bytes.saturating_sub(old),
                    None => {
                        want.bytes += bytes;
                        want.entries += 1;
                    }
                }
            }
            want
        })
    }

    /// Takes `want` if it fits; when the store is full, takes what `needed` says the write
    /// adds to what is already there, making room for it.
    fn reserve_with(
        &self,
        key: &str,
        want: Reservation,
        needed: impl FnOnce() -> Reservation,
    ) -> Result<Reservation> {
        let Some(budget) = self.budget() else {
            return Ok(Reservation::default());
        };
        budget.epoch.fetch_add(1, Ordering::Relaxed);
        if budget.try_take(want) {
            return Ok(want);
        }
        let want = needed();
        if budget.try_take(want) {
            return Ok(want);
        }
        self.make_room(budget, key, want)
    }

    #[cold]
    fn make_room(&self, budget: &Budget, key: &str, want: Reservation) -> Result<Reservation> {
        for _ in 0..ROUNDS {
            // Expired entries first, wherever they are (SPEC 10.4).
            if budget.earliest.load(Ordering::Acquire) <= self.now() {
                self.purge_expired_everywhere(budget);
                if budget.try_take(want) {
                    return Ok(want);
                }
            }
            if !budget.could_fit(want) {
                return Err(refused(budget, key, want));
            }
            if !self.evict_somewhere(budget) {
                return Err(refused(budget, key, want));
            }
            if budget.try_take(want) {
                return Ok(want);
            }
        }
        Err(refused(budget, key, want))
    }

    /// Evicts one victim: from this namespace's shards first, then from other namespaces.
    fn evict_somewhere(&self, budget: &Budget) -> bool {
        if self.evict_one(budget) {
            return true;
        }
        let Some(registry) = self.meta.registry.upgrade() else {
            return false;
        };
        registry.evict_elsewhere(self, budget)
    }

    /// Removes expired entries from every namespace that holds keys with a TTL, and lowers the
    /// store's earliest deadline to what remains.
    fn purge_expired_everywhere(&self, budget: &Budget) {
        let seen = budget.earliest.load(Ordering::Acquire);
        let now = self.now();
        let mut earliest = u64::MAX;
        let tables = self
            .meta
            .registry
            .upgrade()
            .map(|registry| registry.reaping())
            .unwrap_or_else(|| vec![self.clone()]);
        for table in tables {
            earliest = earliest.min(table.purge(now));
        }
        // A write that stored an earlier deadline meanwhile lowered it further: keep that.
        let _ =
            budget
                .earliest
                .compare_exchange(seen, earliest, Ordering::AcqRel, Ordering::Acquire);
    }
}

fn refused(budget: &Budget, key: &str, want: Reservation) -> Error {
    let used = budget.used();
    let limit = if want.bytes > budget.max_bytes || used.bytes + want.bytes > budget.max_bytes {
        format!(
            "{} bytes would go over the store's budget of {} bytes ({} in use), and eviction may not free enough",
            want.bytes, budget.max_bytes, used.bytes
        )
    } else {
        format!(
            "one more entry would go over the store's limit of {} entries, and eviction may not free one",
            budget.max_entries
        )
    };
    Error::out_of_memory(key, limit)
}
