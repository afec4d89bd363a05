//! Routes: a name clients ask for as `model`, its candidate models and how
//! one is chosen for each request. A plain model name is a route with one
//! candidate.
//!
//! Choosing is in two steps. [`Route::plan`] keeps the candidates that can
//! serve the request (capabilities, context window) and are healthy, and
//! orders them by the route's strategy; the proxy tries them in that order,
//! falling back on failures it can retry, up to the route's attempt and time
//! limits. A session's previous candidate goes first while it can serve
//! the request ([`affinity`]).

mod affinity;
mod health;
mod needs;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use affinity::{Affinity, Sticky};
pub use health::{BreakerPolicy, BreakerState, Health};
pub use needs::Needs;

use crate::catalog::ModelEntry;

/// How a route orders its candidates.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// The first healthy candidate in the listed order.
    Ordered,
    /// The lowest expected cost for this request.
    Cheapest,
    /// The lowest recently observed time to first token (untried first).
    Fastest,
    /// At random by weight (one weight per candidate).
    Weighted(Vec<u32>),
}

impl Strategy {
    /// The name, as written in config.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ordered => "ordered",
            Self::Cheapest => "cheapest",
            Self::Fastest => "fastest",
            Self::Weighted(_) => "weighted",
        }
    }
}

/// A route.
#[derive(Debug)]
pub struct Route {
    /// The name clients send as `model`.
    pub name: String,
    /// The models that may serve it, in configured order.
    pub candidates: Vec<Arc<ModelEntry>>,
    /// How one is chosen.
    pub strategy: Strategy,
    /// The most upstream attempts per request.
    pub max_attempts: usize,
    /// The most time all attempts together may take before the answer starts.
    pub max_time: Duration,
    /// The model savings are measured against.
    pub reference: Option<Arc<ModelEntry>>,
    /// Whether candidates are filtered by what a request needs. Routes are;
    /// a plain model name is not (the client chose the model itself).
    pub filter: bool,
    /// The cheaper tier used when the caller's budget runs low.
    pub low_budget: Option<LowBudget>,
    /// Whether a session keeps to the candidate that served its previous
    /// request (see [`Route::plan_for`]).
    pub affinity: bool,
}

/// A route's tier for callers whose remaining budget is low.
#[derive(Debug, Clone)]
pub struct LowBudget {
    /// The fraction of the tightest budget left under which it applies.
    pub below: f64,
    /// The route as it is then: the same name and limits, cheaper candidates.
    pub route: Arc<Route>,
}

/// Expected output when a request does not say how much it wants, and the
/// cap on what it says: most answers are far shorter than their limit.
const EXPECTED_OUTPUT: u64 = 1_000;
const EXPECTED_OUTPUT_CAP: u64 = 4_096;

/// Why no candidate could serve a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("No model of '{route}' can serve this request: {reasons}.")]
pub struct NoCandidate {
    /// The route.
    pub route: String,
    /// Which requirement excluded which candidate.
    pub reasons: String,
}

/// A tiny deterministic generator for weighted choice (no extra crate): the
/// clock's nanoseconds mixed per call.
fn random_unit() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    // splitmix64
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

impl Route {
    /// A route of one model, as a plain model name is.
    pub fn single(entry: Arc<ModelEntry>) -> Self {
        Self {
            name: entry.name.clone(),
            candidates: vec![entry],
            strategy: Strategy::Ordered,
            max_attempts: 1,
            max_time: Duration::from_secs(900),
            reference: None,
            filter: false,
            low_budget: None,
            affinity: false,
        }
    }

    /// This route with only the candidates `keep` accepts (weights follow
    /// their candidates). Breaker and speed state are shared, not copied.
    pub fn retain(&self, mut keep: impl FnMut(&ModelEntry) -> bool) -> Self {
        let kept: Vec<bool> = self.candidates.iter().map(|m| keep(m)).collect();
        let pick = |i: usize| kept.get(i).copied().unwrap_or(false);
        let strategy = match &self.strategy {
            Strategy::Weighted(w) => Strategy::Weighted(
                w.iter()
                    .enumerate()
                    .filter(|(i, _)| pick(*i))
                    .map(|(_, w)| *w)
                    .collect(),
            ),
            other => other.clone(),
        };
        Self {
            name: self.name.clone(),
            candidates: self
                .candidates
                .iter()
                .enumerate()
                .filter(|(i, _)| pick(*i))
                .map(|(_, m)| m.clone())
                .collect(),
            strategy,
            max_attempts: self.max_attempts,
            max_time: self.max_time,
            reference: self.reference.clone(),
            filter: self.filter,
            low_budget: self.low_budget.clone(),
            affinity: self.affinity,
        }
    }

    /// What the request is expected to cost on `m`, in micro-dollars per
    /// million tokens times tokens (a ranking figure, not money), with the
    /// prompt split by the model's recently observed cache-hit share.
    pub fn expected_cost(m: &ModelEntry, needs: &Needs, default: &crate::price::Price) -> u128 {
        let ratio = m.health.cache_ratio().unwrap_or(0.0);
        Self::expected_cost_at(m, needs, default, ratio)
    }

