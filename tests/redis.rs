//! The conformance suite on the Redis driver, against real `redis-server` processes started
//! here on free loopback ports (one per test, so each test's `DBSIZE` counts only its keys).
//! Needs `redis-server` on the PATH (`apt-get install redis-server`); `.ci/run` installs it.
#![cfg(feature = "redis")]

mod support;

use namestore::conformance::{Harness, Time};
use namestore::drivers::redis::RedisDriver;

fn harness() -> Harness<RedisDriver> {
    let url = support::start_server(support::free_port(), "");
    let driver = RedisDriver::from_url(&format!("{url}?response_timeout_ms=30000")).unwrap();
    // Keys the server holds, expired ones it has not reclaimed yet included.
    Harness::new(driver, Time::Real).with_stored_entries(move |_, _| support::stored_keys(&url))
}

namestore::conformance_tests!(harness());
