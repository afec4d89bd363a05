//! A byte stream with the relay's guards applied between pieces: the idle and
//! total timeouts (keep-alive comments count as activity), a cap on the size
//! of one event, and the gateway's shutdown.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Future, Stream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::provider::{ByteStream, ProviderError, TimeoutPhase};

/// The largest single SSE event accepted (bytes between two blank lines).
pub(super) const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

pub(super) struct Timed {
    inner: ByteStream,
    idle: Duration,
    deadline: Instant,
    sleep: Pin<Box<Sleep>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Bytes since the last event boundary, and whether the last byte was `\n`.
    open_event: usize,
    last_newline: bool,
    done: bool,
}

impl Timed {
    pub(super) fn new(
        inner: ByteStream,
        idle: Duration,
        deadline: Instant,
        shutdown: CancellationToken,
    ) -> Self {
        let first = deadline.min(Instant::now() + idle);
        Self {
            inner,
            idle,
            deadline,
            sleep: Box::pin(tokio::time::sleep_until(first)),
            shutdown: Box::pin(shutdown.cancelled_owned()),
            open_event: 0,
            last_newline: false,
            done: false,
        }
    }

    fn fail(&mut self, err: ProviderError) -> Poll<Option<Result<Bytes, ProviderError>>> {
        self.done = true;
        Poll::Ready(Some(Err(err)))
    }

    /// Tracks event boundaries (a blank line) across pieces.
    fn measure(&mut self, piece: &[u8]) -> bool {
        let mut prev = self.last_newline;
        for b in piece {
            if *b == b'\r' {
                // CRLF framing: a carriage return neither ends nor breaks a blank line.
                self.open_event += 1;
                continue;
            }
            let nl = *b == b'\n';
            if nl && prev {
                self.open_event = 0;
            } else {
                self.open_event += 1;
            }
            prev = nl;
        }
        self.last_newline = prev;
        self.open_event <= MAX_EVENT_BYTES
    }
}

impl Stream for Timed {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.shutdown.as_mut().poll(cx).is_ready() {
            return self.fail(ProviderError::Shutdown);
        }
        // The deadlines first, so an upstream that never pauses cannot outrun them.
        if self.sleep.as_mut().poll(cx).is_ready() {
            let phase = if Instant::now() >= self.deadline {
                TimeoutPhase::Total
            } else {
                TimeoutPhase::Idle
            };
            return self.fail(ProviderError::Timeout(phase));
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(piece))) => {
                if !self.measure(&piece) {
                    return self.fail(ProviderError::Oversized(MAX_EVENT_BYTES));
                }
                let next = self.deadline.min(Instant::now() + self.idle);
                self.sleep.as_mut().reset(next);
                Poll::Ready(Some(Ok(piece)))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed() -> Timed {
        Timed::new(
            Box::pin(futures_util::stream::empty()),
            Duration::from_secs(1),
            Instant::now() + Duration::from_secs(1),
            CancellationToken::new(),
        )
    }

    #[tokio::test]
    async fn event_sizes_are_tracked_across_pieces() {
        let mut t = timed();
        assert!(t.measure(b"data: 1\n"));
        assert!(t.measure(b"\ndata: 22"));
        assert_eq!(t.open_event, 8);
        assert!(t.measure(b"\n\n"));
        assert_eq!(t.open_event, 0);
        assert!(t.measure(b"data: 1\r\n\r\n"));
        assert_eq!(t.open_event, 0, "CRLF framing ends events too");
        let big = vec![b'x'; MAX_EVENT_BYTES];
        assert!(t.measure(&big));
        assert!(!t.measure(b"y"), "one byte past the cap without a boundary");
    }
}
