//! Which tools the simulated model calls, read from a request in any of the
//! three formats (chat messages, Anthropic messages, Responses input items).
//!
//! The model calls a tool when the request forces one (`tool_choice`
//! `required`/`any`/a named tool), or when the latest user message carries a
//! directive, so a test can make an unmodified agent call one of its tools:
//!
//! ```text
//! TOLLGATE_CALL <tool name> <JSON arguments>
//! ```
//!
//! The arguments run to the end of the line (a JSON string for a freeform
//! tool). Once the last turn carries tool results the model answers in text;
//! after a directive's call that text quotes the result
//! (`tool result: ...`), so a test can see it went back to the model.

use serde_json::{json, Value};

use super::{text_of, Plan};

/// The directive a user message carries to make the model call a tool.
pub const DIRECTIVE: &str = "TOLLGATE_CALL";

/// How many words of a tool's result the answer quotes.
const ECHO_WORDS: usize = 48;

/// One tool call the model makes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    /// The tool's name.
    pub name: String,
    /// Its arguments: a JSON object, or a string for a freeform tool.
    pub args: Value,
    /// Whether the tool is freeform (a Responses `custom` tool).
    pub custom: bool,
}

impl Call {
    /// The arguments as the wire carries them: JSON text, or the raw input
    /// of a freeform tool.
    pub fn arguments(&self) -> String {
        match (&self.args, self.custom) {
            (Value::String(s), true) => s.clone(),
            (args, _) => args.to_string(),
        }
    }
}

/// The conversation: `messages` (chat, Anthropic) or `input` items (Responses).
fn turns(request: &Value) -> Vec<&Value> {
    match request.get("messages").or_else(|| request.get("input")) {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v @ Value::String(_)) => vec![v],
        _ => Vec::new(),
    }
}

fn block_type(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("")
}

/// The text of a content value: a string, or the text of its parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The tool result the last turn carries, if it carries one. System
/// messages after it (Claude Code appends one) do not count as a turn.
fn last_tool_result(request: &Value) -> Option<String> {
    let last = *turns(request).iter().rev().find(|t| {
        !matches!(
            t.get("role").and_then(Value::as_str),
            Some("system" | "developer")
        )
    })?;
    if last.get("role").and_then(Value::as_str) == Some("tool") {
        return Some(content_text(last.get("content").unwrap_or(&Value::Null)));
    }
    if matches!(
        block_type(last),
        "function_call_output" | "custom_tool_call_output"
    ) {
        return Some(content_text(last.get("output").unwrap_or(&Value::Null)));
    }
    let blocks = last.get("content").and_then(Value::as_array)?;
    let results: Vec<String> = blocks
        .iter()
        .filter(|b| block_type(b) == "tool_result")
        .map(|b| content_text(b.get("content").unwrap_or(&Value::Null)))
        .collect();
    (!results.is_empty()).then(|| results.join("\n"))
}

/// The text of the latest user message that is not only tool results.
fn latest_user_text(request: &Value) -> Option<String> {
    turns(request).into_iter().rev().find_map(|t| {
        if let Value::String(s) = t {
            return Some(s.clone());
        }
        let user = t.get("role").and_then(Value::as_str) == Some("user")
            && matches!(block_type(t), "" | "message");
        let text = content_text(t.get("content").unwrap_or(&Value::Null));
        (user && !text.trim().is_empty()).then_some(text)
    })
}

/// The call a directive in `text` asks for: the tool's name and arguments.
fn directive(text: &str) -> Option<(String, Value)> {
    let rest = &text[text.find(DIRECTIVE)? + DIRECTIVE.len()..];
    let line = rest.lines().next()?.trim();
    let (name, args) = line.split_once(char::is_whitespace)?;
    let args = serde_json::Deserializer::from_str(args.trim())
        .into_iter::<Value>()
        .next()?
        .ok()?;
    Some((name.to_owned(), args))
}

/// The quote of a tool's result the model answers with, after a directive's
/// call came back.
pub(crate) fn echo(request: &Value) -> Option<String> {
    let result = last_tool_result(request)?;
    latest_user_text(request).and_then(|t| directive(&t))?;
    let words: Vec<&str> = result.split_whitespace().take(ECHO_WORDS).collect();
    Some(format!("tool result: {}", words.join(" ")))
}

/// A declared tool.
struct Declared {
    name: String,
    /// Freeform (a Responses `custom` tool).
    custom: bool,
    /// The argument the model fills with its words: the schema's first
    /// required property (a freeform tool translated to a function takes
    /// `input`), else `query`.
    argument: String,
}

/// The tools the request declares, in any format.
fn declared(request: &Value) -> Vec<Declared> {
    request
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let name = t
                .pointer("/function/name")
                .or_else(|| t.get("name"))
                .and_then(Value::as_str)?;
            let schema = t
                .pointer("/function/parameters")
                .or_else(|| t.get("parameters"))
                .or_else(|| t.get("input_schema"));
            let argument = schema
                .and_then(|s| s.pointer("/required/0"))
                .and_then(Value::as_str)
                .unwrap_or("query");
            Some(Declared {
                name: name.to_owned(),
                custom: block_type(t) == "custom",
                argument: argument.to_owned(),
            })
        })
        .collect()
}

