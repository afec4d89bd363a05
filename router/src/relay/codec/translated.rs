//! Translated streams: chat chunks or Anthropic events in, another format's
//! events out. One codec per upstream format, generic over the translator
//! that writes the client's format (chat → Messages or Responses;
//! Messages → chat or Responses), so reading, metering and the end of the
//! upstream's stream are written once.

use bytes::Bytes;
use serde_json::Value;

use super::view::ChatChunk;
use super::{
    anthropic_error_frame, failure, flow_step, malformed, meter_anthropic_event, meter_chat_chunk,
    openai_error_frame, Codec, Event, Meter, Out, Step,
};
use crate::relay::End;
use crate::translate::responses::{AnthropicToResponses, ChatToResponses};
use crate::translate::{AnthropicToChat, ChatToAnthropic, Flow};
use crate::usage::Usage;

/// A translator of an OpenAI chat stream into the client's format.
pub(super) trait FromChatChunks: Send {
    fn chunk(&mut self, chunk: &Value, out: &mut Vec<Bytes>) -> Flow;
    /// A chunk that only carries `text` (read in place, no JSON value
    /// built); `false` when the translator has no shortcut for it.
    fn text(&mut self, _id: &str, _text: &str, _out: &mut Vec<Bytes>) -> bool {
        false
    }
    /// The upstream finished (`[DONE]`, or its end after a finish reason).
    fn end(&mut self, out: &mut Vec<Bytes>) -> Flow;
    /// Whether a finish reason arrived.
    fn finished(&self) -> bool;
    fn usage(&self) -> Option<Usage>;
    /// The frames that end a stream that failed, in the client's format.
    fn fail(&mut self, end: &End, out: &mut Vec<Bytes>);
}

/// A translator of an Anthropic event stream into the client's format.
pub(super) trait FromAnthropicEvents: Send {
    fn event(&mut self, event: &Value, out: &mut Vec<Bytes>) -> Flow;
    fn usage(&self) -> Option<Usage>;
    /// The frames that end a stream that failed, in the client's format.
    fn fail(&mut self, end: &End, out: &mut Vec<Bytes>);
}

/// The code a stream the gateway ends carries in its `response.failed`: a
/// broken or slow upstream and a shutdown are `server_error`, which agents
/// retry; a budget that ran out is `insufficient_quota`, which they do not.
pub(super) fn responses_failure_code(end: &End) -> &'static str {
    match end {
        End::Budget(_) => "insufficient_quota",
        _ => "server_error",
    }
}

impl FromChatChunks for ChatToAnthropic {
    fn chunk(&mut self, chunk: &Value, out: &mut Vec<Bytes>) -> Flow {
        ChatToAnthropic::chunk(self, chunk, out)
    }
    fn text(&mut self, id: &str, text: &str, out: &mut Vec<Bytes>) -> bool {
        ChatToAnthropic::text(self, id, text, out);
        true
    }
    fn end(&mut self, out: &mut Vec<Bytes>) -> Flow {
        ChatToAnthropic::end(self, out)
    }
    fn finished(&self) -> bool {
        ChatToAnthropic::finished(self)
    }
    fn usage(&self) -> Option<Usage> {
        ChatToAnthropic::usage(self)
    }
    fn fail(&mut self, end: &End, out: &mut Vec<Bytes>) {
        out.push(anthropic_error_frame(end));
    }
}

impl FromChatChunks for ChatToResponses {
    fn chunk(&mut self, chunk: &Value, out: &mut Vec<Bytes>) -> Flow {
        ChatToResponses::chunk(self, chunk, out)
    }
    fn end(&mut self, out: &mut Vec<Bytes>) -> Flow {
        ChatToResponses::end(self, out)
    }
    fn finished(&self) -> bool {
        ChatToResponses::finished(self)
    }
    fn usage(&self) -> Option<Usage> {
        ChatToResponses::usage(self)
    }
    fn fail(&mut self, end: &End, out: &mut Vec<Bytes>) {
        let (message, _) = failure(end);
        ChatToResponses::fail(self, responses_failure_code(end), &message, out);
    }
}

impl FromAnthropicEvents for AnthropicToChat {
    fn event(&mut self, event: &Value, out: &mut Vec<Bytes>) -> Flow {
        AnthropicToChat::event(self, event, out)
    }
    fn usage(&self) -> Option<Usage> {
        AnthropicToChat::usage(self)
    }
    fn fail(&mut self, end: &End, out: &mut Vec<Bytes>) {
        out.push(openai_error_frame(end));
    }
}

