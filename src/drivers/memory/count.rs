//! A count of what a store with a budget holds, kept by writes that settle it once their
//! shards' locks are let go.

use std::sync::atomic::{AtomicI64, Ordering};

/// A count of bytes or entries (the budget's, a namespace's), changed by the writes that
/// settle what they did once their locks are let go: what one write settles after its lock,
/// another may give back first (a shard's structures, charged by the write that grew them and
/// released by the write that emptied the shard), and the count is below zero for an instant.
/// So it is signed, and read as zero below it. (Unsigned, it wrapped: a namespace's charge
/// read as 2^64 less 590 bytes, and writes judging from a wrapped count whether they fit were
/// refused.)
#[derive(Debug, Default)]
pub(super) struct Count(AtomicI64);

impl Count {
    /// The count, or zero while it is below zero.
    #[inline]
    pub(super) fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire).max(0) as u64
    }

    /// Adds `delta`.
    #[inline]
    pub(super) fn add(&self, delta: i64) {
        if delta != 0 {
            self.0.fetch_add(delta, Ordering::AcqRel);
        }
    }

    /// Adds `delta` if the count stays within `max`; otherwise changes nothing and returns
    /// false. (A count below zero stays below zero or rises: a change is never refused for
    /// going below zero.)
    #[inline]
    pub(super) fn add_within(&self, delta: i64, max: u64) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                let total = i128::from(count) + i128::from(delta);
                (total <= i128::from(max)).then_some(total as i64)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::Count;

    #[test]
    fn below_zero_reads_as_zero_and_adds_up() {
        let count = Count::default();
        count.add(-600);
        assert_eq!(count.get(), 0);
        assert!(count.add_within(300, 100));
        assert_eq!(count.get(), 0);
        count.add(600);
        assert_eq!(count.get(), 300);
        assert!(!count.add_within(701, 1_000));
        assert_eq!(count.get(), 300);
        assert!(count.add_within(700, 1_000));
        assert!(count.add_within(i64::MAX, u64::MAX));
    }
}
