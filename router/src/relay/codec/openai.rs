//! OpenAI upstream, OpenAI client: chunks forwarded as they arrived, read in
//! place for metering; a chunk is rebuilt only for a vendor quirk or usage
//! the client did not ask for, and only that chunk.

use serde_json::Value;

use super::view::{self, ChatChunk};
use super::{
    encode, forward_edited, malformed, meter_chat_chunk, model_json, openai_error_frame, Codec,
    Event, Meter, Out, Step,
};
use crate::relay::End;
use crate::translate;
use crate::usage;

/// OpenAI upstream, OpenAI client: each chunk relayed with the client's model
/// name, vendor quirks smoothed, usage kept or dropped as the client asked.
pub(super) struct OpenAiPass {
    client_model: String,
    /// `client_model` as JSON text.
    model_json: String,
    include_usage: bool,
    saw_finish: bool,
}

impl OpenAiPass {
    pub(super) fn new(client_model: &str, include_usage: bool) -> Self {
        Self {
            client_model: client_model.to_owned(),
            model_json: model_json(client_model),
            include_usage,
            saw_finish: false,
        }
    }
}

impl Codec for OpenAiPass {
    fn event(&mut self, ev: &Event<'_>, m: &mut Meter, out: &mut Out) -> Step {
        if ev.data == "[DONE]" {
            out.forward(ev);
            return Step::End(End::Complete);
        }
        let Some(chunk) = ChatChunk::read(ev.data) else {
            // A shape the view does not know: read and rebuild it whole.
            return self.rebuild(ev, m, out, true);
        };
        if chunk.error.is_some() {
            // The upstream's own error event passes through, scrubbed of
            // configured secrets.
            out.push(&crate::redact::scrub(ev.raw));
            return Step::End(End::UpstreamError);
        }
        let reported = chunk.usage.filter(|u| u.get() != "null");
        if let Some(u) = reported.and_then(|u| view::usage_of(u, usage::from_openai)) {
            m.usage = Some(u);
        }
        let choices = chunk.choices.as_deref().unwrap_or_default();
        // Vendor quirks that need the chunk rebuilt: Kimi puts usage inside
        // the choice; MiniMax sends `"role": ""`, which typed clients reject.
        let mut quirk = false;
        for c in choices {
            if let Some(delta) = &c.delta {
                for text in delta.texts() {
                    m.output.push(text);
                }
                quirk |= delta.role.as_deref() == Some("");
            }
            self.saw_finish |= c.finish_reason.is_some();
            if let Some(u) = c.usage {
                quirk = true;
                if m.usage.is_none() {
                    m.usage = view::usage_of(u, usage::from_openai);
                }
            }
        }
        m.produced |= !choices.is_empty();
        // Without `include_usage` the client gets no usage member (an
        // upstream asked for usage sends `"usage": null` in every chunk)
        // and no chunk that only carried usage, as OpenAI does.
        let (remove, drop_check) = match self.include_usage {
            true => (None, false),
            false => (chunk.usage, choices.is_empty()),
        };
        if quirk || drop_check || !forward_edited(ev, chunk.model, &self.model_json, remove, out) {
            return self.rebuild(ev, m, out, false);
        }
        Step::Continue
    }

    fn eof(&mut self, _m: &mut Meter, out: &mut Out) -> Step {
        if self.saw_finish {
            // Some servers close after the last choice without `[DONE]`.
            out.push(b"data: [DONE]\n\n");
            Step::End(End::Complete)
        } else {
            Step::End(End::UpstreamDisconnected(
                "the stream closed without a final chunk".into(),
            ))
        }
    }

    fn fail(&mut self, end: &End, out: &mut Out) {
        out.push(&openai_error_frame(end));
    }
}

impl OpenAiPass {
    /// Reads the chunk whole and writes it anew; `meter` when the fast read
    /// did not already meter it.
    fn rebuild(&mut self, ev: &Event<'_>, m: &mut Meter, out: &mut Out, meter: bool) -> Step {
        let Ok(mut chunk) = serde_json::from_str::<Value>(ev.data) else {
            return malformed();
        };
        if meter {
            if chunk.get("error").is_some_and(|e| !e.is_null()) {
                out.push(&crate::redact::scrub(&encode(ev.name, &chunk)));
                return Step::End(End::UpstreamError);
            }
            if let Some(u) = usage::from_openai_body(&chunk) {
                m.usage = Some(u);
            }
            self.saw_finish |= meter_chat_chunk(&chunk, m);
        }
        if let Some(frame) = self.process(ev.name, &mut chunk) {
            out.push(&frame);
        }
        Step::Continue
    }

    /// Prepares one chunk for the client; `None` drops it.
    fn process(&mut self, event: &str, chunk: &mut Value) -> Option<bytes::Bytes> {
        let obj = chunk.as_object_mut()?;
        let mut has_choices = false;
        let mut choice_usage = None;
        if let Some(choices) = obj.get_mut("choices").and_then(Value::as_array_mut) {
            has_choices = !choices.is_empty();
            for c in choices.iter_mut().filter_map(Value::as_object_mut) {
                // Kimi's usage inside the choice: lifted to where OpenAI
                // clients look for it, below.
                if let Some(u) = c.remove("usage").filter(|u| !u.is_null()) {
                    choice_usage = Some(u);
                }
                if let Some(delta) = c.get_mut("delta").and_then(Value::as_object_mut) {
                    if delta.get("role").and_then(Value::as_str) == Some("") {
                        delta.remove("role");
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
        Some(encode(event, chunk))
    }
}
