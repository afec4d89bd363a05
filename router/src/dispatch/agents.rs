//! Golden tests from the requests real agents send: every file in
//! `tests/fixtures/agents/` is a request Claude Code or Codex sent, captured
//! by `gateway/tests/agents/run.sh --capture` (rerun it when the pinned
//! versions move). Each must parse at its door and reach every kind of
//! upstream: untouched where the formats match, translated (or refused, by
//! name) where they differ. What each upstream receives is summed up
//! (roles, block and part types, tools, settings) and compared with
//! `tests/fixtures/agents/expected.json`; `TOLLGATE_BLESS=1` rewrites it.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::{ClientRequest, UpstreamRequest};
use crate::catalog::{Capabilities, ModelEntry};
use crate::provider::{AnthropicAuth, AnthropicProvider, OpenAiProvider, Provider, Timeouts};
use crate::route::Health;
use crate::wire::{anthropic, responses};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agents")
}

fn entry(name: &str, provider: Provider) -> ModelEntry {
    ModelEntry {
        name: name.into(),
        provider: Arc::new(provider),
        upstream_model: format!("{name}-upstream"),
        max_output_tokens: 8192,
        context_window: 1_000_000,
        capabilities: Capabilities::default(),
        health: Health::default(),
        price: None,
    }
}

/// One upstream of each kind: chat completions, the Messages API, and an
/// OpenAI-kind upstream that serves the Responses API itself.
fn upstreams() -> Vec<ModelEntry> {
    let base = "http://127.0.0.1:9/v1";
    let t = Timeouts::default();
    vec![
        entry(
            "chat",
            Provider::OpenAi(OpenAiProvider::new("chat", base, None, t, false).expect("builds")),
        ),
        entry(
            "anthropic",
            Provider::Anthropic(
                AnthropicProvider::new("anthropic", base, None, AnthropicAuth::ApiKey, t)
                    .expect("builds"),
            ),
        ),
        entry(
            "responses",
            Provider::OpenAi(
                OpenAiProvider::new("responses", base, None, t, true).expect("builds"),
            ),
        ),
    ]
}

fn kind(v: &Value) -> String {
    v.get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

/// A content value's shape: `string`, or its parts' or blocks' types.
fn shape(content: Option<&Value>) -> Value {
    match content {
        Some(Value::String(_)) => json!("string"),
        Some(Value::Array(parts)) => Value::Array(parts.iter().map(|p| json!(kind(p))).collect()),
        None | Some(Value::Null) => json!(null),
        Some(_) => json!("other"),
    }
}

/// What an upstream body carries, in brief.
fn summary(body: &Map<String, Value>) -> Value {
    let mut keys: Vec<&String> = body.keys().collect();
    keys.sort();
    let turns = body
        .get("messages")
        .or_else(|| body.get("input"))
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|m| {
                    let mut t = Map::new();
                    for k in ["type", "role"] {
                        if let Some(v) = m.get(k) {
                            t.insert(k.into(), v.clone());
                        }
                    }
                    if m.get("content").is_some() {
                        t.insert("content".into(), shape(m.get("content")));
                    }
                    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                        t.insert("tool_calls".into(), json!(calls.len()));
                    }
                    if m.get("reasoning_content").is_some() {
                        t.insert("reasoning_content".into(), json!(true));
                    }
                    Value::Object(t)
                })
                .collect::<Vec<_>>()
        });
    let tools = body.get("tools").and_then(Value::as_array).map(|tools| {
        tools
            .iter()
            .map(|t| {
                let name = t
                    .pointer("/function/name")
                    .or_else(|| t.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                json!(format!("{}:{name}", kind(t)))
            })
            .collect::<Vec<_>>()
    });
    json!({
        "keys": keys,
        "system": shape(body.get("system")),
        "turns": turns,
        "tools": tools,
        "tool_choice": body.get("tool_choice"),
        "thinking": body.get("thinking"),
        "reasoning_effort": body.get("reasoning_effort"),
        "max_tokens": body.get("max_tokens"),
    })
}

fn upstream_summary(client: &Map<String, Value>, up: &UpstreamRequest) -> Value {
    let body: Map<String, Value> =
        serde_json::from_slice(&up.body).expect("the upstream body is JSON");
    if up.wire == client_wire(client) {
        // Same format: the client's body, only `model` swapped.
        let mut expected = client.clone();
        expected.insert("model".into(), body["model"].clone());
        assert_eq!(body, expected, "a pass-through changes only the model");
        return json!({"operation": format!("{:?}", up.operation), "passed_through": true});
    }
    json!({"operation": format!("{:?}", up.operation), "body": summary(&body)})
}

