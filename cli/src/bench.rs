//! `namestore bench`: the performance guide's workloads against any store, with throughput
//! and latency percentiles.
//!
//! Each operation runs for `--time` on `--concurrency` tasks over `--keys` live keys, written
//! as the criterion benches write them (`key:0`…, counters `nkey:0`…, taken in turn). Every
//! task counts its operations; latencies are timed on a sample of them, so the clock reads do
//! not slow a fast store down: one operation in `k` is timed, `k` chosen so the reads cost at
//! most 1% of the run (every operation on a network store). The clock's own cost, measured
//! first, is subtracted from each timed latency.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use namestore::{AnyDriver, Bytes, Driver, MemoryDriver, Namespace};
use serde_json::json;

use crate::args::Bench;
use crate::output::{Failure, redacted_url, write_json, write_table};

/// The operations, as in the guide's basic and batch tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[repr(u8)]
pub enum Op {
    Get,
    Set,
    Exists,
    Incr,
    /// `delete` of a present key, paired with the `set` that restores it.
    Delete,
    /// `set_nx` of a missing key, paired with the `delete` that makes it missing.
    #[value(name = "set_nx", alias = "set-nx")]
    SetNx,
    #[value(name = "get_set", alias = "get-set")]
    GetSet,
    Cas,
    Ttl,
    /// `mget` of 10 keys.
    Mget,
    /// `mset` of 10 keys.
    Mset,
    /// `mdel` of 10 present keys, paired with the `mset` that restores them.
    Mdel,
}

impl Op {
    const ALL: [Op; 12] = [
        Op::Get,
        Op::Set,
        Op::Exists,
        Op::Incr,
        Op::Delete,
        Op::SetNx,
        Op::GetSet,
        Op::Cas,
        Op::Ttl,
        Op::Mget,
        Op::Mset,
        Op::Mdel,
    ];

    /// The operation a const generic parameter names: each task's loop is compiled once per
    /// operation, so the loop does not branch on it (as the criterion benches' loops).
    const fn from_u8(op: u8) -> Op {
        Op::ALL[op as usize]
    }

    /// The row's name in the output: pairs say so.
    fn label(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Exists => "exists",
            Op::Incr => "incr",
            Op::Delete => "delete+set",
            Op::SetNx => "delete+set_nx",
            Op::GetSet => "get_set",
            Op::Cas => "cas",
            Op::Ttl => "ttl",
            Op::Mget => "mget(10)",
            Op::Mset => "mset(10)",
            Op::Mdel => "mdel(10)+mset(10)",
        }
    }
}

const BATCH: usize = 10;

/// What one operation's run measured.
struct Measured {
    op: Op,
    ops: u64,
    elapsed: Duration,
    latencies: Histogram<u64>,
    sample_every: u64,
}

/// The data every task shares.
struct Workload<D: Driver> {
    ns: Namespace<String, D>,
    keys: Vec<String>,
    counters: Vec<String>,
    value: Bytes,
}

pub async fn run(
    store: AnyDriver,
    url: &str,
    args: &Bench,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let (root, domain) = args.namespace.split_once(':').ok_or_else(|| {
        Failure::usage("--namespace is written ROOT:DOMAIN, e.g. namestore-bench:data")
    })?;
    let ops: Vec<Op> = if args.ops.is_empty() {
        Op::ALL.to_vec()
    } else {
        let mut ops = args.ops.clone();
        ops.dedup();
        ops
    };
    // The in-memory store runs statically dispatched, as an application naming its driver
    // would, and as the criterion benches measure it; other stores through `AnyDriver`, whose
    // boxing is lost in their round trips.
    let (results, driver) = match store.downcast_ref::<MemoryDriver>() {
        Some(memory) => (
            measure(memory.namespace::<String>(root, domain)?, args, &ops).await?,
            "memory, statically dispatched",
        ),
        None => (
            measure(store.namespace::<String>(root, domain)?, args, &ops).await?,
            "through AnyDriver",
        ),
    };
    report(&results, url, driver, args, json, out)
}

