//! The frequency sketch S3-FIFO's small queue admits by (TinyLFU's admission, `order.rs`):
//! how often each key of a shard was seen, over a long horizon, in 4-bit counters.

use std::mem::size_of;

/// Counters a queued entry has in the [`Sketch`] (4 bits each: 8 bytes an entry).
const SKETCH_COUNTERS_PER_ENTRY: usize = 16;
/// The sketch halves every counter after this many sightings per counter, in quarters (40: a
/// horizon of 640 sightings per queued entry). Chosen by measurement (docs/eviction.md): from
/// 120 to 240 quarters the hit ratios moved by under 0.2 point; shorter horizons lose P3 and
/// small Zipf caches.
const SKETCH_AGING_QUARTERS: usize = 160;
/// Words of 16 counters a block has: eight, 64 bytes, one cache line.
const BLOCK: usize = 8;

/// Counters a block has.
const BLOCK_COUNTERS: usize = BLOCK * 16;

/// The fewest counters a sketch has.
const SMALLEST: usize = 256;

/// The heap of a sketch of the fewest counters ([`Sketch::fit`]).
pub(super) const SMALLEST_HEAP: usize = words_for(blocks_for(SMALLEST)) * size_of::<u64>();

/// Blocks for `need` counters: a quarter more than needed, so a growing shard resizes a
/// logarithmic number of times.
const fn blocks_for(need: usize) -> usize {
    (need + need / 4).div_ceil(BLOCK_COUNTERS)
}

/// Words allocated for `blocks` blocks: seven more, so that the blocks can start on a 64-byte
/// boundary wherever the allocation lands. (Blocks of a type aligned to 64 bytes made each
/// sketch an over-aligned allocation, and as namespaces came and went, those fragmented
/// glibc's heap: 1,000,000 one-key namespaces written in turn under a 64 MiB budget grew the
/// process by 73 MiB with them, 65 MiB without.)
const fn words_for(blocks: usize) -> usize {
    blocks * BLOCK + BLOCK - 1
}

/// A count-min sketch of 4-bit counters, four probes a key in one cache line, sized to the shard's queued
/// entries: how many times each key was inserted, or passed a queue with a read to its
/// credit, with every count halved as the additions reach the horizon (TinyLFU's aging, Einziger
/// et al., 2017). Counts are estimates from above; a collision can only make a key look more
/// frequent.
#[derive(Default)]
pub(super) struct Sketch {
    /// 16 counters a word, [`BLOCK`] words a block, the first block at `start`, on a 64-byte
    /// boundary ([`words_for`]).
    words: Vec<u64>,
    start: usize,
    blocks: usize,
    additions: usize,
    /// The additions at which every counter is halved: the horizon of [`counters`] ×
    /// [`SKETCH_AGING_QUARTERS`] / 4, set with the size.
    ///
    /// [`counters`]: Sketch::counters
    ages_at: usize,
}

impl Sketch {
    /// The heap the sketch holds, in bytes.
    pub(super) fn heap(&self) -> usize {
        self.words.capacity() * size_of::<u64>()
    }

    pub(super) fn counters(&self) -> usize {
        self.blocks * BLOCK_COUNTERS
    }

    /// The words of block `block`: one cache line.
    #[inline]
    fn block(&self, block: usize) -> &[u64] {
        let at = self.start + block * BLOCK;
        &self.words[at..at + BLOCK]
    }

    #[inline]
    fn block_mut(&mut self, block: usize) -> &mut [u64] {
        let at = self.start + block * BLOCK;
        &mut self.words[at..at + BLOCK]
    }

    /// The four counters of `hash`, each as its word in its block and the shift of its 4
    /// bits: all in one block (a cache line), counter `i` in word `2i` or `2i + 1` of it, so
    /// a key's four counters are distinct and a sighting or an estimate reads one line (the
    /// layout of Caffeine's sketch). The block takes the mixed hash's high bits, the
    /// counters its low ones.
    #[inline]
    fn probes(&self, hash: u64) -> (usize, [(usize, u32); 4]) {
        let mixed = (hash ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xff51_afd7_ed55_8ccd);
        let block = ((u128::from(mixed) * self.blocks as u128) >> 64) as usize;
        let bits = mixed as u32;
        let counters = [0, 1, 2, 3].map(|i| {
            let own = bits >> (i * 5);
            (2 * i as usize + (own & 1) as usize, ((own >> 1) & 0xf) * 4)
        });
        (block, counters)
    }