impl FromAnthropicEvents for AnthropicToResponses {
    fn event(&mut self, event: &Value, out: &mut Vec<Bytes>) -> Flow {
        AnthropicToResponses::event(self, event, out)
    }
    fn usage(&self) -> Option<Usage> {
        AnthropicToResponses::usage(self)
    }
    fn fail(&mut self, end: &End, out: &mut Vec<Bytes>) {
        let (message, _) = failure(end);
        AnthropicToResponses::fail(self, responses_failure_code(end), &message, out);
    }
}

/// A chunk's id and text when the chunk carries nothing else a translator
/// reads: one choice whose delta holds only content (and perhaps its role),
/// no finish, no usage, no error.
fn text_only<'a>(chunk: &'a ChatChunk<'a>) -> Option<(&'a str, &'a str)> {
    let [choice] = chunk.choices.as_deref()? else {
        return None;
    };
    let delta = choice.delta.as_ref()?;
    let plain = chunk.error.is_none()
        && chunk.usage.is_none_or(|u| u.get() == "null")
        && choice.usage.is_none()
        && choice.finish_reason.is_none()
        && delta.reasoning_content.is_none()
        && delta.tool_calls.is_none();
    if !plain {
        return None;
    }
    let text = delta.content.as_deref()?;
    Some((chunk.id.as_deref().unwrap_or("tollgate"), text))
}

/// An upstream's error, translated, carries its message: scrubbed of
/// configured secrets like any relayed error.
fn scrub_failure(flow: &Flow, out: &mut Out) {
    if matches!(flow, Flow::Error) {
        for frame in &mut out.frames {
            if let std::borrow::Cow::Owned(clean) = crate::redact::scrub(frame) {
                *frame = Bytes::from(clean);
            }
        }
    }
}

/// An OpenAI chat upstream, translated for the client.
pub(super) struct FromChat<T>(pub(super) T);

impl<T: FromChatChunks> Codec for FromChat<T> {
    fn event(&mut self, ev: &Event<'_>, m: &mut Meter, out: &mut Out) -> Step {
        if ev.data == "[DONE]" {
            return flow_step(self.0.end(&mut out.frames));
        }
        let view = serde_json::from_str::<ChatChunk<'_>>(ev.data).ok();
        if let Some((id, text)) = view.as_ref().and_then(text_only) {
            if self.0.text(id, text, &mut out.frames) {
                m.produced = true;
                m.output.push(text);
                return Step::Continue;
            }
        }
        let Ok(chunk) = serde_json::from_str::<Value>(ev.data) else {
            return malformed();
        };
        meter_chat_chunk(&chunk, m);
        let flow = self.0.chunk(&chunk, &mut out.frames);
        scrub_failure(&flow, out);
        m.usage = self.0.usage();
        flow_step(flow)
    }

    fn eof(&mut self, _m: &mut Meter, out: &mut Out) -> Step {
        if self.0.finished() {
            // Some servers close after the last choice without `[DONE]`.
            flow_step(self.0.end(&mut out.frames))
        } else {
            Step::End(End::UpstreamDisconnected(
                "the stream closed without a final chunk".into(),
            ))
        }
    }

    fn fail(&mut self, end: &End, out: &mut Out) {
        self.0.fail(end, &mut out.frames);
    }
}

/// An Anthropic upstream, translated for the client.
pub(super) struct FromAnthropic<T>(pub(super) T);

impl<T: FromAnthropicEvents> Codec for FromAnthropic<T> {
    fn event(&mut self, ev: &Event<'_>, m: &mut Meter, out: &mut Out) -> Step {
        let Ok(value) = serde_json::from_str::<Value>(ev.data) else {
            return malformed();
        };
        meter_anthropic_event(&value, m);
        let flow = self.0.event(&value, &mut out.frames);
        scrub_failure(&flow, out);
        m.usage = self.0.usage();
        flow_step(flow)
    }

    fn eof(&mut self, _m: &mut Meter, _out: &mut Out) -> Step {
        Step::End(End::UpstreamDisconnected(
            "the stream closed without message_stop".into(),
        ))
    }

    fn fail(&mut self, end: &End, out: &mut Out) {
        self.0.fail(end, &mut out.frames);
    }
}
