//! `GET /v1/me`: who the caller is, what its key spent today and this month
//! (UTC), and for each budget over it what is used and what remains.

use axum::extract::State;
use axum::{Extension, Json};
use billing::policy::Policy;
use billing::reports::{self, SpendFilter};
use serde_json::{json, Value};

use super::budget;
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
            Some(b) => budget::view(
                b,
                &budget::usage(&admin, &key.org_id, level, id, b, now).await?,
            ),
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

/// `fields` with the policy's fields beside them.
fn with_policy(mut fields: Value, policy: &Policy) -> Value {
    if let (Some(obj), Ok(Value::Object(p))) =
        (fields.as_object_mut(), serde_json::to_value(policy))
    {
        obj.extend(p);
    }
    fields
}
