//! One walk over a Responses request's `input`, shared by both translations:
//! every item becomes a neutral [`Entry`] (a system text, a user or
//! assistant turn, reasoning, a tool call or a tool result), or a 400 naming
//! `input[i]`.
//!
//! Unknown item types are not refused, since agents send new ones before any
//! gateway knows them: an item that carries text (a `text` string, or
//! `content` parts with `text`) is kept as a message of its `role` (user when
//! it has none), any other is dropped.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::envelope::Envelope;
use super::params::unsupported;
use super::tools::flat_name;
use crate::wire::invalid;
use crate::wire::openai::RequestError;

/// One piece of user content.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    /// Text.
    Text(String),
    /// An image by data URL or http(s) URL, with chat's optional `detail`.
    Image {
        /// The URL.
        url: String,
        /// `detail` (`low`, `high`, `auto`), for chat.
        detail: Option<String>,
    },
    /// A PDF, as a `data:application/pdf;base64,` URL.
    Pdf {
        /// The data URL.
        data_url: String,
        /// The file name, when given.
        filename: Option<String>,
    },
}

/// One input item, neutral.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Entry {
    /// A system or developer message.
    System(String),
    /// A user message.
    User(Vec<Part>),
    /// An assistant message's text.
    Assistant(String),
    /// A reasoning item.
    Reasoning {
        /// Tollgate's envelope, when the item carries one.
        envelope: Option<Envelope>,
        /// The readable text: the envelope's, else `content`, else `summary`.
        text: String,
    },
    /// A tool call: function, custom (arguments `{"input": ...}`) or local
    /// shell (arguments = the action).
    Call {
        /// The client's call id.
        call_id: String,
        /// The upstream function name (namespaced names flattened).
        name: String,
        /// The arguments as a JSON string.
        arguments: String,
        /// Where the item sits, for errors (`input[3]`).
        field: String,
    },
    /// A tool result.
    Output {
        /// The call it answers.
        call_id: String,
        /// Its content.
        parts: Vec<Part>,
    },
}

/// History items of hosted tools, which only an upstream serving the
/// Responses API can replay.
const HOSTED_ITEMS: &[&str] = &[
    "web_search_call",
    "file_search_call",
    "computer_call",
    "computer_call_output",
    "code_interpreter_call",
    "image_generation_call",
    "mcp_call",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "shell_call",
    "shell_call_output",
    "apply_patch_call",
    "apply_patch_call_output",
    "tool_search_call",
    "tool_search_output",
];

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn required_str(v: &Value, key: &str, field: &str) -> Result<String, RequestError> {
    str_of(v, key)
        .map(str::to_owned)
        .ok_or_else(|| invalid(format!("{field}.{key}"), "a string"))
}

/// An `input_image` part.
fn image(p: &Value, field: &str) -> Result<Part, RequestError> {
    if p.get("file_id").is_some_and(|v| !v.is_null()) {
        return Err(unsupported(
            format!("{field}.file_id"),
            "uploaded files cannot be sent to a translated provider; send the image as a data URL",
        ));
    }
    let url = str_of(p, "image_url")
        .ok_or_else(|| invalid(format!("{field}.image_url"), "a URL string"))?;
    let ok = if url.starts_with("data:") {
        split_data_url(url).is_some()
    } else {
        url.starts_with("http://") || url.starts_with("https://")
    };
    if !ok {
        return Err(invalid(
            format!("{field}.image_url"),
            "an http(s) URL or a base64 data URL",
        ));
    }
    Ok(Part::Image {
        url: url.to_owned(),
        detail: str_of(p, "detail").map(str::to_owned),
    })
}

