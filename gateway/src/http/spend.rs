//! Spend reports: `GET /admin/spend` (master key, every organization) and
//! `GET /v1/spend` (any key, scoped to what the caller may see). Both take
//! the same query and answer the same rows, as JSON or CSV. A virtual key
//! sees its own team only: its team filter is forced, and asking for
//! another team or organization, or grouping by organization, is a 403.
//! `group_by=session` lists agent sessions (most recent first, at most
//! `limit`) with when each was first and last seen and its cache-hit share.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use billing::reports::{self, GroupBy, SpendFilter};
use billing::tenancy::{parse_rfc3339, rfc3339, MAX_RFC3339_MS};
use serde::Deserialize;
use serde_json::json;

use super::admin::query;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AdminState;

/// The query of both spend endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendQuery {
    group_by: Option<String>,
    from: Option<String>,
    to: Option<String>,
    org_id: Option<String>,
    team_id: Option<String>,
    key_id: Option<String>,
    route: Option<String>,
    model: Option<String>,
    format: Option<String>,
    /// The most sessions listed (`group_by=session` only).
    limit: Option<u32>,
}

impl SpendQuery {
    /// A filter given must name something.
    fn check_filters(&self) -> Result<(), ApiError> {
        for (name, v) in [
            ("org_id", &self.org_id),
            ("team_id", &self.team_id),
            ("key_id", &self.key_id),
            ("route", &self.route),
            ("model", &self.model),
        ] {
            if v.as_deref().is_some_and(str::is_empty) {
                return Err(ApiError::invalid(
                    Some(name),
                    format!("{name} must not be empty."),
                ));
            }
        }
        Ok(())
    }
}

/// What a team key may group by: everything within one team.
const TEAM_GROUPINGS: &str = "team, key, route, model, provider, session, day or hour";

/// What a report may group by: [`GroupBy`]'s, and sessions.
const GROUPINGS: &str = "org, team, key, route, model, provider, session, day, hour";

/// Sessions listed when the query names no `limit`.
const DEFAULT_SESSIONS: u32 = 1000;

/// A 403 for a report beyond the caller's team.
pub(super) fn out_of_scope(message: String) -> ApiError {
    ApiError::custom(
        StatusCode::FORBIDDEN,
        "permission_error",
        "spend_out_of_scope",
        message,
    )
}

/// Narrows a report to what `caller` may see: all of it for the master
/// key; for a virtual key, its own team, refusing anything beyond it.
fn scoped(caller: &Caller, mut q: SpendQuery) -> Result<SpendQuery, ApiError> {
    let Some(key) = caller.key() else {
        return Ok(q);
    };
    if q.group_by.as_deref() == Some("org") {
        return Err(out_of_scope(format!(
            "A team key sees its own team's spend only, so it cannot group by org; \
             group by {TEAM_GROUPINGS}."
        )));
    }
    if let Some(other) = q.org_id.as_deref().filter(|o| *o != key.org_id) {
        return Err(out_of_scope(format!(
            "This key belongs to organization '{}' and may not see the spend of organization '{other}'.",
            key.org_id
        )));
    }
    if let Some(other) = q.team_id.as_deref().filter(|t| *t != key.team_id) {
        return Err(out_of_scope(format!(
            "This key belongs to team '{}' and may not see the spend of team '{other}'.",
            key.team_id
        )));
    }
    q.team_id = Some(key.team_id.clone());
    Ok(q)
}

/// `GET /v1/spend`: the spend report as the caller may see it.
pub async fn spend(
    State(admin): State<AdminState>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<SpendQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    q.check_filters()?;
    report(&admin, scoped(&caller, q)?).await
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

/// Totals per group over `[from, to)` (default: the last 30 days), as JSON
/// (the rows and their total) or CSV (the rows).
pub(super) async fn report(admin: &AdminState, q: SpendQuery) -> Result<Response, ApiError> {
    q.check_filters()?;
    let by_text = q.group_by.as_deref().unwrap_or("model");
    let by = match by_text {
        "session" => None,
        _ => Some(GroupBy::parse(by_text).ok_or_else(|| {
            ApiError::invalid(
                Some("group_by"),
                format!("group_by must be one of {GROUPINGS}."),
            )
        })?),
    };
    let limit = match (by, q.limit) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                Some("limit"),
                "limit applies to group_by=session only.",
            ))
        }
        (None, Some(n)) if n == 0 || n > reports::MAX_SESSIONS => {
            return Err(ApiError::invalid(
                Some("limit"),
                format!("limit must be between 1 and {}.", reports::MAX_SESSIONS),
            ))
        }
        (_, n) => n.unwrap_or(DEFAULT_SESSIONS),
    };
    let to = time_param("to", q.to.as_deref())?.unwrap_or_else(|| billing::db::now_ms() + 1);
    let from = time_param("from", q.from.as_deref())?.unwrap_or((to - 30 * 86_400_000).max(0));
    if from >= to {
        return Err(ApiError::invalid(Some("from"), "from must be before to."));
    }
    let format = q.format.as_deref();
    if !matches!(format, None | Some("json") | Some("csv")) {
        return Err(ApiError::invalid(
            Some("format"),
            "format must be json or csv.",
        ));
    }
    let filter = SpendFilter {
        from_ms: from,
        to_ms: to,
        org_id: q.org_id,
        team_id: q.team_id,
        key_id: q.key_id,
        route: q.route,
        model: q.model,
    };
    let Some(by) = by else {
        return sessions(admin, &filter, limit, format).await;
    };
    let rows = reports::spend(&admin.db, by, &filter).await?;
    if format == Some("csv") {
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            reports::to_csv(&rows),
        )
            .into_response());
    }
    Ok(Json(json!({
        "object": "spend_report",
        "group_by": by_text,
        "from": rfc3339(from),
        "to": rfc3339(to),
        "total": reports::sum(&rows),
        "data": rows,
    }))
    .into_response())
}

/// The session report: one row a session, most recently seen first.
async fn sessions(
    admin: &AdminState,
    filter: &SpendFilter,
    limit: u32,
    format: Option<&str>,
) -> Result<Response, ApiError> {
    let rows = reports::sessions(&admin.db, filter, limit).await?;
    if format == Some("csv") {
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            reports::sessions_csv(&rows),
        )
            .into_response());
    }
    Ok(Json(json!({
        "object": "spend_report",
        "group_by": "session",
        "from": rfc3339(filter.from_ms),
        "to": rfc3339(filter.to_ms),
        "limit": limit,
        "total": reports::sessions_total(&rows),
        "data": rows,
    }))
    .into_response())
}
