//! Cache workloads and reference caches for hit-ratio measurements, shared by the eviction
//! bench (`benches/eviction.rs`) and the hit-ratio test: the ARC paper's block traces, Zipf
//! and scan workloads, an exact LRU and Belady's optimal replacement.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;

use futures_util::FutureExt;
use namestore::drivers::memory::{Eviction, MemoryDriver, Policy};
use namestore::{Bytes, Namespace};

/// The block accesses of a trace in the ARC paper's format (`start count _ _` per request; a
/// request of `count` blocks is `count` accesses to `start`, `start + 1`, …), zstd-compressed.
pub fn load_trace(path: &Path) -> Vec<u64> {
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("cannot open the trace {}: {e}", path.display()));
    let decoder = ruzstd::decoding::StreamingDecoder::new(file).expect("a zstd trace");
    let mut accesses = Vec::new();
    for line in BufReader::new(decoder).lines() {
        let line = line.expect("a readable trace");
        let mut fields = line.split_whitespace();
        let (Some(start), Some(count)) = (fields.next(), fields.next()) else {
            continue;
        };
        let (start, count): (u64, u64) = (start.parse().unwrap(), count.parse().unwrap());
        accesses.extend(start..start + count);
    }
    accesses
}

/// A small xorshift generator, seeded: workloads are the same on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `requests` accesses over `keys` keys with Zipf popularity `alpha` (key 0 the most
/// popular), by inverse transform over the cumulative weights.
pub fn zipf(keys: usize, alpha: f64, requests: usize, seed: u64) -> Vec<u64> {
    let mut cumulative = Vec::with_capacity(keys);
    let mut total = 0.0;
    for rank in 1..=keys {
        total += 1.0 / (rank as f64).powf(alpha);
        cumulative.push(total);
    }
    let mut rng = Rng(seed | 1);
    (0..requests)
        .map(|_| {
            let target = rng.unit() * total;
            cumulative.partition_point(|&c| c < target) as u64
        })
        .collect()
}

/// A scan-resistance workload: a hot Zipf set, then a one-time sweep over `sweep` keys never
/// seen before, then the hot set again. Returns the accesses and where the sweep starts and
/// ends.
pub fn scan_workload(
    hot_keys: usize,
    requests_each_side: usize,
    sweep: usize,
    seed: u64,
) -> (Vec<u64>, usize, usize) {
    let mut accesses = zipf(hot_keys, 0.9, requests_each_side, seed);
    let start = accesses.len();
    accesses.extend((0..sweep as u64).map(|i| 1_000_000_000 + i));
    let end = accesses.len();
    accesses.extend(zipf(hot_keys, 0.9, requests_each_side, seed ^ 0x5eed));
    (accesses, start, end)
}

/// A cache under test: answers whether an access hit, inserting on a miss (demand fill).
pub trait Replay {
    fn access(&mut self, key: u64) -> bool;
}

/// Hit ratio of `cache` over `accesses`, counting every access.
pub fn hit_ratio(cache: &mut dyn Replay, accesses: &[u64]) -> f64 {
    let hits = accesses.iter().filter(|&&key| cache.access(key)).count();
    hits as f64 / accesses.len().max(1) as f64
}

/// The memory driver as a cache of `capacity` entries (eviction `any`), through the typed
/// namespace API; `shards` overrides the default shard count.
pub struct Namestore(Namespace<u64, MemoryDriver>);

impl Namestore {
    pub fn new(capacity: usize, policy: Policy, shards: Option<usize>) -> Self {
        let mut builder = MemoryDriver::builder()
            .max_entries(capacity as u64)
            .eviction(Eviction::Any)
            .policy(policy)
            .reap_interval(None);
        if let Some(shards) = shards {
            builder = builder.shards(shards);
        }
        Namestore(
            builder
                .build()
                .unwrap()
                .namespace("replay", "cache")
                .unwrap(),
        )
    }
}

impl Replay for Namestore {
    fn access(&mut self, key: u64) -> bool {
        match self
            .0
            .get(&key)
            .now_or_never()
            .expect("ready at once")
            .unwrap()
        {
            Some(value) => {
                assert_eq!(
                    &value[..],
                    &key.to_be_bytes()[..],
                    "a hit returned another value"
                );
                true
            }
            None => {
                self.0
                    .set(&key, Bytes::copy_from_slice(&key.to_be_bytes()), None)
                    .now_or_never()
                    .expect("ready at once")
                    .unwrap();
                false
            }
        }
    }
}

