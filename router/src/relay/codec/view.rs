//! Borrowed, partial views of upstream events: only what metering and the
//! model name need, read in place from the event's data. Every field the
//! views do not name is skipped without being built; strings without
//! escapes are not copied. When an event does not fit its view (a vendor's
//! unusual shape), the codec falls back to reading the whole value.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

pub(super) use crate::relay::span_in;

use serde::de::{Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::scan::{Scan, Seen};
use crate::usage::Usage;

/// A JSON string, borrowed from the event when it has no escapes.
#[derive(Debug)]
pub(super) struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// The span of a whole object member (`"key": value` and one comma next to
/// it) in `json`, given its value's span: what to cut to remove the member.
/// `None` when the text around the value is not a plain member of an object.
pub(super) fn member_span(json: &str, value: Range<usize>) -> Option<Range<usize>> {
    let bytes = json.as_bytes();
    let skip_ws_back = |mut i: usize| {
        while i > 0 && bytes[i - 1].is_ascii_whitespace() {
            i -= 1;
        }
        i
    };
    let skip_ws_fwd = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    // Back over `:` and the key, a string without escapes.
    let colon = skip_ws_back(value.start);
    if colon == 0 || bytes[colon - 1] != b':' {
        return None;
    }
    let key_end = skip_ws_back(colon - 1);
    if key_end < 2 || bytes[key_end - 1] != b'"' {
        return None;
    }
    let key_start = json[..key_end - 1].rfind('"')?;
    if json[key_start + 1..key_end - 1].contains('\\') {
        return None;
    }
    let before = skip_ws_back(key_start);
    let after = skip_ws_fwd(value.end);
    match (before.checked_sub(1).map(|i| bytes[i]), bytes.get(after)) {
        // `, "k": v` — cut from the comma before.
        (Some(b','), _) => Some(before - 1..value.end),
        // `{"k": v, ...` — cut through the comma after.
        (Some(b'{'), Some(b',')) => Some(key_start..skip_ws_fwd(after + 1)),
        // `{"k": v}` — the only member.
        (Some(b'{'), Some(b'}')) => Some(key_start..value.end),
        _ => None,
    }
}

/// A member's value as the raw JSON text it spans in the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Raw<'a>(&'a str);

impl<'a> Raw<'a> {
    /// The JSON text.
    pub fn get(self) -> &'a str {
        self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&RawValue>::deserialize(d).map(|r| Raw(r.get()))
    }
}

/// Reads a usage object passed as raw JSON, with `normalize`.
pub(super) fn usage_of(raw: Raw<'_>, normalize: fn(&Value) -> Option<Usage>) -> Option<Usage> {
    serde_json::from_str::<Value>(raw.get())
        .ok()
        .as_ref()
        .and_then(normalize)
}

/// A member's raw value, `null` included (`Option<&RawValue>` reads a
/// `null` as absent).
fn raw_or_null<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Raw<'a>>, D::Error> {
    Raw::deserialize(d).map(Some)
}

/// An OpenAI chat chunk.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ChatChunk<'a> {
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    #[serde(borrow)]
    pub model: Option<Raw<'a>>,
    #[serde(borrow)]
    pub choices: Option<Items<ChoiceDelta<'a>>>,
    /// The `usage` member, `null` included.
    #[serde(borrow, default, deserialize_with = "raw_or_null")]
    pub usage: Option<Raw<'a>>,
    #[serde(borrow)]
    pub error: Option<Raw<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ChoiceDelta<'a> {
    #[serde(borrow)]
    pub delta: Option<Delta<'a>>,
    #[serde(borrow)]
    pub finish_reason: Option<Raw<'a>>,
    #[serde(borrow)]
    pub usage: Option<Raw<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Delta<'a> {
    #[serde(borrow)]
    pub role: Option<Text<'a>>,
    #[serde(borrow)]
    pub content: Option<Text<'a>>,
    #[serde(borrow)]
    pub reasoning_content: Option<Text<'a>>,
    #[serde(borrow)]
    pub tool_calls: Option<Items<ToolCallDelta<'a>>>,
    /// Read only for being there: some translators take text from them.
    #[serde(borrow)]
    pub reasoning: Option<Raw<'a>>,
    #[serde(borrow)]
    pub refusal: Option<Raw<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ToolCallDelta<'a> {
    #[serde(borrow)]
    pub function: Option<FunctionDelta<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct FunctionDelta<'a> {
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
    #[serde(borrow)]
    pub arguments: Option<Text<'a>>,
}

