//! One namespace's data: a sharded hash table of entries.
//!
//! Each shard is a `RwLock` around a `hashbrown::HashTable`, padded to its own cache lines.
//! Reads take a shared lock on one shard, writes an exclusive lock on one shard. Batches lock
//! every shard they touch in ascending shard order and hold them until done, which makes them
//! atomic without a global lock and free of deadlocks (everyone acquires in the same order).
//!
//! Keys are the business keys only: the namespace is the table, so nothing concatenates
//! `root:domain:key` and hashing covers only the business key.

use std::hash::BuildHasher;
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use hashbrown::{DefaultHashBuilder, HashTable};
use smol_str::SmolStr;

use super::clock::{Clock, Now};
use super::registry::Registry;
use crate::counter;
use crate::glob::Pattern;
use crate::ttl::{Expiry, KeyTtl, Ttl};
use crate::{Error, Result};

/// Buckets the reclaimer inspects per lock acquisition: a few microseconds of lock time.
const REAP_CHUNK: usize = 256;

/// Batches of up to 16 keys plan and lock on the stack.
type Batch<T> = smallvec::SmallVec<[T; 16]>;

/// Cheap to clone: clones share the shards. Held inline by each namespace handle, one
/// pointer away from the shard locks.
#[derive(Clone)]
pub(crate) struct Table {
    shards: Arc<[Shard]>,
    hasher: DefaultHashBuilder,
    clock: Clock,
    pub(super) meta: Arc<Meta>,
}

/// What the driver's registry knows of a table, off the hot path.
pub(crate) struct Meta {
    /// The registry's key: the namespace prefix.
    pub(super) name: Arc<str>,
    /// Namespace handles (scopes) on the table; at 0, an empty table is dropped.
    pub(super) handles: AtomicUsize,
    /// Whether the table is on the reclaimer's list (it holds, or held, keys with a TTL).
    pub(super) reaping: AtomicBool,
    pub(super) registry: Weak<Registry>,
}

#[repr(align(128))]
struct Shard {
    slots: RwLock<Slots>,
    reap_cursor: AtomicUsize,
}

#[derive(Default)]
struct Slots {
    map: HashTable<Entry>,
    /// Entries with a deadline: the reclaimer skips shards without any.
    with_ttl: usize,
}

struct Entry {
    key: SmolStr,
    value: Value,
    /// Nanoseconds on the driver's clock at which the entry expires; 0 for never.
    deadline: u64,
}

/// A counter is kept as an integer, so `incr` neither parses nor formats; it reads back as
/// decimal ASCII.
enum Value {
    Bytes(Bytes),
    Int(i64),
}

fn counter_bytes(n: i64) -> Bytes {
    Bytes::copy_from_slice(counter::format(n, &mut itoa::Buffer::new()))
}

/// Whether two keys are equal. Short keys, the common case, compare with two overlapping
/// word loads instead of a call to `memcmp`, whose call and dispatch cost more than the
/// comparison itself (measured: a quarter of an `exists`).
#[inline(always)]
fn key_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word4 = |s: &[u8], at: usize| {
        s.get(at..at + 4)
            .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
    };
    let word8 = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .map(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
    };
    match n {
        0..4 => a == b,
        4..=8 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        9..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        _ => a == b,
    }
}

impl Value {
    #[inline]
    fn to_bytes(&self) -> Bytes {
        match self {
            Value::Bytes(bytes) => bytes.clone(),
            Value::Int(n) => counter_bytes(*n),
        }
    }

    #[inline]
    fn into_bytes(self) -> Bytes {
        match self {
            Value::Bytes(bytes) => bytes,
            Value::Int(n) => counter_bytes(n),
        }
    }

    #[inline]
    fn eq_bytes(&self, other: &[u8]) -> bool {
        match self {
            Value::Bytes(bytes) => bytes[..] == *other,
            Value::Int(n) => counter::format(*n, &mut itoa::Buffer::new()) == other,
        }
    }

    #[inline]
    fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Bytes(bytes) => counter::parse_canonical(bytes),
            Value::Int(n) => Some(*n),
        }
    }
}

impl Entry {
    #[inline]
    fn live(&self, now: &mut Now<'_>) -> bool {
        self.deadline == 0 || now.get() < self.deadline
    }