async fn measure<D: Driver>(
    ns: Namespace<String, D>,
    args: &Bench,
    ops: &[Op],
) -> Result<(Vec<Measured>, f64), Failure> {
    let mut stream = ns.scan("*")?;
    if futures_util::StreamExt::next(&mut stream)
        .await
        .transpose()?
        .is_some()
    {
        return Err(Failure::usage(format_args!(
            "namespace {} holds keys; bench writes to and clears its namespace, so it needs an empty one (--namespace)",
            ns.name()
        )));
    }
    let count = args.keys as usize;
    let work = Arc::new(Workload {
        keys: (0..count).map(|i| format!("key:{i}")).collect(),
        counters: (0..count).map(|i| format!("nkey:{i}")).collect(),
        value: Bytes::from(vec![b'v'; args.value_size as usize]),
        ns,
    });
    let measured = fill_and_run(&work, args, ops).await;
    // The bench's keys go whatever happened.
    let cleared = work.ns.clear().await;
    let measured = measured?;
    cleared?;
    Ok((measured, timer_cost().as_nanos() as f64))
}

async fn fill_and_run<D: Driver>(
    work: &Arc<Workload<D>>,
    args: &Bench,
    ops: &[Op],
) -> Result<Vec<Measured>, Failure> {
    for chunk in work.keys.chunks(1000) {
        work.ns
            .mset(chunk.iter().map(|k| (k, work.value.clone())), None)
            .await?;
    }
    let bar = ProgressBar::new(args.time.as_millis() as u64 * ops.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {elapsed:>4} / {duration:4} {msg}")
            .expect("a valid progress template")
            .progress_chars("=> "),
    );
    let mut results = Vec::with_capacity(ops.len());
    for (n, &op) in ops.iter().enumerate() {
        let base = n as u64 * args.time.as_millis() as u64;
        results.push(run_op(work, op, args, &bar, base).await?);
    }
    bar.finish_and_clear();
    Ok(results)
}

/// What a task hands back: its operation count and sampled latencies.
type TaskResult = Result<(u64, Histogram<u64>), namestore::Error>;

async fn run_op<D: Driver>(
    work: &Arc<Workload<D>>,
    op: Op,
    args: &Bench,
    bar: &ProgressBar,
    base: u64,
) -> Result<Measured, Failure> {
    // A short untimed pass warms the store and tells how long one operation takes.
    let warm = args.time.min(Duration::from_millis(200)) / 4;
    let probe = run_tasks(work, op, 1, warm, u64::MAX).await?;
    let per_op = probe.1.as_nanos() as f64 / probe.0.max(1) as f64;
    let timer = timer_cost().as_nanos() as f64;
    let sample_every = ((timer * 100.0) / per_op.max(1.0)).ceil().max(1.0) as u64;

    bar.set_message(op.label());
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..args.concurrency as usize {
        let (work, stop, done) = (work.clone(), stop.clone(), done.clone());
        let start = t * work.keys.len() / args.concurrency as usize;
        tasks.push(spawn(work, op, start, stop, done, sample_every));
    }
    let deadline = started + args.time;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
        let elapsed = started.elapsed().min(args.time);
        bar.set_position(base + elapsed.as_millis() as u64);
        bar.set_message(format!(
            "{}: {} ops",
            op.label(),
            done.load(Ordering::Relaxed)
        ));
    }
    stop.store(true, Ordering::Relaxed);
    let mut ops = 0;
    let mut latencies = histogram();
    for task in tasks {
        let (count, sampled) = task.await.map_err(|e| {
            Failure::new(
                crate::output::REFUSED,
                format_args!("a bench task failed: {e}"),
            )
        })??;
        ops += count;
        latencies
            .add(&sampled)
            .map_err(|e| Failure::new(crate::output::REFUSED, format_args!("latencies: {e}")))?;
    }
    Ok(Measured {
        op,
        ops,
        elapsed: started.elapsed(),
        latencies,
        sample_every,
    })
}

