//! One shard's entries, and the bookkeeping every change to them does: the count of entries
//! with a TTL (the reclaimer skips shards without any) and, in a store with a budget, the
//! eviction order and what the change did to the budget ([`Tally`]).

use std::hash::BuildHasher;
use std::mem::size_of;
use std::num::NonZeroU32;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::budget::Budget;
use super::clock::Now;
use super::entry::{Entry, Value, heap, key_eq};
use super::eviction::{Eviction, Policy};
use super::order::Order;
use super::spared::Spared;

#[derive(Default)]
pub(super) struct Slots {
    pub(super) map: HashTable<Entry>,
    /// Entries with a deadline.
    pub(super) with_ttl: usize,
    /// Entries inserted, ever (wrapping): an insert may move others to other buckets, so a
    /// look over the buckets a chunk at a time knows it saw every entry only if none came.
    pub(super) inserts: u64,
    /// The eviction order, in a store with a budget, once the shard has held an entry.
    pub(super) order: Option<Box<Order>>,
    /// In a store with a budget, until the shard's first entry: what its order is made of.
    /// (An order made for every shard up front cost a namespace holding one key 16 of them,
    /// 3.6 KB of its 6.8.)
    unordered: Option<OrderSeed>,
    /// Keys evicted from the shard, and removed from it after they expired (SPEC 10.7):
    /// counted under its lock, which every removal holds already, instead of in counters all
    /// the namespace's writers would share.
    pub(super) removed: Removed,
    /// What the table takes, as last charged to the budget.
    table_charged: u64,
    /// The most entries the table has held room for (hashbrown's "full capacity", 7/8 of its
    /// buckets, which `capacity()` reports right after a growth or a rehash).
    table_full: usize,
}

/// Tables with room for this many entries or fewer are not shrunk (a shard that empties and
/// fills again would rebuild them each time). Small: with a budget of a few hundred KiB, the
/// tables of 16 shards that once held many small entries took 12 points of the budget more
/// at 64 (`a_small_budget_goes_to_values_not_to_tables_left_from_before`).
const SMALLEST_SHRUNK: usize = 16;

/// At most what a shard keeps once eviction took all its entries: its table, shrunk with its
/// entries to 16 slots or fewer (1.3 KiB), and its eviction order's structures, trimmed with
/// the table (up to 2.9 KiB where deletes and deadlines left their positions to skip; 4,184
/// bytes in all at most in the unit test below, tables halved as eviction makes room for
/// bytes). What evicting every entry of a namespace frees of its structures is counted
/// against it ([`Table::shrinks_by_at_least`](super::table::Table)).
pub(super) const EMPTIED_SHARD_KEEPS: u64 = 4608;

/// At most what a shard keeps beyond [`EMPTIED_SHARD_KEEPS`] for each entry that eviction may
/// not take (a key without a TTL in a `with-ttl` namespace), once it took all the others: its
/// table stops shrinking a quarter full (four slots of 81 bytes an entry, and up to an eighth
/// more for hashbrown's load factor), its eviction order's structures with it (at most 494
/// bytes an entry in a unit test over both policies and 1 to 3,000 such entries).
pub(super) const KEPT_ENTRY_KEEPS: u64 = 768;

