//! One shard's entries, and the bookkeeping every change to them does: the count of entries
//! with a TTL (the reclaimer skips shards without any) and, in a store with a budget, the
//! eviction order and what the change did to the budget ([`Tally`]).

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::clock::Now;
use super::entry::{Entry, Value, key_eq};
use super::eviction::Eviction;
use super::order::Order;

#[derive(Default)]
pub(super) struct Slots {
    pub(super) map: HashTable<Entry>,
    /// Entries with a deadline.
    pub(super) with_ttl: usize,
    /// The eviction order, in a store with a budget.
    pub(super) order: Option<Box<Order>>,
    /// Keys evicted from the shard, and removed from it after they expired (SPEC 10.7):
    /// counted under its lock, which every removal holds already, instead of in counters all
    /// the namespace's writers would share.
    pub(super) removed: Removed,
}

/// Keys a shard evicted, and removed after they expired.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Removed {
    pub(super) evicted: u64,
    pub(super) expired: u64,
}

/// A live entry found for a change, with the bookkeeping of its shard the change updates.
pub(super) struct Live<'s> {
    pub(super) entry: &'s mut Entry,
    with_ttl: &'s mut usize,
    order: Option<&'s mut Order>,
}

/// What changes to a shard did to its store's budget, applied once the shard is unlocked.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Tally {
    pub(super) bytes: i64,
    pub(super) entries: i64,
    pub(super) evictable_bytes: i64,
    pub(super) evictable_entries: i64,
    /// Entries removed because they had expired, and evicted.
    pub(super) expired: u64,
    pub(super) evicted: u64,
    /// The earliest deadline stored by the changes, or `u64::MAX`.
    pub(super) earliest: u64,
}

impl Tally {
    pub(super) fn new() -> Self {
        Tally {
            earliest: u64::MAX,
            ..Tally::default()
        }
    }

    /// Counts `entry` in (`sign` 1) or out (`sign` -1).
    pub(super) fn count(&mut self, order: &Order, entry: &Entry, sign: i64) {
        let charge = entry.charge() as i64 * sign;
        self.bytes += charge;
        self.entries += sign;
        if order.evictable(entry) {
            self.evictable_bytes += charge;
            self.evictable_entries += sign;
        }
        if sign > 0 && entry.deadline != 0 {
            self.earliest = self.earliest.min(entry.deadline);
        }
    }
}

/// An entry's cost and deadline before a change, to account the change afterwards.
#[derive(Clone, Copy)]
pub(super) struct Before {
    deadline: u64,
    charge: u64,
    evictable: bool,
}

