//! Compaction: the file's free pages given back to the filesystem ([`RedbDriver::compact`]).
//!
//! [`RedbDriver::compact`]: super::RedbDriver::compact

use std::time::Duration;

use super::store::{Store, storage};
use crate::{Error, Result};

/// How long a compaction waits for the reads in flight to let go of the file.
const READERS: Duration = Duration::from_secs(10);

/// What [`RedbDriver::compact`](super::RedbDriver::compact) did: the file's size, in bytes,
/// before and after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Compaction {
    /// The file's size before the compaction.
    pub before: u64,
    /// The file's size after it.
    pub after: u64,
}

/// Compacts the file, on the committer's thread between two commits (no write in flight);
/// reads wait meanwhile ([`Store::alone`]).
pub(super) fn compact(store: &Store) -> Result<Compaction> {
    let size = || {
        std::fs::metadata(&store.config.path)
            .map(|meta| meta.len())
            .map_err(|e| Error::backend(format!("cannot read the file's size: {e}")))
    };
    let before = size()?;
    store.contain(|| {
        store.alone(READERS, |db| {
            db.compact().map_err(storage)?;
            Ok(())
        })
    })?;
    let after = size()?;
    tracing::info!(
        target: "namestore::redb",
        path = %store.config.path.display(),
        before,
        after,
        "compacted the redb file (sizes in bytes)"
    );
    Ok(Compaction { before, after })
}
