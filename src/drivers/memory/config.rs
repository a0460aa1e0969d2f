//! The memory driver's settings, built in code or parsed from a `memory://` URL.

use std::time::Duration;

use super::eviction::{Eviction, Policy};
use crate::size::{BadSize, parse_size};
use crate::{Error, Result};

/// The URL scheme of the memory driver.
pub const SCHEME: &str = "memory";

/// Settings of a [`MemoryDriver`](super::MemoryDriver).
///
/// From a URL: `memory://`, optionally with `?shards=N&reap_interval_ms=M` (`M = 0` turns
/// background reclamation off), and a budget: `max_bytes=256MiB` (sizes as people write them:
/// `k`, `m`, `g` are powers of 1000, `kb`/`KiB`, `mb`/`MiB`, `gb`/`GiB` powers of 1024, as in
/// Redis's configuration, and on to `t`, `p`, `e`; `1.5GiB` is taken down to a whole byte),
/// `max_entries=100000` (numbers may group their digits, `100_000`),
/// `eviction=never|any|with-ttl` (the store's default mode) and `policy=s3-fifo|sampled-lru`,
/// which a URL names only with a budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryConfig {
    /// Shards per namespace, a power of two from 1 to [`MAX_SHARDS`]. `None` (the default):
    /// chosen when the store is built ([`shards_per_namespace`](Self::shards_per_namespace)),
    /// from the CPU count and, in a store with a budget, from the budget.
    pub shards: Option<usize>,
    /// How often the background thread reclaims expired entries; `None` (or zero) turns it
    /// off, leaving only expiry on access. Default: 100 ms.
    pub reap_interval: Option<Duration>,
    /// The most bytes the store's entries may cost (SPEC 10.1, 10.2: keys, values and the
    /// driver's own tables and queues). Default: none, an unbounded store.
    pub max_bytes: Option<u64>,
    /// The most entries the store may hold. Default: none.
    pub max_entries: Option<u64>,
    /// What a store over its budget may evict from a namespace that does not choose its own
    /// mode (SPEC 10.3). Default: [`Eviction::Never`], as Redis's `noeviction`.
    pub eviction: Eviction,
    /// How victims are picked. Default: [`Policy::S3Fifo`].
    pub policy: Policy,
}

/// The most shards a namespace may have.
pub const MAX_SHARDS: usize = 1 << 16;

/// The fewest entries of `max_entries` a shard is chosen for
/// ([`MemoryConfig::shards_per_namespace`]). Victims are chosen per shard, and a shard of a few
/// entries chooses them badly: on the first 100,000 requests of the OLTP trace at 1,000
/// entries, 16 shards hit 34.4% of the time, 32 shards 33.7%, 64 shards 33.1%, 256 shards
/// 31.8% and 1,024 shards 21.5%, below an exact LRU's 24.2%; at 100 entries, 256 shards hit
/// 4.6% against LRU's 5.0% (7.4% to 8.5% with 1 to 16 shards).
const ENTRIES_A_SHARD: u64 = 32;

/// The fewest bytes of `max_bytes` a shard is chosen for. Each shard that holds a key has a
/// table and an eviction order of its own, about 1 KiB charged to the budget, whatever its
/// entries cost: with 16 shards a namespace, a 16 KiB store of two namespaces held 6 entries
/// of 100 bytes and refused 5,793 of 20,000 writes for want of room; with 256 (the CPU count's
/// choice on a machine of 64 cores) it refused them all, and a 256 KiB store held 140 entries
/// where one of 4 shards held 805.
const BYTES_A_SHARD: u64 = 64 << 10;

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            shards: None,
            reap_interval: Some(Duration::from_millis(100)),
            max_bytes: None,
            max_entries: None,
            eviction: Eviction::default(),
            policy: Policy::default(),
        }
    }
}

