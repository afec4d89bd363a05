//! Upstream providers: one shared, pooled HTTP client per provider (and,
//! for plain-HTTP upstreams, connections each request reads in its own
//! task: see `h1`), and the reply each returns (a full body, or a byte
//! stream to relay).

mod anthropic;
// `pub(crate)` so that `crate::fuzzing` can reach the body decoder.
pub(crate) mod h1;
mod http;
mod mock;
mod openai;
mod tls;

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use tokio::time::Instant;

pub use anthropic::{AnthropicAuth, AnthropicProvider, DEFAULT_VERSION};
pub use mock::MockProvider;
pub use openai::OpenAiProvider;
pub use tls::ensure_provider as ensure_tls_provider;

/// Upstream timeouts, settable per provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP (and TLS) connection.
    pub connect: Duration,
    /// From sending the request until the response status and headers arrive.
    /// A non-streaming answer is generated before its headers are sent, so this
    /// bounds non-streaming generation too.
    pub first_byte: Duration,
    /// The longest silence allowed between two pieces of a streamed body.
    pub idle: Duration,
    /// The whole exchange, body included.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(300),
            idle: Duration::from_secs(120),
            total: Duration::from_secs(900),
        }
    }
}

/// What a request asks the upstream to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// OpenAI's `POST /chat/completions`.
    ChatCompletions,
    /// OpenAI's `POST /embeddings`.
    Embeddings,
    /// Anthropic's `POST /v1/messages`.
    Messages,
    /// Anthropic's `POST /v1/messages/count_tokens`.
    CountTokens,
    /// OpenAI's `POST /responses`.
    Responses,
}

/// What of the client's request reaches the upstream besides the body.
#[derive(Debug, Clone, Copy)]
pub struct Passthrough<'a> {
    /// The client's request headers. Each provider kind forwards the ones
    /// its API defines (Anthropic's `anthropic-*`, OpenAI's `openai-beta`,
    /// session headers); never credentials.
    pub headers: &'a HeaderMap,
    /// The client's query string, forwarded when the request passes
    /// through in its own format (Claude Code's `?beta=true`).
    pub query: Option<&'a str>,
    /// Whether the upstream speaks the client's format.
    pub same_format: bool,
}

impl Passthrough<'_> {
    /// `path` with the client's query string, when it passes through.
    pub(crate) fn path(&self, path: &str) -> String {
        match self.query.filter(|q| self.same_format && !q.is_empty()) {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        }
    }

    /// Copies the client's headers whose names `keep` accepts into `out`.
    pub(crate) fn copy_headers(&self, out: &mut HeaderMap, keep: impl Fn(&str) -> bool) {
        for (name, value) in self.headers {
            if keep(name.as_str()) {
                out.append(name.clone(), value.clone());
            }
        }
    }
}

/// A header value marked sensitive, so it never shows in debug output.
fn sensitive(s: &str) -> Result<HeaderValue, ProviderError> {
    let mut v = HeaderValue::from_str(s)
        .map_err(|_| ProviderError::Build("the API key is not a valid header value".into()))?;
    v.set_sensitive(true);
    Ok(v)
}

/// Which timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// No response headers within `first_byte`.
    FirstByte,
    /// The stream went silent for longer than `idle`.
    Idle,
    /// The exchange ran past `total`.
    Total,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FirstByte => "first-byte",
            Self::Idle => "idle",
            Self::Total => "total",
        })
    }
}

/// A failure to get an answer from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The connection could not be opened.
    #[error("could not connect to the upstream: {0}")]
    Connect(String),
    /// A timeout fired.
    #[error("the upstream exceeded its {0} timeout")]
    Timeout(TimeoutPhase),
    /// The connection broke while talking to the upstream.
    #[error("the upstream connection failed: {0}")]
    Transport(String),
    /// The provider could not be set up (bad TLS setup, bad base URL).
    #[error("the provider could not be built: {0}")]
    Build(String),
    /// A streamed event grew past the size limit without ending.
    #[error("the upstream sent an event larger than {0} bytes")]
    Oversized(usize),
    /// The gateway is shutting down and its grace period is over.
    #[error("the gateway is shutting down")]
    Shutdown,
}

