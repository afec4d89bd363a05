//! Responding: the dispatched answer as the client's HTTP response, with
//! Tollgate's headers (tier, rate limits), or the reason there is none as an
//! error in the client's format.

use axum::body::Body;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use billing::quota::RateView;
use router::dispatch::{Answer, AnswerBody, DispatchError};

use crate::error::{ApiError, ErrorLabel};

/// Response header saying a route's low-budget tier served the request.
const TIER_HEADER: &str = "x-tollgate-tier";

/// The client's response for a dispatch's result.
pub(super) fn respond(
    result: Result<Answer, DispatchError<Response>>,
    rate: Option<RateView>,
    low_tier: bool,
) -> Result<Response, ApiError> {
    let answer = match result {
        Ok(answer) => answer,
        // A quota refusal is already the client's answer, rate headers and all.
        Err(DispatchError::Refused(resp)) => return Ok(resp),
        Err(DispatchError::NoCandidate(e)) => {
            return Err(ApiError::invalid(Some("model"), e.to_string()))
        }
        Err(DispatchError::Translate(e)) => return Err(e.into()),
        Err(DispatchError::Unavailable { route }) => {
            return Err(ApiError::unavailable(
                "no_model_available",
                format!("Every model of '{route}' failed or is unavailable; retry shortly."),
            ))
        }
    };
    let body = match answer.body {
        AnswerBody::Full(bytes) => Body::from(bytes),
        AnswerBody::Stream(stream) => Body::from_stream(stream),
    };
    let mut resp = (answer.status, body).into_response();
    resp.headers_mut().extend(answer.headers);
    if low_tier {
        resp.headers_mut()
            .insert(TIER_HEADER, HeaderValue::from_static("low_budget"));
    }
    if let Some(rate) = &rate {
        crate::quota::set_rate_headers(resp.headers_mut(), rate);
    }
    if let Some(code) = answer.error {
        resp.extensions_mut().insert(ErrorLabel(code));
    }
    Ok(resp)
}
