//! Responses tools as plain functions, and the way back: which upstream
//! function name stands for which client tool.
//!
//! - `function` tools keep their name and schema.
//! - `custom` (freeform) tools become a function taking one string, `input`;
//!   a grammar, when given, is written into the description (the upstream
//!   does not enforce it).
//! - `namespace` tools are flattened: `<namespace>__<name>`.
//! - `local_shell` becomes a function `local_shell` whose arguments are the
//!   shell action.
//! - Hosted tools (`web_search`, `tool_search`, `file_search`, `mcp`, ...)
//!   offered in `tools` are left out: they run only on an upstream that
//!   serves `/v1/responses`. A `tool_choice` that forces one is refused.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::params::unsupported;
use crate::wire::invalid;
use crate::wire::openai::RequestError;

/// What a client tool is, seen from the answer side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    /// A function tool: calls are `function_call` items.
    Function,
    /// A freeform tool: calls are `custom_tool_call` items.
    Custom,
    /// The local shell tool: calls are `local_shell_call` items.
    LocalShell,
}

/// The client tool behind an upstream function name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRef {
    /// What kind of call to produce.
    pub kind: ToolKind,
    /// The tool's name inside its namespace.
    pub name: String,
    /// The namespace, for a tool declared inside a `namespace` tool.
    pub namespace: Option<String>,
}

/// How the upstream's function names map back to the request's tools.
#[derive(Debug, Clone, Default)]
pub struct ToolNames {
    map: HashMap<String, ToolRef>,
}

impl ToolNames {
    /// The map for a Responses request body. A request whose tools could not
    /// be translated never reaches the answer side; its tools map to nothing.
    pub fn of(request: &Map<String, Value>) -> Self {
        let map = flat_tools(request)
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.name, t.origin))
            .collect();
        Self { map }
    }

    /// The client tool an upstream called by `upstream_name`: a plain
    /// function of that name when the request declared no such tool.
    pub fn resolve(&self, upstream_name: &str) -> ToolRef {
        self.map
            .get(upstream_name)
            .cloned()
            .unwrap_or_else(|| ToolRef {
                kind: ToolKind::Function,
                name: upstream_name.to_owned(),
                namespace: None,
            })
    }
}

/// The upstream names of the request's custom (freeform) tools.
pub fn custom_tool_names(request: &Map<String, Value>) -> HashSet<String> {
    flat_tools(request)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.origin.kind == ToolKind::Custom)
        .map(|t| t.name)
        .collect()
}

/// The upstream name of a tool inside `namespace`.
pub(crate) fn flat_name(namespace: Option<&str>, name: &str) -> String {
    match namespace.filter(|n| !n.is_empty()) {
        Some(ns) => format!("{ns}__{name}"),
        None => name.to_owned(),
    }
}

/// A client tool as a plain function.
#[derive(Debug, Clone)]
pub(crate) struct FlatTool {
    /// The name the upstream sees.
    pub name: String,
    /// The description the upstream sees.
    pub description: Option<String>,
    /// A JSON schema object.
    pub parameters: Value,
    /// Function tools' `strict`, when given.
    pub strict: Option<bool>,
    /// The client tool it stands for.
    pub origin: ToolRef,
}

impl FlatTool {
    /// As an OpenAI chat-completions tool.
    pub fn chat(&self) -> Value {
        let mut func = Map::new();
        func.insert("name".into(), json!(self.name));
        if let Some(d) = &self.description {
            func.insert("description".into(), json!(d));
        }
        func.insert("parameters".into(), self.parameters.clone());
        if let Some(s) = self.strict {
            func.insert("strict".into(), json!(s));
        }
        json!({"type": "function", "function": func})
    }

    /// As an Anthropic tool.
    pub fn anthropic(&self) -> Value {
        let mut tool = Map::new();
        tool.insert("name".into(), json!(self.name));
        if let Some(d) = &self.description {
            tool.insert("description".into(), json!(d));
        }
        tool.insert("input_schema".into(), self.parameters.clone());
        Value::Object(tool)
    }
}

const HOSTED: &str = "hosted tools run only on an upstream that serves /v1/responses";

fn name_of(t: &Value, field: &str) -> Result<String, RequestError> {
    match t.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => Ok(n.to_owned()),
        _ => Err(invalid(format!("{field}.name"), "a non-empty string")),
    }
}

