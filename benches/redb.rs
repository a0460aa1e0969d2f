//! The persistent driver in both durability modes against the in-memory driver, in one run:
//! single calls, and write throughput with 1, 8 and 64 concurrent writers (group commit).
//!
//! Run: `cargo bench --features redb --bench redb`.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use namestore::drivers::redb::{RedbConfig, RedbDriver};
use namestore::{AnyDriver, MemoryDriver, Namespace};

const LIVE: usize = 1000;

fn stores() -> Vec<(&'static str, Namespace<String, AnyDriver>)> {
    let dir = std::env::temp_dir().join(format!("namestore-redb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let redb = |file: &str, durable: bool| {
        let path = dir.join(file);
        let _ = std::fs::remove_file(&path);
        let mut config = RedbConfig::new(path);
        config.durable = durable;
        AnyDriver::new(RedbDriver::open(config).unwrap())
    };
    vec![
        (
            "redb durable",
            redb("durable.redb", true)
                .namespace("bench", "redb")
                .unwrap(),
        ),
        (
            "redb fast",
            redb("fast.redb", false).namespace("bench", "redb").unwrap(),
        ),
        (
            "memory",
            AnyDriver::new(MemoryDriver::new())
                .namespace("bench", "redb")
                .unwrap(),
        ),
    ]
}

fn redb_vs_memory(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let keys: Vec<String> = (0..LIVE).map(|i| format!("key:{i}")).collect();
    let mut group = c.benchmark_group("redb");
    for (name, ns) in stores() {
        runtime.block_on(async {
            ns.mset(keys.iter().map(|k| (k, "value-0123456789")), None)
                .await
                .unwrap();
        });
        let (ns, keys) = (&ns, &keys);
        let timed = |op: &'static str, b: &mut criterion::Bencher<'_>| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for i in 0..iters as usize {
                        let key = &keys[i % LIVE];
                        match op {
                            "get" => drop(ns.get(key).await.unwrap()),
                            "set" => ns.set(key, "value-0123456789", None).await.unwrap(),
                            "incr" => drop(ns.incr(&format!("n{key}"), 1).await.unwrap()),
                            _ => {
                                let start = (i * 10) % (LIVE - 10);
                                ns.mset(keys[start..start + 10].iter().map(|k| (k, "v")), None)
                                    .await
                                    .unwrap();
                            }
                        }
                    }
                    start.elapsed()
                })
            })
        };
        for op in ["get", "set", "incr", "mset(10)"] {
            group.bench_function(format!("{op}/{name}"), |b| timed(op, b));
        }
        // Write throughput: `writers` tasks at once, time per write across all of them.
        for writers in [1usize, 8, 64] {
            group.bench_function(format!("set x{writers} writers/{name}"), |b| {
                b.iter_custom(|iters| {
                    let per_writer = (iters as usize).div_ceil(writers).max(1);
                    runtime.block_on(async {
                        let start = Instant::now();
                        let tasks: Vec<_> = (0..writers)
                            .map(|w| {
                                let (ns, keys) = (ns.clone(), keys.clone());
                                tokio::spawn(async move {
                                    for i in 0..per_writer {
                                        ns.set(&keys[(i * writers + w) % LIVE], "v", None)
                                            .await
                                            .unwrap();
                                    }
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await.unwrap();
                        }
                        start
                            .elapsed()
                            .mul_f64(iters as f64 / (per_writer * writers) as f64)
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = redb_vs_memory
}
criterion_main!(benches);
