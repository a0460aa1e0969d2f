//! SPEC 10 on the memory driver: a budget, per-namespace eviction modes, expired keys first,
//! evicted keys missing everywhere, oversized writes refused whole, and the counts a program
//! reads. Small budgets and a manual clock, so every rule is checked exactly.

use std::time::Duration;

use futures_util::TryStreamExt;
use namestore::drivers::memory::{
    Eviction, ManualClock, MemoryConfig, MemoryDriver, NamespaceStats, Policy,
};
use namestore::{ErrorKind, KeyTtl, Namespace};

const POLICIES: [Policy; 2] = [Policy::S3Fifo, Policy::SampledLru];

fn store(max_entries: u64, eviction: Eviction, policy: Policy) -> (MemoryDriver, ManualClock) {
    let clock = ManualClock::new();
    let store = MemoryDriver::builder()
        .manual_clock(clock.clone())
        .shards(1)
        .max_entries(max_entries)
        .eviction(eviction)
        .policy(policy)
        .reap_interval(None)
        .build()
        .unwrap();
    (store, clock)
}

/// A store with a byte budget nothing in these tests reaches, any key evictable, and a
/// manual clock.
fn roomy(policy: Policy) -> (MemoryDriver, ManualClock) {
    clocked(1 << 30, policy)
}

/// A store of `max_bytes` whose namespaces evict any key by default, with a manual clock and
/// its reclaimer off.
fn clocked(max_bytes: u64, policy: Policy) -> (MemoryDriver, ManualClock) {
    clocked_in(max_bytes, Eviction::Any, policy)
}

/// A store of `max_bytes` whose namespaces are of mode `eviction` by default, with a manual
/// clock and its reclaimer off.
fn clocked_in(max_bytes: u64, eviction: Eviction, policy: Policy) -> (MemoryDriver, ManualClock) {
    let clock = ManualClock::new();
    let store = MemoryDriver::builder()
        .manual_clock(clock.clone())
        .max_bytes(max_bytes)
        .eviction(eviction)
        .policy(policy)
        .reap_interval(None)
        .build()
        .unwrap();
    (store, clock)
}

/// A store of `max_bytes` whose namespaces evict any key, its reclaimer off.
fn evicting(max_bytes: u64, policy: Policy) -> MemoryDriver {
    MemoryDriver::builder()
        .max_bytes(max_bytes)
        .eviction(Eviction::Any)
        .policy(policy)
        .reap_interval(None)
        .build()
        .unwrap()
}

/// A store of `max_bytes` in `shards` shards whose namespaces are of mode `eviction` by
/// default, its reclaimer off.
fn sharded(max_bytes: u64, eviction: Eviction, policy: Policy, shards: usize) -> MemoryDriver {
    MemoryDriver::builder()
        .max_bytes(max_bytes)
        .eviction(eviction)
        .policy(policy)
        .shards(shards)
        .reap_interval(None)
        .build()
        .unwrap()
}

/// Writes the next new keys from `k(i)`: one counter (`batch` 0), or a batch of `batch`
/// 100-byte values (`values`) or empty ones. Returns the next `i`.
async fn write_new(
    ns: &Namespace<String, MemoryDriver>,
    i: usize,
    batch: usize,
    values: bool,
) -> usize {
    if batch == 0 {
        ns.incr(&k(i), 1).await.unwrap();
        return i + 1;
    }
    let value = if values { vec![7u8; 100] } else { vec![] };
    ns.mset((i..i + batch).map(|j| (k(j), value.clone())), None)
        .await
        .unwrap();
    i + batch
}

/// The stats of the namespace `name` (`root:domain`), if the store holds it.
fn stats_of(store: &MemoryDriver, name: &str) -> Option<NamespaceStats> {
    store
        .namespace_stats()
        .into_iter()
        .find(|s| s.name.to_string() == name)
}

/// The bytes the store's namespaces are charged, summed (SPEC 10.2: with no write in
/// flight, the store's usage).
fn charged_by_namespaces(store: &MemoryDriver) -> u64 {
    store
        .namespace_stats()
        .iter()
        .map(|s| s.bytes.unwrap())
        .sum()
}

fn k(i: usize) -> String {
    format!("k{i}")
}

async fn present(
    ns: &Namespace<String, MemoryDriver>,
    keys: impl Iterator<Item = String>,
) -> usize {
    let mut count = 0;
    for key in keys {
        if ns.exists(&key).await.unwrap() {
            count += 1;
        }
    }
    count
}

/// SPEC 10.1: a budget in code and in the URL, sizes as people write them; none by default.
#[tokio::test]
async fn a_budget_in_code_and_in_the_url() {
    assert_eq!(MemoryDriver::new().usage(), None);
    let store =
        namestore::open("memory://?max_bytes=256MiB&max_entries=100000&eviction=with-ttl").unwrap();
    let memory = store.downcast_ref::<MemoryDriver>().unwrap();
    let usage = memory.usage().unwrap();
    assert_eq!(usage.max_bytes, Some(256 << 20));
    assert_eq!(usage.max_entries, Some(100_000));
    assert_eq!((usage.bytes, usage.entries), (0, 0));
    assert_eq!(memory.config().eviction, Eviction::WithTtl);
    for bad in [
        "memory://?max_bytes=lots",
        "memory://?max_bytes=0",
        "memory://?max_entries=-1",
        "memory://?eviction=sometimes",
        "memory://?policy=lfu",
    ] {
        let error = namestore::open(bad).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidUrl, "{bad}");
    }
    // An eviction mode or policy without a budget would evict nothing: a cache that forgot
    // its budget is told so rather than left to grow.
    for unbounded in [
        "memory://?eviction=any",
        "memory://?policy=sampled-lru&shards=4",
    ] {
        let error = namestore::open(unbounded).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidUrl, "{unbounded}");
        assert!(
            error
                .to_string()
                .contains("add `max_bytes` or `max_entries`"),
            "{error}"
        );
    }
    // A fraction, as people write one, taken down to a whole byte; a size past what 64 bits
    // hold is told so, not called malformed.
    let fractional = namestore::open("memory://?max_bytes=1.5GiB").unwrap();
    let usage = fractional.downcast_ref::<MemoryDriver>().unwrap().usage();
    assert_eq!(usage.unwrap().max_bytes, Some(3 << 29));
    let too_large = namestore::open("memory://?max_bytes=16777216TiB").unwrap_err();
    assert_eq!(too_large.kind(), ErrorKind::InvalidUrl);
    assert!(
        too_large
            .to_string()
            .contains("more bytes than a 64-bit size holds"),
        "{too_large}"
    );
    let malformed = namestore::open("memory://?max_bytes=1.5.0GiB").unwrap_err();
    assert!(
        malformed.to_string().contains("takes a size such as"),
        "{malformed}"
    );
    namestore::open("memory://?max_entries=10&eviction=any&policy=sampled-lru").unwrap();
    // Digits grouped as in Rust, in a count as in a size.
    let grouped = namestore::open("memory://?max_entries=100_000&shards=1_6").unwrap();
    let grouped = grouped.downcast_ref::<MemoryDriver>().unwrap();
    assert_eq!(grouped.usage().unwrap().max_entries, Some(100_000));
    assert_eq!(grouped.config().shards, Some(16));
    for bad in ["_1", "1e5", "", "1.5", "-1"] {
        let url = format!("memory://?max_entries={bad}");
        let error = namestore::open(&url).unwrap_err();
        assert!(
            error.to_string().contains("takes a whole number"),
            "{url}: {error}"
        );
    }
    // Case does not matter in a mode or policy, as in Redis's `maxmemory-policy` and as in
    // the sizes.
    let shouted =
        namestore::open("memory://?max_bytes=1MIB&eviction=With-TTL&policy=Sampled-LRU").unwrap();
    let config = shouted.downcast_ref::<MemoryDriver>().unwrap().config();
    assert_eq!(
        (config.eviction, config.policy),
        (Eviction::WithTtl, Policy::SampledLru)
    );
    let coded = MemoryDriver::builder().max_bytes(1 << 20).build().unwrap();
    assert_eq!(coded.usage().unwrap().max_bytes, Some(1 << 20));
    // The largest limits are limits too, in code and in the URL (units on to exbibytes), and
    // read back as given.
    let largest = MemoryDriver::builder()
        .max_bytes(u64::MAX)
        .max_entries(u64::MAX)
        .build()
        .unwrap();
    let usage = largest.usage().unwrap();
    assert_eq!(
        (usage.max_bytes, usage.max_entries),
        (Some(u64::MAX), Some(u64::MAX))
    );
    let huge = namestore::open("memory://?max_bytes=15EiB&eviction=any").unwrap();
    let huge = huge
        .downcast_ref::<MemoryDriver>()
        .unwrap()
        .usage()
        .unwrap();
    assert_eq!(huge.max_bytes, Some(15 << 60));
    let past = namestore::open("memory://?max_bytes=16EiB").unwrap_err();
    assert!(
        past.to_string()
            .contains("more bytes than a 64-bit size holds"),
        "{past}"
    );
}

/// A store with a budget gets no more shards than its budget fills: 32 entries of
/// `max_entries` and 64 KiB of `max_bytes` a shard at least, whatever the CPU count (which
/// alone gave 256 shards a namespace on a machine of 64 cores). Shards chosen by hand, and
/// stores without a budget, are as before.
#[test]
fn a_small_budget_is_split_over_few_shards() {
    let config = |max_bytes: Option<u64>, max_entries: Option<u64>| MemoryConfig {
        max_bytes,
        max_entries,
        ..MemoryConfig::default()
    };
    let for_cpus = config(None, None).shards_per_namespace();
    assert!(for_cpus >= 16 && for_cpus.is_power_of_two(), "{for_cpus}");
    for (max_bytes, max_entries, shards) in [
        (None, Some(1), 1),
        (None, Some(100), 2),
        (None, Some(1_000), 16),
        (Some(4 << 10), None, 1),
        (Some(64 << 10), None, 1),
        (Some(256 << 10), None, 4),
        (Some(1 << 20), None, 16),
        (Some(1 << 20), Some(100), 2),
        (Some(64 << 10), Some(1_000_000), 1),
    ] {
        assert_eq!(
            config(max_bytes, max_entries).shards_per_namespace(),
            shards.min(for_cpus),
            "max_bytes {max_bytes:?}, max_entries {max_entries:?}"
        );
    }
    let big = config(Some(u64::MAX), Some(u64::MAX)).shards_per_namespace();
    assert_eq!(big, for_cpus);
    let chosen = MemoryConfig {
        shards: Some(64),
        ..config(None, Some(100))
    };
    assert_eq!(chosen.shards_per_namespace(), 64);
    let url = MemoryConfig::from_url("memory://?max_entries=100&shards=128").unwrap();
    assert_eq!(url.shards_per_namespace(), 128);
    // The store says what it chose; its settings stay as given.
    let store = MemoryDriver::builder()
        .config(config(Some(256 << 10), None))
        .build()
        .unwrap();
    assert_eq!(store.shards(), 4.min(for_cpus));
    assert_eq!(store.config().shards, None);
    let store = MemoryDriver::from_url("memory://?max_entries=100&shards=128").unwrap();
    assert_eq!(store.shards(), 128);
}

/// SPEC 10.2, 10.5: a store of a few KiB, with the shards chosen for it, holds entries and
/// evicts to make room, instead of spending its budget on the tables and eviction orders of
/// many shards. With 16 shards a namespace (the CPU count's choice here), two namespaces
/// writing values of 100 bytes in turn into 16 KiB held 6 entries, and writes were refused.
#[tokio::test]
async fn a_store_of_a_few_kib_holds_entries() {
    for policy in POLICIES {
        let store = evicting(16 << 10, policy);
        let namespaces =
            ["first", "second"].map(|domain| store.namespace::<String>("app", domain).unwrap());
        let value = bytes::Bytes::from(vec![b'v'; 100]);
        for i in 0..2_000 {
            namespaces[i % 2]
                .set(&k(i), value.clone(), None)
                .await
                .unwrap_or_else(|error| panic!("{policy:?}, write {i}: {error}"));
        }
        let used = store.usage().unwrap();
        assert!(used.bytes <= 16 << 10, "{policy:?}: {used:?}");
        // Measured: 46 entries (about 340 bytes each with their share of the structures).
        assert!(used.entries >= 40, "{policy:?}: {used:?}");
    }
}

