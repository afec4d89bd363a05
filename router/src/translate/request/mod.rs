//! Request translation: OpenAI chat ↔ Anthropic messages.
//!
//! - `to_messages.rs`: an OpenAI chat body as an Anthropic Messages body.
//! - `to_chat.rs`: an Anthropic Messages body as an OpenAI chat body.

mod to_chat;
mod to_messages;

pub use to_chat::messages_to_chat;
pub use to_messages::chat_to_messages;

use serde_json::{json, Value};

use crate::wire::openai::RequestError;

/// A request that cannot be expressed in the other format without changing
/// the answer.
pub(super) fn unsupported(field: impl Into<String>, what: &'static str) -> RequestError {
    RequestError::Unsupported {
        field: field.into(),
        what,
    }
}

/// Appends `blocks` as a `role` message, merged into the previous message
/// when that has the same role (Anthropic wants turns to alternate).
pub(crate) fn push_turn(out: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = out.last_mut() {
        if last["role"] == role {
            if let Some(content) = last.get_mut("content").and_then(Value::as_array_mut) {
                content.extend(blocks);
                return;
            }
        }
    }
    out.push(json!({"role": role, "content": blocks}));
}
