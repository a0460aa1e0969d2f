//! The Redis driver against the same commands sent with raw redis-rs, on the same connection
//! kind (a multiplexed `ConnectionManager`) to the same local `redis-server`, in one run; and
//! throughput with 64 concurrent tasks. Starts its own server on a free loopback port.
//!
//! Run: `cargo bench --features redis --bench redis`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use namestore::Namespace;
use namestore::drivers::redis::RedisDriver;
use redis::aio::ConnectionManager;

#[path = "../tests/support/mod.rs"]
mod support;

const LIVE: usize = 1000;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    ns: Namespace<String, RedisDriver>,
    raw: ConnectionManager,
    keys: Vec<String>,
    full_keys: Vec<String>,
    value: Bytes,
}

fn fixture() -> Fixture {
    let url = support::start_server(support::free_port(), "");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("bench", "redis")
        .unwrap();
    let raw = runtime
        .block_on(ConnectionManager::new(
            redis::Client::open(url.as_str()).unwrap(),
        ))
        .unwrap();
    let keys: Vec<String> = (0..LIVE).map(|i| format!("key:{i}")).collect();
    let full_keys: Vec<String> = keys.iter().map(|k| format!("bench:redis:{k}")).collect();
    let value = Bytes::from_static(b"value-0123456789");
    runtime.block_on(async {
        for key in &keys {
            ns.set(key, value.clone(), None).await.unwrap();
            ns.incr(&format!("n{key}"), 1).await.unwrap();
        }
    });
    Fixture {
        runtime,
        ns,
        raw,
        keys,
        full_keys,
        value,
    }
}

/// Times `iters` sequential awaits of `op(i)` inside the runtime.
fn sequential<F: std::future::Future<Output = ()>>(
    runtime: &tokio::runtime::Runtime,
    iters: u64,
    mut op: impl FnMut(usize) -> F,
) -> Duration {
    runtime.block_on(async {
        let start = Instant::now();
        for i in 0..iters as usize {
            op(i).await;
        }
        start.elapsed()
    })
}

/// Interleaved comparison: blocks of 200 calls through namestore and through raw redis-rs
/// alternate, 20 times, so drift on a shared machine hits both alike. Prints the mean per call
/// of each and namestore's overhead.
fn interleaved(f: &Fixture) {
    println!("\ninterleaved, 20 x 200 calls each (mean per call):");
    for op in ["get", "set", "incr"] {
        let (mut ours, mut raw) = (Duration::ZERO, Duration::ZERO);
        f.runtime.block_on(async {
            for round in 0..40 {
                let start = Instant::now();
                for i in 0..200 {
                    let at = (round * 200 + i) % LIVE;
                    if round % 2 == 0 {
                        match op {
                            "get" => drop(f.ns.get(&f.keys[at]).await.unwrap()),
                            "set" => f.ns.set(&f.keys[at], f.value.clone(), None).await.unwrap(),
                            _ => drop(f.ns.incr(&format!("n{}", f.keys[at]), 1).await.unwrap()),
                        }
                    } else {
                        let mut c = f.raw.clone();
                        match op {
                            "get" => drop(
                                redis::cmd("GET")
                                    .arg(&f.full_keys[at])
                                    .query_async::<Option<Vec<u8>>>(&mut c)
                                    .await
                                    .unwrap(),
                            ),
                            "set" => redis::cmd("SET")
                                .arg(&f.full_keys[at])
                                .arg(&f.value[..])
                                .query_async::<()>(&mut c)
                                .await
                                .unwrap(),
                            _ => drop(
                                redis::cmd("INCRBY")
                                    .arg(format!("bench:redis:n{}", f.keys[at]))
                                    .arg(1)
                                    .query_async::<i64>(&mut c)
                                    .await
                                    .unwrap(),
                            ),
                        }
                    }
                }
                if round % 2 == 0 {
                    ours += start.elapsed();
                } else {
                    raw += start.elapsed();
                }
            }
        });
        let (ours, raw) = (ours / 4000, raw / 4000);
        println!(
            "  {op:<5} namestore {ours:>10.1?}  redis-rs {raw:>10.1?}  overhead {:+.1}%",
            (ours.as_secs_f64() / raw.as_secs_f64() - 1.0) * 100.0
        );
    }
    println!();
}