/// Runs `op` on `tasks` tasks for `time`, untimed; returns the operation count and elapsed.
async fn run_tasks<D: Driver>(
    work: &Arc<Workload<D>>,
    op: Op,
    tasks: usize,
    time: Duration,
    sample_every: u64,
) -> Result<(u64, Duration), Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (work, stop, done) = (work.clone(), stop.clone(), done.clone());
        handles.push(spawn(work, op, 0, stop, done, sample_every));
    }
    tokio::time::sleep(time).await;
    stop.store(true, Ordering::Relaxed);
    let mut ops = 0;
    for handle in handles {
        let (count, _) = handle.await.map_err(|e| {
            Failure::new(
                crate::output::REFUSED,
                format_args!("a bench task failed: {e}"),
            )
        })??;
        ops += count;
    }
    Ok((ops, started.elapsed()))
}

/// Spawns a task running `op`'s own loop.
fn spawn<D: Driver>(
    work: Arc<Workload<D>>,
    op: Op,
    start: usize,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    sample_every: u64,
) -> tokio::task::JoinHandle<TaskResult> {
    macro_rules! spawn_op {
        ($($op:ident),*) => {
            match op {
                $(Op::$op => tokio::spawn(async move {
                    task::<D, { Op::$op as u8 }>(&work, start, &stop, &done, sample_every).await
                }),)*
            }
        };
    }
    spawn_op!(
        Get, Set, Exists, Incr, Delete, SetNx, GetSet, Cas, Ttl, Mget, Mset, Mdel
    )
}

fn histogram() -> Histogram<u64> {
    // 1 ns to 10 minutes, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

/// One operation (or pair) on key `i`, written out in the task's loop rather than called as
/// an `async fn`: a nested future would be built and moved into the loop's state on every
/// operation, which costs a fast store more than the operation itself. Each leaves the data as
/// it found it, so a run can be any length.
macro_rules! one {
    ($work:expr, $i:expr, $op:expr) => {{
        let (work, i) = ($work, $i);
        let (ns, key, value) = (&work.ns, &work.keys[i], &work.value);
        match $op {
            Op::Get => {
                std::hint::black_box(ns.get(key).await?);
            }
            Op::Set => ns.set(key, value.clone(), None).await?,
            Op::Exists => {
                std::hint::black_box(ns.exists(key).await?);
            }
            Op::Incr => {
                std::hint::black_box(ns.incr(&work.counters[i], 1).await?);
            }
            Op::Delete => {
                std::hint::black_box(ns.delete(key).await?);
                ns.set(key, value.clone(), None).await?;
            }
            Op::SetNx => {
                ns.delete(key).await?;
                std::hint::black_box(ns.set_nx(key, value.clone(), None).await?);
            }
            Op::GetSet => {
                std::hint::black_box(ns.get_set(key, value.clone(), None).await?);
            }
            Op::Cas => {
                std::hint::black_box(ns.cas(key, value, value.clone(), None).await?);
            }
            Op::Ttl => {
                std::hint::black_box(ns.ttl(key).await?);
            }
            Op::Mget => {
                std::hint::black_box(ns.mget(batch(&work.keys, i)).await?);
            }
            Op::Mset => {
                ns.mset(batch(&work.keys, i).map(|k| (k, value.clone())), None)
                    .await?
            }
            Op::Mdel => {
                std::hint::black_box(ns.mdel(batch(&work.keys, i)).await?);
                ns.mset(batch(&work.keys, i).map(|k| (k, value.clone())), None)
                    .await?;
            }
        }
    }};
}

/// One task's loop: the operation on key after key until told to stop. Yields to the runtime
/// every 65,536 operations, so tasks on a store that answers at once still take turns.
async fn task<D: Driver, const OP: u8>(
    work: &Workload<D>,
    start: usize,
    stop: &AtomicBool,
    done: &AtomicU64,
    sample_every: u64,
) -> TaskResult {
    let mut latencies = histogram();
    let timer = timer_cost().as_nanos() as u64;
    let count = work.keys.len();
    let mut n: u64 = 0;
    let mut i = start % count;
    let mut next_sample = 0;
    while !stop.load(Ordering::Relaxed) {
        let began = (n == next_sample).then(Instant::now);
        one!(work, i, const { Op::from_u8(OP) });
        if let Some(began) = began {
            let took = began.elapsed().as_nanos() as u64;
            latencies.saturating_record(took.saturating_sub(timer).max(1));
            next_sample = n.saturating_add(sample_every);
        }
        n += 1;
        i += 1;
        if i == count {
            i = 0;
        }
        if n % 256 == 0 {
            done.fetch_add(256, Ordering::Relaxed);
            // A yield goes through the scheduler (which also polls the I/O driver): about a
            // microsecond, so tasks on a store that answers at once take turns only every
            // few milliseconds. A network store's tasks yield at every round trip anyway.
            if n % (64 * 1024) == 0 {
                tokio::task::yield_now().await;
            }
        }
    }
    Ok((n, latencies))
}

/// The 10 keys from `i` on, wrapping around.
fn batch(keys: &[String], i: usize) -> impl Iterator<Item = &String> + '_ {
    (0..BATCH).map(move |j| &keys[(i + j) % keys.len()])
}

