//! Token estimates with a real BPE tokenizer (`o200k_base`): the prompt
//! estimates routing and hard budgets admit requests by, and usage for
//! exchanges whose provider reported none (a stream cut short, a vendor that
//! omits usage).
//!
//! Tokens are counted by a counter of our own (`o200k`, over the compact
//! `vocab`) whose counts are exactly tiktoken's `encode_ordinary` lengths:
//! it holds the vocabulary once, in the binary, with about 5 MiB of index,
//! where tiktoken's `CoreBPE` took some 40 MiB of heap.

mod o200k;
mod vocab;

use std::sync::OnceLock;

use serde_json::Value;

use crate::provider::Operation;
use crate::usage::Usage;
use o200k::O200k;

/// Tokens OpenAI's chat format adds around every message.
const PER_MESSAGE: u64 = 4;
/// Tokens that prime the assistant's reply.
const REPLY_PRIMING: u64 = 3;
/// A flat charge for an image part, whose size the text tokenizer cannot see.
const PER_IMAGE: u64 = 85;

fn counter() -> Option<&'static O200k> {
    static COUNTER: OnceLock<Option<O200k>> = OnceLock::new();
    COUNTER
        .get_or_init(|| match O200k::new() {
            Ok(counter) => Some(counter),
            Err(err) => {
                tracing::error!(error = %err, "tokenizer failed to load; estimates fall back to 4 bytes a token");
                None
            }
        })
        .as_ref()
}

/// Loads the tokenizer ahead of the first estimate (it compiles its pattern
/// and indexes the vocabulary: some milliseconds).
pub fn warm_up() {
    let _ = counter();
}