impl Slots {
    /// The live entry for `key`; an expired one found on the way is removed.
    #[inline]
    pub(super) fn live_mut(
        &mut self,
        hash: u64,
        key: &str,
        now: &mut Now<'_>,
        tally: &mut Tally,
    ) -> Option<Live<'_>> {
        let Slots {
            map,
            with_ttl,
            order,
            removed,
        } = self;
        match map.find_entry(hash, |e| key_eq(&e.key, key)) {
            Ok(found) if found.get().live(now) => Some(Live {
                entry: found.into_mut(),
                with_ttl,
                order: order.as_deref_mut(),
            }),
            Ok(found) => {
                // An expired entry had a deadline.
                let (entry, _) = found.remove();
                *with_ttl -= 1;
                tally.expired += 1;
                removed.expired += 1;
                if let Some(order) = order {
                    order.removed(&entry);
                    tally.count(order, &entry, -1);
                }
                None
            }
            Err(_) => None,
        }
    }

    /// As [`live_mut`](Self::live_mut), without looking when the caller's lock already
    /// showed no entry for the key (`absent`).
    #[inline]
    pub(super) fn live_unless(
        &mut self,
        absent: bool,
        hash: u64,
        key: &str,
        now: &mut Now<'_>,
        tally: &mut Tally,
    ) -> Option<Live<'_>> {
        if absent {
            return None;
        }
        self.live_mut(hash, key, now, tally)
    }

    /// Removes `key`'s entry, live or not; true when it was live. An expired one is
    /// counted as reclaimed after expiry.
    #[inline]
    pub(super) fn remove(
        &mut self,
        hash: u64,
        key: &str,
        now: &mut Now<'_>,
        tally: &mut Tally,
    ) -> bool {
        let Ok(found) = self.map.find_entry(hash, |e| key_eq(&e.key, key)) else {
            return false;
        };
        let (entry, _) = found.remove();
        self.forget(&entry, tally);
        let live = entry.live(now);
        if !live {
            tally.expired += 1;
            self.removed.expired += 1;
        }
        live
    }

    /// Bookkeeping for an entry taken out of the map.
    #[inline]
    fn forget(&mut self, entry: &Entry, tally: &mut Tally) {
        if entry.deadline != 0 {
            self.with_ttl -= 1;
        }
        if let Some(order) = &mut self.order {
            order.removed(entry);
            tally.count(order, entry, -1);
        }
    }

    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn insert(
        &mut self,
        hasher: &DefaultHashBuilder,
        hash: u64,
        key: &str,
        value: Value,
        deadline: u64,
        mark: u32,
        tally: &mut Tally,
    ) {
        if deadline != 0 {
            self.with_ttl += 1;
        }
        let id = self.order.as_mut().map_or(0, |order| order.next_id());
        let mut entry = Entry::new(key, value, deadline, id);
        if let Some(order) = &mut self.order {
            entry.mark.store(mark, std::sync::atomic::Ordering::Relaxed);
            order.inserted(hash, &mut entry);
            tally.count(order, &entry, 1);
        }
        self.map
            .insert_unique(hash, entry, |e| hasher.hash_one(e.key.as_str()));
        if let Some(order) = &mut self.order {
            order.maintain(&self.map, self.with_ttl, hasher);
        }
    }

    /// Evicts the shard's next victim, if it holds an evictable entry other than the keys in
    /// `spared`.
    pub(super) fn evict(&mut self, epoch: u32, spared: &[&str], tally: &mut Tally) -> bool {
        let Some(order) = &mut self.order else {
            return false;
        };
        let Some(victim) = order.victim(&mut self.map, epoch, spared) else {
            return false;
        };
        tally.evicted += 1;
        self.removed.evicted += 1;
        if victim.deadline != 0 {
            self.with_ttl -= 1;
        }
        let charge = victim.charge as i64;
        tally.bytes -= charge;
        tally.entries -= 1;
        tally.evictable_bytes -= charge;
        tally.evictable_entries -= 1;
        true
    }

    /// Removes the shard's entries that expired at or before `now`; returns how many.
    pub(super) fn purge(&mut self, now: u64, tally: &mut Tally) -> usize {
        self.purge_some(now, usize::MAX, tally)
    }

    /// Removes up to `most` of the shard's entries that expired at or before `now`.
    pub(super) fn purge_some(&mut self, now: u64, most: usize, tally: &mut Tally) -> usize {
        let Some(order) = &mut self.order else {
            return 0;
        };
        let mut purged = 0;
        while purged < most {
            let Some(entry) = order.expired(&mut self.map, now) else {
                break;
            };
            self.with_ttl -= 1;
            tally.count(order, &entry, -1);
            tally.expired += 1;
            purged += 1;
        }
        self.removed.expired += purged as u64;
        purged
    }

    /// The earliest deadline the shard may hold, or `u64::MAX`.
    pub(super) fn earliest(&self) -> u64 {
        self.order
            .as_ref()
            .map_or(u64::MAX, |order| order.earliest())
    }
}

impl Live<'_> {
    /// Changes the entry (its value, its deadline, or both) with `change`, and keeps the
    /// shard's bookkeeping: its count of entries with a deadline and, in a store with a
    /// budget (`mode` is the namespace's eviction mode there, `None` without one), the
    /// eviction order and what the change did to the budget. Returns what `change` returns.
    #[inline]
    pub(super) fn update<R>(
        self,
        mode: Option<Eviction>,
        hash: u64,
        tally: &mut Tally,
        change: impl FnOnce(&mut Entry) -> R,
    ) -> R {
        let before = mode.map(|mode| Before {
            deadline: self.entry.deadline,
            charge: self.entry.charge(),
            evictable: mode.allows(self.entry),
        });
        let old = self.entry.deadline;
        let answer = change(self.entry);
        match (old != 0, self.entry.deadline != 0) {
            (false, true) => *self.with_ttl += 1,
            (true, false) => *self.with_ttl -= 1,
            _ => {}
        }
        if let (Some(before), Some(order)) = (before, self.order) {
            account_change(order, hash, self.entry, before, tally);
        }
        answer
    }
}

fn account_change(
    order: &mut Order,
    hash: u64,
    entry: &mut Entry,
    before: Before,
    tally: &mut Tally,
) {
    order.changed(hash, entry, before.deadline, before.charge);
    let charge = entry.charge() as i64;
    tally.bytes += charge - before.charge as i64;
    let evictable = order.evictable(entry);
    match (before.evictable, evictable) {
        (true, true) => tally.evictable_bytes += charge - before.charge as i64,
        (false, true) => {
            tally.evictable_bytes += charge;
            tally.evictable_entries += 1;
        }
        (true, false) => {
            tally.evictable_bytes -= before.charge as i64;
            tally.evictable_entries -= 1;
        }
        (false, false) => {}
    }
    if entry.deadline != 0 && entry.deadline != before.deadline {
        tally.earliest = tally.earliest.min(entry.deadline);
    }
}
