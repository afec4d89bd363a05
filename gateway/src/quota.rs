//! Budgets and rate limits at the edge: what a request reserves, the 429s
//! in each client's format, and the `x-ratelimit-*` headers.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

use billing::ledger::LeftRows;
use billing::quota::{reset_text, Admission, QuotaEngine, RateView, Reason, Rejection};
use billing::tenancy::{KeyInfo, Tenancy};
use billing::Picodollars;
use router::price::Price;
use router::{ModelEntry, Usage};

use crate::error::ApiError;

/// The admission of a request by `key` to `model`.
pub fn admission<'a>(
    key: &'a KeyInfo,
    model: &'a str,
    (cost, tokens): (Picodollars, u64),
    new_request: bool,
    now_ms: i64,
) -> Admission<'a> {
    Admission {
        levels: key.quota_levels(),
        model,
        cost,
        tokens,
        new_request,
        now_ms,
    }
}

/// Settles in Redis, once, the requests an earlier run of this replica
/// left in its ledger spool (`rows`), whose settlements may not have
/// reached Redis before it died: Redis remembers each settlement under its
/// request's id, so those that did land are not counted again. Budgets
/// apply as the keys have them now. Two passes over the rows, neither
/// holding them: the keys they name, then the settlements, sent in batches.
pub async fn settle_left<'a>(
    engine: &QuotaEngine,
    tenancy: &Tenancy,
    rows: impl Fn() -> LeftRows<'a>,
) {
    let mut keys: HashMap<String, Option<KeyInfo>> = HashMap::new();
    for row in rows() {
        match row {
            Ok(row) => {
                if let Some(id) = row.key_id {
                    keys.entry(id).or_default();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the ledger spool could not be read to settle in Redis the requests an earlier run left; their spend counts in Redis once its budgets are seeded again");
                return;
            }
        }
    }
    if keys.is_empty() {
        return;
    }
    for (id, info) in &mut keys {
        *info = tenancy.key_info(id).await.unwrap_or_else(|e| {
            tracing::warn!(key_id = %id, error = %e, "a key's budgets could not be read to settle requests an earlier run left unsettled; its spend counts in Redis once its budgets are seeded again");
            None
        });
    }
    let mut checked = 0usize;
    for row in rows().map_while(Result::ok) {
        let Some(Some(key)) = row.key_id.as_ref().and_then(|id| keys.get(id)) else {
            continue;
        };
        engine.settle_left(
            row.request_id,
            key.quota_levels(),
            row.started_at_ms,
            row.cost(),
            row.usage.total(),
        );
        checked += 1;
        if checked.is_multiple_of(SETTLE_LEFT_BATCH) {
            if let Err(e) = engine.sync().await {
                tracing::warn!(requests = checked, error = %e, "requests an earlier run left in the ledger spool are queued for Redis, which cannot be reached yet");
            }
        }
    }
    match engine.sync().await {
        Ok(()) => tracing::info!(
            requests = checked,
            "requests an earlier run left in the ledger spool are settled in Redis (once each)"
        ),
        Err(e) => tracing::warn!(
            requests = checked,
            error = %e,
            "requests an earlier run left in the ledger spool are queued for Redis, which cannot be reached yet"
        ),
    }
}

/// Settlements of rows left in the spool queued before each send to Redis
/// (the queue drops its oldest past 100,000).
const SETTLE_LEFT_BATCH: usize = 10_000;

/// The smallest share of a budget left over `key` (1.0 for a budget this
/// process has not counted yet), or `None` when no budget applies.
pub fn budget_left(
    engine: &billing::quota::QuotaEngine,
    key: &KeyInfo,
    now_ms: i64,
) -> Option<f64> {
    let mut least: Option<f64> = None;
    for (level, id, quota) in key.quota_levels() {
        let Some(b) = &quota.budget else { continue };
        let mut left = 1.0f64;
        if let Some(u) = engine.usage(level, id, b.period, now_ms) {
            if let Some(limit) = b.limit_cost().filter(|l| l.0 > 0) {
                let used = (u.spent.0 + u.reserved.0) as f64;
                left = left.min(1.0 - used / limit.0 as f64);
            }
            if let Some(limit) = b.limit_tokens.filter(|l| *l > 0) {
                let used = (u.tokens + u.reserved_tokens) as f64;
                left = left.min(1.0 - used / limit as f64);
            }
        }
        least = Some(least.map_or(left, |l: f64| l.min(left)));
    }
    least
}

/// The most a request may cost on `entry`: its estimated prompt at the
/// dearer of the input and cache-write rates, plus `max_output` (the
/// model's maximum when the request sets none) at the output rate.
pub fn worst_case(
    entry: &ModelEntry,
    default_price: &Price,
    prompt_tokens: u64,
    max_output: Option<u64>,
) -> (Picodollars, u64) {
    let price = entry.price.as_ref().unwrap_or(default_price);
    let output = max_output.unwrap_or(entry.max_output_tokens);
    let as_input = Usage {
        input: prompt_tokens,
        output,
        ..Usage::default()
    };
    let as_write = Usage {
        cache_write: prompt_tokens,
        output,
        ..Usage::default()
    };
    // Not capped like a charge: a budget must hold back the whole worst case.
    let cost =
        billing::uncapped_cost(&as_input, price).max(billing::uncapped_cost(&as_write, price));
    (cost, prompt_tokens.saturating_add(output))
}

/// A refusal as the client's 429: OpenAI's `insufficient_quota` or
/// `rate_limit_exceeded` (Anthropic's `rate_limit_error` on its door),
/// with `retry-after` and the rate headers; a 503 when the shared counters
/// cannot be reached and the engine fails closed.
pub fn rejection(r: &Rejection) -> Response {
    let too_many =
        |kind, code| ApiError::custom(StatusCode::TOO_MANY_REQUESTS, kind, code, r.message.clone());
    let error = match r.reason {
        Reason::Budget => too_many("insufficient_quota", "insufficient_quota"),
        Reason::Tokens => too_many("tokens", "rate_limit_exceeded"),
        Reason::Requests | Reason::Concurrency => too_many("requests", "rate_limit_exceeded"),
        // Fails closed: the counters cannot be reached (503, not the caller's fault).
        Reason::Unavailable => ApiError::unavailable("quota_unavailable", r.message.clone()),
    };
    let mut resp = error.into_response();
    if let Some(s) = r.retry_after_s {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            resp.headers_mut().insert("retry-after", v);
        }
    }
    set_rate_headers(resp.headers_mut(), &r.rate);
    resp
}

/// OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers
/// for the tightest limits that applied.
pub fn set_rate_headers(headers: &mut HeaderMap, view: &RateView) {
    // Limit, remaining and reset, for requests then tokens.
    const NAMES: [[&str; 3]; 2] = [
        [
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ],
        [
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ],
    ];
    for (names, window) in NAMES.iter().zip([view.requests, view.tokens]) {
        let Some(w) = window else { continue };
        let [limit, remaining, reset] = names.map(HeaderName::from_static);
        headers.insert(limit, HeaderValue::from(w.limit));
        headers.insert(remaining, HeaderValue::from(w.remaining));
        if let Ok(v) = HeaderValue::try_from(reset_text(w.reset_ms)) {
            headers.insert(reset, v);
        }
    }
}

/// Raises budget alerts (metric, log line, optional webhook POST) until
/// `stop`. (The budget gauges are read from the engine at each scrape.)
pub async fn watch(
    engine: billing::quota::QuotaEngine,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    webhook: Option<crate::config::Secret>,
    stop: impl std::future::Future<Output = ()>,
) {
    router::provider::ensure_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .ok();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = tick.tick() => {}
        }
        for a in engine.take_alerts() {
            let threshold = format!("{}", a.threshold);
            metrics
                .budget_alerts
                .with_label_values(&[a.level.name(), a.unit, &threshold])
                .inc();
            let enforcement = a.enforcement.name();
            tracing::warn!(
                level = a.level.name(),
                id = %a.id,
                unit = a.unit,
                threshold = a.threshold,
                used = a.used,
                limit = a.limit,
                enforcement,
                "budget threshold crossed"
            );
            if let (Some(url), Some(client)) = (&webhook, &client) {
                let body = serde_json::json!({
                    "type": "budget_threshold",
                    "level": a.level.name(),
                    "id": a.id,
                    "period": a.period,
                    "period_start": billing::tenancy::rfc3339(a.period_start_ms),
                    "enforcement": enforcement,
                    "unit": a.unit,
                    "threshold": a.threshold,
                    "used": a.used,
                    "limit": a.limit,
                });
                match client.post(url.expose()).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => tracing::warn!(
                        status = r.status().as_u16(),
                        "budget alert webhook refused the alert"
                    ),
                    // The URL may carry the webhook's token: never logged.
                    Err(e) => {
                        tracing::warn!(error = %e.without_url(), "budget alert webhook could not be reached")
                    }
                }
            }
        }
    }
}
