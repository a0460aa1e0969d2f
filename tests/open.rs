//! Opening a store from a URL (SPEC 9.1, 9.2) and keeping secrets out of errors (SPEC 8.4).

use namestore::drivers::memory::{MemoryConfig, MemoryDriver};
use namestore::{ErrorKind, open};

#[test]
fn memory_url_opens_the_memory_driver() {
    let store = open("memory://").unwrap();
    let memory = store
        .downcast_ref::<MemoryDriver>()
        .expect("a memory driver");
    assert_eq!(memory.config(), &MemoryConfig::default());

    let store = open("memory://?shards=4&reap_interval_ms=0").unwrap();
    let memory = store.downcast_ref::<MemoryDriver>().unwrap();
    assert_eq!(memory.config().shards, Some(4));
    assert_eq!(memory.config().reap_interval, None);
}

#[test]
fn bad_urls_are_clear_errors() {
    for (url, mentions) in [
        ("", "scheme"),
        ("memory", "scheme"),
        ("://x", "scheme"),
        ("1abc://x", "scheme"),
        ("nosuch://host", "nosuch"),
        ("memory://host", "host"),
        ("memory:///path", "host"),
        ("memory://?shards=3", "power of two"),
        ("memory://?shards=x", "shards"),
        ("memory://?shards=0", "power of two"),
        ("memory://?bogus=1", "bogus"),
        (
            "redb://",
            if cfg!(feature = "redb") {
                "file"
            } else {
                "redb"
            },
        ),
        (
            "redis://",
            if cfg!(feature = "redis") {
                "host"
            } else {
                "redis"
            },
        ),
    ] {
        let err = open(url).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidUrl, "{url:?}");
        assert!(err.to_string().contains(mentions), "{url:?}: {err}");
    }
}

/// A parameter given twice is an error, in every driver's URL and in `open`'s own
/// (`telemetry`): not the last one silently winning.
#[test]
fn a_parameter_given_twice_is_an_error() {
    let twice = |result: namestore::Result<()>, name: &str| {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidUrl, "{name}: {err}");
        assert!(
            err.to_string()
                .contains(&format!("`{name}` is given twice")),
            "{name}: {err}"
        );
    };
    twice(
        open("memory://?max_bytes=1GiB&eviction=any&max_bytes=1KiB").map(drop),
        "max_bytes",
    );
    twice(
        open("memory://?telemetry=1&shards=4&telemetry=0").map(drop),
        "telemetry",
    );
    twice(
        MemoryConfig::from_url("memory://?shards=4&shards=8").map(drop),
        "shards",
    );
    #[cfg(feature = "redb")]
    twice(
        namestore::drivers::redb::RedbConfig::from_url("redb:///tmp/x.redb?durable=1&durable=0")
            .map(drop),
        "durable",
    );
    #[cfg(feature = "redis")]
    twice(
        namestore::drivers::redis::RedisConfig::from_url(
            "redis://localhost:6379?hash_tag=1&hash_tag=0",
        )
        .map(drop),
        "hash_tag",
    );
    // Once each is fine, as before.
    open("memory://?telemetry=0&max_bytes=1MiB&eviction=any").unwrap();
}

#[test]
fn escapes_in_a_url_are_decoded_everywhere() {
    // What a URL builder writes is what was meant.
    let config =
        MemoryConfig::from_url("memory://?max%5Fbytes=1%20MiB&eviction=with%2Dttl").unwrap();
    assert_eq!(config.max_bytes, Some(1 << 20));
    assert_eq!(
        config.eviction,
        namestore::drivers::memory::Eviction::WithTtl
    );
    for bad in [
        "memory://?max_bytes=1%2",
        "memory://?max_bytes=%zz",
        "memory://?shards=%+4",
    ] {
        let err = MemoryConfig::from_url(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidUrl, "{bad}");
        assert!(
            err.to_string().contains("malformed %-escape"),
            "{bad}: {err}"
        );
    }
    // `telemetry` too, and what open passes on keeps its escapes.
    open("memory://?telemetry=%30&max_bytes=1%20MiB").unwrap();
}

