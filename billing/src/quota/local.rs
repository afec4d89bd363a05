//! The in-process engine: every counter behind one lock, so admission
//! checks and takes from all of a request's budgets and limits atomically.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{
    Admission, Alert, Budget, Enforcement, Level, Period, RateView, Rates, Reason, Rejection, Seed,
    Usage, Window,
};
use crate::money::Picodollars;
use crate::tenancy::rfc3339;

const MINUTE_MS: i64 = 60_000;

/// A budget's counters in one period.
#[derive(Debug, Clone)]
struct Counter {
    start: i64,
    end: i64,
    spent: i64,
    tokens: u64,
    reserved: i64,
    reserved_tokens: u64,
    /// The thresholds already alerted on this period, per unit.
    alerted_usd: Vec<u64>,
    alerted_tokens: Vec<u64>,
    /// The budget as last seen by admission (its period is the counter's).
    budget: Budget,
}

impl Counter {
    /// Whether it counts `period` starting at `start`.
    fn is_for(&self, period: Period, start: i64) -> bool {
        self.start == start && self.budget.period == period
    }

    fn usage(&self) -> Usage {
        Usage {
            period_start_ms: self.start,
            period_end_ms: self.end,
            spent: Picodollars(self.spent),
            tokens: self.tokens,
            reserved: Picodollars(self.reserved),
            reserved_tokens: self.reserved_tokens,
        }
    }
}

/// A rate limit's counters in the current minute.
#[derive(Debug, Clone, Default)]
struct RateCounter {
    minute: i64,
    requests: u64,
    tokens: u64,
    in_flight: u64,
}

type BudgetKey = (Level, String);
type RateKey = (Level, String, Option<String>);

#[derive(Debug, Default)]
struct State {
    budgets: HashMap<BudgetKey, Counter>,
    rates: HashMap<RateKey, RateCounter>,
}

/// What one admission took, to give back or settle.
#[derive(Debug, Default)]
pub(super) struct Holds {
    budgets: Vec<(BudgetKey, i64, Budget)>,
    rates: Vec<RateKey>,
    pub(super) cost: Picodollars,
    pub(super) tokens: u64,
    pub(super) rate: RateView,
}

#[derive(Debug)]
pub(super) struct Local {
    seed: Seed,
    /// Alert thresholds in thousandths of the limit.
    thresholds: Vec<u64>,
    state: Mutex<State>,
    alerts: Mutex<Vec<Alert>>,
}

/// `$12.34`, with more places when the amount is small.
fn dollars(p: i64) -> String {
    let usd = p as f64 / 1e12;
    if usd.abs() >= 1.0 || usd == 0.0 {
        format!("${usd:.2}")
    } else {
        let s = format!("{usd:.6}");
        let s = s.trim_end_matches('0');
        let s = if s.len() < "0.00".len() {
            format!("{s:0<4}")
        } else {
            s.to_owned()
        };
        format!("${s}")
    }
}

fn reset_phrase(end: i64) -> String {
    if end == i64::MAX {
        "It does not reset.".into()
    } else {
        format!("It resets at {}.", rfc3339(end))
    }
}

fn secs_until(end: i64, now: i64) -> Option<u64> {
    (end != i64::MAX).then(|| u64::try_from((end - now + 999) / 1000).unwrap_or(0).max(1))
}

