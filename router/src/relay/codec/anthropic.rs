//! Anthropic upstream, Anthropic client: events forwarded as they arrived.

use serde_json::Value;

use super::view::AnthropicEvent;
use super::{
    anthropic_error_frame, event_kind, forward_with_model, malformed, meter_anthropic_event,
    model_json, named_frame, send_name, Codec, Event, Meter, Out, Step,
};
use crate::relay::End;
use crate::translate::{self, AnthropicUsage};

/// Anthropic upstream, Anthropic client: every event passes as the upstream
/// sent it, read in place for metering; only `message_start` gets the
/// client's model name, spliced in.
pub(super) struct AnthropicPass {
    client_model: String,
    /// `client_model` as JSON text.
    model_json: String,
    usage: AnthropicUsage,
}

impl AnthropicPass {
    pub(super) fn new(client_model: &str) -> Self {
        Self {
            client_model: client_model.to_owned(),
            model_json: model_json(client_model),
            usage: AnthropicUsage::default(),
        }
    }
}

impl Codec for AnthropicPass {
    fn event(&mut self, ev: &Event<'_>, m: &mut Meter, out: &mut Out) -> Step {
        let Some(view) = AnthropicEvent::read(ev.data) else {
            // A shape the view does not know: read and rebuild it whole.
            return self.rebuild(ev, m, out, true);
        };
        let kind = view
            .kind
            .as_deref()
            .filter(|k| !k.is_empty())
            .unwrap_or(ev.name);
        // An event the upstream sent without its name gets one: the SDKs
        // dispatch on it.
        let named = send_name(ev.name, kind) == ev.name;
        let mut model = None;
        match kind {
            "message_start" => {
                if let Some(message) = &view.message {
                    self.merge(message.usage);
                    model = message.model;
                }
                m.usage = self.usage.usage();
            }
            "message_delta" => {
                self.merge(view.usage);
                m.usage = self.usage.usage();
            }
            "content_block_start" | "content_block_delta" => {
                m.produced = true;
                for text in view.texts() {
                    m.output.push(text);
                }
            }
            _ => {}
        }
        if kind == "error" && named {
            // The upstream's error passes, scrubbed of configured secrets.
            out.push(&crate::redact::scrub(ev.raw));
        } else if !named || !forward_with_model(ev, model, &self.model_json, out) {
            return self.rebuild(ev, m, out, false);
        }
        end_step(kind)
    }

    fn eof(&mut self, _m: &mut Meter, _out: &mut Out) -> Step {
        Step::End(End::UpstreamDisconnected(
            "the stream closed without message_stop".into(),
        ))
    }

    fn fail(&mut self, end: &End, out: &mut Out) {
        out.push(&anthropic_error_frame(end));
    }
}

impl AnthropicPass {
    fn merge(&mut self, usage: Option<super::view::Raw<'_>>) {
        if let Some(raw) = usage {
            let value = serde_json::from_str::<Value>(raw.get()).ok();
            self.usage.merge(value.as_ref());
        }
    }

    /// Reads the event whole and writes it anew, under its name and with
    /// the client's model name; `meter` when the fast read did not.
    fn rebuild(&mut self, ev: &Event<'_>, m: &mut Meter, out: &mut Out, meter: bool) -> Step {
        let Ok(mut value) = serde_json::from_str::<Value>(ev.data) else {
            return malformed();
        };
        let kind = event_kind(ev.name, &value);
        let name = send_name(ev.name, &kind);
        if meter {
            match kind.as_str() {
                "message_start" => {
                    self.usage.merge(value.pointer("/message/usage"));
                    m.usage = self.usage.usage();
                }
                "message_delta" => {
                    self.usage.merge(value.get("usage"));
                    m.usage = self.usage.usage();
                }
                _ => meter_anthropic_event(&value, m),
            }
        }
        let model = value.pointer_mut("/message/model");
        if let Some(model) = model.filter(|v| v.as_str() != Some(&self.client_model)) {
            *model = Value::String(self.client_model.clone());
            out.push(&translate::anthropic_frame(name, &value));
        } else {
            out.push(&crate::redact::scrub(&named_frame(name, ev.data)));
        }
        end_step(&kind)
    }
}

fn end_step(kind: &str) -> Step {
    match kind {
        "message_stop" => Step::End(End::Complete),
        "error" => Step::End(End::UpstreamError),
        _ => Step::Continue,
    }
}