impl Delta<'_> {
    /// Every piece of text the delta carries, in the order the slow path
    /// collects them (reasoning, content, tool names and arguments).
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        let calls = self
            .tool_calls
            .iter()
            .flatten()
            .filter_map(|c| c.function.as_ref());
        self.reasoning_content
            .iter()
            .chain(self.content.iter())
            .map(|t| &**t)
            .chain(calls.flat_map(|f| f.name.iter().chain(f.arguments.iter()).map(|t| &**t)))
    }
}

// The hand-written readers below read exactly what the derived
// `Deserialize` implementations above read (a test and a fuzz target hold
// them to it), without the generic machinery: they run on every event.

/// `null` as `None`, else a string.
fn opt_text<'a>(s: &mut Scan<'a>) -> Option<Option<Text<'a>>> {
    if s.null() {
        return Some(None);
    }
    s.string().map(|t| Some(Text(t)))
}

/// `null` as `None`, else any value as its raw text.
fn opt_raw<'a>(s: &mut Scan<'a>) -> Option<Option<Raw<'a>>> {
    if s.null() {
        return Some(None);
    }
    s.raw().map(|r| Some(Raw(r)))
}

/// Any value as its raw text, `null` included (as `raw_or_null` reads it).
fn raw_or_null_text<'a>(s: &mut Scan<'a>) -> Option<Option<Raw<'a>>> {
    s.raw().map(|r| Some(Raw(r)))
}

/// `null` as `None`, else a whole number that fits in a `u64`.
fn opt_u64(s: &mut Scan<'_>) -> Option<Option<u64>> {
    if s.null() {
        return Some(None);
    }
    s.u64().map(Some)
}

/// A view read from a JSON object by the hand-written reader.
trait Members<'a>: Default {
    /// Reads the object at the cursor into `v`.
    fn members(s: &mut Scan<'a>, v: &mut Self) -> Option<()>;
}

/// `null` as `None`, else an object read in place.
fn opt_obj<'a, T: Members<'a>>(s: &mut Scan<'a>) -> Option<Option<T>> {
    if s.null() {
        return Some(None);
    }
    let mut out = T::default();
    T::members(s, &mut out)?;
    Some(Some(out))
}

/// `null` as `None`, else an array of objects, each read in place.
fn opt_vec<'a, T: Members<'a>>(s: &mut Scan<'a>) -> Option<Option<Items<T>>> {
    if s.null() {
        return Some(None);
    }
    let mut out = Items::Many(Vec::new());
    s.array(|s| {
        let mut item = T::default();
        T::members(s, &mut item)?;
        out.push(item);
        Some(())
    })?;
    Some(Some(out))
}

/// An array's elements, as a slice: one element, the usual case (one choice,
/// one tool call a chunk), is kept in place, so reading an event allocates
/// nothing; more go in a `Vec`.
#[derive(Debug)]
pub(super) enum Items<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> Items<T> {
    fn push(&mut self, item: T) {
        *self = match std::mem::replace(self, Items::Many(Vec::new())) {
            Items::Many(v) if v.is_empty() => Items::One(item),
            Items::Many(mut v) => {
                v.push(item);
                Items::Many(v)
            }
            Items::One(first) => Items::Many(vec![first, item]),
        };
    }
}

impl<T> std::ops::Deref for Items<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Items::One(item) => std::slice::from_ref(item),
            Items::Many(items) => items,
        }
    }
}

impl<'s, T> IntoIterator for &'s Items<T> {
    type Item = &'s T;
    type IntoIter = std::slice::Iter<'s, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Items<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = Items::Many(Vec::new());
        for item in Vec::<T>::deserialize(d)? {
            out.push(item);
        }
        Ok(out)
    }
}

/// A whole event's data as the view `T`; `None` when it is not a JSON
/// object this view reads (the codec then reads it whole).
fn read_whole<'a, T: Members<'a>>(data: &'a str) -> Option<T> {
    let mut s = Scan::new(data);
    let mut v = T::default();
    T::members(&mut s, &mut v)?;
    s.end()?;
    Some(v)
}