    fn expired_at(&self, now: u64) -> bool {
        self.deadline != 0 && now >= self.deadline
    }
}

#[inline]
fn read(shard: &Shard) -> RwLockReadGuard<'_, Slots> {
    // No code path panics while holding a shard lock, so a poisoned lock has consistent data.
    shard.slots.read().unwrap_or_else(PoisonError::into_inner)
}

#[inline]
fn write(shard: &Shard) -> RwLockWriteGuard<'_, Slots> {
    shard.slots.write().unwrap_or_else(PoisonError::into_inner)
}

#[inline]
fn deadline(now: &mut Now<'_>, ttl: Ttl) -> u64 {
    now.get()
        .saturating_add(ttl.as_millis().saturating_mul(1_000_000))
}

#[inline]
fn deadline_of(now: &mut Now<'_>, ttl: Option<Ttl>) -> u64 {
    ttl.map_or(0, |ttl| deadline(now, ttl))
}

impl Slots {
    /// The live entry for `key`; an expired one found on the way is removed.
    #[inline]
    fn live_mut(&mut self, hash: u64, key: &str, now: &mut Now<'_>) -> Option<&mut Entry> {
        match self.map.find_entry(hash, |e| key_eq(&e.key, key)) {
            Ok(found) if found.get().live(now) => Some(found.into_mut()),
            Ok(found) => {
                // An expired entry had a deadline.
                found.remove();
                self.with_ttl -= 1;
                None
            }
            Err(_) => None,
        }
    }

    /// Keeps the count of entries with a deadline as one changes from `old` to `new`.
    #[inline]
    fn retimed(&mut self, old: u64, new: u64) {
        match (old != 0, new != 0) {
            (false, true) => self.with_ttl += 1,
            (true, false) => self.with_ttl -= 1,
            _ => {}
        }
    }

    /// Removes `key`'s entry, live or not.
    #[inline]
    fn remove(&mut self, hash: u64, key: &str) -> Option<Entry> {
        let (entry, _) = self
            .map
            .find_entry(hash, |e| key_eq(&e.key, key))
            .ok()?
            .remove();
        if entry.deadline != 0 {
            self.with_ttl -= 1;
        }
        Some(entry)
    }

    #[inline]
    fn insert(
        &mut self,
        hasher: &DefaultHashBuilder,
        hash: u64,
        key: &str,
        value: Value,
        deadline: u64,
    ) {
        let entry = Entry {
            key: SmolStr::new(key),
            value,
            deadline,
        };
        if deadline != 0 {
            self.with_ttl += 1;
        }
        self.map
            .insert_unique(hash, entry, |e| hasher.hash_one(e.key.as_str()));
    }
}

impl Table {
    pub(crate) fn new(
        shards: usize,
        clock: Clock,
        name: Arc<str>,
        registry: Weak<Registry>,
    ) -> Self {
        let shards = (0..shards)
            .map(|_| Shard {
                slots: RwLock::new(Slots::default()),
                reap_cursor: AtomicUsize::new(0),
            })
            .collect();
        Table {
            shards,
            hasher: DefaultHashBuilder::default(),
            clock,
            meta: Arc::new(Meta {
                name,
                handles: AtomicUsize::new(0),
                reaping: AtomicBool::new(false),
                registry,
            }),
        }
    }

    /// After a write that may have stored a deadline: puts the table on the reclaimer's list
    /// if it is not there yet (one relaxed load when it is).
    #[inline]
    fn reap_later(&self, deadline: u64) {
        if deadline != 0 && !self.meta.reaping.load(Ordering::Relaxed) {
            self.enlist();
        }
    }

    #[cold]
    fn enlist(&self) {
        if !self.meta.reaping.swap(true, Ordering::SeqCst) {
            if let Some(registry) = self.meta.registry.upgrade() {
                registry.enlist(self.clone());
            }
        }
    }

