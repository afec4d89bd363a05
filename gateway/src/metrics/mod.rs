//! Prometheus metrics, kept in a registry of the app's own (not the global
//! one), so several gateways can live in one process, as they do in tests.
//! Labels are low-cardinality: model and provider come from config, org and
//! team (and, opted in, key) from tenancy, never from what a client typed.
//!
//! - this file: every metric's definition, and `/metrics`'s text.
//! - `tenant.rs`: the org, team and key labels of a caller.
//! - `budgets.rs`: gauges refreshed at each scrape from the quota engine
//!   and the names of the teams seen (budgets, their resets, team info).

mod budgets;
mod tenant;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use billing::ledger::LedgerStats;
use billing::names::Names;
use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub use tenant::Tenant;

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Whether per-team metrics also carry a `key` label.
    per_key: bool,
    /// Every HTTP request by route and status.
    pub http_requests: IntCounterVec,
    /// Proxied requests by endpoint, model, provider, status, org and team.
    pub requests: IntCounterVec,
    /// Proxied request latency, to the last byte.
    pub request_duration: HistogramVec,
    /// Time to the first streamed event.
    pub time_to_first_token: HistogramVec,
    /// Time per output token after the first, of complete streams.
    pub time_per_output_token: HistogramVec,
    /// Time spent in Tollgate per attempt: total minus the upstream exchange.
    pub gateway_overhead: HistogramVec,
    /// Tokens by model, provider, kind, org and team.
    pub tokens: IntCounterVec,
    /// Upstream failures by provider and kind.
    pub upstream_errors: IntCounterVec,
    /// How streams ended, by model, provider and end.
    pub streams: IntCounterVec,
    /// Streamed answers being relayed right now.
    pub streams_open: IntGauge,
    /// Requests whose usage was estimated because the provider reported none.
    pub usage_estimated: IntCounterVec,
    /// Proxied requests in flight.
    pub in_flight: IntGauge,
    /// Client connections open right now (at most `server.max_connections`).
    pub connections_open: IntGauge,
    /// Request body bytes being parsed, translated and sent upstream (at
    /// most `server.max_request_bytes_in_flight`).
    pub request_bytes_in_flight: IntGauge,
    /// Spend in USD by model, provider, org and team (for dashboards; the
    /// ledger is exact).
    pub cost_usd: CounterVec,
    /// What the same usage would have cost at the route's reference model.
    pub reference_cost_usd: CounterVec,
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
    /// Answered requests of sessions on routes with affinity, by whether
    /// the session's candidate answered (`kept`), another did (`moved`),
    /// or none was remembered (`new`).
    pub affinity: IntCounterVec,
    /// Circuit breaker per model: 0 closed, 1 open, 2 half-open.
    pub breaker_state: IntGaugeVec,
    /// Requests refused by a budget or rate limit, by reason, level, org and team.
    pub quota_rejections: IntCounterVec,
    /// Budget threshold crossings, by level, unit and threshold.
    pub budget_alerts: IntCounterVec,
    /// Team and organization budgets in USD: limit, spent, reserved,
    /// remaining (refreshed at each scrape).
    pub budget_usd: GaugeVec,
    /// The same in tokens.
    pub budget_tokens: GaugeVec,
    /// When each budget's period resets, in unix seconds.
    pub budget_reset: GaugeVec,
    /// 1 per team seen, joining its names to its ids.
    pub team_info: IntGaugeVec,
    /// With Redis: 1 while it answers, 0 while the engine fails open or closed.
    pub quota_store_up: IntGauge,
    /// With Redis: calls that failed or timed out.
    pub quota_store_failures: IntCounter,
    /// With Redis: requests admitted on this process's counts during an outage.
    pub quota_local_admissions: IntCounter,
    ledger_stats: OnceLock<Arc<LedgerStats>>,
    quotas: OnceLock<billing::quota::QuotaEngine>,
    names: OnceLock<Names>,
    /// Held while a scrape refreshes and gathers, so two scrapes never see
    /// each other's half-refreshed gauges.
    scrape: Mutex<()>,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Tollgate's own time per attempt: a tenth of a millisecond to a second.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Time per output token: a millisecond (fast small models) to a second.
const PER_TOKEN_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0,
];