fn client_wire(body: &Map<String, Value>) -> crate::wire::Wire {
    if body.contains_key("input") {
        crate::wire::Wire::Responses
    } else {
        crate::wire::Wire::Anthropic
    }
}

#[test]
fn agent_requests_reach_every_kind_of_upstream() {
    let bless = std::env::var_os("TOLLGATE_BLESS").is_some();
    let mut paths: Vec<_> = std::fs::read_dir(fixtures())
        .expect("the agent fixtures")
        .map(|e| e.expect("a fixture").path())
        .filter(|p| p.file_name().is_some_and(|n| n != "expected.json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 4, "the captured agent requests are present");
    let upstreams = upstreams();
    let mut actual = Map::new();
    for path in &paths {
        let fixture: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("reads")).expect("JSON");
        let request = &fixture["request"];
        let bytes = serde_json::to_vec(&request["body"]).expect("serializes");
        let client = match request["path"].as_str() {
            Some(p) if p.ends_with("/v1/messages") => ClientRequest::Messages(
                anthropic::parse_messages(&bytes).expect("Claude Code's request parses"),
            ),
            Some(p) if p.ends_with("/responses") => ClientRequest::Responses(
                responses::parse_responses(&bytes).expect("Codex's request parses"),
            ),
            other => panic!("no door for {other:?}"),
        };
        let mut per_upstream = Map::new();
        for up in &upstreams {
            let result = match client.upstream_for(up) {
                Ok(u) => upstream_summary(client.body(), &u),
                Err(e) => json!({"refused": e.to_string(), "param": e.param()}),
            };
            per_upstream.insert(up.name.clone(), result);
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_owned();
        actual.insert(
            name,
            json!({"agent": fixture["agent"], "upstreams": per_upstream}),
        );
    }
    let actual = Value::Object(actual);
    let expected_path = fixtures().join("expected.json");
    if bless {
        let mut out = serde_json::to_vec_pretty(&actual).expect("serializes");
        out.push(b'\n');
        std::fs::write(&expected_path, out).expect("writes");
        return;
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(&expected_path)
            .expect("expected.json (bless with TOLLGATE_BLESS=1)"),
    )
    .expect("JSON");
    assert_eq!(
        expected, actual,
        "what agents' requests become upstream changed"
    );
}

#[test]
fn claude_codes_system_messages_stay_in_place_for_an_openai_upstream() {
    let text = std::fs::read_to_string(fixtures().join("claude-code-fable-5.json")).expect("reads");
    let fixture: Value = serde_json::from_str(&text).expect("JSON");
    let body = &fixture["request"]["body"];
    let client = ClientRequest::Messages(
        anthropic::parse_messages(&serde_json::to_vec(body).expect("ser")).expect("parses"),
    );
    let chat = &upstreams()[0];
    let up = client.upstream_for(chat).expect("translates");
    let sent: Value = serde_json::from_slice(&up.body).expect("JSON");
    // Where each system message sits: after how many user and assistant
    // turns (a user turn of tool results only becomes tool messages).
    let positions = |messages: &Value| {
        let mut seen = 0;
        let mut out = Vec::new();
        for m in messages.as_array().expect("messages") {
            let only_results = m["content"]
                .as_array()
                .is_some_and(|blocks| blocks.iter().all(|b| b["type"] == "tool_result"));
            match m["role"].as_str() {
                Some("system") => out.push(seen),
                Some("user") if only_results => {}
                Some("user" | "assistant") => seen += 1,
                _ => {}
            }
        }
        out
    };
    let client_positions = positions(&body["messages"]);
    assert!(
        !client_positions.is_empty(),
        "the capture has system messages inside messages"
    );
    let mut sent_messages = sent["messages"].clone();
    // The top-level `system` leads.
    sent_messages.as_array_mut().expect("messages").remove(0);
    assert_eq!(client_positions, positions(&sent_messages));
    assert_eq!(
        sent["reasoning_effort"], "high",
        "adaptive thinking at effort high"
    );
    assert!(sent.get("context_management").is_none());
}
