//! The persistent driver's file: data and TTLs across a reopen, exclusive opening, foreign
//! files refused.
#![cfg(feature = "redb")]

use std::time::Duration;

use namestore::ErrorKind;
use namestore::drivers::redb::{RedbConfig, RedbDriver};
use scratch::scratch_dir;

#[path = "support/scratch.rs"]
mod scratch;

fn fresh_file(tag: &str) -> std::path::PathBuf {
    let path = scratch_dir("redb-files").join(format!("{tag}.redb"));
    let _ = std::fs::remove_file(&path);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_and_ttls_survive_a_reopen_and_ttls_keep_running_while_closed() {
    let path = fresh_file("reopen");
    {
        let ns = RedbDriver::open(RedbConfig::new(&path))
            .unwrap()
            .namespace::<String>("app", "p")
            .unwrap();
        ns.set(&"forever".to_owned(), "v", None).await.unwrap();
        ns.set(&"short".to_owned(), "v", Some(Duration::from_millis(800)))
            .await
            .unwrap();
        ns.set(&"long".to_owned(), "v", Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        ns.incr(&"n".to_owned(), 41).await.unwrap();
    }
    // Closed for longer than the short TTL.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ns = RedbDriver::open(RedbConfig::new(&path))
        .unwrap()
        .namespace::<String>("app", "p")
        .unwrap();
    assert_eq!(
        ns.get(&"forever".to_owned()).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(
        ns.get(&"short".to_owned()).await.unwrap(),
        None,
        "a TTL that ran out while closed"
    );
    let left = ns
        .ttl(&"long".to_owned())
        .await
        .unwrap()
        .remaining()
        .expect("long still expires");
    assert!(
        left <= Duration::from_secs(3600) - Duration::from_secs(1),
        "the TTL stood still: {left:?}"
    );
    assert_eq!(ns.incr(&"n".to_owned(), 1).await.unwrap(), 42);
    let mut keys = ns.keys("*").await.unwrap();
    keys.sort();
    assert_eq!(keys, ["forever", "long", "n"]);
}

#[test]
fn a_file_open_elsewhere_is_refused_clearly() {
    let path = fresh_file("exclusive");
    let _first = RedbDriver::open(RedbConfig::new(&path)).unwrap();
    let error = RedbDriver::open(RedbConfig::new(&path)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
    assert!(error.to_string().contains("already open"), "{error}");
}

#[test]
fn a_file_that_cannot_be_created_is_unavailable_and_named() {
    let path = fresh_file("missing-dir").join("no/such/dir/data.redb");
    let error = RedbDriver::open(RedbConfig::new(&path)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
    assert!(error.to_string().contains("cannot open"), "{error}");
    assert!(error.to_string().contains("data.redb"), "{error}");
}

#[test]
fn a_file_that_is_not_namestores_is_refused() {
    let garbage = fresh_file("garbage");
    std::fs::write(&garbage, vec![0x5a; 64 * 1024]).unwrap();
    let error = RedbDriver::open(RedbConfig::new(&garbage)).unwrap_err();
    assert!(
        error.to_string().contains("not a namestore file"),
        "{error}"
    );
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        vec![0x5a; 64 * 1024],
        "the foreign file was changed"
    );

    let foreign = fresh_file("foreign");
    {
        let db = redb::Database::create(&foreign).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, u64>::new("someone.else"))
            .unwrap()
            .insert("k", 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let error = RedbDriver::open(RedbConfig::new(&foreign)).unwrap_err();
    assert!(error.to_string().contains("not namestore's"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opened_from_a_url_in_either_durability_mode() {
    for mode in ["", "?durable=0"] {
        let path = fresh_file(&format!("url{}", mode.len()));
        let store = namestore::open(&format!("redb://{}{mode}", path.display())).unwrap();
        let ns = store.namespace::<String>("app", "url").unwrap();
        ns.set(&"k".to_owned(), "v", None).await.unwrap();
        assert_eq!(
            ns.get(&"k".to_owned()).await.unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }
    assert_eq!(
        namestore::open("redb://?durable=maybe").unwrap_err().kind(),
        ErrorKind::InvalidUrl
    );
}

/// A store may hold sessions and other secrets: a file namestore creates is its owner's alone
/// (mode 0600, whatever the umask), and a file that exists keeps the mode it has.
#[cfg(unix)]
#[test]
fn a_new_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode();
    let path = fresh_file("private");
    drop(RedbDriver::open(RedbConfig::new(&path)).unwrap());
    assert_eq!(mode(&path) & 0o777, 0o600, "{:o}", mode(&path));

    let shared = fresh_file("shared");
    std::fs::write(&shared, b"").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
    drop(RedbDriver::open(RedbConfig::new(&shared)).unwrap());
    assert_eq!(mode(&shared) & 0o777, 0o640, "{:o}", mode(&shared));
}

/// An idle store writes nothing: the background reclaimer reads the expiry index and commits
/// only when a key's deadline has passed (it committed an empty transaction every tick, on a
/// durable store a flush of the disk ten times a second). A reclaim interval of zero turns the
/// reclaimer off, as `None` does (it made the thread commit and flush without pause). Seen
/// from outside: the file's bytes do not change while the store idles, and a key that expires
/// is still reclaimed, unless the reclaimer is off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_store_writes_nothing() {
    let idle_for = Duration::from_millis(300);
    for (tag, interval) in [("idle", Duration::from_millis(5)), ("zero", Duration::ZERO)] {
        let path = fresh_file(tag);
        let mut config = RedbConfig::new(&path);
        config.reap_interval = Some(interval);
        let driver = RedbDriver::open(config).unwrap();
        let ns = driver.namespace::<String>("app", "idle").unwrap();
        ns.set(&"kept".to_owned(), "v", None).await.unwrap();
        ns.set(&"later".to_owned(), "v", Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = std::fs::read(&path).unwrap();
        tokio::time::sleep(idle_for).await;
        assert!(
            std::fs::read(&path).unwrap() == before,
            "{tag}: the file changed while the store idled"
        );
        ns.set(&"brief".to_owned(), "v", Some(Duration::from_millis(20)))
            .await
            .unwrap();
        if interval.is_zero() {
            // Off: the expired key stays stored until something touches it.
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(driver.stored_entries("app:idle:").unwrap(), 3, "{tag}");
            continue;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while driver.stored_entries("app:idle:").unwrap() > 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the expired key was not reclaimed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
