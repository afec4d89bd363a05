//! Relaying a whole (non-streaming) JSON answer.

use bytes::Bytes;
use serde_json::Value;

use super::collect_choice_text;
use crate::usage::{self, Usage};

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

/// Rewrites `model` to the client's name and extracts usage from a 2xx JSON
/// answer (chat completion or embeddings). Every other field passes untouched.
pub fn relay_json(body: &[u8], client_model: &str) -> Result<JsonRelayed, MalformedBody> {
    let mut value: Value = serde_json::from_slice(body).map_err(|_| MalformedBody::NotJson)?;
    let obj = value.as_object_mut().ok_or(MalformedBody::NotJson)?;
    let is_error = obj.get("error").is_some_and(|e| !e.is_null());
    if is_error && !obj.contains_key("choices") && !obj.contains_key("data") {
        return Err(MalformedBody::ErrorObject);
    }
    if let Some(m) = obj.get_mut("model") {
        *m = Value::String(client_model.to_owned());
    }
    let usage = usage::from_openai_body(&value);
    let mut output_text = String::new();
    if let Some(choices) = value.get("choices").and_then(Value::as_array) {
        for c in choices {
            collect_choice_text(c, "message", &mut output_text);
        }
    }
    let body = serde_json::to_vec(&value).map_err(|_| MalformedBody::NotJson)?;
    Ok(JsonRelayed {
        body: Bytes::from(body),
        usage,
        output_text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_rewritten_and_vendor_fields_kept() {
        let body = br#"{"id":"x","model":"kimi-k2.5","choices":[{"index":0,"message":{"role":"assistant","content":"hi","reasoning_content":"think"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"cached_tokens":1}}"#;
        let r = relay_json(body, "kimi").unwrap();
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
            relay_json(b"[]", "m"),
            Err(MalformedBody::NotJson)
        ));
        assert!(matches!(
            relay_json(b"<html>", "m"),
            Err(MalformedBody::NotJson)
        ));
        let err = br#"{"error":{"message":"quota","type":"x"}}"#;
        assert!(matches!(
            relay_json(err, "m"),
            Err(MalformedBody::ErrorObject)
        ));
    }
}
