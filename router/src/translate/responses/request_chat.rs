//! Responses request → OpenAI chat-completions request.

use serde_json::{json, Map, Value};

use super::items::{self, Entry, Part};
use super::params::{self, TextFormat};
use super::tools;
use crate::wire::invalid;
use crate::wire::openai::RequestError;

/// A user-content part in chat's shape.
fn chat_part(p: &Part) -> Value {
    match p {
        Part::Text(t) => json!({"type": "text", "text": t}),
        Part::Image { url, detail } => {
            let mut image = Map::new();
            image.insert("url".into(), json!(url));
            if let Some(d) = detail {
                image.insert("detail".into(), json!(d));
            }
            json!({"type": "image_url", "image_url": image})
        }
        Part::Pdf { data_url, filename } => {
            let mut file = Map::new();
            if let Some(f) = filename {
                file.insert("filename".into(), json!(f));
            }
            file.insert("file_data".into(), json!(data_url));
            json!({"type": "file", "file": file})
        }
    }
}

/// User content: a plain string when it is one text, else parts.
fn user_content(parts: &[Part]) -> Value {
    match parts {
        [Part::Text(t)] => json!(t),
        _ => Value::Array(parts.iter().map(chat_part).collect()),
    }
}

/// Builds chat messages from entries: an assistant message stays open so
/// that the tool calls after a text join it; reasoning waits for the next
/// assistant message; images from tool results follow the tool messages in
/// a user message (tool messages carry text only).
#[derive(Default)]
struct Messages {
    out: Vec<Value>,
    assistant: Option<Map<String, Value>>,
    reasoning: Option<String>,
    tool_extras: Vec<Part>,
}

impl Messages {
    fn close_assistant(&mut self) {
        if let Some(m) = self.assistant.take() {
            self.out.push(Value::Object(m));
        }
    }

    fn flush_tool_extras(&mut self) {
        if !self.tool_extras.is_empty() {
            let parts = std::mem::take(&mut self.tool_extras);
            self.out
                .push(json!({"role": "user", "content": user_content(&parts)}));
        }
    }

    fn open_assistant(&mut self, content: Value) -> &mut Map<String, Value> {
        let mut m = Map::new();
        m.insert("role".into(), json!("assistant"));
        m.insert("content".into(), content);
        if let Some(r) = self.reasoning.take() {
            m.insert("reasoning_content".into(), json!(r));
        }
        self.assistant.insert(m)
    }

    fn push(&mut self, entry: Entry) {
        if !matches!(entry, Entry::Output { .. }) {
            self.flush_tool_extras();
        }
        if !matches!(entry, Entry::Call { .. }) {
            self.close_assistant();
        }
        match entry {
            Entry::System(text) => self.out.push(json!({"role": "system", "content": text})),
            Entry::User(parts) => {
                if !parts.is_empty() {
                    self.out
                        .push(json!({"role": "user", "content": user_content(&parts)}));
                }
            }
            Entry::Assistant(text) => {
                self.open_assistant(json!(text));
            }
            Entry::Reasoning { text, .. } => {
                if !text.is_empty() {
                    let r = self.reasoning.get_or_insert_with(String::new);
                    if !r.is_empty() {
                        r.push_str("\n\n");
                    }
                    r.push_str(&text);
                }
            }
            Entry::Call {
                call_id,
                name,
                arguments,
                ..
            } => {
                let call = json!({"id": call_id, "type": "function",
                                  "function": {"name": name, "arguments": arguments}});
                if self.assistant.is_none() {
                    self.open_assistant(Value::Null);
                }
                let Some(m) = self.assistant.as_mut() else {
                    return;
                };
                match m.get_mut("tool_calls").and_then(Value::as_array_mut) {
                    Some(calls) => calls.push(call),
                    None => {
                        m.insert("tool_calls".into(), json!([call]));
                    }
                }
            }
            Entry::Output { call_id, parts } => {
                let mut text = Vec::new();
                for p in parts {
                    match p {
                        Part::Text(t) => text.push(t),
                        other => self.tool_extras.push(other),
                    }
                }
                self.out.push(
                    json!({"role": "tool", "tool_call_id": call_id, "content": text.join("\n\n")}),
                );
            }
        }
    }

    fn finish(mut self) -> Vec<Value> {
        self.flush_tool_extras();
        self.close_assistant();
        self.out
    }
}

/// Translates a Responses request body into an OpenAI chat-completions body
/// for `upstream_model` (see the module table for what maps, what is dropped
/// and what is refused).
pub fn responses_to_chat(
    body: &Map<String, Value>,
    upstream_model: &str,
) -> Result<Map<String, Value>, RequestError> {
    params::refuse_unservable(body)?;
    let mut messages = Messages::default();
    if let Some(text) = items::instructions(body) {
        messages.push(Entry::System(text.to_owned()));
    }
    for entry in items::entries(body)? {
        messages.push(entry);
    }
    let messages = messages.finish();
    if messages.is_empty() {
        return Err(invalid("input", "at least one input item"));
    }
    let mut tools = tools::flat_tools(body)?;
    let choice = tools::tool_choice(body, &mut tools)?;
    let format = params::text_format(body)?;

    let mut out = Map::new();
    out.insert("model".into(), json!(upstream_model));
    out.insert("messages".into(), Value::Array(messages));
    if let Some(n) = params::max_output(body) {
        out.insert("max_tokens".into(), json!(n));
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = body.get(key).filter(|v| v.is_number()) {
            out.insert(key.into(), v.clone());
        }
    }
    if !tools.is_empty() {
        out.insert(
            "tools".into(),
            Value::Array(tools.iter().map(tools::FlatTool::chat).collect()),
        );
        if let Some(c) = choice {
            out.insert("tool_choice".into(), c.chat());
        }
        if let Some(p) = body.get("parallel_tool_calls").filter(|p| p.is_boolean()) {
            out.insert("parallel_tool_calls".into(), p.clone());
        }
    }
    if let Some(effort) = params::effort(body) {
        out.insert("reasoning_effort".into(), json!(effort));
    }
    match format {
        TextFormat::Text => {}
        TextFormat::JsonObject => {
            out.insert("response_format".into(), json!({"type": "json_object"}));
        }
        TextFormat::JsonSchema(schema) => {
            out.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": schema}),
            );
        }
    }
    if let Some(user) = params::end_user(body) {
        out.insert("user".into(), json!(user));
    }
    if params::streaming(body) {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(out)
}
