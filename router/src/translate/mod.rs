//! Translation between OpenAI's chat-completions format and Anthropic's
//! Messages format: requests, whole answers and streams, both ways.
//!
//! # What maps
//! | OpenAI | Anthropic |
//! |---|---|
//! | `system` / `developer` messages | top-level `system` (joined with blank lines) |
//! | consecutive `tool` messages | one user turn of `tool_result` blocks |
//! | assistant `tool_calls` (arguments as a JSON string) | `tool_use` blocks (`input` object) |
//! | `tool_choice` `auto` / `required` / `none` / a function | `auto` / `any` / `none` / `tool` |
//! | `parallel_tool_calls: false` | `tool_choice.disable_parallel_tool_use: true` |
//! | `stop` | `stop_sequences` |
//! | `image_url` (data URL or http URL) | `image` (`base64` or `url` source) |
//! | `reasoning_content`; `reasoning_effort` | `thinking` blocks; `thinking.budget_tokens` |
//! | `finish_reason` | `stop_reason` |
//! | `max_tokens` / `max_completion_tokens` (optional) | `max_tokens` (required: the model's maximum output fills it) |
//!
//! # What does not, and what happens
//! - Refused with a 400 naming the parameter, because dropping it would change
//!   the answer: OpenAI `n > 1`, `logprobs`, `response_format` JSON modes,
//!   `audio`, non-function tools, audio and file parts; Anthropic server tools
//!   (web search, code execution, computer use), `mcp_servers`, `container`,
//!   PDF and URL `document` blocks.
//! - Dropped, because they only tune sampling or caching: OpenAI `seed`,
//!   `frequency_penalty`, `presence_penalty`, `logit_bias`, message `name`;
//!   Anthropic `top_k`, `cache_control`, thinking signatures and
//!   `redacted_thinking` blocks.
//! - Reasoning from earlier assistant turns is not sent to Anthropic: a
//!   thinking block needs Anthropic's own signature, which an OpenAI client
//!   does not have.
//! - OpenAI cannot say which stop sequence matched, so `stop_sequence` is
//!   always `null` on answers from an OpenAI-compatible provider, and
//!   `stop_reason` is `end_turn`.
//! - Images a tool returned follow the tool messages in a user message: OpenAI
//!   tool messages carry text only.

mod request;
mod response;
pub mod responses;
mod stream;

pub use request::{chat_to_messages, messages_to_chat};
pub use response::{
    anthropic_usage, chat_to_message, finish_reason, message_to_chat, openai_usage, stop_reason,
};
pub use stream::{
    anthropic_event_text, anthropic_frame, openai_frame, AnthropicToChat, AnthropicUsage,
    ChatToAnthropic, Flow,
};

#[cfg(test)]
mod tests;
