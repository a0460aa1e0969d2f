//! The telemetry layer's cost with a recorder installed: Prometheus's exporter
//! (`metrics-exporter-prometheus`) as the process's global recorder, as a service installs it,
//! on 1000 live keys of the memory driver. Beside each row, the same call without the layer,
//! and under a local recorder of the same kind (`metrics::with_local_recorder`, as tests
//! install), through which a namespace registers its metrics again on every call; a call that
//! fails (its metrics labelled by the error's kind); and a memory store's evicting `set`, whose eviction is counted (SPEC 10.7, 12.1). Each row first
//! prints its allocations and bytes allocated per call, counted by a global allocator.
//!
//! Run: `cargo bench --bench telemetry --features metrics`.

use std::hint::black_box;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use namestore::drivers::memory::Eviction;
use namestore::{Instrumented, MemoryDriver, Namespace};

mod common;

use common::{ALLOCS, BYTES, Counting, ready};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const LIVE: usize = 1000;

struct Fixture {
    plain: Namespace<String, MemoryDriver>,
    layered: Namespace<String, Instrumented<MemoryDriver>>,
    /// A store capped at `LIVE` entries, and twice as many keys: every set evicts.
    full: Namespace<String, MemoryDriver>,
    /// The same namespace opened through the layer, which has its evictions exported (the
    /// rows write through `full`, so only the eviction's count calls the recorder).
    _exported: Namespace<String, Instrumented<MemoryDriver>>,
    /// A second exporter, installed locally around the rows that say so.
    local: PrometheusRecorder,
    keys: Vec<String>,
    value: Bytes,
}

impl Fixture {
    fn new() -> Self {
        let store = MemoryDriver::new();
        let plain = store.namespace::<String>("bench", "telemetry").unwrap();
        let layered =
            Namespace::new(Instrumented::new(store.clone()), "bench", "telemetry").unwrap();
        let bounded = MemoryDriver::builder()
            .max_entries(LIVE as u64)
            .max_bytes(1 << 40)
            .eviction(Eviction::Any)
            .build()
            .unwrap();
        let full = bounded.namespace::<String>("bench", "full").unwrap();
        let exported = Namespace::new(Instrumented::new(bounded), "bench", "full").unwrap();
        let keys: Vec<String> = (0..2 * LIVE).map(|i| format!("key:{i}")).collect();
        let value = Bytes::from_static(b"value-0123456789");
        for key in &keys[..LIVE] {
            ready(plain.set(key, value.clone(), None)).unwrap();
        }
        Fixture {
            plain,
            layered,
            full,
            _exported: exported,
            local: PrometheusBuilder::new().build_recorder(),
            keys,
            value,
        }
    }
}

fn operations(c: &mut Criterion) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let exported = recorder.handle();
    metrics::set_global_recorder(recorder).unwrap();
    let f = Fixture::new();
    let key = |i: usize| &f.keys[i % LIVE];
    let mut group = c.benchmark_group("telemetry");
    let mut i = 0;
    let mut row = |name: &str, call: &mut dyn FnMut(usize)| {
        const CALLS: usize = 10_000;
        for _ in 0..CALLS {
            i += 1;
            call(i);
        }
        let (allocs, bytes) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
        for _ in 0..CALLS {
            i += 1;
            call(i);
        }
        let per_call = |after: u64, before: u64| (after - before) as f64 / CALLS as f64;
        println!(
            "{name}: {:.2} allocations, {:.1} bytes a call",
            per_call(ALLOCS.load(Relaxed), allocs),
            per_call(BYTES.load(Relaxed), bytes)
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                call(i);
            })
        });
    };
    row("get, plain", &mut |i| {
        black_box(ready(f.plain.get(key(i))).unwrap());
    });
    row("get, through the layer", &mut |i| {
        black_box(ready(f.layered.get(key(i))).unwrap());
    });
    row("get, through the layer, under a local recorder", &mut |i| {
        metrics::with_local_recorder(&f.local, || {
            black_box(ready(f.layered.get(key(i))).unwrap());
        })
    });
    row("set (overwrite), plain", &mut |i| {
        ready(f.plain.set(key(i), f.value.clone(), None)).unwrap();
    });
    row("set (overwrite), through the layer", &mut |i| {
        ready(f.layered.set(key(i), f.value.clone(), None)).unwrap();
    });
    row(
        "set (overwrite), through the layer, under a local recorder",
        &mut |i| {
            metrics::with_local_recorder(&f.local, || {
                ready(f.layered.set(key(i), f.value.clone(), None)).unwrap();
            })
        },
    );
    // A call that fails (`incr` of a value that is not a number): its metrics are labelled by
    // the error's kind.
    row("incr, failing, plain", &mut |i| {
        ready(f.plain.incr(key(i), 1)).unwrap_err();
    });
    row("incr, failing, through the layer", &mut |i| {
        ready(f.layered.incr(key(i), 1)).unwrap_err();
    });
    // Round the 2 × LIVE keys in order: each set adds a key evicted long ago, and evicts one.
    row("set, evicting", &mut |i| {
        ready(f.full.set(&f.keys[i % (2 * LIVE)], f.value.clone(), None)).unwrap();
    });
    row("set, evicting, under a local recorder", &mut |i| {
        metrics::with_local_recorder(&f.local, || {
            ready(f.full.set(&f.keys[i % (2 * LIVE)], f.value.clone(), None)).unwrap();
        })
    });
    group.finish();
    // The exporter holds what was counted.
    let text = exported.render();
    assert!(text.contains("namestore_operations_total"), "{text}");
    assert!(text.contains("namestore_evictions_total"), "{text}");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = operations
}
criterion_main!(benches);
