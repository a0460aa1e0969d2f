//! Taking room for a write in a store with a budget: its shard locked with the room its new
//! value needs, made by evicting under that lock when it can be; and one eviction for a write
//! that makes room elsewhere.

use std::num::NonZeroU32;
use std::sync::RwLockWriteGuard;
use std::sync::atomic::Ordering;

use super::reserve::{FRUITLESS_ROUNDS, rounds};
use super::{Shard, Table, read, try_read, try_write, write};
use crate::Result;
use crate::drivers::memory::budget::{Budget, Held, Reservation, split_mix};
use crate::drivers::memory::clock::Now;
use crate::drivers::memory::entry::{Entry, key_eq};
use crate::drivers::memory::eviction::Eviction;
use crate::drivers::memory::registry::Registry;
use crate::drivers::memory::slots::{Slots, Tally};
use crate::drivers::memory::spared::Spared;

/// Entries added to a shard's count and to its namespace's average when the draw leans on
/// the writing shard ([`Table::room_elsewhere`]).
const LEANING_PRIOR: f64 = 16.0;

/// How many times a write that made its room without its shards' locks makes it, when what
/// it adds under the locks has grown past it, before it makes the rest under the locks
/// ([`Table::room_under_locks`]; see [`LAST_ATTEMPT`]).
pub(super) const ROOM_ATTEMPTS: u32 = 3;

/// The last time a write makes its room, when every attempt from [`ROOM_ATTEMPTS`] on found
/// what it could not take under its locks held by other writes: the write then takes the rest
/// past the budget ([`Budget::take_over`]), and the store sheds after it. Between attempts its
/// locks are let go, so two writes that each hold what the other needs let each other through.
/// (Going on after the first such attempt, two threads rewriting values of up to 1 MB two at
/// a time in a 1 MiB store, beside two writing small batches, took it to 1.32 times its
/// budget in 3 of 129 debug runs, and with four such threads in each of 4 longer runs, two of
/// them with the count below zero: each write waited under its locks for the large value
/// another held.)
pub(super) const LAST_ATTEMPT: u32 = ROOM_ATTEMPTS + 16;

/// A shard locked for a write, with room for it taken from the budget.
pub(super) struct Locked<'t> {
    pub(super) slots: RwLockWriteGuard<'t, Slots>,
    /// What the write reserved.
    pub(super) reserved: Reservation,
    /// Whether the lock showed no entry for the key, live or expired (only known in a store
    /// with a budget, where the room taken depends on it): the write then adds one without
    /// looking again.
    pub(super) absent: bool,
    /// Whether the write may let its table double, if adding its entry makes it: it took
    /// the room for that. Otherwise a table its tombstones fill is rebuilt at its size before
    /// the insert ([`Slots::rebuild_if_worn`]).
    pub(super) may_double: bool,
}

