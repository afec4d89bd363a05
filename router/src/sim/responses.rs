//! The simulated model speaking OpenAI's Responses API, as OpenAI and
//! recent vLLM serve it: whole Response objects, and streams in OpenAI's
//! event order with sequence numbers, reasoning items (with an opaque
//! `encrypted_content`), function and freeform tool calls, and usage on the
//! terminal event.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use super::tools::{argument_pieces, forced_calls, Call};
use super::{fnv1a, model_of, now_secs, plan_with, text_of, Frame, Plan, SimConfig};
use crate::estimate;

/// Plans the answer to a Responses request.
pub fn plan(request: &Value, cfg: &SimConfig) -> Plan {
    let prompt = request
        .as_object()
        .map(estimate::responses_prompt_of)
        .unwrap_or(0);
    plan_with(request, cfg, prompt)
}

fn id(request: &Value) -> String {
    format!("{:016x}", fnv1a(request.to_string().as_bytes()))
}

fn usage(plan: &Plan) -> Value {
    json!({
        "input_tokens": plan.prompt_tokens,
        "input_tokens_details": {"cached_tokens": plan.cached_tokens},
        "output_tokens": plan.completion_tokens(),
        "output_tokens_details": {"reasoning_tokens": plan.reasoning.len()},
        "total_tokens": plan.prompt_tokens + plan.completion_tokens(),
    })
}

/// The output items of an answer, complete.
fn items(request: &Value, plan: &Plan, calls: &[Call]) -> Vec<Value> {
    let id = id(request);
    let mut out = Vec::new();
    if !plan.reasoning.is_empty() {
        out.push(json!({
            "id": format!("rs_mock_{id}"), "type": "reasoning",
            "summary": [{"type": "summary_text", "text": text_of(&plan.reasoning)}],
            "encrypted_content": format!("mock-encrypted-{id}"),
        }));
    }
    for (k, c) in calls.iter().enumerate() {
        out.push(if c.custom {
            json!({"id": format!("ctc_mock_{k}"), "type": "custom_tool_call", "status": "completed",
                   "call_id": format!("call_mock_{k}"), "name": c.name, "input": c.arguments()})
        } else {
            json!({"id": format!("fc_mock_{k}"), "type": "function_call", "status": "completed",
                   "call_id": format!("call_mock_{k}"), "name": c.name, "arguments": c.arguments()})
        });
    }
    if calls.is_empty() {
        let status = if plan.finish_reason == "length" {
            "incomplete"
        } else {
            "completed"
        };
        out.push(json!({
            "id": format!("msg_mock_{id}"), "type": "message", "role": "assistant", "status": status,
            "content": [{"type": "output_text", "text": text_of(&plan.content), "annotations": [], "logprobs": []}],
        }));
    }
    out
}

/// The Response object, `status` and `output` as given.
fn response(request: &Value, plan: &Plan, status: &str, output: Vec<Value>, done: bool) -> Value {
    let incomplete = (done && plan.finish_reason == "length" && status == "incomplete")
        .then(|| json!({"reason": "max_output_tokens"}));
    json!({
        "id": format!("resp_mock_{}", id(request)),
        "object": "response",
        "created_at": now_secs(),
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": request.get("instructions").cloned().unwrap_or(Value::Null),
        "max_output_tokens": request.get("max_output_tokens").cloned().unwrap_or(Value::Null),
        "model": model_of(request),
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls").cloned().unwrap_or(json!(true)),
        "reasoning": request.get("reasoning").cloned().unwrap_or(Value::Null),
        "store": request.get("store").cloned().unwrap_or(json!(false)),
        "temperature": request.get("temperature").cloned().unwrap_or(json!(1.0)),
        "text": request.get("text").cloned().unwrap_or(json!({"format": {"type": "text"}})),
        "tool_choice": request.get("tool_choice").cloned().unwrap_or(json!("auto")),
        "tools": request.get("tools").cloned().unwrap_or(json!([])),
        "top_p": request.get("top_p").cloned().unwrap_or(json!(1.0)),
        "usage": if done { usage(plan) } else { Value::Null },
        "metadata": {},
    })
}

