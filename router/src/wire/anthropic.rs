//! Anthropic's wire format: validation of Messages requests
//! (`POST /v1/messages`, `/v1/messages/count_tokens`), the upstream body sent
//! to an Anthropic-speaking provider, and Anthropic's error JSON.
//!
//! Like the OpenAI side, the body stays a JSON map in the client's key order,
//! so `cache_control`, `thinking`, system messages inside `messages`, beta
//! fields and anything else Tollgate does not know reach an Anthropic
//! upstream untouched.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::openai::RequestError;
use super::{invalid, parse_object};

/// A validated Messages request.
#[derive(Debug, Clone)]
pub struct ParsedMessages {
    body: Map<String, Value>,
    /// The `model` the client asked for.
    pub model: String,
    /// Whether the client asked for a stream.
    pub stream: bool,
}

/// Checks what Tollgate itself reads: `model` (routing), `stream`,
/// `max_tokens` (the budget's worst case) and `messages` (estimates). Roles,
/// content blocks, `system`, `tools`, `thinking` and every other field are
/// the upstream's to judge, or the translation's (see [`super`]).
fn validate(body: &Map<String, Value>) -> Result<String, RequestError> {
    let model = match body.get("model") {
        None | Some(Value::Null) => return Err(RequestError::Missing("model")),
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => return Err(invalid("model", "a non-empty string")),
    };
    match body.get("max_tokens") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64().is_some_and(|n| n >= 1) => {}
        Some(_) => return Err(invalid("max_tokens", "a positive integer")),
    }
    match body.get("messages") {
        None | Some(Value::Null) => return Err(RequestError::Missing("messages")),
        Some(Value::Array(_)) => {}
        Some(_) => return Err(invalid("messages", "an array of messages")),
    }
    match body.get("stream") {
        None | Some(Value::Null) | Some(Value::Bool(_)) => {}
        Some(_) => return Err(invalid("stream", "a boolean")),
    }
    Ok(model)
}

/// Validates a `POST /v1/messages` body.
pub fn parse_messages(bytes: &[u8]) -> Result<ParsedMessages, RequestError> {
    let body = parse_object(bytes)?;
    let model = validate(&body)?;
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    Ok(ParsedMessages {
        body,
        model,
        stream,
    })
}

/// Validates a `POST /v1/messages/count_tokens` body.
pub fn parse_count_tokens(bytes: &[u8]) -> Result<ParsedMessages, RequestError> {
    let body = parse_object(bytes)?;
    let model = validate(&body)?;
    Ok(ParsedMessages {
        body,
        model,
        stream: false,
    })
}

impl ParsedMessages {
    /// The body.
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }

    /// The body as an Anthropic upstream receives it: only `model` changes.
    /// Serialized from the client's map without copying it.
    pub fn upstream_body(&self, upstream_model: &str) -> Bytes {
        super::upstream_bytes(&self.body, upstream_model, false)
    }
}

/// Anthropic's error type for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 409 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// Anthropic's error body: `{"type": "error", "error": {"type", "message"}}`.
pub fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// An `error` event delivered inside a stream after HTTP 200.
pub fn sse_error_event(kind: &str, message: &str) -> Bytes {
    Bytes::from(format!(
        "event: error\ndata: {}\n\n",
        error_body(kind, message)
    ))
}

/// Converts any upstream error body into Anthropic's shape: an Anthropic
/// error passes as it is; an OpenAI error keeps its message; anything else
/// is quoted, cut short.
pub fn error_from_upstream(status: u16, body: &[u8]) -> Value {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(v) = &parsed {
        if v.get("type").and_then(Value::as_str) == Some("error")
            && v.pointer("/error/type").is_some_and(Value::is_string)
        {
            return v.clone();
        }
        if let Some(msg) = v.pointer("/error/message").and_then(Value::as_str) {
            return error_body(error_type(status), msg);
        }
    }
    error_body(error_type(status), &super::not_an_error_object(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_messages_request_parses() {
        let r = parse_messages(
            br#"{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        assert_eq!(r.model, "claude");
        assert!(!r.stream);
    }

    #[test]
    fn what_tollgate_reads_is_checked_and_named() {
        let e = parse_messages(br#"{"model":"m","max_tokens":1}"#).unwrap_err();
        assert_eq!(e.param(), Some("messages"));
        let e = parse_messages(br#"{"max_tokens":1,"messages":[]}"#).unwrap_err();
        assert_eq!(e.param(), Some("model"));
        let e = parse_messages(br#"{"model":"m","max_tokens":0,"messages":[]}"#).unwrap_err();
        assert_eq!(e.param(), Some("max_tokens"));
        let e = parse_messages(br#"{"model":"m","messages":[],"stream":"yes"}"#).unwrap_err();
        assert_eq!(e.param(), Some("stream"));
        assert!(
            parse_count_tokens(br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#)
                .is_ok()
        );
    }

    #[test]
    fn what_only_the_vendor_reads_passes_unjudged() {
        // Claude Code's system messages, unknown roles and block types,
        // adaptive thinking, a missing max_tokens: the upstream decides.
        let r = parse_messages(
            br#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"system","content":[{"type":"text","text":"env"}]},
                {"role":"narrator","content":[{"type":"new_block_2027"},{"text":"no type"}]}],
                "thinking":{"type":"adaptive","display":"omitted"},"output_config":{"effort":"high"},
                "context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},"system":7}"#,
        )
        .unwrap();
        assert!(!r.stream);
        assert_eq!(r.body()["thinking"]["type"], "adaptive");
    }

    #[test]
    fn upstream_body_changes_only_the_model() {
        let src = r#"{"model":"claude","max_tokens":5,"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}],"thinking":{"type":"enabled","budget_tokens":1024},"x_unknown":1}"#;
        let r = parse_messages(src.as_bytes()).unwrap();
        let up = r.upstream_body("claude-sonnet-4-5");
        assert_eq!(
            std::str::from_utf8(&up).unwrap(),
            src.replace("\"claude\"", "\"claude-sonnet-4-5\"")
        );
    }

    #[test]
    fn upstream_errors_become_anthropic_errors() {
        let e = error_from_upstream(429, br#"{"error":{"message":"slow down","type":"x"}}"#);
        assert_eq!(e, error_body("rate_limit_error", "slow down"));
        let a = error_body("overloaded_error", "busy");
        assert_eq!(error_from_upstream(529, a.to_string().as_bytes()), a);
        let e = error_from_upstream(502, b"<html>bad gateway</html>");
        assert_eq!(e["error"]["type"], "api_error");
    }
}