/// SPEC 10.2: usage follows what is stored, and returns to zero when it is all gone (deleted,
/// cleared, expired, evicted) and the namespace with it.
#[tokio::test]
async fn usage_follows_what_is_stored() {
    for policy in POLICIES {
        let (store, clock) = roomy(policy);
        let ns = store.namespace::<String>("app", "usage").unwrap();
        let used = || store.usage().unwrap();
        assert_eq!(used().bytes, 0, "an empty namespace is not charged");
        ns.set(&k(0), vec![0u8; 1000], None).await.unwrap();
        let one = used();
        assert_eq!(one.entries, 1);
        // The value, and the namespace's own memory with its first entry: its 16 shards
        // (2 KiB), its first shard's table and eviction order.
        assert!(
            one.bytes >= 1000 + 2048 && one.bytes < 1000 + 4096,
            "{one:?}"
        );
        ns.set(&k(0), vec![0u8; 5000], None).await.unwrap();
        assert!(
            used().bytes >= one.bytes + 4000,
            "an overwrite is charged its new size"
        );
        ns.set(&k(0), "small", None).await.unwrap();
        assert!(used().bytes < one.bytes);
        ns.incr(&"n".to_owned(), 5).await.unwrap();
        ns.mset((1..50).map(|i| (k(i), vec![1u8; 100])), None)
            .await
            .unwrap();
        ns.set(&"ttl".to_owned(), "x", Some(Duration::from_secs(5)))
            .await
            .unwrap();
        ns.get_set(&"swap".to_owned(), "a", None).await.unwrap();
        ns.cas(
            &"swap".to_owned(),
            "a",
            "bbbb",
            Some(Duration::from_secs(9)),
        )
        .await
        .unwrap();
        assert!(
            ns.replace(&"swap".to_owned(), "ccccccc", None)
                .await
                .unwrap()
        );
        assert!(!ns.replace(&"nowhere".to_owned(), "x", None).await.unwrap());
        ns.expire(&k(1), Duration::from_secs(1)).await.unwrap();
        ns.persist(&"ttl".to_owned()).await.unwrap();
        assert_eq!(used().entries, 53);
        ns.delete(&k(2)).await.unwrap();
        ns.mdel([k(3), k(4)]).await.unwrap();
        ns.cad(&k(5), vec![1u8; 100]).await.unwrap();
        assert_eq!(used().entries, 49);
        clock.advance(Duration::from_secs(2));
        assert_eq!(ns.get(&k(1)).await.unwrap(), None, "expired");
        assert_eq!(
            used().entries,
            49,
            "an expired entry holds memory until reclaimed"
        );
        assert_eq!(store.purge_expired(), 1);
        assert_eq!(used().entries, 48, "and gives it back then");
        ns.clear().await.unwrap();
        let left = used();
        assert_eq!(left.entries, 0, "{policy:?}: {left:?}");
        assert!(
            left.bytes > 2048 && left.bytes < one.bytes - 1000,
            "{policy:?}: the namespace's own memory stays charged while a handle holds it: \
             {left:?}"
        );
        drop(ns);
        let gone = used();
        assert_eq!((gone.bytes, gone.entries), (0, 0), "{policy:?}: {gone:?}");
    }
}

/// SPEC 10.3: `never` refuses the write that would go over, with nothing changed; `any`
/// evicts; `with-ttl` evicts only keys with a TTL.
#[tokio::test]
async fn the_three_modes() {
    for policy in POLICIES {
        let (never, _) = store(10, Eviction::Never, policy);
        let ns = never.namespace::<String>("app", "locks").unwrap();
        for i in 0..10 {
            ns.set(&k(i), "v", None).await.unwrap();
        }
        let refused = ns.set(&k(10), "v", None).await.unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::OutOfMemory, "{refused:?}");
        assert_eq!(
            ns.incr(&"n".to_owned(), 1).await.unwrap_err().kind(),
            ErrorKind::OutOfMemory
        );
        assert!(!ns.exists(&k(10)).await.unwrap());
        assert_eq!(present(&ns, (0..10).map(k)).await, 10, "nothing evicted");
        // An overwrite of a present key still fits, and so does a counter that exists.
        ns.set(&k(0), "w", None).await.unwrap();

        let (any, _) = store(10, Eviction::Any, policy);
        let ns = any.namespace::<String>("app", "cache").unwrap();
        for i in 0..100 {
            ns.set(&k(i), "v", None).await.unwrap();
        }
        assert_eq!(present(&ns, (0..100).map(k)).await, 10);
        assert_eq!(any.usage().unwrap().entries, 10);

        let (with_ttl, _) = store(10, Eviction::WithTtl, policy);
        let ns = with_ttl.namespace::<String>("app", "sessions").unwrap();
        for i in 0..5 {
            ns.set(&format!("kept{i}"), "v", None).await.unwrap();
        }
        for i in 0..50 {
            ns.set(&k(i), "v", Some(Duration::from_secs(3600)))
                .await
                .unwrap();
        }
        assert_eq!(
            present(&ns, (0..5).map(|i| format!("kept{i}"))).await,
            5,
            "{policy:?}"
        );
        assert_eq!(present(&ns, (0..50).map(k)).await, 5);
        // Keys without a TTL cannot make room: once only they are left, writes are refused.
        let mut persisted = 0;
        for i in 0..50 {
            persisted += usize::from(ns.persist(&k(i)).await.unwrap());
        }
        assert_eq!(persisted, 5);
        let refused = ns.set(&"more".to_owned(), "v", None).await.unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::OutOfMemory);
    }
}

/// SPEC 10.3: the store has a default mode and a namespace may choose its own; asking for a
/// different mode on a namespace that already has one is an error.
#[tokio::test]
async fn a_namespace_chooses_its_mode() {
    let (store, _) = store(10, Eviction::Any, Policy::S3Fifo);
    let cache = store.namespace::<String>("app", "cache").unwrap();
    let locks = store
        .namespace_with_eviction::<String>("app", "locks", Eviction::Never)
        .unwrap();
    for i in 0..5 {
        locks.set(&k(i), "owner", None).await.unwrap();
    }
    for i in 0..100 {
        cache.set(&k(i), "v", None).await.unwrap();
    }
    assert_eq!(
        present(&locks, (0..5).map(k)).await,
        5,
        "a never namespace lost a key"
    );
    assert_eq!(present(&cache, (0..100).map(k)).await, 5);
    // The locks fill the budget: the cache gives way, and the locks get their room.
    for i in 5..10 {
        locks.set(&k(i), "owner", None).await.unwrap();
    }
    assert_eq!(present(&cache, (0..100).map(k)).await, 0);
    assert_eq!(
        locks.set(&k(10), "owner", None).await.unwrap_err().kind(),
        ErrorKind::OutOfMemory
    );
    let conflict = store
        .namespace_with_eviction::<String>("app", "locks", Eviction::Any)
        .unwrap_err();
    assert_eq!(conflict.kind(), ErrorKind::InvalidNamespace, "{conflict}");
    assert!(
        store
            .namespace_with_eviction::<String>("app", "locks", Eviction::Never)
            .is_ok()
    );
    let stats = store.namespace_stats();
    let modes: Vec<(String, Eviction)> = stats
        .iter()
        .map(|s| (s.name.to_string(), s.eviction))
        .collect();
    assert_eq!(
        modes,
        [
            ("app:cache".to_owned(), Eviction::Any),
            ("app:locks".to_owned(), Eviction::Never)
        ]
    );
}

/// A namespace tells which of its keys the store may evict (SPEC 10.3), through every layer,
/// and a lock refuses a namespace whose keys may be evicted: a held lock's key evicted, the
/// next caller takes it while its holder still acts, and a fence counter evicted starts the
/// tokens again.
#[tokio::test]
async fn a_lock_refuses_a_namespace_the_store_may_evict() {
    use namestore::lock::Lock;
    let lease = Duration::from_secs(30);
    let (store, _) = store(10, Eviction::Any, Policy::S3Fifo);
    let cache = store.namespace::<String>("app", "cache").unwrap();
    let expiring = store
        .namespace_with_eviction::<String>("app", "expiring", Eviction::WithTtl)
        .unwrap();
    let kept = store
        .namespace_with_eviction::<String>("app", "locks", Eviction::Never)
        .unwrap();
    assert_eq!(cache.eviction(), Eviction::Any);
    assert_eq!(expiring.eviction(), Eviction::WithTtl);
    assert_eq!(kept.eviction(), Eviction::Never);
    for (namespace, mode) in [(cache, "any"), (expiring, "with-ttl")] {
        let refused = Lock::new(namespace, lease).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::InvalidNamespace, "{refused}");
        assert!(refused.to_string().contains(mode), "{refused}");
    }
    let locks = Lock::new(kept, lease).unwrap();
    let guard = locks.try_acquire(&k(0)).await.unwrap().expect("free");
    assert_eq!(guard.token(), 1);

    // Through a store opened from a URL (`AnyDriver`) and the telemetry layer.
    let any = namestore::open("memory://?max_entries=10&eviction=any").unwrap();
    let cache = Namespace::<String, _>::new(any.clone(), "app", "cache").unwrap();
    assert_eq!(cache.eviction(), Eviction::Any);
    assert_eq!(
        Lock::new(cache, lease).unwrap_err().kind(),
        ErrorKind::InvalidNamespace
    );
    let traced = namestore::instrument::Instrumented::new(any);
    let cache = Namespace::<String, _>::new(traced.clone(), "app", "cache").unwrap();
    assert_eq!(cache.eviction(), Eviction::Any);
    assert!(Lock::new(cache, lease).is_err());

    // Without a budget nothing is evicted, whatever the default mode says.
    let unbounded = MemoryDriver::builder()
        .eviction(Eviction::Any)
        .build()
        .unwrap();
    let namespace = unbounded.namespace::<String>("app", "locks").unwrap();
    assert_eq!(namespace.eviction(), Eviction::Never);
    assert!(Lock::new(namespace, lease).is_ok());
}

