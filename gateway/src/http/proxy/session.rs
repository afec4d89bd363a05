//! The agent session a proxied request belongs to, read once from its
//! headers and parsed body (see [`router::session`] for the order of
//! precedence, the bounds, and why the caller's own key is never one), and
//! carried into every attempt's ledger row.

use std::sync::Arc;

use axum::http::HeaderMap;
use router::dispatch::ClientRequest;

/// The session of `request`, sent with `headers`, or `None`.
pub(super) fn of(headers: &HeaderMap, request: &ClientRequest) -> Option<Arc<str>> {
    let credential = crate::auth::presented_token(headers);
    let session = router::session::extract(headers, request.body(), credential)?;
    tracing::debug!(session = %session.id, source = ?session.source, "request session");
    Some(session.id.into())
}
