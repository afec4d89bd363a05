//! The simulated model in OpenAI's format: chat completions, whole and
//! streamed, and embeddings.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::tools::{argument_pieces, forced_calls};
use super::{
    fnv1a, frame, model_of, now_secs, plan, text_of, usage_value, Frame, Plan, SimConfig,
    UsageShape,
};
use crate::estimate;

/// A non-streaming `chat.completion` answer.
pub fn chat_completion(request: &Value, cfg: &SimConfig) -> Value {
    let plan = plan(request, cfg);
    let tools = forced_calls(request, &plan);
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    if tools.is_empty() {
        message.insert("content".into(), json!(text_of(&plan.content)));
    } else {
        message.insert("content".into(), Value::Null);
    }
    if !plan.reasoning.is_empty() {
        message.insert("reasoning_content".into(), json!(text_of(&plan.reasoning)));
    }
    if !tools.is_empty() {
        let calls: Vec<Value> = tools
            .iter()
            .enumerate()
            .map(|(k, c)| json!({"id": format!("call_mock_{k}"), "type": "function", "function": {"name": c.name, "arguments": c.arguments()}}))
            .collect();
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let finish = if tools.is_empty() {
        plan.finish_reason
    } else {
        "tool_calls"
    };
    let mut body = json!({
        "id": format!("chatcmpl-mock-{:016x}", fnv1a(request.to_string().as_bytes())),
        "object": "chat.completion",
        "created": now_secs(),
        "model": model_of(request),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    });
    if let (Some(usage), Some(obj)) = (plan_usage(&plan, cfg), body.as_object_mut()) {
        obj.insert("usage".into(), usage);
    }
    body
}

/// The frames of a streamed answer, `data: [DONE]` last, with their pacing.
pub fn chat_frames(request: &Value, cfg: &SimConfig) -> Vec<Frame> {
    let plan = plan(request, cfg);
    let include_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let id = format!(
        "chatcmpl-mock-{:016x}",
        fnv1a(request.to_string().as_bytes())
    );
    let created = now_secs();
    let model = model_of(request);
    let shape = cfg.usage_shape;
    let per_token = if cfg.tokens_per_second > 0.0 {
        Duration::from_secs_f64(1.0 / cfg.tokens_per_second)
    } else {
        Duration::ZERO
    };
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        if include_usage && shape == UsageShape::OpenAi {
            if let Some(obj) = c.as_object_mut() {
                obj.insert("usage".into(), Value::Null);
            }
        }
        c
    };
    let mut frames = vec![frame(
        cfg.ttft,
        &chunk(json!({"role": "assistant", "content": ""}), None),
    )];
    let tools = forced_calls(request, &plan);
    let content = if tools.is_empty() {
        &plan.content[..]
    } else {
        &[]
    };
    let tokens = plan
        .reasoning
        .iter()
        .enumerate()
        .map(|(i, w)| ("reasoning_content", i, *w))
        .chain(
            content
                .iter()
                .enumerate()
                .map(|(i, w)| ("content", i, w.as_ref())),
        );
    for (key, i, word) in tokens {
        let piece = if i == 0 {
            word.to_owned()
        } else {
            format!(" {word}")
        };
        let mut delta = Map::new();
        if shape == UsageShape::MiniMax {
            // MiniMax was seen sending an empty role on content deltas.
            delta.insert("role".into(), json!(""));
        }
        delta.insert(key.into(), json!(piece));
        frames.push(frame(per_token, &chunk(Value::Object(delta), None)));
    }
    for (k, call) in tools.iter().enumerate() {
        frames.push(frame(
            per_token,
            &chunk(
                json!({"tool_calls": [{"index": k, "id": format!("call_mock_{k}"), "type": "function", "function": {"name": call.name, "arguments": ""}}]}),
                None,
            ),
        ));
        let args = call.arguments();
        for part in argument_pieces(&args) {
            frames.push(frame(
                per_token,
                &chunk(
                    json!({"tool_calls": [{"index": k, "function": {"arguments": part}}]}),
                    None,
                ),
            ));
        }
    }
    let finish = if tools.is_empty() {
        plan.finish_reason
    } else {
        "tool_calls"
    };
    let usage = plan_usage(&plan, cfg);
    let mut last = chunk(json!({}), Some(finish));
    match (shape, usage) {
        (UsageShape::Kimi, Some(u)) => {
            if let Some(choice) = last
                .pointer_mut("/choices/0")
                .and_then(Value::as_object_mut)
            {
                choice.insert("usage".into(), u);
            }
            frames.push(frame(Duration::ZERO, &last));
        }
        (UsageShape::Glm, Some(u)) if include_usage => {
            if let Some(obj) = last.as_object_mut() {
                obj.insert("usage".into(), u);
            }
            frames.push(frame(Duration::ZERO, &last));
        }
        (_, Some(u)) if include_usage => {
            frames.push(frame(Duration::ZERO, &last));
            let mut tail = json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [],
            });
            if let Some(obj) = tail.as_object_mut() {
                obj.insert("usage".into(), u);
            }
            frames.push(frame(Duration::ZERO, &tail));
        }
        _ => frames.push(frame(Duration::ZERO, &last)),
    }
    frames.push(Frame {
        delay: Duration::ZERO,
        bytes: Bytes::from_static(b"data: [DONE]\n\n"),
    });
    frames
}