/// What one clock reading costs: the median of back-to-back readings' differences.
fn timer_cost() -> Duration {
    use std::sync::OnceLock;
    static COST: OnceLock<Duration> = OnceLock::new();
    *COST.get_or_init(|| {
        let mut gaps: Vec<Duration> = (0..10_001)
            .map(|_| {
                let a = Instant::now();
                Instant::now() - a
            })
            .collect();
        gaps.sort();
        gaps[gaps.len() / 2]
    })
}

fn report(
    (results, timer): &(Vec<Measured>, f64),
    url: &str,
    driver: &str,
    args: &Bench,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let rate = |m: &Measured| m.ops as f64 / m.elapsed.as_secs_f64().max(1e-9);
    let quantile = |m: &Measured, q: f64| m.latencies.value_at_quantile(q);
    if json {
        let rows: Vec<_> = results
            .iter()
            .map(|m| {
                json!({
                    "op": m.op.label(),
                    "ops": m.ops,
                    "seconds": m.elapsed.as_secs_f64(),
                    "ops_per_sec": rate(m),
                    "ns_per_op": 1e9 * args.concurrency as f64 / rate(m).max(1e-9),
                    "p50_ns": quantile(m, 0.50),
                    "p99_ns": quantile(m, 0.99),
                    "p999_ns": quantile(m, 0.999),
                    "max_ns": m.latencies.max(),
                    "timed": m.latencies.len(),
                    "timed_one_in": m.sample_every,
                })
            })
            .collect();
        let document = json!({
            "store": redacted_url(url),
            "driver": driver,
            "concurrency": args.concurrency,
            "keys": args.keys,
            "value_size": args.value_size,
            "seconds_per_op": args.time.as_secs_f64(),
            "timer_ns": timer,
            "results": rows,
        });
        return Ok(write_json(out, &document)?);
    }
    writeln!(
        out,
        "{} ({driver}): {} live keys, {}-byte values, {} task{}, {} per operation",
        redacted_url(url),
        args.keys,
        args.value_size,
        args.concurrency,
        if args.concurrency == 1 { "" } else { "s" },
        humantime::format_duration(args.time)
    )?;
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|m| {
            vec![
                m.op.label().to_owned(),
                thousands(rate(m).round() as u64),
                format!("{:.1}", 1e9 * args.concurrency as f64 / rate(m).max(1e-9)),
                latency(quantile(m, 0.50)),
                latency(quantile(m, 0.99)),
                latency(quantile(m, 0.999)),
                format!("1 in {}", m.sample_every),
            ]
        })
        .collect();
    write_table(
        out,
        &["op", "ops/s", "ns/op", "p50", "p99", "p99.9", "timed"],
        &rows,
        &[1, 2, 3, 4, 5],
    )?;
    writeln!(
        out,
        "ns/op is task time per operation (tasks / ops per second); latencies are of the timed \
         operations, less the clock's own {timer:.0} ns."
    )?;
    Ok(())
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut shown = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            shown.push(',');
        }
        shown.push(c);
    }
    shown
}

fn latency(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(35_714_285), "35,714,285");
        assert_eq!(latency(28), "28 ns");
        assert_eq!(latency(71_500), "71.5 µs");
        assert_eq!(latency(2_500_000), "2.5 ms");
    }
}