fn final_status(plan: &Plan, calls: &[Call]) -> &'static str {
    if calls.is_empty() && plan.finish_reason == "length" {
        "incomplete"
    } else {
        "completed"
    }
}

/// A whole (non-streamed) Response.
pub fn whole(request: &Value, cfg: &SimConfig) -> Value {
    let plan = plan(request, cfg);
    let calls = forced_calls(request, &plan);
    let output = items(request, &plan, &calls);
    response(request, &plan, final_status(&plan, &calls), output, true)
}

/// Builds events with rising sequence numbers.
struct Events {
    out: Vec<Frame>,
    sequence: u64,
}

impl Events {
    fn push(&mut self, delay: Duration, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        self.out.push(Frame {
            delay,
            bytes: Bytes::from(format!("event: {kind}\ndata: {data}\n\n")),
        });
    }
}

fn piece(i: usize, w: &str) -> String {
    if i == 0 {
        w.to_owned()
    } else {
        format!(" {w}")
    }
}

/// The events of a streamed Response, `response.completed` (or
/// `response.incomplete`) last.
pub fn frames(request: &Value, cfg: &SimConfig) -> Vec<Frame> {
    let plan = plan(request, cfg);
    let calls = forced_calls(request, &plan);
    let done_items = items(request, &plan, &calls);
    let per_token = if cfg.tokens_per_second > 0.0 {
        Duration::from_secs_f64(1.0 / cfg.tokens_per_second)
    } else {
        Duration::ZERO
    };
    let mut ev = Events {
        out: Vec::new(),
        sequence: 0,
    };
    let zero = Duration::ZERO;
    let pending = response(request, &plan, "in_progress", Vec::new(), false);
    ev.push(cfg.ttft, "response.created", json!({"response": pending}));
    ev.push(zero, "response.in_progress", json!({"response": pending}));
    for (n, item) in done_items.iter().enumerate() {
        let item_id = item["id"].clone();
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        match item["type"].as_str().unwrap_or("") {
            "reasoning" => {
                added["summary"] = json!([]);
                ev.push(
                    zero,
                    "response.output_item.added",
                    json!({"output_index": n, "item": added}),
                );
                let part = json!({"type": "summary_text", "text": ""});
                ev.push(zero, "response.reasoning_summary_part.added", json!({"item_id": item_id, "output_index": n, "summary_index": 0, "part": part}));
                for (i, w) in plan.reasoning.iter().enumerate() {
                    ev.push(per_token, "response.reasoning_summary_text.delta", json!({"item_id": item_id, "output_index": n, "summary_index": 0, "delta": piece(i, w)}));
                }
                let text = text_of(&plan.reasoning);
                ev.push(zero, "response.reasoning_summary_text.done", json!({"item_id": item_id, "output_index": n, "summary_index": 0, "text": text}));
                ev.push(zero, "response.reasoning_summary_part.done", json!({"item_id": item_id, "output_index": n, "summary_index": 0, "part": {"type": "summary_text", "text": text}}));
            }
            "message" => {
                added["content"] = json!([]);
                ev.push(
                    zero,
                    "response.output_item.added",
                    json!({"output_index": n, "item": added}),
                );
                let empty =
                    json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
                ev.push(zero, "response.content_part.added", json!({"item_id": item_id, "output_index": n, "content_index": 0, "part": empty}));
                for (i, w) in plan.content.iter().enumerate() {
                    ev.push(per_token, "response.output_text.delta", json!({"item_id": item_id, "output_index": n, "content_index": 0, "delta": piece(i, w), "logprobs": []}));
                }
                let text = text_of(&plan.content);
                ev.push(zero, "response.output_text.done", json!({"item_id": item_id, "output_index": n, "content_index": 0, "text": text, "logprobs": []}));
                ev.push(zero, "response.content_part.done", json!({"item_id": item_id, "output_index": n, "content_index": 0, "part": item["content"][0]}));
            }
            kind => {
                let custom = kind == "custom_tool_call";
                let (field, delta_kind, done_kind) = if custom {
                    (
                        "input",
                        "response.custom_tool_call_input.delta",
                        "response.custom_tool_call_input.done",
                    )
                } else {
                    (
                        "arguments",
                        "response.function_call_arguments.delta",
                        "response.function_call_arguments.done",
                    )
                };
                let whole = item[field].as_str().unwrap_or("").to_owned();
                added[field] = json!("");
                ev.push(
                    zero,
                    "response.output_item.added",
                    json!({"output_index": n, "item": added}),
                );
                for part in argument_pieces(&whole) {
                    ev.push(
                        per_token,
                        delta_kind,
                        json!({"item_id": item_id, "output_index": n, "delta": part}),
                    );
                }
                ev.push(
                    zero,
                    done_kind,
                    json!({"item_id": item_id, "output_index": n, field: whole}),
                );
            }
        }
        ev.push(
            zero,
            "response.output_item.done",
            json!({"output_index": n, "item": item}),
        );
    }
    let status = final_status(&plan, &calls);
    let terminal = if status == "incomplete" {
        "response.incomplete"
    } else {
        "response.completed"
    };
    let done = response(request, &plan, status, done_items, true);
    ev.push(zero, terminal, json!({"response": done}));
    ev.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage;

    fn events(frames: &[Frame]) -> Vec<Value> {
        frames
            .iter()
            .map(|f| {
                let text = std::str::from_utf8(&f.bytes).unwrap();
                let data = text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
                serde_json::from_str(data).unwrap()
            })
            .collect()
    }

    #[test]
    fn streams_follow_openais_event_order_with_usage_on_the_terminal_event() {
        let cfg = SimConfig {
            output_tokens: 5,
            reasoning_tokens: 2,
            cached_tokens: 1,
            ..Default::default()
        };
        let r = json!({"model": "m", "input": "hello there", "stream": true});
        let evs = events(&frames(&r, &cfg));
        let kinds: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds[..3],
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added"
            ]
        );
        assert_eq!(*kinds.last().unwrap(), "response.completed");
        for (n, e) in evs.iter().enumerate() {
            assert_eq!(e["sequence_number"], n as u64);
        }
        let done = &evs.last().unwrap()["response"];
        assert_eq!(done["output"][0]["type"], "reasoning");
        assert_eq!(done["output"][1]["type"], "message");
        let text: String = evs
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(done["output"][1]["content"][0]["text"], text);
        let u = usage::from_openai(&json!({
            "prompt_tokens": done["usage"]["input_tokens"],
            "completion_tokens": done["usage"]["output_tokens"],
            "prompt_tokens_details": done["usage"]["input_tokens_details"],
        }))
        .unwrap();
        assert_eq!((u.cached_input, u.output), (1, 5));
    }

    #[test]
    fn a_forced_call_and_a_cut_answer() {
        let cfg = SimConfig {
            output_tokens: 50,
            ..Default::default()
        };
        let r = json!({"model": "m", "input": "hi", "tools": [{"type": "function", "name": "lookup", "parameters": {}}], "tool_choice": "required"});
        let w = whole(&r, &cfg);
        assert_eq!(w["output"][0]["type"], "function_call");
        assert_eq!(w["status"], "completed");
        let cut = whole(
            &json!({"model": "m", "input": "hi", "max_output_tokens": 3}),
            &cfg,
        );
        assert_eq!(cut["status"], "incomplete");
        assert_eq!(cut["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(cut["usage"]["output_tokens"], 3);
    }
}
