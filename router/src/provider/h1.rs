//! Requests to plain-HTTP upstreams (local models, sidecars, in-cluster
//! proxies) on connections of their own, read in the request's own task
//! (a stream's body in the relay's).
//!
//! Through the pooled HTTP client every connection runs in a task of its
//! own: the request crosses to it and the answer back, and a stream's body
//! crosses one HTTP chunk at a time. An upstream sends an event a chunk, so
//! a 64-token answer crossed between two tasks some 70 times, each a
//! wake-up and often a hop between threads. Here the request owns its
//! connection: it writes the request, reads the head, and the relay's poll
//! reads the socket itself, takes everything one read brought (many events
//! in a burst), strips the chunked framing and hands it over as one piece.
//! Each connection keeps a read buffer sized to what it reads and nothing
//! else (no connection task, no dispatch channel, no write buffer once the
//! request is sent).
//!
//! Used for `http://` base URLs when no proxy is set in the environment and
//! `TOLLGATE_UPSTREAM_CONNECTIONS` is not `pooled`; everything else (TLS,
//! where vendors speak HTTP/2; proxies) goes through the pooled client.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ProviderError;

/// The longest response head read; past it the answer fails.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most headers a response may carry.
const MAX_HEADERS: usize = 96;
/// A chunk-size line (with extensions) or a trailer line longer than this
/// is not HTTP.
const MAX_LINE_BYTES: usize = 4 * 1024;
/// What a connection reads into at first; a read that fills it doubles the
/// next, up to [`MAX_READ_BYTES`].
const FIRST_READ_BYTES: usize = 4 * 1024;
const MAX_READ_BYTES: usize = 64 * 1024;
/// Idle connections kept per upstream, and for how long.
const MAX_IDLE: usize = 256;
const IDLE_FOR: Duration = Duration::from_secs(90);

/// Whether requests to `url` may take this path: plain HTTP, no proxy in
/// the environment (the pooled client honours those; this path does not),
/// and not turned off with `TOLLGATE_UPSTREAM_CONNECTIONS=pooled`.
pub(super) fn applies(url: &reqwest::Url) -> bool {
    let set = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    url.scheme() == "http"
        && !["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
            .iter()
            .any(|var| set(var))
        && std::env::var_os("TOLLGATE_UPSTREAM_CONNECTIONS").is_none_or(|v| v != "pooled")
}

/// Where to connect, and the connections kept open to it.
#[derive(Debug)]
pub(super) struct Origin {
    host: Host,
    port: u16,
    /// The `host` header: the URL's host, with its port when not 80.
    authority: String,
    user_agent: &'static str,
    connect_timeout: Duration,
    idle: Arc<Mutex<Vec<Idle>>>,
}

#[derive(Debug)]
enum Host {
    Name(String),
    Addr(std::net::IpAddr),
}

#[derive(Debug)]
struct Idle {
    conn: TcpStream,
    since: std::time::Instant,
}

/// A response's status and headers, with the body to read.
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Body,
}

impl Origin {
    /// `None` when the URL has no host to connect to.
    pub(super) fn new(
        url: &reqwest::Url,
        connect_timeout: Duration,
        user_agent: &'static str,
    ) -> Option<Self> {
        let host_str = url.host_str()?;
        let bare = host_str.trim_start_matches('[').trim_end_matches(']');
        let host = match bare.parse::<std::net::IpAddr>() {
            Ok(addr) => Host::Addr(addr),
            Err(_) => Host::Name(bare.to_owned()),
        };
        let port = url.port_or_known_default()?;
        let authority = match url.port() {
            Some(p) => format!("{host_str}:{p}"),
            None => host_str.to_owned(),
        };
        Some(Self {
            host,
            port,
            authority,
            user_agent,
            connect_timeout,
            idle: Arc::default(),
        })
    }

