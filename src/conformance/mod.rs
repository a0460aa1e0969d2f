//! The conformance suite: one public async function per SPEC rule or group of rules, each
//! taking a [`Harness`] around a driver and panicking when the driver breaks the rule.
//!
//! Every driver's tests run all of them, most simply through [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! use namestore::conformance::{Harness, Time};
//!
//! fn harness() -> Harness<MyDriver> {
//!     Harness::new(MyDriver::connect(), Time::Real)
//! }
//!
//! namestore::conformance_tests!(harness());
//! ```
//!
//! The functions use only the public API and work in fresh namespaces of their own, so many
//! can run at once against one shared server, and again on the next run.
//!
//! Enabled by the `conformance` cargo feature; it brings in `tokio` for timers and tasks, so
//! the tests run on a multi-threaded tokio runtime.

mod batches;
mod concurrency;
mod coordination;
mod errors;
mod expiry;
mod linearizability;
mod listing;
mod namespaces;
mod single;
mod typed;
mod values;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use batches::*;
pub use concurrency::*;
pub use coordination::*;
pub use errors::*;
pub use expiry::*;
pub use linearizability::*;
pub use listing::*;
pub use namespaces::*;
pub use single::*;
pub use typed::*;
pub use values::*;

use crate::drivers::memory::ManualClock;
use crate::{Driver, Key, Namespace, NamespaceName};

/// How time passes for the driver under test.
#[derive(Clone, Debug)]
pub enum Time {
    /// The driver reads a [`ManualClock`]; the suite advances it, so TTL tests are instant.
    Manual(ManualClock),
    /// The driver reads real time; the suite sleeps, with TTLs of [`Harness::ttl`].
    Real,
}

type EntryProbe<D> = Arc<dyn Fn(&D, &NamespaceName) -> usize + Send + Sync>;

/// A driver under test, with the means to let time pass and to count stored entries.
pub struct Harness<D: Driver> {
    driver: D,
    time: Time,
    real_ttl: Duration,
    stored_entries: Option<EntryProbe<D>>,
    epoch: Instant,
}

impl<D: Driver> fmt::Debug for Harness<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("time", &self.time)
            .field("real_ttl", &self.real_ttl)
            .finish()
    }
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl<D: Driver> Harness<D> {
    /// A harness around `driver`; with [`Time::Real`], TTL tests use 500 ms TTLs.
    pub fn new(driver: D, time: Time) -> Self {
        Harness {
            driver,
            time,
            real_ttl: Duration::from_millis(500),
            stored_entries: None,
            epoch: Instant::now(),
        }
    }

    /// Sets the TTL that real-time tests give keys (500 ms by default). Longer is slower but
    /// kinder to a loaded machine: operations between a write and its check must finish
    /// within it.
    pub fn with_real_ttl(mut self, ttl: Duration) -> Self {
        self.real_ttl = ttl;
        self
    }

    /// Gives the harness a count of the entries the driver holds for a namespace, expired ones
    /// not yet reclaimed included: the background-reclamation test (SPEC 3.7) needs it, and
    /// fails without it. A count over more than the namespace is fine if nothing else writes
    /// to the driver meanwhile.
    pub fn with_stored_entries(
        mut self,
        probe: impl Fn(&D, &NamespaceName) -> usize + Send + Sync + 'static,
    ) -> Self {
        self.stored_entries = Some(Arc::new(probe));
        self
    }

    /// The driver under test.
    pub fn driver(&self) -> &D {
        &self.driver
    }

    /// A name no other test, run or process uses: `"<tag>-<pid>-<nanos>-<n>"`.
    pub fn unique_name(&self, tag: &str) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("{tag}-{}-{nanos}-{n}", std::process::id())
    }

    /// A fresh namespace, `conformance:<unique>`, bound to `K`.
    pub fn namespace<K: Key>(&self) -> Namespace<K, D> {
        self.named("conformance", &self.unique_name("t"))
    }

    /// The namespace (`root`, `domain`) on the driver under test.
    ///
    /// # Panics
    ///
    /// When the name is invalid: this is a test helper.
    pub fn named<K: Key>(&self, root: &str, domain: &str) -> Namespace<K, D> {
        Namespace::new(self.driver.clone(), root, domain).expect("valid namespace name")
    }

    /// A TTL for tests that wait for keys to expire: long enough that the operations between
    /// a write and its check finish in time.
    pub fn ttl(&self) -> Duration {
        match self.time {
            Time::Manual(_) => Duration::from_secs(10),
            Time::Real => self.real_ttl,
        }
    }

    /// Time on the driver's clock since the harness was made: the manual clock's reading, or
    /// real time.
    pub fn elapsed(&self) -> Duration {
        match &self.time {
            Time::Manual(clock) => clock.elapsed(),
            Time::Real => self.epoch.elapsed(),
        }
    }

    /// A reading of [`Harness::elapsed`] in nanoseconds that tasks can carry.
    pub(crate) fn clock(&self) -> impl Fn() -> i64 + Send + Sync + 'static {
        let (time, epoch) = (self.time.clone(), self.epoch);
        move || {
            let elapsed = match &time {
                Time::Manual(clock) => clock.elapsed(),
                Time::Real => epoch.elapsed(),
            };
            i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX)
        }
    }

    /// The instant the harness was made: real time for ordering calls is measured from it.
    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The manual clock, when the driver runs on one.
    pub(crate) fn manual_clock(&self) -> Option<ManualClock> {
        match &self.time {
            Time::Manual(clock) => Some(clock.clone()),
            Time::Real => None,
        }
    }

    /// How far a real-time store's expiry can be from the instant a model computes: stores
    /// count whole milliseconds (redb, Redis), so 1 ms in real time, none on a manual clock.
    pub(crate) fn clock_slack(&self) -> Duration {
        match self.time {
            Time::Manual(_) => Duration::ZERO,
            Time::Real => Duration::from_millis(1),
        }
    }

    /// Whether the driver runs on a manual clock.
    pub fn is_manual(&self) -> bool {
        matches!(self.time, Time::Manual(_))
    }

    /// Lets `by` pass: advances the manual clock at once, or sleeps.
    pub async fn pass(&self, by: Duration) {
        match &self.time {
            Time::Manual(clock) => clock.advance(by),
            Time::Real => tokio::time::sleep(by).await,
        }
    }

    /// Lets enough time pass for a key written with TTL `ttl` to have expired: exactly `ttl`
    /// on a manual clock (expiry is due at the deadline itself), `ttl` plus a margin in real
    /// time.
    pub async fn outlive(&self, ttl: Duration) {
        match &self.time {
            Time::Manual(_) => self.pass(ttl).await,
            Time::Real => self.pass(ttl + Duration::from_millis(150)).await,
        }
    }

    pub(crate) fn stored_entries(&self, namespace: &NamespaceName) -> usize {
        let probe = self.stored_entries.as_ref().expect(
            "SPEC 3.7 needs a count of stored entries: build the harness with `with_stored_entries`",
        );
        probe(&self.driver, namespace)
    }
}

