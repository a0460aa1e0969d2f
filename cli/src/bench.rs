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
use namestore::drivers::memory::Eviction;
use namestore::{AnyDriver, Bytes, Driver, ErrorKind, MemoryDriver, Namespace, NamespaceName};
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
    /// `get` and `set` in turn: the guide's 50/50 mixed workload.
    Mixed,
    /// `keys("*")`: the whole namespace listed (its cost grows with --keys).
    Keys,
}

impl Op {
    const ALL: [Op; 14] = [
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
        Op::Mixed,
        Op::Keys,
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
            Op::Mixed => "get/set 50:50",
            Op::Keys => "keys(*)",
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
    /// Set by Ctrl-C: the run stops, and the bench's keys are still removed.
    interrupted: Arc<AtomicBool>,
    ns: Namespace<String, D>,
    /// Whether operations are polled once in place (the in-memory driver) or awaited.
    in_place: bool,
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
    // Each operation once, in the order given.
    let mut ops: Vec<Op> = Vec::new();
    for &op in if args.ops.is_empty() {
        &Op::ALL[..]
    } else {
        &args.ops
    } {
        if !ops.contains(&op) {
            ops.push(op);
        }
    }
    // The in-memory store runs statically dispatched, as an application naming its driver
    // would, each call polled once in place, as the criterion benches measure it: its futures
    // are ready at once, and awaiting them in a task adds the cost of keeping each one in the
    // task's state (measured: 0 to 40% per operation, most for calls that carry a value).
    // Other stores run through `AnyDriver` and are awaited; their round trips dwarf both.
    let (results, driver, budget) = match store.downcast_ref::<MemoryDriver>() {
        Some(memory) => {
            let ns = memory.namespace::<String>(root, domain)?;
            let (results, budget) = measure(ns, true, args, &ops, Some(memory))
                .await
                .map_err(|failure| with_eviction_hint(failure, memory))?;
            (
                results,
                "memory, statically dispatched, calls polled in place on threads",
                budget,
            )
        }
        None => {
            let ns = store.namespace::<String>(root, domain)?;
            let (results, budget) = measure(ns, false, args, &ops, None).await?;
            (
                results,
                "through AnyDriver, calls awaited in tokio tasks",
                budget,
            )
        }
    };
    report(&results, url, driver, args, json, out)?;
    if let (Some(budget), false) = (budget, json) {
        writeln!(out, "{budget}")?;
    }
    Ok(())
}

/// A bench refused for memory says why: by a store whose namespaces may evict nothing by
/// default, how to measure it as a cache (its namespace takes the store's default mode); by
/// one that may evict, that the bench's batches need room for ten keys at once.
fn with_eviction_hint(mut failure: Failure, memory: &MemoryDriver) -> Failure {
    if failure.kind != Some(ErrorKind::OutOfMemory) {
        return failure;
    }
    failure.message.push_str(match memory.config().eviction {
        Eviction::Never => {
            "; the bench's namespace takes the store's eviction mode, `never` here: add \
             `eviction=any` to the URL to measure a cache, or give it a larger budget"
        }
        _ => {
            "; the bench writes its keys 10 at a time (as it fills its namespace, and in \
             `mset`), and a batch is stored whole or refused: give the store room for at \
             least 10 keys"
        }
    });
    failure
}

/// For a memory store with a budget: what the bench's keys used of it, and what was evicted
/// and reclaimed after expiry, read before the bench clears its namespace.
fn budget_report(memory: &MemoryDriver, ns: &NamespaceName) -> Option<String> {
    let usage = memory.usage()?;
    let stats = memory.namespace_stats();
    let mine = stats.iter().find(|s| &s.name == ns)?;
    let limit = match (usage.max_bytes, usage.max_entries) {
        (Some(bytes), Some(entries)) => format!("{bytes} bytes and {entries} entries"),
        (Some(bytes), None) => format!("{bytes} bytes"),
        (None, Some(entries)) => format!("{entries} entries"),
        (None, None) => return None,
    };
    Some(format!(
        "budget: {} bytes in {} entries of {limit}; {ns} (eviction {}): {} keys evicted, {} expired",
        usage.bytes, usage.entries, mine.eviction, mine.evicted, mine.expired
    ))
}

async fn measure<D: Driver>(
    ns: Namespace<String, D>,
    in_place: bool,
    args: &Bench,
    ops: &[Op],
    memory: Option<&MemoryDriver>,
) -> Result<((Vec<Measured>, f64), Option<String>), Failure> {
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
        in_place,
        interrupted: interrupted(),
    });
    let measured = fill_and_run(&work, args, ops).await;
    let budget = memory.and_then(|memory| budget_report(memory, work.ns.name()));
    // The bench's keys go whatever happened, Ctrl-C included.
    let cleared = work.ns.clear().await;
    let measured = measured?;
    cleared?;
    if work.interrupted.load(Ordering::Relaxed) {
        return Err(Failure::new(
            crate::output::INTERRUPTED,
            "interrupted; the bench's keys were removed",
        ));
    }
    Ok(((measured, timer_cost().as_nanos() as f64), budget))
}

