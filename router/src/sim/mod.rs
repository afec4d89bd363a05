//! A simulated OpenAI-compatible model: deterministic text, paced streaming,
//! and real usage numbers in each vendor's usage shape. The in-process `mock`
//! provider and the standalone mock upstream (`loadtest mock`) both use it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::Stream;
use serde_json::{json, Map, Value};

use crate::estimate;

pub mod anthropic;

/// Whose usage shape the simulator imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageShape {
    /// OpenAI: `prompt_tokens_details.cached_tokens`; streamed usage on a
    /// trailing chunk with `choices: []` when `include_usage` is set.
    #[default]
    OpenAi,
    /// GLM: streamed usage on the chunk that carries `finish_reason`.
    Glm,
    /// Kimi: top-level `cached_tokens`; streamed usage inside `choices[0].usage`
    /// of the final chunk, sent whether asked for or not.
    Kimi,
    /// DeepSeek: `prompt_cache_hit_tokens` and `prompt_cache_miss_tokens`.
    DeepSeek,
    /// MiniMax: OpenAI-like, plus `total_characters` and `"role": ""` deltas.
    MiniMax,
    /// A vendor that reports no usage at all.
    None,
}

impl UsageShape {
    /// Every shape, for tests and flags.
    pub const ALL: [UsageShape; 6] = [
        Self::OpenAi,
        Self::Glm,
        Self::Kimi,
        Self::DeepSeek,
        Self::MiniMax,
        Self::None,
    ];

    /// Parses a shape name (`openai`, `glm`, `kimi`, `deepseek`, `minimax`, `none`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|shape| shape.name() == s)
    }

    /// The shape's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Glm => "glm",
            Self::Kimi => "kimi",
            Self::DeepSeek => "deepseek",
            Self::MiniMax => "minimax",
            Self::None => "none",
        }
    }
}

/// How the simulated model behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Delay before the response headers.
    pub latency: Duration,
    /// Delay after the headers before the first streamed token.
    pub ttft: Duration,
    /// Output pace; 0 means as fast as possible.
    pub tokens_per_second: f64,
    /// Completion tokens per answer (capped by the request's `max_tokens`).
    pub output_tokens: u32,
    /// How many of the completion tokens are reasoning (`reasoning_content`).
    pub reasoning_tokens: u32,
    /// How many prompt tokens are reported as cache hits.
    pub cached_tokens: u32,
    /// How many prompt tokens are reported as cache writes (Anthropic shape).
    pub cache_write_tokens: u32,
    /// The usage shape to imitate.
    pub usage_shape: UsageShape,
    /// Embedding vector length when the request names no `dimensions`.
    pub embedding_dims: usize,
    /// Answer `output_tokens` whatever the request's `max_tokens` says, as a
    /// vendor that does not honour it would.
    pub ignore_max_tokens: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            ttft: Duration::from_millis(50),
            tokens_per_second: 200.0,
            output_tokens: 32,
            reasoning_tokens: 0,
            cached_tokens: 0,
            cache_write_tokens: 0,
            usage_shape: UsageShape::OpenAi,
            embedding_dims: 16,
            ignore_max_tokens: false,
        }
    }
}

const VOCAB: [&str; 32] = [
    "the", "gate", "meters", "every", "token", "and", "routes", "each", "request", "to", "a",
    "cheaper", "model", "that", "can", "serve", "it", "while", "budgets", "hold", "under", "load",
    "streams", "flow", "through", "as", "they", "arrive", "with", "usage", "counted", "exactly",
];

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The figures of one simulated answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Prompt tokens, counted with Tollgate's tokenizer.
    pub prompt_tokens: u64,
    /// Of which cache hits.
    pub cached_tokens: u64,
    /// Of which cache writes.
    pub cache_write_tokens: u64,
    /// Reasoning tokens, one word each.
    pub reasoning: Vec<&'static str>,
    /// Answer tokens, one word each.
    pub content: Vec<&'static str>,
    /// `stop`, or `length` when `max_tokens` cut the answer.
    pub finish_reason: &'static str,
}

