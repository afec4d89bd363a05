//! The mock upstream: a standalone OpenAI-compatible server backed by the
//! simulated model, with injectable faults. Tests start it on port 0 in
//! process; `loadtest mock` runs it as its own process.
//!
//! It answers `POST` on any path ending in `/chat/completions` or
//! `/embeddings` (OpenAI), so base URLs like GLM's `.../api/paas/v4` work, on
//! any path ending in `/v1/messages` (Anthropic, `x-api-key` or Bearer), and
//! on any path ending in `/responses` (OpenAI's Responses API). It keeps the
//! requests it received for tests to inspect. With `prefix_cache` set in its
//! simulated model, it remembers each session's previous prompt and reports
//! the repeated part as cached (see [`router::sim::prefix`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use axum::Router;
use router::sim::{self, PrefixCache, PromptKind, SimConfig};
use router::wire::anthropic;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Faults to inject.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer every request with this status and an OpenAI error body.
    pub status: Option<u16>,
    /// Streams go silent after this many frames; non-streaming requests
    /// never get an answer.
    pub stall_after: Option<usize>,
    /// Streams drop the connection after this many frames; non-streaming
    /// answers drop it right after the headers.
    pub disconnect_after: Option<usize>,
    /// Streams send a malformed event after this many frames, then end.
    pub malformed_after: Option<usize>,
    /// Streams pause after this many frames until [`MockHandle::release`].
    pub hold_after: Option<usize>,
    /// Streams send an error event after this many frames (after HTTP 200),
    /// then end: Anthropic's `event: error`, or OpenAI's `{"error": ...}` chunk.
    pub error_event_after: Option<usize>,
}

/// How the mock behaves.
#[derive(Debug, Clone, Default)]
pub struct MockOptions {
    /// The simulated model.
    pub sim: SimConfig,
    /// Injected faults.
    pub faults: Faults,
    /// When set, requests must carry `Authorization: Bearer` with this key.
    pub api_key: Option<String>,
}

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request path.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// Every request header.
    pub headers: HeaderMap,
    /// The JSON body.
    pub body: Value,
}

impl Received {
    /// The request as JSON, its credentials left out.
    pub fn to_json(&self) -> Value {
        let headers: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "authorization" | "x-api-key"))
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    json!(String::from_utf8_lossy(value.as_bytes())),
                )
            })
            .collect();
        json!({"path": self.path, "query": self.query, "headers": headers, "body": self.body})
    }
}

struct Shared {
    options: RwLock<MockOptions>,
    /// Where each received request is also written, as JSON.
    record: Mutex<Option<std::path::PathBuf>>,
    received: Mutex<Vec<Received>>,
    /// Whether received requests are kept in memory (for tests; a mock
    /// serving load for hours keeps none).
    keep: AtomicBool,
    /// Requests recorded to files so far.
    recorded: AtomicU64,
    count: AtomicU64,
    released: watch::Sender<bool>,
    /// Each session's previous prompt, for prefix caching.
    prefix: PrefixCache,
}

impl Shared {
    /// Keeps a received request for the test to inspect.
    fn remember(&self, received: Received) {
        let dir = self
            .record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(dir) = dir {
            let n = self.recorded.fetch_add(1, Ordering::SeqCst) + 1;
            let path = dir.join(format!("{n:04}.json"));
            if let Err(e) = std::fs::write(&path, received.to_json().to_string()) {
                tracing::warn!(path = %path.display(), error = %e, "a received request could not be recorded");
            }
        }
        if self.keep.load(Ordering::Relaxed) {
            self.received
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(received);
        }
    }
}

/// A handle on a running mock upstream.
#[derive(Clone)]
pub struct MockHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MockHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

