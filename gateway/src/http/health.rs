//! Probes and metrics: `/` (reachability, for clients that probe it),
//! `/healthz` (the process answers), `/readyz` (it takes
//! new work), `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::auth::Authenticator;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::state::Readiness;

/// `GET /` and `HEAD /`: a reachability probe (Claude Code sends one at start).
pub async fn root() -> impl IntoResponse {
    Json(json!({"name": "tollgate", "status": "ok"}))
}

pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(readiness): State<Readiness>) -> impl IntoResponse {
    if readiness.is_draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        )
    } else {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    }
}

/// `GET /metrics`: open, or behind `[metrics] token` when one is set.
pub async fn metrics(
    State(metrics): State<Arc<Metrics>>,
    State(auth): State<Arc<Authenticator>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    auth.may_scrape(&headers)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    ))
}
