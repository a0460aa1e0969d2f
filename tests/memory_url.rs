//! The conformance suite on the memory driver opened from a URL, as an `AnyDriver`, in real
//! time: a store opened from a URL behaves as one built in code (SPEC 9.2), and the suite's
//! real-time path, which server drivers use, is exercised here too.

use namestore::conformance::{Harness, Time};
use namestore::{AnyDriver, MemoryDriver};

fn harness() -> Harness<AnyDriver> {
    let driver = namestore::open("memory://?reap_interval_ms=10").expect("memory URL");
    Harness::new(driver, Time::Real).with_stored_entries(|driver, _| {
        driver
            .downcast_ref::<MemoryDriver>()
            .expect("a memory driver")
            .stored_entries()
    })
}

namestore::conformance_tests!(harness());
