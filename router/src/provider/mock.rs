//! The `mock` provider kind: the simulated model in-process, so the quickstart
//! and tests run with no vendor key. Its replies go through the same relay as
//! a real upstream's.

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

use super::{Operation, ProviderError, ReplyBody, TimeoutPhase, Timeouts, UpstreamReply};
use crate::sim::{self, PrefixCache, PromptKind, SimConfig};

/// An in-process simulated model.
#[derive(Debug)]
pub struct MockProvider {
    pub(super) name: String,
    sim: SimConfig,
    /// Each session's previous prompt, when the simulation caches prefixes.
    prefix: Option<PrefixCache>,
    pub(super) timeouts: Timeouts,
}

impl MockProvider {
    /// A simulated provider with the given behaviour.
    pub fn new(name: &str, sim: SimConfig, timeouts: Timeouts) -> Self {
        Self {
            name: name.to_owned(),
            prefix: sim.prefix_cache.then(PrefixCache::default),
            sim,
            timeouts,
        }
    }

    /// How the simulation behaves.
    pub fn sim(&self) -> &SimConfig {
        &self.sim
    }

    pub(super) async fn send(
        &self,
        op: Operation,
        body: Bytes,
        stream: bool,
        deadline: Instant,
    ) -> Result<UpstreamReply, ProviderError> {
        let request: Value = serde_json::from_slice(&body)
            .map_err(|e| ProviderError::Transport(format!("mock received invalid JSON: {e}")))?;
        let wait = |d| async move {
            tokio::time::timeout_at(deadline, tokio::time::sleep(d))
                .await
                .map_err(|_| ProviderError::Timeout(TimeoutPhase::Total))
        };
        wait(self.sim.latency).await?;
        // In process there are no client headers: the body's signals name
        // the session.
        let prefix = match (&self.prefix, op) {
            (Some(cache), Operation::ChatCompletions) => {
                cache.observe(&Default::default(), &request, PromptKind::Chat)
            }
            _ => 0,
        };
        let cfg = self.sim.with_prefix(prefix);
        let body = match op {
            Operation::Embeddings => ReplyBody::Full(json_bytes(&sim::embeddings(&request, &cfg))),
            Operation::ChatCompletions if stream => {
                let frames = sim::chat_frames(&request, &cfg);
                ReplyBody::Stream(Box::pin(sim::play(frames).map(Ok)))
            }
            Operation::ChatCompletions => {
                wait(sim::generation_time(&request, &cfg)).await?;
                ReplyBody::Full(json_bytes(&sim::chat_completion(&request, &cfg)))
            }
            Operation::Messages | Operation::CountTokens | Operation::Responses => {
                return Err(ProviderError::Build(
                    "the mock provider speaks OpenAI's format only".into(),
                ))
            }
        };
        Ok(UpstreamReply {
            status: StatusCode::OK,
            retry_after: None,
            body,
        })
    }
}

fn json_bytes(v: &Value) -> Bytes {
    Bytes::from(v.to_string())
}
