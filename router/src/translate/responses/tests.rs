//! Tests of the Responses translation beyond the golden fixtures: stream
//! invariants on every Responses stream fixture, reasoning round trips, and
//! the rules the fixtures do not show one by one.

use std::path::PathBuf;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::*;
use crate::translate::Flow;
use crate::usage::Usage;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("an object")
}

/// The `data` of each SSE frame, checking that its `event:` names its type.
fn events(out: &[Bytes]) -> Vec<Value> {
    out.iter()
        .map(|b| {
            let text = std::str::from_utf8(b).expect("UTF-8");
            let (head, data) = text
                .strip_suffix("\n\n")
                .and_then(|t| t.split_once('\n'))
                .expect("an event line and a data line");
            let data: Value =
                serde_json::from_str(data.strip_prefix("data: ").expect("data")).expect("JSON");
            assert_eq!(head.strip_prefix("event: "), data["type"].as_str());
            data
        })
        .collect()
}

/// Feeds a fixture's input to its stream translator.
fn run_stream(fixture: &Value) -> (Vec<Value>, Flow) {
    let request = fixture["request"].as_object().expect("request");
    let mut out = Vec::new();
    let mut flow = Flow::Continue;
    let inputs = fixture["input"].as_array().expect("inputs");
    match fixture["kind"].as_str() {
        Some("chat_stream_to_responses") => {
            let mut t = ChatToResponses::new("client-model", request);
            for c in inputs {
                flow = if c == "[DONE]" {
                    t.end(&mut out)
                } else {
                    t.chunk(c, &mut out)
                };
            }
        }
        Some("anthropic_stream_to_responses") => {
            let mut t = AnthropicToResponses::new("client-model", request);
            for e in inputs {
                flow = t.event(e, &mut out);
            }
        }
        other => panic!("not a stream fixture: {other:?}"),
    }
    (events(&out), flow)
}

/// What every Responses stream must satisfy.
fn assert_well_formed(events: &[Value]) {
    for (n, e) in events.iter().enumerate() {
        assert_eq!(
            e["sequence_number"],
            json!(n),
            "sequence numbers count from 0"
        );
    }
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types[..2], ["response.created", "response.in_progress"]);
    let terminal = [
        "response.completed",
        "response.incomplete",
        "response.failed",
    ];
    let ends = types.iter().filter(|t| terminal.contains(t)).count();
    assert_eq!(ends, 1, "exactly one terminal event");
    let last = events.last().expect("events");
    assert!(terminal.contains(&last["type"].as_str().unwrap_or("")));
    let output = last["response"]["output"].as_array().expect("output");
    let mut open: Option<(usize, String)> = None;
    let mut next = 0;
    for e in &events[2..events.len() - 1] {
        let index = e["output_index"].as_u64().map(|i| i as usize);
        match e["type"].as_str() {
            Some("response.output_item.added") => {
                assert_eq!(open, None, "one item open at a time");
                assert_eq!(index, Some(next), "output indexes rise by one");
                open = Some((next, e["item"]["id"].as_str().expect("id").to_owned()));
                next += 1;
            }
            Some("response.output_item.done") => {
                let (i, id) = open.take().expect("an open item");
                assert_eq!(index, Some(i));
                assert_eq!(e["item"]["id"], json!(id));
                assert_eq!(output[i], e["item"], "the terminal event repeats the item");
            }
            _ => {
                let (i, id) = open.as_ref().expect("deltas go to an open item");
                assert_eq!(index, Some(*i));
                assert_eq!(e["item_id"], json!(id));
            }
        }
    }
    if last["type"] != "response.failed" {
        assert_eq!(open, None, "every item is closed");
        assert_eq!(output.len(), next, "the terminal event carries every item");
    }
}

fn stream_fixtures() -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/translate");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("reads");
        let fixture: Value = serde_json::from_str(&text).expect("JSON");
        if fixture["kind"]
            .as_str()
            .is_some_and(|k| k.ends_with("_stream_to_responses"))
        {
            out.push(fixture);
        }
    }
    out
}

#[test]
fn every_translated_stream_is_well_formed() {
    let fixtures = stream_fixtures();
    assert!(fixtures.len() >= 6);
    for f in fixtures {
        let (events, _) = run_stream(&f);
        assert_well_formed(&events);
    }
}

fn reasoning_items(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["type"] == "response.output_item.done" && e["item"]["type"] == "reasoning")
        .map(|e| e["item"].clone())
        .collect()
}