/// The room a table halved after an eviction keeps for `len` entries: an eighth more, for the
/// inserts to come.
#[inline]
fn half_room(len: usize) -> usize {
    len + len / 8 + 1
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
    /// Of which eviction cannot free: entries their namespace's mode keeps, and the shards'
    /// structures. Kept instead of the evictable part so that in an `any` namespace, where
    /// every entry is evictable, a change moves no more of the budget's shared counters than
    /// its bytes and entries.
    pub(super) fixed_bytes: i64,
    pub(super) fixed_entries: i64,
    /// Entries (victims) already given back to the budget in a trade for the write's room
    /// (`Budget::trade`), taken out of `entries` then: still to be counted in the namespace's
    /// evictable entries ([`Table::settle`](super::table::Table)).
    pub(super) traded_entries: i64,
    /// Entries removed because they had expired, and evicted.
    pub(super) expired: u64,
    pub(super) evicted: u64,
    /// The earliest deadline stored by the changes, or `u64::MAX`.
    pub(super) earliest: u64,
    /// Of `fixed_bytes`, what the namespace's structures and fixed part grew (or shrank) by.
    pub(super) structures: i64,
    /// Whether a change gave a shard its first entry (and made its eviction order): the
    /// namespace's fixed part is charged with the first of those (`Table::finish`).
    pub(super) opened: bool,
    /// The shard (its index + 1) whose table a change let double without taking room for
    /// it: the store sheds from it first ([`Table::shed`](super::table::Table)).
    pub(super) doubled: Option<NonZeroU32>,
    /// Whether the write took its room past the budget
    /// (`LAST_ATTEMPT`, `table/room.rs`): the store sheds after it.
    pub(super) forced: bool,
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
        if !order.evictable(entry) {
            self.fixed_bytes += charge;
            self.fixed_entries += sign;
        }
        if sign > 0 && entry.deadline != 0 {
            self.earliest = self.earliest.min(entry.deadline);
        }
    }

    /// Adds what `other` counted to this tally: the victims a write evicted apart, to be
    /// settled with the write ([`Table::room_to_insert`](super::table::Table)).
    pub(super) fn absorb(&mut self, other: &Tally) {
        self.bytes += other.bytes;
        self.entries += other.entries;
        self.fixed_bytes += other.fixed_bytes;
        self.fixed_entries += other.fixed_entries;
        self.traded_entries += other.traded_entries;
        self.expired += other.expired;
        self.evicted += other.evicted;
        self.earliest = self.earliest.min(other.earliest);
        self.structures += other.structures;
        self.opened |= other.opened;
        self.doubled = self.doubled.or(other.doubled);
        self.forced |= other.forced;
    }

    /// Hands the room victims freed (their bytes and entries, negative) to a write that took
    /// it ([`Budget::trade`](super::budget::Budget::trade)): they leave the tally, which still
    /// counts the entries for its namespace's count of what eviction may take. Returns them.
    #[inline]
    pub(super) fn hand_over_room(&mut self) -> (i64, i64) {
        let room = (self.bytes, self.entries);
        self.bytes = 0;
        self.traded_entries += self.entries;
        self.entries = 0;
        room
    }

    /// Counts what a shard's structures (its table, its eviction order) or its namespace's
    /// fixed part grew by, or shrank by when negative: charged to the budget, and counted
    /// with what eviction cannot free (the budget's fixed bytes); what evicting entries lets
    /// them shrink by, or freeing the whole namespace, is counted apart (`Table::could_fit`).
    #[inline]
    pub(super) fn restructure(&mut self, bytes: i64) {
        self.bytes += bytes;
        self.fixed_bytes += bytes;
        self.structures += bytes;
    }
}

/// An entry's cost and deadline before a change, to account the change afterwards.
#[derive(Clone, Copy)]
pub(super) struct Before {
    deadline: u64,
    charge: u64,
    evictable: bool,
}

/// What a shard's eviction order is made of: its namespace's mode and policy, and its seed.
#[derive(Clone, Copy, Debug)]
pub(super) struct OrderSeed {
    pub(super) mode: Eviction,
    pub(super) policy: Policy,
    pub(super) seed: u64,
}

impl Slots {
    /// An empty shard; in a store with a budget, `order` is what its eviction order is made
    /// of when the shard gets its first entry.
    pub(super) fn new(order: Option<OrderSeed>) -> Self {
        Slots {
            unordered: order,
            ..Slots::default()
        }
    }

