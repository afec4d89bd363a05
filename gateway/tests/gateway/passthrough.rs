//! What agents send reaches the upstream: Claude Code's requests (system
//! messages mid-conversation, adaptive thinking, context management, beta
//! headers, `?beta=true`) to an Anthropic upstream as sent and to an
//! OpenAI-compatible one translated; the chat door's unknown roles, parts
//! and vendor fields untouched; Cursor's Responses-shaped chat bodies.

use loadtest::mock::{MockHandle, MockOptions};
use router::relay::End;
use router::UsageSource;
use serde_json::{json, Value};

use crate::helpers::*;

const ANTHROPIC_KEY: &str = "sk-ant-provider-secret";
const OPENAI_KEY: &str = "sk-oai-provider-secret";

/// The path and query string of the last request `mock` received.
fn last_uri(mock: &MockHandle) -> String {
    let last = mock.received().pop().expect("a request went through");
    match last.query {
        Some(q) => format!("{}?{q}", last.path),
        None => last.path,
    }
}

/// `claude` on an anthropic-kind provider and `gpt` on an openai-kind one,
/// both at `mock`.
fn both_kinds(mock: &MockHandle) -> gateway::Config {
    config(&format!(
        "[providers.ant]\nkind = \"anthropic\"\nbase_url = \"http://{addr}\"\napi_key = \"{ANTHROPIC_KEY}\"\n\
         [providers.oai]\nkind = \"openai\"\nbase_url = \"http://{addr}/v1\"\napi_key = \"{OPENAI_KEY}\"\n\
         [models.claude]\nprovider = \"ant\"\nupstream_model = \"claude-sonnet-4-5\"\n\
         [models.gpt]\nprovider = \"oai\"\nupstream_model = \"glm-4.6\"\n",
        addr = mock.addr()
    ))
}

async fn both() -> (MockHandle, TestApp) {
    let mock = spawn_mock(MockOptions {
        sim: fast_sim(),
        ..Default::default()
    })
    .await;
    let app = spawn_app(both_kinds(&mock)).await;
    (mock, app)
}

const SESSION: &str = "4c1f7a9e-2b3d-4e5f-8a6b-7c8d9e0f1a2b";
const BETAS: &str = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,effort-2025-11-24";

/// A tool as Claude Code declares it: no `type`, a draft-07 `$schema`.
fn tool(name: &str, properties: Value) -> Value {
    json!({"name": name, "description": format!("The {name} tool."),
           "input_schema": {"type": "object", "properties": properties, "additionalProperties": false,
                            "$schema": "http://json-schema.org/draft-07/schema#"}})
}

/// A Claude Code 2.x request, mid-conversation.
fn claude_code_body(model: &str, stream: bool) -> Value {
    let path = json!({"file_path": {"type": "string"}});
    let mut tools: Vec<Value> = [
        ("Task", json!({"description": {"type": "string"}, "prompt": {"type": "string"}})),
        ("Bash", json!({"command": {"type": "string"}, "timeout": {"type": "number"}})),
        ("Glob", json!({"pattern": {"type": "string"}})),
        ("Grep", json!({"pattern": {"type": "string"}, "path": {"type": "string"}})),
        ("Read", path.clone()),
        ("Edit", json!({"file_path": {"type": "string"}, "old_string": {"type": "string"}, "new_string": {"type": "string"}})),
        ("Write", json!({"file_path": {"type": "string"}, "content": {"type": "string"}})),
        ("NotebookEdit", path.clone()),
        ("WebFetch", json!({"url": {"type": "string", "format": "uri"}})),
        ("TodoWrite", json!({"todos": {"type": "array", "items": {"type": "object"}}})),
        ("BashOutput", json!({"bash_id": {"type": "string"}})),
    ]
    .into_iter()
    .map(|(n, p)| tool(n, p))
    .collect();
    let mut deferred = tool(
        "mcp__github__create_issue",
        json!({"title": {"type": "string"}}),
    );
    deferred["defer_loading"] = json!(true);
    tools.push(deferred);
    json!({
        "model": model,
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\nAs you answer the user's questions, you can use the following context.\n</system-reminder>"},
                {"type": "text", "text": "Fix the failing test in src/lib.rs", "cache_control": {"type": "ephemeral"}},
            ]},
            {"role": "system", "content": [
                {"type": "text", "text": "Plan mode is off."},
                {"type": "text", "text": "The working directory is /repo."},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should read the test first.", "signature": "EqQBCkYIBxgCKkAsig+/=="},
                {"type": "text", "text": "Let me read the file."},
                {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"file_path": "/repo/src/lib.rs"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "is_error": false,
                 "content": "fn add(a: i32, b: i32) -> i32 { a - b }",
                 "cache_control": {"type": "ephemeral"}},
            ]},
            {"role": "system", "content": "Remember to run the tests after editing."},
        ],
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "You are an interactive CLI tool that helps users with software engineering tasks.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Working directory: /repo\nPlatform: linux", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        ],
        "tools": tools,
        "metadata": {"user_id": "{\"device_id\":\"d2f0c1\",\"account_uuid\":\"\",\"session_id\":\"4c1f7a9e-2b3d-4e5f-8a6b-7c8d9e0f1a2b\"}"},
        "max_tokens": 32000,
        "thinking": {"type": "adaptive", "display": "omitted"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "stream": stream,
    })
}

