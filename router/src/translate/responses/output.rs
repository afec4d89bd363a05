//! The pieces of a Responses answer that whole answers and streams share:
//! the response object around the output, the output items, ids, and usage
//! in the Responses shape.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::envelope::Envelope;
use super::tools::{ToolKind, ToolRef};
use crate::usage::Usage;

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An id base for an answer whose upstream gave none: unique within the
/// process and unlikely to repeat across restarts.
fn fresh_base() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("tg{nanos:x}{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The id base of an upstream answer id (`chatcmpl-abc`, `msg_abc` → `abc`).
fn base_of(upstream_id: Option<&str>) -> String {
    match upstream_id {
        Some(id) if !id.is_empty() => {
            let id = ["chatcmpl-", "msg_", "resp_"]
                .iter()
                .find_map(|p| id.strip_prefix(p))
                .unwrap_or(id);
            id.to_owned()
        }
        _ => fresh_base(),
    }
}

/// What a response object says besides its output: ids, time, model, and
/// the request's settings echoed back as OpenAI echoes them.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    base: String,
    created_at: u64,
    model: String,
    echo: Map<String, Value>,
}

/// `key` of `request`, or `default` when absent or null.
fn echo(request: &Map<String, Value>, key: &str, default: Value) -> Value {
    request
        .get(key)
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or(default)
}

impl Meta {
    /// The meta of an answer to `request` named `client_model`.
    pub fn new(client_model: &str, request: &Map<String, Value>) -> Self {
        let mut e = Map::new();
        e.insert(
            "instructions".into(),
            echo(request, "instructions", Value::Null),
        );
        e.insert(
            "max_output_tokens".into(),
            echo(request, "max_output_tokens", Value::Null),
        );
        e.insert(
            "parallel_tool_calls".into(),
            echo(request, "parallel_tool_calls", json!(true)),
        );
        let reasoning = request.get("reasoning");
        let pick = |k: &str| {
            reasoning
                .and_then(|r| r.get(k))
                .cloned()
                .unwrap_or(Value::Null)
        };
        e.insert(
            "reasoning".into(),
            json!({"effort": pick("effort"), "summary": pick("summary")}),
        );
        e.insert(
            "temperature".into(),
            echo(request, "temperature", Value::Null),
        );
        let mut text = Map::new();
        let given = request.get("text");
        text.insert(
            "format".into(),
            given
                .and_then(|t| t.get("format"))
                .filter(|f| !f.is_null())
                .cloned()
                .unwrap_or_else(|| json!({"type": "text"})),
        );
        if let Some(v) = given.and_then(|t| t.get("verbosity")) {
            text.insert("verbosity".into(), v.clone());
        }
        e.insert("text".into(), Value::Object(text));
        e.insert(
            "tool_choice".into(),
            echo(request, "tool_choice", json!("auto")),
        );
        e.insert("tools".into(), echo(request, "tools", json!([])));
        e.insert("top_p".into(), echo(request, "top_p", Value::Null));
        e.insert(
            "truncation".into(),
            echo(request, "truncation", json!("disabled")),
        );
        e.insert("metadata".into(), echo(request, "metadata", json!({})));
        Self {
            base: fresh_base(),
            created_at: now_secs(),
            model: client_model.to_owned(),
            echo: e,
        }
    }

    /// Takes ids from the upstream's answer id and, when it says, its
    /// creation time.
    pub fn identify(&mut self, upstream_id: Option<&str>, created: Option<u64>) {
        if upstream_id.is_some_and(|id| !id.is_empty()) {
            self.base = base_of(upstream_id);
        }
        if let Some(c) = created.filter(|c| *c > 0) {
            self.created_at = c;
        }
    }

    /// The id of the output item at `index` (`msg_<base>_<index>`).
    pub fn item_id(&self, prefix: &str, index: usize) -> String {
        format!("{prefix}_{}_{index}", self.base)
    }

