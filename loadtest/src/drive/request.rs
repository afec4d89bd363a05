//! One request: send it, read the answer to its end (a stream to its
//! terminal event), and tally it, timed from when it was meant to leave.

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::Instant;

use super::api::Api;
use super::stream_end::{End, StreamEnd};
use super::tally::{Failure, Tally};

/// What every request of a run shares.
#[derive(Debug)]
pub(crate) struct Shot {
    pub(crate) client: reqwest::Client,
    pub(crate) url: String,
    pub(crate) api: Api,
    pub(crate) key: Option<String>,
    pub(crate) body: Bytes,
    pub(crate) stream: bool,
    /// No request outlives this.
    pub(crate) hard_stop: Instant,
    pub(crate) tally: Tally,
}

struct Answer {
    /// The request id the answer carried.
    id: Option<String>,
    bytes: u64,
    first_byte: Option<Instant>,
    done: Instant,
}

impl Shot {
    /// Sends one request and tallies it. Latency and time to first byte run
    /// from `intended`: when the request was meant to leave, which in an
    /// open loop may be before it could.
    pub(crate) async fn fire(&self, intended: Instant) {
        match tokio::time::timeout_at(self.hard_stop, self.send()).await {
            Ok(Ok(a)) => self.tally.answered(
                a.done.saturating_duration_since(intended),
                a.first_byte.map(|f| f.saturating_duration_since(intended)),
                a.bytes,
                a.id,
            ),
            Ok(Err(why)) => self.tally.failed(why),
            Err(_) => self.tally.failed(Failure::Timeout),
        }
    }

    async fn send(&self) -> Result<Answer, Failure> {
        let req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(self.body.clone());
        let resp = self
            .api
            .present(req, self.key.as_deref())
            .send()
            .await
            .map_err(|_| Failure::Connect)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(Failure::Status(status.as_u16()));
        }
        let id = resp
            .headers()
            .get(super::REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut bytes = 0u64;
        let mut first_byte = None;
        let mut end = StreamEnd::new(self.api);
        let mut ended_at = None;
        let mut body = resp.bytes_stream();
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|_| Failure::Body)?;
            if piece.is_empty() {
                continue;
            }
            if first_byte.is_none() {
                first_byte = Some(Instant::now());
            }
            bytes += piece.len() as u64;
            if self.stream && ended_at.is_none() {
                end.feed(&piece);
                if end.end().is_some() {
                    ended_at = Some(Instant::now());
                }
            }
        }
        let done = Instant::now();
        if !self.stream {
            return Ok(Answer {
                id,
                bytes,
                first_byte: None,
                done,
            });
        }
        match (end.end(), ended_at) {
            (Some(End::Complete), Some(at)) => Ok(Answer {
                id,
                bytes,
                first_byte,
                done: at,
            }),
            (Some(End::Failed), _) => Err(Failure::ErrorEvent),
            _ => Err(Failure::Cut),
        }
    }
}
