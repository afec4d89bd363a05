//! The end-of-request record: produced exactly once for every proxied request
//! that was resolved to a model, streaming or not, complete or not, and handed
//! to every [`RecordSink`]. Metrics are the built-in consumer; billing plugs
//! its ledger in as another sink.

use std::sync::Arc;
use std::time::Duration;

use billing::Picodollars;
use router::relay::End;
use router::{Usage, UsageSource};

use crate::context::RequestContext;
use crate::metrics::Metrics;

/// How a proxied request ended.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// The request.
    pub ctx: RequestContext,
    /// The HTTP status the client got.
    pub status: u16,
    /// How the answer ended (for streams, it can fail after HTTP 200).
    pub end: End,
    /// A low-cardinality error label, when something failed.
    pub error: Option<&'static str>,
    /// Tokens consumed.
    pub usage: Usage,
    /// Where `usage` came from.
    pub usage_source: UsageSource,
    /// What the usage cost.
    pub cost: Picodollars,
    /// What the same usage would have cost on the route's reference model.
    pub reference_cost: Option<Picodollars>,
    /// Whether the model had a known price (else the default was charged).
    pub priced: bool,
    /// Time to the first streamed event.
    pub ttft: Option<Duration>,
    /// Time to the last byte.
    pub latency: Duration,
    /// Time spent in Tollgate on this attempt: from when it began (the first
    /// attempt: when the gateway began serving the parsed request; a later
    /// one: when the previous one failed) to its last byte, less the
    /// upstream exchange. `None` when nothing was sent upstream.
    pub overhead: Option<Duration>,
}

impl RequestRecord {
    /// Whether the client got the whole answer.
    pub fn complete(&self) -> bool {
        self.end.is_complete()
    }
}

/// A consumer of request records. Called on the request's own task (for a
/// stream, where it ends or is dropped), so it must not block: queue and return.
pub trait RecordSink: Send + Sync {
    /// Takes one record.
    fn record(&self, record: &RequestRecord);
}

/// Hands each record to metrics, the log, and every registered sink.
#[derive(Clone)]
pub struct Recorder {
    metrics: Arc<Metrics>,
    sinks: Arc<[Arc<dyn RecordSink>]>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

impl Recorder {
    /// A recorder feeding `metrics` and `sinks`.
    pub fn new(metrics: Arc<Metrics>, sinks: Vec<Arc<dyn RecordSink>>) -> Self {
        Self {
            metrics,
            sinks: sinks.into(),
        }
    }

    /// Records one finished request.
    pub fn record(&self, rec: RequestRecord) {
        self.count(&rec);
        self.log(&rec);
        for sink in self.sinks.iter() {
            sink.record(&rec);
        }
    }

    /// The request's metrics.
    fn count(&self, rec: &RequestRecord) {
        let m = &self.metrics;
        let ctx = &rec.ctx;
        let (model, provider) = (ctx.requested_model.as_str(), ctx.provider.as_str());
        let endpoint = ctx.endpoint();
        let who = m.tenant(&ctx.caller);
        let status = rec.status.to_string();
        m.requests
            .with_label_values(&who.values(&[endpoint, model, provider, &status]))
            .inc();
        m.request_duration
            .with_label_values(&[endpoint, model, provider])
            .observe(rec.latency.as_secs_f64());
        if let Some(overhead) = rec.overhead {
            m.gateway_overhead
                .with_label_values(&[endpoint])
                .observe(overhead.as_secs_f64());
        }
        if let Some(ttft) = rec.ttft {
            m.time_to_first_token
                .with_label_values(&[model, provider])
                .observe(ttft.as_secs_f64());
        }
        if let Some(per_token) = time_per_output_token(rec) {
            m.time_per_output_token
                .with_label_values(&[model, provider])
                .observe(per_token.as_secs_f64());
        }
        for (kind, n) in rec.usage.by_kind() {
            if n > 0 {
                m.tokens
                    .with_label_values(&who.values(&[model, provider, kind]))
                    .inc_by(n);
            }
        }
        let cost = rec.cost.usd_f64();
        m.cost_usd
            .with_label_values(&who.values(&[model, provider]))
            .inc_by(cost);
        m.reference_cost_usd
            .with_label_values(&who.values(&[&ctx.route]))
            .inc_by(rec.reference_cost.map_or(cost, |r| r.usd_f64()));
        if !rec.priced {
            m.unpriced_requests.with_label_values(&[model]).inc();
        }
        if rec.usage_source == UsageSource::Estimated {
            m.usage_estimated
                .with_label_values(&[model, provider])
                .inc();
        }
        if ctx.stream {
            m.streams
                .with_label_values(&[model, provider, rec.end.label()])
                .inc();
        }
    }

