//! Stream translation into Responses events: OpenAI chat chunks in
//! ([`ChatToResponses`]) or Anthropic events in ([`AnthropicToResponses`]),
//! Responses SSE frames out, through the shared [`Emitter`].
//!
//! # Failures
//! A stream that cannot finish ends with `response.failed`, whose
//! `response.error.code` agents act on (Codex maps them):
//! - `context_length_exceeded`: the prompt is too long (do not retry as is);
//! - `rate_limit_exceeded`: retry later (the upstream's message, with any
//!   "try again in Ns", is kept);
//! - `insufficient_quota`: a budget or quota ran out;
//! - `invalid_prompt`: the upstream refused the request as invalid;
//! - `server_error`: anything else, retryable (timeouts, broken streams,
//!   Anthropic's `overloaded_error`, shutdown).
//!
//! [`failure_code`] maps an error kind to these codes.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::answer::{incomplete_for_finish, incomplete_for_stop};
use super::emitter::{Emitter, Source};
use crate::translate::{anthropic_frame, AnthropicUsage, Flow};
use crate::usage::{self, Usage};

/// A Responses SSE frame: `event: <type>` then the data.
pub fn response_frame(event_type: &str, data: &Value) -> Bytes {
    anthropic_frame(event_type, data)
}

/// The `response.error.code` for an error kind: an Anthropic error type
/// (`rate_limit_error`, `overloaded_error`, ...), an OpenAI error type or
/// code (`rate_limit_exceeded`, `insufficient_quota`,
/// `context_length_exceeded`, `invalid_request_error`, ...) or one of
/// Tollgate's own (`budget_exceeded`, `timeout`, `shutdown`, ...).
/// Unknown kinds are `server_error`, which agents retry.
pub fn failure_code(kind: &str) -> &'static str {
    match kind {
        "rate_limit_error" | "rate_limit_exceeded" | "rate_limited" | "too_many_requests" => {
            "rate_limit_exceeded"
        }
        "insufficient_quota" | "quota_exceeded" | "budget_exceeded" | "budget"
        | "billing_error" | "payment_required" => "insufficient_quota",
        "context_length_exceeded" | "request_too_large" | "context_window_exceeded" => {
            "context_length_exceeded"
        }
        "invalid_request_error" | "invalid_prompt" | "invalid_request" => "invalid_prompt",
        _ => "server_error",
    }
}

/// [`failure_code`], except that a message about the context window makes
/// the code `context_length_exceeded` whatever the kind (upstreams report it
/// as a plain invalid request).
pub fn failure_code_for(kind: &str, message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    let about_context = [
        "context length",
        "context_length",
        "context window",
        "maximum context",
        "prompt is too long",
        "too many tokens",
    ]
    .iter()
    .any(|p| m.contains(p));
    if about_context {
        "context_length_exceeded"
    } else {
        failure_code(kind)
    }
}

/// A whole failed stream (`response.created`, `response.in_progress`,
/// `response.failed`), for a failure before any upstream byte.
pub fn failed_stream(
    client_model: &str,
    request: &Map<String, Value>,
    code: &str,
    message: &str,
) -> Vec<Bytes> {
    let mut out = Vec::new();
    Emitter::new(client_model, request).fail(code, message, None, &mut out);
    out
}

/// OpenAI chat chunks in, Responses events out. The upstream's reasoning
/// (`reasoning_content`) becomes a reasoning item, content a message, each
/// tool call a call item (custom tools' JSON arguments buffered and
/// unwrapped). Usage comes from the usage chunk; the terminal event is sent
/// by [`ChatToResponses::end`].
#[derive(Debug)]
pub struct ChatToResponses {
    emitter: Emitter,
    finish: Option<String>,
    usage: Option<Usage>,
}

impl ChatToResponses {
    /// A translator answering `request` as `client_model`.
    pub fn new(client_model: &str, request: &Map<String, Value>) -> Self {
        Self {
            emitter: Emitter::new(client_model, request),
            finish: None,
            usage: None,
        }
    }

    /// The usage seen so far.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Whether a finish reason arrived.
    pub fn finished(&self) -> bool {
        self.finish.is_some()
    }

    /// A chunk that carries only output text, read in place: `false` (and
    /// nothing done) before the stream started, when the chunk's id and
    /// time still matter and [`ChatToResponses::chunk`] must read it.
    pub fn text(&mut self, text: &str, out: &mut Vec<Bytes>) -> bool {
        if !self.emitter.started() {
            return false;
        }
        self.emitter.text(text, out);
        true
    }

    /// Translates one chunk; frames for the client go to `out`. An error
    /// chunk ends the stream with `response.failed`.
    pub fn chunk(&mut self, chunk: &Value, out: &mut Vec<Bytes>) -> Flow {
        if let Some(err) = chunk.get("error").filter(|e| !e.is_null()) {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("The upstream stream failed.");
            let kind = ["code", "type"]
                .iter()
                .find_map(|k| err.get(*k).and_then(Value::as_str))
                .unwrap_or("server_error");
            self.fail(failure_code_for(kind, message), message, out);
            return Flow::Error;
        }
        self.emitter.identify(
            chunk.get("id").and_then(Value::as_str),
            chunk.get("created").and_then(Value::as_u64),
        );
        self.emitter.start(out);
        if let Some(u) = usage::from_openai_body(chunk) {
            self.usage = Some(u);
        }
        let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return Flow::Continue;
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(r) = ["reasoning_content", "reasoning"]
            .iter()
            .find_map(|k| delta.get(*k).and_then(Value::as_str))
        {
            self.emitter.reasoning(r, Source::Chat, out);
        }
        for key in ["content", "refusal"] {
            if let Some(t) = delta.get(key).and_then(Value::as_str) {
                self.emitter.text(t, out);
            }
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let n = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
                self.emitter
                    .call_start(n, call.get("id").and_then(Value::as_str), name, out);
            }
            if let Some(args) = call.pointer("/function/arguments").and_then(Value::as_str) {
                self.emitter.call_args(n, args, out);
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_owned());
        }
        Flow::Continue
    }

    /// The upstream finished (`[DONE]`, or the end of the body after a
    /// finish reason): closes the open item and sends `response.completed`,
    /// or `response.incomplete` when the answer was cut (`length`,
    /// `content_filter`), with the usage.
    pub fn end(&mut self, out: &mut Vec<Bytes>) -> Flow {
        let incomplete = self.finish.as_deref().and_then(incomplete_for_finish);
        self.emitter.finish(incomplete, self.usage, out);
        Flow::Complete
    }

    /// Ends the stream with `response.failed` (`code` as [`failure_code`]
    /// gives), carrying the output so far and the usage known.
    pub fn fail(&mut self, code: &str, message: &str, out: &mut Vec<Bytes>) {
        self.emitter.fail(code, message, self.usage, out);
    }
}

