//! Relaying an SSE stream event by event, as each arrives, in the client's
//! format (see [`codec`](super::codec) for what happens to each event).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};
use serde_json::{Map, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::codec::{self, Codec, Event, Meter, Out, Step};
use super::frame::{self, Framer};
use super::timed::Timed;
use super::{End, Summary};
use crate::estimate::OutputTally;
use crate::provider::{ByteStream, ProviderError};
use crate::wire::Wire;

/// How to relay one stream.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// The model name the client asked for; the answer carries it.
    pub client_model: String,
    /// The client's wire format.
    pub client: Wire,
    /// The upstream's wire format.
    pub upstream: Wire,
    /// Whether an OpenAI client asked for usage (`stream_options.include_usage`).
    /// When it did not, the usage-only chunk is dropped and `usage` fields
    /// are removed from the rest, as OpenAI itself does.
    pub include_usage: bool,
    /// The longest silence allowed between two pieces of the upstream body.
    pub idle: Duration,
    /// When the whole exchange must be over.
    pub deadline: Instant,
    /// When the request started, for time to first token.
    pub started: Instant,
    /// Cancelled when the gateway's shutdown grace period is over: the stream
    /// then ends with an error event.
    pub shutdown: CancellationToken,
}

type OnEnd = Box<dyn FnOnce(Summary) + Send>;

/// Lets a stream run past what admission reserved for it, one step at a
/// time, while the budgets over it have room (a vendor that ignores
/// `max_tokens`, or a prompt the tokenizer undercounted).
pub trait Allowance: Send {
    /// The output tokens the reservation covers now.
    fn covered(&self) -> u64;

    /// Reserves one more step (so that [`Allowance::covered`] grows), given
    /// the output tokens counted so far; `Err` carries what the client is
    /// told when a budget has no room, and the stream ends there.
    fn extend(
        &mut self,
        produced: u64,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// A stream's allowance and the output counted against it.
struct Budgeted {
    allowance: Box<dyn Allowance>,
    /// Tokens at the last count, and the bytes of text seen then.
    counted: u64,
    counted_at: u64,
}

impl Budgeted {
    /// Whether the output outran what is reserved. Text is tokenized only
    /// when the bytes seen since the last count (each token is at least a
    /// byte) could have taken it past.
    fn outran(&mut self, tally: &OutputTally) -> bool {
        let covered = self.allowance.covered();
        let bytes = tally.bytes();
        if self
            .counted
            .saturating_add(bytes.saturating_sub(self.counted_at))
            <= covered
        {
            return false;
        }
        self.counted = tally.tokens();
        self.counted_at = bytes;
        self.counted > covered
    }
}

struct Relay {
    body: Timed,
    framer: Framer,
    codec: Box<dyn Codec>,
    meter: Meter,
    started: Instant,
    ttft: Option<Duration>,
    /// What the client gets next: every frame one upstream read produced.
    out: Out,
    /// Whether the upstream's events are coming in a burst (each ready
    /// without waiting), so the next is worth a moment's wait.
    burst: bool,
    /// What lets the stream outrun its reservation, when a hard budget is
    /// over it.
    budget: Option<Budgeted>,
    /// The output passed the reservation: no further event is relayed
    /// until it is extended.
    outran: bool,
    on_end: Option<OnEnd>,
}

/// Relays `upstream` to the client. `on_end` runs exactly once: when the
/// stream ends, however it ends, or when the client drops it early. It runs
/// before the client receives the stream's last frame.
/// `request` is the client's request body, which some translations read
/// (a Responses answer echoes the request's settings).
pub fn relay_stream(
    upstream: ByteStream,
    opts: StreamOptions,
    request: &Map<String, Value>,
    on_end: impl FnOnce(Summary) + Send + 'static,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    relay_stream_within(upstream, opts, request, None, on_end)
}

/// [`relay_stream`] within an [`Allowance`]: once the output passes what
/// it covers, the next event waits for it to be extended, and a refusal
/// ends the stream with an error event in the client's format, billed for
/// what was relayed.
pub fn relay_stream_within(
    upstream: ByteStream,
    opts: StreamOptions,
    request: &Map<String, Value>,
    allowance: Option<Box<dyn Allowance>>,
    on_end: impl FnOnce(Summary) + Send + 'static,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let relay = Relay {
        body: Timed::new(upstream, opts.idle, opts.deadline, opts.shutdown.clone()),
        framer: Framer::default(),
        codec: codec::for_formats(
            opts.client,
            opts.upstream,
            &opts.client_model,
            opts.include_usage,
            request,
        ),
        meter: Meter::default(),
        started: opts.started,
        ttft: None,
        out: Out::default(),
        burst: false,
        budget: allowance.map(|allowance| Budgeted {
            allowance,
            counted: 0,
            counted_at: 0,
        }),
        outran: false,
        on_end: Some(Box::new(on_end)),
    };
    futures_util::stream::unfold(relay, |mut relay| async move {
        let frame = relay.next_piece().await?;
        Some((Ok(frame), relay))
    })
}

impl Relay {
    fn finish(&mut self, end: End) {
        if let Some(on_end) = self.on_end.take() {
            on_end(Summary {
                usage: self.meter.usage,
                end,
                ttft: self.ttft,
                // The upstream's part ends with the stream (its last event,
                // end or error was just read) or when the client leaves.
                upstream_done: Instant::now(),
                output: std::mem::take(&mut self.meter.output),
                events: self.out.count(),
            });
        }
    }

