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

/// Reads a usage object passed as raw JSON, with `normalize`.
pub(super) fn usage_of(raw: &RawValue, normalize: fn(&Value) -> Option<Usage>) -> Option<Usage> {
    serde_json::from_str::<Value>(raw.get())
        .ok()
        .as_ref()
        .and_then(normalize)
}

/// A member's raw value, `null` included (`Option<&RawValue>` reads a
/// `null` as absent).
fn raw_or_null<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<&'a RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// An OpenAI chat chunk.
#[derive(Debug, Deserialize)]
pub(super) struct ChatChunk<'a> {
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    #[serde(borrow)]
    pub model: Option<&'a RawValue>,
    #[serde(borrow)]
    pub choices: Option<Vec<ChoiceDelta<'a>>>,
    /// The `usage` member, `null` included.
    #[serde(borrow, default, deserialize_with = "raw_or_null")]
    pub usage: Option<&'a RawValue>,
    #[serde(borrow)]
    pub error: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ChoiceDelta<'a> {
    #[serde(borrow)]
    pub delta: Option<Delta<'a>>,
    #[serde(borrow)]
    pub finish_reason: Option<&'a RawValue>,
    #[serde(borrow)]
    pub usage: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Delta<'a> {
    #[serde(borrow)]
    pub role: Option<Text<'a>>,
    #[serde(borrow)]
    pub content: Option<Text<'a>>,
    #[serde(borrow)]
    pub reasoning_content: Option<Text<'a>>,
    #[serde(borrow)]
    pub tool_calls: Option<Vec<ToolCallDelta<'a>>>,
    /// Read only for being there: some translators take text from them.
    #[serde(borrow)]
    pub reasoning: Option<&'a RawValue>,
    #[serde(borrow)]
    pub refusal: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ToolCallDelta<'a> {
    #[serde(borrow)]
    pub function: Option<FunctionDelta<'a>>,
}

#[derive(Debug, Deserialize)]
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

/// An Anthropic stream event.
#[derive(Debug, Deserialize)]
pub(super) struct AnthropicEvent<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Option<Text<'a>>,
    pub index: Option<u64>,
    #[serde(borrow)]
    pub message: Option<AnthropicMessage<'a>>,
    #[serde(borrow)]
    pub usage: Option<&'a RawValue>,
    #[serde(borrow)]
    pub delta: Option<AnthropicDelta<'a>>,
    #[serde(borrow)]
    pub content_block: Option<AnthropicBlock<'a>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct AnthropicMessage<'a> {
    #[serde(borrow)]
    pub model: Option<&'a RawValue>,
    #[serde(borrow)]
    pub usage: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
pub(super) struct ResponsesEvent<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Option<Text<'a>>,
    pub sequence_number: Option<u64>,
    #[serde(borrow)]
    pub delta: Option<&'a RawValue>,
    #[serde(borrow)]
    pub response: Option<ResponseHead<'a>>,
}

/// The parts of a response object a relayed event needs.
#[derive(Debug, Deserialize)]
pub(super) struct ResponseHead<'a> {
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    pub created_at: Option<u64>,
    #[serde(borrow)]
    pub model: Option<&'a RawValue>,
    #[serde(borrow)]
    pub usage: Option<&'a RawValue>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage;

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