    /// The live entry for `key`; an expired one found on the way is removed.
    #[inline]
    pub(super) fn live_mut(
        &mut self,
        hash: u64,
        key: &str,
        now: &mut Now<'_>,
        tally: &mut Tally,
    ) -> Option<Live<'_>> {
        // A change to a present entry (a new deadline, most often) may leave a stale
        // position: the queues and the expiry index are kept from growing with them here,
        // as inserts keep them.
        if let Some(order) = &mut self.order
            && order.maintain(&self.map, self.with_ttl)
        {
            tally.restructure(order.restructured());
        }
        let Slots {
            map,
            with_ttl,
            order,
            removed,
            ..
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
        hasher: &DefaultHashBuilder,
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
        self.shrink_if_sparse(hasher, tally);
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
        self.inserts = self.inserts.wrapping_add(1);
        if let Some(seed) = self.unordered {
            self.make_order(seed);
            tally.opened = true;
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
            order.maintain(&self.map, self.with_ttl);
            tally.restructure(order.restructured());
            // The table's room only ever goes up, when it grows (or back to where it was
            // after a rehash in place).
            let room = self.map.capacity();
            if room > self.table_full {
                self.table_full = room;
                self.recharge_table(tally);
            }
        }
    }

    /// Whether the shard's first entry will make its eviction order (a store with a budget,
    /// a shard that has held no entry since it was made or cleared): the write adding it
    /// reserves the order's first blocks and the table's (`Table::opening`,
    /// `Table::growth_to_reserve`).
    #[inline]
    pub(super) fn awaits_order(&self) -> bool {
        self.unordered.is_some()
    }

    /// Whether the shard holds no entry but keeps the table and eviction order its entries
    /// had (`Table::release_empty_shards` gives them back).
    pub(super) fn idle(&self) -> bool {
        self.map.is_empty() && self.order.is_some()
    }

    /// The shard's eviction order, made for its first entry.
    #[cold]
    fn make_order(&mut self, seed: OrderSeed) {
        self.unordered = None;
        self.order = Some(Box::new(Order::new(seed.mode, seed.policy, seed.seed)));
    }

    /// Charges `tally` what the table grew or shrank by since it was last charged.
    fn recharge_table(&mut self, tally: &mut Tally) {
        let table = heap(self.map.allocation_size());
        tally.restructure(table as i64 - self.table_charged as i64);
        self.table_charged = table;
    }

    /// What adding `n` entries may grow the table by, as the budget charges it. A hashbrown
    /// table with no room left (entries and the tombstones of removed ones at 7/8 of its
    /// buckets) doubles on the next insert, unless half its capacity holds its entries: then
    /// it is rehashed in place. A new key that lands on a tombstone spares the growth: the
    /// write then reserved more than it used, never less.
    pub(super) fn growth_if_adding(&self, n: usize) -> u64 {
        self.growth_to_hold(self.map.len() + n)
    }

    /// What the table grows by to hold `total` entries, as the budget charges it: what a write
    /// of `total` keys into the shard grows it by at least, once every other entry has been
    /// evicted ([`growth_if_adding`](Self::growth_if_adding) counts the entries it holds).
    pub(super) fn growth_to_hold(&self, total: usize) -> u64 {
        if total <= self.map.capacity() || total <= self.table_full / 2 {
            return 0;
        }
        table_charge(total, self.table_full).saturating_sub(self.table_charged)
    }

    /// What a table made anew for `total` entries is charged: what a shard given back once
    /// empty ([`Slots::idle`]) takes again for them.
    pub(super) fn remade_to_hold(total: usize) -> u64 {
        if total == 0 {
            0
        } else {
            table_charge(total, 0)
        }
    }

    /// Whether a table that adding `n` entries would make double holds few enough entries
    /// that, rebuilt at its size, it has room for them and an eighth of it to spare: its
    /// removals' tombstones, not its entries, fill it. hashbrown rehashes a table in place only
    /// when it is at most half full, and doubles it past that; in a store with a budget a
    /// write that took no room for the doubling rebuilds such a table instead
    /// ([`rebuild_if_worn`](Self::rebuild_if_worn)). (A write that found no room for the
    /// doubling used to evict from its shard down to half, for hashbrown to rehash in place.)
    pub(super) fn rebuild_makes_room(&self, n: usize) -> bool {
        let len = self.map.len();
        len + n > self.map.capacity() && len + n <= self.table_full - self.table_full / 8
    }

