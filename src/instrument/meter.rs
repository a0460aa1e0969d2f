//! The metrics half of the telemetry layer (cargo feature `metrics`, on the `metrics` facade):
//! per namespace, operation, driver and outcome, a call count and a latency histogram, and
//! hits and misses of reads. Labels never hold a key.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram, Key, Label, Level, Metadata, Recorder};

use super::Op;
use crate::ErrorKind;

/// Calls, by `namespace`, `operation`, `driver` and `outcome` (`ok` or an error kind).
pub const OPERATIONS: &str = "namestore_operations_total";
/// Call latency in seconds, with the same labels.
pub const DURATION: &str = "namestore_operation_duration_seconds";
/// Reads that found their key (`get`, `exists`, `ttl`, `get_set`), by `namespace`,
/// `operation` and `driver`.
pub const HITS: &str = "namestore_hits_total";
/// Reads that did not.
pub const MISSES: &str = "namestore_misses_total";
/// Keys evicted to keep a memory budget (SPEC 10), by `namespace` and `driver`.
pub const EVICTIONS: &str = "namestore_evictions_total";
/// Keys removed after their TTL ran out, by `namespace` and `driver`.
pub const EXPIRATIONS: &str = "namestore_expirations_total";

static META: Metadata<'static> = Metadata::new("namestore", Level::INFO, Some(module_path!()));

/// Whether a recorder other than the facade's no-op one is in effect. The no-op recorder is a
/// zero-sized type, so this is one thread-local read, one atomic load and one vtable read; a
/// recorder of a zero-sized type of its own is taken for the no-op one, and calls are not
/// counted through it (see the module).
#[inline]
pub(super) fn recorder_listens() -> bool {
    metrics::with_recorder(listens)
}

/// Whether `recorder` is one that records: not the no-op recorder, which is zero-sized.
fn listens(recorder: &dyn Recorder) -> bool {
    std::mem::size_of_val(recorder) != 0
}

/// A metric handle registered with the global recorder, the one installed for the process
/// (`metrics::set_global_recorder`: it is never replaced or dropped), and used for every later
/// call it records. Registering is the recorder's lookup of the metric's key, its labels
/// hashed: with Prometheus's exporter, most of a call's time when done on every call (630 ns
/// a `get` through the layer, against 40 without it). Under a local recorder
/// (`metrics::with_local_recorder`, as tests install) each call registers again, so that a
/// recorder made later, even at the address of one dropped, gets the calls made under it.
struct Registered<H>(OnceLock<H>);

impl<H> Registered<H> {
    const fn new() -> Self {
        Registered(OnceLock::new())
    }

    /// Runs `work` with the handle for `recorder`: the kept one if `recorder` is the global
    /// recorder, else one registered now.
    #[inline]
    fn with(
        &self,
        recorder: &dyn Recorder,
        register: impl FnOnce(&dyn Recorder) -> H,
        work: impl FnOnce(&H),
    ) {
        if is_global(recorder) {
            work(self.0.get_or_init(|| register(recorder)));
        } else {
            work(&register(recorder));
        }
    }
}

impl<H> fmt::Debug for Registered<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Registered"
        } else {
            "Unregistered"
        })
    }
}

/// The global recorder's address, once one is installed (it stays for the process).
static GLOBAL: OnceLock<usize> = OnceLock::new();
/// When the global recorder may next be looked for, in milliseconds from [`PROBES_FROM`].
static NEXT_PROBE: AtomicU64 = AtomicU64::new(0);
static PROBES_FROM: OnceLock<Instant> = OnceLock::new();

/// Whether `recorder` (a listening one) is the global recorder. The facade does not tell
/// which recorder it hands over, a thread's local one or the global one, so the global one is
/// looked for from a thread of its own, where no local recorder is set: once, when a process
/// that has one first records, and at most once a second while a process records only
/// through local recorders (a thread started and joined, some tens of microseconds).
#[inline]
fn is_global(recorder: &dyn Recorder) -> bool {
    match GLOBAL.get() {
        Some(&global) => global == address(recorder),
        None => probe_global() == Some(address(recorder)),
    }
}

#[cold]
fn probe_global() -> Option<usize> {
    let from = PROBES_FROM.get_or_init(Instant::now);
    let now = u64::try_from(from.elapsed().as_millis()).unwrap_or(u64::MAX);
    let next = NEXT_PROBE.load(Ordering::Relaxed);
    if now < next
        || NEXT_PROBE
            .compare_exchange(
                next,
                now.saturating_add(1_000),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
    {
        return None;
    }
    let found = std::thread::Builder::new()
        .name("namestore-metrics".to_owned())
        .spawn(|| metrics::with_recorder(|global| listens(global).then(|| address(global))))
        .ok()?
        .join()
        .ok()
        .flatten()?;
    Some(*GLOBAL.get_or_init(|| found))
}

/// Registers the counter of `key`.
fn counter(key: &Key) -> impl Fn(&dyn Recorder) -> Counter + '_ {
    move |recorder| recorder.register_counter(key, &META)
}

/// Which recorder `recorder` is: its address (a listening recorder is not zero-sized, and the
/// global one is never dropped, so no other recorder has the global one's).
fn address(recorder: &dyn Recorder) -> usize {
    (recorder as *const dyn Recorder).cast::<()>() as usize
}

/// One namespace's metrics, their keys built and their handles registered the first time
/// each operation is recorded.
#[derive(Debug)]
pub(super) struct Meters {
    namespace: String,
    driver: &'static str,
    ops: [OnceLock<OpMetrics>; Op::COUNT],
}

