//! The conformance suite on memory stores with a budget that nothing reaches (every write is
//! accounted, nothing is evicted), with each eviction policy and in `never` mode: a budget
//! changes no rule of SPEC 1-9.

use namestore::conformance::{Harness, Time};
use namestore::drivers::memory::{Eviction, ManualClock, MemoryDriver, Policy};

fn harness(policy: Policy) -> Harness<MemoryDriver> {
    harness_in(Eviction::Any, policy)
}

fn harness_in(mode: Eviction, policy: Policy) -> Harness<MemoryDriver> {
    let clock = ManualClock::new();
    let driver = MemoryDriver::builder()
        .manual_clock(clock.clone())
        .max_bytes(1 << 40)
        .max_entries(1 << 40)
        .eviction(mode)
        .policy(policy)
        .reap_interval(Some(std::time::Duration::from_millis(5)))
        .build()
        .unwrap();
    Harness::new(driver, Time::Manual(clock))
        .with_stored_entries(|driver, _| driver.stored_entries())
}

mod s3_fifo {
    use super::*;
    namestore::conformance_tests!(harness(Policy::S3Fifo));
}

mod sampled_lru {
    use super::*;
    namestore::conformance_tests!(harness(Policy::SampledLru));
}

/// Namespaces that may not evict: what locks need (in `any` mode, `locks` checks only that
/// a lock refuses the namespace).
mod never {
    use super::*;
    namestore::conformance_tests!(harness_in(Eviction::Never, Policy::S3Fifo));
}