async fn fill_and_run<D: Driver>(
    work: &Arc<Workload<D>>,
    args: &Bench,
    ops: &[Op],
) -> Result<Vec<Measured>, Failure> {
    // Small batches: a store with a budget may hold fewer keys than the bench uses, and refuses
    // a batch larger than what it may evict.
    for chunk in work.keys.chunks(10) {
        if work.interrupted.load(Ordering::Relaxed) {
            return Ok(Vec::new());
        }
        work.ns
            .mset(chunk.iter().map(|k| (k, work.value.clone())), None)
            .await?;
    }
    let bar = ProgressBar::new(args.time.as_millis() as u64 * ops.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {eta:>3} left  {msg}")
            .expect("a valid progress template")
            .progress_chars("=> "),
    );
    let mut results = Vec::with_capacity(ops.len());
    for (n, &op) in ops.iter().enumerate() {
        if work.interrupted.load(Ordering::Relaxed) {
            break;
        }
        let base = n as u64 * args.time.as_millis() as u64;
        let label = format!("{} ({}/{})", op.label(), n + 1, ops.len());
        results.push(run_op(work, op, args, &bar, base, &label).await?);
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
    label: &str,
) -> Result<Measured, Failure> {
    // A short untimed pass warms the store and tells how long one operation takes.
    let warm = args.time.min(Duration::from_millis(200)) / 4;
    let (probe_ops, _, probe_time) =
        run_until(work, op, 1, u64::MAX, |_| tokio::time::sleep(warm)).await?;
    let per_op = probe_time.as_nanos() as f64 / probe_ops.max(1) as f64;
    let timer = timer_cost().as_nanos() as f64;
    let sample_every = ((timer * 100.0) / per_op.max(1.0)).ceil().max(1.0) as u64;

    bar.set_message(label.to_owned());
    let concurrency = args.concurrency as usize;
    let (ops, latencies, elapsed) =
        run_until(work, op, concurrency, sample_every, |done| async move {
            let started = Instant::now();
            let deadline = started + args.time;
            while Instant::now() < deadline && !work.interrupted.load(Ordering::Relaxed) {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(left.min(Duration::from_millis(100))).await;
                let elapsed = started.elapsed().min(args.time);
                bar.set_position(base + elapsed.as_millis() as u64);
                bar.set_message(format!(
                    "{label}: {} ops",
                    thousands(done.load(Ordering::Relaxed))
                ));
            }
        })
        .await?;
    Ok(Measured {
        op,
        ops,
        elapsed,
        latencies,
        sample_every,
    })
}

/// Runs `op` on `concurrency` tasks (threads on the in-memory store) until `until` is done
/// (it gets the shared count of finished operations, for progress), then stops them; returns
/// the operations done, their sampled latencies and the time taken.
async fn run_until<D: Driver, F: Future<Output = ()>>(
    work: &Arc<Workload<D>>,
    op: Op,
    concurrency: usize,
    sample_every: u64,
    until: impl FnOnce(Arc<AtomicU64>) -> F,
) -> Result<(u64, Histogram<u64>, Duration), Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..concurrency)
        .map(|t| {
            let start = t * work.keys.len() / concurrency;
            let (work, stop, done) = (work.clone(), stop.clone(), done.clone());
            spawn(work, op, start, stop, done, sample_every)
        })
        .collect();
    until(done).await;
    stop.store(true, Ordering::Relaxed);
    let mut ops = 0;
    let mut latencies = histogram();
    for handle in handles {
        let (count, sampled) = handle.await.map_err(|e| {
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
    Ok((ops, latencies, started.elapsed()))
}

/// A flag that Ctrl-C sets, instead of ending the process: the bench then stops its tasks
/// and removes its keys before it exits.
fn interrupted() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            set.store(true, Ordering::Relaxed);
            eprintln!(
                "interrupted: stopping and removing the bench's keys (Ctrl-C again to quit now)"
            );
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("error: interrupted twice; the bench's keys may remain");
                std::process::exit(i32::from(crate::output::INTERRUPTED));
            }
        }
    });
    flag
}