    /// A call id for an upstream call that came without one.
    pub fn call_id(&self, index: usize) -> String {
        format!("call_{}_{index}", self.base)
    }

    /// The whole response object.
    pub fn response(&self, status: &str, output: &[Value], tail: Tail<'_>) -> Value {
        let mut r = Map::new();
        r.insert("id".into(), json!(format!("resp_{}", self.base)));
        r.insert("object".into(), json!("response"));
        r.insert("created_at".into(), json!(self.created_at));
        r.insert("status".into(), json!(status));
        r.insert("background".into(), json!(false));
        r.insert("error".into(), tail.error.unwrap_or(Value::Null));
        r.insert(
            "incomplete_details".into(),
            tail.incomplete
                .map(|reason| json!({"reason": reason}))
                .unwrap_or(Value::Null),
        );
        let echoed = |r: &mut Map<String, Value>, k: &str| {
            r.insert(k.into(), self.echo.get(k).cloned().unwrap_or(Value::Null));
        };
        echoed(&mut r, "instructions");
        echoed(&mut r, "max_output_tokens");
        r.insert("model".into(), json!(self.model));
        r.insert("output".into(), Value::Array(output.to_vec()));
        echoed(&mut r, "parallel_tool_calls");
        r.insert("previous_response_id".into(), Value::Null);
        echoed(&mut r, "reasoning");
        r.insert("store".into(), json!(false));
        for k in [
            "temperature",
            "text",
            "tool_choice",
            "tools",
            "top_p",
            "truncation",
        ] {
            echoed(&mut r, k);
        }
        r.insert(
            "usage".into(),
            tail.usage.map(usage_json).unwrap_or(Value::Null),
        );
        echoed(&mut r, "metadata");
        Value::Object(r)
    }
}

/// How a response ended, for [`Meta::response`].
#[derive(Debug, Default, Clone)]
pub(crate) struct Tail<'a> {
    pub usage: Option<&'a Usage>,
    /// `incomplete_details.reason`.
    pub incomplete: Option<&'a str>,
    /// `error` (`{code, message}`).
    pub error: Option<Value>,
}

/// A normalized usage in the Responses shape: input includes cached and
/// cache-written tokens, output includes reasoning.
pub fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_total(),
        "input_tokens_details": {"cached_tokens": u.cached_input, "cache_write_tokens": u.cache_write},
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.total(),
    })
}

fn num(v: Option<&Value>) -> Option<u64> {
    v.and_then(|v| {
        v.as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
    })
}

/// Normalizes a Responses `usage` object: `input_tokens` includes
/// `input_tokens_details.cached_tokens` (and `cache_write_tokens`), and
/// `output_tokens` includes `output_tokens_details.reasoning_tokens`; the
/// parts are split out, never added on top. `None` without token counts.
pub fn from_responses(usage: &Value) -> Option<Usage> {
    if !usage.is_object() {
        return None;
    }
    let input = num(usage.get("input_tokens"));
    let output = num(usage.get("output_tokens"));
    let total = num(usage.get("total_tokens"));
    if input.is_none() && output.is_none() && total.is_none() {
        return None;
    }
    let prompt = input
        .or_else(|| total.zip(output).map(|(t, o)| t.saturating_sub(o)))
        .unwrap_or(0);
    let details = usage.get("input_tokens_details");
    let cached = num(details.and_then(|d| d.get("cached_tokens")))
        .unwrap_or(0)
        .min(prompt);
    let cache_write = num(details.and_then(|d| d.get("cache_write_tokens")))
        .unwrap_or(0)
        .min(prompt - cached);
    let output = output
        .or_else(|| total.map(|t| t.saturating_sub(prompt)))
        .unwrap_or(0);
    let reasoning = num(usage.pointer("/output_tokens_details/reasoning_tokens"))
        .unwrap_or(0)
        .min(output);
    Some(Usage {
        input: prompt - cached - cache_write,
        cached_input: cached,
        cache_write,
        output,
        reasoning,
    })
}

