//! The file store's memory: redb keeps the file's pages it has read in a cache of its own, 1
//! GiB at most by default, which a process beside a memory limit (a container's) sets lower
//! with `cache_size`. Alone in its binary: it measures the process's peak memory.
#![cfg(feature = "redb")]

use namestore::drivers::redb::{RedbConfig, RedbDriver};

/// The process's resident memory now and at its peak, in MiB (Linux).
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|line| line.starts_with(name)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Writing 64 MiB of values and reading each back twice through a store with an 8 MiB cache
/// keeps the process's peak within 48 MiB of where it started. With the default cache, the
/// same run held the whole file (about 100 MiB more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_holds_no_more_of_its_file_than_its_cache() {
    let dir = std::env::temp_dir().join(format!("namestore-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cache.redb");
    let _ = std::fs::remove_file(&path);
    let url = format!("redb://{}?cache_size=8MiB", path.display());
    let config = RedbConfig::from_url(&url).unwrap();
    assert_eq!(config.cache_size, 8 << 20);

    let (start, _) = memory();
    let value = vec![b'x'; 4096];
    let ns = RedbDriver::open(config)
        .unwrap()
        .namespace::<String>("app", "pages")
        .unwrap();
    for batch in 0..64 {
        ns.mset(
            (0..256).map(|i| (format!("k{batch}-{i}"), value.clone())),
            None,
        )
        .await
        .unwrap();
    }
    for _ in 0..2 {
        for batch in 0..64 {
            for i in 0..256 {
                let read = ns.get(&format!("k{batch}-{i}")).await.unwrap().unwrap();
                assert_eq!(read.len(), 4096);
            }
        }
    }
    let file = std::fs::metadata(&path).unwrap().len() >> 20;
    let (_, peak) = memory();
    drop(ns);
    let _ = std::fs::remove_dir_all(&dir);
    println!("peak {start} -> {peak} MiB, file {file} MiB");
    assert!(
        peak < start + 48,
        "the peak grew from {start} to {peak} MiB for a file of {file} MiB and a cache of 8 MiB"
    );
}
