//! Relaying an SSE stream event by event, as each arrives, in the client's
//! format (see [`codec`](super::codec) for what happens to each event).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::codec::{self, Codec, Meter, Step};
use super::timed::Timed;
use super::{End, Summary};
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

type Events = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<ProviderError>>> + Send>>;
type OnEnd = Box<dyn FnOnce(Summary) + Send>;

struct Relay {
    events: Events,
    codec: Box<dyn Codec>,
    meter: Meter,
    started: Instant,
    ttft: Option<Duration>,
    /// When the upstream last delivered something (an event, its end, or
    /// an error), for the time the upstream exchange took.
    upstream_done: Instant,
    queue: VecDeque<Bytes>,
    scratch: Vec<Bytes>,
    forwarded: u64,
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
    let timed = Timed::new(upstream, opts.idle, opts.deadline, opts.shutdown.clone());
    let relay = Relay {
        events: Box::pin(timed.eventsource()),
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
        upstream_done: Instant::now(),
        queue: VecDeque::new(),
        scratch: Vec::new(),
        forwarded: 0,
        on_end: Some(Box::new(on_end)),
    };
    futures_util::stream::unfold(relay, |mut relay| async move {
        let frame = relay.next_frame().await?;
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
                upstream_done: self.upstream_done,
                output_text: std::mem::take(&mut self.meter.output_text),
                events: self.forwarded + self.queue.len() as u64,
            });
        }
    }

    fn fail(&mut self, end: End) {
        self.codec.fail(&end, &mut self.scratch);
        self.queue.extend(self.scratch.drain(..));
        self.finish(end);
    }

    fn step(&mut self, step: Step) {
        self.queue.extend(self.scratch.drain(..));
        if self.ttft.is_none() && self.meter.produced {
            self.ttft = Some(self.started.elapsed());
        }
        if let Step::End(end) = step {
            // A complete answer needs no error frame, and for an upstream
            // error the codec already queued it, translated.
            if matches!(end, End::Complete | End::UpstreamError) {
                self.finish(end);
            } else {
                self.fail(end);
            }
        }
    }

    /// The next frame for the client; `None` once the stream is over.
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.queue.pop_front() {
                self.forwarded += 1;
                return Some(frame);
            }
            self.on_end.as_ref()?;
            let next = self.events.next().await;
            self.upstream_done = Instant::now();
            let event = match next {
                Some(Ok(event)) => event,
                Some(Err(EventStreamError::Transport(ProviderError::Timeout(phase)))) => {
                    self.fail(End::Timeout(phase));
                    continue;
                }
                Some(Err(EventStreamError::Transport(ProviderError::Shutdown))) => {
                    self.fail(End::Shutdown);
                    continue;
                }
                Some(Err(EventStreamError::Transport(e @ ProviderError::Oversized(_)))) => {
                    self.fail(End::Malformed(e.to_string()));
                    continue;
                }
                Some(Err(EventStreamError::Transport(e))) => {
                    self.fail(End::UpstreamDisconnected(e.to_string()));
                    continue;
                }
                Some(Err(e)) => {
                    self.fail(End::Malformed(e.to_string()));
                    continue;
                }
                None => {
                    let step = self.codec.eof(&mut self.meter, &mut self.scratch);
                    self.step(step);
                    continue;
                }
            };
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            let step = self
                .codec
                .event(&event.event, data, &mut self.meter, &mut self.scratch);
            self.step(step);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Dropped before the end: the client went away, cutting the
        // upstream exchange short now.
        if self.on_end.is_some() {
            self.upstream_done = Instant::now();
        }
        self.finish(End::ClientDisconnected);
    }
}
