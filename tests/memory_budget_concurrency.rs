//! SPEC 7 with SPEC 10: eviction racing batches and counters on real threads. A batch is
//! never seen torn (eviction may remove some of its keys, as it may any key, but the keys a
//! reader finds all come from one `mset`), a counter in a `never` namespace loses no
//! increment while other namespaces evict around it, and the budget holds: within 10% at
//! every instant (a write may store a key another write evicted in between), exactly once the
//! writes are done. Namespaces that come and go (one a user) while eviction empties them are
//! freed once no handle holds them, and never while one does. Keys expiring on the system
//! clock, reaped by the reclaimer, race all of it, and the budget's accounting comes back to
//! nothing once every namespace is cleared.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use namestore::drivers::memory::{Eviction, MemoryDriver, Policy};

fn ready<T>(future: impl Future<Output = T>) -> T {
    future
        .now_or_never()
        .expect("memory driver futures are ready at once")
}

/// Stops the writers however the thread that holds it ends, a failed assertion included.
struct Stop(Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
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
            // A reader: the keys it finds of a batch all hold one round's value. It reads on
            // past its 50,000 reads (up to 20 s) until it has seen a batch whole: a reader
            // starved of the CPU by other tests can read them all while no batch is whole.
            let _stop = Stop(Arc::clone(&stop));
            let mut reads = 0;
            let mut seen_whole = 0;
            let started = Instant::now();
            while reads < 50_000 || (seen_whole == 0 && started.elapsed() < Duration::from_secs(20))
            {
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
        namespaces_add_up(&store, policy);
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

/// Expiry racing eviction, on the system clock with the reclaimer running every millisecond:
/// threads write keys with TTLs of 1 to 3 ms (and some without) into namespaces of the three
/// modes and into namespaces that come and go, renew and remove TTLs, count, delete and clear,
/// while keys expire under them, the reclaimer reaps them and writes evict. Nothing but
/// `OutOfMemory` is refused, and the accounting comes back whole: once the keys left are
/// expired and reclaimed, the store counts as many entries as its namespaces hold keys, and
/// once they are cleared and their handles dropped, it holds no byte, no entry and no table.
#[test]
fn expiry_races_eviction_and_the_budget_comes_back_whole() {
    use namestore::ErrorKind;

    fn split_mix(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    // Refusals for memory are allowed (`never` and `with-ttl` namespaces fill the store with
    // what may not go), and counted; anything else fails the test.
    fn allowed<T>(refused: &AtomicU64, result: namestore::Result<T>) {
        if let Err(e) = result {
            assert_eq!(e.kind(), ErrorKind::OutOfMemory, "{e}");
            refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    for policy in [Policy::S3Fifo, Policy::SampledLru] {
        // Small enough that what the `never` and `with-ttl` namespaces keep fills it and
        // writes are refused in every run: with 128 KiB, once empty shards gave their tables
        // back before a write was refused, runs of the sampled LRU saw 0 to 127 refusals
        // (about 1,000 before); with 96 KiB, 5,000 to 8,000 (S3-FIFO 18,000 to 21,000).
        // 16 shards a namespace (a store of 96 KiB gets 1 unless told): their tables and
        // eviction orders are most of what fills it.
        let store = MemoryDriver::builder()
            .shards(16)
            .max_bytes(96 << 10)
            .eviction(Eviction::Any)
            .policy(policy)
            .reap_interval(Some(Duration::from_millis(1)))
            .build()
            .unwrap();
        let cache = store.namespace::<String>("race", "cache").unwrap();
        let ttl = store
            .namespace_with_eviction::<String>("race", "ttl", Eviction::WithTtl)
            .unwrap();
        let locks = store
            .namespace_with_eviction::<String>("race", "locks", Eviction::Never)
            .unwrap();
        let refused = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for thread in 0..4u64 {
                let (store, cache, ttl, locks, refused) = (&store, &cache, &ttl, &locks, &refused);
                scope.spawn(move || {
                    for n in 0..20_000u64 {
                        let r = split_mix(thread << 32 | n);
                        let key = format!("k{}", r % 200);
                        let value = vec![b'v'; (r >> 8) as usize % 1_500];
                        let life = Duration::from_micros(1_000 + (r >> 20) % 2_000);
                        match (r >> 40) % 14 {
                            0 | 1 => allowed(refused, ready(cache.set(&key, value, Some(life)))),
                            2 => allowed(refused, ready(cache.set(&key, value, None))),
                            3 | 4 => allowed(refused, ready(ttl.set(&key, value, Some(life)))),
                            5 => allowed(refused, ready(ttl.set(&key, value, None))),
                            6 => allowed(refused, ready(locks.set(&key, "held", Some(life)))),
                            7 => allowed(
                                refused,
                                ready(cache.mset(
                                    (0..3).map(|i| (format!("m{}", (r >> (i * 4)) % 50), "batch")),
                                    Some(life),
                                )),
                            ),
                            8 => {
                                allowed(refused, ready(cache.expire(&key, life)));
                                allowed(refused, ready(ttl.persist(&key)));
                            }
                            9 => {
                                let counter = format!("c{}", r % 20);
                                allowed(refused, ready(cache.incr(&counter, 1)));
                                allowed(refused, ready(ttl.incr_with_ttl(&counter, 1, life)));
                            }
                            10 => {
                                allowed(refused, ready(cache.delete(&key)));
                                allowed(
                                    refused,
                                    ready(ttl.mdel([key.clone(), format!("m{}", r % 50)])),
                                );
                            }
                            11 => {
                                // A namespace of its own for a moment (one a user), left to
                                // expire, be evicted or be freed.
                                let user = store
                                    .namespace::<String>("user", &format!("u{}", r % 64))
                                    .unwrap();
                                allowed(refused, ready(user.set(&key, value, Some(life))));
                            }
                            12 if r.is_multiple_of(400) => {
                                allowed(refused, ready(ttl.clear()));
                            }
                            _ => {
                                let _ = ready(cache.get(&key)).unwrap();
                                let _ = ready(ttl.exists(&key)).unwrap();
                            }
                        }
                    }
                });
            }
        });
        // Every TTL given is over: what is left without one is what the namespaces hold.
        std::thread::sleep(Duration::from_millis(10));
        store.purge_expired();
        namespaces_add_up(&store, policy);
        let stats = store.namespace_stats();
        let usage = store.usage().unwrap();
        assert!(usage.bytes <= 96 << 10, "{policy:?}: {usage:?}");
        let evicted: u64 = stats.iter().map(|s| s.evicted).sum();
        let expired: u64 = stats.iter().map(|s| s.expired).sum();
        let refused = refused.into_inner();
        assert!(
            evicted > 0 && expired > 0 && refused > 0,
            "{policy:?}: {stats:?}, {refused} refused: no race"
        );
        // Cleared and let go: everything charged is given back.
        for name in stats.iter().map(|s| &s.name) {
            let ns = store
                .namespace::<String>(name.root(), name.domain())
                .unwrap();
            ready(ns.clear()).unwrap();
        }
        drop((cache, ttl, locks));
        let usage = store.usage().unwrap();
        assert_eq!(
            (usage.bytes, usage.entries),
            (0, 0),
            "{policy:?}: {usage:?}"
        );
        assert_eq!(store.namespace_tables(), 0, "{policy:?}");
    }
}

/// With no write in flight, the namespaces' live keys and charged bytes add up to the
/// store's usage (no key expired meanwhile: the caller purged, or set no TTL).
fn namespaces_add_up(store: &MemoryDriver, policy: Policy) {
    let stats = store.namespace_stats();
    let usage = store.usage().unwrap();
    assert_eq!(
        stats.iter().map(|s| s.keys).sum::<u64>(),
        usage.entries,
        "{policy:?}: {usage:?} {stats:?}"
    );
    assert_eq!(
        stats.iter().map(|s| s.bytes.unwrap()).sum::<u64>(),
        usage.bytes,
        "{policy:?}: the namespaces' bytes add up to the store's: {usage:?} {stats:?}"
    );
}

/// SPEC 10.5 under contention: a write into a full store whose namespaces may evict is
/// refused only when evicting everything evictable would not make its room, however many
/// writers race it for the room. A batch needs its room at once; single writes beside it take
/// any room that comes free, one entry at a time. Room a write frees by evicting is its own:
/// given back to the store for anyone to take, a batch's evictions fed the single writers,
/// and after 10,000 of them (the store's contents many times over) the batch was refused.
#[test]
fn a_batch_is_not_starved_of_the_room_it_evicts_for() {
    for policy in [Policy::S3Fifo, Policy::SampledLru] {
        let store = MemoryDriver::builder()
            .max_entries(300)
            .eviction(Eviction::Any)
            .policy(policy)
            .reap_interval(None)
            .build()
            .unwrap();
        let batches = store.namespace::<String>("race", "batches").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        std::thread::scope(|scope| {
            for writer in 0..3 {
                let filler = store.namespace::<String>("race", "filler").unwrap();
                let stop = Arc::clone(&stop);
                scope.spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        ready(filler.set(&format!("f{writer}-{n}"), "x", None)).unwrap();
                        n += 1;
                    }
                });
            }
            let _stop = Stop(Arc::clone(&stop));
            for round in 0..300 {
                let value = format!("{round}");
                let keys = (0..60).map(|i| (format!("b{round}-{i}"), value.clone()));
                if let Err(error) = ready(batches.mset(keys, None)) {
                    panic!("{policy:?}: batch {round} refused: {error}");
                }
            }
        });
        assert!(store.usage().unwrap().entries <= 300);
    }
}

