//! The HTTP mechanics every remote provider shares: one pooled client (or,
//! for a plain-HTTP upstream, connections of each request's own), the
//! timeouts, capped body reads, and SSE detection.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use tokio::time::Instant;

use super::{h1, tls, ProviderError, ReplyBody, TimeoutPhase, Timeouts, UpstreamReply};
/// The largest whole answer read from an upstream; past it the answer fails.
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
/// The most of an error body kept; the rest is dropped.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Reads a whole body by `deadline`: a success body up to
/// [`MAX_BODY_BYTES`] (past it, an error), an error body cut at
/// [`MAX_ERROR_BODY_BYTES`].
async fn read_whole(
    mut body: impl futures_util::Stream<Item = Result<Bytes, ProviderError>> + Unpin,
    status: reqwest::StatusCode,
    deadline: Instant,
) -> Result<Bytes, ProviderError> {
    let (limit, cut) = if status.is_success() {
        (MAX_BODY_BYTES, false)
    } else {
        (MAX_ERROR_BODY_BYTES, true)
    };
    let read = async {
        let mut out = bytes::BytesMut::new();
        while let Some(piece) = futures_util::StreamExt::next(&mut body).await {
            let piece = piece?;
            if out.len() + piece.len() > limit {
                if cut {
                    out.extend_from_slice(&piece[..limit - out.len()]);
                    break;
                }
                return Err(ProviderError::Transport(format!(
                    "the answer is larger than {limit} bytes"
                )));
            }
            out.extend_from_slice(&piece);
        }
        Ok(out.freeze())
    };
    tokio::time::timeout_at(deadline, read)
        .await
        .map_err(|_| ProviderError::Timeout(TimeoutPhase::Total))?
}

/// A remote upstream's base URL and pooled client.
#[derive(Debug)]
pub(super) struct HttpUpstream {
    pub base_url: String,
    client: reqwest::Client,
    pub timeouts: Timeouts,
    /// Each path's whole URL, parsed once: parsing one (host and all) cost
    /// more than any other step of sending a request.
    urls: RwLock<HashMap<String, reqwest::Url>>,
    /// Requests' own connections, for a plain-HTTP upstream with no proxy
    /// in the way (see [`h1`]).
    pub(super) direct: Option<h1::Origin>,
}

const USER_AGENT: &str = concat!("tollgate/", env!("CARGO_PKG_VERSION"));

impl HttpUpstream {
    pub fn new(base_url: &str, timeouts: Timeouts) -> Result<Self, ProviderError> {
        tls::ensure_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            // A redirect would turn the POST into a bodiless GET elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| ProviderError::Build(e.to_string()))?;
        let direct = reqwest::Url::parse(base_url)
            .ok()
            .filter(h1::applies)
            .and_then(|url| h1::Origin::new(&url, timeouts.connect, USER_AGENT));
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            client,
            timeouts,
            urls: RwLock::default(),
            direct,
        })
    }

    /// `base_url + path`, parsed; `None` when it does not parse (reqwest
    /// then says why, as it did before the cache). The part before any `?`
    /// is parsed once per path and kept; a client's query is set on a copy.
    fn url(&self, path: &str) -> Option<reqwest::Url> {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let cached = self
            .urls
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .cloned();
        let mut url = match cached {
            Some(url) => url,
            None => {
                let url = reqwest::Url::parse(&format!("{}{}", self.base_url, path)).ok()?;
                let mut urls = self.urls.write().unwrap_or_else(|e| e.into_inner());
                // A handful of fixed paths; past a bound the cache stops
                // growing.
                if urls.len() < 64 {
                    urls.insert(path.to_owned(), url.clone());
                }
                url
            }
        };
        if query.is_some() {
            url.set_query(query);
        }
        Some(url)
    }

    /// POSTs `body` as JSON to `base_url + path`. A streamed reply is returned
    /// as a byte stream when the upstream answers 2xx with SSE; anything else
    /// is read whole (error bodies capped).
    pub async fn post(
        &self,
        path: &str,
        headers: HeaderMap,
        body: Bytes,
        stream: bool,
        deadline: Instant,
    ) -> Result<UpstreamReply, ProviderError> {
        let headers_by = deadline.min(Instant::now() + self.timeouts.first_byte);
        let phase = if headers_by < deadline {
            TimeoutPhase::FirstByte
        } else {
            TimeoutPhase::Total
        };
        if let (Some(origin), Some(url)) = (&self.direct, self.url(path)) {
            let exchange = Exchange {
                headers_by,
                phase,
                deadline,
                stream,
            };
            return self
                .post_direct(origin, &url, &headers, &body, exchange)
                .await;
        }
        let mut req = match self.url(path) {
            Some(url) => self.client.post(url),
            None => self.client.post(format!("{}{}", self.base_url, path)),
        }
        .headers(headers)
        .header(CONTENT_TYPE, "application/json")
        .body(body);
        if stream {
            req = req.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        let resp = tokio::time::timeout_at(headers_by, req.send())
            .await
            .map_err(|_| ProviderError::Timeout(phase))?
            .map_err(ProviderError::from_reqwest)?;
        let status = resp.status();
        let (retry_after, is_sse) = reply_headers(resp.headers());
        // A stream request answered 2xx with a plain body (some servers send
        // errors that way) is read whole, like a non-streaming answer.
        let body = if stream && status.is_success() && is_sse {
            ReplyBody::Stream(Box::pin(
                resp.bytes_stream()
                    .map_err(|e| ProviderError::Transport(super::error_chain(&e))),
            ))
        } else {
            let body = resp
                .bytes_stream()
                .map_err(|e| ProviderError::Transport(super::error_chain(&e)));
            ReplyBody::Full(read_whole(body, status, deadline).await?)
        };
        Ok(UpstreamReply {
            status,
            retry_after,
            body,
        })
    }
}

impl HttpUpstream {
    /// [`HttpUpstream::post`] on a connection of the request's own, read in
    /// its task (a stream's body in the relay's).
    async fn post_direct(
        &self,
        origin: &h1::Origin,
        url: &reqwest::Url,
        headers: &HeaderMap,
        body: &[u8],
        exchange: Exchange,
    ) -> Result<UpstreamReply, ProviderError> {
        let Exchange {
            headers_by,
            phase,
            deadline,
            stream,
        } = exchange;
        let answer = tokio::time::timeout_at(headers_by, origin.post(url, headers, body, stream))
            .await
            .map_err(|_| ProviderError::Timeout(phase))??;
        let (retry_after, is_sse) = reply_headers(&answer.headers);
        let status = answer.status;
        let body = if stream && status.is_success() && is_sse {
            ReplyBody::Stream(Box::pin(answer.body))
        } else {
            ReplyBody::Full(read_whole(answer.body, status, deadline).await?)
        };
        Ok(UpstreamReply {
            status,
            retry_after,
            body,
        })
    }
}

/// When an exchange's parts are due, and whether it asks for a stream.
struct Exchange {
    /// The response head's deadline, and which timeout that is.
    headers_by: Instant,
    phase: TimeoutPhase,
    /// The whole exchange's.
    deadline: Instant,
    stream: bool,
}

/// `retry-after`, when the upstream sent one, and whether the body is SSE.
fn reply_headers(headers: &HeaderMap) -> (Option<String>, bool) {
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_sse = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("text/event-stream"));
    (retry_after, is_sse)
}
