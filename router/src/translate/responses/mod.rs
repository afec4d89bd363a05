//! Translation for the Responses API door (`POST /v1/responses`, what Codex
//! speaks) onto OpenAI chat-completions and Anthropic Messages upstreams:
//! requests, whole answers and streams. An upstream that serves
//! `/v1/responses` itself gets the client's body untouched instead
//! ([`crate::wire::responses`]).
//!
//! # What maps
//! | Responses | OpenAI chat | Anthropic |
//! |---|---|---|
//! | `input` as a string | one user message | one user turn |
//! | `instructions` | a leading `system` message | top-level `system` |
//! | `system` / `developer` messages | a `system` message in place | top-level `system`, joined in order (not every Anthropic model or compatible endpoint takes system messages inside `messages`) |
//! | `message` parts `input_text` / `output_text` / `refusal` | text | `text` blocks |
//! | `input_image` (data URL or http(s) URL) | `image_url` part | `image` block (`base64` or `url` source) |
//! | `input_file` with a text data URL / a PDF data URL | text / a `file` part | text / a `document` block |
//! | `function_call` | assistant `tool_calls` (merged with the assistant text before it) | `tool_use` block (arguments parsed; a non-object is a 400) |
//! | `function_call_output`, `custom_tool_call_output` | `tool` message; its images follow in a user message | `tool_result` block in a user turn |
//! | `custom_tool_call` | a call of the function standing for the custom tool, arguments `{"input": ...}` | likewise, as `tool_use` |
//! | `local_shell_call` / `_output` | a call of function `local_shell` (arguments = the action) / its result | likewise |
//! | `reasoning` item | its text (Tollgate envelope, else `content`, else `summary`) as `reasoning_content` on the next assistant message | a signed thinking block (or `redacted_thinking`) from Tollgate's envelope, in place in the assistant turn |
//! | `function` tools | `function` tools | tools with `input_schema` |
//! | `custom` tools | a function taking one string, `input`; a grammar is written into the description | likewise |
//! | `namespace` tools | their members flattened as `<namespace>__<name>` | likewise |
//! | `local_shell` tool | a function `local_shell` taking the shell action | likewise |
//! | `tool_choice` `auto` / `none` / `required` / a function or custom tool | `auto` / `none` / `required` / a function | `auto` / `none` / `any` / `tool` |
//! | `tool_choice` `allowed_tools` | tools filtered to the list; `auto` or `required` | likewise; `auto` or `any` |
//! | `parallel_tool_calls` | as is | `false` → `disable_parallel_tool_use` |
//! | `reasoning.effort` | `reasoning_effort` (the string as is) | `thinking.budget_tokens`: minimal/low 1024, medium 4096, high 16384, xhigh 32768, below `max_tokens`; none under 1024 |
//! | `max_output_tokens` | `max_tokens` | `max_tokens` (the model's maximum output when absent) |
//! | `temperature`, `top_p` | as is | as is |
//! | `safety_identifier` (else `user`) | `user` | `metadata.user_id` |
//! | `text.format` `json_schema` / `json_object` | `response_format` | refused |
//! | `stream: true` | `stream` and `stream_options.include_usage` | `stream` |
//!
//! On the way back, reasoning becomes `reasoning` items (the text as one
//! summary part and as `reasoning_text` content, and Tollgate's envelope in
//! `encrypted_content`, always, whether or not `include` asked for it), text
//! a `message`, and calls `function_call`, `custom_tool_call` (the `input`
//! unwrapped) or `local_shell_call` items, with namespaced names split back
//! into `name` and `namespace`. A cut answer is `incomplete`
//! (`max_output_tokens` or `content_filter`), with its usage.
//!
//! # What does not map, and what happens
//! - Refused with a 400 naming the parameter: `previous_response_id`,
//!   `conversation` and `item_reference` items (Tollgate stores no responses:
//!   send the whole conversation in `input` with `store: false`), `prompt`
//!   (stored templates), `background: true`, `top_logprobs > 0`,
//!   `max_tool_calls`; a `tool_choice` that forces a hosted tool, and
//!   hosted-tool history items (`web_search_call`, `computer_call`,
//!   `mcp_call`, ...); images and files by `file_id` or `file_url`; JSON
//!   modes on Anthropic.
//! - Hosted tools merely offered in `tools` (`web_search`, `tool_search`,
//!   `file_search`, `code_interpreter`, `image_generation`, `mcp`, any other
//!   type that is not a function) are left out: the upstream cannot run
//!   them, and Codex offers `web_search` on every request, so refusing would
//!   refuse every Codex turn on every translated backend. The model answers
//!   without them, as it would on a vendor without those tools.
//! - Dropped, because they tune caching, storage or telemetry and not the
//!   answer: `store`, `include`, `prompt_cache_key`,
//!   `prompt_cache_retention`, `metadata` (echoed back, not sent), `service_tier`,
//!   `truncation`, `stream_options`, `client_metadata`, `text.verbosity`,
//!   `reasoning.summary`, message `phase`, item `id` and `status`, image
//!   `detail` on Anthropic, and any top-level field Tollgate does not know.
//! - Items of an unknown type are not refused: one that carries text (a
//!   `text` string, or `content` parts with `text`) is kept as a message of
//!   its role (user by default), any other is dropped.
//! - With thinking on, Anthropic refuses a `temperature`, a `top_p` below
//!   0.95 and a forced tool choice: the first two are dropped, and a forced
//!   choice (`required`, a named tool) leaves thinking off.
//! - A custom tool's grammar is not enforced: the upstream sees it as text in
//!   the description and may write input that does not match it.
//! - Reasoning reaches Anthropic only with Anthropic's own signature, which
//!   only Tollgate's envelope from an Anthropic answer carries; other
//!   reasoning items are dropped there (Anthropic refuses unsigned thinking).
//!   OpenAI's own `encrypted_content` cannot be read by any other upstream
//!   and only its summary text survives (as `reasoning_content`, on chat).

mod answer;
mod emitter;
pub mod envelope;
mod items;
mod output;
mod params;
mod request_chat;
mod request_messages;
mod stream;
mod tools;

pub use answer::{chat_to_response, message_to_response};
pub use output::{from_responses, usage_from_response, usage_from_response_event, usage_json};
pub use request_chat::responses_to_chat;
pub use request_messages::responses_to_messages;
pub use stream::{
    failed_stream, failure_code, failure_code_for, response_frame, AnthropicToResponses,
    ChatToResponses,
};
pub use tools::{custom_tool_names, ToolKind, ToolNames, ToolRef};

#[cfg(test)]
mod tests;