/// The usage of a whole Responses answer (for pass-through metering).
pub fn usage_from_response(body: &Value) -> Option<Usage> {
    body.get("usage").and_then(from_responses)
}

/// The usage a Responses stream event carries: `response.usage` of
/// `response.completed`, `response.incomplete` or `response.failed` (earlier
/// events carry none).
pub fn usage_from_response_event(data: &Value) -> Option<Usage> {
    data.pointer("/response/usage").and_then(from_responses)
}

/// An `output_text` content part.
pub(crate) fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text})
}

/// An assistant `message` item.
pub(crate) fn message_item(id: &str, content: Vec<Value>, status: &str) -> Value {
    json!({"id": id, "type": "message", "status": status, "content": content, "role": "assistant"})
}

/// A `reasoning` item: the text as one summary part and as reasoning
/// content, and the envelope that brings it back to the upstream.
pub(crate) fn reasoning_item(id: &str, text: &str, envelope: Option<&Envelope>) -> Value {
    let mut item = Map::new();
    item.insert("id".into(), json!(id));
    item.insert("type".into(), json!("reasoning"));
    if text.is_empty() {
        item.insert("summary".into(), json!([]));
    } else {
        item.insert(
            "summary".into(),
            json!([{"type": "summary_text", "text": text}]),
        );
        item.insert(
            "content".into(),
            json!([{"type": "reasoning_text", "text": text}]),
        );
    }
    if let Some(e) = envelope {
        item.insert("encrypted_content".into(), json!(e.encode()));
    }
    Value::Object(item)
}

/// The id prefix of a call item of `kind`.
pub(crate) fn call_prefix(kind: ToolKind) -> &'static str {
    match kind {
        ToolKind::Function => "fc",
        ToolKind::Custom => "ctc",
        ToolKind::LocalShell => "lsc",
    }
}

/// A custom tool's freeform input from the function arguments the upstream
/// wrote (`{"input": "..."}`); the raw arguments when they are not that.
pub(crate) fn custom_input(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(mut o)) => match o.remove("input") {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => arguments.to_owned(),
        },
        _ => arguments.to_owned(),
    }
}

/// A local shell action from the upstream's arguments.
fn shell_action(arguments: &str) -> Value {
    let mut action = serde_json::from_str::<Value>(arguments)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    action.insert("type".into(), json!("exec"));
    action.entry("command").or_insert_with(|| json!([]));
    action.entry("env").or_insert_with(|| json!({}));
    Value::Object(action)
}

/// A call item for `tool`: `function_call`, `custom_tool_call` (the input
/// unwrapped) or `local_shell_call`.
pub(crate) fn call_item(
    id: &str,
    tool: &ToolRef,
    call_id: &str,
    arguments: &str,
    status: &str,
) -> Value {
    let mut item = Map::new();
    item.insert("id".into(), json!(id));
    match tool.kind {
        ToolKind::Function => {
            item.insert("type".into(), json!("function_call"));
            item.insert("status".into(), json!(status));
            item.insert("arguments".into(), json!(arguments));
            item.insert("call_id".into(), json!(call_id));
            item.insert("name".into(), json!(tool.name));
        }
        ToolKind::Custom => {
            item.insert("type".into(), json!("custom_tool_call"));
            item.insert("status".into(), json!(status));
            item.insert("call_id".into(), json!(call_id));
            item.insert("input".into(), json!(custom_input(arguments)));
            item.insert("name".into(), json!(tool.name));
        }
        ToolKind::LocalShell => {
            item.insert("type".into(), json!("local_shell_call"));
            item.insert("status".into(), json!(status));
            item.insert("call_id".into(), json!(call_id));
            item.insert("action".into(), shell_action(arguments));
        }
    }
    if let Some(ns) = &tool.namespace {
        item.insert("namespace".into(), json!(ns));
    }
    Value::Object(item)
}
