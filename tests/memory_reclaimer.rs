//! The memory driver's background reclaimer passes over a namespace whose earliest deadline is
//! still ahead (so an idle store's background work does not grow with its namespaces), and a
//! write that stores an earlier deadline brings the namespace's turn forward: an expired key
//! is reclaimed within a few rounds however late the namespace's other deadlines are.

use std::time::{Duration, Instant};

use namestore::drivers::memory::{Eviction, ManualClock, MemoryDriver};

/// Waits (10 s at most) for the store to hold `entries`, expired ones included.
async fn settles_at(store: &MemoryDriver, entries: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.stored_entries() != entries {
        assert!(
            Instant::now() < deadline,
            "{what}: {} entries held",
            store.stored_entries()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_earlier_deadline_brings_a_namespaces_turn_forward() {
    for (budget, shards) in [(false, 1), (false, 16), (true, 1), (true, 16)] {
        let what = format!("budget {budget}, {shards} shards");
        let clock = ManualClock::new();
        let mut builder = MemoryDriver::builder()
            .manual_clock(clock.clone())
            .shards(shards)
            .reap_interval(Some(Duration::from_millis(2)));
        if budget {
            builder = builder.max_bytes(1 << 30).eviction(Eviction::Any);
        }
        let store = builder.build().unwrap();
        let ns = store.namespace::<String>("app", "sessions").unwrap();
        // Deadlines an hour away: rounds of the reclaimer look at the namespace and leave it
        // until then.
        for i in 0..100 {
            ns.set(&format!("late-{i}"), "v", Some(Duration::from_secs(3600)))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A key that expires in a second, in the same namespace, and in a second namespace
        // that holds nothing else.
        ns.set(&"soon".to_owned(), "v", Some(Duration::from_secs(1)))
            .await
            .unwrap();
        let other = store.namespace::<String>("app", "other").unwrap();
        other
            .set(&"soon".to_owned(), "v", Some(Duration::from_secs(1)))
            .await
            .unwrap();
        settles_at(&store, 102, &what).await;
        clock.advance(Duration::from_secs(2));
        settles_at(&store, 100, &format!("{what}: the expired keys")).await;
        // The late keys' turn comes too.
        clock.advance(Duration::from_secs(3600));
        settles_at(&store, 0, &format!("{what}: the late keys")).await;
    }
}

/// In a store whose namespaces evict, no write is refused for room, so what a namespace's
/// empty shards keep (their tables and eviction orders, while a handle holds it) would hold
/// its room while writes evict live keys: the background reclaimer gives it back once the
/// store is nearly full.
#[tokio::test]
async fn the_reclaimer_gives_back_what_empty_shards_keep_in_a_full_store() {
    const BUDGET: u64 = 256 * 1024;
    // 16 shards (a store of 256 KiB gets 4 unless told), so that the emptied namespace's
    // shards keep a good part of the budget.
    let store = MemoryDriver::builder()
        .shards(16)
        .max_bytes(BUDGET)
        .eviction(Eviction::Any)
        .reap_interval(Some(Duration::from_millis(2)))
        .build()
        .unwrap();
    let bytes_of = |name: &str| {
        store
            .namespace_stats()
            .into_iter()
            .find(|s| s.name.to_string() == name)
            .and_then(|s| s.bytes)
            .unwrap()
    };
    let emptied = store.namespace::<String>("app", "emptied").unwrap();
    for i in 0..400 {
        emptied.set(&format!("k{i}"), "v", None).await.unwrap();
    }
    emptied
        .mdel((0..400).map(|i| format!("k{i}")))
        .await
        .unwrap();
    let kept = bytes_of("app:emptied");
    assert!(kept > 16 * 1024, "16 shards' tables kept: {kept}");
    // Another namespace fills the store.
    let cache = store.namespace::<String>("app", "cache").unwrap();
    for i in 0..1_000 {
        cache
            .set(&format!("k{i}"), vec![0u8; 500], None)
            .await
            .unwrap();
    }
    assert!(store.usage().unwrap().bytes > BUDGET / 8 * 7);
    let deadline = Instant::now() + Duration::from_secs(10);
    while bytes_of("app:emptied") * 8 >= kept {
        assert!(
            Instant::now() < deadline,
            "the empty shards still keep {} of {kept} bytes",
            bytes_of("app:emptied")
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The namespace takes keys again.
    emptied.set(&"again".to_owned(), "v", None).await.unwrap();
    assert!(emptied.exists(&"again".to_owned()).await.unwrap());
}

/// A reclaim interval of zero turns the reclaimer off, in the builder's method and in a
/// `MemoryConfig` given whole (which started a thread reclaiming without pause): an expired
/// key stays held until something touches it or `purge_expired` runs.
#[tokio::test]
async fn a_zero_interval_turns_the_reclaimer_off() {
    use namestore::drivers::memory::MemoryConfig;

    let config = MemoryConfig {
        reap_interval: Some(Duration::ZERO),
        ..MemoryConfig::default()
    };
    let given_whole = MemoryDriver::builder().config(config).build().unwrap();
    let by_method = MemoryDriver::builder()
        .reap_interval(Some(Duration::ZERO))
        .build()
        .unwrap();
    for store in [given_whole, by_method] {
        let ns = store.namespace::<String>("app", "brief").unwrap();
        ns.set(&"k".to_owned(), "v", Some(Duration::from_millis(1)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(store.stored_entries(), 1, "reclaimed in the background");
        store.purge_expired();
        assert_eq!(store.stored_entries(), 0);
    }
}