    /// Sizes the sketch for `queued` entries: grown (and emptied) when they outgrow it,
    /// shrunk when it is over twice their need, so it never holds more than 16 bytes an
    /// entry (what [`ENTRY_OVERHEAD`](super::entry::ENTRY_OVERHEAD) counts for it).
    #[inline]
    pub(super) fn fit(&mut self, queued: usize) {
        let need = (queued * SKETCH_COUNTERS_PER_ENTRY).max(SMALLEST);
        let have = self.counters();
        if have < need || (have > 2 * need && have > 1024) {
            self.resize(need);
        }
    }

    /// Rebuilds the sketch, empty, for `need` counters ([`blocks_for`]).
    #[cold]
    fn resize(&mut self, need: usize) {
        self.blocks = blocks_for(need);
        self.words = vec![0; words_for(self.blocks)];
        // At most seven words on (`align_offset` may say it cannot tell: the blocks then
        // start where the words do, which costs a line now and then, nothing more).
        let offset = self.words.as_ptr().align_offset(BLOCK * size_of::<u64>());
        self.start = if offset < BLOCK { offset } else { 0 };
        self.additions = 0;
        self.ages_at = self.counters() * SKETCH_AGING_QUARTERS / 4;
    }

    /// Counts one more sighting of `hash` in a shard of `queued` entries: the smallest of
    /// its counters go up by one (a conservative update), up to 15.
    #[inline]
    pub(super) fn record(&mut self, hash: u64, queued: usize) {
        self.fit(queued);
        let (block, counters) = self.probes(hash);
        let words = self.block_mut(block);
        let least = counters
            .iter()
            .map(|&(word, shift)| (words[word] >> shift) & 0xf)
            .min()
            .unwrap_or(0);
        if least < 15 {
            for (word, shift) in counters {
                if (words[word] >> shift) & 0xf == least {
                    words[word] += 1 << shift;
                }
            }
        }
        // Every sighting counts towards the horizon, a saturated one too: otherwise a sketch
        // whose counters all reached 15 would never age again.
        self.additions += 1;
        if self.additions >= self.ages_at {
            self.age();
        }
    }

    /// Halves every counter.
    #[cold]
    fn age(&mut self) {
        let blocks = self.start..self.start + self.blocks * BLOCK;
        for word in &mut self.words[blocks] {
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions /= 2;
    }

    /// How often `hash` was seen, at most 15.
    pub(super) fn estimate(&self, hash: u64) -> u64 {
        if self.blocks == 0 {
            return 0;
        }
        let (block, counters) = self.probes(hash);
        let words = self.block(block);
        counters
            .iter()
            .map(|&(word, shift)| (words[word] >> shift) & 0xf)
            .min()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed hash (the store's hasher is seeded at random per instance).
    fn hash(n: u64) -> u64 {
        (n ^ 0x5851_f42d_4c95_7f2d).wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn the_sketch_counts_caps_and_ages() {
        let mut sketch = Sketch::default();
        assert_eq!(sketch.estimate(hash(1)), 0);
        for _ in 0..5 {
            sketch.record(hash(1), 100);
        }
        sketch.record(hash(2), 100);
        assert_eq!(sketch.estimate(hash(1)), 5);
        assert_eq!(sketch.estimate(hash(2)), 1);
        assert_eq!(sketch.estimate(hash(3)), 0);
        for _ in 0..40 {
            sketch.record(hash(1), 100);
        }
        assert_eq!(sketch.estimate(hash(1)), 15, "4-bit counters stop at 15");
        // Other keys, up to the horizon: every count is halved (collisions may add a little
        // to a count, never take from it).
        let horizon = sketch.counters() * SKETCH_AGING_QUARTERS / 4;
        let mut n = 1_000;
        loop {
            let last = sketch.additions;
            sketch.record(hash(n), 100);
            n += 1;
            if sketch.additions < last {
                break;
            }
        }
        assert!(n - 1_000 < horizon as u64, "aged after {n} additions");
        let aged = sketch.estimate(hash(1));
        assert!((7..15).contains(&aged), "{aged}");
    }

    #[test]
    fn the_sketch_stays_within_its_charge() {
        let mut sketch = Sketch::default();
        for queued in [1, 10, 1_000, 100_000, 50_000, 1_000, 10] {
            sketch.fit(queued);
            let bytes = sketch.heap();
            assert!(
                bytes <= queued.max(16) * 16 || bytes <= 1024,
                "{bytes} bytes for {queued} entries"
            );
            assert!(sketch.counters() >= queued * SKETCH_COUNTERS_PER_ENTRY);
        }
    }
}
