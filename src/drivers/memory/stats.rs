//! What a memory store reports of itself: its usage against its budget, and each namespace's
//! keys, charge and counts of evicted and expired keys.

use super::eviction::Eviction;
use crate::name::NamespaceName;

/// What a memory store's entries cost against its budget:
/// [`MemoryDriver::usage`](super::MemoryDriver::usage).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryUsage {
    /// Bytes charged to the stored entries and the driver's tables and queues (SPEC 10.2), and
    /// to writes in flight.
    pub bytes: u64,
    /// Entries stored, expired ones not yet reclaimed included.
    pub entries: u64,
    /// The budget in bytes, if the store has one.
    pub max_bytes: Option<u64>,
    /// The cap on entries, if the store has one.
    pub max_entries: Option<u64>,
}

/// One namespace of a memory store:
/// [`MemoryDriver::namespace_stats`](super::MemoryDriver::namespace_stats).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NamespaceStats {
    /// The namespace.
    pub name: NamespaceName,
    /// Its live keys.
    pub keys: u64,
    /// In a store with a budget, the bytes the namespace is charged (SPEC 10.2): its
    /// entries' keys, values and per-entry overhead (expired entries not yet reclaimed
    /// included), its shards' tables and eviction orders, and its own fixed part. With no
    /// write in flight, the namespaces' bytes add up to the store's
    /// [`usage`](super::MemoryDriver::usage). `None` without a budget.
    pub bytes: Option<u64>,
    /// What the store may evict from it over a budget.
    pub eviction: Eviction,
    /// Keys evicted to keep the budget (SPEC 10.7).
    pub evicted: u64,
    /// Keys removed after they expired, by a write that found them or in the background
    /// (SPEC 10.7).
    pub expired: u64,
}
