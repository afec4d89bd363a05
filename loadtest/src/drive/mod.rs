//! The load driver: chat completions, Anthropic Messages or Responses
//! requests, whole or streamed, sent to a base URL for a bounded time (and
//! at most a bounded number of requests), either by N clients in a closed
//! loop or on a fixed schedule (open loop, latency timed from each
//! request's scheduled time). It stops by itself and reports throughput,
//! latency and time-to-first-byte percentiles.
//!
//! # Layout
//! - `api`: URLs, keys and bodies of the three APIs.
//! - `stream_end`: spots a stream's terminal (or error) event.
//! - `request`: one request, read to its end and tallied.
//! - `schedule`: the closed and the open loop.
//! - `tally`: counters and histograms.
//! - `progress`: the progress line on stderr.

mod api;
mod progress;
mod request;
mod schedule;
mod stream_end;
mod tally;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

pub use api::Api;
pub use tally::{histogram, Percentiles};

use request::Shot;

/// The header carrying the id Tollgate gave a request.
pub const REQUEST_ID_HEADER: &str = "x-tollgate-request-id";

/// How long requests may still take after the run's duration; what is not
/// answered by then is an error.
const GRACE: Duration = Duration::from_secs(30);

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// N clients, each sending its next request when its last is answered.
    Closed {
        /// Concurrent clients.
        clients: usize,
    },
    /// A fixed schedule of `rate` requests per second, whatever the answers
    /// do, with at most `max_in_flight` unanswered.
    Open {
        /// Requests per second.
        rate: f64,
        /// The cap on unanswered requests.
        max_in_flight: usize,
    },
}

/// What to send and for how long.
#[derive(Debug, Clone)]
pub struct DriveOptions {
    /// The API to speak.
    pub api: Api,
    /// The base URL: OpenAI-style (`http://127.0.0.1:8080/v1`); for
    /// Messages the host root works too (see [`Api::url`]).
    pub base_url: String,
    /// The key, presented as the API expects (Bearer, or `x-api-key`).
    pub api_key: Option<String>,
    /// The `model` to ask for.
    pub model: String,
    /// Closed or open loop.
    pub pace: Pace,
    /// How long to send.
    pub duration: Duration,
    /// Stop after this many requests in all, if reached first.
    pub max_requests: Option<u64>,
    /// Ask for streams.
    pub stream: bool,
    /// Words in each prompt.
    pub prompt_words: usize,
    /// `max_tokens` for each request (Messages sends 1024 when unset).
    pub max_tokens: Option<u32>,
    /// Draw a progress line on stderr, labelled with this (empty: no label).
    pub progress: Option<String>,
    /// Keep the request id each answer carries (`x-tollgate-request-id`)
    /// for every request answered in full, in [`Report::ids`].
    pub keep_ids: bool,
}

impl DriveOptions {
    /// The run's settings in a few words, for titles.
    pub fn describe(&self) -> String {
        let answers = if self.stream { "streamed" } else { "whole" };
        let pace = match self.pace {
            Pace::Closed { clients } => format!("closed loop, {clients} clients"),
            Pace::Open {
                rate,
                max_in_flight,
            } => format!("open loop, {rate} req/s (at most {max_in_flight} in flight)"),
        };
        let mut out = format!(
            "{} ({answers}), {pace}, {}",
            self.api.name(),
            humantime::format_duration(self.duration)
        );
        if let Some(max) = self.max_requests {
            out.push_str(&format!(" or {max} requests"));
        }
        out.push_str(&format!(
            ", {}-word prompts, model {}",
            self.prompt_words, self.model
        ));
        out
    }
}

/// How an open loop kept to its schedule.
#[derive(Debug, Clone, Serialize)]
pub struct OpenLoop {
    /// The rate asked for, requests per second.
    pub target_rate_per_s: f64,
    /// The rate requests actually left at: sent over the time from the
    /// start to the last one's leaving (plus one interval).
    pub achieved_rate_per_s: f64,
    /// Requests sent.
    pub sent: u64,
    /// Requests that could not leave on time because `max_in_flight` were
    /// unanswered; they left late, timed from when they were due.
    pub late: u64,
    /// The longest a request left after it was due, milliseconds (the cap,
    /// or a driver short of CPU).
    pub max_send_lag_ms: f64,
    /// The cap on unanswered requests.
    pub max_in_flight: usize,
    /// The most unanswered at once.
    pub peak_in_flight: u64,
}