    /// The request's head and body as one write: `POST path?query
    /// HTTP/1.1`, the fixed headers, then `headers` (which must not repeat
    /// them).
    fn request(
        &self,
        url: &reqwest::Url,
        headers: &HeaderMap,
        body: &[u8],
        stream: bool,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + url.as_str().len() + body.len());
        out.extend_from_slice(b"POST ");
        out.extend_from_slice(url.path().as_bytes());
        if let Some(query) = url.query() {
            out.push(b'?');
            out.extend_from_slice(query.as_bytes());
        }
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(self.authority.as_bytes());
        out.extend_from_slice(b"\r\nuser-agent: ");
        out.extend_from_slice(self.user_agent.as_bytes());
        out.extend_from_slice(if stream {
            &b"\r\ncontent-type: application/json\r\naccept: text/event-stream\r\ncontent-length: "
                [..]
        } else {
            &b"\r\ncontent-type: application/json\r\naccept: */*\r\ncontent-length: "[..]
        });
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in headers {
            if matches!(
                name.as_str(),
                "host"
                    | "content-length"
                    | "transfer-encoding"
                    | "connection"
                    | "content-type"
                    | "accept"
                    | "user-agent"
            ) {
                continue;
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }

    async fn connect(&self) -> Result<TcpStream, ProviderError> {
        let connecting = async {
            match &self.host {
                Host::Name(name) => TcpStream::connect((name.as_str(), self.port)).await,
                Host::Addr(addr) => TcpStream::connect(SocketAddr::new(*addr, self.port)).await,
            }
        };
        let conn = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| ProviderError::Connect("the connection timed out".into()))?
            .map_err(|e| ProviderError::Connect(e.to_string()))?;
        conn.set_nodelay(true)
            .map_err(|e| ProviderError::Connect(e.to_string()))?;
        Ok(conn)
    }

    /// An idle connection the upstream has not closed, if one is kept.
    fn reuse(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(Idle { conn, since }) = idle.pop() {
            if since.elapsed() >= IDLE_FOR {
                continue;
            }
            // An idle connection has nothing to read: an end of file (the
            // upstream closed it) or stray bytes make it unusable.
            let mut probe = [0u8; 1];
            match conn.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(conn),
                _ => continue,
            }
        }
        None
    }

    /// POSTs `body` to `url`'s path and query, asking for an event
    /// stream when `stream` says so, and reads the response's head. A kept
    /// connection that turns out closed before any of the answer arrived
    /// (the upstream dropped it as the request went out) is replaced by a
    /// new one once; a new connection's failure is final.
    pub(super) async fn post(
        &self,
        url: &reqwest::Url,
        headers: &HeaderMap,
        body: &[u8],
        stream: bool,
    ) -> Result<Answer, ProviderError> {
        let request = self.request(url, headers, body, stream);
        if let Some(conn) = self.reuse() {
            match self.exchange(conn, &request).await {
                Ok(answer) => return Ok(answer),
                Err(Failure::Unanswered(_)) => {}
                Err(Failure::Answering(e)) => return Err(e),
            }
        }
        let conn = self.connect().await?;
        self.exchange(conn, &request).await.map_err(|f| match f {
            Failure::Unanswered(e) | Failure::Answering(e) => e,
        })
    }

    async fn exchange(&self, mut conn: TcpStream, request: &[u8]) -> Result<Answer, Failure> {
        conn.write_all(request)
            .await
            .map_err(|e| Failure::Unanswered(transport(&e)))?;
        let mut buf = BytesMut::with_capacity(FIRST_READ_BYTES);
        loop {
            // The head as far as it came; 1xx heads are skipped.
            if let Some((status, headers, len)) = parse_head(&buf).map_err(Failure::Answering)? {
                buf.advance(len);
                if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                    continue;
                }
                let framing = Framing::of(status, &headers).map_err(Failure::Answering)?;
                let reusable = framing.reusable() && !closes(&headers);
                return Ok(Answer {
                    status,
                    headers,
                    body: Body {
                        conn: Some(conn),
                        buf,
                        next_read: FIRST_READ_BYTES,
                        framing,
                        reusable,
                        idle: Arc::clone(&self.idle),
                        done: false,
                    },
                });
            }
            if buf.len() >= MAX_HEAD_BYTES {
                return Err(Failure::Answering(ProviderError::Transport(format!(
                    "the response head is larger than {MAX_HEAD_BYTES} bytes"
                ))));
            }
            buf.reserve(FIRST_READ_BYTES);
            match conn.read_buf(&mut buf).await {
                Ok(0) if buf.is_empty() => {
                    return Err(Failure::Unanswered(ProviderError::Transport(
                        "the upstream closed the connection before answering".into(),
                    )))
                }
                Ok(0) => {
                    return Err(Failure::Answering(ProviderError::Transport(
                        "the upstream closed the connection mid-head".into(),
                    )))
                }
                Ok(_) => {}
                Err(e) if buf.is_empty() => return Err(Failure::Unanswered(transport(&e))),
                Err(e) => return Err(Failure::Answering(transport(&e))),
            }
        }
    }
}

