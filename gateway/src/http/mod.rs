//! The HTTP edge: routes, middleware and handlers.

// `pub(crate)` so that `crate::fuzzing` can hand its body checks to the fuzz targets.
pub(crate) mod admin;
mod body_deadline;
mod budget;
mod count_tokens;
mod health;
mod me;
mod middleware;
mod models;
pub(crate) mod proxy;
mod spend;
mod teams;
mod ui;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use axum::Router;
use tower::ServiceBuilder;

pub use middleware::RequestId;

use crate::error::ApiError;
use crate::state::AppState;

/// Routes that need no credentials: probes, metrics scraping, and the
/// spend page's static files (`/ui` and what is under it), which hold no
/// data: the page calls the authenticated API.
pub const PUBLIC_ROUTES: &[&str] = &["/healthz", "/readyz", "/metrics", "/ui"];

pub use ui::CONTENT_SECURITY_POLICY;

/// Builds the router: callable without a socket, as tests do.
pub fn build_router(state: AppState) -> Router {
    let max_body = state.proxy.max_body_bytes;
    let protected = Router::new()
        .route("/v1/chat/completions", post(proxy::chat_completions))
        .route("/v1/embeddings", post(proxy::embeddings))
        .route("/v1/messages", post(proxy::messages))
        .route("/v1/responses", post(proxy::responses))
        .route(
            "/v1/responses/{id}",
            get(proxy::stored_response).delete(proxy::stored_response),
        )
        .route("/v1/responses/{id}/cancel", post(proxy::stored_response))
        .route(
            "/v1/messages/count_tokens",
            post(count_tokens::count_tokens),
        )
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*model}", get(models::retrieve))
        .route("/v1/me", get(me::me))
        .route("/v1/spend", get(spend::spend))
        .route("/v1/spend/teams", get(teams::list))
        .route("/v1/spend/teams/{id}", get(teams::team))
        // Auth guards every route above; as a route layer it runs only on a
        // match, so an unknown path is a 404, not a 401.
        .route_layer(from_fn_with_state(state.clone(), middleware::require_auth));
    let admin = Router::new()
        .route("/admin/orgs", post(admin::create_org).get(admin::list_orgs))
        .route(
            "/admin/orgs/{id}",
            get(admin::get_org).patch(admin::update_org),
        )
        .route(
            "/admin/teams",
            post(admin::create_team).get(admin::list_teams),
        )
        .route(
            "/admin/teams/{id}",
            get(admin::get_team).patch(admin::update_team),
        )
        .route("/admin/keys", post(admin::create_key).get(admin::list_keys))
        .route(
            "/admin/keys/{id}",
            get(admin::get_key).patch(admin::update_key),
        )
        .route("/admin/keys/{id}/revoke", post(admin::revoke_key))
        .route("/admin/spend", get(admin::spend))
        // The admin API takes the master key only.
        .route_layer(from_fn_with_state(
            state.clone(),
            middleware::require_master,
        ));
    let public = Router::new()
        // Claude Code probes `HEAD /` at start, and `HEAD /api/hello` unless
        // its nonessential traffic is off.
        .route("/", get(health::root).head(health::root))
        .route("/api/hello", get(health::root).head(health::root))
        .route(PUBLIC_ROUTES[0], get(health::healthz))
        .route(PUBLIC_ROUTES[1], get(health::readyz))
        .route(PUBLIC_ROUTES[2], get(health::metrics));
    let page = Router::new()
        // Their own 405 fallbacks, so that the layer below covers them.
        .route(
            PUBLIC_ROUTES[3],
            get(ui::index).fallback(method_not_allowed),
        )
        .route("/ui/", get(ui::index).fallback(method_not_allowed))
        .route("/ui/{*file}", get(ui::file).fallback(method_not_allowed))
        // Every answer under /ui, 404s and 405s included, carries the
        // page's security headers.
        .layer(from_fn(ui::security_headers));
    let routes = public
        .merge(page)
        .merge(protected)
        .merge(admin)
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        // The matched route's pattern on each response, for the access log.
        .layer(middleware::CarryRouteLayer)
        .with_state(state.clone());
    // Around the router rather than layers of it: a layer of the router's
    // wraps every route in a box of its own, and every request cloned them
    // all, each layer once more than the one outside it.
    let edge = ServiceBuilder::new()
        // Outermost: the request id (on every response, errors included),
        // errors in Anthropic's shape for Anthropic clients, and the access
        // log, which counts every status, 401s, 404s and 408s included.
        .layer(from_fn_with_state(state.clone(), middleware::edge))
        // Bounds how long the body extractors wait for a body (408 past it).
        .layer(from_fn_with_state(
            state.body_read_timeout,
            body_deadline::body_deadline,
        ))
        // Bounds what they will buffer (413 past it).
        .layer(DefaultBodyLimit::max(max_body))
        .service(routes);
    Router::new().fallback_service(edge)
}

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::unknown_route(method.as_str(), uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}
