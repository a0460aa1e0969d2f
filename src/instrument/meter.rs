//! The metrics half of the telemetry layer (cargo feature `metrics`, on the `metrics` facade):
//! per namespace, operation, driver and outcome, a call count and a latency histogram, and
//! hits and misses of reads. Labels never hold a key.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Key, Label, Level, Metadata, Recorder};

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

/// One namespace's metric keys, built the first time each operation is recorded.
#[derive(Debug)]
pub(super) struct Meters {
    namespace: String,
    driver: &'static str,
    ops: [OnceLock<OpKeys>; Op::COUNT],
}

#[derive(Debug)]
struct OpKeys {
    calls: Key,
    duration: Key,
    hits: Key,
    misses: Key,
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

    fn keys(&self, op: Op) -> &OpKeys {
        self.ops[op as usize].get_or_init(|| OpKeys {
            calls: Key::from_parts(OPERATIONS, self.labels(op, Some("ok"))),
            duration: Key::from_parts(DURATION, self.labels(op, Some("ok"))),
            hits: Key::from_parts(HITS, self.labels(op, None)),
            misses: Key::from_parts(MISSES, self.labels(op, None)),
        })
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
                let keys = self.keys(op);
                recorder.register_counter(&keys.calls, &META).increment(1);
                recorder
                    .register_histogram(&keys.duration, &META)
                    .record(took.as_secs_f64());
                match hit(value) {
                    Some(true) => recorder.register_counter(&keys.hits, &META).increment(1),
                    Some(false) => recorder.register_counter(&keys.misses, &META).increment(1),
                    None => {}
                }
            }
            Err(kind) => {
                let outcome = Some(kind.name());
                let calls = Key::from_parts(OPERATIONS, self.labels(op, outcome));
                recorder.register_counter(&calls, &META).increment(1);
                let duration = Key::from_parts(DURATION, self.labels(op, outcome));
                recorder
                    .register_histogram(&duration, &META)
                    .record(took.as_secs_f64());
            }
        })
    }
}

/// A namespace's eviction and expiration counters, for a driver that removes keys on its own
/// (the memory driver).
#[derive(Debug)]
pub(crate) struct Removals {
    evictions: Key,
    expirations: Key,
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
                recorder
                    .register_counter(&self.evictions, &META)
                    .increment(evicted);
            }
            if expired > 0 {
                recorder
                    .register_counter(&self.expirations, &META)
                    .increment(expired);
            }
        })
    }
}
