//! The single-key operations: a read under its shard's shared lock, a write under its
//! exclusive lock, with room taken first in a store with a budget.

use std::mem;
use std::time::Duration;

use bytes::Bytes;

use super::room::Locked;
use super::{Table, deadline, deadline_of, read, write};
use crate::drivers::memory::budget::Reservation;
use crate::drivers::memory::clock::Now;
use crate::drivers::memory::entry::{Value, cost, key_eq};
use crate::drivers::memory::eviction::Eviction;
use crate::drivers::memory::slots::{Live, Slots, Tally};
use crate::ttl::{Expiry, KeyTtl, Ttl};
use crate::{Error, Result};

impl Table {
    #[inline(always)]
    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        let hash = self.hash(key);
        let slots = read(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let entry = slots.map.find(hash, |e| key_eq(&e.key, key))?;
        if !entry.live(&mut now) {
            return None;
        }
        self.mark(entry);
        Some(entry.value.to_bytes())
    }

    #[inline]
    pub(crate) fn exists(&self, key: &str) -> bool {
        let hash = self.hash(key);
        let slots = read(self.shard(hash));
        let Some(entry) = slots.map.find(hash, |e| key_eq(&e.key, key)) else {
            return false;
        };
        entry.deadline == 0 || self.clock.now() < entry.deadline
    }

    #[inline]
    pub(crate) fn ttl(&self, key: &str) -> KeyTtl {
        let hash = self.hash(key);
        let slots = read(self.shard(hash));
        let Some(entry) = slots.map.find(hash, |e| key_eq(&e.key, key)) else {
            return KeyTtl::Missing;
        };
        if entry.deadline == 0 {
            return KeyTtl::NoExpiry;
        }
        match entry.deadline.checked_sub(self.clock.now()) {
            None | Some(0) => KeyTtl::Missing,
            // Rounded up to the millisecond: more than zero, at most the TTL that was set.
            Some(left) => KeyTtl::ExpiresIn(Duration::from_millis(left.div_ceil(1_000_000))),
        }
    }

    #[inline]
    pub(crate) fn set(&self, key: &str, value: Bytes, expiry: Expiry) -> Result<()> {
        let hash = self.hash(key);
        let value = Value::Bytes(value);
        let mut tally = Tally::new();
        let Locked {
            mut slots,
            mut reserved,
            absent,
            may_double,
        } = self.lock_with_room(hash, key, || cost(key, value.heap()), true, &mut tally)?;
        let mode = self.bounded_mode();
        let mut now = Now::new(&self.clock);
        let found = slots.live_unless(absent, hash, key, &mut now, &mut tally);
        let stored = match found {
            Some(live) => live.update(mode, hash, &mut tally, |entry| {
                entry.value = value;
                match expiry {
                    Expiry::Never => entry.deadline = 0,
                    Expiry::After(ttl) => entry.deadline = deadline(&mut now, ttl),
                    Expiry::Keep => {}
                }
                entry.deadline
            }),
            None => {
                let deadline = match expiry {
                    Expiry::After(ttl) => deadline(&mut now, ttl),
                    Expiry::Never | Expiry::Keep => 0,
                };
                let mark = self.first_mark();
                if !may_double {
                    reserved.bytes +=
                        self.room_to_insert(&mut slots, hash, &[key], &mut 0, &mut tally);
                }
                slots.insert(&self.hasher, hash, key, value, deadline, mark, &mut tally);
                deadline
            }
        };
        drop(slots);
        self.finish_storing(reserved, &tally, stored, &[key]);
        Ok(())
    }

