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
mod scan;
mod translated;
mod view;

#[cfg(feature = "fuzzing")]
pub(crate) use view::check_readers;

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use super::{model_json, End};
use crate::estimate::OutputTally;
use crate::translate::{self, AnthropicToChat, ChatToAnthropic, Flow};
use crate::usage::Usage;
use crate::wire::{self, Wire};

/// What the relay learns from the events, for metering.
#[derive(Debug, Default)]
pub(super) struct Meter {
    pub usage: Option<Usage>,
    /// The output so far, for an estimate when usage is missing.
    pub output: OutputTally,
    /// Set once the model produced output (time to first token).
    pub produced: bool,
}

/// What one event did.
pub(super) enum Step {
    Continue,
    End(End),
}

/// One upstream event as the framer split it, with its fields read in place.
pub(super) struct Event<'a> {
    /// The whole event as it arrived.
    pub raw: &'a [u8],
    /// The `event:` field; empty when there was none.
    pub name: &'a str,
    /// The data, trimmed.
    pub data: &'a str,
    /// Where `data` lies in `raw`, when it was sent as one line.
    pub data_at: Option<usize>,
}

/// The frames for the client, gathered into one buffer so that everything
/// one upstream read produced is written in one piece.
#[derive(Debug, Default)]
pub(super) struct Out {
    buf: BytesMut,
    /// Frames a translator produced, moved into `buf` in order.
    pub frames: Vec<Bytes>,
    /// Frames written so far.
    count: u64,
}

impl Out {
    fn flush_frames(&mut self) {
        for frame in self.frames.drain(..) {
            self.buf.extend_from_slice(&frame);
            self.count += 1;
        }
    }

    /// Forwards the event as it arrived.
    pub fn forward(&mut self, ev: &Event<'_>) {
        self.flush_frames();
        self.buf.extend_from_slice(ev.raw);
        self.count += 1;
    }

    /// Forwards the event with spans of its data replaced (`edits`, in
    /// order, not overlapping); `false` (and nothing written) when the data
    /// was not sent as one line.
    pub fn splice(&mut self, ev: &Event<'_>, edits: &[(Range<usize>, &str)]) -> bool {
        let Some(at) = ev.data_at else {
            return false;
        };
        self.flush_frames();
        let mut from = 0;
        for (span, with) in edits {
            self.buf.extend_from_slice(&ev.raw[from..at + span.start]);
            self.buf.extend_from_slice(with.as_bytes());
            from = at + span.end;
        }
        self.buf.extend_from_slice(&ev.raw[from..]);
        self.count += 1;
        true
    }

    /// Adds a frame of the gateway's own.
    pub fn push(&mut self, frame: &[u8]) {
        self.flush_frames();
        self.buf.extend_from_slice(frame);
        self.count += 1;
    }

    /// Bytes waiting to be sent.
    pub fn len(&self) -> usize {
        self.buf.len() + self.frames.iter().map(Bytes::len).sum::<usize>()
    }

    /// Whether nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.frames.is_empty()
    }

    /// Everything gathered so far, as one piece.
    pub fn take(&mut self) -> Bytes {
        self.flush_frames();
        self.buf.split().freeze()
    }

    /// Frames written so far.
    pub fn count(&self) -> u64 {
        self.count + self.frames.len() as u64
    }
}

pub(super) trait Codec: Send {
    /// One upstream event. Frames for the client go to `out`.
    fn event(&mut self, ev: &Event<'_>, m: &mut Meter, out: &mut Out) -> Step;
    /// The upstream body ended before the codec ended the stream.
    fn eof(&mut self, m: &mut Meter, out: &mut Out) -> Step;
    /// The stream failed (`end`): the frames that end it in the client's
    /// format (an error event, or a terminal `response.failed`) go to `out`.
    fn fail(&mut self, end: &End, out: &mut Out);
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
        (Wire::Anthropic, Wire::Anthropic) => Box::new(anthropic::AnthropicPass::new(client_model)),
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
        End::Budget(message) => (message.clone(), "insufficient_quota"),
        _ => ("The upstream stream failed.".to_owned(), "upstream_error"),
    }
}

fn openai_error_frame(end: &End) -> Bytes {
    let (message, code) = failure(end);
    let kind = match end {
        End::Budget(_) => "insufficient_quota",
        _ => "server_error",
    };
    wire::openai::sse_error_event(&message, kind, code)
}

fn anthropic_error_frame(end: &End) -> Bytes {
    let (message, _) = failure(end);
    let kind = match end {
        End::Shutdown => "overloaded_error",
        // As the Messages door answers a budget refused at admission (429).
        End::Budget(_) => "rate_limit_error",
        _ => "api_error",
    };
    wire::anthropic::sse_error_event(kind, &message)
}

/// Meters a chat chunk: the text its choices carry (for estimates), and
/// whether output began. Says whether a choice finished.
fn meter_chat_chunk(chunk: &Value, m: &mut Meter) -> bool {
    let mut finished = false;
    if let Some(choices) = chunk.get("choices").and_then(Value::as_array) {
        for c in choices {
            finished |= super::collect_choice_text(c, "delta", &mut m.output);
        }
        m.produced |= !choices.is_empty();
    }
    finished
}

/// Meters an Anthropic event: the text a content block carries, and
/// whether output began.
fn meter_anthropic_event(event: &Value, m: &mut Meter) {
    if matches!(
        event.get("type").and_then(Value::as_str),
        Some("content_block_start" | "content_block_delta")
    ) {
        m.produced = true;
        translate::anthropic_event_text(event, |t| m.output.push(t));
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

/// Forwards `ev` with the model name at `model` (raw JSON, borrowed from the
/// event's data) replaced by `client_model_json` when it differs, and the
/// object members whose values are at `remove` taken out; `false` when the
/// event must be rebuilt instead.
fn forward_edited(
    ev: &Event<'_>,
    model: Option<view::Raw<'_>>,
    client_model_json: &str,
    remove: Option<view::Raw<'_>>,
    out: &mut Out,
) -> bool {
    let mut edits: [(Range<usize>, &str); 2] = Default::default();
    let mut n = 0;
    if let Some(m) = model.filter(|m| m.get() != client_model_json) {
        let Some(span) = view::span_in(ev.data, m.get()) else {
            return false;
        };
        edits[n] = (span, client_model_json);
        n += 1;
    }
    if let Some(value) = remove {
        let Some(span) =
            view::span_in(ev.data, value.get()).and_then(|v| view::member_span(ev.data, v))
        else {
            return false;
        };
        edits[n] = (span, "");
        n += 1;
    }
    let edits = &mut edits[..n];
    edits.sort_by_key(|(span, _)| span.start);
    if edits.windows(2).any(|w| w[0].0.end > w[1].0.start) {
        return false;
    }
    if edits.is_empty() {
        out.forward(ev);
        true
    } else {
        out.splice(ev, edits)
    }
}

/// Forwards `ev` with its model name rewritten (see [`forward_edited`]).
fn forward_with_model(
    ev: &Event<'_>,
    model: Option<view::Raw<'_>>,
    client_model_json: &str,
    out: &mut Out,
) -> bool {
    forward_edited(ev, model, client_model_json, None, out)
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

/// An event with its data exactly as received, under `name`.
fn named_frame(name: &str, data: &str) -> Bytes {
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
