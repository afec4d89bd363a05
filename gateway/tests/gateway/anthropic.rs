//! Both doors against both provider kinds: the Anthropic door passed through
//! to an Anthropic upstream byte for byte, translated to an OpenAI upstream,
//! and the OpenAI door served by an Anthropic upstream, metered the same way.

use async_openai::types::chat::{
    ChatCompletionMessageToolCalls, ChatCompletionRequestMessage, ChatCompletionTool,
    ChatCompletionToolChoiceOption, ChatCompletionTools, CreateChatCompletionRequestArgs,
    FunctionObjectArgs, ToolChoiceOptions,
};
use futures_util::StreamExt;
use loadtest::mock::{Faults, MockHandle, MockOptions};
use router::relay::End;
use router::sim::SimConfig;
use router::UsageSource;
use serde_json::{json, Value};

use crate::billing::ledger_with;
use crate::helpers::*;

const PROVIDER_KEY: &str = "sk-ant-provider-secret";

/// A fast model that thinks, reads from and writes to the prompt cache.
fn caching_sim() -> SimConfig {
    SimConfig {
        reasoning_tokens: 2,
        cached_tokens: 3,
        cache_write_tokens: 4,
        ..fast_sim()
    }
}

async fn caching_mock() -> MockHandle {
    spawn_mock(MockOptions {
        sim: caching_sim(),
        ..Default::default()
    })
    .await
}

/// `claude` on an anthropic-kind provider and `gpt` on an openai-kind one,
/// both at `mock`, priced like Claude Sonnet (cache writes 3.75 $/Mtok).
fn both_kinds(mock: &MockHandle) -> gateway::Config {
    config(&format!(
        r#"
[providers.ant]
kind = "anthropic"
base_url = "http://{addr}"
api_key = "{PROVIDER_KEY}"
[providers.oai]
kind = "openai"
base_url = "{base}"
[models.claude]
provider = "ant"
max_output_tokens = 1234
input_per_mtok = 3.0
cached_input_per_mtok = 0.30
cache_write_per_mtok = 3.75
output_per_mtok = 15.0
[models.gpt]
provider = "oai"
input_per_mtok = 3.0
cached_input_per_mtok = 0.30
cache_write_per_mtok = 3.75
output_per_mtok = 15.0
"#,
        addr = mock.addr(),
        base = mock.base_url()
    ))
}

fn messages_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 100, "stream": stream,
           "messages": [{"role": "user", "content": "hello gateway"}]})
}

/// `(event name, data)` for every event of an Anthropic stream.
fn anthropic_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (
                name,
                serde_json::from_str(&data).expect("event data is JSON"),
            )
        })
        .collect()
}

/// Asserts Anthropic's event order: `message_start`, blocks opened, filled
/// and closed one at a time, `message_delta`, `message_stop`.
fn assert_anthropic_order(events: &[(String, Value)]) {
    let names: Vec<&str> = events
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| *n != "ping")
        .collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    let mut open = None;
    for (name, data) in events {
        assert_eq!(data["type"], name.as_str(), "event name matches its type");
        let index = data["index"].as_u64();
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(open, None);
                open = index;
            }
            "content_block_delta" => assert_eq!(index, open),
            "content_block_stop" => {
                assert_eq!(index, open);
                open = None;
            }
            _ => {}
        }
    }
    assert_eq!(open, None, "every block is closed");
}

