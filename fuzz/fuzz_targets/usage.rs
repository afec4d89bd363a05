//! Usage normalization (`router::usage` and the Responses shape): every
//! vendor shape parser on any JSON value. No panic; the normalized figures
//! keep their documented relations (reasoning within output, the prompt's
//! parts adding up to `prompt_tokens`), and a normalized usage written in
//! each vendor's shape reads back as itself.
//!
//! Input: a JSON value (a `usage` object, a body or a stream event).
#![no_main]

use libfuzzer_sys::fuzz_target;
use router::translate::{self, responses, AnthropicUsage};
use router::usage::{self, Usage};
use serde_json::Value;

/// Checks the relations every normalized usage keeps, and its round trips
/// through the three vendor shapes.
fn check(u: Usage) {
    assert!(u.reasoning <= u.output, "more reasoning than output: {u:?}");
    let _ = (u.total(), u.by_kind());
    // The round trips hold while the sums fit (they saturate otherwise).
    if u.input
        .checked_add(u.cached_input)
        .and_then(|p| p.checked_add(u.cache_write))
        .and_then(|p| p.checked_add(u.output))
        .is_none()
    {
        return;
    }
    // OpenAI's shape has no cache writes: they count as plain input.
    let via_openai = usage::from_openai(&translate::openai_usage(&u));
    let want = Usage {
        input: u.input + u.cache_write,
        cache_write: 0,
        ..u
    };
    assert_eq!(via_openai, Some(want), "OpenAI's shape changed {u:?}");
    // Anthropic's has no reasoning count.
    let via_anthropic = usage::from_anthropic(&translate::anthropic_usage(&u));
    assert_eq!(
        via_anthropic,
        Some(Usage { reasoning: 0, ..u }),
        "Anthropic's shape changed {u:?}"
    );
    let via_responses = responses::from_responses(&responses::usage_json(&u));
    assert_eq!(via_responses, Some(u), "the Responses shape changed {u:?}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Some(u) = usage::from_openai(&v) {
        check(u);
        if let Some(prompt) = v.get("prompt_tokens").and_then(Value::as_u64) {
            assert_eq!(u.prompt_total(), prompt, "the prompt's parts do not add up");
        }
    }
    if let Some(u) = usage::from_openai_body(&v) {
        check(u);
    }
    if let Some(u) = usage::from_anthropic(&v) {
        check(u);
    }
    for u in [
        responses::from_responses(&v),
        responses::usage_from_response(&v),
        responses::usage_from_response_event(&v),
    ]
    .into_iter()
    .flatten()
    {
        check(u);
    }
    // A stream's usage, folded in event by event.
    let mut folded = AnthropicUsage::default();
    for item in v.as_array().into_iter().flatten() {
        folded.merge(Some(item));
        if let Some(u) = folded.usage() {
            check(u);
        }
    }
});