/// An operation's metrics.
#[derive(Debug)]
struct OpMetrics {
    /// Calls that succeed.
    ok: Outcome,
    hits: Key,
    misses: Key,
    /// Registered the first time a read hits (or misses), so an operation that never does
    /// shows no such series.
    hits_handle: Registered<Counter>,
    misses_handle: Registered<Counter>,
    /// Calls that fail, by their error's kind, each made the first time a call fails so: a
    /// service whose calls fail by the thousand a second (a `never` namespace at its budget
    /// refusing writes) counts them through kept handles as it counts successes (registering
    /// them on every failure, a failed `incr` took 970 ns through the layer against 150 plain;
    /// 313 ns counted through handles, `cargo bench --bench telemetry --features metrics`).
    /// (Each boxed: an operation that fails one way holds one, not all fifteen.)
    failed: OnceLock<Box<[OnceLock<Box<Outcome>>; ErrorKind::COUNT]>>,
}

/// The call count and latency of one operation's calls with one outcome (`ok` or an error
/// kind).
#[derive(Debug)]
struct Outcome {
    calls: Key,
    duration: Key,
    calls_handle: Registered<Counter>,
    duration_handle: Registered<Histogram>,
}

impl Outcome {
    fn new(calls: Key, duration: Key) -> Self {
        Outcome {
            calls,
            duration,
            calls_handle: Registered::new(),
            duration_handle: Registered::new(),
        }
    }

    fn record(&self, recorder: &dyn Recorder, took: Duration) {
        self.calls_handle
            .with(recorder, counter(&self.calls), |calls| calls.increment(1));
        self.duration_handle.with(
            recorder,
            |r| r.register_histogram(&self.duration, &META),
            |duration| duration.record(took.as_secs_f64()),
        );
    }
}

impl Meters {
    pub(super) fn new(namespace: &str, driver: &'static str) -> Self {
        Meters {
            namespace: namespace.to_owned(),
            driver,
            ops: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    fn labels(&self, op: Op, outcome: Option<&'static str>) -> Vec<Label> {
        let mut labels = vec![
            Label::new("namespace", self.namespace.clone()),
            Label::new("operation", op.name()),
            Label::new("driver", self.driver),
        ];
        if let Some(outcome) = outcome {
            labels.push(Label::new("outcome", outcome));
        }
        labels
    }

    fn outcome(&self, op: Op, outcome: &'static str) -> Outcome {
        Outcome::new(
            Key::from_parts(OPERATIONS, self.labels(op, Some(outcome))),
            Key::from_parts(DURATION, self.labels(op, Some(outcome))),
        )
    }

    fn metrics(&self, op: Op) -> &OpMetrics {
        self.ops[op as usize].get_or_init(|| OpMetrics {
            ok: self.outcome(op, "ok"),
            hits: Key::from_parts(HITS, self.labels(op, None)),
            misses: Key::from_parts(MISSES, self.labels(op, None)),
            hits_handle: Registered::new(),
            misses_handle: Registered::new(),
            failed: OnceLock::new(),
        })
    }

    /// The metrics of `op`'s calls that fail with `kind`.
    fn failed(&self, op: Op, kind: ErrorKind) -> &Outcome {
        self.metrics(op)
            .failed
            .get_or_init(|| Box::new(std::array::from_fn(|_| OnceLock::new())))[kind as usize]
            .get_or_init(|| Box::new(self.outcome(op, kind.name())))
    }

    /// Records one finished call.
    pub(super) fn record<T>(
        &self,
        op: Op,
        outcome: Result<&T, ErrorKind>,
        hit: fn(&T) -> Option<bool>,
        took: Duration,
    ) {
        metrics::with_recorder(|recorder: &dyn Recorder| match outcome {
            Ok(value) => {
                let m = self.metrics(op);
                m.ok.record(recorder, took);
                match hit(value) {
                    Some(true) => m
                        .hits_handle
                        .with(recorder, counter(&m.hits), |hits| hits.increment(1)),
                    Some(false) => m
                        .misses_handle
                        .with(recorder, counter(&m.misses), |misses| misses.increment(1)),
                    None => {}
                }
            }
            Err(kind) => self.failed(op, kind).record(recorder, took),
        })
    }
}

/// A namespace's eviction and expiration counters, for a driver that removes keys on its own
/// (the memory driver); their handles kept as [`Meters`]' are.
#[derive(Debug)]
pub(crate) struct Removals {
    evictions: Key,
    expirations: Key,
    evictions_handle: Registered<Counter>,
    expirations_handle: Registered<Counter>,
}

impl Removals {
    pub(crate) fn new(namespace: &str, driver: &'static str) -> Self {
        let labels = || {
            vec![
                Label::new("namespace", namespace.to_owned()),
                Label::new("driver", driver),
            ]
        };
        Removals {
            evictions: Key::from_parts(EVICTIONS, labels()),
            expirations: Key::from_parts(EXPIRATIONS, labels()),
            evictions_handle: Registered::new(),
            expirations_handle: Registered::new(),
        }
    }

    pub(crate) fn record(&self, evicted: u64, expired: u64) {
        metrics::with_recorder(|recorder| {
            // No recorder installed: an evicting write need not pay two calls into the no-op
            // one.
            if !listens(recorder) {
                return;
            }
            if evicted > 0 {
                self.evictions_handle
                    .with(recorder, counter(&self.evictions), |evictions| {
                        evictions.increment(evicted)
                    });
            }
            if expired > 0 {
                self.expirations_handle
                    .with(recorder, counter(&self.expirations), |expirations| {
                        expirations.increment(expired)
                    });
            }
        })
    }
}
