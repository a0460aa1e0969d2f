//! Cache-aside reads (`get_or_load`) beyond the conformance rule every driver keeps: a caller
//! dropped while it loads, a failed load with callers waiting on it, typed values, and
//! callers on other executors than tokio's.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[path = "support/faulty.rs"]
mod faulty;

use bytes::Bytes;
use namestore::MemoryDriver;
use namestore::codec::Json;
use namestore::load::LoadError;

fn key(k: &str) -> String {
    k.to_owned()
}

/// How the caller that loads goes before its load is done.
#[derive(Clone, Copy, PartialEq)]
enum Gone {
    /// Dropped (a request timing out, a client gone).
    Dropped,
    /// Its load panicked.
    Panicked,
}

/// The next waiter loads once the caller loading before it is gone: the key's turn is not
/// held by a load nobody waits for.
async fn the_next_loads_when_the_loader_goes(gone: Gone) {
    let ns = MemoryDriver::new()
        .namespace::<String>("load", "gone")
        .unwrap();
    let started = Arc::new(tokio::sync::Notify::new());
    let (go, told) = tokio::sync::oneshot::channel::<()>();
    let first = {
        let (ns, started) = (ns.clone(), Arc::clone(&started));
        tokio::spawn(async move {
            ns.get_or_load(&key("k"), None, || async move {
                started.notify_one();
                let _ = told.await;
                assert!(gone != Gone::Panicked, "a load that panics (this test's)");
                std::future::pending::<Result<Bytes, std::io::Error>>().await
            })
            .await
        })
    };
    started.notified().await;
    let second = {
        let ns = ns.clone();
        tokio::spawn(async move {
            ns.get_or_load(&key("k"), None, || async {
                Ok::<_, std::io::Error>(Bytes::from_static(b"second"))
            })
            .await
        })
    };
    // The second waits for the first's turn...
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !second.is_finished(),
        "it did not wait for the load under way"
    );
    // ...which ends when the first caller goes.
    match gone {
        Gone::Dropped => first.abort(),
        Gone::Panicked => {
            go.send(()).unwrap();
            assert!(first.await.unwrap_err().is_panic());
        }
    }
    let second = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("the gone caller's turn was never given up")
        .unwrap();
    assert_eq!(second.unwrap(), "second");
    assert_eq!(ns.get(&key("k")).await.unwrap().unwrap(), "second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_dropped_while_it_loads_lets_the_next_load() {
    the_next_loads_when_the_loader_goes(Gone::Dropped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_that_panics_lets_the_next_load() {
    the_next_loads_when_the_loader_goes(Gone::Panicked).await;
}

/// A load that fails gives its error to its own caller only: the callers waiting on it load
/// in turn, one at a time, and the first that succeeds stores the value for the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_load_fails_only_its_caller() {
    let ns = MemoryDriver::new()
        .namespace::<String>("load", "errors")
        .unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (ns, loads) = (ns.clone(), Arc::clone(&loads));
            tokio::spawn(async move {
                ns.get_or_load(&key("k"), None, || async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    // The first two loads fail.
                    match loads.fetch_add(1, Ordering::SeqCst) {
                        0 | 1 => Err(std::io::Error::other("not yet")),
                        _ => Ok(Bytes::from_static(b"value")),
                    }
                })
                .await
            })
        })
        .collect();
    let mut failed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(value) => assert_eq!(value, "value"),
            Err(LoadError::Load(e)) => {
                assert_eq!(e.to_string(), "not yet");
                failed += 1;
            }
            Err(LoadError::Store(e)) => panic!("the store failed: {e}"),
        }
    }
    assert_eq!(
        failed, 2,
        "each failed load failed its own caller, no other"
    );
    assert_eq!(
        loads.load(Ordering::SeqCst),
        3,
        "loads after the value was stored"
    );
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Profile {
    name: String,
    visits: u64,
}

/// Typed namespaces load values of their own type, encoded once for the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_values_are_loaded_and_stored_encoded() {
    let bytes = MemoryDriver::new()
        .namespace::<String>("load", "typed")
        .unwrap();
    let profiles = bytes.clone().with_codec(Json::<Profile>::new());
    let ada = Profile {
        name: "Ada".into(),
        visits: u64::MAX,
    };
    let loaded = profiles
        .get_or_load(&key("ada"), Some(Duration::from_secs(60)), || {
            let ada = ada.clone();
            async move { Ok::<_, std::io::Error>(ada) }
        })
        .await
        .unwrap();
    assert_eq!(loaded, ada);
    let stored = bytes.get(&key("ada")).await.unwrap().unwrap();
    assert_eq!(stored, r#"{"name":"Ada","visits":18446744073709551615}"#);
    let hit = profiles
        .get_or_load(&key("ada"), None, || async {
            Err::<Profile, _>(std::io::Error::other("loaded on a hit"))
        })
        .await
        .unwrap();
    assert_eq!(hit, ada);
}