fn description_of(t: &Value) -> Option<String> {
    t.get("description")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
}

/// A freeform tool's description: the client's, what the `input` parameter
/// takes, and the grammar when one is given.
fn custom_description(t: &Value) -> String {
    let mut out = description_of(t).unwrap_or_default();
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(
        "This tool takes freeform text, not JSON arguments: pass the whole text as the `input` string.",
    );
    let format = t.get("format").unwrap_or(&Value::Null);
    if format.get("type").and_then(Value::as_str) == Some("grammar") {
        let syntax = format
            .get("syntax")
            .and_then(Value::as_str)
            .unwrap_or("lark");
        let definition = format
            .get("definition")
            .and_then(Value::as_str)
            .unwrap_or("");
        out.push_str(&format!(
            "\n\nThe input must follow this {syntax} grammar:\n{definition}"
        ));
    }
    out
}

fn custom_parameters() -> Value {
    json!({
        "type": "object",
        "properties": {"input": {"type": "string", "description": "The freeform input text."}},
        "required": ["input"],
        "additionalProperties": false,
    })
}

fn local_shell_tool() -> FlatTool {
    FlatTool {
        name: "local_shell".into(),
        description: Some("Runs a command on the user's machine and returns its output.".into()),
        parameters: json!({
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": ["exec"]},
                "command": {"type": "array", "items": {"type": "string"}, "description": "The command and its arguments."},
                "working_directory": {"type": "string"},
                "timeout_ms": {"type": "integer"},
                "env": {"type": "object", "additionalProperties": {"type": "string"}},
                "user": {"type": "string"},
            },
            "required": ["command"],
        }),
        strict: None,
        origin: ToolRef {
            kind: ToolKind::LocalShell,
            name: "local_shell".into(),
            namespace: None,
        },
    }
}

/// One `function` or `custom` tool, possibly inside a namespace.
fn member(t: &Value, field: &str, namespace: Option<&str>) -> Result<FlatTool, RequestError> {
    let name = name_of(t, field)?;
    let origin = |kind| ToolRef {
        kind,
        name: name.clone(),
        namespace: namespace.map(str::to_owned),
    };
    match t.get("type").and_then(Value::as_str) {
        Some("function") => Ok(FlatTool {
            name: flat_name(namespace, &name),
            description: description_of(t),
            parameters: t
                .get("parameters")
                .filter(|p| p.is_object())
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            strict: t.get("strict").and_then(Value::as_bool),
            origin: origin(ToolKind::Function),
        }),
        Some("custom") => Ok(FlatTool {
            name: flat_name(namespace, &name),
            description: Some(custom_description(t)),
            parameters: custom_parameters(),
            strict: None,
            origin: origin(ToolKind::Custom),
        }),
        _ => Err(unsupported(
            field.to_owned(),
            "only function and custom tools can be declared in a namespace",
        )),
    }
}

/// The request's tools as plain functions, in the client's order.
pub(crate) fn flat_tools(body: &Map<String, Value>) -> Result<Vec<FlatTool>, RequestError> {
    let Some(tools) = body.get("tools").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let field = format!("tools[{i}]");
        match t.get("type").and_then(Value::as_str) {
            Some("function" | "custom") => out.push(member(t, &field, None)?),
            Some("namespace") => {
                let ns = name_of(t, &field)?;
                let members = t.get("tools").and_then(Value::as_array);
                for (j, m) in members.into_iter().flatten().enumerate() {
                    out.push(member(m, &format!("{field}.tools[{j}]"), Some(&ns))?);
                }
            }
            Some("local_shell") => out.push(local_shell_tool()),
            // Hosted, run by the vendor: the upstream cannot offer it.
            kind => tracing::debug!(
                tool = kind.unwrap_or(""),
                "hosted tool left out of a translated request"
            ),
        }
    }
    Ok(out)
}

/// A tool choice in neutral form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Choice {
    /// The model decides.
    Auto,
    /// No tool call.
    None,
    /// Some tool call.
    Required,
    /// One tool, by its upstream name.
    Named(String),
}

impl Choice {
    /// As OpenAI chat's `tool_choice`.
    pub fn chat(&self) -> Value {
        match self {
            Self::Auto => json!("auto"),
            Self::None => json!("none"),
            Self::Required => json!("required"),
            Self::Named(n) => json!({"type": "function", "function": {"name": n}}),
        }
    }

