//! `GET /v1/models` and `GET /v1/models/{model}`: the models and routes the
//! caller's policies let it use, in OpenAI's list shape, or
//! in Anthropic's (`type: model`, `display_name`, `created_at`, paging with
//! `limit`, `after_id` and `before_id`) when the request carries
//! `anthropic-version`, as Anthropic's SDKs and Claude Code send.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::ProxyState;

/// A listed name: a model (owned by its provider) or a route (by Tollgate).
struct Listed<'a> {
    id: &'a str,
    owner: &'a str,
}

/// What `caller` may use: models and routes its policies leave a candidate of.
fn listed<'a>(proxy: &'a ProxyState, caller: &Caller) -> Vec<Listed<'a>> {
    let policies = caller.policies();
    let mut all: Vec<Listed<'_>> = proxy
        .catalog
        .iter()
        .map(|m| Listed {
            id: &m.name,
            owner: m.provider.name(),
        })
        .chain(proxy.catalog.routes().map(|r| Listed {
            id: &r.name,
            owner: "tollgate",
        }))
        .filter(|l| {
            policies.is_none()
                || proxy
                    .catalog
                    .route(l.id)
                    .is_some_and(|r| crate::policy::may_use(policies, r))
        })
        .collect();
    all.sort_by(|a, b| a.id.cmp(b.id));
    all
}

fn openai_model(m: &Listed<'_>, created: u64) -> Value {
    json!({"id": m.id, "object": "model", "created": created, "owned_by": m.owner})
}

fn anthropic_model(m: &Listed<'_>, created: u64) -> Value {
    let created_at = billing::tenancy::rfc3339(created.saturating_mul(1000) as i64);
    json!({"type": "model", "id": m.id, "display_name": m.id, "created_at": created_at})
}

fn is_anthropic(headers: &HeaderMap) -> bool {
    headers.contains_key("anthropic-version")
}

/// Anthropic's paging parameters.
#[derive(Debug, Default, Deserialize)]
pub struct Paging {
    limit: Option<usize>,
    after_id: Option<String>,
    before_id: Option<String>,
}

pub async fn list(
    State(proxy): State<ProxyState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let created = proxy.catalog_loaded_at;
    if !is_anthropic(&headers) {
        let data: Vec<Value> = listed(&proxy, &caller)
            .iter()
            .map(|m| openai_model(m, created))
            .collect();
        return Ok(Json(json!({"object": "list", "data": data})));
    }
    let Query(paging) = paging.map_err(|e| ApiError::invalid(None, e.body_text()))?;
    let all = listed(&proxy, &caller);
    let start = paging
        .after_id
        .as_deref()
        .and_then(|id| all.iter().position(|m| m.id == id).map(|i| i + 1))
        .unwrap_or(0);
    let end = paging
        .before_id
        .as_deref()
        .and_then(|id| all.iter().position(|m| m.id == id))
        .unwrap_or(all.len())
        .max(start);
    let limit = paging.limit.unwrap_or(20).clamp(1, 1000);
    let page = &all[start..end.min(start + limit)];
    let data: Vec<Value> = page.iter().map(|m| anthropic_model(m, created)).collect();
    Ok(Json(json!({
        "data": data,
        "has_more": start + page.len() < end,
        "first_id": page.first().map(|m| m.id),
        "last_id": page.last().map(|m| m.id),
    })))
}

pub async fn retrieve(
    State(proxy): State<ProxyState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let all = listed(&proxy, &caller);
    let m = all
        .iter()
        .find(|m| m.id == model)
        .ok_or_else(|| ApiError::model_not_found(&model))?;
    Ok(Json(if is_anthropic(&headers) {
        anthropic_model(m, proxy.catalog_loaded_at)
    } else {
        openai_model(m, proxy.catalog_loaded_at)
    }))
}
