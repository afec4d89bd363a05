//! Stream translation, event by event: Anthropic events → OpenAI chunks, and
//! OpenAI chunks → Anthropic events in Anthropic's exact order.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::response::{anthropic_usage, finish_reason, openai_usage, stop_reason};
use crate::usage::{self, Usage};

/// What an event did to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// More is coming.
    Continue,
    /// The answer is complete.
    Complete,
    /// The upstream reported an error; the stream is over.
    Error,
}

/// An OpenAI SSE frame.
pub fn openai_frame(chunk: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    let _ = serde_json::to_writer(&mut out, chunk);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// An Anthropic SSE frame: `event: <type>` then the data.
pub fn anthropic_frame(name: &str, data: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut out, data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Anthropic usage as a stream reports it: `message_start` carries the input
/// side, each `message_delta` cumulative figures. Later numbers overwrite.
#[derive(Debug, Default, Clone)]
pub struct AnthropicUsage(Map<String, Value>);

impl AnthropicUsage {
    /// Folds in a `usage` object.
    pub fn merge(&mut self, usage: Option<&Value>) {
        if let Some(obj) = usage.and_then(Value::as_object) {
            for (k, v) in obj {
                if !v.is_null() {
                    self.0.insert(k.clone(), v.clone());
                }
            }
        }
    }

    /// The normalized usage, once any figure arrived.
    pub fn usage(&self) -> Option<Usage> {
        if self.0.is_empty() {
            return None;
        }
        usage::from_anthropic(&Value::Object(self.0.clone()))
    }
}

/// Appends the text an Anthropic stream event carries (for estimates).
pub fn anthropic_event_text(data: &Value, mut out: impl FnMut(&str)) {
    if let Some(delta) = data.get("delta") {
        for key in ["text", "thinking", "partial_json"] {
            if let Some(s) = delta.get(key).and_then(Value::as_str) {
                out(s);
            }
        }
    }
    if let Some(name) = data.pointer("/content_block/name").and_then(Value::as_str) {
        out(name);
    }
}

/// Anthropic events in, OpenAI chunks out. Content block indexes count every
/// block; OpenAI tool-call indexes count tool calls only, so they are remapped.
#[derive(Debug)]
pub struct AnthropicToChat {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    tools: HashMap<u64, usize>,
    usage: AnthropicUsage,
    finish: Option<&'static str>,
}

impl AnthropicToChat {
    /// A translator producing chunks named `client_model`; usage is sent at
    /// the end when `include_usage`.
    pub fn new(client_model: &str, created: u64, include_usage: bool) -> Self {
        Self {
            id: "chatcmpl-tollgate".into(),
            model: client_model.to_owned(),
            created,
            include_usage,
            tools: HashMap::new(),
            usage: AnthropicUsage::default(),
            finish: None,
        }
    }

    /// The usage seen so far.
    pub fn usage(&self) -> Option<Usage> {
        self.usage.usage()
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Bytes {
        openai_frame(&json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        }))
    }

    /// A `text_delta`'s chunk, written directly: the same bytes
    /// [`AnthropicToChat::event`] makes of it through a JSON map.
    pub fn text(&mut self, text: &str, out: &mut Vec<Bytes>) {
        let mut frame = Vec::with_capacity(160 + self.id.len() + self.model.len() + text.len());
        frame.extend_from_slice(b"data: {\"id\":");
        let _ = serde_json::to_writer(&mut frame, &self.id);
        frame.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        frame.extend_from_slice(self.created.to_string().as_bytes());
        frame.extend_from_slice(b",\"model\":");
        let _ = serde_json::to_writer(&mut frame, &self.model);
        frame.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":{\"content\":");
        let _ = serde_json::to_writer(&mut frame, text);
        frame.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
        out.push(Bytes::from(frame));
    }

    /// Translates one event; frames for the client go to `out`.
    pub fn event(&mut self, data: &Value, out: &mut Vec<Bytes>) -> Flow {
        match data.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                let msg = data.get("message").unwrap_or(&Value::Null);
                if let Some(id) = msg.get("id").and_then(Value::as_str) {
                    self.id = format!("chatcmpl-{id}");
                }
                self.usage.merge(msg.get("usage"));
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            "content_block_start" => {
                let block = data.get("content_block").unwrap_or(&Value::Null);
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let n = self.tools.len();
                        self.tools.insert(index, n);
                        out.push(self.chunk(
                            json!({"tool_calls": [{"index": n, "id": block.get("id"), "type": "function",
                                   "function": {"name": block.get("name"), "arguments": ""}}]}),
                            None,
                        ));
                    }
                    Some("text") => {
                        if let Some(t) = block
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            out.push(self.chunk(json!({"content": t}), None));
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = data.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        out.push(self.chunk(json!({"content": delta.get("text")}), None));
                    }
                    Some("thinking_delta") => out.push(
                        self.chunk(json!({"reasoning_content": delta.get("thinking")}), None),
                    ),
                    Some("input_json_delta") => {
                        if let Some(n) = self.tools.get(&index) {
                            out.push(self.chunk(
                                json!({"tool_calls": [{"index": n, "function": {"arguments": delta.get("partial_json")}}]}),
                                None,
                            ));
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                self.usage.merge(data.get("usage"));
                if let Some(r) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.finish = Some(finish_reason(r));
                }
            }
            "message_stop" => {
                out.push(self.chunk(json!({}), Some(self.finish.unwrap_or("stop"))));
                if self.include_usage {
                    if let Some(u) = self.usage() {
                        out.push(openai_frame(&json!({
                            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                            "model": self.model, "choices": [], "usage": openai_usage(&u),
                        })));
                    }
                }
                out.push(Bytes::from_static(b"data: [DONE]\n\n"));
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
                out.push(openai_frame(&crate::wire::openai::error_body(
                    message,
                    "server_error",
                    None,
                    Some(kind),
                )));
                return Flow::Error;
            }
            // ping, content_block_stop, unknown events
            _ => {}
        }
        Flow::Continue
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    Tool(u64),
}