impl Table {
    /// Locks the shard of `key` for a write that stores a new value costing `bytes`, with
    /// room for it taken from the budget (nothing to take without one). `adds`: whether the
    /// write adds an entry when the key is missing. See [`Locked`] for what comes back.
    /// `tally`, fresh from the write, gets what evicting victims did that is still to be
    /// settled with the budget, and the write goes on with it. (Filled in place: handed back
    /// inside `Locked`, its fields, stored one by one, were read back whole, a load that waited
    /// on every evicting write.)
    ///
    /// The room is taken under the lock, exactly: what the new value adds to the live entry
    /// the lock shows. When it does not fit, the shard's own victims make room under the same
    /// lock (the common case: a write evicts from its own shard first); room drawn from
    /// another namespace comes under it too when that namespace's shard is free now
    /// ([`evict_elsewhere_held`](Self::evict_elsewhere_held)). Otherwise (an expired entry may
    /// still hold memory somewhere, a lock elsewhere is held) the lock is let go, room is made
    /// without it, and the shard is locked again.
    #[inline(always)]
    pub(super) fn lock_with_room(
        &self,
        hash: u64,
        key: &str,
        bytes: impl FnOnce() -> u64,
        adds: bool,
        tally: &mut Tally,
    ) -> Result<Locked<'_>> {
        match &self.budget {
            None => Ok(Locked {
                slots: write(self.shard(hash)),
                reserved: Reservation::default(),
                absent: false,
                may_double: true,
            }),
            Some(budget) => self.lock_with_budget(budget, hash, key, bytes(), adds, tally),
        }
    }

    fn lock_with_budget(
        &self,
        budget: &Budget,
        hash: u64,
        key: &str,
        bytes: u64,
        adds: bool,
        tally: &mut Tally,
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
        let adding = old.is_none() && adds;
        // What the write needs: what it adds, and in a `never` namespace the table's growth if
        // it makes the table double (`growth_to_reserve`).
        let needs = self.adding(&slots, old, bytes, adds);
        // What it takes when it fits: the table's growth too, in any namespace.
        let with_growth = |slots: &Slots| Reservation {
            bytes: if adding {
                bytes + slots.growth_if_adding(1) + self.opening(slots)
            } else {
                needs.bytes
            },
            ..needs
        };
        let want = with_growth(&slots);
        if budget.try_take(want) {
            return Ok(Locked {
                slots,
                reserved: want,
                absent,
                // The room for the table's doubling, if it doubles, was there and is taken.
                may_double: true,
            });
        }
        // Else a table that would double for its tombstones is rebuilt at its size by the
        // insert (`Slots::rebuild_makes_room`): the write needs no room for it.
        let rebuilt = |slots: &Slots| Reservation {
            bytes: bytes + self.opening(slots),
            ..needs
        };
        let rebuilds = |slots: &Slots| adding && slots.rebuild_makes_room(1);
        // (Only a write whose table would double: `want` then holds the doubling.)
        if want.bytes > needs.bytes && rebuilds(&slots) {
            let want = rebuilt(&slots);
            if budget.try_take(want) {
                return Ok(Locked {
                    slots,
                    reserved: want,
                    absent,
                    may_double: false,
                });
            }
        }
        // Whether the write fits once every other evictable entry is gone: its own entry, if
        // eviction may take it, stays (spared), with what the write adds to it. (Judged by what
        // it adds alone, an overwrite growing a value past what evicting every other key frees
        // evicted keys before it was refused.) In a store of several namespaces that may evict,
        // the draw may send the write to the others for its room (`room_elsewhere`): one
        // victim there, then as below.
        let whole = || match old.and_then(|_| {
            slots
                .map
                .find(hash, |e| key_eq(&e.key, key))
                .filter(|e| self.meta.mode.allows(e))
        }) {
            Some(entry) => Reservation {
                bytes: needs.bytes + entry.charge(),
                entries: needs.entries + 1,
            },
            None => needs,
        };
        let evicting =
            !budget.may_hold_expired(|| now.get()) && budget.shortfall(whole()) == Some(0);
        let elsewhere = evicting
            && budget.shared()
            && self.room_elsewhere(budget, slots.evictable_len(), split_mix(hash));
        if evicting && !elsewhere {
            // Victims go, and their room is traded for the write's in one update; the rest of
            // their accounting is settled with the write's own. The room a victim leaves in
            // the table may spare its doubling: a table at the budget stays the size it is.
            let evicted = &mut *tally;
            // A victim is never the write's own key; with no entry for the key in the shard,
            // none can be, and no victim need be compared with it.
            let own = [key];
            let spared = if absent {
                Spared::NONE
            } else {
                Spared::new(&own)
            };
            while slots.evict(&self.hasher, budget, &spared, evicted) {
                // Victims stop once the table, rebuilt at its size, would have room: a table
                // at the budget stays the size it is, with its shard an eighth under full at
                // worst (it was evicted down to half, for hashbrown to rehash it in place).
                let mut want = with_growth(&slots);
                let rebuild = want.bytes > needs.bytes && rebuilds(&slots);
                if rebuild {
                    want = rebuilt(&slots);
                }
                if budget.trade(want, evicted) {
                    // Traded: the rest of the victims' accounting goes on with the write's.
                    // Victims are never the write's own key: it is still as it was.
                    evicted.hand_over_room();
                    return Ok(Locked {
                        slots,
                        reserved: want,
                        absent,
                        may_double: !rebuild,
                    });
                }
            }
            self.settle(budget, Reservation::default(), evicted);
            self.meta.count(evicted);
            *evicted = Tally::new();
        }
        // Room from another namespace: taken without letting go of the lock when that
        // namespace's shard is free now, as from our own shard; else the slow way below.
        let registry = elsewhere.then(|| self.meta.registry.upgrade()).flatten();
        let mut evicted_elsewhere = false;
        let mut held = Held::new(budget);
        if let Some(registry) = &registry
            && self.evict_elsewhere_held(registry, &mut held)
        {
            evicted_elsewhere = true;
            let want = with_growth(&slots);
            if held.take(want) {
                return Ok(Locked {
                    slots,
                    reserved: want,
                    absent,
                    may_double: true,
                });
            }
            // The victim was smaller than the write: its room back, and more made below.
            held.give_back();
        }
        drop(slots);
        if !evicted_elsewhere && let Some(registry) = registry {
            registry.evict_elsewhere(self, budget, None);
        }
        // The room is reserved without the shard's lock, so another write may evict or rewrite
        // the key before this one locks it again: the write then adds more than it reserved
        // (the old value it meant to replace gone). What it adds past its reservation is taken
        // under the lock; when the budget has not got it, the room is made again, twice, then
        // under the lock (`room_under_locks`), again without it between tries
        // (`LAST_ATTEMPT`), and what the last cannot make is taken past the budget, for the
        // store to shed after the write.
        // (Left to the shedding, two threads rewriting values of up to 1 MB in a 1 MiB store,
        // beside two writing small batches, took it to 1.6 times its budget.)
        let mut attempts = 0;
        loop {
            attempts += 1;
            let reserved = if adds {
                // With the table's growth in a `never` namespace, if the lock showed the key
                // missing.
                let bytes = if old.is_none() { needs.bytes } else { bytes };
                self.reserve(key, || bytes, 1)?
            } else {
                self.reserve_replacement(key, || bytes)?
            };
            let mut slots = write(shard);
            let mut now = Now::new(&self.clock);
            let current = slots
                .map
                .find(hash, |e| key_eq(&e.key, key))
                .filter(|e| e.live(&mut now))
                .map(Entry::charge);
            let adds_now = self.adding(&slots, current, bytes, adds);
            let extra = adds_now.past(reserved);
            let taken = if extra.is_empty() {
                Some(reserved)
            } else if budget.try_take(extra) {
                Some(reserved.plus(extra))
            } else if attempts >= ROOM_ATTEMPTS {
                if self.room_under_locks(budget, [&mut *slots], &[key], extra) {
                    Some(reserved.plus(extra))
                } else if attempts == LAST_ATTEMPT {
                    budget.take_over(extra, tally);
                    Some(reserved.plus(extra))
                } else {
                    None
                }
            } else {
                None
            };
            if let Some(reserved) = taken {
                return Ok(Locked {
                    slots,
                    reserved,
                    absent: false,
                    // Room for the table's doubling is reserved only in a `never` namespace;
                    // rebuilt instead if its tombstones fill it, it gives that room back.
                    may_double: false,
                });
            }
            drop(slots);
            // The reservation goes back, and the room is made again.
            budget.settle(reserved, &Tally::new());
        }
    }

    /// What a write of `bytes` adds to a shard: over a live entry that costs `old`, what it
    /// adds to that; else a new entry, with the table's growth in a `never` namespace
    /// ([`growth_to_reserve`](Self::growth_to_reserve)) and the shard's opening; nothing for a
    /// write that only replaces (`cas`, `adds` false) when the key is missing.
    #[inline]
    fn adding(&self, slots: &Slots, old: Option<u64>, bytes: u64, adds: bool) -> Reservation {
        match old {
            Some(old) => Reservation {
                bytes: bytes.saturating_sub(old),
                entries: 0,
            },
            None if !adds => Reservation::default(),
            None => Reservation {
                bytes: bytes + self.growth_to_reserve(slots, 1) + self.opening(slots),
                entries: 1,
            },
        }
    }

    /// Before an insert that took no room for its table's doubling (`Locked::may_double`
    /// false, and every batch into a namespace that may evict): keeps the insert from taking
    /// the store over its budget by doubling the table. A table its tombstones fill is rebuilt
    /// at its size ([`Slots::rebuild_if_worn`]); one its entries fill doubles when the budget
    /// has room for that, taken now and returned (the write adds it to what it reserved).
    /// Otherwise the shard's victims, none of `keys` (the write's own), make room in the
    /// table under the lock the write holds, as for a write taking its room under its lock
    /// ([`lock_with_room`](Self::lock_with_room)), unless the draw sends the write to other
    /// namespaces for its room ([`room_elsewhere`](Self::room_elsewhere), drawn from `hash`,
    /// the key's, as that write drew) or the table is of a few slots ([`Slots::small_table`]):
    /// then, as when no victim may go here (or while an expired entry may still hold memory,
    /// SPEC 10.4), the table doubles and the store sheds after ([`Table::shed`]), from this
    /// shard first if its victims free nothing. (Always left to double and be made up for
    /// after, a full table took the store over its budget, and the victims shed then, from
    /// shards all over the namespace, freed no room until a table shrank: a store of
    /// counters, which cost only their room in a table, lost half its keys to one `mset`.)
    ///
    /// `reserved`: what the write reserved for its tables' growth and has not spent yet (a
    /// namespace's first batch, a batch large in its budget: `Table::growth_to_reserve_for`),
    /// spent first.
    #[inline]
    pub(super) fn room_to_insert(
        &self,
        slots: &mut Slots,
        hash: u64,
        keys: &[&str],
        reserved: &mut u64,
        tally: &mut Tally,
    ) -> u64 {
        let Some(budget) = &self.budget else {
            return 0;
        };
        slots.rebuild_if_worn(&self.hasher, tally);
        // A `never` namespace reserved its tables' growth.
        if self.reserves_growth() {
            return 0;
        }
        let growth = slots.growth_if_adding(1);
        // Nothing to grow; or reserved: by a write into a table that doubles whatever goes
        // (`growth_to_reserve`), or among what the write has reserved for it.
        if growth == 0 || (self.meta.mode == Eviction::WithTtl && slots.doubles_whatever_goes(1)) {
            return 0;
        }
        if growth <= *reserved {
            *reserved -= growth;
            return 0;
        }
        self.make_room_in_table(budget, slots, hash, keys, tally)
    }

    #[cold]
    fn make_room_in_table(
        &self,
        budget: &Budget,
        slots: &mut Slots,
        hash: u64,
        keys: &[&str],
        tally: &mut Tally,
    ) -> u64 {
        let growth = |slots: &Slots| Reservation {
            bytes: slots.growth_if_adding(1),
            entries: 0,
        };
        let want = growth(slots);
        if budget.try_take(want) {
            return want.bytes;
        }
        if slots.small_table()
            || budget.may_hold_expired(|| self.now())
            || (budget.shared()
                && self.room_elsewhere(budget, slots.evictable_len(), split_mix(hash)))
        {
            // Left to double: should victims elsewhere free no room, the store sheds from
            // this shard (if its table may shrink), which holds half its table then.
            tally.doubled = NonZeroU32::new(self.shard_index(hash) as u32 + 1);
            return 0;
        }
        let spared = Spared::new(keys);
        // The victims' own tally: their room may be traded for the doubling's, which the
        // write's own changes in `tally` must not be.
        let mut freed = Tally::new();
        let mut taken = 0;
        while slots.evict(&self.hasher, budget, &spared, &mut freed) {
            if slots.rebuild_makes_room(1) {
                slots.rebuild_if_worn(&self.hasher, &mut freed);
                break;
            }
            let want = growth(slots);
            if want.bytes == 0 {
                break;
            }
            if budget.trade(want, &freed) {
                freed.hand_over_room();
                taken = want.bytes;
                break;
            }
        }
        if taken == 0 && slots.growth_if_adding(1) != 0 {
            // No victim here (or not enough): the table doubles, and the store sheds after.
            tally.doubled = NonZeroU32::new(self.shard_index(hash) as u32 + 1);
        }
        tally.absorb(&freed);
        taken
    }

    /// For a write that has made its room without its shards' locks as many times as it may
    /// ([`ROOM_ATTEMPTS`]) and, holding them now, still adds `want` past what it reserved
    /// (the values it meant to replace were rewritten smaller, or evicted, by other writes
    /// meanwhile): makes that room under the locks it holds, from victims that need no other
    /// lock waited for: its own locked shards' (`locked`; none of `keys`, the write's own),
    /// its namespace's other shards' and other namespaces' whose lock is free now, trying
    /// again a few times when every such lock is held just then (a write holding its shards'
    /// locks takes others only by trying, so those are let go). True when `want` was taken;
    /// else the write lets its locks go and makes its room again ([`LAST_ATTEMPT`]). (Going
    /// on at once, two threads rewriting values of up to 1 MB two at a time in a 1 MiB store,
    /// beside two writing small batches, took it to 1.10 to 1.24 times its budget in 5 of 47
    /// runs of a debug build; with victims from the write's locked shards and other
    /// namespaces only, in 2 of 24: the third large value sat in a shard the write did not
    /// hold.)
    #[cold]
    pub(super) fn room_under_locks<'g>(
        &self,
        budget: &Budget,
        locked: impl IntoIterator<Item = &'g mut Slots>,
        keys: &[&str],
        want: Reservation,
    ) -> bool {
        let spared = Spared::new(keys);
        let mut locked: Vec<&mut Slots> = locked.into_iter().collect();
        let registry = self.meta.registry.upgrade();
        let mut held = Held::new(budget);
        let mut fruitless = 0;
        for _ in 0..rounds(budget) {
            if held.take(want) {
                return true;
            }
            // A victim's room kept for the write, and the rest of its accounting settled,
            // before its shard's lock is let go: a shard it emptied may be given back at once
            // (`release_empty_shards`), with structures charged only then.
            let mut victim = |slots: &mut Slots| {
                let mut freed = Tally::new();
                if !slots.evict(&self.hasher, budget, &spared, &mut freed) {
                    return None;
                }
                slots.recharge_order(&mut freed);
                held.keep(&mut freed);
                self.settle(budget, Reservation::default(), &freed);
                Some(freed)
            };
            // The write's own locked shards, then its namespace's others that are free now
            // (its own fail to lock again: they are held).
            let own = locked
                .iter_mut()
                .find_map(|slots| victim(slots))
                .or_else(|| {
                    self.shards
                        .iter()
                        .find_map(|shard| victim(&mut *try_write(shard)?))
                });
            if let Some(freed) = own {
                // Counted once accounted for whole (a recorder that panics gives the room
                // back with `held`).
                self.meta.count(&freed);
                fruitless = 0;
            } else if registry
                .as_ref()
                .is_some_and(|registry| self.evict_elsewhere_held(registry, &mut held))
            {
                fruitless = 0;
            } else {
                fruitless += 1;
                if fruitless > FRUITLESS_ROUNDS {
                    return false;
                }
                std::thread::yield_now();
            }
        }
        false
    }

    /// For a write holding its own shard's lock: one victim from another namespace, taken
    /// in turn as [`Registry::evict_elsewhere`] takes them, without waiting for any lock (see
    /// `try_write`), and settled with that namespace; the room it freed is kept in `held`, for
    /// the write to take. False when a lock was held or no namespace had a victim to spare
    /// without being emptied (a namespace emptied and freed is released through the registry,
    /// which the write must not do holding its lock).
    fn evict_elsewhere_held(&self, registry: &Registry, held: &mut Held<'_>) -> bool {
        let budget = held.budget();
        registry
            .with_next_elsewhere(self, |other| {
                let mut freed = Tally::new();
                {
                    let evictable = |shard: &Shard| try_read(shard).map(|s| s.evictable_len());
                    let mut slots = try_write(&other.shards[other.larger_of_two_by(evictable)?])?;
                    if slots.map.len() < 2
                        || !slots.evict(&other.hasher, budget, &Spared::NONE, &mut freed)
                    {
                        return None;
                    }
                    slots.recharge_order(&mut freed);
                }
                // Its room goes to the write (`Held::take`, with the write's own room in one
                // update); the rest of its accounting, to its namespace now. Kept before it is
                // counted: a recorder that panics there gives the room back with `held`.
                held.keep(&mut freed);
                other.settle(budget, Reservation::default(), &freed);
                other.meta.count(&freed);
                Some(())
            })
            .is_some()
    }

    /// Whether a write of this namespace that needs room takes it from the others, in a store
    /// where several namespaces may evict: drawn (`draw`, a random number) with the chance
    /// that the others hold of the entries eviction may take. So the evictions writes make
    /// fall on each namespace in proportion to the entries it holds, and every namespace's
    /// keys stay about as long as any other's, as in one queue over the store. (Each write
    /// took its room from its own namespace first, so a namespace that came to a full store
    /// kept one key while the others held the rest, however cold.) Within a namespace, the
    /// policy chooses the victim.
    ///
    /// The chance leans on the writing shard (`shard`, its evictable entries): a shard
    /// holding more than its namespace's average share gives more of its own room, one
    /// holding less takes more from the others, which keeps a namespace's shards even (with
    /// the namespace's count alone, two namespaces of a Zipf workload hit 0.7 points less
    /// often). The counts are exact ([`Meta::evictable`](super::Meta)): estimated from the
    /// shard alone, a namespace with every entry of the store sent a write in ten to look
    /// for room in namespaces that held none.
    #[inline]
    pub(in crate::drivers::memory) fn room_elsewhere(
        &self,
        budget: &Budget,
        shard: usize,
        draw: u64,
    ) -> bool {
        let total = budget.evictable_entries();
        let own = self.evictable_entries();
        if own >= total {
            return false;
        }
        // The others' share, times the namespace's average shard over this one, both counted
        // with LEANING_PRIOR entries more, so that the few entries of a small namespace, as
        // one that just came, do not read as an uneven one.
        let others = (total - own) as f64 / total as f64;
        let average = own as f64 / self.shards.len() as f64;
        let even = (average + LEANING_PRIOR) / (shard as f64 + LEANING_PRIOR);
        ((draw >> 11) as f64 / (1u64 << 53) as f64) < others * even
    }

    /// [`room_elsewhere`](Self::room_elsewhere) off the write path: the shard of the first
    /// of `spared` (the write's keys) is the writing one, and the draw is the store's.
    pub(in crate::drivers::memory) fn drawn_elsewhere(
        &self,
        budget: &Budget,
        spared: &Spared<'_>,
    ) -> bool {
        let shard = match spared.first() {
            Some(key) => self.shard_index(self.hash(key)),
            None => self.meta.evict_hand.load(Ordering::Relaxed) % self.shards.len(),
        };
        let evictable = read(&self.shards[shard]).evictable_len();
        self.room_elsewhere(budget, evictable, budget.draw())
    }

    /// The namespace's entries eviction may take.
    #[inline]
    pub(in crate::drivers::memory) fn evictable_entries(&self) -> u64 {
        self.meta.evictable.get()
    }

    /// For an eviction no write of this namespace asked for: of two shards taken in turn, the
    /// one holding more entries eviction may take. (Taking the next shard in turn, the
    /// shards' sizes drifted apart, as a random walk does: with two namespaces taking room
    /// from each other, a Zipf workload hit 0.85 points less often.)
    pub(super) fn larger_of_two(&self) -> usize {
        self.larger_of_two_by(|shard| Some(read(shard).evictable_len()))
            .unwrap_or_default()
    }

    /// [`larger_of_two`](Self::larger_of_two), with the shards' evictable entries read by
    /// `evictable`; `None` when it gave none.
    fn larger_of_two_by(&self, evictable: impl Fn(&Shard) -> Option<usize>) -> Option<usize> {
        let shards = self.shards.len();
        let first = self.meta.evict_hand.fetch_add(2, Ordering::Relaxed) % shards;
        let second = (first + 1) % shards;
        if shards > 1 && evictable(&self.shards[second])? > evictable(&self.shards[first])? {
            Some(second)
        } else {
            Some(first)
        }
    }

    /// What the live entry of `key` costs the budget, if there is one.
    pub(in crate::drivers::memory) fn charge_of(&self, key: &str) -> Option<u64> {
        self.live_charge_of(key, |_| true)
    }

    /// What the live entry of `key` costs the budget, if there is one that eviction may take
    /// (its namespace's mode allows it).
    pub(in crate::drivers::memory) fn evictable_charge_of(&self, key: &str) -> Option<u64> {
        self.live_charge_of(key, |entry| self.meta.mode.allows(entry))
    }

    fn live_charge_of(&self, key: &str, counted: impl Fn(&Entry) -> bool) -> Option<u64> {
        let hash = self.hash(key);
        let slots = read(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let entry = slots.map.find(hash, |e| key_eq(&e.key, key))?;
        (entry.live(&mut now) && counted(entry)).then(|| entry.charge())
    }

    /// Evicts one victim from this namespace, none of `spared` (the keys being written):
    /// from the shard of the first of them first, so each shard keeps the room it has, then
    /// from the others in turn; false when none holds an evictable entry. The room it frees
    /// is kept in `keep` for the write it is made for, if there is one, else given back to
    /// the budget.
    pub(in crate::drivers::memory) fn evict_one(
        &self,
        budget: &Budget,
        spared: &Spared<'_>,
        keep: Option<&mut Held<'_>>,
    ) -> bool {
        self.evict_one_from(budget, spared, keep, None).is_some()
    }

    /// [`evict_one`](Self::evict_one), from shard `start` first if given; the shard the
    /// victim came from, if one went.
    pub(in crate::drivers::memory) fn evict_one_from(
        &self,
        budget: &Budget,
        spared: &Spared<'_>,
        keep: Option<&mut Held<'_>>,
        start: Option<usize>,
    ) -> Option<usize> {
        if self.meta.mode == Eviction::Never {
            return None;
        }
        let shards = self.shards.len();
        let start = match (start, spared.first()) {
            (Some(shard), _) => shard % shards,
            (None, Some(key)) => self.shard_index(self.hash(key)),
            (None, None) => self.larger_of_two(),
        };
        for i in 0..shards {
            let shard = (start + i) % shards;
            let mut tally = Tally::new();
            let mut slots = write(&self.shards[shard]);
            if !slots.evict(&self.hasher, budget, spared, &mut tally) {
                continue;
            }
            slots.recharge_order(&mut tally);
            let emptied = slots.map.is_empty();
            drop(slots);
            if let Some(held) = keep {
                held.keep(&mut tally);
            }
            self.settle(budget, Reservation::default(), &tally);
            // A namespace its last key was evicted from, which no handle holds, is freed, as
            // one emptied by deletes or expiry is (a store of a namespace a user kept the
            // table of every namespace that ever held a key).
            if emptied
                && self.meta.handles.load(Ordering::SeqCst) == 0
                && let Some(registry) = self.meta.registry.upgrade()
            {
                registry.release(self);
            }
            // Counted last, for a recorder that panics.
            self.meta.count(&tally);
            return Some(shard);
        }
        None
    }
}
