//! The background reclaimer: one thread for every store of the process that reclaims expired
//! keys in the background (in-memory stores, and redb files).
//!
//! Each store with a reclaim interval is watched here by a weak reference and the time its
//! next round is due. The thread sleeps until the earliest round, runs it (for a memory store,
//! its expired entries reclaimed and what empty shards keep given back in a nearly full store;
//! for a redb file, its expired keys deleted through its committer when one is due), and
//! schedules that store's next round one interval after this one ended, on a grid shared by
//! all stores, so that rounds due together are run in one wake-up. A store dropped is
//! forgotten at its next round; with no store left the thread ends, and the next store made
//! starts another.
//!
//! A thread for all, not one a store: a program that makes many stores (one a tenant, one a
//! test) paid a thread each, and each woke on its own ten times a second. 2,000 idle memory
//! stores took a quarter of a CPU on the 2-vCPU VM of docs/performance.md, 500 redb files 12%
//! (and a thread each besides their committers'), and the operating system's thread limit,
//! once reached, left new stores without a reclaimer.
//!
//! Two [`Lane`]s, each a thread: one for memory stores, whose rounds only compute, and one for
//! files, whose rounds wait for their disks. A disk that stops answering holds up the rounds
//! of the other files (their expired keys stay unseen and are reclaimed once it answers), and
//! never a memory store's.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// A store the thread reclaims in.
pub(crate) trait Reclaim: Send + Sync + 'static {
    /// One round of background reclamation. It takes the store's handle, so that a store can
    /// let it go before its round's work (a redb file closes with its last handle, and must
    /// not wait for a round).
    fn round(self: Arc<Self>);
}

/// The stores watched and when each is next due; the thread's state.
struct Schedule {
    rounds: BinaryHeap<Reverse<Round>>,
    /// Whether the thread runs (it ends when `rounds` is empty).
    running: bool,
    /// Tells rounds due at the same instant apart, in the order they were scheduled.
    next_order: u64,
}

/// A store's next round.
struct Round {
    at: Instant,
    order: u64,
    interval: Duration,
    /// How many rounds in a row have panicked: each doubles the wait before the next, up to
    /// [`LONGEST_BACKOFF`].
    panics: u32,
    store: Weak<dyn Reclaim>,
}

/// The longest wait after rounds that panicked (unless the interval is longer): a round that
/// always panics (a metrics recorder's bug) is tried, and reported by the panic hook, once a
/// minute, not at every interval, ten times a second by default.
const LONGEST_BACKOFF: Duration = Duration::from_secs(60);

