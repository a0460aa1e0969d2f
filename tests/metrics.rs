//! SPEC 12 through the `metrics` facade: call counts and latency by namespace, operation,
//! driver and outcome, hits and misses of reads; labels never hold a key.
#![cfg(feature = "metrics")]

use std::collections::HashMap;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use namestore::instrument::meter::{DURATION, EVICTIONS, HITS, MISSES, OPERATIONS};
use namestore::{Instrumented, MemoryDriver, Namespace};

#[path = "support/ready.rs"]
mod support_ready;

use support_ready::ready;

/// Every metric recorded while `work` ran, by name and sorted labels.
fn recorded(work: impl FnOnce()) -> HashMap<(String, Vec<(String, String)>), DebugValue> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, work);
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (_, key) = key.into_parts();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            ((key.name().to_owned(), labels), value)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    labels
}

#[test]
fn calls_latency_hits_and_misses_by_namespace_operation_driver_and_outcome() {
    let ns =
        Namespace::<String, _>::new(Instrumented::new(MemoryDriver::new()), "app", "m").unwrap();
    let metrics = recorded(|| {
        ready(ns.set(&"user:secret-key".to_owned(), "v", None)).unwrap();
        ready(ns.get(&"user:secret-key".to_owned())).unwrap();
        ready(ns.get(&"absent".to_owned())).unwrap();
        ready(ns.get(&"absent".to_owned())).unwrap();
        ready(ns.incr(&"user:secret-key".to_owned(), 1)).unwrap_err();
    });
    let of = |name: &str, pairs: &[(&str, &str)]| metrics.get(&(name.to_owned(), labels(pairs)));
    let get_ok = [
        ("namespace", "app:m"),
        ("operation", "get"),
        ("driver", "memory"),
        ("outcome", "ok"),
    ];
    assert_eq!(of(OPERATIONS, &get_ok), Some(&DebugValue::Counter(3)));
    match of(DURATION, &get_ok) {
        Some(DebugValue::Histogram(samples)) => {
            assert_eq!(samples.len(), 3);
            assert!(
                samples.iter().all(|s| s.0 >= 0.0 && s.0 < 1.0),
                "{samples:?}"
            );
        }
        other => panic!("no latency histogram for get: {other:?}"),
    }
    let get = [
        ("namespace", "app:m"),
        ("operation", "get"),
        ("driver", "memory"),
    ];
    assert_eq!(of(HITS, &get), Some(&DebugValue::Counter(1)));
    assert_eq!(of(MISSES, &get), Some(&DebugValue::Counter(2)));
    let set_ok = [
        ("namespace", "app:m"),
        ("operation", "set"),
        ("driver", "memory"),
        ("outcome", "ok"),
    ];
    assert_eq!(of(OPERATIONS, &set_ok), Some(&DebugValue::Counter(1)));
    let incr_failed = [
        ("namespace", "app:m"),
        ("operation", "incr"),
        ("driver", "memory"),
        ("outcome", "not_an_integer"),
    ];
    assert_eq!(of(OPERATIONS, &incr_failed), Some(&DebugValue::Counter(1)));
    for (_, labels) in metrics.keys() {
        for (_, value) in labels {
            assert!(
                !value.contains("secret-key") && value != "absent",
                "a key in a label: {labels:?}"
            );
        }
    }
}

#[test]
fn listings_are_counted_once_when_they_end() {
    use futures_util::StreamExt;
    use namestore::Driver;

    let store = Instrumented::new(MemoryDriver::new());
    let ns = Namespace::<String, _>::new(store.clone(), "app", "list").unwrap();
    ready(ns.set(&"k".to_owned(), "v", None)).unwrap();
    let metrics = recorded(|| {
        assert_eq!(ready(ns.keys("*")).unwrap(), ["k"]);
        assert_eq!(ready(store.namespaces().collect::<Vec<_>>()).len(), 1);
        // A listing dropped before its end is not counted.
        drop(ready(ns.scan("*").unwrap().into_future()));
    });
    let of = |name: &str, pairs: &[(&str, &str)]| metrics.get(&(name.to_owned(), labels(pairs)));
    let scan = [
        ("namespace", "app:list"),
        ("operation", "scan"),
        ("driver", "memory"),
        ("outcome", "ok"),
    ];
    assert_eq!(of(OPERATIONS, &scan), Some(&DebugValue::Counter(1)));
    assert!(matches!(of(DURATION, &scan), Some(DebugValue::Histogram(s)) if s.len() == 1));
    let namespaces = [
        ("namespace", ""),
        ("operation", "namespaces"),
        ("driver", "memory"),
        ("outcome", "ok"),
    ];
    assert_eq!(of(OPERATIONS, &namespaces), Some(&DebugValue::Counter(1)));
}

