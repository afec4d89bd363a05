//! Responses request → Anthropic Messages request.

use serde_json::{json, Map, Value};

use super::envelope::Envelope;
use super::items::{self, split_data_url, Entry, Part};
use super::params::{self, unsupported, TextFormat};
use super::tools;
use crate::translate::request::push_turn;
use crate::wire::invalid;
use crate::wire::openai::RequestError;

/// A content part as an Anthropic block; `None` for empty text, which
/// Anthropic refuses.
fn block(p: &Part, field: &str) -> Result<Option<Value>, RequestError> {
    Ok(Some(match p {
        Part::Text(t) if t.is_empty() => return Ok(None),
        Part::Text(t) => json!({"type": "text", "text": t}),
        Part::Image { url, .. } => match split_data_url(url) {
            Some((media_type, data)) => {
                json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
            }
            None if url.starts_with("data:") => {
                return Err(invalid(field.to_owned(), "a base64 data URL"))
            }
            None => json!({"type": "image", "source": {"type": "url", "url": url}}),
        },
        Part::Pdf { data_url, .. } => {
            let (media_type, data) = split_data_url(data_url)
                .ok_or_else(|| invalid(field.to_owned(), "a base64 data URL"))?;
            json!({"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}})
        }
    }))
}

fn blocks(parts: &[Part], field: &str) -> Result<Vec<Value>, RequestError> {
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        out.extend(block(p, field)?);
    }
    Ok(out)
}

/// A reasoning item as a thinking block, when it carries Anthropic's
/// signature; reasoning without one is dropped (Anthropic refuses unsigned
/// thinking).
fn thinking_block(envelope: Option<Envelope>) -> Option<Value> {
    match envelope? {
        Envelope::Thinking {
            thinking,
            signature,
        } if !signature.is_empty() => {
            Some(json!({"type": "thinking", "thinking": thinking, "signature": signature}))
        }
        Envelope::Redacted { data } => Some(json!({"type": "redacted_thinking", "data": data})),
        _ => None,
    }
}

/// A tool result's content: a string when it is all text, else blocks.
fn tool_result(call_id: &str, parts: &[Part], field: &str) -> Result<Value, RequestError> {
    let content = if parts.iter().all(|p| matches!(p, Part::Text(_))) {
        let text: Vec<&str> = parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        json!(text.join("\n\n"))
    } else {
        Value::Array(blocks(parts, field)?)
    };
    Ok(json!({"type": "tool_result", "tool_use_id": call_id, "content": content}))
}

/// Thinking budgets for Responses' `reasoning.effort`.
fn effort_budget(effort: &str) -> Option<u64> {
    match effort {
        "minimal" | "low" => Some(1024),
        "medium" => Some(4096),
        "high" => Some(16384),
        "xhigh" => Some(32768),
        _ => None,
    }
}

/// `thinking` for `reasoning.effort`: a budget below `max_tokens` and at
/// least Anthropic's minimum of 1024, else none. A choice that forces a tool
/// leaves thinking off, since Anthropic refuses the two together.
fn thinking(
    body: &Map<String, Value>,
    max_tokens: u64,
    choice: Option<&tools::Choice>,
    has_tools: bool,
) -> Option<Value> {
    let forced = matches!(
        choice,
        Some(tools::Choice::Required | tools::Choice::Named(_))
    );
    if forced && has_tools {
        return None;
    }
    let budget = params::effort(body)
        .and_then(effort_budget)?
        .min(max_tokens.saturating_sub(1));
    (budget >= 1024).then(|| json!({"type": "enabled", "budget_tokens": budget}))
}

/// Translates a Responses request body into an Anthropic Messages body for
/// `upstream_model`. `default_max_tokens` fills `max_tokens` when the client
/// sent no `max_output_tokens` (Anthropic requires it). System and developer
/// messages join the top-level `system`, in order: not every Anthropic model
/// or compatible endpoint takes a system message inside `messages`.
pub fn responses_to_messages(
    body: &Map<String, Value>,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Map<String, Value>, RequestError> {
    params::refuse_unservable(body)?;
    if params::text_format(body)? != TextFormat::Text {
        return Err(unsupported(
            "text.format",
            "JSON modes cannot be enforced on an Anthropic provider; use a tool instead",
        ));
    }
    let mut system: Vec<String> = items::instructions(body)
        .map(str::to_owned)
        .into_iter()
        .collect();
    let mut messages: Vec<Value> = Vec::new();
    for entry in items::entries(body)? {
        match entry {
            Entry::System(text) => {
                if !text.is_empty() {
                    system.push(text);
                }
            }
            Entry::User(parts) => push_turn(&mut messages, "user", blocks(&parts, "input")?),
            Entry::Assistant(text) => {
                if !text.is_empty() {
                    push_turn(
                        &mut messages,
                        "assistant",
                        vec![json!({"type": "text", "text": text})],
                    );
                }
            }
            Entry::Reasoning { envelope, .. } => {
                if let Some(b) = thinking_block(envelope) {
                    push_turn(&mut messages, "assistant", vec![b]);
                }
            }
            Entry::Call {
                call_id,
                name,
                arguments,
                field,
            } => {
                let input: Value = if arguments.trim().is_empty() {
                    json!({})
                } else {
                    serde_json::from_str(&arguments)
                        .ok()
                        .filter(Value::is_object)
                        .ok_or_else(|| {
                            invalid(format!("{field}.arguments"), "a JSON object string")
                        })?
                };
                push_turn(
                    &mut messages,
                    "assistant",
                    vec![json!({"type": "tool_use", "id": call_id, "name": name, "input": input})],
                );
            }
            Entry::Output { call_id, parts } => push_turn(
                &mut messages,
                "user",
                vec![tool_result(&call_id, &parts, "input")?],
            ),
        }
    }
    if messages.is_empty() {
        return Err(invalid("input", "at least one user or assistant item"));
    }
    let mut tools = tools::flat_tools(body)?;
    let choice = tools::tool_choice(body, &mut tools)?;

    let mut out = Map::new();
    out.insert("model".into(), json!(upstream_model));
    let max_tokens = params::max_output(body)
        .unwrap_or(default_max_tokens)
        .max(1);
    out.insert("max_tokens".into(), json!(max_tokens));
    if !system.is_empty() {
        out.insert("system".into(), json!(system.join("\n\n")));
    }
    out.insert("messages".into(), Value::Array(messages));
    let thinking = thinking(body, max_tokens, choice.as_ref(), !tools.is_empty());
    for key in ["temperature", "top_p"] {
        // With thinking on, Anthropic refuses a temperature and a top_p
        // below 0.95: they only tune sampling, so they are dropped.
        let allowed = |v: &Value| match (&thinking, key) {
            (None, _) => true,
            (Some(_), "top_p") => v.as_f64().is_some_and(|p| p >= 0.95),
            (Some(_), _) => false,
        };
        if let Some(v) = body
            .get(key)
            .filter(|v| v.is_number())
            .filter(|v| allowed(v))
        {
            out.insert(key.into(), v.clone());
        }
    }
    if !tools.is_empty() {
        out.insert(
            "tools".into(),
            Value::Array(tools.iter().map(tools::FlatTool::anthropic).collect()),
        );
        let mut choice = choice.map(|c| c.anthropic());
        if body.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false) {
            let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
            if c["type"] != "none" {
                c["disable_parallel_tool_use"] = json!(true);
            }
        }
        if let Some(c) = choice {
            out.insert("tool_choice".into(), c);
        }
    }
    if let Some(t) = thinking {
        out.insert("thinking".into(), t);
    }
    if let Some(user) = params::end_user(body) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if params::streaming(body) {
        out.insert("stream".into(), json!(true));
    }
    Ok(out)
}