/// Registers a metric and hands it back.
fn registered<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: Result<M, prometheus::Error>,
) -> Result<M, prometheus::Error> {
    let metric = metric?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge(r: &Registry, name: &str, help: &str, l: &[&str]) -> Result<GaugeVec, prometheus::Error> {
    registered(r, GaugeVec::new(Opts::new(name, help), l))
}

fn counter(
    r: &Registry,
    name: &str,
    help: &str,
    l: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    registered(r, IntCounterVec::new(Opts::new(name, help), l))
}

fn usd_counter(
    r: &Registry,
    name: &str,
    help: &str,
    l: &[&str],
) -> Result<CounterVec, prometheus::Error> {
    registered(r, CounterVec::new(Opts::new(name, help), l))
}

fn histogram(
    r: &Registry,
    (name, help): (&str, &str),
    l: &[&str],
    buckets: &[f64],
) -> Result<HistogramVec, prometheus::Error> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    registered(r, HistogramVec::new(opts, l))
}

impl Metrics {
    /// Creates and registers every metric; with `per_key`, the per-team
    /// metrics also carry the key's label.
    pub fn new(per_key: bool) -> Result<Self, prometheus::Error> {
        let r = Registry::new();
        let who = |base: &[&'static str]| tenant::label_names(base, per_key);
        let in_flight = registered(
            &r,
            IntGauge::new("tollgate_requests_in_flight", "Proxied requests in flight."),
        )?;
        let connections_open = registered(
            &r,
            IntGauge::new(
                "tollgate_connections_open",
                "Client connections open right now.",
            ),
        )?;
        let request_bytes_in_flight = registered(
            &r,
            IntGauge::new(
                "tollgate_request_bytes_in_flight",
                "Request body bytes being parsed, translated and sent upstream right now.",
            ),
        )?;
        let streams_open = registered(
            &r,
            IntGauge::new(
                "tollgate_streams_open",
                "Streamed answers being relayed right now.",
            ),
        )?;
        let ledger_spool_errors = registered(
            &r,
            IntCounter::new(
                "tollgate_ledger_spool_errors_total",
                "Ledger rows that could not be written to the spool.",
            ),
        )?;
        let ledger_backlog_bytes = registered(
            &r,
            IntGauge::new(
                "tollgate_ledger_backlog_bytes",
                "Spooled ledger bytes not yet in the database: the writer's queue depth.",
            ),
        )?;
        let ledger_rows = registered(&r, IntGaugeVec::new(
            Opts::new(
                "tollgate_ledger_rows",
                "Ledger rows since start by state: appended to the spool, inserted, duplicate (replayed), bad_line, failed_batches.",
            ),
            &["state"],
        ))?;
        let breaker_state = registered(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "tollgate_breaker_state",
                    "Circuit breaker per model: 0 closed, 1 open, 2 half-open.",
                ),
                &["model"],
            ),
        )?;
        let team_info = registered(&r, IntGaugeVec::new(
            Opts::new(
                "tollgate_team_info",
                "1 for each team whose keys this gateway has loaded: its and its organization's names and ids.",
            ),
            &["org", "team", "org_id", "team_id"],
        ))?;
        // Registered only with Redis (see `attach_quotas`).
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
        Ok(Self {
            per_key,
            route_choices: counter(&r, "tollgate_route_choices_total", "Routed requests by route and the model chosen first.", &["route", "model"])?,
            fallbacks: counter(&r, "tollgate_fallbacks_total", "Attempts that failed over to the next candidate, by route, model and reason.", &["route", "model", "reason"])?,
            affinity: counter(&r, "tollgate_affinity_total", "Answered requests of sessions on routes with affinity, by route and outcome: kept (the session's previous candidate answered), moved (another did), new (none was remembered).", &["route", "outcome"])?,
            breaker_state,
            budget_usd: gauge(&r, "tollgate_budget_usd", "Team and organization budgets in USD this period, by level, org, team (empty for an organization's) and kind (limit, spent, reserved, remaining).", &["level", "org", "team", "kind"])?,
            budget_tokens: gauge(&r, "tollgate_budget_tokens", "Team and organization budgets in tokens this period, by level, org, team (empty for an organization's) and kind (limit, spent, reserved, remaining).", &["level", "org", "team", "kind"])?,
            budget_reset: gauge(&r, "tollgate_budget_reset_timestamp_seconds", "When each team and organization budget's period resets, in unix seconds (absent for lifetime budgets).", &["level", "org", "team"])?,
            team_info,
            quota_rejections: counter(&r, "tollgate_quota_rejections_total", "Requests refused by a budget or rate limit, by reason (budget, rpm, tpm, concurrency, unavailable), level, org and team.", &who(&["reason", "level"]))?,
            budget_alerts: counter(&r, "tollgate_budget_alerts_total", "Budgets crossing an alert threshold, by level, unit (usd, tokens) and threshold.", &["level", "unit", "threshold"])?,
            http_requests: counter(&r, "tollgate_http_requests_total", "HTTP requests by route and status.", &["route", "status"])?,
            requests: counter(&r, "tollgate_requests_total", "Proxied requests (attempts) by endpoint, model, provider, status, org and team.", &who(&["endpoint", "model", "provider", "status"]))?,
            request_duration: histogram(&r, ("tollgate_request_duration_seconds", "Proxied request latency to the last byte."), &["endpoint", "model", "provider"], LATENCY_BUCKETS)?,
            time_to_first_token: histogram(&r, ("tollgate_time_to_first_token_seconds", "Time from request to the first streamed event."), &["model", "provider"], LATENCY_BUCKETS)?,
            time_per_output_token: histogram(&r, ("tollgate_time_per_output_token_seconds", "Of complete streams: (time to the last byte - time to the first token) / (output tokens - 1)."), &["model", "provider"], PER_TOKEN_BUCKETS)?,
            gateway_overhead: histogram(&r, ("tollgate_gateway_overhead_seconds", "Time spent in Tollgate per attempt: its total time to the last byte minus the upstream exchange (sending to the upstream's last byte)."), &["endpoint"], OVERHEAD_BUCKETS)?,
            tokens: counter(&r, "tollgate_tokens_total", "Tokens by model, provider, kind (input, cached_input, cache_write, output, reasoning), org and team.", &who(&["model", "provider", "kind"]))?,
            upstream_errors: counter(&r, "tollgate_upstream_errors_total", "Upstream failures by provider and kind.", &["provider", "kind"])?,
            streams: counter(&r, "tollgate_streams_total", "Streams by model, provider and how they ended.", &["model", "provider", "end"])?,
            streams_open,
            usage_estimated: counter(&r, "tollgate_usage_estimated_total", "Requests whose usage was estimated with the tokenizer.", &["model", "provider"])?,
            in_flight,
            connections_open,
            request_bytes_in_flight,
            cost_usd: usd_counter(&r, "tollgate_cost_usd_total", "Spend in USD by model, provider, org and team.", &who(&["model", "provider"]))?,
            reference_cost_usd: usd_counter(&r, "tollgate_reference_cost_usd_total", "What the same usage would have cost in USD at the route's reference model (the actual cost where it has none), by route, org and team: savings = this - tollgate_cost_usd_total.", &who(&["route"]))?,
            unpriced_requests: counter(&r, "tollgate_unpriced_requests_total", "Requests of models with no known price, charged the default price.", &["model"])?,
            ledger_spool_errors,
            ledger_backlog_bytes,
            ledger_rows,
            ledger_stats: OnceLock::new(),
            quotas: OnceLock::new(),
            names: OnceLock::new(),
            scrape: Mutex::new(()),
            quota_store_up,
            quota_store_failures,
            quota_local_admissions,
            registry: r,
        })
    }

    /// The org, team and (opted in) key labels of `caller`.
    pub fn tenant<'a>(&self, caller: &'a crate::auth::Caller) -> Tenant<'a> {
        Tenant::of(caller, self.per_key)
    }

    /// Reports the ledger writer's counters from now on.
    pub fn attach_ledger(&self, stats: Arc<LedgerStats>) {
        let _ = self.ledger_stats.set(stats);
    }

    /// Reports the quota engine's budgets from now on, and its Redis state
    /// (an engine counting in process has none to report).
    pub fn attach_quotas(
        &self,
        engine: &billing::quota::QuotaEngine,
    ) -> Result<(), prometheus::Error> {
        if engine.store_status().is_some() {
            self.registry
                .register(Box::new(self.quota_store_up.clone()))?;
            self.registry
                .register(Box::new(self.quota_store_failures.clone()))?;
            self.registry
                .register(Box::new(self.quota_local_admissions.clone()))?;
        }
        let _ = self.quotas.set(engine.clone());
        Ok(())
    }

    /// Names budgets and teams from now on, by the ids in `names`.
    pub fn attach_names(&self, names: Names) {
        let _ = self.names.set(names);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(status) = self.quotas.get().and_then(|q| q.store_status()) {
            self.quota_store_up.set(i64::from(status.up));
            let catch_up = |c: &IntCounter, v: u64| c.inc_by(v.saturating_sub(c.get()));
            catch_up(&self.quota_store_failures, status.failures);
            catch_up(&self.quota_local_admissions, status.local_admissions);
        }
        if let Some(names) = self.names.get() {
            budgets::refresh(self, self.quotas.get(), names, billing::db::now_ms());
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
                ("expired", &s.expired),
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