/// Texts are tokenized in pieces of at most this many bytes, cut after
/// whitespace where there is some: the tokenizer's cost grows faster than
/// linearly on long whitespace runs, and it fails outright on very long ones.
const PIECE_BYTES: usize = 16 * 1024;
/// Past this size a text is sampled: its first part is tokenized and the
/// count scaled by size, which bounds the time one estimate can take.
const SAMPLE_BYTES: usize = 256 * 1024;

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Splits `text` into pieces of at most `max` bytes, each ending after a
/// whitespace character when the window holds one.
fn pieces(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = if rest.len() <= max {
            rest.len()
        } else {
            let window = floor_char_boundary(rest, max);
            match rest[..window].rfind(char::is_whitespace) {
                Some(ws) if ws > 0 => ws + rest[ws..].chars().next().map_or(1, char::len_utf8),
                _ => window.max(rest.chars().next().map_or(1, char::len_utf8)),
            }
        };
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

fn bytes_estimate(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// Counts the tokens of one text. Never panics: a piece the tokenizer fails
/// on (its pattern gives up backtracking; or it panics, which it should not)
/// is counted at four bytes a token.
pub fn count_text(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    let Some(counter) = counter() else {
        return bytes_estimate(text);
    };
    let sample = &text[..floor_char_boundary(text, SAMPLE_BYTES.min(text.len()))];
    let counted: u64 = pieces(sample, PIECE_BYTES)
        .map(
            |piece| match std::panic::catch_unwind(|| counter.count(piece)) {
                Ok(Ok(tokens)) => tokens as u64,
                Ok(Err(_)) | Err(_) => bytes_estimate(piece),
            },
        )
        .sum();
    if sample.len() == text.len() || sample.is_empty() {
        counted
    } else {
        (counted as f64 * text.len() as f64 / sample.len() as f64).ceil() as u64
    }
}

fn content_tokens(content: &Value) -> u64 {
    match content {
        Value::String(s) => count_text(s),
        Value::Array(parts) => parts
            .iter()
            .map(|part| match part.get("type").and_then(Value::as_str) {
                Some("image_url" | "image" | "input_image" | "input_file") => PER_IMAGE,
                Some("refusal") => part
                    .get("refusal")
                    .and_then(Value::as_str)
                    .map(count_text)
                    .unwrap_or(0),
                _ => part
                    .get("text")
                    .and_then(Value::as_str)
                    .map(count_text)
                    .unwrap_or(0),
            })
            .sum(),
        Value::Null => 0,
        other => count_text(&other.to_string()),
    }
}

/// Estimates the prompt tokens of an OpenAI chat request body.
pub fn chat_prompt(request: &Value) -> u64 {
    request
        .as_object()
        .map(chat_prompt_of)
        .unwrap_or(REPLY_PRIMING)
}

/// [`chat_prompt`] on the body's map.
pub fn chat_prompt_of(request: &serde_json::Map<String, Value>) -> u64 {
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .map(|msgs| msgs.iter().map(chat_message).sum::<u64>())
        .unwrap_or(0);
    messages + tools(request) + REPLY_PRIMING
}

/// One OpenAI chat message, with its overhead.
pub fn chat_message(m: &Value) -> u64 {
    let mut n = PER_MESSAGE;
    if let Some(c) = m.get("content") {
        n += content_tokens(c);
    }
    if let Some(name) = m.get("name").and_then(Value::as_str) {
        n += count_text(name);
    }
    if let Some(calls) = m.get("tool_calls") {
        n += count_text(&calls.to_string());
    }
    n
}

/// The tool definitions of a request body, in any format.
pub fn tools(request: &serde_json::Map<String, Value>) -> u64 {
    request
        .get("tools")
        .map(|t| count_text(&t.to_string()))
        .unwrap_or(0)
}

/// Estimates the prompt tokens of an Anthropic Messages request body:
/// `system` (a string or text blocks), every message's content blocks, and
/// the tool definitions.
pub fn messages_prompt(request: &Value) -> u64 {
    request
        .as_object()
        .map(messages_prompt_of)
        .unwrap_or(REPLY_PRIMING)
}

/// [`messages_prompt`] on the body's map.
pub fn messages_prompt_of(request: &serde_json::Map<String, Value>) -> u64 {
    let system = request.get("system").map(content_tokens).unwrap_or(0);
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .map(|msgs| msgs.iter().map(messages_message).sum::<u64>())
        .unwrap_or(0);
    system + messages + tools(request) + REPLY_PRIMING
}

/// An Anthropic `system` (a string or text blocks).
pub fn system(system: &Value) -> u64 {
    content_tokens(system)
}

/// One Anthropic message, with its overhead.
pub fn messages_message(m: &Value) -> u64 {
    PER_MESSAGE
        + match m.get("content") {
            Some(Value::Array(blocks)) => blocks.iter().map(block_tokens).sum(),
            Some(c) => content_tokens(c),
            None => 0,
        }
}

/// Estimates the prompt tokens of a Responses API request body:
/// `instructions`, every input item's text (messages, function call names
/// and arguments, tool outputs, custom tool input, reasoning summaries), an
/// image or file at a flat rate, and the tool definitions.
pub fn responses_prompt_of(request: &serde_json::Map<String, Value>) -> u64 {
    let instructions = request
        .get("instructions")
        .and_then(Value::as_str)
        .map(|s| PER_MESSAGE + count_text(s))
        .unwrap_or(0);
    let input = match request.get("input") {
        Some(Value::String(s)) => PER_MESSAGE + count_text(s),
        Some(Value::Array(items)) => items.iter().map(responses_item).sum(),
        _ => 0,
    };
    instructions + input + tools(request) + REPLY_PRIMING
}

/// One Responses input item, with its overhead; a string input counts as one.
pub fn responses_item(item: &Value) -> u64 {
    PER_MESSAGE
        + match item {
            Value::String(s) => count_text(s),
            _ => item_tokens(item),
        }
}

/// One Responses input item.
fn item_tokens(item: &Value) -> u64 {
    let text = |key: &str| {
        item.get(key)
            .and_then(Value::as_str)
            .map(count_text)
            .unwrap_or(0)
    };
    let parts = |key: &str| item.get(key).map(content_tokens).unwrap_or(0);
    match item.get("type").and_then(Value::as_str) {
        Some("function_call") => text("name") + text("arguments"),
        Some("custom_tool_call") => text("name") + text("input"),
        Some("local_shell_call") => item
            .get("action")
            .map(|a| count_text(&a.to_string()))
            .unwrap_or(0),
        Some("reasoning") => parts("summary") + parts("content"),
        Some(t) if t.ends_with("_output") => parts("output"),
        _ => text("text") + parts("content"),
    }
}

/// One Anthropic content block: text, thinking, tool calls and results, images.
fn block_tokens(block: &Value) -> u64 {
    match block.get("type").and_then(Value::as_str) {
        Some("image") | Some("document") => PER_IMAGE,
        Some("tool_use") => block
            .get("input")
            .map(|i| count_text(&i.to_string()))
            .unwrap_or(0),
        Some("tool_result") => block.get("content").map(content_tokens).unwrap_or(0),
        Some("thinking") => block
            .get("thinking")
            .and_then(Value::as_str)
            .map(count_text)
            .unwrap_or(0),
        _ => block
            .get("text")
            .and_then(Value::as_str)
            .map(count_text)
            .unwrap_or(0),
    }
}

/// Estimates the input tokens of an OpenAI embeddings request body.
pub fn embeddings_input(request: &Value) -> u64 {
    match request.get("input") {
        Some(Value::String(s)) => count_text(s),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => count_text(s),
                // Pre-tokenized input: an array of token ids.
                Value::Array(ids) => ids.len() as u64,
                Value::Number(_) => 1,
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

/// The output a relayed answer produced, counted as it passes so an estimate
/// stays possible when the provider reports no usage (or a stream is cut
/// short) without holding the whole text: text is kept until a piece of
/// [`TALLY_FOLD_BYTES`] has gathered, then that piece is counted and let go.
/// Answers shorter than that (most of them) are never tokenized unless an
/// estimate is asked for.
#[derive(Debug, Default, Clone)]
pub struct OutputTally {
    pending: String,
    counted: u64,
    /// Every byte of text seen.
    bytes: u64,
}

/// How much output text a tally holds before counting it.
pub const TALLY_FOLD_BYTES: usize = 8 * 1024;

impl OutputTally {
    /// A tally of one whole text (a non-streamed answer).
    pub fn of(text: String) -> Self {
        let mut tally = Self {
            bytes: text.len() as u64,
            pending: text,
            counted: 0,
        };
        tally.fold_if_full();
        tally
    }

    /// Adds text the model produced.
    pub fn push(&mut self, text: &str) {
        self.bytes += text.len() as u64;
        self.pending.push_str(text);
        self.fold_if_full();
    }

    /// Whether any output was seen.
    pub fn is_empty(&self) -> bool {
        self.counted == 0 && self.pending.is_empty()
    }

    /// How many bytes of text were seen: at least as many as its tokens,
    /// so a cheap bound on them.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The output's tokens so far.
    pub fn tokens(&self) -> u64 {
        self.counted + count_text(&self.pending)
    }

    /// Counts the pending text up to its last whitespace (so no word is
    /// split between two counts), once it is large enough.
    fn fold_if_full(&mut self) {
        if self.pending.len() < TALLY_FOLD_BYTES {
            return;
        }
        let cut = match self.pending.rfind(char::is_whitespace) {
            Some(ws) if ws > 0 => ws,
            _ => self.pending.len(),
        };
        self.counted += count_text(&self.pending[..cut]);
        self.pending.drain(..cut);
        if self.pending.capacity() > 2 * TALLY_FOLD_BYTES {
            self.pending.shrink_to(TALLY_FOLD_BYTES);
        }
    }
}

/// Estimates a whole exchange: the prompt from the request body sent upstream,
/// the output from what the model produced. For embeddings the output is 0.
pub fn exchange(op: Operation, request_body: &[u8], output: &OutputTally) -> Usage {
    let request: Value = serde_json::from_slice(request_body).unwrap_or(Value::Null);
    let input = match op {
        Operation::ChatCompletions => chat_prompt(&request),
        Operation::Embeddings => embeddings_input(&request),
        Operation::Messages | Operation::CountTokens => messages_prompt(&request),
        Operation::Responses => request.as_object().map_or(0, responses_prompt_of),
    };
    Usage {
        input,
        output: output.tokens(),
        ..Usage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_text_with_the_bpe_tokenizer() {
        assert_eq!(count_text(""), 0);
        assert_eq!(count_text("hello world"), 2);
        assert!(count_text(&"lorem ipsum dolor ".repeat(100)) >= 300);
    }

    #[test]
    fn a_tally_holds_a_bounded_text_and_counts_close_to_the_whole() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(2_000);
        let mut tally = OutputTally::default();
        for word in text.split_inclusive(' ') {
            tally.push(word);
            assert!(tally.pending.len() < TALLY_FOLD_BYTES + 16);
        }
        let whole = count_text(&text);
        let folded = tally.tokens();
        assert!(whole.abs_diff(folded) <= whole / 100, "{folded} vs {whole}");
        assert!(OutputTally::default().is_empty());
        assert_eq!(OutputTally::of("hello world".into()).tokens(), 2);
    }

    #[test]
    fn pathological_and_huge_texts_are_counted_without_panicking() {
        let spaces = format!("{}x", " ".repeat(2_000_000));
        assert!(count_text(&spaces) > 0);
        let words = "hello world ".repeat(200_000);
        let n = count_text(&words);
        // 400k real tokens; the sampled estimate lands close.
        assert!((390_000..=410_000).contains(&n), "{n}");
    }

    #[test]
    fn pieces_cover_the_text_and_respect_char_boundaries() {
        let text = "héllo wörld ".repeat(5000);
        let parts: Vec<&str> = pieces(&text, 1000).collect();
        assert_eq!(parts.concat(), text);
        assert!(parts.iter().all(|p| p.len() <= 1000));
        let solid = "é".repeat(3000);
        assert_eq!(pieces(&solid, 1001).collect::<Vec<_>>().concat(), solid);
    }

    #[test]
    fn chat_prompt_counts_messages_parts_and_overheads() {
        let req = json!({"messages": [
            {"role": "system", "content": "hello world"},
            {"role": "user", "content": [{"type": "text", "text": "hello world"},
                                           {"type": "image_url", "image_url": {"url": "data:..."}}]}
        ]});
        assert_eq!(
            chat_prompt(&req),
            2 * PER_MESSAGE + 2 + 2 + PER_IMAGE + REPLY_PRIMING
        );
    }

    #[test]
    fn messages_prompt_counts_system_blocks_and_tool_traffic() {
        let req = json!({
            "system": [{"type": "text", "text": "hello world"}],
            "messages": [
                {"role": "user", "content": "hello world"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "hello world"},
                                              {"type": "image", "source": {"type": "url", "url": "x"}}]}
            ]
        });
        assert_eq!(
            messages_prompt(&req),
            2 + 3 * PER_MESSAGE + 2 + count_text("{}") + 2 + PER_IMAGE + REPLY_PRIMING
        );
    }

    #[test]
    fn responses_prompt_counts_items_images_and_tools() {
        let req = json!({
            "instructions": "hello world",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "hello world"},
                                              {"type": "input_image", "image_url": "data:..."}]},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "hello world"},
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hello world"}]}
            ],
            "tools": [{"type": "function", "name": "f"}]
        });
        let req = req.as_object().unwrap();
        let tools = count_text(&req["tools"].to_string());
        assert_eq!(
            responses_prompt_of(req),
            5 * PER_MESSAGE
                + 2
                + 2
                + PER_IMAGE
                + 1
                + count_text("{}")
                + 2
                + 2
                + tools
                + REPLY_PRIMING
        );
        let short = json!({"input": "hello world"});
        assert_eq!(
            responses_prompt_of(short.as_object().unwrap()),
            PER_MESSAGE + 2 + REPLY_PRIMING
        );
    }

    #[test]
    fn embeddings_input_accepts_strings_and_token_arrays() {
        assert_eq!(embeddings_input(&json!({"input": "hello world"})), 2);
        assert_eq!(
            embeddings_input(&json!({"input": ["hello world", [1, 2, 3]]})),
            5
        );
        assert_eq!(embeddings_input(&json!({"input": [1, 2, 3]})), 3);
    }
}