/// Anthropic events in, Responses events out: thinking blocks become
/// reasoning items carrying their signature in Tollgate's envelope,
/// `redacted_thinking` a reasoning item with the envelope only, text a
/// message, `tool_use` a call item. `message_stop` sends the terminal event;
/// an `error` event sends `response.failed`.
#[derive(Debug)]
pub struct AnthropicToResponses {
    emitter: Emitter,
    usage: AnthropicUsage,
    stop: Option<String>,
}

impl AnthropicToResponses {
    /// A translator answering `request` as `client_model`.
    pub fn new(client_model: &str, request: &Map<String, Value>) -> Self {
        Self {
            emitter: Emitter::new(client_model, request),
            usage: AnthropicUsage::default(),
            stop: None,
        }
    }

    /// The usage seen so far.
    pub fn usage(&self) -> Option<Usage> {
        self.usage.usage()
    }

    /// Whether a stop reason arrived.
    pub fn finished(&self) -> bool {
        self.stop.is_some()
    }

    /// A `text_delta`, read in place: what [`AnthropicToResponses::event`]
    /// does with one.
    pub fn text(&mut self, text: &str, out: &mut Vec<Bytes>) {
        self.emitter.text(text, out);
    }

    /// Translates one event; frames for the client go to `out`.
    pub fn event(&mut self, data: &Value, out: &mut Vec<Bytes>) -> Flow {
        let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
        let str_at = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        match data.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                let msg = data.get("message").unwrap_or(&Value::Null);
                self.emitter
                    .identify(msg.get("id").and_then(Value::as_str), None);
                self.usage.merge(msg.get("usage"));
                self.emitter.start(out);
            }
            "content_block_start" => {
                let block = data.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        self.emitter
                            .text(&str_at(block, "text").unwrap_or_default(), out);
                    }
                    Some("thinking") => {
                        let sig = str_at(block, "signature").unwrap_or_default();
                        self.emitter.begin_reasoning(Source::Thinking(sig), out);
                        let text = str_at(block, "thinking").unwrap_or_default();
                        self.emitter
                            .reasoning(&text, Source::Thinking(String::new()), out);
                    }
                    Some("redacted_thinking") => {
                        self.emitter
                            .redacted(&str_at(block, "data").unwrap_or_default(), out);
                    }
                    Some("tool_use") => {
                        let name = str_at(block, "name").unwrap_or_default();
                        let id = str_at(block, "id");
                        self.emitter.call_start(index, id.as_deref(), &name, out);
                        // A block may carry its whole input at the start.
                        if let Some(input) = block
                            .get("input")
                            .and_then(Value::as_object)
                            .filter(|i| !i.is_empty())
                        {
                            let args = Value::Object(input.clone()).to_string();
                            self.emitter.call_args(index, &args, out);
                        }
                    }
                    // Server tools and unknown blocks are not the client's.
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = data.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        self.emitter
                            .text(&str_at(delta, "text").unwrap_or_default(), out);
                    }
                    Some("thinking_delta") => self.emitter.reasoning(
                        &str_at(delta, "thinking").unwrap_or_default(),
                        Source::Thinking(String::new()),
                        out,
                    ),
                    Some("signature_delta") => self
                        .emitter
                        .signature(&str_at(delta, "signature").unwrap_or_default()),
                    Some("input_json_delta") => self.emitter.call_args(
                        index,
                        &str_at(delta, "partial_json").unwrap_or_default(),
                        out,
                    ),
                    _ => {}
                }
            }
            "message_delta" => {
                self.usage.merge(data.get("usage"));
                if let Some(r) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop = Some(r.to_owned());
                }
            }
            "message_stop" => {
                let incomplete = self.stop.as_deref().and_then(incomplete_for_stop);
                self.emitter.finish(incomplete, self.usage(), out);
                return Flow::Complete;
            }
            "error" => {
                let message = data
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("The upstream stream failed.");
                let kind = data
                    .pointer("/error/type")
                    .and_then(Value::as_str)
                    .unwrap_or("api_error");
                self.fail(failure_code_for(kind, message), message, out);
                return Flow::Error;
            }
            // A text block stays open: consecutive text blocks share one
            // message, as they do in a whole answer.
            "content_block_stop" => self.emitter.close_unless_message(out),
            // ping, unknown events
            _ => {}
        }
        Flow::Continue
    }

    /// Ends the stream with `response.failed` (`code` as [`failure_code`]
    /// gives), carrying the output so far and the usage known.
    pub fn fail(&mut self, code: &str, message: &str, out: &mut Vec<Bytes>) {
        let usage = self.usage();
        self.emitter.fail(code, message, usage, out);
    }
}
