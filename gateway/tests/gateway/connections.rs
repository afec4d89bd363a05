//! Connections a client cannot outlast: a head trickled a byte at a time, a
//! connection that sends nothing, an idle keep-alive connection, a body that
//! never finishes, a client that stops reading, and more connections than
//! `max_connections`. Real TCP on loopback, with timeouts of a fraction of a
//! second so that each test takes about that long.

use std::io::ErrorKind;
use std::time::Duration;

use loadtest::mock::{MockHandle, MockOptions};
use router::sim::SimConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::helpers::*;
use crate::metrics::value;

/// Config with `server` settings added to `[server]` and model `m` at `mock`.
fn limits_config(mock: &MockHandle, server: &str) -> gateway::Config {
    config(&format!(
        "{server}\n[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n[models.m]\nprovider = \"up\"\n",
        mock.base_url()
    ))
}

/// Reads until the peer closes the connection (EOF or reset); what was read.
async fn read_to_close(stream: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf))
            .await
            .expect("the gateway closes the connection within the deadline")
        {
            Ok(0) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return seen,
            Err(e) => panic!("reading failed: {e}"),
        }
    }
}

/// A response read off a raw connection.
struct RawResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawResponse {
    fn parse(bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes);
        let (head, _) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head in {text:?}"));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        Self {
            status,
            head: head.to_ascii_lowercase(),
            body: bytes[head.len() + 4..].to_vec(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn content_length(&self) -> usize {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("a content-length")
    }
}

/// Reads one response with a `Content-Length` off a connection kept open.
async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buf))
            .await
            .expect("a response within the deadline")
            .expect("the response reads");
        assert!(n > 0, "the connection closed before a whole response");
        seen.extend_from_slice(&buf[..n]);
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let resp = RawResponse::parse(&seen);
            if seen.len() >= end + 4 + resp.content_length() {
                return resp;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_trickled_a_byte_at_a_time_is_cut_after_header_read_timeout() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(limits_config(
        &mock,
        "header_read_timeout = \"500ms\"\nidle_timeout = \"30s\"",
    ))
    .await;
    let started = Instant::now();
    let (mut read, mut write) = TcpStream::connect(app.addr).await.unwrap().into_split();
    // A whole head at this pace would take more than ten seconds.
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {MASTER_KEY}\r\nContent-Type: application/json\r\n\r\n"
    );
    let trickle = tokio::spawn(async move {
        for byte in head.bytes() {
            if write.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let answered = read_to_close(&mut read).await;
    let elapsed = started.elapsed();
    assert!(answered.is_empty(), "no answer, just a close");
    assert!(
        elapsed >= Duration::from_millis(450),
        "cut after the header read timeout, not before: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "cut long before the head could finish: {elapsed:?}"
    );
    trickle.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_cut_after_header_read_timeout() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(limits_config(
        &mock,
        "header_read_timeout = \"400ms\"\nidle_timeout = \"30s\"",
    ))
    .await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    assert!(read_to_close(&mut silent).await.is_empty());
    let elapsed = started.elapsed();
    // A new connection's first request is due within the header read
    // timeout of the accept; the idle timeout is for keep-alive gaps.
    assert!(
        elapsed >= Duration::from_millis(350) && elapsed < Duration::from_secs(3),
        "cut after the header read timeout: {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(limits_config(
        &mock,
        "header_read_timeout = \"200ms\"\nidle_timeout = \"1s\"",
    ))
    .await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    for _ in 0..2 {
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_response(&mut conn).await.status, 200);
    }
    let answered = Instant::now();
    assert!(read_to_close(&mut conn).await.is_empty());
    let idle = answered.elapsed();
    // Not the header read timeout: that runs only once a next request has
    // begun to arrive.
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(4),
        "closed after the idle timeout: {idle:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_request_head_gets_header_read_timeout_from_its_first_byte() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(limits_config(
        &mock,
        "header_read_timeout = \"400ms\"\nidle_timeout = \"30s\"",
    ))
    .await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut conn).await.status, 200);
    conn.write_all(b"GET /heal").await.unwrap();
    let begun = Instant::now();
    assert!(read_to_close(&mut conn).await.is_empty());
    let elapsed = begun.elapsed();
    assert!(
        elapsed >= Duration::from_millis(350) && elapsed < Duration::from_secs(3),
        "cut after the header read timeout: {elapsed:?}"
    );
}

