//! Golden translation tests: every file in `tests/fixtures/translate` holds an
//! input and the exact expected output. `TOLLGATE_BLESS=1 cargo test -p
//! tollgate-router golden` rewrites the expected outputs; review the diff.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::*;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/translate")
}

fn request_result(
    r: Result<serde_json::Map<String, Value>, crate::wire::openai::RequestError>,
) -> Value {
    match r {
        Ok(map) => Value::Object(map),
        Err(e) => json!({"error": e.to_string(), "param": e.param()}),
    }
}

/// Parses SSE frames into `{event, data}` values (`data` is JSON or the text).
fn frames(out: &[bytes::Bytes]) -> Vec<Value> {
    out.iter()
        .map(|b| {
            let text = std::str::from_utf8(b).expect("frames are UTF-8");
            assert!(
                text.ends_with("\n\n"),
                "a frame ends with a blank line: {text:?}"
            );
            let mut event = Value::Null;
            let mut data = String::new();
            for line in text.trim_end().lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = json!(e);
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                } else {
                    panic!("unexpected line {line:?}");
                }
            }
            let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
            if event.is_null() {
                json!({"data": data})
            } else {
                json!({"event": event, "data": data})
            }
        })
        .collect()
}

fn flow_name(f: Flow) -> &'static str {
    match f {
        Flow::Continue => "continue",
        Flow::Complete => "complete",
        Flow::Error => "error",
    }
}

/// The Responses request a fixture answers (`request`), for answer and
/// stream kinds.
fn fixture_request(fixture: &Value) -> &serde_json::Map<String, Value> {
    fixture["request"].as_object().expect("a request object")
}

/// `value` with every `created_at` pinned: Anthropic answers carry no
/// creation time, so Tollgate uses the clock.
fn pinned(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                *v = if k == "created_at" {
                    json!(1_700_000_000)
                } else {
                    pinned(v.take())
                };
            }
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                *v = pinned(v.take());
            }
        }
        _ => {}
    }
    value
}

fn run(fixture: &Value) -> Value {
    let input = &fixture["input"];
    let empty = serde_json::Map::new();
    let obj = input.as_object().unwrap_or(&empty);
    match fixture["kind"].as_str().expect("a kind") {
        "chat_to_messages" => request_result(chat_to_messages(obj, "upstream-model", 8192)),
        "messages_to_chat" => request_result(messages_to_chat(obj, "upstream-model")),
        "message_to_chat" => message_to_chat(input, "client-model", 1_700_000_000),
        "chat_to_message" => chat_to_message(input, "client-model"),
        "anthropic_stream_to_chat" => {
            let include = fixture["include_usage"].as_bool().unwrap_or(false);
            let mut t = AnthropicToChat::new("client-model", 1_700_000_000, include);
            let mut out = Vec::new();
            let mut flow = Flow::Continue;
            for event in input.as_array().expect("events") {
                assert_eq!(flow, Flow::Continue, "no event after the end");
                flow = t.event(event, &mut out);
            }
            json!({"frames": frames(&out), "flow": flow_name(flow)})
        }
        "chat_stream_to_anthropic" => {
            let mut t = ChatToAnthropic::new("client-model");
            let mut out = Vec::new();
            let mut flow = Flow::Continue;
            for chunk in input.as_array().expect("chunks") {
                assert_eq!(flow, Flow::Continue, "no chunk after the end");
                flow = if chunk == "[DONE]" {
                    t.end(&mut out)
                } else {
                    t.chunk(chunk, &mut out)
                };
            }
            json!({"frames": frames(&out), "flow": flow_name(flow)})
        }
        "responses_to_chat" => request_result(responses::responses_to_chat(obj, "upstream-model")),
        "responses_to_messages" => request_result(responses::responses_to_messages(
            obj,
            "upstream-model",
            8192,
        )),
        "chat_to_response" => pinned(responses::chat_to_response(
            input,
            "client-model",
            fixture_request(fixture),
        )),
        "message_to_response" => pinned(responses::message_to_response(
            input,
            "client-model",
            fixture_request(fixture),
        )),
        "chat_stream_to_responses" => {
            let mut t = responses::ChatToResponses::new("client-model", fixture_request(fixture));
            let mut out = Vec::new();
            let mut flow = Flow::Continue;
            for chunk in input.as_array().expect("chunks") {
                assert_eq!(flow, Flow::Continue, "no chunk after the end");
                flow = if chunk == "[DONE]" {
                    t.end(&mut out)
                } else {
                    t.chunk(chunk, &mut out)
                };
            }
            pinned(json!({"frames": frames(&out), "flow": flow_name(flow)}))
        }
        "anthropic_stream_to_responses" => {
            let mut t =
                responses::AnthropicToResponses::new("client-model", fixture_request(fixture));
            let mut out = Vec::new();
            let mut flow = Flow::Continue;
            for event in input.as_array().expect("events") {
                assert_eq!(flow, Flow::Continue, "no event after the end");
                flow = t.event(event, &mut out);
            }
            pinned(json!({"frames": frames(&out), "flow": flow_name(flow)}))
        }
        other => panic!("unknown fixture kind {other}"),
    }
}