/// SPEC 9.2 and 10.3: a store opened from a URL (`AnyDriver`), the telemetry layer's too,
/// gives a namespace its own mode as a store built in code does, so one budgeted URL serves a
/// cache and the locks beside it: the cache's writes evict only the cache's keys.
#[tokio::test]
async fn a_store_opened_from_a_url_gives_a_namespace_its_own_mode() {
    use namestore::lock::Lock;
    for url in [
        "memory://?max_entries=10&eviction=any&shards=1",
        "memory://?max_entries=10&eviction=any&shards=1&telemetry=1",
    ] {
        let store = namestore::open(url).unwrap();
        let locks = store
            .namespace_with_eviction::<String>("app", "locks", Eviction::Never)
            .unwrap();
        let expiring = Namespace::<String, _>::with_eviction(
            store.clone(),
            "app",
            "expiring",
            Eviction::WithTtl,
        )
        .unwrap();
        let cache = store.namespace::<String>("app", "cache").unwrap();
        assert_eq!(locks.eviction(), Eviction::Never, "{url}");
        assert_eq!(expiring.eviction(), Eviction::WithTtl, "{url}");
        assert_eq!(cache.eviction(), Eviction::Any, "{url}");
        // The same mode again is the same namespace; another is refused, not a silent change.
        let again = store
            .namespace_with_eviction::<String>("app", "locks", Eviction::Never)
            .unwrap();
        assert_eq!(again.eviction(), Eviction::Never);
        for mode in [Eviction::Any, Eviction::WithTtl] {
            let refused = store
                .namespace_with_eviction::<String>("app", "locks", mode)
                .unwrap_err();
            assert_eq!(
                refused.kind(),
                ErrorKind::InvalidNamespace,
                "{url}: {refused}"
            );
            assert!(refused.to_string().contains(mode.as_str()), "{refused}");
        }

        let lock = Lock::new(locks.clone(), Duration::from_secs(30)).unwrap();
        let guard = lock.try_acquire(&k(0)).await.unwrap().expect("free");
        locks.set(&k(1), "kept", None).await.unwrap();
        expiring.set(&k(0), "no ttl", None).await.unwrap();
        expiring
            .set(&k(1), "ttl", Some(Duration::from_secs(600)))
            .await
            .unwrap();
        for i in 0..50 {
            cache.set(&k(i), "v", None).await.unwrap();
        }
        assert!(
            guard.is_held().await.unwrap(),
            "{url}: the lock was evicted"
        );
        assert_eq!(lock.last_token(&k(0)).await.unwrap(), 1, "{url}");
        assert_eq!(
            locks.get(&k(1)).await.unwrap().as_deref(),
            Some(&b"kept"[..])
        );
        assert!(
            expiring.exists(&k(0)).await.unwrap(),
            "{url}: a key without TTL evicted"
        );
        let cached = cache.keys("*").await.unwrap().len();
        assert!((1..=10 - 4).contains(&cached), "{url}: {cached} cached");
        assert!(cache.exists(&k(49)).await.unwrap(), "{url}");
    }

    // A store that evicts nothing on its own keeps every key whatever the mode.
    #[cfg(feature = "redb")]
    {
        let dir = std::env::temp_dir().join(format!("namestore-modes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.redb");
        let store = namestore::open(&format!("redb://{}", path.display())).unwrap();
        let cache = store
            .namespace_with_eviction::<String>("app", "cache", Eviction::Any)
            .unwrap();
        assert_eq!(cache.eviction(), Eviction::Never);
        cache.set(&k(0), "v", None).await.unwrap();
        assert!(cache.exists(&k(0)).await.unwrap());
        drop((cache, store));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// SPEC 10.4: no live key is evicted while an expired one still holds memory, in any
/// namespace.
#[tokio::test]
async fn expired_keys_go_first() {
    for policy in POLICIES {
        let (store, clock) = store(20, Eviction::Any, policy);
        let short = store.namespace::<String>("app", "short").unwrap();
        let long = store.namespace::<String>("app", "long").unwrap();
        for i in 0..10 {
            short
                .set(&k(i), "v", Some(Duration::from_secs(1)))
                .await
                .unwrap();
            long.set(&k(i), "v", None).await.unwrap();
        }
        clock.advance(Duration::from_secs(2));
        for i in 10..20 {
            long.set(&k(i), "v", None).await.unwrap();
        }
        assert_eq!(
            present(&long, (0..20).map(k)).await,
            20,
            "{policy:?}: a live key went first"
        );
        let stats = store.namespace_stats();
        assert_eq!(stats[0].evicted + stats[1].evicted, 0);
        assert_eq!(
            stats
                .iter()
                .find(|s| s.name.domain() == "short")
                .unwrap()
                .expired,
            10
        );
    }
}

/// SPEC 10.7: the counts hold with and without a budget, for keys a read finds expired and
/// keys the reclaimer frees, each counted once, and a clear of the namespace keeps them.
#[tokio::test]
async fn expirations_are_counted_however_they_are_reclaimed() {
    for budget in [None, Some(100)] {
        let clock = ManualClock::new();
        let mut builder = MemoryDriver::builder()
            .manual_clock(clock.clone())
            .shards(4)
            .reap_interval(None);
        if let Some(entries) = budget {
            builder = builder.max_entries(entries).eviction(Eviction::Any);
        }
        let store = builder.build().unwrap();
        let ns = store.namespace::<String>("app", "ttl").unwrap();
        for i in 0..10 {
            ns.set(&k(i), "v", Some(Duration::from_secs(1)))
                .await
                .unwrap();
        }
        ns.set(&k(10), "v", None).await.unwrap();
        clock.advance(Duration::from_secs(2));
        // Three found expired by writes, two by deletes, the other five by the reclaimer; a
        // read leaves an expired key to the others.
        for i in 0..3 {
            assert_eq!(ns.get(&k(i)).await.unwrap(), None);
            assert!(ns.set_nx(&k(i), "again", None).await.unwrap());
        }
        assert!(!ns.delete(&k(3)).await.unwrap());
        assert_eq!(ns.mdel(&[k(4), k(10)]).await.unwrap(), 1);
        assert_eq!(store.purge_expired(), 5, "{budget:?}");
        assert_eq!(store.purge_expired(), 0, "{budget:?}");
        let expired = |store: &MemoryDriver| {
            let stats = store.namespace_stats();
            (stats[0].expired, stats[0].evicted)
        };
        assert_eq!(expired(&store), (10, 0), "{budget:?}");
        ns.clear().await.unwrap();
        assert_eq!(expired(&store), (10, 0), "{budget:?}: after a clear");
    }
}

/// SPEC 10.5: an evicted key is missing for every operation, exactly as an expired one.
#[tokio::test]
async fn an_evicted_key_is_missing_everywhere() {
    for policy in POLICIES {
        let (store, _) = store(4, Eviction::Any, policy);
        let ns = store.namespace::<String>("app", "gone").unwrap();
        for i in 0..4 {
            ns.set(&k(i), "7", Some(Duration::from_secs(60)))
                .await
                .unwrap();
        }
        for i in 4..8 {
            ns.set(&k(i), "7", None).await.unwrap();
        }
        let gone: Vec<String> = (0..8).map(k).filter(|_| true).collect();
        let mut evicted = Vec::new();
        for key in &gone {
            if !ns.exists(key).await.unwrap() {
                evicted.push(key.clone());
            }
        }
        assert_eq!(evicted.len(), 4, "{policy:?}");
        let listed: Vec<String> = ns.scan("*").unwrap().try_collect().await.unwrap();
        for key in &evicted {
            assert_eq!(ns.get(key).await.unwrap(), None);
            assert_eq!(ns.ttl(key).await.unwrap(), KeyTtl::Missing);
            assert!(!listed.contains(key));
            assert!(!ns.cas(key, "7", "8", None).await.unwrap());
            assert!(!ns.replace(key, "8", None).await.unwrap());
            assert!(!ns.delete(key).await.unwrap());
            assert!(!ns.expire(key, Duration::from_secs(5)).await.unwrap());
            assert_eq!(ns.mget([key.clone()]).await.unwrap(), [None]);
        }
        assert_eq!(
            ns.incr(&evicted[0], 1).await.unwrap(),
            1,
            "a counter starts again from 0"
        );
        assert!(ns.set_nx(&evicted[1], "new", None).await.unwrap());
        assert_eq!(store.namespace_stats()[0].evicted, 4 + 2, "{policy:?}");
    }
}

/// SPEC 10.5: a write larger than what eviction may free is refused whole, and changes
/// nothing: no key is evicted for it, and no part of a batch is stored.
#[tokio::test]
async fn a_write_too_large_is_refused_whole() {
    for policy in POLICIES {
        let clock = ManualClock::new();
        let store = MemoryDriver::builder()
            .manual_clock(clock)
            // 16 shards a namespace (a store of 64 KiB gets 1 unless told).
            .shards(16)
            .max_bytes(64 * 1024)
            .eviction(Eviction::Any)
            .policy(policy)
            .reap_interval(None)
            .build()
            .unwrap();
        let locks = store
            .namespace_with_eviction::<String>("app", "locks", Eviction::Never)
            .unwrap();
        let cache = store.namespace::<String>("app", "cache").unwrap();
        locks
            .set(&"held".to_owned(), vec![0u8; 30 * 1024], None)
            .await
            .unwrap();
        for i in 0..10 {
            cache.set(&k(i), vec![0u8; 1024], None).await.unwrap();
        }
        let before = store.usage().unwrap();
        for (what, result) in [
            (
                "larger than the budget",
                cache
                    .set(&"huge".to_owned(), vec![0u8; 65 * 1024], None)
                    .await,
            ),
            (
                "larger than what may be evicted",
                cache
                    .set(&"big".to_owned(), vec![0u8; 40 * 1024], None)
                    .await,
            ),
            (
                "a batch larger than what may be evicted",
                cache
                    .mset((0..40).map(|i| (format!("b{i}"), vec![0u8; 1024])), None)
                    .await,
            ),
        ] {
            let error = result.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::OutOfMemory, "{what}: {error:?}");
            assert_eq!(store.usage().unwrap(), before, "{what} changed the store");
            assert_eq!(
                present(&cache, (0..10).map(k)).await,
                10,
                "{what} evicted a key"
            );
        }
        assert_eq!(present(&cache, (0..40).map(|i| format!("b{i}"))).await, 0);
        // What does fit is written, evicting as needed. (The namespaces' own memory, their
        // shards' tables and eviction orders, takes 12 to 16 KiB of the budget here, as the
        // keys fall in the shards.)
        cache
            .set(&"fits".to_owned(), vec![0u8; 16 * 1024], None)
            .await
            .unwrap();
        assert!(store.usage().unwrap().bytes <= 64 * 1024);
    }
}

/// SPEC 10.5: what evicting a namespace's entries lets its tables and eviction orders shrink
/// by is room that eviction frees. A store full of entries that cost only their room in a
/// table (counters; empty values with a TTL in a `with-ttl` namespace) makes room for a value
/// of most of its budget by evicting some of them (it refused one of 16 KiB when tables
/// counted as memory eviction cannot free); a write larger than evicting everything would
/// make room for is still refused whole.
#[tokio::test]
async fn a_store_full_of_counters_makes_room_for_a_large_value() {
    const BUDGET: u64 = 1 << 20;
    let ttl = Some(Duration::from_secs(3600));
    for policy in POLICIES {
        for mode in [Eviction::Any, Eviction::WithTtl] {
            for shards in [1, 16] {
                let store = sharded(BUDGET, mode, policy, shards);
                let small = store.namespace::<String>("app", "small").unwrap();
                let values = store.namespace::<String>("app", "values").unwrap();
                for i in 0..20_000 {
                    if mode == Eviction::Any {
                        small.incr(&k(i), 1).await.unwrap();
                    } else {
                        small.set(&k(i), Vec::new(), ttl).await.unwrap();
                    }
                }
                let what = format!("{policy:?}, {mode:?}, {shards} shards");
                if mode == Eviction::WithTtl {
                    // Keys without a TTL keep their room in the tables. A thousand come and
                    // go (deleted, or their TTL removed and set again), and ten stay: counted
                    // as kept while they are there (the large writes below fail if the
                    // thousand still are).
                    for i in 0..1000 {
                        let plain = format!("plain-{i}");
                        small.set(&plain, Vec::new(), None).await.unwrap();
                        if i % 2 == 0 {
                            small.delete(&plain).await.unwrap();
                        } else {
                            small.expire(&plain, Duration::from_secs(60)).await.unwrap();
                            assert!(small.persist(&plain).await.unwrap());
                            assert!(small.expire(&plain, Duration::from_secs(60)).await.unwrap());
                        }
                    }
                    for i in 0..10 {
                        small
                            .set(&format!("config-{i}"), Vec::new(), None)
                            .await
                            .unwrap();
                    }
                }
                let full = stats_of(&store, "app:small").unwrap();
                assert!(full.evicted > 0, "{what}: {full:?}");

                let before = store.usage().unwrap();
                let error = values
                    .set(&"huge".to_owned(), vec![0u8; (BUDGET - 1024) as usize], ttl)
                    .await
                    .unwrap_err();
                assert_eq!(error.kind(), ErrorKind::OutOfMemory, "{what}: {error}");
                assert_eq!(
                    store.usage().unwrap(),
                    before,
                    "{what}: the refusal changed the store"
                );
                assert_eq!(stats_of(&store, "app:small").unwrap().keys, full.keys);

                for (eighths, value) in [(4, 1u8), (7, 2)] {
                    let big = vec![value; (BUDGET * eighths / 8) as usize];
                    values
                        .set(&"big".to_owned(), big.clone(), ttl)
                        .await
                        .unwrap();
                    let used = store.usage().unwrap();
                    assert!(used.bytes <= BUDGET, "{what}, {eighths}/8: {used:?}");
                    let read = values.get(&"big".to_owned()).await.unwrap();
                    assert!(
                        read.as_deref() == Some(&big[..]),
                        "{what}, {eighths}/8: read back {:?} bytes; {:?}",
                        read.map(|value| value.len()),
                        stats_of(&store, "app:values")
                    );
                    // Some of the small entries stay: those the room left beside the value.
                    let kept = stats_of(&store, "app:small").unwrap().keys;
                    assert!(
                        kept * 64 >= full.keys * (8 - eighths),
                        "{what}, {eighths}/8: {kept} of {} kept",
                        full.keys
                    );
                }
            }
        }
    }
}

/// SPEC 10.5 for a value that grows: what the write needs is judged with its own entry, which
/// stays while it makes its room. A value grown past what evicting every other key would make
/// room for is refused with nothing evicted (it was refused only after every other key had
/// gone: judged by what it added alone, it looked as if it would fit); one that fits once they
/// go is written.
#[tokio::test]
async fn a_value_grown_past_what_eviction_frees_is_refused_whole() {
    const BUDGET: u64 = 1 << 20;
    for policy in POLICIES {
        for (shards, grown, fits) in [(16, 1_040_000, false), (1, 1_000_000, true)] {
            let store = sharded(BUDGET, Eviction::Any, policy, shards);
            let cache = store.namespace::<String>("app", "cache").unwrap();
            let big = "big".to_owned();
            cache.set(&big, vec![1u8; 600 << 10], None).await.unwrap();
            // Small keys fill the rest; the large one is written again should it go.
            for i in 0..20_000 {
                cache.set(&k(i), vec![0u8; 100], None).await.unwrap();
                if !cache.exists(&big).await.unwrap() {
                    cache.set(&big, vec![1u8; 600 << 10], None).await.unwrap();
                }
            }
            let what = format!("{policy:?}, {shards} shards, {grown} bytes");
            let before = store.usage().unwrap();
            let result = cache.set(&big, vec![2u8; grown], None).await;
            if fits {
                result.unwrap();
                let read = cache.get(&big).await.unwrap();
                assert_eq!(read.map(|value| value.len()), Some(grown), "{what}");
                assert!(store.usage().unwrap().bytes <= BUDGET, "{what}");
            } else {
                let error = result.unwrap_err();
                assert_eq!(error.kind(), ErrorKind::OutOfMemory, "{what}: {error}");
                assert_eq!(
                    store.usage().unwrap(),
                    before,
                    "{what}: the refusal changed the store"
                );
                let read = cache.get(&big).await.unwrap();
                assert_eq!(read.map(|value| value[0]), Some(1), "{what}");
            }
        }
    }
}

/// SPEC 10.2 and 10.5 with namespaces made from data: each namespace's own memory (its shards,
/// their tables and eviction orders: a few KiB) is charged with its first key. A namespace no
/// handle holds goes with its last key, so evicting its keys makes that room too, and a write
/// that needs it frees whole namespaces; one a handle holds keeps it, so a write that would
/// need it is refused with nothing evicted.
#[tokio::test]
async fn namespaces_own_memory_is_room_only_when_no_handle_holds_them() {
    const BUDGET: u64 = 64 * 1024;
    for policy in POLICIES {
        let store = sharded(BUDGET, Eviction::Any, policy, 16);
        let users: Vec<_> = (0..12)
            .map(|i| {
                store
                    .namespace::<String>("users", &format!("user-{i}"))
                    .unwrap()
            })
            .collect();
        for user in &users {
            user.set(&"session".to_owned(), "s", None).await.unwrap();
        }
        let held = store.usage().unwrap();
        assert_eq!(held.entries, 12);
        assert!(
            held.bytes > 12 * 2048,
            "{policy:?}: each namespace's own memory is charged: {held:?}"
        );
        // Evicting the 12 sessions frees a few bytes each while their handles hold the
        // namespaces: not room for this.
        let cache = store.namespace::<String>("app", "cache").unwrap();
        let big = vec![0u8; (BUDGET - held.bytes) as usize + 4096];
        let refused = cache
            .set(&"big".to_owned(), big.clone(), None)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::OutOfMemory, "{refused:?}");
        assert!(
            refused.to_string().contains(
                "not evictable: what `never` and `with-ttl` namespaces keep, and namespaces' \
                 own memory"
            ),
            "the refusal says why: {refused}"
        );
        assert_eq!(
            store.usage().unwrap(),
            held,
            "{policy:?}: the refusal changed nothing"
        );
        for user in &users {
            assert!(user.exists(&"session".to_owned()).await.unwrap());
        }
        // Without their handles, the namespaces go with their sessions, and make the room.
        drop(users);
        cache.set(&"big".to_owned(), big, None).await.unwrap();
        let after = store.usage().unwrap();
        assert!(after.bytes <= BUDGET, "{policy:?}: {after:?}");
        assert!(
            store.namespace_tables() < 13,
            "{policy:?}: {} namespaces kept",
            store.namespace_tables()
        );
        assert!(cache.exists(&"big".to_owned()).await.unwrap());
    }
}

/// When the namespaces' own memory fills the budget (many namespaces of a few counters each,
/// which cost no bytes of their own), a write makes room by freeing whole namespaces that no
/// handle holds, not by evicting the keys of its own namespace first (which frees none of
/// that memory).
#[tokio::test]
async fn room_taken_by_namespaces_is_made_by_freeing_namespaces() {
    const BUDGET: u64 = 256 * 1024;
    for policy in POLICIES {
        let store = evicting(BUDGET, policy);
        for user in 0..100 {
            let ns = store
                .namespace::<String>("users", &format!("user-{user}"))
                .unwrap();
            for i in 0..20 {
                ns.incr(&k(i), 1).await.unwrap();
            }
        }
        assert!(store.namespace_tables() < 100, "the budget holds them all");
        let cache = store.namespace::<String>("app", "cache").unwrap();
        for i in 0..10 {
            cache.incr(&k(i), 1).await.unwrap();
        }
        let cached = present(&cache, (0..10).map(k)).await;
        assert!(cached > 0, "{policy:?}");
        cache
            .set(&"big".to_owned(), vec![0u8; 16 * 1024], None)
            .await
            .unwrap();
        assert_eq!(
            present(&cache, (0..10).map(k)).await,
            cached,
            "{policy:?}: the write evicted its own namespace's keys"
        );
        assert!(store.usage().unwrap().bytes <= BUDGET);
    }
}

/// The same with `with-ttl` namespaces whose keys all have a TTL: eviction may take every
/// one of their keys, so they go whole like namespaces of `any` mode (SPEC 10.5: a write is
/// refused only when evicting every evictable key would not make its room). Counted as
/// namespaces that stay, a value of half the budget was refused ("133136 not evictable").
#[tokio::test]
async fn with_ttl_namespaces_whose_keys_all_expire_are_room() {
    const BUDGET: u64 = 256 * 1024;
    let hour = Some(Duration::from_secs(3600));
    for policy in POLICIES {
        let (store, _clock) = clocked_in(BUDGET, Eviction::WithTtl, policy);
        for user in 0..100 {
            let ns = store
                .namespace::<String>("users", &format!("user-{user}"))
                .unwrap();
            for i in 0..20 {
                ns.set(&k(i), vec![1u8; 8], hour).await.unwrap();
            }
        }
        assert!(store.namespace_tables() < 100, "the budget holds them all");
        let cache = store.namespace::<String>("app", "cache").unwrap();
        for size in [BUDGET / 2, BUDGET * 3 / 4] {
            let value = vec![9u8; size as usize];
            let big = "big".to_owned();
            if let Err(error) = cache.set(&big, value.clone(), hour).await {
                panic!("{policy:?}: a value of {size} bytes refused: {error}");
            }
            assert_eq!(
                cache.get(&big).await.unwrap().as_deref(),
                Some(&value[..]),
                "{policy:?}"
            );
            assert!(store.usage().unwrap().bytes <= BUDGET, "{policy:?}");
        }
    }
}

/// SPEC 10.5 for a batch that overwrites half the keys of a store of counters with values:
/// its keys stay (spared) and keep their room in the tables, so evicting every other key
/// cannot make its room, and it is refused with nothing changed. (Counted as if their tables
/// could shrink with the rest, such a batch evicted every other key, then was refused.)
#[tokio::test]
async fn a_batch_over_half_a_store_of_counters_is_refused_whole() {
    const BUDGET: u64 = 1 << 20;
    for policy in POLICIES {
        for shards in [1, 16] {
            let store = sharded(BUDGET, Eviction::Any, policy, shards);
            let ns = store.namespace::<String>("app", "counters").unwrap();
            for i in 0..20_000 {
                ns.incr(&k(i), 1).await.unwrap();
            }
            let mut held = vec![];
            for i in 0..20_000 {
                if ns.exists(&k(i)).await.unwrap() {
                    held.push(i);
                }
            }
            let batch: Vec<usize> = held.iter().copied().step_by(2).collect();
            let error = ns
                .mset(batch.iter().map(|&i| (k(i), vec![1u8; 160])), None)
                .await
                .expect_err("a batch of half a megabyte over a full store of counters");
            assert_eq!(error.kind(), ErrorKind::OutOfMemory, "{error}");
            let context = format!("{policy:?}, {shards} shards");
            assert_eq!(
                present(&ns, held.iter().map(|&i| k(i))).await,
                held.len(),
                "{context}: the refused batch evicted keys"
            );
            assert_eq!(
                ns.get(&k(batch[0])).await.unwrap().as_deref(),
                Some(&b"1"[..]),
                "{context}"
            );
        }
    }
}

/// SPEC 10.2 in a `with-ttl` namespace whose keys without a TTL pile up (eviction may not
/// take them, and new keys with a TTL evict the last ones with a TTL): once they fill their
/// table, a new key doubles it whatever is evicted, and the write needs that room too,
/// refused when it is not there. (Charged after, as a table's growth is in other modes, one
/// write took a 64 KiB store to 76,876 bytes, and it stayed there: nothing could be shed.)
#[tokio::test]
async fn keys_without_a_ttl_that_fill_their_table_keep_the_budget() {
    const BUDGET: u64 = 64 * 1024;
    let hour = Some(Duration::from_secs(3600));
    for policy in POLICIES {
        for batch in [1, 4] {
            let store = sharded(BUDGET, Eviction::WithTtl, policy, 1);
            let ns = store.namespace::<String>("app", "mixed").unwrap();
            let (mut stored, mut refused) = (0, 0);
            for i in (0..3000).step_by(batch) {
                // One key in eight without a TTL.
                let ttl = if i % 8 == 0 { None } else { hour };
                let pairs = (i..i + batch).map(|j| (k(j), vec![1u8; 100]));
                match ns.mset(pairs, ttl).await {
                    Ok(()) => stored += 1,
                    Err(error) => {
                        assert_eq!(error.kind(), ErrorKind::OutOfMemory, "{error}");
                        refused += 1;
                    }
                }
                let used = store.usage().unwrap().bytes;
                assert!(
                    used <= BUDGET,
                    "{policy:?}, batches of {batch}: {used} bytes in use after write {i}"
                );
            }
            assert!(stored > 0 && refused > 0, "{policy:?}: {stored} {refused}");
        }
    }
}

/// SPEC 10.5 at the edge of what eviction can free: a batch overwriting many of a store's keys,
/// sized around the room evicting every other key makes, is written or refused with nothing
/// evicted. Three ways it was refused after evicting for it (S3-FIFO, one shard): a write
/// judged to fit is judged again as it evicts (others may take the room meanwhile), and the
/// few bytes its own victims' ghosts took were held against it (a full store, four of these
/// sizes); in a store far from its budget its victims shrank no table (tables were halved only
/// as the store came within a sixteenth of its budget), so they freed their values alone (ten);
/// and the victim search moved the batch's keys it met to the main queue, which grew by 16 KiB
/// for them, unforeseen (a `with-ttl` store whose keys without a TTL stay; two).
#[tokio::test]
async fn a_batch_at_the_edge_of_what_eviction_frees_is_written_or_refused_whole() {
    // A full store, 1,500 of its 12,000 keys overwritten; a store a third full, 1,000 of
    // its 3,000 keys; a `with-ttl` store of 6,000 keys, one in eight without a TTL.
    for (eviction, keys, batch, percent) in [
        (Eviction::Any, 12_000, 1500, 16),
        (Eviction::Any, 3000, 1000, 40),
        (Eviction::WithTtl, 6000, 1000, 22),
    ] {
        let (mut written, mut refused) = (0, 0);
        for step in 0..20 {
            let size = (1 << 20) * (percent + step / 2) / 100 + (step % 2) * 777;
            if edge_batch(eviction, keys, batch, size).await {
                written += 1;
            } else {
                refused += 1;
            }
        }
        // The sizes straddle the edge.
        assert!(
            written > 0 && refused > 0,
            "{eviction:?}, {keys} keys: {written} written, {refused} refused"
        );
    }
}

/// In a 1 MiB store of one shard, `keys` 40-byte values (one in eight without a TTL in a
/// `with-ttl` store), then a batch of `size` bytes over `batch` of those with a TTL: whether
/// it was written (refused, it evicted nothing).
async fn edge_batch(eviction: Eviction, keys: usize, batch: usize, size: usize) -> bool {
    let hour = Some(Duration::from_secs(3600));
    let store = sharded(1 << 20, eviction, Policy::S3Fifo, 1);
    let ns = store.namespace::<String>("app", "cache").unwrap();
    for i in 0..keys {
        let ttl = if eviction == Eviction::WithTtl && i % 8 == 0 {
            None
        } else {
            hour
        };
        ns.set(&k(i), vec![1u8; 40], ttl).await.unwrap();
    }
    let held = store.usage().unwrap().entries;
    // Odd keys: none of them one in eight.
    let pairs = (0..batch).map(|i| (k(keys - 2 * i - 1), vec![9u8; size / batch]));
    match ns.mset(pairs, hour).await {
        Ok(()) => true,
        Err(error) => {
            assert_eq!(error.kind(), ErrorKind::OutOfMemory, "{error}");
            assert_eq!(
                store.usage().unwrap().entries,
                held,
                "{eviction:?}, {keys} keys: a batch of {size} bytes over {batch} of them was \
                 refused after evicting for it"
            );
            false
        }
    }
}

/// Batches into a full store of more shards than a bit set holds (their shards found by
/// sorting their keys, and each key's shard's lock found again for it when the batch counts,
/// under the locks, what it adds to what it finds): every batch is stored whole, readable,
/// and the store keeps its budget.
#[tokio::test]
async fn batches_over_more_shards_than_a_bit_set_holds_keep_the_budget() {
    const BUDGET: u64 = 256 * 1024;
    for policy in POLICIES {
        let store = sharded(BUDGET, Eviction::Any, policy, 128);
        let ns = store.namespace::<String>("app", "cache").unwrap();
        for i in 0..3000 {
            ns.set(&k(i), vec![1u8; 100], None).await.unwrap();
        }
        for round in 0..200usize {
            // Present keys and new ones, values of 0 to 300 bytes.
            let pairs: Vec<(String, Vec<u8>)> = (0..20)
                .map(|j| {
                    let key = k((round * 37 + j * 101) % 4000);
                    (key, vec![round as u8; (round * 7 + j * 13) % 301])
                })
                .collect();
            ns.mset(pairs.clone(), None).await.unwrap();
            assert!(store.usage().unwrap().bytes <= BUDGET, "{policy:?}");
            // The last pair of a key given twice wins.
            for (at, (key, value)) in pairs.iter().enumerate() {
                if pairs[at + 1..].iter().all(|(later, _)| later != key) {
                    assert_eq!(
                        ns.get(key).await.unwrap().as_deref(),
                        Some(&value[..]),
                        "{policy:?}, round {round}: {key}"
                    );
                }
            }
        }
    }
}

/// A namespace of many keys is not emptied whole to make that room, even when no handle
/// holds it between uses (a cache whose handle is made per request): its keys go one by one,
/// its tables giving their room back as they empty, and it keeps what the write does not
/// need.
#[tokio::test]
async fn a_large_namespace_is_not_emptied_whole_for_room() {
    const BUDGET: u64 = 256 * 1024;
    for policy in POLICIES {
        let store = evicting(BUDGET, policy);
        {
            let cache = store.namespace::<String>("app", "cache").unwrap();
            for i in 0..1000 {
                cache.incr(&k(i), 1).await.unwrap();
            }
        }
        let held = store.usage().unwrap();
        assert_eq!(
            held.entries, 1000,
            "{policy:?}: counters under short keys fit"
        );
        let other = store.namespace::<String>("app", "other").unwrap();
        let value = vec![0u8; (BUDGET - held.bytes) as usize + 16 * 1024];
        other.set(&"big".to_owned(), value, None).await.unwrap();
        let cache = store.namespace::<String>("app", "cache").unwrap();
        let kept = present(&cache, (0..1000).map(k)).await;
        assert!(
            kept >= 250,
            "{policy:?}: the write emptied the cache ({kept} of 1000 keys kept)"
        );
        assert!(store.usage().unwrap().bytes <= BUDGET);
    }
}

/// A namespace's first write (a batch, a key, a counter) reserves what the namespace and each
/// shard it opens take (their own memory, tables and eviction orders) before it writes, so
/// the store does not go over its budget right after, for the write's own new keys to be
/// evicted to make up for it.
#[tokio::test]
async fn a_new_namespaces_first_batch_keeps_its_keys_in_a_full_store() {
    for policy in POLICIES {
        let store = evicting(64 * 1024, policy);
        let old = store.namespace::<String>("app", "old").unwrap();
        for i in 0..2_000 {
            old.set(&k(i), vec![0u8; 64], None).await.unwrap();
        }
        let fresh = store.namespace::<String>("app", "fresh").unwrap();
        fresh
            .mset((0..10).map(|i| (k(i), vec![1u8; 64])), None)
            .await
            .unwrap();
        assert_eq!(
            present(&fresh, (0..10).map(k)).await,
            10,
            "{policy:?}: the batch's own keys were evicted right after it"
        );
        // A single key, and a counter, likewise.
        let one = store.namespace::<String>("app", "one").unwrap();
        one.set(&k(0), vec![1u8; 64], None).await.unwrap();
        assert!(one.exists(&k(0)).await.unwrap(), "{policy:?}: a first set");
        let counter = store.namespace::<String>("app", "counter").unwrap();
        counter.incr(&k(0), 1).await.unwrap();
        assert!(
            counter.exists(&k(0)).await.unwrap(),
            "{policy:?}: a first incr"
        );
        assert!(store.usage().unwrap().bytes <= 64 * 1024);
    }
}

/// The same for a namespace `clear` emptied while a handle held it: its shards then make their
/// tables and eviction orders again, and a batch into it reserves them as a first batch does.
/// (It did not: the batch returned Ok and its keys, the namespace's only ones, were evicted
/// to pay for those structures.)
#[tokio::test]
async fn a_cleared_namespaces_next_writes_keep_their_keys_in_a_full_store() {
    for policy in POLICIES {
        let store = evicting(64 * 1024, policy);
        let again = store.namespace::<String>("app", "again").unwrap();
        again
            .mset((0..10).map(|i| (k(i), vec![1u8; 64])), None)
            .await
            .unwrap();
        let old = store.namespace::<String>("app", "old").unwrap();
        for i in 0..2_000 {
            old.set(&k(i), vec![0u8; 64], None).await.unwrap();
        }
        // (Its keys may have gone to make room for the others' by now.)
        again.clear().await.unwrap();
        for i in 2_000..2_200 {
            old.set(&k(i), vec![0u8; 64], None).await.unwrap();
        }
        again
            .mset((0..10).map(|i| (k(i), vec![2u8; 64])), None)
            .await
            .unwrap();
        assert_eq!(
            present(&again, (0..10).map(k)).await,
            10,
            "{policy:?}: the batch's own keys were evicted right after it"
        );
        // Once its shards are made again, a batch is charged as any other, and its keys stay.
        again
            .mset((10..20).map(|i| (k(i), vec![2u8; 64])), None)
            .await
            .unwrap();
        assert_eq!(present(&again, (10..20).map(k)).await, 10, "{policy:?}");
        // A single key and a counter, likewise.
        again.clear().await.unwrap();
        again.set(&k(0), vec![2u8; 64], None).await.unwrap();
        assert!(again.exists(&k(0)).await.unwrap(), "{policy:?}: a set");
        assert_eq!(again.clear().await.unwrap(), 1, "{policy:?}");
        again.incr(&k(0), 1).await.unwrap();
        assert!(again.exists(&k(0)).await.unwrap(), "{policy:?}: an incr");
        assert!(store.usage().unwrap().bytes <= 64 * 1024);
    }
}

/// SPEC 10.2 and 10.6 for entries that cost only their room in a table (counters with short
/// keys, empty values): once the store is full, no write takes more than a few of its keys.
/// Such a victim frees nothing until its table shrinks. A batch let a full table double over
/// the budget, and so did an eviction order's queue growing by a few hundred bytes; the
/// victims evicted to make up for it, taken from shard after shard, freed no room until a
/// table was a quarter full: a store of 1,800 counters in 16 shards fell to 640 in one write,
/// and one shard of values to half, again and again. With batches of 1 and 10 (`mset`) and
/// `incr`. While the store first fills, its tables growing, a write that takes it over its
/// budget may still take the keys one table must lose to halve; taken from shard after shard,
/// it took three times that (S3-FIFO, whose queues grow: the mean of the worst writes, a
/// sixth of the store against a twentieth).
#[tokio::test]
async fn a_full_store_keeps_its_keys_when_its_tables_and_queues_grow() {
    for policy in POLICIES {
        let (mut filling_worst, mut counted) = (0.0, 0);
        for (shards, batch, values) in [
            (16, 0, false),
            (16, 1, false),
            (16, 10, false),
            (1, 10, true),
        ] {
            let max_bytes = 256 * 1024;
            let store = sharded(max_bytes, Eviction::Any, policy, shards);
            let ns = store.namespace::<String>("app", "full").unwrap();
            let (mut most, mut least, mut worst_drop, mut first_worst) = (0, u64::MAX, 0, 0);
            let mut before = 0u64;
            let mut i = 0;
            while i < 40_000 {
                i = write_new(&ns, i, batch, values).await;
                let held = store.usage().unwrap().entries;
                let drop = before.saturating_sub(held);
                // Once the store has filled, and its tables have grown to what the budget allows.
                if i > 10_000 {
                    worst_drop = worst_drop.max(drop);
                    most = most.max(held);
                    least = least.min(held);
                } else {
                    first_worst = first_worst.max(drop);
                }
                before = held;
            }
            let what = format!("{policy:?}, {shards} shards, batches of {batch}, values {values}");
            // (With 16 shards, what the store holds depends on how many of its tables are of
            // which size: a sixth apart.)
            assert!(
                least * 6 >= most * 5,
                "{what}: the store held {least} to {most} keys"
            );
            assert!(
                worst_drop * 8 <= most,
                "{what}: one write took {worst_drop} keys of {most}"
            );
            assert!(store.usage().unwrap().bytes <= max_bytes, "{what}");
            if shards > 1 {
                filling_worst += first_worst.max(worst_drop) as f64 / most as f64;
                counted += 1;
            }
        }
        let filling_worst = filling_worst / f64::from(counted);
        assert!(
            filling_worst <= 0.1,
            "{policy:?}: the worst write took {:.1}% of a store of counters on average",
            filling_worst * 100.0
        );
    }
}

/// The same in a store whose namespaces' own memory is much of its budget: 40 namespaces of
/// 20 counters each, their handles held, beside a cache of counters written with `incr` and
/// with batches of 10 (`mset`), in 1 MiB. Each write's victims may come from the small
/// namespaces, freeing nothing while their shards' ghost tables grow, and a table the cache
/// lets double is made up for after. Before, one write took 970 to 1,610 keys of about 3,000
/// (a third to a half of the store), and the store held 1,750 to 2,870 keys on average. The
/// shard that doubled is now shed first, halved back (with `incr`, 3,646 to 4,631 keys held on
/// average over 700 release runs, median 4,270; with victims from one of the larger shards
/// instead, 3,300 to 3,360, and one batch took 907 to 947 keys); and an `incr` is not refused
/// as out of memory when an eviction elsewhere left the store over its budget by the few bytes
/// a ghost table grew, every byte of it in tables that the accounting cannot count on eviction
/// to free (about one run in three). The bounds leave room for the spread of those 700 runs
/// (the most one write took: 14.7% of the keys with `incr`, 20.2% with batches; first set at
/// 20% and 3,800 keys from a few runs, they failed about one run in a hundred).
#[tokio::test]
async fn a_store_of_many_namespaces_of_counters_keeps_its_keys() {
    for batch in [0, 10] {
        let store = evicting(1024 * 1024, Policy::S3Fifo);
        let mut users = Vec::new();
        for n in 0..40 {
            let ns = store
                .namespace::<String>("app", &format!("user-{n}"))
                .unwrap();
            for i in 0..20 {
                ns.incr(&k(i), 1).await.unwrap();
            }
            users.push(ns);
        }
        let cache = store.namespace::<String>("app", "cache").unwrap();
        let (mut worst_drop, mut before, mut most, mut sum, mut samples) = (0, 0u64, 0, 0, 0);
        let mut i = 0;
        while i < 40_000 {
            i = write_new(&cache, i, batch, false).await;
            let held = store.usage().unwrap().entries;
            if i > 10_000 {
                worst_drop = worst_drop.max(before.saturating_sub(held));
                most = most.max(held);
                sum += held;
                samples += 1;
            }
            before = held;
        }
        let mean = sum / samples;
        assert!(
            worst_drop * 4 <= most,
            "batches of {batch}: one write took {worst_drop} keys of {most}"
        );
        if batch == 0 {
            assert!(mean >= 3_500, "the store held {mean} keys on average");
        }
        assert!(store.usage().unwrap().bytes <= 1024 * 1024);
    }
}

/// SPEC 10.6 across namespaces: a namespace that comes to a store another one filled gets its
/// room from the other, whose keys nobody touches any more. (Each write took its room from
/// its own namespace first: the newcomer kept one key of 2,000, the other namespace the rest.)
#[tokio::test]
async fn a_namespace_that_comes_to_a_full_store_gets_room_from_the_others() {
    for policy in POLICIES {
        let store = evicting(1 << 20, policy);
        let pages = store.namespace::<String>("app", "pages").unwrap();
        for i in 0..20_000 {
            pages.set(&k(i), vec![0u8; 100], None).await.unwrap();
        }
        let full = store.usage().unwrap().entries;
        let sessions = store.namespace::<String>("app", "sessions").unwrap();
        for i in 0..2_000 {
            sessions.set(&k(i), vec![1u8; 100], None).await.unwrap();
        }
        // The evictions fall on each namespace as it holds entries: the newcomer's share
        // grows as 1 - e^(-written / held), about 1,450 of the 2,000 here (1,471 to 1,586
        // measured, both policies).
        let kept = present(&sessions, (0..2_000).map(k)).await;
        assert!(
            kept >= 1_000,
            "{policy:?}: the newcomer kept {kept} of 2,000 keys in a store of {full} entries"
        );
        // Written on, it takes the rest of the room from the namespace no longer written.
        for i in 2_000..40_000 {
            sessions.set(&k(i), vec![1u8; 100], None).await.unwrap();
        }
        let left = present(&pages, (0..20_000).map(k)).await;
        assert!(
            left <= full as usize / 20,
            "{policy:?}: the namespace no longer written kept {left} of {full} entries"
        );
        assert!(store.usage().unwrap().bytes <= 1 << 20);
    }
}

/// The same for a namespace of a few keys: its few entries in a shard do not read as a shard
/// fuller than its namespace's others, to be evicted first. (Weighing the writing shard
/// against its namespace's average with no allowance, 40 keys written into a full store kept
/// 34 on average; 39 now.)
#[tokio::test]
async fn a_small_namespace_that_comes_to_a_full_store_keeps_its_keys() {
    for policy in POLICIES {
        let mut kept = 0;
        for round in 0..5 {
            let store = evicting(1 << 20, policy);
            let pages = store.namespace::<String>("app", "pages").unwrap();
            for i in 0..20_000 {
                pages.set(&k(i), vec![0u8; 100], None).await.unwrap();
            }
            let few = store
                .namespace::<String>("app", &format!("few-{round}"))
                .unwrap();
            for i in 0..40 {
                few.set(&k(i), vec![1u8; 100], None).await.unwrap();
            }
            kept += present(&few, (0..40).map(k)).await;
        }
        assert!(kept >= 185, "{policy:?}: {kept} of 5 × 40 keys kept");
    }
}

/// A store of one shard, 256 KiB, with a manual clock, holding a `never` namespace `kept`
/// filled until its table's next doubling would not fit (with `old`, a 1,000-byte key that
/// expires after a second, if `expiring`), and a namespace `sessions` of three 100-byte keys,
/// the first, `first`, grown into the room left: the store is within a few bytes of its
/// budget. Returns the store, its clock, `sessions` and the length of `first`'s value.
async fn full_to_the_byte(
    policy: Policy,
    expiring: bool,
) -> (
    MemoryDriver,
    ManualClock,
    Namespace<String, MemoryDriver>,
    usize,
) {
    const BUDGET: u64 = 256 * 1024;
    let clock = ManualClock::new();
    let store = MemoryDriver::builder()
        .manual_clock(clock.clone())
        .max_bytes(BUDGET)
        .eviction(Eviction::Any)
        .policy(policy)
        .shards(1)
        .reap_interval(None)
        .build()
        .unwrap();
    let kept = store
        .namespace_with_eviction::<String>("app", "kept", Eviction::Never)
        .unwrap();
    if expiring {
        let ttl = Some(Duration::from_secs(1));
        kept.set(&"old".to_owned(), vec![9u8; 1000], ttl)
            .await
            .unwrap();
    }
    for i in 0.. {
        if let Err(error) = kept.set(&k(i), vec![0u8; 100], None).await {
            assert_eq!(error.kind(), ErrorKind::OutOfMemory);
            break;
        }
    }
    let sessions = store.namespace::<String>("app", "sessions").unwrap();
    let first = "first".to_owned();
    for key in [&first, &k(1), &k(2)] {
        sessions.set(key, vec![1u8; 100], None).await.unwrap();
    }
    // The first key's value grown into the room left (by what fits, allocated as glibc
    // rounds).
    let room = BUDGET - store.usage().unwrap().bytes;
    let len = 100 + room as usize - 16;
    sessions.set(&first, vec![1u8; len], None).await.unwrap();
    assert!(BUDGET - store.usage().unwrap().bytes < 32, "{policy:?}");
    (store, clock, sessions, len)
}

/// A key written with its namespace's first TTL stays in a full store: the namespace's place
/// in the reclaimer's schedule, charged after the write as the eviction order's structures
/// are, can take the store over its budget by a few dozen bytes, and the store then sheds
/// other keys than the one written. (It shed with none spared, and took that key when it was
/// its namespace's next victim; and under S3-FIFO, with that key in the main queue and most
/// of its weight, the search for a victim gave up with the small queue's keys untouched.)
#[tokio::test]
async fn a_key_given_the_namespaces_first_ttl_stays_in_a_full_store() {
    for policy in POLICIES {
        let (store, _clock, sessions, len) = full_to_the_byte(policy, false).await;
        let first = "first".to_owned();
        let ttl = Some(Duration::from_secs(3600));
        sessions.set(&first, vec![2u8; len], ttl).await.unwrap();
        assert_eq!(
            sessions.get(&first).await.unwrap().as_deref(),
            Some(&vec![2u8; len][..]),
            "{policy:?}: {:?}",
            stats_of(&store, "app:sessions")
        );
        // Shed: the namespace's other keys, until the store is within its budget again or
        // none is left (the ghost table its first victim made can take what that freed: the
        // store then stays over by those few bytes, SPEC 10.2's tolerance).
        let used = store.usage().unwrap();
        let stats = stats_of(&store, "app:sessions").unwrap();
        assert!(stats.evicted >= 1, "{policy:?}: {stats:?}");
        assert!(
            used.bytes <= 256 * 1024 || (stats.keys == 1 && used.bytes <= 256 * 1024 + 512),
            "{policy:?}: {used:?}, {stats:?}"
        );
    }
}

/// SPEC 10.4 when the store sheds after a write (which stored more than it reserved: here the
/// namespace's place in the reclaimer's schedule): an expired key, in any namespace, goes
/// before a live one. (The shedding evicted the live keys of `sessions` while `old`, expired,
/// held a KiB.)
#[tokio::test]
async fn expired_keys_go_first_when_a_store_sheds_after_a_write() {
    for policy in POLICIES {
        let (store, clock, sessions, len) = full_to_the_byte(policy, true).await;
        clock.advance(Duration::from_secs(2));
        let ttl = Some(Duration::from_secs(3600));
        sessions
            .set(&"first".to_owned(), vec![2u8; len], ttl)
            .await
            .unwrap();
        let kept = stats_of(&store, "app:kept").unwrap();
        let sessions = stats_of(&store, "app:sessions").unwrap();
        assert_eq!((kept.expired, sessions.evicted), (1, 0), "{policy:?}");
        assert_eq!(sessions.keys, 3);
        assert!(store.usage().unwrap().bytes <= 256 * 1024);
    }
}

/// Two namespaces written as much as each other share the store about evenly, whichever
/// filled it first.
#[tokio::test]
async fn namespaces_written_alike_share_the_store_alike() {
    for policy in POLICIES {
        let store = evicting(1 << 20, policy);
        let first = store.namespace::<String>("app", "first").unwrap();
        let second = store.namespace::<String>("app", "second").unwrap();
        for i in 0..20_000 {
            first.set(&k(i), vec![0u8; 100], None).await.unwrap();
        }
        for i in 20_000..60_000 {
            first.set(&k(i), vec![0u8; 100], None).await.unwrap();
            second.set(&k(i), vec![0u8; 100], None).await.unwrap();
        }
        let held = |name| stats_of(&store, name).map_or(0, |s| s.keys);
        let (a, b) = (held("app:first"), held("app:second"));
        assert!(
            a.min(b) * 10 >= a.max(b) * 8,
            "{policy:?}: {a} and {b} entries"
        );
    }
}

/// A refusal says what the write needed and what the store holds: a batch needs as many
/// entries as it has new keys, not one.
#[tokio::test]
async fn a_refusal_says_what_the_write_needed() {
    let store = MemoryDriver::builder()
        .max_entries(4)
        .eviction(Eviction::Never)
        .reap_interval(None)
        .build()
        .unwrap();
    let ns = store.namespace::<String>("app", "fixed").unwrap();
    ns.set(&k(0), vec![1u8], None).await.unwrap();
    let batch = ns
        .mset((1..11).map(|i| (k(i), vec![1u8])), None)
        .await
        .unwrap_err();
    assert_eq!(batch.kind(), ErrorKind::OutOfMemory);
    let text = batch.to_string();
    assert!(
        text.contains("10 more entries")
            && text.contains("limit of 4 entries (1 in use, 1 not evictable, kept by"),
        "{text}"
    );
    for i in 1..4 {
        ns.set(&k(i), vec![1u8], None).await.unwrap();
    }
    let one = ns
        .set(&k(9), vec![1u8], None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        one.contains("1 more entry would") && one.contains("(4 in use, 4 not evictable"),
        "{one}"
    );

    // One of a thing is said in the singular.
    let tiny = MemoryDriver::builder()
        .max_bytes(1)
        .reap_interval(None)
        .build()
        .unwrap();
    let ns = tiny.namespace::<String>("app", "tiny").unwrap();
    let bytes = ns.set(&k(0), "v", None).await.unwrap_err().to_string();
    assert!(bytes.contains("budget of 1 byte ("), "{bytes}");
    let single = MemoryDriver::builder()
        .max_entries(1)
        .reap_interval(None)
        .build()
        .unwrap();
    let ns = single.namespace::<String>("app", "single").unwrap();
    ns.set(&k(0), "v", None).await.unwrap();
    let entries = ns.set(&k(1), "v", None).await.unwrap_err().to_string();
    assert!(entries.contains("limit of 1 entry ("), "{entries}");
}

/// SPEC 10.2 and 10.3: entries whose key and value take no heap of their own (counters under
/// short keys) still fill the table the store keeps them in, and the table is charged as it
/// grows. A `never` namespace refuses the write (one key, or a batch) whose table growth would
/// go over the budget, with nothing changed; the store never reports more than its budget.
#[tokio::test]
async fn entries_that_cost_nothing_of_their_own_fill_the_budget_with_their_table() {
    const BUDGET: u64 = 256 * 1024;
    for policy in POLICIES {
        for batched in [false, true] {
            let (store, ns) = counters(BUDGET, Eviction::Never, policy);
            let mut stored = 0;
            let refused = loop {
                let written = if batched {
                    write_ten(&ns, stored, true).await.map(|()| 10)
                } else {
                    ns.incr(&k(stored), 1).await.map(|_| 1)
                };
                let used = store.usage().unwrap();
                assert!(
                    used.bytes <= BUDGET,
                    "{policy:?}, batched {batched}: {used:?} after {stored} keys"
                );
                match written {
                    Ok(n) => stored += n,
                    Err(error) => break error,
                }
                assert!(stored < 1_000_000, "{policy:?}: never refused");
            };
            assert_eq!(refused.kind(), ErrorKind::OutOfMemory, "{refused}");
            // Tables of a few thousand entries fit in 256 KiB; every key stored is still there.
            assert!(stored > 500, "{policy:?}, batched {batched}: {stored}");
            assert_eq!(present(&ns, (0..stored).map(k)).await, stored);
            assert_eq!(present(&ns, (stored..stored + 10).map(k)).await, 0);
        }
    }
}

/// SPEC 10.2: what a namespace's tables and queues were charged goes back to the budget with
/// them. A namespace whose entries were all deleted (not cleared), and whose handles are all
/// dropped, leaves the store's usage at zero; so does one whose entries expired.
#[tokio::test]
async fn a_namespace_that_goes_away_gives_back_what_its_tables_were_charged() {
    for policy in POLICIES {
        let (store, clock) = roomy(policy);
        let deleted = store.namespace::<String>("app", "deleted").unwrap();
        let expired = store.namespace::<String>("app", "expired").unwrap();
        for i in 0..5_000 {
            deleted.set(&k(i), "value", None).await.unwrap();
            expired
                .set(&k(i), "value", Some(Duration::from_secs(1)))
                .await
                .unwrap();
        }
        assert!(store.usage().unwrap().bytes > 5_000 * 2 * 64);
        deleted.mdel((0..5_000).map(k)).await.unwrap();
        clock.advance(Duration::from_secs(2));
        assert_eq!(store.purge_expired(), 5_000);
        drop((deleted, expired));
        let left = store.usage().unwrap();
        assert_eq!((left.bytes, left.entries), (0, 0), "{policy:?}: {left:?}");
    }
}

/// What a namespace's shards keep once their entries have gone (their tables and eviction
/// orders, kept for their next entries while a handle holds the namespace) holds no entry: a
/// write the budget has no other room for gets it back before it is refused, the namespace
/// keeps its counts, and it takes keys again as before.
#[tokio::test]
async fn empty_shards_give_back_their_tables_before_a_write_is_refused() {
    const BUDGET: u64 = 256 * 1024;
    for policy in POLICIES {
        let clock = ManualClock::new();
        // 16 shards (a store of 256 KiB gets 4 unless told).
        let store = MemoryDriver::builder()
            .manual_clock(clock.clone())
            .shards(16)
            .max_bytes(BUDGET)
            .policy(policy)
            .reap_interval(None)
            .build()
            .unwrap();
        let emptied = store.namespace::<String>("app", "emptied").unwrap();
        for i in 0..400 {
            let ttl = (i < 40).then_some(Duration::from_secs(1));
            emptied.set(&k(i), "v", ttl).await.unwrap();
        }
        clock.advance(Duration::from_secs(2));
        assert_eq!(store.purge_expired(), 40);
        for i in 40..400 {
            assert!(emptied.delete(&k(i)).await.unwrap());
        }
        let kept = stats_of(&store, "app:emptied").unwrap().bytes.unwrap();
        assert!(
            kept > 16 * 1024,
            "{policy:?}: 16 shards' tables kept: {kept}"
        );
        // A `never` namespace of one key, then one value larger than the room left, smaller
        // than that and half what the empty shards keep.
        let values = store.namespace::<String>("app", "values").unwrap();
        values.set(&"small".to_owned(), "v", None).await.unwrap();
        let used = store.usage().unwrap();
        let big = vec![7u8; (BUDGET - used.bytes + kept / 2) as usize];
        values
            .set(&"big".to_owned(), big.clone(), None)
            .await
            .unwrap();
        assert_eq!(values.get(&"big".to_owned()).await.unwrap().unwrap(), big);
        let after = store.usage().unwrap();
        assert!(after.bytes <= BUDGET, "{policy:?}: {after:?}");
        let stats = stats_of(&store, "app:emptied").unwrap();
        assert!(
            stats.bytes.unwrap() * 8 < kept,
            "{policy:?}: the empty shards gave back their tables: {:?} of {kept}",
            stats.bytes
        );
        assert_eq!((stats.keys, stats.expired, stats.evicted), (0, 40, 0));
        assert_eq!(
            charged_by_namespaces(&store),
            after.bytes,
            "{policy:?}: the namespaces add up"
        );
        // The emptied namespace takes keys again, within what is left (a shard's table and
        // order again, here refused whole while the big value holds the room), and after.
        values.delete(&"big".to_owned()).await.unwrap();
        for i in 0..40 {
            emptied.set(&k(i), "again", None).await.unwrap();
        }
        assert_eq!(present(&emptied, (0..40).map(k)).await, 40);
        assert_eq!(
            charged_by_namespaces(&store),
            store.usage().unwrap().bytes,
            "{policy:?}"
        );
        emptied.mdel((0..40).map(k)).await.unwrap();
        values.delete(&"small".to_owned()).await.unwrap();
        drop((emptied, values));
        let left = store.usage().unwrap();
        assert_eq!((left.bytes, left.entries), (0, 0), "{policy:?}: {left:?}");
    }
}

/// Room taken from another namespace, one victim there at a time, is accounted whole when
/// the victims are smaller than the write (each gives back its room, and more are taken),
/// and when they are larger: after the writes, the store is within its budget, the other
/// namespace counts its evictions, and clearing both leaves the store's usage at zero.
#[tokio::test]
async fn room_taken_from_another_namespace_is_accounted_whole() {
    for policy in POLICIES {
        let store = evicting(64 << 10, policy);
        let small = store.namespace::<String>("app", "small").unwrap();
        let large = store.namespace::<String>("app", "large").unwrap();
        for i in 0..4_000 {
            small.set(&k(i), vec![1u8; 16], None).await.unwrap();
        }
        // Each of these needs several of `small`'s entries; once `large` holds some, its
        // writes take their room from either namespace, as drawn.
        for i in 0..400 {
            large.set(&k(i), vec![2u8; 2_000], None).await.unwrap();
            let usage = store.usage().unwrap();
            assert!(usage.bytes <= 64 << 10, "{policy:?}: {usage:?}");
        }
        // And the other way round: small writes whose victims are larger than they are.
        for i in 4_000..8_000 {
            small.set(&k(i), vec![1u8; 16], None).await.unwrap();
        }
        let evicted = |name| stats_of(&store, name).map_or(0, |s| s.evicted);
        let stats = store.namespace_stats();
        assert!(evicted("app:small") > 1_000, "{policy:?}: {stats:?}");
        assert!(evicted("app:large") > 10, "{policy:?}: {stats:?}");
        small.clear().await.unwrap();
        large.clear().await.unwrap();
        drop((small, large));
        let left = store.usage().unwrap();
        assert_eq!((left.bytes, left.entries), (0, 0), "{policy:?}: {left:?}");
    }
}

/// SPEC 10.2, per namespace: each namespace's stats say the bytes it is charged, and with no
/// write in flight they add up to the store's usage, through every kind of change: new keys,
/// overwrites, counters, batches, TTLs (with the namespace's place in the reclaimer's
/// schedule), expired entries not yet reclaimed, evictions from one namespace for another,
/// deletes, clears and namespaces freed.
#[tokio::test]
async fn namespaces_bytes_add_up_to_the_stores_usage() {
    for policy in POLICIES {
        let (store, clock) = clocked(256 << 10, policy);
        let adds_up = |when: &str| {
            let stats = store.namespace_stats();
            let sum: u64 = stats.iter().map(|s| s.bytes.unwrap()).sum();
            let usage = store.usage().unwrap();
            assert_eq!(sum, usage.bytes, "{policy:?}, {when}: {stats:?}");
            assert!(
                stats.iter().all(|s| s.bytes.unwrap() > 0),
                "{policy:?}, {when}: {stats:?}"
            );
            sum
        };
        let cache = store.namespace::<String>("app", "cache").unwrap();
        let sessions = store
            .namespace_with_eviction::<String>("app", "sessions", Eviction::WithTtl)
            .unwrap();
        let counters = store
            .namespace_with_eviction::<String>("app", "counters", Eviction::Never)
            .unwrap();
        for i in 0..200 {
            cache.set(&k(i), vec![1u8; 10 + i], None).await.unwrap();
            let ttl = Duration::from_secs(1 + i as u64 % 3);
            sessions.set(&k(i), vec![2u8; 50], Some(ttl)).await.unwrap();
            counters.incr(&k(i % 50), 1).await.unwrap();
        }
        adds_up("first writes");
        for i in 0..100 {
            cache.set(&k(i), vec![3u8; 300], None).await.unwrap();
        }
        cache
            .mset((1_000..1_050).map(|i| (k(i), vec![4u8; 40])), None)
            .await
            .unwrap();
        cache.mdel((1_000..1_010).map(k)).await.unwrap();
        counters.delete(&k(0)).await.unwrap();
        adds_up("overwrites, a batch, deletes");
        // Expired, not yet reclaimed: still charged, to their namespace.
        clock.advance(Duration::from_millis(1_500));
        adds_up("expired entries held");
        // The cache fills the store: its writes evict its own keys and the sessions' expired
        // ones first, then live ones of both.
        for i in 2_000..4_000 {
            cache.set(&k(i), vec![5u8; 200], None).await.unwrap();
        }
        let before = store.namespace_stats();
        let evicted: u64 = before.iter().map(|s| s.evicted + s.expired).sum();
        assert!(evicted > 1_000, "{policy:?}: {before:?}");
        adds_up("a full store");
        // A namespace that goes gives back what it was charged.
        let cache_bytes = stats_of(&store, "app:cache").unwrap().bytes.unwrap();
        let total = adds_up("before the cache goes");
        cache.clear().await.unwrap();
        drop(cache);
        assert!(stats_of(&store, "app:cache").is_none());
        assert_eq!(adds_up("the cache gone"), total - cache_bytes, "{policy:?}");
        sessions.clear().await.unwrap();
        counters.clear().await.unwrap();
        drop((sessions, counters));
        assert_eq!(store.usage().unwrap().bytes, 0);
    }
}

/// SPEC 10.3: an `any` namespace of entries that cost nothing of their own (counters under
/// short keys) keeps taking new ones at its budget: a write whose table would double evicts a
/// victim instead (the room it leaves cancels the doubling), and is never refused.
#[tokio::test]
async fn an_evicting_namespace_of_counters_is_never_full() {
    const BUDGET: u64 = 256 * 1024;
    for policy in POLICIES {
        for batched in [false, true] {
            let (store, ns) = counters(BUDGET, Eviction::Any, policy);
            for i in (0..50_000).step_by(10) {
                write_ten(&ns, i, batched)
                    .await
                    .unwrap_or_else(|e| panic!("{policy:?}, batched {batched}, at {i}: {e}"));
                let used = store.usage().unwrap();
                assert!(used.bytes <= BUDGET, "{policy:?}: {used:?} after {i} keys");
            }
            let held = store.usage().unwrap().entries;
            assert!(held > 500, "{policy:?}, batched {batched}: {held} held");
        }
    }
}

/// A store with a byte budget and a namespace for entries that cost nothing of their own.
fn counters(
    max_bytes: u64,
    mode: Eviction,
    policy: Policy,
) -> (MemoryDriver, Namespace<String, MemoryDriver>) {
    let store = MemoryDriver::builder()
        .max_bytes(max_bytes)
        .eviction(mode)
        .policy(policy)
        .reap_interval(None)
        .build()
        .unwrap();
    let ns = store.namespace::<String>("app", "counters").unwrap();
    (store, ns)
}

/// Ten new keys from `from` on: counters one by one, or short values in one batch.
async fn write_ten(
    ns: &Namespace<String, MemoryDriver>,
    from: usize,
    batched: bool,
) -> namestore::Result<()> {
    if batched {
        return ns.mset((from..from + 10).map(|i| (k(i), "1")), None).await;
    }
    for i in from..from + 10 {
        ns.incr(&k(i), 1).await?;
    }
    Ok(())
}

/// SPEC 10.5 after a long life: what eviction cannot free (entries a `never` namespace holds,
/// keys without a TTL in a `with-ttl` one, the shards' structures) is counted back exactly as
/// keys come, change mode of eviction (`expire`, `persist`, a write with or without a TTL) and
/// go, by every kind of write. Once those namespaces are empty again, a write that fits only by
/// evicting is not refused: the store does not believe more is fixed than is.
#[tokio::test]
async fn what_eviction_cannot_free_is_counted_back_as_keys_come_and_go() {
    for policy in POLICIES {
        // A byte budget, then an entry budget: each has its own count of what is fixed.
        for by_entries in [false, true] {
            let clock = ManualClock::new();
            let builder = MemoryDriver::builder()
                .manual_clock(clock.clone())
                .shards(2)
                .eviction(Eviction::Any)
                .policy(policy)
                .reap_interval(None);
            let store = if by_entries {
                builder.max_entries(8)
            } else {
                builder.max_bytes(64 * 1024)
            }
            .build()
            .unwrap();
            let volatile = store
                .namespace_with_eviction::<String>("app", "volatile", Eviction::WithTtl)
                .unwrap();
            let locks = store
                .namespace_with_eviction::<String>("app", "locks", Eviction::Never)
                .unwrap();
            let cache = store.namespace::<String>("app", "cache").unwrap();
            let context = format!("{policy:?}, by entries {by_entries}");

            let mut rng = 0x2545_f491_4f6c_dd1d_u64;
            for _ in 0..20_000 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let ns = if rng & 1 == 0 { &volatile } else { &locks };
                let key = k((rng >> 8) as usize % 12);
                let value = vec![b'v'; [4, 60, 300][(rng >> 16) as usize % 3]];
                let ttl = [
                    None,
                    Some(Duration::from_millis(5)),
                    Some(Duration::from_secs(60)),
                ][(rng >> 20) as usize % 3];
                // Refusals (a full `never` namespace) and type errors are answers too: what
                // matters is what the store counts after.
                let _ = match (rng >> 24) % 12 {
                    0 | 1 => ns.set(&key, value, ttl).await.map(drop),
                    2 => ns.set_keep_ttl(&key, value).await.map(drop),
                    3 => ns.incr(&key, 1).await.map(drop),
                    4 => ns.expire(&key, Duration::from_millis(3)).await.map(drop),
                    5 => ns.persist(&key).await.map(drop),
                    6 => ns.get_set(&key, value, ttl).await.map(drop),
                    7 => ns.cas(&key, b"0", value, ttl).await.map(drop),
                    8 => {
                        let pairs = (0..3).map(|i| (k((rng >> 32) as usize % 12 + i), "mset"));
                        ns.mset(pairs, ttl).await.map(drop)
                    }
                    9 => ns
                        .mdel((0..3).map(|i| k(i + (rng >> 32) as usize % 12)))
                        .await
                        .map(drop),
                    10 => ns.replace(&key, value, ttl).await.map(drop),
                    _ => ns.delete(&key).await.map(drop),
                };
                if (rng >> 40).is_multiple_of(50) {
                    clock.advance(Duration::from_millis(2));
                }
                if (rng >> 40) % 500 == 1 {
                    store.purge_expired();
                }
            }
            volatile.mdel((0..16).map(k)).await.unwrap();
            locks.mdel((0..16).map(k)).await.unwrap();
            // The cache's own memory (its fixed part, its shards' tables and orders) charged
            // with its first keys, and kept: not what is under test.
            if !by_entries {
                cache
                    .mset((0..16).map(|i| (k(i), "c")), None)
                    .await
                    .unwrap();
                cache.mdel((0..16).map(k)).await.unwrap();
            }
            let empty = store.usage().unwrap();
            assert_eq!(empty.entries, 0, "{context}: {empty:?}");

            // The `never` namespace takes all but a little room; the cache takes one value
            // in what is left, then another that fits only in place of the first.
            let (little, value) = if by_entries {
                for i in 0..7 {
                    locks.set(&k(i), "held", None).await.unwrap();
                }
                (1, vec![b'c'; 8])
            } else {
                let room = 64 * 1024 - empty.bytes;
                locks
                    .set(&k(0), vec![b'l'; room as usize - 4096], None)
                    .await
                    .unwrap();
                let left = 64 * 1024 - store.usage().unwrap().bytes;
                (left, vec![b'c'; left as usize - 1024])
            };
            cache
                .set(&"first".to_owned(), value.clone(), None)
                .await
                .unwrap_or_else(|e| panic!("{context}: {e} with {little} left"));
            cache
                .set(&"second".to_owned(), value, None)
                .await
                .unwrap_or_else(|e| panic!("{context}: {e}, though evicting `first` makes room"));
            assert!(
                !cache.exists(&"first".to_owned()).await.unwrap(),
                "{context}"
            );
        }
    }
}

