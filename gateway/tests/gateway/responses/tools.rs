//! Tools through the Responses door on every backend kind: forced and
//! prompted function calls, freeform (`custom`) tool calls with their raw
//! input, parallel calls, and reasoning that goes back to the model that
//! produced it with the tool's result.

use loadtest::mock::Faults;
use router::sim;
use serde_json::{json, Value};

use super::*;

/// `TOLLGATE_CALL` directive text for the mock.
fn directive(tool: &str, args: &Value) -> String {
    format!("please\n{} {tool} {args}", sim::DIRECTIVE)
}

fn lookup_tool() -> Value {
    json!({"type": "function", "name": "lookup", "description": "Looks a thing up",
           "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                          "required": ["query"]}})
}

/// The item of each `response.output_item.done`, in order: what Codex keeps.
fn done_items(text: &str) -> Vec<Value> {
    streams::assert_sequence(text)
        .into_iter()
        .filter(|(_, e)| e["type"] == "response.output_item.done")
        .map(|(_, e)| e["item"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_call_is_a_function_call_item_on_every_backend() {
    let mock = mock_with(fast_sim(), Faults::default()).await;
    let app = spawn_app(backends(&mock, "")).await;
    for b in Backend::ALL {
        for stream in [false, true] {
            let what = format!("{b:?} stream={stream}");
            // Forced by tool_choice.
            let mut body = request(b.model(), stream);
            body["tools"] = json!([lookup_tool()]);
            body["tool_choice"] = json!("required");
            let resp = app.responses(&body).await;
            assert_eq!(resp.status(), 200, "{what}");
            let answer = if stream {
                streams::terminal(&resp.text().await.unwrap())["response"].clone()
            } else {
                resp.json().await.unwrap()
            };
            assert_readable(&answer);
            assert_eq!(answer["status"], "completed", "{what}: {answer}");
            let calls = items_of(&answer, "function_call");
            assert_eq!(calls.len(), 1, "{what}: {answer}");
            assert_eq!(calls[0]["name"], "lookup");
            assert!(calls[0]["call_id"].as_str().is_some_and(|c| !c.is_empty()));
            let args: Value =
                serde_json::from_str(calls[0]["arguments"].as_str().unwrap()).unwrap();
            assert!(args["query"].is_string(), "{what}: {args}");
            assert!(items_of(&answer, "message").is_empty(), "{what}");

            // Asked for in the prompt, as an agent's user would.
            let args = json!({"query": "tollgate pricing"});
            body["tool_choice"] = json!("auto");
            body["input"][0]["content"][0]["text"] = json!(directive("lookup", &args));
            let resp = app.responses(&body).await;
            let items = if stream {
                done_items(&resp.text().await.unwrap())
            } else {
                resp.json::<Value>().await.unwrap()["output"]
                    .as_array()
                    .unwrap()
                    .clone()
            };
            let call = items
                .iter()
                .find(|i| i["type"] == "function_call")
                .unwrap_or_else(|| panic!("{what}: {items:?}"));
            assert_eq!(call["name"], "lookup");
            let got: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
            assert_eq!(got, args, "{what}");
        }
    }
    // The translated backends were asked the way their formats ask.
    assert_eq!(
        last_at(&mock, "/v1/chat/completions").body["tools"][0]["function"]["name"],
        "lookup"
    );
    let forced: Vec<Value> = mock
        .received()
        .into_iter()
        .filter(|r| r.path == "/v1/messages" && r.body.get("tool_choice").is_some())
        .map(|r| r.body["tool_choice"].clone())
        .collect();
    assert!(forced.contains(&json!({"type": "any"})), "{forced:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_tool_call_is_a_custom_tool_call_item_with_raw_input() {
    let mock = mock_with(fast_sim(), Faults::default()).await;
    let app = spawn_app(backends(&mock, "")).await;
    let patch = "*** Begin Patch\n*** Add File: hello.txt\n+hi\n*** End Patch";
    for b in Backend::ALL {
        for stream in [false, true] {
            let what = format!("{b:?} stream={stream}");
            // The model writes what its tool asks for: on a translated
            // backend a function taking `input`, on the pass-through the
            // freeform text itself. The directive runs to the end of its
            // line, so the patch travels JSON-encoded.
            let args = match b {
                Backend::Pass => json!(patch),
                _ => json!({"input": patch}),
            };
            let mut body = request(b.model(), stream);
            body["tools"] = json!([{"type": "custom", "name": "apply_patch",
                                    "description": "Edits files with a patch",
                                    "format": {"type": "grammar", "syntax": "lark",
                                               "definition": "start: begin_patch hunk+ end_patch"}},
                                   lookup_tool()]);
            body["input"][0]["content"][0]["text"] = json!(directive("apply_patch", &args));
            let resp = app.responses(&body).await;
            assert_eq!(resp.status(), 200, "{what}");
            let items = if stream {
                done_items(&resp.text().await.unwrap())
            } else {
                resp.json::<Value>().await.unwrap()["output"]
                    .as_array()
                    .unwrap()
                    .clone()
            };
            let call = items
                .iter()
                .find(|i| i["type"] == "custom_tool_call")
                .unwrap_or_else(|| panic!("{what}: {items:?}"));
            assert_eq!(call["name"], "apply_patch", "{what}");
            assert_eq!(call["input"], patch, "{what}: the raw input, unwrapped");
            assert!(call.get("arguments").is_none(), "{what}: {call}");
        }
    }
    let chat = last_at(&mock, "/v1/chat/completions").body;
    let tool = &chat["tools"][0]["function"];
    assert_eq!(tool["name"], "apply_patch");
    assert_eq!(
        tool["parameters"]["properties"]["input"]["type"], "string",
        "{tool}"
    );
    assert!(
        tool["description"]
            .as_str()
            .unwrap()
            .contains("start: begin_patch"),
        "the grammar is told to the model: {tool}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_calls_are_separate_whole_items_on_every_backend() {
    let mock = mock_with(thinking_sim(), Faults::default()).await;
    let app = spawn_app(backends(&mock, "")).await;
    let other = json!({"type": "function", "name": "other",
                       "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}});
    for b in Backend::ALL {
        for stream in [false, true] {
            let what = format!("{b:?} stream={stream}");
            let mut body = request(b.model(), stream);
            body["tools"] = json!([lookup_tool(), other]);
            body["tool_choice"] = json!("required");
            let resp = app.responses(&body).await;
            assert_eq!(resp.status(), 200, "{what}");
            let (answer, done) = if stream {
                let text = resp.text().await.unwrap();
                (
                    streams::terminal(&text)["response"].clone(),
                    done_items(&text),
                )
            } else {
                let answer: Value = resp.json().await.unwrap();
                let items = answer["output"].as_array().unwrap().clone();
                (answer, items)
            };
            assert_eq!(done, *answer["output"].as_array().unwrap(), "{what}");
            let calls = items_of(&answer, "function_call");
            let names: Vec<&str> = calls.iter().map(|c| c["name"].as_str().unwrap()).collect();
            assert_eq!(names, ["lookup", "other"], "{what}: {answer}");
            let ids: Vec<&str> = calls
                .iter()
                .map(|c| c["call_id"].as_str().unwrap())
                .collect();
            assert_ne!(ids[0], ids[1], "{what}");
            for c in &calls {
                assert_eq!(c["status"], "completed", "{what}: {c}");
                let args: Value = serde_json::from_str(c["arguments"].as_str().unwrap())
                    .unwrap_or_else(|e| panic!("{what}: {e}: {c}"));
                assert!(args["query"].is_string(), "{what}: {c}");
            }
        }
    }
}

/// Turn 2 of a tool call: the history with turn 1's output and the result.
fn with_result(turn1: &Value, output: &[Value], result: &str) -> Value {
    let mut body = turn1.clone();
    let call = output
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap_or_else(|| panic!("turn 1 called no tool: {output:?}"));
    let input = body["input"].as_array_mut().unwrap();
    input.extend(output.iter().cloned());
    input.push(
        json!({"type": "function_call_output", "call_id": call["call_id"], "output": result}),
    );
    body["stream"] = json!(false);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reasoning_makes_the_round_trip_back_to_the_model_that_produced_it() {
    let sim = thinking_sim();
    let mock = mock_with(sim, Faults::default()).await;
    let app = spawn_app(backends(&mock, "")).await;
    for b in Backend::ALL {
        // Turn 1, streamed as Codex streams: the model thinks, then calls.
        let mut turn1 = request(b.model(), true);
        turn1["tools"] = json!([lookup_tool()]);
        turn1["include"] = json!(["reasoning.encrypted_content"]);
        turn1["input"][0]["content"][0]["text"] =
            json!(directive("lookup", &json!({"query": "apples"})));
        let resp = app.responses(&turn1).await;
        assert_eq!(resp.status(), 200, "{b:?}");
        let output = done_items(&resp.text().await.unwrap());
        let kinds: Vec<&str> = output.iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["reasoning", "function_call"], "{b:?}: {output:?}");
        let encrypted = output[0]["encrypted_content"].as_str().unwrap().to_owned();

        // Turn 2: the whole history back, with the tool's result.
        let turn2 = with_result(&turn1, &output, "42 apples in the basket");
        let resp = app.responses(&turn2).await;
        assert_eq!(resp.status(), 200, "{b:?}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(
            output_text(&answer),
            "tool result: 42 apples in the basket",
            "{b:?}: the result reached the model"
        );
        let sent = last_at(&mock, b.path()).body;
        match b {
            Backend::Anthropic => {
                let turns = sent["messages"].as_array().unwrap();
                let assistant = &turns[turns.len() - 2];
                assert_eq!(assistant["role"], "assistant", "{sent}");
                let blocks = assistant["content"].as_array().unwrap();
                assert_eq!(blocks[0]["type"], "thinking", "{sent}");
                assert_eq!(
                    blocks[0]["signature"], "mock-signature",
                    "the signature is Anthropic's own"
                );
                assert!(!blocks[0]["thinking"].as_str().unwrap().is_empty());
                assert_eq!(
                    blocks[1]["type"], "tool_use",
                    "thinking comes before the call"
                );
                assert_eq!(blocks[1]["id"], output[1]["call_id"]);
                assert_eq!(turns.last().unwrap()["content"][0]["type"], "tool_result");
            }
            Backend::Chat => {
                let messages = sent["messages"].as_array().unwrap();
                let assistant = &messages[messages.len() - 2];
                assert_eq!(assistant["role"], "assistant", "{sent}");
                let summary = output[0]["summary"][0]["text"].as_str().unwrap();
                assert_eq!(assistant["reasoning_content"], summary, "{sent}");
                assert_eq!(assistant["tool_calls"][0]["id"], output[1]["call_id"]);
                assert_eq!(messages.last().unwrap()["role"], "tool");
            }
            Backend::Pass => {
                let item = sent["input"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|i| i["type"] == "reasoning")
                    .unwrap()
                    .clone();
                assert_eq!(item["encrypted_content"], encrypted.as_str(), "unchanged");
            }
        }
    }
}