    fn fail(&mut self, end: End) {
        self.codec.fail(&end, &mut self.out);
        self.finish(end);
    }

    fn step(&mut self, step: Step) {
        if self.ttft.is_none() && self.meter.produced {
            self.ttft = Some(self.started.elapsed());
        }
        if let Step::End(end) = step {
            // A complete answer needs no error frame, and for an upstream
            // error the codec already wrote it, translated.
            if matches!(end, End::Complete | End::UpstreamError) {
                self.finish(end);
            } else {
                self.fail(end);
            }
        }
    }

    /// Hands one event to the codec.
    fn event(&mut self, raw: &[u8]) {
        let Ok(fields) = frame::fields(raw) else {
            self.fail(End::Malformed("an event is not UTF-8 text".into()));
            return;
        };
        let data = fields.data.trim();
        if data.is_empty() {
            // Comments and keep-alives.
            return;
        }
        let lead = fields.data.len() - fields.data.trim_start().len();
        let ev = Event {
            raw,
            name: fields.name,
            data,
            data_at: fields.data_span.map(|span| span.start + lead),
        };
        let step = self.codec.event(&ev, &mut self.meter, &mut self.out);
        self.step(step);
    }

    /// Hands every complete event the framer holds to the codec, until
    /// the output outruns its reservation.
    fn drain_events(&mut self) {
        let mut framer = std::mem::take(&mut self.framer);
        while self.on_end.is_some() && !self.outran {
            let Some(event) = framer.next_event() else {
                break;
            };
            self.event(&framer.bytes()[event]);
            if let Some(budget) = &mut self.budget {
                self.outran = self.on_end.is_some() && budget.outran(&self.meter.output);
            }
        }
        self.framer = framer;
    }

    /// Extends the reservation the output outran, or ends the stream.
    async fn extend(&mut self) {
        let Some(budget) = self.budget.as_mut() else {
            self.outran = false;
            return;
        };
        let before = budget.allowance.covered();
        match budget.allowance.extend(budget.counted).await {
            Ok(()) if budget.allowance.covered() > before => {
                self.outran = budget.outran(&self.meter.output);
            }
            // An allowance that grants without growing has no limit to
            // keep: stop counting against it.
            Ok(()) => {
                self.budget = None;
                self.outran = false;
            }
            Err(message) => {
                self.outran = false;
                self.fail(End::Budget(message));
            }
        }
    }

    /// Takes what the upstream body produced next.
    fn take(&mut self, next: Option<Result<Bytes, ProviderError>>) {
        match next {
            Some(Ok(piece)) => {
                if self.framer.push(&piece).is_err() {
                    let e = ProviderError::Oversized(frame::MAX_EVENT_BYTES);
                    self.fail(End::Malformed(e.to_string()));
                }
            }
            Some(Err(ProviderError::Timeout(phase))) => self.fail(End::Timeout(phase)),
            Some(Err(ProviderError::Shutdown)) => self.fail(End::Shutdown),
            Some(Err(e)) => self.fail(End::UpstreamDisconnected(e.to_string())),
            None => {
                if let Some(rest) = self.framer.rest() {
                    // A last event without its blank line.
                    let mut last = self.framer.bytes()[rest].trim_ascii_end().to_vec();
                    last.extend_from_slice(b"\n\n");
                    self.event(&last);
                }
                if self.on_end.is_some() {
                    let step = self.codec.eof(&mut self.meter, &mut self.out);
                    self.step(step);
                }
            }
        }
    }

    /// The next piece for the client; `None` once the stream is over.
    async fn next_piece(&mut self) -> Option<Bytes> {
        loop {
            self.drain_events();
            if !self.out.is_empty() {
                self.gather().await;
                return Some(self.out.take());
            }
            self.on_end.as_ref()?;
            if self.outran {
                self.extend().await;
                continue;
            }
            let next = match self.body.next().now_or_never() {
                Some(next) => {
                    self.burst = true;
                    next
                }
                None => {
                    self.burst = false;
                    self.body.next().await
                }
            };
            self.take(next);
        }
    }

