//! The simulated model speaking Anthropic's Messages API: whole answers and
//! streams in Anthropic's event order, with thinking blocks, tool use and
//! cache usage fields.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use super::tools::{argument_pieces, forced_calls, Call};
use super::{fnv1a, model_of, plan_with, text_of, Frame, Plan, SimConfig};
use crate::estimate;

/// Plans the answer to a Messages request.
pub fn plan(request: &Value, cfg: &SimConfig) -> Plan {
    plan_with(request, cfg, estimate::messages_prompt(request))
}

fn usage(plan: &Plan, output: u64) -> Value {
    let uncached = plan.prompt_tokens - plan.cached_tokens - plan.cache_write_tokens;
    json!({
        "input_tokens": uncached,
        "cache_creation_input_tokens": plan.cache_write_tokens,
        "cache_read_input_tokens": plan.cached_tokens,
        "output_tokens": output,
    })
}

fn stop_reason(plan: &Plan, tools: &[Call]) -> &'static str {
    match (tools.is_empty(), plan.finish_reason) {
        (false, _) => "tool_use",
        (true, "length") => "max_tokens",
        _ => "end_turn",
    }
}

fn message_id(request: &Value) -> String {
    format!("msg_mock_{:016x}", fnv1a(request.to_string().as_bytes()))
}

/// A non-streaming Messages answer.
pub fn message(request: &Value, cfg: &SimConfig) -> Value {
    let plan = plan(request, cfg);
    let tools = forced_calls(request, &plan);
    let mut content = Vec::new();
    if !plan.reasoning.is_empty() {
        content.push(json!({"type": "thinking", "thinking": text_of(&plan.reasoning), "signature": "mock-signature"}));
    }
    for (k, call) in tools.iter().enumerate() {
        content.push(json!({"type": "tool_use", "id": format!("toolu_mock_{}", k + 1), "name": call.name, "input": call.args}));
    }
    if tools.is_empty() {
        content.push(json!({"type": "text", "text": text_of(&plan.content)}));
    }
    json!({
        "id": message_id(request),
        "type": "message",
        "role": "assistant",
        "model": model_of(request),
        "content": content,
        "stop_reason": stop_reason(&plan, &tools),
        "stop_sequence": null,
        "usage": usage(&plan, plan.completion_tokens()),
    })
}

fn event(delay: Duration, name: &str, data: &Value) -> Frame {
    Frame {
        delay,
        bytes: Bytes::from(format!("event: {name}\ndata: {data}\n\n")),
    }
}

