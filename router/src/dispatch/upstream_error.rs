//! An upstream's error answer, in the client's format: its status and
//! message pass through, reshaped only where the formats differ.

use bytes::Bytes;
use reqwest::StatusCode;
use serde_json::Value;

use crate::wire::{anthropic, openai, Wire};

/// The metric label for an upstream error status.
pub fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 | 403 => "auth",
        429 => "http_429",
        s if s >= 500 => "http_5xx",
        _ => "http_4xx",
    }
}

/// An upstream error body for a client speaking `client`, with the status
/// the client gets. The vendor's message passes (clients need it), scrubbed
/// of every configured secret; a body that is not error JSON (an HTML page
/// from a proxy, say, which may name internal hosts) is replaced by a short
/// message naming the status.
pub fn for_client(client: Wire, status: StatusCode, body: &Bytes) -> (StatusCode, Bytes) {
    let body = match crate::redact::scrub(body) {
        std::borrow::Cow::Borrowed(_) => body.clone(),
        std::borrow::Cow::Owned(scrubbed) => Bytes::from(scrubbed),
    };
    let body = &body;
    match client {
        Wire::OpenAi | Wire::Responses => openai_error(status, body),
        Wire::Anthropic => (
            status,
            Bytes::from(anthropic::error_from_upstream(status.as_u16(), body).to_string()),
        ),
    }
}

/// An upstream error for an OpenAI-format client: OpenAI-style error JSON
/// passes as it is; Anthropic's error JSON keeps its message and type;
/// anything else is quoted. Anthropic's non-standard 529 (overloaded)
/// becomes 503.
fn openai_error(status: StatusCode, bytes: &Bytes) -> (StatusCode, Bytes) {
    let status = if status.as_u16() == 529 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        status
    };
    let parsed = serde_json::from_slice::<Value>(bytes).ok();
    if let Some(v) = &parsed {
        if v.get("type").and_then(Value::as_str) == Some("error") {
            let message = v
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("The upstream failed.");
            let kind = v
                .pointer("/error/type")
                .and_then(Value::as_str)
                .unwrap_or("api_error");
            let body = openai::error_body(message, kind, None, Some(kind));
            return (status, Bytes::from(body.to_string()));
        }
        if v.get("error").is_some() {
            return (status, bytes.clone());
        }
    }
    let message = crate::wire::not_an_error_object(status.as_u16());
    let body = openai::error_body(&message, "upstream_error", None, Some("upstream_error"));
    (status, Bytes::from(body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_errors_reach_openai_clients_with_their_message() {
        let body = Bytes::from_static(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
        );
        let (status, out) = for_client(Wire::OpenAi, StatusCode::from_u16(529).unwrap(), &body);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["message"], "busy");
        assert_eq!(v["error"]["code"], "overloaded_error");
    }

    #[test]
    fn openai_errors_pass_as_they_are_and_html_is_wrapped() {
        let body = Bytes::from_static(br#"{"error":{"message":"slow down","code":"x"}}"#);
        let (_, out) = for_client(Wire::Responses, StatusCode::TOO_MANY_REQUESTS, &body);
        assert_eq!(out, body);
        let (_, out) = for_client(
            Wire::OpenAi,
            StatusCode::BAD_GATEWAY,
            &Bytes::from_static(b"<html>bad gateway</html>"),
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains("HTTP 502"), "{message}");
        assert!(
            !message.contains("html"),
            "the page itself is not relayed: {message}"
        );
    }

    #[test]
    fn configured_secrets_never_reach_the_client_in_an_upstream_error() {
        crate::redact::register("sk-upstream-key-quoted-back-0001");
        let body = Bytes::from_static(
            br#"{"error":{"message":"Incorrect API key provided: sk-upstream-key-quoted-back-0001","code":"invalid_api_key"}}"#,
        );
        for client in [Wire::OpenAi, Wire::Responses, Wire::Anthropic] {
            let (_, out) = for_client(client, StatusCode::BAD_REQUEST, &body);
            let text = String::from_utf8(out.to_vec()).unwrap();
            assert!(!text.contains("sk-upstream-key"), "{client:?}: {text}");
            assert!(
                text.contains("Incorrect API key provided: [redacted]"),
                "{text}"
            );
        }
    }
}
