//! The Responses stream builder both stream translators share. It owns the
//! `sequence_number` (from 0, one per event), item ids, output and content
//! indexes, and every item built so far, so that `response.output_item.done`
//! carries the whole item and the terminal event the whole response.
//!
//! Events come in OpenAI's order: `response.created`, `response.in_progress`,
//! then per item `response.output_item.added`, its part and delta events,
//! `response.output_item.done`, and finally exactly one of
//! `response.completed`, `response.incomplete` or `response.failed`. One item
//! is open at a time: a delta of another kind closes it.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::envelope::Envelope;
use super::output::{
    call_item, call_prefix, custom_input, message_item, output_text, reasoning_item, Meta, Tail,
};
use super::tools::{ToolKind, ToolNames, ToolRef};
use crate::translate::anthropic_frame;
use crate::usage::Usage;

/// Where a reasoning item's text came from, which decides its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// An OpenAI-compatible upstream's `reasoning_content`.
    Chat,
    /// An Anthropic thinking block, with its signature once it arrived.
    Thinking(String),
}

#[derive(Debug)]
enum Kind {
    Message {
        text: String,
    },
    Reasoning {
        text: String,
        source: Source,
    },
    /// A call, by the caller's key into [`Emitter::calls`].
    Call {
        key: u64,
    },
}

#[derive(Debug)]
struct Open {
    id: String,
    index: usize,
    kind: Kind,
}

/// A call seen in the stream.
#[derive(Debug)]
struct Call {
    id: String,
    index: usize,
    tool: ToolRef,
    call_id: String,
    arguments: String,
}

/// Builds a Responses event stream.
#[derive(Debug)]
pub(crate) struct Emitter {
    meta: Meta,
    names: ToolNames,
    seq: u64,
    started: bool,
    terminated: bool,
    output: Vec<Value>,
    open: Option<Open>,
    calls: HashMap<u64, Call>,
}

impl Emitter {
    /// An emitter answering `request` as `client_model`.
    pub fn new(client_model: &str, request: &Map<String, Value>) -> Self {
        Self {
            meta: Meta::new(client_model, request),
            names: ToolNames::of(request),
            seq: 0,
            started: false,
            terminated: false,
            output: Vec::new(),
            open: None,
            calls: HashMap::new(),
        }
    }

    /// Whether `response.created` went out.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Takes ids (and the creation time) from the upstream, before the start.
    pub fn identify(&mut self, upstream_id: Option<&str>, created: Option<u64>) {
        if !self.started {
            self.meta.identify(upstream_id, created);
        }
    }

    /// One frame: `type` and `sequence_number` first, then `fields`.
    fn emit(&mut self, kind: &str, fields: Value, out: &mut Vec<Bytes>) {
        let mut data = Map::new();
        data.insert("type".into(), json!(kind));
        data.insert("sequence_number".into(), json!(self.seq));
        if let Value::Object(f) = fields {
            data.extend(f);
        }
        self.seq += 1;
        out.push(anthropic_frame(kind, &Value::Object(data)));
    }

    /// `response.created` and `response.in_progress`, once.
    pub fn start(&mut self, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.meta.response("in_progress", &[], Tail::default());
        self.emit("response.created", json!({"response": response}), out);
        let response = self.meta.response("in_progress", &[], Tail::default());
        self.emit("response.in_progress", json!({"response": response}), out);
    }

    /// Opens an item of `kind`, announced by `item` (its in-progress form).
    fn open(
        &mut self,
        prefix: &str,
        kind: Kind,
        item: impl FnOnce(&str) -> Value,
        out: &mut Vec<Bytes>,
    ) {
        self.close(None, out);
        let index = self.output.len();
        let id = self.meta.item_id(prefix, index);
        let added = item(&id);
        self.emit(
            "response.output_item.added",
            json!({"output_index": index, "item": added}),
            out,
        );
        self.open = Some(Open { id, index, kind });
    }