/// SPEC 10.2: a key whose TTL is renewed over and over (a session kept alive by every
/// request) costs what it costs once: the expiry index does not keep every deadline it had.
#[tokio::test]
async fn renewing_a_ttl_again_and_again_does_not_grow_the_store() {
    for policy in POLICIES {
        let (store, clock) = roomy(policy);
        let sessions = store.namespace::<String>("app", "sessions").unwrap();
        for i in 0..10 {
            sessions
                .set(&k(i), "session", Some(Duration::from_secs(60)))
                .await
                .unwrap();
        }
        let before = store.usage().unwrap();
        let mut renewed = Vec::new();
        for round in 0..100_000 {
            clock.advance(Duration::from_millis(1));
            assert!(
                sessions
                    .expire(&k(round % 10), Duration::from_secs(60))
                    .await
                    .unwrap()
            );
            if round == 999 || round == 99_999 {
                renewed.push(store.usage().unwrap());
            }
        }
        let [thousand, hundred_thousand] = renewed[..] else {
            unreachable!()
        };
        assert_eq!(hundred_thousand.entries, 10, "{policy:?}");
        // The index's room for stale deadlines, a few hundred bytes a shard, is taken in the
        // first renewals; the next 99,000 take nothing more.
        assert!(
            thousand.bytes <= before.bytes + 16 * 1024,
            "{policy:?}: {} bytes after 1,000 renewals, {} before",
            thousand.bytes,
            before.bytes
        );
        assert_eq!(
            hundred_thousand.bytes, thousand.bytes,
            "{policy:?}: bytes after 100,000 renewals against 1,000"
        );
    }
}

