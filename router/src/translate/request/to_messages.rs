//! An OpenAI chat-completions body as an Anthropic Messages body.

use serde_json::{json, Map, Value};

use super::{push_turn, unsupported};
use crate::wire::invalid;
use crate::wire::openai::RequestError;

/// The text of an OpenAI `content` (a string, or text parts joined).
fn openai_text(content: &Value, field: &str) -> Result<String, RequestError> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for (i, p) in parts.iter().enumerate() {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => out.push(p.get("text").and_then(Value::as_str).unwrap_or("")),
                    _ => {
                        return Err(unsupported(
                            format!("{field}[{i}]"),
                            "only text parts are allowed here",
                        ))
                    }
                }
            }
            Ok(out.join("\n\n"))
        }
        _ => Err(invalid(field.to_owned(), "a string or an array of parts")),
    }
}

/// An OpenAI `image_url` part as an Anthropic `image` block.
fn image_block(part: &Value, field: &str) -> Result<Value, RequestError> {
    let url = part
        .pointer("/image_url/url")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{field}.image_url.url"), "a URL string"))?;
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| invalid(format!("{field}.image_url.url"), "a valid data URL"))?;
        let media_type = meta
            .strip_suffix(";base64")
            .ok_or_else(|| invalid(format!("{field}.image_url.url"), "a base64 data URL"))?;
        Ok(
            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}),
        )
    } else if url.starts_with("http://") || url.starts_with("https://") {
        Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
    } else {
        Err(invalid(
            format!("{field}.image_url.url"),
            "an http(s) URL or a data URL",
        ))
    }
}

/// OpenAI user content as Anthropic content blocks.
fn user_blocks(content: &Value, field: &str) -> Result<Vec<Value>, RequestError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let f = format!("{field}[{i}]");
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => Ok(
                        json!({"type": "text", "text": p.get("text").and_then(Value::as_str).unwrap_or("")}),
                    ),
                    Some("image_url") => image_block(p, &f),
                    _ => Err(unsupported(
                        f,
                        "audio and file parts cannot be sent to an Anthropic provider",
                    )),
                }
            })
            .collect(),
        _ => Err(invalid(field.to_owned(), "a string or an array of parts")),
    }
}

fn tool_use_blocks(calls: &Value, field: &str) -> Result<Vec<Value>, RequestError> {
    let Some(calls) = calls.as_array() else {
        return Ok(Vec::new());
    };
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let f = format!("{field}[{i}]");
            let name = c
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("{f}.function.name"), "a string"))?;
            let args = c
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or("");
            let input: Value = if args.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(args).map_err(|_| {
                    invalid(format!("{f}.function.arguments"), "a JSON object string")
                })?
            };
            if !input.is_object() {
                return Err(invalid(
                    format!("{f}.function.arguments"),
                    "a JSON object string",
                ));
            }
            let id = c.get("id").and_then(Value::as_str).unwrap_or("");
            Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
        })
        .collect()
}

/// Thinking budgets for OpenAI's `reasoning_effort`.
fn effort_budget(effort: &str) -> Option<u64> {
    match effort {
        "minimal" | "low" => Some(1024),
        "medium" => Some(4096),
        "high" => Some(16384),
        _ => None,
    }
}

