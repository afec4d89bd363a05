//! The request translators (chat → Messages, Messages → chat, Responses →
//! chat, Responses → Messages) and the prompt estimates on any JSON body:
//! no panic, and a request valid in its client format translates into one
//! valid in the upstream's (see `tollgate_fuzz::check_request_translations`).
//!
//! Input: a JSON body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(data) {
        tollgate_fuzz::check_request_translations(&body);
    }
});
