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

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = openai::parse_chat(data) {
        let sent = r.upstream_body(UPSTREAM_MODEL);
        check_upstream(r.body(), &sent, r.stream);
        assert!(
            openai::parse_chat(&sent).is_ok(),
            "the upstream chat body is not valid"
        );
        let _ = estimate::exchange(Operation::ChatCompletions, &sent, &OutputTally::default());
    }
    if let Ok(r) = openai::parse_embeddings(data) {
        let sent = r.upstream_body(UPSTREAM_MODEL);
        check_upstream(r.body(), &sent, false);
        assert!(
            openai::parse_embeddings(&sent).is_ok(),
            "the upstream embeddings body is not valid"
        );
        let _ = estimate::exchange(Operation::Embeddings, &sent, &OutputTally::default());
    }
    if let Ok(r) = anthropic::parse_messages(data) {
        let sent = r.upstream_body(UPSTREAM_MODEL);
        check_upstream(r.body(), &sent, false);
        assert!(
            anthropic::parse_messages(&sent).is_ok(),
            "the upstream Messages body is not valid"
        );
        let _ = estimate::exchange(Operation::Messages, &sent, &OutputTally::default());
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
        check_upstream(r.body(), &sent, false);
        assert!(
            responses::parse_responses(&sent).is_ok(),
            "the upstream Responses body is not valid"
        );
        let _ = estimate::exchange(Operation::Responses, &sent, &OutputTally::default());
    }

    // The same bytes as an upstream's error page.
    let status = 400 + u16::from(data.first().copied().unwrap_or(0) % 200);
    let err = anthropic::error_from_upstream(status, data);
    assert!(err.is_object(), "an error body that is not an object");
    let _ = redact::scrub(data);
});
