//! An entry of the memory driver: a business key, its value (bytes, or a counter kept as an
//! integer) and its deadline, plus what eviction needs in a store with a budget, and what an
//! entry costs that budget.

use std::mem::size_of;
use std::sync::atomic::AtomicU32;

use bytes::Bytes;
use smol_str::SmolStr;

use super::clock::Now;
use crate::counter;

pub(super) struct Entry {
    pub(super) key: SmolStr,
    pub(super) value: Value,
    /// Nanoseconds on the driver's clock at which the entry expires; 0 for never.
    pub(super) deadline: u64,
    /// In a store with a budget: the entry's number within its shard (how the eviction
    /// queues find it), its access mark (a frequency or a recency, set by reads with an atomic
    /// store), and which queue holds it. Unused without a budget.
    pub(super) id: u32,
    pub(super) mark: AtomicU32,
    pub(super) queue: u8,
}

/// A counter is kept as an integer, so `incr` neither parses nor formats; it reads back as
/// decimal ASCII.
pub(super) enum Value {
    Bytes(Bytes),
    Int(i64),
}

pub(super) fn counter_bytes(n: i64) -> Bytes {
    Bytes::copy_from_slice(counter::format(n, &mut itoa::Buffer::new()))
}

/// Whether two keys are equal. Short keys, the common case, compare with two overlapping
/// word loads instead of a call to `memcmp`, whose call and dispatch cost more than the
/// comparison itself (measured: a quarter of an `exists`).
#[inline(always)]
pub(super) fn key_eq(a: &str, b: &str) -> bool {
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
    pub(super) fn to_bytes(&self) -> Bytes {
        match self {
            Value::Bytes(bytes) => bytes.clone(),
            Value::Int(n) => counter_bytes(*n),
        }
    }

    #[inline]
    pub(super) fn into_bytes(self) -> Bytes {
        match self {
            Value::Bytes(bytes) => bytes,
            Value::Int(n) => counter_bytes(n),
        }
    }

    #[inline]
    pub(super) fn eq_bytes(&self, other: &[u8]) -> bool {
        match self {
            Value::Bytes(bytes) => bytes[..] == *other,
            Value::Int(n) => counter::format(*n, &mut itoa::Buffer::new()) == other,
        }
    }

    /// The heap the value holds (a counter holds none).
    #[inline]
    pub(super) fn heap(&self) -> u64 {
        match self {
            Value::Bytes(bytes) => bytes_heap(bytes),
            Value::Int(_) => 0,
        }
    }

    #[inline]
    pub(super) fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Bytes(bytes) => counter::parse_canonical(bytes),
            Value::Int(n) => Some(*n),
        }
    }
}

impl Entry {
    #[inline]
    pub(super) fn live(&self, now: &mut Now<'_>) -> bool {
        self.deadline == 0 || now.get() < self.deadline
    }

    pub(super) fn expired_at(&self, now: u64) -> bool {
        self.deadline != 0 && now >= self.deadline
    }
}

/// The longest key `SmolStr` stores inline.
const INLINE_KEY: usize = 23;

/// The stored form of `key`. A key short enough to be stored inline is copied by
/// `SmolStr::new_inline` at a length known when compiled, one arm per length, so that each
/// copy is a few moves. `SmolStr::new` copies with a call to `memcpy` (measured: 10 ns of a
/// write that adds a key), and `new_inline` at a length known only when run copies in place
/// with narrow stores that the next wide load of the key must wait for (measured: 2.4 ns of
/// the criterion row `set of a new key, unbounded`, 3 ns of an evicting set).
#[inline(always)]
fn stored_key(key: &str) -> SmolStr {
    macro_rules! by_length {
        ($($n:literal)*) => {
            match key.len() {
                $($n => SmolStr::new_inline(&key[..$n]),)*
                _ => SmolStr::new(key),
            }
        };
    }
    by_length!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23)
}

impl Entry {
    /// A new entry; `id` is 0 in a store without a budget.
    #[inline]
    pub(super) fn new(key: &str, value: Value, deadline: u64, id: u32) -> Self {
        Entry {
            key: stored_key(key),
            value,
            deadline,
            id,
            mark: AtomicU32::new(0),
            queue: 0,
        }
    }

    /// What the entry costs a budget, in bytes (SPEC 10.2), beyond the driver's tables: its
    /// key and value bytes. See [`charge`].
    #[inline]
    pub(super) fn charge(&self) -> u64 {
        charge(&self.key, &self.value)
    }

    /// The entry's weight in the eviction queues: its [`charge`](Self::charge) and the
    /// driver's average memory per entry ([`ENTRY_OVERHEAD`]), so an entry of a few bytes (a
    /// counter) still weighs what it takes.
    #[inline]
    pub(super) fn weight(&self) -> u64 {
        self.charge() + ENTRY_OVERHEAD
    }
}

