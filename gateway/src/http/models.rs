//! `GET /v1/models` and `GET /v1/models/{model}` in OpenAI's list shape.

use axum::extract::{Path, State};
use axum::Json;
use router::ModelEntry;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::ProxyState;

fn model_object(m: &ModelEntry, created: u64) -> Value {
    json!({"id": m.name, "object": "model", "created": created, "owned_by": m.provider.name()})
}

pub async fn list(State(proxy): State<ProxyState>) -> Json<Value> {
    let data: Vec<Value> = proxy
        .catalog
        .iter()
        .map(|m| model_object(m, proxy.catalog_loaded_at))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

pub async fn retrieve(
    State(proxy): State<ProxyState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let m = proxy
        .catalog
        .get(&model)
        .ok_or_else(|| ApiError::model_not_found(&model))?;
    Ok(Json(model_object(m, proxy.catalog_loaded_at)))
}
