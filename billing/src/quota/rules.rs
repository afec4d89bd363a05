//! What both engines share: which rate limits apply to a request, the
//! rate-limit view for the headers, and the words of each refusal, so a
//! client is told the same thing whichever engine counted.

use super::{Admission, Budget, Level, RateView, Rates, Reason, Rejection, Window};
use crate::tenancy::rfc3339;

pub(super) const MINUTE_MS: i64 = 60_000;

/// A rate limit's identity: level, id, and the model for a per-model limit.
pub(super) type RateKey = (Level, String, Option<String>);

/// The start of the minute containing `now`.
pub(super) fn minute_of(now: i64) -> i64 {
    now.div_euclid(MINUTE_MS) * MINUTE_MS
}

/// The rate limits over `a`: each level's limits over all models, and its
/// limits for the requested model.
pub(super) fn rate_limits(a: &Admission<'_>) -> Vec<(RateKey, Rates)> {
    let mut limited = Vec::new();
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
    limited
}

/// The tightest request and token windows among `limited`, given each
/// one's (requests, tokens) in the minute starting at `minute`.
pub(super) fn rate_view<'a>(
    limited: impl IntoIterator<Item = (&'a Rates, (u64, u64))>,
    minute: i64,
    now: i64,
) -> RateView {
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
    for (rates, (requests, tokens)) in limited {
        view.requests = tighter(view.requests, rates.rpm, requests);
        view.tokens = tighter(view.tokens, rates.tpm, tokens);
    }
    view
}

/// `$12.34`, with more places when the amount is small.
pub(super) fn dollars(p: i64) -> String {
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

/// Seconds from `now` until `end` (at least 1), or `None` for never.
pub(super) fn secs_until(end: i64, now: i64) -> Option<u64> {
    (end != i64::MAX).then(|| u64::try_from((end - now + 999) / 1000).unwrap_or(0).max(1))
}

/// What a budget's counter held when a request asked to be admitted.
#[derive(Debug, Clone, Copy)]
pub(super) struct Held {
    pub spent: i64,
    pub tokens: u64,
    pub reserved: i64,
    pub reserved_tokens: u64,
}

/// Whether a hard budget refuses a request that may cost `cost` and use
/// `tokens`, and if so, the refusal.
pub(super) fn check_budget(
    level: Level,
    budget: &Budget,
    c: Held,
    (cost, tokens): (i64, u64),
    end: i64,
    now: i64,
    view: RateView,
) -> Result<(), Box<Rejection>> {
    let refuse = |message: String| {
        Err(Box::new(Rejection {
            reason: Reason::Budget,
            level,
            message,
            retry_after_s: secs_until(end, now),
            rate: view,
        }))
    };
    if let Some(limit) = budget.limit_cost() {
        let limit = limit.0;
        let total = i128::from(c.spent) + i128::from(c.reserved) + i128::from(cost);
        if c.spent >= limit || total > i128::from(limit) {
            return refuse(format!(
                "The {}'s {} budget of {} has no room for this request: {} used, {} held by requests in flight, and this request may cost up to {}. {}",
                level.name(),
                budget.period.name(),
                dollars(limit),
                dollars(c.spent),
                dollars(c.reserved),
                dollars(cost),
                reset_phrase(end)
            ));
        }
    }
    if let Some(limit) = budget.limit_tokens {
        let total = u128::from(c.tokens) + u128::from(c.reserved_tokens) + u128::from(tokens);
        if c.tokens >= limit || total > u128::from(limit) {
            return refuse(format!(
                "The {}'s {} budget of {limit} tokens has no room for this request: {} used, {} held by requests in flight, and this request may use up to {tokens}. {}",
                level.name(),
                budget.period.name(),
                c.tokens,
                c.reserved_tokens,
                reset_phrase(end)
            ));
        }
    }
    Ok(())
}

/// A hard budget whose spend is not known yet (it could not be read).
pub(super) fn unknown_budget(level: Level, view: RateView) -> Box<Rejection> {
    Box::new(Rejection {
        reason: Reason::Budget,
        level,
        message: format!(
            "The {}'s budget cannot be checked right now; retry shortly.",
            level.name()
        ),
        retry_after_s: Some(1),
        rate: view,
    })
}

/// Whether a rate limit refuses the request, given its counts this minute
/// and the requests in flight.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_rates(
    key: &RateKey,
    rates: &Rates,
    (requests, tokens, in_flight): (u64, u64, u64),
    new_request: bool,
    minute: i64,
    now: i64,
    view: RateView,
) -> Result<(), Box<Rejection>> {
    let whose = match &key.2 {
        Some(m) => format!("The {}'s limit for '{m}'", key.0.name()),
        None => format!("The {}'s limit", key.0.name()),
    };
    let minute_end = minute + MINUTE_MS;
    let reject = |reason, message: String, retry_after_s| {
        Err(Box::new(Rejection {
            reason,
            level: key.0,
            message,
            retry_after_s,
            rate: view,
        }))
    };
    if let Some(rpm) = rates.rpm {
        if new_request && requests >= rpm {
            return reject(
                Reason::Requests,
                format!(
                    "{whose} of {rpm} requests per minute is reached. It resets at {}.",
                    rfc3339(minute_end)
                ),
                secs_until(minute_end, now),
            );
        }
    }
    if let Some(tpm) = rates.tpm {
        if tokens >= tpm {
            return reject(
                Reason::Tokens,
                format!(
                    "{whose} of {tpm} tokens per minute is reached ({tokens} used). It resets at {}.",
                    rfc3339(minute_end)
                ),
                secs_until(minute_end, now),
            );
        }
    }
    if let Some(max) = rates.max_concurrent {
        if in_flight >= max {
            return reject(
                Reason::Concurrency,
                format!(
                    "{whose} of {max} concurrent requests is reached; retry when one finishes."
                ),
                Some(1),
            );
        }
    }
    Ok(())
}

/// Alert thresholds as thousandths of a limit, sorted, without repeats.
pub(super) fn thousandths(thresholds: Vec<f64>) -> Vec<u64> {
    let mut t: Vec<u64> = thresholds
        .into_iter()
        .filter(|t| t.is_finite() && *t > 0.0)
        .map(|t| (t * 1000.0).round() as u64)
        .collect();
    t.sort_unstable();
    t.dedup();
    t
}

#[cfg(test)]
mod tests {
    #[test]
    fn small_amounts_keep_their_places() {
        assert_eq!(super::dollars(12_340_000_000_000), "$12.34");
        assert_eq!(super::dollars(0), "$0.00");
        assert_eq!(super::dollars(1_500_000_000), "$0.0015");
        assert_eq!(super::dollars(500_000_000_000), "$0.50");
    }
}
