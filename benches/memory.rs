//! The memory driver through the public namespace API, against a single-threaded `hashbrown`
//! map doing the same lookup or write (the floor), on 1000 live keys: single calls, batches of
//! 10 (also in a store of one shard, one lock per batch), a memory budget (beside quick_cache's
//! and moka's bounded caches doing the same), typed keys (`u64`,
//! `Uuid`, `(u64, u64)`) beside the same keys as prebuilt strings, and the Go toolkit's
//! workload (its key `key:<i>` formatted per call, by the typed key `GoKey`).
//!
//! Before the timed runs it prints allocations and bytes allocated per operation, counted by
//! a global allocator (the equivalent of Go's `-benchmem`).
//!
//! Run: `cargo bench --bench memory`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use hashbrown::HashMap;
use namestore::codec::{Json, Postcard};
use namestore::drivers::memory::Eviction;
use namestore::{Instrumented, Key, KeyBuf, MemoryDriver, Namespace, TypedNamespace};
use smol_str::SmolStr;
use uuid::Uuid;

mod common;

use common::{ALLOCS, BYTES, Counting, ready};

#[global_allocator]
static GLOBAL: Counting = Counting;

const LIVE: usize = 1000;

/// The Go toolkit's benchmark key, `key:<i>`, as a typed key: formatted from the integer on
/// every call, the same stored key as the `String` rows.
struct GoKey(u64);

impl Key for GoKey {
    #[inline]
    fn encode(&self, out: &mut KeyBuf) {
        out.push_str("key:");
        out.push_key(&self.0);
    }

    fn decode(key: &str) -> Option<Self> {
        u64::decode(key.strip_prefix("key:")?).map(GoKey)
    }
}

struct Fixture {
    ns: Namespace<String, MemoryDriver>,
    /// The same keys in a store with a budget nothing reaches.
    roomy: Namespace<String, MemoryDriver>,
    /// A store capped at `LIVE` entries, and twice as many keys: every set of a key it does
    /// not hold evicts one.
    full: Namespace<String, MemoryDriver>,
    more_keys: Vec<String>,
    /// The same store behind the telemetry layer, with no subscriber installed.
    instrumented: Namespace<String, Instrumented<MemoryDriver>>,
    /// The same keys in a store of one shard: a batch takes one lock.
    one_shard: Namespace<String, MemoryDriver>,
    /// The same store through typed keys: the Go benchmark's key formatted per call, plain
    /// integers, UUIDs, pairs of integers.
    go: Namespace<GoKey, MemoryDriver>,
    ids: Namespace<u64, MemoryDriver>,
    uuids: Namespace<Uuid, MemoryDriver>,
    pairs: Namespace<(u64, u64), MemoryDriver>,
    /// The same three namespaces as `String` keys, with each typed key's text built up front:
    /// the typed rows' reference, the same stored keys.
    ids_text: Namespace<String, MemoryDriver>,
    uuids_text: Namespace<String, MemoryDriver>,
    pairs_text: Namespace<String, MemoryDriver>,
    id_texts: Vec<String>,
    uuid_texts: Vec<String>,
    pair_texts: Vec<String>,
    keys: Vec<String>,
    counters: Vec<String>,
    value: Bytes,
    /// Typed values: a small struct through the JSON and postcard codecs, and the same
    /// namespace as bytes for the codec called by hand.
    json: TypedNamespace<String, Json<Small>, MemoryDriver>,
    postcard: TypedNamespace<String, Postcard<Small>, MemoryDriver>,
    small: Small,
    /// Two namespaces of one store holding `LIVE` entries between them, written in turn: a
    /// write that needs room takes it from either, as each holds entries.
    shared: [Namespace<String, MemoryDriver>; 2],
    floor: HashMap<String, Bytes>,
    floor_counters: HashMap<String, i64>,
    /// The floor of an evicting set: a plain hashbrown map holding `LIVE` of the `2 × LIVE`
    /// keys, its keys inline as the store's are (`SmolStr`), and its victims in plain FIFO
    /// order (a queue of key numbers). A set of a key it does not hold is a lookup that
    /// misses, a removal and an insert: no lock, no budget, no policy.
    floor_cache: HashMap<SmolStr, Bytes>,
    floor_fifo: VecDeque<u32>,
    /// The bounded caches users compare a store with a budget with, holding `LIVE` entries:
    /// quick_cache's and moka's thread-safe caches (their APIs take an owned key, so a write
    /// clones the key's `String`, as a caller of theirs does).
    quick: quick_cache::sync::Cache<String, Bytes>,
    moka: moka::sync::Cache<String, Bytes>,
}