impl MemoryConfig {
    /// Parses a `memory://` URL.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) for another scheme, a host or path, an unknown parameter, a
    /// bad value, or `eviction` / `policy` without `max_bytes` or `max_entries` (nothing would
    /// be evicted: a cache that forgot its budget would grow without one).
    ///
    /// ```
    /// use namestore::drivers::memory::{Eviction, MemoryConfig};
    ///
    /// let config = MemoryConfig::from_url("memory://?shards=8").unwrap();
    /// assert_eq!(config.shards, Some(8));
    /// assert!(MemoryConfig::from_url("memory://?shards=3").is_err());
    ///
    /// let cache = MemoryConfig::from_url("memory://?max_bytes=256MiB&eviction=any").unwrap();
    /// assert_eq!(cache.max_bytes, Some(256 << 20));
    /// assert_eq!(cache.eviction, Eviction::Any);
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("memory://")
            .ok_or_else(|| Error::invalid_url("a memory store URL starts with `memory://`"))?;
        let query = match rest.split_once('?') {
            Some(("", query)) => query,
            None if rest.is_empty() => "",
            _ => {
                return Err(Error::invalid_url(
                    "a memory store URL has no host or path: use `memory://`",
                ));
            }
        };
        let mut config = MemoryConfig::default();
        // A parameter that only a store with a budget uses, if the URL names one.
        let mut budget_only = None;
        for parameter in crate::query::parameters(query, "memory store")? {
            let (name, value) = (&*parameter.name, &*parameter.value);
            // Digits grouped as in Rust (`100_000`), as a size may be.
            let number = || {
                let digits = value.replace('_', "");
                (!value.starts_with('_'))
                    .then(|| digits.parse::<u64>().ok())
                    .flatten()
                    .ok_or_else(|| {
                        Error::invalid_url(format!(
                            "memory store parameter `{name}` takes a whole number such as 100000 or 100_000"
                        ))
                    })
            };
            match name {
                "shards" => config.shards = Some(usize::try_from(number()?).unwrap_or(usize::MAX)),
                "reap_interval_ms" => {
                    let ms = number()?;
                    config.reap_interval = (ms > 0).then(|| Duration::from_millis(ms));
                }
                "max_bytes" => {
                    config.max_bytes = Some(parse_size(value).map_err(|bad| {
                        Error::invalid_url(match bad {
                            BadSize::Malformed => format!(
                                "memory store parameter `max_bytes` takes a size such as 256MiB, 1.5gb or 1048576, not `{}`",
                                crate::error::shorten(value)
                            ),
                            BadSize::TooLarge => format!(
                                "memory store parameter `max_bytes` is more bytes than a 64-bit size holds: `{}`",
                                crate::error::shorten(value)
                            ),
                        })
                    })?);
                }
                "max_entries" => config.max_entries = Some(number()?),
                "eviction" => {
                    config.eviction = value.parse()?;
                    budget_only = Some("eviction");
                }
                "policy" => {
                    config.policy = value.parse()?;
                    budget_only = Some("policy");
                }
                other => {
                    return Err(Error::invalid_url(format!(
                        "unknown memory store parameter `{}` (known: shards, reap_interval_ms, max_bytes, max_entries, eviction, policy)",
                        crate::error::shorten(other)
                    )));
                }
            }
        }
        if let (Some(name), false) = (budget_only, config.bounded()) {
            // Without a budget nothing is ever evicted: a cache meant to be bounded that
            // forgot its budget would grow without one.
            return Err(Error::invalid_url(format!(
                "memory store parameter `{name}` applies to a store with a budget: add `max_bytes` or `max_entries`"
            )));
        }
        config.validate()?;
        Ok(config)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(shards) = self.shards
            && (!shards.is_power_of_two() || shards > MAX_SHARDS)
        {
            return Err(Error::invalid_url(format!(
                "memory store `shards` must be a power of two from 1 to {MAX_SHARDS}, not {shards}"
            )));
        }
        if self.max_bytes == Some(0) || self.max_entries == Some(0) {
            return Err(Error::invalid_url(
                "a memory store budget (`max_bytes`, `max_entries`) is more than zero",
            ));
        }
        Ok(())
    }

    /// Whether the store has a budget.
    pub fn bounded(&self) -> bool {
        self.max_bytes.is_some() || self.max_entries.is_some()
    }

    /// The shards each namespace gets: [`shards`](Self::shards) when given, else 4 × the CPU
    /// count, at least 16; and in a store with a budget, no more than leaves each shard 32
    /// entries of `max_entries` and 64 KiB of `max_bytes` (rounded down to a power of two, 1
    /// at least). Victims are chosen per shard, and each shard that holds a key has a table
    /// and an eviction order of its own, charged to the budget: a small budget split over
    /// many shards holds few entries and evicts them badly. A store of 1,000 entries gets 16
    /// shards on any machine, one of 64 KiB gets 1; from 16 MiB or 8,192 entries, the CPU
    /// count's choice up to 256 shards.
    ///
    /// ```
    /// use namestore::drivers::memory::MemoryConfig;
    ///
    /// let cache = MemoryConfig { max_bytes: Some(64 << 10), ..MemoryConfig::default() };
    /// assert_eq!(cache.shards_per_namespace(), 1);
    /// let cache = MemoryConfig { max_entries: Some(100), ..MemoryConfig::default() };
    /// assert_eq!(cache.shards_per_namespace(), 2);
    /// // Chosen by hand, as given.
    /// let cache = MemoryConfig { shards: Some(64), ..cache };
    /// assert_eq!(cache.shards_per_namespace(), 64);
    /// ```
    pub fn shards_per_namespace(&self) -> usize {
        if let Some(shards) = self.shards {
            return shards;
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let for_cpus = cpus
            .saturating_mul(4)
            .clamp(16, MAX_SHARDS)
            .next_power_of_two();
        // At most `max / each` shards, a power of two, 1 at least.
        let most = |max: Option<u64>, each: u64| {
            max.map_or(MAX_SHARDS, |max| {
                let shards = usize::try_from(max / each).unwrap_or(MAX_SHARDS);
                match shards.checked_ilog2() {
                    Some(log) => 1 << log.min(MAX_SHARDS.ilog2()),
                    None => 1,
                }
            })
        };
        for_cpus
            .min(most(self.max_entries, ENTRIES_A_SHARD))
            .min(most(self.max_bytes, BYTES_A_SHARD))
    }
}