/// Posts `body` to `path` the way Claude Code does: its key as `x-api-key`
/// (`ANTHROPIC_API_KEY`) or as a bearer token (`ANTHROPIC_AUTH_TOKEN`),
/// Anthropic's version and betas, its session id and the SDK's
/// `x-stainless-*` headers.
async fn as_claude_code(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    claude_code_with(app, path, body, false).await
}

async fn claude_code_with(
    app: &TestApp,
    path: &str,
    body: &Value,
    bearer: bool,
) -> reqwest::Response {
    let req = app.http.post(app.url(path));
    let req = if bearer {
        req.bearer_auth(MASTER_KEY)
    } else {
        req.header("x-api-key", MASTER_KEY)
    };
    req.header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", BETAS)
        .header("x-claude-code-session-id", SESSION)
        .header("anthropic-dangerous-direct-browser-access", "true")
        .header("x-app", "cli")
        .header("user-agent", "claude-cli/2.1.3 (external, cli)")
        .header("x-stainless-lang", "js")
        .header("x-stainless-package-version", "0.70.0")
        .header("x-stainless-os", "Linux")
        .header("x-stainless-arch", "x64")
        .header("x-stainless-runtime", "node")
        .header("x-stainless-runtime-version", "v22.17.0")
        .header("x-stainless-retry-count", "0")
        .header("x-stainless-timeout", "600")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Asserts an Anthropic answer, whole or streamed, for `model`.
async fn assert_anthropic_answer(resp: reqwest::Response, model: &str, stream: bool) {
    assert_eq!(resp.status(), 200, "{model} stream={stream}");
    if stream {
        let events = named_events(&resp.text().await.unwrap());
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
        assert_eq!(names.last(), Some(&"message_stop"), "{names:?}");
        assert_eq!(events[0].1["message"]["model"], model);
        assert!(names.contains(&"content_block_delta"), "{names:?}");
    } else {
        let msg: Value = resp.json().await.unwrap();
        assert_eq!(msg["type"], "message", "{msg}");
        assert_eq!(msg["model"], model);
        assert_eq!(msg["stop_reason"], "end_turn");
        assert!(msg["content"].as_array().is_some_and(|c| !c.is_empty()));
    }
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_codes_request_reaches_an_anthropic_upstream_as_it_was_sent() {
    let (mock, mut app) = both().await;
    for (stream, bearer) in [(false, false), (true, false), (false, true)] {
        let body = claude_code_body("claude", stream);
        let resp = claude_code_with(&app, "/v1/messages?beta=true", &body, bearer).await;
        assert_anthropic_answer(resp, "claude", stream).await;

        let received = mock.received().pop().unwrap();
        let mut expected = body.clone();
        expected["model"] = json!("claude-sonnet-4-5");
        assert_eq!(
            received.body, expected,
            "stream={stream}: only the model changes"
        );
        assert_eq!(keys(&received.body), keys(&body), "in the client's order");
        assert_eq!(
            last_uri(&mock),
            "/v1/messages?beta=true",
            "the query passes"
        );
        let h = &received.headers;
        assert_eq!(h["anthropic-beta"], BETAS);
        assert_eq!(h["anthropic-version"], "2023-06-01");
        assert_eq!(h["x-claude-code-session-id"], SESSION);
        assert_eq!(h["x-api-key"], ANTHROPIC_KEY, "the provider's own key");
        assert!(received.authorization.is_none());
        for (name, value) in h {
            assert!(
                !value.to_str().unwrap_or("").contains(MASTER_KEY),
                "the client's key reached the upstream in {name}"
            );
        }

        let record = app.next_record().await;
        assert_eq!(record.ctx.endpoint(), "messages");
        assert_eq!(record.end, End::Complete, "stream={stream}");
        assert_eq!(record.usage_source, UsageSource::Provider);
        assert!(record.usage.input > 0 && record.usage.output > 0);
    }
    // Claude Code counts tokens the same way.
    let mut count = claude_code_body("claude", false);
    count.as_object_mut().unwrap().remove("stream");
    count.as_object_mut().unwrap().remove("max_tokens");
    let resp = as_claude_code(&app, "/v1/messages/count_tokens?beta=true", &count).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.json::<Value>().await.unwrap()["input_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(last_uri(&mock), "/v1/messages/count_tokens?beta=true");
    assert_eq!(
        mock.received().pop().unwrap().headers["anthropic-beta"],
        BETAS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_codes_request_is_translated_for_an_openai_upstream() {
    let (mock, mut app) = both().await;
    for stream in [false, true] {
        let body = claude_code_body("gpt", stream);
        let resp = as_claude_code(&app, "/v1/messages?beta=true", &body).await;
        assert_anthropic_answer(resp, "gpt", stream).await;

        let received = mock.received().pop().unwrap();
        assert_eq!(
            last_uri(&mock),
            "/v1/chat/completions",
            "no query for another format"
        );
        let chat = &received.body;
        assert_eq!(chat["model"], "glm-4.6");
        let messages = chat["messages"].as_array().unwrap();
        let roles: Vec<&str> = messages
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(
            roles,
            ["system", "user", "system", "assistant", "tool", "system"],
            "system messages stay where they were: {chat}"
        );
        assert_eq!(
            messages[0]["content"],
            "You are Claude Code, Anthropic's official CLI for Claude.\n\n\
             You are an interactive CLI tool that helps users with software engineering tasks.\n\n\
             Working directory: /repo\nPlatform: linux"
        );
        assert_eq!(
            messages[1]["content"][1]["text"],
            "Fix the failing test in src/lib.rs"
        );
        assert_eq!(
            messages[2]["content"],
            "Plan mode is off.\n\nThe working directory is /repo."
        );
        let assistant = &messages[3];
        assert_eq!(assistant["content"], "Let me read the file.");
        assert_eq!(
            assistant["reasoning_content"],
            "I should read the test first."
        );
        assert_eq!(
            assistant["tool_calls"],
            json!([{"id": "toolu_01", "type": "function",
                    "function": {"name": "Read", "arguments": "{\"file_path\":\"/repo/src/lib.rs\"}"}}])
        );
        assert_eq!(
            messages[4],
            json!({"role": "tool", "tool_call_id": "toolu_01",
                   "content": "fn add(a: i32, b: i32) -> i32 { a - b }"})
        );
        assert_eq!(
            messages[5]["content"],
            "Remember to run the tests after editing."
        );
        assert_eq!(
            chat["reasoning_effort"], "high",
            "adaptive thinking at high effort"
        );
        assert_eq!(chat["max_tokens"], 32000);
        for gone in [
            "thinking",
            "output_config",
            "context_management",
            "system",
            "metadata",
        ] {
            assert!(chat.get(gone).is_none(), "{gone} is not chat's: {chat}");
        }
        let tools = chat["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 12, "every tool, the deferred one too");
        for t in tools {
            assert_eq!(keys(t), ["type", "function"], "{t}");
            assert_eq!(t["type"], "function");
            assert!(t["function"].get("defer_loading").is_none(), "{t}");
            assert_eq!(t["function"]["parameters"]["type"], "object", "{t}");
        }
        if stream {
            assert_eq!(chat["stream"], true);
            assert_eq!(chat["stream_options"]["include_usage"], true);
        }

        let h = &received.headers;
        assert_eq!(
            received.authorization.as_deref(),
            Some(format!("Bearer {OPENAI_KEY}").as_str())
        );
        for name in h.keys() {
            assert!(
                !name.as_str().starts_with("anthropic-")
                    && name != "x-claude-code-session-id"
                    && name != "x-api-key",
                "{name} is Anthropic's, not this upstream's"
            );
        }
        let record = app.next_record().await;
        assert_eq!(record.end, End::Complete, "stream={stream}");
        assert_eq!(record.usage_source, UsageSource::Provider);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_door_passes_what_it_does_not_know_to_an_openai_upstream() {
    let (mock, app) = both().await;
    for stream in [false, true] {
        let body = json!({
            "model": "gpt",
            "messages": [
                {"role": "developer", "content": "Answer in French."},
                {"role": "user", "content": [
                    {"type": "text", "text": "what does this say?"},
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    {"type": "x_vendor_part", "payload": {"a": 1}},
                ]},
                {"role": "critic", "content": "be harsh", "x_weight": 0.5},
            ],
            "stream": stream,
            "enable_thinking": true,
            "chat_template_kwargs": {"thinking": true},
            "x_vendor": {"nested": [1, null, "two"]},
            "stream_options": {"include_usage": false, "x_flag": true},
            "temperature": 0.2,
        });
        let resp = app
            .post("/v1/chat/completions?api-version=2024-10-21")
            .header("session_id", "sess-7")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "stream={stream}");
        resp.bytes().await.unwrap();
        let received = mock.received().pop().unwrap();
        let mut expected = body.clone();
        expected["model"] = json!("glm-4.6");
        if stream {
            // The upstream is always asked for usage on a stream.
            expected["stream_options"]["include_usage"] = json!(true);
        }
        assert_eq!(received.body, expected, "stream={stream}");
        assert_eq!(keys(&received.body), keys(&body));
        assert_eq!(
            last_uri(&mock),
            "/v1/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(received.headers["session_id"], "sess-7");
    }
    // To an Anthropic upstream the same query is not the upstream's to read.
    let resp = app
        .post("/v1/chat/completions?api-version=2024-10-21")
        .json(&chat_body("claude"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(last_uri(&mock), "/v1/messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_shaped_chat_body_is_answered_as_chat_on_both_kinds() {
    let (mock, mut app) = both().await;
    for (model, path) in [("gpt", "/v1/chat/completions"), ("claude", "/v1/messages")] {
        for stream in [false, true] {
            let what = format!("{model} stream={stream}");
            // As Cursor sends it with a custom base URL.
            let body = json!({
                "model": model,
                "instructions": "Be brief.",
                "input": [{"role": "user", "content": [{"type": "input_text", "text": "hello gateway"}]}],
                "max_output_tokens": 50,
                "stream": stream,
            });
            let resp = app.chat(body).await;
            assert_eq!(resp.status(), 200, "{what}");
            let text = if stream {
                let data = read_sse(resp).await;
                assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{what}");
                let chunks = json_events(&data);
                assert!(chunks
                    .iter()
                    .all(|c| c["object"] == "chat.completion.chunk" && c["model"] == model));
                chunks
                    .iter()
                    .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                    .collect::<String>()
            } else {
                let answer: Value = resp.json().await.unwrap();
                assert_eq!(answer["object"], "chat.completion", "{what}: {answer}");
                assert_eq!(answer["model"], model);
                assert_eq!(answer["usage"]["completion_tokens"], 8, "{what}");
                answer["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            };
            assert_eq!(text.split(' ').count(), 8, "{what}: {text}");
            let sent = mock.received().pop().unwrap();
            assert_eq!(sent.path, path, "{what}");
            if model == "gpt" {
                assert_eq!(
                    sent.body["messages"],
                    json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello gateway"}]),
                    "{what}"
                );
                assert_eq!(sent.body["max_tokens"], 50);
                assert!(sent.body.get("input").is_none());
            } else {
                assert_eq!(sent.body["system"], "Be brief.", "{what}");
                assert_eq!(
                    sent.body["messages"][0]["content"][0]["text"], "hello gateway",
                    "{what}"
                );
            }
            let record = app.next_record().await;
            assert_eq!(record.ctx.endpoint(), "chat_completions", "{what}");
            assert_eq!(record.ctx.format.label(), "openai");
            assert!(record.complete(), "{what}");
        }
    }
}