fn embedding(text_seed: u64, dims: usize) -> Vec<f32> {
    let raw: Vec<f32> = (0..dims)
        .map(|i| {
            let h = text_seed.wrapping_add((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            ((h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    raw.into_iter().map(|x| x / norm).collect()
}

/// An embeddings answer: one deterministic unit vector per input, as floats or
/// base64 little-endian `f32`s (`encoding_format`).
pub fn embeddings(request: &Value, cfg: &SimConfig) -> Value {
    let dims = request
        .get("dimensions")
        .and_then(Value::as_u64)
        .map(|d| d as usize)
        .unwrap_or(cfg.embedding_dims)
        .clamp(1, 8192);
    let base64 = request.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let inputs: Vec<String> = match request.get("input") {
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            vec![Value::Array(items.clone()).to_string()]
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => vec![],
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let v = embedding(fnv1a(text.as_bytes()), dims);
            let emb = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": emb})
        })
        .collect();
    let prompt = estimate::embeddings_input(request);
    let mut body = json!({"object": "list", "data": data, "model": model_of(request)});
    if cfg.usage_shape != UsageShape::None {
        if let Some(obj) = body.as_object_mut() {
            obj.insert(
                "usage".into(),
                json!({"prompt_tokens": prompt, "total_tokens": prompt}),
            );
        }
    }
    body
}

pub(crate) fn plan_usage(plan: &Plan, cfg: &SimConfig) -> Option<Value> {
    usage_value(
        cfg.usage_shape,
        plan.prompt_tokens,
        plan.cached_tokens,
        plan.completion_tokens(),
        plan.reasoning.len() as u64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage;

    fn req(extra: Value) -> Value {
        let mut r = json!({"model": "m", "messages": [{"role": "user", "content": "hello there"}]});
        if let (Some(o), Value::Object(e)) = (r.as_object_mut(), extra) {
            o.extend(e);
        }
        r
    }

    fn stream_usage(frames: &[Frame]) -> Option<usage::Usage> {
        frames
            .iter()
            .filter_map(|f| {
                let s = std::str::from_utf8(&f.bytes)
                    .ok()?
                    .strip_prefix("data: ")?
                    .trim();
                serde_json::from_str::<Value>(s).ok()
            })
            .filter_map(|v| usage::from_openai_body(&v))
            .last()
    }

    #[test]
    fn answers_are_deterministic_and_capped_by_max_tokens() {
        let cfg = SimConfig {
            output_tokens: 10,
            ..Default::default()
        };
        assert_eq!(plan(&req(json!({})), &cfg), plan(&req(json!({})), &cfg));
        let p = plan(&req(json!({"max_tokens": 4})), &cfg);
        assert_eq!((p.content.len(), p.finish_reason), (4, "length"));
        let p = plan(&req(json!({})), &cfg);
        assert_eq!((p.content.len(), p.finish_reason), (10, "stop"));
    }

    #[test]
    fn every_shape_streams_usage_the_normalizer_reads_back() {
        let cfg = |shape| SimConfig {
            output_tokens: 5,
            reasoning_tokens: 2,
            cached_tokens: 3,
            usage_shape: shape,
            ttft: Duration::ZERO,
            ..Default::default()
        };
        let r = req(json!({"stream": true, "stream_options": {"include_usage": true}}));
        for shape in UsageShape::ALL {
            let got = stream_usage(&chat_frames(&r, &cfg(shape)));
            if shape == UsageShape::None {
                assert_eq!(got, None);
                continue;
            }
            let p = plan(&r, &cfg(shape));
            let u = got.unwrap_or_else(|| panic!("{shape:?} streamed no usage"));
            assert_eq!(u.prompt_total(), p.prompt_tokens, "{shape:?}");
            assert_eq!(u.cached_input, 3, "{shape:?}");
            assert_eq!(u.output, 5, "{shape:?}");
            if shape != UsageShape::Kimi {
                assert_eq!(u.reasoning, 2, "{shape:?}");
            }
        }
    }

    #[test]
    fn usage_is_streamed_only_when_asked_except_by_kimi() {
        let r = req(json!({"stream": true}));
        for shape in UsageShape::ALL {
            let cfg = SimConfig {
                usage_shape: shape,
                ..Default::default()
            };
            let got = stream_usage(&chat_frames(&r, &cfg));
            assert_eq!(got.is_some(), shape == UsageShape::Kimi, "{shape:?}");
        }
    }

    #[test]
    fn embeddings_are_unit_vectors_in_either_encoding() {
        let cfg = SimConfig::default();
        let body = embeddings(
            &json!({"model": "e", "input": ["a", "b"], "dimensions": 8}),
            &cfg,
        );
        let v: Vec<f64> = serde_json::from_value(body["data"][0]["embedding"].clone()).unwrap();
        assert_eq!(v.len(), 8);
        assert!((v.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-4);
        let b = embeddings(
            &json!({"model": "e", "input": "a", "encoding_format": "base64"}),
            &cfg,
        );
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        assert_eq!(raw.len(), 16 * 4);
        assert_eq!(body["usage"]["prompt_tokens"], 2);
    }
}