#[test]
fn anthropic_thinking_survives_a_round_trip_with_its_signature() {
    let fixture = stream_fixtures()
        .into_iter()
        .find(|f| {
            f["kind"] == "anthropic_stream_to_responses" && f["expected"]["flow"] == "complete"
        })
        .expect("the thinking fixture");
    let (events, flow) = run_stream(&fixture);
    assert_eq!(flow, Flow::Complete);
    let items = reasoning_items(&events);
    assert_eq!(items.len(), 1);
    let calls: Vec<Value> = events
        .iter()
        .filter(|e| e["type"] == "response.output_item.done" && e["item"]["type"] != "reasoning")
        .filter(|e| e["item"]["type"] != "message")
        .map(|e| e["item"].clone())
        .collect();
    let mut input = vec![
        json!({"role": "user", "content": "fix it"}),
        items[0].clone(),
    ];
    input.extend(calls);
    let body = obj(json!({"model": "m", "input": input, "tools": fixture["request"]["tools"]}));
    let out = responses_to_messages(&body, "claude", 8192).expect("translates");
    let turn = &out["messages"][1];
    assert_eq!(turn["role"], "assistant");
    assert_eq!(
        turn["content"][0],
        json!({"type": "thinking", "thinking": "Patch the heading.", "signature": "EqQBsigS=="})
    );
    assert_eq!(turn["content"][1]["type"], "tool_use");
    assert_eq!(
        turn["content"][1]["input"],
        json!({"input": "*** Begin Patch\n*** End Patch\n"}),
        "the custom call's input goes back wrapped"
    );
}

#[test]
fn chat_reasoning_content_survives_a_round_trip() {
    let fixture = stream_fixtures()
        .into_iter()
        .find(|f| f["input"].to_string().contains("reasoning_content"))
        .expect("the reasoning fixture");
    let (events, _) = run_stream(&fixture);
    let items = reasoning_items(&events);
    assert_eq!(items.len(), 1);
    let input = json!([
        {"role": "user", "content": "hi"},
        items[0],
        {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
    ]);
    let out = responses_to_chat(&obj(json!({"model": "m", "input": input})), "kimi").expect("ok");
    assert_eq!(out["messages"][1]["reasoning_content"], "The user says hi.");
    assert_eq!(out["messages"][1]["tool_calls"][0]["id"], "c1");
    assert_eq!(out["messages"][2]["role"], "tool");
}

#[test]
fn whole_anthropic_answers_round_trip_thinking_and_redacted_thinking() {
    let msg = json!({"id": "msg_1", "content": [
        {"type": "thinking", "thinking": "t", "signature": "s1"},
        {"type": "redacted_thinking", "data": "r1"},
        {"type": "text", "text": "ok"},
    ], "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 2}});
    let response = message_to_response(&msg, "m", &Map::new());
    let mut input = vec![json!({"role": "user", "content": "q"})];
    input.extend(
        response["output"]
            .as_array()
            .expect("output")
            .iter()
            .cloned(),
    );
    input.push(json!({"role": "user", "content": "more"}));
    let out = responses_to_messages(&obj(json!({"model": "m", "input": input})), "c", 4096)
        .expect("translates");
    assert_eq!(
        out["messages"][1]["content"],
        json!([
            {"type": "thinking", "thinking": "t", "signature": "s1"},
            {"type": "redacted_thinking", "data": "r1"},
            {"type": "text", "text": "ok"},
        ])
    );
}

#[test]
fn reasoning_without_a_signature_is_dropped_for_anthropic() {
    let input = json!([
        {"role": "user", "content": "q"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "openai's"}], "encrypted_content": "gAAAA"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a"}]},
    ]);
    let body = obj(json!({"model": "m", "input": input}));
    let out = responses_to_messages(&body, "c", 4096).expect("translates");
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"type": "text", "text": "a"}])
    );
    let chat = responses_to_chat(&body, "k").expect("translates");
    assert_eq!(
        chat["messages"][1]["reasoning_content"], "openai's",
        "a chat upstream gets the summary text"
    );
}

#[test]
fn system_messages_join_the_top_level_system_for_anthropic() {
    let input = json!([
        {"role": "developer", "content": "early"},
        {"role": "user", "content": "q"},
        {"role": "system", "content": "late"},
        {"role": "user", "content": "r"},
    ]);
    let body = obj(json!({"model": "m", "instructions": "base", "input": input}));
    let out = responses_to_messages(&body, "c", 4096).expect("translates");
    assert_eq!(out["system"], "base\n\nearly\n\nlate");
    assert_eq!(out["messages"].as_array().unwrap().len(), 1);
    assert_eq!(out["messages"][0]["role"], "user");
    let chat = responses_to_chat(&body, "k").expect("translates");
    let roles: Vec<&str> = chat["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(
        roles,
        ["system", "system", "user", "system", "user"],
        "not hoisted"
    );
}

