//! What a request needs from a model: capabilities and room in the context
//! window, read from either client format.

use serde_json::{Map, Value};

use crate::estimate;

/// A request's requirements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// It declares tools.
    pub tools: bool,
    /// It carries images.
    pub vision: bool,
    /// It asks for output matching a JSON schema.
    pub json_schema: bool,
    /// Estimated prompt tokens.
    pub prompt_tokens: u64,
    /// The output it asks room for (`max_tokens`), when it says.
    pub max_output: Option<u64>,
}

fn has_tools(body: &Map<String, Value>) -> bool {
    body.get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty())
}

/// The output limit a request sets: with both `max_completion_tokens` and
/// `max_tokens`, the larger, since vendors differ in which they honour and
/// a worst case must hold for every one of them.
fn max_output(body: &Map<String, Value>) -> Option<u64> {
    ["max_completion_tokens", "max_tokens"]
        .iter()
        .filter_map(|k| body.get(*k).and_then(Value::as_u64))
        .max()
}

/// Whether any content block or part in `messages` (or `system`) is an image.
fn has_images(body: &Map<String, Value>) -> bool {
    let is_image = |p: &Value| {
        matches!(
            p.get("type").and_then(Value::as_str),
            Some("image_url" | "image")
        ) || p
            .get("content")
            .and_then(Value::as_array)
            .is_some_and(|inner| {
                inner
                    .iter()
                    .any(|b| b.get("type").and_then(Value::as_str) == Some("image"))
            })
    };
    body.get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten()
        .any(is_image)
}

impl Needs {
    /// The needs of an OpenAI chat-completions body.
    pub fn of_chat(body: &Map<String, Value>) -> Self {
        let json_schema = body
            .get("response_format")
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
            == Some("json_schema");
        Self {
            tools: has_tools(body),
            vision: has_images(body),
            json_schema,
            prompt_tokens: estimate::chat_prompt_of(body),
            max_output: max_output(body),
        }
    }

    /// The needs of an Anthropic Messages body.
    pub fn of_messages(body: &Map<String, Value>) -> Self {
        Self {
            tools: has_tools(body),
            vision: has_images(body),
            json_schema: body
                .get("output_format")
                .and_then(|f| f.get("type"))
                .and_then(Value::as_str)
                == Some("json_schema"),
            prompt_tokens: estimate::messages_prompt_of(body),
            max_output: max_output(body),
        }
    }

    /// The needs of a Responses API body: tools, `input_image` parts (in
    /// messages and tool outputs), `text.format` `json_schema`, and
    /// `max_output_tokens`.
    pub fn of_responses(body: &Map<String, Value>) -> Self {
        let is_image = |p: &Value| p.get("type").and_then(Value::as_str) == Some("input_image");
        let vision = body
            .get("input")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|item| {
                item.get("content")
                    .or_else(|| item.get("output"))
                    .and_then(Value::as_array)
            })
            .flatten()
            .any(is_image);
        let json_schema = body
            .get("text")
            .and_then(|t| t.pointer("/format/type"))
            .and_then(Value::as_str)
            == Some("json_schema");
        Self {
            tools: has_tools(body),
            vision,
            json_schema,
            prompt_tokens: estimate::responses_prompt_of(body),
            max_output: body.get("max_output_tokens").and_then(Value::as_u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn responses_needs_read_tools_images_schema_and_limit() {
        let body = json!({
            "model": "m",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "see"}]},
                {"type": "function_call_output", "call_id": "c",
                 "output": [{"type": "input_image", "image_url": "https://x/y.png"}]}
            ],
            "tools": [{"type": "function", "name": "f"}],
            "text": {"format": {"type": "json_schema", "name": "a", "schema": {}}},
            "max_output_tokens": 300
        });
        let n = Needs::of_responses(body.as_object().unwrap());
        assert!(n.tools && n.vision && n.json_schema);
        assert_eq!(n.max_output, Some(300));
        assert!(n.prompt_tokens > 0);
        let plain = json!({"model": "m", "input": "hi"});
        let n = Needs::of_responses(plain.as_object().unwrap());
        assert!(!n.tools && !n.vision && !n.json_schema);
        assert_eq!(n.max_output, None);
    }
}