    /// [`Route::expected_cost`] with `cache_share` of the prompt read from
    /// the cache.
    pub fn expected_cost_at(
        m: &ModelEntry,
        needs: &Needs,
        default: &crate::price::Price,
        cache_share: f64,
    ) -> u128 {
        let price = m.price.as_ref().unwrap_or(default);
        let rates = price.rates_for(needs.prompt_tokens);
        let prompt = needs.prompt_tokens as f64;
        let ratio = if cache_share.is_finite() {
            cache_share.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let cached = (prompt * ratio) as u128;
        let uncached = needs.prompt_tokens as u128 - cached.min(needs.prompt_tokens as u128);
        let output = needs
            .max_output
            .unwrap_or(EXPECTED_OUTPUT)
            .min(EXPECTED_OUTPUT_CAP) as u128;
        uncached * rates.input as u128
            + cached * rates.cached_input as u128
            + output * rates.output as u128
    }

    /// The candidates to try for a request with `needs`, in order. Those
    /// that cannot serve it are left out; when none can, the error says which
    /// requirement excluded which candidate. Unhealthy candidates (breaker
    /// open, cooling down after `retry-after`) go last rather than away, so a
    /// request is still tried when every candidate is unhealthy.
    pub fn plan(
        &self,
        needs: &Needs,
        default_price: &crate::price::Price,
        now: Instant,
    ) -> Result<Vec<Arc<ModelEntry>>, NoCandidate> {
        self.plan_for(needs, default_price, now, None)
    }

    /// [`Route::plan`] for a request of a session whose previous request on
    /// this route `sticky` served. With affinity on, that candidate goes
    /// first while it is among those able to serve this request and is
    /// healthy (breaker closed, not cooling down); otherwise the plan is
    /// the strategy's, and the session moves. Under `cheapest` the sticky
    /// candidate is priced with the session's cache-hit share and the
    /// others with none (they would read the whole context afresh), so the
    /// session moves only to a candidate cheaper even after paying for its
    /// context again.
    pub fn plan_for(
        &self,
        needs: &Needs,
        default_price: &crate::price::Price,
        now: Instant,
        sticky: Option<&Sticky>,
    ) -> Result<Vec<Arc<ModelEntry>>, NoCandidate> {
        let sticky = sticky.filter(|_| self.affinity);
        let mut able = Vec::new();
        let mut reasons = String::new();
        for m in &self.candidates {
            match self.filter.then(|| excluded(m, needs)).flatten() {
                Some(why) => {
                    if !reasons.is_empty() {
                        reasons.push_str("; ");
                    }
                    let _ = write!(reasons, "'{}' {why}", m.name);
                }
                None => able.push(m.clone()),
            }
        }
        if able.is_empty() {
            return Err(NoCandidate {
                route: self.name.clone(),
                reasons,
            });
        }
        // The sticky candidate, when it can serve this request now.
        let kept = sticky.filter(|s| {
            able.iter()
                .any(|m| m.name == s.model && m.health.available(now))
        });
        match &self.strategy {
            Strategy::Ordered => {}
            Strategy::Cheapest => match sticky {
                // The session's context is cached (if anywhere) only where
                // it was served last.
                Some(s) => able.sort_by_cached_key(|m| {
                    let share = match kept {
                        Some(k) if k.model == m.name => s.cache_share,
                        _ => 0.0,
                    };
                    Self::expected_cost_at(m, needs, default_price, share)
                }),
                None => {
                    able.sort_by_cached_key(|m| Self::expected_cost(m, needs, default_price));
                }
            },
            Strategy::Fastest => able.sort_by(|a, b| {
                let (a, b) = (
                    a.health.speed_ms().unwrap_or(0.0),
                    b.health.speed_ms().unwrap_or(0.0),
                );
                a.total_cmp(&b)
            }),
            Strategy::Weighted(weights) => {
                // Weighted order without replacement: draw the first by
                // weight, then the next among the rest, and so on.
                let mut pool: Vec<(Arc<ModelEntry>, f64)> = able
                    .drain(..)
                    .map(|m| {
                        let i = self
                            .candidates
                            .iter()
                            .position(|c| Arc::ptr_eq(c, &m))
                            .unwrap_or(0);
                        let w = weights.get(i).copied().unwrap_or(1) as f64;
                        (m, w)
                    })
                    .collect();
                while !pool.is_empty() {
                    let total: f64 = pool.iter().map(|(_, w)| w).sum();
                    let mut pick = random_unit() * total;
                    let mut chosen = pool.len() - 1;
                    for (i, (_, w)) in pool.iter().enumerate() {
                        if pick < *w {
                            chosen = i;
                            break;
                        }
                        pick -= w;
                    }
                    able.push(pool.remove(chosen).0);
                }
            }
        }
        // The session's candidate first, except under `cheapest`, whose
        // order already weighed its cache.
        if let (Some(k), false) = (kept, self.strategy == Strategy::Cheapest) {
            able.sort_by_key(|m| m.name != k.model);
        }
        // Healthy first, keeping the order within each group.
        able.sort_by_key(|m| !m.health.available(now));
        able.truncate(self.max_attempts.max(1));
        Ok(able)
    }
}

/// Why `m` cannot serve a request with `needs`, if it cannot.
fn excluded(m: &ModelEntry, needs: &Needs) -> Option<String> {
    let c = &m.capabilities;
    if needs.tools && !c.tools {
        return Some("lacks tools (the request declares tools)".into());
    }
    if needs.vision && !c.vision {
        return Some("lacks vision (the request has images)".into());
    }
    if needs.json_schema && !c.json_schema {
        return Some("lacks json_schema (the request asks for a JSON schema)".into());
    }
    let wanted = needs.prompt_tokens + needs.max_output.unwrap_or(0);
    if wanted > m.context_window {
        return Some(format!(
            "has a {}-token context window (the request needs about {} prompt + {} output tokens)",
            m.context_window,
            needs.prompt_tokens,
            needs.max_output.unwrap_or(0)
        ));
    }
    None
}

#[cfg(test)]
mod tests;
