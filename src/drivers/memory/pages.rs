//! The streams of a memory store's listings: a scan's pages, one shard each, and its
//! namespaces.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::table::Table;
use crate::Result;
use crate::glob::Pattern;
use crate::name::{NamespaceInfo, NamespaceName};

/// The pages of a memory scan: one shard's matching keys per page.
pub(super) struct ScanPages {
    pub(super) table: Table,
    pub(super) pattern: Pattern,
    pub(super) next_shard: usize,
}

impl Stream for ScanPages {
    type Item = Result<Vec<String>>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        while self.next_shard < self.table.shard_count() {
            let page = self.table.scan_shard(self.next_shard, &self.pattern);
            self.next_shard += 1;
            if !page.is_empty() {
                return Poll::Ready(Some(Ok(page)));
            }
        }
        Poll::Ready(None)
    }
}

/// The namespaces of a memory driver: the tables registered when the stream was made, in
/// name order, each counted when reached.
pub(super) struct NamespacePages {
    pub(super) tables: std::vec::IntoIter<(NamespaceName, Table)>,
}

impl Stream for NamespacePages {
    type Item = Result<NamespaceInfo>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        for (name, table) in self.tables.by_ref() {
            let keys = table.live();
            if keys > 0 {
                return Poll::Ready(Some(Ok(NamespaceInfo::new(name, keys))));
            }
        }
        Poll::Ready(None)
    }
}
