//! How an attempt ended, settled exactly once: the usage the upstream
//! reported (or an estimate where it reported none), the model's health
//! updated, and the [`Outcome`] handed to the gateway's [`Meter`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use tokio::time::Instant;

use crate::catalog::ModelEntry;
use crate::estimate::{self, OutputTally};
use crate::provider::Operation;
use crate::relay::End;
use crate::usage::{Usage, UsageSource};

/// How an attempt ended, with its usage settled.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The HTTP status the client got (499 when it went away first).
    pub status: StatusCode,
    /// How the answer ended (a stream can fail after HTTP 200).
    pub end: End,
    /// A low-cardinality error label for the ledger and logs, when it failed.
    pub error: Option<&'static str>,
    /// The upstream's failure, as a metric label, when the upstream failed.
    pub upstream_failure: Option<&'static str>,
    /// The tokens the attempt used.
    pub usage: Usage,
    /// Where `usage` came from.
    pub usage_source: UsageSource,
    /// From the start of the attempt to the first streamed output.
    pub ttft: Option<Duration>,
    /// How long the upstream exchange took: from sending the request to the
    /// upstream's last byte (for a stream, its last event, or the moment the
    /// client cut it short). `None` when nothing was sent.
    pub upstream_time: Option<Duration>,
}

/// The gateway's side of one attempt: prices the outcome, settles what
/// admission reserved, and records it. [`Meter::finish`] is called exactly
/// once per attempt, however the attempt ends, the client's disconnect
/// included.
pub trait Meter: Send + 'static {
    /// A streamed answer starts being relayed to the client. Called at most
    /// once, before [`Meter::finish`], which still ends the stream.
    fn streaming(&mut self) {}

    /// What lets a streamed answer outrun the attempt's reservation while
    /// its budgets have room (see [`crate::relay::Allowance`]); `None` when
    /// no hard budget is over it. Asked once, as the stream starts.
    fn allowance(&mut self) -> Option<Box<dyn crate::relay::Allowance>> {
        None
    }

    /// The attempt is over. Returns what it cost in USD, as text, for the
    /// client's `x-tollgate-cost-usd` header (on whole answers).
    fn finish(self: Box<Self>, outcome: Outcome) -> Option<String>;
}

/// What the relay knows when an attempt ends, before usage is settled.
#[derive(Debug)]
pub(crate) struct Ended {
    pub status: StatusCode,
    pub end: End,
    pub error: Option<&'static str>,
    pub upstream_failure: Option<&'static str>,
    /// Usage the upstream reported.
    pub usage: Option<Usage>,
    /// Whether the upstream did work worth estimating when it reported no
    /// usage. A refused connection or an upstream error status cost nothing.
    pub charged: bool,
    /// The output the model produced, for estimates.
    pub output: OutputTally,
    pub ttft: Option<Duration>,
}

impl Ended {
    /// An attempt that failed before the upstream did any work.
    pub fn uncharged(
        status: StatusCode,
        end: End,
        error: &'static str,
        upstream_failure: Option<&'static str>,
    ) -> Self {
        Self {
            status,
            end,
            error: Some(error),
            upstream_failure,
            usage: None,
            charged: false,
            output: OutputTally::default(),
            ttft: None,
        }
    }
}

/// The right to try a model that [`Health::try_begin`](crate::route::Health::try_begin)
/// gave at `claimed`: while the breaker is half-open, its one probe. When
/// the attempt ends without a success or a failure of the model's (a
/// refusal before sending, a client that left, a prompt too long for it),
/// dropping it gives the probe back, so a recovering model is not kept out
/// of use by requests that never tested it. After a success or a failure
/// the breaker has moved on and giving back does nothing.
pub(crate) struct Probe {
    entry: Arc<ModelEntry>,
    claimed: std::time::Instant,
}

impl Probe {
    pub fn new(entry: Arc<ModelEntry>, claimed: std::time::Instant) -> Self {
        Self { entry, claimed }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.entry.health.abandon(self.claimed);
    }
}

