//! Client wire formats: request validation and the error shapes each format
//! expects: OpenAI's chat completions and embeddings, Anthropic's Messages
//! API, and OpenAI's Responses API.
//!
//! # The rule: liberal in what passes through
//! Validation checks only what Tollgate itself reads: `model` (to route),
//! `stream`, the output limit and the conversation's container (`messages`,
//! `input`), which the budget's worst case and the estimates read, with the
//! type Tollgate needs. Everything else (roles, content block and part
//! types, sampling settings, vendor fields, fields that did not exist when
//! this was written) is the upstream's to judge: refusing what the vendor
//! would accept is a bug, and agents send new roles and fields every few
//! months. When the client's format and the upstream's match, the body
//! passes through untouched and in order, only `model` replaced. When they
//! differ, the translation (see `crate::translate`) handles each construct,
//! or refuses with a 400 naming it where dropping it would change the
//! answer.

pub mod anthropic;
pub mod openai;
pub mod responses;

use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use openai::RequestError;

/// A request body as an upstream receives it, serialized straight from the
/// client's map (no copy of a possibly large prompt): `model` replaced, and
/// `stream_options.include_usage` forced on when `force_usage`. Every other
/// field keeps its value and place.
struct Upstream<'a> {
    body: &'a Map<String, Value>,
    model: &'a str,
    force_usage: bool,
}

impl Serialize for Upstream<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let usage_on = |opts: Option<&Value>| {
            let mut o = opts.and_then(Value::as_object).cloned().unwrap_or_default();
            o.insert("include_usage".into(), Value::Bool(true));
            o
        };
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.body {
            match k.as_str() {
                "model" => map.serialize_entry(k, self.model)?,
                "stream_options" if self.force_usage => {
                    map.serialize_entry(k, &usage_on(Some(v)))?
                }
                _ => map.serialize_entry(k, v)?,
            }
        }
        if !self.body.contains_key("model") {
            map.serialize_entry("model", self.model)?;
        }
        if self.force_usage && !self.body.contains_key("stream_options") {
            map.serialize_entry("stream_options", &usage_on(None))?;
        }
        map.end()
    }
}

/// Serializes `body` for an upstream (see [`Upstream`]).
pub(crate) fn upstream_bytes(body: &Map<String, Value>, model: &str, force_usage: bool) -> Bytes {
    let up = Upstream {
        body,
        model,
        force_usage,
    };
    // A map of JSON values always serializes.
    Bytes::from(serde_json::to_vec(&up).unwrap_or_default())
}

/// The body as a JSON object, or why not.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, RequestError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(RequestError::NotObject),
        Err(e) => Err(RequestError::NotJson(e.to_string())),
    }
}

/// A field with the wrong type or value.
pub(crate) fn invalid(field: impl Into<String>, expected: &'static str) -> RequestError {
    RequestError::Invalid {
        field: field.into(),
        expected,
    }
}

/// A wire format, spoken by a client or an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI's chat completions (and embeddings).
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// OpenAI's Responses API.
    Responses,
}

impl Wire {
    /// A label for logs, metrics and the ledger.
    pub fn label(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Responses => "responses",
        }
    }
}

/// The message a client gets for an upstream error whose body is not an
/// error object (an HTML page from a proxy, say): the status only, since
/// such pages may name internal hosts.
pub fn not_an_error_object(status: u16) -> String {
    format!("The upstream answered HTTP {status} without an error object.")
}
