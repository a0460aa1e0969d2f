//! SPEC 7: concurrency, on tokio tasks spread over the runtime's worker threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{Harness, k};
use crate::Driver;

const TASKS: usize = 16;

async fn join_all<T: Send + 'static>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.expect("a task panicked"));
    }
    results
}

/// SPEC 7.1: N concurrent `incr(k, 1)` leave exactly N.
pub async fn concurrent_incr<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let per_task = 500;
    let tasks = (0..TASKS)
        .map(|_| {
            let ns = ns.clone();
            tokio::spawn(async move {
                let mut seen = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    seen.push(ns.incr(&k("hits"), 1).await.unwrap());
                    tokio::task::yield_now().await;
                }
                seen
            })
        })
        .collect();
    let mut seen: Vec<i64> = join_all(tasks).await.into_iter().flatten().collect();
    let total = (TASKS * per_task) as i64;
    assert_eq!(
        ns.get(&k("hits")).await.unwrap().as_deref(),
        Some(total.to_string().as_bytes())
    );
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=total).collect::<Vec<_>>(),
        "every increment returned a distinct value"
    );
}

/// SPEC 7.1: of N concurrent `set_nx` on a missing key exactly one wins, and of N concurrent
/// `cad` by the same owner exactly one deletes.
pub async fn concurrent_set_nx<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    for round in 0..20 {
        let key = format!("lock{round}");
        let start = Arc::new(tokio::sync::Barrier::new(TASKS));
        let tasks = (0..TASKS)
            .map(|i| {
                let (ns, key, start) = (ns.clone(), key.clone(), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    ns.set_nx(&key, format!("owner{i}"), None)
                        .await
                        .unwrap()
                        .then_some(i)
                })
            })
            .collect();
        let winners: Vec<usize> = join_all(tasks).await.into_iter().flatten().collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} set_nx winners",
            winners.len()
        );
        let owner = format!("owner{}", winners[0]);
        assert_eq!(
            ns.get(&key).await.unwrap().as_deref(),
            Some(owner.as_bytes())
        );

        let tasks = (0..TASKS)
            .map(|_| {
                let (ns, key, owner) = (ns.clone(), key.clone(), owner.clone());
                tokio::spawn(async move { ns.cad(&key, owner).await.unwrap() })
            })
            .collect();
        let deleted = join_all(tasks).await.into_iter().filter(|&d| d).count();
        assert_eq!(deleted, 1, "round {round}: {deleted} cad winners");
    }
}

