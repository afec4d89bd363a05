//! One connection's activity: whether a request is in progress, and when
//! the connection must be given up if none is (the header read and idle
//! timeouts). The watchdog in `mod.rs` acts on what [`Activity::expired`]
//! says.
//!
//! A connection is always in one of three phases:
//! - **busy**: one request or more in progress, from its head to the end
//!   (or drop) of its response. No deadline here: the body read and write
//!   timeouts, and the upstream's own, bound a request.
//! - **head**: a request head is arriving. A new connection starts here (its
//!   first request must arrive whole within `header_read_timeout` of the
//!   accept), and an idle HTTP/1 connection enters it at the first byte
//!   of its next request.
//! - **idle**: no request in progress and nothing of a next one received,
//!   for up to `idle_timeout`.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::Version;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::ConnectionLimits;

/// What ran out on a connection with no request in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    /// A request head did not arrive whole in time: the connection is
    /// closed outright.
    Head,
    /// Nothing arrived for `idle_timeout`: the connection is shut down
    /// gracefully (an HTTP/2 client is told with GOAWAY).
    Idle,
    /// A connection told to shut down gracefully did not finish doing so
    /// within `header_read_timeout`: it is closed outright.
    Closing,
}

impl Expiry {
    /// The reason, for logs.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Expiry::Head => "request head not received within server.header_read_timeout",
            Expiry::Idle => "idle for server.idle_timeout",
            Expiry::Closing => "did not close within server.header_read_timeout of being asked",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Busy(usize),
    Head(Instant),
    Idle(Instant),
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// HTTP/2: bytes on an idle connection (pings, window updates) do not
    /// start a request head, so reads do not end idleness.
    h2: bool,
    /// Graceful shutdown has begun.
    closing: bool,
}

/// A connection's activity, shared by its IO (reads), its service (requests
/// and their responses) and its watchdog.
#[derive(Debug)]
pub(super) struct Activity {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    state: Mutex<State>,
    /// Set while idle on HTTP/1, so that reads, the hot path, look at the
    /// state only when a byte could start a request head.
    watch_reads: AtomicBool,
    changed: Notify,
}

impl Activity {
    /// A connection accepted just now: its first request head is due
    /// within `header_read_timeout`.
    pub(super) fn new(limits: &ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            state: Mutex::new(State {
                phase: Phase::Head(Instant::now()),
                h2: false,
                closing: false,
            }),
            watch_reads: AtomicBool::new(false),
            changed: Notify::new(),
        })
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state);
        let watch = matches!(state.phase, Phase::Idle(_)) && !state.h2;
        self.watch_reads.store(watch, Ordering::Relaxed);
        drop(state);
        self.changed.notify_one();
    }

    /// Bytes arrived from the client.
    pub(super) fn bytes_read(&self) {
        if !self.watch_reads.load(Ordering::Relaxed) {
            return;
        }
        self.update(|s| {
            if let Phase::Idle(_) = s.phase {
                s.phase = Phase::Head(Instant::now());
            }
        });
    }

    /// A request's head has arrived: it is in progress until the returned
    /// guard is dropped (with its response body).
    pub(super) fn request_started(self: &Arc<Self>, version: Version) -> RequestGuard {
        self.update(|s| {
            s.h2 |= version == Version::HTTP_2;
            s.phase = match s.phase {
                Phase::Busy(n) => Phase::Busy(n + 1),
                Phase::Head(_) | Phase::Idle(_) => Phase::Busy(1),
            };
        });
        RequestGuard(self.clone())
    }

    fn request_ended(&self) {
        self.update(|s| {
            s.phase = match s.phase {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ => Phase::Idle(Instant::now()),
            };
        });
    }

    /// Graceful shutdown has begun: an idle connection now gets
    /// `header_read_timeout`, not `idle_timeout`, to finish closing.
    pub(super) fn closing(&self) {
        self.update(|s| {
            s.closing = true;
            if let Phase::Idle(_) = s.phase {
                s.phase = Phase::Idle(Instant::now());
            }
        });
    }

    /// When the connection expires as things stand, and why; `None` while
    /// a request is in progress.
    fn deadline(&self) -> Option<(Instant, Expiry)> {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match s.phase {
            Phase::Busy(_) => None,
            Phase::Head(since) => Some((since + self.header_read_timeout, Expiry::Head)),
            Phase::Idle(since) if s.closing => {
                Some((since + self.header_read_timeout, Expiry::Closing))
            }
            Phase::Idle(since) => Some((since + self.idle_timeout, Expiry::Idle)),
        }
    }

    /// Resolves when the connection's current deadline passes with no
    /// request in progress.
    pub(super) async fn expired(&self) -> Expiry {
        loop {
            // Made before the deadline is read: a change in between leaves
            // a permit, and the loop reads the deadline again.
            let changed = self.changed.notified();
            match self.deadline() {
                None => changed.await,
                Some((at, _)) => {
                    tokio::select! {
                        () = changed => {}
                        () = tokio::time::sleep_until(at) => {
                            if let Some((at, why)) = self.deadline() {
                                if at <= Instant::now() {
                                    return why;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A request in progress on its connection, until dropped.
#[derive(Debug)]
pub(super) struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A response body that keeps its request in progress until it is
/// finished or dropped.
pub(super) struct Tracked<B> {
    inner: B,
    guard: Option<RequestGuard>,
}

impl<B> Tracked<B> {
    pub(super) fn new(inner: B, guard: RequestGuard) -> Self {
        Self {
            inner,
            guard: Some(guard),
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            // Finished: the connection may go idle before hyper drops it.
            this.guard.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
