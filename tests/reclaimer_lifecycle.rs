//! The memory driver's background reclaimer thread lives exactly as long as the driver: one
//! thread per driver, gone soon after the last handle (driver or namespace) is dropped. Alone
//! in its test binary, so no other test's threads disturb the count.

use std::thread;

use namestore::MemoryDriver;

#[test]
fn background_reclaimer_stops_with_the_last_handle() {
    fn reaper_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .flatten()
                    .filter(|t| {
                        std::fs::read_to_string(t.path().join("comm"))
                            .is_ok_and(|name| name.trim() == "namestore-reape")
                    })
                    .count()
            })
            .unwrap_or(0)
    }
    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    if !cfg!(target_os = "linux") {
        return;
    }
    let before = reaper_threads();
    let drivers: Vec<MemoryDriver> = (0..20).map(|_| MemoryDriver::new()).collect();
    let namespaces: Vec<_> = drivers
        .iter()
        .map(|d| d.namespace::<String>("a", "b").unwrap())
        .collect();
    // A thread names itself once it runs.
    wait_for("20 reclaimer threads did not start", || {
        reaper_threads() == before + 20
    });
    drop(drivers);
    thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        reaper_threads(),
        before + 20,
        "a namespace handle keeps its driver alive"
    );
    drop(namespaces);
    wait_for("reclaimer threads outlived their drivers", || {
        reaper_threads() == before
    });
}