/// The shape an earlier build gave the profile.
#[derive(serde::Serialize, serde::Deserialize)]
struct OldProfile {
    full_name: String,
}

/// A stored value the codec cannot decode (written by an earlier build whose type had another
/// shape) is a miss: loaded once for every caller at once, and overwritten, so the next read
/// is a hit. Before, every `get_or_load` of such a key failed with `Decode` until its TTL ran
/// out (a deploy that changed a cached type failed the requests of every cached key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_an_earlier_type_stored_is_loaded_over() {
    let bytes = MemoryDriver::new()
        .namespace::<String>("load", "schema")
        .unwrap();
    let old = bytes.clone().with_codec(Json::<OldProfile>::new());
    let profiles = bytes.clone().with_codec(Json::<Profile>::new());
    let ttl = Some(Duration::from_secs(60));
    let was = OldProfile {
        full_name: "Ada".into(),
    };
    old.set(&key("ada"), &was, ttl).await.unwrap();
    let read = profiles.get(&key("ada")).await.unwrap_err();
    assert_eq!(read.kind(), namestore::ErrorKind::Decode);

    let loads = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (profiles, loads) = (profiles.clone(), Arc::clone(&loads));
            tokio::spawn(async move {
                profiles
                    .get_or_load(&key("ada"), ttl, || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, std::io::Error>(Profile {
                            name: "Ada".into(),
                            visits: 1,
                        })
                    })
                    .await
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap().visits, 1);
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "one load for eight callers"
    );
    assert_eq!(profiles.get(&key("ada")).await.unwrap().unwrap().visits, 1);

    // A load that fails leaves the old value as it was.
    old.set(&key("grace"), &was, ttl).await.unwrap();
    let failed = profiles
        .get_or_load(&key("grace"), ttl, || async {
            Err::<Profile, _>(std::io::Error::other("the database is down"))
        })
        .await;
    assert!(matches!(failed, Err(LoadError::Load(_))), "{failed:?}");
    assert!(bytes.get(&key("grace")).await.unwrap().is_some());
}

/// Runs `future` on this thread, parked between polls: no runtime at all.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut context = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

/// Waiting needs no tokio: callers on plain threads, each blocking on its own call, coalesce
/// and are woken when the load is done.
#[test]
fn callers_without_a_runtime_coalesce() {
    let ns = MemoryDriver::new()
        .namespace::<String>("load", "threads")
        .unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (ns, loads) = (ns.clone(), Arc::clone(&loads));
            std::thread::spawn(move || {
                block_on(ns.get_or_load(&key("k"), None, || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(200));
                    Ok::<_, std::io::Error>(Bytes::from_static(b"value"))
                }))
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap().unwrap(), "value");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

/// A caller whose read missed while a load was in flight, and whose turn came only after that
/// flight had ended (its miss answered late), reads the key again and gets what was stored,
/// rather than loading it a second time. Before, it loaded again: a herd's late member, or a
/// slow read, doubled the load the flight was there to save.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_whose_miss_came_late_reads_what_the_flight_stored() {
    let store = faulty::Faulty::new(MemoryDriver::new());
    let ns = namestore::Namespace::<String, _>::new(store.clone(), "app", "late").unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let load = |value: &'static str| {
        let loads = Arc::clone(&loads);
        move || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from_static(value.as_bytes()))
        }
    };
    // The late caller's read runs now, and finds nothing; its answer comes after the flight.
    let gate = store.hold_next("get");
    let late = tokio::spawn({
        let ns = ns.clone();
        let load = load("second");
        async move { ns.get_or_load(&key("k"), None, load).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let first = ns.get_or_load(&key("k"), None, load("first")).await;
    assert_eq!(first.unwrap(), "first");
    gate.notify_one();
    let late = late.await.unwrap().unwrap();
    assert_eq!(late, "first", "the late caller loaded again");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}
