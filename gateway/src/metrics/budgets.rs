//! Gauges refreshed at each scrape: every team and organization budget this
//! gateway counts (limit, spent, reserved, remaining, in USD and tokens),
//! when its period resets, and the names and ids of every team seen. The
//! quota engine knows ids only; the names come from the key cache's
//! directory, filled as keys load, so no scrape queries the database.

use billing::names::Names;
use billing::quota::{Level, Period, QuotaEngine};

use super::Metrics;

/// Rewrites the budget and team gauges from `engine` and `names` as of
/// `now_ms`. Series of budgets no longer counted, or of renamed teams, go.
/// The caller holds the scrape lock, so no scrape sees them half written.
pub(super) fn refresh(m: &Metrics, engine: Option<&QuotaEngine>, names: &Names, now_ms: i64) {
    m.team_info.reset();
    for t in names.teams() {
        m.team_info
            .with_label_values(&[&t.org, &t.team, &t.org_id, &t.team_id])
            .set(1);
    }
    m.budget_usd.reset();
    m.budget_tokens.reset();
    m.budget_reset.reset();
    let Some(engine) = engine else { return };
    for (level, id, budget, used) in engine.budgets(now_ms) {
        let (org, team) = match level {
            Level::Org => match names.org(&id) {
                Some(org) => (org, String::new()),
                None => continue,
            },
            Level::Team => match names.team(&id) {
                Some(t) => (t.org, t.team),
                None => continue,
            },
            Level::Key => continue,
        };
        let at = [level.name(), org.as_str(), team.as_str()];
        let set = |g: &prometheus::GaugeVec, kind: &str, v: f64| {
            g.with_label_values(&[at[0], at[1], at[2], kind]).set(v);
        };
        if let Some(limit) = budget.limit_cost() {
            let spent = used.spent.usd_f64();
            set(&m.budget_usd, "limit", limit.usd_f64());
            set(&m.budget_usd, "spent", spent);
            set(&m.budget_usd, "reserved", used.reserved.usd_f64());
            set(
                &m.budget_usd,
                "remaining",
                (limit.usd_f64() - spent).max(0.0),
            );
        }
        if let Some(limit) = budget.limit_tokens {
            set(&m.budget_tokens, "limit", limit as f64);
            set(&m.budget_tokens, "spent", used.tokens as f64);
            set(&m.budget_tokens, "reserved", used.reserved_tokens as f64);
            let remaining = limit.saturating_sub(used.tokens);
            set(&m.budget_tokens, "remaining", remaining as f64);
        }
        if budget.period != Period::Lifetime {
            m.budget_reset
                .with_label_values(&at)
                .set(used.period_end_ms as f64 / 1000.0);
        }
    }
}
