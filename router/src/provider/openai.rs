//! The `openai` provider kind: any OpenAI-compatible HTTP upstream (Kimi, GLM,
//! MiniMax, DeepSeek, vLLM, Ollama, llama.cpp, ...).

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use tokio::time::Instant;

use super::http::HttpUpstream;
use super::{Operation, Passthrough, ProviderError, Timeouts, UpstreamReply};

/// Whether a client header reaches an OpenAI-compatible upstream unchanged
/// (when the request passes through in its own format): OpenAI's beta
/// switch and the session headers Codex sends, which keep a conversation on
/// the vendor's prompt cache.
fn forwarded(name: &str) -> bool {
    matches!(
        name,
        "openai-beta" | "session_id" | "session-id" | "thread-id" | "conversation_id"
    )
}

/// An OpenAI-compatible upstream with its shared connection pool.
#[derive(Debug)]
pub struct OpenAiProvider {
    pub(super) name: String,
    http: HttpUpstream,
    auth: Option<HeaderValue>,
    responses: bool,
}

impl OpenAiProvider {
    /// Builds the provider and its pooled client. `base_url` is joined with the
    /// operation path as is (`.../v1` + `/chat/completions`; GLM's `.../v4`
    /// works the same way). `responses` says the upstream also serves the
    /// Responses API at `/responses` (OpenAI, recent vLLM), so Responses
    /// requests pass through instead of being translated to chat.
    pub fn new(
        name: &str,
        base_url: &str,
        api_key: Option<&str>,
        timeouts: Timeouts,
        responses: bool,
    ) -> Result<Self, ProviderError> {
        let auth = api_key
            .map(|k| super::sensitive(&format!("Bearer {k}")))
            .transpose()?;
        Ok(Self {
            name: name.to_owned(),
            http: HttpUpstream::new(base_url, timeouts)?,
            auth,
            responses,
        })
    }

    /// Whether the upstream serves the Responses API itself.
    pub fn serves_responses(&self) -> bool {
        self.responses
    }

    /// The base URL operation paths are joined to.
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
            Operation::ChatCompletions => "/chat/completions",
            Operation::Embeddings => "/embeddings",
            Operation::Responses if self.responses => "/responses",
            Operation::Responses => {
                return Err(ProviderError::Build(
                    "this provider does not serve the Responses API (set responses = true)".into(),
                ))
            }
            Operation::Messages | Operation::CountTokens => {
                return Err(ProviderError::Build(
                    "an openai provider does not speak the Messages API".into(),
                ))
            }
        };
        let mut headers = HeaderMap::new();
        if client.same_format {
            client.copy_headers(&mut headers, forwarded);
        }
        if let Some(auth) = &self.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        self.http
            .post(&client.path(path), headers, body, stream, deadline)
            .await
    }
}
