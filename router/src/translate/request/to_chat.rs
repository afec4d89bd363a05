//! An Anthropic Messages body as an OpenAI chat-completions body.

use serde_json::{json, Map, Value};

use super::unsupported;
use crate::wire::invalid;
use crate::wire::openai::RequestError;

/// The text of an Anthropic `system` (a string or text blocks).
fn anthropic_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => String::new(),
    }
}

/// An Anthropic `image` block as an OpenAI `image_url` part.
fn image_part(block: &Value, field: &str) -> Result<Value, RequestError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    let url =
        match source.get("type").and_then(Value::as_str) {
            Some("base64") => {
                let media = source
                    .get("media_type")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("{field}.source.media_type"), "a MIME type"))?;
                let data = source
                    .get("data")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("{field}.source.data"), "base64 data"))?;
                format!("data:{media};base64,{data}")
            }
            Some("url") => source
                .get("url")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("{field}.source.url"), "a URL"))?
                .to_owned(),
            _ => return Err(unsupported(
                format!("{field}.source.type"),
                "only base64 and url image sources can be sent to an OpenAI-compatible provider",
            )),
        };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A `document` block with a plain-text source as a text part.
fn document_part(block: &Value, field: &str) -> Result<Value, RequestError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    match source.get("type").and_then(Value::as_str) {
        Some("text") => Ok(
            json!({"type": "text", "text": source.get("data").and_then(Value::as_str).unwrap_or("")}),
        ),
        _ => Err(unsupported(
            format!("{field}.source"),
            "PDF and URL documents cannot be sent to an OpenAI-compatible provider",
        )),
    }
}

/// The text of a `tool_result`'s content, and any images in it.
fn tool_result_content(block: &Value, field: &str) -> Result<(String, Vec<Value>), RequestError> {
    match block.get("content") {
        None | Some(Value::Null) => Ok((String::new(), Vec::new())),
        Some(Value::String(s)) => Ok((s.clone(), Vec::new())),
        Some(Value::Array(items)) => {
            let mut text = Vec::new();
            let mut images = Vec::new();
            for (k, item) in items.iter().enumerate() {
                let f = format!("{field}.content.{k}");
                match item.get("type").and_then(Value::as_str) {
                    Some("text") => text.push(
                        item.get("text")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                    ),
                    Some("image") => images.push(image_part(item, &f)?),
                    Some("document") => {
                        if let Some(t) =
                            document_part(item, &f)?.get("text").and_then(Value::as_str)
                        {
                            text.push(t.to_owned());
                        }
                    }
                    _ => return Err(unsupported(
                        f,
                        "this tool result content cannot be sent to an OpenAI-compatible provider",
                    )),
                }
            }
            Ok((text.join("\n\n"), images))
        }
        Some(_) => Err(invalid(
            format!("{field}.content"),
            "a string or an array of blocks",
        )),
    }
}

