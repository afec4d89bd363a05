//! Relaying an OpenAI-style SSE stream event by event, as each arrives.

use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::timed::Timed;
use super::{collect_choice_text, End, Summary};
use crate::provider::{ByteStream, ProviderError};
use crate::usage::{self, Usage};
use crate::wire::openai::sse_error_event;

const DONE: &[u8] = b"data: [DONE]\n\n";

/// How to relay one stream.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// The model name the client asked for; every chunk's `model` becomes it.
    pub client_model: String,
    /// Whether the client asked for usage (`stream_options.include_usage`).
    /// When it did not, the usage-only chunk is dropped and `usage` fields
    /// are removed from the rest, as OpenAI itself does.
    pub include_usage: bool,
    /// The longest silence allowed between two pieces of the upstream body.
    pub idle: Duration,
    /// When the whole exchange must be over.
    pub deadline: Instant,
    /// When the request started, for time to first token.
    pub started: Instant,
    /// Cancelled when the gateway's shutdown grace period is over: the stream
    /// then ends with an error event.
    pub shutdown: CancellationToken,
}

type Events = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<ProviderError>>> + Send>>;
type OnEnd = Box<dyn FnOnce(Summary) + Send>;

struct Relay {
    events: Events,
    opts: StreamOptions,
    usage: Option<Usage>,
    ttft: Option<Duration>,
    output_text: String,
    saw_finish: bool,
    forwarded: u64,
    on_end: Option<OnEnd>,
}

/// Relays `upstream` to the client. `on_end` runs exactly once: when the
/// stream ends, however it ends, or when the client drops it early.
pub fn relay_stream(
    upstream: ByteStream,
    opts: StreamOptions,
    on_end: impl FnOnce(Summary) + Send + 'static,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let timed = Timed::new(upstream, opts.idle, opts.deadline, opts.shutdown.clone());
    let relay = Relay {
        events: Box::pin(timed.eventsource()),
        opts,
        usage: None,
        ttft: None,
        output_text: String::new(),
        saw_finish: false,
        forwarded: 0,
        on_end: Some(Box::new(on_end)),
    };
    futures_util::stream::unfold(relay, |mut relay| async move {
        let frame = relay.next_frame().await?;
        Some((Ok(frame), relay))
    })
}

impl Relay {
    fn finish(&mut self, end: End) {
        if let Some(on_end) = self.on_end.take() {
            on_end(Summary {
                usage: self.usage,
                end,
                ttft: self.ttft,
                output_text: std::mem::take(&mut self.output_text),
                events: self.forwarded,
            });
        }
    }

    fn fail(&mut self, end: End) -> Bytes {
        let (message, code) = match &end {
            End::Shutdown => (
                "The gateway is shutting down; retry the request.".to_owned(),
                "gateway_shutdown",
            ),
            End::Timeout(phase) => (
                format!("The upstream exceeded its {phase} timeout."),
                "upstream_timeout",
            ),
            End::Malformed(why) => (
                format!("The upstream sent a malformed stream: {why}"),
                "upstream_malformed",
            ),
            End::UpstreamDisconnected(why) => (
                format!("The upstream connection ended before the answer was complete: {why}"),
                "upstream_disconnected",
            ),
            _ => ("The upstream stream failed.".to_owned(), "upstream_error"),
        };
        self.finish(end);
        sse_error_event(&message, "server_error", code)
    }

    fn mark_forwarded(&mut self) {
        self.forwarded += 1;
    }