/// A file whose name holds `?`, `#`, `%` or a space can be named by its URL.
#[cfg(feature = "redb")]
#[tokio::test]
async fn a_redb_file_with_any_name_opens_by_its_url() {
    let dir = std::env::temp_dir().join(format!("namestore-open-odd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let name = "what? #1 at 100%.redb";
    let escaped = "what%3F%20%231%20at%20100%25.redb";
    let url = format!("redb://{}/{escaped}?durable=0", dir.as_path().display());
    let store = open(&url).unwrap();
    let ns = store.namespace::<String>("app", "files").unwrap();
    ns.set(&"k".to_owned(), "v", None).await.unwrap();
    drop((ns, store));
    assert!(
        dir.as_path().join(name).is_file(),
        "{:?}",
        std::fs::read_dir(dir.as_path())
            .unwrap()
            .collect::<Vec<_>>()
    );
    // Opened again by the same URL with telemetry asked for: the same file, the same value.
    let again = open(&format!("{url}&telemetry=0&create=0")).unwrap();
    let ns = again.namespace::<String>("app", "files").unwrap();
    assert_eq!(
        ns.get(&"k".to_owned()).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    let err = open("redb:///tmp/bad%zz.redb").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidUrl);
    assert!(err.to_string().contains("malformed %-escape"), "{err}");
    drop((ns, again));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn secrets_never_appear_in_errors() {
    for url in [
        "redis://admin:hunter2secret@localhost:6379/0",
        "rediss://:hunter2secret@cache.internal",
        "nosuch://user:hunter2secret@host",
        "memory://user:hunter2secret@host",
        "memory://?token=hunter2secret",
        "weird scheme://hunter2secret",
    ] {
        let shown = match open(url) {
            // With the `redis` feature a well-formed Redis URL opens (it connects on first use).
            Ok(driver) => vec![format!("{driver:?}"), format!("{driver:#?}")],
            Err(err) => vec![err.to_string(), format!("{err:?}"), format!("{err:#?}")],
        };
        for shown in shown {
            assert!(
                !shown.contains("hunter2secret"),
                "{url:?} leaked into {shown:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_store_from_a_url_behaves_like_one_built_in_code() {
    let from_url = open("memory://")
        .unwrap()
        .namespace::<String>("app", "same")
        .unwrap();
    let in_code = MemoryDriver::new()
        .namespace::<String>("app", "same")
        .unwrap();
    let key = "k".to_owned();
    from_url.set(&key, "v", None).await.unwrap();
    in_code.set(&key, "v", None).await.unwrap();
    assert_eq!(
        from_url.get(&key).await.unwrap(),
        in_code.get(&key).await.unwrap()
    );
    assert_eq!(
        from_url.incr(&key, 1).await.unwrap_err().kind(),
        in_code.incr(&key, 1).await.unwrap_err().kind()
    );
}

/// Every Redis scheme opens the Redis driver through `open`, not only `redis://`.
#[cfg(feature = "redis")]
#[test]
fn every_redis_scheme_opens_the_redis_driver() {
    use namestore::drivers::redis::RedisDriver;
    for (url, cluster) in [
        ("redis://127.0.0.1:6379/0", false),
        ("rediss://127.0.0.1:6380/0", false),
        ("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", true),
        ("REDIS+CLUSTER://127.0.0.1:7000?hash_tag=1", true),
        ("rediss+cluster://127.0.0.1:7000,127.0.0.1:7001", true),
        ("Rediss+Cluster://127.0.0.1:7000", true),
        (
            "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster",
            false,
        ),
        ("REDISS+SENTINEL://127.0.0.1/mymaster/3", false),
        ("redis+unix:///run/redis/redis-server.sock?db=2", false),
    ] {
        let store = open(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let redis = store
            .downcast_ref::<RedisDriver>()
            .unwrap_or_else(|| panic!("{url}: a Redis driver"));
        assert_eq!(redis.config().is_cluster(), cluster, "{url}");
        let tls = url.to_ascii_lowercase().starts_with("rediss");
        assert_eq!(redis.config().is_tls(), tls, "{url}");
        let sentinel = url.to_ascii_lowercase().contains("+sentinel");
        assert_eq!(
            redis.config().sentinel_master(),
            sentinel.then_some("mymaster"),
            "{url}"
        );
        // Shown with its own scheme.
        let scheme = url.split("://").next().unwrap().to_ascii_lowercase();
        assert!(
            redis
                .config()
                .to_string()
                .starts_with(&format!("{scheme}://")),
            "{url}"
        );
    }
}
