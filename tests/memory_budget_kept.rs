//! SPEC 10.2: the budget is what the process really keeps. 8 threads write values of random
//! sizes (16 B to 64 KiB) into a store with a 32 MiB budget until they have written ten times
//! that: the process's peak resident memory grows by at most the budget plus 10% (plus a fixed
//! allowance for threads and the allocator), and the usage the store reports is within 10% of
//! the heap its entries hold, counted by a counting allocator.
//!
//! The workload runs in a child process (this test binary again), so that nothing else has
//! touched its memory. Resident memory also depends on the allocator: glibc's malloc keeps
//! freed memory in one arena per writer thread, so with 8 writers the peak grew by about 2.4
//! times the budget at its defaults (printed, not asserted); the bound is asserted with one
//! arena (`MALLOC_ARENA_MAX=1`), where it measures what the store holds. `BUDGET_MIB` sets the
//! budget (32 by default; docs/eviction.md records 256).

use namestore::Bytes;
use namestore::drivers::memory::{Eviction, MemoryDriver, MemoryUsage};

#[path = "support/counting.rs"]
mod counting;
#[path = "support/ready.rs"]
mod support_ready;

use counting::{Counting, bytes_in_use};
use support_ready::ready;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A field of /proc/self/status, in bytes.
fn status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Runs `test`'s workload in a child process with `env`; returns the numbers of each line it
/// printed after `RESULT `.
fn child(test: &str, env: &[(&str, &str)]) -> Vec<Vec<u64>> {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("NAMESTORE_BUDGET_CHILD", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the child failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Vec<u64>> = text
        .lines()
        .filter_map(|l| l.split_once("RESULT ").map(|(_, rest)| rest))
        .map(|line| {
            line.split_whitespace()
                .map(|n| n.parse().unwrap())
                .collect()
        })
        .collect();
    assert!(!results.is_empty(), "no result from the child: {text}");
    results
}

#[test]
fn the_process_keeps_the_budget() {
    let budget: u64 = std::env::var("BUDGET_MIB")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(32)
        << 20;
    if std::env::var_os("NAMESTORE_BUDGET_CHILD").is_some() {
        let (usage, heap, peak) = workload(budget);
        println!("RESULT {usage} {heap} {peak}");
        return;
    }
    let default_peak = child("the_process_keeps_the_budget", &[])[0][2];
    let [usage, heap, peak] =
        child("the_process_keeps_the_budget", &[("MALLOC_ARENA_MAX", "1")])[0][..]
    else {
        panic!("three numbers")
    };
    println!(
        "{} MiB budget, 8 threads writing 10x that: usage {usage} bytes, heap held {heap} bytes; \
         peak RSS +{} MiB with one malloc arena, +{} MiB with glibc's defaults",
        budget >> 20,
        peak >> 20,
        default_peak >> 20
    );
    assert!(usage <= budget, "usage {usage} over the budget");
    let off = usage.abs_diff(heap) as f64 / heap as f64;
    assert!(
        off <= 0.10,
        "the store reports {usage} bytes for a heap of {heap} ({:.1}% off)",
        off * 100.0
    );
    // Thread stacks, allocator bookkeeping: a fixed allowance, whatever the data.
    let allowance = 8 << 20;
    assert!(
        peak <= budget + budget / 10 + allowance,
        "peak RSS grew by {} MiB for a {} MiB budget",
        peak >> 20,
        budget >> 20
    );
}

/// 8 threads write values of random sizes until they have written ten times `budget`;
/// returns the store's usage, the heap it holds and the growth of the peak RSS.
fn workload(budget: u64) -> (u64, u64, u64) {
    const THREADS: u64 = 8;
    let store = MemoryDriver::builder()
        .max_bytes(budget)
        .eviction(Eviction::Any)
        .build()
        .unwrap();
    let ns = store.namespace::<String>("load", "blobs").unwrap();
    let (rss_before, heap_before) = (status("VmRSS:"), bytes_in_use());
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let ns = ns.clone();
            scope.spawn(move || {
                let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (thread + 1);
                let mut written = 0u64;
                let mut n = 0u64;
                while written < 10 * budget / THREADS {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let size = 16 + (rng % (64 * 1024 - 16)) as usize;
                    let key = format!("t{thread}-{n}");
                    ready(ns.set(&key, Bytes::from(vec![thread as u8; size]), None)).unwrap();
                    written += size as u64;
                    n += 1;
                }
            });
        }
    });
    let usage = store.usage().unwrap().bytes;
    let heap = (bytes_in_use() - heap_before) as u64;
    let peak = status("VmHWM:").saturating_sub(rss_before);
    (usage, heap, peak)
}

