//! Budgets and rate limits at the edge: what a request reserves, the 429s
//! in each client's format, and the `x-ratelimit-*` headers.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use billing::quota::{reset_text, Admission, Level, RateView, Reason, Rejection};
use billing::tenancy::KeyInfo;
use billing::Picodollars;
use router::price::Price;
use router::{ModelEntry, Usage};

use crate::error::ApiError;

/// The admission of a request by `key` to `model`.
pub fn admission<'a>(
    key: &'a KeyInfo,
    model: &'a str,
    (cost, tokens): (Picodollars, u64),
    new_request: bool,
    now_ms: i64,
) -> Admission<'a> {
    let q = &key.quotas;
    Admission {
        levels: [
            (Level::Org, key.org_id.as_str(), &q.org),
            (Level::Team, key.team_id.as_str(), &q.team),
            (Level::Key, key.id.as_str(), &q.key),
        ],
        model,
        cost,
        tokens,
        new_request,
        now_ms,
    }
}

/// The most a request may cost on `entry`: its estimated prompt at the
/// dearer of the input and cache-write rates, plus `max_output` (the
/// model's maximum when the request sets none) at the output rate.
pub fn worst_case(
    entry: &ModelEntry,
    default_price: &Price,
    prompt_tokens: u64,
    max_output: Option<u64>,
) -> (Picodollars, u64) {
    let price = entry.price.as_ref().unwrap_or(default_price);
    let output = max_output.unwrap_or(entry.max_output_tokens);
    let as_input = Usage {
        input: prompt_tokens,
        output,
        ..Usage::default()
    };
    let as_write = Usage {
        cache_write: prompt_tokens,
        output,
        ..Usage::default()
    };
    let cost = billing::cost(&as_input, price).max(billing::cost(&as_write, price));
    (cost, prompt_tokens.saturating_add(output))
}

/// A refusal as the client's 429: OpenAI's `insufficient_quota` or
/// `rate_limit_exceeded` (Anthropic's `rate_limit_error` on its door),
/// with `retry-after` and the rate headers.
pub fn rejection(r: &Rejection) -> Response {
    let (kind, code) = match r.reason {
        Reason::Budget => ("insufficient_quota", "insufficient_quota"),
        Reason::Tokens => ("tokens", "rate_limit_exceeded"),
        Reason::Requests | Reason::Concurrency => ("requests", "rate_limit_exceeded"),
    };
    let mut resp = ApiError::custom(StatusCode::TOO_MANY_REQUESTS, kind, code, r.message.clone())
        .into_response();
    if let Some(s) = r.retry_after_s {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            resp.headers_mut().insert("retry-after", v);
        }
    }
    set_rate_headers(resp.headers_mut(), &r.rate);
    resp
}

/// OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers
/// for the tightest limits that applied.
pub fn set_rate_headers(headers: &mut HeaderMap, view: &RateView) {
    for (unit, window) in [("requests", view.requests), ("tokens", view.tokens)] {
        let Some(w) = window else { continue };
        for (what, value) in [
            ("limit", w.limit.to_string()),
            ("remaining", w.remaining.to_string()),
            ("reset", reset_text(w.reset_ms)),
        ] {
            if let (Ok(name), Ok(v)) = (
                HeaderName::from_bytes(format!("x-ratelimit-{what}-{unit}").as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.insert(name, v);
            }
        }
    }
}