/// SPEC 10.2 with a small budget: a namespace's shards that held many small entries, and
/// then hold a few large ones, do not keep tables with room for the many (charged to the
/// budget): most of the budget goes to values, with 16 shards too (S3-FIFO 54-55%
/// in three runs, the sampled LRU 65-69%; S3-FIFO 40% when tables with room for 64 entries or
/// fewer were never shrunk). Since each shard's whole table and order are charged, and the
/// namespaces' own memory: with the first KiB of each shard's table left uncharged, S3-FIFO
/// measured 63-64%, 52% without the shrinking.
#[tokio::test]
async fn a_small_budget_goes_to_values_not_to_tables_left_from_before() {
    const BUDGET: u64 = 256 * 1024;
    for policy in POLICIES {
        // (A store of 256 KiB gets 4 shards unless told.)
        let store = sharded(BUDGET, Eviction::Any, policy, 16);
        for name in ["a", "b"] {
            let ns = store.namespace::<String>("app", name).unwrap();
            for i in 0..5_000 {
                ns.set(&format!("small{i}"), "v", None).await.unwrap();
            }
            for i in 0..5_000 {
                ns.set(&k(i), vec![b'v'; 800], None).await.unwrap();
            }
        }
        let used = store.usage().unwrap();
        let values = used.entries * 800;
        assert!(
            values * 100 >= BUDGET * 50,
            "{policy:?}: {} entries of 800 bytes in a budget of {BUDGET}",
            used.entries
        );
    }
}

