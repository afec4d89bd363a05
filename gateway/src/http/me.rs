//! `GET /v1/me`: who the caller is, what its key spent today and this month
//! (UTC), and for each budget over it what is used and what remains.

use axum::extract::State;
use axum::{Extension, Json};
use billing::policy::Policy;
use billing::quota::{Budget, Level, Seed};
use billing::reports::{self, SpendFilter};
use billing::Picodollars;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AdminState;

pub async fn me(
    State(admin): State<AdminState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let Some(key) = caller.key() else {
        return Ok(Json(json!({"object": "caller", "type": "master"})));
    };
    let now = billing::db::now_ms();
    let (day, month) = reports::day_and_month_start(now);
    let spend = |from| SpendFilter {
        from_ms: from,
        to_ms: now + 1,
        key_id: Some(key.id.clone()),
        ..Default::default()
    };
    let today = reports::total(&admin.db, &spend(day)).await?;
    let this_month = reports::total(&admin.db, &spend(month)).await?;
    let team = admin.tenancy.team(&key.team_id).await?;
    let org = admin.tenancy.org(&key.org_id).await?;
    // The policies and quotas as they were when the key was loaded: what
    // is enforced.
    let p = &key.policies;
    let mut key_view = with_policy(
        json!({
            "id": key.id,
            "name": key.name,
            "prefix": key.prefix,
            "expires_at": key.expires_at_ms.map(billing::tenancy::rfc3339),
        }),
        &p.key,
    );
    let mut team_view = with_policy(json!({"id": team.id, "name": team.name}), &p.team);
    let mut org_view = with_policy(json!({"id": org.id, "name": org.name}), &p.org);
    let views = [&mut org_view, &mut team_view, &mut key_view];
    for ((level, id, quota), view) in key.quota_levels().into_iter().zip(views) {
        view["budget"] = match &quota.budget {
            Some(b) => budget_view(&admin, level, id, b, now).await?,
            None => Value::Null,
        };
        view["limits"] = json!(quota.limits);
    }
    Ok(Json(json!({
        "object": "caller",
        "type": "key",
        "key": key_view,
        "team": team_view,
        "org": org_view,
        "spend": {"today": today, "month": this_month},
    })))
}

/// A budget with its period, what is used (settled and held by requests in
/// flight) and what remains. The gateway's own counters when it has used the
/// budget this period; the ledger otherwise.
async fn budget_view(
    admin: &AdminState,
    level: Level,
    id: &str,
    b: &Budget,
    now: i64,
) -> Result<Value, ApiError> {
    let usage = match admin.quotas.current_usage(level, id, b.period, now).await {
        Some(u) => u,
        None => {
            let (start, end) = b.period.window(now);
            let (spent, tokens) = Seed::Ledger(admin.db.clone())
                .spent(level, id, (start, end))
                .await?;
            billing::quota::Usage {
                period_start_ms: start,
                period_end_ms: end,
                spent,
                tokens,
                reserved: Picodollars::ZERO,
                reserved_tokens: 0,
            }
        }
    };
    let mut v = json!({
        "limit_usd": b.limit_usd,
        "limit_tokens": b.limit_tokens,
        "period": b.period,
        "enforcement": b.enforcement,
        "period_start": billing::tenancy::rfc3339(usage.period_start_ms),
        "resets_at": (usage.period_end_ms != i64::MAX).then(|| billing::tenancy::rfc3339(usage.period_end_ms)),
        "spent_usd": usage.spent.usd(),
        "reserved_usd": usage.reserved.usd(),
        "spent_tokens": usage.tokens,
        "reserved_tokens": usage.reserved_tokens,
    });
    if let Some(limit) = b.limit_cost() {
        let left = Picodollars((limit.0 - usage.spent.0 - usage.reserved.0).max(0));
        v["remaining_usd"] = json!(left.usd());
    }
    if let Some(limit) = b.limit_tokens {
        v["remaining_tokens"] = json!(limit.saturating_sub(usage.tokens + usage.reserved_tokens));
    }
    Ok(v)
}

/// `fields` with the policy's fields beside them.
fn with_policy(mut fields: Value, policy: &Policy) -> Value {
    if let (Some(obj), Ok(Value::Object(p))) =
        (fields.as_object_mut(), serde_json::to_value(policy))
    {
        obj.extend(p);
    }
    fields
}
