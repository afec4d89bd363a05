//! Admission: which route serves the request (its low-budget tier, the
//! caller's policies), whether the ledger can record it, and, before each
//! attempt, the caller's budgets and rate limits. Admission reads only
//! memory: the key cache and the quota counters (one Redis call when the
//! counters are shared), never the database.

use std::sync::{Arc, Mutex, PoisonError};

use axum::response::Response;
use billing::quota::{RateView, Ticket};
use billing::tenancy::KeyInfo;
use billing::Picodollars;
use router::dispatch::{AttemptInfo, Hooks, Meter, Retry};
use router::route::Route;
use router::ModelEntry;
use tokio::time::Instant;

use super::meter::Charge;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::ProxyState;

/// The route a request is served by.
pub(super) struct Resolved {
    /// The route, as the caller's tier and policies leave it.
    pub route: Arc<Route>,
    /// Whether the route's low-budget tier applies.
    pub low_tier: bool,
}

/// The route for `model`: its cheaper tier when the caller is low on budget,
/// without the candidates the caller's policies exclude (403 when none is left).
pub(super) fn resolve(
    proxy: &ProxyState,
    model: &str,
    caller: &Caller,
) -> Result<Resolved, ApiError> {
    let route = proxy
        .catalog
        .route(model)
        .ok_or_else(|| ApiError::model_not_found(model))?;
    let mut low_tier = false;
    let route = match (&route.low_budget, caller.key()) {
        (Some(low), Some(key))
            if crate::quota::budget_left(&proxy.quotas, key, billing::db::now_ms())
                .is_some_and(|left| left < low.below) =>
        {
            low_tier = true;
            &low.route
        }
        _ => route,
    };
    Ok(Resolved {
        route: crate::policy::permitted(caller, route)?,
        low_tier,
    })
}

/// Refuses (503) while the ledger cannot keep up: serving now would mean
/// serving unbilled.
pub(super) fn ledger_ready(proxy: &ProxyState) -> Result<(), ApiError> {
    if !proxy.spool.healthy() || proxy.spool.stats().backlog_bytes() > proxy.max_ledger_backlog {
        return Err(ApiError::unavailable(
            "ledger_backlog",
            "The gateway cannot record usage right now; retry shortly.",
        ));
    }
    Ok(())
}

/// The gateway's hooks into one request's dispatch: budgets and rate limits
/// before each attempt, metering after it, metrics on the way.
pub(super) struct Gate<'a> {
    proxy: &'a ProxyState,
    caller: &'a Caller,
    /// The id the client is given; the first attempt's ledger row has it.
    id: uuid::Uuid,
    /// The agent session the request belongs to, for every attempt's row.
    session: Option<Arc<str>>,
    /// The caller's key, when it is under budgets or limits.
    limited: Option<&'a KeyInfo>,
    /// Whether a hard budget applies (admission then needs the worst case).
    hard: bool,
    /// The rate limits as the last admission saw them, for the headers.
    rate: Mutex<Option<RateView>>,
    /// When Tollgate's time on the next attempt began: when the gate was
    /// made, then when an attempt failed over.
    since: Mutex<Instant>,
}

impl<'a> Gate<'a> {
    pub fn new(
        proxy: &'a ProxyState,
        caller: &'a Caller,
        id: uuid::Uuid,
        session: Option<Arc<str>>,
    ) -> Self {
        let limited = caller.key().filter(|k| !k.quotas.is_empty());
        Self {
            proxy,
            caller,
            id,
            session,
            limited,
            hard: limited.is_some_and(|k| k.quotas.has_hard_budget()),
            rate: Mutex::new(None),
            since: Mutex::new(Instant::now()),
        }
    }

    /// Whether admission needs the request's estimated needs.
    pub fn needs_estimate(&self) -> bool {
        self.hard
    }

    /// The rate limits the last admission saw.
    pub fn rate(&self) -> Option<RateView> {
        *self.rate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most an attempt on `entry` may cost, for a hard budget.
    fn worst_case(&self, entry: &ModelEntry, at: &AttemptInfo<'_>) -> (Picodollars, u64) {
        if !self.hard {
            return (Picodollars::ZERO, 0);
        }
        crate::quota::worst_case(
            entry,
            &self.proxy.default_price,
            at.needs.prompt_tokens,
            at.needs.max_output,
        )
    }
}

impl Hooks for Gate<'_> {
    type Admitted = Option<Ticket>;
    type Refusal = Response;

    async fn admit(&self, at: &AttemptInfo<'_>) -> Result<Option<Ticket>, Response> {
        let Some(key) = self.limited else {
            return Ok(None);
        };
        let admission = crate::quota::admission(
            key,
            &at.entry.name,
            self.worst_case(at.entry, at),
            at.number == 1,
            billing::db::now_ms(),
        );
        match self.proxy.quotas.admit(&admission).await {
            Ok(ticket) => {
                *self.rate.lock().unwrap_or_else(PoisonError::into_inner) = Some(ticket.rate());
                Ok(Some(ticket))
            }
            Err(r) => {
                let metrics = &self.proxy.metrics;
                let who = metrics.tenant(self.caller);
                metrics
                    .quota_rejections
                    .with_label_values(&who.values(&[r.reason.label(), r.level.name()]))
                    .inc();
                // The access log's one line says it (`insufficient_quota`,
                // `rate_limit_exceeded`); which limit is detail, and counted.
                tracing::debug!(
                    reason = r.reason.label(),
                    level = r.level.name(),
                    "request refused by a quota"
                );
                Err(crate::quota::rejection(&r))
            }
        }
    }

    fn meter(&self, at: &AttemptInfo<'_>, ticket: Option<Ticket>) -> Box<dyn Meter> {
        let since = *self.since.lock().unwrap_or_else(PoisonError::into_inner);
        // Under a hard budget, what the reservation assumed: a stream that
        // outruns it extends it from there.
        let reserved_for = self.hard.then(|| {
            (
                at.needs.prompt_tokens,
                at.needs.max_output.unwrap_or(at.entry.max_output_tokens),
            )
        });
        Box::new(Charge::new(
            self.proxy,
            (self.caller, self.id, self.session.as_ref()),
            at,
            (ticket, reserved_for),
            since,
        ))
    }

    fn planned(&self, route: &Route, plan: &[Arc<ModelEntry>]) {
        if let (true, Some(first)) = (route.filter, plan.first()) {
            self.proxy
                .metrics
                .route_choices
                .with_label_values(&[&route.name, &first.name])
                .inc();
        }
    }

    fn falling_back(&self, at: &AttemptInfo<'_>, reason: Retry) {
        *self.since.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.proxy
            .metrics
            .fallbacks
            .with_label_values(&[&at.route.name, &at.entry.name, reason.label()])
            .inc();
        tracing::info!(
            route = %at.route.name,
            model = %at.entry.name,
            reason = reason.label(),
            attempt = at.number,
            "falling back to the next candidate"
        );
    }
}
