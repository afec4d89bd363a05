//! Metering: each attempt's usage priced at its model's rates (and at the
//! route's reference model's, for savings), its budget reservation settled
//! at the actual cost, and its record handed to the recorder: exactly once,
//! however the attempt ended.

use std::sync::Arc;
use std::time::SystemTime;

use std::future::Future;
use std::pin::Pin;

use billing::quota::{Extender, Reason, Ticket};
use router::dispatch::{AttemptInfo, Meter, Outcome};
use router::relay::Allowance;
use router::ModelEntry;
use tokio::time::Instant;

use crate::auth::Caller;
use crate::context::RequestContext;
use crate::record::RequestRecord;
use crate::state::ProxyState;

/// One attempt being metered.
pub(super) struct Charge {
    proxy: ProxyState,
    ctx: RequestContext,
    model: Arc<ModelEntry>,
    /// What admission reserved, settled with the attempt's cost.
    ticket: Option<Ticket>,
    /// Under a hard budget, the prompt tokens and output tokens the
    /// reservation assumed.
    reserved_for: Option<(u64, u64)>,
    /// When Tollgate's time on this attempt began (see [`RequestRecord::overhead`]).
    since: Instant,
    /// Held while the attempt's answer is streamed.
    open_stream: Option<OpenStream>,
    /// Whether the route keeps sessions on the candidate that served them.
    affinity: bool,
}

/// One stream counted in `tollgate_streams_open`, until dropped.
struct OpenStream(prometheus::IntGauge);

impl OpenStream {
    fn new(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Charge {
    /// Starts metering attempt `at` of the request the client knows as `id`
    /// (in `session`, when it names one); Tollgate's time on it began at `since`.
    pub fn new(
        proxy: &ProxyState,
        (caller, id, session): (&Caller, uuid::Uuid, Option<&Arc<str>>),
        at: &AttemptInfo<'_>,
        (ticket, reserved_for): (Option<Ticket>, Option<(u64, u64)>),
        since: Instant,
    ) -> Self {
        let entry = at.entry;
        let ctx = RequestContext {
            // The first attempt's row carries the id the client was given;
            // later attempts get their own, sharing `client_request_id`.
            id: if at.number == 1 {
                id
            } else {
                uuid::Uuid::now_v7()
            },
            client_request_id: id,
            caller: caller.clone(),
            format: at.request.client(),
            operation: at.upstream.operation,
            // The configured model that served (the route is in `route`), so
            // per-model metrics and reports show real models.
            requested_model: entry.name.clone(),
            provider: entry.provider.name().to_owned(),
            upstream_model: entry.upstream_model.clone(),
            stream: at.request.stream(),
            route: at.route.name.clone(),
            attempt: at.number,
            reference: at.route.reference.clone(),
            started: Instant::now(),
            started_at: SystemTime::now(),
            session: session.cloned(),
        };
        proxy.metrics.in_flight.inc();
        Self {
            proxy: proxy.clone(),
            ctx,
            model: entry.clone(),
            ticket,
            reserved_for,
            since,
            open_stream: None,
            affinity: at.route.affinity,
        }
    }

    /// The attempt answered its session's request: the session's next one
    /// goes to the same candidate, which is expected to read as much of
    /// its prompt from the cache as this one did.
    fn remember(&self, usage: &router::Usage) {
        let Some(session) = &self.ctx.session else {
            return;
        };
        let prompt = usage.prompt_total();
        let cache_share = if prompt > 0 {
            usage.cached_input as f64 / prompt as f64
        } else {
            0.0
        };
        self.proxy.affinity.record(
            &self.ctx.route,
            session,
            router::route::Sticky {
                model: self.model.name.clone(),
                cache_share,
            },
        );
    }
}

impl Meter for Charge {
    fn streaming(&mut self) {
        if self.open_stream.is_none() {
            self.open_stream = Some(OpenStream::new(&self.proxy.metrics.streams_open));
        }
    }

    fn allowance(&mut self) -> Option<Box<dyn Allowance>> {
        let (prompt, covered) = self.reserved_for?;
        Some(Box::new(StreamAllowance {
            extender: self.ticket.as_ref()?.extender()?,
            model: self.model.clone(),
            default_price: self.proxy.default_price.clone(),
            prompt,
            covered,
            step: self.proxy.stream_step_tokens,
        }))
    }

    fn finish(mut self: Box<Self>, o: Outcome) -> Option<String> {
        let metrics = &self.proxy.metrics;
        metrics.in_flight.dec();
        drop(self.open_stream.take());
        if let Some(kind) = o.upstream_failure {
            metrics
                .upstream_errors
                .with_label_values(&[&self.ctx.provider, kind])
                .inc();
        }
        metrics
            .breaker_state
            .with_label_values(&[&self.model.name])
            .set(self.model.health.breaker(std::time::Instant::now()).gauge());
        let default_price = self.proxy.default_price.as_ref();
        let (price, priced) = match &self.model.price {
            Some(p) => (p, true),
            None => (default_price, false),
        };
        let cost = billing::cost(&o.usage, price);
        if let Some(ticket) = self.ticket.take() {
            ticket.settle_request(self.ctx.id, cost, o.usage.total(), billing::db::now_ms());
        }
        let reference_cost = self
            .ctx
            .reference
            .as_ref()
            .map(|r| billing::cost(&o.usage, r.price.as_ref().unwrap_or(default_price)));
        if self.affinity && o.status.is_success() && o.end.is_complete() {
            self.remember(&o.usage);
        }
        let latency = self.ctx.started.elapsed();
        let overhead = o
            .upstream_time
            .map(|upstream| self.since.elapsed().saturating_sub(upstream));
        self.proxy.recorder.record(RequestRecord {
            ctx: self.ctx,
            status: o.status.as_u16(),
            end: o.end,
            error: o.error,
            usage: o.usage,
            usage_source: o.usage_source,
            cost,
            reference_cost,
            priced,
            ttft: o.ttft,
            latency,
            overhead,
        });
        Some(cost.usd())
    }
}

/// A stream's reservation under a hard budget, extended a step of output
/// tokens at a time (`quotas.stream_step_tokens`) as the stream outruns it,
/// on every budget over the caller at once.
struct StreamAllowance {
    extender: Extender,
    model: Arc<ModelEntry>,
    default_price: Arc<router::price::Price>,
    prompt: u64,
    /// Output tokens reserved so far.
    covered: u64,
    step: u64,
}

impl Allowance for StreamAllowance {
    fn covered(&self) -> u64 {
        self.covered
    }

    fn extend(
        &mut self,
        produced: u64,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            let next = self.covered.max(produced).saturating_add(self.step);
            let worst = |output| {
                crate::quota::worst_case(
                    &self.model,
                    &self.default_price,
                    self.prompt,
                    Some(output),
                )
            };
            let (cost, _) = worst(next);
            let (held, _) = worst(self.covered);
            let more = billing::Picodollars(cost.0.saturating_sub(held.0));
            match self
                .extender
                .extend(more, next - self.covered, billing::db::now_ms())
                .await
            {
                Ok(()) => {
                    self.covered = next;
                    Ok(())
                }
                Err(r) => {
                    tracing::info!(
                        model = %self.model.name,
                        level = r.level.name(),
                        reason = r.reason.label(),
                        output_tokens = produced,
                        "a stream outran its reservation and its budget has no room for more: it ends here"
                    );
                    Err(match r.reason {
                        Reason::Budget => format!(
                            "The {}'s budget has no room for more of this answer, so it ends here, after about {produced} output tokens.",
                            r.level.name()
                        ),
                        _ => r.message,
                    })
                }
            }
        })
    }
}