impl Fixture {
    fn new() -> Self {
        let store = MemoryDriver::new();
        let ns = store.namespace::<String>("bench", "memory").unwrap();
        let go = store.namespace::<GoKey>("bench", "memory").unwrap();
        let instrumented =
            Namespace::new(Instrumented::new(store.clone()), "bench", "memory").unwrap();
        let ids = store.namespace::<u64>("bench", "ids").unwrap();
        let uuids = store.namespace::<Uuid>("bench", "uuids").unwrap();
        let pairs = store.namespace::<(u64, u64)>("bench", "pairs").unwrap();
        let ids_text = store.namespace::<String>("bench", "ids").unwrap();
        let uuids_text = store.namespace::<String>("bench", "uuids").unwrap();
        let pairs_text = store.namespace::<String>("bench", "pairs").unwrap();
        let text_of = |full: String, ns: &str| full[ns.len() + 1..].to_owned();
        let (mut id_texts, mut uuid_texts, mut pair_texts) = (vec![], vec![], vec![]);
        for i in 0..2 * LIVE as u64 {
            let second = if i < LIVE as u64 { i } else { i - LIVE as u64 };
            let pair = if i < LIVE as u64 { (i, i) } else { (second, i) };
            id_texts.push(text_of(ids.full_key(&i).unwrap(), "bench:ids"));
            uuid_texts.push(text_of(uuids.full_key(&uuid_of(i)).unwrap(), "bench:uuids"));
            pair_texts.push(text_of(pairs.full_key(&pair).unwrap(), "bench:pairs"));
        }
        let bounded = |entries: u64| {
            MemoryDriver::builder()
                .max_entries(entries)
                .max_bytes(1 << 40)
                .eviction(Eviction::Any)
                .build()
                .unwrap()
                .namespace::<String>("bench", "memory")
                .unwrap()
        };
        let (roomy, full) = (bounded(1 << 40), bounded(LIVE as u64));
        let shared_store = MemoryDriver::builder()
            .max_entries(LIVE as u64)
            .max_bytes(1 << 40)
            .eviction(Eviction::Any)
            .build()
            .unwrap();
        let shared = ["first", "second"]
            .map(|name| shared_store.namespace::<String>("bench", name).unwrap());
        let one_shard = MemoryDriver::builder()
            .shards(1)
            .build()
            .unwrap()
            .namespace::<String>("bench", "memory")
            .unwrap();
        let more_keys: Vec<String> = (0..2 * LIVE).map(|i| format!("key:{i}")).collect();
        let keys: Vec<String> = (0..LIVE).map(|i| format!("key:{i}")).collect();
        let counters: Vec<String> = (0..LIVE).map(|i| format!("counter:{i}")).collect();
        let value = Bytes::from(b"value-0123456789".to_vec());
        let small = Small {
            id: 42,
            name: "ada".to_owned(),
            active: true,
        };
        let json = store
            .namespace::<String>("bench", "json")
            .unwrap()
            .with_codec(Json::<Small>::new());
        let postcard = store
            .namespace::<String>("bench", "postcard")
            .unwrap()
            .with_codec(Postcard::<Small>::new());
        for key in &keys {
            ready(json.set(key, &small, None)).unwrap();
            ready(postcard.set(key, &small, None)).unwrap();
        }
        let mut floor = HashMap::new();
        let mut floor_counters = HashMap::new();
        let mut floor_cache = HashMap::new();
        let mut floor_fifo = VecDeque::new();
        for (n, key) in more_keys.iter().enumerate().take(LIVE) {
            floor_cache.insert(SmolStr::new(key), value.clone());
            floor_fifo.push_back(n as u32);
        }
        let quick = quick_cache::sync::Cache::new(LIVE);
        let moka = moka::sync::Cache::new(LIVE as u64);
        for (key, counter) in keys.iter().zip(&counters) {
            ready(ns.set(key, value.clone(), None)).unwrap();
            ready(roomy.set(key, value.clone(), None)).unwrap();
            ready(full.set(key, value.clone(), None)).unwrap();
            for ns in &shared {
                ready(ns.set(key, value.clone(), None)).unwrap();
            }
            ready(one_shard.set(key, value.clone(), None)).unwrap();
            ready(ns.incr(counter, 1)).unwrap();
            floor.insert(key.clone(), value.clone());
            floor_counters.insert(counter.clone(), 1);
            quick.insert(key.clone(), value.clone());
            moka.insert(key.clone(), value.clone());
        }
        moka.run_pending_tasks();
        for i in 0..LIVE as u64 {
            ready(ids.set(&i, value.clone(), None)).unwrap();
            ready(uuids.set(&uuid_of(i), value.clone(), None)).unwrap();
            ready(pairs.set(&(i, i), value.clone(), None)).unwrap();
        }
        for i in 0..LIVE as u64 {
            ready(ids.incr(&(LIVE as u64 + i), 1)).unwrap();
            ready(uuids.incr(&uuid_of(LIVE as u64 + i), 1)).unwrap();
            ready(pairs.incr(&(i, LIVE as u64 + i), 1)).unwrap();
        }
        Fixture {
            ns,
            roomy,
            full,
            shared,
            more_keys,
            instrumented,
            one_shard,
            go,
            ids,
            uuids,
            pairs,
            ids_text,
            uuids_text,
            pairs_text,
            id_texts,
            uuid_texts,
            pair_texts,
            keys,
            counters,
            value,
            json,
            postcard,
            small,
            floor,
            floor_counters,
            floor_cache,
            floor_fifo,
            quick,
            moka,
        }
    }