/// How a view reads its object: each named member with its reader, once
/// (a member named twice makes the text one the views do not read, as
/// serde_json refuses a field twice); every other member skipped.
macro_rules! members {
    ($view:ident { $($key:literal => $field:ident: $read:expr),+ $(,)? }) => {
        impl<'a> Members<'a> for $view<'a> {
            fn members(s: &mut Scan<'a>, v: &mut Self) -> Option<()> {
                let mut seen = Seen::default();
                s.object(|s, key| {
                    let mut bit = 0;
                    $(
                        if key == $key {
                            v.$field = seen.first(bit, $read(s))?;
                            return Some(());
                        }
                        bit += 1;
                    )+
                    let _ = bit;
                    s.skip()
                })
            }
        }
    };
}

members!(ChatChunk {
    "id" => id: opt_text,
    "model" => model: opt_raw,
    "choices" => choices: opt_vec,
    "usage" => usage: raw_or_null_text,
    "error" => error: opt_raw,
});
members!(ChoiceDelta {
    "delta" => delta: opt_obj,
    "finish_reason" => finish_reason: opt_raw,
    "usage" => usage: opt_raw,
});
members!(Delta {
    "role" => role: opt_text,
    "content" => content: opt_text,
    "reasoning_content" => reasoning_content: opt_text,
    "tool_calls" => tool_calls: opt_vec,
    "reasoning" => reasoning: opt_raw,
    "refusal" => refusal: opt_raw,
});
members!(ToolCallDelta {
    "function" => function: opt_obj,
});
members!(FunctionDelta {
    "name" => name: opt_text,
    "arguments" => arguments: opt_text,
});

impl<'a> ChatChunk<'a> {
    /// Reads a chunk's data; `None` when it is not a JSON object this view
    /// reads (the codec then reads it whole).
    pub fn read(data: &'a str) -> Option<Self> {
        read_whole(data)
    }
}

/// An Anthropic stream event.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AnthropicEvent<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Option<Text<'a>>,
    pub index: Option<u64>,
    #[serde(borrow)]
    pub message: Option<AnthropicMessage<'a>>,
    #[serde(borrow)]
    pub usage: Option<Raw<'a>>,
    #[serde(borrow)]
    pub delta: Option<AnthropicDelta<'a>>,
    #[serde(borrow)]
    pub content_block: Option<AnthropicBlock<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct AnthropicMessage<'a> {
    #[serde(borrow)]
    pub model: Option<Raw<'a>>,
    #[serde(borrow)]
    pub usage: Option<Raw<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct AnthropicDelta<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Option<Text<'a>>,
    #[serde(borrow)]
    pub text: Option<Text<'a>>,
    #[serde(borrow)]
    pub thinking: Option<Text<'a>>,
    #[serde(borrow)]
    pub partial_json: Option<Text<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct AnthropicBlock<'a> {
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
}

impl AnthropicEvent<'_> {
    /// The text the event carries, as the slow path collects it.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        let delta = self.delta.iter().flat_map(|d| {
            d.text
                .iter()
                .chain(d.thinking.iter())
                .chain(d.partial_json.iter())
        });
        let block = self.content_block.iter().filter_map(|b| b.name.as_ref());
        delta.chain(block).map(|t| &**t)
    }
}

/// A Responses API stream event.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ResponsesEvent<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Option<Text<'a>>,
    pub sequence_number: Option<u64>,
    #[serde(borrow)]
    pub delta: Option<Raw<'a>>,
    #[serde(borrow)]
    pub response: Option<ResponseHead<'a>>,
}

/// The parts of a response object a relayed event needs.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ResponseHead<'a> {
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    pub created_at: Option<u64>,
    #[serde(borrow)]
    pub model: Option<Raw<'a>>,
    #[serde(borrow)]
    pub usage: Option<Raw<'a>>,
}

