//! Whole-answer translation: Anthropic message ↔ OpenAI chat completion.

use serde_json::{json, Map, Value};

use crate::usage::Usage;

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn
        _ => "stop",
    }
}

/// OpenAI's `finish_reason` as Anthropic's `stop_reason`.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// A normalized usage in OpenAI's shape.
pub fn openai_usage(u: &Usage) -> Value {
    let mut v = json!({
        "prompt_tokens": u.prompt_total(),
        "completion_tokens": u.output,
        "total_tokens": u.total(),
        "prompt_tokens_details": {"cached_tokens": u.cached_input},
    });
    if u.reasoning > 0 {
        v["completion_tokens_details"] = json!({"reasoning_tokens": u.reasoning});
    }
    v
}

/// A normalized usage in Anthropic's shape.
pub fn anthropic_usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input,
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cached_input,
        "output_tokens": u.output,
    })
}

/// An Anthropic tool-use id for an OpenAI tool-call id (Anthropic requires
/// the `toolu_` alphabet only loosely; ids pass through unchanged unless empty).
fn tool_id(id: Option<&str>, n: usize) -> String {
    match id {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => format!("toolu_tollgate_{n}"),
    }
}

/// Translates an Anthropic message into an OpenAI chat completion named
/// `client_model`. Thinking becomes `reasoning_content`.
pub fn message_to_chat(msg: &Value, client_model: &str, created: u64) -> Value {
    let mut text = String::new();
    let mut thinking = String::new();
    let mut calls = Vec::new();
    if let Some(blocks) = msg.get("content").and_then(Value::as_array) {
        for b in blocks {
            match b.get("type").and_then(Value::as_str).unwrap_or("") {
                "text" => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
                "thinking" => {
                    thinking.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or(""))
                }
                "tool_use" => calls.push(json!({
                    "id": tool_id(b.get("id").and_then(Value::as_str), calls.len()),
                    "type": "function",
                    "function": {
                        "name": b.get("name").cloned().unwrap_or(Value::Null),
                        "arguments": b.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                    },
                })),
                _ => {}
            }
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert(
        "content".into(),
        if text.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            json!(text)
        },
    );
    if !thinking.is_empty() {
        message.insert("reasoning_content".into(), json!(thinking));
    }
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let finish = msg
        .get("stop_reason")
        .and_then(Value::as_str)
        .map(finish_reason)
        .unwrap_or("stop");
    let mut out = json!({
        "id": msg.get("id").and_then(Value::as_str).map(|id| format!("chatcmpl-{id}")).unwrap_or_else(|| "chatcmpl-tollgate".into()),
        "object": "chat.completion",
        "created": created,
        "model": client_model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
    });
    if let Some(u) = msg.get("usage").and_then(crate::usage::from_anthropic) {
        out["usage"] = openai_usage(&u);
    }
    out
}

/// Translates an OpenAI chat completion into an Anthropic message named
/// `client_model`. `reasoning_content` becomes a thinking block (without a
/// signature: none exists). Only the first choice is used.
pub fn chat_to_message(chat: &Value, client_model: &str) -> Value {
    let choice = chat
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .cloned()
        .unwrap_or(Value::Null);
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    if let Some(r) = msg
        .get("reasoning_content")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        content.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
    }
    if let Some(t) = msg
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "text", "text": t}));
    }
    if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
        for (n, c) in calls.iter().enumerate() {
            let args = c
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or("");
            let input = serde_json::from_str::<Value>(args)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({}));
            content.push(json!({
                "type": "tool_use",
                "id": tool_id(c.get("id").and_then(Value::as_str), n),
                "name": c.pointer("/function/name").cloned().unwrap_or(Value::Null),
                "input": input,
            }));
        }
    }
    if content.is_empty() {
        content.push(json!({"type": "text", "text": ""}));
    }
    let stop = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(stop_reason)
        .unwrap_or("end_turn");
    let usage = crate::usage::from_openai_body(chat).unwrap_or_default();
    let id = chat.get("id").and_then(Value::as_str).unwrap_or("tollgate");
    json!({
        "id": format!("msg_{}", id.trim_start_matches("chatcmpl-")),
        "type": "message",
        "role": "assistant",
        "model": client_model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": anthropic_usage(&usage),
    })
}