impl MockHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its OpenAI-style base URL, `http://ADDR/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Replaces its behaviour for the requests that follow.
    pub fn set_options(&self, options: MockOptions) {
        *self
            .shared
            .options
            .write()
            .unwrap_or_else(PoisonError::into_inner) = options;
    }

    /// Writes each request received from now on to `dir` as one JSON file
    /// (`0001.json`, ...): path, query, headers without credentials, body.
    pub fn record_to(&self, dir: std::path::PathBuf) {
        *self
            .shared
            .record
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(dir);
    }

    /// Lets held streams (see [`Faults::hold_after`]) go on.
    pub fn release(&self) {
        self.shared.released.send_replace(true);
    }

    /// How many requests it has received.
    pub fn request_count(&self) -> u64 {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// The requests it has received, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Binds `addr` (port 0 picks a free port) and serves in the background
/// until the runtime ends.
pub async fn spawn(addr: SocketAddr, options: MockOptions) -> std::io::Result<MockHandle> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        options: RwLock::new(options),
        record: Mutex::new(None),
        received: Mutex::new(Vec::new()),
        keep: AtomicBool::new(true),
        recorded: AtomicU64::new(0),
        count: AtomicU64::new(0),
        released: watch::channel(false).0,
        prefix: PrefixCache::default(),
    });
    // Vendors take bodies of tens of megabytes (Anthropic 32 MB); so does
    // the mock, rather than axum's 2 MB default.
    let app = Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(shared.clone());
    // Each streamed frame is a small write; Nagle would hold it for an ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // The mock serves until its runtime ends; it holds no work to lose.
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "mock upstream stopped");
        }
    });
    Ok(MockHandle { addr, shared })
}

/// Serves on `addr` until Ctrl-C or SIGTERM, writing each request it
/// receives to `record` when set (see [`MockHandle::record_to`]).
pub async fn serve(
    addr: SocketAddr,
    options: MockOptions,
    record: Option<std::path::PathBuf>,
) -> std::io::Result<()> {
    let handle = spawn(addr, options).await?;
    // Nothing reads them back from a standalone mock: keeping them would
    // grow its memory for as long as load runs.
    handle.shared.keep.store(false, Ordering::Relaxed);
    if let Some(dir) = record {
        handle.record_to(dir);
    }
    tracing::info!(addr = %handle.addr(), base_url = %handle.base_url(), "mock upstream listening");
    tokio::signal::ctrl_c().await
}

fn error(status: StatusCode, message: &str, kind: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The API a request speaks, by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// `.../chat/completions`.
    Chat,
    /// `.../embeddings`.
    Embeddings,
    /// `.../v1/messages`.
    Messages,
    /// `.../responses`.
    Responses,
}

impl Dialect {
    fn of(path: &str) -> Option<Self> {
        if path.ends_with("/chat/completions") {
            Some(Self::Chat)
        } else if path.ends_with("/embeddings") {
            Some(Self::Embeddings)
        } else if path.ends_with("/v1/messages") {
            Some(Self::Messages)
        } else if path.ends_with("/responses") {
            Some(Self::Responses)
        } else {
            None
        }
    }

    /// The shape of its prompt, for prefix caching (`None`: embeddings).
    fn prompt_kind(self) -> Option<PromptKind> {
        match self {
            Self::Chat => Some(PromptKind::Chat),
            Self::Messages => Some(PromptKind::Messages),
            Self::Responses => Some(PromptKind::Responses),
            Self::Embeddings => None,
        }
    }

    /// An error answer in the dialect's shape.
    fn error(self, status: StatusCode, message: &str) -> Response {
        match self {
            Self::Messages => anthropic_error(status, message),
            _ => error(
                status,
                message,
                if status.is_server_error() {
                    "server_error"
                } else {
                    "invalid_request_error"
                },
            ),
        }
    }

    /// The error event a stream carries after HTTP 200, after `sent` frames.
    fn error_event(self, sent: usize) -> Bytes {
        match self {
            Self::Messages => anthropic::sse_error_event("overloaded_error", "Overloaded"),
            Self::Responses => Bytes::from(format!(
                "event: response.failed\ndata: {}\n\n",
                json!({"type": "response.failed", "sequence_number": sent, "response": {"id": "resp_mock", "object": "response", "created_at": sim::now_secs(), "status": "failed", "output": [],
                       "error": {"code": "server_error", "message": "mock fault: overloaded"}}})
            )),
            _ => Bytes::from(format!(
                "data: {}\n\n",
                json!({"error": {"message": "mock fault: overloaded", "type": "server_error", "code": "overloaded"}})
            )),
        }
    }

    /// Whether the request presents `key`: Bearer, or for Messages `x-api-key`.
    fn authorized(self, headers: &HeaderMap, key: &str) -> bool {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let bearer = header("authorization").and_then(|a| a.strip_prefix("Bearer "));
        match self {
            Self::Messages => header("x-api-key").or(bearer) == Some(key),
            _ => bearer == Some(key),
        }
    }

    fn whole(self, request: &Value, sim: &SimConfig) -> Value {
        match self {
            Self::Chat => sim::chat_completion(request, sim),
            Self::Embeddings => sim::embeddings(request, sim),
            Self::Messages => sim::anthropic::message(request, sim),
            Self::Responses => sim::responses::whole(request, sim),
        }
    }

    fn frames(self, request: &Value, sim: &SimConfig) -> Vec<sim::Frame> {
        match self {
            Self::Messages => sim::anthropic::frames(request, sim),
            Self::Responses => sim::responses::frames(request, sim),
            Self::Chat | Self::Embeddings => sim::chat_frames(request, sim),
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path.ends_with("/v1/messages/count_tokens") && method == Method::POST {
        let request: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return anthropic_error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}"))
            }
        };
        shared.remember(Received {
            path,
            query: uri.query().map(str::to_owned),
            authorization: None,
            headers,
            body: request.clone(),
        });
        let tokens = router::estimate::messages_prompt(&request);
        return json_response(&json!({"input_tokens": tokens}));
    }
    let dialect = match Dialect::of(&path) {
        Some(d) if method == Method::POST => d,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                &format!("no route {method} {path}"),
                "invalid_request_error",
            )
        }
    };
    shared.count.fetch_add(1, Ordering::SeqCst);
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return dialect.error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    shared.remember(Received {
        path,
        query: uri.query().map(str::to_owned),
        authorization,
        headers: headers.clone(),
        body: request.clone(),
    });
    let options = shared
        .options
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(key) = &options.api_key {
        if !dialect.authorized(&headers, key) {
            return dialect.error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.");
        }
    }
    if dialect == Dialect::Messages && request.get("max_tokens").and_then(Value::as_u64).is_none() {
        return anthropic_error(StatusCode::BAD_REQUEST, "max_tokens: Field required");
    }
    tokio::time::sleep(options.sim.latency).await;
    let faults = &options.faults;
    if let Some(code) = faults.status {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // Like vendors that quote the credential they refused.
        let credential = headers
            .get("x-api-key")
            .or_else(|| headers.get(header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_start_matches("Bearer ").to_owned());
        let message = match credential {
            Some(key) => format!("mock fault: HTTP {code} (request key: {key})"),
            None => format!("mock fault: HTTP {code}"),
        };
        let mut resp = dialect.error(status, &message);
        if code == 429 {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        return resp;
    }
    let stream = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if dialect == Dialect::Embeddings {
        return json_response(&dialect.whole(&request, &options.sim));
    }
    // Remembered once per answered request, before its answer is planned.
    let prefix = match dialect.prompt_kind() {
        Some(kind) if options.sim.prefix_cache => shared.prefix.observe(&headers, &request, kind),
        _ => 0,
    };
    let cfg = options.sim.with_prefix(prefix);
    if !stream {
        if faults.stall_after.is_some() {
            std::future::pending::<()>().await;
        }
        if faults.disconnect_after.is_some() {
            let broken = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other("mock disconnect"))
            });
            return Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(broken))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        tokio::time::sleep(sim::generation_time(&request, &cfg)).await;
        return json_response(&dialect.whole(&request, &cfg));
    }
    let frames = dialect.frames(&request, &cfg);
    let body = faulty_stream(frames, faults.clone(), shared.released.subscribe(), dialect);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn json_response(v: &Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

struct Playback {
    frames: std::vec::IntoIter<sim::Frame>,
    sent: usize,
    faults: Faults,
    released: watch::Receiver<bool>,
    dialect: Dialect,
    done: bool,
}

/// The paced frames, with each fault applied once `sent` frames are out.
fn faulty_stream(
    frames: Vec<sim::Frame>,
    faults: Faults,
    released: watch::Receiver<bool>,
    dialect: Dialect,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let start = Playback {
        frames: frames.into_iter(),
        sent: 0,
        faults,
        released,
        dialect,
        done: false,
    };
    futures_util::stream::unfold(start, |mut st| async move {
        if st.done {
            return None;
        }
        let sent = Some(st.sent);
        if st.faults.hold_after == sent {
            let _ = st.released.wait_for(|r| *r).await;
        }
        if st.faults.error_event_after == sent {
            st.done = true;
            let event = st.dialect.error_event(st.sent);
            return Some((Ok(event), st));
        }
        if st.faults.stall_after == sent {
            std::future::pending::<()>().await;
        }
        if st.faults.disconnect_after == sent {
            st.done = true;
            // Let the frames already sent leave before the connection drops, as
            // they would from a real upstream that dies mid-answer.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            return Some((Err(std::io::Error::other("mock disconnect")), st));
        }
        if st.faults.malformed_after == sent {
            st.done = true;
            return Some((
                Ok(Bytes::from_static(
                    b"data: {\"choices\": [ this is not json\n\n",
                )),
                st,
            ));
        }
        let frame = st.frames.next()?;
        if !frame.delay.is_zero() {
            tokio::time::sleep(frame.delay).await;
        }
        st.sent += 1;
        Some((Ok(frame.bytes), st))
    })
}

fn anthropic_error(status: StatusCode, message: &str) -> Response {
    let body = anthropic::error_body(anthropic::error_type(status.as_u16()), message);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
