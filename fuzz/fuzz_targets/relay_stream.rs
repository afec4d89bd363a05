//! The stream relay (`router::relay::relay_stream`) for every pair of
//! client and upstream format: an arbitrary upstream body, cut into
//! arbitrary pieces, ending normally, with a transport error or a timeout,
//! read whole by the client or dropped part way. `on_end` runs exactly once,
//! before the client's last piece; a translated stream's frames are
//! well-formed events with JSON data.
//!
//! Input: `[selector] [n] [n cut lengths] [body...]`. The selector's bits:
//! 0-1 client format, 2-3 upstream format, 4 include_usage, 5-6 how the
//! upstream ends, 7 whether the client leaves after its first piece. The
//! number of cuts picks the client's request (see `tollgate_fuzz::request`).
#![no_main]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use libfuzzer_sys::fuzz_target;
use router::provider::{ByteStream, ProviderError, TimeoutPhase};
use router::relay::{relay_stream, StreamOptions, Summary};
use router::wire::Wire;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tollgate_fuzz::{block_on, frames_are_json, request, wire, Input};

fuzz_target!(|data: &[u8]| {
    let input = Input::with_selector(data);
    let s = input.selector;
    let (client, upstream) = (wire(s), wire(s >> 2));
    let include_usage = s & 0x10 != 0;
    let leaves_early = s & 0x80 != 0;
    let ending = match (s >> 5) & 3 {
        0 => None,
        1 => Some(ProviderError::Transport("reset".into())),
        2 => Some(ProviderError::Timeout(TimeoutPhase::Idle)),
        _ => Some(ProviderError::Shutdown),
    };
    let req = request(input.cuts.len() as u8);

    let mut items: Vec<Result<Bytes, ProviderError>> = input
        .pieces()
        .into_iter()
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    items.extend(ending.map(Err));
    let body: ByteStream = Box::pin(futures_util::stream::iter(items));

    let now = Instant::now();
    let opts = StreamOptions {
        client_model: "client-model".into(),
        client,
        upstream,
        include_usage,
        idle: Duration::from_secs(60),
        deadline: now + Duration::from_secs(60),
        started: now,
        shutdown: CancellationToken::new(),
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let summary: Arc<Mutex<Option<Summary>>> = Arc::default();
    let (calls_in, summary_in) = (calls.clone(), summary.clone());
    // Inside the runtime: the relay's timers need one.
    let out = block_on(async {
        let stream = relay_stream(body, opts, &req, move |s| {
            calls_in.fetch_add(1, Ordering::SeqCst);
            *summary_in.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
        });
        let mut stream = Box::pin(stream);
        let mut out = Vec::new();
        while let Some(piece) = stream.next().await {
            let Ok(piece) = piece;
            out.extend_from_slice(&piece);
            if leaves_early {
                return out;
            }
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "on_end had not run once when the stream ended"
        );
        out
    });
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "on_end did not run exactly once"
    );
    let summary = summary
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_else(|| panic!("no summary"));

    // A translated stream is made of the gateway's own frames only; a
    // same-format one forwards the upstream's events as they came.
    let translated = match (client, upstream) {
        (Wire::Responses, Wire::Responses) => false,
        (Wire::Responses, _) => true,
        (Wire::OpenAi, Wire::Anthropic) | (Wire::Anthropic, Wire::OpenAi | Wire::Responses) => true,
        _ => false,
    };
    if translated {
        if let Err(why) = frames_are_json(&out) {
            panic!(
                "{client:?} client, {upstream:?} upstream, ended {:?}: {why}",
                summary.end
            );
        }
    }
});
