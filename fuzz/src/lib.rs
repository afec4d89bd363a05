//! What Tollgate's fuzz targets share: the layout of an input (a selector
//! byte, cut lengths, then the body), the client and upstream formats a
//! selector picks, the client requests the relay reads, one runtime, and a
//! JSON value built from structured input ([`json`]).
//!
//! Inputs that carry a body start with a small header so that seeds can be
//! plain files with a header in front (see `run.sh`):
//! `[selector] [n] [n cut lengths] [body...]`.

pub mod json;

use std::future::Future;
use std::sync::OnceLock;

use router::wire::Wire;
use serde_json::{json, Map, Value};

/// An input taken apart: the selector, the cut lengths and the body.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub selector: u8,
    pub cuts: &'a [u8],
    pub body: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads `[selector] [n] [n cut lengths] [body...]`; missing parts are
    /// empty.
    pub fn with_selector(data: &'a [u8]) -> Self {
        let (selector, rest) = match data.split_first() {
            Some((s, rest)) => (*s, rest),
            None => (0, data),
        };
        Self {
            selector,
            ..Self::without_selector(rest)
        }
    }

    /// Reads `[n] [n cut lengths] [body...]`.
    pub fn without_selector(data: &'a [u8]) -> Self {
        let Some((n, rest)) = data.split_first() else {
            return Self {
                selector: 0,
                cuts: &[],
                body: &[],
            };
        };
        let n = usize::from(*n).min(rest.len());
        let (cuts, body) = rest.split_at(n);
        Self {
            selector: 0,
            cuts,
            body,
        }
    }

    /// The body cut into pieces of the cut lengths, in turn (a zero is an
    /// empty piece); what is left after the last cut is the last piece.
    pub fn pieces(&self) -> Vec<&'a [u8]> {
        let mut out = Vec::with_capacity(self.cuts.len() + 1);
        let mut rest = self.body;
        for &cut in self.cuts {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at(usize::from(cut).min(rest.len()));
            out.push(piece);
            rest = tail;
        }
        if !rest.is_empty() {
            out.push(rest);
        }
        out
    }
}

/// The wire format two bits pick (the fourth value is OpenAI chat again).
pub fn wire(bits: u8) -> Wire {
    match bits & 3 {
        1 => Wire::Anthropic,
        2 => Wire::Responses,
        _ => Wire::OpenAi,
    }
}

/// A client request body the relay reads for echoes and tool names, one of
/// a few: empty, a Responses request with every kind of tool and setting,
/// and a chat request.
pub fn request(variant: u8) -> Map<String, Value> {
    let v = match variant % 3 {
        0 => json!({}),
        1 => json!({
            "model": "m",
            "instructions": "be brief",
            "input": "hi",
            "tools": [
                {"type": "function", "name": "shell", "parameters": {"type": "object"}},
                {"type": "custom", "name": "apply_patch", "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
                {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "f"}]},
                {"type": "local_shell"},
                {"type": "web_search"}
            ],
            "tool_choice": "auto",
            "parallel_tool_calls": false,
            "reasoning": {"effort": "high", "summary": "auto"},
            "text": {"format": {"type": "text"}},
            "metadata": {"k": "v"},
            "temperature": 0.5,
            "top_p": 0.9,
            "max_output_tokens": 100,
            "store": false,
            "include": ["reasoning.encrypted_content"],
            "stream": true
        }),
        _ => json!({
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": true,
            "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]
        }),
    };
    match v {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Runs `f` to completion on one current-thread runtime (with timers, as
/// the relay's idle and total timeouts need), built once per process.
pub fn block_on<F: Future>(f: F) -> F::Output {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap_or_else(|e| panic!("cannot build a tokio runtime: {e}"))
        })
        .block_on(f)
}

/// Whether every event in `out` (as the gateway writes its own frames:
/// `event:` and `data:` lines, each event ending with a blank line) carries
/// JSON data, or `[DONE]`. `Err` names the first event that does not.
pub fn frames_are_json(out: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(out).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut rest = text;
    while !rest.is_empty() {
        let Some(end) = rest.find("\n\n") else {
            return Err(format!("an event without its blank line: {rest:?}"));
        };
        let event = &rest[..end];
        rest = &rest[end + 2..];
        let mut data = String::new();
        for line in event.split('\n') {
            if let Some(d) = line.strip_prefix("data: ") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(d);
            } else if !line.starts_with("event: ") {
                return Err(format!("a line that is neither event nor data: {line:?}"));
            }
        }
        if data != "[DONE]" && serde_json::from_str::<Value>(&data).is_err() {
            return Err(format!("an event whose data is not JSON: {event:?}"));
        }
    }
    Ok(())
}

/// Runs a request body through every request translator and the estimates
/// (none may panic), and checks that a request its client format accepts
/// translates, when it translates at all, into one the upstream format
/// accepts too.
pub fn check_request_translations(body: &Map<String, Value>) {
    use router::estimate;
    use router::translate::{self, responses};
    use router::wire::{anthropic, openai, responses as wire_responses};

    fn bytes(map: &Map<String, Value>) -> Vec<u8> {
        serde_json::to_vec(map).unwrap_or_else(|e| panic!("a map does not serialize: {e}"))
    }

    let _ = (
        estimate::chat_prompt_of(body),
        estimate::messages_prompt_of(body),
        estimate::responses_prompt_of(body),
    );

    let chat_ok = openai::parse_chat_object(body.clone()).is_ok();
    if let Ok(out) = translate::chat_to_messages(body, "upstream-model", 4096) {
        if let (true, Err(e)) = (chat_ok, anthropic::parse_messages(&bytes(&out))) {
            panic!(
                "a valid chat request translated into an invalid Messages request: {e}\n{out:?}"
            );
        }
    }

    let messages_ok = anthropic::parse_messages(&bytes(body)).is_ok();
    if let Ok(out) = translate::messages_to_chat(body, "upstream-model") {
        if let (true, Err(e)) = (messages_ok, openai::parse_chat_object(out.clone())) {
            panic!(
                "a valid Messages request translated into an invalid chat request: {e}\n{out:?}"
            );
        }
    }

    let responses_ok = wire_responses::parse_responses_object(body.clone()).is_ok();
    if let Ok(out) = responses::responses_to_chat(body, "upstream-model") {
        if let (true, Err(e)) = (responses_ok, openai::parse_chat_object(out.clone())) {
            panic!(
                "a valid Responses request translated into an invalid chat request: {e}\n{out:?}"
            );
        }
    }
    if let Ok(out) = responses::responses_to_messages(body, "upstream-model", 4096) {
        if let (true, Err(e)) = (responses_ok, anthropic::parse_messages(&bytes(&out))) {
            panic!("a valid Responses request translated into an invalid Messages request: {e}\n{out:?}");
        }
    }
}
