//! What a memory store with a budget may evict (SPEC 10.3), and how it picks victims.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// Which keys of a namespace a memory store over its budget may evict (SPEC 10.3), as Redis's
/// `maxmemory-policy` says store-wide.
///
/// The store has a default ([`MemoryBuilder::eviction`](super::MemoryBuilder::eviction), or
/// `?eviction=` in its URL); a namespace may choose its own with
/// [`MemoryDriver::namespace_with_eviction`](super::MemoryDriver::namespace_with_eviction).
/// Without a budget nothing is ever evicted, whatever the mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Eviction {
    /// Nothing is evicted: a write that would go over the budget fails with
    /// [`ErrorKind::OutOfMemory`](crate::ErrorKind::OutOfMemory) and changes nothing (Redis
    /// `noeviction`). The default, as in Redis: locks, counters and sessions belong here.
    #[default]
    Never,
    /// Any key may be evicted (Redis `allkeys-*`): a cache.
    Any,
    /// Only keys that have a TTL may be evicted (Redis `volatile-*`).
    WithTtl,
}

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

    /// The mode's name in a URL: `never`, `any`, `with-ttl`.
    pub fn as_str(self) -> &'static str {
        match self {
            Eviction::Never => "never",
            Eviction::Any => "any",
            Eviction::WithTtl => "with-ttl",
        }
    }
}

impl fmt::Display for Eviction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Eviction {
    type Err = Error;

    /// Case does not matter, as in Redis's `maxmemory-policy` (and the budget's sizes).
    fn from_str(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "never" => Ok(Eviction::Never),
            "any" => Ok(Eviction::Any),
            "with-ttl" | "with_ttl" => Ok(Eviction::WithTtl),
            _ => Err(Error::invalid_url(format!(
                "unknown eviction mode `{}` (known: never, any, with-ttl)",
                crate::error::shorten(text)
            ))),
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
    /// was seen more often than the main queue's next victim. Resists scans, keeps a hot set,
    /// O(1) per operation. The default, by measurement (`docs/eviction.md`).
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

/// Parses a size as people write it: `256MiB`, `1gb`, `512k`, `1048576`. As in Redis's
/// configuration, `k`/`m`/`g`/`t` are powers of 1000 and `kb`/`mb`/`gb`/`tb` (also `kib`,
/// `mib`, `gib`, `tib`) powers of 1024; case does not matter, and a trailing `b` alone is
/// bytes.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.replace('_', "").parse().ok()?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1_000,
        "kb" | "kib" => 1 << 10,
        "m" => 1_000_000,
        "mb" | "mib" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" | "gib" => 1 << 30,
        "t" => 1_000_000_000_000,
        "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_people_write_them() {
        for (text, bytes) in [
            ("256MiB", 256 << 20),
            ("256mb", 256 << 20),
            ("256m", 256_000_000),
            ("1GiB", 1 << 30),
            ("512k", 512_000),
            ("512KB", 512 << 10),
            ("1048576", 1 << 20),
            ("10b", 10),
            ("1_000", 1000),
        ] {
            assert_eq!(parse_size(text), Some(bytes), "{text}");
        }
        for bad in [
            "",
            "MiB",
            "1.5GiB",
            "12 apples",
            "-1",
            "99999999999999999999",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

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
