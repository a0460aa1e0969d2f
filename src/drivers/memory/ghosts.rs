//! S3-FIFO's ghost lists for one shard: hashes of keys recently evicted, from the small queue
//! and from the main one. A key that comes back while remembered goes straight to the main
//! queue (`order.rs`).

use std::mem::size_of;

/// Which ghost list remembers a key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum GhostList {
    /// Evicted from the small queue without a second read.
    Small = 0,
    /// Evicted from the main queue.
    Main = 1,
}

/// Slots a set of the table holds: four 16-byte slots, one cache line.
const WAYS: usize = 4;

/// A remembered key: its hash, and the number of the eviction into its list that put it
/// there, plus one, shifted left once with its list in the low bit (0 for an empty slot).
#[derive(Clone, Copy, Default)]
struct Ghost {
    hash: u64,
    stamp: u64,
}

/// Both ghost lists in one set-associative table of hashes, each with its list and the number
/// of the eviction into that list that put it there: a key is remembered while fewer than
/// `capacity` evictions into its list have followed. So nothing is taken out when a key is
/// forgotten: its slot is simply taken by a later one.
///
/// A key's set is four slots (one cache line) chosen by its hash, so an eviction and a return
/// each read one line and probe nothing else; the table has at least twice as many slots as
/// both lists can remember. A key evicted into a set whose four slots all hold keys still
/// remembered takes the place of the one closest to being forgotten: the lists are exact
/// except for those early losses: at most a few percent of the keys they remember, those
/// closest to being forgotten (3.7% with both lists full and a power-of-two capacity, the
/// table's fullest case; unit test below).
#[derive(Default)]
pub(super) struct Ghosts {
    /// `sets × WAYS` slots; empty until the first eviction.
    slots: Vec<Ghost>,
    /// Evictions into each list so far.
    evictions: [u64; 2],
}

impl Ghosts {
    /// The heap the table holds, in bytes.
    pub(super) fn heap(&self) -> usize {
        self.slots.capacity() * size_of::<Ghost>()
    }

    /// Remembers `hash` as evicted into `list` (from its latest eviction, if it was remembered
    /// already), for lists of `capacity` keys each.
    #[inline]
    pub(super) fn insert(&mut self, hash: u64, list: GhostList, capacity: usize) {
        self.fit(capacity);
        let count = &mut self.evictions[list as usize];
        *count += 1;
        let ghost = Ghost {
            hash,
            stamp: (*count << 1) | list as u64,
        };
        self.place(ghost, capacity);
    }

    /// Forgets `hash`; the list that remembered it, if one still did.
    #[inline]
    pub(super) fn take(&mut self, hash: u64, capacity: usize) -> Option<GhostList> {
        let set = self.set(hash)?;
        let evictions = self.evictions;
        let ghost = self.slots[set..set + WAYS]
            .iter_mut()
            .find(|g| g.stamp != 0 && g.hash == hash)?;
        let stamp = std::mem::take(&mut ghost.stamp);
        remembered(evictions, stamp, capacity)
    }

    /// Sizes the table for lists of `capacity` keys each: the next power of two of sets at
    /// or above `capacity` (so at least twice the slots the lists can fill), grown when the
    /// lists outgrow it and shrunk when it is four times what they need. The keys still
    /// remembered move to the new table.
    #[inline]
    pub(super) fn fit(&mut self, capacity: usize) {
        let need = capacity.max(2).next_power_of_two();
        let have = self.slots.len() / WAYS;
        if have < need || have >= 4 * need {
            self.resize(need, capacity);
        }
    }

    /// Rebuilds the table with `need` sets (rare: the lists' capacity follows the shard's
    /// queued entries, and the table is only resized when it is off by a factor of two).
    #[cold]
    fn resize(&mut self, need: usize, capacity: usize) {
        let old = std::mem::replace(&mut self.slots, vec![Ghost::default(); need * WAYS]);
        for ghost in old {
            if ghost.stamp != 0 && remembered(self.evictions, ghost.stamp, capacity).is_some() {
                self.place(ghost, capacity);
            }
        }
    }

    /// The first slot of the set of `hash`, if the table has any. The shard took bits 32 and
    /// up of the hash; the set takes the low ones.
    #[inline]
    fn set(&self, hash: u64) -> Option<usize> {
        let sets = self.slots.len() / WAYS;
        (sets > 0).then(|| (hash as usize & (sets - 1)) * WAYS)
    }