/// How an exchange failed: before any of the answer came (a kept
/// connection may be replaced), or after.
enum Failure {
    Unanswered(ProviderError),
    Answering(ProviderError),
}

fn transport(e: &std::io::Error) -> ProviderError {
    ProviderError::Transport(e.to_string())
}

/// The status, headers and length of the head at the start of `buf`, once
/// it is all there.
fn parse_head(buf: &[u8]) -> Result<Option<(StatusCode, HeaderMap, usize)>, ProviderError> {
    let malformed = |why: &dyn std::fmt::Display| {
        ProviderError::Transport(format!(
            "the upstream sent a malformed response head: {why}"
        ))
    };
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut slots);
    let len = match head.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(malformed(&e)),
    };
    let code = head.code.unwrap_or_default();
    let status = StatusCode::from_u16(code).map_err(|e| malformed(&e))?;
    let mut headers = HeaderMap::with_capacity(head.headers.len());
    for h in head.headers.iter() {
        let name = reqwest::header::HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|e| malformed(&e))?;
        let value = HeaderValue::from_bytes(h.value).map_err(|e| malformed(&e))?;
        headers.append(name, value);
    }
    if head.version == Some(0) && !headers.contains_key(reqwest::header::CONNECTION) {
        // HTTP/1.0 closes unless asked otherwise; never reuse it.
        headers.insert(
            reqwest::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    Ok(Some((status, headers, len)))
}

/// Whether the upstream closes the connection after this answer.
fn closes(headers: &HeaderMap) -> bool {
    headers
        .get_all(reqwest::header::CONNECTION)
        .iter()
        .any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
        })
}

/// How the body's end is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (204, 304).
    Empty,
    /// `content-length`: this many bytes are left.
    Length(u64),
    /// `transfer-encoding: chunked`, at this point of the framing.
    Chunked(Chunk),
    /// Neither: the body ends when the upstream closes.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// A chunk-size line is next.
    Size,
    /// This many bytes of a chunk's data are left.
    Data(u64),
    /// The line end after a chunk's data is next.
    DataEnd,
    /// Trailer lines, up to an empty one.
    Trailers,
    /// The last chunk and its trailers are in.
    Done,
}

impl Framing {
    fn of(status: StatusCode, headers: &HeaderMap) -> Result<Self, ProviderError> {
        if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            return Ok(Self::Empty);
        }
        let chunked = headers
            .get_all(reqwest::header::TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        if chunked {
            return Ok(Self::Chunked(Chunk::Size));
        }
        if headers.contains_key(reqwest::header::TRANSFER_ENCODING) {
            // Another coding last: the body ends with the connection.
            return Ok(Self::UntilClose);
        }
        let mut lengths = headers.get_all(reqwest::header::CONTENT_LENGTH).iter();
        match lengths.next() {
            None => Ok(Self::UntilClose),
            Some(first) => {
                let parse =
                    |v: &HeaderValue| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok());
                let n = parse(first).ok_or_else(|| {
                    ProviderError::Transport("the upstream sent a malformed content-length".into())
                })?;
                if lengths.any(|v| parse(v) != Some(n)) {
                    return Err(ProviderError::Transport(
                        "the upstream sent conflicting content-lengths".into(),
                    ));
                }
                Ok(Self::Length(n))
            }
        }
    }

    fn reusable(self) -> bool {
        !matches!(self, Self::UntilClose)
    }

    fn done(self) -> bool {
        matches!(
            self,
            Self::Empty | Self::Length(0) | Self::Chunked(Chunk::Done)
        )
    }

    /// Moves what of the body `raw` holds into `out`, framing removed, and
    /// leaves in `raw` what needs more bytes to make sense of.
    fn decode(&mut self, raw: &mut BytesMut, out: &mut BytesMut) -> Result<(), ProviderError> {
        match self {
            Self::Empty => Ok(()),
            Self::UntilClose => {
                out.extend_from_slice(raw);
                raw.clear();
                Ok(())
            }
            Self::Length(left) => {
                let n = (*left).min(raw.len() as u64) as usize;
                out.extend_from_slice(&raw[..n]);
                raw.advance(n);
                *left -= n as u64;
                Ok(())
            }
            Self::Chunked(state) => decode_chunked(state, raw, out),
        }
    }
}