    fn key(&self, i: usize) -> &String {
        &self.keys[i % LIVE]
    }

    fn batch(&self, i: usize) -> &[String] {
        let start = (i * 10) % (LIVE - 10);
        &self.keys[start..start + 10]
    }
}

// namestore, keys built up front.
fn get(f: &mut Fixture, i: usize) {
    black_box(ready(f.ns.get(f.key(i))).unwrap());
}
fn set(f: &mut Fixture, i: usize) {
    ready(f.ns.set(f.key(i), f.value.clone(), None)).unwrap();
}
fn exists(f: &mut Fixture, i: usize) {
    black_box(ready(f.ns.exists(f.key(i))).unwrap());
}
fn incr(f: &mut Fixture, i: usize) {
    black_box(ready(f.ns.incr(&f.counters[i % LIVE], 1)).unwrap());
}
fn delete_set(f: &mut Fixture, i: usize) {
    ready(f.ns.delete(f.key(i))).unwrap();
    ready(f.ns.set(f.key(i), f.value.clone(), None)).unwrap();
}
fn delete_set_nx(f: &mut Fixture, i: usize) {
    ready(f.ns.delete(f.key(i))).unwrap();
    black_box(ready(f.ns.set_nx(f.key(i), f.value.clone(), None)).unwrap());
}
fn get_set(f: &mut Fixture, i: usize) {
    black_box(ready(f.ns.get_set(f.key(i), f.value.clone(), None)).unwrap());
}
fn cas(f: &mut Fixture, i: usize) {
    black_box(ready(f.ns.cas(f.key(i), &f.value, f.value.clone(), None)).unwrap());
}
fn ttl(f: &mut Fixture, i: usize) {
    black_box(ready(f.ns.ttl(f.key(i))).unwrap());
}
fn expire_persist(f: &mut Fixture, i: usize) {
    ready(f.ns.expire(f.key(i), Duration::from_secs(3600))).unwrap();
    ready(f.ns.persist(f.key(i))).unwrap();
}
fn mget10(f: &mut Fixture, i: usize) {
    black_box(ready(f.ns.mget(f.batch(i))).unwrap());
}
fn mset10(f: &mut Fixture, i: usize) {
    let value = &f.value;
    ready(f.ns.mset(f.batch(i).iter().map(|k| (k, value.clone())), None)).unwrap();
}
fn instrumented_get(f: &mut Fixture, i: usize) {
    black_box(ready(f.instrumented.get(f.key(i))).unwrap());
}
fn instrumented_set(f: &mut Fixture, i: usize) {
    ready(f.instrumented.set(f.key(i), f.value.clone(), None)).unwrap();
}
/// A recorder that keeps every counter and histogram in atomics behind one map, as an
/// exporter's registry does (histograms keep a count and a sum, so memory stays flat).
/// Installed as a local recorder around its rows, through which a namespace registers its
/// metrics on every call; `benches/telemetry.rs` times the global recorder's path, where it
/// registers them once.
#[derive(Default)]
struct AtomicRecorder(std::sync::Mutex<HashMap<metrics::Key, Arc<Cell>>>);

#[derive(Default)]
struct Cell(std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64);

impl metrics::CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl metrics::HistogramFn for Cell {
    fn record(&self, value: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
        self.1.fetch_add((value * 1e9) as u64, Ordering::Relaxed);
    }
}

impl AtomicRecorder {
    fn cell(&self, key: &metrics::Key) -> Arc<Cell> {
        let mut cells = self.0.lock().unwrap();
        if let Some(cell) = cells.get(key) {
            return Arc::clone(cell);
        }
        Arc::clone(cells.entry(key.clone()).or_default())
    }
}

impl metrics::Recorder for AtomicRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::from_arc(self.cell(key))
    }
}

fn recorder() -> &'static AtomicRecorder {
    static RECORDER: std::sync::OnceLock<AtomicRecorder> = std::sync::OnceLock::new();
    RECORDER.get_or_init(AtomicRecorder::default)
}
fn recorded_get(f: &mut Fixture, i: usize) {
    metrics::with_local_recorder(recorder(), || {
        black_box(ready(f.instrumented.get(f.key(i))).unwrap());
    });
}
fn recorded_set(f: &mut Fixture, i: usize) {
    metrics::with_local_recorder(recorder(), || {
        ready(f.instrumented.set(f.key(i), f.value.clone(), None)).unwrap();
    });
}
fn unrecorded_get_under_a_local_recorder_guard(f: &mut Fixture, i: usize) {
    metrics::with_local_recorder(&metrics::NoopRecorder, || {
        black_box(ready(f.ns.get(f.key(i))).unwrap());
    });
}
fn one_shard_mget10(f: &mut Fixture, i: usize) {
    black_box(ready(f.one_shard.mget(f.batch(i))).unwrap());
}
fn one_shard_mset10(f: &mut Fixture, i: usize) {
    let value = &f.value;
    ready(
        f.one_shard
            .mset(f.batch(i).iter().map(|k| (k, value.clone())), None),
    )
    .unwrap();
}
fn mdel10_mset10(f: &mut Fixture, i: usize) {
    ready(f.ns.mdel(f.batch(i))).unwrap();
    mset10(f, i);
}

