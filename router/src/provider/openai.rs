//! The `openai` provider kind: any OpenAI-compatible HTTP upstream (Kimi, GLM,
//! MiniMax, DeepSeek, vLLM, Ollama, llama.cpp, ...).

use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use tokio::time::Instant;

use super::{tls, Operation, ProviderError, ReplyBody, TimeoutPhase, Timeouts, UpstreamReply};

/// The largest whole answer read from an upstream; past it the answer fails.
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
/// The most of an error body kept; the rest is dropped.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Reads a body up to `limit` bytes. A success body past the limit is an
/// error; an error body is cut at the limit.
async fn read_capped(resp: reqwest::Response, limit: usize) -> Result<Bytes, ProviderError> {
    let is_error = !resp.status().is_success();
    let mut body = resp.bytes_stream();
    let mut out = bytes::BytesMut::new();
    while let Some(piece) = futures_util::StreamExt::next(&mut body).await {
        let piece = piece.map_err(|e| ProviderError::Transport(super::error_chain(&e)))?;
        if out.len() + piece.len() > limit {
            if is_error {
                out.extend_from_slice(&piece[..limit - out.len()]);
                break;
            }
            return Err(ProviderError::Transport(format!(
                "the answer is larger than {limit} bytes"
            )));
        }
        out.extend_from_slice(&piece);
    }
    Ok(out.freeze())
}

/// An OpenAI-compatible upstream with its shared connection pool.
#[derive(Debug)]
pub struct OpenAiProvider {
    pub(super) name: String,
    base_url: String,
    auth: Option<HeaderValue>,
    client: reqwest::Client,
    pub(super) timeouts: Timeouts,
}

impl OpenAiProvider {
    /// Builds the provider and its pooled client. `base_url` is joined with the
    /// operation path as is (`.../v1` + `/chat/completions`; GLM's `.../v4`
    /// works the same way).
    pub fn new(
        name: &str,
        base_url: &str,
        api_key: Option<&str>,
        timeouts: Timeouts,
    ) -> Result<Self, ProviderError> {
        tls::ensure_provider();
        let auth = api_key
            .map(|k| {
                let mut v = HeaderValue::from_str(&format!("Bearer {k}")).map_err(|_| {
                    ProviderError::Build("the API key is not a valid header value".into())
                })?;
                v.set_sensitive(true);
                Ok::<_, ProviderError>(v)
            })
            .transpose()?;
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            // A redirect would turn the POST into a bodiless GET elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Build(e.to_string()))?;
        Ok(Self {
            name: name.to_owned(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            auth,
            client,
            timeouts,
        })
    }

    /// The base URL operation paths are joined to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub(super) async fn send(
        &self,
        op: Operation,
        body: Bytes,
        stream: bool,
        deadline: Instant,
    ) -> Result<UpstreamReply, ProviderError> {
        let url = format!("{}{}", self.base_url, op.path());
        let mut req = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        if stream {
            req = req.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        let headers_by = deadline.min(Instant::now() + self.timeouts.first_byte);
        let phase = if headers_by < deadline {
            TimeoutPhase::FirstByte
        } else {
            TimeoutPhase::Total
        };
        let resp = tokio::time::timeout_at(headers_by, req.send())
            .await
            .map_err(|_| ProviderError::Timeout(phase))?
            .map_err(ProviderError::from_reqwest)?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let is_sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("text/event-stream"));
        // A stream request answered 2xx with a plain body (some servers send
        // errors that way) is read whole, like a non-streaming answer.
        let body = if stream && status.is_success() && is_sse {
            ReplyBody::Stream(Box::pin(
                resp.bytes_stream()
                    .map_err(|e| ProviderError::Transport(super::error_chain(&e))),
            ))
        } else {
            let limit = if status.is_success() {
                MAX_BODY_BYTES
            } else {
                MAX_ERROR_BODY_BYTES
            };
            let bytes = tokio::time::timeout_at(deadline, read_capped(resp, limit))
                .await
                .map_err(|_| ProviderError::Timeout(TimeoutPhase::Total))??;
            ReplyBody::Full(bytes)
        };
        Ok(UpstreamReply {
            status,
            retry_after,
            body,
        })
    }
}