/// Bytes the allocator takes for a block of `len` bytes: glibc's malloc adds an 8-byte
/// header, rounds to 16, and takes at least 32.
pub(super) const fn heap(len: usize) -> u64 {
    if len == 0 {
        0
    } else {
        let block = (len + 8 + 15) & !15;
        if block < 32 { 32 } else { block as u64 }
    }
}

/// The driver's memory per entry on average, whatever its key and value: the entry in its
/// hash table (which keeps at most 7 of 8 buckets full, plus a control byte a bucket), its
/// slot in an eviction queue, its share of the table of recently evicted keys and of the
/// frequency sketch (at most 16 bytes), and its expiry-index slot. The eviction queues weigh
/// an entry by it plus its [`charge`] ([`Entry::weight`]); the budget is charged those
/// structures as they really are, as they double and shrink (`Slots::insert`,
/// `Order::restructured`), not this average.
pub(super) const ENTRY_OVERHEAD: u64 = (size_of::<Entry>() * 8 / 7 + 1) as u64 + 16 + 8 + 16 + 24;

/// What an entry of `key` and `value` costs a budget, in bytes, beyond the driver's tables
/// (charged as they are): the key's heap block if it is too long to be stored inline (keys up
/// to 23 bytes are), and the value's heap block plus the shared header `Bytes` allocates once
/// a value is handed out. A counter is stored inline. A value buffer shared by several keys is
/// charged to each: the budget then holds less than it could, never more.
pub(super) fn charge(key: &SmolStr, value: &Value) -> u64 {
    key_heap(key.is_heap_allocated(), key.len()) + value.heap()
}

/// What a new entry of `key` and a value taking `value_heap` bytes of heap
/// ([`Value::heap`], [`bytes_heap`]) will cost: its [`charge`] once stored, computed without
/// building the stored key (which, for a long key, would allocate).
#[inline]
pub(super) fn cost(key: &str, value_heap: u64) -> u64 {
    key_heap(key_on_heap(key), key.len()) + value_heap
}

/// The heap a value of `bytes` holds once stored: its buffer and the header `Bytes` shares it
/// through.
#[inline]
pub(super) fn bytes_heap(bytes: &[u8]) -> u64 {
    if bytes.is_empty() {
        0
    } else {
        heap(bytes.len()) + heap(24)
    }
}

#[inline]
fn key_heap(on_heap: bool, len: usize) -> u64 {
    if on_heap { heap(len + 16) } else { 0 }
}

/// Whether `SmolStr` keeps `key` on the heap: it stores keys of up to 23 bytes inline, and
/// points a run of up to 32 newlines then up to 128 spaces into a static string. A unit test
/// holds this to `SmolStr` itself.
#[inline]
fn key_on_heap(key: &str) -> bool {
    const NEWLINES: usize = 32;
    const SPACES: usize = 128;
    let bytes = key.as_bytes();
    if bytes.len() <= INLINE_KEY {
        return false;
    }
    if bytes.len() > NEWLINES + SPACES {
        return true;
    }
    let newlines = bytes
        .iter()
        .take(NEWLINES)
        .take_while(|&&b| b == b'\n')
        .count();
    let spaces = &bytes[newlines..];
    !(spaces.len() <= SPACES && spaces.iter().all(|&b| b == b' '))
}

#[cfg(test)]
mod tests {
    use smol_str::SmolStr;

    use super::{key_eq, key_on_heap, stored_key};

    #[test]
    fn key_on_heap_agrees_with_smol_str() {
        let mut keys: Vec<String> = (0..200).map(|n| "k".repeat(n)).collect();
        for newlines in [0, 1, 31, 32, 33] {
            for spaces in [0, 1, 22, 23, 24, 100, 127, 128, 129] {
                let run = format!("{}{}", "\n".repeat(newlines), " ".repeat(spaces));
                keys.push(format!("{run}x"));
                keys.push(format!(" {run}"));
                keys.push(run);
            }
        }
        keys.push("é".repeat(12));
        for key in keys {
            assert_eq!(
                key_on_heap(&key),
                SmolStr::new(&key).is_heap_allocated(),
                "{key:?}"
            );
        }
    }

    #[test]
    fn stored_key_keeps_every_key_whole() {
        let mut keys: Vec<String> = (0..40).map(|n| "k".repeat(n)).collect();
        keys.extend((0..12).map(|n| "é".repeat(n)));
        keys.push("ü🙂x".repeat(3));
        for key in keys {
            let stored = stored_key(&key);
            assert_eq!(stored.as_str(), key);
            assert_eq!(stored.is_heap_allocated(), key_on_heap(&key), "{key:?}");
        }
    }

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
