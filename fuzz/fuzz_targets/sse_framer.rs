//! The SSE framer (`router::relay::frame`): an upstream body cut into
//! arbitrary pieces frames into the same events as the body in one piece,
//! and every event's fields read in place where they say they are.
//!
//! Input: `[n] [n cut lengths] [body...]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use router::fuzzing::{fields, Framer};
use tollgate_fuzz::Input;

/// The events (and the rest, once the body ended) the framer splits
/// `pieces` into.
fn frame(pieces: &[&[u8]]) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
    let mut framer = Framer::default();
    let mut events = Vec::new();
    for piece in pieces {
        if framer.push(piece).is_err() {
            panic!("a body of {} bytes is not oversized", piece.len());
        }
        while let Some(range) = framer.next_event() {
            events.push(framer.bytes()[range].to_vec());
        }
    }
    let rest = framer.rest().map(|r| framer.bytes()[r].to_vec());
    (events, rest)
}

fuzz_target!(|data: &[u8]| {
    let input = Input::without_selector(data);
    let (events, rest) = frame(&input.pieces());
    let (whole, whole_rest) = frame(&[input.body]);
    assert_eq!(events, whole, "the cuts changed the events");
    assert_eq!(rest, whole_rest, "the cuts changed the rest");

    for event in events.iter().chain(rest.iter()) {
        assert!(
            !event.iter().all(|b| matches!(b, b'\n' | b'\r')),
            "a blank event was handed out"
        );
        let Ok(f) = fields(event) else { continue };
        if let Some(span) = f.data_span {
            assert_eq!(
                &event[span],
                f.data.as_bytes(),
                "data_span does not point at the data"
            );
        }
    }
});
