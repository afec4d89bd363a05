//! Request translation: OpenAI chat ↔ Anthropic messages.
//!
//! - `to_messages.rs`: an OpenAI chat body as an Anthropic Messages body.
//! - `to_chat.rs`: an Anthropic Messages body as an OpenAI chat body.

mod to_chat;
mod to_messages;

pub use to_chat::messages_to_chat;
pub use to_messages::chat_to_messages;

use crate::wire::openai::RequestError;

/// A request that cannot be expressed in the other format without changing
/// the answer.
pub(super) fn unsupported(field: impl Into<String>, what: &'static str) -> RequestError {
    RequestError::Unsupported {
        field: field.into(),
        what,
    }
}
