//! Batches: every shard a batch touches locked in ascending order and held until it is done,
//! so a batch is atomic without a global lock and without deadlocks.

use std::mem;
use std::sync::RwLockWriteGuard;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::reserve::batch_adds;
use super::room::{LAST_ATTEMPT, ROOM_ATTEMPTS};
use super::{Shard, Table, deadline_of, read, write};
use crate::Result;
use crate::drivers::memory::budget::{Budget, Reservation};
use crate::drivers::memory::clock::Now;
use crate::drivers::memory::entry::{Entry, Value, bytes_heap, cost, key_eq};
use crate::drivers::memory::eviction::Eviction;
use crate::drivers::memory::order::ORDER_FIRST;
use crate::drivers::memory::slots::{Slots, Tally};
use crate::ttl::Ttl;

/// Batches of up to 16 keys plan and lock on the stack.
type Batch<T> = smallvec::SmallVec<[T; 16]>;

/// A batch's keys' hashes, by position in the batch.
type Plan = Batch<u64>;

/// The shards a batch falls in, locked ([`Table::lock_all`]), and which of them holds each
/// of its keys.
struct Locks<G> {
    guards: Batch<G>,
    /// By the key's position in the batch: its shard's guard's, in `guards`.
    of: Batch<u32>,
}

impl<G> Locks<G> {
    /// The guard of the shard of the key at `at` in the batch.
    fn of(&mut self, at: usize) -> &mut G {
        &mut self.guards[self.of[at] as usize]
    }

    /// Visits the batch's keys (`plan`) in the caller's order (a key given twice: the last
    /// one wins), with the guard of each one's shard, its position and its hash.
    fn visit(&mut self, plan: &Plan, mut visit: impl FnMut(&mut G, usize, u64)) {
        for (at, &hash) in plan.iter().enumerate() {
            visit(self.of(at), at, hash);
        }
    }
}

