//! A namespace's own memory in a store with a budget (SPEC 10.2): what it takes whatever it
//! holds (its shards, its bookkeeping, its places in the registry and the reclaimer's
//! schedule), reserved by the write that gives it its first entry, charged then, and given
//! back when the registry frees it. Without this, a program making namespaces from its data
//! (one a user) kept its budget on paper only: 100,000 one-key namespaces written in turn under
//! a 4 MiB budget held 47 MB of heap.

use std::mem::size_of;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Meta, Shard, Table, write};
use crate::drivers::memory::budget::{Budget, Reservation};
use crate::drivers::memory::entry::heap;
use crate::drivers::memory::eviction::Eviction;
use crate::drivers::memory::order::ORDER_FIRST;
use crate::drivers::memory::slots::{EMPTIED_SHARD_KEEPS, KEPT_ENTRY_KEEPS, Slots, Tally};
use crate::drivers::memory::spared::Spared;

/// The heap a namespace of `shards` shards named `name` takes whatever it holds, as a budget
/// charges it (SPEC 10.2): its shards (a cache-line-aligned block of 128 bytes each, the
/// block's header padded to one more), its [`Meta`], its name, and its places in the
/// registry's map and list of tables that may evict, which are kept between a quarter and
/// seven eighths full (counted twice). Its place in the reclaimer's schedule is charged apart
/// ([`SCHEDULED`]).
pub(super) fn fixed_part(shards: usize, name: &str) -> u64 {
    let shards = heap(size_of::<Shard>() * (shards + 1));
    let meta = heap(2 * size_of::<usize>() + size_of::<Meta>());
    let name = heap(2 * size_of::<usize>() + name.len());
    let registered = (size_of::<(Arc<str>, Table)>() + 1 + size_of::<Table>()) * 2;
    shards + meta + name + registered as u64
}

/// The heap a namespace's place in the reclaimer's schedule takes (its entry in the
/// schedule's map of tables, counted twice as the registry's are, and its times, kept to at
/// most four a table): charged, in a store with a budget, from the first write that stores a
/// deadline in the namespace until it is freed.
pub(super) const SCHEDULED: u64 =
    ((size_of::<(u64, Table)>() + 1) * 2 + 2 * size_of::<(u64, u64)>()) as u64;

impl Table {
    /// Applies `tally` to the budget ([`Budget::settle`]), to what the namespace's
    /// structures and fixed part are charged ([`Meta::structures`]), and to its count of
    /// evictable entries ([`Meta::evictable`]; a write that evicted one entry of its own to add
    /// one leaves it as it was, and moves nothing).
    #[inline]
    pub(in crate::drivers::memory) fn settle(
        &self,
        budget: &Budget,
        reserved: Reservation,
        tally: &Tally,
    ) -> bool {
        self.meta.structures.add(tally.structures);
        self.meta
            .evictable
            .add(tally.entries + tally.traded_entries - tally.fixed_entries);
        // Read only in a `with-ttl` namespace: in a `never` one, every entry is such, and its
        // writes are not given an update of a shared count for nothing.
        if self.meta.mode == Eviction::WithTtl {
            self.meta.fixed_entries.add(tally.fixed_entries);
        }
        budget.settle(reserved, tally)
    }

    /// Settles a write that gave a shard its first entry: the first such write of the
    /// namespace is charged its fixed part (which it reserved, when it saw it unpaid).
    #[cold]
    pub(super) fn settle_opened(
        &self,
        budget: &Budget,
        reserved: Reservation,
        mut tally: Tally,
    ) -> bool {
        if !self.meta.paid.swap(true, Ordering::AcqRel) {
            tally.restructure(self.meta.fixed as i64);
        }
        self.settle(budget, reserved, &tally)
    }

    /// What a write adding an entry to `slots` takes beyond the entry and the table's growth:
    /// in a shard that has not held one yet, its eviction order's block, and the namespace's
    /// fixed part while no write has paid it ([`unpaid`](Self::unpaid)).
    #[inline]
    pub(in crate::drivers::memory) fn opening(&self, slots: &Slots) -> u64 {
        if slots.awaits_order() {
            self.opening_shard()
        } else {
            0
        }
    }

    #[cold]
    fn opening_shard(&self) -> u64 {
        ORDER_FIRST + self.unpaid()
    }