/// Translates an Anthropic Messages body into an OpenAI chat-completions body
/// for `upstream_model`. Streams ask the upstream for usage. System messages
/// keep their place; thinking becomes `reasoning_effort`; a JSON-schema
/// output format becomes `response_format`. `top_k`, `cache_control`,
/// `context_management` and tools' `defer_loading` have no OpenAI
/// counterpart and are dropped; server tools, MCP servers, PDF documents and
/// roles other than user, assistant and system are refused.
pub fn messages_to_chat(
    body: &Map<String, Value>,
    upstream_model: &str,
) -> Result<Map<String, Value>, RequestError> {
    for key in ["mcp_servers", "container"] {
        if body.get(key).is_some_and(|v| !v.is_null()) {
            return Err(unsupported(
                key,
                "this Anthropic feature cannot be served by an OpenAI-compatible provider",
            ));
        }
    }
    let mut messages = Vec::new();
    if let Some(system) = body.get("system") {
        let text = anthropic_text(system);
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    let empty = Vec::new();
    let msgs = body
        .get("messages")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for (i, m) in msgs.iter().enumerate() {
        let f = format!("messages.{i}");
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            // A system message inside `messages` (as Claude Code sends) stays
            // where it is: OpenAI's format has system messages anywhere.
            "system" => {
                let text = anthropic_text(content);
                if !text.is_empty() {
                    messages.push(json!({"role": "system", "content": text}));
                }
                continue;
            }
            "user" | "assistant" => {}
            _ => {
                return Err(unsupported(
                    format!("{f}.role"),
                    "only user, assistant and system messages can be sent to an OpenAI-compatible provider",
                ))
            }
        }
        let blocks = match content {
            Value::String(s) => {
                messages.push(json!({"role": role, "content": s}));
                continue;
            }
            Value::Array(b) => b,
            _ => continue,
        };
        if role == "assistant" {
            let mut text = Vec::new();
            let mut thinking = Vec::new();
            let mut calls = Vec::new();
            for (j, b) in blocks.iter().enumerate() {
                match b.get("type").and_then(Value::as_str).unwrap_or("") {
                    "text" => text.push(b.get("text").and_then(Value::as_str).unwrap_or("")),
                    "thinking" => {
                        thinking.push(b.get("thinking").and_then(Value::as_str).unwrap_or(""))
                    }
                    "redacted_thinking" => {}
                    "tool_use" => {
                        let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                        calls.push(json!({
                            "id": b.get("id").cloned().unwrap_or(Value::Null),
                            "type": "function",
                            "function": {"name": b.get("name").cloned().unwrap_or(Value::Null), "arguments": input.to_string()},
                        }));
                    }
                    _ => {
                        return Err(unsupported(
                            format!("{f}.content.{j}.type"),
                            "this assistant block cannot be sent to an OpenAI-compatible provider",
                        ))
                    }
                }
            }
            let mut msg = Map::new();
            msg.insert("role".into(), json!("assistant"));
            msg.insert(
                "content".into(),
                if text.is_empty() {
                    Value::Null
                } else {
                    json!(text.concat())
                },
            );
            if !thinking.is_empty() {
                msg.insert("reasoning_content".into(), json!(thinking.concat()));
            }
            if !calls.is_empty() {
                msg.insert("tool_calls".into(), Value::Array(calls));
            }
            messages.push(Value::Object(msg));
            continue;
        }
        // A user turn: tool results first, as tool messages, then the rest.
        let mut parts = Vec::new();
        let mut tool_images = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let bf = format!("{f}.content.{j}");
            match b.get("type").and_then(Value::as_str).unwrap_or("") {
                "text" => parts.push(json!({"type": "text", "text": b.get("text").and_then(Value::as_str).unwrap_or("")})),
                "image" => parts.push(image_part(b, &bf)?),
                "document" => parts.push(document_part(b, &bf)?),
                "tool_result" => {
                    let (mut text, images) = tool_result_content(b, &bf)?;
                    if b.get("is_error").and_then(Value::as_bool) == Some(true) {
                        // OpenAI has no error flag on tool results: say it in words.
                        text = format!("Error: {text}");
                    }
                    let id = b.get("tool_use_id").and_then(Value::as_str).unwrap_or("");
                    messages.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
                    tool_images.extend(images);
                }
                _ => {
                    return Err(unsupported(
                        format!("{bf}.type"),
                        "this content block cannot be sent to an OpenAI-compatible provider",
                    ))
                }
            }
        }
        // Images a tool returned follow the tool messages in a user turn:
        // OpenAI tool messages carry text only.
        tool_images.extend(parts);
        let parts = tool_images;
        if parts.is_empty() {
            continue;
        }
        let all_text = parts.iter().all(|p| p["type"] == "text");
        let content = if all_text && parts.len() == 1 {
            parts[0]["text"].clone()
        } else {
            Value::Array(parts)
        };
        messages.push(json!({"role": "user", "content": content}));
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(upstream_model));
    out.insert("messages".into(), Value::Array(messages));
    if let Some(n) = body.get("max_tokens").filter(|v| v.is_u64()) {
        out.insert("max_tokens".into(), n.clone());
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = body.get(key).filter(|v| v.is_number()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stop) = body.get("stop_sequences").and_then(Value::as_array) {
        if !stop.is_empty() {
            out.insert("stop".into(), Value::Array(stop.clone()));
        }
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let mut converted = Vec::new();
        for (i, t) in tools.iter().enumerate() {
            let kind = t.get("type").and_then(Value::as_str).unwrap_or("custom");
            let schema = t.get("input_schema").filter(|s| s.is_object());
            let (true, Some(schema)) = (kind == "custom", schema) else {
                return Err(unsupported(
                    format!("tools.{i}"),
                    "server tools (web search, code execution, computer use, ...) cannot be served by an OpenAI-compatible provider",
                ));
            };
            let mut func = Map::new();
            func.insert("name".into(), t.get("name").cloned().unwrap_or(Value::Null));
            if let Some(d) = t.get("description").filter(|d| d.is_string()) {
                func.insert("description".into(), d.clone());
            }
            func.insert("parameters".into(), schema.clone());
            converted.push(json!({"type": "function", "function": func}));
        }
        if !converted.is_empty() {
            out.insert("tools".into(), Value::Array(converted));
        }
    }
    if let Some(choice) = body.get("tool_choice").filter(|c| c.is_object()) {
        let mapped = match choice.get("type").and_then(Value::as_str) {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => {
                json!({"type": "function", "function": {"name": choice.get("name").cloned().unwrap_or(Value::Null)}})
            }
            _ => {
                return Err(invalid(
                    "tool_choice.type",
                    "'auto', 'any', 'tool' or 'none'",
                ))
            }
        };
        if out.contains_key("tools") {
            out.insert("tool_choice".into(), mapped);
            if choice
                .get("disable_parallel_tool_use")
                .and_then(Value::as_bool)
                == Some(true)
            {
                out.insert("parallel_tool_calls".into(), json!(false));
            }
        }
    }
    if let Some(effort) = reasoning_effort(body) {
        out.insert("reasoning_effort".into(), json!(effort));
    }
    if let Some(format) = body
        .get("output_config")
        .and_then(|c| c.get("format"))
        .or_else(|| body.get("output_format"))
        .filter(|f| !f.is_null())
    {
        out.insert("response_format".into(), response_format(format)?);
    }
    if let Some(user) = body
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), json!(user));
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(out)
}

