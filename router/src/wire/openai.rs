//! OpenAI's wire format: validation of chat-completions and embeddings
//! requests, the upstream body Tollgate sends, and OpenAI's error JSON.
//!
//! Bodies stay a JSON map, so every field Tollgate does not know (vendor
//! extensions such as `thinking` or `reasoning_split`) reaches the upstream
//! untouched, in the client's key order.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::{invalid, parse_object};

/// A request body Tollgate refused, with the parameter at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// The body is not JSON at all.
    #[error("We could not parse the JSON body of your request: {0}")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("The request body must be a JSON object.")]
    NotObject,
    /// A required field is absent.
    #[error("Missing required parameter: '{0}'.")]
    Missing(&'static str),
    /// A field has the wrong type or value.
    #[error("Invalid value for '{field}': expected {expected}.")]
    Invalid {
        /// The parameter, as a JSON path (`messages[2].role`).
        field: String,
        /// What was expected there.
        expected: &'static str,
    },
    /// The request asks for something the serving provider's format cannot
    /// express, and dropping it would change the answer.
    #[error("'{field}' cannot be served by this model's provider: {what}.")]
    Unsupported {
        /// The parameter, as a JSON path.
        field: String,
        /// Why.
        what: &'static str,
    },
}

impl RequestError {
    /// The parameter the error is about, for OpenAI's `param` field.
    pub fn param(&self) -> Option<&str> {
        match self {
            Self::Missing(p) => Some(p),
            Self::Invalid { field, .. } | Self::Unsupported { field, .. } => Some(field),
            Self::NotJson(_) | Self::NotObject => None,
        }
    }
}

/// A validated OpenAI request.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    body: Map<String, Value>,
    /// The `model` the client asked for.
    pub model: String,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Whether the client asked for a usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
}

fn required_model(body: &Map<String, Value>) -> Result<String, RequestError> {
    match body.get("model") {
        None | Some(Value::Null) => Err(RequestError::Missing("model")),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(_) => Err(invalid("model", "a non-empty string")),
    }
}

fn optional(
    body: &Map<String, Value>,
    key: &'static str,
    ok: fn(&Value) -> bool,
    expected: &'static str,
) -> Result<(), RequestError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) if ok(v) => Ok(()),
        Some(_) => Err(invalid(key, expected)),
    }
}

fn optional_bool(body: &Map<String, Value>, key: &'static str) -> Result<bool, RequestError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(key, "a boolean")),
    }
}

fn validate_messages(body: &Map<String, Value>) -> Result<(), RequestError> {
    match body.get("messages") {
        None | Some(Value::Null) => Err(RequestError::Missing("messages")),
        Some(Value::Array(_)) => Ok(()),
        Some(_) => Err(invalid("messages", "an array of messages")),
    }
}

fn is_count(v: &Value) -> bool {
    v.as_u64().is_some()
}

fn is_positive(v: &Value) -> bool {
    v.as_u64().is_some_and(|n| n > 0)
}

/// Validates a `POST /v1/chat/completions` body: what Tollgate reads
/// (`model`, `messages`, `stream`, `stream_options.include_usage`, the
/// output limits) is checked; roles, content parts, sampling settings and
/// every other field are the upstream's to judge, or the translation's.
pub fn parse_chat(bytes: &[u8]) -> Result<ParsedRequest, RequestError> {
    parse_chat_object(parse_object(bytes)?)
}

/// [`parse_chat`] on a body already parsed.
pub fn parse_chat_object(body: Map<String, Value>) -> Result<ParsedRequest, RequestError> {
    let model = required_model(&body)?;
    validate_messages(&body)?;
    let stream = optional_bool(&body, "stream")?;
    let include_usage = match body.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(opts)) => match opts.get("include_usage") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid("stream_options.include_usage", "a boolean")),
        },
        Some(_) => return Err(invalid("stream_options", "an object")),
    };
    optional(&body, "max_tokens", is_count, "a non-negative integer")?;
    optional(
        &body,
        "max_completion_tokens",
        is_count,
        "a non-negative integer",
    )?;
    Ok(ParsedRequest {
        body,
        model,
        stream,
        include_usage: stream && include_usage,
    })
}

fn is_token_array(v: &Value) -> bool {
    v.as_array()
        .is_some_and(|a| !a.is_empty() && a.iter().all(is_count))
}

/// Validates a `POST /v1/embeddings` body.
pub fn parse_embeddings(bytes: &[u8]) -> Result<ParsedRequest, RequestError> {
    let body = parse_object(bytes)?;
    let model = required_model(&body)?;
    let ok = match body.get("input") {
        None | Some(Value::Null) => return Err(RequestError::Missing("input")),
        Some(Value::String(_)) => true,
        Some(Value::Array(items)) if !items.is_empty() => {
            items.iter().all(Value::is_string)
                || items.iter().all(is_count)
                || items.iter().all(is_token_array)
        }
        Some(_) => false,
    };
    if !ok {
        return Err(invalid(
            "input",
            "a string, an array of strings, or an array of token arrays",
        ));
    }
    optional(&body, "dimensions", is_positive, "a positive integer")?;
    optional(
        &body,
        "encoding_format",
        |v| matches!(v.as_str(), Some("float") | Some("base64")),
        "'float' or 'base64'",
    )?;
    Ok(ParsedRequest {
        body,
        model,
        stream: false,
        include_usage: false,
    })
}

