//! The eviction order of one shard of a store with a budget: which entry goes next (S3-FIFO or
//! a sampled LRU, O(1) amortized per write), and the shard's entries with a TTL by deadline (a
//! heap: O(log n) per write that sets a deadline), so expired entries are found without
//! scanning. Every method runs under the shard's write lock; reads only mark entries (an
//! atomic store), so a read never takes this lock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::mem::size_of;
use std::sync::atomic::Ordering;

use hashbrown::HashTable;

use super::entry::{ENTRY_OVERHEAD, Entry, heap};
use super::eviction::{Eviction, Policy};
use super::ghosts::{GhostList, Ghosts};
use super::sketch::{SMALLEST_HEAP, Sketch};
use super::spared::Spared;

/// An entry's place in a queue: its hash (to find its bucket) and its number in the shard.
type Slot = (u64, u32);

const NOT_QUEUED: u8 = 0;
const SMALL: u8 = 1;
const MAIN: u8 = 2;

/// The highest access mark S3-FIFO keeps (two bits, as in the paper).
pub(super) const MAX_FREQUENCY: u32 = 3;
/// The small queue's first share of a shard's charge, in thousandths; it then adapts between
/// [`MIN_SMALL_SHARE`] and [`MAX_SMALL_SHARE`], by [`SHARE_STEP`] a ghost hit.
const SMALL_SHARE: u64 = 50;
const MIN_SMALL_SHARE: u64 = 10;
const MAX_SMALL_SHARE: u64 = 500;
const SHARE_STEP: u64 = 5;
/// Each ghost list remembers as many keys as 15% of the shard's queued entries (40% before the
/// frequency sketch, which remembers over a longer horizon; docs/eviction.md).
const GHOST_PERCENT: usize = 15;
/// Positions of entries that went (or of deadlines they no longer have) a shard's queues and
/// expiry index may hold beyond twice their `live` ones before they are dropped: few, so that
/// a small budget is not spent on them (they are charged as they are), and enough that a
/// shard is not compacted on every write: half the live ones, from 8 to 32. (A flat 32 let a
/// namespace of 16 keys, one a shard, hold 41 KB once its keys had been written again and
/// again, three times what it held when first written; 20 KB with this. A flat 8 made renewing
/// the TTLs of a shard of 60 keys 5% slower, compacted more often.) A compacted structure
/// keeps room for as many as it may hold before the next compaction (up to twice that, as it
/// grew), so it does not grow back block by block in between.
#[inline]
fn stale_allowance(live: usize) -> usize {
    (live / 2).clamp(8, 32)
}
/// Entries the sampled LRU compares per eviction (Redis's `maxmemory-samples` default).
const SAMPLES: usize = 5;

/// The heap of an [`Order`]'s own block, made with its shard's first entry.
const ORDER_BLOCK: u64 = heap(size_of::<Order>());

/// What an order's structures take once its shard holds its first entry, at most: its own
/// block, and the first blocks of its queue (four slots), its frequency sketch and its expiry
/// index (four positions). Reserved by the write that adds the entry; a unit test below holds
/// it to what they take.
pub(super) const ORDER_FIRST: u64 = ORDER_BLOCK
    + (4 * size_of::<Slot>() + SMALLEST_HEAP + 4 * size_of::<Reverse<(u64, u32, u64)>>()) as u64;

/// What a key that a write spares may add to its shard's queues while the write evicts around
/// it, at most: S3-FIFO's victim search moves a spared key it meets to the back of the main
/// queue, a second slot (16 bytes) until the stale one is dropped, in a queue that may double
/// for it.
pub(in crate::drivers::memory) const SPARED_REQUEUE: u64 = 2 * size_of::<Slot>() as u64;

pub(super) struct Order {
    mode: Eviction,
    policy: Victims,
    /// (deadline, id, hash) of every entry with a TTL; entries whose deadline changed since
    /// stay until popped and are skipped then.
    expiry: BinaryHeap<Reverse<(u64, u32, u64)>>,
    next_id: u32,
    /// The heap the order's structures held when last charged to the budget.
    charged: u64,
}

// A shard's whole order is boxed already; the variants' sizes matter no further.
#[allow(clippy::large_enum_variant)]
enum Victims {
    S3Fifo(S3Fifo),
    SampledLru { rng: u64 },
}