#[tokio::test]
async fn the_anthropic_door_streams_an_anthropic_upstream_byte_for_byte() {
    let mock = caching_mock().await;
    let mut app = spawn_app(both_kinds(&mock)).await;
    let mut body = messages_body("claude", true);
    body["system"] =
        json!([{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]);
    body["x_vendor_field"] = json!({"kept": true});
    let resp = app
        .http
        .post(app.url("/v1/messages?beta=true"))
        .header("x-api-key", MASTER_KEY)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let through = resp.text().await.unwrap();

    // The same request straight to the mock gives the same bytes.
    let direct = app
        .http
        .post(format!("http://{}/v1/messages", mock.addr()))
        .header("x-api-key", PROVIDER_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(through, direct);
    assert_anthropic_order(&anthropic_events(&through));

    let received = &mock.received()[0];
    assert_eq!(received.path, "/v1/messages");
    assert_eq!(received.headers["x-api-key"], PROVIDER_KEY);
    assert_eq!(received.headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        received.headers["anthropic-beta"],
        "prompt-caching-2024-07-31"
    );
    assert!(
        received.authorization.is_none(),
        "the client's key stays here"
    );
    assert_eq!(received.body, body, "the body passes untouched");

    let record = app.next_record().await;
    assert_eq!(record.ctx.format.label(), "anthropic");
    assert_eq!(record.ctx.endpoint(), "messages");
    assert_eq!(record.end, End::Complete);
    assert_eq!(record.usage_source, UsageSource::Provider);
    assert_eq!(
        (
            record.usage.cached_input,
            record.usage.cache_write,
            record.usage.output
        ),
        (3, 4, 8)
    );
}

#[tokio::test]
async fn the_anthropic_door_renames_the_model_and_keeps_the_rest() {
    let mock = caching_mock().await;
    let mut cfg = both_kinds(&mock);
    cfg.models.get_mut("claude").unwrap().upstream_model = "claude-sonnet-4-5".into();
    let mut app = spawn_app(cfg).await;
    let resp = app.messages(&messages_body("claude", false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-model"], "claude-sonnet-4-5");
    assert!(resp.headers().contains_key("x-tollgate-cost-usd"));
    let through: Value = resp.json().await.unwrap();
    assert_eq!(mock.received()[0].body["model"], "claude-sonnet-4-5");
    let mut direct_body = messages_body("claude-sonnet-4-5", false);
    direct_body["model"] = json!("claude-sonnet-4-5");
    let mut direct: Value = app
        .http
        .post(format!("http://{}/v1/messages", mock.addr()))
        .json(&direct_body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    direct["model"] = json!("claude");
    assert_eq!(through["content"], direct["content"]);
    assert_eq!(through["model"], "claude");
    assert_eq!(through["content"][0]["type"], "thinking");
    assert_eq!(through["usage"]["cache_read_input_tokens"], 3);
    let record = app.next_record().await;
    assert_eq!((record.usage.cache_write, record.usage.output), (4, 8));
}

#[tokio::test]
async fn the_anthropic_door_is_translated_for_an_openai_upstream() {
    let mock = caching_mock().await;
    let mut app = spawn_app(both_kinds(&mock)).await;
    let resp = app.messages(&messages_body("gpt", true)).await;
    assert_eq!(resp.status(), 200);
    let events = anthropic_events(&resp.text().await.unwrap());
    assert_anthropic_order(&events);
    let upstream = &mock.received()[0];
    assert_eq!(upstream.path, "/v1/chat/completions");
    assert_eq!(upstream.body["messages"][0]["content"], "hello gateway");
    assert_eq!(upstream.body["stream_options"]["include_usage"], true);
    let blocks: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d["content_block"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(blocks, ["thinking", "text"]);
    let text: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text.split(' ').count(), 6, "8 tokens, 2 of them thinking");
    let (_, delta) = &events[events.len() - 2];
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 8);
    assert_eq!(delta["usage"]["cache_read_input_tokens"], 3);

    let record = app.next_record().await;
    assert_eq!(record.ctx.format.label(), "anthropic");
    assert_eq!(record.end, End::Complete);
    assert_eq!((record.usage.cached_input, record.usage.output), (3, 8));
    assert_eq!(record.usage_source, UsageSource::Provider);

    // Whole answers too.
    let resp = app.messages(&messages_body("gpt", false)).await;
    assert_eq!(resp.status(), 200);
    let msg: Value = resp.json().await.unwrap();
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["model"], "gpt");
    assert_eq!(msg["content"][0]["type"], "thinking");
    assert_eq!(msg["content"][1]["type"], "text");
    assert_eq!(msg["stop_reason"], "end_turn");
    assert_eq!(msg["usage"]["output_tokens"], 8);
    app.next_record().await;
}

fn lookup_tool() -> Value {
    json!({"name": "lookup", "description": "Looks a thing up",
           "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}})
}

#[tokio::test]
async fn an_anthropic_tool_round_trip_works_on_both_provider_kinds() {
    let mock = caching_mock().await;
    let app = spawn_app(both_kinds(&mock)).await;
    for model in ["claude", "gpt"] {
        for stream in [false, true] {
            let mut body = messages_body(model, stream);
            body["tools"] =
                json!([lookup_tool(), {"name": "other", "input_schema": {"type": "object"}}]);
            body["tool_choice"] = json!({"type": "any"});
            let resp = app.messages(&body).await;
            assert_eq!(resp.status(), 200, "{model} stream={stream}");
            // Both tools are called (parallel calls), each with parsed input.
            let calls: Vec<(String, String, Value)> = if stream {
                let events = anthropic_events(&resp.text().await.unwrap());
                assert_anthropic_order(&events);
                let mut calls = Vec::new();
                let mut args: Vec<String> = Vec::new();
                for (name, d) in &events {
                    if name == "content_block_start" && d["content_block"]["type"] == "tool_use" {
                        calls.push((
                            d["content_block"]["id"].as_str().unwrap().to_owned(),
                            d["content_block"]["name"].as_str().unwrap().to_owned(),
                        ));
                        args.push(String::new());
                    }
                    if let Some(p) = d["delta"]["partial_json"].as_str() {
                        args.last_mut().unwrap().push_str(p);
                    }
                }
                let (_, delta) = &events[events.len() - 2];
                assert_eq!(delta["delta"]["stop_reason"], "tool_use");
                calls
                    .into_iter()
                    .zip(args)
                    .map(|((id, name), a)| (id, name, serde_json::from_str(&a).unwrap()))
                    .collect()
            } else {
                let msg: Value = resp.json().await.unwrap();
                assert_eq!(msg["stop_reason"], "tool_use");
                msg["content"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|b| b["type"] == "tool_use")
                    .map(|b| {
                        (
                            b["id"].as_str().unwrap().to_owned(),
                            b["name"].as_str().unwrap().to_owned(),
                            b["input"].clone(),
                        )
                    })
                    .collect()
            };
            let names: Vec<&str> = calls.iter().map(|(_, n, _)| n.as_str()).collect();
            assert_eq!(names, ["lookup", "other"], "{model} stream={stream}");
            assert!(calls[0].2["query"].is_string());

            // The results go back; the model answers in text.
            let assistant: Vec<Value> = calls
                .iter()
                .map(|(id, name, input)| json!({"type": "tool_use", "id": id, "name": name, "input": input}))
                .collect();
            let results: Vec<Value> = calls
                .iter()
                .map(
                    |(id, _, _)| json!({"type": "tool_result", "tool_use_id": id, "content": "42"}),
                )
                .collect();
            body["messages"] = json!([
                {"role": "user", "content": "hello gateway"},
                {"role": "assistant", "content": assistant},
                {"role": "user", "content": results},
            ]);
            body["stream"] = json!(false);
            let msg: Value = app.messages(&body).await.json().await.unwrap();
            assert_eq!(msg["stop_reason"], "end_turn", "{model}: {msg}");
            assert_eq!(
                msg["content"].as_array().unwrap().last().unwrap()["type"],
                "text"
            );
        }
    }
    // What the OpenAI upstream saw for the round trip: tool messages.
    let last = mock
        .received()
        .into_iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .last()
        .unwrap();
    let roles: Vec<&str> = last.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool", "tool"]);
    assert_eq!(last.body["tool_choice"], "required");
}

#[tokio::test]
async fn an_openai_client_is_served_by_an_anthropic_upstream() {
    let mock = caching_mock().await;
    let mut app = spawn_app(both_kinds(&mock)).await;
    let client = app.openai();
    let request = CreateChatCompletionRequestArgs::default()
        .model("claude")
        .messages(vec![
            ChatCompletionRequestMessage::System("be brief".into()),
            ChatCompletionRequestMessage::User("hello gateway".into()),
        ])
        .build()
        .unwrap();
    let answer = client.chat().create(request.clone()).await.unwrap();
    assert_eq!(answer.model, "claude");
    let choice = &answer.choices[0];
    assert_eq!(
        choice.message.content.as_ref().unwrap().split(' ').count(),
        6
    );
    let usage = answer.usage.unwrap();
    assert_eq!(usage.completion_tokens, 8);
    assert_eq!(usage.prompt_tokens_details.unwrap().cached_tokens, Some(3));
    // What went upstream: Anthropic's format, the model's max output filled in.
    let sent = &mock.received()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.headers["x-api-key"], PROVIDER_KEY);
    assert_eq!(sent.body["max_tokens"], 1234);
    assert_eq!(sent.body["system"], "be brief");
    let record = app.next_record().await;
    assert_eq!(record.ctx.format.label(), "openai");
    assert_eq!(record.ctx.endpoint(), "chat_completions");
    assert_eq!((record.usage.cache_write, record.usage.output), (4, 8));

    // Streamed, with usage asked for.
    let mut streamed = request;
    streamed.stream = Some(true);
    streamed.stream_options = Some(async_openai::types::chat::ChatCompletionStreamOptions {
        include_usage: Some(true),
        include_obfuscation: None,
    });
    let mut stream = client.chat().create_stream(streamed).await.unwrap();
    let mut text = String::new();
    let mut usage = None;
    let mut finish = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert_eq!(chunk.model, "claude");
        if let Some(c) = chunk.choices.first() {
            text.push_str(c.delta.content.as_deref().unwrap_or(""));
            finish = finish.or(c.finish_reason);
        }
        usage = usage.or(chunk.usage);
    }
    assert_eq!(text.split(' ').count(), 6);
    assert!(finish.is_some());
    assert_eq!(usage.unwrap().completion_tokens, 8);
    assert_eq!(app.next_record().await.end, End::Complete);
}

#[tokio::test]
async fn an_openai_tool_call_is_served_by_an_anthropic_upstream() {
    let mock = caching_mock().await;
    let app = spawn_app(both_kinds(&mock)).await;
    let tool = ChatCompletionTools::Function(ChatCompletionTool {
        function: FunctionObjectArgs::default()
            .name("lookup")
            .parameters(json!({"type": "object", "properties": {"query": {"type": "string"}}}))
            .build()
            .unwrap(),
    });
    let request = CreateChatCompletionRequestArgs::default()
        .model("claude")
        .messages(vec![ChatCompletionRequestMessage::User("find it".into())])
        .tools(vec![tool])
        .tool_choice(ChatCompletionToolChoiceOption::Mode(
            ToolChoiceOptions::Required,
        ))
        .build()
        .unwrap();
    let answer = app.openai().chat().create(request).await.unwrap();
    let choice = &answer.choices[0];
    assert_eq!(
        choice.finish_reason,
        Some(async_openai::types::chat::FinishReason::ToolCalls)
    );
    let calls = choice.message.tool_calls.as_ref().unwrap();
    let ChatCompletionMessageToolCalls::Function(call) = &calls[0] else {
        panic!("a function call")
    };
    assert_eq!(call.function.name, "lookup");
    let args: Value = serde_json::from_str(&call.function.arguments).unwrap();
    assert!(args["query"].is_string());
    assert_eq!(mock.received()[0].body["tool_choice"]["type"], "any");
}

#[tokio::test]
async fn cache_tokens_are_metered_at_their_own_prices_from_both_doors() {
    let mock = caching_mock().await;
    let mut app = spawn_app(both_kinds(&mock)).await;
    app.messages(&messages_body("claude", false)).await;
    app.chat(chat_body("claude")).await;
    let first = app.next_record().await;
    let second = app.next_record().await;
    for record in [&first, &second] {
        let u = record.usage;
        assert_eq!((u.cached_input, u.cache_write, u.output), (3, 4, 8));
        // $3 input, $0.30 cache read, $3.75 cache write, $15 output per Mtok,
        // in picodollars: 1 token at $1/Mtok is 1,000,000 pUSD.
        let expected = u.input as i64 * 3_000_000 + 3 * 300_000 + 4 * 3_750_000 + 8 * 15_000_000;
        assert_eq!(record.cost.0, expected);
    }
    let rows = ledger_with(&app.db, 2).await;
    let formats: Vec<String> = {
        use sqlx::Row;
        sqlx::query("SELECT client_format, endpoint FROM ledger ORDER BY request_id")
            .fetch_all(app.db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r.try_get::<String, _>("client_format").unwrap(),
                    r.try_get::<String, _>("endpoint").unwrap()
                )
            })
            .collect()
    };
    assert_eq!(formats, ["anthropic/messages", "openai/chat_completions"]);
    for row in rows {
        assert_eq!(row.tokens[1..4], [3, 4, 8]);
    }
}

fn anthropic_error_type(body: &Value) -> &str {
    assert_eq!(body["type"], "error", "{body}");
    body["error"]["type"].as_str().unwrap()
}

#[tokio::test]
async fn the_anthropic_door_answers_errors_in_anthropics_shape() {
    let mock = caching_mock().await;
    let app = spawn_app(both_kinds(&mock)).await;
    let send = |key: &str, body: Value| {
        app.http
            .post(app.url("/v1/messages"))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
    };
    let resp = send("wrong-key", messages_body("claude", false))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        anthropic_error_type(&resp.json().await.unwrap()),
        "authentication_error"
    );
    let resp = send(MASTER_KEY, messages_body("nope", false))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        anthropic_error_type(&resp.json().await.unwrap()),
        "not_found_error"
    );
    let resp = send(MASTER_KEY, json!({"model": "claude", "messages": []}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(anthropic_error_type(&body), "invalid_request_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_tokens"));
    // Something an OpenAI upstream cannot do: refused, not dropped.
    let mut body = messages_body("gpt", false);
    body["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
    let resp = send(MASTER_KEY, body).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tools.0"));
    // Bearer works as well as x-api-key (ANTHROPIC_AUTH_TOKEN).
    let resp = app
        .http
        .post(app.url("/v1/messages"))
        .bearer_auth(MASTER_KEY)
        .json(&messages_body("claude", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // An unknown path under an Anthropic client.
    let resp = app
        .http
        .get(app.url("/v1/nothing"))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        anthropic_error_type(&resp.json().await.unwrap()),
        "not_found_error"
    );
}

#[tokio::test]
async fn upstream_errors_reach_each_door_in_its_own_shape() {
    for (status, anthropic_type, openai_status) in [
        (429, "rate_limit_error", 429),
        (529, "overloaded_error", 503),
        (500, "api_error", 500),
    ] {
        let mock = spawn_mock(MockOptions {
            sim: fast_sim(),
            faults: Faults {
                status: Some(status),
                ..Default::default()
            },
            ..Default::default()
        })
        .await;
        let app = spawn_app(both_kinds(&mock)).await;
        for model in ["claude", "gpt"] {
            let resp = app.messages(&messages_body(model, false)).await;
            assert_eq!(resp.status(), status, "{model}");
            if status == 429 {
                assert_eq!(resp.headers()["retry-after"], "1");
            }
            let body: Value = resp.json().await.unwrap();
            assert_eq!(
                anthropic_error_type(&body),
                anthropic_type,
                "{model} {status}"
            );
        }
        let resp = app.chat(chat_body("claude")).await;
        assert_eq!(resp.status(), openai_status);
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
        assert!(body.get("type").is_none(), "OpenAI's shape: {body}");
    }
    // The upstream refusing the gateway's key is the gateway's problem: 502.
    let mock = spawn_mock(MockOptions {
        sim: fast_sim(),
        api_key: Some("another-key".into()),
        ..Default::default()
    })
    .await;
    let app = spawn_app(both_kinds(&mock)).await;
    let resp = app.messages(&messages_body("claude", false)).await;
    assert_eq!(resp.status(), 502);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(PROVIDER_KEY));
    assert_eq!(
        anthropic_error_type(&serde_json::from_str(&text).unwrap()),
        "api_error"
    );
}

#[tokio::test]
async fn an_error_event_after_200_reaches_each_door_in_its_format() {
    let mock = spawn_mock(MockOptions {
        sim: fast_sim(),
        faults: Faults {
            error_event_after: Some(4),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let mut app = spawn_app(both_kinds(&mock)).await;
    // Anthropic upstream, Anthropic client: the event passes as it is.
    let text = app
        .messages(&messages_body("claude", true))
        .await
        .text()
        .await
        .unwrap();
    let events = anthropic_events(&text);
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(data["error"]["type"], "overloaded_error");
    assert_eq!(app.next_record().await.end, End::UpstreamError);
    // Anthropic upstream, OpenAI client: an OpenAI error chunk.
    let mut body = chat_body("claude");
    body["stream"] = json!(true);
    let data = read_sse(app.chat(body).await).await;
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "overloaded_error");
    assert_eq!(app.next_record().await.end, End::UpstreamError);
    // OpenAI upstream, Anthropic client: an Anthropic error event.
    let text = app
        .messages(&messages_body("gpt", true))
        .await
        .text()
        .await
        .unwrap();
    let events = anthropic_events(&text);
    assert_eq!(events[0].0, "message_start");
    assert_eq!(events.last().unwrap().0, "error");
    assert_eq!(app.next_record().await.end, End::UpstreamError);
}

#[tokio::test]
async fn claude_codes_probes_are_answered() {
    let mock = caching_mock().await;
    let app = spawn_app(both_kinds(&mock)).await;
    let resp = app.http.head(app.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // Models in Anthropic's list shape when anthropic-version is sent.
    let list: Value = app
        .as_anthropic(app.http.get(app.url("/v1/models?limit=1000")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["claude", "gpt"]);
    assert_eq!(list["data"][0]["type"], "model");
    assert!(list["data"][0]["created_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(list["has_more"], false);
    let page: Value = app
        .as_anthropic(app.http.get(app.url("/v1/models?limit=1")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["has_more"], true);
    assert_eq!(page["last_id"], "claude");
    // Token counts: upstream for an anthropic provider, estimated otherwise.
    for model in ["claude", "gpt"] {
        let counted: Value = app
            .as_anthropic(app.http.post(app.url("/v1/messages/count_tokens")))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hello gateway"}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(counted["input_tokens"].as_u64().unwrap() > 0, "{counted}");
    }
    let paths: Vec<String> = mock.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/v1/messages/count_tokens"]);
}

#[tokio::test]
async fn an_anthropic_stream_cut_by_the_client_is_billed_for_what_was_sent() {
    for model in ["claude", "gpt"] {
        // A held stream, released only when the test is done with it.
        let mock = spawn_mock(MockOptions {
            sim: SimConfig {
                output_tokens: 40,
                ..fast_sim()
            },
            faults: Faults {
                hold_after: Some(20),
                ..Default::default()
            },
            ..Default::default()
        })
        .await;
        let mut app = spawn_app(both_kinds(&mock)).await;
        let resp = app.messages(&messages_body(model, true)).await;
        assert_eq!(resp.status(), 200);
        let mut body = resp.bytes_stream();
        let mut seen = String::new();
        while seen.matches("text_delta").count() < 10 {
            let piece = next_piece(&mut body).await.expect("the stream goes on");
            seen.push_str(std::str::from_utf8(&piece).unwrap());
        }
        drop(body);
        let record = app.next_record().await;
        assert_eq!(record.end, End::ClientDisconnected, "{model}");
        assert!(record.usage.input > 0, "{model}: the prompt is billed");
        assert!(
            record.usage.output >= 10,
            "{model}: the words streamed are billed, got {}",
            record.usage.output
        );
        ledger_with(&app.db, 1).await;
        mock.release();
    }
}

#[tokio::test]
async fn an_anthropic_provider_can_send_its_key_as_bearer() {
    let mock = caching_mock().await;
    let cfg = config(&format!(
        "[providers.ant]\nkind = \"anthropic\"\nbase_url = \"http://{}\"\napi_key = \"{PROVIDER_KEY}\"\nauth = \"bearer\"\n[models.claude]\nprovider = \"ant\"\n",
        mock.addr()
    ));
    let app = spawn_app(cfg).await;
    assert_eq!(
        app.messages(&messages_body("claude", false)).await.status(),
        200
    );
    let sent = &mock.received()[0];
    assert_eq!(
        sent.authorization.as_deref(),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert!(!sent.headers.contains_key("x-api-key"));
    assert_eq!(
        sent.headers["anthropic-version"], "2023-06-01",
        "the default version"
    );
}

#[tokio::test]
async fn count_tokens_estimates_when_the_upstream_cannot_count() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = config(&format!(
        "[providers.ant]\nkind = \"anthropic\"\nbase_url = \"http://{}\"\n[models.claude]\nprovider = \"ant\"\n",
        closed.local_addr().unwrap()
    ));
    drop(closed);
    let app = spawn_app(cfg).await;
    let body =
        json!({"model": "claude", "messages": [{"role": "user", "content": "hello gateway"}]});
    let counted: Value = app
        .as_anthropic(app.http.post(app.url("/v1/messages/count_tokens")))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        counted["input_tokens"].as_u64(),
        Some(router::estimate::messages_prompt(&body))
    );
}
