//! The load driver: N concurrent clients sending chat completions (or
//! Responses API requests) to a base URL for a bounded time (and at most a
//! bounded number of requests), with latency and time-to-first-token
//! histograms. It stops by itself.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Which API the driver speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST /chat/completions`; a stream ends with `data: [DONE]`.
    Chat,
    /// `POST /responses`; a stream ends with `response.completed`.
    Responses,
}

impl Api {
    /// The path under the base URL.
    fn path(self) -> &'static str {
        match self {
            Self::Chat => "/chat/completions",
            Self::Responses => "/responses",
        }
    }

    /// What a complete stream carries last.
    fn end_marker(self) -> &'static [u8] {
        match self {
            Self::Chat => b"[DONE]",
            Self::Responses => b"response.completed",
        }
    }

    /// A request body.
    fn body(
        self,
        model: &str,
        prompt: &str,
        stream: bool,
        max_tokens: Option<u32>,
    ) -> serde_json::Value {
        let mut body = match self {
            Self::Chat => {
                json!({"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream})
            }
            Self::Responses => {
                json!({"model": model, "input": prompt, "stream": stream, "store": false})
            }
        };
        if let Some(m) = max_tokens {
            let key = match self {
                Self::Chat => "max_tokens",
                Self::Responses => "max_output_tokens",
            };
            body[key] = json!(m);
        }
        body
    }
}

/// What to send and for how long.
#[derive(Debug, Clone)]
pub struct DriveOptions {
    /// The API to speak.
    pub api: Api,
    /// An OpenAI-style base URL (`http://127.0.0.1:8080/v1`).
    pub base_url: String,
    /// Sent as Bearer, when set.
    pub api_key: Option<String>,
    /// The `model` to ask for.
    pub model: String,
    /// Concurrent clients.
    pub concurrency: usize,
    /// How long to run.
    pub duration: Duration,
    /// Stop after this many requests in all, if reached first.
    pub max_requests: Option<u64>,
    /// Ask for streams.
    pub stream: bool,
    /// Words in each prompt.
    pub prompt_words: usize,
    /// `max_tokens` for each request.
    pub max_tokens: Option<u32>,
}

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Requests answered 2xx and read to the end.
    pub ok: u64,
    /// Requests that failed (status, transport, or a cut stream).
    pub errors: u64,
    /// Wall time of the run, seconds.
    pub elapsed_s: f64,
    /// Successful requests per second.
    pub requests_per_s: f64,
    /// Response bytes per second.
    pub bytes_per_s: f64,
    /// Whole-request latency.
    pub latency: Percentiles,
    /// Time to the first streamed byte (streams only).
    pub ttft: Option<Percentiles>,
}

struct Tally {
    ok: u64,
    errors: u64,
    bytes: u64,
    latency: Histogram<u64>,
    ttft: Histogram<u64>,
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let ms = |us: u64| us as f64 / 1000.0;
    Percentiles {
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    }
}

fn histogram() -> Result<Histogram<u64>, String> {
    // Microseconds up to an hour, three significant figures.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| e.to_string())
}

async fn one_request(
    client: &reqwest::Client,
    url: &str,
    opts: &DriveOptions,
    body: &serde_json::Value,
) -> Result<(u64, Option<Duration>), ()> {
    let started = Instant::now();
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(key) = &opts.api_key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.map_err(|_| ())?;
    if !resp.status().is_success() {
        return Err(());
    }
    let mut bytes = 0u64;
    let mut ttft = None;
    let marker = opts.api.end_marker();
    // The end marker may straddle two pieces: the last bytes of the one
    // before are searched with each piece.
    let mut window = Vec::new();
    let mut ended = false;
    let mut body = resp.bytes_stream();
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|_| ())?;
        if ttft.is_none() {
            ttft = Some(started.elapsed());
        }
        bytes += piece.len() as u64;
        if opts.stream && !ended {
            window.extend_from_slice(&piece);
            ended = window.windows(marker.len()).any(|w| w == marker);
            let keep = window.len().saturating_sub(marker.len());
            window.drain(..keep);
        }
    }
    if opts.stream && !ended {
        return Err(());
    }
    Ok((bytes, ttft))
}

/// Runs the load and reports. Fails only on a bad setup.
pub async fn run(opts: DriveOptions) -> Result<Report, String> {
    router::provider::ensure_tls_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency.max(1))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{}{}", opts.base_url.trim_end_matches('/'), opts.api.path());
    let prompt: Vec<&str> = std::iter::repeat_n("token", opts.prompt_words.max(1)).collect();
    let body = opts
        .api
        .body(&opts.model, &prompt.join(" "), opts.stream, opts.max_tokens);
    let tally = Arc::new(Mutex::new(Tally {
        ok: 0,
        errors: 0,
        bytes: 0,
        latency: histogram()?,
        ttft: histogram()?,
    }));
    let issued = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + opts.duration;
    let workers = (0..opts.concurrency.max(1)).map(|_| {
        let (client, url, opts, body, tally, issued) = (
            client.clone(),
            url.clone(),
            opts.clone(),
            body.clone(),
            tally.clone(),
            issued.clone(),
        );
        async move {
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let n = issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if opts.max_requests.is_some_and(|max| n >= max) {
                    break;
                }
                let t0 = Instant::now();
                let result = tokio::time::timeout_at(
                    deadline + Duration::from_secs(30),
                    one_request(&client, &url, &opts, &body),
                )
                .await;
                let elapsed = t0.elapsed();
                let mut t = tally.lock().await;
                match result {
                    Ok(Ok((bytes, ttft))) => {
                        t.ok += 1;
                        t.bytes += bytes;
                        let _ = t.latency.record(elapsed.as_micros() as u64);
                        if let (true, Some(f)) = (opts.stream, ttft) {
                            let _ = t.ttft.record(f.as_micros() as u64);
                        }
                    }
                    _ => t.errors += 1,
                }
            }
        }
    });
    // Each client on its own task, so the driver uses every core.
    let mut set = tokio::task::JoinSet::new();
    for w in workers {
        set.spawn(w);
    }
    while set.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let t = tally.lock().await;
    Ok(Report {
        ok: t.ok,
        errors: t.errors,
        elapsed_s: elapsed,
        requests_per_s: t.ok as f64 / elapsed,
        bytes_per_s: t.bytes as f64 / elapsed,
        latency: percentiles(&t.latency),
        ttft: opts.stream.then(|| percentiles(&t.ttft)),
    })
}