/// A batch into a full store makes room one victim at a time, and no victim is one of the
/// batch's own keys; a key the batch gives twice is stored once. Both were checked by
/// searching the batch key by key, n² comparisons for n new keys: 1.4 s for an `mset` of
/// 40,000 new keys in a release build, and this test ran into its deadline (120 s) in a debug
/// build. It now takes under two seconds there; the deadline tells a hang from a slow
/// machine, and checks no speed.
#[tokio::test]
async fn a_large_batch_into_a_full_store_makes_room_in_linear_time() {
    const HELD: usize = 100_000;
    const NEW: usize = 100_000;
    for policy in POLICIES {
        let store = MemoryDriver::builder()
            .max_entries(HELD as u64)
            .eviction(Eviction::Any)
            .policy(policy)
            .reap_interval(None)
            .build()
            .unwrap();
        let ns = store.namespace::<String>("big", "batch").unwrap();
        let held: Vec<String> = (0..HELD).map(|i| format!("old{i}")).collect();
        ns.mset(held.iter().map(|key| (key, "old")), None)
            .await
            .unwrap();
        // Every new key twice, the second time with the value that must win.
        let new: Vec<String> = (0..NEW).map(k).collect();
        let pairs: Vec<(String, &str)> = new
            .iter()
            .map(|key| (key.clone(), "first"))
            .chain(new.iter().map(|key| (key.clone(), "last")))
            .collect();
        // On a thread of its own, so that a batch that never ends fails the test at the
        // deadline instead of holding it.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let batch = ns.mset(pairs.iter().map(|(key, value)| (key, *value)), None);
            let _ = done.send(runtime.block_on(batch).map(|()| ns));
        });
        let ns = finished
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("{policy:?}: the batch did not finish in 120 s"))
            .unwrap();
        let values = ns.mget(&new).await.unwrap();
        assert!(
            values.iter().all(|v| v.as_deref() == Some(&b"last"[..])),
            "{policy:?}: every new key holds its last value"
        );
        let stats = store.namespace_stats();
        assert_eq!(
            stats[0].evicted, HELD as u64,
            "{policy:?}: every old key made room"
        );
        assert_eq!(store.usage().unwrap().entries, NEW as u64, "{policy:?}");
    }
}

