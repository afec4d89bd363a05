//! OpenAI's Responses API wire format (`POST /v1/responses`): validation of
//! the request and the body sent to an upstream that serves the Responses
//! API itself.
//!
//! # What is checked, and why so little
//! Validation is liberal: Tollgate checks only what it needs to route, meter
//! and translate a request, and lets everything else through untouched:
//! - the body is a JSON object;
//! - `model` is a non-empty string;
//! - `stream`, when present, is a boolean;
//! - `max_output_tokens`, when present, is a positive integer;
//! - `input`, when present, is a string or an array whose items are objects;
//! - `instructions`, when present and not `null`, is a string.
//!
//! Unknown fields, unknown input item types and unknown content parts are
//! not refused here: the Responses API grows every few months and agents send
//! new item types before any gateway knows them. An upstream that serves
//! `/v1/responses` judges them itself; a translated request is judged by
//! [`crate::translate::responses`], which maps, drops or refuses each one.
//! Like the other formats, the body stays a JSON map in the client's key order.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::openai::RequestError;
use super::{invalid, parse_object};

/// A validated Responses API request.
#[derive(Debug, Clone)]
pub struct ParsedResponses {
    body: Map<String, Value>,
    /// The `model` the client asked for.
    pub model: String,
    /// Whether the client asked for a stream.
    pub stream: bool,
}

impl ParsedResponses {
    /// The body as the client sent it (for translation).
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }

    /// The body for an upstream that serves `/v1/responses` itself: only
    /// `model` is replaced; every other field keeps its value and place.
    /// Responses streams always end with a usage-carrying terminal event, so
    /// no usage option is forced.
    pub fn upstream_body(&self, upstream_model: &str) -> Bytes {
        super::upstream_bytes(&self.body, upstream_model, false)
    }
}

/// Validates a `POST /v1/responses` body (see the module documentation for
/// what is checked).
pub fn parse_responses(bytes: &[u8]) -> Result<ParsedResponses, RequestError> {
    parse_responses_object(parse_object(bytes)?)
}

/// [`parse_responses`] on a body already parsed.
pub fn parse_responses_object(body: Map<String, Value>) -> Result<ParsedResponses, RequestError> {
    let model = match body.get("model") {
        None | Some(Value::Null) => return Err(RequestError::Missing("model")),
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => return Err(invalid("model", "a non-empty string")),
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("stream", "a boolean")),
    };
    match body.get("max_output_tokens") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64().is_some_and(|n| n > 0) => {}
        Some(_) => return Err(invalid("max_output_tokens", "a positive integer")),
    }
    match body.get("input") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Array(items)) => {
            if let Some(i) = items.iter().position(|item| !item.is_object()) {
                return Err(invalid(format!("input[{i}]"), "an input item object"));
            }
        }
        Some(_) => return Err(invalid("input", "a string or an array of input items")),
    }
    match body.get("instructions") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => return Err(invalid("instructions", "a string")),
    }
    Ok(ParsedResponses {
        body,
        model,
        stream,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ParsedResponses, RequestError> {
        parse_responses(s.as_bytes())
    }

    #[test]
    fn a_minimal_request_parses() {
        let r = parse(r#"{"model":"gpt-5","input":"hi"}"#).unwrap();
        assert_eq!(r.model, "gpt-5");
        assert!(!r.stream);
        let r =
            parse(r#"{"model":"gpt-5","input":[{"role":"user","content":"hi"}],"stream":true}"#)
                .unwrap();
        assert!(r.stream);
    }

    #[test]
    fn what_tollgate_needs_is_checked_and_named() {
        assert!(matches!(parse("{"), Err(RequestError::NotJson(_))));
        assert_eq!(parse("[]").unwrap_err(), RequestError::NotObject);
        let cases = [
            (r#"{"input":"x"}"#, "model"),
            (r#"{"model":"","input":"x"}"#, "model"),
            (r#"{"model":3}"#, "model"),
            (r#"{"model":"m","stream":"yes"}"#, "stream"),
            (
                r#"{"model":"m","max_output_tokens":0}"#,
                "max_output_tokens",
            ),
            (
                r#"{"model":"m","max_output_tokens":1.5}"#,
                "max_output_tokens",
            ),
            (r#"{"model":"m","input":5}"#, "input"),
            (r#"{"model":"m","input":[{"role":"user"},"x"]}"#, "input[1]"),
            (r#"{"model":"m","instructions":["x"]}"#, "instructions"),
        ];
        for (body, param) in cases {
            assert_eq!(parse(body).unwrap_err().param(), Some(param), "{body}");
        }
    }

    #[test]
    fn unknown_fields_and_item_types_pass() {
        let r = parse(
            r#"{"model":"m","input":[{"type":"brand_new_item","x":1}],"instructions":null,
                "future_field":{"a":1},"store":false,"include":["reasoning.encrypted_content"]}"#,
        )
        .unwrap();
        assert_eq!(r.body()["future_field"]["a"], 1);
    }

    #[test]
    fn upstream_body_replaces_only_the_model_and_keeps_key_order() {
        let r = parse(r#"{"input":"hi","model":"alias","stream":true,"x":[1]}"#).unwrap();
        let up: Value = serde_json::from_slice(&r.upstream_body("gpt-5.1")).unwrap();
        let keys: Vec<_> = up.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["input", "model", "stream", "x"]);
        assert_eq!(up["model"], "gpt-5.1");
        assert!(up.get("stream_options").is_none());
    }
}