    /// The next frame for the client; `None` once the stream is over.
    async fn next_frame(&mut self) -> Option<Bytes> {
        self.on_end.as_ref()?;
        loop {
            let event = match self.events.next().await {
                Some(Ok(event)) => event,
                Some(Err(EventStreamError::Transport(ProviderError::Timeout(phase)))) => {
                    return Some(self.fail(End::Timeout(phase)))
                }
                Some(Err(EventStreamError::Transport(ProviderError::Shutdown))) => {
                    return Some(self.fail(End::Shutdown))
                }
                Some(Err(EventStreamError::Transport(e @ ProviderError::Oversized(_)))) => {
                    return Some(self.fail(End::Malformed(e.to_string())))
                }
                Some(Err(EventStreamError::Transport(e))) => {
                    return Some(self.fail(End::UpstreamDisconnected(e.to_string())))
                }
                Some(Err(e)) => return Some(self.fail(End::Malformed(e.to_string()))),
                None if self.saw_finish => {
                    // Some servers close after the last choice without `[DONE]`.
                    self.mark_forwarded();
                    self.finish(End::Complete);
                    return Some(Bytes::from_static(DONE));
                }
                None => {
                    return Some(self.fail(End::UpstreamDisconnected(
                        "the stream closed without a final chunk".into(),
                    )))
                }
            };
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                self.mark_forwarded();
                self.finish(End::Complete);
                return Some(Bytes::from_static(DONE));
            }
            let Ok(mut chunk) = serde_json::from_str::<Value>(data) else {
                return Some(self.fail(End::Malformed("an event's data is not JSON".into())));
            };
            if chunk.get("error").is_some_and(|e| !e.is_null()) {
                // The upstream's own error event passes through as it is.
                self.mark_forwarded();
                self.finish(End::UpstreamError);
                return Some(encode(&event.event, &chunk));
            }
            if let Some(frame) = self.process(&event.event, &mut chunk) {
                self.mark_forwarded();
                return Some(frame);
            }
        }
    }

    /// Meters one chunk and prepares it for the client; `None` drops it.
    fn process(&mut self, event: &str, chunk: &mut Value) -> Option<Bytes> {
        if let Some(u) = usage::from_openai_body(chunk) {
            self.usage = Some(u);
        }
        let obj = chunk.as_object_mut()?;
        let mut has_choices = false;
        let mut choice_usage = None;
        if let Some(choices) = obj.get_mut("choices").and_then(Value::as_array_mut) {
            has_choices = !choices.is_empty();
            for c in choices.iter_mut() {
                self.saw_finish |= collect_choice_text(c, "delta", &mut self.output_text);
                if let Some(c) = c.as_object_mut() {
                    // Kimi puts usage inside the choice: lifted to where OpenAI
                    // clients look for it, below.
                    if let Some(u) = c.remove("usage").filter(|u| !u.is_null()) {
                        choice_usage = Some(u);
                    }
                    // MiniMax sends `"role": ""`, which typed clients reject.
                    if let Some(delta) = c.get_mut("delta").and_then(Value::as_object_mut) {
                        if delta.get("role").and_then(Value::as_str) == Some("") {
                            delta.remove("role");
                        }
                    }
                }
            }
        }
        if let Some(m) = obj.get_mut("model") {
            *m = Value::String(self.opts.client_model.clone());
        }
        let top_usage = obj.get("usage").is_some_and(|u| !u.is_null());
        if self.opts.include_usage {
            if let (false, Some(u)) = (
                top_usage,
                choice_usage.as_ref().and_then(usage::from_openai),
            ) {
                obj.insert("usage".into(), openai_usage(&u));
            }
        } else {
            // As OpenAI does without `include_usage`: no usage anywhere, and no
            // chunk that only carried usage (or an empty trailer).
            obj.remove("usage");
            let only_envelope = obj.keys().all(|k| {
                matches!(
                    k.as_str(),
                    "id" | "object" | "created" | "model" | "system_fingerprint" | "choices"
                )
            });
            if !has_choices && only_envelope {
                return None;
            }
        }
        if has_choices && self.ttft.is_none() {
            self.ttft = Some(self.opts.started.elapsed());
        }
        Some(encode(event, chunk))
    }
}

/// A normalized usage in OpenAI's shape.
fn openai_usage(u: &Usage) -> Value {
    serde_json::json!({
        "prompt_tokens": u.prompt_total(),
        "completion_tokens": u.output,
        "total_tokens": u.total(),
        "prompt_tokens_details": {"cached_tokens": u.cached_input},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning},
    })
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Dropped before the end: the client went away.
        self.finish(End::ClientDisconnected);
    }
}

fn encode(event: &str, chunk: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    if !event.is_empty() && event != "message" {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    // Serializing a JSON value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, chunk);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}
