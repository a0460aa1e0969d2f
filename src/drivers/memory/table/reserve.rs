//! Reserving room for a write when the store may be full, without holding a shard lock: the
//! slow path of [`lock_with_room`](super::room) and the path of batches. When the reservation
//! does not fit, the write makes room itself: first expired entries anywhere in the store
//! (SPEC 10.4), then victims of its own shard, of the other shards of its namespace, then of
//! other namespaces in turn (or of those first, as drawn), each chosen by that shard's
//! eviction order and allowed by that namespace's mode. A write that even all the evictable
//! entries could not make room for is refused whole before anything is evicted (SPEC 10.5),
//! once what empty shards keep (tables and orders, no entry) has been given back.

use std::num::NonZeroU32;

use hashbrown::HashSet;

use super::{Table, read};
use crate::drivers::memory::budget::{Budget, Held, Reservation};
use crate::drivers::memory::registry::WRITE_RELEASE_TABLES;
use crate::drivers::memory::spared::{SCANNED, Spared};
use crate::{Error, Result};

/// How many victims a write evicts at least before it gives up (others may be taking the room
/// it frees as fast as it frees it); it goes on to twice the entries the store held when it
/// began: a shard whose table just doubled may need thousands of small entries evicted.
const ROUNDS: u64 = 10_000;
/// How many times in a row `make_room` finds nothing to evict before it refuses a write the
/// counts say eviction could make room for.
pub(super) const FRUITLESS_ROUNDS: usize = 64;

