//! Background reclamation of expired keys: rounds on the reclaimer thread every file shares,
//! each walking the expiry index (keys by deadline), never the data, and deleting what is due
//! through the committer.

use std::sync::Arc;

use redb::ReadableTable;

use super::Inner;
use super::commit::{self, Writer};
use super::layout::{EXPIRY, PAGE, now_ms};
use super::store::{Store, storage};
use crate::Result;

/// The most pages of expired keys one round reclaims.
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

/// Whether a key's deadline has passed: the expiry index's first entry, read in a read
/// transaction, which writes nothing. A tick that queued its write whatever it would find
/// committed an empty transaction, and on a durable store flushed the disk, every tick of a
/// store with nothing to reclaim. When the index cannot be read, the write goes ahead and
/// meets the failure (a file to open again, a damaged one) as every write does.
fn due(store: &Store) -> bool {
    let first = store.contain(|| {
        let db = store.database()?;
        let txn = store.redb(db.begin_read())?;
        let expiry = store.redb(txn.open_table(EXPIRY))?;
        let first = expiry.first().map_err(storage)?;
        Ok(first.map(|(key, _)| key.value().0))
    });
    match first {
        Ok(Some(deadline)) => deadline <= now_ms(),
        Ok(None) => false,
        Err(_) => true,
    }
}

/// One round on the background reclaimer's thread ([`crate::drivers::reaper`]): when a key's
/// deadline has passed, deletes what is due through the committer. The round lets go of the
/// driver's handle first and holds only the queue and the store, so dropping the driver's
/// last handle closes the file after at most the reclamation in flight.
impl crate::drivers::reaper::Reclaim for Inner {
    fn round(self: Arc<Self>) {
        let Some(jobs) = self.jobs.clone() else {
            return;
        };
        let store = Arc::clone(&self.store);
        drop(self);
        if !due(&store) {
            return;
        }
        // Keep going while whole pages come back, up to a bound: a mass expiry is reclaimed in
        // a few rounds, and a damaged expiry index that keeps answering whole pages cannot
        // keep the committer busy for ever.
        for _ in 0..PAGES_PER_TICK {
            if !matches!(commit::write(&store, Some(&jobs), reclaim), Ok(PAGE)) {
                break;
            }
        }
    }
}
