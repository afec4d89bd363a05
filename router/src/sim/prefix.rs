//! Prefix caching, simulated: per session and per mock instance, the model
//! remembers the previous prompt, and reports as cached the part of this
//! prompt that repeats it, so an agent's growing context shows cache hits
//! end to end.
//!
//! A prompt is a sequence of segments in the order a provider's cache sees
//! them: the tool definitions, the system prompt (`system`, `instructions`),
//! then each message or input item. Each is counted with the tokenizer the
//! way the prompt's own estimate counts it. The cached figure is the tokens
//! of the leading segments equal to the previous prompt's: caching is at
//! message granularity, as an agent's turns append whole messages.
//!
//! The session is [`crate::session::extract`]'s, or, when a request carries
//! none, a hash of its prompt up to and including its first message. It is
//! kept per model. Memory is bounded: at most [`MAX_SEGMENTS`] segments are
//! remembered over all sessions, least recently used sessions going first.

use std::sync::Arc;

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::fnv1a;
use crate::estimate;

/// The most segments remembered over all sessions (16 bytes each).
pub const MAX_SEGMENTS: u64 = 1 << 20;

/// The body shape of a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    /// OpenAI chat completions: `tools`, `messages`.
    Chat,
    /// Anthropic Messages: `tools`, `system`, `messages`.
    Messages,
    /// OpenAI Responses: `tools`, `instructions`, `input`.
    Responses,
}

/// One part of a prompt: a hash of its JSON and its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    hash: u64,
    tokens: u64,
}

fn segment(v: &Value, tokens: u64) -> Segment {
    Segment {
        hash: fnv1a(v.to_string().as_bytes()),
        tokens,
    }
}

/// The prompt's segments, and how many of them come before the first message.
fn segments(request: &Value, kind: PromptKind) -> (Vec<Segment>, usize) {
    let mut out = Vec::new();
    let Some(body) = request.as_object() else {
        return (out, 0);
    };
    if let Some(tools) = body.get("tools") {
        out.push(segment(tools, estimate::tools(body)));
    }
    // The system prompt's key, the list's key, and how one item counts.
    type Count = fn(&Value) -> u64;
    let (system, items, count): (Option<(&str, Count)>, &str, Count) = match kind {
        PromptKind::Chat => (None, "messages", estimate::chat_message),
        PromptKind::Messages => (
            Some(("system", estimate::system)),
            "messages",
            estimate::messages_message,
        ),
        PromptKind::Responses => (
            Some(("instructions", estimate::responses_item)),
            "input",
            estimate::responses_item,
        ),
    };
    if let Some((key, tokens)) = system {
        if let Some(v) = body.get(key) {
            out.push(segment(v, tokens(v)));
        }
    }
    let preamble = out.len();
    match body.get(items) {
        Some(Value::Array(items)) => out.extend(items.iter().map(|m| segment(m, count(m)))),
        Some(v @ Value::String(_)) => out.push(segment(v, count(v))),
        _ => {}
    }
    (out, preamble)
}

/// What one mock instance remembers: each session's previous prompt.
#[derive(Clone)]
pub struct PrefixCache {
    sessions: moka::sync::Cache<u64, Arc<[Segment]>>,
}

impl std::fmt::Debug for PrefixCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefixCache")
            .field("sessions", &self.sessions.entry_count())
            .finish()
    }
}

impl Default for PrefixCache {
    fn default() -> Self {
        Self::with_capacity(MAX_SEGMENTS)
    }
}

impl PrefixCache {
    /// A cache remembering at most `segments` segments.
    pub fn with_capacity(segments: u64) -> Self {
        Self {
            sessions: moka::sync::Cache::builder()
                .weigher(|_, v: &Arc<[Segment]>| {
                    u32::try_from(v.len()).unwrap_or(u32::MAX).saturating_add(1)
                })
                .max_capacity(segments)
                .build(),
        }
    }