fn malformed_chunk(why: &str) -> ProviderError {
    ProviderError::Transport(format!("the upstream sent a malformed chunked body: {why}"))
}

/// The line at the start of `raw` (without its line end) and its length
/// with it, once it is all there.
fn line(raw: &[u8]) -> Result<Option<(&[u8], usize)>, ProviderError> {
    match memchr::memchr(b'\n', raw) {
        Some(at) if at > MAX_LINE_BYTES => Err(malformed_chunk("a line is too long")),
        Some(at) => {
            let text = &raw[..at];
            Ok(Some((text.strip_suffix(b"\r").unwrap_or(text), at + 1)))
        }
        None if raw.len() > MAX_LINE_BYTES => Err(malformed_chunk("a line is too long")),
        None => Ok(None),
    }
}

fn decode_chunked(
    state: &mut Chunk,
    raw: &mut BytesMut,
    out: &mut BytesMut,
) -> Result<(), ProviderError> {
    loop {
        match *state {
            Chunk::Size => {
                let Some((text, len)) = line(raw)? else {
                    return Ok(());
                };
                // The size, then extensions after `;`, which mean nothing here.
                let digits = text
                    .split(|&b| b == b';')
                    .next()
                    .unwrap_or_default()
                    .trim_ascii();
                if digits.is_empty() || digits.len() > 15 {
                    return Err(malformed_chunk("a chunk size is missing or too large"));
                }
                let mut size = 0u64;
                for &d in digits {
                    let v = (d as char)
                        .to_digit(16)
                        .ok_or_else(|| malformed_chunk("a chunk size is not hexadecimal"))?;
                    size = size * 16 + u64::from(v);
                }
                raw.advance(len);
                *state = if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(left) => {
                if raw.is_empty() {
                    return Ok(());
                }
                let n = left.min(raw.len() as u64) as usize;
                out.extend_from_slice(&raw[..n]);
                raw.advance(n);
                *state = if left == n as u64 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left - n as u64)
                };
            }
            Chunk::DataEnd => {
                let end = match raw.first() {
                    None => return Ok(()),
                    Some(b'\n') => 1,
                    Some(b'\r') if raw.len() < 2 => return Ok(()),
                    Some(b'\r') if raw[1] == b'\n' => 2,
                    Some(_) => return Err(malformed_chunk("a chunk runs past its size")),
                };
                raw.advance(end);
                *state = Chunk::Size;
            }
            Chunk::Trailers => {
                let Some((text, len)) = line(raw)? else {
                    return Ok(());
                };
                let last = text.is_empty();
                raw.advance(len);
                if last {
                    *state = Chunk::Done;
                }
            }
            Chunk::Done => return Ok(()),
        }
    }
}

/// Keeps `conn` among the `idle` ones, unless [`MAX_IDLE`] are kept. They
/// are in the order they were put back (and are taken from the end): the
/// expired ones are at the front, and are closed here rather than held
/// until a lull reaches them.
fn put_back(idle: &mut Vec<Idle>, conn: TcpStream, now: std::time::Instant) {
    let expired = idle.partition_point(|i| now.saturating_duration_since(i.since) >= IDLE_FOR);
    idle.drain(..expired);
    if idle.len() < MAX_IDLE {
        idle.push(Idle { conn, since: now });
    }
}