    /// Whether no shard holds an entry, expired or not.
    pub(crate) fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| read(s).map.is_empty())
    }

    /// Entries with a deadline, counted one shard at a time.
    pub(crate) fn with_ttl(&self) -> usize {
        self.shards.iter().map(|s| read(s).with_ttl).sum()
    }

    /// Whether `self` and `other` are the same table.
    pub(crate) fn same(&self, other: &Table) -> bool {
        Arc::ptr_eq(&self.meta, &other.meta)
    }

    #[inline]
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The shard for a hash. hashbrown uses the low bits for the bucket and the top seven for
    /// its tag, so the shard takes bits from the middle.
    #[inline]
    fn shard_index(&self, hash: u64) -> usize {
        (hash >> 32) as usize & (self.shards.len() - 1)
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard {
        &self.shards[self.shard_index(hash)]
    }

    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        let hash = self.hash(key);
        let slots = read(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let entry = slots.map.find(hash, |e| key_eq(&e.key, key))?;
        entry.live(&mut now).then(|| entry.value.to_bytes())
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
    pub(crate) fn set(&self, key: &str, value: Bytes, expiry: Expiry) {
        let hash = self.hash(key);
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let stored = match slots.live_mut(hash, key, &mut now) {
            Some(entry) => {
                entry.value = Value::Bytes(value);
                let old = entry.deadline;
                match expiry {
                    Expiry::Never => entry.deadline = 0,
                    Expiry::After(ttl) => entry.deadline = deadline(&mut now, ttl),
                    Expiry::Keep => {}
                }
                let new = entry.deadline;
                slots.retimed(old, new);
                new
            }
            None => {
                let deadline = match expiry {
                    Expiry::After(ttl) => deadline(&mut now, ttl),
                    Expiry::Never | Expiry::Keep => 0,
                };
                slots.insert(&self.hasher, hash, key, Value::Bytes(value), deadline);
                deadline
            }
        };
        drop(slots);
        self.reap_later(stored);
    }

    #[inline]
    pub(crate) fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Ttl>) -> bool {
        let hash = self.hash(key);
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        if slots.live_mut(hash, key, &mut now).is_some() {
            return false;
        }
        let deadline = deadline_of(&mut now, ttl);
        slots.insert(&self.hasher, hash, key, Value::Bytes(value), deadline);
        drop(slots);
        self.reap_later(deadline);
        true
    }

    #[inline]
    pub(crate) fn delete(&self, key: &str) -> bool {
        let hash = self.hash(key);
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        slots.remove(hash, key).is_some_and(|e| e.live(&mut now))
    }

    #[inline]
    pub(crate) fn expire(&self, key: &str, ttl: Ttl) -> bool {
        let hash = self.hash(key);
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let deadline = deadline(&mut now, ttl);
        let Some(entry) = slots.live_mut(hash, key, &mut now) else {
            return false;
        };
        let old = mem::replace(&mut entry.deadline, deadline);
        slots.retimed(old, deadline);
        drop(slots);
        self.reap_later(deadline);
        true
    }

    #[inline]
    pub(crate) fn persist(&self, key: &str) -> bool {
        let hash = self.hash(key);
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        match slots.live_mut(hash, key, &mut now) {
            Some(entry) if entry.deadline != 0 => {
                entry.deadline = 0;
                slots.with_ttl -= 1;
                true
            }
            _ => false,
        }
    }

    #[inline]
    pub(crate) fn incr(&self, key: &str, delta: i64, ttl_on_create: Option<Ttl>) -> Result<i64> {
        let hash = self.hash(key);
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        match slots.live_mut(hash, key, &mut now) {
            Some(entry) => {
                let current = entry
                    .value
                    .as_integer()
                    .ok_or_else(|| Error::not_an_integer(key))?;
                let next = current
                    .checked_add(delta)
                    .ok_or_else(|| Error::overflow(key))?;
                entry.value = Value::Int(next);
                Ok(next)
            }
            None => {
                let deadline = deadline_of(&mut now, ttl_on_create);
                slots.insert(&self.hasher, hash, key, Value::Int(delta), deadline);
                drop(slots);
                self.reap_later(deadline);
                Ok(delta)
            }
        }
    }

    #[inline]
    pub(crate) fn get_set(&self, key: &str, value: Bytes, ttl: Option<Ttl>) -> Option<Bytes> {
        let hash = self.hash(key);
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let deadline = deadline_of(&mut now, ttl);
        let previous = match slots.live_mut(hash, key, &mut now) {
            Some(entry) => {
                let previous = mem::replace(&mut entry.value, Value::Bytes(value));
                let old = mem::replace(&mut entry.deadline, deadline);
                slots.retimed(old, deadline);
                Some(previous)
            }
            None => {
                slots.insert(&self.hasher, hash, key, Value::Bytes(value), deadline);
                None
            }
        };
        drop(slots);
        self.reap_later(deadline);
        previous.map(Value::into_bytes)
    }

    #[inline]
    pub(crate) fn cas(&self, key: &str, expected: &[u8], new: Bytes, ttl: Option<Ttl>) -> bool {
        let hash = self.hash(key);
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        let deadline = deadline_of(&mut now, ttl);
        match slots.live_mut(hash, key, &mut now) {
            Some(entry) if entry.value.eq_bytes(expected) => {
                entry.value = Value::Bytes(new);
                let old = mem::replace(&mut entry.deadline, deadline);
                slots.retimed(old, deadline);
                drop(slots);
                self.reap_later(deadline);
                true
            }
            _ => false,
        }
    }

    #[inline]
    pub(crate) fn cad(&self, key: &str, expected: &[u8]) -> bool {
        let hash = self.hash(key);
        let mut slots = write(self.shard(hash));
        let mut now = Now::new(&self.clock);
        match slots.map.find(hash, |e| key_eq(&e.key, key)) {
            Some(found) if found.live(&mut now) && found.value.eq_bytes(expected) => {
                slots.remove(hash, key);
                true
            }
            _ => false,
        }
    }

    /// Visits a batch's keys, locking the shards they fall in with `lock`, in ascending shard
    /// order, and holding every lock until all keys are visited: the batch is atomic, and as
    /// everyone takes shard locks in the same order, batches cannot deadlock. Keys of one
    /// shard are visited in the caller's order, so for a key given twice the last one wins.
    /// `visit` gets the shard's guard, the key's position in the batch and its hash.
    fn locked<'k, G>(
        &'k self,
        keys: impl Iterator<Item = &'k str>,
        lock: impl Fn(&'k Shard) -> G,
        mut visit: impl FnMut(&mut G, usize, u64),
    ) {
        let mut plan: Batch<(usize, usize, u64)> = Batch::new();
        plan.extend(keys.enumerate().map(|(i, key)| {
            let hash = self.hash(key);
            (self.shard_index(hash), i, hash)
        }));
        plan.sort_unstable_by_key(|&(shard, i, _)| (shard, i));
        let shards = 1 + plan.windows(2).filter(|w| w[0].0 != w[1].0).count();
        let mut guards: Batch<G> = Batch::with_capacity(shards);
        let mut held = usize::MAX;
        for &(shard, i, hash) in plan.iter() {
            if shard != held {
                guards.push(lock(&self.shards[shard]));
                held = shard;
            }
            if let Some(guard) = guards.last_mut() {
                visit(guard, i, hash);
            }
        }
    }

    pub(crate) fn mget(&self, keys: &[&str]) -> Vec<Option<Bytes>> {
        let mut answers = vec![None; keys.len()];
        let mut now = Now::new(&self.clock);
        self.locked(keys.iter().copied(), read, |slots, i, hash| {
            let key = keys[i];
            answers[i] = slots
                .map
                .find(hash, |e| key_eq(&e.key, key))
                .filter(|e| e.live(&mut now))
                .map(|e| e.value.to_bytes());
        });
        answers
    }

    pub(crate) fn mset(&self, pairs: &mut [(&str, Bytes)], ttl: Option<Ttl>) {
        let mut now = Now::new(&self.clock);
        let deadline = deadline_of(&mut now, ttl);
        let keys: Batch<&str> = pairs.iter().map(|(k, _)| *k).collect();
        self.locked(keys.iter().copied(), write, |slots, i, hash| {
            let (key, value) = &mut pairs[i];
            let value = Value::Bytes(mem::take(value));
            match slots.live_mut(hash, key, &mut now) {
                Some(entry) => {
                    entry.value = value;
                    let old = mem::replace(&mut entry.deadline, deadline);
                    slots.retimed(old, deadline);
                }
                None => slots.insert(&self.hasher, hash, key, value, deadline),
            }
        });
        self.reap_later(deadline);
    }

    pub(crate) fn mdel(&self, keys: &[&str]) -> u64 {
        let mut now = Now::new(&self.clock);
        let mut removed = 0;
        self.locked(keys.iter().copied(), write, |slots, i, hash| {
            if slots
                .remove(hash, keys[i])
                .is_some_and(|e| e.live(&mut now))
            {
                removed += 1;
            }
        });
        removed
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The live keys of one shard that match `pattern`: one page of a scan.
    pub(crate) fn scan_shard(&self, shard: usize, pattern: &Pattern) -> Vec<String> {
        let Some(shard) = self.shards.get(shard) else {
            return Vec::new();
        };
        let slots = read(shard);
        let mut now = Now::new(&self.clock);
        slots
            .map
            .iter()
            .filter(|e| e.live(&mut now) && pattern.matches(&e.key))
            .map(|e| e.key.to_string())
            .collect()
    }

    /// Empties every shard; returns how many live entries there were. Each shard's table is
    /// swapped out under its lock and freed after the lock is released.
    pub(crate) fn clear(&self) -> u64 {
        let mut cleared = 0;
        for shard in self.shards.iter() {
            let taken = mem::take(&mut *write(shard)).map;
            let now = self.clock.now();
            cleared += taken.iter().filter(|e| !e.expired_at(now)).count() as u64;
        }
        cleared
    }

    /// Live entries, counted one shard at a time under its read lock.
    pub(crate) fn live(&self) -> u64 {
        let now = self.clock.now();
        self.shards
            .iter()
            .map(|s| read(s).map.iter().filter(|e| !e.expired_at(now)).count() as u64)
            .sum()
    }

    /// Entries held, expired ones not yet reclaimed included.
    pub(crate) fn stored(&self) -> usize {
        self.shards.iter().map(|s| read(s).map.len()).sum()
    }

    /// Reclaims expired entries, resuming each shard where the last call stopped.
    ///
    /// A full reap inspects every bucket. Otherwise each shard is inspected for 1/32 of its
    /// buckets (at least one chunk), and further while the last chunk was at least a quarter
    /// expired, up to one full pass: a full pass takes about 32 calls whatever the size. A chunk is first read
    /// under the shared lock; only a chunk holding expired entries takes the exclusive lock.
    /// Returns how many entries were freed.
    pub(crate) fn reap(&self, full: bool) -> usize {
        let mut freed = 0;
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
            while scanned < buckets {
                let now = self.clock.now();
                let (end, expired) = {
                    let slots = read(shard);
                    let buckets = slots.map.num_buckets();
                    if cursor >= buckets {
                        cursor = 0;
                    }
                    let end = (cursor + REAP_CHUNK).min(buckets);
                    let expired = (cursor..end)
                        .filter(|&i| slots.map.get_bucket(i).is_some_and(|e| e.expired_at(now)))
                        .count();
                    (end, expired)
                };
                if expired > 0 {
                    let mut dropped = Vec::with_capacity(expired);
                    let mut slots = write(shard);
                    // Buckets may have moved since the shared read; any expired entry found
                    // here is fair game, whichever it is.
                    for i in cursor..end {
                        if let Ok(found) = slots.map.get_bucket_entry(i) {
                            if found.get().expired_at(now) {
                                dropped.push(found.remove().0);
                            }
                        }
                    }
                    slots.with_ttl -= dropped.len();
                    drop(slots);
                    freed += dropped.len();
                }
                scanned += end.saturating_sub(cursor).max(1);
                cursor = end;
                if scanned >= budget && expired * 4 < REAP_CHUNK {
                    break;
                }
            }
            shard.reap_cursor.store(cursor, Ordering::Relaxed);
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::key_eq;

    #[test]
    fn key_eq_agrees_with_str_eq() {
        let base: String = "abcdefghijklmnopqrstuvwxyz0123456789é".into();
        for len in 0..base.len() {
            let Some(a) = base.get(..len) else { continue };
            assert!(key_eq(a, a), "{a:?}");
            // Same length, one byte different at every position; and every other length.
            for at in 0..len {
                let mut bytes = a.as_bytes().to_vec();
                bytes[at] ^= 1;
                if let Ok(b) = std::str::from_utf8(&bytes) {
                    assert!(!key_eq(a, b), "{a:?} vs {b:?}");
                }
            }
            for other in 0..base.len() {
                if let Some(b) = base.get(..other) {
                    assert_eq!(key_eq(a, b), a == b, "{a:?} vs {b:?}");
                }
            }
        }
    }
}
