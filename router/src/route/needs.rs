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

fn max_output(body: &Map<String, Value>) -> Option<u64> {
    body.get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| body.get("max_tokens").and_then(Value::as_u64))
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
}