/// An `input_file` part: text files become text, PDFs stay PDFs.
fn file(p: &Value, field: &str) -> Result<Part, RequestError> {
    for key in ["file_id", "file_url"] {
        if p.get(key).is_some_and(|v| !v.is_null()) {
            return Err(unsupported(
                format!("{field}.{key}"),
                "files by id or URL cannot be sent to a translated provider; send `file_data` as a data URL",
            ));
        }
    }
    let f = format!("{field}.file_data");
    let data = str_of(p, "file_data").ok_or_else(|| invalid(f.clone(), "a data URL"))?;
    let (meta, payload) = data
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .ok_or_else(|| invalid(f.clone(), "a data URL"))?;
    let media = meta.strip_suffix(";base64").unwrap_or(meta);
    if media == "application/pdf" {
        return Ok(Part::Pdf {
            data_url: data.to_owned(),
            filename: str_of(p, "filename").map(str::to_owned),
        });
    }
    let media = media.split(';').next().unwrap_or("");
    if media.starts_with("text/") || media == "application/json" {
        let bytes = if meta.ends_with(";base64") {
            base64::engine::general_purpose::STANDARD
                .decode(payload)
                .map_err(|_| invalid(f.clone(), "valid base64 data"))?
        } else {
            payload.as_bytes().to_vec()
        };
        let text = String::from_utf8(bytes).map_err(|_| invalid(f, "UTF-8 text"))?;
        return Ok(Part::Text(text));
    }
    Err(unsupported(
        f,
        "only PDF and text files can be sent to a translated provider",
    ))
}

/// Content parts (of a user message or a tool output).
fn parts(content: &Value, field: &str) -> Result<Vec<Part>, RequestError> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![Part::Text(s.clone())]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(j, p)| {
                let f = format!("{field}[{j}]");
                match str_of(p, "type") {
                    Some("input_image") => image(p, &f),
                    Some("input_file") => file(p, &f),
                    Some("refusal") => Ok(Part::Text(str_of(p, "refusal").unwrap_or("").into())),
                    _ => match str_of(p, "text") {
                        Some(t) => Ok(Part::Text(t.to_owned())),
                        None => Err(unsupported(
                            f,
                            "this content part cannot be sent to a translated provider",
                        )),
                    },
                }
            })
            .collect(),
        _ => Err(invalid(field.to_owned(), "a string or an array of parts")),
    }
}

/// The text of `parts`, which must all be text.
fn text_only(parts: Vec<Part>, field: &str) -> Result<String, RequestError> {
    let mut out = Vec::new();
    for p in parts {
        match p {
            Part::Text(t) => out.push(t),
            _ => {
                return Err(unsupported(
                    field.to_owned(),
                    "only text is allowed in system, developer and assistant messages",
                ))
            }
        }
    }
    Ok(out.join("\n\n"))
}

/// A message of `role` with `content` (a string or parts).
fn message(role: &str, content: &Value, field: &str) -> Result<Entry, RequestError> {
    let f = format!("{field}.content");
    let parts = parts(content, &f)?;
    match role {
        "user" => Ok(Entry::User(parts)),
        "assistant" => Ok(Entry::Assistant(text_only(parts, &f)?)),
        "system" | "developer" => Ok(Entry::System(text_only(parts, &f)?)),
        _ => Err(invalid(
            format!("{field}.role"),
            "'user', 'assistant', 'system' or 'developer'",
        )),
    }
}

/// The texts of a list of `{text}` objects, joined.
fn texts(list: Option<&Value>) -> String {
    list.and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|s| str_of(s, "text"))
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join("\n\n")
        })
        .unwrap_or_default()
}

fn reasoning(item: &Value) -> Entry {
    let envelope = str_of(item, "encrypted_content").and_then(Envelope::decode);
    let mut text = envelope
        .as_ref()
        .map(|e| e.text().to_owned())
        .unwrap_or_default();
    if text.is_empty() && envelope.is_none() {
        text = texts(item.get("content"));
        if text.is_empty() {
            text = texts(item.get("summary"));
        }
    }
    Entry::Reasoning { envelope, text }
}

/// A tool output (`output` a string or parts).
fn output(item: &Value, call_id: String, field: &str) -> Result<Entry, RequestError> {
    let parts = parts(
        item.get("output").unwrap_or(&Value::Null),
        &format!("{field}.output"),
    )?;
    Ok(Entry::Output { call_id, parts })
}