    /// Adds to the piece for the client what the upstream already sent.
    /// An upstream sends one event per HTTP chunk, many chunks to a read.
    /// Through the pooled client its connection task hands them over one
    /// at a time; on a connection of the stream's own (plain-HTTP
    /// upstreams) each read brings what arrived, and more may be on its
    /// way. While they come in a burst, waiting a moment gathers them into
    /// one write to the client rather than one write per event. A paced
    /// upstream (an event, then a wait) is forwarded at once.
    async fn gather(&mut self) {
        while self.burst && self.on_end.is_some() && !self.outran && self.out.len() < GATHER_BYTES {
            let mut next = self.body.next().now_or_never();
            for _ in 0..GATHER_YIELDS {
                if next.is_some() {
                    break;
                }
                tokio::task::yield_now().await;
                next = self.body.next().now_or_never();
            }
            match next {
                Some(next) => {
                    self.take(next);
                    self.drain_events();
                }
                None => self.burst = false,
            }
        }
    }
}

/// How much a piece for the client gathers from what the upstream already
/// delivered before it is sent.
const GATHER_BYTES: usize = 32 * 1024;

/// How many turns of the scheduler a burst may pause for its next event
/// (the upstream connection's task needs two to decode and hand over one).
const GATHER_YIELDS: usize = 2;

impl Drop for Relay {
    fn drop(&mut self) {
        // Dropped before the end: the client went away, cutting the
        // upstream exchange short now.
        self.finish(End::ClientDisconnected);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_util::StreamExt;

    use super::*;

    fn opts(
        client_model: &str,
        client: Wire,
        upstream: Wire,
        include_usage: bool,
    ) -> StreamOptions {
        StreamOptions {
            client_model: client_model.to_owned(),
            client,
            upstream,
            include_usage,
            idle: Duration::from_secs(5),
            deadline: Instant::now() + Duration::from_secs(5),
            started: Instant::now(),
            shutdown: CancellationToken::new(),
        }
    }

    /// Relays `pieces` and returns what the client got, piece by piece,
    /// with the summary.
    async fn relay(pieces: Vec<&'static [u8]>, o: StreamOptions) -> (Vec<Bytes>, Summary) {
        let upstream: ByteStream = Box::pin(futures_util::stream::iter(
            pieces.into_iter().map(|p| Ok(Bytes::from_static(p))),
        ));
        let summary = Arc::new(Mutex::new(None));
        let put = summary.clone();
        let out: Vec<Bytes> = relay_stream(upstream, o, &Map::new(), move |s| {
            *put.lock().unwrap() = Some(s);
        })
        .map(|r| r.unwrap())
        .collect()
        .await;
        let s = summary.lock().unwrap().take().unwrap();
        (out, s)
    }

    const CHUNK: &[u8] = b"data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi there\"},\"finish_reason\":null}]}\n\n";
    const LAST: &[u8] = b"data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n";
    const DONE: &[u8] = b"data: [DONE]\n\n";

    #[tokio::test]
    async fn same_format_events_pass_byte_for_byte_in_one_piece() {
        let (out, s) = relay(
            vec![CHUNK, CHUNK, LAST, DONE],
            opts("m", Wire::OpenAi, Wire::OpenAi, true),
        )
        .await;
        assert_eq!(out.len(), 1, "a burst goes out as one piece");
        assert_eq!(out[0], [CHUNK, CHUNK, LAST, DONE].concat());
        assert!(s.end.is_complete());
        assert_eq!(s.usage.map(|u| (u.input, u.output)), Some((3, 2)));
        assert_eq!(s.output.tokens(), 4, "the text is tallied as it passes");
    }

    #[tokio::test]
    async fn only_the_model_and_unasked_usage_are_rewritten_in_place() {
        let (out, _) = relay(
            vec![CHUNK, LAST, DONE],
            opts("alias", Wire::OpenAi, Wire::OpenAi, false),
        )
        .await;
        let got = String::from_utf8(out.concat()).unwrap();
        let want = String::from_utf8([CHUNK, LAST, DONE].concat())
            .unwrap()
            .replace("\"model\":\"m\"", "\"model\":\"alias\"")
            .replace(
                ",\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}",
                "",
            );
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn events_split_anywhere_across_pieces_arrive_whole() {
        let whole: &'static [u8] = Box::leak([CHUNK, LAST, DONE].concat().into_boxed_slice());
        let pieces: Vec<&'static [u8]> = whole.chunks(7).collect();
        let (out, s) = relay(pieces, opts("m", Wire::OpenAi, Wire::OpenAi, true)).await;
        assert_eq!(out.concat(), whole);
        assert!(s.end.is_complete());
    }

    #[tokio::test]
    async fn an_anthropic_stream_passes_with_the_model_spliced_into_message_start() {
        let start: &'static [u8] = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"model\":\"glm-4.6\",\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n";
        let delta: &'static [u8] = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hello\"}}\n\n";
        let end: &'static [u8] = b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":5}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let (out, s) = relay(
            vec![start, delta, end],
            opts("glm", Wire::Anthropic, Wire::Anthropic, true),
        )
        .await;
        let got = String::from_utf8(out.concat()).unwrap();
        let want = String::from_utf8([start, delta, end].concat())
            .unwrap()
            .replace("\"model\":\"glm-4.6\"", "\"model\":\"glm\"");
        assert_eq!(got, want);
        assert_eq!(s.usage.map(|u| (u.input, u.output)), Some((7, 5)));
        assert!(s.end.is_complete());
    }

    /// Grants `grants` steps of `step` tokens, then refuses; counts asks.
    struct Steps {
        covered: u64,
        step: u64,
        grants: usize,
        asked: Arc<Mutex<Vec<u64>>>,
    }

    impl Allowance for Steps {
        fn covered(&self) -> u64 {
            self.covered
        }

        fn extend(
            &mut self,
            produced: u64,
        ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
            self.asked.lock().unwrap().push(produced);
            Box::pin(async move {
                if self.grants == 0 {
                    return Err("no room".to_owned());
                }
                self.grants -= 1;
                self.covered += self.step;
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn a_stream_past_its_allowance_extends_then_ends_with_a_budget_error() {
        // Each chunk carries "hi there" (2 tokens); 1 covered, one step of 2.
        let asked = Arc::new(Mutex::new(Vec::new()));
        let steps = Steps {
            covered: 1,
            step: 2,
            grants: 1,
            asked: asked.clone(),
        };
        let upstream: ByteStream = Box::pin(futures_util::stream::iter(
            [CHUNK, CHUNK, CHUNK, LAST, DONE].map(|p| Ok(Bytes::from_static(p))),
        ));
        let summary = Arc::new(Mutex::new(None));
        let put = summary.clone();
        let out: Vec<Bytes> = relay_stream_within(
            upstream,
            opts("m", Wire::OpenAi, Wire::OpenAi, true),
            &Map::new(),
            Some(Box::new(steps)),
            move |s| *put.lock().unwrap() = Some(s),
        )
        .map(|r| r.unwrap())
        .collect()
        .await;
        let text = String::from_utf8(out.concat()).unwrap();
        // The first chunk outran the 1 token covered: extended to 3. The
        // second took it to 4: refused, and the stream ended there.
        assert_eq!(*asked.lock().unwrap(), vec![2, 4]);
        assert_eq!(text.matches("hi there").count(), 2, "{text}");
        assert!(text.ends_with("\n\n"));
        assert!(text.contains("\"type\":\"insufficient_quota\""), "{text}");
        assert!(!text.contains("[DONE]"));
        let s = summary.lock().unwrap().take().unwrap();
        assert_eq!(s.end, End::Budget("no room".into()));
        assert_eq!(s.output.tokens(), 4, "billed for what was relayed");
    }

    #[tokio::test]
    async fn a_stream_within_its_allowance_never_asks_for_more() {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let steps = Steps {
            covered: 100,
            step: 1,
            grants: 0,
            asked: asked.clone(),
        };
        let upstream: ByteStream = Box::pin(futures_util::stream::iter(
            [CHUNK, LAST, DONE].map(|p| Ok(Bytes::from_static(p))),
        ));
        let out: Vec<Bytes> = relay_stream_within(
            upstream,
            opts("m", Wire::OpenAi, Wire::OpenAi, true),
            &Map::new(),
            Some(Box::new(steps)),
            |_| {},
        )
        .map(|r| r.unwrap())
        .collect()
        .await;
        assert_eq!(out.concat(), [CHUNK, LAST, DONE].concat());
        assert!(asked.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_upstream_error_event_passes_scrubbed_of_configured_secrets() {
        crate::redact::register("sk-stream-secret-quoted-4242");
        let err: &'static [u8] =
            b"data: {\"error\":{\"message\":\"bad key sk-stream-secret-quoted-4242\"}}\n\n";
        for (client, upstream) in [
            (Wire::OpenAi, Wire::OpenAi),
            (Wire::Anthropic, Wire::OpenAi),
            (Wire::Responses, Wire::OpenAi),
        ] {
            let (out, s) = relay(vec![CHUNK, err], opts("m", client, upstream, true)).await;
            let text = String::from_utf8(out.concat()).unwrap();
            assert!(!text.contains("sk-stream-secret"), "{client:?}: {text}");
            assert!(!s.end.is_complete());
        }
    }
}