/// `key.to_owned()`, short enough to keep the tests readable.
pub(crate) fn k(key: &str) -> String {
    key.to_owned()
}

/// Asserts that `$result` is `Err` of the given error variant.
macro_rules! assert_err {
    ($result:expr, $variant:ident, $($context:tt)+) => {
        match $result {
            Err(e) if e.kind() == $crate::ErrorKind::$variant => {}
            other => panic!(
                "{}: expected Error::{}, got {:?}",
                format_args!($($context)+),
                stringify!($variant),
                other
            ),
        }
    };
}
pub(crate) use assert_err;

/// Generates one `#[tokio::test]` per conformance function, each building its harness with
/// the given expression (which may `.await`).
///
/// The calling crate needs `tokio` with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@each $harness;
            namespace_layout,
            namespace_validation,
            typed_keys,
            composite_keys,
            key_validation,
            namespace_isolation,
            namespace_listing,
            namespace_eviction_modes,
            empty_and_oversized_values,
            largest_value,
            values_round_trip,
            ttl_validation,
            expired_is_missing,
            set_replaces_ttl,
            ttl_of_counters_and_swaps,
            ttl_answers,
            expire_and_persist,
            background_reclamation,
            expired_stays_expired,
            linearizable_with_expiry,
            set_and_set_nx,
            replace_only_present,
            get_and_exists,
            delete_reports_presence,
            counters,
            counter_canonical_form,
            counter_edge_values,
            counter_ttl_on_create,
            get_set_returns_previous,
            compare_and_swap,
            compare_and_delete,
            mget_order,
            mset_batch,
            mdel_counts_distinct,
            batches_validate_first,
            keys_glob,
            invalid_and_pathological_patterns,
            scan_matches_keys,
            listing_skips_removed_keys,
            clear_counts,
            concurrent_incr,
            concurrent_set_nx,
            concurrent_cas,
            concurrent_replace_and_delete,
            batch_atomicity,
            batch_atomic_for_single_reads,
            handles_are_shared,
            bad_input_leaves_store_unchanged,
            typed_values,
            codec_round_trips,
            rate_limiter,
            get_or_load,
            locks,
            lock_waits,
        );
    };
    (@each $harness:expr; $($rule:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $rule() {
                let harness = $harness;
                $crate::conformance::$rule(&harness).await;
            }
        )*
    };
}