/// SPEC 10.2 for the smallest entries, where the driver's own memory is most of what an entry
/// holds: 16-byte values under short keys, written by 4 threads until four times as many keys
/// as fit have been stored, at budgets (in bytes, and in entries) whose shards' tables sit at different
/// points between two doublings. The usage the store reports stays within 10% of the heap it
/// holds, and within the budget.
#[test]
fn small_entries_are_charged_the_memory_they_hold() {
    if std::env::var_os("NAMESTORE_BUDGET_CHILD").is_some() {
        for (max_bytes, max_entries) in [
            (1 << 20, None),
            (3 << 20, None),
            (10 << 20, None),
            (u64::MAX, Some(10_000)),
            (u64::MAX, Some(100_000)),
        ] {
            let (usage, heap) = small_entries(max_bytes, max_entries);
            println!(
                "RESULT {max_bytes} {} {} {} {heap}",
                max_entries.unwrap_or(u64::MAX),
                usage.bytes,
                usage.entries
            );
        }
        return;
    }
    let mut failures = vec![];
    for result in child("small_entries_are_charged_the_memory_they_hold", &[]) {
        let [max_bytes, max_entries, usage, entries, heap] = result[..] else {
            panic!("five numbers")
        };
        let off = usage as f64 / heap as f64 - 1.0;
        println!(
            "max_bytes {max_bytes}, max_entries {max_entries}: {entries} entries, usage {usage} \
             bytes, heap held {heap} bytes ({:+.1}%, {} bytes an entry)",
            off * 100.0,
            heap / entries.max(1)
        );
        if off.abs() > 0.10 || usage > max_bytes {
            failures.push(format!(
                "max_bytes {max_bytes}, max_entries {max_entries}: usage {usage} for a heap of \
                 {heap} ({:+.1}%)",
                off * 100.0
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// 4 threads write 16-byte values under new short keys until four times as many as fit are
/// stored; returns the store's usage and the heap it holds then.
fn small_entries(max_bytes: u64, max_entries: Option<u64>) -> (MemoryUsage, u64) {
    const THREADS: u64 = 4;
    let mut builder = MemoryDriver::builder()
        .max_bytes(max_bytes)
        .eviction(Eviction::Any)
        .reap_interval(None);
    if let Some(entries) = max_entries {
        builder = builder.max_entries(entries);
    }
    let store = builder.build().unwrap();
    let ns = store.namespace::<String>("load", "small").unwrap();
    // The namespace exists: its empty shards are the fixed part, not charged.
    let _ = ready(ns.get(&"warm".to_owned())).unwrap();
    let heap_empty = bytes_in_use();
    let fits = max_entries.unwrap_or(max_bytes / 64);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let ns = ns.clone();
            scope.spawn(move || {
                let value = [thread as u8; 16];
                for n in 0..4 * fits / THREADS {
                    // Each value its own buffer, as values read from a socket are, and read
                    // once (a value handed out shares its buffer through a header `Bytes`
                    // allocates then).
                    let key = format!("t{thread}-{n}");
                    ready(ns.set(&key, Bytes::copy_from_slice(&value), None)).unwrap();
                    let _ = ready(ns.get(&key)).unwrap();
                }
            });
        }
    });
    let usage = store.usage().unwrap();
    let heap = (bytes_in_use() - heap_empty) as u64;
    (usage, heap)
}

/// SPEC 10.2 for namespaces made from data (one a user): each holds a few keys, and what a
/// namespace takes whatever it holds (its shards, their tables' first blocks, its place in the
/// store's registry) is most of its memory. 100,000 namespaces written in turn, 1 and 20 keys
/// each, and 1 key with a TTL each with the reclaimer on and off, under a 4 MiB budget: the
/// heap the store holds stays within the budget plus 10%, and the usage it reports within 10%
/// of that heap (-2.7%, -3.9%, -6.3%, -6.3% measured). Before the namespaces' own memory was
/// charged, the heap held was 11.3 and 3.9 times the budget (usage 91% and 75% under it);
/// with the reclaimer off, before a freed namespace's times left the reclaimer's schedule,
/// 1.56 times (-35.9%).
#[test]
fn namespaces_made_from_data_are_charged_the_memory_they_hold() {
    const BUDGET: u64 = 4 << 20;
    if std::env::var_os("NAMESTORE_BUDGET_CHILD").is_some() {
        // Keys a namespace; 0: no TTL, 1: an hour's TTL with the reclaimer on, 2: off.
        for (keys, ttl) in [(1, 0), (20, 0), (1, 1), (1, 2)] {
            let (usage, heap, namespaces) = namespaces_of(keys, ttl, BUDGET);
            println!(
                "RESULT {keys} {ttl} {} {} {heap} {namespaces}",
                usage.bytes, usage.entries
            );
        }
        return;
    }
    let mut failures = vec![];
    for result in child(
        "namespaces_made_from_data_are_charged_the_memory_they_hold",
        &[],
    ) {
        let [keys, ttl, usage, entries, heap, namespaces] = result[..] else {
            panic!("six numbers")
        };
        let keys = format!(
            "{keys} key{} a namespace{}",
            if keys == 1 { "" } else { "s" },
            [
                "",
                " (an hour's TTL)",
                " (an hour's TTL, the reclaimer off)"
            ][ttl as usize]
        );
        let off = usage as f64 / heap as f64 - 1.0;
        println!(
            "{keys}, 4 MiB budget: {namespaces} namespaces, {entries} entries, \
             usage {usage} bytes, heap held {heap} bytes ({:+.1}%, {} bytes a namespace)",
            off * 100.0,
            heap / namespaces.max(1)
        );
        if usage > BUDGET || heap > BUDGET + BUDGET / 10 || off.abs() > 0.10 {
            failures.push(format!(
                "{keys}: usage {usage}, heap {heap} ({:+.1}%) for a budget \
                 of {BUDGET}",
                off * 100.0
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// SPEC 10.2's bound on the process for namespaces made from data: 300,000 namespaces of one
/// key written in turn, each through a handle dropped after, under a 64 MiB budget: the
/// process's peak resident memory grows by at most the budget plus 10% (and 4 MiB for the
/// allocator's own). Measured in a release build with 1,000,000 namespaces: +96 MiB when
/// every freed namespace gave its shards (one block aligned to 128 bytes) and sketches
/// (aligned to 64) back to the allocator, which fragmented glibc's heap; +65 MiB now.
#[test]
fn namespaces_coming_and_going_keep_the_process_within_the_budget() {
    const BUDGET: u64 = 64 << 20;
    if std::env::var_os("NAMESTORE_BUDGET_CHILD").is_some() {
        let rss_before = status("VmRSS:");
        let store = MemoryDriver::builder()
            .max_bytes(BUDGET)
            .eviction(Eviction::Any)
            .reap_interval(None)
            .build()
            .unwrap();
        write_namespaces(&store, 300_000, 1, || Bytes::from_static(b"s"), None);
        let peak = status("VmHWM:").saturating_sub(rss_before);
        println!("RESULT {peak} {}", store.usage().unwrap().bytes);
        return;
    }
    let result = child(
        "namespaces_coming_and_going_keep_the_process_within_the_budget",
        &[("MALLOC_ARENA_MAX", "1")],
    );
    let [peak, usage] = result[0][..] else {
        panic!("two numbers")
    };
    println!(
        "300,000 one-key namespaces under 64 MiB: peak RSS +{} MiB, usage {usage} bytes",
        peak >> 20
    );
    assert!(
        peak <= BUDGET + BUDGET / 10 + (4 << 20),
        "peak RSS grew by {} MiB for a 64 MiB budget",
        peak >> 20
    );
}

/// Writes `keys` keys of 16 bytes into each of 100,000 namespaces in turn, each through a
/// handle dropped after; with `ttl`, keys with an hour's TTL into `with-ttl` namespaces, the
/// reclaimer on. Returns the store's usage, the heap it holds (from before it was built) and
/// how many namespaces it kept.
fn namespaces_of(keys: usize, ttl: u64, max_bytes: u64) -> (MemoryUsage, u64, u64) {
    let heap_before = bytes_in_use();
    let hour = Some(std::time::Duration::from_secs(3600));
    let (mode, reaper, ttl) = match ttl {
        0 => (Eviction::Any, None, None),
        1 => (
            Eviction::WithTtl,
            Some(std::time::Duration::from_millis(10)),
            hour,
        ),
        _ => (Eviction::WithTtl, None, hour),
    };
    let store = MemoryDriver::builder()
        .max_bytes(max_bytes)
        .eviction(mode)
        .reap_interval(reaper)
        .build()
        .unwrap();
    let value = || Bytes::copy_from_slice(b"sixteen bytes!!!");
    write_namespaces(&store, 100_000, keys, value, ttl);
    let usage = store.usage().unwrap();
    let heap = (bytes_in_use() - heap_before) as u64;
    (usage, heap, store.namespace_tables() as u64)
}

/// Writes `keys` keys, each a `value()`, into each of `count` namespaces in turn (one a
/// user), each through a handle dropped after.
fn write_namespaces(
    store: &MemoryDriver,
    count: usize,
    keys: usize,
    value: fn() -> Bytes,
    ttl: Option<std::time::Duration>,
) {
    for user in 0..count {
        let ns = store
            .namespace::<String>("users", &format!("user-{user}"))
            .unwrap();
        for key in 0..keys {
            ready(ns.set(&format!("k{key}"), value(), ttl)).unwrap();
        }
    }
}

/// SPEC 10.2 when entries go away: a store that held 100,000 small entries and deleted all
/// but 2,000 gives its tables back (they are rebuilt smaller once under a quarter full), and
/// the usage it reports still follows the heap it holds.
#[test]
fn a_store_whose_entries_went_away_gives_its_tables_back() {
    if std::env::var_os("NAMESTORE_BUDGET_CHILD").is_some() {
        let store = MemoryDriver::builder()
            .max_bytes(1 << 30)
            .eviction(Eviction::Any)
            .reap_interval(None)
            .build()
            .unwrap();
        let ns = store.namespace::<String>("load", "shrinking").unwrap();
        let _ = ready(ns.get(&"warm".to_owned())).unwrap();
        let keys: Vec<String> = (0..100_000).map(|n| format!("k{n}")).collect();
        let heap_empty = bytes_in_use();
        for key in &keys {
            let value = Bytes::copy_from_slice(b"sixteen bytes!!!");
            ready(ns.set(key, value, None)).unwrap();
        }
        let full = (bytes_in_use() - heap_empty) as u64;
        ready(ns.mdel(keys[2_000..].iter().cloned())).unwrap();
        let left = (bytes_in_use() - heap_empty) as u64;
        let usage = store.usage().unwrap().bytes;
        println!("RESULT {full} {left} {usage}");
        return;
    }
    let result = child("a_store_whose_entries_went_away_gives_its_tables_back", &[]);
    let [full, left, usage] = result[0][..] else {
        panic!("three numbers")
    };
    println!("100,000 entries: heap {full} bytes; 2,000 left: heap {left} bytes, usage {usage}");
    assert!(
        left * 10 < full,
        "2% of the entries left hold {left} of {full} bytes"
    );
    let off = usage.abs_diff(left) as f64 / left as f64;
    assert!(off <= 0.10, "usage {usage} for a heap of {left}");
}

/// SPEC 10.2 under every kind of write at once: 4 threads, each on its own keys, mix `set`
/// with and without a TTL (some of them short, so the reclaimer and reads find expired keys),
/// `incr`, `mset`, `mdel`, `delete`, `expire`, `persist`, `get_set`, `replace` and `cas`
/// against a 2 MiB budget in an evicting namespace, and the store's usage, once they are done,
/// is still within 2% of the heap it holds and within the budget.
#[test]
fn every_kind_of_write_is_charged_the_memory_it_holds() {
    if std::env::var_os("NAMESTORE_BUDGET_CHILD").is_some() {
        let (usage, heap) = mixed_writes(2 << 20);
        println!("RESULT {} {} {heap}", usage.bytes, usage.entries);
        return;
    }
    let result = child("every_kind_of_write_is_charged_the_memory_it_holds", &[]);
    let [usage, entries, heap] = result[0][..] else {
        panic!("three numbers")
    };
    let off = usage as f64 / heap as f64 - 1.0;
    println!(
        "mixed writes, 2 MiB budget: {entries} entries, usage {usage} bytes, heap held {heap} \
         bytes ({:+.1}%)",
        off * 100.0
    );
    assert!(usage <= 2 << 20, "usage {usage} over the budget");
    assert!(off.abs() <= 0.02, "usage {usage} for a heap of {heap}");
}

fn mixed_writes(max_bytes: u64) -> (MemoryUsage, u64) {
    use std::time::Duration;
    const THREADS: u64 = 4;
    let store = MemoryDriver::builder()
        .max_bytes(max_bytes)
        .eviction(Eviction::Any)
        .reap_interval(Some(Duration::from_millis(5)))
        .build()
        .unwrap();
    let ns = store.namespace::<String>("load", "mixed").unwrap();
    let _ = ready(ns.get(&"warm".to_owned())).unwrap();
    let heap_empty = bytes_in_use();
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let ns = ns.clone();
            scope.spawn(move || {
                let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (thread + 1);
                let mut next = || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                for _ in 0..150_000 {
                    let n = next();
                    let key = format!("t{thread}-{}", n % 20_000);
                    let size = [8, 16, 100, 1000][(n >> 20) as usize % 4];
                    let value = Bytes::from(vec![thread as u8; size]);
                    let ttl = match (n >> 24) % 4 {
                        0 => Some(Duration::from_millis(1 + (n >> 30) % 20)),
                        1 => Some(Duration::from_secs(60)),
                        _ => None,
                    };
                    // Answers may be errors (an `incr` of a value that is not a number):
                    // what matters is what the store holds after.
                    let _ = match (n >> 16) % 11 {
                        0 | 1 => ready(ns.set(&key, value, ttl)).map(|_| ()),
                        2 => ready(ns.incr(&key, 1)).map(|_| ()),
                        3 => {
                            // Each value its own buffer: one shared by several keys is
                            // charged to each (the budget then holds less, never more).
                            let keys: Vec<String> = (0..5).map(|i| format!("{key}.{i}")).collect();
                            let pairs = keys.iter().map(|k| (k, Bytes::copy_from_slice(&value)));
                            let stored = ready(ns.mset(pairs, ttl));
                            let _ = ready(ns.mget(&keys));
                            stored
                        }
                        4 => ready(ns.mdel((0..5).map(|i| format!("{key}.{i}")))).map(|_| ()),
                        5 => ready(ns.delete(&key)).map(|_| ()),
                        6 => ready(ns.expire(&key, Duration::from_millis(3))).map(|_| ()),
                        7 => ready(ns.persist(&key)).map(|_| ()),
                        8 => ready(ns.get_set(&key, value, ttl)).map(|_| ()),
                        9 => ready(ns.replace(&key, value, ttl)).map(|_| ()),
                        _ => ready(ns.cas(&key, [thread as u8; 16], value, ttl)).map(|_| ()),
                    };
                    let _ = ready(ns.get(&key));
                }
            });
        }
    });
    // The short TTLs run out and the reclaimer takes what it finds.
    std::thread::sleep(Duration::from_millis(100));
    let usage = store.usage().unwrap();
    let heap = (bytes_in_use() - heap_empty) as u64;
    (usage, heap)
}
