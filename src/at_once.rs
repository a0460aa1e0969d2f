//! Calls on a driver that answers at once ([`Driver::answers_at_once`](crate::Driver)):
//! computed on first poll, with the driver's future built and polled in place on that poll's
//! stack, so a layer around the driver (a namespace, the telemetry layer) adds no state
//! machine, and no move of the call's arguments, of its own.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use crate::Result;
use crate::error::Error;

pin_project_lite::pin_project! {
    /// The future of a call: computed on first poll (on a driver that answers at once), or
    /// the driver's wait.
    #[project = CallProj]
    pub(crate) enum Call<A, B> {
        Now { now: Lazy<A> },
        Later { #[pin] later: B },
    }
}

impl<T, A: FnOnce() -> T, B: Future<Output = T>> Future for Call<A, B> {
    type Output = T;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.project() {
            CallProj::Now { now } => now.poll(),
            CallProj::Later { later } => later.poll(cx),
        }
    }
}

/// A computation run on first poll.
pub(crate) struct Lazy<F>(pub(crate) Option<F>);

impl<T, F: FnOnce() -> T> Lazy<F> {
    #[inline(always)]
    fn poll(&mut self) -> Poll<T> {
        match self.0.take() {
            Some(compute) => Poll::Ready(compute()),
            None => panic!("a namestore future was polled after it completed"),
        }
    }
}

/// Polls the future of a driver that answers at once, in place.
#[inline(always)]
pub(crate) fn at_once<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => Err(pending()),
    }
}

#[cold]
fn pending() -> Error {
    Error::backend("a driver that answers at once (Driver::answers_at_once) left a call pending")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_answer_from_a_driver_that_answers_at_once_is_an_error() {
        let answer = at_once(std::future::pending::<Result<()>>());
        assert_eq!(answer.unwrap_err().kind(), crate::ErrorKind::Backend);
        assert_eq!(at_once(std::future::ready(Ok(7))).unwrap(), 7);
    }
}
