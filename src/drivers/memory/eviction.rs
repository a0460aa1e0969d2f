//! What a memory store with a budget may evict (SPEC 10.3), and how it picks victims.

use std::fmt;
use std::str::FromStr;

pub use crate::eviction::Eviction;
use crate::{Error, Result};

impl Eviction {
    /// Whether the mode lets `entry` be evicted.
    #[inline]
    pub(super) fn allows(self, entry: &super::entry::Entry) -> bool {
        match self {
            Eviction::Never => false,
            Eviction::Any => true,
            Eviction::WithTtl => entry.deadline != 0,
        }
    }
}

/// How a memory store with a budget picks the keys to evict (SPEC 10.6). Each shard of a
/// namespace keeps its own order, so no lock is shared between shards; a read marks its entry
/// with one atomic store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Policy {
    /// S3-FIFO (Yang et al., SOSP 2023), adaptive: new keys enter a small FIFO queue and
    /// leave it at once unless read again; keys read again move to the main queue, which
    /// evicts like CLOCK; keys recently evicted are remembered, so a key that comes back goes
    /// straight to the main queue, and its coming back moves the small queue's share of the
    /// room (as ARC moves its target). A frequency sketch over a long horizon (4-bit
    /// counters, TinyLFU's) admits a key leaving the small queue to the main queue when it
    /// was seen more often than one of the main queue's next two entries. Resists scans,
    /// keeps a hot set, O(1) per operation. The default, by measurement
    /// (`docs/eviction.md`).
    #[default]
    S3Fifo,
    /// Redis's approximate LRU: the least recently used of five entries sampled at random.
    SampledLru,
}

impl Policy {
    /// The policy's name in a URL: `s3-fifo`, `sampled-lru`.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::S3Fifo => "s3-fifo",
            Policy::SampledLru => "sampled-lru",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Policy {
    type Err = Error;

    /// Case does not matter.
    fn from_str(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "s3-fifo" | "s3fifo" => Ok(Policy::S3Fifo),
            "sampled-lru" | "lru" => Ok(Policy::SampledLru),
            _ => Err(Error::invalid_url(format!(
                "unknown eviction policy `{}` (known: s3-fifo, sampled-lru)",
                crate::error::shorten(text)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_policies_round_trip() {
        for mode in [Eviction::Never, Eviction::Any, Eviction::WithTtl] {
            assert_eq!(mode.as_str().parse::<Eviction>().unwrap(), mode);
        }
        for policy in [Policy::S3Fifo, Policy::SampledLru] {
            assert_eq!(policy.as_str().parse::<Policy>().unwrap(), policy);
        }
        assert!("lfu".parse::<Policy>().is_err());
        assert!("sometimes".parse::<Eviction>().is_err());
    }
}
