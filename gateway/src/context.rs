//! The request context: who is calling, what they asked for and where it
//! goes. Built once a proxied request is validated and resolved; it travels
//! with the request to the end and into its [`RequestRecord`](crate::record::RequestRecord).

use std::sync::Arc;
use std::time::SystemTime;

use router::{ModelEntry, Operation};
use tokio::time::Instant;
use uuid::Uuid;

use crate::auth::Caller;

/// The wire format the client speaks (recorded in the ledger's `client_format`).
pub type ClientFormat = router::wire::Wire;

/// Everything known about one proxied request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// This attempt's id (UUIDv7): the ledger row's.
    pub id: Uuid,
    /// The id the client was given as `x-tollgate-request-id`: the first
    /// attempt's, shared by every attempt at the request.
    pub client_request_id: Uuid,
    /// Who is calling.
    pub caller: Caller,
    /// The client's wire format.
    pub format: ClientFormat,
    /// What the upstream is asked to do (in the upstream's format).
    pub operation: Operation,
    /// The configured model serving this attempt (the client may have asked
    /// for a route; see `route`).
    pub requested_model: String,
    /// The provider serving it.
    pub provider: String,
    /// The model name sent upstream.
    pub upstream_model: String,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The route the client asked for (the model's own name for a plain model).
    pub route: String,
    /// Which attempt at the request this is, from 1.
    pub attempt: u32,
    /// The route's reference model, whose price the usage is also costed at.
    pub reference: Option<Arc<ModelEntry>>,
    /// When the request started (monotonic).
    pub started: Instant,
    /// When the request started (wall clock).
    pub started_at: SystemTime,
    /// The agent session the request belongs to, when it names one (see
    /// [`router::session`]); every attempt at the request shares it.
    pub session: Option<Arc<str>>,
}

impl RequestContext {
    /// The endpoint label for metrics.
    pub fn endpoint(&self) -> &'static str {
        match (self.format, self.operation) {
            (ClientFormat::Anthropic, Operation::CountTokens) => "count_tokens",
            (ClientFormat::Anthropic, _) => "messages",
            (ClientFormat::Responses, _) => "responses",
            (_, Operation::Embeddings) => "embeddings",
            _ => "chat_completions",
        }
    }
}