/// Starts `op`'s own loop: a thread for the in-memory store, a task otherwise.
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
                $(Op::$op if work.in_place => tokio::task::spawn_blocking(move || {
                    thread::<D, { Op::$op as u8 }>(&work, start, &stop, &done, sample_every)
                }),
                Op::$op => tokio::spawn(async move {
                    task::<D, { Op::$op as u8 }>(&work, start, &stop, &done, sample_every).await
                }),)*
            }
        };
    }
    spawn_op!(
        Get, Set, Exists, Incr, Delete, SetNx, GetSet, Cas, Ttl, Mget, Mset, Mdel, Mixed, Keys
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
    ($work:expr, $i:expr, $op:expr, $settle:ident) => {{
        let (work, i) = ($work, $i);
        let (ns, key, value) = (&work.ns, &work.keys[i], &work.value);
        match $op {
            Op::Get => {
                std::hint::black_box($settle!(ns.get(key))?);
            }
            Op::Set => $settle!(ns.set(key, value.clone(), None))?,
            Op::Exists => {
                std::hint::black_box($settle!(ns.exists(key))?);
            }
            Op::Incr => {
                std::hint::black_box($settle!(ns.incr(&work.counters[i], 1))?);
            }
            Op::Delete => {
                std::hint::black_box($settle!(ns.delete(key))?);
                $settle!(ns.set(key, value.clone(), None))?;
            }
            Op::SetNx => {
                $settle!(ns.delete(key))?;
                std::hint::black_box($settle!(ns.set_nx(key, value.clone(), None))?);
            }
            Op::GetSet => {
                std::hint::black_box($settle!(ns.get_set(key, value.clone(), None))?);
            }
            Op::Cas => {
                std::hint::black_box($settle!(ns.cas(key, value, value.clone(), None))?);
            }
            Op::Ttl => {
                std::hint::black_box($settle!(ns.ttl(key))?);
            }
            Op::Mget => {
                std::hint::black_box($settle!(ns.mget(batch(&work.keys, i)))?);
            }
            Op::Mset => $settle!(ns.mset(batch(&work.keys, i).map(|k| (k, value.clone())), None))?,
            Op::Mdel => {
                std::hint::black_box($settle!(ns.mdel(batch(&work.keys, i)))?);
                $settle!(ns.mset(batch(&work.keys, i).map(|k| (k, value.clone())), None))?;
            }
            Op::Mixed => {
                if i % 2 == 0 {
                    std::hint::black_box($settle!(ns.get(key))?);
                } else {
                    $settle!(ns.set(key, value.clone(), None))?;
                }
            }
            Op::Keys => {
                std::hint::black_box($settle!(ns.keys("*"))?);
            }
        }
    }};
}

/// Awaits an operation's future, as an application does.
macro_rules! awaited {
    ($future:expr) => {
        $future.await
    };
}

/// Polls an operation's future once, in place, as the criterion benches do: for a store
/// whose futures are ready at once (the in-memory driver) this measures the store rather than
/// the cost of storing each future in the task's state between polls.
macro_rules! in_place {
    ($future:expr) => {
        poll_in_place($future)
    };
}

#[inline(always)]
fn poll_in_place<T>(
    future: impl Future<Output = Result<T, namestore::Error>>,
) -> Result<T, namestore::Error> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => Err(namestore::Error::backend(
            "an in-place bench operation was not ready at once",
        )),
    }
}

/// Keeps the count of operations and the sampled latencies of one task or thread.
struct Tally {
    latencies: Histogram<u64>,
    timer: u64,
    sample_every: u64,
    next_sample: u64,
    n: u64,
}

