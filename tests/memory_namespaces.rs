//! Per-tenant and per-user namespaces on the memory driver: a namespace that holds no key and
//! has no live handle costs nothing, and the background reclaimer's work follows the keys that
//! have a TTL, not the namespaces ever opened.
//!
//! One test, in its own binary: it reads the process's resident memory and CPU time, which
//! other tests running beside it would disturb.

use std::time::{Duration, Instant};

use namestore::MemoryDriver;
use namestore::drivers::memory::ManualClock;

/// The share of a CPU an idle store with 100,000 namespaces holding keys with a TTL may use:
/// 0.0% measured in a debug build (the reclaimer's schedule holds nothing due); 6.3% when
/// each round looked at every table's due time, 58% when each round reaped every table.
const IDLE_WITH_DEADLINES: f64 = 0.01;

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// CPU time (user + system) this process has used.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// Sleeps 3 s and checks the process used under `share` of a CPU meanwhile.
async fn idles_below(what: &str, share: f64) {
    let (cpu, wall) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let busy = cpu_time() - cpu;
    let used = busy.as_secs_f64() / wall.elapsed().as_secs_f64();
    println!(
        "idle with {what}: {busy:?} of CPU in 3 s ({:.2}%)",
        used * 100.0
    );
    assert!(
        used < share,
        "idle with {what}, the store used {:.1}% of a CPU",
        used * 100.0
    );
}

async fn short_lived(store: &MemoryDriver, from: usize, count: usize) {
    for i in from..from + count {
        let ns = store
            .namespace::<String>("tenant", &format!("user-{i}"))
            .unwrap();
        ns.set(&"session".to_owned(), "data", None).await.unwrap();
        assert_eq!(ns.clear().await.unwrap(), 1);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn empty_namespaces_without_handles_cost_nothing() {
    let store = MemoryDriver::new();

    // 1. A million short-lived namespaces: open, set, clear, drop the handle.
    short_lived(&store, 0, 20_000).await;
    let before = rss();
    let started = Instant::now();
    short_lived(&store, 20_000, 1_000_000).await;
    let after = rss();
    println!(
        "1,000,000 short-lived namespaces in {:?}: RSS {} MiB -> {} MiB",
        started.elapsed(),
        before >> 20,
        after >> 20
    );
    assert_eq!(
        store.namespace_tables(),
        0,
        "an empty, unused namespace kept its table"
    );
    assert!(
        after <= before + (10 << 20),
        "RSS grew by {} MiB",
        (after - before) >> 20
    );

    // A namespace that still holds keys keeps them without a handle, and gives back its
    // table once emptied; one with a TTL is emptied by the reclaimer.
    let kept = store.namespace::<String>("tenant", "kept").unwrap();
    kept.set(&"k".to_owned(), "v", None).await.unwrap();
    drop(kept);
    let fleeting = store.namespace::<String>("tenant", "fleeting").unwrap();
    fleeting
        .set(&"k".to_owned(), "v", Some(Duration::from_millis(50)))
        .await
        .unwrap();
    drop(fleeting);
    assert_eq!(store.namespace_tables(), 2);
    let kept = store.namespace::<String>("tenant", "kept").unwrap();
    assert_eq!(
        kept.get(&"k".to_owned()).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.namespace_tables() > 1 {
        assert!(
            Instant::now() < deadline,
            "the expired namespace was never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kept.clear().await.unwrap();
    drop(kept);
    assert_eq!(store.namespace_tables(), 0);

    // 2. 300,000 empty namespaces with live handles, and 300,000 more opened and dropped: the
    // reclaimer has nothing to do, and the process stays idle.
    let mut handles = Vec::with_capacity(300_000);
    for i in 0..300_000 {
        handles.push(store.namespace::<String>("idle", &format!("n{i}")).unwrap());
        drop(store.namespace::<String>("gone", &format!("n{i}")).unwrap());
    }
    assert_eq!(store.namespace_tables(), 300_000);
    idles_below("300,000 empty namespaces", 0.01).await;
    drop(handles);
    assert_eq!(store.namespace_tables(), 0);

    // 2b. 100,000 namespaces holding a key that expires in an hour: the reclaimer's
    // schedule has nothing due until then. (It visited every one of them every round, 37% of
    // a CPU in a release build.)
    for i in 0..100_000 {
        let ns = store
            .namespace::<String>("sessions", &format!("user-{i}"))
            .unwrap();
        ns.set(
            &"session".to_owned(),
            "data",
            Some(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    }
    idles_below(
        "100,000 namespaces whose keys expire in an hour",
        IDLE_WITH_DEADLINES,
    )
    .await;
    assert_eq!(store.namespace_tables(), 100_000);

    // 3. Without the background reclaimer: short-lived namespaces whose keys have a TTL,
    // freed by `purge_expired`, leave the process's memory where it was. (The reclaimer's
    // list, which only its rounds emptied, kept every one of them: RSS grew by 153 MiB over
    // the last two rounds here, 310 MiB a round in a process of its own.)
    let clock = ManualClock::new();
    let store = MemoryDriver::builder()
        .reap_interval(None)
        .manual_clock(clock.clone())
        .build()
        .unwrap();
    let mut after_first = 0;
    for round in 0..3 {
        for i in 0..100_000 {
            let ns = store
                .namespace::<String>("expiring", &format!("r{round}-u{i}"))
                .unwrap();
            ns.set(&"session".to_owned(), "data", Some(Duration::from_secs(1)))
                .await
                .unwrap();
        }
        clock.advance(Duration::from_secs(2));
        assert_eq!(store.purge_expired(), 100_000);
        assert_eq!(store.namespace_tables(), 0);
        if round == 0 {
            after_first = rss();
        }
    }
    let after = rss();
    println!(
        "3 × 100,000 namespaces expired without the reclaimer: RSS {} MiB after the first, {} MiB after the last",
        after_first >> 20,
        after >> 20
    );
    assert!(
        after <= after_first + (10 << 20),
        "RSS grew by {} MiB",
        (after - after_first) >> 20
    );
}