// namestore with a budget: nothing evicted (the bookkeeping alone), and every set evicting.
fn budget_get(f: &mut Fixture, i: usize) {
    black_box(ready(f.roomy.get(f.key(i))).unwrap());
}
fn budget_set(f: &mut Fixture, i: usize) {
    ready(f.roomy.set(f.key(i), f.value.clone(), None)).unwrap();
}
fn budget_delete_set(f: &mut Fixture, i: usize) {
    ready(f.roomy.delete(f.key(i))).unwrap();
    ready(f.roomy.set(f.key(i), f.value.clone(), None)).unwrap();
}
fn evicting_set(f: &mut Fixture, i: usize) {
    // Round the 2 × LIVE keys in order: the store holds the last LIVE written, so each set
    // adds a key it evicted long ago, and evicts one.
    ready(
        f.full
            .set(&f.more_keys[i % (2 * LIVE)], f.value.clone(), None),
    )
    .unwrap();
}

fn evicting_set_shared(f: &mut Fixture, i: usize) {
    // The same round of keys, each namespace in turn adding one: half the room a write needs
    // is taken from the other namespace.
    ready(f.shared[i % 2].set(&f.more_keys[(i / 2) % (2 * LIVE)], f.value.clone(), None)).unwrap();
}

// namestore, the key formatted per operation, as the Go toolkit's benchmark does.
fn fmt_get(f: &mut Fixture, i: usize) {
    black_box(ready(f.ns.get(&format!("key:{}", i % LIVE))).unwrap());
}
fn fmt_set(f: &mut Fixture, i: usize) {
    ready(f.ns.set(&format!("key:{}", i % LIVE), f.value.clone(), None)).unwrap();
}
fn fmt_exists(f: &mut Fixture, i: usize) {
    black_box(ready(f.ns.exists(&format!("key:{}", i % LIVE))).unwrap());
}
fn fmt_incr(f: &mut Fixture, i: usize) {
    black_box(ready(f.ns.incr(&format!("counter:{}", i % LIVE), 1)).unwrap());
}

/// A UUID computed from an integer, as a service computes a key per request.
#[inline]
fn uuid_of(i: u64) -> Uuid {
    Uuid::from_u64_pair(0x67e5_5044_10b1_426f, i)
}

// Typed keys, computed from the integer on every call.
fn go_get(f: &mut Fixture, i: usize) {
    black_box(ready(f.go.get(&GoKey((i % LIVE) as u64))).unwrap());
}
fn go_set(f: &mut Fixture, i: usize) {
    ready(f.go.set(&GoKey((i % LIVE) as u64), f.value.clone(), None)).unwrap();
}
fn go_incr(f: &mut Fixture, i: usize) {
    // Keys of their own (`key:1000` on), so the counters never meet the `set` rows' values.
    black_box(ready(f.go.incr(&GoKey((LIVE + i % LIVE) as u64), 1)).unwrap());
}
fn go_exists(f: &mut Fixture, i: usize) {
    black_box(ready(f.go.exists(&GoKey((i % LIVE) as u64))).unwrap());
}
fn go_ttl(f: &mut Fixture, i: usize) {
    black_box(ready(f.go.ttl(&GoKey((i % LIVE) as u64))).unwrap());
}
fn go_delete_set(f: &mut Fixture, i: usize) {
    let key = GoKey((i % LIVE) as u64);
    ready(f.go.delete(&key)).unwrap();
    ready(f.go.set(&key, f.value.clone(), None)).unwrap();
}
fn go_delete_set_nx(f: &mut Fixture, i: usize) {
    let key = GoKey((i % LIVE) as u64);
    ready(f.go.delete(&key)).unwrap();
    black_box(ready(f.go.set_nx(&key, f.value.clone(), None)).unwrap());
}
fn go_cas(f: &mut Fixture, i: usize) {
    let key = GoKey((i % LIVE) as u64);
    black_box(ready(f.go.cas(&key, &f.value, f.value.clone(), None)).unwrap());
}
fn u64_get(f: &mut Fixture, i: usize) {
    black_box(ready(f.ids.get(&((i % LIVE) as u64))).unwrap());
}
fn u64_set(f: &mut Fixture, i: usize) {
    ready(f.ids.set(&((i % LIVE) as u64), f.value.clone(), None)).unwrap();
}
fn u64_incr(f: &mut Fixture, i: usize) {
    black_box(ready(f.ids.incr(&((LIVE + i % LIVE) as u64), 1)).unwrap());
}
fn uuid_get(f: &mut Fixture, i: usize) {
    black_box(ready(f.uuids.get(&uuid_of((i % LIVE) as u64))).unwrap());
}
fn uuid_set(f: &mut Fixture, i: usize) {
    ready(
        f.uuids
            .set(&uuid_of((i % LIVE) as u64), f.value.clone(), None),
    )
    .unwrap();
}
fn uuid_incr(f: &mut Fixture, i: usize) {
    black_box(ready(f.uuids.incr(&uuid_of((LIVE + i % LIVE) as u64), 1)).unwrap());
}
fn pair_get(f: &mut Fixture, i: usize) {
    let i = (i % LIVE) as u64;
    black_box(ready(f.pairs.get(&(i, i))).unwrap());
}
fn pair_set(f: &mut Fixture, i: usize) {
    let i = (i % LIVE) as u64;
    ready(f.pairs.set(&(i, i), f.value.clone(), None)).unwrap();
}
fn pair_incr(f: &mut Fixture, i: usize) {
    let i = (i % LIVE) as u64;
    black_box(ready(f.pairs.incr(&(i, LIVE as u64 + i), 1)).unwrap());
}

