//! Teams as the spend page shows them: `GET /v1/spend/teams` (the teams the
//! caller may see, with their organizations' names) and
//! `GET /v1/spend/teams/{id}` (one team's budgets with what is spent, held
//! and left and when they run out, its keys, and its spend today and this
//! month). The master key sees every team; a virtual key its own only.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use billing::quota::{Budget, Level};
use billing::reports::{self, SpendFilter};
use billing::tenancy::{rfc3339, Controls};
use billing::Picodollars;
use serde_json::{json, Value};

use super::budget;
use super::spend::out_of_scope;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AdminState;

/// `GET /v1/spend/teams`: every team for the master key, the key's own team
/// for a virtual key; each with its organization's id and name.
pub async fn list(
    State(admin): State<AdminState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let t = &admin.tenancy;
    let (orgs, teams) = match caller.key() {
        None => (t.list_orgs().await?, t.list_teams(None).await?),
        Some(key) => (
            vec![t.org(&key.org_id).await?],
            vec![t.team(&key.team_id).await?],
        ),
    };
    let data: Vec<Value> = teams
        .iter()
        .map(|team| {
            let org = orgs.iter().find(|o| o.id == team.org_id);
            json!({
                "id": team.id,
                "name": team.name,
                "org_id": team.org_id,
                "org_name": org.map(|o| o.name.as_str()),
            })
        })
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// `GET /v1/spend/teams/{id}`: a team's budgets (its organization's, its
/// own and its keys'), its keys, and its spend today and this month (UTC).
/// A virtual key may ask for its own team only.
pub async fn team(
    State(admin): State<AdminState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if let Some(key) = caller.key().filter(|k| k.team_id != id) {
        return Err(out_of_scope(format!(
            "This key belongs to team '{}' and may not see team '{id}'.",
            key.team_id
        )));
    }
    let team = admin.tenancy.team(&id).await?;
    let org = admin.tenancy.org(&team.org_id).await?;
    let keys = admin.tenancy.list_keys(Some(&id)).await?;
    let now = billing::db::now_ms();
    let (day, month) = reports::day_and_month_start(now);

    let mut owners = vec![
        (
            Level::Org,
            org.id.as_str(),
            Some(org.name.as_str()),
            &org.controls,
        ),
        (
            Level::Team,
            team.id.as_str(),
            Some(team.name.as_str()),
            &team.controls,
        ),
    ];
    owners.extend(
        keys.iter()
            .map(|k| (Level::Key, k.id.as_str(), k.name.as_deref(), &k.controls)),
    );
    let mut budgets = Vec::new();
    for (level, owner, name, controls) in owners {
        if let Controls {
            budget: Some(b), ..
        } = controls
        {
            budgets.push(
                budget_with_projection(&admin, (&org.id, level, owner), name, b, (month, now))
                    .await?,
            );
        }
    }

    let team_spend = |from| SpendFilter {
        from_ms: from,
        to_ms: now + 1,
        team_id: Some(id.clone()),
        ..Default::default()
    };
    let today = reports::total(&admin.db, &team_spend(day)).await?;
    let this_month = reports::total(&admin.db, &team_spend(month)).await?;
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({
                "id": k.id,
                "name": k.name,
                "prefix": k.prefix,
                "created_at": k.created_at,
                "expires_at": k.expires_at,
                "revoked_at": k.revoked_at,
            })
        })
        .collect();
    Ok(Json(json!({
        "object": "team_spend",
        "team": {"id": team.id, "name": team.name, "org_id": org.id, "org_name": org.name},
        "budgets": budgets,
        "keys": keys,
        "spend": {"today": today, "month": this_month},
        "as_of": rfc3339(now),
    })))
}

/// One budget: whose it is, its usage, and (for a USD limit) when it runs
/// out at this month's daily average of its owner's spend.
async fn budget_with_projection(
    admin: &AdminState,
    (org, level, owner): (&str, Level, &str),
    name: Option<&str>,
    b: &Budget,
    (month_start, now): (i64, i64),
) -> Result<Value, ApiError> {
    let usage = budget::usage(admin, org, level, owner, b, now).await?;
    let mut v = budget::view(b, &usage);
    v["level"] = json!(match level {
        Level::Org => "org",
        Level::Team => "team",
        Level::Key => "key",
    });
    v["id"] = json!(owner);
    v["name"] = json!(name);
    v["projection"] = match budget::remaining_cost(b, &usage) {
        Some(left) => {
            let mut f = SpendFilter {
                from_ms: month_start,
                to_ms: now + 1,
                ..Default::default()
            };
            let who = Some(owner.to_owned());
            match level {
                Level::Org => f.org_id = who,
                Level::Team => f.team_id = who,
                Level::Key => f.key_id = who,
            }
            let month = reports::total(&admin.db, &f).await?;
            budget::projection(
                left,
                Picodollars(month.cost_picousd),
                month_start,
                now,
                usage.period_end_ms,
            )
        }
        None => Value::Null,
    };
    Ok(v)
}