#[test]
fn without_a_recorder_nothing_is_recorded_and_calls_answer() {
    let ns = Namespace::<String, _>::new(Instrumented::new(MemoryDriver::new()), "app", "quiet")
        .unwrap();
    ready(ns.set(&"k".to_owned(), "v", None)).unwrap();
    assert_eq!(
        ready(ns.get(&"k".to_owned())).unwrap().as_deref(),
        Some(&b"v"[..])
    );
    // A recorder installed afterwards sees the calls made from then on.
    let metrics = recorded(|| {
        ready(ns.exists(&"k".to_owned())).unwrap();
    });
    assert_eq!(metrics.len(), 3, "{:?}", metrics.keys().collect::<Vec<_>>());
}

/// The memory driver exports the evictions and expirations of a namespace opened through the
/// layer; a namespace that was not (here one a user, as a program makes them from its data)
/// makes no series, even as its keys expire or are evicted.
#[test]
fn the_memory_driver_exports_evictions_and_expirations() {
    use namestore::drivers::memory::{Eviction, ManualClock};
    use namestore::instrument::meter::EXPIRATIONS;

    let clock = ManualClock::new();
    let store = MemoryDriver::builder()
        .max_entries(2)
        .eviction(Eviction::Any)
        .manual_clock(clock.clone())
        .reap_interval(None)
        .build()
        .unwrap();
    let ns = Namespace::<String, _>::new(Instrumented::new(store.clone()), "app", "cache").unwrap();
    let users: Vec<_> = (0..20)
        .map(|user| {
            store
                .namespace::<String>("users", &format!("u{user}"))
                .unwrap()
        })
        .collect();
    let metrics = recorded(|| {
        for user in &users {
            ready(user.set(
                &"session".to_owned(),
                "v",
                Some(std::time::Duration::from_millis(500)),
            ))
            .unwrap();
        }
        for i in 0..5 {
            ready(ns.set(&format!("k{i}"), "v", None)).unwrap();
        }
        ready(ns.set(
            &"t".to_owned(),
            "v",
            Some(std::time::Duration::from_secs(1)),
        ))
        .unwrap();
        clock.advance(std::time::Duration::from_secs(2));
        assert_eq!(ready(ns.get(&"t".to_owned())).unwrap(), None);
        ready(ns.set(&"after".to_owned(), "v", None)).unwrap();
    });
    let stats = store.namespace_stats();
    let stats = stats
        .iter()
        .find(|s| s.name.to_string() == "app:cache")
        .unwrap();
    let of = |name: &str| {
        metrics.get(&(
            name.to_owned(),
            labels(&[("namespace", "app:cache"), ("driver", "memory")]),
        ))
    };
    assert_eq!(of(EVICTIONS), Some(&DebugValue::Counter(stats.evicted)));
    assert!(stats.evicted >= 3, "{stats:?}");
    assert_eq!(of(EXPIRATIONS), Some(&DebugValue::Counter(stats.expired)));
    assert!(stats.expired >= 1, "{stats:?}");
    // The users' namespaces lost their keys too (evicted or expired), and made no series.
    let removed: u64 = store
        .namespace_stats()
        .iter()
        .filter(|s| s.name.root() == "users")
        .map(|s| s.evicted + s.expired)
        .sum();
    assert!(removed >= 18, "{removed}");
    let series: Vec<_> = metrics.keys().collect();
    assert!(
        series
            .iter()
            .all(|(_, labels)| !format!("{labels:?}").contains("users")),
        "{series:?}"
    );
}

/// Local recorders made in turn, in the same place (so likely at the same address, the first
/// dropped before the second is made), each count the calls made under them: a namespace
/// keeps its registered metrics only for the global recorder.
#[test]
fn local_recorders_made_in_turn_each_count_their_calls() {
    use namestore::drivers::memory::Eviction;

    let store = MemoryDriver::builder()
        .max_entries(2)
        .eviction(Eviction::Any)
        .reap_interval(None)
        .build()
        .unwrap();
    let ns = Namespace::<String, _>::new(Instrumented::new(store.clone()), "app", "turns").unwrap();
    let get = [
        ("namespace", "app:turns"),
        ("operation", "get"),
        ("driver", "memory"),
    ];
    let get_ok = [get.as_slice(), &[("outcome", "ok")]].concat();
    let removals = [("namespace", "app:turns"), ("driver", "memory")];
    for turn in 0..3u64 {
        let before = store.namespace_stats().first().map_or(0, |s| s.evicted);
        let metrics = recorded(|| {
            for i in 0..10 {
                let key = format!("k{turn}-{i}");
                ready(ns.set(&key, "v", None)).unwrap();
                ready(ns.get(&key)).unwrap().unwrap();
            }
        });
        let evicted = store.namespace_stats()[0].evicted - before;
        assert!(evicted >= 8, "turn {turn}: {evicted}");
        let of =
            |name: &str, pairs: &[(&str, &str)]| metrics.get(&(name.to_owned(), labels(pairs)));
        assert_eq!(
            of(OPERATIONS, &get_ok),
            Some(&DebugValue::Counter(10)),
            "turn {turn}"
        );
        assert_eq!(
            of(HITS, &get),
            Some(&DebugValue::Counter(10)),
            "turn {turn}"
        );
        assert_eq!(
            of(EVICTIONS, &removals),
            Some(&DebugValue::Counter(evicted)),
            "turn {turn}"
        );
    }
}