    /// Appends output text, opening a message when none is open.
    pub fn text(&mut self, delta: &str, out: &mut Vec<Bytes>) {
        if delta.is_empty() || self.terminated {
            return;
        }
        self.start(out);
        if !matches!(
            self.open,
            Some(Open {
                kind: Kind::Message { .. },
                ..
            })
        ) {
            self.open(
                "msg",
                Kind::Message {
                    text: String::new(),
                },
                |id| message_item(id, Vec::new(), "in_progress"),
                out,
            );
            let (id, index) = self.open_ids();
            self.emit(
                "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": 0, "part": output_text("")}),
                out,
            );
        }
        let Some(Open {
            id,
            index,
            kind: Kind::Message { text },
        }) = &mut self.open
        else {
            return;
        };
        text.push_str(delta);
        // The most frequent event of all, written directly: the same bytes
        // `emit` would build from a JSON map (a test holds them equal).
        let mut frame = Vec::with_capacity(200 + id.len() + delta.len());
        frame.extend_from_slice(
            b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":",
        );
        frame.extend_from_slice(self.seq.to_string().as_bytes());
        frame.extend_from_slice(b",\"item_id\":");
        let _ = serde_json::to_writer(&mut frame, id.as_str());
        frame.extend_from_slice(b",\"output_index\":");
        frame.extend_from_slice(index.to_string().as_bytes());
        frame.extend_from_slice(b",\"content_index\":0,\"delta\":");
        let _ = serde_json::to_writer(&mut frame, delta);
        frame.extend_from_slice(b",\"logprobs\":[]}\n\n");
        self.seq += 1;
        out.push(Bytes::from(frame));
    }

    fn open_ids(&self) -> (String, usize) {
        self.open
            .as_ref()
            .map(|o| (o.id.clone(), o.index))
            .unwrap_or_default()
    }

    /// Opens a new reasoning item (an Anthropic thinking block starts one).
    pub fn begin_reasoning(&mut self, source: Source, out: &mut Vec<Bytes>) {
        if self.terminated {
            return;
        }
        self.start(out);
        self.open(
            "rs",
            Kind::Reasoning {
                text: String::new(),
                source,
            },
            |id| json!({"id": id, "type": "reasoning", "summary": []}),
            out,
        );
    }

    /// Appends reasoning text, opening a reasoning item of `source` when none
    /// is open.
    pub fn reasoning(&mut self, delta: &str, source: Source, out: &mut Vec<Bytes>) {
        if delta.is_empty() || self.terminated {
            return;
        }
        if !matches!(
            self.open,
            Some(Open {
                kind: Kind::Reasoning { .. },
                ..
            })
        ) {
            self.begin_reasoning(source, out);
        }
        let (id, index) = self.open_ids();
        let mut first = false;
        if let Some(Open {
            kind: Kind::Reasoning { text, .. },
            ..
        }) = &mut self.open
        {
            first = text.is_empty();
            text.push_str(delta);
        }
        if first {
            self.emit(
                "response.reasoning_summary_part.added",
                json!({"item_id": id, "output_index": index, "summary_index": 0,
                       "part": {"type": "summary_text", "text": ""}}),
                out,
            );
        }
        self.emit(
            "response.reasoning_summary_text.delta",
            json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": delta}),
            out,
        );
    }

    /// Sets the signature of the open Anthropic reasoning item.
    pub fn signature(&mut self, sig: &str) {
        if let Some(Open {
            kind:
                Kind::Reasoning {
                    source: Source::Thinking(s),
                    ..
                },
            ..
        }) = &mut self.open
        {
            s.push_str(sig);
        }
    }

    /// A whole redacted-thinking reasoning item.
    pub fn redacted(&mut self, data: &str, out: &mut Vec<Bytes>) {
        if self.terminated {
            return;
        }
        self.start(out);
        self.close(None, out);
        let index = self.output.len();
        let id = self.meta.item_id("rs", index);
        self.emit(
            "response.output_item.added",
            json!({"output_index": index, "item": {"id": id, "type": "reasoning", "summary": []}}),
            out,
        );
        let envelope = Envelope::Redacted {
            data: data.to_owned(),
        };
        let item = reasoning_item(&id, "", Some(&envelope));
        self.done_item(index, item, out);
    }

    /// Starts a tool call the caller will refer to by `key`.
    pub fn call_start(
        &mut self,
        key: u64,
        call_id: Option<&str>,
        name: &str,
        out: &mut Vec<Bytes>,
    ) {
        if self.terminated || self.calls.contains_key(&key) {
            return;
        }
        self.start(out);
        let tool = self.names.resolve(name);
        let index = self.output.len() + usize::from(self.open.is_some());
        let call_id = match call_id {
            Some(c) if !c.is_empty() => c.to_owned(),
            _ => self.meta.call_id(index),
        };
        let announced = call_item("", &tool, &call_id, "", "in_progress");
        self.open(
            call_prefix(tool.kind),
            Kind::Call { key },
            |id| {
                let mut item = announced;
                item["id"] = json!(id);
                item
            },
            out,
        );
        let (id, index) = self.open_ids();
        self.calls.insert(
            key,
            Call {
                id,
                index,
                tool,
                call_id,
                arguments: String::new(),
            },
        );
    }

    /// Appends arguments to the call `key`. Arguments for a call already
    /// closed (an upstream interleaving calls) still reach its item in the
    /// terminal response.
    pub fn call_args(&mut self, key: u64, delta: &str, out: &mut Vec<Bytes>) {
        if delta.is_empty() || self.terminated {
            return;
        }
        let is_open =
            matches!(self.open, Some(Open { kind: Kind::Call { key: k }, .. }) if k == key);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.arguments.push_str(delta);
        if !is_open {
            let item = call_item(
                &call.id,
                &call.tool,
                &call.call_id,
                &call.arguments,
                "completed",
            );
            if let Some(slot) = self.output.get_mut(call.index) {
                *slot = item;
            }
            return;
        }
        if call.tool.kind == ToolKind::Function {
            let fields = json!({"item_id": call.id, "output_index": call.index, "delta": delta});
            self.emit("response.function_call_arguments.delta", fields, out);
        }
    }

    /// `response.output_item.done` for a finished item, which joins the output.
    fn done_item(&mut self, index: usize, item: Value, out: &mut Vec<Bytes>) {
        self.emit(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
            out,
        );
        self.output.push(item);
    }

    /// The open item in its final form, with `status`.
    fn finished_item(&self, open: &Open, status: &str) -> Value {
        match &open.kind {
            Kind::Message { text } => message_item(&open.id, vec![output_text(text)], status),
            Kind::Reasoning { text, source } => {
                reasoning_item(&open.id, text, Some(&envelope(text, source)))
            }
            Kind::Call { key } => match self.calls.get(key) {
                Some(c) => call_item(&c.id, &c.tool, &c.call_id, &c.arguments, status),
                None => Value::Null,
            },
        }
    }

    /// Closes the open item; `incomplete` marks it cut short.
    pub fn close(&mut self, incomplete: Option<&str>, out: &mut Vec<Bytes>) {
        let Some(open) = self.open.take() else {
            return;
        };
        let status = if incomplete.is_some() {
            "incomplete"
        } else {
            "completed"
        };
        let item = self.finished_item(&open, status);
        let (id, index) = (open.id.as_str(), open.index);
        match &open.kind {
            Kind::Message { text } => {
                self.emit(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
                    out,
                );
                self.emit(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": output_text(text)}),
                    out,
                );
            }
            Kind::Reasoning { text, .. } if !text.is_empty() => {
                self.emit(
                    "response.reasoning_summary_text.done",
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "text": text}),
                    out,
                );
                self.emit(
                    "response.reasoning_summary_part.done",
                    json!({"item_id": id, "output_index": index, "summary_index": 0,
                           "part": {"type": "summary_text", "text": text}}),
                    out,
                );
            }
            Kind::Reasoning { .. } => {}
            Kind::Call { key } => {
                if let Some(c) = self.calls.get(key) {
                    let (kind, arguments) = (c.tool.kind, c.arguments.clone());
                    self.call_done(kind, id, index, &arguments, out);
                }
            }
        }
        self.done_item(index, item, out);
    }

    /// Closes the open item unless it is a message (which the next text may
    /// continue).
    pub fn close_unless_message(&mut self, out: &mut Vec<Bytes>) {
        if !matches!(
            self.open,
            Some(Open {
                kind: Kind::Message { .. },
                ..
            })
        ) {
            self.close(None, out);
        }
    }

    fn call_done(
        &mut self,
        kind: ToolKind,
        id: &str,
        index: usize,
        arguments: &str,
        out: &mut Vec<Bytes>,
    ) {
        match kind {
            ToolKind::Function => self.emit(
                "response.function_call_arguments.done",
                json!({"item_id": id, "output_index": index, "arguments": arguments}),
                out,
            ),
            ToolKind::Custom => {
                let input = custom_input(arguments);
                self.emit(
                    "response.custom_tool_call_input.delta",
                    json!({"item_id": id, "output_index": index, "delta": input}),
                    out,
                );
                self.emit(
                    "response.custom_tool_call_input.done",
                    json!({"item_id": id, "output_index": index, "input": input}),
                    out,
                );
            }
            ToolKind::LocalShell => {}
        }
    }

    /// Ends the stream: closes the open item and sends `response.completed`,
    /// or `response.incomplete` with `incomplete` as the reason. Both carry
    /// every item and the usage.
    pub fn finish(&mut self, incomplete: Option<&str>, usage: Option<Usage>, out: &mut Vec<Bytes>) {
        if self.terminated {
            return;
        }
        self.start(out);
        self.close(incomplete, out);
        self.terminated = true;
        let (status, event) = match incomplete {
            Some(_) => ("incomplete", "response.incomplete"),
            None => ("completed", "response.completed"),
        };
        let tail = Tail {
            usage: usage.as_ref(),
            incomplete,
            error: None,
        };
        let response = self.meta.response(status, &self.output, tail);
        self.emit(event, json!({"response": response}), out);
    }

    /// Ends the stream with `response.failed`: `error = {code, message}`, the
    /// output so far (an open item as it stood, status `incomplete`) and the
    /// usage known. Nothing is closed with the usual events.
    pub fn fail(&mut self, code: &str, message: &str, usage: Option<Usage>, out: &mut Vec<Bytes>) {
        if self.terminated {
            return;
        }
        self.start(out);
        self.terminated = true;
        let mut output = self.output.clone();
        if let Some(open) = &self.open {
            output.push(self.finished_item(open, "incomplete"));
        }
        let tail = Tail {
            usage: usage.as_ref(),
            incomplete: None,
            error: Some(json!({"code": code, "message": message})),
        };
        let response = self.meta.response("failed", &output, tail);
        self.emit("response.failed", json!({"response": response}), out);
    }
}

