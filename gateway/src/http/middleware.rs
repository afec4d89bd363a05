//! Middleware: request ids, the access log with per-route metrics, and auth.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;
use tower::{Layer, Service};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorLabel};
use crate::state::AppState;

/// The request's id (UUIDv7), in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(pub Uuid);

/// Response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-tollgate-request-id";

/// The pattern of the route a request matched (`/admin/keys/{id}`), carried
/// from the request to its response by [`CarryRoute`] so that [`edge`],
/// outside the router, can count and log by it.
#[derive(Debug, Clone)]
struct RouteLabel(MatchedPath);

/// Who made a request, as the access log names it: set on the response by
/// the auth middleware (absent when no credentials were accepted).
#[derive(Debug, Clone)]
pub struct CallerTag {
    /// `master` or `key`.
    pub kind: &'static str,
    /// The virtual key's id (not the key itself).
    pub key_id: Option<String>,
    /// The key's team.
    pub team_id: Option<String>,
}

impl CallerTag {
    fn of(caller: &Caller) -> Self {
        Self {
            kind: caller.label(),
            key_id: caller.key().map(|k| k.id.clone()),
            team_id: caller.key().map(|k| k.team_id.clone()),
        }
    }
}

/// What every request goes through outside the router, in one middleware
/// (each layer of the router's own is boxed and cloned for every request):
/// - an id (UUIDv7), in the request's extensions and echoed in
///   `x-tollgate-request-id` on every response, errors included;
/// - every error Tollgate itself makes (auth, validation, unknown routes,
///   body limits) rendered in Anthropic's shape for Anthropic clients;
/// - the access log: every request counted by route and status and logged
///   once: every error Tollgate answers, with the method, path, status,
///   error code and caller, at `warn` for 5xx and `info` for 4xx;
///   successes at `debug`. Streamed bodies finish later; their end is logged
///   by the request record. The path is logged without its query string,
///   which may carry anything.
pub async fn edge(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = Uuid::now_v7();
    req.extensions_mut().insert(RequestId(id));
    let anthropic = wants_anthropic(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    log_request(&state, &resp, started, id, &method, &path);
    let mut resp = if anthropic {
        anthropic_shape(resp)
    } else {
        resp
    };
    let mut text = Uuid::encode_buffer();
    if let Ok(v) = HeaderValue::from_str(id.hyphenated().encode_lower(&mut text)) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

/// The access log's line and count for one answered request.
fn log_request(
    state: &AppState,
    resp: &Response,
    started: Instant,
    id: Uuid,
    method: &Method,
    path: &str,
) {
    let route = resp
        .extensions()
        .get::<RouteLabel>()
        .map_or("unmatched", |r| r.0.as_str());
    let status = resp.status();
    state
        .metrics
        .http_requests
        .with_label_values(&[route, status.as_str()])
        .inc();
    let status = status.as_u16();
    let caller = resp.extensions().get::<CallerTag>();
    let who = caller.map_or("anonymous", |t| t.kind);
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if status < 400 {
        tracing::debug!(request_id = %id, %method, path, route, status, caller = who, elapsed_ms, "request");
        return;
    }
    let error = resp
        .extensions()
        .get::<ErrorLabel>()
        .map(|l| l.0)
        .unwrap_or("");
    let key_id = caller.and_then(|t| t.key_id.as_deref()).unwrap_or("");
    let team_id = caller.and_then(|t| t.team_id.as_deref()).unwrap_or("");
    if status >= 500 {
        tracing::warn!(request_id = %id, %method, path, route, status, error, caller = who, key_id, team_id, elapsed_ms, "request failed");
    } else {
        tracing::info!(request_id = %id, %method, path, route, status, error, caller = who, key_id, team_id, elapsed_ms, "request refused");
    }
}

/// Labels `to`, an answer made in place of `from`, with `from`'s route.
pub(super) fn keep_route(from: &Response, to: &mut Response) {
    if let Some(route) = from.extensions().get::<RouteLabel>() {
        to.extensions_mut().insert(route.clone());
    }
}

/// Puts the pattern of the route a request matched on its response (see
/// [`RouteLabel`]): a layer on the router's routes that boxes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct CarryRouteLayer;

impl<S> Layer<S> for CarryRouteLayer {
    type Service = CarryRoute<S>;

    fn layer(&self, inner: S) -> CarryRoute<S> {
        CarryRoute(inner)
    }
}

/// See [`CarryRouteLayer`].
#[derive(Debug, Clone)]
pub struct CarryRoute<S>(S);

impl<S> Service<Request> for CarryRoute<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Carried<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = req.extensions().get::<MatchedPath>().cloned();
        Carried {
            inner: self.0.call(req),
            route,
        }
    }
}

/// A route's answer, labelled with its pattern when it has one.
pub struct Carried<F> {
    inner: F,
    route: Option<MatchedPath>,
}

impl<F, E> Future for Carried<F>
where
    F: Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut resp = ready!(Pin::new(&mut this.inner).poll(cx))?;
        if let Some(route) = this.route.take() {
            resp.extensions_mut().insert(RouteLabel(route));
        }
        Poll::Ready(Ok(resp))
    }
}

/// Rejects requests without valid credentials; puts the [`Caller`](crate::auth::Caller)
/// in the request's extensions.
pub async fn require_auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match state.auth.authenticate(req.headers()).await {
        Ok(caller) => {
            let tag = CallerTag::of(&caller);
            req.extensions_mut().insert(caller);
            let mut resp = next.run(req).await;
            resp.extensions_mut().insert(tag);
            resp
        }
        Err(e) => e.into_response(),
    }
}

/// Lets only the master key through (the admin API).
pub async fn require_master(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match state.auth.authenticate(req.headers()).await {
        Ok(Caller::Master) => {
            let mut resp = next.run(req).await;
            resp.extensions_mut().insert(CallerTag::of(&Caller::Master));
            resp
        }
        Ok(Caller::Key(_)) => ApiError::master_only().into_response(),
        Err(e) => e.into_response(),
    }
}

/// Whether a request comes from an Anthropic client: the Messages paths, or
/// any path with an `anthropic-version` header (Claude Code's model list).
/// Responses API clients get OpenAI's error shape, as OpenAI answers them.
pub fn wants_anthropic(req: &Request) -> bool {
    req.uri().path().starts_with("/v1/messages") || req.headers().contains_key("anthropic-version")
}

/// An error Tollgate itself made, rendered in Anthropic's shape (with the
/// headers that say why and how long to wait); any other response as it is.
fn anthropic_shape(mut resp: Response) -> Response {
    let Some(err) = resp.extensions_mut().remove::<ApiError>() else {
        return resp;
    };
    let mut out = err.into_anthropic_response();
    for (name, value) in resp.headers() {
        let n = name.as_str();
        if n.starts_with("x-tollgate-")
            || n.starts_with("x-ratelimit-")
            || n == "retry-after"
            || n == "connection"
        {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