/// Translates an OpenAI chat-completions body into an Anthropic Messages body
/// for `upstream_model`. `default_max_tokens` fills `max_tokens` when the
/// client sent none (Anthropic requires it). Fields with no Anthropic
/// counterpart that only tune sampling (`seed`, penalties, `logit_bias`,
/// `user` aside) are dropped; fields whose loss would change the answer
/// (`n > 1`, `logprobs`, `response_format` other than text, audio) are refused.
pub fn chat_to_messages(
    body: &Map<String, Value>,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Map<String, Value>, RequestError> {
    if body.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err(unsupported("n", "Anthropic models return one choice"));
    }
    if body.get("logprobs").and_then(Value::as_bool) == Some(true)
        || body.get("top_logprobs").is_some_and(|v| !v.is_null())
    {
        return Err(unsupported(
            "logprobs",
            "Anthropic models return no logprobs",
        ));
    }
    match body
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
    {
        None | Some("text") => {}
        Some(_) => {
            return Err(unsupported(
                "response_format",
                "JSON modes cannot be enforced on an Anthropic provider; use a tool instead",
            ))
        }
    }
    if body.get("audio").is_some_and(|v| !v.is_null()) {
        return Err(unsupported(
            "audio",
            "Anthropic models do not produce audio",
        ));
    }
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    let empty = Vec::new();
    let msgs = body
        .get("messages")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for (i, m) in msgs.iter().enumerate() {
        let f = format!("messages[{i}]");
        let content = m.get("content").unwrap_or(&Value::Null);
        match m.get("role").and_then(Value::as_str).unwrap_or("") {
            "system" | "developer" => {
                let text = openai_text(content, &format!("{f}.content"))?;
                if !text.is_empty() {
                    system.push(text);
                }
            }
            "user" => push_turn(
                &mut messages,
                "user",
                user_blocks(content, &format!("{f}.content"))?,
            ),
            "assistant" => {
                let mut blocks = Vec::new();
                let text = openai_text(content, &format!("{f}.content"))?;
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                if let Some(calls) = m.get("tool_calls") {
                    blocks.extend(tool_use_blocks(calls, &format!("{f}.tool_calls"))?);
                }
                push_turn(&mut messages, "assistant", blocks);
            }
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or(RequestError::Missing("tool_call_id"))?;
                let text = openai_text(content, &format!("{f}.content"))?;
                push_turn(
                    &mut messages,
                    "user",
                    vec![json!({"type": "tool_result", "tool_use_id": id, "content": text})],
                );
            }
            _ => {
                return Err(invalid(
                    format!("{f}.role"),
                    "'system', 'developer', 'user', 'assistant' or 'tool'",
                ))
            }
        }
    }
    if messages.is_empty() {
        return Err(invalid(
            "messages",
            "at least one user or assistant message",
        ));
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(upstream_model));
    let max_tokens = body
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| body.get("max_tokens").and_then(Value::as_u64))
        .unwrap_or(default_max_tokens)
        .max(1);
    out.insert("max_tokens".into(), json!(max_tokens));
    if !system.is_empty() {
        out.insert("system".into(), json!(system.join("\n\n")));
    }
    out.insert("messages".into(), Value::Array(messages));
    match body.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = body.get(key).filter(|v| v.is_number()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let mut converted = Vec::new();
        for (i, t) in tools.iter().enumerate() {
            if t.get("type").and_then(Value::as_str).unwrap_or("function") != "function" {
                return Err(unsupported(
                    format!("tools[{i}].type"),
                    "only function tools can be sent to an Anthropic provider",
                ));
            }
            let func = t.get("function").unwrap_or(&Value::Null);
            let name = func
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("tools[{i}].function.name"), "a string"))?;
            let mut tool = Map::new();
            tool.insert("name".into(), json!(name));
            if let Some(d) = func.get("description").filter(|d| d.is_string()) {
                tool.insert("description".into(), d.clone());
            }
            let schema = func
                .get("parameters")
                .filter(|p| p.is_object())
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            tool.insert("input_schema".into(), schema);
            converted.push(Value::Object(tool));
        }
        if !converted.is_empty() {
            out.insert("tools".into(), Value::Array(converted));
        }
    }
    let mut choice = match body.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "none" => Some(json!({"type": "none"})),
            "required" => Some(json!({"type": "any"})),
            _ => {
                return Err(invalid(
                    "tool_choice",
                    "'auto', 'none', 'required' or a function",
                ))
            }
        },
        Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
            Some(name) => Some(json!({"type": "tool", "name": name})),
            None => {
                return Err(invalid(
                    "tool_choice",
                    "'auto', 'none', 'required' or a function",
                ))
            }
        },
    };
    if body.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false)
        && out.contains_key("tools")
    {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    if let (Some(c), true) = (choice, out.contains_key("tools")) {
        out.insert("tool_choice".into(), c);
    }
    if let Some(thinking) = body.get("thinking").filter(|t| t.is_object()) {
        // A vendor-style `thinking` object (Kimi, GLM) means the same thing.
        out.insert("thinking".into(), thinking.clone());
    } else if let Some(budget) = body
        .get("reasoning_effort")
        .and_then(Value::as_str)
        .and_then(effort_budget)
    {
        // The budget must stay below max_tokens; Anthropic's minimum is 1024.
        let budget = budget.min(max_tokens.saturating_sub(1));
        if budget >= 1024 {
            out.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": budget}),
            );
        }
    }
    if let Some(user) = body.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), json!(true));
    }
    Ok(out)
}
