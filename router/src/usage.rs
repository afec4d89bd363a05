//! The normalized token `Usage` record and its extraction from every
//! OpenAI-compatible vendor's usage shape.
//!
//! Input categories are disjoint, so pricing is a plain sum:
//! `input` is prompt tokens billed at the full input price, `cached_input` are
//! cache reads, `cache_write` are cache-creation tokens. The prompt total is
//! `input + cached_input + cache_write`. `output` counts every completion token,
//! reasoning included; `reasoning` is the part of `output` spent thinking.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Tokens one request consumed, normalized across vendors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached prompt tokens (full input price).
    pub input: u64,
    /// Prompt tokens served from the vendor's prompt cache.
    pub cached_input: u64,
    /// Prompt tokens written to the vendor's prompt cache.
    pub cache_write: u64,
    /// Completion tokens, reasoning included.
    pub output: u64,
    /// The reasoning share of `output`.
    pub reasoning: u64,
}

impl Usage {
    /// All prompt-side tokens: what OpenAI calls `prompt_tokens`.
    pub fn prompt_total(&self) -> u64 {
        self.input
            .saturating_add(self.cached_input)
            .saturating_add(self.cache_write)
    }

    /// Prompt and completion tokens together.
    pub fn total(&self) -> u64 {
        self.prompt_total().saturating_add(self.output)
    }

    /// Each token kind with its metric label, in a fixed order.
    pub fn by_kind(&self) -> [(&'static str, u64); 5] {
        [
            ("input", self.input),
            ("cached_input", self.cached_input),
            ("cache_write", self.cache_write),
            ("output", self.output),
            ("reasoning", self.reasoning),
        ]
    }
}

/// Where a request's usage figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageSource {
    /// Reported by the upstream provider.
    Provider,
    /// Counted by Tollgate's tokenizer because the provider reported none
    /// (or the exchange ended before it could).
    Estimated,
}

fn num(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        _ => None,
    }
}

fn field<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(key))
}

/// Normalizes one OpenAI-style `usage` object.
///
/// Accepts every shape seen from OpenAI-compatible vendors:
/// `prompt_tokens_details.cached_tokens` (OpenAI, GLM, MiniMax), top-level
/// `cached_tokens` (Kimi), `prompt_cache_hit_tokens` / `prompt_cache_miss_tokens`
/// (DeepSeek), `cache_creation_input_tokens` anywhere a vendor puts it, and
/// `completion_tokens_details.reasoning_tokens`. `prompt_tokens` is taken to
/// include cached tokens, as every such vendor reports it; the uncached part
/// never goes negative. Returns `None` when the object carries no token counts.
pub fn from_openai(usage: &Value) -> Option<Usage> {
    if !usage.is_object() {
        return None;
    }
    let prompt = num(usage.get("prompt_tokens"));
    let completion = num(usage.get("completion_tokens"));
    let total = num(usage.get("total_tokens"));
    let cache_hit = num(usage.get("prompt_cache_hit_tokens"));
    let cache_miss = num(usage.get("prompt_cache_miss_tokens"));
    if prompt.is_none() && completion.is_none() && total.is_none() && cache_hit.is_none() {
        return None;
    }
    let cached = num(field(usage, &["prompt_tokens_details", "cached_tokens"]))
        .or_else(|| num(usage.get("cached_tokens")))
        .or(cache_hit)
        .unwrap_or(0);
    let cache_write = num(field(
        usage,
        &["prompt_tokens_details", "cache_creation_input_tokens"],
    ))
    .or_else(|| num(usage.get("cache_creation_input_tokens")))
    .or_else(|| {
        num(field(
            usage,
            &["prompt_tokens_details", "cache_write_tokens"],
        ))
    })
    .unwrap_or(0);
    let prompt = prompt
        .or_else(|| cache_hit.zip(cache_miss).map(|(h, m)| h.saturating_add(m)))
        .or_else(|| total.zip(completion).map(|(t, c)| t.saturating_sub(c)))
        .unwrap_or(0);
    // Never more cached or cache-written tokens than the prompt had.
    let cached = cached.min(prompt);
    let cache_write = cache_write.min(prompt - cached);
    let input = prompt - cached - cache_write;
    let output = completion
        .or_else(|| total.map(|t| t.saturating_sub(prompt)))
        .unwrap_or(0);
    let reasoning = num(field(
        usage,
        &["completion_tokens_details", "reasoning_tokens"],
    ))
    .or_else(|| num(usage.get("reasoning_tokens")))
    .unwrap_or(0)
    .min(output);
    Some(Usage {
        input,
        cached_input: cached,
        cache_write,
        output,
        reasoning,
    })
}