impl Order {
    pub(super) fn new(mode: Eviction, policy: Policy, seed: u64) -> Self {
        Order {
            mode,
            policy: match policy {
                Policy::S3Fifo => Victims::S3Fifo(S3Fifo::default()),
                Policy::SampledLru => Victims::SampledLru { rng: seed | 1 },
            },
            expiry: BinaryHeap::new(),
            next_id: 0,
            charged: 0,
        }
    }

    /// The heap the order's structures hold: the expiry index, and S3-FIFO's queues, ghost
    /// table and sketch (their blocks' sizes; the allocator's few bytes a block are left out,
    /// so that this stays a handful of loads on every insert).
    fn structures(&self) -> u64 {
        let queues = match &self.policy {
            Victims::S3Fifo(queues) => {
                (queues.small.capacity() + queues.main.capacity()) * size_of::<Slot>()
                    + queues.ghosts.heap()
                    + queues.sketch.heap()
            }
            Victims::SampledLru { .. } => 0,
        };
        // The order's own block too: it is made with its shard's first entry.
        ORDER_BLOCK
            + (self.expiry.capacity() * size_of::<Reverse<(u64, u32, u64)>>() + queues) as u64
    }

    /// Gives back the room of a structure that holds under a quarter of it, down to twice
    /// what it holds (entries left the shard; nothing shrinks these by itself). True when one
    /// shrank.
    pub(super) fn trim(&mut self) -> bool {
        let mut trimmed = false;
        if sparse(self.expiry.len(), self.expiry.capacity()) {
            self.expiry.shrink_to(2 * self.expiry.len());
            trimmed = true;
        }
        if let Victims::S3Fifo(queues) = &mut self.policy {
            for queue in [&mut queues.small, &mut queues.main] {
                if sparse(queue.len(), queue.capacity()) {
                    queue.shrink_to(2 * queue.len());
                    trimmed = true;
                }
            }
            let ghosts = queues.ghosts.heap();
            queues.ghosts.fit(queues.ghost_capacity());
            trimmed |= queues.ghosts.heap() != ghosts;
            let counters = queues.sketch.counters();
            queues.sketch.fit(queues.queued);
            trimmed |= queues.sketch.counters() != counters;
        }
        trimmed
    }

    /// What the order's structures grew (or shrank) by since last asked, in bytes: the budget
    /// is charged them as they are, a queue that doubled the bytes it took.
    pub(super) fn restructured(&mut self) -> i64 {
        let now = self.structures();
        let change = now as i64 - self.charged as i64;
        self.charged = now;
        change
    }

    /// The heap the order's structures held when last charged.
    pub(super) fn charged(&self) -> u64 {
        self.charged
    }

    /// A number for a new entry, unique among the shard's entries in practice (it wraps after
    /// 2^32 insertions; a queue slot also holds the entry's 64-bit hash).
    pub(super) fn next_id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// How many of the shard's entries eviction may take: those queued (S3-FIFO), or all of
    /// them (`len`, the sampled LRU, which does not count them apart).
    pub(super) fn evictable_len(&self, len: usize) -> usize {
        match &self.policy {
            Victims::S3Fifo(queues) => queues.queued,
            Victims::SampledLru { .. } => len,
        }
    }

    /// Whether the namespace's mode lets `entry` be evicted.
    #[inline]
    pub(super) fn evictable(&self, entry: &Entry) -> bool {
        self.mode.allows(entry)
    }

    /// A new entry: queued if it may be evicted, indexed if it expires.
    pub(super) fn inserted(&mut self, hash: u64, entry: &mut Entry) {
        if entry.deadline != 0 {
            self.expiry.push(Reverse((entry.deadline, entry.id, hash)));
        }
        if self.evictable(entry)
            && let Victims::S3Fifo(queues) = &mut self.policy
        {
            queues.enqueue(hash, entry);
        }
    }

    /// An entry leaves the shard.
    pub(super) fn removed(&mut self, entry: &Entry) {
        if let Victims::S3Fifo(queues) = &mut self.policy {
            queues.forget(entry, entry.weight());
        }
    }

