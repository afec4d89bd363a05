//! Stream codecs: what the relay does with each upstream event, one codec per
//! pair of client and upstream formats.

use bytes::Bytes;
use serde_json::Value;

use super::{collect_choice_text, End};
use crate::translate::{
    self, anthropic_event_text, AnthropicToChat, AnthropicUsage, ChatToAnthropic, Flow,
};
use crate::usage::{self, Usage};
use crate::wire::{anthropic, openai, Wire};

const DONE: &[u8] = b"data: [DONE]\n\n";

/// What the relay learns from the events, for metering.
#[derive(Debug, Default)]
pub(super) struct Meter {
    pub usage: Option<Usage>,
    pub output_text: String,
    /// Set once the model produced output (time to first token).
    pub produced: bool,
}

/// What one event did.
pub(super) enum Step {
    Continue,
    End(End),
}

pub(super) trait Codec: Send {
    /// One upstream event (`name` may be empty). Frames for the client go to `out`.
    fn event(&mut self, name: &str, data: &str, m: &mut Meter, out: &mut Vec<Bytes>) -> Step;
    /// The upstream body ended before the codec ended the stream.
    fn eof(&mut self, m: &mut Meter, out: &mut Vec<Bytes>) -> Step;
    /// The error frame, in the client's format, for a stream that failed.
    fn error_frame(&self, end: &End) -> Bytes;
}

/// Builds the codec for a client and an upstream format.
pub(super) fn for_formats(
    client: Wire,
    upstream: Wire,
    client_model: &str,
    include_usage: bool,
) -> Box<dyn Codec> {
    match (client, upstream) {
        (Wire::OpenAi, Wire::OpenAi) => Box::new(OpenAiPass {
            client_model: client_model.to_owned(),
            include_usage,
            saw_finish: false,
        }),
        (Wire::Anthropic, Wire::Anthropic) => Box::new(AnthropicPass {
            client_model: client_model.to_owned(),
            usage: AnthropicUsage::default(),
        }),
        (Wire::OpenAi, Wire::Anthropic) => Box::new(AnthropicToOpenAi(AnthropicToChat::new(
            client_model,
            crate::sim::now_secs(),
            include_usage,
        ))),
        (Wire::Anthropic, Wire::OpenAi) => {
            Box::new(OpenAiToAnthropic(ChatToAnthropic::new(client_model)))
        }
    }
}

/// Why a stream failed, as a message and a code.
fn failure(end: &End) -> (String, &'static str) {
    match end {
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
        // The cause (transport details, possibly the upstream's address) is
        // for the logs and the record, not for the client.
        End::UpstreamDisconnected(_) => (
            "The upstream connection ended before the answer was complete.".to_owned(),
            "upstream_disconnected",
        ),
        _ => ("The upstream stream failed.".to_owned(), "upstream_error"),
    }
}

fn openai_error_frame(end: &End) -> Bytes {
    let (message, code) = failure(end);
    openai::sse_error_event(&message, "server_error", code)
}

fn anthropic_error_frame(end: &End) -> Bytes {
    let (message, _) = failure(end);
    let kind = match end {
        End::Shutdown => "overloaded_error",
        _ => "api_error",
    };
    anthropic::sse_error_event(kind, &message)
}

fn malformed() -> Step {
    Step::End(End::Malformed("an event's data is not JSON".into()))
}

/// OpenAI upstream, OpenAI client: each chunk relayed with the client's model
/// name, vendor quirks smoothed, usage kept or dropped as the client asked.
struct OpenAiPass {
    client_model: String,
    include_usage: bool,
    saw_finish: bool,
}

impl Codec for OpenAiPass {
    fn event(&mut self, name: &str, data: &str, m: &mut Meter, out: &mut Vec<Bytes>) -> Step {
        if data == "[DONE]" {
            out.push(Bytes::from_static(DONE));
            return Step::End(End::Complete);
        }
        let Ok(mut chunk) = serde_json::from_str::<Value>(data) else {
            return malformed();
        };
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            // The upstream's own error event passes through as it is.
            out.push(encode(name, &chunk));
            return Step::End(End::UpstreamError);
        }
        if let Some(frame) = self.process(name, &mut chunk, m) {
            out.push(frame);
        }
        Step::Continue
    }

    fn eof(&mut self, _m: &mut Meter, out: &mut Vec<Bytes>) -> Step {
        if self.saw_finish {
            // Some servers close after the last choice without `[DONE]`.
            out.push(Bytes::from_static(DONE));
            Step::End(End::Complete)
        } else {
            Step::End(End::UpstreamDisconnected(
                "the stream closed without a final chunk".into(),
            ))
        }
    }

    fn error_frame(&self, end: &End) -> Bytes {
        openai_error_frame(end)
    }
}

