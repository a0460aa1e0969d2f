//! SPEC 12.1 under the global recorder (`metrics::set_global_recorder`, as a service installs
//! its exporter): each metric of a namespace is registered with it once, and counted through
//! the handle after. Its own test binary: the global recorder is the whole process's.
#![cfg(feature = "metrics")]

use std::sync::atomic::{AtomicUsize, Ordering};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use namestore::drivers::memory::Eviction;
use namestore::instrument::meter::{EVICTIONS, HITS, MISSES, OPERATIONS};
use namestore::{ErrorKind, Instrumented, MemoryDriver, Namespace};

#[path = "support/ready.rs"]
mod support_ready;

use support_ready::ready;

/// A `DebuggingRecorder` that counts the metrics registered with it.
struct Counting {
    inner: DebuggingRecorder,
    registered: &'static AtomicUsize,
}

impl metrics::Recorder for Counting {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, text: SharedString) {
        self.inner.describe_counter(key, unit, text);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, text: SharedString) {
        self.inner.describe_gauge(key, unit, text);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, text: SharedString) {
        self.inner.describe_histogram(key, unit, text);
    }
    fn register_counter(&self, key: &Key, meta: &Metadata<'_>) -> Counter {
        self.registered.fetch_add(1, Ordering::Relaxed);
        self.inner.register_counter(key, meta)
    }
    fn register_gauge(&self, key: &Key, meta: &Metadata<'_>) -> Gauge {
        self.registered.fetch_add(1, Ordering::Relaxed);
        self.inner.register_gauge(key, meta)
    }
    fn register_histogram(&self, key: &Key, meta: &Metadata<'_>) -> Histogram {
        self.registered.fetch_add(1, Ordering::Relaxed);
        self.inner.register_histogram(key, meta)
    }
}

/// The counters the recorder took since last asked (a snapshot takes them), by name and
/// labels.
struct Counts(Vec<(Key, u64)>);

impl Counts {
    fn of(snapshotter: &Snapshotter) -> Self {
        Counts(
            snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .filter_map(|(key, _, _, value)| match value {
                    DebugValue::Counter(n) => Some((key.key().clone(), n)),
                    _ => None,
                })
                .collect(),
        )
    }

    /// The count of `name` with `labels` (in any order).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        self.0.iter().find_map(|(key, n)| {
            let same = key.name() == name
                && key.labels().count() == labels.len()
                && labels
                    .iter()
                    .all(|&(k, v)| key.labels().any(|l| l.key() == k && l.value() == v));
            same.then_some(*n)
        })
    }
}

#[test]
fn each_metric_is_registered_once_with_the_global_recorder() {
    static REGISTERED: AtomicUsize = AtomicUsize::new(0);
    let inner = DebuggingRecorder::new();
    let snapshotter = inner.snapshotter();
    metrics::set_global_recorder(Counting {
        inner,
        registered: &REGISTERED,
    })
    .unwrap();

    let store = MemoryDriver::builder()
        .max_entries(2)
        .eviction(Eviction::Any)
        .reap_interval(None)
        .build()
        .unwrap();
    let ns = Namespace::<String, _>::new(Instrumented::new(store.clone()), "app", "hot").unwrap();
    for i in 0..100 {
        ready(ns.set(&format!("k{i}"), "v", None)).unwrap();
        ready(ns.get(&format!("k{i}"))).unwrap().unwrap();
        assert_eq!(ready(ns.get(&"absent".to_owned())).unwrap(), None);
    }
    // `set`'s calls and latency, `get`'s calls, latency, hits and misses, and the evictions:
    // each once, not once a call (900 registrations).
    assert_eq!(REGISTERED.load(Ordering::Relaxed), 7);
    let evicted = store.namespace_stats()[0].evicted;
    assert_eq!(evicted, 98);
    let get = [
        ("namespace", "app:hot"),
        ("operation", "get"),
        ("driver", "memory"),
    ];
    let get_ok = [get.as_slice(), &[("outcome", "ok")]].concat();
    let removals = [("namespace", "app:hot"), ("driver", "memory")];
    let counts = Counts::of(&snapshotter);
    assert_eq!(counts.get(OPERATIONS, &get_ok), Some(200));
    assert_eq!(counts.get(HITS, &get), Some(100));
    assert_eq!(counts.get(MISSES, &get), Some(100));
    assert_eq!(counts.get(EVICTIONS, &removals), Some(evicted));

    // Under a local recorder, the calls are counted there, not in the global one.
    let local = DebuggingRecorder::new();
    let local_snapshotter = local.snapshotter();
    metrics::with_local_recorder(&local, || {
        for i in 0..10 {
            ready(ns.get(&format!("k{i}"))).unwrap();
        }
    });
    assert_eq!(
        Counts::of(&local_snapshotter).get(OPERATIONS, &get_ok),
        Some(10)
    );
    assert_eq!(Counts::of(&snapshotter).get(OPERATIONS, &get_ok), Some(0));
    // And the global one's handles are still the ones counted through.
    ready(ns.get(&"absent".to_owned())).unwrap();
    assert_eq!(Counts::of(&snapshotter).get(MISSES, &get), Some(1));
    assert_eq!(REGISTERED.load(Ordering::Relaxed), 7);

    // Failed calls too: each outcome's calls and latency once (200 registrations before).
    let full = MemoryDriver::builder()
        .max_entries(2)
        .eviction(Eviction::Never)
        .reap_interval(None)
        .build()
        .unwrap();
    let locks = Namespace::<String, _>::new(Instrumented::new(full), "app", "locks").unwrap();
    for key in ["a", "b"] {
        ready(locks.set(&key.to_owned(), "v", None)).unwrap();
    }
    for _ in 0..50 {
        let refused = ready(locks.set(&"c".to_owned(), "v", None)).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::OutOfMemory);
        let not_a_number = ready(ns.incr(&"k99".to_owned(), 1)).unwrap_err();
        assert_eq!(not_a_number.kind(), ErrorKind::NotAnInteger);
    }
    // `set`'s of the new namespace (ok, out_of_memory) and `incr`'s (not_an_integer): calls
    // and latency each.
    assert_eq!(REGISTERED.load(Ordering::Relaxed), 7 + 2 * 3);
    let counts = Counts::of(&snapshotter);
    let outcome = |namespace, operation, outcome| {
        let labels = [
            ("namespace", namespace),
            ("operation", operation),
            ("driver", "memory"),
            ("outcome", outcome),
        ];
        counts.get(OPERATIONS, &labels)
    };
    assert_eq!(outcome("app:locks", "set", "ok"), Some(2));
    assert_eq!(outcome("app:locks", "set", "out_of_memory"), Some(50));
    assert_eq!(outcome("app:hot", "incr", "not_an_integer"), Some(50));
    // A local recorder still gets a failed call of its own.
    let local = DebuggingRecorder::new();
    let local_snapshotter = local.snapshotter();
    metrics::with_local_recorder(&local, || {
        ready(locks.set(&"c".to_owned(), "v", None)).unwrap_err();
    });
    let refused = [
        ("namespace", "app:locks"),
        ("operation", "set"),
        ("driver", "memory"),
        ("outcome", "out_of_memory"),
    ];
    assert_eq!(
        Counts::of(&local_snapshotter).get(OPERATIONS, &refused),
        Some(1)
    );
    assert_eq!(Counts::of(&snapshotter).get(OPERATIONS, &refused), Some(0));
}
