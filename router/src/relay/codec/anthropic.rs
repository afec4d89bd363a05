//! Anthropic upstream, Anthropic client: events relayed as they are.

use bytes::Bytes;
use serde_json::Value;

use super::{
    anthropic_error_frame, event_kind, malformed, meter_anthropic_event, raw_frame, send_name,
    Codec, Meter, Step,
};
use crate::relay::End;
use crate::translate::{self, AnthropicUsage};

/// Anthropic upstream, Anthropic client: every event's data passes as the
/// upstream sent it; only `message_start` gets the client's model name.
pub(super) struct AnthropicPass {
    pub(super) client_model: String,
    pub(super) usage: AnthropicUsage,
}

impl Codec for AnthropicPass {
    fn event(&mut self, name: &str, data: &str, m: &mut Meter, out: &mut Vec<Bytes>) -> Step {
        let Ok(mut value) = serde_json::from_str::<Value>(data) else {
            return malformed();
        };
        let kind = event_kind(name, &value);
        let name = send_name(name, &kind);
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
            "content_block_start" | "content_block_delta" => meter_anthropic_event(&value, m),
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

    fn fail(&mut self, end: &End, out: &mut Vec<Bytes>) {
        out.push(anthropic_error_frame(end));
    }
}