/// Finds and normalizes the usage carried by one response object or stream
/// chunk: `usage` at the top level, or inside `choices[0].usage` (Kimi's
/// streams). A `null` usage counts as none.
pub fn from_openai_body(body: &Value) -> Option<Usage> {
    body.get("usage").and_then(from_openai).or_else(|| {
        body.get("choices")?
            .as_array()?
            .iter()
            .find_map(|c| c.get("usage").and_then(from_openai))
    })
}

/// Normalizes an Anthropic Messages `usage` object. There `input_tokens`
/// already excludes cache reads (`cache_read_input_tokens`) and cache writes
/// (`cache_creation_input_tokens`, or the sum of `cache_creation`'s per-TTL
/// counts), so the three map onto the disjoint input kinds as they are.
/// Thinking tokens are part of `output_tokens`; Anthropic does not count them
/// apart. Returns `None` when the object carries no token counts.
pub fn from_anthropic(usage: &Value) -> Option<Usage> {
    if !usage.is_object() {
        return None;
    }
    let input = num(usage.get("input_tokens"));
    let output = num(usage.get("output_tokens"));
    let read = num(usage.get("cache_read_input_tokens"));
    let write = num(usage.get("cache_creation_input_tokens")).or_else(|| {
        let by_ttl = usage.get("cache_creation")?.as_object()?;
        Some(
            by_ttl
                .values()
                .filter_map(|v| num(Some(v)))
                .fold(0u64, u64::saturating_add),
        )
    });
    if input.is_none() && output.is_none() && read.is_none() && write.is_none() {
        return None;
    }
    Some(Usage {
        input: input.unwrap_or(0),
        cached_input: read.unwrap_or(0),
        cache_write: write.unwrap_or(0),
        output: output.unwrap_or(0),
        reasoning: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_cached_tokens_are_part_of_prompt_tokens() {
        let u = from_openai(&json!({
            "prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200,
            "prompt_tokens_details": {"cached_tokens": 800},
            "completion_tokens_details": {"reasoning_tokens": 50}
        }))
        .unwrap();
        assert_eq!(
            u,
            Usage {
                input: 200,
                cached_input: 800,
                cache_write: 0,
                output: 200,
                reasoning: 50
            }
        );
        assert_eq!(u.prompt_total(), 1000);
        assert_eq!(u.total(), 1200);
    }

    #[test]
    fn kimi_top_level_cached_tokens() {
        let u = from_openai(&json!({
            "prompt_tokens": 300, "completion_tokens": 10, "total_tokens": 310, "cached_tokens": 256
        }))
        .unwrap();
        assert_eq!((u.input, u.cached_input, u.output), (44, 256, 10));
    }

    #[test]
    fn kimi_stream_usage_inside_first_choice() {
        let chunk = json!({
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop",
                         "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25, "cached_tokens": 4}}]
        });
        let u = from_openai_body(&chunk).unwrap();
        assert_eq!((u.input, u.cached_input, u.output), (16, 4, 5));
    }

    #[test]
    fn deepseek_cache_hit_and_miss_sum_to_prompt() {
        let u = from_openai(&json!({
            "prompt_tokens": 500, "completion_tokens": 40, "total_tokens": 540,
            "prompt_cache_hit_tokens": 384, "prompt_cache_miss_tokens": 116,
            "completion_tokens_details": {"reasoning_tokens": 30}
        }))
        .unwrap();
        assert_eq!(
            u,
            Usage {
                input: 116,
                cached_input: 384,
                cache_write: 0,
                output: 40,
                reasoning: 30
            }
        );
    }

    #[test]
    fn deepseek_without_prompt_tokens_uses_hit_plus_miss() {
        let u = from_openai(&json!({
            "completion_tokens": 4, "prompt_cache_hit_tokens": 10, "prompt_cache_miss_tokens": 6
        }))
        .unwrap();
        assert_eq!((u.input, u.cached_input, u.output), (6, 10, 4));
    }

    #[test]
    fn cache_counts_larger_than_prompt_never_make_input_negative() {
        let u = from_openai(&json!({
            "prompt_tokens": 10, "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": 50, "cache_creation_input_tokens": 9}
        }))
        .unwrap();
        assert_eq!((u.input, u.cached_input, u.cache_write), (0, 10, 0));
    }

    #[test]
    fn cache_creation_tokens_are_split_out_of_the_prompt() {
        let u = from_openai(&json!({
            "prompt_tokens": 100, "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": 20},
            "cache_creation_input_tokens": 30
        }))
        .unwrap();
        assert_eq!((u.input, u.cached_input, u.cache_write), (50, 20, 30));
    }

    #[test]
    fn null_and_empty_usage_is_none() {
        assert_eq!(from_openai(&Value::Null), None);
        assert_eq!(from_openai(&json!({})), None);
        assert_eq!(
            from_openai_body(&json!({"usage": null, "choices": []})),
            None
        );
    }

    #[test]
    fn null_details_are_tolerated() {
        let u = from_openai(&json!({
            "prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
            "prompt_tokens_details": null, "completion_tokens_details": null
        }))
        .unwrap();
        assert_eq!(
            (u.input, u.cached_input, u.output, u.reasoning),
            (7, 0, 3, 0)
        );
    }

    #[test]
    fn embeddings_usage_has_no_completion_tokens() {
        let u = from_openai(&json!({"prompt_tokens": 12, "total_tokens": 12})).unwrap();
        assert_eq!((u.input, u.output), (12, 0));
    }

    #[test]
    fn absurd_numbers_saturate_instead_of_overflowing() {
        let u = from_openai(&json!({
            "completion_tokens": 1e20, "prompt_cache_hit_tokens": 1e20, "prompt_cache_miss_tokens": 1e20
        }))
        .unwrap();
        assert_eq!(u.prompt_total(), u64::MAX);
        assert_eq!(u.total(), u64::MAX);
    }

    #[test]
    fn anthropic_input_excludes_cache_so_kinds_map_directly() {
        let u = from_anthropic(&json!({
            "input_tokens": 12, "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 40000,
            "output_tokens": 250
        }))
        .unwrap();
        assert_eq!(
            u,
            Usage {
                input: 12,
                cached_input: 40000,
                cache_write: 3000,
                output: 250,
                reasoning: 0
            }
        );
        assert_eq!(
            u.prompt_total(),
            43012,
            "prompt = input + cache read + cache creation"
        );
    }

    #[test]
    fn anthropic_cache_creation_by_ttl_is_summed() {
        let u = from_anthropic(&json!({
            "input_tokens": 5, "output_tokens": 1,
            "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 20}
        }))
        .unwrap();
        assert_eq!(u.cache_write, 120);
        assert_eq!(
            from_anthropic(&json!({"output_tokens": 7})).unwrap().output,
            7
        );
        assert_eq!(from_anthropic(&json!({})), None);
        assert_eq!(from_anthropic(&Value::Null), None);
    }

    #[test]
    fn reasoning_never_exceeds_output() {
        let u = from_openai(&json!({
            "prompt_tokens": 1, "completion_tokens": 2,
            "completion_tokens_details": {"reasoning_tokens": 9}
        }))
        .unwrap();
        assert_eq!(u.reasoning, 2);
    }
}
