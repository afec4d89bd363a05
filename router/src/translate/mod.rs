//! Translation between the three wire formats: OpenAI's chat completions,
//! Anthropic's Messages API and OpenAI's Responses API, for requests, whole
//! answers and streams.
//!
//! # Topology: a codec per pair, no internal form
//! Each pair of client and upstream format has its own translation, written
//! for what those two formats share:
//!
//! | client → upstream | request | answer and stream back |
//! |---|---|---|
//! | chat → Messages | `request/to_messages.rs` | `response.rs`, `stream.rs` (`AnthropicToChat`) |
//! | Messages → chat | `request/to_chat.rs` | `response.rs`, `stream.rs` (`ChatToAnthropic`) |
//! | Responses → chat | `responses/request_chat.rs` | `responses/answer.rs`, `responses/stream.rs` (`ChatToResponses`) |
//! | Responses → Messages | `responses/request_messages.rs` | `responses/answer.rs`, `responses/stream.rs` (`AnthropicToResponses`) |
//!
//! Same format: no translation at all, the body passes untouched but for
//! `model`. No pair targets the Responses API: an upstream that serves it
//! gets Responses clients only (passed through), and chat or Messages
//! clients go to its chat endpoint. The two Responses pairs share one walk
//! over the input items (`responses/items.rs`) and one stream emitter
//! (`responses/emitter.rs`), so the Responses side is written once.
//!
//! Why not one internal form that every format goes through: a common form
//! keeps only what all three can say, and each pair can keep more. Messages
//! → Responses → Messages keeps Anthropic's thinking signatures (in the
//! reasoning item's `encrypted_content`), which chat cannot carry; chat →
//! Responses → chat keeps `reasoning_content` as Kimi and DeepSeek need it
//! back; freeform tools exist only on the Responses side. A pass-through,
//! the common case, never touches any form.
//!
//! # What each pair keeps and loses
//! - **chat ↔ Messages** (tables below): messages, tools and calls, images,
//!   stop sequences, reasoning and its effort, usage, finish reasons keep
//!   their meaning. Lost: OpenAI's sampling extras (`seed`, penalties,
//!   `logit_bias`), Anthropic's `top_k`, `cache_control`,
//!   `context_management`, thinking signatures (to chat) and earlier turns'
//!   reasoning (to Anthropic, which needs its own signature). Refused: what
//!   would change the answer (below).
//! - **Responses → chat**: messages, system/developer messages in place,
//!   function, freeform (as one-string functions), namespaced and local-shell
//!   tools, tool choice, reasoning (as `reasoning_content` on the next
//!   assistant message, from Tollgate's envelope or the item's text),
//!   effort, output limit, JSON schema. Lost: freeform tools' grammars (in
//!   the description only), caching and storage settings, hosted tools that
//!   are only offered. Refused: stored state (`previous_response_id`,
//!   `item_reference`, `conversation`), forced hosted tools.
//! - **Responses → Messages**: as to chat, with thinking budgets for effort
//!   and system messages joined into `system`; reasoning reaches Anthropic
//!   only as a signed thinking block from Tollgate's envelope. Refused too:
//!   JSON modes.
//! - **Answers back to a Responses client**: text, reasoning (as a
//!   `reasoning` item with the envelope), calls (function, custom, local
//!   shell, namespaced), usage with cached and reasoning tokens, and cut
//!   answers (`incomplete`). Lost: nothing the upstream said that a
//!   Response can hold; an Anthropic upstream's thinking tokens are not
//!   counted apart (Anthropic does not report them).
//!
//! # chat ↔ Messages in detail
//!
//! ## What maps
//! | OpenAI | Anthropic |
//! |---|---|
//! | `system` / `developer` messages | top-level `system` (joined with blank lines); from Anthropic, system messages inside `messages` (Claude Code sends them) become system messages at their place |
//! | consecutive `tool` messages | one user turn of `tool_result` blocks |
//! | assistant `tool_calls` (arguments as a JSON string) | `tool_use` blocks (`input` object) |
//! | `tool_choice` `auto` / `required` / `none` / a function | `auto` / `any` / `none` / `tool` |
//! | `parallel_tool_calls: false` | `tool_choice.disable_parallel_tool_use: true` |
//! | `stop` | `stop_sequences` |
//! | `image_url` (data URL or http URL) | `image` (`base64` or `url` source) |
//! | `reasoning_content`; `reasoning_effort` | `thinking` blocks; `thinking.budget_tokens`, or adaptive thinking with `output_config.effort` |
//! | `response_format` JSON schema (from Anthropic only) | `output_config.format` / `output_format` JSON schema |
//! | `finish_reason` | `stop_reason` |
//! | `max_tokens` / `max_completion_tokens` (optional) | `max_tokens` (required: the model's maximum output fills it) |
//!
//! ## What does not, and what happens
//! - Refused with a 400 naming the parameter, because dropping it would change
//!   the answer: OpenAI `n > 1`, `logprobs`, `response_format` JSON modes,
//!   `audio`, non-function tools, audio and file parts; Anthropic server tools
//!   (web search, code execution, computer use), `mcp_servers`, `container`,
//!   PDF and URL `document` blocks, roles other than user, assistant and
//!   system.
//! - Dropped, because they only tune sampling, caching or context
//!   housekeeping: OpenAI `seed`, `frequency_penalty`, `presence_penalty`,
//!   `logit_bias`, message `name`; Anthropic `top_k`, `cache_control`, tools'
//!   `defer_loading`, `context_management`, thinking signatures and
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