/// SPEC 10.2 with large values rewritten from several threads, beside small keys: a write that
/// made its room without its shards' locks can find the value it meant to replace gone
/// (evicted, or rewritten smaller, by another write) and then adds more than it reserved; it
/// takes the rest under the locks before it stores, so the budget holds within 10% at every
/// instant. (Left to the shedding after such a write, the store reached 1.55 to 1.76 times its
/// budget in a release build of the same writes by single keys.) A write that could not make
/// that room under its locks, another write holding what it needed, lets them go and makes
/// it again: going on over the budget after the first such try, two of ten runs failed, at
/// 1.14 and 1.16 times the budget, and others read the budget's count wrapped below zero.
#[test]
fn large_values_rewritten_from_several_threads_keep_the_budget() {
    for batches in [false, true] {
        for policy in [Policy::S3Fifo, Policy::SampledLru] {
            rewrite_large_values(policy, batches);
        }
    }
}

/// Four threads rewriting three large values (`batches`: two at a time, in one `mset`), one
/// writing small batches, for two seconds; the most the store held at any sample is within
/// 10% of its budget; what a namespace is charged never reads as wrapped below zero (a
/// shard's structures, settled by the write that grew them after its lock, and given back
/// first by the write that emptied the shard, read as 2^64 less 494 bytes while the count was
/// unsigned).
fn rewrite_large_values(policy: Policy, batches: bool) {
    const BUDGET: u64 = 1 << 20;
    let store = MemoryDriver::builder()
        .max_bytes(BUDGET)
        .eviction(Eviction::Any)
        .policy(policy)
        .reap_interval(None)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let worst = std::thread::scope(|scope| {
        for writer in 0..5u64 {
            let stop = Arc::clone(&stop);
            let large = writer < 4;
            let ns = store
                .namespace::<String>("race", if large { "large" } else { "small" })
                .unwrap();
            scope.spawn(move || {
                let mut state = writer + 1;
                while !stop.load(Ordering::Relaxed) {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let r = state >> 33;
                    let len = 100_000 + (r % 900_000) as usize;
                    let written = match (large, batches) {
                        (true, false) => {
                            ready(ns.set(&format!("large-{}", r % 3), vec![1u8; len], None))
                        }
                        (true, true) => {
                            let pairs = (0..2).map(|i| {
                                let key = format!("large-{}", (r + i) % 3);
                                (key, vec![1u8; len / 2 + i as usize * 1000])
                            });
                            ready(ns.mset(pairs, None))
                        }
                        (false, _) => {
                            let pairs =
                                (0..5).map(|i| (format!("small-{}", (r + i) % 20_000), "v"));
                            ready(ns.mset(pairs, None))
                        }
                    };
                    if let Err(error) = written {
                        assert_eq!(error.kind(), namestore::ErrorKind::OutOfMemory, "{error}");
                    }
                }
            });
        }
        let _stop = Stop(Arc::clone(&stop));
        let started = Instant::now();
        let (mut worst, mut samples) = (0, 0u64);
        while started.elapsed() < Duration::from_secs(2) {
            worst = worst.max(store.usage().unwrap().bytes);
            samples += 1;
            if samples % 16 == 0 {
                // Counted a shard at a time while writes go on, a namespace may count one large
                // value before it is evicted and another after it is written: three at most.
                for stats in store.namespace_stats() {
                    let bytes = stats.bytes.unwrap();
                    assert!(
                        bytes <= 4 * BUDGET,
                        "{policy:?}, batches {batches}: {} charged {bytes} bytes",
                        stats.name
                    );
                }
            }
        }
        worst
    });
    assert!(
        worst <= BUDGET + BUDGET / 10,
        "{policy:?}, batches {batches}: {worst} bytes in use at worst, {:.2} times the budget",
        worst as f64 / BUDGET as f64
    );
}

