//! The admin API under `/admin` (master key only): organizations, teams,
//! keys and spend reports.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use billing::reports::{self, GroupBy, SpendFilter};
use billing::tenancy::{parse_rfc3339, KeySpec, MAX_RFC3339_MS};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::AdminState;

/// Parses a JSON body, unknown fields rejected, with a 400 naming the problem.
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid(None, format!("The request body is not valid: {e}")))
}

fn list(data: impl serde::Serialize) -> Json<Value> {
    Json(json!({"object": "list", "data": data}))
}

fn created(v: impl serde::Serialize) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    name: String,
    metadata: Option<Value>,
}

pub async fn create_org(
    State(admin): State<AdminState>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let req: NewOrg = body(&bytes)?;
    Ok(created(
        admin.tenancy.create_org(&req.name, req.metadata).await?,
    ))
}

pub async fn list_orgs(State(admin): State<AdminState>) -> Result<Json<Value>, ApiError> {
    Ok(list(admin.tenancy.list_orgs().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTeam {
    org_id: String,
    name: String,
    metadata: Option<Value>,
}

pub async fn create_team(
    State(admin): State<AdminState>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let req: NewTeam = body(&bytes)?;
    Ok(created(
        admin
            .tenancy
            .create_team(&req.org_id, &req.name, req.metadata)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamFilter {
    org_id: Option<String>,
}

/// A query string, with a 400 in OpenAI's shape when it does not parse.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| {
        ApiError::invalid(
            None,
            format!("The query string is not valid: {}", e.body_text()),
        )
    })
}

pub async fn list_teams(
    State(admin): State<AdminState>,
    f: Result<Query<TeamFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let f = query(f)?;
    Ok(list(admin.tenancy.list_teams(f.org_id.as_deref()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamPatch {
    name: Option<String>,
    metadata: Option<Value>,
}

pub async fn update_team(
    State(admin): State<AdminState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: TeamPatch = body(&bytes)?;
    let team = admin
        .tenancy
        .update_team(&id, req.name.as_deref(), req.metadata)
        .await?;
    Ok(Json(json!(team)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    team_id: String,
    name: Option<String>,
    /// RFC 3339.
    expires_at: Option<String>,
    allowed_models: Option<Vec<String>>,
    metadata: Option<Value>,
}

pub async fn create_key(
    State(admin): State<AdminState>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let req: NewKey = body(&bytes)?;
    let expires_at_ms = req
        .expires_at
        .as_deref()
        .map(|t| {
            parse_rfc3339(t).ok_or_else(|| {
                ApiError::invalid(
                    Some("expires_at"),
                    "expires_at must be an RFC 3339 time, like 2027-01-31T00:00:00Z.",
                )
            })
        })
        .transpose()?;
    if expires_at_ms.is_some_and(|e| e <= billing::db::now_ms()) {
        return Err(ApiError::invalid(
            Some("expires_at"),
            "expires_at is in the past.",
        ));
    }
    let key = admin
        .tenancy
        .create_key(KeySpec {
            team_id: req.team_id,
            name: req.name,
            expires_at_ms,
            allowed_models: req.allowed_models,
            metadata: req.metadata,
        })
        .await?;
    tracing::info!(key_id = %key.view.id, team_id = %key.view.team_id, prefix = %key.view.prefix, "key created");
    Ok(created(key))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFilter {
    team_id: Option<String>,
}

pub async fn list_keys(
    State(admin): State<AdminState>,
    f: Result<Query<KeyFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let f = query(f)?;
    Ok(list(admin.tenancy.list_keys(f.team_id.as_deref()).await?))
}

pub async fn revoke_key(
    State(admin): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (key, hash) = admin.tenancy.revoke_key(&id).await?;
    // This replica stops accepting it now; the others within one watch interval.
    admin.keys.invalidate(&hash).await;
    tracing::info!(key_id = %key.id, "key revoked");
    Ok(Json(json!(key)))
}

/// A time given as RFC 3339 or as unix seconds, between 1970 and 9999.
fn time_param(name: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(v) = v else { return Ok(None) };
    let ms = match v.parse::<i64>() {
        Ok(secs) => secs.checked_mul(1000),
        Err(_) => parse_rfc3339(v),
    };
    match ms {
        Some(ms) if (0..=MAX_RFC3339_MS).contains(&ms) => Ok(Some(ms)),
        _ => Err(ApiError::invalid(
            Some(name),
            format!("{name} must be an RFC 3339 time or unix seconds between 1970 and 9999."),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendQuery {
    group_by: Option<String>,
    from: Option<String>,
    to: Option<String>,
    org_id: Option<String>,
    team_id: Option<String>,
    key_id: Option<String>,
    model: Option<String>,
    format: Option<String>,
}

/// `GET /admin/spend`: totals per group over `[from, to)` (default: the last
/// 30 days), as JSON or CSV.
pub async fn spend(
    State(admin): State<AdminState>,
    q: Result<Query<SpendQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    for (name, v) in [
        ("org_id", &q.org_id),
        ("team_id", &q.team_id),
        ("key_id", &q.key_id),
        ("model", &q.model),
    ] {
        if v.as_deref().is_some_and(str::is_empty) {
            return Err(ApiError::invalid(
                Some(name),
                format!("{name} must not be empty."),
            ));
        }
    }
    let by_text = q.group_by.as_deref().unwrap_or("model");
    let by = GroupBy::parse(by_text).ok_or_else(|| {
        ApiError::invalid(
            Some("group_by"),
            "group_by must be one of org, team, key, model, provider, day, hour.",
        )
    })?;
    let to = time_param("to", q.to.as_deref())?.unwrap_or_else(|| billing::db::now_ms() + 1);
    let from = time_param("from", q.from.as_deref())?.unwrap_or((to - 30 * 86_400_000).max(0));
    if from >= to {
        return Err(ApiError::invalid(Some("from"), "from must be before to."));
    }
    let filter = SpendFilter {
        from_ms: from,
        to_ms: to,
        org_id: q.org_id,
        team_id: q.team_id,
        key_id: q.key_id,
        model: q.model,
    };
    let rows = reports::spend(&admin.db, by, &filter).await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(json!({
            "object": "spend_report",
            "group_by": by_text,
            "from": billing::tenancy::rfc3339(from),
            "to": billing::tenancy::rfc3339(to),
            "data": rows,
        }))
        .into_response()),
        Some("csv") => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            reports::to_csv(&rows),
        )
            .into_response()),
        Some(_) => Err(ApiError::invalid(
            Some("format"),
            "format must be json or csv.",
        )),
    }
}