/// Sends a request whose body stops short of its `Content-Length`, and reads
/// the answer to the connection's close.
async fn unfinished_body(app: &TestApp, path: &str, headers: &str) -> (RawResponse, Duration) {
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    let part = br#"{"model": "m", "messages": ["#;
    conn.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nHost: gateway\r\n{headers}Content-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    conn.write_all(part).await.unwrap();
    let resp = RawResponse::parse(&read_to_close(&mut conn).await);
    (resp, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_finishes_gets_408_in_the_clients_format_and_the_connection_closes() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(limits_config(&mock, "body_read_timeout = \"500ms\"")).await;

    let (resp, elapsed) = unfinished_body(
        &app,
        "/v1/chat/completions",
        &format!("Authorization: Bearer {MASTER_KEY}\r\n"),
    )
    .await;
    assert_eq!(resp.status, 408);
    assert!(resp.head.contains("connection: close"), "{}", resp.head);
    let body = resp.json();
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(3),
        "answered after the body read timeout: {elapsed:?}"
    );

    let (resp, _) = unfinished_body(
        &app,
        "/v1/messages",
        &format!("x-api-key: {MASTER_KEY}\r\nanthropic-version: 2023-06-01\r\n"),
    )
    .await;
    assert_eq!(resp.status, 408);
    assert!(resp.head.contains("connection: close"), "{}", resp.head);
    let body = resp.json();
    assert_eq!(body["type"], "error", "Anthropic's shape: {body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("did not arrive")));
    assert_eq!(mock.request_count(), 0, "nothing went upstream");

    let metrics = app.metrics().await;
    assert_eq!(
        value(
            &metrics,
            "tollgate_http_requests_total",
            &[("route", "/v1/messages"), ("status", "408")]
        ),
        Some(1.0),
        "the 408 is counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_arrives_slowly_but_in_time_is_served() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(limits_config(&mock, "body_read_timeout = \"2s\"")).await;
    let body = serde_json::to_vec(&chat_body("m")).unwrap();
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    conn.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {MASTER_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    for piece in body.chunks(body.len().div_ceil(4)) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        conn.write_all(piece).await.unwrap();
    }
    let resp = read_response(&mut conn).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_requests_are_served_promptly_while_200_slow_connections_are_open() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(limits_config(
        &mock,
        "header_read_timeout = \"20s\"\nbody_read_timeout = \"20s\"",
    ))
    .await;
    let mut slow = Vec::new();
    for i in 0..200 {
        let conn = TcpStream::connect(app.addr).await.unwrap();
        let (read, mut write) = conn.into_split();
        // A third send nothing, a third trickle a head, a third a body.
        let first: Vec<u8> = match i % 3 {
            0 => Vec::new(),
            1 => b"GET /v1/models HTTP/1.1\r\nX-Pad: ".to_vec(),
            _ => format!(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {MASTER_KEY}\r\nContent-Length: 100000\r\n\r\n{{"
            )
            .into_bytes(),
        };
        slow.push(tokio::spawn(async move {
            let _read = read;
            if write.write_all(&first).await.is_err() {
                return;
            }
            if first.is_empty() {
                return std::future::pending().await;
            }
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if write.write_all(b"a").await.is_err() {
                    return;
                }
            }
        }));
    }
    let http = http_client();
    eventually("the slow connections are all open", async || {
        let m = http
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        value(&m, "tollgate_connections_open", &[]).is_some_and(|v| v >= 200.0)
    })
    .await;
    for _ in 0..20 {
        let started = Instant::now();
        let resp = app.chat(chat_body("m")).await;
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "served promptly: {:?}",
            started.elapsed()
        );
    }
    for task in slow {
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_connections_wait_until_one_closes() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(limits_config(
        &mock,
        "max_connections = 2\nheader_read_timeout = \"30s\"",
    ))
    .await;
    // The first connection: open, silent.
    let first = TcpStream::connect(app.addr).await.unwrap();
    // The second: the test client's pooled keep-alive connection.
    let http = http_client();
    let scrape = async || {
        let m = http
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        value(&m, "tollgate_connections_open", &[])
    };
    assert_eq!(scrape().await, Some(2.0));
    // A third connects (the listen backlog takes it) but is not served...
    let mut third = TcpStream::connect(app.addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), third.read(&mut buf))
            .await
            .is_err(),
        "the third connection is not served while two are open"
    );
    assert_eq!(scrape().await, Some(2.0));
    // ...until one of the two closes.
    drop(first);
    assert_eq!(read_response(&mut third).await.status, 200);
    assert_eq!(scrape().await, Some(2.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_is_served() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(limits_config(&mock, "")).await;
    router::provider::ensure_tls_provider();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(MASTER_KEY)
        .json(&chat_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_timeout_counts_only_writes_that_wait() {
    // An upstream slower than the write timeout at every step: before its
    // headers, before its first token, between tokens.
    let mock = spawn_mock(MockOptions {
        sim: SimConfig {
            latency: Duration::from_millis(400),
            ttft: Duration::from_millis(400),
            tokens_per_second: 4.0,
            output_tokens: 3,
            ..SimConfig::default()
        },
        ..Default::default()
    })
    .await;
    let mut app = spawn_app(limits_config(&mock, "write_timeout = \"200ms\"")).await;
    let mut body = chat_body("m");
    body["stream"] = json!(true);
    let events = read_sse(app.chat(body).await).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(app.next_record().await.complete());

    // A keep-alive connection waiting longer than the write timeout for its
    // next request is still there for it.
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    for _ in 0..2 {
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_response(&mut conn).await.status, 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `VmRSS` of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS in /proc/PID/status")
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_after_write_timeout_and_billed_for_what_it_got() {
    const OUTPUT_TOKENS: u32 = 300_000;
    // A long, unpaced stream: some 50 MB of events, far more than the
    // socket buffers between the upstream and the client hold.
    let mock = spawn_mock(MockOptions {
        sim: SimConfig {
            ttft: Duration::ZERO,
            tokens_per_second: 0.0,
            output_tokens: OUTPUT_TOKENS,
            // Usage is estimated, so the warm-up below loads the tokenizer.
            usage_shape: router::sim::UsageShape::None,
            ..SimConfig::default()
        },
        ..Default::default()
    })
    .await;
    // The gateway runs as its own process, so that its memory is its own.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    let d = dir.path().display();
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nmaster_key = \"{MASTER_KEY}\"\nwrite_timeout = \"1s\"\n\
             [database]\nurl = \"sqlite://{d}/tollgate.db\"\n[ledger]\nspool_dir = \"{d}/spool\"\nflush_interval = \"10ms\"\n\
             [providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n[models.m]\nprovider = \"up\"\n",
            mock.base_url()
        ),
    )
    .unwrap();
    let gw = crate::process::Gateway::start(&path);
    let pid = gw.child.id();
    // Warm: one whole answer, its usage estimated (which waits for the
    // tokenizer to load), so that what is measured next is the stream.
    let http = http_client();
    let mut small = chat_body("m");
    small["max_tokens"] = json!(8);
    let warm = http
        .post(format!("http://{}/v1/chat/completions", gw.addr))
        .bearer_auth(MASTER_KEY)
        .json(&small)
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    warm.bytes().await.unwrap();
    let db = billing::Db::connect(&format!("sqlite://{d}/tollgate.db"))
        .await
        .unwrap();
    crate::billing::ledger_with(&db, 1).await;
    let before = rss(pid);

    // A client with a small receive window that reads the head and a little
    // of the stream, then stops reading (and keeps the connection open).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut conn = socket.connect(gw.addr).await.unwrap();
    let mut body = chat_body("m");
    body["stream"] = json!(true);
    let body = serde_json::to_vec(&body).unwrap();
    conn.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {MASTER_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    conn.write_all(&body).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while seen.windows(6).filter(|w| w == b"data: ").count() < 3 {
        let n = tokio::time::timeout(DEADLINE, conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 200"));
    let stopped = Instant::now();

    let mut peak = before;
    let until = Instant::now() + DEADLINE;
    let row = loop {
        peak = peak.max(rss(pid));
        let rows = crate::billing::ledger(&db).await;
        if let Some(row) = rows.into_iter().find(|r| r.stream) {
            break row;
        }
        assert!(Instant::now() < until, "the stream was never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cut_after = stopped.elapsed();
    assert_eq!(row.outcome, "client_disconnected");
    let delivered = row.tokens[3];
    assert!(delivered > 0, "what reached the client is billed");
    assert!(
        delivered < i64::from(OUTPUT_TOKENS) / 4,
        "the upstream was held back, not read ahead into memory: {delivered} tokens relayed"
    );
    assert!(
        cut_after >= Duration::from_millis(950),
        "cut no sooner than the write timeout: {cut_after:?}"
    );
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 24 << 20,
        "memory stays bounded: grew {} MiB (from {} MiB)",
        grown >> 20,
        before >> 20
    );
    // The client finds its connection closed once it reads what was sent.
    let rest = read_to_close(&mut conn).await;
    assert!(!rest.is_empty());
    let metrics = http
        .get(format!("http://{}/metrics", gw.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        value(
            &metrics,
            "tollgate_streams_total",
            &[
                ("end", "client_disconnected"),
                ("model", "m"),
                ("provider", "up")
            ]
        ),
        Some(1.0)
    );
}

/// A chat body of about `bytes`.
fn chat_of_size(bytes: usize) -> Value {
    json!({"model": "m", "max_tokens": 4,
           "messages": [{"role": "user", "content": "word ".repeat(bytes / 5)}]})
}

/// Request bytes past `max_request_bytes_in_flight` wait for room (a body
/// declared by its length waits unread), then get a 503 in the client's
/// format; a small request beside them is served at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bytes_past_the_cap_wait_for_room_then_get_503() {
    let mock = spawn_mock(MockOptions {
        sim: SimConfig {
            latency: Duration::from_millis(600),
            ..fast_sim()
        },
        ..Default::default()
    })
    .await;
    // Model `m` answers after 600 ms; `quick` at once, on another mock.
    let quick = spawn_fast_mock().await;
    let app = spawn_app(config(&format!(
        "max_request_bytes_in_flight = 1000000\nrequest_bytes_wait = \"2s\"\n\
         [providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n[models.m]\nprovider = \"up\"\n\
         [providers.fast]\nkind = \"openai\"\nbase_url = \"{}\"\n[models.quick]\nprovider = \"fast\"\n",
        mock.base_url(),
        quick.base_url()
    )))
    .await;
    let big = chat_of_size(600_000);
    let send = |body: Value| {
        let req = app.post("/v1/chat/completions").json(&body);
        async move {
            let started = Instant::now();
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (status, body, started.elapsed(), Instant::now())
        }
    };
    let in_flight = || async {
        value(
            &app.metrics().await,
            "tollgate_request_bytes_in_flight",
            &[],
        )
        .unwrap()
    };
    // Two big ones at once: the second waits for the first's answer.
    let first = tokio::spawn(send(big.clone()));
    eventually("the first body holds its room", async || {
        (600_000.0..1_000_000.0).contains(&in_flight().await)
    })
    .await;
    let second = tokio::spawn(send(big.clone()));
    // A small one fits beside the first and is not held up behind the
    // second: it is answered before the first is.
    let (status, _, _, small_done) = send(chat_body("quick")).await;
    assert_eq!(status, 200);
    let (s1, _, t1, first_done) = first.await.unwrap();
    let (s2, _, t2, _) = second.await.unwrap();
    assert_eq!((s1, s2), (200, 200));
    assert!(small_done < first_done, "the small request waited");
    assert!(t1 >= Duration::from_millis(600));
    // The second began only once the first had its answer.
    assert!(t2 >= Duration::from_millis(1000), "{t2:?}");
    assert_eq!(in_flight().await, 0.0);

    // With a wait shorter than the upstream's answer, the second gets a
    // 503, in its client's format.
    let app2 = spawn_app(limits_config(
        &mock,
        "max_request_bytes_in_flight = 1000000\nrequest_bytes_wait = \"300ms\"",
    ))
    .await;
    let held = {
        let req = app2.post("/v1/chat/completions").json(&big);
        tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
    };
    eventually("the big body holds its room", async || {
        value(
            &app2.metrics().await,
            "tollgate_request_bytes_in_flight",
            &[],
        )
        .is_some_and(|v| v > 0.0)
    })
    .await;
    let resp = app2
        .post("/v1/messages")
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "m", "max_tokens": 4,
            "messages": [{"role": "user", "content": "word ".repeat(120_000)}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["type"], "error", "Anthropic's shape: {err}");
    assert_eq!(err["error"]["type"], "overloaded_error", "{err}");
    assert_eq!(held.await.unwrap(), 200);
}