    /// An entry's value or deadline changed; `old_charge` is what it cost the budget before.
    /// True when the entry took a new position in the expiry index or a queue.
    pub(super) fn changed(
        &mut self,
        hash: u64,
        entry: &mut Entry,
        old_deadline: u64,
        old_charge: u64,
    ) -> bool {
        let mut placed = false;
        if entry.deadline != 0 && entry.deadline != old_deadline {
            self.expiry.push(Reverse((entry.deadline, entry.id, hash)));
            placed = true;
        }
        let evictable = self.evictable(entry);
        if let Victims::S3Fifo(queues) = &mut self.policy {
            if entry.queue == NOT_QUEUED {
                if evictable {
                    queues.enqueue(hash, entry);
                    placed = true;
                }
            } else {
                // Still queued where it was, at its new cost.
                queues.recharge(entry, old_charge + ENTRY_OVERHEAD, entry.weight());
            }
        }
        placed
    }

    /// Keeps the queues and the expiry index from growing with positions of entries that
    /// have gone, or of deadlines an entry no longer has: once stale positions outnumber live
    /// ones by [`stale_allowance`], only the live ones are kept (amortized over the changes
    /// that made the others stale). True when anything was dropped: the structures' charge
    /// then changed.
    #[inline]
    pub(super) fn maintain(&mut self, map: &HashTable<Entry>, with_ttl: usize) -> bool {
        let stale_queues = match &self.policy {
            Victims::S3Fifo(queues) => queues.stale(),
            Victims::SampledLru { .. } => false,
        };
        if !stale_queues && self.expiry.len() <= 2 * with_ttl + stale_allowance(with_ttl) {
            return false;
        }
        self.compact(map, with_ttl);
        true
    }

    #[cold]
    fn compact(&mut self, map: &HashTable<Entry>, with_ttl: usize) {
        if self.expiry.len() > 2 * with_ttl + stale_allowance(with_ttl) {
            let mut positions = std::mem::take(&mut self.expiry).into_vec();
            positions.retain(|&Reverse((deadline, id, hash))| {
                map.find(hash, |e| e.id == id && e.deadline == deadline)
                    .is_some()
            });
            // An entry given a deadline it had before holds that position twice.
            positions.sort_unstable();
            positions.dedup();
            let room = 2 * with_ttl + stale_allowance(with_ttl);
            if positions.capacity() > 2 * room {
                positions.shrink_to(room);
            }
            self.expiry = BinaryHeap::from(positions);
        }
        if let Victims::S3Fifo(queues) = &mut self.policy
            && queues.stale()
        {
            queues.compact(map);
        }
    }

    /// Removes the next victim among the evictable entries and says what it was, or `None`
    /// when the shard holds none. `epoch` is the store's recency clock (for the sampled LRU).
    /// Keys in `spared` (those of the write the room is for) are not taken.
    pub(super) fn victim(
        &mut self,
        map: &mut HashTable<Entry>,
        epoch: u32,
        spared: &Spared<'_>,
    ) -> Option<Victim> {
        let mode = self.mode;
        let evictable = move |e: &Entry| mode.allows(e);
        // (With nothing spared, the entry's key is not even looked at: reading an inline key's
        // length and bytes is most of what comparing it with no key costs.)
        let spared = move |e: &Entry| !spared.is_empty() && spared.contains(&e.key);
        match &mut self.policy {
            Victims::S3Fifo(queues) => queues.victim(map, evictable, spared),
            Victims::SampledLru { rng } => {
                sampled_victim(map, rng, epoch, move |e: &Entry| evictable(e) && !spared(e))
            }
        }
    }

    /// Removes and returns an entry whose deadline is at or before `now`, if the shard holds
    /// one.
    pub(super) fn expired(&mut self, map: &mut HashTable<Entry>, now: u64) -> Option<Entry> {
        while let Some(&Reverse((deadline, id, hash))) = self.expiry.peek() {
            if deadline > now {
                return None;
            }
            self.expiry.pop();
            if let Ok(found) = map.find_entry(hash, |e| e.id == id && e.deadline == deadline) {
                let (entry, _) = found.remove();
                self.removed(&entry);
                return Some(entry);
            }
        }
        None
    }

    /// The earliest deadline the shard may hold (positions of changed entries included, so it
    /// is a lower bound), or `u64::MAX`.
    pub(super) fn earliest(&self) -> u64 {
        self.expiry
            .peek()
            .map_or(u64::MAX, |Reverse((deadline, _, _))| *deadline)
    }
}

/// An evicted entry: what it cost, and its deadline (0 for none). It was evictable.
pub(super) struct Victim {
    pub(super) charge: u64,
    pub(super) deadline: u64,
}