    /// In a `with-ttl` namespace: whether adding `n` entries doubles the table even with
    /// every entry eviction may take from it gone. Its keys without a TTL, which eviction may
    /// not take, leave a table rebuilt at its size no room for them
    /// ([`rebuild_makes_room`](Self::rebuild_makes_room)).
    #[inline]
    pub(super) fn doubles_whatever_goes(&self, n: usize) -> bool {
        self.growth_if_adding(n) != 0 && {
            let kept = self.map.len().saturating_sub(self.with_ttl);
            kept + n > self.table_full - self.table_full / 8
        }
    }

    /// Whether the table is smaller than any table is shrunk to: its doubling costs little
    /// (under 16 slots), and sparing it by eviction would take most of the shard's keys.
    #[inline]
    pub(super) fn small_table(&self) -> bool {
        self.table_full < SMALLEST_SHRUNK
    }

    /// Before an insert that took no room for the table's doubling: a table that would double
    /// for its tombstones ([`rebuild_makes_room`](Self::rebuild_makes_room)) is rebuilt at its
    /// size. Nothing to do in a store without a budget (`table_full` stays 0 there).
    #[inline]
    pub(super) fn rebuild_if_worn(&mut self, hasher: &DefaultHashBuilder, tally: &mut Tally) {
        if self.table_full != 0 && self.rebuild_makes_room(1) {
            self.rebuild_table(hasher, tally);
        }
    }

    /// Moves the entries into a table of the same size: their tombstones go, and the room
    /// they took comes back. One table more is held for the moment it takes.
    #[cold]
    fn rebuild_table(&mut self, hasher: &DefaultHashBuilder, tally: &mut Tally) {
        let mut fresh = HashTable::with_capacity(self.table_full);
        for entry in self.map.drain() {
            fresh.insert_unique(hasher.hash_one(entry.key.as_str()), entry, |e| {
                hasher.hash_one(e.key.as_str())
            });
        }
        self.map = fresh;
        self.recharge_table(tally);
    }

    /// The heap the shard's structures (its table, its eviction order) hold as last charged
    /// to the budget: what a store with a budget gives back when the shard is dropped.
    pub(super) fn charged_structures(&self) -> u64 {
        self.table_charged + self.order.as_ref().map_or(0, |order| order.charged())
    }

    /// Charges `tally` what the eviction order's structures grew or shrank by since they were
    /// last charged: after evictions a write from elsewhere made, which no insert into this
    /// shard follows (its ghost table grows with each victim).
    pub(super) fn recharge_order(&mut self, tally: &mut Tally) {
        if let Some(order) = &mut self.order {
            tally.restructure(order.restructured());
        }
    }

    /// How many of the shard's entries eviction may take.
    #[inline]
    pub(super) fn evictable_len(&self) -> usize {
        self.order
            .as_ref()
            .map_or(0, |order| order.evictable_len(self.map.len()))
    }

    /// Evicts the shard's next victim, if it holds an evictable entry other than the keys in
    /// `spared`.
    pub(super) fn evict(
        &mut self,
        hasher: &DefaultHashBuilder,
        budget: &Budget,
        spared: &Spared<'_>,
        tally: &mut Tally,
    ) -> bool {
        let Some(order) = &mut self.order else {
            return false;
        };
        let Some(victim) = order.victim(&mut self.map, budget.epoch(), spared) else {
            return false;
        };
        tally.evicted += 1;
        self.removed.evicted += 1;
        if victim.deadline != 0 {
            self.with_ttl -= 1;
        }
        // What the ghost table grew by is charged with the shard's next insert, or by an
        // eviction from elsewhere (`recharge_order`).
        let charge = victim.charge as i64;
        tally.bytes -= charge;
        tally.entries -= 1;
        // (Rarely true: the rest out of line.)
        if self.table_full > SMALLEST_SHRUNK && half_room(self.map.len()) <= self.table_full / 2 {
            self.shrink_after_eviction(hasher, budget, tally);
        }
        true
    }