/// The events of a streamed Messages answer, in Anthropic's order:
/// `message_start`, a `ping`, each content block's start, deltas and stop,
/// `message_delta` with the stop reason and cumulative usage, `message_stop`.
pub fn frames(request: &Value, cfg: &SimConfig) -> Vec<Frame> {
    let plan = plan(request, cfg);
    let tools = forced_calls(request, &plan);
    let per_token = if cfg.tokens_per_second > 0.0 {
        Duration::from_secs_f64(1.0 / cfg.tokens_per_second)
    } else {
        Duration::ZERO
    };
    let start = json!({"type": "message_start", "message": {
        "id": message_id(request), "type": "message", "role": "assistant", "model": model_of(request),
        "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage(&plan, 1),
    }});
    let mut out = vec![
        event(cfg.ttft, "message_start", &start),
        event(Duration::ZERO, "ping", &json!({"type": "ping"})),
    ];
    let mut index = 0;
    let piece = |i: usize, w: &str| {
        if i == 0 {
            w.to_owned()
        } else {
            format!(" {w}")
        }
    };
    if !plan.reasoning.is_empty() {
        out.push(event(Duration::ZERO, "content_block_start", &json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": ""}})));
        for (i, w) in plan.reasoning.iter().enumerate() {
            out.push(event(per_token, "content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": piece(i, w)}})));
        }
        out.push(event(Duration::ZERO, "content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": "mock-signature"}})));
        out.push(event(
            Duration::ZERO,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    for (k, call) in tools.iter().enumerate() {
        let args = call.args.to_string();
        out.push(event(Duration::ZERO, "content_block_start", &json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": format!("toolu_mock_{}", k + 1), "name": call.name, "input": {}}})));
        // The arguments arrive as partial JSON, in three pieces.
        for part in argument_pieces(&args) {
            out.push(event(per_token, "content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": part}})));
        }
        out.push(event(
            Duration::ZERO,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    if tools.is_empty() {
        out.push(event(Duration::ZERO, "content_block_start", &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
        for (i, w) in plan.content.iter().enumerate() {
            out.push(event(per_token, "content_block_delta", &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece(i, w.as_ref())}})));
        }
        out.push(event(
            Duration::ZERO,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    out.push(event(
        Duration::ZERO,
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(&plan, &tools), "stop_sequence": null},
            "usage": {"output_tokens": plan.completion_tokens()},
        }),
    ));
    out.push(event(
        Duration::ZERO,
        "message_stop",
        &json!({"type": "message_stop"}),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage;

    fn req(extra: Value) -> Value {
        let mut r = json!({"model": "claude", "max_tokens": 100, "messages": [{"role": "user", "content": "hello there"}]});
        if let (Some(o), Value::Object(e)) = (r.as_object_mut(), extra) {
            o.extend(e);
        }
        r
    }

    fn events(frames: &[Frame]) -> Vec<(String, Value)> {
        frames
            .iter()
            .map(|f| {
                let text = std::str::from_utf8(&f.bytes).unwrap();
                let mut lines = text.lines();
                let name = lines
                    .next()
                    .unwrap()
                    .strip_prefix("event: ")
                    .unwrap()
                    .to_owned();
                let data =
                    serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap())
                        .unwrap();
                (name, data)
            })
            .collect()
    }

    #[test]
    fn streams_follow_anthropics_event_order_and_usage_adds_up() {
        let cfg = SimConfig {
            output_tokens: 6,
            reasoning_tokens: 2,
            cached_tokens: 3,
            cache_write_tokens: 4,
            ..Default::default()
        };
        let evs = events(&frames(&req(json!({})), &cfg));
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[..3], ["message_start", "ping", "content_block_start"]);
        assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
        assert_eq!(evs[2].1["content_block"]["type"], "thinking");
        assert!(evs
            .iter()
            .any(|(_, d)| d["delta"]["type"] == "signature_delta"));
        let start_usage = usage::from_anthropic(&evs[0].1["message"]["usage"]).unwrap();
        let p = plan(&req(json!({})), &cfg);
        assert_eq!(start_usage.prompt_total(), p.prompt_tokens);
        assert_eq!((start_usage.cached_input, start_usage.cache_write), (3, 4));
        let end = &evs[evs.len() - 2].1;
        assert_eq!(end["usage"]["output_tokens"], 6);
        assert_eq!(end["delta"]["stop_reason"], "end_turn");
        let text: String = evs
            .iter()
            .filter_map(|(_, d)| d["delta"]["text"].as_str())
            .collect();
        assert_eq!(text.split(' ').count(), 4);
    }

    #[test]
    fn a_forced_tool_is_called_with_partial_json_arguments() {
        let r = req(
            json!({"tools": [{"name": "search", "input_schema": {"type": "object"}}], "tool_choice": {"type": "any"}}),
        );
        let cfg = SimConfig {
            output_tokens: 5,
            ..Default::default()
        };
        let evs = events(&frames(&r, &cfg));
        let parts: String = evs
            .iter()
            .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
            .collect();
        let input: Value = serde_json::from_str(&parts).unwrap();
        assert_eq!(input["query"].as_str().unwrap().split(' ').count(), 5);
        assert!(evs
            .iter()
            .any(|(_, d)| d["content_block"]["type"] == "tool_use"
                && d["content_block"]["name"] == "search"));
        assert_eq!(evs[evs.len() - 2].1["delta"]["stop_reason"], "tool_use");
        let whole = message(&r, &cfg);
        assert_eq!(whole["content"][0]["type"], "tool_use");
        assert_eq!(whole["stop_reason"], "tool_use");
    }

    #[test]
    fn whole_answers_carry_cache_usage_and_stop_reasons() {
        let cfg = SimConfig {
            output_tokens: 50,
            cached_tokens: 2,
            ..Default::default()
        };
        let m = message(&req(json!({"max_tokens": 10})), &cfg);
        assert_eq!(m["stop_reason"], "max_tokens");
        let u = usage::from_anthropic(&m["usage"]).unwrap();
        assert_eq!((u.cached_input, u.output), (2, 10));
        assert_eq!(
            m["content"][0]["text"].as_str().unwrap().split(' ').count(),
            10
        );
    }
}
