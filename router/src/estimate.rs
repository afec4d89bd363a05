//! Token estimates with a real BPE tokenizer (`o200k_base`), for exchanges
//! whose provider reported no usage: a stream cut short, a vendor that omits
//! usage. Only called off the common path, when usage is missing.

use std::sync::OnceLock;

use serde_json::Value;
use tiktoken_rs::CoreBPE;

use crate::provider::Operation;
use crate::usage::Usage;

/// Tokens OpenAI's chat format adds around every message.
const PER_MESSAGE: u64 = 4;
/// Tokens that prime the assistant's reply.
const REPLY_PRIMING: u64 = 3;
/// A flat charge for an image part, whose size the text tokenizer cannot see.
const PER_IMAGE: u64 = 85;

fn bpe() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| match tiktoken_rs::o200k_base() {
        Ok(bpe) => Some(bpe),
        Err(err) => {
            tracing::error!(error = %err, "tokenizer failed to load; estimates fall back to 4 bytes a token");
            None
        }
    })
    .as_ref()
}

/// Loads the tokenizer ahead of the first estimate (it takes a moment).
pub fn warm_up() {
    let _ = bpe();
}

/// Counts the tokens of one text.
pub fn count_text(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    match bpe() {
        Some(bpe) => bpe.encode_ordinary(text).len() as u64,
        None => (text.len() as u64).div_ceil(4),
    }
}

fn content_tokens(content: &Value) -> u64 {
    match content {
        Value::String(s) => count_text(s),
        Value::Array(parts) => parts
            .iter()
            .map(|part| match part.get("type").and_then(Value::as_str) {
                Some("image_url") | Some("image") | Some("input_image") => PER_IMAGE,
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
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .map(|msgs| {
            msgs.iter()
                .map(|m| {
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
                })
                .sum::<u64>()
        })
        .unwrap_or(0);
    let tools = request
        .get("tools")
        .map(|t| count_text(&t.to_string()))
        .unwrap_or(0);
    messages + tools + REPLY_PRIMING
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

/// Estimates a whole exchange: the prompt from the request body sent upstream,
/// the output from the text the model produced. For embeddings the output is 0.
pub fn exchange(op: Operation, request_body: &[u8], output_text: &str) -> Usage {
    let request: Value = serde_json::from_slice(request_body).unwrap_or(Value::Null);
    let input = match op {
        Operation::ChatCompletions => chat_prompt(&request),
        Operation::Embeddings => embeddings_input(&request),
    };
    Usage {
        input,
        output: count_text(output_text),
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
    fn embeddings_input_accepts_strings_and_token_arrays() {
        assert_eq!(embeddings_input(&json!({"input": "hello world"})), 2);
        assert_eq!(
            embeddings_input(&json!({"input": ["hello world", [1, 2, 3]]})),
            5
        );
        assert_eq!(embeddings_input(&json!({"input": [1, 2, 3]})), 3);
    }
}
