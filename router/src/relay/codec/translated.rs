//! Translated streams: chat chunks or Anthropic events in, another format's
//! events out. One codec per upstream format, generic over the translator
//! that writes the client's format (chat → Messages or Responses;
//! Messages → chat or Responses), so reading, metering and the end of the
//! upstream's stream are written once.

use bytes::Bytes;
use serde_json::Value;

use super::view::{AnthropicEvent, ChatChunk};
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
    /// A `text_delta` of content block `index` (read in place, no JSON
    /// value built); `false` when the translator has no shortcut for it.
    fn text(&mut self, _index: u64, _text: &str, _out: &mut Vec<Bytes>) -> bool {
        false
    }
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
    fn text(&mut self, _id: &str, text: &str, out: &mut Vec<Bytes>) -> bool {
        ChatToResponses::text(self, text, out)
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
    fn text(&mut self, _index: u64, text: &str, out: &mut Vec<Bytes>) -> bool {
        AnthropicToChat::text(self, text, out);
        true
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
    fn text(&mut self, _index: u64, text: &str, out: &mut Vec<Bytes>) -> bool {
        AnthropicToResponses::text(self, text, out);
        true
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
        && delta.reasoning.is_none()
        && delta.refusal.is_none()
        && delta.tool_calls.is_none();
    if !plain {
        return None;
    }
    let text = delta.content.as_deref()?;
    Some((chunk.id.as_deref().unwrap_or("tollgate"), text))
}

/// A `content_block_delta` event's block index and text when it carries a
/// `text_delta`: the event most of a stream is made of.
fn text_delta<'a>(event: &'a AnthropicEvent<'a>) -> Option<(u64, &'a str)> {
    if event.kind.as_deref() != Some("content_block_delta") || event.usage.is_some() {
        return None;
    }
    let delta = event.delta.as_ref()?;
    let other = delta.thinking.is_some() || delta.partial_json.is_some();
    if delta.kind.as_deref() != Some("text_delta") || other || event.content_block.is_some() {
        return None;
    }
    Some((event.index.unwrap_or(0), delta.text.as_deref()?))
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

impl<T: FromChatChunks> FromChat<T> {
    /// A chunk read whole, as a JSON value: what every chunk but plain text
    /// takes.
    fn whole(&mut self, ev: &Event<'_>, m: &mut Meter, out: &mut Out) -> Step {
        let Ok(chunk) = serde_json::from_str::<Value>(ev.data) else {
            return malformed();
        };
        meter_chat_chunk(&chunk, m);
        let flow = self.0.chunk(&chunk, &mut out.frames);
        scrub_failure(&flow, out);
        m.usage = self.0.usage();
        flow_step(flow)
    }
}

impl<T: FromChatChunks> Codec for FromChat<T> {
    fn event(&mut self, ev: &Event<'_>, m: &mut Meter, out: &mut Out) -> Step {
        if ev.data == "[DONE]" {
            return flow_step(self.0.end(&mut out.frames));
        }
        let view = ChatChunk::read(ev.data);
        if let Some((id, text)) = view.as_ref().and_then(text_only) {
            if self.0.text(id, text, &mut out.frames) {
                m.produced = true;
                m.output.push(text);
                return Step::Continue;
            }
        }
        self.whole(ev, m, out)
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

impl<T: FromAnthropicEvents> FromAnthropic<T> {
    /// An event read whole, as a JSON value: what every event but a text
    /// delta takes.
    fn whole(&mut self, ev: &Event<'_>, m: &mut Meter, out: &mut Out) -> Step {
        let Ok(value) = serde_json::from_str::<Value>(ev.data) else {
            return malformed();
        };
        meter_anthropic_event(&value, m);
        let flow = self.0.event(&value, &mut out.frames);
        scrub_failure(&flow, out);
        m.usage = self.0.usage();
        flow_step(flow)
    }
}

impl<T: FromAnthropicEvents> Codec for FromAnthropic<T> {
    fn event(&mut self, ev: &Event<'_>, m: &mut Meter, out: &mut Out) -> Step {
        let view = AnthropicEvent::read(ev.data);
        if let Some((index, text)) = view.as_ref().and_then(text_delta) {
            if self.0.text(index, text, &mut out.frames) {
                m.produced = true;
                m.output.push(text);
                return Step::Continue;
            }
        }
        self.whole(ev, m, out)
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// `data` as an upstream event (named `name` when it has one).
    fn raw(name: &str, data: &str) -> String {
        if name.is_empty() {
            format!("data: {data}\n\n")
        } else {
            format!("event: {name}\ndata: {data}\n\n")
        }
    }

    /// Runs `events` through `codec`; what the client got, the metered
    /// bytes of output, whether output began and the usage.
    fn through(
        codec: &mut dyn Codec,
        events: &[(&str, String)],
    ) -> (String, u64, bool, Option<Usage>) {
        let (mut m, mut out) = (Meter::default(), Out::default());
        for (name, data) in events {
            let raw = raw(name, data);
            let at = raw.find("data: ").map(|i| i + 6);
            let ev = Event {
                raw: raw.as_bytes(),
                name,
                data,
                data_at: at,
            };
            if let Step::End(_) = codec.event(&ev, &mut m, &mut out) {
                break;
            }
        }
        let text = String::from_utf8(out.take().to_vec()).expect("UTF-8");
        (without_times(&text), m.output.bytes(), m.produced, m.usage)
    }

    /// `text` with the creation times taken out (two translators made a
    /// second apart differ only there).
    fn without_times(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("\"created") {
            let (head, tail) = rest.split_at(i);
            out.push_str(head);
            let colon = tail.find(':').expect("a member");
            let end = tail[colon + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(tail.len(), |e| colon + 1 + e);
            out.push_str(&tail[..colon + 1]);
            rest = &tail[end..];
        }
        out.push_str(rest);
        out
    }

    fn texts() -> [&'static str; 4] {
        [
            "Hello",
            " \"quoted\" \\ and\nnew line",
            " é 漢 😀 \u{1}",
            "",
        ]
    }

    fn anthropic_stream() -> Vec<(&'static str, String)> {
        let mut events = vec![
            ("message_start", json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [], "usage": {"input_tokens": 12, "output_tokens": 1}}}).to_string()),
            ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}).to_string()),
        ];
        for t in texts() {
            events.push(("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}).to_string()));
        }
        events.extend([
            ("content_block_stop", json!({"type": "content_block_stop", "index": 0}).to_string()),
            ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}}).to_string()),
            ("message_stop", json!({"type": "message_stop"}).to_string()),
        ]);
        events
    }

    fn chat_stream() -> Vec<(&'static str, String)> {
        let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "kimi", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).to_string()
        };
        let mut events = vec![(
            "",
            chunk(json!({"role": "assistant", "content": ""}), json!(null)),
        )];
        for t in texts() {
            events.push(("", chunk(json!({"content": t}), json!(null))));
        }
        events.extend([
            ("", chunk(json!({}), json!("stop"))),
            ("", json!({"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "kimi", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}}).to_string()),
            ("", "[DONE]".to_owned()),
        ]);
        events
    }

    /// A codec that never takes the shortcut: every event read whole.
    struct Whole<C>(C);

    impl<T: FromAnthropicEvents> Codec for Whole<FromAnthropic<T>> {
        fn event(&mut self, ev: &Event<'_>, m: &mut Meter, out: &mut Out) -> Step {
            self.0.whole(ev, m, out)
        }
        fn eof(&mut self, m: &mut Meter, out: &mut Out) -> Step {
            self.0.eof(m, out)
        }
        fn fail(&mut self, end: &End, out: &mut Out) {
            self.0.fail(end, out);
        }
    }

    impl<T: FromChatChunks> Codec for Whole<FromChat<T>> {
        fn event(&mut self, ev: &Event<'_>, m: &mut Meter, out: &mut Out) -> Step {
            if ev.data == "[DONE]" {
                return flow_step(self.0 .0.end(&mut out.frames));
            }
            self.0.whole(ev, m, out)
        }
        fn eof(&mut self, m: &mut Meter, out: &mut Out) -> Step {
            self.0.eof(m, out)
        }
        fn fail(&mut self, end: &End, out: &mut Out) {
            self.0.fail(end, out);
        }
    }

    /// Text deltas read in place give the client the same bytes, and the
    /// meter the same figures, as reading every event whole.
    #[test]
    fn text_read_in_place_translates_as_the_whole_event_does() {
        let request = serde_json::Map::new();
        let anthropic = anthropic_stream();
        let chat = chat_stream();
        // The shortcut is taken for the text deltas, and only for them.
        let shortcuts = |events: &[(&str, String)], read: fn(&str) -> bool| {
            events.iter().filter(|(_, d)| read(d)).count()
        };
        let anthropic_text =
            |d: &str| AnthropicEvent::read(d).is_some_and(|e| text_delta(&e).is_some());
        let chat_text = |d: &str| ChatChunk::read(d).is_some_and(|c| text_only(&c).is_some());
        assert_eq!(shortcuts(&anthropic, anthropic_text), texts().len());
        assert_eq!(shortcuts(&chat, chat_text), texts().len() + 1);

        let fast = through(
            &mut FromAnthropic(AnthropicToChat::new("m", 5, true)),
            &anthropic,
        );
        let slow = through(
            &mut Whole(FromAnthropic(AnthropicToChat::new("m", 5, true))),
            &anthropic,
        );
        assert_eq!(fast, slow);
        assert!(
            fast.0.contains(r#""content":" é 漢 😀 \u0001""#),
            "{}",
            fast.0
        );

        let fast = through(
            &mut FromAnthropic(AnthropicToResponses::new("m", &request)),
            &anthropic,
        );
        let slow = through(
            &mut Whole(FromAnthropic(AnthropicToResponses::new("m", &request))),
            &anthropic,
        );
        assert_eq!(fast, slow);
        assert_eq!(fast.0.matches("response.output_text.delta\n").count(), 3);

        let fast = through(&mut FromChat(ChatToResponses::new("m", &request)), &chat);
        let slow = through(
            &mut Whole(FromChat(ChatToResponses::new("m", &request))),
            &chat,
        );
        assert_eq!(fast, slow);
        assert!(fast.0.contains("response.completed"), "{}", fast.0);

        let fast = through(&mut FromChat(ChatToAnthropic::new("m")), &chat);
        let slow = through(&mut Whole(FromChat(ChatToAnthropic::new("m"))), &chat);
        assert_eq!(fast, slow);
    }
}