impl Table {
    /// Whether evicting everything evictable would make room for `want` (a write that does
    /// not fit even then is refused with nothing evicted, SPEC 10.5): the evictable entries,
    /// the namespaces that eviction empties and no handle holds, freed with their last entry,
    /// their structures and fixed part with them (with few keys each, most of what they take),
    /// and what the other namespaces' tables and eviction orders shrink by as their entries
    /// go ([`Registry::frees_at_least`](crate::drivers::memory::registry::Registry::frees_at_least)),
    /// less the room the write's own `spared` entries keep in this namespace's tables (counted
    /// as freed, a batch overwriting half the keys of a store of counters evicted the other
    /// half, then was refused: the table holding its keys could not shrink).
    pub(in crate::drivers::memory) fn could_fit(
        &self,
        budget: &Budget,
        want: Reservation,
        spared: u64,
    ) -> bool {
        match budget.shortfall(want) {
            Some(0) => true,
            None => false,
            Some(short) => self
                .meta
                .registry
                .upgrade()
                .is_some_and(|registry| registry.frees_at_least(self, spared, short)),
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
    pub(in crate::drivers::memory) fn reserve(
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
    pub(in crate::drivers::memory) fn reserve_replacement(
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
    pub(in crate::drivers::memory) fn reserve_batch(
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
            batch_adds(keys, costs, growth, |at| self.charge_of(keys[at]))
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
            budget.bump_epoch();
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

    /// Frees room for `want`, sparing `keys` (the write's own). The room its evictions free
    /// is kept for it ([`Held`]) until it is enough: given back to the budget one victim at a
    /// time, it went to the writes racing this one, each needing less at once.
    ///
    /// Whether the write fits at all is judged with what its own keys already hold (spared,
    /// they stay): an overwrite reserves only what it adds to its entry, and counted so, a
    /// value grown past what evicting every other key frees was refused only once they were
    /// all gone.
    #[cold]
    fn make_room(&self, budget: &Budget, keys: &[&str], want: Reservation) -> Result<Reservation> {
        let key = keys.first().copied().unwrap_or("");
        let spared = Spared::new(keys);
        let mut held = Held::new(budget);
        let mut fruitless = 0;
        // Read once (a batch's keys each looked up): a key of the write's that expires while
        // it makes its room is still counted, which errs towards refusing.
        let kept = self.held_by_keys(keys);
        // The keys' own entries stay, with what the victim search may add to the queues for
        // them (`SPARED_REQUEUE`: left out, a batch over 1,000 of a shard's keys was refused
        // after evicting every other key, the main queue having grown by 16 KiB for them).
        let whole = |kept: Reservation| Reservation {
            bytes: want
                .bytes
                .saturating_add(kept.bytes)
                .saturating_add(kept.entries.saturating_mul(self.requeued_when_spared())),
            entries: want.entries.saturating_add(kept.entries),
        };
        // Whether it fits, judged again as it evicts (other writes may have taken the room
        // since): what its own victims grew the structures by (their shards' ghosts, a few
        // bytes a victim) is not held against it. (Held against it, a batch judged to fit
        // could be refused after evicting a hundred keys for it: SPEC 10.5 refuses whole.)
        let fits = |held: &Held<'_>| {
            let judged = whole(kept);
            let judged = Reservation {
                bytes: judged.bytes.saturating_sub(held.grown()),
                ..judged
            };
            self.could_fit(budget, judged, kept.entries)
        };
        // Refused: the room kept goes back first, so the refusal reports the store as the
        // others find it.
        let refuse = |held: &mut Held<'_>| {
            held.give_back();
            Err(refused(budget, key, want, self.unpaid()))
        };
        for _ in 0..rounds(budget) {
            // Expired entries first, wherever they are (SPEC 10.4).
            if budget.may_hold_expired(|| self.now()) {
                self.purge_expired_everywhere(budget);
                if held.take(want) {
                    return Ok(want);
                }
            }
            if !fits(&held) {
                // What empty shards keep (their tables and eviction orders) is given back
                // before a write is refused: it holds no entry. And a store that an eviction
                // left over its budget (a victim that freed nothing, its shard's ghosts grown
                // by it) sheds back within it, as after a write that stored more than it
                // reserved: with every byte in tables, the write was refused.
                let fits = (self.release_empty_shards_everywhere() && fits(&held))
                    || (budget.over() && {
                        self.shed(budget, None, &spared);
                        fits(&held)
                    });
                if !fits {
                    return refuse(&mut held);
                }
                if held.take(want) {
                    return Ok(want);
                }
            }
            // When evicting entries alone cannot make the room, what empty shards keep goes
            // first, then a namespace whole.
            let structural = budget.shortfall(whole(kept)) != Some(0);
            if (structural && (self.release_empty_shards_everywhere() || self.free_a_namespace()))
                || self.evict_somewhere(budget, &spared, Some(&mut held), None)
            {
                fruitless = 0;
            } else {
                // Nothing could go just now, though the counts say something may: the
                // entries other writes are evicting and storing at this instant, or keeping
                // for themselves as this one does. The room kept goes back, so that two writes
                // each holding part of what they need cannot hold each other off; then try
                // again a few times before refusing.
                held.give_back();
                fruitless += 1;
                if fruitless > FRUITLESS_ROUNDS {
                    return refuse(&mut held);
                }
                std::thread::yield_now();
            }
            if held.take(want) {
                return Ok(want);
            }
        }
        refuse(&mut held)
    }

    /// What the live entries of `keys` that eviction may take hold (each key once): a write
    /// spares its own keys while it makes its room, so evicting every other entry leaves them.
    fn held_by_keys(&self, keys: &[&str]) -> Reservation {
        let mut held = Reservation::default();
        for at in last_of_each(keys) {
            if let Some(charge) = self.evictable_charge_of(keys[at]) {
                held.bytes += charge;
                held.entries += 1;
            }
        }
        held
    }

    /// After a write that stored more than it reserved: evicts until the store is within
    /// its budget again (or nothing more may go), none of `spared` (the keys the write
    /// stored: shed from their shard first, a write's own keys went right after it).
    ///
    /// Victims that free no room (entries that cost only their room in a table, as counters
    /// with short keys do: it comes back when the table shrinks, once half empty), where the
    /// entries' own bytes cannot make up for what the store is over by, are taken from one
    /// shard of the namespace until room comes back: `doubled`, the shard whose table the
    /// write let double, if it did (it holds half its table then), else one of the larger.
    /// Taken from shard after shard, no table shrank until every shard had lost half its
    /// keys, to pay for a few hundred bytes that a queue grew by. After the first victim that
    /// frees nothing, and first of all when the write let a table double, a namespace of a
    /// few keys that no handle holds goes whole, if there is one
    /// ([`Registry::free_one`](crate::drivers::memory::registry::Registry::free_one)).
    #[cold]
    pub(in crate::drivers::memory) fn shed(
        &self,
        budget: &Budget,
        doubled: Option<NonZeroU32>,
        spared: &Spared<'_>,
    ) {
        let mut victims = Victims::Anywhere;
        let mut table_doubled = doubled.is_some();
        let mut looked_for_namespace = false;
        for _ in 0..rounds(budget) {
            if !budget.over() {
                return;
            }
            // Expired entries first, wherever they are (SPEC 10.4), as for a write making its
            // room: shed without, a store over its budget by a few bytes evicted live keys while
            // an expired one held more than that.
            if budget.may_hold_expired(|| self.now()) {
                self.purge_expired_everywhere(budget);
                continue;
            }
            // When what eviction cannot free is over the budget by itself (namespaces' own
            // memory), or a table the write let double took it over (looked at once), a
            // namespace goes whole first: evicting this namespace's keys first would free
            // little of it (what their room in a table lets the table shrink by).
            let structural = budget.shortfall(Reservation::default()) != Some(0)
                || std::mem::take(&mut table_doubled);
            if structural && self.free_a_namespace() {
                victims = Victims::Anywhere;
                continue;
            }
            let before = budget.used().bytes;
            let from = match victims {
                // Not from the shard of the keys just written first, as for a write making
                // its room: the victims are the namespace's, the written keys spared.
                Victims::Anywhere => {
                    let start = Some(self.larger_of_two());
                    if !self.evict_somewhere(budget, spared, None, start) {
                        // Nothing left to evict but the written keys: what the shards the
                        // victims emptied keep is all that can go (kept, a write of one key
                        // that evicted the last other key of a 4 KiB store left it up to 20%
                        // over its budget until the next write).
                        if self.release_empty_shards_here_first() {
                            continue;
                        }
                        return;
                    }
                    None
                }
                Victims::Namespace => {
                    self.evict_one_from(budget, spared, None, Some(self.larger_of_two()))
                }
                Victims::Shard(shard) => self.evict_one_from(budget, spared, None, Some(shard)),
            };
            // A victim that freed nothing (a counter; one from a namespace of a few keys, whose
            // shard's ghost table it made, took more than it gave): a namespace of a few keys
            // that no handle holds goes whole, if there is one (looked for once): it frees its
            // own memory.
            let fruitless = budget.used().bytes >= before;
            if fruitless
                && !std::mem::replace(&mut looked_for_namespace, true)
                && self.free_a_namespace()
            {
                victims = Victims::Anywhere;
                continue;
            }
            // Victims that freed nothing, where entries' own bytes cannot make up for what the
            // store is over by: only a table that shrinks can. (Where they can, a victim that
            // freed nothing, its ghost taking what its value gave back, is followed by others
            // anywhere, as any victim.)
            let freed_nothing = fruitless && budget.entries_cannot_make_up();
            victims = match (victims, from) {
                (Victims::Anywhere, _) if freed_nothing => {
                    match doubled.map(|shard| shard.get() as usize - 1) {
                        Some(shard) if self.may_shrink(shard) => Victims::Shard(shard),
                        _ => Victims::Namespace,
                    }
                }
                (_, Some(shard)) if freed_nothing => Victims::Shard(shard),
                // None left in this namespace: from anywhere again.
                _ => Victims::Anywhere,
            };
        }
    }

    /// Whether the table of shard `shard` is larger than tables are shrunk to: victims taken
    /// from it give their room back once half of them have gone.
    fn may_shrink(&self, shard: usize) -> bool {
        self.shards
            .get(shard)
            .is_some_and(|shard| !read(shard).small_table())
    }

    /// Gives back what the empty shards of every namespace hold, in a store of at most
    /// [`WRITE_RELEASE_TABLES`] namespaces
    /// ([`Registry::release_empty_shards`](crate::drivers::memory::registry::Registry::release_empty_shards));
    /// true when some was given back.
    fn release_empty_shards_everywhere(&self) -> bool {
        self.meta
            .registry
            .upgrade()
            .is_some_and(|registry| registry.release_empty_shards(WRITE_RELEASE_TABLES))
    }

    /// Gives back what this namespace's empty shards hold, or if none, what every namespace's
    /// do ([`Table::release_empty_shards_everywhere`]); true when some was given back. The
    /// look at this namespace's shards is not spaced as the look at every namespace is: it
    /// takes a few locks, and the shards a write's victims emptied are most often its own
    /// namespace's (spaced, the look that a write which had just made its room took right
    /// after was skipped, and the shards its victims emptied kept their tables).
    fn release_empty_shards_here_first(&self) -> bool {
        self.release_empty_shards() > 0 || self.release_empty_shards_everywhere()
    }

    /// Evicts every entry of a namespace that eviction empties and no handle holds, of a few
    /// keys, other than this one, which frees it (`Registry::free_one`); false when there is
    /// none.
    fn free_a_namespace(&self) -> bool {
        self.meta
            .registry
            .upgrade()
            .is_some_and(|registry| registry.free_one(self))
    }

    /// Evicts one victim: from this namespace's shards first, then from other namespaces; or,
    /// in a store of several namespaces that may evict, from the others first when the draw
    /// says so ([`Table::room_elsewhere`]). The room it frees is kept in `keep`, if given.
    fn evict_somewhere(
        &self,
        budget: &Budget,
        spared: &Spared<'_>,
        mut keep: Option<&mut Held<'_>>,
        start: Option<usize>,
    ) -> bool {
        // The draw leans on the writing shard, the first spared key's; with `start` given, the
        // victim is for no write's shard in particular.
        let writing = if start.is_some() {
            &Spared::NONE
        } else {
            spared
        };
        let elsewhere_first = budget.shared() && self.drawn_elsewhere(budget, writing);
        if !elsewhere_first
            && self
                .evict_one_from(budget, spared, keep.as_deref_mut(), start)
                .is_some()
        {
            return true;
        }
        let elsewhere =
            self.meta.registry.upgrade().is_some_and(|registry| {
                registry.evict_elsewhere(self, budget, keep.as_deref_mut())
            });
        elsewhere || (elsewhere_first && self.evict_one_from(budget, spared, keep, start).is_some())
    }

    /// Removes expired entries from every namespace that holds keys with a TTL, and lowers the
    /// store's earliest deadline to what remains.
    fn purge_expired_everywhere(&self, budget: &Budget) {
        let seen = budget.earliest();
        let now = self.now();
        let earliest = match self.meta.registry.upgrade() {
            // The tables with something expired, from the schedule (the others' deadlines are
            // ahead: the next of them is when the earliest is).
            Some(registry) => {
                let round = registry.round();
                let (due, next) = registry.take_due(&round, now);
                let mut earliest = next;
                for table in due {
                    let (_, left) = table.reclaim_with(&round, |t| (0, t.purge(now)));
                    earliest = earliest.min(left);
                    // Scheduled again; or, emptied with no handle, freed as the reclaimer
                    // frees what its rounds empty (left in the registry, it kept its memory,
                    // and eviction walked over it).
                    registry.reschedule(&table, left);
                }
                earliest
            }
            // The store is going: this namespace alone.
            None => self.purge(now),
        };
        // A write that stored an earlier deadline meanwhile lowered it further: that stays.
        budget.purged(seen, earliest);
    }
}

/// Where [`Table::shed`] takes its next victim from.
#[derive(Clone, Copy)]
enum Victims {
    /// This namespace or another ([`Table::evict_somewhere`]).
    Anywhere,
    /// This namespace: the last victim freed no room.
    Namespace,
    /// This shard of the namespace first: the last victim, from it, freed no room.
    Shard(usize),
}

/// The positions in `keys` of each key's last occurrence, from the last: a batch's pairs
/// counted each key once (in a set for a large batch, not searched for again in the rest of
/// the batch at every pair).
fn last_of_each<'k>(keys: &'k [&str]) -> impl Iterator<Item = usize> + 'k {
    let mut later: Option<HashSet<&str>> =
        (keys.len() > SCANNED).then(|| HashSet::with_capacity(keys.len()));
    (0..keys.len()).rev().filter(move |&at| {
        let key = keys[at];
        match &mut later {
            Some(later) => later.insert(key),
            None => !keys[at + 1..].contains(&key),
        }
    })
}

/// What a batch of `keys` adds to the store, each new entry costing what `costs` says at its
/// position and the live entry of the key at a position costing what `charge` says, if there
/// is one; `growth`, what adding any entry may grow the tables by, with them. A key given
/// twice is stored once, as its last pair.
pub(super) fn batch_adds(
    keys: &[&str],
    costs: &[u64],
    growth: u64,
    mut charge: impl FnMut(usize) -> Option<u64>,
) -> Reservation {
    let mut adds = Reservation::default();
    for at in last_of_each(keys) {
        let bytes = costs[at];
        match charge(at) {
            Some(old) => adds.bytes += bytes.saturating_sub(old),
            None => {
                adds.bytes += bytes;
                adds.entries += 1;
            }
        }
    }
    if adds.entries > 0 {
        adds.bytes += growth;
    }
    adds
}

/// How many victims a write evicts at most: see [`ROUNDS`].
pub(super) fn rounds(budget: &Budget) -> u64 {
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
                budget.fixed().0,
                ": what `never` and `with-ttl` namespaces keep, and namespaces' own memory",
            )
        } else {
            (
                format!("{} more {}", want.entries, noun(want.entries, "entry")),
                format!("limit of {}", counted(budget.max_entries, "entry")),
                used.entries,
                budget.fixed().1,
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
