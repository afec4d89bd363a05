//! Top-level Responses request parameters that both translations read the
//! same way: refusals of stateful features, effort, limits, output format.

use serde_json::{json, Map, Value};

use crate::wire::invalid;
use crate::wire::openai::RequestError;

/// A request that a translated upstream cannot serve without changing the
/// answer.
pub(crate) fn unsupported(field: impl Into<String>, what: &'static str) -> RequestError {
    RequestError::Unsupported {
        field: field.into(),
        what,
    }
}

fn present(body: &Map<String, Value>, key: &str) -> bool {
    body.get(key).is_some_and(|v| !v.is_null())
}

/// Refuses what needs stored state or a feature no translated upstream has:
/// `previous_response_id`, `conversation`, `prompt`, `background: true`,
/// `top_logprobs > 0` and `max_tool_calls`.
pub(crate) fn refuse_unservable(body: &Map<String, Value>) -> Result<(), RequestError> {
    if present(body, "previous_response_id") {
        return Err(unsupported(
            "previous_response_id",
            "Tollgate stores no responses: send the whole conversation in `input` with `store: false`",
        ));
    }
    if present(body, "conversation") {
        return Err(unsupported(
            "conversation",
            "Tollgate stores no conversations: send the whole conversation in `input` with `store: false`",
        ));
    }
    if present(body, "prompt") {
        return Err(unsupported(
            "prompt",
            "stored prompt templates exist only on an upstream that serves /v1/responses",
        ));
    }
    if body.get("background").and_then(Value::as_bool) == Some(true) {
        return Err(unsupported(
            "background",
            "Tollgate stores no responses, so it cannot run one in the background",
        ));
    }
    if body
        .get("top_logprobs")
        .and_then(Value::as_u64)
        .is_some_and(|n| n > 0)
    {
        return Err(unsupported(
            "top_logprobs",
            "logprobs cannot be returned through a translated provider",
        ));
    }
    if present(body, "max_tool_calls") {
        return Err(unsupported(
            "max_tool_calls",
            "a limit on tool calls cannot be enforced on a translated provider",
        ));
    }
    Ok(())
}

/// `reasoning.effort`, when a string.
pub(crate) fn effort(body: &Map<String, Value>) -> Option<&str> {
    body.get("reasoning")
        .and_then(|r| r.get("effort"))
        .and_then(Value::as_str)
}

/// `max_output_tokens`, when given.
pub(crate) fn max_output(body: &Map<String, Value>) -> Option<u64> {
    body.get("max_output_tokens").and_then(Value::as_u64)
}

/// The end user's id: `safety_identifier`, else the older `user`.
pub(crate) fn end_user(body: &Map<String, Value>) -> Option<&str> {
    ["safety_identifier", "user"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

/// Whether the client asked for a stream.
pub(crate) fn streaming(body: &Map<String, Value>) -> bool {
    body.get("stream").and_then(Value::as_bool) == Some(true)
}

/// `text.format`, read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TextFormat {
    /// Plain text (also when absent).
    Text,
    /// `json_object`.
    JsonObject,
    /// `json_schema`, as chat's `response_format.json_schema`.
    JsonSchema(Value),
}

/// Reads `text.format`.
pub(crate) fn text_format(body: &Map<String, Value>) -> Result<TextFormat, RequestError> {
    let format = body
        .get("text")
        .and_then(|t| t.get("format"))
        .unwrap_or(&Value::Null);
    match format.get("type").and_then(Value::as_str) {
        None if format.is_null() => Ok(TextFormat::Text),
        Some("text") => Ok(TextFormat::Text),
        Some("json_object") => Ok(TextFormat::JsonObject),
        Some("json_schema") => {
            let mut schema = Map::new();
            schema.insert(
                "name".into(),
                format
                    .get("name")
                    .cloned()
                    .unwrap_or_else(|| json!("response")),
            );
            for key in ["description", "schema", "strict"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    schema.insert(key.into(), v.clone());
                }
            }
            Ok(TextFormat::JsonSchema(Value::Object(schema)))
        }
        _ => Err(invalid(
            "text.format.type",
            "'text', 'json_object' or 'json_schema'",
        )),
    }
}
