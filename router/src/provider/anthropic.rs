//! The `anthropic` provider kind: the Messages API, at Anthropic itself or at
//! the Anthropic-compatible endpoints of MiniMax, Kimi, GLM and DeepSeek.

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use tokio::time::Instant;

use super::http::HttpUpstream;
use super::{Operation, Passthrough, ProviderError, Timeouts, UpstreamReply};

/// The `anthropic-version` sent when the client sent none.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// Whether a client header reaches an Anthropic upstream unchanged: the
/// API's own (`anthropic-version`, `anthropic-beta`, ...) and Claude Code's
/// session id.
fn forwarded(name: &str) -> bool {
    name.starts_with("anthropic-") || name == "x-claude-code-session-id"
}

/// How the provider presents its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnthropicAuth {
    /// `x-api-key: <key>` (Anthropic's own).
    ApiKey,
    /// `Authorization: Bearer <key>` (some compatible endpoints).
    Bearer,
}

/// An Anthropic Messages upstream with its shared connection pool.
#[derive(Debug)]
pub struct AnthropicProvider {
    pub(super) name: String,
    http: HttpUpstream,
    auth: Option<(HeaderName, HeaderValue)>,
}

impl AnthropicProvider {
    /// Builds the provider. `base_url` is the root the Messages path
    /// `/v1/messages` is joined to: `https://api.anthropic.com`, or
    /// `https://api.minimax.io/anthropic` and the like.
    pub fn new(
        name: &str,
        base_url: &str,
        api_key: Option<&str>,
        auth: AnthropicAuth,
        timeouts: Timeouts,
    ) -> Result<Self, ProviderError> {
        let auth = api_key
            .map(|k| {
                Ok::<_, ProviderError>(match auth {
                    AnthropicAuth::ApiKey => {
                        (HeaderName::from_static("x-api-key"), super::sensitive(k)?)
                    }
                    AnthropicAuth::Bearer => {
                        (AUTHORIZATION, super::sensitive(&format!("Bearer {k}"))?)
                    }
                })
            })
            .transpose()?;
        Ok(Self {
            name: name.to_owned(),
            http: HttpUpstream::new(base_url, timeouts)?,
            auth,
        })
    }

    /// The base URL the Messages path is joined to.
    pub fn base_url(&self) -> &str {
        &self.http.base_url
    }

    pub(super) fn timeouts(&self) -> &Timeouts {
        &self.http.timeouts
    }

    pub(super) async fn send(
        &self,
        op: Operation,
        body: Bytes,
        stream: bool,
        deadline: Instant,
        client: Passthrough<'_>,
    ) -> Result<UpstreamReply, ProviderError> {
        let path = match op {
            Operation::Messages => "/v1/messages",
            Operation::CountTokens => "/v1/messages/count_tokens",
            Operation::ChatCompletions | Operation::Embeddings | Operation::Responses => {
                return Err(ProviderError::Build(
                    "an anthropic provider speaks the Messages API only".into(),
                ))
            }
        };
        let mut headers = HeaderMap::new();
        client.copy_headers(&mut headers, forwarded);
        headers
            .entry("anthropic-version")
            .or_insert(HeaderValue::from_static(DEFAULT_VERSION));
        if let Some((name, value)) = &self.auth {
            headers.insert(name.clone(), value.clone());
        }
        self.http
            .post(&client.path(path), headers, body, stream, deadline)
            .await
    }
}
