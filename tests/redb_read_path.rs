//! The persistent driver's read path: a read of a live key is one read transaction on the
//! calling thread, answered on the future's first poll; and every call works without a tokio
//! runtime (what would go to the blocking pool runs on the caller's thread).
#![cfg(feature = "redb")]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Duration;

use bytes::Bytes;
use namestore::KeyTtl;
use namestore::drivers::redb::{RedbConfig, RedbDriver};
use scratch::scratch_dir;

#[path = "support/scratch.rs"]
mod scratch;

fn driver(tag: &str) -> RedbDriver {
    let path = scratch_dir("redb-read").join(format!("{tag}.redb"));
    let _ = std::fs::remove_file(&path);
    RedbDriver::open(RedbConfig::new(path)).unwrap()
}

/// Polls once, with a waker that does nothing: `Some` when the future answered at once.
fn first_poll<F: Future>(future: F) -> Option<F::Output> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// A minimal executor: polls on this thread, parking until woken. No tokio anywhere.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return output;
        }
        std::thread::park();
    }
}

#[test]
fn reads_of_live_keys_answer_on_first_poll() {
    let driver = driver("first-poll");
    let ns = driver.namespace::<String>("read", "path").unwrap();
    let keys: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
    block_on(ns.mset(keys.iter().map(|k| (k, "v")), None)).unwrap();
    block_on(ns.set(&"t".to_owned(), "v", Some(Duration::from_secs(3600)))).unwrap();

    let get = first_poll(ns.get(&"k1".to_owned())).expect("get waited");
    assert_eq!(get.unwrap(), Some(Bytes::from_static(b"v")));
    let missing = first_poll(ns.get(&"nope".to_owned())).expect("get of a missing key waited");
    assert_eq!(missing.unwrap(), None);
    assert!(
        first_poll(ns.exists(&"k2".to_owned()))
            .expect("exists waited")
            .unwrap()
    );
    match first_poll(ns.ttl(&"t".to_owned()))
        .expect("ttl waited")
        .unwrap()
    {
        KeyTtl::ExpiresIn(left) => assert!(left > Duration::from_secs(3500), "{left:?}"),
        other => panic!("ttl of a key with an hour left: {other:?}"),
    }
    let all = first_poll(ns.mget(keys.iter())).expect("an mget of 64 keys waited");
    assert_eq!(all.unwrap(), vec![Some(Bytes::from_static(b"v")); 64]);
}

#[test]
fn every_call_works_without_a_tokio_runtime() {
    let driver = driver("no-runtime");
    let ns = driver.namespace::<u64>("read", "plain").unwrap();
    block_on(ns.set(&1, "one", None)).unwrap();
    block_on(ns.set(&2, "two", Some(Duration::from_millis(1)))).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(
        block_on(ns.get(&1)).unwrap(),
        Some(Bytes::from_static(b"one"))
    );
    assert_eq!(
        block_on(ns.get(&2)).unwrap(),
        None,
        "an expired key was read"
    );
    assert_eq!(block_on(ns.incr(&3, 5)).unwrap(), 5);
    // A large batch and a listing go to the blocking pool under tokio; here, this thread.
    let many: Vec<u64> = (100..300).collect();
    block_on(ns.mset(many.iter().map(|k| (k, "m")), None)).unwrap();
    let read = block_on(ns.mget(many.iter())).unwrap();
    assert!(read.iter().all(|v| v.as_deref() == Some(&b"m"[..])));
    let mut keys = block_on(ns.keys("*")).unwrap();
    keys.sort_unstable();
    assert_eq!(keys.len(), 202);
    assert_eq!(&keys[..2], &[1, 3]);
    assert_eq!(block_on(ns.clear()).unwrap(), 202);
}