/// OpenAI chunks in, Anthropic events out: `message_start`, then per block
/// `content_block_start` / `_delta` / `_stop`, then `message_delta` with the
/// stop reason and cumulative usage, then `message_stop`.
///
/// OpenAI reports usage only at the end, so `message_start` carries zeros
/// and `message_delta` the full figures (input included), as Anthropic's own
/// `message_delta` may.
#[derive(Debug)]
pub struct ChatToAnthropic {
    model: String,
    started: bool,
    open: Option<(u64, Block)>,
    next_block: u64,
    tool_blocks: HashMap<u64, u64>,
    finish: Option<&'static str>,
    usage: Option<Usage>,
}

impl ChatToAnthropic {
    /// A translator producing a message named `client_model`.
    pub fn new(client_model: &str) -> Self {
        Self {
            model: client_model.to_owned(),
            started: false,
            open: None,
            next_block: 0,
            tool_blocks: HashMap::new(),
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

    fn start(&mut self, id: &str, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(anthropic_frame(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": format!("msg_{}", id.trim_start_matches("chatcmpl-")),
                "type": "message", "role": "assistant", "model": self.model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0},
            }}),
        ));
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        if let Some((index, _)) = self.open.take() {
            out.push(anthropic_frame(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    /// Makes `kind` the open block, closing another; returns its index.
    /// `block` makes the new block's `content_block`, only when one opens
    /// (every text event of a stream asks for the text block).
    fn ensure(&mut self, kind: Block, block: impl FnOnce() -> Value, out: &mut Vec<Bytes>) -> u64 {
        if let Some((index, open)) = self.open {
            if open == kind {
                return index;
            }
        }
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some((index, kind));
        out.push(anthropic_frame(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block()}),
        ));
        index
    }

    fn delta(index: u64, delta: Value) -> Bytes {
        anthropic_frame(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        )
    }

    /// Translates a chunk that only carries text (the most common by far),
    /// writing its `content_block_delta` directly rather than through a
    /// JSON value: the same bytes [`ChatToAnthropic::chunk`] writes.
    /// `id` is the chunk's.
    pub fn text(&mut self, id: &str, text: &str, out: &mut Vec<Bytes>) {
        self.start(id, out);
        if text.is_empty() {
            return;
        }
        let i = self.ensure(Block::Text, || json!({"type": "text", "text": ""}), out);
        let mut frame = Vec::with_capacity(96 + text.len());
        frame.extend_from_slice(
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":",
        );
        frame.extend_from_slice(i.to_string().as_bytes());
        frame.extend_from_slice(b",\"delta\":{\"type\":\"text_delta\",\"text\":");
        let _ = serde_json::to_writer(&mut frame, text);
        frame.extend_from_slice(b"}}\n\n");
        out.push(Bytes::from(frame));
    }

    /// Translates one OpenAI chunk; frames for the client go to `out`.
    pub fn chunk(&mut self, chunk: &Value, out: &mut Vec<Bytes>) -> Flow {
        if let Some(err) = chunk.get("error").filter(|e| !e.is_null()) {
            self.start("tollgate", out);
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("The upstream stream failed.");
            out.push(crate::wire::anthropic::sse_error_event(
                "api_error",
                message,
            ));
            return Flow::Error;
        }
        let id = chunk
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("tollgate");
        self.start(id, out);
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
        if let Some(r) = delta
            .get("reasoning_content")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            let i = self.ensure(
                Block::Thinking,
                || json!({"type": "thinking", "thinking": "", "signature": ""}),
                out,
            );
            out.push(Self::delta(
                i,
                json!({"type": "thinking_delta", "thinking": r}),
            ));
        }
        if let Some(t) = delta.get("content").and_then(Value::as_str) {
            self.text(id, t, out);
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for call in calls {
                let n = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                let index = match self.tool_blocks.get(&n) {
                    Some(&index) => index,
                    None => {
                        let id = call
                            .get("id")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .unwrap_or_else(|| format!("toolu_tollgate_{n}"));
                        let name = call
                            .pointer("/function/name")
                            .cloned()
                            .unwrap_or_else(|| json!(""));
                        let index = self.ensure(
                            Block::Tool(n),
                            || json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                            out,
                        );
                        self.tool_blocks.insert(n, index);
                        index
                    }
                };
                if let Some(args) = call
                    .pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                {
                    out.push(Self::delta(
                        index,
                        json!({"type": "input_json_delta", "partial_json": args}),
                    ));
                }
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(stop_reason(f));
        }
        Flow::Continue
    }

    /// The upstream finished (`[DONE]`, or the end of the body after a finish
    /// reason): closes the open block and the message.
    pub fn end(&mut self, out: &mut Vec<Bytes>) -> Flow {
        self.start("tollgate", out);
        self.close(out);
        let usage = self.usage.unwrap_or_default();
        out.push(anthropic_frame(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": self.finish.unwrap_or("end_turn"), "stop_sequence": null},
                    "usage": anthropic_usage(&usage)}),
        ));
        out.push(anthropic_frame(
            "message_stop",
            &json!({"type": "message_stop"}),
        ));
        Flow::Complete
    }
}