/// An item of a type Tollgate does not know: its text as a message, or
/// nothing.
fn unknown(item: &Value) -> Option<Entry> {
    let text = match str_of(item, "text") {
        Some(t) => t.to_owned(),
        None => texts(item.get("content")),
    };
    if text.is_empty() {
        return None;
    }
    Some(match str_of(item, "role") {
        Some("assistant") => Entry::Assistant(text),
        Some("system" | "developer") => Entry::System(text),
        _ => Entry::User(vec![Part::Text(text)]),
    })
}

fn item(i: usize, item: &Value) -> Result<Option<Entry>, RequestError> {
    let field = format!("input[{i}]");
    let kind = match (str_of(item, "type"), item.get("role")) {
        (Some(t), _) => t,
        (None, Some(_)) => "message",
        (None, None) => return Err(invalid(format!("{field}.type"), "an item type")),
    };
    let call_id = |key: &str| required_str(item, key, &field);
    let entry =
        match kind {
            "message" => {
                let role = str_of(item, "role")
                    .ok_or_else(|| invalid(format!("{field}.role"), "a role string"))?;
                message(role, item.get("content").unwrap_or(&Value::Null), &field)?
            }
            "reasoning" => reasoning(item),
            "function_call" => Entry::Call {
                call_id: call_id("call_id")?,
                name: flat_name(
                    str_of(item, "namespace"),
                    &required_str(item, "name", &field)?,
                ),
                arguments: str_of(item, "arguments").unwrap_or("").to_owned(),
                field,
            },
            "custom_tool_call" => Entry::Call {
                call_id: call_id("call_id")?,
                name: flat_name(
                    str_of(item, "namespace"),
                    &required_str(item, "name", &field)?,
                ),
                arguments: json!({"input": str_of(item, "input").unwrap_or("")}).to_string(),
                field,
            },
            "local_shell_call" => Entry::Call {
                call_id: str_of(item, "call_id")
                    .or_else(|| str_of(item, "id"))
                    .ok_or_else(|| invalid(format!("{field}.call_id"), "a string"))?
                    .to_owned(),
                name: "local_shell".into(),
                arguments: item
                    .get("action")
                    .cloned()
                    .unwrap_or_else(|| json!({}))
                    .to_string(),
                field,
            },
            "function_call_output" | "custom_tool_call_output" => {
                output(item, call_id("call_id")?, &field)?
            }
            "local_shell_call_output" => {
                let id = str_of(item, "call_id")
                    .or_else(|| str_of(item, "id"))
                    .ok_or_else(|| invalid(format!("{field}.call_id"), "a string"))?;
                output(item, id.to_owned(), &field)?
            }
            "item_reference" => {
                return Err(unsupported(
                    field,
                    "Tollgate stores no responses; send the full items",
                ))
            }
            k if HOSTED_ITEMS.contains(&k) => return Err(unsupported(
                field,
                "hosted tool calls can be replayed only to an upstream that serves /v1/responses",
            )),
            _ => return Ok(unknown(item)),
        };
    Ok(Some(entry))
}

/// Walks `instructions` aside: the request's `input` as entries, in order.
pub(crate) fn entries(body: &Map<String, Value>) -> Result<Vec<Entry>, RequestError> {
    match body.get("input") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Entry::User(vec![Part::Text(s.clone())])]),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                if let Some(e) = item(i, it)? {
                    out.push(e);
                }
            }
            Ok(out)
        }
        Some(_) => Err(invalid("input", "a string or an array of input items")),
    }
}

/// `instructions`, when non-empty.
pub(crate) fn instructions(body: &Map<String, Value>) -> Option<&str> {
    body.get("instructions")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A data URL split into media type and base64 data.
pub(crate) fn split_data_url(url: &str) -> Option<(&str, &str)> {
    let (meta, data) = url.strip_prefix("data:")?.split_once(',')?;
    Some((meta.strip_suffix(";base64")?, data))
}