// The same keys as `String`s built up front.
fn u64_text_get(f: &mut Fixture, i: usize) {
    black_box(ready(f.ids_text.get(&f.id_texts[i % LIVE])).unwrap());
}
fn u64_text_set(f: &mut Fixture, i: usize) {
    ready(f.ids_text.set(&f.id_texts[i % LIVE], f.value.clone(), None)).unwrap();
}
fn u64_text_incr(f: &mut Fixture, i: usize) {
    black_box(ready(f.ids_text.incr(&f.id_texts[LIVE + i % LIVE], 1)).unwrap());
}
fn uuid_text_get(f: &mut Fixture, i: usize) {
    black_box(ready(f.uuids_text.get(&f.uuid_texts[i % LIVE])).unwrap());
}
fn uuid_text_set(f: &mut Fixture, i: usize) {
    ready(
        f.uuids_text
            .set(&f.uuid_texts[i % LIVE], f.value.clone(), None),
    )
    .unwrap();
}
fn uuid_text_incr(f: &mut Fixture, i: usize) {
    black_box(ready(f.uuids_text.incr(&f.uuid_texts[LIVE + i % LIVE], 1)).unwrap());
}
fn pair_text_get(f: &mut Fixture, i: usize) {
    black_box(ready(f.pairs_text.get(&f.pair_texts[i % LIVE])).unwrap());
}
fn pair_text_set(f: &mut Fixture, i: usize) {
    ready(
        f.pairs_text
            .set(&f.pair_texts[i % LIVE], f.value.clone(), None),
    )
    .unwrap();
}
fn pair_text_incr(f: &mut Fixture, i: usize) {
    black_box(ready(f.pairs_text.incr(&f.pair_texts[LIVE + i % LIVE], 1)).unwrap());
}

// Typed values, and the same work with the codec called by hand around the byte API.
#[derive(serde::Serialize, serde::Deserialize)]
struct Small {
    id: u64,
    name: String,
    active: bool,
}
fn json_set(f: &mut Fixture, i: usize) {
    ready(f.json.set(f.key(i), &f.small, None)).unwrap();
}
fn json_get(f: &mut Fixture, i: usize) {
    black_box(ready(f.json.get(f.key(i))).unwrap());
}
fn json_by_hand_set(f: &mut Fixture, i: usize) {
    let encoded = serde_json::to_vec(&f.small).unwrap();
    ready(f.json.bytes().set(f.key(i), encoded, None)).unwrap();
}
fn json_by_hand_get(f: &mut Fixture, i: usize) {
    let stored = ready(f.json.bytes().get(f.key(i))).unwrap().unwrap();
    black_box(serde_json::from_slice::<Small>(&stored).unwrap());
}
fn postcard_set(f: &mut Fixture, i: usize) {
    ready(f.postcard.set(f.key(i), &f.small, None)).unwrap();
}
fn postcard_get(f: &mut Fixture, i: usize) {
    black_box(ready(f.postcard.get(f.key(i))).unwrap());
}
fn postcard_by_hand_set(f: &mut Fixture, i: usize) {
    let encoded = postcard::to_allocvec(&f.small).unwrap();
    ready(f.postcard.bytes().set(f.key(i), encoded, None)).unwrap();
}
fn postcard_by_hand_get(f: &mut Fixture, i: usize) {
    let stored = ready(f.postcard.bytes().get(f.key(i))).unwrap().unwrap();
    black_box(postcard::from_bytes::<Small>(&stored).unwrap());
}

