//! Streams for Responses API clients: passed through from an upstream that
//! serves the Responses API, or translated from chat chunks and Anthropic
//! events. Every stream ends with exactly one terminal event:
//! `response.completed`, `response.incomplete` or `response.failed`.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::translated::{FromAnthropic, FromChat, RESPONSES_FAILURE_CODE};
use super::{event_kind, failure, malformed, raw_frame, send_name, Codec, Meter, Step};
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
            id: None,
            created_at: None,
            sequence: None,
        }
    }
}

impl Codec for ResponsesPass {
    fn event(&mut self, name: &str, data: &str, m: &mut Meter, out: &mut Vec<Bytes>) -> Step {
        let Ok(mut value) = serde_json::from_str::<Value>(data) else {
            return malformed();
        };
        let kind = event_kind(name, &value);
        let name = send_name(name, &kind);
        if let Some(n) = value.get("sequence_number").and_then(Value::as_u64) {
            self.sequence = Some(n);
        }
        if kind.ends_with(".delta") {
            m.produced = true;
            if let Some(d) = value.get("delta").and_then(Value::as_str) {
                m.output_text.push_str(d);
            }
        }
        let terminal = matches!(
            kind.as_str(),
            "response.completed" | "response.incomplete" | "response.failed"
        );
        if terminal {
            if let Some(u) = value
                .get("response")
                .and_then(translate::responses::usage_from_response)
            {
                m.usage = Some(u);
            }
        }
        match value.get_mut("response").and_then(Value::as_object_mut) {
            Some(response) => {
                if let Some(id) = response.get("id").and_then(Value::as_str) {
                    self.id = Some(id.to_owned());
                }
                if let Some(at) = response.get("created_at").and_then(Value::as_u64) {
                    self.created_at = Some(at);
                }
                if response.get("model").and_then(Value::as_str) != Some(&self.client_model) {
                    response.insert("model".into(), json!(self.client_model));
                }
                out.push(translate::anthropic_frame(name, &value));
            }
            None => out.push(raw_frame(name, data)),
        }
        match kind.as_str() {
            "response.completed" | "response.incomplete" => Step::End(End::Complete),
            "response.failed" | "error" => Step::End(End::UpstreamError),
            _ => Step::Continue,
        }
    }

    fn eof(&mut self, _m: &mut Meter, _out: &mut Vec<Bytes>) -> Step {
        Step::End(End::UpstreamDisconnected(
            "the stream closed without a terminal response event".into(),
        ))
    }

    fn fail(&mut self, end: &End, out: &mut Vec<Bytes>) {
        let (message, _) = failure(end);
        let sequence = self.sequence.map_or(0, |n| n + 1);
        let response = json!({
            "id": self.id.as_deref().unwrap_or("resp_tollgate"),
            "object": "response",
            "created_at": self.created_at.unwrap_or_else(crate::sim::now_secs),
            "status": "failed",
            "model": self.client_model,
            "output": [],
            "error": {"code": RESPONSES_FAILURE_CODE, "message": message},
        });
        out.push(translate::anthropic_frame(
            "response.failed",
            &json!({"type": "response.failed", "sequence_number": sequence, "response": response}),
        ));
    }
}
