//! Background reclamation of expired keys: a thread that walks the expiry index (keys by
//! deadline), never the data, and deletes what is due through the committer.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redb::ReadableTable;

use super::Inner;
use super::commit::{self, Writer};
use super::layout::PAGE;
use super::store::storage;
use crate::Result;

/// The most pages of expired keys one tick reclaims.
const PAGES_PER_TICK: usize = 64;

/// Deletes up to [`PAGE`] keys whose deadline has passed; returns how many.
pub(super) fn reclaim(writer: &mut Writer<'_>) -> Result<usize> {
    let due: Vec<Vec<u8>> = writer
        .expiry
        .range::<(u64, &[u8])>(..(writer.now + 1, &[][..]))
        .map_err(storage)?
        .take(PAGE)
        .map(|entry| entry.map(|(k, _)| k.value().1.to_vec()).map_err(storage))
        .collect::<Result<_>>()?;
    for key in &due {
        writer.remove(key)?;
    }
    Ok(due.len())
}

/// Reclaims every `interval` until the driver is dropped (`stopped` closes with it). The
/// thread holds no handle on the driver between rounds, and during one only the queue and the
/// store: dropping the driver's last handle closes the file, after at most the reclamation in
/// flight.
pub(super) fn reclaim_loop(inner: Weak<Inner>, stopped: mpsc::Receiver<()>, interval: Duration) {
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
        let Some((store, jobs)) = inner
            .upgrade()
            .and_then(|inner| Some((Arc::clone(&inner.store), inner.jobs.clone()?)))
        else {
            return;
        };
        // Keep going while whole pages come back, up to a bound: a mass expiry is reclaimed in
        // a few ticks, and a damaged expiry index that keeps answering whole pages cannot
        // keep the committer busy for ever.
        for _ in 0..PAGES_PER_TICK {
            if !matches!(commit::write(&store, Some(&jobs), reclaim), Ok(PAGE)) {
                break;
            }
        }
    }
}