    /// The request's log line.
    fn log(&self, rec: &RequestRecord) {
        let ctx = &rec.ctx;
        let (model, provider) = (ctx.requested_model.as_str(), ctx.provider.as_str());
        tracing::info!(
            request_id = %ctx.id,
            caller = ctx.caller.label(),
            format = ctx.format.label(),
            endpoint = ctx.endpoint(),
            model,
            provider,
            upstream_model = %ctx.upstream_model,
            stream = ctx.stream,
            status = rec.status,
            end = rec.end.label(),
            end_detail = rec.end.detail().unwrap_or(""),
            error = rec.error.unwrap_or(""),
            input = rec.usage.input,
            cached_input = rec.usage.cached_input,
            cache_write = rec.usage.cache_write,
            output = rec.usage.output,
            reasoning = rec.usage.reasoning,
            usage_source = ?rec.usage_source,
            cost_usd = %rec.cost.usd(),
            key_id = ctx.caller.key().map(|k| k.id.as_str()).unwrap_or(""),
            ttft_ms = rec.ttft.map(|d| d.as_millis() as u64),
            latency_ms = rec.latency.as_millis() as u64,
            "request finished"
        );
    }
}

/// How long each output token after the first took, for a complete stream
/// of more than one: (time to the last byte - time to the first token) /
/// (output tokens - 1). A stream cut short says nothing of the model's pace.
fn time_per_output_token(rec: &RequestRecord) -> Option<Duration> {
    let ttft = rec.ttft?;
    if !(rec.ctx.stream && rec.complete() && rec.usage.output > 1) {
        return None;
    }
    let steps = u32::try_from(rec.usage.output - 1).ok()?;
    Some(rec.latency.saturating_sub(ttft) / steps)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use router::{Operation, Usage};
    use tokio::time::Instant;

    use super::*;
    use crate::auth::Caller;
    use crate::context::ClientFormat;

    fn record(stream: bool, end: End, output: u64) -> RequestRecord {
        RequestRecord {
            ctx: RequestContext {
                id: uuid::Uuid::now_v7(),
                client_request_id: uuid::Uuid::now_v7(),
                caller: Caller::Master,
                format: ClientFormat::OpenAi,
                operation: Operation::ChatCompletions,
                requested_model: "m".into(),
                provider: "up".into(),
                upstream_model: "m".into(),
                stream,
                route: "m".into(),
                attempt: 1,
                reference: None,
                started: Instant::now(),
                started_at: SystemTime::now(),
                session: None,
            },
            status: 200,
            end,
            error: None,
            usage: Usage {
                output,
                ..Usage::default()
            },
            usage_source: UsageSource::Provider,
            cost: Picodollars::ZERO,
            reference_cost: None,
            priced: true,
            ttft: Some(Duration::from_millis(300)),
            latency: Duration::from_millis(1000),
            overhead: None,
        }
    }

    #[test]
    fn time_per_output_token_spreads_the_time_after_the_first_over_the_rest() {
        let per_token = time_per_output_token(&record(true, End::Complete, 8));
        assert_eq!(per_token, Some(Duration::from_millis(100)));
    }

    #[test]
    fn time_per_output_token_needs_a_complete_stream_of_two_tokens_or_more() {
        assert_eq!(
            time_per_output_token(&record(false, End::Complete, 8)),
            None
        );
        assert_eq!(time_per_output_token(&record(true, End::Complete, 1)), None);
        let cut = record(true, End::ClientDisconnected, 8);
        assert_eq!(time_per_output_token(&cut), None);
    }
}
