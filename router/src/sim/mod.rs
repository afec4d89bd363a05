//! A simulated model: deterministic text, paced streaming, tool calls on
//! demand, and real usage numbers in each vendor's usage shape, speaking
//! OpenAI's chat completions, Anthropic's Messages API and OpenAI's
//! Responses API. The in-process `mock` provider and the standalone mock
//! upstream (`loadtest mock`) both use it.
//!
//! # Layout
//! - this file: the configuration, the plan of an answer, SSE frames.
//! - `openai.rs`: chat completions (whole and streamed) and embeddings.
//! - [`anthropic`]: Messages answers and streams.
//! - [`responses`]: Responses objects and streams.
//! - `tools.rs`: which tools the model calls (forced, or by a
//!   `TOLLGATE_CALL` directive in the prompt).
//! - [`prefix`]: prefix caching, per session: the part of a prompt that
//!   repeats the session's previous one is reported as cached.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::Stream;
use serde_json::{json, Value};

use crate::estimate;

pub mod anthropic;
mod openai;
pub mod prefix;
pub mod responses;
mod tools;

pub use openai::{chat_completion, chat_frames, embeddings};
pub use prefix::{PrefixCache, PromptKind};
pub use tools::DIRECTIVE;

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
    /// How many prompt tokens are reported as cache hits (at least; see
    /// `prefix_cache`).
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
    /// Report the part of a prompt that repeats its session's previous
    /// prompt as cached (see [`prefix`]); the larger of that and
    /// `cached_tokens` is reported.
    pub prefix_cache: bool,
}

impl SimConfig {
    /// This config for one request whose prompt repeats `prefix` tokens of
    /// its session's previous one: cache hits are the larger of the fixed
    /// figure and the prefix (capped by the prompt, as always).
    pub fn with_prefix(&self, prefix: u64) -> Cow<'_, SimConfig> {
        let prefix = u32::try_from(prefix).unwrap_or(u32::MAX);
        if prefix <= self.cached_tokens {
            return Cow::Borrowed(self);
        }
        Cow::Owned(SimConfig {
            cached_tokens: prefix,
            ..self.clone()
        })
    }
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
            prefix_cache: false,
        }
    }
}

/// The words of simulated answers: each one token to Tollgate's tokenizer,
/// with or without a space before it, so the text of an answer counts to
/// the usage the simulator reports.
const VOCAB: [&str; 32] = [
    "the", "gate", "meters", "every", "token", "and", "routes", "each", "request", "to", "a",
    "cheap", "model", "that", "can", "serve", "it", "while", "budget", "hold", "under", "load",
    "streams", "flow", "through", "as", "they", "come", "with", "usage", "count", "right",
];

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
#[test]
fn every_word_is_one_token() {
    for w in VOCAB {
        assert_eq!(estimate::count_text(w), 1, "{w}");
        assert_eq!(estimate::count_text(&format!(" {w}")), 1, "{w}");
    }
}

/// The figures of one simulated answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    pub content: Vec<Cow<'static, str>>,
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

/// The seed of a request's answer: its conversation.
pub(crate) fn seed_of(request: &Value) -> u64 {
    fnv1a(
        request
            .get("messages")
            .or_else(|| request.get("input"))
            .map(|m| m.to_string())
            .unwrap_or_default()
            .as_bytes(),
    )
}

/// Plans an answer to a request whose prompt has `prompt_tokens` tokens.
/// After a directive's tool call came back, the answer quotes its result.
fn plan_with(request: &Value, cfg: &SimConfig, prompt_tokens: u64) -> Plan {
    let seed = seed_of(request);
    let cap = ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| request.get(*k).and_then(Value::as_u64))
        .filter(|_| !cfg.ignore_max_tokens)
        .unwrap_or(u64::MAX);
    let echo: Option<Vec<Cow<'static, str>>> = tools::echo(request).map(|text| {
        text.split_whitespace()
            .map(|w| Cow::Owned(w.to_owned()))
            .collect()
    });
    let wanted = echo.as_ref().map_or(u64::from(cfg.output_tokens), |e| {
        e.len() as u64 + u64::from(cfg.reasoning_tokens)
    });
    let total = wanted.min(cap) as usize;
    let reasoning = (cfg.reasoning_tokens as usize).min(total);
    let cached_tokens = u64::from(cfg.cached_tokens).min(prompt_tokens);
    let content = match echo {
        Some(mut e) => {
            e.truncate(total - reasoning);
            e
        }
        None => words(seed, reasoning, total - reasoning)
            .into_iter()
            .map(Cow::Borrowed)
            .collect(),
    };
    Plan {
        prompt_tokens,
        cached_tokens,
        cache_write_tokens: u64::from(cfg.cache_write_tokens).min(prompt_tokens - cached_tokens),
        reasoning: words(seed, 0, reasoning),
        content,
        finish_reason: if wanted > cap { "length" } else { "stop" },
    }
}

/// Words joined with spaces.
pub(crate) fn text_of<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(" ")
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

/// Seconds since the Unix epoch, as answers carry them.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn model_of(request: &Value) -> Value {
    request.get("model").cloned().unwrap_or(Value::Null)
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