// The floor: a plain single-threaded hashbrown map.
fn floor_get(f: &mut Fixture, i: usize) {
    black_box(f.floor.get(&f.keys[i % LIVE]).cloned());
}
fn floor_set(f: &mut Fixture, i: usize) {
    let value = f.value.clone();
    if let Some(slot) = f.floor.get_mut(&f.keys[i % LIVE]) {
        *slot = value;
    }
}
fn floor_exists(f: &mut Fixture, i: usize) {
    black_box(f.floor.contains_key(&f.keys[i % LIVE]));
}
fn floor_incr(f: &mut Fixture, i: usize) {
    if let Some(n) = f.floor_counters.get_mut(&f.counters[i % LIVE]) {
        *n += 1;
        black_box(*n);
    }
}
fn floor_delete_set(f: &mut Fixture, i: usize) {
    let key = &f.keys[i % LIVE];
    f.floor.remove(key);
    f.floor.insert(key.clone(), f.value.clone());
}
fn floor_evicting_set(f: &mut Fixture, i: usize) {
    // The same round of 2 × LIVE keys as `evicting_set`.
    let n = i % (2 * LIVE);
    let key = f.more_keys[n].as_str();
    let value = f.value.clone();
    if let Some(slot) = f.floor_cache.get_mut(key) {
        *slot = value;
        return;
    }
    if let Some(victim) = f.floor_fifo.pop_front() {
        f.floor_cache.remove(f.more_keys[victim as usize].as_str());
    }
    f.floor_cache.insert(SmolStr::new(key), value);
    f.floor_fifo.push_back(n as u32);
}
fn floor_mget10(f: &mut Fixture, i: usize) {
    let start = (i * 10) % (LIVE - 10);
    let values: Vec<Option<Bytes>> = f.keys[start..start + 10]
        .iter()
        .map(|k| f.floor.get(k).cloned())
        .collect();
    black_box(values);
}
fn floor_mset10(f: &mut Fixture, i: usize) {
    let start = (i * 10) % (LIVE - 10);
    for key in &f.keys[start..start + 10] {
        let value = f.value.clone();
        if let Some(slot) = f.floor.get_mut(key) {
            *slot = value;
        }
    }
}

// Bounded caches with the same 1000 entries: a read, an overwrite, and a set of a key they
// evicted long ago (the same round of 2 × LIVE keys as `evicting_set`).
fn quick_get(f: &mut Fixture, i: usize) {
    black_box(f.quick.get(f.key(i)));
}
fn quick_set(f: &mut Fixture, i: usize) {
    f.quick.insert(f.key(i).clone(), f.value.clone());
}
fn quick_evicting_set(f: &mut Fixture, i: usize) {
    let key = f.more_keys[i % (2 * LIVE)].clone();
    f.quick.insert(key, f.value.clone());
}
fn moka_get(f: &mut Fixture, i: usize) {
    black_box(f.moka.get(f.key(i)));
}
fn moka_set(f: &mut Fixture, i: usize) {
    f.moka.insert(f.key(i).clone(), f.value.clone());
}
fn moka_evicting_set(f: &mut Fixture, i: usize) {
    let key = f.more_keys[i % (2 * LIVE)].clone();
    f.moka.insert(key, f.value.clone());
}