    /// The namespace's fixed part ([`fixed_part`]) while the budget does not hold it: a
    /// write that may give the namespace its first entry reserves it, so the namespaces a
    /// program makes from its data (one a user) are kept within the budget with their keys.
    #[inline]
    pub(in crate::drivers::memory) fn unpaid(&self) -> u64 {
        if self.budget.is_some() && !self.meta.paid.load(Ordering::Acquire) {
            self.meta.fixed
        } else {
            0
        }
    }

    /// The keys without a TTL a `with-ttl` namespace holds ([`Meta::fixed_entries`]); 0 in
    /// other modes.
    pub(in crate::drivers::memory) fn entries_without_ttl(&self) -> u64 {
        self.meta.fixed_entries.get()
    }

    /// Whether evicting every entry eviction may take empties the namespace: in `any` mode,
    /// and in `with-ttl` mode while it holds no key without a TTL
    /// ([`Meta::fixed_entries`]). One that no handle holds is then freed with its last entry,
    /// its structures and fixed part with it. (Counted only in `any` mode, a store of
    /// `with-ttl` namespaces of a few keys each, all with a TTL and all evictable, refused a
    /// value of half its budget.)
    pub(in crate::drivers::memory) fn empties_when_evicted(&self) -> bool {
        match self.meta.mode {
            Eviction::Any => true,
            Eviction::WithTtl => self.entries_without_ttl() == 0,
            Eviction::Never => false,
        }
    }

    /// What evicting every entry of the namespace lets its structures shrink by, at least,
    /// while it stays (a handle holds it, or a write into it is making its room): all they
    /// are charged but its fixed part, its place in the reclaimer's schedule, what each shard
    /// keeps once eviction emptied it ([`EMPTIED_SHARD_KEEPS`]) and what each entry eviction
    /// may not take keeps ([`KEPT_ENTRY_KEEPS`]; in a `with-ttl` namespace, its keys without a
    /// TTL, [`Meta::fixed_entries`]; and the `spared` entries a write into it keeps while it
    /// makes its room). Nothing in `never` mode. A few loads: on the path of a
    /// write refused for want of room, which in a store full of `never` namespaces' keys is
    /// most writes. In a store of counters (which cost only their room in a table) this is most
    /// of what eviction can free: counted as nothing, a store of 7,000 counters in 1 MiB and 16
    /// shards refused a value of 16 KiB.
    pub(in crate::drivers::memory) fn shrinks_by_at_least(&self, spared: u64) -> u64 {
        if self.meta.mode == Eviction::Never {
            return 0;
        }
        let kept = self.entries_without_ttl().saturating_add(spared);
        let keeps = self.meta.fixed
            + SCHEDULED
            + self.shards.len() as u64 * EMPTIED_SHARD_KEEPS
            + kept.saturating_mul(KEPT_ENTRY_KEEPS);
        self.meta.structures.get().saturating_sub(keeps)
    }

    /// After a write stored the namespace's first deadline: charges its place in the
    /// reclaimer's schedule ([`SCHEDULED`]), once until the namespace is freed. A store it
    /// takes over its budget sheds other keys than those the write stored (`written`): shed
    /// with none spared, in a store of counters (victims that free nothing), it took the key
    /// just written (`a_key_given_the_namespaces_first_ttl_stays_in_a_full_store`).
    pub(super) fn charge_scheduled(&self, written: &[&str]) {
        if let Some(budget) = &self.budget
            && !self.meta.scheduled.swap(true, Ordering::AcqRel)
        {
            let mut tally = Tally::new();
            tally.restructure(SCHEDULED as i64);
            if self.settle(budget, Reservation::default(), &tally) {
                self.shed(budget, None, &Spared::new(written));
            }
        }
    }

    /// For a table the registry dropped (no handle, no entry): frees its shards' structures
    /// and gives back to the budget what they and the namespace's fixed part were charged.
    pub(crate) fn give_back(&self) {
        let Some(budget) = &self.budget else {
            return;
        };
        // Its count of evictable entries is not checked here: freed empty, it may still await
        // the settling of a change another thread made (a delete in one shard while an
        // eviction emptied another and freed the namespace), which lands on this freed table.
        let mut tally = Tally::new();
        for shard in self.shards.iter() {
            let mut slots = write(shard);
            tally.restructure(-(slots.charged_structures() as i64));
            *slots = Slots::default();
        }
        if self.meta.paid.swap(false, Ordering::AcqRel) {
            tally.restructure(-(self.meta.fixed as i64));
        }
        if self.meta.scheduled.swap(false, Ordering::AcqRel) {
            tally.restructure(-(SCHEDULED as i64));
        }
        self.settle(budget, Reservation::default(), &tally);
    }
}