impl PartialEq for Round {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl Eq for Round {}

impl PartialOrd for Round {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Round {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// The stores one thread watches.
pub(crate) struct Lane {
    schedule: Mutex<Schedule>,
    /// Wakes the thread when a round is scheduled earlier than the one it waits for.
    wake: Condvar,
    /// The thread's name.
    name: &'static str,
}

impl Lane {
    const fn new(name: &'static str) -> Self {
        Lane {
            schedule: Mutex::new(Schedule {
                rounds: BinaryHeap::new(),
                running: false,
                next_order: 0,
            }),
            wake: Condvar::new(),
            name,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The memory stores' lane: rounds that only compute.
pub(crate) static MEMORY: Lane = Lane::new("namestore-reaper");

/// The files' lane (redb): rounds that read and write their files.
#[cfg(feature = "redb")]
pub(crate) static FILES: Lane = Lane::new("namestore-files");

impl Schedule {
    /// Schedules `store`'s next round `interval` from now, or later after `panics` rounds in a
    /// row that panicked; a round too far off for the clock to hold is never due, and is not
    /// scheduled. Returns whether the round is now the earliest, which the thread must be woken
    /// for.
    fn push(&mut self, store: Weak<dyn Reclaim>, interval: Duration, panics: u32) -> bool {
        let wait = match panics {
            0 => interval,
            _ => interval
                .saturating_mul(1 << panics.min(16))
                .min(LONGEST_BACKOFF.max(interval)),
        };
        let Some(at) = on_grid(Instant::now(), wait) else {
            return false;
        };
        let order = self.next_order;
        self.next_order += 1;
        let earliest = self.rounds.peek().is_none_or(|Reverse(next)| at < next.at);
        self.rounds.push(Reverse(Round {
            at,
            order,
            interval,
            panics,
            store,
        }));
        earliest
    }
}

/// When a round `interval` after `now` is due: rounded up to a grid of a tenth of the interval
/// (10 ms at most), so that the rounds of stores made at different instants fall due together
/// and the thread wakes once for all of them, not once for each; `None` when the clock cannot
/// hold it.
fn on_grid(now: Instant, interval: Duration) -> Option<Instant> {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let at = now.checked_add(interval)?;
    let step = (interval / 10).min(Duration::from_millis(10)).as_nanos();
    if step == 0 {
        return Some(at);
    }
    let since = at.saturating_duration_since(origin).as_nanos();
    let late = (step - since % step) % step;
    at.checked_add(Duration::from_nanos(u64::try_from(late).ok()?))
}

/// Reclaims in `store` every `interval` while it lives, on `lane`'s thread.
///
/// # Errors
///
/// [`ErrorKind::Backend`](crate::ErrorKind::Backend) when the thread is not running and the
/// operating system refuses to start it; the store is then not watched.
pub(crate) fn watch(
    lane: &'static Lane,
    store: Weak<dyn Reclaim>,
    interval: Duration,
) -> Result<()> {
    let mut schedule = lane.lock();
    if !schedule.running {
        std::thread::Builder::new()
            .name(lane.name.into())
            .spawn(move || run(lane))
            .map_err(Error::backend)?;
        schedule.running = true;
    }
    if schedule.push(store, interval, 0) {
        lane.wake.notify_one();
    }
    Ok(())
}

/// The thread: each store's round when it is due, until no store is left.
fn run(lane: &'static Lane) {
    let mut schedule = lane.lock();
    loop {
        let Some(Reverse(next)) = schedule.rounds.peek() else {
            schedule.running = false;
            return;
        };
        let now = Instant::now();
        if next.at > now {
            let wait = next.at - now;
            schedule = lane
                .wake
                .wait_timeout(schedule, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        }
        let Some(Reverse(round)) = schedule.rounds.pop() else {
            continue;
        };
        // A store dropped since is forgotten.
        let Some(store) = round.store.upgrade() else {
            continue;
        };
        drop(schedule);
        // The store is not kept alive while the thread waits: the round takes its handle. A
        // panic in a round (a metrics recorder's, say) ends that round only: the other stores
        // keep their reclaimer, and this one is tried again later and later while its rounds
        // keep panicking.
        let panics = match catch_unwind(AssertUnwindSafe(|| store.round())) {
            Ok(()) => 0,
            Err(_) => round.panics.saturating_add(1),
        };
        schedule = lane.lock();
        schedule.push(round.store, round.interval, panics);
    }
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "redb")]
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[cfg(feature = "redb")]
    struct Counted(AtomicUsize);

    #[cfg(feature = "redb")]
    impl Reclaim for Counted {
        fn round(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A round that waits as a file's does on a disk that stopped answering.
    #[cfg(feature = "redb")]
    struct Stuck(Mutex<()>);

    #[cfg(feature = "redb")]
    impl Reclaim for Stuck {
        fn round(self: Arc<Self>) {
            let _held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        }
    }

    #[cfg(feature = "redb")]
    #[test]
    fn a_stuck_file_round_holds_up_no_memory_store() {
        let stuck = Arc::new(Stuck(Mutex::new(())));
        let disk = stuck.0.lock().unwrap();
        let weak: Weak<dyn Reclaim> = Arc::downgrade(&stuck) as Weak<Stuck>;
        watch(&FILES, weak, Duration::from_millis(1)).unwrap();
        let counted = Arc::new(Counted(AtomicUsize::new(0)));
        let weak: Weak<dyn Reclaim> = Arc::downgrade(&counted) as Weak<Counted>;
        watch(&MEMORY, weak, Duration::from_millis(1)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while counted.0.load(Ordering::SeqCst) < 20 {
            assert!(
                Instant::now() < deadline,
                "memory rounds held up by a file's"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(disk);
    }

    /// A store whose rounds panic while `panicking` is set, as a buggy metrics recorder makes
    /// them; it notes when each round began.
    struct Panicking {
        began: Mutex<Vec<Instant>>,
        panicking: std::sync::atomic::AtomicBool,
    }

    impl Panicking {
        fn rounds(&self) -> Vec<Instant> {
            self.began.lock().unwrap().clone()
        }
    }

    impl Reclaim for Panicking {
        fn round(self: Arc<Self>) {
            self.began.lock().unwrap().push(Instant::now());
            assert!(
                !self.panicking.load(std::sync::atomic::Ordering::SeqCst),
                "a round that panics (this test's)"
            );
        }
    }

    #[test]
    fn a_round_that_keeps_panicking_is_tried_later_and_later() {
        use std::sync::atomic::Ordering::SeqCst;
        let wait_for = |store: &Panicking, rounds: usize| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while store.rounds().len() < rounds {
                assert!(Instant::now() < deadline, "{} rounds", store.rounds().len());
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let store = Arc::new(Panicking {
            began: Mutex::default(),
            panicking: true.into(),
        });
        let weak: Weak<dyn Reclaim> = Arc::downgrade(&store) as Weak<Panicking>;
        let interval = Duration::from_millis(5);
        watch(&MEMORY, weak, interval).unwrap();
        // Each wait twice the last: 10, 20, 40, 80, 160 ms after the first five panics (at
        // least: a loaded machine only makes them longer), where they were 5 ms each. Timed
        // from round to round: counted in a fixed second, the rounds fell outside the bounds
        // once, run beside the memory suites on a loaded machine.
        wait_for(&store, 6);
        let began = store.rounds();
        for (panics, pair) in began.windows(2).take(5).enumerate() {
            let waited = pair[1] - pair[0];
            let backoff = interval * (2 << panics);
            assert!(waited >= backoff, "after panic {}: {waited:?}", panics + 1);
        }
        // Once a round succeeds, they come at the interval again (the wait in course may be
        // 2.56 s, after an eighth panic).
        store.panicking.store(false, SeqCst);
        let tried = store.rounds().len();
        wait_for(&store, tried + 50);
    }

    #[test]
    fn rounds_fall_on_a_grid_and_never_early() {
        let now = Instant::now();
        for interval in [
            Duration::from_millis(100),
            Duration::from_micros(50),
            Duration::ZERO,
        ] {
            let at = on_grid(now, interval).unwrap();
            assert!(at >= now + interval);
            assert!(at <= now + interval + interval / 10 + Duration::from_nanos(1));
        }
        assert_eq!(on_grid(now, Duration::MAX), None);
    }
}
