//! A budget as the API shows it: its period, what is spent and held by
//! requests in flight, what remains and when it resets; for the team view
//! also when it runs out at this month's daily average. Shared by `/v1/me`
//! and `/v1/spend/teams/{id}`.

use billing::quota::{Budget, Level, Seed, Usage};
use billing::tenancy::{rfc3339, MAX_RFC3339_MS};
use billing::Picodollars;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::AdminState;

const DAY_MS: i64 = 86_400_000;

/// What `level` `id` (of organization `org`) has used of budget `b` in the
/// period containing `now`: the gateway's own counters when it has used
/// the budget this period, the ledger otherwise.
pub(super) async fn usage(
    admin: &AdminState,
    org: &str,
    level: Level,
    id: &str,
    b: &Budget,
    now: i64,
) -> Result<Usage, ApiError> {
    if let Some(u) = admin
        .quotas
        .current_usage(org, level, id, b.period, now)
        .await
    {
        return Ok(u);
    }
    let (start, end) = b.period.window(now);
    let (spent, tokens) = Seed::Ledger(admin.db.clone())
        .spent(level, id, (start, end))
        .await?;
    Ok(Usage {
        period_start_ms: start,
        period_end_ms: end,
        spent,
        tokens,
        reserved: Picodollars::ZERO,
        reserved_tokens: 0,
    })
}

/// What is left of a USD budget: the limit less what is spent and held.
pub(super) fn remaining_cost(b: &Budget, usage: &Usage) -> Option<Picodollars> {
    b.limit_cost()
        .map(|limit| Picodollars((limit.0 - usage.spent.0 - usage.reserved.0).max(0)))
}

/// A budget with its period, what is used and what remains.
pub(super) fn view(b: &Budget, usage: &Usage) -> Value {
    let mut v = json!({
        "limit_usd": b.limit_usd,
        "limit_tokens": b.limit_tokens,
        "period": b.period,
        "enforcement": b.enforcement,
        "period_start": rfc3339(usage.period_start_ms),
        "resets_at": (usage.period_end_ms != i64::MAX).then(|| rfc3339(usage.period_end_ms)),
        "spent_usd": usage.spent.usd(),
        "reserved_usd": usage.reserved.usd(),
        "spent_tokens": usage.tokens,
        "reserved_tokens": usage.reserved_tokens,
    });
    if let Some(left) = remaining_cost(b, usage) {
        v["remaining_usd"] = json!(left.usd());
    }
    if let Some(limit) = b.limit_tokens {
        v["remaining_tokens"] = json!(limit.saturating_sub(usage.tokens + usage.reserved_tokens));
    }
    v
}

/// When `remaining` runs out if spending goes on at this month's daily
/// average (`month_spent` over the days of the month so far, today counted
/// whole). `runs_out_at` is `null` when nothing was spent this month, and
/// `before_reset` says whether that comes before the budget's period ends.
pub(super) fn projection(
    remaining: Picodollars,
    month_spent: Picodollars,
    month_start_ms: i64,
    now_ms: i64,
    period_end_ms: i64,
) -> Value {
    let days = (now_ms - month_start_ms).div_euclid(DAY_MS).max(0) + 1;
    let runs_out_at = if remaining.0 <= 0 {
        Some(now_ms)
    } else if month_spent.0 <= 0 {
        None
    } else {
        // remaining / (month_spent / days) days, in ms, without rounding the
        // average first.
        let ms = i128::from(remaining.0) * i128::from(days) * i128::from(DAY_MS)
            / i128::from(month_spent.0);
        Some(
            i64::try_from(i128::from(now_ms) + ms)
                .unwrap_or(MAX_RFC3339_MS)
                .min(MAX_RFC3339_MS),
        )
    };
    json!({
        "basis": "month_to_date_daily_average",
        "month_to_date_usd": month_spent.usd(),
        "days": days,
        "daily_average_usd": Picodollars(month_spent.0 / days).usd(),
        "runs_out_at": runs_out_at.map(rfc3339),
        "before_reset": runs_out_at.is_some_and(|t| t < period_end_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use billing::tenancy::parse_rfc3339;

    fn at(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    const USD: i64 = 1_000_000_000_000;

    #[test]
    fn a_budget_runs_out_at_the_months_daily_average() {
        // $30 spent over 10 days (the 10th counted whole): $3 a day; $6
        // left lasts two days.
        let now = at("2026-11-10T12:00:00Z");
        let p = projection(
            Picodollars(6 * USD),
            Picodollars(30 * USD),
            at("2026-11-01T00:00:00Z"),
            now,
            at("2026-12-01T00:00:00Z"),
        );
        assert_eq!(p["days"], 10);
        assert_eq!(p["daily_average_usd"], "3.000000000000");
        assert_eq!(p["runs_out_at"], "2026-11-12T12:00:00.000Z");
        assert_eq!(p["before_reset"], true);
    }

    #[test]
    fn a_budget_that_outlasts_its_period_says_so() {
        let p = projection(
            Picodollars(100 * USD),
            Picodollars(USD),
            at("2026-11-01T00:00:00Z"),
            at("2026-11-01T08:00:00Z"),
            at("2026-12-01T00:00:00Z"),
        );
        assert_eq!(p["runs_out_at"], "2027-02-09T08:00:00.000Z");
        assert_eq!(p["before_reset"], false);
    }

    #[test]
    fn nothing_spent_never_runs_out_and_nothing_left_has_run_out() {
        let start = at("2026-11-01T00:00:00Z");
        let now = at("2026-11-03T00:00:00Z");
        let idle = projection(Picodollars(USD), Picodollars::ZERO, start, now, i64::MAX);
        assert_eq!(idle["runs_out_at"], Value::Null);
        assert_eq!(idle["before_reset"], false);
        let gone = projection(Picodollars::ZERO, Picodollars(USD), start, now, i64::MAX);
        assert_eq!(gone["runs_out_at"], "2026-11-03T00:00:00.000Z");
        assert_eq!(gone["before_reset"], true);
    }
}
