//! OpenAI upstream, OpenAI client: chunks relayed with vendor quirks smoothed.

use bytes::Bytes;
use serde_json::Value;

use super::{encode, malformed, openai_error_frame, Codec, Meter, Step, DONE};
use crate::relay::{collect_choice_text, End};
use crate::translate;
use crate::usage;

/// OpenAI upstream, OpenAI client: each chunk relayed with the client's model
/// name, vendor quirks smoothed, usage kept or dropped as the client asked.
pub(super) struct OpenAiPass {
    client_model: String,
    include_usage: bool,
    saw_finish: bool,
}

impl OpenAiPass {
    pub(super) fn new(client_model: &str, include_usage: bool) -> Self {
        Self {
            client_model: client_model.to_owned(),
            include_usage,
            saw_finish: false,
        }
    }
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

    fn fail(&mut self, end: &End, out: &mut Vec<Bytes>) {
        out.push(openai_error_frame(end));
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
