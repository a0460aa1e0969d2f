//! SPEC 10.6: the memory driver's victims keep the hit ratio high. On the first 100,000
//! requests of the ARC paper's OLTP trace (in `tests/data`, cited there), a store capped at
//! 1,000 entries hits more often than an exact LRU of the same size, with either policy the
//! driver offers as default; and a one-time sweep over ten times the cache does not flush the
//! hot set.

#[path = "support/replay.rs"]
mod replay;

use namestore::drivers::memory::Policy;
use replay::{Lru, Namestore, hit_ratio, load_trace, scan_workload};

#[test]
fn the_default_policy_beats_lru_on_oltp() {
    let trace =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/OLTP-100k.lis.zst");
    let accesses = load_trace(&trace);
    assert_eq!(
        accesses.len(),
        100_000,
        "the trace's first 100,000 requests, one block each"
    );
    let lru = hit_ratio(&mut Lru::new(1000), &accesses);
    let s3fifo = hit_ratio(
        &mut Namestore::new(1000, Policy::default(), None),
        &accesses,
    );
    println!(
        "OLTP, first 100k requests, 1000 entries: LRU {:.2}%, S3-FIFO {:.2}%",
        lru * 100.0,
        s3fifo * 100.0
    );
    assert!(
        s3fifo > lru,
        "S3-FIFO {s3fifo:.4} is not above LRU {lru:.4}"
    );
}

#[test]
fn a_sweep_does_not_flush_the_hot_set() {
    let size = 1000;
    let (accesses, start, end) = scan_workload(5_000, 100_000, 10 * size, 0x5ca7);
    let mut store = Namestore::new(size, Policy::default(), None);
    let mut lru = Lru::new(size);
    let before = hit_ratio(&mut store, &accesses[..start]);
    hit_ratio(&mut lru, &accesses[..start]);
    hit_ratio(&mut store, &accesses[start..end]);
    hit_ratio(&mut lru, &accesses[start..end]);
    // Right after the sweep: what survived of the hot set.
    let window = &accesses[end..end + 5_000];
    let (after, lru_after) = (hit_ratio(&mut store, window), hit_ratio(&mut lru, window));
    println!(
        "hot set: {:.2}% before the sweep, {:.2}% just after (LRU: {:.2}%)",
        before * 100.0,
        after * 100.0,
        lru_after * 100.0
    );
    assert!(
        after > lru_after + 0.05,
        "the sweep flushed the hot set: {after:.4} vs LRU {lru_after:.4}"
    );
    assert!(
        after > before * 0.9,
        "the hot set lost its hits: {after:.4} after, {before:.4} before"
    );
}