/// A namespace a key at a time (one a user, say) in a store with a budget: a namespace whose
/// keys were all evicted and which no handle holds is freed, as one emptied by deletes or
/// expiry is. Before, it stayed, uncharged to the budget: a store of 1,000 entries that
/// 100,000 namespaces had each written a key into held 100,000 tables and 771 MB of resident
/// memory (measured; 11 MB since).
#[tokio::test]
async fn namespaces_emptied_by_eviction_are_freed() {
    for policy in POLICIES {
        for mode in [Eviction::Any, Eviction::WithTtl] {
            let store = MemoryDriver::builder()
                .max_entries(100)
                .max_bytes(1 << 30)
                .eviction(mode)
                .policy(policy)
                .reap_interval(None)
                .build()
                .unwrap();
            let ttl = Some(Duration::from_secs(3600));
            for user in 0..1_000 {
                let ns = store
                    .namespace::<String>("user", &format!("u{user}"))
                    .unwrap();
                ns.set(&"profile".to_owned(), "x", ttl).await.unwrap();
            }
            let stats = store.namespace_stats();
            let usage = store.usage().unwrap();
            assert_eq!(usage.entries, 100, "{policy:?} {mode:?}");
            assert!(usage.bytes > 0, "{policy:?} {mode:?}");
            assert_eq!(
                store.namespace_tables(),
                100,
                "{policy:?} {mode:?}: only the namespaces holding a key keep a table"
            );
            assert_eq!(stats.len(), 100, "{policy:?} {mode:?}");
            // Every later user still finds the store with room made for it.
            let last = store.namespace::<String>("user", "u999").unwrap();
            assert!(last.exists(&"profile".to_owned()).await.unwrap());
            drop(last);
            // What the freed namespaces' tables were charged went back to the budget: once
            // the rest are emptied too, nothing is in use.
            for stat in stats {
                let ns = store
                    .namespace::<String>(stat.name.root(), stat.name.domain())
                    .unwrap();
                ns.clear().await.unwrap();
            }
            assert_eq!(store.namespace_tables(), 0, "{policy:?} {mode:?}");
            let usage = store.usage().unwrap();
            assert_eq!((usage.bytes, usage.entries), (0, 0), "{policy:?} {mode:?}");
        }
    }
}

