//! Relaying a whole (non-streaming) JSON answer.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::collect_choice_text;
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
    /// The text the model produced, for estimates when usage is missing.
    pub output_text: String,
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
    let mut value: Value = serde_json::from_slice(body).map_err(|_| MalformedBody::NotJson)?;
    let obj = value.as_object_mut().ok_or(MalformedBody::NotJson)?;
    let mut output_text = String::new();
    let (usage, out) = match upstream {
        Wire::OpenAi => {
            let is_error = obj.get("error").is_some_and(|e| !e.is_null());
            if is_error && !obj.contains_key("choices") && !obj.contains_key("data") {
                return Err(MalformedBody::ErrorObject);
            }
            let usage = usage::from_openai_body(&value);
            if let Some(choices) = value.get("choices").and_then(Value::as_array) {
                for c in choices {
                    collect_choice_text(c, "message", &mut output_text);
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
                            output_text.push_str(t);
                        }
                    }
                    if let Some(input) = b.get("input") {
                        output_text.push_str(&input.to_string());
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
                            output_text,
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
            collect_response_text(&value, &mut output_text);
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
        output_text,
    })
}

/// The text a Responses object's output items carry (for estimates).
fn collect_response_text(response: &Value, out: &mut String) {
    let Some(items) = response.get("output").and_then(Value::as_array) else {
        return;
    };
    for item in items {
        for key in ["arguments", "input"] {
            if let Some(s) = item.get(key).and_then(Value::as_str) {
                out.push_str(s);
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
                    out.push_str(t);
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
        assert_eq!(r.output_text, "thinkhi");
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