    #[inline]
    pub(crate) fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Ttl>) -> Result<bool> {
        let hash = self.hash(key);
        let value = Value::Bytes(value);
        let mut tally = Tally::new();
        let Locked {
            mut slots,
            mut reserved,
            absent,
            may_double,
        } = self.lock_with_room(hash, key, || cost(key, value.heap()), true, &mut tally)?;
        let mut now = Now::new(&self.clock);
        let stored = if slots
            .live_unless(absent, hash, key, &mut now, &mut tally)
            .is_some()
        {
            None
        } else {
            let deadline = deadline_of(&mut now, ttl);
            let mark = self.first_mark();
            if !may_double {
                reserved.bytes += self.room_to_insert(&mut slots, hash, &[key], &mut 0, &mut tally);
            }
            slots.insert(&self.hasher, hash, key, value, deadline, mark, &mut tally);
            Some(deadline)
        };
        drop(slots);
        self.finish_storing(reserved, &tally, stored.unwrap_or(0), &[key]);
        Ok(stored.is_some())
    }

    #[inline]
    pub(crate) fn delete(&self, key: &str) -> bool {
        let hash = self.hash(key);
        let mut tally = Tally::new();
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let deleted = slots.remove(&self.hasher, hash, key, &mut now, &mut tally);
        drop(slots);
        self.finish(Reservation::default(), &tally, 0);
        deleted
    }

    #[inline]
    pub(crate) fn expire(&self, key: &str, ttl: Ttl) -> bool {
        let hash = self.hash(key);
        let mode = self.bounded_mode();
        let mut tally = Tally::new();
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let deadline = deadline(&mut now, ttl);
        let found = match slots.live_mut(hash, key, &mut now, &mut tally) {
            Some(live) => {
                live.update(mode, hash, &mut tally, |entry| entry.deadline = deadline);
                true
            }
            None => false,
        };
        drop(slots);
        self.finish(
            Reservation::default(),
            &tally,
            if found { deadline } else { 0 },
        );
        found
    }

    #[inline]
    pub(crate) fn persist(&self, key: &str) -> bool {
        let hash = self.hash(key);
        let mode = self.bounded_mode();
        let mut tally = Tally::new();
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let persisted = match slots.live_mut(hash, key, &mut now, &mut tally) {
            Some(live) if live.entry.deadline != 0 => {
                live.update(mode, hash, &mut tally, |entry| entry.deadline = 0);
                true
            }
            _ => false,
        };
        drop(slots);
        self.finish(Reservation::default(), &tally, 0);
        persisted
    }

    /// Adds `delta` to a counter. A counter that is there changes under its shard's lock,
    /// with no room to take (a counter costs nothing of its own). A new one is added there and
    /// then in a store without a budget; in a store with one, it takes its room as `set`
    /// does (`lock_with_room`: under the lock, evicting from the shard if it must), the shard
    /// locked again for it.
    #[inline]
    pub(crate) fn incr(&self, key: &str, delta: i64, ttl_on_create: Option<Ttl>) -> Result<i64> {
        let hash = self.hash(key);
        let mode = self.bounded_mode();
        let mut tally = Tally::new();
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        if let Some(live) = slots.live_mut(hash, key, &mut now, &mut tally) {
            let answer = add(live, key, delta, mode, hash, &mut tally);
            drop(slots);
            self.finish(Reservation::default(), &tally, 0);
            return answer;
        }
        if mode.is_none() {
            let stored = self.add_counter(&mut slots, hash, key, delta, ttl_on_create, &mut tally);
            drop(slots);
            self.finish(Reservation::default(), &tally, stored);
            return Ok(delta);
        }
        drop(slots);
        self.finish(Reservation::default(), &tally, 0);
        self.add_counter_with_room(hash, key, delta, ttl_on_create)
    }

    /// [`incr`](Self::incr) of a counter its shard did not hold, in a store with a budget.
    #[cold]
    #[inline(never)]
    fn add_counter_with_room(
        &self,
        hash: u64,
        key: &str,
        delta: i64,
        ttl_on_create: Option<Ttl>,
    ) -> Result<i64> {
        let mode = self.bounded_mode();
        let mut tally = Tally::new();
        let Locked {
            mut slots,
            mut reserved,
            absent,
            may_double,
        } = self.lock_with_room(hash, key, || cost(key, 0), true, &mut tally)?;
        let mut now = Now::new(&self.clock);
        let (answer, stored) = match slots.live_unless(absent, hash, key, &mut now, &mut tally) {
            // Added by another write meanwhile.
            Some(live) => (add(live, key, delta, mode, hash, &mut tally), 0),
            None => {
                if !may_double {
                    reserved.bytes +=
                        self.room_to_insert(&mut slots, hash, &[key], &mut 0, &mut tally);
                }
                let stored =
                    self.add_counter(&mut slots, hash, key, delta, ttl_on_create, &mut tally);
                (Ok(delta), stored)
            }
        };
        drop(slots);
        self.finish_storing(reserved, &tally, stored, &[key]);
        answer
    }

    /// Adds the counter `key` at `delta` to the locked shard; its deadline (0 for none).
    fn add_counter(
        &self,
        slots: &mut Slots,
        hash: u64,
        key: &str,
        delta: i64,
        ttl_on_create: Option<Ttl>,
        tally: &mut Tally,
    ) -> u64 {
        let mut now = Now::new(&self.clock);
        let deadline = deadline_of(&mut now, ttl_on_create);
        let mark = self.first_mark();
        slots.insert(
            &self.hasher,
            hash,
            key,
            Value::Int(delta),
            deadline,
            mark,
            tally,
        );
        deadline
    }

    #[inline]
    pub(crate) fn get_set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<Option<Bytes>> {
        let hash = self.hash(key);
        let value = Value::Bytes(value);
        let mut tally = Tally::new();
        let Locked {
            mut slots,
            mut reserved,
            absent,
            may_double,
        } = self.lock_with_room(hash, key, || cost(key, value.heap()), true, &mut tally)?;
        let mode = self.bounded_mode();
        let mut now = Now::new(&self.clock);
        let deadline = deadline_of(&mut now, ttl);
        let found = slots.live_unless(absent, hash, key, &mut now, &mut tally);
        let previous = match found {
            Some(live) => Some(live.update(mode, hash, &mut tally, |entry| {
                entry.deadline = deadline;
                mem::replace(&mut entry.value, value)
            })),
            None => {
                let mark = self.first_mark();
                if !may_double {
                    reserved.bytes +=
                        self.room_to_insert(&mut slots, hash, &[key], &mut 0, &mut tally);
                }
                slots.insert(&self.hasher, hash, key, value, deadline, mark, &mut tally);
                None
            }
        };
        drop(slots);
        self.finish_storing(reserved, &tally, deadline, &[key]);
        Ok(previous.map(Value::into_bytes))
    }

    #[inline]
    pub(crate) fn cas(
        &self,
        key: &str,
        expected: &[u8],
        new: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<bool> {
        self.replace_if(key, new, ttl, |value| value.eq_bytes(expected))
    }

    #[inline]
    pub(crate) fn replace(&self, key: &str, new: Bytes, ttl: Option<Ttl>) -> Result<bool> {
        self.replace_if(key, new, ttl, |_| true)
    }

    /// Stores `new` with `ttl` under `key` if the key is live and `condition` holds for its
    /// value; says whether it did. A missing key is never added.
    fn replace_if(
        &self,
        key: &str,
        new: Bytes,
        ttl: Option<Ttl>,
        condition: impl FnOnce(&Value) -> bool,
    ) -> Result<bool> {
        let hash = self.hash(key);
        let new = Value::Bytes(new);
        let mut tally = Tally::new();
        // It only replaces: it adds no entry, and no table grows.
        let Locked {
            mut slots,
            reserved,
            absent,
            ..
        } = self.lock_with_room(hash, key, || cost(key, new.heap()), false, &mut tally)?;
        let mode = self.bounded_mode();
        let mut now = Now::new(&self.clock);
        let deadline = deadline_of(&mut now, ttl);
        let found = slots.live_unless(absent, hash, key, &mut now, &mut tally);
        let swapped = match found {
            Some(live) if condition(&live.entry.value) => {
                live.update(mode, hash, &mut tally, |entry| {
                    entry.value = new;
                    entry.deadline = deadline;
                });
                true
            }
            _ => false,
        };
        drop(slots);
        self.finish_storing(reserved, &tally, if swapped { deadline } else { 0 }, &[key]);
        Ok(swapped)
    }

    #[inline]
    pub(crate) fn cad(&self, key: &str, expected: &[u8]) -> bool {
        let hash = self.hash(key);
        let mut tally = Tally::new();
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let deleted = match slots.map.find(hash, |e| key_eq(&e.key, key)) {
            Some(found) if found.live(&mut now) && found.value.eq_bytes(expected) => {
                slots.remove(&self.hasher, hash, key, &mut now, &mut tally);
                true
            }
            _ => false,
        };
        drop(slots);
        self.finish(Reservation::default(), &tally, 0);
        deleted
    }
}

/// Adds `delta` to the counter `live` holds: the new count, or why it cannot be.
#[inline(always)]
fn add(
    live: Live<'_>,
    key: &str,
    delta: i64,
    mode: Option<Eviction>,
    hash: u64,
    tally: &mut Tally,
) -> Result<i64> {
    let next = live
        .entry
        .value
        .as_integer()
        .ok_or_else(|| Error::not_an_integer(key))
        .and_then(|current| {
            current
                .checked_add(delta)
                .ok_or_else(|| Error::overflow(key))
        });
    if let Ok(next) = next {
        live.update(mode, hash, tally, |entry| entry.value = Value::Int(next));
    }
    next
}