/// `purge_expired` racing the reclaimer's rounds: each looks at a namespace whose earliest
/// deadline has come, and neither may lose when its next one is. (A purge that took the
/// namespace's due time away while a round looked at the schedule left it out of the
/// schedule: its later deadlines were never reclaimed, and in a store with a budget the write
/// that needed an expired key's room was refused in a `never` namespace, or evicted a live
/// key in another, the model test's rare failure.)
#[test]
fn purging_beside_the_reclaimer_keeps_every_deadline_in_view() {
    use namestore::drivers::memory::ManualClock;

    for budget in [true, false] {
        let clock = ManualClock::new();
        let mut builder = MemoryDriver::builder()
            .manual_clock(clock.clone())
            // As often as it can: a round on every turn of the reclaimer's thread.
            .reap_interval(Some(Duration::from_micros(1)));
        if budget {
            builder = builder.max_entries(2).eviction(Eviction::Never);
        }
        let store = builder.build().unwrap();
        let ns = store.namespace::<String>("purge", "race").unwrap();
        let key = |k: &str| k.to_owned();
        let ms = Duration::from_millis;
        let started = Instant::now();
        let mut laps = 0;
        while laps < 2_000 || (started.elapsed() < Duration::from_secs(2) && laps < 20_000) {
            laps += 1;
            ready(ns.set(&key("soon"), "1", Some(ms(10)))).unwrap();
            ready(ns.set(&key("later"), "2", Some(ms(20)))).unwrap();
            clock.advance(ms(10));
            // "soon" is due: the purge and the reclaimer's next round both go for it.
            store.purge_expired();
            clock.advance(ms(10));
            // "later" has expired now: it must go before a write needs its room, and the
            // reclaimer must find it.
            if budget {
                ready(ns.set(&key("a"), "3", None)).unwrap();
                ready(ns.set(&key("b"), "4", None))
                    .unwrap_or_else(|e| panic!("lap {laps}: the expired key kept its room: {e}"));
                assert_eq!(store.stored_entries(), 2, "lap {laps}");
                ready(ns.mdel([key("a"), key("b")])).unwrap();
            } else {
                let waiting = Instant::now();
                while store.stored_entries() > 0 {
                    assert!(
                        waiting.elapsed() < Duration::from_secs(5),
                        "lap {laps}: the reclaimer never took the expired key"
                    );
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
    }
}
