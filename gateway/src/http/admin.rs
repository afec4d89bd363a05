//! The admin API under `/admin` (master key only): organizations, teams,
//! keys and spend reports.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use billing::policy::{present, Policy, PolicyPatch};
use billing::quota::{Budget, Limits};
use billing::tenancy::{parse_rfc3339, Controls, KeySpec, Patch};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::spend::SpendQuery;
use crate::error::ApiError;
use crate::policy::KnownNames;
use crate::state::AdminState;

/// Parses a JSON body, unknown fields rejected, with a 400 naming the problem.
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(invalid_body)
}

fn invalid_body(e: serde_json::Error) -> ApiError {
    ApiError::invalid(None, format!("The request body is not valid: {e}"))
}

/// The policy fields, which sit beside the others in a body.
const POLICY_FIELDS: [&str; 4] = [
    "allowed_models",
    "denied_models",
    "allowed_providers",
    "denied_providers",
];

/// Parses a body into its own fields and its policy fields (a `Policy` to
/// create with, or a `PolicyPatch`).
fn body_with_policy<T: DeserializeOwned, P: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(T, P), ApiError> {
    let mut rest: serde_json::Map<String, Value> = body(bytes)?;
    let policy: serde_json::Map<String, Value> = POLICY_FIELDS
        .iter()
        .filter_map(|f| rest.remove_entry(*f))
        .collect();
    let own = serde_json::from_value(Value::Object(rest)).map_err(invalid_body)?;
    let policy = serde_json::from_value(Value::Object(policy)).map_err(invalid_body)?;
    Ok((own, policy))
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
    budget: Option<Value>,
    limits: Option<Value>,
}

/// `field` of a body as `T`, with a 400 that names the field.
fn typed<T: DeserializeOwned>(field: &str, v: Option<Value>) -> Result<Option<T>, ApiError> {
    v.filter(|v| !v.is_null())
        .map(|v| {
            serde_json::from_value(v)
                .map_err(|e| ApiError::invalid(Some(field), format!("{field} is not valid: {e}.")))
        })
        .transpose()
}

/// Checks what a create body sets and bundles it.
fn controls(
    names: &KnownNames,
    policy: Policy,
    budget: Option<Value>,
    limits: Option<Value>,
) -> Result<Controls, ApiError> {
    let budget: Option<Budget> = typed("budget", budget)?;
    let limits: Option<Limits> = typed("limits", limits)?;
    names.check(&policy)?;
    check_quota(names, budget.as_ref(), limits.as_ref())?;
    Ok(Controls {
        policy,
        budget,
        limits,
    })
}

/// A budget must limit something; per-model limits must name models.
fn check_quota(
    names: &KnownNames,
    budget: Option<&Budget>,
    limits: Option<&Limits>,
) -> Result<(), ApiError> {
    if let Some(b) = budget {
        b.validate()
            .map_err(|m| ApiError::invalid(Some("budget"), format!("budget: {m}.")))?;
    }
    for model in limits.iter().flat_map(|l| l.models.keys()) {
        if !names.models.contains(model) {
            return Err(ApiError::invalid(
                Some("limits"),
                format!("limits.models names '{model}', which this gateway does not have."),
            ));
        }
    }
    Ok(())
}

/// A `POST /admin/orgs` body, checked.
fn new_org(names: &KnownNames, bytes: &[u8]) -> Result<(NewOrg, Controls), ApiError> {
    let (mut req, policy): (NewOrg, Policy) = body_with_policy(bytes)?;
    let c = controls(names, policy, req.budget.take(), req.limits.take())?;
    Ok((req, c))
}

pub async fn create_org(
    State(admin): State<AdminState>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let (req, c) = new_org(&admin.names, &bytes)?;
    Ok(created(
        admin
            .tenancy
            .create_org(&req.name, req.metadata, &c)
            .await?,
    ))
}