impl Table {
    /// The hash of each key of a batch. (An out-parameter: a returned inline batch is
    /// copied whole.)
    fn plan<'k>(&self, keys: impl ExactSizeIterator<Item = &'k str>, plan: &mut Plan) {
        plan.reserve(keys.len());
        plan.extend(keys.map(|key| self.hash(key)));
    }

    /// Visits a batch's keys (`plan`), locking the shards they fall in with `lock`
    /// ([`lock_all`](Self::lock_all)) and holding every lock until all keys are visited.
    /// `visit` gets the shard's guard, the key's position in the batch and its hash.
    fn locked<'s, G>(
        &'s self,
        plan: &Plan,
        lock: impl Fn(&'s Shard) -> G,
        visit: impl FnMut(&mut G, usize, u64),
    ) {
        self.lock_all(plan, lock).visit(plan, visit);
    }

    /// Locks the shards a batch's keys (`plan`) fall in with `lock`, in ascending shard
    /// order: held together, they make the batch atomic, and as everyone takes shard locks in
    /// the same order, batches cannot deadlock.
    ///
    /// With up to 64 shards (the default up to 16 CPUs) the shards are a bit set, locked by
    /// walking its bits and found again by counting the bits below a key's shard: no sort.
    fn lock_all<'s, G>(&'s self, plan: &Plan, lock: impl Fn(&'s Shard) -> G) -> Locks<G> {
        let mut locks = Locks {
            guards: Batch::new(),
            of: Batch::new(),
        };
        if self.shards.len() <= 64 {
            let mut set = 0u64;
            for &hash in plan.iter() {
                set |= 1 << self.shard_index(hash);
            }
            let mut rest = set;
            while rest != 0 {
                locks
                    .guards
                    .push(lock(&self.shards[rest.trailing_zeros() as usize]));
                rest &= rest - 1;
            }
            locks.of.extend(plan.iter().map(|&hash| {
                let below = set & ((1 << self.shard_index(hash)) - 1);
                below.count_ones()
            }));
        } else {
            // Each step: the shard index (below 2^16) in the top 16 bits, the position below.
            let mut steps: Batch<u64> = Batch::new();
            steps.extend(plan.iter().enumerate().map(|(i, &hash)| {
                debug_assert!((i as u64) < 1 << 48);
                (self.shard_index(hash) as u64) << 48 | i as u64
            }));
            steps.sort_unstable();
            locks.of.resize(plan.len(), 0);
            let mut held = usize::MAX;
            for step in steps {
                let shard = (step >> 48) as usize;
                if shard != held {
                    locks.guards.push(lock(&self.shards[shard]));
                    held = shard;
                }
                let i = (step & ((1 << 48) - 1)) as usize;
                locks.of[i] = (locks.guards.len() - 1) as u32;
            }
        }
        locks
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
        let mut plan = Plan::new();
        self.plan(pairs.iter().map(|(k, _)| *k), &mut plan);
        let mut now = Now::new(&self.clock);
        let mut tally = Tally::new();
        let (mut locks, mut reserved, keys, mut growth) = match &self.budget {
            None => (
                self.lock_all(&plan, write),
                Reservation::default(),
                Batch::new(),
                0,
            ),
            Some(budget) => {
                // The keys: spared by eviction.
                let keys: Batch<&str> = pairs.iter().map(|(key, _)| *key).collect();
                let costs: Batch<u64> = pairs
                    .iter()
                    .map(|(key, value)| cost(key, bytes_heap(value)))
                    .collect();
                let (locks, reserved, growth) =
                    self.lock_batch_with_room(budget, &plan, &keys, &costs, &mut now, &mut tally)?;
                (locks, reserved, keys, growth)
            }
        };
        let mode = self.bounded_mode();
        let mark = self.first_mark();
        let deadline = deadline_of(&mut now, ttl);
        locks.visit(&plan, |slots, i, hash| {
            let (key, value) = &mut pairs[i];
            let value = Value::Bytes(mem::take(value));
            match slots.live_mut(hash, key, &mut now, &mut tally) {
                Some(live) => live.update(mode, hash, &mut tally, |entry| {
                    entry.value = value;
                    entry.deadline = deadline;
                }),
                None => {
                    // A batch reserves its tables' doublings in a `never` namespace; elsewhere
                    // what it reserved for them (`growth`) is spent first, then room for a
                    // doubling is taken, or made, as it comes.
                    reserved.bytes +=
                        self.room_to_insert(slots, hash, &keys, &mut growth, &mut tally);
                    slots.insert(&self.hasher, hash, key, value, deadline, mark, &mut tally)
                }
            }
        });
        drop(locks);
        self.finish_storing(reserved, &tally, deadline, &keys);
        Ok(())
    }

    /// Reserves room for a batch (`keys`, their hashes in `plan`, what each new entry costs
    /// in `costs`) and locks its shards ([`lock_all`](Self::lock_all)).
    ///
    /// When the store is full the room is what the batch adds to the entries it finds then,
    /// without the locks: another write may evict or rewrite one of its keys before the batch
    /// locks them, and the batch then adds more than it reserved (the old value it meant to
    /// replace gone). Under the locks, what it adds past its reservation is taken; when the
    /// budget has not got it, the locks are let go and the room made again, twice, then
    /// under the locks ([`Table::room_under_locks`]), letting them go and making it again
    /// between tries ([`LAST_ATTEMPT`]); what the last cannot make is taken past the budget,
    /// and the store sheds after the batch, as after a single key's write. (Left to the
    /// shedding, two threads rewriting values of up to 1 MB two at a time in a 1 MiB store,
    /// beside two writing small batches, took it to 1.66 times its budget.)
    ///
    /// For a batch large in its budget, what its keys need of their tables is reserved with
    /// their entries, and judged with them ([`Table::growth_to_reserve_for`]); it is returned
    /// with the reservation, for the tables' doublings to spend first.
    fn lock_batch_with_room<'s>(
        &'s self,
        budget: &Budget,
        plan: &Plan,
        keys: &[&str],
        costs: &[u64],
        now: &mut Now<'_>,
        tally: &mut Tally,
    ) -> Result<(Locks<RwLockWriteGuard<'s, Slots>>, Reservation, u64)> {
        let entries = Reservation {
            bytes: costs.iter().sum::<u64>(),
            entries: keys.len() as u64,
        };
        let growth = self.growth_to_reserve_for(plan, budget, entries.bytes);
        // Every key taken as a new entry: what the batch adds at most, whatever it finds.
        let most = Reservation {
            bytes: entries.bytes + growth,
            ..entries
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let reserved = self.reserve_batch(keys, costs, growth)?;
            let mut locks = self.lock_all(plan, write);
            if most.past(reserved).is_empty() {
                return Ok((locks, reserved, growth));
            }
            let adds = batch_adds(keys, costs, growth, |at| {
                locks
                    .of(at)
                    .map
                    .find(plan[at], |e| key_eq(&e.key, keys[at]))
                    .filter(|e| e.live(now))
                    .map(Entry::charge)
            });
            let extra = adds.past(reserved);
            if extra.is_empty() {
                return Ok((locks, reserved, growth));
            }
            if budget.try_take(extra) {
                return Ok((locks, reserved.plus(extra), growth));
            }
            if attempts >= ROOM_ATTEMPTS {
                let locked = locks.guards.iter_mut().map(|guard| &mut **guard);
                if self.room_under_locks(budget, locked, keys, extra) {
                    return Ok((locks, reserved.plus(extra), growth));
                }
                if attempts == LAST_ATTEMPT {
                    budget.take_over(extra, tally);
                    return Ok((locks, reserved.plus(extra), growth));
                }
            }
            drop(locks);
            // The reservation goes back, and the room is made again.
            budget.settle(reserved, &Tally::new());
        }
    }

    /// What adding a batch's keys (`plan`, their hashes) takes beyond their entries, to be
    /// reserved with them: what the shards' tables may grow by and the eviction orders of
    /// shards that hold no entry yet (see [`Table::growth_to_reserve`]), and the namespace's
    /// fixed part while unpaid ([`Table::unpaid`]). Looked at in a `never` namespace and in
    /// any namespace's first batch for every shard the batch falls in; for a batch of `bytes`
    /// large in its budget ([`Budget::large_for`]), what its keys need of their tables with
    /// every other entry evicted (an empty shard's made anew: making the room may give it
    /// back); elsewhere only in shards `clear` emptied since ([`Meta::cleared`](super::Meta),
    /// one relaxed load a batch), which take their lock to look. Elsewhere a table's growth
    /// is charged as it comes: looking at every shard's table would take its lock for every
    /// batch. (Left to be charged after, a batch into a new or cleared namespace in a full
    /// store took the store over its budget, and the batch's own keys, the namespace's only
    /// ones, were evicted to make up for it; a batch of 30 new keys into a 20,000-byte store
    /// of 4 shards holding a few keys was judged to fit, evicted them all, and its tables'
    /// growth left the store up to 20% over its budget, with nothing left to evict.)
    ///
    /// In a `with-ttl` namespace holding keys without a TTL, every shard is looked at too: a
    /// table they fill doubles whatever eviction takes ([`Table::growth_to_reserve`]).
    fn growth_to_reserve_for(&self, plan: &Plan, budget: &Budget, bytes: u64) -> u64 {
        let fixed = self.unpaid();
        let every = fixed != 0 || self.reserves_growth();
        // For a batch large in its budget: what its own keys need of their tables, whatever
        // else goes.
        let own = !every && budget.large_for(bytes);
        let kept = self.meta.mode == Eviction::WithTtl && self.entries_without_ttl() > 0;
        let cleared = self.meta.cleared.load(Ordering::Acquire);
        if !every && !own && !kept && cleared == 0 {
            return 0;
        }
        let bit = |shard: usize| 1u64 << (shard % 64);
        let mut shards: Batch<usize> = plan.iter().map(|&hash| self.shard_index(hash)).collect();
        shards.sort_unstable();
        let shards: u64 = shards
            .chunk_by(|a, b| a == b)
            .map(|run| {
                let shard = run[0];
                if !every && !kept && cleared & bit(shard) == 0 {
                    if !own {
                        return 0;
                    }
                    let slots = read(&self.shards[shard]);
                    // An empty shard may be given back while the batch makes its room
                    // (`Table::release_empty_shards`): its table and order are made anew.
                    return if slots.idle() {
                        Slots::remade_to_hold(run.len()) + ORDER_FIRST
                    } else if slots.awaits_order() {
                        slots.growth_to_hold(run.len()) + ORDER_FIRST
                    } else {
                        slots.growth_to_hold(run.len())
                    };
                }
                let slots = read(&self.shards[shard]);
                if slots.awaits_order() {
                    slots.growth_if_adding(run.len()) + ORDER_FIRST
                } else {
                    // Written since it was cleared: no longer worth a look. (`clear` sets the
                    // bit under the write lock, so none is missed while this is held; with
                    // over 64 shards a bit stands for several, and stays.)
                    if self.shards.len() <= 64 {
                        self.meta.cleared.fetch_and(!bit(shard), Ordering::AcqRel);
                    }
                    if every {
                        slots.growth_if_adding(run.len())
                    } else {
                        self.growth_to_reserve(&slots, run.len())
                    }
                }
            })
            .sum();
        shards + fixed
    }

    pub(crate) fn mdel(&self, keys: &[&str]) -> u64 {
        let mut tally = Tally::new();
        let mut now = Now::new(&self.clock);
        let mut removed = 0;
        let mut plan = Plan::new();
        self.plan(keys.iter().copied(), &mut plan);
        self.locked(&plan, write, |slots, i, hash| {
            if slots.remove(&self.hasher, hash, keys[i], &mut now, &mut tally) {
                removed += 1;
            }
        });
        self.finish(Reservation::default(), &tally, 0);
        removed
    }
}
