//! The proxied endpoints: one pipeline behind every door (OpenAI chat
//! completions and embeddings, Anthropic Messages, OpenAI Responses).
//!
//! A request goes through these stages, each in the file named for it:
//! 1. **parse** (this file): the body, validated in the client's format by
//!    [`router::wire`]: only what Tollgate needs is checked; and the agent
//!    session it belongs to (`session.rs`).
//! 2. **admit** (`admit.rs`): the route the client asked for, as its tier and
//!    the caller's policies leave it; the ledger's health; then, before each
//!    attempt, budgets and rate limits (the [`Hooks`](router::dispatch::Hooks)
//!    the router calls).
//! 3. **plan, attempt, relay**: the candidate the session was kept on, if
//!    the route remembers one (`affinity.rs`); then [`router::dispatch`]:
//!    the route's candidates in order, each attempt sent, translated and
//!    relayed, falling back on failures another candidate may not have.
//! 4. **meter** (`meter.rs`): each attempt's usage priced, its reservation
//!    settled, its record made.
//! 5. **record**: [`crate::record`]: metrics, the log line, the ledger.
//! 6. **respond** (`respond.rs`): the answer with Tollgate's headers, or an
//!    error in the client's format.

mod admit;
mod affinity;
mod intake;
mod meter;
mod respond;
mod session;

pub use intake::Intake;

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRef, FromRequestParts, Path, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use router::dispatch::{self, ClientRequest, Dispatch};
use router::wire::{anthropic, openai, responses};
use tracing::Instrument;

use super::middleware::RequestId;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::ProxyState;

/// What every door reads of a request besides its body: who asks, under
/// which id, and the query string and headers that may pass through.
pub struct Door {
    id: uuid::Uuid,
    caller: Caller,
    query: Option<String>,
    headers: HeaderMap,
    /// Room under `server.max_request_bytes_in_flight` for the body its
    /// `content-length` declares, taken before the body is read, so that a
    /// request waiting for room does not hold its body in memory.
    room: Option<intake::Held>,
}

impl<S: Send + Sync> FromRequestParts<S> for Door
where
    ProxyState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // Both are set by middleware on every proxied route (request ids
        // outermost, auth as a route layer); missing, it is a wiring bug.
        let missing =
            || ApiError::unavailable("internal_error", "The request was not authenticated.");
        let id = parts.extensions.get::<RequestId>().ok_or_else(missing)?.0;
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(missing)?;
        let proxy = ProxyState::from_ref(state);
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            // Larger than allowed: the body extractor answers 413.
            .filter(|n| *n <= proxy.max_body_bytes);
        let room = match declared {
            Some(n) => Some(proxy.intake.admit(n).await?),
            None => None,
        };
        Ok(Self {
            id,
            caller,
            query: parts.uri.query().map(str::to_owned),
            // Taken, not copied: the body extractor after it reads none.
            headers: std::mem::take(&mut parts.headers),
            room,
        })
    }
}

/// The body, or 413/400 when it could not be read, with room for it under
/// `server.max_request_bytes_in_flight` (held until the upstream has
/// answered: its headers for a stream, the whole answer otherwise).
async fn read(
    body: Result<Bytes, BytesRejection>,
    proxy: &ProxyState,
    door: &mut Door,
) -> Result<(Bytes, intake::Held), ApiError> {
    let body = body.map_err(|r| ApiError::from_body_rejection(r, proxy.max_body_bytes))?;
    let held = match door.room.take() {
        Some(held) => held,
        // No length declared (a chunked body): room for what arrived.
        None => proxy.intake.admit(body.len()).await?,
    };
    Ok((body, held))
}

/// `POST /v1/chat/completions` (a Responses-shaped body, as Cursor sends,
/// is read as the chat request it stands for).
pub async fn chat_completions(
    State(proxy): State<ProxyState>,
    mut door: Door,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (body, _held) = read(body, &proxy, &mut door).await?;
    let request = ClientRequest::chat(&body)?;
    drop(body);
    serve(&proxy, request, door).await
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    State(proxy): State<ProxyState>,
    mut door: Door,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (body, _held) = read(body, &proxy, &mut door).await?;
    let request = openai::parse_embeddings(&body)?;
    drop(body);
    serve(&proxy, ClientRequest::Embeddings(request), door).await
}

/// `POST /v1/messages`: Anthropic's Messages API, served by any model.
pub async fn messages(
    State(proxy): State<ProxyState>,
    mut door: Door,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (body, _held) = read(body, &proxy, &mut door).await?;
    let request = anthropic::parse_messages(&body)?;
    drop(body);
    serve(&proxy, ClientRequest::Messages(request), door).await
}

/// `POST /v1/responses`: OpenAI's Responses API, served by any model.
pub async fn responses(
    State(proxy): State<ProxyState>,
    mut door: Door,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (body, _held) = read(body, &proxy, &mut door).await?;
    let request = responses::parse_responses(&body)?;
    drop(body);
    serve(&proxy, ClientRequest::Responses(request), door).await
}

/// `GET`, `DELETE /v1/responses/{id}` and `POST /v1/responses/{id}/cancel`:
/// Tollgate stores no responses, so there is nothing to fetch or cancel.
pub async fn stored_response(Path(id): Path<String>) -> ApiError {
    ApiError::not_found(format!(
        "No response '{id}' is stored: Tollgate stores no responses. Send the whole conversation in `input` with `store: false`."
    ))
}

/// Admits, dispatches and answers one parsed request.
async fn serve(
    proxy: &ProxyState,
    request: ClientRequest,
    door: Door,
) -> Result<Response, ApiError> {
    let Door {
        id,
        caller,
        query,
        headers,
        room: _,
    } = door;
    let session = session::of(&headers, &request);
    // Made first: Tollgate's time on the request starts here.
    let gate = admit::Gate::new(proxy, &caller, id, session.clone());
    let resolved = admit::resolve(proxy, request.model(), &caller)?;
    admit::ledger_ready(proxy)?;
    let remembered = affinity::remembered(proxy, &resolved.route, session.as_deref()).await;
    let span = tracing::info_span!("proxy", request_id = %id);
    let result = dispatch::dispatch(
        Dispatch {
            request: &request,
            route: &resolved.route,
            estimate: gate.needs_estimate(),
            client_headers: &headers,
            client_query: query.as_deref(),
            shutdown: &proxy.shutdown,
            default_price: &proxy.default_price,
            sticky: remembered.as_ref().and_then(Option::as_ref),
        },
        &gate,
    )
    .instrument(span)
    .await;
    affinity::count(proxy, &resolved.route, remembered.as_ref(), &result);
    respond::respond(result, gate.rate(), resolved.low_tier)
}