/// Streams replayed side by side (one request of each in turn, each stream's keys its own)
/// into one store of `capacity` entries: each stream in a namespace of its own, or all of
/// them in one namespace. The hit ratio of each stream.
pub fn shared_hit_ratios(capacity: usize, own_namespaces: bool, streams: &[Vec<u64>]) -> Vec<f64> {
    let store = MemoryDriver::builder()
        .max_entries(capacity as u64)
        .eviction(Eviction::Any)
        .reap_interval(None)
        .build()
        .unwrap();
    let mut caches: Vec<Namestore> = (0..streams.len())
        .map(|i| {
            let name = if own_namespaces {
                format!("stream-{i}")
            } else {
                "streams".to_owned()
            };
            Namestore(store.namespace("replay", &name).unwrap())
        })
        .collect();
    let mut hits = vec![0usize; streams.len()];
    let requests = streams.iter().map(Vec::len).min().unwrap_or(0);
    for r in 0..requests {
        for (i, stream) in streams.iter().enumerate() {
            // Keys of different streams never meet, in one namespace too.
            let key = stream[r] | (i as u64) << 48;
            if caches[i].access(key) {
                hits[i] += 1;
            }
        }
    }
    hits.iter()
        .map(|&h| h as f64 / requests.max(1) as f64)
        .collect()
}

/// An exact LRU of `capacity` entries: a hash map into a doubly linked list kept in a vector.
pub struct Lru {
    capacity: usize,
    index: HashMap<u64, usize>,
    nodes: Vec<(u64, usize, usize)>,
    head: usize,
    tail: usize,
}

const NIL: usize = usize::MAX;

impl Lru {
    pub fn new(capacity: usize) -> Self {
        Lru {
            capacity,
            index: HashMap::with_capacity(capacity),
            nodes: Vec::with_capacity(capacity),
            head: NIL,
            tail: NIL,
        }
    }

    fn unlink(&mut self, at: usize) {
        let (_, prev, next) = self.nodes[at];
        match prev {
            NIL => self.head = next,
            prev => self.nodes[prev].2 = next,
        }
        match next {
            NIL => self.tail = prev,
            next => self.nodes[next].1 = prev,
        }
    }

    fn push_front(&mut self, at: usize) {
        self.nodes[at].1 = NIL;
        self.nodes[at].2 = self.head;
        if self.head != NIL {
            self.nodes[self.head].1 = at;
        }
        self.head = at;
        if self.tail == NIL {
            self.tail = at;
        }
    }
}

impl Replay for Lru {
    fn access(&mut self, key: u64) -> bool {
        if let Some(&at) = self.index.get(&key) {
            self.unlink(at);
            self.push_front(at);
            return true;
        }
        let at = if self.nodes.len() < self.capacity {
            self.nodes.push((key, NIL, NIL));
            self.nodes.len() - 1
        } else {
            let at = self.tail;
            self.unlink(at);
            self.index.remove(&self.nodes[at].0);
            self.nodes[at].0 = key;
            at
        };
        self.index.insert(key, at);
        self.push_front(at);
        false
    }
}

/// Belady's optimal replacement (evict the entry used furthest in the future): the ceiling
/// of any demand-fill policy, computed from the whole workload.
pub fn belady(accesses: &[u64], capacity: usize) -> f64 {
    let mut next_use = vec![usize::MAX; accesses.len()];
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for (i, &key) in accesses.iter().enumerate().rev() {
        if let Some(&later) = seen.get(&key) {
            next_use[i] = later;
        }
        seen.insert(key, i);
    }
    let mut cache: BTreeSet<(usize, u64)> = BTreeSet::new();
    let mut resident: HashMap<u64, usize> = HashMap::with_capacity(capacity);
    let mut hits = 0;
    for (i, &key) in accesses.iter().enumerate() {
        if let Some(next) = resident.get_mut(&key) {
            hits += 1;
            cache.remove(&(*next, key));
            *next = next_use[i];
            cache.insert((next_use[i], key));
            continue;
        }
        // Demand fill, as every cache measured here does: the block comes in, and the
        // resident block used furthest in the future goes.
        if resident.len() == capacity
            && let Some(&(furthest, victim)) = cache.iter().next_back()
        {
            cache.remove(&(furthest, victim));
            resident.remove(&victim);
        }
        resident.insert(key, next_use[i]);
        cache.insert((next_use[i], key));
    }
    hits as f64 / accesses.len().max(1) as f64
}