/// An attempt being metered: settles itself exactly once, when finished,
/// or when dropped unfinished (the client went away while Tollgate waited).
pub(crate) struct Metered {
    meter: Option<Box<dyn Meter>>,
    probe: Probe,
    operation: Operation,
    /// What the upstream was sent, for estimates.
    body: Bytes,
    started: Instant,
    /// When the request was sent upstream.
    sent: Option<Instant>,
    /// How long the upstream exchange took, once known.
    upstream_time: Option<Duration>,
}

impl Metered {
    pub fn new(
        meter: Box<dyn Meter>,
        probe: Probe,
        operation: Operation,
        body: Bytes,
        started: Instant,
    ) -> Self {
        Self {
            meter: Some(meter),
            probe,
            operation,
            body,
            started,
            sent: None,
            upstream_time: None,
        }
    }

    /// The request is being sent upstream now.
    pub fn sending(&mut self) {
        self.sent = Some(Instant::now());
    }

    /// The upstream's last byte arrived `at` (the last call counts): the
    /// upstream exchange took from [`Metered::sending`] to then.
    pub fn upstream_until(&mut self, at: Instant) {
        if let Some(sent) = self.sent {
            self.upstream_time = Some(at.saturating_duration_since(sent));
        }
    }

    /// A streamed answer starts being relayed: what lets it outrun its
    /// reservation, if anything does.
    pub fn streaming(&mut self) -> Option<Box<dyn crate::relay::Allowance>> {
        let meter = self.meter.as_mut()?;
        meter.streaming();
        meter.allowance()
    }

    /// Settles the attempt; returns its cost text.
    pub fn finish(mut self, ended: Ended) -> Option<String> {
        self.settle(ended)
    }

    fn settle(&mut self, e: Ended) -> Option<String> {
        let meter = self.meter.take()?;
        let (usage, usage_source) = match e.usage {
            // Cut short after the provider reported part of the usage (an
            // Anthropic stream reports input up front, output at the end):
            // the output produced so far is counted, if that is more.
            Some(mut u) if !e.end.is_complete() => {
                let counted = e.output.tokens();
                if counted > u.output {
                    u.output = counted;
                    (u, UsageSource::Estimated)
                } else {
                    (u, UsageSource::Provider)
                }
            }
            Some(u) => (u, UsageSource::Provider),
            None if e.charged => (
                estimate::exchange(self.operation, &self.body, &e.output),
                UsageSource::Estimated,
            ),
            None => (Usage::default(), UsageSource::Provider),
        };
        // What the exchange says about the model's health. Failures before
        // an answer started are counted where they happen. A client that
        // left (or a shutdown) says nothing of the model: the probe, if
        // this was one, is given back when `self.probe` drops.
        let health = &self.probe.entry.health;
        if e.status.is_success() {
            let now = std::time::Instant::now();
            match &e.end {
                End::Complete => {
                    let prompt = usage.prompt_total();
                    let ratio = (prompt > 0).then(|| usage.cached_input as f64 / prompt as f64);
                    let ttft = e.ttft.unwrap_or_else(|| self.started.elapsed());
                    health.success(ttft, ratio);
                }
                End::UpstreamDisconnected(_)
                | End::UpstreamError
                | End::Malformed(_)
                | End::Timeout(_) => health.failure(now),
                End::ClientDisconnected | End::Shutdown | End::Budget(_) => {}
            }
        }
        meter.finish(Outcome {
            status: e.status,
            end: e.end,
            error: e.error,
            upstream_failure: e.upstream_failure,
            usage,
            usage_source,
            ttft: e.ttft,
            upstream_time: self.upstream_time,
        })
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        // Dropped unfinished: the client disconnected while the upstream was
        // still working. The prompt was sent, so it is estimated.
        if self.meter.is_some() && self.upstream_time.is_none() {
            self.upstream_until(Instant::now());
        }
        self.settle(Ended {
            status: StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            end: End::ClientDisconnected,
            error: Some("client_disconnected"),
            upstream_failure: None,
            usage: None,
            charged: true,
            output: OutputTally::default(),
            ttft: None,
        });
    }
}
