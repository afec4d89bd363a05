//! The relay's hand-written readers of stream events (the chat chunk, the
//! Anthropic event and the Responses event views): whatever one accepts,
//! `serde_json` reads the same way; what one refuses goes the slow way.
//!
//! Input: the event's data, as text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        router::fuzzing::check_event_readers(text);
    }
});