/// Lists every measured operation once, for both the allocation count and the timed runs.
/// Each expands to its own monomorphized loop, so the operation is inlined into the loop
/// exactly as the floor's map call is.
macro_rules! for_each_operation {
    ($apply:ident, $($arg:expr),*) => {
        $apply!($($arg),*, "get", get);
        $apply!($($arg),*, "set (overwrite)", set);
        // Right after the plain rows, on the store as they left it.
        $apply!($($arg),*, "get, instrumented, no subscriber", instrumented_get);
        $apply!($($arg),*, "set (overwrite), instrumented, no subscriber", instrumented_set);
        $apply!($($arg),*, "exists", exists);
        $apply!($($arg),*, "incr", incr);
        $apply!($($arg),*, "delete+set", delete_set);
        $apply!($($arg),*, "delete+set_nx", delete_set_nx);
        $apply!($($arg),*, "get_set", get_set);
        $apply!($($arg),*, "cas", cas);
        $apply!($($arg),*, "ttl", ttl);
        $apply!($($arg),*, "expire+persist", expire_persist);
        $apply!($($arg),*, "mget(10)", mget10);
        $apply!($($arg),*, "mset(10)", mset10);
        $apply!($($arg),*, "mdel(10)+mset(10)", mdel10_mset10);
        $apply!($($arg),*, "mget(10), one shard", one_shard_mget10);
        $apply!($($arg),*, "mset(10), one shard", one_shard_mset10);
        $apply!($($arg),*, "get, instrumented, a local recorder (registers every call)", recorded_get);
        $apply!($($arg),*, "set (overwrite), instrumented, a local recorder (registers every call)", recorded_set);
        $apply!($($arg),*, "get, plain, inside a local recorder guard", unrecorded_get_under_a_local_recorder_guard);
        $apply!($($arg),*, "get, with a budget", budget_get);
        $apply!($($arg),*, "set (overwrite), with a budget", budget_set);
        $apply!($($arg),*, "delete+set, with a budget", budget_delete_set);
        $apply!($($arg),*, "set, evicting", evicting_set);
        $apply!($($arg),*, "set, evicting, two namespaces", evicting_set_shared);
        $apply!($($arg),*, "quick_cache get", quick_get);
        $apply!($($arg),*, "quick_cache set (overwrite)", quick_set);
        $apply!($($arg),*, "quick_cache set, evicting", quick_evicting_set);
        $apply!($($arg),*, "moka get", moka_get);
        $apply!($($arg),*, "moka set (overwrite)", moka_set);
        $apply!($($arg),*, "moka set, evicting", moka_evicting_set);
        $apply!($($arg),*, "get, key formatted", fmt_get);
        $apply!($($arg),*, "set, key formatted", fmt_set);
        $apply!($($arg),*, "exists, key formatted", fmt_exists);
        $apply!($($arg),*, "incr, key formatted", fmt_incr);
        $apply!($($arg),*, "get, GoKey(u64) key:<i>", go_get);
        $apply!($($arg),*, "set, GoKey(u64) key:<i>", go_set);
        $apply!($($arg),*, "incr, GoKey(u64) key:<i>", go_incr);
        $apply!($($arg),*, "exists, GoKey(u64) key:<i>", go_exists);
        $apply!($($arg),*, "ttl, GoKey(u64) key:<i>", go_ttl);
        $apply!($($arg),*, "delete+set, GoKey(u64) key:<i>", go_delete_set);
        $apply!($($arg),*, "delete+set_nx, GoKey(u64) key:<i>", go_delete_set_nx);
        $apply!($($arg),*, "cas, GoKey(u64) key:<i>", go_cas);
        $apply!($($arg),*, "get, u64 key", u64_get);
        $apply!($($arg),*, "set, u64 key", u64_set);
        $apply!($($arg),*, "incr, u64 key", u64_incr);
        $apply!($($arg),*, "get, Uuid key", uuid_get);
        $apply!($($arg),*, "set, Uuid key", uuid_set);
        $apply!($($arg),*, "incr, Uuid key", uuid_incr);
        $apply!($($arg),*, "get, (u64, u64) key", pair_get);
        $apply!($($arg),*, "set, (u64, u64) key", pair_set);
        $apply!($($arg),*, "incr, (u64, u64) key", pair_incr);
        $apply!($($arg),*, "get, u64 key as String", u64_text_get);
        $apply!($($arg),*, "set, u64 key as String", u64_text_set);
        $apply!($($arg),*, "incr, u64 key as String", u64_text_incr);
        $apply!($($arg),*, "get, Uuid key as String", uuid_text_get);
        $apply!($($arg),*, "set, Uuid key as String", uuid_text_set);
        $apply!($($arg),*, "incr, Uuid key as String", uuid_text_incr);
        $apply!($($arg),*, "get, (u64, u64) key as String", pair_text_get);
        $apply!($($arg),*, "set, (u64, u64) key as String", pair_text_set);
        $apply!($($arg),*, "incr, (u64, u64) key as String", pair_text_incr);
        $apply!($($arg),*, "set, Json<Small>", json_set);
        $apply!($($arg),*, "set, JSON by hand + bytes", json_by_hand_set);
        $apply!($($arg),*, "get, Json<Small>", json_get);
        $apply!($($arg),*, "get, bytes + JSON by hand", json_by_hand_get);
        $apply!($($arg),*, "set, Postcard<Small>", postcard_set);
        $apply!($($arg),*, "set, postcard by hand + bytes", postcard_by_hand_set);
        $apply!($($arg),*, "get, Postcard<Small>", postcard_get);
        $apply!($($arg),*, "get, bytes + postcard by hand", postcard_by_hand_get);
        $apply!($($arg),*, "floor get", floor_get);
        $apply!($($arg),*, "floor set", floor_set);
        $apply!($($arg),*, "floor exists", floor_exists);
        $apply!($($arg),*, "floor incr", floor_incr);
        $apply!($($arg),*, "floor delete+set", floor_delete_set);
        $apply!($($arg),*, "floor set, evicting (FIFO)", floor_evicting_set);
        $apply!($($arg),*, "floor mget(10)", floor_mget10);
        $apply!($($arg),*, "floor mset(10)", floor_mset10);
    };
}

const ALLOC_ROUNDS: usize = 20_000;

fn count_allocations(f: &mut Fixture, name: &str, mut op: impl FnMut(&mut Fixture, usize)) {
    // As many calls first, so every stored value is in its steady (shared) form, and the
    // structures of a store that evicts have grown to the size they keep (its queues, its
    // ghost table).
    for i in 0..ALLOC_ROUNDS {
        op(f, i);
    }
    let (allocs, bytes) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    for i in 0..ALLOC_ROUNDS {
        op(f, i);
    }
    let allocs = (ALLOCS.load(Ordering::Relaxed) - allocs) as f64 / ALLOC_ROUNDS as f64;
    let bytes = (BYTES.load(Ordering::Relaxed) - bytes) as f64 / ALLOC_ROUNDS as f64;
    println!("{name:<24} {allocs:>10.2} {bytes:>10.1}");
}

fn time(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    f: &mut Fixture,
    name: &str,
    mut op: impl FnMut(&mut Fixture, usize),
) {
    let mut next = 0usize;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            // The key index in a local, so the loop does not store it back each call.
            let mut i = next;
            let start = Instant::now();
            for _ in 0..iters {
                i = i.wrapping_add(1);
                op(f, i);
            }
            let elapsed = start.elapsed();
            next = i;
            elapsed
        })
    });
}

