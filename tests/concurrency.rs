//! Concurrency on real OS threads against the memory driver (SPEC 7.1, 7.2).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use futures_util::FutureExt;
use namestore::{MemoryDriver, Namespace};

const THREADS: usize = 8;

fn ready<T>(future: impl std::future::Future<Output = T>) -> T {
    future
        .now_or_never()
        .expect("memory driver futures are ready at once")
}

fn namespace(shards: usize) -> Namespace<String, MemoryDriver> {
    MemoryDriver::builder()
        .shards(shards)
        .build()
        .unwrap()
        .namespace("threads", "test")
        .unwrap()
}

fn on_threads<T: Send + 'static>(f: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    let f = Arc::new(f);
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let (f, start) = (Arc::clone(&f), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                f(i)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("a thread panicked"))
        .collect()
}

#[test]
fn concurrent_incr_gives_exact_totals() {
    let ns = namespace(16);
    let per_thread = 20_000;
    let shared = ns.clone();
    on_threads(move |_| {
        for i in 0..per_thread {
            ready(shared.incr(&"total".to_owned(), 1)).unwrap();
            ready(shared.incr(&format!("spread{}", i % 64), 2)).unwrap();
        }
    });
    let total = (THREADS * per_thread) as i64;
    assert_eq!(ready(ns.incr(&"total".to_owned(), 0)).unwrap(), total);
    let spread: i64 = (0..64)
        .map(|i| ready(ns.incr(&format!("spread{i}"), 0)).unwrap())
        .sum();
    assert_eq!(spread, 2 * total);
}

#[test]
fn exactly_one_set_nx_winner() {
    let ns = namespace(16);
    for round in 0..200 {
        let key = format!("lock{round}");
        let shared = ns.clone();
        let k = key.clone();
        let winners: Vec<usize> = on_threads(move |i| {
            ready(shared.set_nx(&k, format!("{i}"), None))
                .unwrap()
                .then_some(i)
        })
        .into_iter()
        .flatten()
        .collect();
        assert_eq!(winners.len(), 1, "round {round}");
        assert_eq!(
            ready(ns.get(&key)).unwrap().unwrap(),
            winners[0].to_string()
        );
    }
}

#[test]
fn cas_increment_loop_loses_no_update() {
    let ns = namespace(16);
    ready(ns.set(&"n".to_owned(), "0", None)).unwrap();
    let per_thread = 5_000;
    let shared = ns.clone();
    on_threads(move |_| {
        let key = "n".to_owned();
        for _ in 0..per_thread {
            loop {
                let current = ready(shared.get(&key)).unwrap().unwrap();
                let next = std::str::from_utf8(&current)
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    + 1;
                if ready(shared.cas(&key, &current, next.to_string(), None)).unwrap() {
                    break;
                }
            }
        }
    });
    let total = THREADS * per_thread;
    assert_eq!(
        ready(ns.get(&"n".to_owned())).unwrap().unwrap(),
        total.to_string()
    );
}

/// Up to 64 shards a batch finds its shards in a bit set; above, by sorting its keys.
#[test]
fn mget_never_sees_a_torn_mset() {
    torn_batches(64);
}

#[test]
fn mget_never_sees_a_torn_mset_with_more_shards_than_a_bit_set_holds() {
    torn_batches(256);
}

fn torn_batches(shards: usize) {
    let ns = namespace(shards);
    let keys: Arc<Vec<String>> = Arc::new((0..32).map(|i| format!("k{i}")).collect());
    ready(ns.mset(keys.iter().map(|k| (k, "0")), None)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (ns, keys, done) = (ns.clone(), Arc::clone(&keys), Arc::clone(&done));
            thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) {
                    let values = ready(ns.mget(keys.iter())).unwrap();
                    assert!(
                        values.iter().all(|v| *v == values[0]),
                        "torn batch: {values:?}"
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (ns, keys) = (ns.clone(), Arc::clone(&keys));
            thread::spawn(move || {
                for round in 0..5_000 {
                    let value = format!("{w}:{round}");
                    ready(ns.mset(keys.iter().map(|k| (k, value.clone())), None)).unwrap();
                    // Single-key writers race with the batches too; they must not deadlock.
                    ready(ns.set(&"single".to_owned(), value, None)).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
}