fn redis_vs_raw(c: &mut Criterion) {
    let f = fixture();
    interleaved(&f);
    let mut group = c.benchmark_group("redis");
    let (ns, keys, full, value) = (&f.ns, &f.keys, &f.full_keys, &f.value);

    group.bench_function("get/namestore", |b| {
        b.iter_custom(|n| {
            sequential(&f.runtime, n, |i| async move {
                ns.get(&keys[i % LIVE]).await.unwrap();
            })
        })
    });
    group.bench_function("get/redis-rs", |b| {
        b.iter_custom(|n| {
            sequential(&f.runtime, n, |i| {
                let mut raw = f.raw.clone();
                async move {
                    redis::cmd("GET")
                        .arg(&full[i % LIVE])
                        .query_async::<Option<Vec<u8>>>(&mut raw)
                        .await
                        .unwrap();
                }
            })
        })
    });
    group.bench_function("set/namestore", |b| {
        b.iter_custom(|n| {
            sequential(&f.runtime, n, |i| async move {
                ns.set(&keys[i % LIVE], value.clone(), None).await.unwrap();
            })
        })
    });
    group.bench_function("set/redis-rs", |b| {
        b.iter_custom(|n| {
            sequential(&f.runtime, n, |i| {
                let mut raw = f.raw.clone();
                async move {
                    redis::cmd("SET")
                        .arg(&full[i % LIVE])
                        .arg(&value[..])
                        .query_async::<()>(&mut raw)
                        .await
                        .unwrap();
                }
            })
        })
    });
    group.bench_function("incr/namestore", |b| {
        b.iter_custom(|n| {
            sequential(&f.runtime, n, |i| {
                let key = format!("n{}", keys[i % LIVE]);
                async move {
                    ns.incr(&key, 1).await.unwrap();
                }
            })
        })
    });
    group.bench_function("incr/redis-rs", |b| {
        b.iter_custom(|n| {
            sequential(&f.runtime, n, |i| {
                let mut raw = f.raw.clone();
                let key = format!("bench:redis:n{}", keys[i % LIVE]);
                async move {
                    redis::cmd("INCRBY")
                        .arg(key)
                        .arg(1)
                        .query_async::<i64>(&mut raw)
                        .await
                        .unwrap();
                }
            })
        })
    });
    group.bench_function("mget(10)/namestore", |b| {
        b.iter_custom(|n| {
            sequential(&f.runtime, n, |i| async move {
                let start = (i * 10) % (LIVE - 10);
                ns.mget(&keys[start..start + 10]).await.unwrap();
            })
        })
    });
    group.bench_function("mget(10)/redis-rs", |b| {
        b.iter_custom(|n| {
            sequential(&f.runtime, n, |i| {
                let mut raw = f.raw.clone();
                async move {
                    let start = (i * 10) % (LIVE - 10);
                    let mut command = redis::cmd("MGET");
                    for key in &full[start..start + 10] {
                        command.arg(key);
                    }
                    command
                        .query_async::<Vec<Option<Vec<u8>>>>(&mut raw)
                        .await
                        .unwrap();
                }
            })
        })
    });
    group.bench_function("mset(10)/namestore", |b| {
        b.iter_custom(|n| {
            sequential(&f.runtime, n, |i| async move {
                let start = (i * 10) % (LIVE - 10);
                ns.mset(
                    keys[start..start + 10].iter().map(|k| (k, value.clone())),
                    None,
                )
                .await
                .unwrap();
            })
        })
    });
    group.bench_function("mset(10)/redis-rs", |b| {
        b.iter_custom(|n| {
            sequential(&f.runtime, n, |i| {
                let mut raw = f.raw.clone();
                async move {
                    let start = (i * 10) % (LIVE - 10);
                    let mut command = redis::cmd("MSET");
                    for key in &full[start..start + 10] {
                        command.arg(key).arg(&value[..]);
                    }
                    command.query_async::<()>(&mut raw).await.unwrap();
                }
            })
        })
    });

    // Throughput: 64 tasks at once on one multiplexed connection (time per operation across
    // all tasks).
    for (name, namestore) in [
        ("get x64 tasks/namestore", true),
        ("get x64 tasks/redis-rs", false),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|n| {
                let per_task = (n as usize).div_ceil(64).max(1);
                f.runtime.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..64)
                        .map(|t| {
                            let (ns, mut raw) = (f.ns.clone(), f.raw.clone());
                            let (keys, full) = (f.keys.clone(), f.full_keys.clone());
                            tokio::spawn(async move {
                                for i in 0..per_task {
                                    let at = (i * 64 + t) % LIVE;
                                    if namestore {
                                        ns.get(&keys[at]).await.unwrap();
                                    } else {
                                        redis::cmd("GET")
                                            .arg(&full[at])
                                            .query_async::<Option<Vec<u8>>>(&mut raw)
                                            .await
                                            .unwrap();
                                    }
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                    start.elapsed().mul_f64(n as f64 / (per_task * 64) as f64)
                })
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = redis_vs_raw
}
criterion_main!(benches);
