//! SPEC 7 with SPEC 10: eviction racing batches and counters on real threads. A batch is
//! never seen torn (eviction may remove some of its keys, as it may any key, but the keys a
//! reader finds all come from one `mset`), a counter in a `never` namespace loses no
//! increment while other namespaces evict around it, and the budget holds: within 10% at
//! every instant (a write may store a key another write evicted in between), exactly once the
//! writes are done. Namespaces that come and go (one a user) while eviction empties them are
//! freed once no handle holds them, and never while one does.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::FutureExt;
use namestore::drivers::memory::{Eviction, MemoryDriver, Policy};

fn ready<T>(future: impl Future<Output = T>) -> T {
    future
        .now_or_never()
        .expect("memory driver futures are ready at once")
}

#[test]
fn batches_and_counters_race_eviction() {
    for policy in [Policy::S3Fifo, Policy::SampledLru] {
        let store = MemoryDriver::builder()
            .max_entries(300)
            .eviction(Eviction::Any)
            .policy(policy)
            .build()
            .unwrap();
        let batches = store.namespace::<String>("race", "batches").unwrap();
        let filler = store.namespace::<String>("race", "filler").unwrap();
        let counters = store
            .namespace_with_eviction::<String>("race", "counters", Eviction::Never)
            .unwrap();
        let keys: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
        let stop = Arc::new(AtomicBool::new(false));
        // Stops the writers however the reader ends, a failed assertion included.
        struct Stop(Arc<AtomicBool>);
        impl Drop for Stop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        const INCREMENTS: i64 = 20_000;
        std::thread::scope(|scope| {
            // Writers of whole batches, each round one value for all ten keys.
            for writer in 0..2 {
                let (batches, keys, stop) = (batches.clone(), keys.clone(), Arc::clone(&stop));
                scope.spawn(move || {
                    let mut round = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let value = format!("{writer}-{round}");
                        ready(batches.mset(keys.iter().map(|k| (k.clone(), value.clone())), None))
                            .unwrap();
                        round += 1;
                    }
                });
            }
            // Filler that keeps the store over its budget, so eviction never stops.
            {
                let (filler, stop) = (filler.clone(), Arc::clone(&stop));
                scope.spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        ready(filler.set(&format!("f{n}"), "x", None)).unwrap();
                        n += 1;
                    }
                });
            }
            // Counters in a namespace that may not evict: every increment counts.
            let counting: Vec<_> = (0..2)
                .map(|_| {
                    let counters = counters.clone();
                    scope.spawn(move || {
                        for i in 0..INCREMENTS {
                            ready(counters.incr(&format!("c{}", i % 4), 1)).unwrap();
                        }
                    })
                })
                .collect();
            // A reader: the keys it finds of a batch all hold one round's value.
            let _stop = Stop(Arc::clone(&stop));
            let mut reads = 0;
            let mut seen_whole = 0;
            while reads < 50_000 {
                let values = ready(batches.mget(keys.iter().cloned())).unwrap();
                let present: Vec<&[u8]> = values.iter().flatten().map(|v| &v[..]).collect();
                if let Some(first) = present.first() {
                    assert!(
                        present.iter().all(|v| v == first),
                        "{policy:?}: a torn batch: {:?}",
                        present
                            .iter()
                            .map(|v| String::from_utf8_lossy(v))
                            .collect::<Vec<_>>()
                    );
                }
                if present.len() == keys.len() {
                    seen_whole += 1;
                }
                // SPEC 10.2: within the budget plus 10%, at every instant.
                let entries = store.usage().unwrap().entries;
                assert!(entries <= 330, "{entries} entries for a budget of 300");
                reads += 1;
            }
            for thread in counting {
                thread.join().unwrap();
            }
            stop.store(true, Ordering::Relaxed);
            assert!(seen_whole > 0, "no batch was ever seen whole");
        });
        assert!(
            store.usage().unwrap().entries <= 300,
            "over the budget once writes stopped"
        );
        let mut total = 0;
        for c in 0..4 {
            let value = ready(counters.get(&format!("c{c}")))
                .unwrap()
                .expect("a counter");
            total += std::str::from_utf8(&value).unwrap().parse::<i64>().unwrap();
        }
        assert_eq!(total, 2 * INCREMENTS, "{policy:?}: an increment was lost");
        let stats = store.namespace_stats();
        let evicted: u64 = stats.iter().map(|s| s.evicted).sum();
        assert!(evicted > 0, "nothing was evicted: the race did not happen");
        assert_eq!(
            stats
                .iter()
                .find(|s| s.name.domain() == "counters")
                .unwrap()
                .evicted,
            0
        );
    }
}

/// Namespaces that come and go while eviction frees the emptied ones: threads each write one
/// key into namespaces of their own (one a user), opening and dropping a handle for each,
/// while others read namespaces back and hold handles on them. No write is refused (every
/// namespace's key is evictable), a namespace someone holds is never lost while they hold
/// it, and once done the store keeps a table for exactly the namespaces that hold a key.
#[test]
fn namespaces_come_and_go_while_eviction_frees_them() {
    const USERS: usize = 4_000;
    for policy in [Policy::S3Fifo, Policy::SampledLru] {
        let store = MemoryDriver::builder()
            .max_entries(200)
            .eviction(Eviction::Any)
            .policy(policy)
            .build()
            .unwrap();
        std::thread::scope(|scope| {
            for writer in 0..3 {
                let store = &store;
                scope.spawn(move || {
                    for user in 0..USERS {
                        let ns = store
                            .namespace::<String>("user", &format!("w{writer}-u{user}"))
                            .unwrap();
                        ready(ns.set(&"profile".to_owned(), "x", None))
                            .unwrap_or_else(|e| panic!("{policy:?}: {e}"));
                    }
                });
            }
            let store = &store;
            scope.spawn(move || {
                for user in 0..USERS {
                    // A handle held across writes that evict: its namespace keeps its table,
                    // and a key written through it is there until evicted.
                    let ns = store
                        .namespace::<String>("user", &format!("w0-u{user}"))
                        .unwrap();
                    let _ = ready(ns.get(&"profile".to_owned())).unwrap();
                    ready(ns.set(&"seen".to_owned(), "y", None)).unwrap();
                    let _ = ready(ns.exists(&"seen".to_owned())).unwrap();
                }
            });
        });
        let usage = store.usage().unwrap();
        assert!(usage.entries <= 200, "{policy:?}: {usage:?}");
        let stats = store.namespace_stats();
        assert!(
            stats.iter().all(|s| s.keys > 0),
            "{policy:?}: a namespace without keys or handles kept its table"
        );
        assert_eq!(store.namespace_tables(), stats.len(), "{policy:?}");
        assert_eq!(
            stats.iter().map(|s| s.keys).sum::<u64>(),
            usage.entries,
            "{policy:?}"
        );
        // The list of namespaces that may evict is whole: a namespace whose keys are never
        // evicted, filling the store, evicts every key the others held, from wherever it is
        // (one missing from the list would leave its key, and the last write refused).
        let fresh = store
            .namespace_with_eviction::<u64>("after", "all", Eviction::Never)
            .unwrap();
        for i in 0..200 {
            ready(fresh.set(&i, "z", None)).unwrap();
        }
        assert_eq!(store.namespace_tables(), 1, "{policy:?}");
        assert_eq!(store.namespace_stats()[0].keys, 200, "{policy:?}");
    }
}
