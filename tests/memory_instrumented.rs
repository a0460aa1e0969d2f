//! The conformance suite on the memory driver behind the telemetry layer, with a subscriber
//! that records every span: the layer must change no answer (SPEC 12 is observation only).
#![cfg(feature = "tracing")]

use std::time::Duration;

use namestore::conformance::{Harness, Time};
use namestore::drivers::memory::ManualClock;
use namestore::{Instrumented, MemoryDriver};
use tracing_subscriber::layer::SubscriberExt;

fn harness() -> Harness<Instrumented<MemoryDriver>> {
    static SUBSCRIBER: std::sync::Once = std::sync::Once::new();
    SUBSCRIBER.call_once(|| {
        // Spans enabled down to TRACE, so every call takes the traced path, key included.
        let subscriber = tracing_subscriber::Registry::default()
            .with(tracing_subscriber::filter::LevelFilter::TRACE);
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
    let clock = ManualClock::new();
    let driver = MemoryDriver::builder()
        .manual_clock(clock.clone())
        .reap_interval(Some(Duration::from_millis(5)))
        .build()
        .expect("memory driver");
    Harness::new(Instrumented::new(driver), Time::Manual(clock))
        .with_stored_entries(|driver, _| driver.inner().stored_entries())
}

namestore::conformance_tests!(harness());
