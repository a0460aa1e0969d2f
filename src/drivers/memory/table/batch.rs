//! Batches: every shard a batch touches locked in ascending order and held until it is done,
//! so a batch is atomic without a global lock and without deadlocks.

use std::mem;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{Shard, Table, deadline_of, read, write};
use crate::Result;
use crate::drivers::memory::budget::Reservation;
use crate::drivers::memory::clock::Now;
use crate::drivers::memory::entry::{Value, bytes_heap, cost, key_eq};
use crate::drivers::memory::order::ORDER_FIRST;
use crate::drivers::memory::slots::Tally;
use crate::ttl::Ttl;

/// Batches of up to 16 keys plan and lock on the stack.
type Batch<T> = smallvec::SmallVec<[T; 16]>;

/// A batch's keys' hashes, by position in the batch.
type Plan = Batch<u64>;

impl Table {
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
        let mut plan = Plan::new();
        self.plan(pairs.iter().map(|(k, _)| *k), &mut plan);
        // The keys, in a store with a budget: spared by eviction.
        let keys: Batch<&str> = match self.budget {
            None => Batch::new(),
            Some(_) => pairs.iter().map(|(key, _)| *key).collect(),
        };
        let mut reserved = match self.budget {
            None => Reservation::default(),
            Some(_) => {
                let costs: Batch<u64> = pairs
                    .iter()
                    .map(|(key, value)| cost(key, bytes_heap(value)))
                    .collect();
                self.reserve_batch(&keys, &costs, self.growth_to_reserve_for(&plan))?
            }
        };
        let mode = self.bounded_mode();
        let mark = self.first_mark();
        let mut tally = Tally::new();
        let mut now = Now::new(&self.clock);
        let deadline = deadline_of(&mut now, ttl);
        self.locked(&plan, write, |slots, i, hash| {
            let (key, value) = &mut pairs[i];
            let value = Value::Bytes(mem::take(value));
            match slots.live_mut(hash, key, &mut now, &mut tally) {
                Some(live) => live.update(mode, hash, &mut tally, |entry| {
                    entry.value = value;
                    entry.deadline = deadline;
                }),
                None => {
                    // A batch reserves its tables' doublings only in a `never` namespace:
                    // elsewhere room for a doubling is taken, or made, as it comes.
                    reserved.bytes += self.room_to_insert(slots, hash, &keys, &mut tally);
                    slots.insert(&self.hasher, hash, key, value, deadline, mark, &mut tally)
                }
            }
        });
        self.finish_storing(reserved, &tally, deadline, &keys);
        Ok(())
    }

    /// What adding a batch's keys (`plan`, their hashes) takes beyond their entries, to be
    /// reserved with them: what the shards' tables may grow by and the eviction orders of
    /// shards that hold no entry yet (see [`Table::growth_to_reserve`]), and the namespace's
    /// fixed part while unpaid ([`Table::unpaid`]). Looked at in a `never` namespace and in
    /// any namespace's first batch for every shard the batch falls in; elsewhere only in
    /// shards `clear` emptied since ([`Meta::cleared`](super::Meta), one relaxed load a
    /// batch), which take their lock to look. Elsewhere a table's growth is charged as it
    /// comes: looking at every shard's table would take its lock for every batch. (Left to
    /// be charged after, a batch into a new or cleared namespace in a full store took the
    /// store over its budget, and the batch's own keys, the namespace's only ones, were
    /// evicted to make up for it.)
    fn growth_to_reserve_for(&self, plan: &Plan) -> u64 {
        let fixed = self.unpaid();
        let every = fixed != 0 || self.reserves_growth();
        let cleared = self.meta.cleared.load(Ordering::Acquire);
        if !every && cleared == 0 {
            return 0;
        }
        let bit = |shard: usize| 1u64 << (shard % 64);
        let mut shards: Batch<usize> = plan.iter().map(|&hash| self.shard_index(hash)).collect();
        shards.sort_unstable();
        let shards: u64 = shards
            .chunk_by(|a, b| a == b)
            .map(|run| {
                let shard = run[0];
                if !every && cleared & bit(shard) == 0 {
                    return 0;
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
                        0
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
