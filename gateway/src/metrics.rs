//! Prometheus metrics, kept in a registry of the app's own (not the global
//! one), so several gateways can live in one process, as they do in tests.
//! Labels are low-cardinality: model and provider come from config, never
//! from what a client typed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use billing::ledger::LedgerStats;
use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Every HTTP request by route and status.
    pub http_requests: IntCounterVec,
    /// Proxied requests by endpoint, model, provider and status.
    pub requests: IntCounterVec,
    /// Proxied request latency, to the last byte.
    pub request_duration: HistogramVec,
    /// Time to the first streamed event.
    pub time_to_first_token: HistogramVec,
    /// Tokens by model, provider and kind.
    pub tokens: IntCounterVec,
    /// Upstream failures by provider and kind.
    pub upstream_errors: IntCounterVec,
    /// How streams ended, by model, provider and end.
    pub streams: IntCounterVec,
    /// Requests whose usage was estimated because the provider reported none.
    pub usage_estimated: IntCounterVec,
    /// Proxied requests in flight.
    pub in_flight: IntGauge,
    /// Spend in USD by model and provider (for dashboards; the ledger is exact).
    pub cost_usd: CounterVec,
    /// Requests of models with no known price, charged the default price.
    pub unpriced_requests: IntCounterVec,
    /// Ledger rows that could not be written to the spool.
    pub ledger_spool_errors: IntCounter,
    /// Ledger figures, refreshed from the writer's counters at each scrape.
    pub ledger_backlog_bytes: IntGauge,
    pub ledger_rows: IntGaugeVec,
    /// The model each routed request was first sent to.
    pub route_choices: IntCounterVec,
    /// Attempts that failed over to the next candidate, by why.
    pub fallbacks: IntCounterVec,
    /// Circuit breaker per model: 0 closed, 1 open, 2 half-open.
    pub breaker_state: IntGaugeVec,
    /// Requests refused by a budget or rate limit, by reason and level.
    pub quota_rejections: IntCounterVec,
    /// Budget threshold crossings, by level, unit and threshold.
    pub budget_alerts: IntCounterVec,
    /// Team and organization budgets in USD: limit, spent, reserved, remaining.
    pub budget_usd: GaugeVec,
    /// The same in tokens.
    pub budget_tokens: GaugeVec,
    /// With Redis: 1 while it answers, 0 while the engine fails open or closed.
    pub quota_store_up: IntGauge,
    /// With Redis: calls that failed or timed out.
    pub quota_store_failures: IntCounter,
    /// With Redis: requests admitted on this process's counts during an outage.
    pub quota_local_admissions: IntCounter,
    ledger_stats: OnceLock<Arc<LedgerStats>>,
    quotas: OnceLock<billing::quota::QuotaEngine>,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<GaugeVec, prometheus::Error> {
    let g = GaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<HistogramVec, prometheus::Error> {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let in_flight =
            IntGauge::new("tollgate_requests_in_flight", "Proxied requests in flight.")?;
        registry.register(Box::new(in_flight.clone()))?;
        let cost_usd = CounterVec::new(
            Opts::new(
                "tollgate_cost_usd_total",
                "Spend in USD by model and provider.",
            ),
            &["model", "provider"],
        )?;
        registry.register(Box::new(cost_usd.clone()))?;
        let ledger_spool_errors = IntCounter::new(
            "tollgate_ledger_spool_errors_total",
            "Ledger rows that could not be written to the spool.",
        )?;
        registry.register(Box::new(ledger_spool_errors.clone()))?;
        let ledger_backlog_bytes = IntGauge::new(
            "tollgate_ledger_backlog_bytes",
            "Spooled ledger bytes not yet in the database: the writer's queue depth.",
        )?;
        registry.register(Box::new(ledger_backlog_bytes.clone()))?;
        let ledger_rows = IntGaugeVec::new(
            Opts::new(
                "tollgate_ledger_rows",
                "Ledger rows since start by state: appended to the spool, inserted, duplicate (replayed), bad_line, failed_batches.",
            ),
            &["state"],
        )?;
        registry.register(Box::new(ledger_rows.clone()))?;
        let quota_store_up = IntGauge::new(
            "tollgate_quota_store_up",
            "1 while Redis (the shared budget and rate-limit counters) answers, 0 while it does not. Absent without Redis.",
        )?;
        let quota_store_failures = IntCounter::new(
            "tollgate_quota_store_failures_total",
            "Redis calls of the quota engine that failed or timed out.",
        )?;
        let quota_local_admissions = IntCounter::new(
            "tollgate_quota_local_admissions_total",
            "Requests admitted on this replica's own counts while Redis could not be reached (on_failure = open).",
        )?;
        let breaker_state = IntGaugeVec::new(
            Opts::new(
                "tollgate_breaker_state",
                "Circuit breaker per model: 0 closed, 1 open, 2 half-open.",
            ),
            &["model"],
        )?;
        registry.register(Box::new(breaker_state.clone()))?;
        Ok(Self {
            route_choices: counter(&registry, "tollgate_route_choices_total", "Routed requests by route and the model chosen first.", &["route", "model"])?,
            fallbacks: counter(&registry, "tollgate_fallbacks_total", "Attempts that failed over to the next candidate, by route, model and reason.", &["route", "model", "reason"])?,
            breaker_state,
            budget_usd: gauge(&registry, "tollgate_budget_usd", "Team and organization budgets in USD this period, by level, id and kind (limit, spent, reserved, remaining).", &["level", "id", "kind"])?,
            budget_tokens: gauge(&registry, "tollgate_budget_tokens", "Team and organization budgets in tokens this period, by level, id and kind (limit, spent, reserved, remaining).", &["level", "id", "kind"])?,
            quota_rejections: counter(&registry, "tollgate_quota_rejections_total", "Requests refused by a budget or rate limit, by reason (budget, rpm, tpm, concurrency) and level.", &["reason", "level"])?,
            budget_alerts: counter(&registry, "tollgate_budget_alerts_total", "Budgets crossing an alert threshold, by level, unit (usd, tokens) and threshold.", &["level", "unit", "threshold"])?,
            http_requests: counter(&registry, "tollgate_http_requests_total", "HTTP requests by route and status.", &["route", "status"])?,
            requests: counter(&registry, "tollgate_requests_total", "Proxied requests by endpoint, model, provider and status.", &["endpoint", "model", "provider", "status"])?,
            request_duration: histogram(&registry, "tollgate_request_duration_seconds", "Proxied request latency to the last byte.", &["endpoint", "model", "provider"])?,
            time_to_first_token: histogram(&registry, "tollgate_time_to_first_token_seconds", "Time from request to the first streamed event.", &["model", "provider"])?,
            tokens: counter(&registry, "tollgate_tokens_total", "Tokens by model, provider and kind (input, cached_input, cache_write, output, reasoning).", &["model", "provider", "kind"])?,
            upstream_errors: counter(&registry, "tollgate_upstream_errors_total", "Upstream failures by provider and kind.", &["provider", "kind"])?,
            streams: counter(&registry, "tollgate_streams_total", "Streams by model, provider and how they ended.", &["model", "provider", "end"])?,
            usage_estimated: counter(&registry, "tollgate_usage_estimated_total", "Requests whose usage was estimated with the tokenizer.", &["model", "provider"])?,
            in_flight,
            cost_usd,
            unpriced_requests: counter(&registry, "tollgate_unpriced_requests_total", "Requests of models with no known price, charged the default price.", &["model"])?,
            ledger_spool_errors,
            ledger_backlog_bytes,
            ledger_rows,
            ledger_stats: OnceLock::new(),
            quotas: OnceLock::new(),
            quota_store_up,
            quota_store_failures,
            quota_local_admissions,
            registry,
        })
    }

    /// Reports the ledger writer's counters from now on.
    pub fn attach_ledger(&self, stats: Arc<LedgerStats>) {
        let _ = self.ledger_stats.set(stats);
    }

    /// Reports the quota engine's Redis state from now on (an engine
    /// counting in process has none to report).
    pub fn attach_quotas(
        &self,
        engine: &billing::quota::QuotaEngine,
    ) -> Result<(), prometheus::Error> {
        if engine.store_status().is_none() {
            return Ok(());
        }
        self.registry
            .register(Box::new(self.quota_store_up.clone()))?;
        self.registry
            .register(Box::new(self.quota_store_failures.clone()))?;
        self.registry
            .register(Box::new(self.quota_local_admissions.clone()))?;
        let _ = self.quotas.set(engine.clone());
        Ok(())
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        if let Some(status) = self.quotas.get().and_then(|q| q.store_status()) {
            self.quota_store_up.set(i64::from(status.up));
            let catch_up = |c: &IntCounter, v: u64| c.inc_by(v.saturating_sub(c.get()));
            catch_up(&self.quota_store_failures, status.failures);
            catch_up(&self.quota_local_admissions, status.local_admissions);
        }
        if let Some(s) = self.ledger_stats.get() {
            let n = |a: &std::sync::atomic::AtomicU64| {
                i64::try_from(a.load(Ordering::Relaxed)).unwrap_or(i64::MAX)
            };
            self.ledger_backlog_bytes
                .set(i64::try_from(s.backlog_bytes()).unwrap_or(i64::MAX));
            for (state, v) in [
                ("appended", &s.appended),
                ("inserted", &s.inserted),
                ("duplicate", &s.duplicates),
                ("bad_line", &s.bad_lines),
                ("failed_batches", &s.failed_batches),
            ] {
                self.ledger_rows.with_label_values(&[state]).set(n(v));
            }
        }
        let mut buf = Vec::new();
        // Encoding gathered metric families into a Vec does not fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