members!(AnthropicEvent {
    "type" => kind: opt_text,
    "index" => index: opt_u64,
    "message" => message: opt_obj,
    "usage" => usage: opt_raw,
    "delta" => delta: opt_obj,
    "content_block" => content_block: opt_obj,
});
members!(AnthropicMessage {
    "model" => model: opt_raw,
    "usage" => usage: opt_raw,
});
members!(AnthropicDelta {
    "type" => kind: opt_text,
    "text" => text: opt_text,
    "thinking" => thinking: opt_text,
    "partial_json" => partial_json: opt_text,
});
members!(AnthropicBlock {
    "name" => name: opt_text,
});
members!(ResponsesEvent {
    "type" => kind: opt_text,
    "sequence_number" => sequence_number: opt_u64,
    "delta" => delta: opt_raw,
    "response" => response: opt_obj,
});
members!(ResponseHead {
    "id" => id: opt_text,
    "created_at" => created_at: opt_u64,
    "model" => model: opt_raw,
    "usage" => usage: opt_raw,
});

impl<'a> AnthropicEvent<'a> {
    /// Reads an event's data; `None` when it is not a JSON object this
    /// view reads (the codec then reads it whole).
    pub fn read(data: &'a str) -> Option<Self> {
        read_whole(data)
    }
}

impl<'a> ResponsesEvent<'a> {
    /// Reads an event's data; `None` when it is not a JSON object this
    /// view reads (the codec then reads it whole).
    pub fn read(data: &'a str) -> Option<Self> {
        read_whole(data)
    }
}