/// S3-FIFO's queues for one shard, by weight ([`Entry::weight`], bytes): a small FIFO that new
/// entries enter, a main FIFO that gives entries read since they came a second chance, and two
/// ghost lists of keys recently evicted, from the small queue and from the main one. A key that
/// comes back while remembered goes straight to the main queue, and moves the small queue's
/// share as ARC moves its target: up when it came back from the small queue's ghosts (the small
/// queue was too short to see its second read), down when from the main queue's.
struct S3Fifo {
    small: VecDeque<Slot>,
    main: VecDeque<Slot>,
    small_weight: u64,
    main_weight: u64,
    queued: usize,
    ghosts: Ghosts,
    /// The small queue's share of the weight, in thousandths.
    small_share: u64,
    /// How often keys came and were read, over a long horizon: the small queue admits a key
    /// to the main queue when it was seen more often than one of the main queue's next two
    /// entries ([`S3Fifo::admission_bar`]).
    sketch: Sketch,
}

impl Default for S3Fifo {
    fn default() -> Self {
        S3Fifo {
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_weight: 0,
            main_weight: 0,
            queued: 0,
            ghosts: Ghosts::default(),
            small_share: SMALL_SHARE,
            sketch: Sketch::default(),
        }
    }
}

impl S3Fifo {
    fn enqueue(&mut self, hash: u64, entry: &mut Entry) {
        let slot = (hash, entry.id);
        self.sketch.record(hash, self.queued + 1);
        match self.ghosts.take(hash, self.ghost_capacity()) {
            Some(GhostList::Small) => {
                // Evicted from the small queue, and back: the small queue was too short.
                entry.queue = MAIN;
                self.main.push_back(slot);
                self.small_share = (self.small_share + SHARE_STEP).min(MAX_SMALL_SHARE);
            }
            Some(GhostList::Main) => {
                // Evicted from the main queue, and back: the main queue was too short.
                entry.queue = MAIN;
                self.main.push_back(slot);
                self.small_share = self
                    .small_share
                    .saturating_sub(SHARE_STEP)
                    .max(MIN_SMALL_SHARE);
            }
            None => {
                entry.queue = SMALL;
                self.small.push_back(slot);
            }
        }
        self.recharge(entry, 0, entry.weight());
        self.queued += 1;
    }

    /// Moves the weight of `entry`'s queue from `old` to `new`.
    fn recharge(&mut self, entry: &Entry, old: u64, new: u64) {
        match entry.queue {
            SMALL => self.small_weight = self.small_weight - old + new,
            MAIN => self.main_weight = self.main_weight - old + new,
            _ => {}
        }
    }

    /// Takes `weight` off the queue that holds `entry`; its slot stays, and is skipped when
    /// it comes out.
    fn forget(&mut self, entry: &Entry, weight: u64) {
        match entry.queue {
            SMALL => self.small_weight -= weight,
            MAIN => self.main_weight -= weight,
            _ => return,
        }
        self.queued -= 1;
    }