    /// After a victim went, from a table whose entries fit in half of it: when it went to make
    /// room for bytes, the table is halved (keeping an eighth of its entries more room, for
    /// the inserts to come). A victim that costs only its room in the table (a counter with a
    /// short key, an empty value) frees nothing until its table shrinks; shrunk only under a
    /// quarter full, as after deletes, a shard lost three quarters of its keys to pay for a
    /// few hundred bytes that a queue grew by, and a shard of values that others took room
    /// from kept a table twice the size of its entries. When the entries' limit is what binds,
    /// it shrinks under a quarter full, as after deletes: a table halved at half full would
    /// double again after a few inserts, where a quarter leaves it room to move.
    #[cold]
    fn shrink_after_eviction(
        &mut self,
        hasher: &DefaultHashBuilder,
        budget: &Budget,
        tally: &mut Tally,
    ) {
        if budget.short_of_bytes() {
            self.shrink_table(hasher, half_room(self.map.len()), tally);
        } else {
            self.shrink_if_sparse(hasher, tally);
        }
    }

    /// After entries left: a table that holds under a quarter of what it has room for
    /// (hashbrown's tables never shrink by themselves) is rebuilt with room for twice its
    /// entries, and the budget gets back what it gave up. Twice, because a table whose entries
    /// come and go settles between a quarter and a half full (past half, removals' tombstones
    /// make it double); so a shrunk table does not grow back while its entries stay as few.
    /// Only in a store with a budget (`table_full` stays 0 without one).
    #[inline]
    fn shrink_if_sparse(&mut self, hasher: &DefaultHashBuilder, tally: &mut Tally) {
        if self.table_full > SMALLEST_SHRUNK && self.map.len() * 4 < self.table_full {
            self.shrink_table(hasher, self.map.len() * 2, tally);
        }
    }

    #[cold]
    fn shrink_table(&mut self, hasher: &DefaultHashBuilder, room: usize, tally: &mut Tally) {
        self.map
            .shrink_to(room, |e| hasher.hash_one(e.key.as_str()));
        self.table_full = self.map.capacity();
        self.recharge_table(tally);
        // The order's positions of entries that left go too, and what held them.
        if let Some(order) = &mut self.order {
            order.maintain(&self.map, self.with_ttl);
            order.trim();
            tally.restructure(order.restructured());
        }
    }

    /// Removes the shard's entries that expired at or before `now`; returns how many.
    pub(super) fn purge(
        &mut self,
        hasher: &DefaultHashBuilder,
        now: u64,
        tally: &mut Tally,
    ) -> usize {
        self.purge_some(hasher, now, usize::MAX, tally)
    }