#[test]
fn bad_arguments_and_unknown_items_are_judged_by_the_translation() {
    let input = json!([
        {"role": "user", "content": "q"},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"},
    ]);
    let e = responses_to_messages(&obj(json!({"model": "m", "input": input})), "c", 10)
        .expect_err("refused");
    assert_eq!(e.param(), Some("input[1].arguments"));
    let input = json!([
        {"type": "brand_new", "content": [{"type": "x", "text": "kept"}]},
        {"type": "other_new", "blob": 1},
    ]);
    let out = responses_to_chat(&obj(json!({"model": "m", "input": input})), "k").expect("ok");
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": "kept"}])
    );
    let e = responses_to_chat(&obj(json!({"model": "m", "input": []})), "k").expect_err("empty");
    assert_eq!(e.param(), Some("input"));
}

#[test]
fn hosted_tools_offered_are_left_out_and_forced_ones_refused() {
    let body = obj(json!({"model": "m", "input": "hi", "tools": [
        {"type": "web_search", "external_web_access": true},
        {"type": "tool_search", "execution": "client", "parameters": {}},
        {"type": "function", "name": "f", "parameters": {"type": "object"}},
    ]}));
    let chat = responses_to_chat(&body, "k").expect("translates");
    assert_eq!(chat["tools"].as_array().unwrap().len(), 1);
    assert_eq!(chat["tools"][0]["function"]["name"], "f");
    let anthropic = responses_to_messages(&body, "c", 100).expect("translates");
    assert_eq!(anthropic["tools"].as_array().unwrap().len(), 1);
    let mut forced = body.clone();
    forced.insert("tool_choice".into(), json!({"type": "web_search"}));
    assert_eq!(
        responses_to_chat(&forced, "k")
            .expect_err("refused")
            .param(),
        Some("tool_choice")
    );
}

#[test]
fn refusals_name_their_parameter() {
    let cases = [
        (json!({"conversation": "conv_1"}), "conversation"),
        (json!({"prompt": {"id": "pmpt_1"}}), "prompt"),
        (json!({"background": true}), "background"),
        (json!({"top_logprobs": 2}), "top_logprobs"),
        (json!({"max_tool_calls": 3}), "max_tool_calls"),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]}),
            "input[0].content[0].file_id",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_url": "https://x/y.pdf"}]}]}),
            "input[0].content[0].file_url",
        ),
    ];
    for (extra, param) in cases {
        let mut body = obj(json!({"model": "m", "input": "hi"}));
        body.extend(obj(extra));
        let e = responses_to_chat(&body, "k").expect_err("refused");
        assert_eq!(e.param(), Some(param));
        let e = responses_to_messages(&body, "c", 100).expect_err("refused");
        assert_eq!(e.param(), Some(param));
    }
    let e = responses_to_chat(
        &obj(json!({"model": "m", "input": "hi", "previous_response_id": "resp_1"})),
        "k",
    )
    .expect_err("refused");
    assert!(
        e.to_string().contains("Tollgate stores no responses"),
        "{e}"
    );
}

#[test]
fn effort_maps_to_a_thinking_budget_below_max_tokens() {
    let budget = |effort: &str, max: u64| {
        let body = obj(
            json!({"model": "m", "input": "q", "reasoning": {"effort": effort}, "max_output_tokens": max}),
        );
        responses_to_messages(&body, "c", 1)
            .expect("translates")
            .get("thinking")
            .map(|t| t["budget_tokens"].clone())
    };
    assert_eq!(budget("xhigh", 64000), Some(json!(32768)));
    assert_eq!(budget("high", 5000), Some(json!(4999)));
    assert_eq!(budget("minimal", 64000), Some(json!(1024)));
    assert_eq!(budget("low", 1000), None, "below Anthropic's minimum");
    assert_eq!(budget("none", 64000), None);
    let body = obj(json!({"model": "m", "input": "q"}));
    assert_eq!(
        responses_to_messages(&body, "c", 777).expect("ok")["max_tokens"],
        777
    );
}

