//! Whole (non-stream) answers: `router::relay::relay_json` for every pair
//! of client and upstream format, and the answer translators on their own
//! (chat → Messages, Messages → chat, chat → Responses, Messages →
//! Responses). No panic; a relayed body is JSON and names the client's
//! model wherever it names one.
//!
//! Input: `[selector] [body...]`: bits 0-1 client format, 2-3 upstream
//! format, 4-5 the client's request (see `tollgate_fuzz::request`).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use router::relay::relay_json;
use router::translate::{self, responses};
use serde_json::Value;
use tollgate_fuzz::{request, wire};

const CLIENT_MODEL: &str = "client-model";

fuzz_target!(|data: &[u8]| {
    let Some((&s, body)) = data.split_first() else {
        return;
    };
    let (client, upstream) = (wire(s), wire(s >> 2));
    let req = request(s >> 4);
    let body = Bytes::copy_from_slice(body);

    if let Ok(relayed) = relay_json(&body, CLIENT_MODEL, client, upstream, &req) {
        let out: Value = serde_json::from_slice(&relayed.body).unwrap_or_else(|e| {
            panic!("{client:?} client, {upstream:?} upstream: the relayed body is not JSON: {e}")
        });
        if let Some(model) = out.get("model").and_then(Value::as_str) {
            assert_eq!(
                model, CLIENT_MODEL,
                "{client:?} client, {upstream:?} upstream: the answer names another model"
            );
        }
        let _ = relayed.output.tokens();
    }

    if let Ok(answer) = serde_json::from_slice::<Value>(&body) {
        let _ = translate::chat_to_message(&answer, CLIENT_MODEL);
        let _ = translate::message_to_chat(&answer, CLIENT_MODEL, 1_700_000_000);
        let _ = responses::chat_to_response(&answer, CLIENT_MODEL, &req);
        let _ = responses::message_to_response(&answer, CLIENT_MODEL, &req);
    }
});