    /// As Anthropic's `tool_choice`.
    pub fn anthropic(&self) -> Value {
        match self {
            Self::Auto => json!({"type": "auto"}),
            Self::None => json!({"type": "none"}),
            Self::Required => json!({"type": "any"}),
            Self::Named(n) => json!({"type": "tool", "name": n}),
        }
    }
}

/// The upstream name a tool reference (`{type, name, namespace?}`) points to.
fn referenced(r: &Value, field: &str) -> Result<String, RequestError> {
    match r.get("type").and_then(Value::as_str) {
        Some("function" | "custom") => Ok(flat_name(
            r.get("namespace").and_then(Value::as_str),
            &name_of(r, field)?,
        )),
        Some("local_shell") => Ok("local_shell".into()),
        _ => Err(unsupported(field.to_owned(), HOSTED)),
    }
}

/// Reads `tool_choice`; an `allowed_tools` choice filters `tools` down to the
/// tools it lists.
pub(crate) fn tool_choice(
    body: &Map<String, Value>,
    tools: &mut Vec<FlatTool>,
) -> Result<Option<Choice>, RequestError> {
    const EXPECTED: &str = "'auto', 'none', 'required', a function, a custom tool or allowed_tools";
    let choice = match body.get("tool_choice") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Choice::Auto,
            "none" => Choice::None,
            "required" => Choice::Required,
            _ => return Err(invalid("tool_choice", EXPECTED)),
        },
        Some(c @ Value::Object(_)) => match c.get("type").and_then(Value::as_str) {
            Some("function" | "custom" | "local_shell") => {
                Choice::Named(referenced(c, "tool_choice")?)
            }
            Some("allowed_tools") => {
                let mut allowed = HashSet::new();
                let listed = c.get("tools").and_then(Value::as_array);
                for (k, r) in listed.into_iter().flatten().enumerate() {
                    allowed.insert(referenced(r, &format!("tool_choice.tools[{k}]"))?);
                }
                tools.retain(|t| allowed.contains(&t.name));
                match c.get("mode").and_then(Value::as_str) {
                    Some("required") => Choice::Required,
                    _ => Choice::Auto,
                }
            }
            Some(_) => return Err(unsupported("tool_choice", HOSTED)),
            None => return Err(invalid("tool_choice.type", EXPECTED)),
        },
        Some(_) => return Err(invalid("tool_choice", EXPECTED)),
    };
    Ok(Some(choice))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn namespaced_and_custom_tools_map_back_to_their_client_names() {
        let req = body(json!({"tools": [
            {"type": "custom", "name": "apply_patch"},
            {"type": "namespace", "name": "repo", "description": "d",
             "tools": [{"type": "function", "name": "grep", "parameters": {"type": "object"}},
                       {"type": "custom", "name": "sql"}]},
            {"type": "function", "name": "shell"},
        ]}));
        let names = ToolNames::of(&req);
        assert_eq!(names.resolve("apply_patch").kind, ToolKind::Custom);
        let grep = names.resolve("repo__grep");
        assert_eq!(
            (grep.kind, grep.name.as_str(), grep.namespace.as_deref()),
            (ToolKind::Function, "grep", Some("repo"))
        );
        assert_eq!(names.resolve("repo__sql").kind, ToolKind::Custom);
        assert_eq!(names.resolve("unknown").name, "unknown");
        let custom = custom_tool_names(&req);
        assert!(custom.contains("apply_patch") && custom.contains("repo__sql"));
        assert_eq!(custom.len(), 2);
    }

    #[test]
    fn allowed_tools_filters_and_hosted_choices_are_refused() {
        let req = body(json!({
            "tools": [{"type": "function", "name": "a"}, {"type": "function", "name": "b"}],
            "tool_choice": {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "b"}]},
        }));
        let mut tools = flat_tools(&req).unwrap();
        assert_eq!(
            tool_choice(&req, &mut tools).unwrap(),
            Some(Choice::Required)
        );
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0].name, "b");
        let req = body(json!({"tool_choice": {"type": "web_search_preview"}}));
        let e = tool_choice(&req, &mut Vec::new()).unwrap_err();
        assert_eq!(e.param(), Some("tool_choice"));
    }
}