/// A response body read as the relay polls it: each poll reads what the
/// socket holds and returns it whole, framing removed. Read to its end, the
/// connection goes back to the upstream's idle ones; dropped before, it is
/// closed.
pub(super) struct Body {
    conn: Option<TcpStream>,
    /// Bytes read and not yet decoded (a head's leftover, a partial line).
    buf: BytesMut,
    /// How much the next read takes.
    next_read: usize,
    framing: Framing,
    reusable: bool,
    idle: Arc<Mutex<Vec<Idle>>>,
    done: bool,
}

impl Body {
    /// The body's end: the connection goes back to the idle ones when the
    /// upstream keeps it open and nothing follows the body.
    fn end(&mut self) {
        self.done = true;
        if let Some(conn) = self.conn.take() {
            if self.reusable && self.buf.is_empty() {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                put_back(&mut idle, conn, std::time::Instant::now());
            }
        }
    }

    fn fail(&mut self, e: ProviderError) -> Poll<Option<Result<Bytes, ProviderError>>> {
        self.done = true;
        self.conn = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl Stream for Body {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            // What one read brought decodes to no more than its size.
            let mut out = BytesMut::with_capacity(this.buf.len());
            if let Err(e) = this.framing.decode(&mut this.buf, &mut out) {
                return this.fail(e);
            }
            if this.framing.done() {
                this.end();
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(out.freeze())));
            }
            if this.done {
                return Poll::Ready(None);
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            // Read what the socket holds: everything the upstream sent since
            // the last read, however many events.
            if this.buf.capacity() - this.buf.len() < this.next_read {
                this.buf.reserve(this.next_read);
            }
            let read = loop {
                match conn.try_read_buf(&mut this.buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if let Err(e) = ready!(conn.poll_read_ready(cx)) {
                            break Err(e);
                        }
                    }
                    other => break other,
                }
            };
            match read {
                Ok(0) if this.framing == Framing::UntilClose => {
                    this.reusable = false;
                    this.end();
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    return this.fail(ProviderError::Transport(
                        "the upstream closed the connection mid-answer".into(),
                    ))
                }
                Ok(n) => {
                    if n >= this.next_read {
                        this.next_read = (this.next_read * 2).min(MAX_READ_BYTES);
                    }
                }
                Err(e) => return this.fail(transport(&e)),
            }
        }
    }
}

/// A body's decoding with the framing the selector picks (chunked, a
/// content-length of the selector's value, or until the connection closes),
/// fed `pieces` in turn: what came out, whether the body ended, and the
/// error that stopped it, if one did. Then the response head parser over
/// the pieces joined, which must say how long a head it found within them.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_decode(selector: u8, pieces: &[&[u8]]) -> (Vec<u8>, bool, Option<String>) {
    let mut framing = match selector % 3 {
        0 => Framing::Chunked(Chunk::Size),
        1 => Framing::Length(u64::from(selector)),
        _ => Framing::UntilClose,
    };
    let mut raw = BytesMut::new();
    let mut out = BytesMut::new();
    for piece in pieces {
        raw.extend_from_slice(piece);
        if let Err(e) = framing.decode(&mut raw, &mut out) {
            return (out.to_vec(), framing.done(), Some(e.to_string()));
        }
    }
    let joined = pieces.concat();
    if let Ok(Some((_, _, len))) = parse_head(&joined) {
        assert!(len <= joined.len(), "a head longer than its input");
    }
    (out.to_vec(), framing.done(), None)
}

