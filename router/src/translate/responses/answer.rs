//! Whole answers: an OpenAI chat completion or an Anthropic message as a
//! Responses object.

use serde_json::{json, Map, Value};

use super::envelope::Envelope;
use super::output::{self, call_item, call_prefix, message_item, reasoning_item, Meta, Tail};
use super::tools::ToolNames;
use crate::usage::{self, Usage};

/// `incomplete_details.reason` for an OpenAI `finish_reason`.
pub(crate) fn incomplete_for_finish(finish_reason: &str) -> Option<&'static str> {
    match finish_reason {
        "length" => Some("max_output_tokens"),
        "content_filter" => Some("content_filter"),
        _ => None,
    }
}

/// `incomplete_details.reason` for an Anthropic `stop_reason`.
pub(crate) fn incomplete_for_stop(stop_reason: &str) -> Option<&'static str> {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => Some("max_output_tokens"),
        "refusal" => Some("content_filter"),
        _ => None,
    }
}

/// Output items being gathered, with their ids.
struct Output<'a> {
    meta: &'a Meta,
    names: ToolNames,
    items: Vec<Value>,
}

impl Output<'_> {
    fn reasoning(&mut self, text: &str, envelope: Envelope) {
        let id = self.meta.item_id("rs", self.items.len());
        self.items.push(reasoning_item(&id, text, Some(&envelope)));
    }

    fn message(&mut self, content: Vec<Value>) {
        let id = self.meta.item_id("msg", self.items.len());
        self.items.push(message_item(&id, content, "completed"));
    }

    fn call(&mut self, call_id: Option<&str>, upstream_name: &str, arguments: &str) {
        let n = self.items.len();
        let tool = self.names.resolve(upstream_name);
        let id = self.meta.item_id(call_prefix(tool.kind), n);
        let call_id = match call_id {
            Some(c) if !c.is_empty() => c.to_owned(),
            _ => self.meta.call_id(n),
        };
        self.items
            .push(call_item(&id, &tool, &call_id, arguments, "completed"));
    }

    /// The response object; the last item is marked incomplete when the
    /// answer was cut.
    fn finish(mut self, incomplete: Option<&str>, usage: Option<Usage>) -> Value {
        let status = if incomplete.is_some() {
            if let Some(last) = self.items.last_mut().filter(|i| i.get("status").is_some()) {
                last["status"] = json!("incomplete");
            }
            "incomplete"
        } else {
            "completed"
        };
        let tail = Tail {
            usage: usage.as_ref(),
            incomplete,
            error: None,
        };
        self.meta.response(status, &self.items, tail)
    }
}

/// Translates an OpenAI chat completion into a Responses object named
/// `client_model`, answering `request` (whose settings it echoes and whose
/// custom and namespaced tools it maps calls back to). Only the first choice
/// is used. `reasoning_content` becomes a reasoning item carrying it in
/// Tollgate's envelope; `finish_reason: length` makes the response
/// `incomplete` (`max_output_tokens`), `content_filter` likewise
/// (`content_filter`).
pub fn chat_to_response(chat: &Value, client_model: &str, request: &Map<String, Value>) -> Value {
    let mut meta = Meta::new(client_model, request);
    meta.identify(
        chat.get("id").and_then(Value::as_str),
        chat.get("created").and_then(Value::as_u64),
    );
    let mut out = Output {
        meta: &meta,
        names: ToolNames::of(request),
        items: Vec::new(),
    };
    let choice = chat
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .unwrap_or(&Value::Null);
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let reasoning = ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| msg.get(*k).and_then(Value::as_str))
        .filter(|r| !r.is_empty());
    if let Some(r) = reasoning {
        out.reasoning(
            r,
            Envelope::Chat {
                reasoning_content: r.to_owned(),
            },
        );
    }
    let mut content = Vec::new();
    if let Some(t) = msg
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        content.push(output::output_text(t));
    }
    if let Some(r) = msg
        .get("refusal")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        content.push(json!({"type": "refusal", "refusal": r}));
    }
    if !content.is_empty() {
        out.message(content);
    }
    for c in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.call(
            c.get("id").and_then(Value::as_str),
            c.pointer("/function/name")
                .and_then(Value::as_str)
                .unwrap_or(""),
            c.pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or(""),
        );
    }
    let incomplete = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .and_then(incomplete_for_finish);
    out.finish(incomplete, usage::from_openai_body(chat))
}

/// Translates an Anthropic message into a Responses object named
/// `client_model`, answering `request`. Blocks keep their order: thinking →
/// a reasoning item carrying the signature in Tollgate's envelope,
/// `redacted_thinking` → a reasoning item with an empty summary and the
/// envelope, consecutive text blocks → one message, `tool_use` → a call item.
/// Server-tool blocks are skipped. `max_tokens` makes the response
/// `incomplete` (`max_output_tokens`), `refusal` likewise (`content_filter`).
pub fn message_to_response(msg: &Value, client_model: &str, request: &Map<String, Value>) -> Value {
    let mut meta = Meta::new(client_model, request);
    meta.identify(msg.get("id").and_then(Value::as_str), None);
    let mut out = Output {
        meta: &meta,
        names: ToolNames::of(request),
        items: Vec::new(),
    };
    let mut text = String::new();
    let str_of = |b: &Value, k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    for b in msg
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
        if kind == "text" {
            text.push_str(b.get("text").and_then(Value::as_str).unwrap_or(""));
            continue;
        }
        if !text.is_empty() && matches!(kind, "thinking" | "redacted_thinking" | "tool_use") {
            out.message(vec![output::output_text(&std::mem::take(&mut text))]);
        }
        match kind {
            "thinking" => {
                let thinking = str_of(b, "thinking");
                let envelope = Envelope::Thinking {
                    thinking: thinking.clone(),
                    signature: str_of(b, "signature"),
                };
                out.reasoning(&thinking, envelope);
            }
            "redacted_thinking" => out.reasoning(
                "",
                Envelope::Redacted {
                    data: str_of(b, "data"),
                },
            ),
            "tool_use" => {
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                out.call(
                    b.get("id").and_then(Value::as_str),
                    b.get("name").and_then(Value::as_str).unwrap_or(""),
                    &input.to_string(),
                );
            }
            _ => {}
        }
    }
    if !text.is_empty() {
        out.message(vec![output::output_text(&text)]);
    }
    let incomplete = msg
        .get("stop_reason")
        .and_then(Value::as_str)
        .and_then(incomplete_for_stop);
    let usage = msg.get("usage").and_then(usage::from_anthropic);
    out.finish(incomplete, usage)
}