impl Tally {
    fn new(sample_every: u64) -> Self {
        Tally {
            latencies: histogram(),
            timer: timer_cost().as_nanos() as u64,
            sample_every,
            next_sample: 0,
            n: 0,
        }
    }

    /// Whether the next operation is timed: if so, its start.
    #[inline(always)]
    fn start(&self) -> Option<Instant> {
        (self.n == self.next_sample).then(Instant::now)
    }

    /// Counts an operation, recording its latency if it was timed; says whether 256 more
    /// operations are done.
    #[inline(always)]
    fn done(&mut self, began: Option<Instant>, done: &AtomicU64) -> bool {
        if let Some(began) = began {
            let took = began.elapsed().as_nanos() as u64;
            self.latencies
                .saturating_record(took.saturating_sub(self.timer).max(1));
            self.next_sample = self.n.saturating_add(self.sample_every);
        }
        self.n += 1;
        let tick = self.n.is_multiple_of(256);
        if tick {
            done.fetch_add(256, Ordering::Relaxed);
        }
        tick
    }
}

/// One task's loop on a store whose calls are awaited: the operation on key after key until
/// told to stop.
async fn task<D: Driver, const OP: u8>(
    work: &Workload<D>,
    start: usize,
    stop: &AtomicBool,
    done: &AtomicU64,
    sample_every: u64,
) -> TaskResult {
    let mut tally = Tally::new(sample_every);
    let count = work.keys.len();
    let mut i = start % count;
    while !stop.load(Ordering::Relaxed) {
        let began = tally.start();
        one!(work, i, const { Op::from_u8(OP) }, awaited);
        // Every few milliseconds on a store that answers at once, let the other tasks on this
        // worker run (a network store's tasks yield at every round trip anyway). A yield goes
        // through the scheduler, which polls the I/O driver: about a microsecond.
        if tally.done(began, done) && tally.n.is_multiple_of(64 * 1024) {
            tokio::task::yield_now().await;
        }
        i += 1;
        if i == count {
            i = 0;
        }
    }
    Ok((tally.n, tally.latencies))
}

/// One thread's loop on the in-memory store: each call polled once, in place, as the
/// criterion benches do. Its futures are ready at once; awaiting them in a task would add the
/// cost of keeping each future in the task's state between polls (measured here: up to 40%
/// for calls that carry a value), which depends on the caller's code, not the store.
fn thread<D: Driver, const OP: u8>(
    work: &Workload<D>,
    start: usize,
    stop: &AtomicBool,
    done: &AtomicU64,
    sample_every: u64,
) -> TaskResult {
    let mut tally = Tally::new(sample_every);
    let count = work.keys.len();
    let mut i = start % count;
    while !stop.load(Ordering::Relaxed) {
        let began = tally.start();
        one!(work, i, const { Op::from_u8(OP) }, in_place);
        tally.done(began, done);
        i += 1;
        if i == count {
            i = 0;
        }
    }
    Ok((tally.n, tally.latencies))
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
        "{} ({driver}): {} live keys, {}-byte values, concurrency {}, {} per operation",
        redacted_url(url),
        args.keys,
        args.value_size,
        args.concurrency,
        humantime::format_duration(args.time)
    )?;
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|m| {
            vec![
                m.op.label().to_owned(),
                thousands(rate(m).round() as u64),
                per_op(1e9 * args.concurrency as f64 / rate(m).max(1e-9)),
                latency(quantile(m, 0.50)),
                latency(quantile(m, 0.99)),
                latency(quantile(m, 0.999)),
                format!("1 in {}", m.sample_every),
            ]
        })
        .collect();
    write_table(
        out,
        &["op", "ops/s", "time/op", "p50", "p99", "p99.9", "timed"],
        &rows,
        &[1, 2, 3, 4, 5],
    )?;
    writeln!(
        out,
        "time/op is the time per operation of one task or thread (concurrency / ops per second); \
         latencies are of the timed operations, less the clock's own {timer:.0} ns."
    )?;
    Ok(())
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut shown = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            shown.push(',');
        }
        shown.push(c);
    }
    shown
}

/// Time per operation: tenths of a nanosecond below a microsecond, then as a latency.
fn per_op(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else {
        latency(ns.round() as u64)
    }
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
        assert_eq!(per_op(20.94), "20.9 ns");
        assert_eq!(per_op(61_485.0), "61.5 µs");
    }
}