/// The tools the model calls for `request`, with arguments from a directive
/// or the answer's words: OpenAI's `tool_choice` `required` or a named
/// function, Anthropic's `any` or a named `tool`, or a directive naming a
/// declared tool. `required`/`any` call every tool at once unless parallel
/// calls are off (`parallel_tool_calls: false`, `disable_parallel_tool_use:
/// true`). Once the last turn carries tool results, the model answers in text.
pub(crate) fn forced_calls(request: &Value, plan: &Plan) -> Vec<Call> {
    let tools = declared(request);
    if tools.is_empty() || last_tool_result(request).is_some() {
        return Vec::new();
    }
    let find = |name: &str| tools.iter().find(|t| t.name == name);
    if let Some((name, args)) = latest_user_text(request).and_then(|t| directive(&t)) {
        if let Some(t) = find(&name) {
            let custom = t.custom;
            return vec![Call { name, args, custom }];
        }
    }
    let choice = request.get("tool_choice").unwrap_or(&Value::Null);
    let single = request.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false)
        || choice
            .get("disable_parallel_tool_use")
            .and_then(Value::as_bool)
            == Some(true);
    let named = choice
        .pointer("/function/name")
        .or_else(|| choice.get("name"))
        .and_then(Value::as_str);
    let all = choice.as_str() == Some("required")
        || choice.get("type").and_then(Value::as_str) == Some("any");
    let chosen: Vec<&Declared> = match (named, all) {
        (Some(name), _) => find(name).into_iter().collect(),
        (None, true) if single => tools.iter().take(1).collect(),
        (None, true) => tools.iter().collect(),
        _ => Vec::new(),
    };
    let words = text_of(&plan.content);
    chosen
        .into_iter()
        .map(|t| {
            let args = if t.custom {
                json!(words)
            } else {
                let mut args = serde_json::Map::new();
                args.insert(t.argument.clone(), json!(words));
                Value::Object(args)
            };
            Call {
                name: t.name.clone(),
                args,
                custom: t.custom,
            }
        })
        .collect()
}

/// A tool call's arguments cut in three pieces, as streams send them.
pub(crate) fn argument_pieces(args: &str) -> Vec<&str> {
    let n = args.len();
    let mut cuts = [0, n / 3, 2 * n / 3, n];
    // Cut on character boundaries only.
    for c in &mut cuts {
        while !args.is_char_boundary(*c) {
            *c += 1;
        }
    }
    cuts.windows(2)
        .map(|w| args.get(w[0]..w[1]).unwrap_or_default())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directive_calls_a_declared_tool_in_every_format() {
        let plan = Plan::default();
        let chat = json!({"messages": [{"role": "user", "content": "please\nTOLLGATE_CALL Bash {\"command\": \"echo hi\"}\nthanks"}],
            "tools": [{"type": "function", "function": {"name": "Bash"}}]});
        let calls = forced_calls(&chat, &plan);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].name, "Bash");
        assert_eq!(calls[0].args, json!({"command": "echo hi"}));
        let anthropic = json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "<reminder/>"}, {"type": "text", "text": "TOLLGATE_CALL Bash {\"command\": \"ls\"}"}]}],
            "tools": [{"name": "Bash", "input_schema": {}}]});
        assert_eq!(forced_calls(&anthropic, &plan)[0].args["command"], "ls");
        let responses = json!({"input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "TOLLGATE_CALL apply_patch \"*** Begin Patch\""}]}],
            "tools": [{"type": "custom", "name": "apply_patch"}]});
        let c = &forced_calls(&responses, &plan)[0];
        assert!(c.custom);
        assert_eq!(c.arguments(), "*** Begin Patch");
        let undeclared = json!({"messages": [{"role": "user", "content": "TOLLGATE_CALL Nope {}"}],
            "tools": [{"type": "function", "function": {"name": "Bash"}}]});
        assert!(forced_calls(&undeclared, &plan).is_empty());
    }

    #[test]
    fn a_tool_result_ends_the_calls_and_is_quoted_after_a_directive() {
        let plan = Plan::default();
        let r = json!({"input": [
            {"role": "user", "content": "TOLLGATE_CALL shell {\"command\": [\"echo\", \"ok\"]}"},
            {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "tollgate-tool-ok\n"}],
            "tools": [{"type": "function", "name": "shell"}]});
        assert!(forced_calls(&r, &plan).is_empty());
        assert_eq!(echo(&r).as_deref(), Some("tool result: tollgate-tool-ok"));
        let trailing_system = json!({"messages": [
            {"role": "user", "content": [{"type": "text", "text": "TOLLGATE_CALL Bash {\"command\": \"ls\"}"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "listed"}]},
            {"role": "system", "content": [{"type": "text", "text": "<total_tokens>"}]}],
            "tools": [{"name": "Bash", "input_schema": {}}]});
        assert!(forced_calls(&trailing_system, &plan).is_empty());
        assert_eq!(
            echo(&trailing_system).as_deref(),
            Some("tool result: listed")
        );
        let forced = json!({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "x", "content": "r"}],
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"});
        assert!(forced_calls(&forced, &plan).is_empty());
        assert_eq!(echo(&forced), None, "no directive, no quote");
    }

    #[test]
    fn argument_pieces_cut_on_character_boundaries() {
        let s = "{\"q\":\"héllo wörld\"}";
        assert_eq!(argument_pieces(s).concat(), s);
    }
}
