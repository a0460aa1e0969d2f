//! Which keys of a namespace a store may evict on its own (SPEC 10.3): a namespace's eviction
//! mode, shared by the drivers (`Driver::eviction`), namespaces and the memory store.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// Which keys of a namespace a memory store over its budget may evict (SPEC 10.3), as Redis's
/// `maxmemory-policy` says store-wide.
///
/// The store has a default
/// ([`MemoryBuilder::eviction`](crate::drivers::memory::MemoryBuilder::eviction), or
/// `?eviction=` in its URL); a namespace may choose its own with
/// [`MemoryDriver::namespace_with_eviction`](crate::MemoryDriver::namespace_with_eviction).
/// Without a budget nothing is ever evicted, whatever the mode. Any namespace tells its own
/// with [`Namespace::eviction`](crate::Namespace::eviction) ([`Eviction::Never`] on a store
/// that evicts nothing on its own).
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
