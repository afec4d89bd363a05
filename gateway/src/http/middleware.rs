//! Middleware: request ids, the access log with per-route metrics, and auth.

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorLabel};
use crate::state::AppState;

/// The request's id (UUIDv7), in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(pub Uuid);

/// Response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-tollgate-request-id";

/// Gives every request an id and echoes it in `x-tollgate-request-id`.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = Uuid::now_v7();
    req.extensions_mut().insert(RequestId(id));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

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

/// Counts every request by route and status and logs it once: every error
/// Tollgate answers, with the method, path, status, error code and caller,
/// at `warn` for 5xx and `info` for 4xx; successes at `debug`. Streamed
/// bodies finish later; their end is logged by the request record. The
/// path is logged without its query string, which may carry anything.
pub async fn access_log(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let id = req.extensions().get::<RequestId>().map(|r| r.0);
    let resp = next.run(req).await;
    let status = resp.status();
    state
        .metrics
        .http_requests
        .with_label_values(&[route.as_str(), status.as_str()])
        .inc();
    let error = resp
        .extensions()
        .get::<ErrorLabel>()
        .map(|l| l.0)
        .unwrap_or("");
    let tag = resp.extensions().get::<CallerTag>();
    let caller = tag.map_or("anonymous", |t| t.kind);
    let key_id = tag.and_then(|t| t.key_id.as_deref()).unwrap_or("");
    let team_id = tag.and_then(|t| t.team_id.as_deref()).unwrap_or("");
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let status = status.as_u16();
    if status >= 500 {
        tracing::warn!(request_id = ?id, %method, path, route, status, error, caller, key_id, team_id, elapsed_ms, "request failed");
    } else if status >= 400 {
        tracing::info!(request_id = ?id, %method, path, route, status, error, caller, key_id, team_id, elapsed_ms, "request refused");
    } else {
        tracing::debug!(request_id = ?id, %method, path, route, status, caller, elapsed_ms, "request");
    }
    resp
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

/// Renders every error Tollgate itself makes (auth, validation, unknown
/// routes, body limits) in Anthropic's shape for Anthropic clients.
pub async fn anthropic_errors(req: Request, next: Next) -> Response {
    let anthropic = wants_anthropic(&req);
    let mut resp = next.run(req).await;
    if anthropic {
        if let Some(err) = resp.extensions_mut().remove::<ApiError>() {
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
            return out;
        }
    }
    resp
}
