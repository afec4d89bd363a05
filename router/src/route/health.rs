//! Per-model health in one process: a circuit breaker, a cooldown from the
//! upstream's `retry-after`, and moving averages of speed and cache hits.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// How long it stays open before one probe request is let through.
    pub cooldown: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            failures: 3,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// A breaker's state, for metrics and decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// Requests skip the model until the cooldown ends.
    Open,
    /// The cooldown is over: the next request is a probe.
    HalfOpen,
}

impl BreakerState {
    /// The gauge value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    probe_started: Option<Instant>,
    cooldown_until: Option<Instant>,
    speed_ms: Option<f64>,
    cache_ratio: Option<f64>,
}

impl State {
    fn available(&self, now: Instant, cooldown: Duration) -> bool {
        if self.cooldown_until.is_some_and(|t| now < t) {
            return false;
        }
        match self.open_until {
            None => true,
            Some(t) if now < t => false,
            // Half-open: one probe at a time (a stale probe, one that never
            // reported back, is replaced after a cooldown).
            Some(_) => self
                .probe_started
                .is_none_or(|p| now.duration_since(p) > cooldown),
        }
    }
}

/// One model's health.
#[derive(Debug, Default)]
pub struct Health {
    policy: BreakerPolicy,
    state: Mutex<State>,
}

/// The weight of the newest observation in the moving averages.
const ALPHA: f64 = 0.2;

fn ewma(old: Option<f64>, new: f64) -> f64 {
    match old {
        Some(o) => o + ALPHA * (new - o),
        None => new,
    }
}

impl Health {
    /// Health under `policy`.
    pub fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The breaker's state at `now`.
    pub fn breaker(&self, now: Instant) -> BreakerState {
        let s = self.lock();
        match s.open_until {
            None => BreakerState::Closed,
            Some(t) if now < t => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether the model may be tried at `now`, without taking anything.
    pub fn available(&self, now: Instant) -> bool {
        self.lock().available(now, self.policy.cooldown)
    }

    /// Claims the right to send a request now; a half-open breaker lets one
    /// probe through. `false` when the model must be skipped. Checked and
    /// claimed under one lock, so two requests cannot both take the probe.
    pub fn try_begin(&self, now: Instant) -> bool {
        let mut s = self.lock();
        if !s.available(now, self.policy.cooldown) {
            return false;
        }
        if s.open_until.is_some() {
            s.probe_started = Some(now);
        }
        true
    }

    /// Gives back the probe a [`Health::try_begin`] at `claimed` took when
    /// the request did not test the model (refused by a budget or rate
    /// limit before it was sent, left by its client), so that the next
    /// request may probe at once. Such requests, which agents retry, would
    /// otherwise keep a recovering model out of use. Nothing happens once
    /// a success or failure has moved the breaker on, or another request
    /// holds the probe.
    pub fn abandon(&self, claimed: Instant) {
        let mut s = self.lock();
        if s.probe_started == Some(claimed) {
            s.probe_started = None;
        }
    }

    /// A request succeeded, `speed` after it started (time to first token
    /// for streams, to the whole answer otherwise).
    pub fn success(&self, speed: Duration, cache_ratio: Option<f64>) {
        let mut s = self.lock();
        s.failures = 0;
        s.open_until = None;
        s.probe_started = None;
        s.speed_ms = Some(ewma(s.speed_ms, speed.as_secs_f64() * 1000.0));
        if let Some(r) = cache_ratio {
            s.cache_ratio = Some(ewma(s.cache_ratio, r));
        }
    }

    /// A request failed at `now`: counts toward opening the breaker, and a
    /// failed probe opens it again.
    pub fn failure(&self, now: Instant) {
        let mut s = self.lock();
        s.failures = s.failures.saturating_add(1);
        let probing = s.open_until.is_some();
        if probing || s.failures >= self.policy.failures {
            s.open_until = Some(now + self.policy.cooldown);
            s.probe_started = None;
        }
    }

    /// The upstream asked to wait (`retry-after`): skip the model until then.
    pub fn cool_down(&self, until: Instant) {
        let mut s = self.lock();
        if s.cooldown_until.is_none_or(|t| t < until) {
            s.cooldown_until = Some(until);
        }
    }

    /// The moving average of observed speed, in milliseconds.
    pub fn speed_ms(&self) -> Option<f64> {
        self.lock().speed_ms
    }

    /// The moving average of the prompt share read from the cache.
    pub fn cache_ratio(&self) -> Option<f64> {
        self.lock().cache_ratio
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_probes_and_closes() {
        let h = Health::new(BreakerPolicy {
            failures: 2,
            cooldown: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        h.failure(t0);
        assert!(h.available(t0), "one failure is not enough");
        h.failure(t0);
        assert_eq!(h.breaker(t0), BreakerState::Open);
        assert!(!h.try_begin(t0 + Duration::from_secs(9)));
        let later = t0 + Duration::from_secs(11);
        assert_eq!(h.breaker(later), BreakerState::HalfOpen);
        assert!(h.try_begin(later), "one probe goes through");
        assert!(!h.try_begin(later), "and only one");
        h.failure(later);
        assert_eq!(
            h.breaker(later),
            BreakerState::Open,
            "a failed probe reopens"
        );
        let after = later + Duration::from_secs(11);
        assert!(h.try_begin(after));
        h.success(Duration::from_millis(5), None);
        assert_eq!(h.breaker(after), BreakerState::Closed);
        assert!(h.try_begin(after) && h.try_begin(after));
    }

    #[test]
    fn an_abandoned_probe_is_free_for_the_next_request() {
        let h = Health::new(BreakerPolicy {
            failures: 1,
            cooldown: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        h.failure(t0);
        let later = t0 + Duration::from_secs(11);
        assert!(h.try_begin(later));
        let next = later + Duration::from_millis(1);
        assert!(!h.try_begin(next), "the probe is taken");
        h.abandon(next);
        assert!(!h.try_begin(next), "only its taker gives it back");
        h.abandon(later);
        assert!(h.try_begin(next), "given back, it goes to the next request");
    }

    #[test]
    fn retry_after_cools_a_model_down() {
        let h = Health::default();
        let t0 = Instant::now();
        h.cool_down(t0 + Duration::from_secs(2));
        assert!(!h.available(t0 + Duration::from_secs(1)));
        assert!(h.available(t0 + Duration::from_secs(3)));
        assert_eq!(
            h.breaker(t0),
            BreakerState::Closed,
            "a cooldown is not a failure"
        );
    }
}
