//! How namestore lays its data out in a redb file, and the wall clock its deadlines use.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::TableDefinition;

use crate::ttl::Ttl;

/// Key → 8-byte deadline (Unix ms, big-endian; 0 for none) followed by the value.
pub(super) const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("namestore.data");
/// (deadline, key) → (): the keys with a TTL, by deadline.
pub(super) const EXPIRY: TableDefinition<(u64, &[u8]), ()> =
    TableDefinition::new("namestore.expiry");
/// Marks a file as namestore's, with its format version.
pub(super) const META: TableDefinition<&str, &str> = TableDefinition::new("namestore.meta");
pub(super) const FORMAT: &str = "namestore-redb-1";

/// Keys per page of `scan`, per transaction of `clear` and per reclamation step.
pub(super) const PAGE: usize = 1000;

/// Unix milliseconds that never go back within the process: deadlines are wall-clock times
/// (a TTL keeps running while the process is down), but a liveness decision must never be
/// undone by the system clock stepping back between two calls.
pub(super) fn now_ms() -> u64 {
    static LATEST: AtomicU64 = AtomicU64::new(0);
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    LATEST.fetch_max(wall, Ordering::AcqRel).max(wall)
}

pub(super) fn deadline(ttl: Option<Ttl>, now: u64) -> u64 {
    ttl.map_or(0, |ttl| now.saturating_add(ttl.as_millis()))
}

pub(super) fn encode(deadline: u64, value: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(8 + value.len());
    stored.extend_from_slice(&deadline.to_be_bytes());
    stored.extend_from_slice(value);
    stored
}

pub(super) fn decode(stored: &[u8]) -> (u64, &[u8]) {
    let (deadline, value) = stored.split_at(8.min(stored.len()));
    (
        u64::from_be_bytes(deadline.try_into().unwrap_or([0; 8])),
        value,
    )
}

pub(super) fn live(deadline: u64, now: u64) -> bool {
    deadline == 0 || now < deadline
}
