//! The conformance suite on the persistent driver, one fresh database file per test.
#![cfg(feature = "redb")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use namestore::conformance::{Harness, Time};
use namestore::drivers::redb::{RedbConfig, RedbDriver};
use scratch::scratch_dir;

#[path = "support/scratch.rs"]
mod scratch;

fn fresh_file(tag: &str) -> std::path::PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    scratch_dir("redb").join(format!(
        "{tag}-{}.redb",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

fn harness() -> Harness<RedbDriver> {
    let mut config = RedbConfig::new(fresh_file("conformance"));
    config.reap_interval = Some(Duration::from_millis(20));
    let driver = RedbDriver::open(config).unwrap();
    // Every write waits for an fsync; on a loaded machine a test's writes before a TTL check
    // can take a while, so keys live 2 s rather than 0.5 s.
    Harness::new(driver, Time::Real)
        .with_real_ttl(Duration::from_secs(2))
        .with_stored_entries(|driver, name| driver.stored_entries(name.prefix()).unwrap())
}

namestore::conformance_tests!(harness());

/// The rules about racing expiry again with `durable = false`: commits are not flushed, so the
/// window between a write's decision and its commit is short, but it is still there.
mod not_durable {
    use super::*;

    fn harness() -> Harness<RedbDriver> {
        let mut config = RedbConfig::new(fresh_file("fast"));
        config.durable = false;
        config.reap_interval = Some(Duration::from_millis(20));
        Harness::new(RedbDriver::open(config).unwrap(), Time::Real)
            .with_real_ttl(Duration::from_secs(2))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_stays_expired() {
        namestore::conformance::expired_stays_expired(&harness()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn linearizable_with_expiry() {
        namestore::conformance::linearizable_with_expiry(&harness()).await;
    }
}
