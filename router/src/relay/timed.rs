//! A byte stream with the relay's guards applied between pieces: the idle and
//! total timeouts (keep-alive comments count as activity) and the gateway's
//! shutdown.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Future, Stream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::provider::{ByteStream, ProviderError, TimeoutPhase};

pub(super) struct Timed {
    inner: ByteStream,
    idle: Duration,
    deadline: Instant,
    sleep: Pin<Box<Sleep>>,
    /// When the last piece arrived (the idle timeout counts from it).
    last_piece: Instant,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Pieces passed since the guards were last checked.
    run: u32,
    done: bool,
}

impl Timed {
    pub(super) fn new(
        inner: ByteStream,
        idle: Duration,
        deadline: Instant,
        shutdown: CancellationToken,
    ) -> Self {
        let now = Instant::now();
        let first = deadline.min(now + idle);
        Self {
            inner,
            idle,
            deadline,
            sleep: Box::pin(tokio::time::sleep_until(first)),
            last_piece: now,
            shutdown: Box::pin(shutdown.cancelled_owned()),
            run: 0,
            done: false,
        }
    }

    fn fail(&mut self, err: ProviderError) -> Poll<Option<Result<Bytes, ProviderError>>> {
        self.done = true;
        Poll::Ready(Some(Err(err)))
    }
}

/// How many pieces in a row may pass without the guards being checked (they
/// are always checked before the stream waits).
const UNCHECKED_RUN: u32 = 64;

impl Timed {
    /// The guards: the shutdown, then the timeouts (the idle one counts from
    /// the last piece; the timer moves only when it fires, which keeps the
    /// timer wheel off the per-piece path).
    fn check(&mut self, cx: &mut Context<'_>) -> Option<ProviderError> {
        self.run = 0;
        if self.shutdown.as_mut().poll(cx).is_ready() {
            return Some(ProviderError::Shutdown);
        }
        while self.sleep.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let due = self.deadline.min(self.last_piece + self.idle);
            if now >= due {
                let phase = if now >= self.deadline {
                    TimeoutPhase::Total
                } else {
                    TimeoutPhase::Idle
                };
                return Some(ProviderError::Timeout(phase));
            }
            self.sleep.as_mut().reset(due);
        }
        None
    }
}

impl Stream for Timed {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        // An upstream that never pauses is checked every so many pieces, so
        // it cannot outrun the deadlines.
        if self.run >= UNCHECKED_RUN {
            if let Some(err) = self.check(cx) {
                return self.fail(err);
            }
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(piece))) => {
                self.last_piece = Instant::now();
                self.run += 1;
                Poll::Ready(Some(Ok(piece)))
            }
            Poll::Pending => match self.check(cx) {
                Some(err) => self.fail(err),
                None => Poll::Pending,
            },
            other => other,
        }
    }
}