#[test]
fn golden_translations_match_their_fixtures() {
    let bless = std::env::var_os("TOLLGATE_BLESS").is_some();
    let mut paths: Vec<_> = std::fs::read_dir(fixtures())
        .expect("the fixture directory")
        .map(|e| e.expect("a fixture").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 10, "the golden fixtures are present");
    let mut failures = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("fixture reads");
        let mut fixture: Value = serde_json::from_str(&text).expect("fixture is JSON");
        let actual = run(&fixture);
        if bless {
            fixture["expected"] = actual;
            let mut out = serde_json::to_vec_pretty(&fixture).expect("serializes");
            out.push(b'\n');
            std::fs::write(&path, out).expect("fixture writes");
        } else if fixture["expected"] != actual {
            failures.push(format!(
                "{}:\nexpected {}\nactual   {}",
                path.display(),
                fixture["expected"],
                actual
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every Anthropic stream the translator produces keeps Anthropic's order:
/// `message_start` first, blocks opened, filled and closed one at a time
/// with rising indexes, then `message_delta` and `message_stop`.
#[test]
fn translated_streams_keep_anthropics_event_order() {
    let text = std::fs::read_to_string(fixtures().join("stream_chat_to_anthropic_tools.json"))
        .expect("fixture reads");
    let fixture: Value = serde_json::from_str(&text).expect("fixture is JSON");
    let out = run(&fixture);
    let events: Vec<&str> = out["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["event"].as_str().expect("named events"))
        .collect();
    assert_eq!(events.first(), Some(&"message_start"));
    assert_eq!(
        events[events.len() - 2..],
        ["message_delta", "message_stop"]
    );
    let mut open: Option<u64> = None;
    let mut next = 0;
    for f in out["frames"].as_array().expect("frames") {
        let index = f["data"]["index"].as_u64();
        match f["event"].as_str() {
            Some("content_block_start") => {
                assert_eq!(open, None, "one block open at a time");
                assert_eq!(index, Some(next), "block indexes rise by one");
                open = index;
                next += 1;
            }
            Some("content_block_delta") => assert_eq!(index, open, "deltas go to the open block"),
            Some("content_block_stop") => {
                assert_eq!(index, open);
                open = None;
            }
            _ => {}
        }
    }
    assert_eq!(open, None, "every block is closed");
    assert_eq!(next, 4, "thinking, text and two tool calls");
}

#[test]
fn a_chat_without_max_tokens_gets_the_models_maximum() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    let out =
        chat_to_messages(body.as_object().expect("object"), "claude", 64_000).expect("translates");
    assert_eq!(out["max_tokens"], 64_000);
    let body = json!({"model": "m", "max_tokens": 10, "max_completion_tokens": 20, "messages": [{"role": "user", "content": "x"}]});
    let out =
        chat_to_messages(body.as_object().expect("object"), "claude", 64_000).expect("translates");
    assert_eq!(out["max_tokens"], 20, "max_completion_tokens wins");
}

#[test]
fn a_thinking_budget_stays_below_max_tokens() {
    let body = json!({"model": "m", "max_tokens": 3000, "reasoning_effort": "high", "messages": [{"role": "user", "content": "x"}]});
    let out =
        chat_to_messages(body.as_object().expect("object"), "claude", 64_000).expect("translates");
    assert_eq!(out["thinking"]["budget_tokens"], 2999);
    let body = json!({"model": "m", "max_tokens": 500, "reasoning_effort": "low", "messages": [{"role": "user", "content": "x"}]});
    let out =
        chat_to_messages(body.as_object().expect("object"), "claude", 64_000).expect("translates");
    assert!(
        out.get("thinking").is_none(),
        "below Anthropic's 1024 minimum: no thinking"
    );
}

#[test]
fn a_text_delta_written_directly_is_the_frame_a_value_would_make() {
    let mut t = ChatToAnthropic::new("m");
    let mut out = Vec::new();
    let text = "line \"one\"\n\ttab é 😀 \u{1}";
    t.text("chatcmpl-1", text, &mut out);
    t.text("chatcmpl-1", text, &mut out);
    let want = anthropic_frame(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
    );
    // message_start, content_block_start, then the two deltas.
    assert_eq!(out.len(), 4);
    assert_eq!(out[2], want);
    assert_eq!(out[3], want);
}