/// The outcome of a run.
#[derive(Clone, Serialize)]
pub struct Report {
    /// `chat`, `messages` or `responses`.
    pub api: &'static str,
    /// Whether answers were streamed.
    pub stream: bool,
    /// Requests answered 2xx and read to the end.
    pub ok: u64,
    /// Requests that failed (status, transport, a cut stream, an error
    /// event, no answer within the grace period, never sent).
    pub errors: u64,
    /// Errors by cause: `http_503`, `connect`, `stream_cut`, ...
    pub error_kinds: BTreeMap<String, u64>,
    /// Wall time of the run, seconds, until the last answer.
    pub elapsed_s: f64,
    /// Successful requests per second.
    pub requests_per_s: f64,
    /// Response bytes per second.
    pub bytes_per_s: f64,
    /// Whole-request latency (streams: to the terminal event).
    pub latency: Percentiles,
    /// Time to the first byte of the answer, i.e. its first streamed event
    /// (streams only).
    pub ttft: Option<Percentiles>,
    /// How the schedule was kept (open loop only).
    pub open_loop: Option<OpenLoop>,
    /// The latency of every answered request, microseconds.
    #[serde(skip)]
    pub latency_histogram: Histogram<u64>,
    /// With [`DriveOptions::keep_ids`]: the `x-tollgate-request-id` of every
    /// request answered in full (a stream to its terminal event), in the
    /// order they ended; answers without the header are left out.
    #[serde(skip)]
    pub ids: Vec<String>,
}

impl std::fmt::Debug for Report {
    /// Every figure, the histogram by its count only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Report")
            .field("api", &self.api)
            .field("stream", &self.stream)
            .field("ok", &self.ok)
            .field("errors", &self.errors)
            .field("error_kinds", &self.error_kinds)
            .field("elapsed_s", &self.elapsed_s)
            .field("requests_per_s", &self.requests_per_s)
            .field("bytes_per_s", &self.bytes_per_s)
            .field("latency", &self.latency)
            .field("ttft", &self.ttft)
            .field("open_loop", &self.open_loop)
            .field("latency_histogram", &self.latency_histogram.len())
            .field("ids", &self.ids.len())
            .finish()
    }
}

/// Sends the same load for `warm_up`, reporting nothing: the target's
/// lazy starts (connections, caches, tokenizers) are then out of the
/// figures of the run that follows.
pub async fn warm_up(opts: &DriveOptions, warm_up: Duration) -> Result<(), String> {
    if warm_up.is_zero() {
        return Ok(());
    }
    let quiet = DriveOptions {
        duration: warm_up,
        max_requests: None,
        progress: None,
        keep_ids: false,
        ..opts.clone()
    };
    run(quiet).await.map(drop)
}

/// Runs the load and reports. Fails only on a bad setup.
pub async fn run(opts: DriveOptions) -> Result<Report, String> {
    router::provider::ensure_tls_provider();
    if let Pace::Open { rate, .. } = opts.pace {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!("the rate must be above 0, not {rate}"));
        }
    }
    let pool = match opts.pace {
        Pace::Closed { clients } => clients,
        Pace::Open { max_in_flight, .. } => max_in_flight,
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(pool.max(1))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let deadline = started + opts.duration;
    let shot = Arc::new(Shot {
        client,
        url: opts.api.url(&opts.base_url),
        api: opts.api,
        key: opts.api_key.clone(),
        body: opts
            .api
            .body(&opts.model, opts.prompt_words, opts.stream, opts.max_tokens),
        stream: opts.stream,
        hard_stop: deadline + GRACE,
        tally: tally::Tally::new(opts.keep_ids)?,
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut drawing = tokio::task::JoinSet::new();
    if let Some(label) = &opts.progress {
        let frame = progress::Frame {
            label: (!label.is_empty()).then(|| label.clone()),
            started,
            duration: opts.duration,
            max_requests: opts.max_requests,
            open_loop: matches!(opts.pace, Pace::Open { .. }),
        };
        drawing.spawn(progress::show(shot.clone(), frame, stopped));
    }
    let kept = match opts.pace {
        Pace::Closed { clients } => {
            schedule::closed(shot.clone(), clients, deadline, opts.max_requests).await;
            None
        }
        Pace::Open {
            rate,
            max_in_flight,
        } => Some((
            rate,
            max_in_flight,
            schedule::open(
                shot.clone(),
                rate,
                max_in_flight,
                started,
                deadline,
                opts.max_requests,
            )
            .await,
        )),
    };
    let elapsed = started.elapsed().as_secs_f64();
    stop.send_replace(true);
    while drawing.join_next().await.is_some() {}
    let t = shot.tally.totals();
    let open_loop = kept.map(|(rate, max_in_flight, k)| OpenLoop {
        target_rate_per_s: rate,
        achieved_rate_per_s: if k.sent == 0 {
            0.0
        } else {
            k.sent as f64 / (k.last_sent.as_secs_f64() + 1.0 / rate)
        },
        sent: k.sent,
        late: t.late,
        max_send_lag_ms: k.max_lag.as_secs_f64() * 1000.0,
        max_in_flight,
        peak_in_flight: k.peak_in_flight,
    });
    Ok(Report {
        api: opts.api.name(),
        stream: opts.stream,
        ok: t.ok,
        errors: t.errors,
        error_kinds: t.failures,
        elapsed_s: elapsed,
        requests_per_s: t.ok as f64 / elapsed,
        bytes_per_s: t.bytes as f64 / elapsed,
        latency: Percentiles::of(&t.latency),
        ttft: opts.stream.then(|| Percentiles::of(&t.ttft)),
        open_loop,
        latency_histogram: t.latency,
        ids: t.ids,
    })
}
