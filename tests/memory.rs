//! The conformance suite on the memory driver built in code, on a manual clock: every TTL
//! test is instant and deterministic.

use std::time::Duration;

use namestore::MemoryDriver;
use namestore::conformance::{Harness, Time};
use namestore::drivers::memory::ManualClock;

fn harness() -> Harness<MemoryDriver> {
    let clock = ManualClock::new();
    let driver = MemoryDriver::builder()
        .manual_clock(clock.clone())
        .reap_interval(Some(Duration::from_millis(5)))
        .build()
        .expect("memory driver");
    Harness::new(driver, Time::Manual(clock))
        .with_stored_entries(|driver, _| driver.stored_entries())
}

namestore::conformance_tests!(harness());
