//! The drivers that ship with namestore, one module each.

pub mod memory;

pub(crate) mod reaper;

#[cfg(feature = "redis")]
pub mod redis;

#[cfg(feature = "redb")]
pub mod redb;

/// Flattens a stream of pages (`Ok` holding several items, or an error) into a stream of
/// items, for the network and file drivers' listings.
#[cfg(any(feature = "redis", feature = "redb"))]
pub(crate) fn items<T: Send + 'static>(
    pages: impl futures_core::Stream<Item = crate::Result<Vec<T>>> + Send + 'static,
) -> impl futures_core::Stream<Item = crate::Result<T>> + Send + 'static {
    use futures_util::StreamExt;
    pages.flat_map(|page| match page {
        Ok(items) => futures_util::stream::iter(items.into_iter().map(Ok)).left_stream(),
        Err(error) => futures_util::stream::iter([Err(error)]).right_stream(),
    })
}