/// OpenAI's `reasoning_effort` for Anthropic's thinking settings: a budget
/// (`thinking.type: enabled`) by its size, adaptive thinking by
/// `output_config.effort` (the model's default when none is set). No
/// thinking, no effort.
fn reasoning_effort(body: &Map<String, Value>) -> Option<&'static str> {
    let thinking = body.get("thinking")?;
    match thinking.get("type").and_then(Value::as_str)? {
        "enabled" => {
            let budget = thinking
                .get("budget_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            Some(match budget {
                0..4096 => "low",
                4096..16384 => "medium",
                _ => "high",
            })
        }
        "adaptive" => match body.get("output_config")?.get("effort")?.as_str()? {
            "low" => Some("low"),
            "medium" => Some("medium"),
            // OpenAI-compatible vendors know no effort above high.
            "high" | "xhigh" | "max" => Some("high"),
            _ => None,
        },
        _ => None,
    }
}

/// Anthropic's structured-output format (`output_config.format`, or the
/// older `output_format`) as OpenAI's `response_format`.
fn response_format(format: &Value) -> Result<Value, RequestError> {
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => {
            let schema = format
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| invalid("output_config.format.schema", "a JSON schema object"))?;
            Ok(
                json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": true}}),
            )
        }
        _ => Err(unsupported(
            "output_config.format",
            "only JSON-schema output formats can be sent to an OpenAI-compatible provider",
        )),
    }
}
