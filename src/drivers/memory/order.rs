//! The eviction order of one shard of a store with a budget: which entry goes next (S3-FIFO or
//! a sampled LRU, O(1) amortized per write), and the shard's entries with a TTL by deadline (a
//! heap: O(log n) per write that sets a deadline), so expired entries are found without
//! scanning. Every method runs under the shard's write lock; reads only mark entries (an
//! atomic store), so a read never takes this lock.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::BuildHasher;
use std::mem::size_of;
use std::sync::atomic::Ordering;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::entry::{ENTRY_OVERHEAD, Entry, key_eq};
use super::eviction::{Eviction, Policy};

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
/// Entries the sampled LRU compares per eviction (Redis's `maxmemory-samples` default).
const SAMPLES: usize = 5;

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
                    + queues.ghosts.members.allocation_size()
                    + queues.sketch.words.capacity() * size_of::<u64>()
            }
            Victims::SampledLru { .. } => 0,
        };
        (self.expiry.capacity() * size_of::<Reverse<(u64, u32, u64)>>() + queues) as u64
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
            let ghosts = &mut queues.ghosts.members;
            if sparse(ghosts.len(), ghosts.capacity()) {
                ghosts.shrink_to(2 * ghosts.len(), |&(hash, _)| hash);
                trimmed = true;
            }
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
        if self.evictable(entry) {
            if let Victims::S3Fifo(queues) = &mut self.policy {
                queues.enqueue(hash, entry);
            }
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
    /// have gone: rebuilt from the shard's entries when stale positions outnumber live ones
    /// (amortized over the writes that made them stale).
    pub(super) fn maintain(
        &mut self,
        map: &HashTable<Entry>,
        with_ttl: usize,
        hasher: &DefaultHashBuilder,
    ) {
        if self.expiry.len() > 2 * with_ttl + 1024 {
            self.expiry = map
                .iter()
                .filter(|e| e.deadline != 0)
                .map(|e| Reverse((e.deadline, e.id, hasher.hash_one(e.key.as_str()))))
                .collect();
        }
        if let Victims::S3Fifo(queues) = &mut self.policy {
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
        spared: &[&str],
    ) -> Option<Victim> {
        let mode = self.mode;
        let evictable = move |e: &Entry| mode.allows(e);
        let spared = move |e: &Entry| spared.iter().any(|key| key_eq(key, &e.key));
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
    /// to the main queue when it was seen more often than the main queue's next victim.
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
        // nothing here can go.
        let mut spared_in_a_row = 0;
        loop {
            let total = self.small_weight + self.main_weight;
            let from_small = self.small_weight > 0
                && (self.small_weight * 1000 >= total * self.small_share || self.main_weight == 0);
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
                if let Some(&(next, _)) = self.main.front()
                    && self.sketch.estimate(hash) > self.sketch.estimate(next)
                {
                    // Not read since it came, but seen more often than the main queue's next
                    // victim over the sketch's horizon (TinyLFU's admission): it stays.
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

    fn ghost_capacity(&self) -> usize {
        (self.queued * GHOST_PERCENT / 100).max(8)
    }

    /// Drops the slots of entries that left the shard, once they outnumber the queued
    /// entries (otherwise they are skipped as they come out).
    fn compact(&mut self, map: &HashTable<Entry>) {
        if self.small.len() + self.main.len() <= 2 * self.queued + 1024 {
            return;
        }
        let queued_in = |queue: u8| {
            move |&(hash, id): &Slot| {
                map.find(hash, |e| e.id == id)
                    .is_some_and(|e| e.queue == queue)
            }
        };
        self.small.retain(queued_in(SMALL));
        self.main.retain(queued_in(MAIN));
        self.small.shrink_to_fit();
        self.main.shrink_to_fit();
    }
}

/// Counters a queued entry has in the [`Sketch`] (4 bits each: 8 bytes an entry).
const SKETCH_COUNTERS_PER_ENTRY: usize = 16;
/// The sketch halves every counter after this many sightings per counter, in quarters (40: a
/// horizon of 640 sightings per queued entry). Chosen by measurement (docs/eviction.md): from
/// 120 to 240 quarters the hit ratios moved by under 0.2 point; shorter horizons lose P3 and
/// small Zipf caches.
const SKETCH_AGING_QUARTERS: usize = 160;

/// A count-min sketch of 4-bit counters, four probes a key, sized to the shard's queued
/// entries: how many times each key was inserted, or passed a queue with a read to its
/// credit, with every count halved as the additions reach the horizon (TinyLFU's aging, Einziger
/// et al., 2017). Counts are estimates from above; a collision can only make a key look more
/// frequent.
#[derive(Default)]
struct Sketch {
    /// 16 counters a word.
    words: Vec<u64>,
    additions: usize,
}

impl Sketch {
    fn counters(&self) -> usize {
        self.words.len() * 16
    }

    /// Counter `probe` of `hash`: its word and the shift of its 4 bits.
    fn at(&self, hash: u64, probe: u64) -> (usize, u32) {
        const SEEDS: [u64; 4] = [
            0x9e37_79b9_7f4a_7c15,
            0xc2b2_ae3d_27d4_eb4f,
            0x1656_67b1_9e37_79f9,
            0xd6e8_feb8_6659_fd93,
        ];
        let mixed = (hash ^ SEEDS[probe as usize]).wrapping_mul(0xff51_afd7_ed55_8ccd);
        let index = ((u128::from(mixed) * self.counters() as u128) >> 64) as usize;
        (index / 16, (index % 16) as u32 * 4)
    }

    fn get(&self, (word, shift): (usize, u32)) -> u64 {
        (self.words[word] >> shift) & 0xf
    }

    /// Sizes the sketch for `queued` entries: grown (and emptied) when they outgrow it,
    /// shrunk when it is over twice their need, so it never holds more than 16 bytes an
    /// entry (what [`ENTRY_OVERHEAD`] counts for it).
    fn fit(&mut self, queued: usize) {
        let need = (queued * SKETCH_COUNTERS_PER_ENTRY).max(256);
        let have = self.counters();
        if have < need || (have > 2 * need && have > 1024) {
            // A quarter more than needed, so a growing shard resizes a logarithmic number
            // of times.
            self.words = vec![0; (need + need / 4).div_ceil(16)];
            self.additions = 0;
        }
    }

    /// Counts one more sighting of `hash` in a shard of `queued` entries: the smallest of
    /// its counters go up by one (a conservative update), up to 15.
    fn record(&mut self, hash: u64, queued: usize) {
        self.fit(queued);
        let probes = [0, 1, 2, 3].map(|probe| self.at(hash, probe));
        let least = probes.iter().map(|&p| self.get(p)).min().unwrap_or(0);
        if least < 15 {
            for (word, shift) in probes {
                if (self.words[word] >> shift) & 0xf == least {
                    self.words[word] += 1 << shift;
                }
            }
        }
        // Every sighting counts towards the horizon, a saturated one too: otherwise a sketch
        // whose counters all reached 15 would never age again.
        self.additions += 1;
        if self.additions >= self.counters() * SKETCH_AGING_QUARTERS / 4 {
            for word in &mut self.words {
                *word = (*word >> 1) & 0x7777_7777_7777_7777;
            }
            self.additions /= 2;
        }
    }

    /// How often `hash` was seen, at most 15.
    fn estimate(&self, hash: u64) -> u64 {
        if self.words.is_empty() {
            return 0;
        }
        (0..4)
            .map(|probe| self.get(self.at(hash, probe)))
            .min()
            .unwrap_or(0)
    }
}

/// Which ghost list remembers a key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum GhostList {
    /// Evicted from the small queue without a second read.
    Small = 0,
    /// Evicted from the main queue.
    Main = 1,
}

/// Hashes of keys recently evicted, in two lists: from the small queue and from the main
/// one, each remembering the keys of its last `capacity` evictions. A key that comes back while
/// remembered goes straight to the main queue.
///
/// Both lists are one table of hashes, each with its list and the number of the eviction
/// into that list that put it there: a key is remembered while fewer than `capacity`
/// evictions into its list have followed. So an eviction and a return are one probe of the
/// table each, and nothing is taken out when a key is forgotten; forgotten keys are swept
/// out in bulk (amortized over the evictions that made them).
#[derive(Default)]
struct Ghosts {
    /// Hash, and the eviction's number shifted left once with its list in the low bit.
    members: HashTable<(u64, u64)>,
    /// Evictions into each list so far.
    evictions: [u64; 2],
}

impl Ghosts {
    fn insert(&mut self, hash: u64, list: GhostList, capacity: usize) {
        let count = &mut self.evictions[list as usize];
        let stamp = (*count << 1) | list as u64;
        *count += 1;
        match self.members.find_entry(hash, |&(h, _)| h == hash) {
            Ok(mut found) => found.get_mut().1 = stamp,
            Err(_) => {
                self.members.insert_unique(hash, (hash, stamp), |&(h, _)| h);
            }
        }
        // Swept once half a list's capacity of forgotten keys may have gathered beyond what
        // both lists remember: the table stays near the lists' size (its share of an entry's
        // charge), and a sweep, one pass over it, comes at most every `capacity / 2` evictions.
        if self.members.len() > sweep_above(capacity) {
            let evictions = self.evictions;
            self.members
                .retain(|&mut (_, stamp)| remembered(evictions, stamp, capacity).is_some());
        }
    }

    /// Forgets `hash`; the list that remembered it, if one still did.
    fn take(&mut self, hash: u64, capacity: usize) -> Option<GhostList> {
        let found = self.members.find_entry(hash, |&(h, _)| h == hash).ok()?;
        let ((_, stamp), _) = found.remove();
        remembered(self.evictions, stamp, capacity)
    }
}

/// How many hashes the table may hold before forgotten ones are swept out.
fn sweep_above(capacity: usize) -> usize {
    2 * capacity + capacity / 2 + 16
}

/// The list an entry of stamp `stamp` is remembered in, if fewer than `capacity` evictions into
/// it have followed.
fn remembered(evictions: [u64; 2], stamp: u64, capacity: usize) -> Option<GhostList> {
    let list = if stamp & 1 == 0 {
        GhostList::Small
    } else {
        GhostList::Main
    };
    let since = evictions[list as usize] - (stamp >> 1);
    (since <= capacity as u64).then_some(list)
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
        if let Some(entry) = map.get_bucket(at) {
            if evictable(entry) {
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
/// more than a few values' worth).
#[inline]
fn sparse(len: usize, capacity: usize) -> bool {
    capacity > 64 && capacity > 4 * len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed hash (the store's hasher is seeded at random per instance).
    fn hash(n: u64) -> u64 {
        (n ^ 0x5851_f42d_4c95_7f2d).wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn ghosts_remember_each_lists_last_evictions() {
        let mut ghosts = Ghosts::default();
        // Ten evictions into each list, with a capacity of 4: the last four of each are
        // remembered, in their own list.
        for n in 0..10 {
            ghosts.insert(hash(n), GhostList::Small, 4);
            ghosts.insert(hash(100 + n), GhostList::Main, 4);
        }
        for n in 0..10 {
            let small = ghosts.take(hash(n), 4);
            let main = ghosts.take(hash(100 + n), 4);
            if n >= 6 {
                assert_eq!(small, Some(GhostList::Small), "{n}");
                assert_eq!(main, Some(GhostList::Main), "{n}");
            } else {
                assert_eq!((small, main), (None, None), "{n}");
            }
        }
        // Taken keys are forgotten.
        assert_eq!(ghosts.take(hash(9), 4), None);
        // A key evicted again is remembered from its latest eviction, in its latest list.
        ghosts.insert(hash(1), GhostList::Small, 4);
        ghosts.insert(hash(1), GhostList::Main, 4);
        for n in 200..203 {
            ghosts.insert(hash(n), GhostList::Small, 4);
        }
        assert_eq!(ghosts.take(hash(1), 4), Some(GhostList::Main));
        // Many evictions: the table keeps at most `sweep_above` hashes, the remembered ones
        // among them.
        for n in 1_000..11_000 {
            ghosts.insert(hash(n), GhostList::Small, 8);
            assert!(ghosts.members.len() <= sweep_above(8));
        }
        for n in 10_992..11_000 {
            assert_eq!(ghosts.take(hash(n), 8), Some(GhostList::Small), "{n}");
        }
    }

    #[test]
    fn the_sketch_counts_caps_and_ages() {
        let mut sketch = Sketch::default();
        assert_eq!(sketch.estimate(hash(1)), 0);
        for _ in 0..5 {
            sketch.record(hash(1), 100);
        }
        sketch.record(hash(2), 100);
        assert_eq!(sketch.estimate(hash(1)), 5);
        assert_eq!(sketch.estimate(hash(2)), 1);
        assert_eq!(sketch.estimate(hash(3)), 0);
        for _ in 0..40 {
            sketch.record(hash(1), 100);
        }
        assert_eq!(sketch.estimate(hash(1)), 15, "4-bit counters stop at 15");
        // Other keys, up to the horizon: every count is halved (collisions may add a little
        // to a count, never take from it).
        let horizon = sketch.counters() * SKETCH_AGING_QUARTERS / 4;
        let mut n = 1_000;
        loop {
            let last = sketch.additions;
            sketch.record(hash(n), 100);
            n += 1;
            if sketch.additions < last {
                break;
            }
        }
        assert!(n - 1_000 < horizon as u64, "aged after {n} additions");
        let aged = sketch.estimate(hash(1));
        assert!((7..15).contains(&aged), "{aged}");
    }

    #[test]
    fn the_sketch_stays_within_its_charge() {
        let mut sketch = Sketch::default();
        for queued in [1, 10, 1_000, 100_000, 50_000, 1_000, 10] {
            sketch.fit(queued);
            let bytes = sketch.words.len() * 8;
            assert!(
                bytes <= queued.max(16) * 16 || bytes <= 1024,
                "{bytes} bytes for {queued} entries"
            );
            assert!(sketch.counters() >= queued * SKETCH_COUNTERS_PER_ENTRY);
        }
    }
}
