//! Stream codecs: what the relay does with each upstream event, one codec per
//! pair of client and upstream formats.
//!
//! # Layout
//! - `openai.rs`: OpenAI chat upstream, OpenAI chat client (pass-through).
//! - `anthropic.rs`: Anthropic upstream, Anthropic client (pass-through).
//! - `translated.rs`: chat chunks or Anthropic events translated for the
//!   client, event by event (generic over the translator).
//! - `responses.rs`: every pair with a Responses client: pass-through from a
//!   Responses upstream (translated ones use `translated.rs`).

mod anthropic;
mod openai;
mod responses;
mod translated;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::End;
use crate::translate::{self, AnthropicToChat, AnthropicUsage, ChatToAnthropic, Flow};
use crate::usage::Usage;
use crate::wire::{self, Wire};

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
    /// The stream failed (`end`): the frames that end it in the client's
    /// format (an error event, or a terminal `response.failed`) go to `out`.
    fn fail(&mut self, end: &End, out: &mut Vec<Bytes>);
}

/// Builds the codec for a client and an upstream format.
pub(super) fn for_formats(
    client: Wire,
    upstream: Wire,
    client_model: &str,
    include_usage: bool,
    request: &Map<String, Value>,
) -> Box<dyn Codec> {
    match (client, upstream) {
        (Wire::OpenAi, Wire::OpenAi) => {
            Box::new(openai::OpenAiPass::new(client_model, include_usage))
        }
        (Wire::Anthropic, Wire::Anthropic) => Box::new(anthropic::AnthropicPass {
            client_model: client_model.to_owned(),
            usage: AnthropicUsage::default(),
        }),
        (Wire::OpenAi, Wire::Anthropic) => Box::new(translated::FromAnthropic(
            AnthropicToChat::new(client_model, crate::sim::now_secs(), include_usage),
        )),
        (Wire::Anthropic, Wire::OpenAi) => {
            Box::new(translated::FromChat(ChatToAnthropic::new(client_model)))
        }
        (Wire::Responses, upstream) => responses::for_upstream(upstream, client_model, request),
        // Nothing sends a chat or Messages client's request to a Responses
        // upstream: such a request is translated to the provider's chat format.
        (client, Wire::Responses) => {
            for_formats(client, Wire::OpenAi, client_model, include_usage, request)
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
    wire::openai::sse_error_event(&message, "server_error", code)
}

fn anthropic_error_frame(end: &End) -> Bytes {
    let (message, _) = failure(end);
    let kind = match end {
        End::Shutdown => "overloaded_error",
        _ => "api_error",
    };
    wire::anthropic::sse_error_event(kind, &message)
}

/// Meters a chat chunk: the text its choices carry (for estimates), and
/// whether output began.
fn meter_chat_chunk(chunk: &Value, m: &mut Meter) {
    if let Some(choices) = chunk.get("choices").and_then(Value::as_array) {
        for c in choices {
            super::collect_choice_text(c, "delta", &mut m.output_text);
        }
        m.produced |= !choices.is_empty();
    }
}

/// Meters an Anthropic event: the text a content block carries, and
/// whether output began.
fn meter_anthropic_event(event: &Value, m: &mut Meter) {
    if matches!(
        event.get("type").and_then(Value::as_str),
        Some("content_block_start" | "content_block_delta")
    ) {
        m.produced = true;
        translate::anthropic_event_text(event, &mut m.output_text);
    }
}

/// An event's kind: the data's `type`, or the SSE event name when the data
/// has none (Anthropic and the Responses API name each event after its
/// data's type; either serves).
fn event_kind(name: &str, data: &Value) -> String {
    data.get("type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .unwrap_or(name)
        .to_owned()
}

/// The name to send an event of `kind` under: the upstream's, unless it
/// sent none (or SSE's default, `message`).
fn send_name<'a>(name: &'a str, kind: &'a str) -> &'a str {
    if name.is_empty() || name == "message" {
        kind
    } else {
        name
    }
}

fn malformed() -> Step {
    Step::End(End::Malformed("an event's data is not JSON".into()))
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
