//! The memory driver's clock: monotonic nanoseconds, real or driven by a test.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A clock that moves only when told to, for deterministic, instant TTL tests.
///
/// Give it to [`MemoryBuilder::manual_clock`](super::MemoryBuilder::manual_clock); every
/// namespace of that driver then reads time from it, the background reclaimer included.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> namestore::Result<()> {
/// use std::time::Duration;
/// use namestore::drivers::memory::{ManualClock, MemoryDriver};
///
/// let clock = ManualClock::new();
/// let store = MemoryDriver::builder().manual_clock(clock.clone()).build()?;
/// let ns = store.namespace::<String>("app", "otp")?;
/// ns.set(&"code".to_owned(), "123456", Some(Duration::from_secs(60))).await?;
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(ns.get(&"code".to_owned()).await?, None);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at zero.
    pub fn new() -> Self {
        ManualClock::default()
    }

    /// Moves the clock forward by `by` (saturating at about 584 years).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_add(nanos))
            });
    }

    /// Time elapsed on this clock since it was created.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Acquire))
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Clock {
    System(Instant),
    Manual(ManualClock),
}

impl Clock {
    /// Nanoseconds since the driver was built.
    pub(crate) fn now(&self) -> u64 {
        match self {
            Clock::System(epoch) => u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Clock::Manual(clock) => clock.0.load(Ordering::Acquire),
        }
    }
}

/// Reads the clock at most once per operation, and only if an entry has a deadline: keys
/// without a TTL never pay for a clock read.
pub(crate) struct Now<'a> {
    clock: &'a Clock,
    read: Option<u64>,
}

impl<'a> Now<'a> {
    #[inline]
    pub(crate) fn new(clock: &'a Clock) -> Self {
        Now { clock, read: None }
    }

    #[inline]
    pub(crate) fn get(&mut self) -> u64 {
        *self.read.get_or_insert_with(|| self.clock.now())
    }
}