#[test]
fn thinking_leaves_out_what_anthropic_refuses_beside_it() {
    let body = obj(
        json!({"model": "m", "input": "q", "reasoning": {"effort": "medium"},
                          "temperature": 0.2, "top_p": 0.97}),
    );
    let out = responses_to_messages(&body, "c", 8000).expect("translates");
    assert_eq!(out["thinking"]["budget_tokens"], 4096);
    assert!(
        out.get("temperature").is_none(),
        "a temperature only tunes sampling"
    );
    assert_eq!(out["top_p"], 0.97);
    let body = obj(
        json!({"model": "m", "input": "q", "reasoning": {"effort": "medium"},
                          "tools": [{"type": "function", "name": "f"}], "tool_choice": "required"}),
    );
    let out = responses_to_messages(&body, "c", 8000).expect("translates");
    assert!(
        out.get("thinking").is_none(),
        "a forced tool call wins over thinking"
    );
    assert_eq!(out["tool_choice"], json!({"type": "any"}));
}

#[test]
fn a_budget_cut_fails_the_stream_with_the_output_so_far_and_usage() {
    let request = obj(json!({"model": "m", "input": "q"}));
    let mut t = ChatToResponses::new("client", &request);
    let mut out = Vec::new();
    t.chunk(
        &json!({"id": "chatcmpl-b", "choices": [{"index": 0, "delta": {"content": "par"}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1}}),
        &mut out,
    );
    t.fail(
        failure_code("budget_exceeded"),
        "The key's budget ran out.",
        &mut out,
    );
    let mut more = Vec::new();
    assert_eq!(t.end(&mut more), Flow::Complete);
    assert!(more.is_empty(), "nothing after the terminal event");
    let events = events(&out);
    assert_well_formed(&events);
    let failed = &events.last().expect("events")["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "insufficient_quota");
    assert_eq!(failed["output"][0]["status"], "incomplete");
    assert_eq!(failed["output"][0]["content"][0]["text"], "par");
    assert_eq!(failed["usage"]["input_tokens"], 5);
}

#[test]
fn a_failure_before_any_upstream_byte_is_a_whole_stream() {
    let request = obj(json!({"model": "m", "input": "q", "tools": []}));
    let events = events(&failed_stream(
        "client",
        &request,
        "server_error",
        "No upstream answered.",
    ));
    assert_well_formed(&events);
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.failed"
        ]
    );
    let r = &events[2]["response"];
    assert_eq!(
        r["error"],
        json!({"code": "server_error", "message": "No upstream answered."})
    );
    assert_eq!(r["model"], "client");
    assert!(r["id"].as_str().is_some_and(|id| id.starts_with("resp_")));
}

#[test]
fn failure_codes_are_the_ones_agents_act_on() {
    assert_eq!(failure_code("rate_limit_error"), "rate_limit_exceeded");
    assert_eq!(failure_code("overloaded_error"), "server_error");
    assert_eq!(failure_code("timeout"), "server_error");
    assert_eq!(failure_code("insufficient_quota"), "insufficient_quota");
    assert_eq!(failure_code("request_too_large"), "context_length_exceeded");
    assert_eq!(failure_code("invalid_request_error"), "invalid_prompt");
    assert_eq!(
        failure_code_for(
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum"
        ),
        "context_length_exceeded"
    );
}

#[test]
fn responses_usage_splits_cached_and_reasoning_out_of_the_totals() {
    let u = Usage {
        input: 100,
        cached_input: 800,
        cache_write: 50,
        output: 70,
        reasoning: 30,
    };
    let json = usage_json(&u);
    assert_eq!(json["input_tokens"], 950);
    assert_eq!(json["total_tokens"], 1020);
    assert_eq!(from_responses(&json), Some(u));
    let event = json!({"type": "response.incomplete", "response": {"usage": {
        "input_tokens": 10, "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 9}, "total_tokens": 13}}});
    let u = usage_from_response_event(&event).expect("usage");
    assert_eq!(
        (u.input, u.cached_input, u.output, u.reasoning),
        (6, 4, 3, 3)
    );
    assert_eq!(usage_from_response(&json!({"usage": null})), None);
    assert_eq!(
        usage_from_response_event(
            &json!({"type": "response.created", "response": {"usage": null}})
        ),
        None
    );
}

#[test]
fn responses_objects_carry_the_fields_the_sdk_requires() {
    let chat = json!({"id": "chatcmpl-1", "created": 5, "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]});
    let r = chat_to_response(
        &chat,
        "alias",
        &obj(json!({"model": "alias", "input": "q"})),
    );
    for key in [
        "id",
        "object",
        "created_at",
        "status",
        "error",
        "incomplete_details",
        "instructions",
        "metadata",
        "model",
        "output",
        "parallel_tool_calls",
        "temperature",
        "tool_choice",
        "tools",
        "top_p",
    ] {
        assert!(r.get(key).is_some(), "{key}");
    }
    assert_eq!(r["created_at"], 5);
    assert_eq!(r["status"], "completed");
    assert_eq!(r["output"][0]["content"][0]["text"], "hi");
}