impl OpenAiPass {
    /// Meters one chunk and prepares it for the client; `None` drops it.
    fn process(&mut self, event: &str, chunk: &mut Value, m: &mut Meter) -> Option<Bytes> {
        if let Some(u) = usage::from_openai_body(chunk) {
            m.usage = Some(u);
        }
        let obj = chunk.as_object_mut()?;
        let mut has_choices = false;
        let mut choice_usage = None;
        if let Some(choices) = obj.get_mut("choices").and_then(Value::as_array_mut) {
            has_choices = !choices.is_empty();
            for c in choices.iter_mut() {
                self.saw_finish |= collect_choice_text(c, "delta", &mut m.output_text);
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
        if let Some(model) = obj.get_mut("model") {
            *model = Value::String(self.client_model.clone());
        }
        let top_usage = obj.get("usage").is_some_and(|u| !u.is_null());
        if self.include_usage {
            if let (false, Some(u)) = (
                top_usage,
                choice_usage.as_ref().and_then(usage::from_openai),
            ) {
                obj.insert("usage".into(), translate::openai_usage(&u));
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
        m.produced |= has_choices;
        Some(encode(event, chunk))
    }
}

/// Anthropic upstream, Anthropic client: every event's data passes as the
/// upstream sent it; only `message_start` gets the client's model name.
struct AnthropicPass {
    client_model: String,
    usage: AnthropicUsage,
}

impl Codec for AnthropicPass {
    fn event(&mut self, name: &str, data: &str, m: &mut Meter, out: &mut Vec<Bytes>) -> Step {
        let Ok(mut value) = serde_json::from_str::<Value>(data) else {
            return malformed();
        };
        // Anthropic names each event after its data's type; either serves.
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .unwrap_or(name)
            .to_owned();
        let name = if name.is_empty() || name == "message" {
            &kind
        } else {
            name
        };
        match kind.as_str() {
            "message_start" => {
                self.usage.merge(value.pointer("/message/usage"));
                m.usage = self.usage.usage();
                let model = value.pointer_mut("/message/model");
                if let Some(model) = model.filter(|v| v.as_str() != Some(&self.client_model)) {
                    *model = Value::String(self.client_model.clone());
                    out.push(translate::anthropic_frame(name, &value));
                    return Step::Continue;
                }
            }
            "message_delta" => {
                self.usage.merge(value.get("usage"));
                m.usage = self.usage.usage();
            }
            "content_block_start" | "content_block_delta" => {
                m.produced = true;
                anthropic_event_text(&value, &mut m.output_text);
            }
            _ => {}
        }
        out.push(raw_frame(name, data));
        match kind.as_str() {
            "message_stop" => Step::End(End::Complete),
            "error" => Step::End(End::UpstreamError),
            _ => Step::Continue,
        }
    }

    fn eof(&mut self, _m: &mut Meter, _out: &mut Vec<Bytes>) -> Step {
        Step::End(End::UpstreamDisconnected(
            "the stream closed without message_stop".into(),
        ))
    }

    fn error_frame(&self, end: &End) -> Bytes {
        anthropic_error_frame(end)
    }
}

/// Anthropic upstream, OpenAI client.
struct AnthropicToOpenAi(AnthropicToChat);

impl Codec for AnthropicToOpenAi {
    fn event(&mut self, _name: &str, data: &str, m: &mut Meter, out: &mut Vec<Bytes>) -> Step {
        let Ok(value) = serde_json::from_str::<Value>(data) else {
            return malformed();
        };
        if matches!(
            value.get("type").and_then(Value::as_str),
            Some("content_block_start" | "content_block_delta")
        ) {
            m.produced = true;
            anthropic_event_text(&value, &mut m.output_text);
        }
        let flow = self.0.event(&value, out);
        m.usage = self.0.usage();
        flow_step(flow)
    }

    fn eof(&mut self, _m: &mut Meter, _out: &mut Vec<Bytes>) -> Step {
        Step::End(End::UpstreamDisconnected(
            "the stream closed without message_stop".into(),
        ))
    }

    fn error_frame(&self, end: &End) -> Bytes {
        openai_error_frame(end)
    }
}

/// OpenAI upstream, Anthropic client.
struct OpenAiToAnthropic(ChatToAnthropic);

impl Codec for OpenAiToAnthropic {
    fn event(&mut self, _name: &str, data: &str, m: &mut Meter, out: &mut Vec<Bytes>) -> Step {
        if data == "[DONE]" {
            return flow_step(self.0.end(out));
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return malformed();
        };
        if let Some(choices) = chunk.get("choices").and_then(Value::as_array) {
            for c in choices {
                collect_choice_text(c, "delta", &mut m.output_text);
            }
            m.produced |= !choices.is_empty();
        }
        let flow = self.0.chunk(&chunk, out);
        m.usage = self.0.usage();
        flow_step(flow)
    }

    fn eof(&mut self, _m: &mut Meter, out: &mut Vec<Bytes>) -> Step {
        if self.0.finished() {
            flow_step(self.0.end(out))
        } else {
            Step::End(End::UpstreamDisconnected(
                "the stream closed without a final chunk".into(),
            ))
        }
    }

    fn error_frame(&self, end: &End) -> Bytes {
        anthropic_error_frame(end)
    }
}

fn flow_step(flow: Flow) -> Step {
    match flow {
        Flow::Continue => Step::Continue,
        Flow::Complete => Step::End(End::Complete),
        Flow::Error => Step::End(End::UpstreamError),
    }
}

/// An event with its data exactly as received.
fn raw_frame(name: &str, data: &str) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + name.len() + 16);
    if !name.is_empty() {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    Bytes::from(out)
}

/// A chunk re-encoded, under its event name when it had one.
fn encode(event: &str, chunk: &Value) -> Bytes {
    if event.is_empty() || event == "message" {
        translate::openai_frame(chunk)
    } else {
        translate::anthropic_frame(event, chunk)
    }
}
