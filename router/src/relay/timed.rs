//! A byte stream with the idle and total timeouts applied between pieces, so
//! keep-alive comments count as activity.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Future, Stream};
use tokio::time::{Instant, Sleep};

use crate::provider::{ByteStream, ProviderError, TimeoutPhase};

pub(super) struct Timed {
    inner: ByteStream,
    idle: Duration,
    deadline: Instant,
    sleep: Pin<Box<Sleep>>,
    fired: bool,
}

impl Timed {
    pub(super) fn new(inner: ByteStream, idle: Duration, deadline: Instant) -> Self {
        let first = deadline.min(Instant::now() + idle);
        Self {
            inner,
            idle,
            deadline,
            sleep: Box::pin(tokio::time::sleep_until(first)),
            fired: false,
        }
    }
}

impl Stream for Timed {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.fired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = self.inner.as_mut().poll_next(cx) {
            let next = self.deadline.min(Instant::now() + self.idle);
            self.sleep.as_mut().reset(next);
            return Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.fired = true;
            let phase = if Instant::now() >= self.deadline {
                TimeoutPhase::Total
            } else {
                TimeoutPhase::Idle
            };
            return Poll::Ready(Some(Err(ProviderError::Timeout(phase))));
        }
        Poll::Pending
    }
}
