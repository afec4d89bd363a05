//! Why an attempt failed, whether another candidate may do better, and the
//! error Tollgate itself answers when the upstream gave none it can relay.

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;

use crate::provider::{ProviderError, TimeoutPhase};
use crate::wire::{anthropic, openai, Wire};

/// Why an attempt failed in a way another candidate may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The upstream answered 429.
    RateLimited,
    /// The upstream answered 503 or 529.
    Overloaded,
    /// The upstream refused the provider's own credentials.
    UpstreamAuth,
    /// Another 5xx.
    ServerError,
    /// The prompt is too long for this model; a larger one may take it.
    ContextLength,
    /// A timeout fired before the answer started.
    Timeout,
    /// The connection could not be opened or broke before the answer.
    Connect,
}

impl Retry {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::UpstreamAuth => "upstream_auth",
            Self::ServerError => "server_error",
            Self::ContextLength => "context_length",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
        }
    }

    /// Whether an upstream error status is worth another candidate, and why.
    pub fn from_status(status: StatusCode, body: &[u8]) -> Option<Self> {
        match status.as_u16() {
            429 => Some(Self::RateLimited),
            529 | 503 => Some(Self::Overloaded),
            401 | 403 => Some(Self::UpstreamAuth),
            s if s >= 500 => Some(Self::ServerError),
            400 | 413 => is_context_length(body).then_some(Self::ContextLength),
            _ => None,
        }
    }

    /// Whether a transport failure is worth another candidate.
    pub fn from_provider_error(e: &ProviderError) -> Option<Self> {
        match e {
            ProviderError::Timeout(_) => Some(Self::Timeout),
            ProviderError::Connect(_) | ProviderError::Transport(_) => Some(Self::Connect),
            _ => None,
        }
    }
}

/// Whether an error body says the prompt does not fit the model.
pub fn is_context_length(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]).to_ascii_lowercase();
    [
        "context_length",
        "context length",
        "context window",
        "prompt is too long",
        "too many tokens",
        "maximum context",
    ]
    .iter()
    .any(|p| text.contains(p))
}

/// Seconds in a `retry-after` header (delta-seconds form), capped at 5 minutes.
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    let secs: f64 = value?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(300.0)))
}

/// An error Tollgate answers on the upstream's behalf: the upstream could
/// not be reached, timed out, or sent something unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The HTTP status.
    pub status: StatusCode,
    /// OpenAI's error `type`.
    pub kind: &'static str,
    /// OpenAI's error `code`; also the metric and ledger label.
    pub code: &'static str,
    /// The message for the client (never the upstream's address or key).
    pub message: String,
}

impl Failure {
    /// 502 or 504 (503 at shutdown) for a failed exchange.
    pub fn from_provider_error(err: &ProviderError) -> Self {
        let (status, code, message) = match err {
            ProviderError::Timeout(TimeoutPhase::FirstByte) => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "The upstream did not start answering in time.".to_owned(),
            ),
            ProviderError::Timeout(phase) => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!("The upstream exceeded its {phase} timeout."),
            ),
            ProviderError::Connect(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                "The upstream could not be reached.".to_owned(),
            ),
            ProviderError::Shutdown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "gateway_shutdown",
                "The gateway is shutting down; retry the request.".to_owned(),
            ),
            ProviderError::Oversized(_) => return Self::malformed(),
            ProviderError::Transport(_) | ProviderError::Build(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                "The connection to the upstream failed.".to_owned(),
            ),
        };
        Self {
            status,
            kind: "server_error",
            code,
            message,
        }
    }

    /// 502: the upstream answered 2xx with something that is not valid.
    pub fn malformed() -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            kind: "server_error",
            code: "upstream_malformed",
            message: "The upstream sent a response Tollgate could not read.".to_owned(),
        }
    }

    /// 502: the upstream refused the provider's credentials. The client's key
    /// is fine; nothing of the vendor's message (which may quote the vendor
    /// key) is passed on.
    pub fn upstream_auth(provider: &str) -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            kind: "server_error",
            code: "upstream_auth_failed",
            message: format!("The upstream provider '{provider}' rejected the gateway's credentials. This is a gateway configuration problem, not your key."),
        }
    }

    /// The error body in the client's format.
    pub fn body(&self, client: Wire) -> Bytes {
        let body = match client {
            // A 503 (shutdown) reads as "overloaded, retry" to Anthropic's clients.
            Wire::Anthropic => {
                anthropic::error_body(anthropic::error_type(self.status.as_u16()), &self.message)
            }
            Wire::OpenAi | Wire::Responses => {
                openai::error_body(&self.message, self.kind, None, Some(self.code))
            }
        };
        Bytes::from(body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_failures_are_classified_for_fallback() {
        let ctx = br#"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}}"#;
        assert_eq!(
            Retry::from_status(StatusCode::BAD_REQUEST, ctx),
            Some(Retry::ContextLength)
        );
        let anthropic = br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#;
        assert_eq!(
            Retry::from_status(StatusCode::BAD_REQUEST, anthropic),
            Some(Retry::ContextLength)
        );
        assert_eq!(
            Retry::from_status(
                StatusCode::BAD_REQUEST,
                b"{\"error\":{\"message\":\"bad temperature\"}}"
            ),
            None
        );
        assert_eq!(Retry::from_status(StatusCode::NOT_FOUND, b""), None);
        assert_eq!(
            Retry::from_status(StatusCode::TOO_MANY_REQUESTS, b""),
            Some(Retry::RateLimited)
        );
        let overloaded = StatusCode::from_u16(529).unwrap();
        assert_eq!(Retry::from_status(overloaded, b""), Some(Retry::Overloaded));
        assert_eq!(
            Retry::from_status(StatusCode::BAD_GATEWAY, b""),
            Some(Retry::ServerError)
        );
        assert_eq!(
            Retry::from_status(StatusCode::UNAUTHORIZED, b""),
            Some(Retry::UpstreamAuth)
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        assert_eq!(retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(Some(" 0.5 ")), Some(Duration::from_millis(500)));
        assert_eq!(retry_after(Some("86400")), Some(Duration::from_secs(300)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2026 07:28:00 GMT")), None);
        assert_eq!(retry_after(Some("-1")), None);
        assert_eq!(retry_after(None), None);
    }

    #[test]
    fn failures_render_in_the_clients_format() {
        let f = Failure::from_provider_error(&ProviderError::Connect("refused".into()));
        assert_eq!(f.status, StatusCode::BAD_GATEWAY);
        let openai: serde_json::Value = serde_json::from_slice(&f.body(Wire::OpenAi)).unwrap();
        assert_eq!(openai["error"]["code"], "upstream_unreachable");
        let anthropic: serde_json::Value =
            serde_json::from_slice(&f.body(Wire::Anthropic)).unwrap();
        assert_eq!(anthropic["type"], "error");
        assert!(!f.message.contains("refused"), "the cause stays in the log");
    }
}
