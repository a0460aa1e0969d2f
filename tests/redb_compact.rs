//! Compaction of the persistent driver's file (`RedbDriver::compact`): the space that
//! deletions and expiries freed goes back to the filesystem, nothing stored changes, and reads
//! and writes that come meanwhile wait and succeed.
#![cfg(feature = "redb")]

use std::path::PathBuf;
use std::time::Duration;

use namestore::drivers::redb::{RedbConfig, RedbDriver};
use namestore::{ErrorKind, KeyTtl, Namespace};

fn fresh_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("namestore-compact-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.redb"));
    let _ = std::fs::remove_file(&path);
    path
}

/// 400 values of 50 KB written, all but 10 deleted.
async fn burst_then_deleted(ns: &Namespace<String, RedbDriver>) {
    for chunk in 0..10 {
        let keys = (0..40).map(|i| (format!("k{}", chunk * 40 + i), vec![b'x'; 50_000]));
        ns.mset(keys, None).await.unwrap();
    }
    let gone: Vec<String> = (10..400).map(|i| format!("k{i}")).collect();
    assert_eq!(ns.mdel(&gone).await.unwrap(), 390);
}

/// The file that held a burst of 20 MB, since deleted, keeps its size (redb reuses the pages
/// and never shrinks the file) until it is compacted; the keys left, with their values and
/// TTLs, are all there after it, and after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_gives_freed_space_back_and_keeps_every_key() {
    let path = fresh_file("burst");
    let store = RedbDriver::open(RedbConfig::new(&path)).unwrap();
    let ns = store.namespace::<String>("app", "burst").unwrap();
    burst_then_deleted(&ns).await;
    ns.set(&"with-ttl".to_owned(), "t", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    let held = std::fs::metadata(&path).unwrap().len();
    assert!(held > 20_000_000, "the burst did not grow the file: {held}");

    let compaction = store.compact().await.unwrap();
    assert_eq!(
        compaction.before, held,
        "the file changed before the compaction"
    );
    assert_eq!(compaction.after, std::fs::metadata(&path).unwrap().len());
    assert!(
        compaction.after < held / 4,
        "10 values of 50 KB kept in a file of {} bytes (before: {held})",
        compaction.after
    );

    let check = async |ns: &Namespace<String, RedbDriver>| {
        for i in 0..10 {
            let value = ns.get(&format!("k{i}")).await.unwrap().unwrap();
            assert_eq!(value, vec![b'x'; 50_000], "k{i}");
        }
        assert!(!ns.exists(&"k10".to_owned()).await.unwrap());
        match ns.ttl(&"with-ttl".to_owned()).await.unwrap() {
            KeyTtl::ExpiresIn(ttl) => assert!(ttl > Duration::from_secs(3500), "{ttl:?}"),
            other => panic!("the TTL was lost: {other:?}"),
        }
    };
    check(&ns).await;
    ns.set(&"after".to_owned(), "written", None).await.unwrap();
    drop(ns);
    drop(store);
    let ns = RedbDriver::open(RedbConfig::new(&path))
        .unwrap()
        .namespace::<String>("app", "burst")
        .unwrap();
    check(&ns).await;
    assert!(ns.exists(&"after".to_owned()).await.unwrap());
}

/// Reads and writes that come while the file is compacted wait for it and succeed: none
/// fails, and every write is there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_during_a_compaction_wait_and_succeed() {
    let path = fresh_file("busy");
    let store = RedbDriver::open(RedbConfig::new(&path)).unwrap();
    let ns = store.namespace::<String>("app", "busy").unwrap();
    burst_then_deleted(&ns).await;

    let busy = |id: usize| {
        let ns = ns.clone();
        tokio::spawn(async move {
            for round in 0..200 {
                let key = format!("w{id}-{round}");
                ns.set(&key, "v", None).await.unwrap();
                assert!(ns.get(&"k3".to_owned()).await.unwrap().is_some());
                assert!(ns.exists(&key).await.unwrap());
                let _ = ns.keys("k*").await.unwrap();
            }
        })
    };
    let callers: Vec<_> = (0..4).map(busy).collect();
    let mut compacted = 0;
    while callers.iter().any(|caller| !caller.is_finished()) {
        store.compact().await.unwrap();
        compacted += 1;
    }
    for caller in callers {
        caller.await.unwrap();
    }
    assert!(compacted > 1, "no compaction ran beside the calls");
    for id in 0..4 {
        let keys: Vec<String> = (0..200).map(|round| format!("w{id}-{round}")).collect();
        assert!(ns.mget(&keys).await.unwrap().iter().all(Option::is_some));
    }
}

/// A read-only store takes no compaction (it would write the file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_is_not_compacted() {
    let path = fresh_file("read-only");
    drop(RedbDriver::open(RedbConfig::new(&path)).unwrap());
    let mut config = RedbConfig::new(&path);
    config.read_only = true;
    let refused = RedbDriver::open(config)
        .unwrap()
        .compact()
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Backend, "{refused}");
    assert!(refused.to_string().contains("read-only"), "{refused}");
}