impl Plan {
    /// Completion tokens: reasoning plus answer.
    pub fn completion_tokens(&self) -> u64 {
        (self.reasoning.len() + self.content.len()) as u64
    }
}

pub(crate) fn words(seed: u64, offset: usize, n: usize) -> Vec<&'static str> {
    (0..n)
        .map(|i| {
            let h = seed.wrapping_add(((offset + i) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            VOCAB[(h % VOCAB.len() as u64) as usize]
        })
        .collect()
}

/// Plans the answer to a chat request: deterministic for a given request and config.
pub fn plan(request: &Value, cfg: &SimConfig) -> Plan {
    plan_with(request, cfg, estimate::chat_prompt(request))
}

/// Plans an answer to a request whose prompt has `prompt_tokens` tokens.
fn plan_with(request: &Value, cfg: &SimConfig, prompt_tokens: u64) -> Plan {
    let seed = fnv1a(
        request
            .get("messages")
            .map(|m| m.to_string())
            .unwrap_or_default()
            .as_bytes(),
    );
    let cap = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| request.get(*k).and_then(Value::as_u64))
        .filter(|_| !cfg.ignore_max_tokens)
        .unwrap_or(u64::MAX);
    let wanted = u64::from(cfg.output_tokens);
    let total = wanted.min(cap) as usize;
    let reasoning = (cfg.reasoning_tokens as usize).min(total);
    let cached_tokens = u64::from(cfg.cached_tokens).min(prompt_tokens);
    Plan {
        prompt_tokens,
        cached_tokens,
        cache_write_tokens: u64::from(cfg.cache_write_tokens).min(prompt_tokens - cached_tokens),
        reasoning: words(seed, 0, reasoning),
        content: words(seed, reasoning, total - reasoning),
        finish_reason: if wanted > cap { "length" } else { "stop" },
    }
}

pub(crate) fn text_of(words: &[&str]) -> String {
    words.join(" ")
}

/// The usage object in the given vendor shape; `None` for [`UsageShape::None`].
pub fn usage_value(
    shape: UsageShape,
    prompt: u64,
    cached: u64,
    completion: u64,
    reasoning: u64,
) -> Option<Value> {
    let total = prompt + completion;
    match shape {
        UsageShape::OpenAi | UsageShape::Glm => Some(json!({
            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning}
        })),
        UsageShape::MiniMax => Some(json!({
            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total,
            "total_characters": 0,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning}
        })),
        UsageShape::Kimi => Some(json!({
            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total,
            "cached_tokens": cached
        })),
        UsageShape::DeepSeek => Some(json!({
            "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total,
            "prompt_cache_hit_tokens": cached, "prompt_cache_miss_tokens": prompt - cached,
            "completion_tokens_details": {"reasoning_tokens": reasoning}
        })),
        UsageShape::None => None,
    }
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn model_of(request: &Value) -> Value {
    request.get("model").cloned().unwrap_or(Value::Null)
}