/// Expired keys purged to make room (SPEC 10.4) free the namespaces they leave empty when no
/// handle holds them, as the reclaimer's rounds do: left in the registry, an emptied namespace
/// kept its memory and every later eviction looked at it again.
#[tokio::test]
async fn namespaces_emptied_by_expiry_for_room_are_freed() {
    for policy in POLICIES {
        let (store, clock) = store(100, Eviction::Any, policy);
        for user in 0..100 {
            let ns = store
                .namespace::<String>("user", &format!("u{user}"))
                .unwrap();
            ns.set(&"session".to_owned(), "x", Some(Duration::from_secs(1)))
                .await
                .unwrap();
        }
        assert_eq!(store.namespace_tables(), 100, "{policy:?}");
        clock.advance(Duration::from_secs(2));
        // No background reclaimer: the write that needs room purges what expired.
        let next = store.namespace::<String>("user", "next").unwrap();
        next.set(&"session".to_owned(), "x", None).await.unwrap();
        assert_eq!(store.usage().unwrap().entries, 1, "{policy:?}");
        assert_eq!(
            store.namespace_tables(),
            1,
            "{policy:?}: the emptied namespaces are freed"
        );
        let stats = store.namespace_stats();
        assert_eq!(stats.len(), 1, "{policy:?}");
        assert_eq!(stats[0].expired + stats[0].evicted, 0, "{policy:?}");
    }
}

/// SPEC 10.2: a namespace's own memory, as charged, stays near what it was when its keys were
/// first written while they are written again and again (TTLs renewed, keys deleted and set):
/// the positions of rewritten entries its shards' queues and expiry index keep are bounded by
/// what the shards hold. With a flat allowance of 32 stale positions a shard, a namespace of 16
/// keys grew to three times its first size; it now stays under twice.
#[tokio::test]
async fn a_small_namespace_written_again_and_again_keeps_its_size() {
    for policy in POLICIES {
        let (store, _clock) = roomy(policy);
        let ns = store.namespace::<String>("app", "small").unwrap();
        for i in 0..16 {
            ns.set(&k(i), "0123456789abcdef", None).await.unwrap();
        }
        let first = store.usage().unwrap().bytes;
        for i in 0..20_000 {
            let ttl = Duration::from_secs(100 + (i % 7) as u64);
            ns.set(&k(i * 7 % 16), "0123456789abcdef", Some(ttl))
                .await
                .unwrap();
        }
        let renewed = store.usage().unwrap().bytes;
        for i in 0..20_000 {
            ns.delete(&k(i * 7 % 16)).await.unwrap();
            ns.set(&k(i * 7 % 16), "0123456789abcdef", None)
                .await
                .unwrap();
        }
        let rewritten = store.usage().unwrap().bytes;
        assert_eq!(store.usage().unwrap().entries, 16);
        assert!(
            renewed < 2 * first && rewritten < 2 * first,
            "{policy:?}: {first} bytes first, {renewed} after renewing TTLs, {rewritten} after delete+set"
        );
    }
}

/// SPEC 10.6: a full shard whose table its removals' tombstones fill keeps its entries. A
/// table of hashbrown's doubles when entries and tombstones fill it, unless at most half of it
/// is entries; a write in a full store that had no room for the doubling evicted from its
/// shard down to half, so every shard lost half its keys at once, again and again (a store of
/// counters under 64 KiB went from 448 keys to 223 every 226 new ones). The table is rebuilt
/// at its size instead, once its shard is an eighth under full at most. Both with counters,
/// whose table is all they cost, and with values; one shard, so the shard is the store.
#[tokio::test]
async fn a_full_shard_keeps_its_keys_when_its_table_fills_with_tombstones() {
    for policy in POLICIES {
        for values in [false, true] {
            let store = MemoryDriver::builder()
                .shards(1)
                .max_bytes(if values { 256 * 1024 } else { 64 * 1024 })
                .eviction(Eviction::Any)
                .policy(policy)
                .reap_interval(None)
                .build()
                .unwrap();
            let ns = store.namespace::<String>("app", "full").unwrap();
            let (mut most, mut least, mut worst_drop) = (0, u64::MAX, 0);
            let mut before = 0u64;
            for i in 0..20_000 {
                if values {
                    ns.set(&k(i), vec![7u8; 100], None).await.unwrap();
                } else {
                    ns.incr(&k(i), 1).await.unwrap();
                }
                let held = store.usage().unwrap().entries;
                worst_drop = worst_drop.max(before.saturating_sub(held));
                before = held;
                // Once the store has filled (and its table grown to what the budget allows).
                if i >= 5_000 {
                    most = most.max(held);
                    least = least.min(held);
                }
            }
            assert!(
                least * 8 >= most * 7 - 8,
                "{policy:?}, values {values}: the store held {least} to {most} keys"
            );
            assert!(
                worst_drop * 8 <= most + 8,
                "{policy:?}, values {values}: one write took {worst_drop} keys of {most}"
            );
            assert!(store.usage().unwrap().bytes <= if values { 256 * 1024 } else { 64 * 1024 });
        }
    }
}

/// A pseudo-random sequence for the tests that sweep many small stores (a fixed seed each:
/// the same writes every run; where their keys fall varies with the process's hash seeds).
fn next(x: &mut u64) -> u64 {
    *x = x
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *x >> 33
}

/// SPEC 10.2 in a store of a few keys: a write whose victims empty their shards leaves the
/// store within its budget, the tables and eviction orders of those shards given back when
/// nothing else can go. (Kept until some later write needed the room, they left 183 of 200
/// such stores of 4 KiB more than a sixteenth over their budget after some write, by up to
/// 914 bytes; now at most 186, the queues and ghosts the write's own key is charged after.)
#[tokio::test]
async fn writes_that_empty_the_shards_of_a_small_store_keep_its_budget() {
    const BUDGET: u64 = 4096;
    for policy in POLICIES {
        for seed in 0..200u64 {
            let store = sharded(BUDGET, Eviction::Any, policy, 4);
            let ns = store.namespace::<String>("app", "small").unwrap();
            let mut x = seed;
            for i in 0..200 {
                let key = k(next(&mut x) as usize % 20);
                let len = next(&mut x) as usize % 2000;
                let written = ns.set(&key, vec![7u8; len], None).await;
                let used = store.usage().unwrap().bytes;
                assert!(
                    used <= BUDGET + BUDGET / 16,
                    "{policy:?}, seed {seed}, write {i} of {len} bytes ({written:?}): {used} bytes"
                );
            }
        }
    }
}

/// SPEC 10.2 and 10.5 for a batch of about the size of its store: judged with what its own
/// keys need of their tables and eviction orders, it is refused whole (the store unchanged)
/// or stored within the budget and its tenth. (Judged with its entries alone, a batch of 30
/// new keys into a 20,000-byte store of 4 shards holding a few keys evicted them all, and the
/// tables and orders it made left the store at up to 24,000 bytes, with only the batch's own
/// keys left to evict. What is left: a table of 16 slots or fewer is never shrunk, so one
/// that doubled for the batch's keys beside others, shed after, stays so; 21,298 bytes at
/// most in 200 runs.)
#[tokio::test]
async fn a_batch_about_the_size_of_its_store_is_refused_whole_or_kept_within_the_budget() {
    const BUDGET: u64 = 20_000;
    for policy in POLICIES {
        for pairs in [10u64, 20, 25, 30, 40] {
            let mut stored = 0;
            for filled in 0..30 {
                let store = sharded(BUDGET, Eviction::Any, policy, 4);
                let ns = store.namespace::<String>("app", "batch").unwrap();
                for i in 0..filled * 3 {
                    ns.set(&format!("f{i}"), vec![1u8; 100], None)
                        .await
                        .unwrap();
                }
                let before = store.usage().unwrap();
                let first = (0..filled * 3).map(|i| format!("f{i}"));
                let kept = present(&ns, first.clone()).await;
                let batch = (0..pairs).map(|j| (format!("m{j}"), vec![1u8; j as usize * 31]));
                let written = ns.mset(batch, None).await;
                let after = store.usage().unwrap();
                let context = format!("{policy:?}, {pairs} pairs, {} keys first", filled * 3);
                match written {
                    Ok(()) => {
                        stored += 1;
                        assert!(after.bytes <= BUDGET + BUDGET / 10, "{context}: {after:?}");
                        let keys = (0..pairs).map(|j| format!("m{j}"));
                        assert_eq!(present(&ns, keys).await, pairs as usize, "{context}");
                    }
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::OutOfMemory, "{context}");
                        assert_eq!(after.entries, before.entries, "{context}: {e}");
                        assert_eq!(present(&ns, first).await, kept, "{context}");
                    }
                }
            }
            // A batch of a few KiB is stored whatever the store held. (Larger ones are refused
            // in some stores where evicting every other key would have made their room: the
            // tables those keys held are counted as staying, `EMPTIED_SHARD_KEEPS` a shard.)
            if pairs <= 10 {
                assert_eq!(stored, 30, "{policy:?}, {pairs} pairs");
            }
        }
    }
}

/// SPEC 10.2 for a batch into shards whose keys all went (deleted here): making its room may
/// give their tables and eviction orders back, and the batch makes them anew, so it reserves
/// them so. (Judged with the tables as they were, batches of 40 keys into a 20,000-byte store
/// of `never` keys took it to up to 23,412 bytes, with nothing to evict.)
#[tokio::test]
async fn a_batch_into_emptied_shards_keeps_the_budget() {
    const BUDGET: u64 = 20_000;
    for policy in POLICIES {
        for fill in (8_000..19_000).step_by(500) {
            for pairs in [10, 20, 30, 40] {
                let store = sharded(BUDGET, Eviction::Any, policy, 4);
                let cache = store.namespace::<String>("app", "cache").unwrap();
                let kept = store
                    .namespace_with_eviction::<String>("app", "kept", Eviction::Never)
                    .unwrap();
                for i in 0..60 {
                    cache.set(&k(i), vec![1u8; 10], None).await.unwrap();
                }
                for i in 0..60 {
                    assert!(cache.delete(&k(i)).await.unwrap());
                }
                let mut i = 0;
                while store.usage().unwrap().bytes < fill
                    && kept.set(&k(i), vec![2u8; 200], None).await.is_ok()
                {
                    i += 1;
                }
                let before = store.usage().unwrap();
                let batch = (0..pairs).map(|j| (format!("m{j}"), vec![3u8; 100]));
                let written = cache.mset(batch, None).await;
                let after = store.usage().unwrap();
                let context = format!("{policy:?}, {fill} bytes first, {pairs} pairs: {written:?}");
                assert!(after.bytes <= BUDGET + BUDGET / 16, "{context}: {after:?}");
                if written.is_err() {
                    assert_eq!(after.entries, before.entries, "{context}");
                }
            }
        }
    }
}
