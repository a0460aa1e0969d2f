//! Crash tests in the style of sled's: the test binary re-runs itself as a child that writes
//! and acknowledges as fast as it can; the parent kills it with SIGKILL at a random moment,
//! reopens the file, and checks that every acknowledged write is there, that no batch is half
//! applied, and that redb's integrity check passes. 50 rounds on one file.
#![cfg(feature = "redb")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use namestore::drivers::redb::{RedbConfig, RedbDriver};

const CHILD: &str = "NAMESTORE_CRASH_CHILD";
const BATCH: usize = 10;

/// The child: writes single keys and batches of 10, printing an acknowledgement after each
/// call returns. Does nothing unless started by the parent.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD) else {
        return;
    };
    let round: u64 = std::env::var("NAMESTORE_CRASH_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ns = RedbDriver::open(RedbConfig::new(&path))
            .unwrap()
            .namespace::<String>("crash", "test")
            .unwrap();
        for i in 0u64..1_000_000 {
            let id = format!("{round}-{i}");
            if i % 2 == 0 {
                ns.set(&format!("k{id}"), id.clone(), None).await.unwrap();
                println!("ack {id}");
            } else {
                ns.mset((0..BATCH).map(|j| (format!("b{id}-{j}"), id.clone())), None)
                    .await
                    .unwrap();
                println!("batch {id}");
            }
        }
    });
}

fn random_ms(seed: u64, low: u64, high: u64) -> u64 {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    low + x % (high - low)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("namestore-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("crash.redb");
    let _ = std::fs::remove_file(&path);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut acknowledged = 0;
    for round in 0..50u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD, &path)
            .env("NAMESTORE_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        tokio::time::sleep(Duration::from_millis(random_ms(seed + round, 150, 600))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();

        let driver = RedbDriver::open(RedbConfig::new(&path)).unwrap();
        let ns = driver.namespace::<String>("crash", "test").unwrap();
        let mut last = 0;
        for line in &lines {
            if let Some(id) = line.strip_prefix("ack ") {
                let value = ns.get(&format!("k{id}")).await.unwrap();
                assert_eq!(
                    value.as_deref(),
                    Some(id.as_bytes()),
                    "round {round}: acknowledged k{id} lost"
                );
                acknowledged += 1;
            } else if let Some(id) = line.strip_prefix("batch ") {
                let keys: Vec<String> = (0..BATCH).map(|j| format!("b{id}-{j}")).collect();
                let values = ns.mget(&keys).await.unwrap();
                assert!(
                    values.iter().all(|v| v.as_deref() == Some(id.as_bytes())),
                    "round {round}: batch {id} lost"
                );
                acknowledged += 1;
            }
            last += 1;
        }
        // The write in flight when the child died: all of its batch or none.
        let next = format!("{round}-{last}");
        if last % 2 == 1 {
            let keys: Vec<String> = (0..BATCH).map(|j| format!("b{next}-{j}")).collect();
            let present = ns
                .mget(&keys)
                .await
                .unwrap()
                .iter()
                .filter(|v| v.is_some())
                .count();
            assert!(
                present == 0 || present == BATCH,
                "round {round}: batch {next} half applied ({present}/10)"
            );
        }
        drop(ns);
        drop(driver);
        let mut db = redb::Database::create(&path).unwrap();
        assert!(
            db.check_integrity().unwrap(),
            "round {round}: integrity check failed"
        );
    }
    assert!(
        acknowledged > 100,
        "only {acknowledged} writes were acknowledged in 50 rounds"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