    fn victim(
        &mut self,
        map: &mut HashTable<Entry>,
        evictable: impl Fn(&Entry) -> bool,
        spared: impl Fn(&Entry) -> bool,
    ) -> Option<Victim> {
        // Spared entries go round again; once every queued entry has been spared in a row,
        // nothing here can go. Once every entry of the main queue has been spared, victims
        // come from the small one whatever its share: a large key just written, in the main
        // queue and most of its weight, kept the small queue under its share, and every
        // victim was drawn from the main queue, which held nothing else (a store left over
        // its budget, its small queue's keys untouched).
        let mut spared_in_a_row = 0;
        let mut spared_from_main = 0;
        loop {
            let total = self.small_weight + self.main_weight;
            let from_small = self.small_weight > 0
                && (self.small_weight * 1000 >= total * self.small_share
                    || self.main_weight == 0
                    || (spared_from_main > 0 && spared_from_main >= self.main.len()));
            let queue = if from_small { SMALL } else { MAIN };
            let slot = if from_small {
                self.small.pop_front()
            } else {
                self.main.pop_front()
            };
            let Some((hash, id)) = slot else {
                // Both queues ran out: what they still count is stale.
                self.small_weight = 0;
                self.main_weight = 0;
                self.queued = 0;
                return None;
            };
            let Ok(mut found) = map.find_entry(hash, |e| e.id == id) else {
                continue;
            };
            let entry = found.get_mut();
            if entry.queue != queue {
                continue;
            }
            let weight = entry.weight();
            if !evictable(entry) {
                // Its TTL was removed in a `with-ttl` namespace: it leaves the queues.
                self.forget(entry, weight);
                entry.queue = NOT_QUEUED;
                continue;
            }
            if spared(entry) {
                spared_in_a_row += 1;
                spared_from_main += usize::from(!from_small);
                if spared_in_a_row > self.queued {
                    self.main.push_front((hash, id));
                    if from_small {
                        entry.queue = MAIN;
                        self.small_weight -= weight;
                        self.main_weight += weight;
                    }
                    return None;
                }
                // Being written, it is wanted: out of the small queue, into the main one.
                if from_small {
                    entry.queue = MAIN;
                    self.small_weight -= weight;
                    self.main_weight += weight;
                }
                self.main.push_back((hash, id));
                continue;
            }
            spared_in_a_row = 0;
            let mark = entry.mark.load(Ordering::Relaxed);
            if from_small {
                if mark > 0 {
                    // Read again while in the small queue: it stays, in the main queue, with
                    // one read less to its credit.
                    entry.mark.store(mark - 1, Ordering::Relaxed);
                    entry.queue = MAIN;
                    self.small_weight -= weight;
                    self.main_weight += weight;
                    self.main.push_back((hash, id));
                    self.sketch.record(hash, self.queued);
                    continue;
                }
                if let Some(bar) = self.admission_bar()
                    && self.sketch.estimate(hash) > bar
                {
                    // Not read since it came, but seen more often than one of the main
                    // queue's next victims over the sketch's horizon (TinyLFU's admission):
                    // it stays.
                    entry.queue = MAIN;
                    self.small_weight -= weight;
                    self.main_weight += weight;
                    self.main.push_back((hash, id));
                    continue;
                }
                self.ghosts
                    .insert(hash, GhostList::Small, self.ghost_capacity());
            } else if mark > 0 {
                entry.mark.store(mark - 1, Ordering::Relaxed);
                self.main.push_back((hash, id));
                self.sketch.record(hash, self.queued);
                continue;
            } else {
                self.ghosts
                    .insert(hash, GhostList::Main, self.ghost_capacity());
            }
            self.forget(entry, weight);
            let victim = Victim {
                charge: weight - ENTRY_OVERHEAD,
                deadline: entry.deadline,
            };
            // Dropped here: handing the entry back would copy it out and back.
            drop(found.remove());
            return Some(victim);
        }
    }

    /// What a key leaving the small queue unread must have been seen more often than to be
    /// admitted to the main queue: the sketch's count of the less seen of the main queue's
    /// next two entries (`None` while it is empty). Not its first alone: that one may have a
    /// second chance to take, and then the entry after it goes first; comparing with it
    /// turned away candidates seen more often than the entry that went (measured against
    /// the first alone, the next two and the next three, and against the first once given
    /// its second chance: docs/eviction.md, "The admission test's other side").
    #[inline]
    fn admission_bar(&self) -> Option<u64> {
        self.main
            .iter()
            .take(2)
            .map(|&(hash, _)| self.sketch.estimate(hash))
            .min()
    }

    /// Keys each ghost list remembers: [`GHOST_PERCENT`] of the queued entries, and at least
    /// two, so a shard of a few entries (a small namespace's) keeps a table of 8 slots, 128
    /// bytes, from its first eviction on (at least eight took 512 bytes a shard: 8 KiB of a
    /// namespace of 16 shards holding a few keys, charged to the budget).
    fn ghost_capacity(&self) -> usize {
        (self.queued * GHOST_PERCENT / 100).max(2)
    }

    /// Whether stale slots (of entries that left the shard) outnumber the queued entries by
    /// [`stale_allowance`]; until then they are skipped as they come out.
    #[inline]
    fn stale(&self) -> bool {
        self.small.len() + self.main.len() > 2 * self.queued + stale_allowance(self.queued)
    }

    /// Drops the stale slots.
    fn compact(&mut self, map: &HashTable<Entry>) {
        let queued_in = |queue: u8| {
            move |&(hash, id): &Slot| {
                map.find(hash, |e| e.id == id)
                    .is_some_and(|e| e.queue == queue)
            }
        };
        self.small.retain(queued_in(SMALL));
        self.main.retain(queued_in(MAIN));
        let room = 2 * self.queued + stale_allowance(self.queued);
        for queue in [&mut self.small, &mut self.main] {
            if queue.capacity() > 2 * room {
                queue.shrink_to(room);
            }
        }
    }
}