impl Local {
    pub(super) fn new(seed: Seed, thresholds: Vec<f64>) -> Self {
        let mut thresholds: Vec<u64> = thresholds
            .into_iter()
            .filter(|t| t.is_finite() && *t > 0.0)
            .map(|t| (t * 1000.0).round() as u64)
            .collect();
        thresholds.sort_unstable();
        thresholds.dedup();
        Self {
            seed,
            thresholds,
            state: Mutex::new(State::default()),
            alerts: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters that are still
        // counts: carry on with them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seeds, from the ledger, each budget of `a` this process has not
    /// counted in its current period. A budget that cannot be seeded stays
    /// unseeded: a hard one then refuses requests until it can be.
    pub(super) async fn ensure_seeded(&self, a: &Admission<'_>) {
        for (level, id, quota) in a.levels {
            let Some(budget) = &quota.budget else {
                continue;
            };
            let (start, end) = budget.period.window(a.now_ms);
            let key = (level, id.to_owned());
            let fresh = self
                .lock()
                .budgets
                .get(&key)
                .is_some_and(|c| c.is_for(budget.period, start));
            if fresh {
                continue;
            }
            match self.seed.spent(level, id, (start, end)).await {
                Ok((spent, tokens)) => {
                    let mut state = self.lock();
                    let c = state.budgets.get(&key);
                    if !c.is_some_and(|c| c.is_for(budget.period, start)) {
                        state.budgets.insert(
                            key,
                            Counter {
                                start,
                                end,
                                spent: spent.0,
                                tokens,
                                reserved: 0,
                                reserved_tokens: 0,
                                alerted_usd: Vec::new(),
                                alerted_tokens: Vec::new(),
                                budget: budget.clone(),
                            },
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(level = level.name(), id, error = %e, "budget spend could not be read from the ledger")
                }
            }
        }
    }

    /// Checks every budget and limit of `a`; when all have room, takes from
    /// all of them.
    pub(super) fn admit(&self, a: &Admission<'_>) -> Result<Holds, Box<Rejection>> {
        let now = a.now_ms;
        let minute = now.div_euclid(MINUTE_MS) * MINUTE_MS;
        let minute_end = minute + MINUTE_MS;
        let mut state = self.lock();
        let mut holds = Holds {
            cost: a.cost,
            tokens: a.tokens,
            ..Holds::default()
        };
        let mut limited: Vec<(RateKey, Rates)> = Vec::new();
        for (level, id, quota) in a.levels {
            let Some(limits) = &quota.limits else {
                continue;
            };
            let all = limits.all();
            if !all.is_empty() {
                limited.push(((level, id.to_owned(), None), all));
            }
            if let Some(r) = limits.models.get(a.model).filter(|r| !r.is_empty()) {
                limited.push(((level, id.to_owned(), Some(a.model.to_owned())), r.clone()));
            }
        }
        let view = rate_view(&state, &limited, minute, now);
        // Check everything first.
        for (level, id, quota) in a.levels {
            let Some(budget) = &quota.budget else {
                continue;
            };
            let (start, _) = budget.period.window(now);
            let key = (level, id.to_owned());
            let counter = state
                .budgets
                .get(&key)
                .filter(|c| c.is_for(budget.period, start));
            if budget.enforcement == Enforcement::Soft {
                if counter.is_some() {
                    holds.budgets.push((key, start, budget.clone()));
                }
                continue;
            }
            let Some(c) = counter else {
                return Err(Box::new(Rejection {
                    reason: Reason::Budget,
                    level,
                    message: format!(
                        "The {}'s budget cannot be checked right now; retry shortly.",
                        level.name()
                    ),
                    retry_after_s: Some(1),
                    rate: view,
                }));
            };
            if let Some(limit) = budget.limit_cost() {
                if c.spent >= limit.0 || c.spent + c.reserved + a.cost.0 > limit.0 {
                    return Err(Box::new(Rejection {
                        reason: Reason::Budget,
                        level,
                        message: format!(
                            "The {}'s {} budget of {} has no room for this request: {} used, {} held by requests in flight, and this request may cost up to {}. {}",
                            level.name(),
                            budget.period.name(),
                            dollars(limit.0),
                            dollars(c.spent),
                            dollars(c.reserved),
                            dollars(a.cost.0),
                            reset_phrase(c.end)
                        ),
                        retry_after_s: secs_until(c.end, now),
                        rate: view,
                    }));
                }
            }
            if let Some(limit) = budget.limit_tokens {
                if c.tokens >= limit || c.tokens + c.reserved_tokens + a.tokens > limit {
                    return Err(Box::new(Rejection {
                        reason: Reason::Budget,
                        level,
                        message: format!(
                            "The {}'s {} budget of {limit} tokens has no room for this request: {} used, {} held by requests in flight, and this request may use up to {}. {}",
                            level.name(),
                            budget.period.name(),
                            c.tokens,
                            c.reserved_tokens,
                            a.tokens,
                            reset_phrase(c.end)
                        ),
                        retry_after_s: secs_until(c.end, now),
                        rate: view,
                    }));
                }
            }
            holds.budgets.push((key, start, budget.clone()));
        }
        for (key, rates) in &limited {
            let c = state.rates.entry(key.clone()).or_default();
            if c.minute != minute {
                c.minute = minute;
                c.requests = 0;
                c.tokens = 0;
            }
            let whose = match &key.2 {
                Some(m) => format!("The {}'s limit for '{m}'", key.0.name()),
                None => format!("The {}'s limit", key.0.name()),
            };
            let retry = secs_until(minute_end, now);
            let reject = |reason, message: String| {
                Err(Box::new(Rejection {
                    reason,
                    level: key.0,
                    message,
                    retry_after_s: retry,
                    rate: view,
                }))
            };
            if let Some(rpm) = rates.rpm {
                if a.new_request && c.requests >= rpm {
                    return reject(
                        Reason::Requests,
                        format!(
                            "{whose} of {rpm} requests per minute is reached. It resets at {}.",
                            rfc3339(minute_end)
                        ),
                    );
                }
            }
            if let Some(tpm) = rates.tpm {
                if c.tokens >= tpm {
                    return reject(
                        Reason::Tokens,
                        format!("{whose} of {tpm} tokens per minute is reached ({} used). It resets at {}.", c.tokens, rfc3339(minute_end)),
                    );
                }
            }
            if let Some(max) = rates.max_concurrent {
                if c.in_flight >= max {
                    return Err(Box::new(Rejection {
                        reason: Reason::Concurrency,
                        level: key.0,
                        message: format!("{whose} of {max} concurrent requests is reached; retry when one finishes."),
                        retry_after_s: Some(1),
                        rate: view,
                    }));
                }
            }
        }
        // Room everywhere: take it.
        for (key, start, budget) in &holds.budgets {
            if let Some(c) = state.budgets.get_mut(key).filter(|c| c.start == *start) {
                c.reserved += a.cost.0;
                c.reserved_tokens += a.tokens;
                if &c.budget != budget {
                    c.budget = budget.clone();
                }
            }
        }
        for (key, _) in &limited {
            let c = state.rates.entry(key.clone()).or_default();
            if a.new_request {
                c.requests += 1;
            }
            c.in_flight += 1;
        }
        holds.rate = rate_view(&state, &limited, minute, now);
        holds.rates = limited.into_iter().map(|(k, _)| k).collect();
        Ok(holds)
    }

    /// Turns a reservation into spend, frees the slot, counts the tokens,
    /// and raises the alerts the spend crossed.
    pub(super) fn settle(&self, holds: &Holds, cost: Picodollars, tokens: u64, now: i64) {
        let minute = now.div_euclid(MINUTE_MS) * MINUTE_MS;
        let mut raised = Vec::new();
        {
            let mut state = self.lock();
            for (key, start, budget) in &holds.budgets {
                let Some(c) = state.budgets.get_mut(key).filter(|c| c.start == *start) else {
                    // The period ended meanwhile: its counters are gone.
                    continue;
                };
                c.reserved = (c.reserved - holds.cost.0).max(0);
                c.reserved_tokens = c.reserved_tokens.saturating_sub(holds.tokens);
                let (before, before_tokens) = (c.spent, c.tokens);
                c.spent += cost.0;
                c.tokens += tokens;
                for &t in &self.thresholds {
                    if let Some(limit) = budget.limit_cost() {
                        let mark = (i128::from(limit.0) * i128::from(t) / 1000) as i64;
                        if before < mark && c.spent >= mark && !c.alerted_usd.contains(&t) {
                            c.alerted_usd.push(t);
                            raised.push(alert(
                                key,
                                budget,
                                c,
                                t,
                                "usd",
                                c.spent as f64 / 1e12,
                                limit.0 as f64 / 1e12,
                            ));
                        }
                    }
                    if let Some(limit) = budget.limit_tokens {
                        let mark = limit.saturating_mul(t) / 1000;
                        if before_tokens < mark
                            && c.tokens >= mark
                            && !c.alerted_tokens.contains(&t)
                        {
                            c.alerted_tokens.push(t);
                            raised.push(alert(
                                key,
                                budget,
                                c,
                                t,
                                "tokens",
                                c.tokens as f64,
                                limit as f64,
                            ));
                        }
                    }
                }
            }
            for key in &holds.rates {
                if let Some(c) = state.rates.get_mut(key) {
                    c.in_flight = c.in_flight.saturating_sub(1);
                    if c.minute != minute {
                        c.minute = minute;
                        c.requests = 0;
                        c.tokens = 0;
                    }
                    c.tokens += tokens;
                }
            }
        }
        if !raised.is_empty() {
            self.alerts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(raised);
        }
    }

    /// Every budget counted in its current period: level, id, budget, usage.
    pub(super) fn budgets(&self, now: i64) -> Vec<(Level, String, Budget, Usage)> {
        let state = self.lock();
        state
            .budgets
            .iter()
            .filter(|(_, c)| c.start <= now && now < c.end)
            .map(|((level, id), c)| (*level, id.clone(), c.budget.clone(), c.usage()))
            .collect()
    }

    pub(super) fn take_alerts(&self) -> Vec<Alert> {
        std::mem::take(&mut *self.alerts.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(super) fn usage(&self, level: Level, id: &str, period: Period, now: i64) -> Option<Usage> {
        let (start, _) = period.window(now);
        let state = self.lock();
        state
            .budgets
            .get(&(level, id.to_owned()))
            .filter(|c| c.is_for(period, start))
            .map(Counter::usage)
    }
}

/// The tightest request and token windows among `limited`, as counted now.
fn rate_view(state: &State, limited: &[(RateKey, Rates)], minute: i64, now: i64) -> RateView {
    let mut view = RateView::default();
    let tighter = |w: Option<Window>, limit: Option<u64>, used: u64| -> Option<Window> {
        let Some(limit) = limit else { return w };
        let next = Window {
            limit,
            remaining: limit.saturating_sub(used),
            reset_ms: minute + MINUTE_MS - now,
        };
        Some(match w {
            Some(w) if w.remaining <= next.remaining => w,
            _ => next,
        })
    };
    for (key, rates) in limited {
        let (requests, tokens) = state
            .rates
            .get(key)
            .filter(|c| c.minute == minute)
            .map_or((0, 0), |c| (c.requests, c.tokens));
        view.requests = tighter(view.requests, rates.rpm, requests);
        view.tokens = tighter(view.tokens, rates.tpm, tokens);
    }
    view
}

fn alert(
    key: &BudgetKey,
    budget: &Budget,
    c: &Counter,
    threshold: u64,
    unit: &'static str,
    used: f64,
    limit: f64,
) -> Alert {
    Alert {
        level: key.0,
        id: key.1.clone(),
        period: budget.period,
        enforcement: budget.enforcement,
        threshold: threshold as f64 / 1000.0,
        unit,
        used,
        limit,
        period_start_ms: c.start,
    }
}
