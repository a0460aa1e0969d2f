//! A persistent store opened read-only (`RedbConfig::read_only`, `?read_only=1`): it reads
//! what a store that writes left, refuses every write, never changes the file, shares it with
//! other read-only stores, and opens files that cannot be written.
#![cfg(feature = "redb")]

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::TryStreamExt;
use namestore::drivers::redb::{RedbConfig, RedbDriver};
use namestore::{AnyDriver, Driver, ErrorKind, Namespace};
use read_only::read_only;
use scratch::scratch_dir;

#[path = "support/read_only.rs"]
mod read_only;
#[path = "support/scratch.rs"]
mod scratch;

fn fresh_file(dir: &str, tag: &str) -> std::path::PathBuf {
    let dir = scratch_dir("redb-read-only").join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{tag}.redb"));
    let _ = std::fs::remove_file(&path);
    path
}

fn read_only_config(path: &std::path::Path) -> RedbConfig {
    let mut config = RedbConfig::new(path);
    config.read_only = true;
    config
}

/// Writes keys with and without TTLs, a counter, a key about to expire, and 100 keys for
/// listings, in `app:data` and `app:other`, then closes the file.
async fn fill(path: &std::path::Path) {
    let driver = RedbDriver::open(RedbConfig::new(path)).unwrap();
    let ns = driver.namespace::<String>("app", "data").unwrap();
    ns.set(&"plain".to_owned(), "value", None).await.unwrap();
    ns.set(&"timed".to_owned(), "soon", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    ns.set(
        &"brief".to_owned(),
        "gone",
        Some(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    ns.incr(&"count".to_owned(), 41).await.unwrap();
    ns.mset(
        (0..100).map(|i| (format!("many-{i:03}"), format!("{i}"))),
        None,
    )
    .await
    .unwrap();
    driver
        .namespace::<String>("app", "other")
        .unwrap()
        .set(&"x".to_owned(), "y", None)
        .await
        .unwrap();
}

/// The file's bytes and modification time.
fn snapshot(path: &std::path::Path) -> (Vec<u8>, SystemTime) {
    let bytes = std::fs::read(path).unwrap();
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    (bytes, modified)
}

/// Checks that every read answers from the file, and every write is refused.
async fn reads_and_refuses_writes(ns: &Namespace<String, AnyDriver>) {
    let key = |k: &str| k.to_owned();
    assert_eq!(
        ns.get(&key("plain")).await.unwrap().as_deref(),
        Some(&b"value"[..])
    );
    assert!(ns.exists(&key("timed")).await.unwrap());
    assert!(matches!(
        ns.ttl(&key("timed")).await.unwrap(),
        namestore::KeyTtl::ExpiresIn(left) if left > Duration::from_secs(3500)
    ));
    // Expired since it was written: absent, though nothing reclaimed it.
    assert_eq!(ns.get(&key("brief")).await.unwrap(), None);
    assert_eq!(
        ns.ttl(&key("brief")).await.unwrap(),
        namestore::KeyTtl::Missing
    );
    assert_eq!(
        ns.get(&key("count")).await.unwrap().as_deref(),
        Some(&b"41"[..])
    );
    let many: Vec<String> = (0..100).map(|i| format!("many-{i:03}")).collect();
    let values = ns.mget(&many).await.unwrap();
    assert!(
        values
            .iter()
            .enumerate()
            .all(|(i, v)| v.as_deref() == Some(format!("{i}").as_bytes()))
    );
    let mut listed: Vec<String> = ns.keys("many-*").await.unwrap();
    listed.sort();
    assert_eq!(listed, many);
    let mut namespaces: Vec<String> = ns
        .driver()
        .namespaces()
        .map_ok(|info| info.name().to_string())
        .try_collect()
        .await
        .unwrap();
    namespaces.sort();
    assert_eq!(namespaces, ["app:data", "app:other"]);

    let refused = |result: namestore::Result<()>, what: &str| {
        let error = result.expect_err(what);
        assert_eq!(error.kind(), ErrorKind::Backend, "{what}: {error}");
        assert!(error.to_string().contains("read-only"), "{what}: {error}");
    };
    let v = || Bytes::from_static(b"new");
    let ttl = Some(Duration::from_secs(60));
    refused(ns.set(&key("plain"), v(), None).await, "set");
    refused(ns.set(&key("fresh"), v(), ttl).await, "set of a new key");
    refused(
        ns.set_nx(&key("fresh"), v(), None).await.map(drop),
        "set_nx",
    );
    refused(
        ns.replace(&key("plain"), v(), None).await.map(drop),
        "replace",
    );
    refused(ns.delete(&key("plain")).await.map(drop), "delete");
    refused(
        ns.expire(&key("plain"), Duration::from_secs(1))
            .await
            .map(drop),
        "expire",
    );
    refused(ns.persist(&key("timed")).await.map(drop), "persist");
    refused(ns.incr(&key("count"), 1).await.map(drop), "incr");
    refused(ns.decr(&key("count"), 1).await.map(drop), "decr");
    refused(
        ns.get_set(&key("plain"), v(), None).await.map(drop),
        "get_set",
    );
    refused(
        ns.cas(&key("plain"), b"value", v(), None).await.map(drop),
        "cas",
    );
    refused(ns.cad(&key("plain"), b"value").await.map(drop), "cad");
    refused(
        ns.mset([(key("a"), v()), (key("b"), v())], None).await,
        "mset",
    );
    refused(
        ns.mdel(&[key("plain"), key("timed")]).await.map(drop),
        "mdel",
    );
    refused(ns.clear().await.map(drop), "clear");
    // Nothing changed.
    assert_eq!(
        ns.get(&key("plain")).await.unwrap().as_deref(),
        Some(&b"value"[..])
    );
    assert_eq!(
        ns.get(&key("count")).await.unwrap().as_deref(),
        Some(&b"41"[..])
    );
    assert_eq!(ns.get(&key("fresh")).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_reads_refuses_writes_and_leaves_the_file_as_it_was() {
    let path = fresh_file("plain", "store");
    fill(&path).await;
    tokio::time::sleep(Duration::from_millis(400)).await; // `brief` expires, unreclaimed
    let before = snapshot(&path);

    let url = format!("redb://{}?read_only=1", path.display());
    let from_url = namestore::open(&url).unwrap();
    reads_and_refuses_writes(&from_url.namespace("app", "data").unwrap()).await;
    // Other read-only stores share the file, in code and from the URL.
    let in_code = AnyDriver::new(RedbDriver::open(read_only_config(&path)).unwrap());
    reads_and_refuses_writes(&in_code.namespace("app", "data").unwrap()).await;
    // A store that writes is refused while any reader has the file.
    let writer = RedbDriver::open(RedbConfig::new(&path)).unwrap_err();
    assert_eq!(writer.kind(), ErrorKind::Unavailable, "{writer}");
    // Kept open past the reclaimer's interval: nothing runs that would write.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop((from_url, in_code));
    assert!(
        snapshot(&path) == before,
        "a read-only store changed the file"
    );

    // And a reader is refused while a store that writes has the file.
    let writer = RedbDriver::open(RedbConfig::new(&path)).unwrap();
    let reader = RedbDriver::open(read_only_config(&path)).unwrap_err();
    assert_eq!(reader.kind(), ErrorKind::Unavailable, "{reader}");
    assert!(reader.to_string().contains("already open"), "{reader}");
    drop(writer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_cannot_be_written_is_read_read_only() {
    let path = fresh_file("unwritable", "store");
    fill(&path).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let Some(_read_only) = read_only(path.parent().unwrap()) else {
        return;
    };
    // A store that writes cannot open it, and says how to read it.
    let refused = RedbDriver::open(RedbConfig::new(&path)).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Unavailable, "{refused}");
    assert!(refused.to_string().contains("read_only=1"), "{refused}");
    let url = format!("redb://{}?read_only=1", path.display());
    let store = namestore::open(&url).unwrap();
    reads_and_refuses_writes(&store.namespace("app", "data").unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_its_writer_left_open_is_refused_until_a_writer_recovers_it() {
    let path = fresh_file("unclean", "store");
    fill(&path).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    // A copy taken while a store had the file open (a backup of a live file, or what a crash
    // leaves): its last writer never closed it.
    let copy = path.with_file_name("copy.redb");
    {
        let _open = RedbDriver::open(RedbConfig::new(&path)).unwrap();
        std::fs::copy(&path, &copy).unwrap();
    }
    let before = snapshot(&copy);
    let refused = RedbDriver::open(read_only_config(&copy)).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Unavailable, "{refused}");
    assert!(refused.to_string().contains("namestore check"), "{refused}");
    let source =
        std::error::Error::source(&refused).and_then(|s| s.downcast_ref::<redb::DatabaseError>());
    assert!(
        matches!(source, Some(redb::DatabaseError::RepairAborted)),
        "{source:?}"
    );
    assert!(
        snapshot(&copy) == before,
        "a refused read-only open changed the file"
    );
    // A store that writes recovers it; then it opens read-only.
    drop(RedbDriver::open(RedbConfig::new(&copy)).unwrap());
    let store = AnyDriver::new(RedbDriver::open(read_only_config(&copy)).unwrap());
    reads_and_refuses_writes(&store.namespace("app", "data").unwrap()).await;
}

#[test]
fn a_read_only_store_never_creates_a_file() {
    let path = fresh_file("missing", "store");
    let missing = RedbDriver::open(read_only_config(&path)).unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::Unavailable, "{missing}");
    assert!(!path.exists());
    std::fs::write(&path, b"").unwrap();
    let empty = RedbDriver::open(read_only_config(&path)).unwrap_err();
    assert_eq!(empty.kind(), ErrorKind::Unavailable, "{empty}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    // A redb database without namestore's tables (made by another program, or a store
    // created and never written) is not made one.
    std::fs::remove_file(&path).unwrap();
    drop(redb::Database::create(&path).unwrap());
    let before = snapshot(&path);
    let bare = RedbDriver::open(read_only_config(&path)).unwrap_err();
    assert_eq!(bare.kind(), ErrorKind::Backend, "{bare}");
    assert!(snapshot(&path) == before);
}
