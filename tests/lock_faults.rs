//! Locks when a call fails halfway through an acquisition: the caller gets the error and the
//! lock is free again at once, not held by nobody until its lease runs out. Each step is
//! failed both before it reaches the store and after the store applied it (a timeout whose
//! command ran: the caller cannot tell which).

#[path = "support/faulty.rs"]
mod faulty;

use std::time::Duration;

use faulty::{Fault, Faulty};
use namestore::lock::Lock;
use namestore::{ErrorKind, MemoryDriver, Namespace};

#[tokio::test]
async fn a_failed_acquisition_leaves_the_lock_free() {
    for op in ["set_nx", "incr", "cas"] {
        for fault in [Fault::Before, Fault::After] {
            let store = Faulty::new(MemoryDriver::new());
            let ns = Namespace::<String, _>::new(store.clone(), "jobs", "locks").unwrap();
            let locks = Lock::new(ns, Duration::from_secs(3600)).unwrap();
            let name = "nightly".to_owned();
            store.fail_next(op, fault);
            let acquiring = locks.try_acquire(&name);
            assert_send(&acquiring);
            let failed = acquiring.await;
            assert!(
                store.all_struck(),
                "{op} {fault:?}: the fault was not reached"
            );
            let error = failed.expect_err("a failed step is the caller's error");
            assert_eq!(error.kind(), ErrorKind::Timeout, "{op} {fault:?}");
            let next = locks.try_acquire(&name).await.unwrap();
            assert!(
                next.is_some(),
                "{op} {fault:?}: the lock stayed held by an acquisition that failed"
            );
            // Tokens still only grow.
            assert!(next.unwrap().token() >= 1);
        }
    }
}

/// An acquisition can be spawned on a multi-threaded runtime.
fn assert_send<T: Send>(_: &T) {}