    /// Puts `ghost` in its set: in the slot its key held, else in an empty or forgotten one,
    /// else in place of the key evicted longest ago (relative to its own list).
    fn place(&mut self, ghost: Ghost, capacity: usize) {
        let Some(set) = self.set(ghost.hash) else {
            return;
        };
        let evictions = self.evictions;
        let slots = &mut self.slots[set..set + WAYS];
        let at = match slots
            .iter()
            .position(|g| g.stamp != 0 && g.hash == ghost.hash)
        {
            Some(own) => own,
            None => {
                let mut at = 0;
                let mut oldest = 0;
                for (i, g) in slots.iter().enumerate() {
                    if g.stamp == 0 {
                        at = i;
                        break;
                    }
                    let since = since(evictions, g.stamp);
                    if since > capacity as u64 {
                        at = i;
                        break;
                    }
                    if since > oldest {
                        (at, oldest) = (i, since);
                    }
                }
                at
            }
        };
        slots[at] = ghost;
    }
}

/// How many evictions into its list followed the one of `stamp` (a slot's, not 0), counting
/// that one.
#[inline]
fn since(evictions: [u64; 2], stamp: u64) -> u64 {
    evictions[(stamp & 1) as usize].wrapping_sub((stamp >> 1) - 1)
}

/// The list a key of stamp `stamp` is remembered in, if fewer than `capacity` evictions into
/// it have followed its own.
fn remembered(evictions: [u64; 2], stamp: u64, capacity: usize) -> Option<GhostList> {
    let list = if stamp & 1 == 0 {
        GhostList::Small
    } else {
        GhostList::Main
    };
    (since(evictions, stamp) <= capacity as u64).then_some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed hash whose low bits are as mixed as the store's (a seeded `foldhash`):
    /// SplitMix64's finalizer.
    fn hash(n: u64) -> u64 {
        let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn ghosts_remember_each_lists_last_evictions() {
        let mut ghosts = Ghosts::default();
        // Ten evictions into each list, with a capacity of 4: the last four of each are
        // remembered, in their own list.
        for n in 0..10 {
            ghosts.insert(hash(n), GhostList::Small, 4);
            ghosts.insert(hash(100 + n), GhostList::Main, 4);
        }
        for n in 0..10 {
            let small = ghosts.take(hash(n), 4);
            let main = ghosts.take(hash(100 + n), 4);
            if n >= 6 {
                assert_eq!(small, Some(GhostList::Small), "{n}");
                assert_eq!(main, Some(GhostList::Main), "{n}");
            } else {
                assert_eq!((small, main), (None, None), "{n}");
            }
        }
        // Taken keys are forgotten.
        assert_eq!(ghosts.take(hash(9), 4), None);
        // A key evicted again is remembered from its latest eviction, in its latest list.
        ghosts.insert(hash(1), GhostList::Small, 4);
        ghosts.insert(hash(1), GhostList::Main, 4);
        for n in 200..203 {
            ghosts.insert(hash(n), GhostList::Small, 4);
        }
        assert_eq!(ghosts.take(hash(1), 4), Some(GhostList::Main));
        assert_eq!(ghosts.take(hash(1), 4), None, "one slot a key");
    }

    #[test]
    fn ghosts_lose_few_keys_to_full_sets_and_keep_their_size() {
        // Many evictions into both lists of 1,024 keys each (a power of two: the table's
        // fullest case, two keys a set on average): the table stays the size it took, and of
        // the last 1,024 keys evicted into each list nearly all are remembered (a key is lost
        // early only when its set's four slots hold keys still remembered).
        let mut ghosts = Ghosts::default();
        for n in 0..100_000 {
            let list = if n % 2 == 0 {
                GhostList::Small
            } else {
                GhostList::Main
            };
            ghosts.insert(hash(n), list, 1_024);
        }
        assert_eq!(ghosts.heap(), 1_024 * WAYS * size_of::<Ghost>());
        let remembered = (100_000 - 2_048..100_000)
            .filter(|&n| ghosts.take(hash(n), 1_024).is_some())
            .count();
        // Measured: 1,972 (96.3%).
        assert!(
            remembered >= 1_946,
            "{remembered} of the last 2,048 remembered (95%)"
        );
        assert_eq!(ghosts.take(hash(100_000 - 2_049), 1_024), None);
    }

    #[test]
    fn ghosts_move_to_a_table_of_the_lists_size() {
        let mut ghosts = Ghosts::default();
        for n in 0..2_000 {
            ghosts.insert(hash(n), GhostList::Main, 1_000);
        }
        let big = ghosts.heap();
        // The lists shrink to 100 keys: the table follows, keeping the last 100 evicted.
        ghosts.fit(100);
        assert!(ghosts.heap() * 8 <= big, "{} of {big} bytes", ghosts.heap());
        for n in 1_900..2_000 {
            assert_eq!(ghosts.take(hash(n), 100), Some(GhostList::Main), "{n}");
        }
        // And grows back with them.
        ghosts.fit(1_000);
        assert_eq!(ghosts.heap(), big);
    }
}