/// SPEC 7.1: a `cas` increment loop from many tasks loses no update.
pub async fn concurrent_cas<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    ns.set(&k("n"), "0", None).await.unwrap();
    let per_task = 200;
    let retries = Arc::new(AtomicUsize::new(0));
    let tasks = (0..TASKS)
        .map(|_| {
            let (ns, retries) = (ns.clone(), Arc::clone(&retries));
            tokio::spawn(async move {
                for _ in 0..per_task {
                    loop {
                        let current = ns.get(&k("n")).await.unwrap().expect("n exists");
                        let next: u64 = std::str::from_utf8(&current)
                            .unwrap()
                            .parse::<u64>()
                            .unwrap()
                            + 1;
                        if ns
                            .cas(&k("n"), &current, next.to_string(), None)
                            .await
                            .unwrap()
                        {
                            break;
                        }
                        retries.fetch_add(1, Ordering::Relaxed);
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    join_all(tasks).await;
    let total = TASKS * per_task;
    assert_eq!(
        ns.get(&k("n")).await.unwrap().as_deref(),
        Some(total.to_string().as_bytes())
    );
}

/// `replace` is atomic: one racing a `delete` of the same key either runs before it (and the
/// delete removes what it stored) or after it (and stores nothing), so once both are done the
/// key is gone, whatever the interleaving. A `replace` built from a read and a write would
/// bring the key back whenever the delete fell between the two.
pub async fn concurrent_replace_and_delete<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let (mut replaced, rounds) = (0, 100);
    for round in 0..rounds {
        let key = k(&format!("k{}", round % 8));
        ns.set(&key, "v0", None).await.unwrap();
        let replacers: Vec<_> = (0..TASKS)
            .map(|t| {
                let (ns, key) = (ns.clone(), key.clone());
                tokio::spawn(async move { ns.replace(&key, format!("v{t}"), None).await.unwrap() })
            })
            .collect();
        let deleter = {
            let (ns, key) = (ns.clone(), key.clone());
            tokio::spawn(async move { ns.delete(&key).await.unwrap() })
        };
        for replacer in replacers {
            replaced += usize::from(replacer.await.unwrap());
        }
        assert!(
            deleter.await.unwrap(),
            "the key was present until the delete"
        );
        assert_eq!(
            ns.get(&key).await.unwrap(),
            None,
            "a replace racing a delete brought the key back (round {round})"
        );
    }
    // Not a rule, a sign the race was run: some replaces ran before their delete.
    assert!(replaced > 0, "no replace ever found its key");
}

/// SPEC 7.2: `mset` and `mget` are atomic with respect to each other: a reader never sees a
/// batch half written.
pub async fn batch_atomicity<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    // Enough keys to land on many shards, buckets or slots.
    let keys: Arc<Vec<String>> = Arc::new((0..64).map(|i| format!("k{i}")).collect());
    ns.mset(keys.iter().map(|key| (key, "0")), None)
        .await
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (ns, keys) = (ns.clone(), Arc::clone(&keys));
            tokio::spawn(async move {
                for round in 1..=300 {
                    let value = format!("{w}-{round}");
                    ns.mset(keys.iter().map(|key| (key, value.clone())), None)
                        .await
                        .unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (ns, keys, done) = (ns.clone(), Arc::clone(&keys), Arc::clone(&done));
            tokio::spawn(async move {
                let mut reads = 0;
                while !done.load(Ordering::Acquire) || reads < 10 {
                    let values = ns.mget(keys.iter()).await.unwrap();
                    let first = values[0].clone();
                    assert!(
                        values.iter().all(|v| *v == first),
                        "a torn batch: {values:?}"
                    );
                    reads += 1;
                    tokio::task::yield_now().await;
                }
                reads
            })
        })
        .collect();
    join_all(writers).await;
    done.store(true, Ordering::Release);
    let reads: usize = join_all(readers).await.into_iter().sum();
    assert!(reads >= 20);
}

/// SPEC 7.2: `mset` is atomic with respect to single-key reads too: once a `get` has seen a
/// batch's value on one key, no later `get` sees an older batch on any key of it.
pub async fn batch_atomic_for_single_reads<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let keys: Arc<Vec<String>> = Arc::new((0..64).map(|i| format!("k{i}")).collect());
    ns.mset(keys.iter().map(|key| (key, "0")), None)
        .await
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (ns, keys) = (ns.clone(), Arc::clone(&keys));
        tokio::spawn(async move {
            for round in 1..=400u64 {
                ns.mset(keys.iter().map(|key| (key, round.to_string())), None)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let readers: Vec<_> = (0..2u64)
        .map(|seed| {
            let (ns, keys, done) = (ns.clone(), Arc::clone(&keys), Arc::clone(&done));
            tokio::spawn(async move {
                let (mut seen, mut reads, mut state) = (0u64, 0u64, seed * 7919 + 1);
                while !done.load(Ordering::Acquire) || reads < 100 {
                    // Keys in a scrambled order, so a batch applied shard by shard shows.
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let key = &keys[(state >> 33) as usize % keys.len()];
                    let value = ns.get(key).await.unwrap().expect("batch keys exist");
                    let round: u64 = std::str::from_utf8(&value).unwrap().parse().unwrap();
                    assert!(
                        round >= seen,
                        "read round {round} of {key} after seeing round {seen}"
                    );
                    seen = round;
                    reads += 1;
                    if reads % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                reads
            })
        })
        .collect();
    writer.await.expect("the writer panicked");
    done.store(true, Ordering::Release);
    let reads: u64 = join_all(readers).await.into_iter().sum();
    assert!(reads >= 200);
}

/// SPEC 7.3: drivers and namespaces are `Send + Sync + Clone + 'static`, and clones share one
/// store.
pub async fn handles_are_shared<D: Driver>(h: &Harness<D>) {
    fn shareable<T: Send + Sync + Clone + 'static>(_: &T) {}
    let ns = h.namespace::<String>();
    shareable(&ns);
    shareable(h.driver());
    let clone = ns.clone();
    tokio::spawn(async move { clone.set(&k("from-task"), "v", None).await.unwrap() })
        .await
        .unwrap();
    assert!(ns.exists(&k("from-task")).await.unwrap());
    let again = crate::Namespace::<String, D>::new(
        h.driver().clone(),
        ns.name().root(),
        ns.name().domain(),
    )
    .unwrap();
    assert!(
        again.exists(&k("from-task")).await.unwrap(),
        "a second handle sees the same data"
    );
}
