//! Streams for Responses API clients: passed through from an upstream that
//! serves the Responses API, or translated from chat chunks and Anthropic
//! events. Every stream ends with exactly one terminal event:
//! `response.completed`, `response.incomplete` or `response.failed`.

use serde_json::{json, Map, Value};

use super::translated::{responses_failure_code, FromAnthropic, FromChat};
use super::view::{self, ResponsesEvent, Text};
use super::{
    event_kind, failure, forward_with_model, malformed, model_json, named_frame, send_name, Codec,
    Event, Meter, Out, Step,
};
use crate::relay::End;
use crate::translate;
use crate::translate::responses::{AnthropicToResponses, ChatToResponses};
use crate::wire::Wire;

/// The codec for a Responses client and an upstream speaking `upstream`.
pub(super) fn for_upstream(
    upstream: Wire,
    client_model: &str,
    request: &Map<String, Value>,
) -> Box<dyn Codec> {
    match upstream {
        Wire::Responses => Box::new(ResponsesPass::new(client_model)),
        Wire::OpenAi => Box::new(FromChat(ChatToResponses::new(client_model, request))),
        Wire::Anthropic => Box::new(FromAnthropic(AnthropicToResponses::new(
            client_model,
            request,
        ))),
    }
}

/// Responses upstream, Responses client: every event's data passes as the
/// upstream sent it, except that events carrying the response object show
/// the client's model name.
struct ResponsesPass {
    client_model: String,
    /// `client_model` as JSON text.
    model_json: String,
    /// The upstream's response id, once `response.created` arrived.
    id: Option<String>,
    /// The upstream's `created_at`, which a failure's response repeats
    /// (clients read it as required).
    created_at: Option<u64>,
    /// The last sequence number seen, so a failure continues the count.
    sequence: Option<u64>,
}

impl ResponsesPass {
    fn new(client_model: &str) -> Self {
        Self {
            client_model: client_model.to_owned(),
            model_json: model_json(client_model),
            id: None,
            created_at: None,
            sequence: None,
        }
    }
}

impl Codec for ResponsesPass {
    fn event(&mut self, ev: &Event<'_>, m: &mut Meter, out: &mut Out) -> Step {
        let Some(view) = ResponsesEvent::read(ev.data) else {
            // A shape the view does not know: read and rebuild it whole.
            return self.rebuild(ev, m, out, true);
        };
        let kind = view
            .kind
            .as_deref()
            .filter(|k| !k.is_empty())
            .unwrap_or(ev.name);
        let named = send_name(ev.name, kind) == ev.name;
        if let Some(n) = view.sequence_number {
            self.sequence = Some(n);
        }
        if kind.ends_with(".delta") {
            m.produced = true;
            if let Some(delta) = view
                .delta
                .and_then(|d| serde_json::from_str::<Text<'_>>(d.get()).ok())
            {
                m.output.push(&delta);
            }
        }
        let mut model = None;
        if let Some(response) = &view.response {
            if let Some(id) = &response.id {
                self.id = Some(id.to_string());
            }
            if let Some(at) = response.created_at {
                self.created_at = Some(at);
            }
            if is_terminal(kind) {
                if let Some(u) = response
                    .usage
                    .and_then(|u| view::usage_of(u, translate::responses::from_responses))
                {
                    m.usage = Some(u);
                }
            }
            // A response object without a model gets the client's.
            if response.model.is_none() {
                return self.rebuild(ev, m, out, false);
            }
            model = response.model;
        }
        if matches!(kind, "error" | "response.failed") {
            // An upstream's failure is rebuilt (the response gets the
            // client's model name) and scrubbed of configured secrets.
            return self.rebuild(ev, m, out, false);
        }
        if !named || !forward_with_model(ev, model, &self.model_json, out) {
            return self.rebuild(ev, m, out, false);
        }
        end_step(kind)
    }

    fn eof(&mut self, _m: &mut Meter, _out: &mut Out) -> Step {
        Step::End(End::UpstreamDisconnected(
            "the stream closed without a terminal response event".into(),
        ))
    }

    fn fail(&mut self, end: &End, out: &mut Out) {
        let (message, _) = failure(end);
        let sequence = self.sequence.map_or(0, |n| n + 1);
        let response = json!({
            "id": self.id.as_deref().unwrap_or("resp_tollgate"),
            "object": "response",
            "created_at": self.created_at.unwrap_or_else(crate::sim::now_secs),
            "status": "failed",
            "model": self.client_model,
            "output": [],
            "error": {"code": responses_failure_code(end), "message": message},
        });
        out.push(&translate::anthropic_frame(
            "response.failed",
            &json!({"type": "response.failed", "sequence_number": sequence, "response": response}),
        ));
    }
}

impl ResponsesPass {
    /// Reads the event whole and writes it anew, under its name and with
    /// the client's model name; `meter` when the fast read did not.
    fn rebuild(&mut self, ev: &Event<'_>, m: &mut Meter, out: &mut Out, meter: bool) -> Step {
        let Ok(mut value) = serde_json::from_str::<Value>(ev.data) else {
            return malformed();
        };
        let kind = event_kind(ev.name, &value);
        let name = send_name(ev.name, &kind);
        if meter {
            if let Some(n) = value.get("sequence_number").and_then(Value::as_u64) {
                self.sequence = Some(n);
            }
            if kind.ends_with(".delta") {
                m.produced = true;
                if let Some(d) = value.get("delta").and_then(Value::as_str) {
                    m.output.push(d);
                }
            }
            if is_terminal(&kind) {
                if let Some(u) = value
                    .get("response")
                    .and_then(translate::responses::usage_from_response)
                {
                    m.usage = Some(u);
                }
            }
        }
        match value.get_mut("response").and_then(Value::as_object_mut) {
            Some(response) => {
                if meter {
                    if let Some(id) = response.get("id").and_then(Value::as_str) {
                        self.id = Some(id.to_owned());
                    }
                    if let Some(at) = response.get("created_at").and_then(Value::as_u64) {
                        self.created_at = Some(at);
                    }
                }
                if response.get("model").and_then(Value::as_str) != Some(&self.client_model) {
                    response.insert("model".into(), json!(self.client_model));
                }
                out.push(&crate::redact::scrub(&translate::anthropic_frame(
                    name, &value,
                )));
            }
            None => out.push(&crate::redact::scrub(&named_frame(name, ev.data))),
        }
        end_step(&kind)
    }
}

fn is_terminal(kind: &str) -> bool {
    matches!(
        kind,
        "response.completed" | "response.incomplete" | "response.failed"
    )
}

fn end_step(kind: &str) -> Step {
    match kind {
        "response.completed" | "response.incomplete" => Step::End(End::Complete),
        "response.failed" | "error" => Step::End(End::UpstreamError),
        _ => Step::Continue,
    }
}