/// The envelope of a finished reasoning item.
fn envelope(text: &str, source: &Source) -> Envelope {
    match source {
        Source::Chat => Envelope::Chat {
            reasoning_content: text.to_owned(),
        },
        Source::Thinking(signature) => Envelope::Thinking {
            thinking: text.to_owned(),
            signature: signature.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text delta written directly is byte for byte the frame the JSON
    /// map would make, escapes included.
    #[test]
    fn a_text_delta_is_the_frame_the_json_map_would_make() {
        let request = Map::new();
        let mut emitter = Emitter::new("client \"model\"", &request);
        let (mut out, mut all) = (Vec::new(), Vec::new());
        for delta in [
            "plain",
            "quote \" back \\ nl \n tab \t ctl \u{1} é 漢 😀",
            "",
        ] {
            out.clear();
            emitter.text(delta, &mut out);
            all.extend(out.iter().cloned());
            if delta.is_empty() {
                assert!(out.is_empty());
                continue;
            }
            let frame = out.last().expect("a delta frame");
            let text = std::str::from_utf8(frame).expect("UTF-8");
            let data = text
                .strip_prefix("event: response.output_text.delta\ndata: ")
                .and_then(|d| d.strip_suffix("\n\n"))
                .expect("one event");
            let v: Value = serde_json::from_str(data).expect("JSON");
            let expected = anthropic_frame(
                "response.output_text.delta",
                &json!({
                    "type": "response.output_text.delta",
                    "sequence_number": v["sequence_number"],
                    "item_id": v["item_id"],
                    "output_index": 0,
                    "content_index": 0,
                    "delta": delta,
                    "logprobs": [],
                }),
            );
            assert_eq!(frame, &expected);
        }
        // Sequence numbers stay one per event across both ways of writing.
        emitter.finish(None, None, &mut all);
        let seqs: Vec<u64> = all
            .iter()
            .map(|f| {
                let t = std::str::from_utf8(f).expect("UTF-8");
                let data = &t[t.find("data: ").expect("data") + 6..].trim_end();
                serde_json::from_str::<Value>(data).expect("JSON")["sequence_number"]
                    .as_u64()
                    .expect("a sequence number")
            })
            .collect();
        assert!(seqs.iter().copied().eq(0..seqs.len() as u64), "{seqs:?}");
    }
}
