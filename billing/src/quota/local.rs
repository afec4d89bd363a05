//! The in-process engine: every counter behind one lock, so admission
//! checks and takes from all of a request's budgets and limits atomically.

use std::collections::HashMap;
use std::sync::Mutex;

use super::rules::{self, minute_of, Held, RateKey};
use super::{
    Admission, Alert, Budget, Enforcement, Level, Period, RateView, Rates, Rejection, Seed, Usage,
};
use crate::money::Picodollars;

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

    fn held(&self) -> Held {
        Held {
            spent: self.spent,
            tokens: self.tokens,
            reserved: self.reserved,
            reserved_tokens: self.reserved_tokens,
        }
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

/// A budget's usage as counted elsewhere (Redis, before it went away), by
/// level, id, period and the time of the admission.
pub(super) type Floor<'a> = dyn Fn(Level, &str, Period, i64) -> Option<Usage> + Send + Sync + 'a;

#[derive(Debug, Default)]
struct State {
    budgets: HashMap<BudgetKey, Counter>,
    rates: HashMap<RateKey, RateCounter>,
}

/// What one admission took, to give back or settle.
#[derive(Debug, Default, Clone)]
pub(super) struct Holds {
    /// The organization the request is under.
    org: String,
    budgets: Vec<(BudgetKey, i64, Budget)>,
    rates: Vec<RateKey>,
    pub(super) cost: Picodollars,
    pub(super) tokens: u64,
    pub(super) rate: RateView,
}

impl Holds {
    /// The organization the request is under.
    pub(super) fn org(&self) -> &str {
        &self.org
    }

    /// Each budget held: level, id, period and period start.
    pub(super) fn budget_windows(&self) -> impl Iterator<Item = (Level, &str, Period, i64)> {
        self.budgets
            .iter()
            .map(|((level, id), start, b)| (*level, id.as_str(), b.period, *start))
    }
}

#[derive(Debug)]
pub(super) struct Local {
    seed: Seed,
    /// Alert thresholds in thousandths of the limit.
    thresholds: Vec<u64>,
    state: Mutex<State>,
    alerts: Mutex<Vec<Alert>>,
}

impl Local {
    pub(super) fn new(seed: Seed, thresholds: Vec<f64>) -> Self {
        Self {
            seed,
            thresholds: rules::thousandths(thresholds),
            state: Mutex::new(State::default()),
            alerts: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters that are still
        // counts: carry on with them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every count: the next admission seeds afresh from the
    /// ledger. Tickets still out settle against nothing.
    pub(super) fn clear(&self) {
        *self.lock() = State::default();
    }

    /// Seeds, from the ledger, each budget of `a` this process has not
    /// counted in its current period, or from `floor` (a budget's last
    /// known usage elsewhere) when that counts more. A budget that cannot
    /// be seeded stays unseeded: a hard one then refuses requests until it
    /// can be.
    pub(super) async fn ensure_seeded(&self, a: &Admission<'_>, floor: Option<&Floor<'_>>) {
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
                    // Standing in for Redis: what Redis last counted, held
                    // included, when that is more. Requests it admitted may
                    // still run, and their spend is not in the ledger yet.
                    let (spent, tokens) =
                        match floor.and_then(|f| f(level, id, budget.period, a.now_ms)) {
                            Some(u) => (
                                Picodollars(spent.0.max(u.spent.0.saturating_add(u.reserved.0))),
                                tokens.max(u.tokens.saturating_add(u.reserved_tokens)),
                            ),
                            None => (spent, tokens),
                        };
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
        let minute = minute_of(now);
        let mut state = self.lock();
        let mut holds = Holds {
            org: a.org().to_owned(),
            cost: a.cost,
            tokens: a.tokens,
            ..Holds::default()
        };
        let limited = rules::rate_limits(a);
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
                return Err(rules::unknown_budget(level, view));
            };
            rules::check_budget(
                level,
                budget,
                c.held(),
                (a.cost.0, a.tokens),
                c.end,
                now,
                view,
            )?;
            holds.budgets.push((key, start, budget.clone()));
        }
        for (key, rates) in &limited {
            let c = state.rates.entry(key.clone()).or_default();
            if c.minute != minute {
                c.minute = minute;
                c.requests = 0;
                c.tokens = 0;
            }
            rules::check_rates(
                key,
                rates,
                (c.requests, c.tokens, c.in_flight),
                a.new_request,
                minute,
                now,
                view,
            )?;
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

    /// Holds `cost` and `tokens` more on every budget of `holds`, unless a
    /// hard budget has no room for them. `grown` counts what the ticket's
    /// holds grew by; nothing is taken once it says the ticket is settled.
    pub(super) fn extend(
        &self,
        holds: &Holds,
        grown: &std::sync::Mutex<super::Grown>,
        (cost, tokens): (Picodollars, u64),
        now: i64,
    ) -> Result<(), Box<Rejection>> {
        let mut grown = grown.lock().unwrap_or_else(|e| e.into_inner());
        if grown.settled {
            return Ok(());
        }
        let mut state = self.lock();
        for (key, start, budget) in &holds.budgets {
            if budget.enforcement != Enforcement::Hard {
                continue;
            }
            let Some(c) = state.budgets.get(key).filter(|c| c.start == *start) else {
                // The period ended meanwhile: the request's spend counts
                // in the period it was admitted in, which is gone.
                continue;
            };
            rules::check_budget(
                key.0,
                budget,
                c.held(),
                (cost.0, tokens),
                c.end,
                now,
                RateView::default(),
            )?;
        }
        for (key, start, _) in &holds.budgets {
            if let Some(c) = state.budgets.get_mut(key).filter(|c| c.start == *start) {
                c.reserved += cost.0;
                c.reserved_tokens += tokens;
            }
        }
        grown.cost += cost.0;
        grown.tokens += tokens;
        Ok(())
    }

    /// Turns a reservation (what admission held, plus `grown` since) into
    /// spend, frees the slot, counts the tokens, and raises the alerts the
    /// spend crossed.
    pub(super) fn settle(
        &self,
        holds: &Holds,
        grown: (i64, u64),
        cost: Picodollars,
        tokens: u64,
        now: i64,
    ) {
        let minute = minute_of(now);
        let mut raised = Vec::new();
        {
            let mut state = self.lock();
            for (key, start, budget) in &holds.budgets {
                let Some(c) = state.budgets.get_mut(key).filter(|c| c.start == *start) else {
                    // The period ended meanwhile: its counters are gone.
                    continue;
                };
                c.reserved = (c.reserved - holds.cost.0 - grown.0).max(0);
                c.reserved_tokens = c
                    .reserved_tokens
                    .saturating_sub(holds.tokens.saturating_add(grown.1));
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
    let counts = limited.iter().map(|(key, rates)| {
        let used = state
            .rates
            .get(key)
            .filter(|c| c.minute == minute)
            .map_or((0, 0), |c| (c.requests, c.tokens));
        (rates, used)
    });
    rules::rate_view(counts, minute, now)
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