/// Reads `data` with each view's hand-written reader and with `serde_json`,
/// and panics where the reader accepts what `serde_json` does not, or reads
/// it differently (for the fuzz target and tests; the reader may refuse
/// what `serde_json` reads: that only sends the event the slower way).
#[cfg(any(test, feature = "fuzzing"))]
pub fn check_readers(data: &str) {
    if let Some(fast) = ChatChunk::read(data) {
        let slow: ChatChunk<'_> = serde_json::from_str(data).unwrap_or_else(|e| {
            panic!("the chat chunk reader took what serde_json refuses ({e}): {data}")
        });
        assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{data}");
    }
    if let Some(fast) = AnthropicEvent::read(data) {
        let slow: AnthropicEvent<'_> = serde_json::from_str(data).unwrap_or_else(|e| {
            panic!("the Anthropic event reader took what serde_json refuses ({e}): {data}")
        });
        assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{data}");
    }
    if let Some(fast) = ResponsesEvent::read(data) {
        let slow: ResponsesEvent<'_> = serde_json::from_str(data).unwrap_or_else(|e| {
            panic!("the Responses event reader took what serde_json refuses ({e}): {data}")
        });
        assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{data}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage;

    /// Both readers build `Items` the same way, so the test holding them
    /// to each other cannot see it lose an element: this one does.
    #[test]
    fn items_keep_every_element_in_order() {
        let mut items = Items::Many(Vec::new());
        assert!(items.is_empty());
        for n in 0..4 {
            items.push(n);
            assert_eq!(&*items, (0..=n).collect::<Vec<_>>().as_slice());
        }
        let chunk: ChatChunk<'_> = read_whole(
            r#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}},{"delta":{"content":"c"}}]}"#,
        )
        .unwrap();
        let texts: Vec<&str> = chunk
            .choices
            .iter()
            .flatten()
            .filter_map(|c| c.delta.as_ref()?.content.as_deref())
            .collect();
        assert_eq!(texts, ["a", "b", "c"]);
    }

    #[test]
    fn chunks_are_read_in_place() {
        let data = r#"{"id":"c","model":"kimi-k2.5","choices":[{"index":0,"delta":{"role":"","content":"a\"b","reasoning_content":"r","tool_calls":[{"function":{"name":"f","arguments":"{}"}}]},"finish_reason":null}],"usage":null,"extra":{"deep":[1,2,{"x":"y"}]}}"#;
        let c: ChatChunk<'_> = serde_json::from_str(data).unwrap();
        let model = c.model.unwrap().get();
        assert_eq!(&data[span_in(data, model).unwrap()], "\"kimi-k2.5\"");
        assert_eq!(c.usage.unwrap().get(), "null");
        let choices = c.choices.unwrap();
        let delta = choices[0].delta.as_ref().unwrap();
        assert_eq!(delta.texts().collect::<String>(), "ra\"bf{}");
        assert!(matches!(delta.role.as_ref().unwrap().0, Cow::Borrowed("")));
        assert!(choices[0].finish_reason.is_none());
    }

    /// What vendors send reads the fast way, and reads as `serde_json`
    /// reads it; odd shapes are either read the same or left to the slow
    /// path.
    #[test]
    fn the_readers_take_what_vendors_send_and_agree_with_serde() {
        let common = [
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{"content":" wor\u00e9ld\n"},"finish_reason":null}],"usage":null}"#,
            r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop","usage":{"prompt_tokens":5,"completion_tokens":2}}]}"#,
            r#"{"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0}}}"#,
            r#"{"id":"c","choices":[{"delta":{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}"#,
            r#"{"id":"c","model":"deepseek-reasoner","choices":[{"delta":{"reasoning_content":"think","content":null,"role":""}}]}"#,
            r#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"usage":{"input_tokens":5,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi \"x\""}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
            r#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"i","output_index":0,"content_index":0,"delta":"hi"}"#,
            r#"{"type":"response.completed","sequence_number":9,"response":{"id":"r","object":"response","created_at":1700000000,"model":"gpt-5","usage":{"input_tokens":3,"output_tokens":4},"output":[]}}"#,
        ];
        for (i, data) in common.iter().enumerate() {
            check_readers(data);
            let read = match i {
                0..6 => ChatChunk::read(data).is_some(),
                6..10 => AnthropicEvent::read(data).is_some(),
                _ => ResponsesEvent::read(data).is_some(),
            };
            assert!(read, "its view reads it: {data}");
        }
        let odd = [
            r#"{"id":"c","id":"d"}"#,
            r#"{"choices":[null]}"#,
            r#"{"choices":[[{"content":"x"}]]}"#,
            r#"{"index":-1}"#,
            r#"{"index":1.5,"type":"x"}"#,
            r#"{"sequence_number":18446744073709551616}"#,
            r#"{"type":7}"#,
            r#"{"delta":"\ud800"}"#,
            r#"{"type":"\ud800"}"#,
            r#"{"mod\u0065l":"x","usage":null,"error":null}"#,
            r#"[1,2]"#,
            r#"{"choices":[{"delta":{"content":"a"}}]} x"#,
            r#"{"a":01}"#,
            r#"{"a":[1,2,]}"#,
        ];
        for data in odd {
            check_readers(data);
        }
        assert_eq!(
            ChatChunk::read(r#"{"mod\u0065l":"x"}"#)
                .and_then(|c| c.model)
                .map(Raw::get),
            Some("\"x\"")
        );
        assert!(ChatChunk::read(r#"{"id":"c","id":"d"}"#).is_none());
    }

    #[test]
    fn members_are_cut_whole() {
        let cut = |json: &str, key: &str| {
            let v: Value = serde_json::from_str(json).unwrap();
            let raw: std::collections::HashMap<String, &RawValue> =
                serde_json::from_str(json).unwrap();
            let span = member_span(json, span_in(json, raw[key].get()).unwrap()).unwrap();
            let mut out = json.to_owned();
            out.replace_range(span, "");
            let mut want = v.as_object().unwrap().clone();
            want.remove(key);
            assert_eq!(
                serde_json::from_str::<Value>(&out).unwrap(),
                Value::Object(want),
                "{out}"
            );
        };
        cut(r#"{"a":1,"usage":null,"b":2}"#, "usage");
        cut(r#"{"a":1,"usage":null}"#, "usage");
        cut(r#"{"usage":null,"b":2}"#, "usage");
        cut(r#"{ "usage" : {"x":[1]} }"#, "usage");
        cut(r#"{"a":"\"usage\"", "usage": 3 , "b": [] }"#, "usage");
    }

    #[test]
    fn anthropic_and_responses_events_are_read_in_place() {
        let data = r#"{"type":"message_start","message":{"id":"m","model":"glm-4.6","usage":{"input_tokens":5}}}"#;
        let e: AnthropicEvent<'_> = serde_json::from_str(data).unwrap();
        assert_eq!(e.kind.as_deref(), Some("message_start"));
        let u = usage_of(e.message.unwrap().usage.unwrap(), usage::from_anthropic).unwrap();
        assert_eq!(u.input, 5);
        let data = r#"{"type":"response.output_text.delta","sequence_number":4,"delta":"hi"}"#;
        let e: ResponsesEvent<'_> = serde_json::from_str(data).unwrap();
        assert_eq!(
            (e.sequence_number, e.delta.unwrap().get()),
            (Some(4), "\"hi\"")
        );
    }
}