/// An unbounded store's `set` of a key it does not hold: the evicting row's operation without
/// the eviction. Timed are sets of new keys into a store that holds `LIVE` entries at first and
/// `2 × LIVE` at the end of a round (its tables' doublings on the way included); a fresh store
/// of `LIVE` entries is made, untimed, for each round.
fn time_new_keys(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    f: &Fixture,
) {
    let fresh = || {
        let ns = MemoryDriver::builder()
            .reap_interval(None)
            .build()
            .unwrap()
            .namespace::<String>("bench", "memory")
            .unwrap();
        for key in &f.more_keys[..LIVE] {
            ready(ns.set(key, f.value.clone(), None)).unwrap();
        }
        ns
    };
    group.bench_function("set of a new key, unbounded", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let ns = fresh();
                let round = (iters - done).min(LIVE as u64) as usize;
                let start = Instant::now();
                for key in &f.more_keys[LIVE..LIVE + round] {
                    ready(ns.set(key, f.value.clone(), None)).unwrap();
                }
                elapsed += start.elapsed();
                done += round as u64;
            }
            elapsed
        })
    });
}

macro_rules! count {
    ($f:expr, $name:expr, $op:ident) => {
        count_allocations($f, $name, $op)
    };
}

macro_rules! timed {
    ($group:expr, $f:expr, $name:expr, $op:ident) => {
        time($group, $f, $name, $op)
    };
}

const PAIRED_ROUNDS: usize = 301;
const PAIRED_OPS: usize = 20_000;

/// Two operations side by side, paired: rounds of `PAIRED_OPS` calls of `first` and as many
/// of `second`, alternating which goes first; printed are the medians over rounds of each
/// side's time per call and of their difference, with the difference's 10th and 90th
/// percentiles. Criterion's rows run one after another, and on a shared machine they drift by
/// a few nanoseconds between rows; a difference taken within each round cancels the drift.
fn paired(
    f: &mut Fixture,
    name: &str,
    first: impl Fn(&mut Fixture, usize),
    second: impl Fn(&mut Fixture, usize),
) {
    fn run(f: &mut Fixture, op: &impl Fn(&mut Fixture, usize)) -> f64 {
        let start = Instant::now();
        for i in 0..PAIRED_OPS {
            op(f, i);
        }
        start.elapsed().as_secs_f64() * 1e9 / PAIRED_OPS as f64
    }
    let (mut plains, mut layereds, mut differences) = (vec![], vec![], vec![]);
    for round in 0..PAIRED_ROUNDS {
        let (a, b) = if round % 2 == 0 {
            let a = run(f, &first);
            (a, run(f, &second))
        } else {
            let b = run(f, &second);
            (run(f, &first), b)
        };
        plains.push(a);
        layereds.push(b);
        differences.push(b - a);
    }
    let at = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q) as usize]
    };
    println!(
        "{name:<64} {:>8.2} {:>8.2} {:>+8.2} ({:+.2} to {:+.2})",
        at(&mut plains, 0.5),
        at(&mut layereds, 0.5),
        at(&mut differences, 0.5),
        at(&mut differences, 0.1),
        at(&mut differences, 0.9),
    );
}

fn basic_operations(c: &mut Criterion) {
    let mut f = Fixture::new();
    println!("\nallocations per operation ({ALLOC_ROUNDS} operations each, {LIVE} live keys)");
    println!("{:<24} {:>10} {:>10}", "operation", "allocs/op", "bytes/op");
    for_each_operation!(count, &mut f);
    println!();

    println!(
        "side by side, paired ({PAIRED_ROUNDS} rounds of {PAIRED_OPS} calls a side, ns per call)"
    );
    println!(
        "{:<64} {:>8} {:>8} {:>8} (10th to 90th percentile)",
        "first / second", "first", "second", "added"
    );
    // SPEC 12.3: the telemetry layer with nothing installed.
    paired(
        &mut f,
        "get / get, instrumented, no subscriber",
        get,
        instrumented_get,
    );
    paired(
        &mut f,
        "set (overwrite) / set (overwrite), instrumented, no subscriber",
        set,
        instrumented_set,
    );
    // SPEC 10: a budget, and the bounded cache users compare it with.
    paired(
        &mut f,
        "set (overwrite) / set (overwrite), with a budget",
        set,
        budget_set,
    );
    paired(
        &mut f,
        "delete+set / delete+set, with a budget",
        delete_set,
        budget_delete_set,
    );
    paired(
        &mut f,
        "delete+set / set, evicting",
        delete_set,
        evicting_set,
    );
    paired(
        &mut f,
        "quick_cache set, evicting / set, evicting",
        quick_evicting_set,
        evicting_set,
    );
    // What an evicting set costs over an overwrite with nothing else in the way: a plain map.
    paired(
        &mut f,
        "floor set / floor set, evicting (FIFO)",
        floor_set,
        floor_evicting_set,
    );
    paired(&mut f, "set (overwrite) / set, evicting", set, evicting_set);
    paired(
        &mut f,
        "set, evicting / set, evicting, two namespaces",
        evicting_set,
        evicting_set_shared,
    );
    println!();

    let mut group = c.benchmark_group("memory");
    for_each_operation!(timed, &mut group, &mut f);
    time_new_keys(&mut group, &f);
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = basic_operations
}
criterion_main!(benches);