/// Redis's approximate LRU: of up to [`SAMPLES`] evictable entries at random buckets, the
/// one read or written longest ago (by the store's recency clock).
fn sampled_victim(
    map: &mut HashTable<Entry>,
    rng: &mut u64,
    epoch: u32,
    evictable: impl Fn(&Entry) -> bool,
) -> Option<Victim> {
    let buckets = map.num_buckets();
    if map.is_empty() || buckets == 0 {
        return None;
    }
    let mut best: Option<(u32, usize)> = None;
    let mut sampled = 0;
    for _ in 0..SAMPLES * 16 {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        let at = (*rng % buckets as u64) as usize;
        if let Some(entry) = map.get_bucket(at)
            && evictable(entry)
        {
            let age = epoch.wrapping_sub(entry.mark.load(Ordering::Relaxed));
            if best.is_none_or(|(oldest, _)| age > oldest) {
                best = Some((age, at));
            }
            sampled += 1;
            if sampled == SAMPLES {
                break;
            }
        }
    }
    let at = match best {
        Some((_, at)) => at,
        // Few evictable entries among many: look at every bucket once.
        None => (0..buckets).find(|&i| map.get_bucket(i).is_some_and(&evictable))?,
    };
    let found = map.get_bucket_entry(at).ok()?;
    let victim = Victim {
        charge: found.get().charge(),
        deadline: found.get().deadline,
    };
    drop(found.remove());
    Some(victim)
}

/// Whether a structure holding `len` values has over four times the room it needs (and
/// more than 16 values' worth: with 64, the queues of a shard of one key kept room for 64).
#[inline]
fn sparse(len: usize, capacity: usize) -> bool {
    capacity > 16 && capacity > 4 * len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::memory::entry::Value;

    /// A fixed hash (the store's hasher is seeded at random per instance).
    fn hash(n: u64) -> u64 {
        (n ^ 0x5851_f42d_4c95_7f2d).wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A key leaving the small queue unread is weighed against the less seen of the main
    /// queue's next two entries, not the first alone: `a`, first, seen most and read since it
    /// came round, is passed over; `c` was seen more often than `b`, which goes in its place.
    #[test]
    fn the_small_queue_admits_against_the_main_queues_next_two() {
        let mut order = Order::new(Eviction::Any, Policy::S3Fifo, 1);
        let mut map: HashTable<Entry> = HashTable::new();
        let keys = [("a", hash(1)), ("b", hash(2)), ("c", hash(3))];
        let rehash = |e: &Entry| keys.iter().find(|(k, _)| *k == e.key).unwrap().1;
        for (key, hash) in keys {
            let mut entry = Entry::new(key, Value::Int(1), 0, order.next_id());
            order.inserted(hash, &mut entry);
            map.insert_unique(hash, entry, rehash);
        }
        let Victims::S3Fifo(queues) = &mut order.policy else {
            unreachable!()
        };
        // `a` and `b` to the main queue, `c` left in the small one; `a` read once since.
        for _ in 0..2 {
            let (hash, id) = queues.small.pop_front().unwrap();
            let entry = map.find_mut(hash, |e| e.id == id).unwrap();
            entry.queue = MAIN;
            queues.small_weight -= entry.weight();
            queues.main_weight += entry.weight();
            queues.main.push_back((hash, id));
        }
        map.find(keys[0].1, |e| e.key == "a")
            .unwrap()
            .mark
            .store(1, Ordering::Relaxed);
        queues.small_share = MIN_SMALL_SHARE;
        for _ in 0..2 {
            queues.sketch.record(keys[0].1, 3);
        }
        queues.sketch.record(keys[2].1, 3);
        let seen = keys.map(|(_, hash)| queues.sketch.estimate(hash));
        assert_eq!(seen, [3, 1, 2], "a, b, c seen");

        let victim = order.victim(&mut map, 0, &Spared::NONE);
        assert!(victim.is_some());
        let find = |key: &str| {
            map.find(keys.iter().find(|(k, _)| *k == key).unwrap().1, |e| {
                e.key == key
            })
        };
        assert!(find("b").is_none(), "b, the main queue's next victim, went");
        assert_eq!(find("c").map(|e| e.queue), Some(MAIN), "c was admitted");
        assert_eq!(find("a").map(|e| e.mark.load(Ordering::Relaxed)), Some(0));
    }
}
