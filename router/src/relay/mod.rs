//! Relaying upstream answers to the client: the model name rewritten to the
//! one the client asked for, usage extracted on the way, and a [`Summary`] of
//! every exchange, complete or not, for metering.

mod codec;
// `pub(crate)` so that `crate::fuzzing` can hand the framer to the fuzz targets.
pub(crate) mod frame;
mod json;
mod sse;
mod timed;

use std::time::Duration;

use tokio::time::Instant;

#[cfg(feature = "fuzzing")]
pub(crate) use codec::check_readers;
pub use json::{relay_json, JsonRelayed, MalformedBody};
pub use sse::{relay_stream, relay_stream_within, Allowance, StreamOptions};

use crate::estimate::OutputTally;
use crate::provider::TimeoutPhase;
use crate::usage::Usage;

/// How a relayed exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The answer reached the client whole.
    Complete,
    /// The client went away before the answer was over.
    ClientDisconnected,
    /// The upstream closed or broke the connection mid-answer.
    UpstreamDisconnected(String),
    /// The upstream sent an error event after HTTP 200.
    UpstreamError,
    /// The upstream sent something that is not a valid event.
    Malformed(String),
    /// A timeout fired mid-answer.
    Timeout(TimeoutPhase),
    /// The gateway's shutdown grace period ended the answer.
    Shutdown,
    /// A hard budget had no room for more of the answer: the gateway cut
    /// it, with this message for the client.
    Budget(String),
}

impl End {
    /// A low-cardinality label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::ClientDisconnected => "client_disconnected",
            Self::UpstreamDisconnected(_) => "upstream_disconnected",
            Self::UpstreamError => "upstream_error",
            Self::Malformed(_) => "upstream_malformed",
            Self::Timeout(_) => "upstream_timeout",
            Self::Shutdown => "gateway_shutdown",
            Self::Budget(_) => "budget_exhausted",
        }
    }

    /// What went wrong, in detail, for logs (never sent to clients).
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::UpstreamDisconnected(why) | Self::Malformed(why) => Some(why),
            _ => None,
        }
    }

    /// Whether the client got the whole answer.
    pub fn is_complete(&self) -> bool {
        matches!(self, Self::Complete)
    }
}

/// What one relayed stream carried, produced exactly once when it ends.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Usage as the provider reported it, if it did.
    pub usage: Option<Usage>,
    /// How the stream ended.
    pub end: End,
    /// From the start of the request to the first event forwarded.
    pub ttft: Option<Duration>,
    /// When the upstream's part ended: its last event, end of body or
    /// error was read, or the client went away while it was still going.
    pub upstream_done: Instant,
    /// The output the model produced (content, reasoning, tool-call
    /// arguments), for estimating usage when the provider reported none.
    pub output: OutputTally,
    /// How many events reached the client.
    pub events: u64,
}

/// Where `inner` (a slice of `outer`, as a `RawValue` borrowed from it is)
/// lies in `outer`.
fn span_in(outer: &str, inner: &str) -> Option<std::ops::Range<usize>> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let end = start + inner.len();
    (end <= outer.len()).then_some(start..end)
}

/// A model name as JSON text, as a splice writes it.
fn model_json(name: &str) -> String {
    serde_json::Value::String(name.to_owned()).to_string()
}

/// Adds the text a choice (or delta) carries to `out`, and says whether it
/// carried a `finish_reason`.
fn collect_choice_text(choice: &serde_json::Value, part: &str, out: &mut OutputTally) -> bool {
    use serde_json::Value;
    if let Some(msg) = choice.get(part) {
        for key in ["reasoning_content", "content"] {
            if let Some(s) = msg.get(key).and_then(Value::as_str) {
                out.push(s);
            }
        }
        if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
            for call in calls {
                for key in ["name", "arguments"] {
                    if let Some(s) = call
                        .pointer(&format!("/function/{key}"))
                        .and_then(Value::as_str)
                    {
                        out.push(s);
                    }
                }
            }
        }
    }
    choice.get("finish_reason").is_some_and(|f| !f.is_null())
}
