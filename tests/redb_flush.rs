//! The non-durable mode's flush (`durable=0`): a commit is flushed to disk within
//! `flush_interval`, by a later commit or by the committer on its own, so a crash loses the
//! writes of about that long, never more. The test binary re-runs itself as a child that
//! writes; the parent kills it with SIGKILL and reopens the file.
#![cfg(feature = "redb")]

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use namestore::drivers::redb::{RedbConfig, RedbDriver};

const CHILD: &str = "NAMESTORE_FLUSH_CHILD";
const FILE: &str = "NAMESTORE_FLUSH_FILE";

/// The child: opens the file non-durable, flushing every 100 ms, from its URL. `idle`: writes
/// 100 keys and a batch, says so, and waits to be killed; `stream`: writes keys one after
/// another, acknowledging each, until killed; `flushed` (`compacted`): flushes every hour
/// only, writes 100 keys and a batch, calls `flush` (`compact`), says so, and waits to be
/// killed. Does nothing unless started by the parent.
#[test]
fn flush_child() {
    let (Ok(mode), Ok(path)) = (std::env::var(CHILD), std::env::var(FILE)) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let called = mode == "flushed" || mode == "compacted";
        let interval = if called { 3_600_000 } else { 100 };
        let url = format!("redb://{path}?durable=0&flush_interval_ms={interval}");
        let store = namestore::open(&url).unwrap();
        let ns = store.namespace::<String>("flush", "test").unwrap();
        if mode == "idle" || called {
            for i in 0..100 {
                ns.set(&format!("k{i}"), "v", None).await.unwrap();
            }
            ns.mset((0..10).map(|i| (format!("b{i}"), "v")), None)
                .await
                .unwrap();
            let redb = store.downcast_ref::<RedbDriver>().unwrap();
            if mode == "flushed" {
                redb.flush().await.unwrap();
            } else if mode == "compacted" {
                redb.compact().await.unwrap();
            }
            println!("written");
            tokio::time::sleep(Duration::from_secs(60)).await;
        } else {
            for i in 0u64.. {
                ns.set(&format!("s{i}"), "v", None).await.unwrap();
                println!("ack {i}");
            }
        }
    });
}

fn start(mode: &str, path: &Path) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "flush_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, mode)
        .env(FILE, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

fn fresh_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("namestore-flush-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.redb"));
    let _ = std::fs::remove_file(&path);
    path
}

/// The keys the child writes before it says `written`: 100 one by one, 10 in a batch.
fn written_when_idle() -> impl Iterator<Item = String> {
    (0..100)
        .map(|i| format!("k{i}"))
        .chain((0..10).map(|i| format!("b{i}")))
}

async fn present(path: &Path, keys: impl IntoIterator<Item = String>) -> Vec<String> {
    let ns = RedbDriver::open(RedbConfig::new(path))
        .unwrap()
        .namespace::<String>("flush", "test")
        .unwrap();
    let keys: Vec<String> = keys.into_iter().collect();
    let found = ns.mget(&keys).await.unwrap();
    keys.into_iter()
        .zip(found)
        .filter_map(|(key, value)| value.is_none().then_some(key))
        .collect()
}

/// Writes followed by nothing are flushed by the committer on its own: killed two seconds
/// after its last write, the process lost none. (Before, a non-durable store flushed only when it
/// was closed: a process killed, or exiting with its store in a `static`, lost every write it
/// had ever made.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_followed_by_none_are_flushed_within_the_interval() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let path = fresh_file("idle");
    let (mut child, mut lines) = start("idle", &path);
    // The harness prints its own lines first, and `test flush_child ... ` before the test's.
    assert!(lines.any(|line| line.unwrap().ends_with("written")));
    // Twenty flush intervals: room for a slow disk's flush on a loaded machine.
    tokio::time::sleep(Duration::from_secs(2)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let missing = present(&path, written_when_idle()).await;
    assert!(missing.is_empty(), "lost after a crash: {missing:?}");
}

/// Under a steady stream of writes, commits are flushed as they go: every write acknowledged
/// two seconds before the kill (twenty flush intervals) is on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_writes_is_flushed_as_it_goes() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let path = fresh_file("stream");
    let (mut child, mut lines) = start("stream", &path);
    let last = |lines: &mut Lines<BufReader<ChildStdout>>, until: Instant| {
        let mut acknowledged = None;
        while Instant::now() < until {
            let line = lines.next().unwrap().unwrap();
            if let Some(n) = line.strip_prefix("ack ") {
                acknowledged = Some(n.parse::<u64>().unwrap());
            }
        }
        acknowledged.unwrap()
    };
    let settled = last(&mut lines, Instant::now() + Duration::from_millis(1500));
    let latest = last(&mut lines, Instant::now() + Duration::from_secs(2));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(latest > settled, "the child stopped writing");
    let missing = present(&path, (0..=settled).map(|i| format!("s{i}"))).await;
    assert!(
        missing.is_empty(),
        "{} of {} writes acknowledged two seconds before the crash were lost (first {:?})",
        missing.len(),
        settled + 1,
        missing.first()
    );
}

/// `flush` puts what was acknowledged before it on disk: a process killed as soon as its
/// call returned, an hour before the store's own flush was due, lost nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_call_puts_every_acknowledged_write_on_disk() {
    killed_after_the_call("flushed").await;
}

/// A compaction commits durably: on a non-durable store it flushes every write before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_puts_every_acknowledged_write_on_disk() {
    killed_after_the_call("compacted").await;
}

async fn killed_after_the_call(mode: &str) {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let path = fresh_file(mode);
    let (mut child, mut lines) = start(mode, &path);
    assert!(lines.any(|line| line.unwrap().ends_with("written")));
    child.kill().unwrap();
    child.wait().unwrap();
    let missing = present(&path, written_when_idle()).await;
    assert!(
        missing.is_empty(),
        "{mode}, then lost in a crash: {missing:?}"
    );
}
