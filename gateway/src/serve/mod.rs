//! Serving connections: the accept loop, each connection's HTTP/1.1 or
//! HTTP/2 (h2c, prior knowledge) with hyper, and the limits a client cannot
//! outlast: `server.max_connections`, and the header read, idle and write
//! timeouts. (The body read timeout is a middleware of the router's, which
//! knows the client's wire format for its 408.)
//!
//! - this file: accepting, serving one connection, draining at shutdown.
//! - `conn.rs`: a connection's activity (request in progress, or the head
//!   or idle deadline it must meet).
//! - `io.rs`: the client socket with its write timeout.
//!
//! Over `max_connections`, accepting waits: further clients wait in the
//! listen backlog (and connect or time out as their own connect timeout
//! says) until a connection closes. A connection that is accepted is
//! served whole, never answered with a bare close.

mod conn;
mod io;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus::IntGauge;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::config::ConnectionLimits;
use conn::{Activity, Tracked};
use io::ClientIo;

/// Serves `router` on `listener` until `drain` is cancelled, then stops
/// accepting, shuts every connection down gracefully (in-flight requests
/// finish, idle connections close, HTTP/2 clients get GOAWAY) and returns
/// once the last has closed. Dropped, it closes every connection at once.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    open: IntGauge,
    drain: CancellationToken,
) {
    let builder = Arc::new(builder());
    // Each connection holds a permit: at the limit, accepting waits.
    let permits = Arc::new(Semaphore::new(limits.max_connections as usize));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = drain.cancelled() => break,
            Some(done) = connections.join_next() => ended(done),
            accepted = accept(&listener, &permits) => {
                let (permit, tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                };
                let connection = Connection {
                    permit,
                    open: Open::count(&open),
                    limits,
                    drain: drain.clone(),
                };
                connections.spawn(connection.serve(tcp, peer, builder.clone(), router.clone()));
            }
        }
    }
    // New connections are refused from here on.
    drop(listener);
    while let Some(done) = connections.join_next().await {
        ended(done);
    }
}

/// The next connection, once one more may be open.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> std::io::Result<(OwnedSemaphorePermit, TcpStream, SocketAddr)> {
    let permit = permits
        .clone()
        .acquire_owned()
        .await
        .map_err(std::io::Error::other)?;
    let (tcp, peer) = listener.accept().await?;
    Ok((permit, tcp, peer))
}

/// A connection's task has ended; only a panic is worth a word.
fn ended(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!(error = %e, "a connection's task panicked");
        }
    }
}

/// hyper's connection settings: HTTP/1.1 and HTTP/2, chosen per connection
/// by its first bytes. hyper's own HTTP/1 header timeout is off: it runs
/// from the end of each response, so it would close idle keep-alive
/// connections after `header_read_timeout` whatever `idle_timeout` says;
/// [`conn::Activity`] times heads and idleness apart instead.
fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// An accept error. Those of one connection are passed over; others (out of
/// file descriptors) are logged, and accepting pauses a moment so that
/// connections can close, rather than spinning.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept connections; retrying in 1s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One connection counted in `tollgate_connections_open`, until dropped.
struct Open(IntGauge);

impl Open {
    fn count(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// An accepted connection, with what it holds until it closes.
struct Connection {
    permit: OwnedSemaphorePermit,
    open: Open,
    limits: ConnectionLimits,
    drain: CancellationToken,
}

impl Connection {
    async fn serve(
        self,
        tcp: TcpStream,
        peer: SocketAddr,
        builder: Arc<auto::Builder<TokioExecutor>>,
        router: Router,
    ) {
        // Dropped last, after the socket: a permit back means a connection
        // closed.
        let Connection {
            permit: _permit,
            open: _open,
            limits,
            drain,
        } = self;
        // Streamed events are small writes: with Nagle's algorithm on, each
        // could wait for the client's delayed ACK (~40 ms).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let activity = Activity::new(&limits);
        let io = TokioIo::new(ClientIo::new(tcp, activity.clone(), limits.write_timeout));
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let guard = requests.request_started(req.version());
            let router = router.clone();
            async move {
                let resp = router.oneshot(req.map(Body::new)).await?;
                Ok::<_, Infallible>(resp.map(|body| Tracked::new(body, guard)))
            }
        });
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let mut draining = false;
        loop {
            tokio::select! {
                served = conn.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    break;
                }
                why = activity.expired() => match why {
                    conn::Expiry::Idle if !draining => {
                        tracing::debug!(%peer, why = why.as_str(), "closing the connection");
                        draining = true;
                        activity.closing();
                        conn.as_mut().graceful_shutdown();
                    }
                    _ => {
                        tracing::debug!(%peer, why = why.as_str(), "closing the connection");
                        break;
                    }
                },
                () = drain.cancelled(), if !draining => {
                    draining = true;
                    activity.closing();
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
