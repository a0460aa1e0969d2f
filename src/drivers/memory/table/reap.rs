//! Reclaiming expired entries: by scanning chunks of buckets (a store without a budget), or by
//! deadline from the shards' expiry index (a store with one).

use std::sync::atomic::Ordering;

use super::{Table, read, write};
use crate::drivers::memory::budget::Reservation;
use crate::drivers::memory::slots::Tally;

/// Buckets the reclaimer inspects per lock acquisition: a few microseconds of lock time.
const REAP_CHUNK: usize = 256;

impl Table {
    /// Removes this namespace's expired entries (a store with a budget keeps them by
    /// deadline); returns the earliest deadline left, or `u64::MAX`.
    pub(in crate::drivers::memory) fn purge(&self, now: u64) -> u64 {
        let mut earliest = u64::MAX;
        for shard in self.shards.iter() {
            if read(shard).with_ttl == 0 {
                continue;
            }
            let mut tally = Tally::new();
            let left = {
                let mut slots = write(shard);
                slots.purge(&self.hasher, now, &mut tally);
                slots.earliest()
            };
            earliest = earliest.min(left);
            self.finish(Reservation::default(), &tally, 0);
        }
        earliest
    }

    /// Reclaims expired entries, resuming each shard where the last call stopped.
    ///
    /// A full reap inspects every bucket. Otherwise each shard is inspected for 1/32 of its
    /// buckets (at least one chunk), and further while the last chunk was at least a quarter
    /// expired, up to one full pass: a full pass takes about 32 calls whatever the size. A chunk is first read
    /// under the shared lock; only a chunk holding expired entries takes the exclusive lock.
    /// Returns how many entries were freed, and a time at or before the earliest deadline
    /// left (0 when not every bucket of a shard holding deadlines was looked at: unknown).
    pub(crate) fn reap(&self, full: bool) -> (usize, u64) {
        if self.budget.is_some() {
            return self.reap_by_deadline();
        }
        let mut freed = 0;
        let mut left = u64::MAX;
        for shard in self.shards.iter() {
            let (buckets, with_ttl) = {
                let slots = read(shard);
                (slots.map.num_buckets(), slots.with_ttl)
            };
            if with_ttl == 0 {
                // Nothing here can expire.
                continue;
            }
            let budget = if full {
                buckets
            } else {
                (buckets / 32).max(REAP_CHUNK)
            };
            let mut cursor = shard.reap_cursor.load(Ordering::Relaxed);
            let mut scanned = 0;
            // Inserts while the shard is looked over may move entries to buckets already
            // seen: then what it holds is not known.
            let mut inserts = None;
            let mut moved = false;
            while scanned < buckets {
                let now = self.clock.now();
                let (end, expired) = {
                    let slots = read(shard);
                    moved |= *inserts.get_or_insert(slots.inserts) != slots.inserts;
                    let buckets = slots.map.num_buckets();
                    if cursor >= buckets {
                        cursor = 0;
                    }
                    let end = (cursor + REAP_CHUNK).min(buckets);
                    let mut expired = 0;
                    for entry in (cursor..end).filter_map(|i| slots.map.get_bucket(i)) {
                        if entry.expired_at(now) {
                            expired += 1;
                        } else if entry.deadline != 0 {
                            left = left.min(entry.deadline);
                        }
                    }
                    (end, expired)
                };
                if expired > 0 {
                    let mut dropped = Vec::with_capacity(expired);
                    let mut slots = write(shard);
                    // Buckets may have moved since the shared read; any expired entry found
                    // here is fair game, whichever it is.
                    for i in cursor..end {
                        if let Ok(found) = slots.map.get_bucket_entry(i)
                            && found.get().expired_at(now)
                        {
                            dropped.push(found.remove().0);
                        }
                    }
                    slots.with_ttl -= dropped.len();
                    slots.removed.expired += dropped.len() as u64;
                    drop(slots);
                    freed += dropped.len();
                    self.finish(
                        Reservation::default(),
                        &Tally {
                            expired: dropped.len() as u64,
                            ..Tally::new()
                        },
                        0,
                    );
                }
                scanned += end.saturating_sub(cursor).max(1);
                cursor = end;
                if scanned >= budget && expired * 4 < REAP_CHUNK {
                    break;
                }
            }
            shard.reap_cursor.store(cursor, Ordering::Relaxed);
            if scanned < buckets || moved {
                // Part of the shard was not looked at, or entries may have moved past the
                // look: what it holds is not known.
                left = 0;
            }
        }
        (freed, left)
    }

    /// Reclaims expired entries in a store with a budget, which keeps them by deadline: at
    /// most a chunk per lock acquisition, until none is left. Returns how many were freed and
    /// the earliest deadline left (a lower bound).
    fn reap_by_deadline(&self) -> (usize, u64) {
        let mut freed = 0;
        let mut left = u64::MAX;
        for shard in self.shards.iter() {
            loop {
                if read(shard).with_ttl == 0 {
                    break;
                }
                let now = self.clock.now();
                let mut tally = Tally::new();
                let (purged, earliest) = {
                    let mut slots = write(shard);
                    let purged = slots.purge_some(&self.hasher, now, REAP_CHUNK, &mut tally);
                    (purged, slots.earliest())
                };
                self.finish(Reservation::default(), &tally, 0);
                freed += purged;
                if purged < REAP_CHUNK {
                    left = left.min(earliest);
                    break;
                }
            }
        }
        (freed, left)
    }
}
