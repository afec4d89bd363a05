//! A JSON value built from structured fuzz input, with keys and strings
//! drawn mostly from the words the three wire formats use, so the fuzzer
//! reaches deep into the translators instead of stopping at unknown keys.

use arbitrary::{Arbitrary, Unstructured};
use serde_json::{Map, Number, Value};

/// Keys the wire formats and translators read.
const KEYS: &[&str] = &[
    "model",
    "messages",
    "input",
    "instructions",
    "system",
    "role",
    "content",
    "type",
    "text",
    "tools",
    "tool_choice",
    "tool_calls",
    "tool_call_id",
    "tool_use_id",
    "function",
    "name",
    "arguments",
    "parameters",
    "input_schema",
    "description",
    "id",
    "call_id",
    "output",
    "stream",
    "stream_options",
    "include_usage",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "stop_sequences",
    "n",
    "logprobs",
    "top_logprobs",
    "response_format",
    "json_schema",
    "schema",
    "strict",
    "reasoning",
    "reasoning_effort",
    "reasoning_content",
    "effort",
    "summary",
    "thinking",
    "budget_tokens",
    "signature",
    "data",
    "image_url",
    "url",
    "source",
    "media_type",
    "detail",
    "file",
    "file_data",
    "filename",
    "image",
    "input_image",
    "input_file",
    "document",
    "is_error",
    "cache_control",
    "metadata",
    "user",
    "user_id",
    "safety_identifier",
    "parallel_tool_calls",
    "disable_parallel_tool_use",
    "tool",
    "tools",
    "namespace",
    "format",
    "syntax",
    "definition",
    "action",
    "command",
    "encrypted_content",
    "previous_response_id",
    "conversation",
    "store",
    "include",
    "background",
    "prompt",
    "max_tool_calls",
    "allowed_tools",
    "mode",
    "output_config",
    "output_format",
    "mcp_servers",
    "container",
    "context_management",
    "defer_loading",
    "audio",
    "modalities",
    "seed",
    "status",
    "phase",
    "verbosity",
    "item_reference",
    "choices",
    "message",
    "delta",
    "finish_reason",
    "stop_reason",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "prompt_tokens_details",
    "cached_tokens",
    "index",
    "refusal",
];

/// String values the wire formats give meaning to.
const WORDS: &[&str] = &[
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "function",
    "text",
    "image_url",
    "input_text",
    "output_text",
    "input_image",
    "input_file",
    "refusal",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "server_tool_use",
    "custom",
    "namespace",
    "local_shell",
    "local_shell_call",
    "local_shell_call_output",
    "function_call",
    "function_call_output",
    "custom_tool_call",
    "custom_tool_call_output",
    "reasoning",
    "reasoning_text",
    "summary_text",
    "message",
    "item_reference",
    "web_search",
    "web_search_call",
    "auto",
    "required",
    "any",
    "none",
    "json_schema",
    "json_object",
    "grammar",
    "lark",
    "regex",
    "allowed_tools",
    "minimal",
    "low",
    "medium",
    "high",
    "xhigh",
    "enabled",
    "disabled",
    "adaptive",
    "base64",
    "url",
    "exec",
    "ephemeral",
    "completed",
    "incomplete",
    "in_progress",
    "end_turn",
    "max_tokens",
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "data:image/png;base64,iVBORw0KGgo=",
    "data:text/plain;base64,aGk=",
    "data:application/pdf;base64,JVBERg==",
    "https://example.com/a.png",
    "{}",
    "{\"a\":1}",
    "[",
    "m",
    "f",
    "ns__f",
    "call_1",
    "toolu_1",
    "",
];

/// How deep a built value may nest.
const MAX_DEPTH: usize = 12;

/// A JSON value as structured input describes it.
#[derive(Debug)]
pub struct Json(pub Value);

/// A JSON object at the top, as every request and answer body is.
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl<'a> Arbitrary<'a> for Json {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        value(u, 0).map(Json)
    }
}

impl<'a> Arbitrary<'a> for JsonObject {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        object(u, 0).map(JsonObject)
    }
}

fn word(u: &mut Unstructured<'_>, list: &[&str]) -> arbitrary::Result<String> {
    if u.ratio(7, 8)? {
        Ok((*u.choose(list)?).to_owned())
    } else {
        String::arbitrary(u)
    }
}

fn object(u: &mut Unstructured<'_>, depth: usize) -> arbitrary::Result<Map<String, Value>> {
    let mut map = Map::new();
    u.arbitrary_loop(None, Some(8), |u| {
        let key = word(u, KEYS)?;
        map.insert(key, value(u, depth + 1)?);
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    Ok(map)
}

fn value(u: &mut Unstructured<'_>, depth: usize) -> arbitrary::Result<Value> {
    let deep = depth >= MAX_DEPTH;
    Ok(match u.int_in_range(0..=if deep { 5 } else { 7 })? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Number(Number::from(u.arbitrary::<u32>()?)),
        3 => Value::Number(Number::from(u.arbitrary::<i64>()?)),
        4 => Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        5 => Value::String(word(u, WORDS)?),
        6 => {
            let mut items = Vec::new();
            u.arbitrary_loop(None, Some(6), |u| {
                items.push(value(u, depth + 1)?);
                Ok(std::ops::ControlFlow::Continue(()))
            })?;
            Value::Array(items)
        }
        _ => Value::Object(object(u, depth)?),
    })
}
