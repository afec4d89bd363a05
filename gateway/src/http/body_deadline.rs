//! The request body's deadline: a body that has not arrived whole within
//! `server.body_read_timeout` of its head fails to read, and whatever the
//! handler made of that, the client gets 408 in its own wire format
//! (rendered by the middleware outside this one) with `Connection: close`,
//! and the connection closes. Every body reader is covered: the proxy's
//! doors, token counting and the admin API alike.

use std::error::Error;
use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;

/// Bounds how long the request's body may take to arrive; answers 408 when
/// it did not arrive in time.
pub async fn body_deadline(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let version = req.version();
    let timed_out = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + timeout;
    let req = req.map(|inner| {
        Body::new(Deadline {
            inner,
            deadline,
            sleep: None,
            timed_out: timed_out.clone(),
        })
    });
    let answered = next.run(req).await;
    if !timed_out.load(Ordering::Relaxed) {
        return answered;
    }
    let mut resp = ApiError::request_timeout(timeout).into_response();
    // Counted and logged under the route the request was for.
    super::middleware::keep_route(&answered, &mut resp);
    // The rest of the body may still be on its way: the connection cannot
    // carry another request. HTTP/2 ends just this stream.
    if version < Version::HTTP_2 {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// The body did not arrive in time.
#[derive(Debug)]
struct TimedOut;

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request body did not arrive within server.body_read_timeout")
    }
}

impl Error for TimedOut {}

/// A request body that fails once its deadline passes unfinished.
struct Deadline {
    inner: Body,
    deadline: Instant,
    /// Made the first time the body has to wait: a body that is already
    /// there costs no timer.
    sleep: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = Box<dyn Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.timed_out.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(Box::new(TimedOut))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