#[cfg(test)]
// The tests' loopback upstreams run in bare tasks: they end with the test.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn decode_all(framing: &mut Framing, pieces: &[&[u8]]) -> Result<Vec<u8>, ProviderError> {
        let mut raw = BytesMut::new();
        let mut out = BytesMut::new();
        for p in pieces {
            raw.extend_from_slice(p);
            framing.decode(&mut raw, &mut out)?;
        }
        Ok(out.to_vec())
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_reads_cut() {
        let body: &[u8] = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\ntrailer: x\r\n\r\n";
        for cut in 0..body.len() {
            for cut2 in cut..body.len() {
                let mut f = Framing::Chunked(Chunk::Size);
                let got =
                    decode_all(&mut f, &[&body[..cut], &body[cut..cut2], &body[cut2..]]).unwrap();
                assert_eq!(got, b"hello, world", "cut at {cut} and {cut2}");
                assert!(f.done());
            }
        }
    }

    #[test]
    fn malformed_chunked_bodies_are_errors() {
        for bad in [
            &b"zz\r\n"[..],
            b"3\r\nabcd\r\n",
            b"10000000000000000\r\n",
            b"\r\n",
        ] {
            let mut f = Framing::Chunked(Chunk::Size);
            assert!(
                decode_all(&mut f, &[bad]).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut f = Framing::Chunked(Chunk::Size);
        let long = vec![b'1'; MAX_LINE_BYTES + 2];
        assert!(decode_all(&mut f, &[&long]).is_err());
    }

    #[test]
    fn a_content_length_body_ends_at_its_length() {
        let mut f = Framing::Length(5);
        let mut raw = BytesMut::from(&b"hel"[..]);
        let mut out = BytesMut::new();
        f.decode(&mut raw, &mut out).unwrap();
        raw.extend_from_slice(b"loEXTRA");
        f.decode(&mut raw, &mut out).unwrap();
        assert_eq!(&out[..], b"hello");
        assert_eq!(&raw[..], b"EXTRA");
        assert!(f.done());
    }

    #[test]
    fn the_framing_follows_the_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(
            Framing::of(StatusCode::OK, &h).unwrap(),
            Framing::UntilClose
        );
        h.insert("content-length", HeaderValue::from_static("12"));
        assert_eq!(
            Framing::of(StatusCode::OK, &h).unwrap(),
            Framing::Length(12)
        );
        assert_eq!(
            Framing::of(StatusCode::NO_CONTENT, &h).unwrap(),
            Framing::Empty
        );
        h.append("content-length", HeaderValue::from_static("13"));
        assert!(Framing::of(StatusCode::OK, &h).is_err());
        h.insert(
            "transfer-encoding",
            HeaderValue::from_static("gzip, chunked"),
        );
        assert_eq!(
            Framing::of(StatusCode::OK, &h).unwrap(),
            Framing::Chunked(Chunk::Size)
        );
        h.insert(
            "transfer-encoding",
            HeaderValue::from_static("chunked, gzip"),
        );
        assert_eq!(
            Framing::of(StatusCode::OK, &h).unwrap(),
            Framing::UntilClose
        );
    }

    #[test]
    fn heads_parse_once_whole() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n5\r\n";
        assert!(parse_head(&head[..20]).unwrap().is_none());
        let (status, headers, len) = parse_head(head).unwrap().unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "text/event-stream");
        assert_eq!(&head[len..], b"5\r\n");
        assert!(parse_head(b"HTTP/1.1 2000 OK\r\n\r\n").is_err());
        let (_, h10, _) = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert!(closes(&h10));
    }

    /// A loopback upstream that answers each request on a connection with
    /// the next of `answers` (raw HTTP), closing the connection after an
    /// answer when it says `close`; it records every request's head and how
    /// many connections it took.
    struct Upstream {
        url: String,
        heads: Arc<Mutex<Vec<String>>>,
        connections: Arc<std::sync::atomic::AtomicUsize>,
    }

    async fn upstream(answers: Vec<(&'static str, bool)>) -> Upstream {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        let (h, c) = (heads.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                let (h, answers) = (h.clone(), answers.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        // One request: its head, then content-length bytes.
                        let (head, body_len) = loop {
                            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                                let len = head
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length: "))
                                    .map_or(0, |v| v.parse::<usize>().unwrap());
                                buf.drain(..end + 4);
                                break (head, len);
                            }
                            let mut piece = [0u8; 4096];
                            match conn.read(&mut piece).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&piece[..n]),
                            }
                        };
                        while buf.len() < body_len {
                            let mut piece = [0u8; 4096];
                            let n = conn.read(&mut piece).await.unwrap();
                            buf.extend_from_slice(&piece[..n]);
                        }
                        buf.drain(..body_len);
                        h.lock().unwrap().push(head);
                        let next = answers.lock().unwrap().next();
                        let Some((answer, close)) = next else { return };
                        conn.write_all(answer.as_bytes()).await.unwrap();
                        if close {
                            return;
                        }
                    }
                });
            }
        });
        Upstream {
            url,
            heads,
            connections,
        }
    }

    const SSE: &str =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
        f\r\ndata: {\"a\":1}\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n";

    fn http_upstream(url: &str) -> super::super::http::HttpUpstream {
        super::super::http::HttpUpstream::new(url, super::super::Timeouts::default()).unwrap()
    }

    async fn streamed(
        up: &super::super::http::HttpUpstream,
        path: &str,
        headers: HeaderMap,
    ) -> Result<(StatusCode, Option<String>, Vec<u8>), ProviderError> {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let reply = up
            .post(
                path,
                headers,
                Bytes::from_static(b"{\"stream\":true}"),
                true,
                deadline,
            )
            .await?;
        let body = match reply.body {
            super::super::ReplyBody::Full(b) => b.to_vec(),
            super::super::ReplyBody::Stream(mut s) => {
                let mut out = Vec::new();
                while let Some(piece) = s.next().await {
                    out.extend_from_slice(&piece?);
                }
                out
            }
        };
        Ok((reply.status, reply.retry_after, body))
    }

    #[tokio::test]
    async fn a_stream_reads_its_own_connection_which_is_kept_for_the_next() {
        let up = upstream(vec![(SSE, false), (SSE, false)]).await;
        let client = http_upstream(&up.url);
        assert!(
            client.direct.is_some(),
            "an http:// upstream takes its own connections"
        );
        let mut headers = HeaderMap::new();
        headers.insert("anthropic-beta", HeaderValue::from_static("x-1"));
        for _ in 0..2 {
            let (status, _, body) =
                streamed(&client, "/chat/completions?beta=true", headers.clone())
                    .await
                    .unwrap();
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, b"data: {\"a\":1}\n\ndata: [DONE]\n\n");
        }
        assert_eq!(up.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
        let heads = up.heads.lock().unwrap().clone();
        let head = &heads[0];
        assert!(
            head.starts_with("POST /v1/chat/completions?beta=true HTTP/1.1\r\n"),
            "{head}"
        );
        for line in [
            "accept: text/event-stream",
            "content-type: application/json",
            "content-length: 15",
            "anthropic-beta: x-1",
        ] {
            assert!(
                head.lines().any(|l| l == line),
                "{line} missing from {head}"
            );
        }
        let host = reqwest::Url::parse(&up.url).unwrap();
        assert!(
            head.contains(&format!("host: 127.0.0.1:{}", host.port().unwrap())),
            "{head}"
        );
    }

    #[tokio::test]
    async fn a_whole_answer_is_read_on_a_kept_connection_too() {
        let whole = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
        let up = upstream(vec![(whole, false), (whole, false)]).await;
        let client = http_upstream(&up.url);
        for _ in 0..2 {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            let reply = client
                .post(
                    "/embeddings",
                    HeaderMap::new(),
                    Bytes::from_static(b"{}"),
                    false,
                    deadline,
                )
                .await
                .unwrap();
            assert_eq!(reply.status, StatusCode::OK);
            match reply.body {
                super::super::ReplyBody::Full(b) => assert_eq!(&b[..], b"{\"ok\":true}"),
                super::super::ReplyBody::Stream(_) => panic!("a whole answer came as a stream"),
            }
        }
        assert_eq!(up.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
        let head = up.heads.lock().unwrap()[0].clone();
        assert!(
            head.starts_with("POST /v1/embeddings HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(head.lines().any(|l| l == "accept: */*"), "{head}");
    }

    #[tokio::test]
    async fn a_kept_connection_the_upstream_closed_is_replaced() {
        // The upstream closes after each answer without saying so.
        let up = upstream(vec![(SSE, true), (SSE, true), (SSE, true)]).await;
        let client = http_upstream(&up.url);
        for _ in 0..3 {
            let (status, _, body) = streamed(&client, "/chat/completions", HeaderMap::new())
                .await
                .unwrap();
            assert_eq!(status, StatusCode::OK);
            assert!(body.ends_with(b"data: [DONE]\n\n"));
        }
        assert_eq!(up.connections.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_request_a_kept_connection_dropped_unanswered_goes_again_on_a_new_one() {
        // The second request reaches the kept connection, which the
        // upstream closes without an answer (as one closing an idle
        // connection does when a request crosses it).
        let up = upstream(vec![(SSE, false), ("", true), (SSE, false)]).await;
        let client = http_upstream(&up.url);
        for _ in 0..2 {
            let (status, _, _) = streamed(&client, "/chat/completions", HeaderMap::new())
                .await
                .unwrap();
            assert_eq!(status, StatusCode::OK);
        }
        assert_eq!(up.connections.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(
            up.heads.lock().unwrap().len(),
            3,
            "sent once more, on the new connection"
        );
        // A new connection's failure is final.
        let up = upstream(vec![("", true), (SSE, false)]).await;
        let err = streamed(
            &http_upstream(&up.url),
            "/chat/completions",
            HeaderMap::new(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("before answering"), "{err}");
        assert_eq!(up.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn connection_close_and_close_delimited_bodies_are_not_reused() {
        let until_close =
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: [DONE]\n\n";
        let said_close = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\ncontent-length: 14\r\n\r\ndata: [DONE]\n\n";
        let up = upstream(vec![(until_close, true), (said_close, false), (SSE, false)]).await;
        let client = http_upstream(&up.url);
        for _ in 0..3 {
            let (_, _, body) = streamed(&client, "/chat/completions", HeaderMap::new())
                .await
                .unwrap();
            assert!(
                body.ends_with(b"data: [DONE]\n\n"),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
        assert_eq!(up.connections.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_error_answer_is_read_whole_with_its_retry_after() {
        let busy = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 7\r\ncontent-length: 13\r\n\r\n{\"error\":\"x\"}";
        let up = upstream(vec![(busy, false), (SSE, false)]).await;
        let client = http_upstream(&up.url);
        let (status, retry_after, body) = streamed(&client, "/chat/completions", HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry_after.as_deref(), Some("7"));
        assert_eq!(body, b"{\"error\":\"x\"}");
        // Read whole, the connection serves the next request.
        streamed(&client, "/chat/completions", HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(up.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stream_cut_mid_chunk_is_an_error_and_its_connection_is_dropped() {
        let cut = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\ne\r\ndata: {\"a\"";
        let up = upstream(vec![(cut, true), (SSE, false)]).await;
        let client = http_upstream(&up.url);
        let err = streamed(&client, "/chat/completions", HeaderMap::new())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("closed the connection mid-answer"),
            "{err}"
        );
        streamed(&client, "/chat/completions", HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(up.connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_upstream_that_never_answers_times_out_at_the_first_byte() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(conn);
        });
        let timeouts = super::super::Timeouts {
            first_byte: Duration::from_millis(200),
            ..Default::default()
        };
        let client = super::super::http::HttpUpstream::new(&url, timeouts).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let err = client
            .post(
                "/chat/completions",
                HeaderMap::new(),
                Bytes::new(),
                true,
                deadline,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ProviderError::Timeout(super::super::TimeoutPhase::FirstByte)
            ),
            "{err}"
        );
        held.abort();
    }

    #[tokio::test]
    async fn expired_idle_connections_are_closed_when_one_is_put_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepted and held, so that the listen backlog never fills.
        let accepting = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        let mut idle = Vec::new();
        let now = std::time::Instant::now();
        for age in [100, 95, 1] {
            let conn = TcpStream::connect(addr).await.unwrap();
            idle.push(Idle {
                conn,
                since: now - Duration::from_secs(age),
            });
        }
        put_back(&mut idle, TcpStream::connect(addr).await.unwrap(), now);
        let ages: Vec<u64> = idle.iter().map(|i| (now - i.since).as_secs()).collect();
        assert_eq!(ages, [1, 0]);
        for _ in 0..MAX_IDLE {
            put_back(&mut idle, TcpStream::connect(addr).await.unwrap(), now);
        }
        assert_eq!(idle.len(), MAX_IDLE);
        accepting.abort();
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        drop(listener);
        let client = http_upstream(&url);
        let err = streamed(&client, "/chat/completions", HeaderMap::new())
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::Connect(_)), "{err}");
    }
}