impl ParsedRequest {
    /// The body as the client sent it (for translation).
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }

    /// The body as the upstream receives it: the upstream model name in
    /// `model`, and for streams `stream_options.include_usage = true`, so the
    /// upstream always reports usage whatever the client asked. Every other
    /// field is passed through as the client sent it, serialized from the
    /// client's map without copying it.
    pub fn upstream_body(&self, upstream_model: &str) -> Bytes {
        super::upstream_bytes(&self.body, upstream_model, self.stream)
    }
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// An error delivered inside an SSE stream after HTTP 200, as OpenAI does.
pub fn sse_error_event(message: &str, kind: &str, code: &str) -> Bytes {
    let body = error_body(message, kind, None, Some(code));
    Bytes::from(format!("data: {body}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(s: &str) -> Result<ParsedRequest, RequestError> {
        parse_chat(s.as_bytes())
    }

    #[test]
    fn minimal_chat_request_parses() {
        let r = chat(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(r.model, "m");
        assert!(!r.stream && !r.include_usage);
    }

    #[test]
    fn numbers_reach_the_upstream_with_the_value_the_client_sent() {
        // Found by fuzzing: a number past u64 (here 4e108, written out) went
        // upstream as 3.9999999999999996e108.
        let big = format!("4{}", "0".repeat(108));
        let body = format!(
            r#"{{"model":"m","messages":[],"top_k":{big},"temperature":0.7,"x":1.2345678901234567e-300}}"#
        );
        let sent = chat(&body).unwrap().upstream_body("up");
        let text = String::from_utf8(sent.to_vec()).unwrap();
        assert!(text.contains(r#""top_k":4e+108,"#), "{text}");
        let sent: Value = serde_json::from_slice(&sent).unwrap();
        assert_eq!(sent["temperature"].as_f64(), Some(0.7));
        assert_eq!(sent["x"].as_f64(), Some(1.2345678901234567e-300));
    }

    #[test]
    fn malformed_json_and_non_objects_are_rejected() {
        assert!(matches!(chat("{"), Err(RequestError::NotJson(_))));
        assert_eq!(chat("[1]").unwrap_err(), RequestError::NotObject);
        assert!(matches!(chat(""), Err(RequestError::NotJson(_))));
    }

    #[test]
    fn missing_and_invalid_fields_name_the_parameter() {
        let e = chat(r#"{"messages":[{"role":"user","content":"x"}]}"#).unwrap_err();
        assert_eq!(e.param(), Some("model"));
        let e = chat(r#"{"model":"m"}"#).unwrap_err();
        assert_eq!(e.param(), Some("messages"));
        let e = chat(r#"{"model":"m","messages":{}}"#).unwrap_err();
        assert_eq!(e.param(), Some("messages"));
        let e = chat(r#"{"model":7,"messages":[{"role":"user"}]}"#).unwrap_err();
        assert_eq!(e.param(), Some("model"));
        let e = chat(r#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#).unwrap_err();
        assert_eq!(e.param(), Some("stream"));
        let e = chat(r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":-1}"#).unwrap_err();
        assert_eq!(e.param(), Some("max_tokens"));
    }

    #[test]
    fn what_only_the_vendor_reads_passes_unjudged() {
        let r = chat(
            r#"{"model":"m","messages":[{"content":"no role"},{"role":"critic","content":5}],"n":0,"temperature":"hot","tools":{}}"#,
        )
        .unwrap();
        assert_eq!(r.body()["temperature"], "hot");
    }

    #[test]
    fn upstream_body_swaps_model_asks_for_usage_and_keeps_unknown_fields() {
        let r = chat(
            r#"{"model":"kimi","messages":[{"role":"user","content":"hi","reasoning_content":"r"}],
                "stream":true,"thinking":{"type":"enabled"},"reasoning_split":true}"#,
        )
        .unwrap();
        assert!(r.stream && !r.include_usage);
        let up: Value = serde_json::from_slice(&r.upstream_body("kimi-k2.5")).unwrap();
        assert_eq!(up["model"], "kimi-k2.5");
        assert_eq!(up["stream_options"]["include_usage"], true);
        assert_eq!(up["thinking"]["type"], "enabled");
        assert_eq!(up["reasoning_split"], true);
        assert_eq!(up["messages"][0]["reasoning_content"], "r");
        let keys: Vec<_> = up.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys[0], "model");
        assert_eq!(keys[1], "messages");
    }

    #[test]
    fn non_stream_body_gets_no_stream_options() {
        let r = chat(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        let up: Value = serde_json::from_slice(&r.upstream_body("u")).unwrap();
        assert!(up.get("stream_options").is_none());
    }

    #[test]
    fn embeddings_inputs_are_checked() {
        assert!(parse_embeddings(br#"{"model":"e","input":"x"}"#).is_ok());
        assert!(parse_embeddings(br#"{"model":"e","input":["a","b"]}"#).is_ok());
        assert!(parse_embeddings(br#"{"model":"e","input":[[1,2],[3]]}"#).is_ok());
        let e = parse_embeddings(br#"{"model":"e","input":[]}"#).unwrap_err();
        assert_eq!(e.param(), Some("input"));
        let e = parse_embeddings(br#"{"model":"e"}"#).unwrap_err();
        assert_eq!(e.param(), Some("input"));
        let e = parse_embeddings(br#"{"model":"e","input":[{"a":1}]}"#).unwrap_err();
        assert_eq!(e.param(), Some("input"));
    }
}