/// The tools a request makes the model call, by name, in either format:
/// OpenAI's `tool_choice` `required` or a named function, Anthropic's `any`
/// or a named `tool`. `required`/`any` call every tool at once unless
/// parallel calls are off (`parallel_tool_calls: false`,
/// `disable_parallel_tool_use: true`). Once the last turn carries tool
/// results, the model answers in text.
pub(crate) fn forced_tools(request: &Value) -> Vec<String> {
    let Some(tools) = request.get("tools").and_then(Value::as_array) else {
        return Vec::new();
    };
    let last = request
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last());
    let answered = last.is_some_and(|m| {
        m.get("role").and_then(Value::as_str) == Some("tool")
            || m.get("content").and_then(Value::as_array).is_some_and(|b| {
                b.iter()
                    .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            })
    });
    if answered {
        return Vec::new();
    }
    let names: Vec<String> = tools
        .iter()
        .filter_map(|t| {
            t.pointer("/function/name")
                .or_else(|| t.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    let choice = request.get("tool_choice").unwrap_or(&Value::Null);
    let single = request.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false)
        || choice
            .get("disable_parallel_tool_use")
            .and_then(Value::as_bool)
            == Some(true);
    let named = choice
        .pointer("/function/name")
        .or_else(|| choice.get("name"))
        .and_then(Value::as_str);
    let all = choice.as_str() == Some("required")
        || choice.get("type").and_then(Value::as_str) == Some("any");
    match (named, all) {
        (Some(name), _) => vec![name.to_owned()],
        (None, true) if single => names.into_iter().take(1).collect(),
        (None, true) => names,
        _ => Vec::new(),
    }
}

/// A tool call's input: the answer's words as one string argument.
pub(crate) fn tool_input(plan: &Plan) -> Value {
    json!({"query": text_of(&plan.content)})
}

/// A tool call's arguments cut in three pieces, as streams send them.
pub(crate) fn argument_pieces(args: &str) -> Vec<&str> {
    let n = args.len();
    let cuts = [0, n / 3, 2 * n / 3, n];
    cuts.windows(2)
        .map(|w| args.get(w[0]..w[1]).unwrap_or_default())
        .collect()
}

fn plan_usage(plan: &Plan, cfg: &SimConfig) -> Option<Value> {
    usage_value(
        cfg.usage_shape,
        plan.prompt_tokens,
        plan.cached_tokens,
        plan.completion_tokens(),
        plan.reasoning.len() as u64,
    )
}

/// A non-streaming `chat.completion` answer.
pub fn chat_completion(request: &Value, cfg: &SimConfig) -> Value {
    let plan = plan(request, cfg);
    let tools = forced_tools(request);
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
        let args = tool_input(&plan).to_string();
        let calls: Vec<Value> = tools
            .iter()
            .enumerate()
            .map(|(k, name)| json!({"id": format!("call_mock_{k}"), "type": "function", "function": {"name": name, "arguments": args}}))
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

/// One SSE frame and the pause before it.
#[derive(Debug, Clone)]
pub struct Frame {
    /// How long to wait before sending this frame.
    pub delay: Duration,
    /// The frame, `data: ...\n\n`.
    pub bytes: Bytes,
}

pub(crate) fn frame(delay: Duration, data: &Value) -> Frame {
    Frame {
        delay,
        bytes: Bytes::from(format!("data: {data}\n\n")),
    }
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
    let tools = forced_tools(request);
    let content: &[&str] = if tools.is_empty() { &plan.content } else { &[] };
    let tokens = plan
        .reasoning
        .iter()
        .enumerate()
        .map(|(i, w)| ("reasoning_content", i, *w))
        .chain(content.iter().enumerate().map(|(i, w)| ("content", i, *w)));
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
    let args = tool_input(&plan).to_string();
    for (k, name) in tools.iter().enumerate() {
        frames.push(frame(
            per_token,
            &chunk(
                json!({"tool_calls": [{"index": k, "id": format!("call_mock_{k}"), "type": "function", "function": {"name": name, "arguments": ""}}]}),
                None,
            ),
        ));
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

/// Plays frames with their pacing.
pub fn play(frames: Vec<Frame>) -> impl Stream<Item = Bytes> + Send + 'static {
    futures_util::stream::unfold(frames.into_iter(), |mut it| async move {
        let f = it.next()?;
        if !f.delay.is_zero() {
            tokio::time::sleep(f.delay).await;
        }
        Some((f.bytes, it))
    })
}

/// How long a non-streaming answer takes to generate after the headers delay.
pub fn generation_time(request: &Value, cfg: &SimConfig) -> Duration {
    let plan = plan(request, cfg);
    let pace = if cfg.tokens_per_second > 0.0 {
        Duration::from_secs_f64(plan.completion_tokens() as f64 / cfg.tokens_per_second)
    } else {
        Duration::ZERO
    };
    cfg.ttft + pace
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
