//! A store with a budget allocates no more than one without: reads and overwrites allocate
//! nothing, whatever the key's length, and a set that adds a key allocates only what the
//! entry keeps (the key's heap block, for a key too long to be stored inline). Allocations
//! are counted per thread by a counting allocator (tests/support/counting.rs).

use namestore::Bytes;
use namestore::drivers::memory::{Eviction, MemoryDriver};

#[path = "support/counting.rs"]
mod counting;
#[path = "support/ready.rs"]
mod support_ready;

use counting::{Counting, allocations_here};
use support_ready::ready;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations `work` makes on this thread.
fn allocations(work: impl FnOnce()) -> u64 {
    let before = allocations_here();
    work();
    allocations_here() - before
}

const LIVE: usize = 1000;

#[test]
fn budgeted_reads_and_overwrites_allocate_nothing_and_inserts_only_their_key() {
    for (name, key_len) in [("short keys", 16), ("long keys", 40)] {
        let store = MemoryDriver::builder()
            .max_entries(LIVE as u64)
            .max_bytes(1 << 30)
            .eviction(Eviction::Any)
            .build()
            .unwrap();
        let ns = store.namespace::<String>("alloc", "budget").unwrap();
        let keys: Vec<String> = (0..2 * LIVE).map(|i| format!("{i:0>key_len$}")).collect();
        let value = Bytes::from_static(b"value-0123456789");
        // Two rounds over twice the budget's keys: the store and its queues reach their
        // steady size.
        for key in keys.iter().chain(&keys) {
            ready(ns.set(key, value.clone(), None)).unwrap();
        }
        let held: Vec<&String> = keys
            .iter()
            .filter(|key| ready(ns.exists(*key)).unwrap())
            .collect();
        assert!(held.len() >= LIVE / 2, "{name}: {} keys held", held.len());

        let reads = allocations(|| {
            for key in &held {
                ready(ns.get(*key)).unwrap().unwrap();
            }
        });
        assert_eq!(reads, 0, "{name}: allocations by {} gets", held.len());

        let overwrites = allocations(|| {
            for key in &held {
                ready(ns.set(*key, value.clone(), None)).unwrap();
            }
        });
        assert_eq!(
            overwrites,
            0,
            "{name}: allocations by {} overwrites",
            held.len()
        );

        // Round the keys again, in order: each set adds a key evicted a round ago and evicts
        // one. A long key's entry keeps its key on the heap (one allocation); the eviction
        // queues, compacted now and then, grow back (a few allocations a compaction).
        let rounds = 4;
        let inserts = allocations(|| {
            for key in (0..rounds).flat_map(|_| &keys) {
                ready(ns.set(key, value.clone(), None)).unwrap();
            }
        });
        let sets = (rounds * keys.len()) as f64;
        let per_key = if key_len > 23 { 1.0 } else { 0.0 };
        let most = (sets * (per_key + 0.2)) as u64;
        println!("{name}: {inserts} allocations by {sets} evicting sets");
        assert!(
            inserts <= most,
            "{name}: {inserts} allocations by {sets} evicting sets (at most {most})"
        );
        assert!(store.usage().unwrap().entries <= LIVE as u64);
    }
}

/// A namespace's shards get their eviction orders when they first hold an entry: a namespace
/// of one key (one a user, say) allocates one order, not one a shard. Made up front, a store
/// with a budget took 6,857 bytes of resident memory a one-key namespace with 16 shards
/// against 2,988 without a budget (measured: 100,000 of them); now 3,672.
#[test]
fn a_namespace_of_one_key_makes_one_eviction_order() {
    let count = |budget: bool| {
        let mut builder = MemoryDriver::builder().shards(16).reap_interval(None);
        if budget {
            builder = builder.max_bytes(1 << 30).eviction(Eviction::Any);
        }
        let store = builder.build().unwrap();
        let key = "profile".to_owned();
        // The first namespace makes what every store makes once.
        let first = store.namespace::<String>("user", "first").unwrap();
        ready(first.set(&key, "x", None)).unwrap();
        allocations(|| {
            let ns = store.namespace::<String>("user", "u1").unwrap();
            ready(ns.set(&key, "x", None)).unwrap();
            std::mem::forget(ns);
        })
    };
    let (unbounded, budgeted) = (count(false), count(true));
    println!("a one-key namespace: {unbounded} allocations, {budgeted} with a budget");
    assert!(
        budgeted <= unbounded + 6,
        "{budgeted} allocations with a budget, {unbounded} without: an order for every shard?"
    );
}
