//! Relaying a whole (non-streaming) JSON answer.

use bytes::Bytes;
use serde_json::{Map, Value};

use serde_json::value::RawValue;

use super::collect_choice_text;
use crate::estimate::OutputTally;
use crate::translate;
use crate::usage::{self, Usage};
use crate::wire::Wire;

/// A 2xx answer that is not a usable result.
#[derive(Debug, thiserror::Error)]
pub enum MalformedBody {
    /// Not a JSON object at all.
    #[error("the upstream answered with a body that is not a JSON object")]
    NotJson,
    /// An error object sent with a success status (some servers do).
    #[error("the upstream answered with an error object")]
    ErrorObject,
}

/// A relayed JSON answer.
#[derive(Debug)]
pub struct JsonRelayed {
    /// The body for the client.
    pub body: Bytes,
    /// Usage as the provider reported it, if it did.
    pub usage: Option<Usage>,
    /// The output the model produced, for estimates when usage is missing
    /// (gathered only then).
    pub output: OutputTally,
}

/// The parts of an answer a same-format relay reads, in place.
#[derive(serde::Deserialize)]
struct AnswerView<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(borrow)]
    usage: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
    #[serde(borrow)]
    choices: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    #[serde(borrow)]
    output: Option<&'a RawValue>,
}

fn is_array(raw: Option<&RawValue>) -> bool {
    raw.is_some_and(|r| r.get().starts_with('['))
}

/// Relays an answer whose format the client speaks, reading only what
/// metering needs and rewriting only the model name, in place. `None` when
/// the answer needs the whole-value path (no usage reported, so its text is
/// needed for an estimate, or a shape the view does not know).
fn relay_same_format(
    body: &Bytes,
    client_model: &str,
    wire: Wire,
) -> Option<Result<JsonRelayed, MalformedBody>> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.trim_start().starts_with('{') {
        return Some(Err(MalformedBody::NotJson));
    }
    let view: AnswerView<'_> = serde_json::from_str(text).ok()?;
    let normalize = match wire {
        Wire::OpenAi => {
            if view.error.is_some() && view.choices.is_none() && view.data.is_none() {
                return Some(Err(MalformedBody::ErrorObject));
            }
            usage::from_openai
        }
        Wire::Anthropic => {
            if view.kind.is_some_and(|k| k.get() == "\"error\"")
                || (view.error.is_some() && view.content.is_none())
            {
                return Some(Err(MalformedBody::ErrorObject));
            }
            if !is_array(view.content) {
                return Some(Err(MalformedBody::NotJson));
            }
            usage::from_anthropic
        }
        Wire::Responses => {
            if !is_array(view.output) {
                return Some(Err(if view.error.is_some() {
                    MalformedBody::ErrorObject
                } else {
                    MalformedBody::NotJson
                }));
            }
            translate::responses::from_responses
        }
    };
    let usage = view.usage.and_then(|u| {
        serde_json::from_str::<Value>(u.get())
            .ok()
            .as_ref()
            .and_then(normalize)
    })?;
    let model_json = super::model_json(client_model);
    let body = match view.model {
        Some(m) if m.get() != model_json => {
            let span = super::span_in(text, m.get())?;
            let mut out = Vec::with_capacity(body.len() + model_json.len());
            out.extend_from_slice(&body[..span.start]);
            out.extend_from_slice(model_json.as_bytes());
            out.extend_from_slice(&body[span.end..]);
            Bytes::from(out)
        }
        _ => body.clone(),
    };
    Some(Ok(JsonRelayed {
        body,
        usage: Some(usage),
        output: OutputTally::default(),
    }))
}

