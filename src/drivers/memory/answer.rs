//! The future every memory call returns: its answer computed on first poll.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future that computes its answer on first poll. Computing inside `poll`, inlined into the
/// caller's state machine, hands the answer straight back; a stored answer
/// (`std::future::ready`) is moved out of the future with partial copies of the result's
/// padding bytes that stall store forwarding (measured: `exists` 25 ns with `ready`).
pub(super) struct Answer<F>(Option<F>);

impl<F> Unpin for Answer<F> {}

impl<T, F: FnOnce() -> T> Future for Answer<F> {
    type Output = T;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<T> {
        match self.0.take() {
            Some(compute) => Poll::Ready(compute()),
            None => panic!("a memory driver future was polled after it completed"),
        }
    }
}

#[inline(always)]
pub(super) fn answer<T>(compute: impl FnOnce() -> T) -> Answer<impl FnOnce() -> T> {
    Answer(Some(compute))
}
