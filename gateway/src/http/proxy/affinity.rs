//! Affinity around the dispatch: before it, the candidate that served the
//! session's previous request on the route (one read of the shared memory
//! when `[redis]` is set); after it, the outcome counted in
//! `tollgate_affinity_total`. What served is remembered when an attempt
//! succeeds, by its meter (`meter.rs`).

use axum::response::Response;
use router::dispatch::{Answer, DispatchError};
use router::route::{Route, Sticky};

use crate::state::ProxyState;

/// For a request of `session` on a route with affinity, what the route
/// remembers of the session (`Some(None)`: nothing); `None` when affinity
/// does not apply.
pub(super) async fn remembered(
    proxy: &ProxyState,
    route: &Route,
    session: Option<&str>,
) -> Option<Option<Sticky>> {
    let session = session.filter(|_| route.affinity)?;
    Some(proxy.affinity.lookup(&route.name, session).await)
}

/// Counts what affinity did for an answered request.
pub(super) fn count(
    proxy: &ProxyState,
    route: &Route,
    remembered: Option<&Option<Sticky>>,
    result: &Result<Answer, DispatchError<Response>>,
) {
    let (Some(remembered), Ok(answer)) = (remembered, result) else {
        return;
    };
    if !answer.status.is_success() {
        return;
    }
    let outcome = match (remembered, answer.affinity) {
        (_, Some(a)) => a.label(),
        (None, None) => "new",
        // Remembered, yet no candidate of the plan was it: the dispatch
        // says so on every answer, so this is not reached.
        (Some(_), None) => "moved",
    };
    proxy
        .metrics
        .affinity
        .with_label_values(&[&route.name, outcome])
        .inc();
}
