//! The memory driver's background reclaimer: one thread for every store of the process, which
//! keeps no store alive, reclaims in each, and ends soon after the last store is dropped (the
//! next store starts it again). Alone in its test binary, so no other test's threads disturb
//! the count.

use std::thread;
use std::time::Duration;

use namestore::MemoryDriver;
use namestore::drivers::memory::NamespaceStats;

fn reaper_threads() -> usize {
    threads_named("namestore-reape")
}

/// The threads of this process named `name` (as the kernel keeps it: 15 bytes at most).
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|comm| comm.trim() == name)
                })
                .count()
        })
        .unwrap_or(0)
}

fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        thread::sleep(Duration::from_millis(5));
    }
}

fn expired(store: &MemoryDriver) -> u64 {
    store
        .namespace_stats()
        .iter()
        .map(|s: &NamespaceStats| s.expired)
        .sum()
}

#[tokio::test(flavor = "current_thread")]
async fn one_reclaimer_thread_serves_every_store_and_ends_with_the_last() {
    if !cfg!(target_os = "linux") {
        return;
    }
    assert_eq!(reaper_threads(), 0);
    let drivers: Vec<MemoryDriver> = (0..2_000).map(|_| MemoryDriver::new()).collect();
    let namespaces: Vec<_> = drivers
        .iter()
        .map(|d| d.namespace::<String>("a", "b").unwrap())
        .collect();
    // A thread names itself once it runs.
    wait_for("the reclaimer thread did not start", || {
        reaper_threads() == 1
    });
    for namespace in namespaces.iter().step_by(100) {
        namespace
            .set(&"k".to_owned(), "v", Some(Duration::from_millis(20)))
            .await
            .unwrap();
    }
    // Every store is reclaimed in, by the one thread.
    wait_for("expired keys were not reclaimed in every store", || {
        namespaces
            .iter()
            .step_by(100)
            .all(|n| expired(n.driver()) == 1)
    });
    assert_eq!(reaper_threads(), 1, "one thread for 2,000 stores");

    drop(drivers);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        reaper_threads(),
        1,
        "a namespace handle keeps its driver alive"
    );
    drop(namespaces);
    wait_for("the reclaimer thread outlived the stores", || {
        reaper_threads() == 0
    });

    // The next store starts it again.
    let store = MemoryDriver::new();
    wait_for("the reclaimer thread did not start again", || {
        reaper_threads() == 1
    });
    let namespace = store.namespace::<String>("a", "b").unwrap();
    namespace
        .set(&"k".to_owned(), "v", Some(Duration::from_millis(20)))
        .await
        .unwrap();
    wait_for("not reclaimed", || expired(&store) == 1);
    drop((store, namespace));
    wait_for("the reclaimer thread outlived the store", || {
        reaper_threads() == 0
    });

    // redb files share one too (their own, since their rounds wait for disks): 100 files, one
    // reclaimer thread, each file's expired keys deleted, and each file closed (opened again
    // at once) when dropped.
    #[cfg(feature = "redb")]
    {
        let dir = std::env::temp_dir().join(format!("namestore-reaper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = |i: usize| format!("redb://{}/s{i}.redb?durable=0", dir.display());
        let memory = MemoryDriver::new();
        wait_for("the reclaimer thread did not start", || {
            reaper_threads() == 1
        });
        let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
        let before = threads();
        let files: Vec<_> = (0..100)
            .map(|i| namestore::open(&url(i)).unwrap())
            .collect();
        // Each file has its committer thread; the files have one reclaimer thread.
        assert_eq!(threads(), before + 101, "threads for 100 files");
        assert_eq!(threads_named("namestore-files"), 1);
        let namespaces: Vec<_> = files
            .iter()
            .map(|f| f.namespace::<String>("a", "b").unwrap())
            .collect();
        for namespace in &namespaces {
            namespace
                .set(&"k".to_owned(), "v", Some(Duration::from_millis(20)))
                .await
                .unwrap();
        }
        assert_eq!(reaper_threads(), 1, "the memory stores' thread");
        let started = std::time::Instant::now();
        for (i, namespace) in namespaces.iter().enumerate() {
            // Reclaimed in the file: the entries it stores, expired ones not reclaimed yet
            // included, are none.
            let file = namespace
                .driver()
                .downcast_ref::<namestore::drivers::redb::RedbDriver>()
                .unwrap();
            loop {
                if file.stored_entries("a:b:").unwrap() == 0 {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "file {i} not reclaimed"
                );
                thread::sleep(Duration::from_millis(10));
            }
        }
        drop((files, namespaces, memory));
        wait_for("the reclaimer threads outlived the stores", || {
            reaper_threads() == 0 && threads_named("namestore-files") == 0
        });
        let again = namestore::open(&url(0)).unwrap();
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
