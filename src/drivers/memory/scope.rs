//! [`MemoryScope`]: a handle on one namespace's table.

use std::fmt;
use std::sync::atomic::Ordering;

use super::table::Table;

/// A memory namespace: its table. Each scope counts as a handle on the table; when the last
/// one is dropped and the table holds no entry, the table is freed.
pub struct MemoryScope(pub(super) Table);

impl MemoryScope {
    /// Has the namespace's evictions and expirations exported as metrics: it is opened
    /// through the telemetry layer.
    #[cfg(feature = "metrics")]
    pub(crate) fn export_removals(&self) {
        self.0.meta.exports.store(true, Ordering::Relaxed);
    }
}

impl Clone for MemoryScope {
    fn clone(&self) -> Self {
        self.0.meta.handles.fetch_add(1, Ordering::SeqCst);
        MemoryScope(self.0.clone())
    }
}

impl Drop for MemoryScope {
    fn drop(&mut self) {
        if self.0.meta.handles.fetch_sub(1, Ordering::SeqCst) == 1
            && let Some(registry) = self.0.meta.registry.upgrade()
        {
            registry.release(&self.0);
        }
    }
}

impl fmt::Debug for MemoryScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryScope")
            .field("shards", &self.0.shard_count())
            .finish()
    }
}