/// Redis's connection failures are counted by kind (`unavailable` here); no label holds the
/// URL's password.
#[cfg(feature = "redis")]
#[test]
fn redis_connection_failures_are_counted_by_kind() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!(
        "redis://user:s3cr3t%3F%40@127.0.0.1:{port}/0?connect_timeout_ms=300&response_timeout_ms=300&telemetry=1"
    );
    let store = namestore::open(&url).unwrap();
    let ns = store.namespace::<String>("app", "down").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let metrics = recorded(|| {
        let error = runtime.block_on(ns.get(&"k".to_owned())).unwrap_err();
        assert_eq!(error.kind(), namestore::ErrorKind::Unavailable, "{error}");
    });
    let failed = labels(&[
        ("namespace", "app:down"),
        ("operation", "get"),
        ("driver", "redis"),
        ("outcome", "unavailable"),
    ]);
    assert_eq!(
        metrics.get(&(OPERATIONS.to_owned(), failed)),
        Some(&DebugValue::Counter(1))
    );
    for (_, labels) in metrics.keys() {
        for (_, value) in labels {
            assert!(
                !value.contains("s3cr3t"),
                "a password in a label: {labels:?}"
            );
        }
    }
}

/// A recorder that panics whenever a metric is registered with it (not zero-sized: one of
/// that size is taken for the facade's no-op recorder).
struct Panicking(#[allow(dead_code)] u8);

impl metrics::Recorder for Panicking {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        panic!("the recorder failed");
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        panic!("the recorder failed");
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        panic!("the recorder failed");
    }
}

/// A recorder that panics while a memory store counts its evictions fails the writes that
/// evicted, and leaves the budget as the entries left it: the store's usage is what its
/// namespaces are charged, its entries their keys, whichever namespace the victims came from
/// (a write evicting from another namespace holding its own shard's lock lost the victim's
/// room for good when the count panicked there).
#[test]
fn a_recorder_that_panics_while_evictions_are_counted_leaves_the_budget_whole() {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use namestore::drivers::memory::Eviction;

    let store = MemoryDriver::builder()
        .max_bytes(1 << 20)
        .eviction(Eviction::Any)
        .reap_interval(None)
        .build()
        .unwrap();
    // Both namespaces opened through the layer once, so that their removals are exported;
    // the writes go through plain handles, so that only the count of their evictions calls
    // the recorder.
    let layered = Instrumented::new(store.clone());
    let _exported = ["pages", "sessions"]
        .map(|domain| Namespace::<String, _>::new(layered.clone(), "app", domain).unwrap());
    let pages = store.namespace::<String>("app", "pages").unwrap();
    for i in 0..20_000 {
        ready(pages.set(&format!("k{i}"), vec![0u8; 100], None)).unwrap();
    }
    let sessions = store.namespace::<String>("app", "sessions").unwrap();
    let panicked = metrics::with_local_recorder(&Panicking(0), || {
        (0..2_000)
            .filter(|i| {
                let write = || ready(sessions.set(&format!("k{i}"), vec![1u8; 100], None));
                catch_unwind(AssertUnwindSafe(write)).is_err()
            })
            .count()
    });
    // A write into the full store evicts, and the eviction is counted: it fails. (Not every
    // write: one that failed after it evicted left the victim's room for the next.)
    assert!(panicked >= 500, "{panicked} writes of 2,000 failed");
    let balanced = |when: &str| {
        let usage = store.usage().unwrap();
        let stats = store.namespace_stats();
        let bytes: u64 = stats.iter().map(|s| s.bytes.unwrap()).sum();
        let keys: u64 = stats.iter().map(|s| s.keys).sum();
        assert_eq!((usage.bytes, usage.entries), (bytes, keys), "{when}");
        assert!(usage.bytes <= 1 << 20, "{when}: {usage:?}");
    };
    balanced("after the panics");
    // The store goes on, its locks and budget as they were.
    for i in 0..20_000 {
        ready(sessions.set(&format!("k{i}"), vec![1u8; 100], None)).unwrap();
    }
    balanced("written again");
    ready(pages.clear()).unwrap();
    ready(sessions.clear()).unwrap();
    let usage = store.usage().unwrap();
    assert_eq!(usage.entries, 0);
}