impl ProviderError {
    /// A low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Timeout(_) => "timeout",
            Self::Transport(_) => "transport",
            Self::Build(_) => "build",
            Self::Oversized(_) => "malformed",
            Self::Shutdown => "shutdown",
        }
    }

    fn from_reqwest(err: reqwest::Error) -> Self {
        if err.is_connect() {
            Self::Connect(error_chain(&err))
        } else if err.is_timeout() {
            Self::Timeout(TimeoutPhase::FirstByte)
        } else {
            Self::Transport(error_chain(&err))
        }
    }
}

/// The error and its causes on one line (reqwest hides the cause otherwise).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// A streamed upstream body.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ProviderError>> + Send>>;

/// The body of an upstream reply.
pub enum ReplyBody {
    /// The whole body, already read.
    Full(Bytes),
    /// A streamed body (SSE), read as it arrives.
    Stream(ByteStream),
}

impl fmt::Debug for ReplyBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(b) => write!(f, "Full({} bytes)", b.len()),
            Self::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// What an upstream answered.
#[derive(Debug)]
pub struct UpstreamReply {
    /// The upstream's HTTP status.
    pub status: StatusCode,
    /// `retry-after`, when the upstream sent one.
    pub retry_after: Option<String>,
    /// The body.
    pub body: ReplyBody,
}

/// A configured upstream.
#[derive(Debug)]
pub enum Provider {
    /// Any OpenAI-compatible HTTP upstream.
    OpenAi(OpenAiProvider),
    /// An Anthropic Messages upstream.
    Anthropic(AnthropicProvider),
    /// The in-process simulated model (OpenAI's format).
    Mock(MockProvider),
}

impl Provider {
    /// The provider's configured name.
    pub fn name(&self) -> &str {
        match self {
            Self::OpenAi(p) => &p.name,
            Self::Anthropic(p) => &p.name,
            Self::Mock(p) => &p.name,
        }
    }

    /// The provider kind, as written in config.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::OpenAi(_) => "openai",
            Self::Anthropic(_) => "anthropic",
            Self::Mock(_) => "mock",
        }
    }

    /// The wire format the provider speaks.
    pub fn wire(&self) -> crate::wire::Wire {
        match self {
            Self::Anthropic(_) => crate::wire::Wire::Anthropic,
            Self::OpenAi(_) | Self::Mock(_) => crate::wire::Wire::OpenAi,
        }
    }

    /// Whether the provider serves OpenAI's Responses API itself, so a
    /// Responses request passes through untranslated.
    pub fn serves_responses(&self) -> bool {
        matches!(self, Self::OpenAi(p) if p.serves_responses())
    }

    /// The provider's timeouts.
    pub fn timeouts(&self) -> &Timeouts {
        match self {
            Self::OpenAi(p) => p.timeouts(),
            Self::Anthropic(p) => p.timeouts(),
            Self::Mock(p) => &p.timeouts,
        }
    }

    /// Sends one request upstream. `body` is the upstream JSON body; `stream`
    /// says whether a streamed reply is expected; `started` anchors the total
    /// timeout; `client` is what of the client's request passes through
    /// besides the body. A non-streaming body is read whole before returning.
    pub async fn send(
        &self,
        op: Operation,
        body: Bytes,
        stream: bool,
        started: Instant,
        client: Passthrough<'_>,
    ) -> Result<UpstreamReply, ProviderError> {
        let deadline = started + self.timeouts().total;
        match self {
            Self::OpenAi(p) => p.send(op, body, stream, deadline, client).await,
            Self::Anthropic(p) => p.send(op, body, stream, deadline, client).await,
            Self::Mock(p) => p.send(op, body, stream, deadline).await,
        }
    }
}