    /// The tokens of `request`'s prompt that repeat the previous prompt of
    /// its session on its model; remembers this prompt for the next.
    pub fn observe(&self, headers: &HeaderMap, request: &Value, kind: PromptKind) -> u64 {
        let (segs, preamble) = segments(request, kind);
        if segs.is_empty() {
            return 0;
        }
        let session = request
            .as_object()
            .and_then(|body| crate::session::extract(headers, body, None))
            .map(|s| fnv1a(s.id.as_bytes()))
            .unwrap_or_else(|| {
                let first = &segs[..(preamble + 1).min(segs.len())];
                first.iter().fold(0x5e55, |h, s| {
                    fnv1a(&[h.to_le_bytes(), s.hash.to_le_bytes()].concat())
                })
            });
        let model = request.get("model").and_then(Value::as_str).unwrap_or("");
        let key = fnv1a(&[fnv1a(model.as_bytes()).to_le_bytes(), session.to_le_bytes()].concat());
        let cached = self.sessions.get(&key).map_or(0, |previous| {
            previous
                .iter()
                .zip(&segs)
                .take_while(|(a, b)| a == b)
                .map(|(_, s)| s.tokens)
                .sum()
        });
        self.sessions.insert(key, segs.into());
        cached
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn chat(messages: &[&str], session: Option<&str>) -> Value {
        let msgs: Vec<Value> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| json!({"role": if i % 2 == 0 {"user"} else {"assistant"}, "content": m}))
            .collect();
        let mut v = json!({"model": "m", "messages": msgs});
        if let Some(s) = session {
            v["prompt_cache_key"] = json!(s);
        }
        v
    }

    #[test]
    fn the_repeated_prefix_of_a_session_is_cached() {
        let cache = PrefixCache::default();
        let h = HeaderMap::new();
        let first = chat(&["hello there model"], Some("s1"));
        assert_eq!(cache.observe(&h, &first, PromptKind::Chat), 0);
        let second = chat(&["hello there model", "hi", "go on"], Some("s1"));
        let cached = cache.observe(&h, &second, PromptKind::Chat);
        assert_eq!(cached, estimate::chat_message(&first["messages"][0]));
        let third = chat(
            &["hello there model", "hi", "go on", "ok", "more"],
            Some("s1"),
        );
        let prompt = estimate::chat_prompt(&third);
        let cached = cache.observe(&h, &third, PromptKind::Chat);
        assert!(cached > 0 && cached < prompt, "{cached} of {prompt}");
        // Another session has its own memory.
        assert_eq!(
            cache.observe(
                &h,
                &chat(&["hello there model"], Some("s2")),
                PromptKind::Chat
            ),
            0
        );
    }

    #[test]
    fn without_a_session_the_first_message_keeps_the_conversation_together() {
        let cache = PrefixCache::default();
        let h = HeaderMap::new();
        cache.observe(&h, &chat(&["task one"], None), PromptKind::Chat);
        assert_eq!(
            cache.observe(&h, &chat(&["task two", "x", "y"], None), PromptKind::Chat),
            0
        );
        assert!(cache.observe(&h, &chat(&["task one", "a", "b"], None), PromptKind::Chat) > 0);
    }

    #[test]
    fn anthropic_and_responses_prompts_cache_their_preamble_too() {
        let cache = PrefixCache::default();
        let h = HeaderMap::new();
        let m = |n: usize| {
            let msgs: Vec<Value> = (0..n)
                .map(|i| json!({"role": "user", "content": format!("turn {i}")}))
                .collect();
            json!({"model": "c", "system": "be brief", "max_tokens": 9, "messages": msgs})
        };
        cache.observe(&h, &m(1), PromptKind::Messages);
        let cached = cache.observe(&h, &m(3), PromptKind::Messages);
        assert_eq!(
            cached,
            estimate::system(&json!("be brief")) + estimate::messages_message(&m(1)["messages"][0])
        );
        let r = |n: usize| {
            let items: Vec<Value> = (0..n)
                .map(|i| json!({"role": "user", "content": format!("item {i}")}))
                .collect();
            json!({"model": "r", "instructions": "do it", "input": items})
        };
        cache.observe(&h, &r(2), PromptKind::Responses);
        assert!(cache.observe(&h, &r(4), PromptKind::Responses) > 0);
    }

    #[test]
    fn memory_is_bounded() {
        let cache = PrefixCache::with_capacity(64);
        let h = HeaderMap::new();
        for i in 0..1000 {
            cache.observe(&h, &chat(&["x"], Some(&format!("s{i}"))), PromptKind::Chat);
        }
        cache.sessions.run_pending_tasks();
        assert!(
            cache.sessions.weighted_size() <= 64,
            "{}",
            cache.sessions.weighted_size()
        );
    }
}
