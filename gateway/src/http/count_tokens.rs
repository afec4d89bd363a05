//! `POST /v1/messages/count_tokens`: how many input tokens a Messages request
//! would use. For a model served by an `anthropic` provider the upstream
//! counts (Anthropic's count is exact and free); when it cannot (some
//! compatible endpoints lack the route) or the model is served in OpenAI's
//! format, Tollgate's tokenizer estimates. A route counts with its first
//! Anthropic-format candidate the caller may use. Counting is free, so nothing is
//! written to the ledger.

use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::Extension;
use axum::Json;
use bytes::Bytes;
use router::provider::{Passthrough, ReplyBody};
use router::wire::anthropic;
use router::wire::Wire;
use router::{estimate, Operation};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::ProxyState;

pub async fn count_tokens(
    State(proxy): State<ProxyState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|r| ApiError::from_body_rejection(r, proxy.max_body_bytes))?;
    let request = anthropic::parse_count_tokens(&body)?;
    let route = proxy
        .catalog
        .route(&request.model)
        .ok_or_else(|| ApiError::model_not_found(&request.model))?;
    let route = crate::policy::permitted(&caller, route)?;
    let local = estimate::messages_prompt_of(request.body());
    // A route counts with its first Anthropic-format candidate, if any.
    let Some(entry) = route
        .candidates
        .iter()
        .find(|m| m.provider.wire() == Wire::Anthropic)
    else {
        return Ok(Json(json!({"input_tokens": local})));
    };
    let upstream_body = request.upstream_body(&entry.upstream_model);
    let sent = entry
        .provider
        .send(
            Operation::CountTokens,
            upstream_body,
            false,
            Instant::now(),
            Passthrough {
                headers: &headers,
                query: query.as_deref(),
                same_format: true,
            },
        )
        .await;
    let counted = match sent {
        Ok(reply) if reply.status.is_success() => match reply.body {
            ReplyBody::Full(b) => serde_json::from_slice::<Value>(&b)
                .ok()
                .and_then(|v| v.get("input_tokens").and_then(Value::as_u64)),
            ReplyBody::Stream(_) => None,
        },
        Ok(reply) => {
            tracing::debug!(
                provider = entry.provider.name(),
                status = reply.status.as_u16(),
                "upstream token count failed; estimating"
            );
            None
        }
        Err(e) => {
            tracing::debug!(provider = entry.provider.name(), error = %e, "upstream token count failed; estimating");
            None
        }
    };
    Ok(Json(json!({"input_tokens": counted.unwrap_or(local)})))
}
