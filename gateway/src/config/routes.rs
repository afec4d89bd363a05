//! `[routes."NAME"]` and `[router]`: routes over configured models, the
//! circuit breaker policy, and how long a session's candidate is remembered.

use std::collections::BTreeMap;
use std::time::Duration;

use router::route::{BreakerPolicy, Strategy};

use super::raw::{RawRoute, RawRouter};
use super::{Checker, ModelConfig};

/// The default attempts per request on a route.
pub const DEFAULT_MAX_ATTEMPTS: usize = 3;
/// The default time all attempts may take before an answer starts.
pub const DEFAULT_MAX_TIME: Duration = Duration::from_secs(120);
/// How long a session's candidate is remembered after its last answer, by
/// default: past the five minutes most vendors keep a prompt cache warm
/// (up to an hour where they offer longer), so a session that pauses while
/// a person reads and replies finds its cache again, and short enough that
/// sessions long gone stop steering a `weighted` or `fastest` route.
pub const DEFAULT_AFFINITY_IDLE: Duration = Duration::from_secs(30 * 60);

/// A validated route.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Candidate model names, in configured order.
    pub candidates: Vec<String>,
    /// How a candidate is chosen.
    pub strategy: Strategy,
    /// The most upstream attempts per request.
    pub max_attempts: usize,
    /// The most time the attempts may take before an answer starts.
    pub max_time: Duration,
    /// The model savings are measured against.
    pub reference_model: Option<String>,
    /// The cheaper candidates used when the caller's remaining budget is
    /// below a fraction of its limit.
    pub low_budget: Option<LowBudgetConfig>,
    /// Whether a session keeps to the candidate that served its previous
    /// request, as configured; unset, the strategy's default
    /// ([`Strategy::keeps_sessions_by_default`]).
    pub affinity: Option<bool>,
}

/// `low_budget = { below = 0.2, candidates = [...] }`.
#[derive(Debug, Clone)]
pub struct LowBudgetConfig {
    /// The fraction of the tightest budget left under which the tier applies.
    pub below: f64,
    /// Its candidates, chosen by expected cost.
    pub candidates: Vec<String>,
}

pub(super) fn routes(
    c: &mut Checker,
    raw: &BTreeMap<String, RawRoute>,
    models: &BTreeMap<String, ModelConfig>,
) -> BTreeMap<String, RouteConfig> {
    let mut out = BTreeMap::new();
    for (name, r) in raw {
        let prefix = format!("routes.\"{name}\"");
        if models.contains_key(name) {
            c.fail(
                prefix.clone(),
                "has the name of a model; routes and models share one namespace",
            );
            continue;
        }
        if r.candidates.is_empty() {
            c.fail(
                format!("{prefix}.candidates"),
                "must name at least one model",
            );
            continue;
        }
        let low_names = r.low_budget.iter().flat_map(|l| l.candidates.iter());
        for m in r
            .candidates
            .iter()
            .chain(r.reference_model.iter())
            .chain(low_names)
        {
            if !models.contains_key(m) {
                c.fail(
                    prefix.clone(),
                    format!("names '{m}', which is not a configured model"),
                );
            }
        }
        let strategy = match r.strategy.as_deref().unwrap_or("ordered") {
            "ordered" => Strategy::Ordered,
            "cheapest" => Strategy::Cheapest,
            "fastest" => Strategy::Fastest,
            "weighted" => match &r.weights {
                Some(w) if w.len() == r.candidates.len() && w.iter().any(|&x| x > 0) => {
                    Strategy::Weighted(w.clone())
                }
                _ => {
                    c.fail(
                        format!("{prefix}.weights"),
                        "needs one weight per candidate, not all zero, for strategy \"weighted\"",
                    );
                    Strategy::Ordered
                }
            },
            other => {
                c.fail(
                    format!("{prefix}.strategy"),
                    format!("'{other}' is not one of ordered, cheapest, fastest, weighted"),
                );
                Strategy::Ordered
            }
        };
        if r.weights.is_some() && !matches!(strategy, Strategy::Weighted(_)) {
            c.fail(
                format!("{prefix}.weights"),
                "applies to strategy \"weighted\" only",
            );
        }
        let max_attempts = r.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if max_attempts == 0 {
            c.fail(format!("{prefix}.max_attempts"), "must be at least 1");
        }
        let max_time = c.duration(
            format!("{prefix}.max_time"),
            r.max_time.as_deref(),
            DEFAULT_MAX_TIME,
        );
        if let Some(l) = &r.low_budget {
            if !(l.below.is_finite() && l.below > 0.0 && l.below <= 1.0) {
                c.fail(
                    format!("{prefix}.low_budget.below"),
                    "must be a fraction above 0 and at most 1",
                );
            }
            if l.candidates.is_empty() {
                c.fail(
                    format!("{prefix}.low_budget.candidates"),
                    "must name at least one model",
                );
            }
        }
        out.insert(
            name.clone(),
            RouteConfig {
                candidates: r.candidates.clone(),
                strategy,
                max_attempts: max_attempts.max(1),
                max_time,
                reference_model: r.reference_model.clone(),
                low_budget: r.low_budget.as_ref().map(|l| LowBudgetConfig {
                    below: l.below,
                    candidates: l.candidates.clone(),
                }),
                affinity: r.affinity,
            },
        );
    }
    out
}

pub(super) fn breaker(c: &mut Checker, raw: &RawRouter) -> BreakerPolicy {
    let d = BreakerPolicy::default();
    let failures = raw.breaker_failures.unwrap_or(d.failures);
    if failures == 0 {
        c.fail("router.breaker_failures", "must be at least 1");
    }
    BreakerPolicy {
        failures: failures.max(1),
        cooldown: c.duration(
            "router.breaker_cooldown".into(),
            raw.breaker_cooldown.as_deref(),
            d.cooldown,
        ),
    }
}

/// `router.affinity_idle`: how long a session's candidate is remembered
/// after the session's last answer on the route.
pub(super) fn affinity_idle(c: &mut Checker, raw: &RawRouter) -> Duration {
    let idle = c.duration(
        "router.affinity_idle".into(),
        raw.affinity_idle.as_deref(),
        DEFAULT_AFFINITY_IDLE,
    );
    if idle.is_zero() {
        c.fail(
            "router.affinity_idle",
            "must be above 0 (turn affinity off per route with affinity = false)",
        );
    }
    idle
}