/// Relays a 2xx JSON answer (chat completion, embeddings, Anthropic message
/// or Responses object) in the client's format: `model` becomes the
/// client's name, usage is extracted, and every other field passes
/// untouched when the formats match. `request` is the client's request body
/// (a translated Responses answer echoes its settings).
pub fn relay_json(
    body: &Bytes,
    client_model: &str,
    client: Wire,
    upstream: Wire,
    request: &Map<String, Value>,
) -> Result<JsonRelayed, MalformedBody> {
    if client == upstream {
        if let Some(relayed) = relay_same_format(body, client_model, client) {
            return relayed;
        }
    }
    let mut value: Value = serde_json::from_slice(body).map_err(|_| MalformedBody::NotJson)?;
    let obj = value.as_object_mut().ok_or(MalformedBody::NotJson)?;
    let mut output = OutputTally::default();
    let (usage, out) = match upstream {
        Wire::OpenAi => {
            let is_error = obj.get("error").is_some_and(|e| !e.is_null());
            if is_error && !obj.contains_key("choices") && !obj.contains_key("data") {
                return Err(MalformedBody::ErrorObject);
            }
            let usage = usage::from_openai_body(&value);
            if let Some(choices) = value.get("choices").and_then(Value::as_array) {
                for c in choices {
                    collect_choice_text(c, "message", &mut output);
                }
            }
            let out = match client {
                Wire::OpenAi => {
                    if let Some(m) = value.get_mut("model") {
                        *m = Value::String(client_model.to_owned());
                    }
                    value
                }
                Wire::Anthropic => translate::chat_to_message(&value, client_model),
                Wire::Responses => {
                    translate::responses::chat_to_response(&value, client_model, request)
                }
            };
            (usage, out)
        }
        Wire::Anthropic => {
            if obj.get("type").and_then(Value::as_str) == Some("error")
                || (obj.get("error").is_some_and(|e| !e.is_null()) && !obj.contains_key("content"))
            {
                return Err(MalformedBody::ErrorObject);
            }
            if !obj.get("content").is_some_and(Value::is_array) {
                return Err(MalformedBody::NotJson);
            }
            let usage = value.get("usage").and_then(usage::from_anthropic);
            if let Some(blocks) = value.get("content").and_then(Value::as_array) {
                for b in blocks {
                    for key in ["text", "thinking"] {
                        if let Some(t) = b.get(key).and_then(Value::as_str) {
                            output.push(t);
                        }
                    }
                    if let Some(input) = b.get("input") {
                        output.push(&input.to_string());
                    }
                }
            }
            let out = match client {
                Wire::Anthropic => {
                    let same = value.get("model").and_then(Value::as_str) == Some(client_model);
                    if same {
                        // Nothing to change: the upstream's bytes as they are.
                        return Ok(JsonRelayed {
                            body: body.clone(),
                            usage,
                            output,
                        });
                    }
                    if let Some(m) = value.get_mut("model") {
                        *m = Value::String(client_model.to_owned());
                    }
                    value
                }
                Wire::OpenAi => {
                    translate::message_to_chat(&value, client_model, crate::sim::now_secs())
                }
                Wire::Responses => {
                    translate::responses::message_to_response(&value, client_model, request)
                }
            };
            (usage, out)
        }
        // Only a Responses client's request goes to a Responses upstream.
        Wire::Responses => {
            let is_error = obj.get("error").is_some_and(|e| !e.is_null());
            if is_error && !obj.get("output").is_some_and(Value::is_array) {
                return Err(MalformedBody::ErrorObject);
            }
            if !obj.get("output").is_some_and(Value::is_array) {
                return Err(MalformedBody::NotJson);
            }
            let usage = translate::responses::usage_from_response(&value);
            collect_response_text(&value, &mut output);
            if let Some(m) = value.get_mut("model") {
                *m = Value::String(client_model.to_owned());
            }
            (usage, value)
        }
    };
    let body = serde_json::to_vec(&out).map_err(|_| MalformedBody::NotJson)?;
    Ok(JsonRelayed {
        body: Bytes::from(body),
        usage,
        output,
    })
}

/// The text a Responses object's output items carry (for estimates).
fn collect_response_text(response: &Value, out: &mut OutputTally) {
    let Some(items) = response.get("output").and_then(Value::as_array) else {
        return;
    };
    for item in items {
        for key in ["arguments", "input"] {
            if let Some(s) = item.get(key).and_then(Value::as_str) {
                out.push(s);
            }
        }
        for list in ["content", "summary"] {
            for part in item
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(t) = part.get("text").and_then(Value::as_str) {
                    out.push(t);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_rewritten_and_vendor_fields_kept() {
        let body = br#"{"id":"x","model":"kimi-k2.5","choices":[{"index":0,"message":{"role":"assistant","content":"hi","reasoning_content":"think"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"cached_tokens":1}}"#;
        let r = relay_json(
            &Bytes::from_static(body),
            "kimi",
            Wire::OpenAi,
            Wire::OpenAi,
            &Map::new(),
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["model"], "kimi");
        assert_eq!(v["choices"][0]["message"]["reasoning_content"], "think");
        assert_eq!(r.output.tokens(), 0, "usage was reported: no text kept");
        let u = r.usage.unwrap();
        assert_eq!((u.input, u.cached_input, u.output), (4, 1, 2));
    }

    #[test]
    fn non_object_bodies_are_malformed() {
        assert!(matches!(
            relay_json(
                &Bytes::from_static(b"[]"),
                "m",
                Wire::OpenAi,
                Wire::OpenAi,
                &Map::new()
            ),
            Err(MalformedBody::NotJson)
        ));
        assert!(matches!(
            relay_json(
                &Bytes::from_static(b"<html>"),
                "m",
                Wire::OpenAi,
                Wire::OpenAi,
                &Map::new()
            ),
            Err(MalformedBody::NotJson)
        ));
        let err = br#"{"error":{"message":"quota","type":"x"}}"#;
        assert!(matches!(
            relay_json(
                &Bytes::from_static(err),
                "m",
                Wire::OpenAi,
                Wire::OpenAi,
                &Map::new()
            ),
            Err(MalformedBody::ErrorObject)
        ));
    }
}