pub async fn get_org(
    State(admin): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(admin.tenancy.org(&id).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchFields {
    name: Option<String>,
    metadata: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    budget: Option<Option<Value>>,
    #[serde(default, deserialize_with = "present")]
    limits: Option<Option<Value>>,
}

/// A `PATCH` body: name, metadata, policy fields, budget and limits, each
/// optional; `null` removes a budget or limits.
fn patch_body(names: &KnownNames, bytes: &[u8]) -> Result<Patch, ApiError> {
    let (own, policy): (PatchFields, PolicyPatch) = body_with_policy(bytes)?;
    // Only the names being set need to exist.
    names.check(&policy.apply(Policy::default()))?;
    let budget: Option<Option<Budget>> = match own.budget {
        Some(v) => Some(typed("budget", v)?),
        None => None,
    };
    let limits: Option<Option<Limits>> = match own.limits {
        Some(v) => Some(typed("limits", v)?),
        None => None,
    };
    check_quota(
        names,
        budget.as_ref().and_then(Option::as_ref),
        limits.as_ref().and_then(Option::as_ref),
    )?;
    Ok(Patch {
        name: own.name,
        metadata: own.metadata,
        policy,
        budget,
        limits,
    })
}

/// `PATCH /admin/orgs/{id}`. Every replica applies a policy change within
/// one key-watch interval.
pub async fn update_org(
    State(admin): State<AdminState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let patch = patch_body(&admin.names, &bytes)?;
    let org = admin.tenancy.update_org(&id, patch).await?;
    tracing::info!(org_id = %org.id, "organization updated");
    Ok(Json(json!(org)))
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
    budget: Option<Value>,
    limits: Option<Value>,
}

/// A `POST /admin/teams` body, checked.
fn new_team(names: &KnownNames, bytes: &[u8]) -> Result<(NewTeam, Controls), ApiError> {
    let (mut req, policy): (NewTeam, Policy) = body_with_policy(bytes)?;
    let c = controls(names, policy, req.budget.take(), req.limits.take())?;
    Ok((req, c))
}

pub async fn create_team(
    State(admin): State<AdminState>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let (req, c) = new_team(&admin.names, &bytes)?;
    Ok(created(
        admin
            .tenancy
            .create_team(&req.org_id, &req.name, req.metadata, &c)
            .await?,
    ))
}

pub async fn get_team(
    State(admin): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(admin.tenancy.team(&id).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamFilter {
    org_id: Option<String>,
}

/// A query string, with a 400 in OpenAI's shape when it does not parse.
pub(super) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
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

/// `PATCH /admin/teams/{id}`.
pub async fn update_team(
    State(admin): State<AdminState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let patch = patch_body(&admin.names, &bytes)?;
    let team = admin.tenancy.update_team(&id, patch).await?;
    tracing::info!(team_id = %team.id, "team updated");
    Ok(Json(json!(team)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    team_id: String,
    name: Option<String>,
    /// RFC 3339.
    expires_at: Option<String>,
    metadata: Option<Value>,
    budget: Option<Value>,
    limits: Option<Value>,
}

/// A `POST /admin/keys` body, checked, as what the new key is made of.
fn new_key(names: &KnownNames, bytes: &[u8]) -> Result<KeySpec, ApiError> {
    let (req, policy): (NewKey, Policy) = body_with_policy(bytes)?;
    let controls = controls(names, policy, req.budget, req.limits)?;
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
    Ok(KeySpec {
        team_id: req.team_id,
        name: req.name,
        expires_at_ms,
        controls,
        metadata: req.metadata,
    })
}

pub async fn create_key(
    State(admin): State<AdminState>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let spec = new_key(&admin.names, &bytes)?;
    let key = admin.tenancy.create_key(spec).await?;
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

pub async fn get_key(
    State(admin): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(admin.tenancy.key(&id).await?)))
}

/// `PATCH /admin/keys/{id}`: this replica reloads the key at once, the
/// others within one key-watch interval.
pub async fn update_key(
    State(admin): State<AdminState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let patch = patch_body(&admin.names, &bytes)?;
    let (key, hash) = admin.tenancy.update_key(&id, patch).await?;
    admin.keys.invalidate(&hash).await;
    tracing::info!(key_id = %key.id, "key updated");
    Ok(Json(json!(key)))
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

/// `GET /admin/spend`: the spend report over every organization (see
/// [`super::spend`]).
pub async fn spend(
    State(admin): State<AdminState>,
    q: Result<Query<SpendQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    super::spend::report(&admin, query(q)?).await
}

/// The admin API's body checks, without a database: what the fuzz targets
/// (`fuzz/` at the repository root) drive. Each runs the checks its handler
/// runs before it calls the tenancy store.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use billing::tenancy::{Controls, KeySpec, Patch};

    use crate::error::ApiError;
    use crate::policy::KnownNames;

    /// A `POST /admin/orgs` body: name, metadata and controls.
    pub fn new_org(
        names: &KnownNames,
        bytes: &[u8],
    ) -> Result<(String, Option<serde_json::Value>, Controls), ApiError> {
        super::new_org(names, bytes).map(|(req, c)| (req.name, req.metadata, c))
    }

    /// A `POST /admin/teams` body: organization, name, metadata and controls.
    pub fn new_team(
        names: &KnownNames,
        bytes: &[u8],
    ) -> Result<(String, String, Option<serde_json::Value>, Controls), ApiError> {
        super::new_team(names, bytes).map(|(req, c)| (req.org_id, req.name, req.metadata, c))
    }

    /// A `POST /admin/keys` body.
    pub fn new_key(names: &KnownNames, bytes: &[u8]) -> Result<KeySpec, ApiError> {
        super::new_key(names, bytes)
    }

    /// A `PATCH` body of an organization, a team or a key.
    pub fn patch(names: &KnownNames, bytes: &[u8]) -> Result<Patch, ApiError> {
        super::patch_body(names, bytes)
    }
}