    /// Removes up to `most` of the shard's entries that expired at or before `now`.
    pub(super) fn purge_some(
        &mut self,
        hasher: &DefaultHashBuilder,
        now: u64,
        most: usize,
        tally: &mut Tally,
    ) -> usize {
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
        if purged > 0 {
            self.shrink_if_sparse(hasher, tally);
        }
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
    if order.changed(hash, entry, before.deadline, before.charge) {
        // The expiry index or a queue may have grown.
        tally.restructure(order.restructured());
    }
    let charge = entry.charge() as i64;
    tally.bytes += charge - before.charge as i64;
    let evictable = order.evictable(entry);
    match (before.evictable, evictable) {
        (true, true) => {}
        (false, false) => tally.fixed_bytes += charge - before.charge as i64,
        (true, false) => {
            tally.fixed_bytes += charge;
            tally.fixed_entries += 1;
        }
        (false, true) => {
            tally.fixed_bytes -= before.charge as i64;
            tally.fixed_entries -= 1;
        }
    }
    if entry.deadline != 0 && entry.deadline != before.deadline {
        tally.earliest = tally.earliest.min(entry.deadline);
    }
}

/// What a table grown from one with room for `full` entries (0: none) to one with room for
/// `total` is charged: a hashbrown table doubles its buckets until 7/8 of them (all but one,
/// under 8) hold `total`; its layout is the entries, then a control byte a bucket and a
/// group's worth more (16 bytes with SSE2).
fn table_charge(total: usize, full: usize) -> u64 {
    let mut buckets = match full {
        0 => 2,
        full if full < 8 => full + 1,
        full => full / 7 * 8,
    };
    loop {
        buckets *= 2;
        let full = if buckets < 8 {
            buckets - 1
        } else {
            buckets / 8 * 7
        };
        if full >= total {
            break;
        }
    }
    heap((buckets * size_of::<Entry>()).next_multiple_of(16) + buckets + 16)
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use hashbrown::DefaultHashBuilder;

    use super::{EMPTIED_SHARD_KEEPS, KEPT_ENTRY_KEEPS, OrderSeed, Slots, Tally};
    use crate::drivers::memory::budget::{Budget, Reservation};
    use crate::drivers::memory::entry::{Value, key_eq};
    use crate::drivers::memory::eviction::{Eviction, Policy};
    use crate::drivers::memory::spared::Spared;

    /// A shard of a store with a budget, its namespace of mode `any` under S3-FIFO.
    fn evicting_slots() -> Slots {
        Slots::new(Some(OrderSeed {
            mode: Eviction::Any,
            policy: Policy::S3Fifo,
            seed: 1,
        }))
    }

    /// The budget is charged a table's growth when the write that makes it takes its room:
    /// the prediction is never under what the insert then grows the table by (a new key that
    /// lands on a tombstone spares a predicted growth). Removals leave tombstones, so the table
    /// also rehashes in place, which costs nothing.
    #[test]
    fn a_tables_growth_is_known_before_the_insert_that_makes_it() {
        let hasher = DefaultHashBuilder::default();
        let mut slots = evicting_slots();
        let mut grew = 0;
        for n in 0..50_000u32 {
            let key = format!("k{n}");
            let hash = hasher.hash_one(key.as_str());
            let predicted = slots.growth_if_adding(1);
            let before = slots.table_charged;
            let mut tally = Tally::new();
            slots.insert(&hasher, hash, &key, Value::Int(1), 0, 0, &mut tally);
            let actual = slots.table_charged - before;
            assert!(
                actual == predicted || (actual == 0 && predicted > 0),
                "insert {n}: grew by {actual}, predicted {predicted}"
            );
            grew += usize::from(actual > 0);
            if n % 3 == 2 {
                let old = format!("k{}", n / 2);
                let hash = hasher.hash_one(old.as_str());
                if let Ok(found) = slots.map.find_entry(hash, |e| key_eq(&e.key, &old)) {
                    let (entry, _) = found.remove();
                    slots.forget(&entry, &mut tally);
                }
            }
        }
        assert!(grew >= 5, "the table grew {grew} times");

        // Batches: what `n` inserts in a row may grow the table by is never under what they do.
        let mut slots = evicting_slots();
        let mut next = 0u32;
        for n in (1..200).chain([1000, 5000, 20_000]) {
            let predicted = slots.growth_if_adding(n);
            let before = slots.table_charged;
            let mut tally = Tally::new();
            for _ in 0..n {
                let key = format!("k{next}");
                next += 1;
                let hash = hasher.hash_one(key.as_str());
                slots.insert(&hasher, hash, &key, Value::Int(1), 0, 0, &mut tally);
            }
            let actual = slots.table_charged - before;
            assert!(
                actual <= predicted,
                "{n} inserts: grew by {actual}, predicted {predicted}"
            );
        }
    }

    /// A table its removals' tombstones fill is rebuilt at its size: every entry is found
    /// again, the table takes the heap it took (nothing to charge), and the room the
    /// tombstones took comes back.
    #[test]
    fn a_table_full_of_tombstones_is_rebuilt_at_its_size() {
        let hasher = DefaultHashBuilder::default();
        let mut slots = evicting_slots();
        let mut tally = Tally::new();
        let key = |n: u32| format!("k{n}");
        let insert = |slots: &mut Slots, n: u32, tally: &mut Tally| {
            let key = key(n);
            let hash = hasher.hash_one(key.as_str());
            slots.insert(&hasher, hash, &key, Value::Int(1), 0, 0, tally);
        };
        for n in 0..300 {
            insert(&mut slots, n, &mut tally);
        }
        let remove = |slots: &mut Slots, n: u32, tally: &mut Tally| {
            let old = key(n);
            let hash = hasher.hash_one(old.as_str());
            let (entry, _) = slots
                .map
                .find_entry(hash, |e| key_eq(&e.key, &old))
                .ok()
                .unwrap()
                .remove();
            slots.forget(&entry, tally);
        };
        let full = slots.table_full;
        let charged = slots.table_charged;
        // Churn at a fixed count, an eighth and more under full, until the tombstones leave
        // no room: hashbrown would double the table on the next insert.
        let live = (full - full / 8 - 1) as u32;
        let (mut first, mut next) = (0u32, 300u32);
        while slots.map.len() as u32 > live {
            remove(&mut slots, first, &mut tally);
            first += 1;
        }
        while slots.map.len() < slots.map.capacity() || !slots.rebuild_makes_room(1) {
            remove(&mut slots, first, &mut tally);
            first += 1;
            insert(&mut slots, next, &mut tally);
            next += 1;
        }
        assert!(slots.growth_if_adding(1) > 0, "the table would double");
        slots.rebuild_if_worn(&hasher, &mut tally);
        assert_eq!(slots.table_full, full);
        assert_eq!(slots.table_charged, charged);
        assert_eq!(slots.growth_if_adding(1), 0);
        assert!(slots.map.capacity() - slots.map.len() >= full / 8);
        for n in first..next {
            let key = key(n);
            let hash = hasher.hash_one(key.as_str());
            assert!(
                slots.map.find(hash, |e| key_eq(&e.key, &key)).is_some(),
                "{key}"
            );
        }
        assert_eq!(slots.map.len() as u32, next - first);
    }

    /// A write adding a shard's first entry reserves [`ORDER_FIRST`] for the eviction order it
    /// makes: never less than the order then takes (a shortfall would take the store over its
    /// budget, and the write's key could be evicted right after, to make up for it).
    #[test]
    fn a_first_entry_reserves_what_its_order_takes() {
        use crate::drivers::memory::order::ORDER_FIRST;
        let hasher = DefaultHashBuilder::default();
        let mut most = 0;
        for policy in [Policy::S3Fifo, Policy::SampledLru] {
            for mode in [Eviction::Any, Eviction::WithTtl, Eviction::Never] {
                for deadline in [0, 5] {
                    let order = OrderSeed {
                        mode,
                        policy,
                        seed: 1,
                    };
                    let mut slots = Slots::new(Some(order));
                    let mut tally = Tally::new();
                    slots.insert(&hasher, 1, "k", Value::Int(1), deadline, 0, &mut tally);
                    assert!(tally.opened);
                    let order = (tally.structures as u64) - slots.table_charged;
                    assert!(
                        order <= ORDER_FIRST,
                        "{policy:?}, {mode:?}, deadline {deadline}: the order took {order}, \
                         {ORDER_FIRST} reserved"
                    );
                    most = most.max(order);
                }
            }
        }
        // S3-FIFO, an evictable entry with a TTL: every structure has its first block.
        assert_eq!(most, ORDER_FIRST);
    }

    /// A shard that eviction emptied keeps at most [`EMPTIED_SHARD_KEEPS`]: its table and
    /// eviction order shrink as its entries go, whatever it held, whichever policy, whether
    /// the store was short of bytes (tables halved at half full) or of entries (at a quarter), and
    /// whatever deletes and deadlines left behind.
    #[test]
    fn a_shard_emptied_by_eviction_keeps_little() {
        let hasher = DefaultHashBuilder::default();
        // Evicting for bytes (tables halved at half full), and for entries (at a quarter):
        // each budget full of what binds it.
        let short = Budget::new(Some(1 << 10), None);
        assert!(short.try_take(Reservation {
            bytes: 1 << 10,
            entries: 0
        }));
        assert!(short.short_of_bytes());
        let roomy = Budget::new(Some(1 << 40), Some(16));
        assert!(roomy.try_take(Reservation {
            bytes: 0,
            entries: 16
        }));
        assert!(!roomy.short_of_bytes());
        let mut most = 0;
        for policy in [Policy::S3Fifo, Policy::SampledLru] {
            for n in [1u32, 5, 17, 100, 1000, 10_000, 100_000] {
                for (budget, deadline, deletes) in [
                    (&short, 0, 0),
                    (&roomy, 0, 0),
                    (&short, 1 << 40, 3),
                    (&roomy, 1 << 40, 3),
                    (&roomy, 0, 1),
                ] {
                    let mut slots = Slots::new(Some(OrderSeed {
                        mode: Eviction::Any,
                        policy,
                        seed: 1,
                    }));
                    let mut tally = Tally::new();
                    for i in 0..n {
                        let key = format!("k{i}");
                        let hash = hasher.hash_one(key.as_str());
                        slots.insert(&hasher, hash, &key, Value::Int(1), deadline, 0, &mut tally);
                        // Every third key deleted, or all but the last few.
                        let delete = match deletes {
                            0 => false,
                            1 => i + 8 < n,
                            every => i % every == 0,
                        };
                        if delete {
                            let found = slots.map.find_entry(hash, |e| key_eq(&e.key, &key));
                            let (entry, _) = found.ok().unwrap().remove();
                            slots.forget(&entry, &mut tally);
                            slots.shrink_if_sparse(&hasher, &mut tally);
                        }
                    }
                    while slots.evict(&hasher, budget, &Spared::NONE, &mut tally) {}
                    assert!(slots.map.is_empty());
                    let kept = slots.charged_structures();
                    assert!(
                        kept <= EMPTIED_SHARD_KEEPS,
                        "{policy:?}, {n} entries, deadline {deadline}, deletes {deletes}: \
                         {kept} bytes kept"
                    );
                    most = most.max(kept);
                }
            }
        }
        // The bound is what it says, not a guess far above it.
        assert!(most > EMPTIED_SHARD_KEEPS * 3 / 4, "at most {most} kept");

        // Entries that eviction may not take (keys without a TTL in a `with-ttl` namespace)
        // keep their table's room, and the order's: at most KEPT_ENTRY_KEEPS each.
        let mut most = 0;
        for policy in [Policy::S3Fifo, Policy::SampledLru] {
            for (budget, first) in [(&short, 1u32), (&roomy, 7)] {
                for kept in (first..3000).step_by(71) {
                    let mut slots = Slots::new(Some(OrderSeed {
                        mode: Eviction::WithTtl,
                        policy,
                        seed: 1,
                    }));
                    let mut tally = Tally::new();
                    for i in 0..kept * 4 + 100 {
                        let key = format!("k{i}");
                        let hash = hasher.hash_one(key.as_str());
                        let deadline = if i < kept { 0 } else { 1 << 40 };
                        slots.insert(&hasher, hash, &key, Value::Int(1), deadline, 0, &mut tally);
                    }
                    while slots.evict(&hasher, budget, &Spared::NONE, &mut tally) {}
                    assert_eq!(slots.map.len(), kept as usize);
                    let each = slots
                        .charged_structures()
                        .saturating_sub(EMPTIED_SHARD_KEEPS)
                        / u64::from(kept);
                    assert!(
                        each <= KEPT_ENTRY_KEEPS,
                        "{policy:?}, {kept} kept: {each} each"
                    );
                    most = most.max(each);
                }
            }
        }
        assert!(most > KEPT_ENTRY_KEEPS / 2, "at most {most} each");
    }
}
