//! The persistent driver on a disk that fills up: calls fail with the cause, acknowledged
//! writes survive (in the non-durable mode, those acknowledged after the first failure, and a
//! `flush` reports the others lost), the same handle writes again once space is back, and a
//! compaction gives space back. Runs on a 2 MiB tmpfs mounted here (as root); where mounting
//! is not allowed, the test says so and passes without running.
#![cfg(feature = "redb")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use namestore::drivers::redb::{RedbConfig, RedbDriver};

#[path = "support/events.rs"]
mod events;

/// A small tmpfs, unmounted when dropped (also when the test fails).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(size: &str, name: &str) -> Result<Self, String> {
        let dir =
            std::env::temp_dir().join(format!("namestore-full-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !mounted.status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(String::from_utf8_lossy(&mounted.stderr).trim().to_owned());
        }
        Ok(SmallDisk(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A 2 MiB disk of its own, and a file of 512 KiB on it: room to give back later. `None`
/// (saying so) where mounting is not allowed.
fn small_disk(name: &str) -> Option<(SmallDisk, PathBuf)> {
    let disk = match SmallDisk::mount("2m", name) {
        Ok(disk) => disk,
        Err(why) => {
            println!("skipped: cannot mount a tmpfs here ({why})");
            return None;
        }
    };
    let filler = disk.path().join("filler");
    std::fs::write(&filler, vec![7u8; 512 * 1024]).unwrap();
    Some((disk, filler))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_calls_with_the_cause_and_the_handle_recovers() {
    let Some((disk, filler)) = small_disk("durable") else {
        return;
    };

    let mut config = RedbConfig::new(disk.path().join("store.redb"));
    config.reap_interval = Some(Duration::from_millis(20));
    let store = RedbDriver::open(config.clone()).unwrap();
    let ns = store.namespace::<String>("app", "blobs").unwrap();

    let value = vec![b'x'; 48 * 1024];
    let mut acknowledged = Vec::new();
    let mut failure = None;
    for i in 0..200 {
        let key = format!("k{i}");
        match ns.set(&key, value.clone(), None).await {
            Ok(()) => acknowledged.push(key),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    let failure = failure.expect("2 MiB filled up without an error");
    assert!(!acknowledged.is_empty(), "no write fitted at all");
    let text = failure.to_string();
    assert!(
        text.contains("No space left on device"),
        "the error does not name the cause: {text}"
    );

    // Still full: later writes fail with the cause too, not with a poisoned handle.
    let again = ns.set(&"more".to_owned(), value.clone(), None).await;
    if let Err(error) = &again {
        assert!(
            !error.to_string().contains("could not start"),
            "a later write lost the cause: {error}"
        );
    }

    // Space comes back: the same handle writes again, and every acknowledged write is there.
    std::fs::remove_file(&filler).unwrap();
    ns.set(&"after".to_owned(), "recovered", None)
        .await
        .expect("the handle did not recover once space was back");
    assert_eq!(
        ns.get(&"after".to_owned()).await.unwrap().as_deref(),
        Some(&b"recovered"[..])
    );
    for key in &acknowledged {
        assert_eq!(
            ns.get(key).await.unwrap().as_deref(),
            Some(&value[..]),
            "acknowledged {key} was lost"
        );
    }

    // And after a reopen.
    drop(ns);
    drop(store);
    let store = RedbDriver::open(config).unwrap();
    let ns = store.namespace::<String>("app", "blobs").unwrap();
    for key in &acknowledged {
        assert!(ns.exists(key).await.unwrap(), "{key} lost across a reopen");
    }
    assert!(ns.exists(&"after".to_owned()).await.unwrap());
}

/// The non-durable mode: commits touch the disk only when flushed, so on a full disk they went
/// on succeeding, each acknowledged and lost at the next flush (which fails, and redb reopens
/// the file at its last flushed state): 171 of 200 writes acknowledged and 34 readable, or,
/// before commits were flushed at all, 200 acknowledged and none left after a reopen. A failed
/// flush loses the writes of its interval, as a crash would; from then every write is
/// flushed as it commits, so it fails with the cause or is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_in_the_non_durable_mode_fails_the_writes_after_a_failed_flush() {
    let Some((disk, filler)) = small_disk("fast") else {
        return;
    };

    let config = non_durable(&disk, Duration::from_millis(50));
    let store = RedbDriver::open(config.clone()).unwrap();
    let ns = store.namespace::<String>("app", "blobs").unwrap();

    let value = vec![b'x'; 48 * 1024];
    let mut first_failure = None;
    let mut kept_since_failure = Vec::new();
    for i in 0..200 {
        let key = format!("k{i}");
        match ns.set(&key, value.clone(), None).await {
            Ok(()) if first_failure.is_some() => kept_since_failure.push(key),
            Ok(()) => {}
            Err(error) => {
                first_failure.get_or_insert(error);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let failure = first_failure.expect("200 writes of 48 KiB on a 2 MiB disk, and no error");
    assert!(
        failure.to_string().contains("No space left on device"),
        "the error does not name the cause: {failure}"
    );
    for key in &kept_since_failure {
        assert!(
            ns.exists(key).await.unwrap(),
            "{key}, acknowledged after the disk filled, was lost"
        );
    }

    // Space comes back: the same handle writes again, and what it acknowledged survives a
    // reopen.
    std::fs::remove_file(&filler).unwrap();
    ns.set(&"after".to_owned(), "recovered", None)
        .await
        .expect("the handle did not recover once space was back");
    drop(ns);
    drop(store);
    let ns = RedbDriver::open(config)
        .unwrap()
        .namespace::<String>("app", "blobs")
        .unwrap();
    for key in kept_since_failure.iter().chain([&"after".to_owned()]) {
        assert!(ns.exists(key).await.unwrap(), "{key} lost across a reopen");
    }
}

/// A non-durable store on `disk`, flushing every `interval`.
fn non_durable(disk: &SmallDisk, interval: Duration) -> RedbConfig {
    let mut config = RedbConfig::new(disk.path().join("store.redb"));
    config.durable = false;
    config.flush_interval = interval;
    config
}

/// 40 values of 48 KiB (1.9 MiB) written to `ns`, each acknowledged: on a non-durable store
/// whose flush is not due, none of them touches the disk.
async fn acknowledged_unflushed(ns: &namestore::Namespace<String, RedbDriver>) {
    for i in 0..40 {
        ns.set(&format!("k{i}"), vec![b'x'; 48 * 1024], None)
            .await
            .expect("a non-durable write failed before any flush");
    }
}

/// `flush` on a full disk fails with the cause: the writes it was to flush are lost, and the
/// caller knows it (a store dropped instead loses them without a word). The failure is
/// reported once; the store goes on once space is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_on_a_full_disk_fails_with_the_cause() {
    let Some((disk, filler)) = small_disk("flush-call") else {
        return;
    };
    let store = RedbDriver::open(non_durable(&disk, Duration::from_secs(3600))).unwrap();
    let ns = store.namespace::<String>("app", "blobs").unwrap();
    acknowledged_unflushed(&ns).await;

    let failure = store
        .flush()
        .await
        .expect_err("1.9 MiB flushed to a disk with 1.5 MiB free");
    assert!(
        failure.to_string().contains("No space left on device"),
        "the error does not name the cause: {failure}"
    );
    store
        .flush()
        .await
        .expect("a failed flush was reported twice");

    std::fs::remove_file(&filler).unwrap();
    ns.set(&"after".to_owned(), "recovered", None)
        .await
        .unwrap();
    store.flush().await.unwrap();
    assert!(ns.exists(&"after".to_owned()).await.unwrap());
}

/// A flush of the committer's own that fails (the interval came, the disk was full) loses the
/// writes it was to flush, which their callers were told had succeeded: the next `flush` call
/// reports the loss, with its cause, once; and a `tracing` error reports it as it happens, for
/// a program that makes no flush call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loss_at_a_flush_of_the_committers_own_is_reported_by_the_next_flush_call() {
    let events = events::captured();
    let Some((disk, _filler)) = small_disk("flush-own") else {
        return;
    };
    let store = RedbDriver::open(non_durable(&disk, Duration::from_secs(1))).unwrap();
    let ns = store.namespace::<String>("app", "blobs").unwrap();
    acknowledged_unflushed(&ns).await;
    // The committer's flush comes a second after the first write, and fails.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let file = disk.path().join("store.redb").display().to_string();
    let reported = |what: &str| events.lines_with(&["namestore::redb", &file, what]);
    let lost = reported("acknowledged writes to the redb file are lost");
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(
        lost[0].contains("ERROR") && lost[0].contains("No space left on device"),
        "{lost:?}"
    );
    assert_eq!(reported("commits to the redb file fail").len(), 1);

    let report = store
        .flush()
        .await
        .expect_err("writes acknowledged and lost, and the flush call said nothing");
    let text = report.to_string();
    assert!(
        text.contains("were lost") && text.contains("No space left on device"),
        "the report does not say what was lost and why: {text}"
    );
    store
        .flush()
        .await
        .expect("a loss was reported twice, or the store did not go on");
}

/// A compaction needs no free space (redb moves the live pages within the file): on a full
/// disk it succeeds and gives space back, when it is most needed, and every key is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_on_a_full_disk_gives_space_back_and_keeps_every_key() {
    let Some((disk, _filler)) = small_disk("compact") else {
        return;
    };
    let store = RedbDriver::open(RedbConfig::new(disk.path().join("store.redb"))).unwrap();
    let ns = store.namespace::<String>("app", "blobs").unwrap();
    // Written, then three in four deleted: pages to move.
    let mut kept = Vec::new();
    for i in 0..16 {
        ns.set(&format!("k{i}"), vec![b'x'; 24 * 1024], None)
            .await
            .unwrap();
    }
    for i in 0..16 {
        if i % 4 == 0 {
            kept.push(format!("k{i}"));
        } else {
            ns.delete(&format!("k{i}")).await.unwrap();
        }
    }
    // Every byte left taken.
    let mut written = 0;
    while std::fs::write(
        disk.path().join(format!("rest{written}")),
        vec![0u8; 16 * 1024],
    )
    .is_ok()
    {
        written += 1;
    }

    assert!(written > 0 || std::fs::write(disk.path().join("more"), b"x").is_err());
    let compaction = store.compact().await.unwrap();
    assert!(
        compaction.after < compaction.before / 2,
        "no space given back: {compaction:?}"
    );
    // The space it gave back takes writes.
    ns.set(&"after".to_owned(), vec![b'y'; 64 * 1024], None)
        .await
        .unwrap();
    for key in kept.iter().chain([&"after".to_owned()]) {
        assert!(ns.exists(key).await.unwrap(), "{key} lost");
    }
}
