//! Client request validation (`router::wire`) in all three formats, with
//! the body each sends upstream and the exchange estimates: no panic, and
//! the upstream body of a valid request is itself valid, names the
//! upstream's model and keeps every other field as the client sent it.
//! Also the upstream error pages turned into Anthropic's error shape, and
//! the secret scrubber, on the same bytes.
//!
//! Input: a request body (any bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use router::estimate::{self, OutputTally};
use router::wire::{anthropic, openai, responses};
use router::{redact, Operation};
use serde_json::{Map, Value};

const UPSTREAM_MODEL: &str = "upstream-model";

/// `sent` is `body` with `model` replaced (and, when `usage_forced`,
/// `stream_options.include_usage` set), every other field as it was.
fn check_upstream(body: &Map<String, Value>, sent: &[u8], usage_forced: bool) {
    let Ok(Value::Object(sent)) = serde_json::from_slice::<Value>(sent) else {
        panic!("the upstream body is not a JSON object");
    };
    assert_eq!(
        sent.get("model").and_then(Value::as_str),
        Some(UPSTREAM_MODEL),
        "the upstream body names another model"
    );
    for (k, v) in body {
        match k.as_str() {
            "model" => {}
            "stream_options" if usage_forced => {}
            _ => assert_eq!(sent.get(k), Some(v), "{k} changed on its way upstream"),
        }
    }
    if usage_forced {
        assert_eq!(
            sent.get("stream_options")
                .and_then(|o| o.get("include_usage")),
            Some(&Value::Bool(true)),
            "a stream went upstream without asking for usage"
        );
    }
}

/// What every door's valid request must hold on its way upstream: `sent`
/// keeps `body` (see [`check_upstream`]), is valid in the same format
/// (`reparse`), and estimates without a panic.
fn check_sent(
    body: &Map<String, Value>,
    sent: &[u8],
    usage_forced: bool,
    reparse: fn(&[u8]) -> bool,
    what: &str,
    op: Operation,
) {
    check_upstream(body, sent, usage_forced);
    assert!(reparse(sent), "the upstream {what} body is not valid");
    let _ = estimate::exchange(op, sent, &OutputTally::default());
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = openai::parse_chat(data) {
        let sent = r.upstream_body(UPSTREAM_MODEL);
        let valid = |b: &[u8]| openai::parse_chat(b).is_ok();
        check_sent(
            r.body(),
            &sent,
            r.stream,
            valid,
            "chat",
            Operation::ChatCompletions,
        );
    }
    if let Ok(r) = openai::parse_embeddings(data) {
        let sent = r.upstream_body(UPSTREAM_MODEL);
        let valid = |b: &[u8]| openai::parse_embeddings(b).is_ok();
        check_sent(
            r.body(),
            &sent,
            false,
            valid,
            "embeddings",
            Operation::Embeddings,
        );
    }
    if let Ok(r) = anthropic::parse_messages(data) {
        let sent = r.upstream_body(UPSTREAM_MODEL);
        let valid = |b: &[u8]| anthropic::parse_messages(b).is_ok();
        check_sent(
            r.body(),
            &sent,
            false,
            valid,
            "Messages",
            Operation::Messages,
        );
    }
    if let Ok(r) = anthropic::parse_count_tokens(data) {
        let _ = estimate::exchange(
            Operation::CountTokens,
            &r.upstream_body(UPSTREAM_MODEL),
            &OutputTally::default(),
        );
    }
    if let Ok(r) = responses::parse_responses(data) {
        let sent = r.upstream_body(UPSTREAM_MODEL);
        let valid = |b: &[u8]| responses::parse_responses(b).is_ok();
        check_sent(
            r.body(),
            &sent,
            false,
            valid,
            "Responses",
            Operation::Responses,
        );
    }

    // The same bytes as an upstream's error page.
    let status = 400 + u16::from(data.first().copied().unwrap_or(0) % 200);
    let err = anthropic::error_from_upstream(status, data);
    assert!(err.is_object(), "an error body that is not an object");
    let _ = redact::scrub(data);
});
