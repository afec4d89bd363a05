//! The HTTP/1 body decoder of streams read on their own connections
//! (`router::provider::h1`): a body cut into arbitrary pieces, as reads
//! cut it, decodes to the same bytes, ends at the same point and fails
//! with the same error as the body in one piece; no body panics, and none
//! decodes to more than it holds. The response head parser runs over every
//! body too.
//!
//! Input: `[selector] [n] [n cut lengths] [body...]`; the selector picks
//! the framing (chunked, a content-length, or until the connection closes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use router::fuzzing::decode_upstream_body;
use tollgate_fuzz::Input;

fuzz_target!(|data: &[u8]| {
    let input = Input::with_selector(data);
    let cut = decode_upstream_body(input.selector, &input.pieces());
    let whole = decode_upstream_body(input.selector, &[input.body]);
    assert_eq!(cut, whole, "the cuts changed the decoding");
    assert!(whole.0.len() <= input.body.len(), "decoded to more than the body");
});
