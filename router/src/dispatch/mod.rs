//! Dispatch: from a validated client request and the route it asked for, to
//! the answer the client gets. The router owns the candidate loop (plan,
//! translate, attempt, fall back); the gateway supplies admission and
//! metering as [`Hooks`].
//!
//! # Stages, by file
//! - `request.rs`: the [`ClientRequest`] and what each upstream is sent for
//!   it ([`ClientRequest::upstream_for`]: the same bytes, or a translation).
//! - [`Route::plan`](crate::route::Route::plan): which candidates, in which order.
//! - this file, [`dispatch`]: the loop over the plan: skip open breakers,
//!   admit ([`Hooks::admit`]), attempt, and fall back on failures another
//!   candidate may not have, within the route's attempt and time limits.
//! - `attempt.rs`: one attempt: send, then relay the answer or the error.
//! - `failure.rs`: which failures are worth another candidate, and the
//!   errors Tollgate answers on an upstream's behalf.
//! - `upstream_error.rs`: an upstream's error body in the client's format.
//! - `outcome.rs`: how an attempt ended, settled exactly once and handed to
//!   the gateway's [`Meter`].

#[cfg(test)]
mod agents;
mod attempt;
mod failure;
mod outcome;
mod request;
mod upstream_error;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use failure::{is_context_length, retry_after, Failure, Retry};
pub use outcome::{Meter, Outcome};
pub use request::{ClientRequest, UpstreamRequest};

use crate::catalog::ModelEntry;
use crate::price::Price;
use crate::route::{Affinity, Needs, NoCandidate, Route, Sticky};
use crate::wire::openai::RequestError;

/// Response header naming the provider that served the request.
pub const PROVIDER_HEADER: &str = "x-tollgate-provider";
/// Response header naming the upstream model that served the request.
pub const MODEL_HEADER: &str = "x-tollgate-model";
/// Response header with the cost of a whole (non-streamed) answer, exact USD.
pub const COST_HEADER: &str = "x-tollgate-cost-usd";
/// Response header with how many upstream attempts the answer took.
pub const ATTEMPTS_HEADER: &str = "x-tollgate-attempts";
/// Response header saying, for a request of a session the route
/// remembered, whether its previous candidate answered (`kept`) or another
/// did (`moved`).
pub const AFFINITY_HEADER: &str = "x-tollgate-affinity";

/// A streamed answer body.
pub type AnswerStream = Pin<Box<dyn Stream<Item = Result<Bytes, Infallible>> + Send>>;

/// The body of an answer.
pub enum AnswerBody {
    /// A whole body.
    Full(Bytes),
    /// An SSE stream, relayed event by event.
    Stream(AnswerStream),
}

impl std::fmt::Debug for AnswerBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full(b) => write!(f, "Full({} bytes)", b.len()),
            Self::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// What the client gets: an upstream's answer or error, relayed in the
/// client's format, or an error Tollgate answered on the upstream's behalf.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// Headers (content type, provider, model, cost, attempts, ...).
    pub headers: HeaderMap,
    /// The body.
    pub body: AnswerBody,
    /// The error label when the answer is an error, for the access log.
    pub error: Option<&'static str>,
    /// How many upstream attempts it took.
    pub attempts: u32,
    /// For a request of a session the route remembered, whether the
    /// session's candidate answered.
    pub affinity: Option<Affinity>,
}

impl Answer {
    fn full(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        error: Option<&'static str>,
    ) -> Self {
        Self {
            status,
            headers,
            body: AnswerBody::Full(body),
            error,
            attempts: 0,
            affinity: None,
        }
    }
}

/// One attempt as the hooks see it.
#[derive(Debug)]
pub struct AttemptInfo<'a> {
    /// The route being served (after policies and tiers).
    pub route: &'a Route,
    /// The candidate this attempt goes to.
    pub entry: &'a Arc<ModelEntry>,
    /// The attempt's number, from 1.
    pub number: u32,
    /// What the request needs (estimated only when asked for; see
    /// [`Dispatch::estimate`]).
    pub needs: &'a Needs,
    /// What the upstream is sent.
    pub upstream: &'a UpstreamRequest,
    /// The client's request.
    pub request: &'a ClientRequest,
}

/// What the gateway does around each attempt.
pub trait Hooks: Sync {
    /// What an admitted attempt holds (a budget reservation), handed to its meter.
    type Admitted: Send;
    /// Why an attempt was not admitted; ends the request as it is.
    type Refusal: Send;

    /// Admits the attempt before it is sent (budgets, rate limits), or
    /// refuses it, which ends the request.
    fn admit(
        &self,
        at: &AttemptInfo<'_>,
    ) -> impl Future<Output = Result<Self::Admitted, Self::Refusal>> + Send;

    /// Starts metering an admitted attempt.
    fn meter(&self, at: &AttemptInfo<'_>, admitted: Self::Admitted) -> Box<dyn Meter>;

    /// The route's plan for this request, first choice first.
    fn planned(&self, _route: &Route, _plan: &[Arc<ModelEntry>]) {}

    /// The attempt failed and the next candidate will be tried.
    fn falling_back(&self, _at: &AttemptInfo<'_>, _reason: Retry) {}
}

/// One request to dispatch.
#[derive(Debug)]
pub struct Dispatch<'a> {
    /// The client's request.
    pub request: &'a ClientRequest,
    /// The route it asked for, as the caller may use it.
    pub route: &'a Route,
    /// Estimate what the request needs even when the route does not filter
    /// (admission under a hard budget needs the worst case).
    pub estimate: bool,
    /// The client's headers (some are forwarded, as `anthropic-beta`).
    pub client_headers: &'a HeaderMap,
    /// The client's query string (forwarded when the formats match).
    pub client_query: Option<&'a str>,
    /// Cancelled when the gateway's shutdown grace period is over.
    pub shutdown: &'a CancellationToken,
    /// The price of models without one, for ranking by cost.
    pub default_price: &'a Price,
    /// The candidate that served the session's previous request on this
    /// route, when the request has a session and the route remembers it.
    pub sticky: Option<&'a Sticky>,
}

/// Why a request got no answer from any upstream.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError<R> {
    /// No candidate can serve the request (capabilities, context window).
    #[error(transparent)]
    NoCandidate(NoCandidate),
    /// The request cannot be translated for the only candidates left.
    #[error(transparent)]
    Translate(RequestError),
    /// Admission refused an attempt.
    #[error("the request was refused")]
    Refused(R),
    /// Every candidate failed or is unavailable.
    #[error("every model of '{route}' failed or is unavailable")]
    Unavailable {
        /// The route.
        route: String,
    },
}

/// Serves `d` with its route's candidates, in the plan's order, falling back
/// on failures another candidate may not have.
pub async fn dispatch<H: Hooks>(
    d: Dispatch<'_>,
    hooks: &H,
) -> Result<Answer, DispatchError<H::Refusal>> {
    let route = d.route;
    let needs = if route.filter || d.estimate {
        d.request.needs()
    } else {
        Needs::default()
    };
    let sticky = d.sticky.filter(|_| route.affinity);
    let plan = route
        .plan_for(&needs, d.default_price, std::time::Instant::now(), sticky)
        .map_err(DispatchError::NoCandidate)?;
    hooks.planned(route, &plan);
    let shared = attempt::Shared {
        request: d.request,
        client_headers: d.client_headers,
        client_query: d.client_query,
        shutdown: d.shutdown,
    };
    let deadline = Instant::now() + route.max_time;
    let mut refused = None;
    // The last failed attempt's answer, kept while another candidate tries.
    let mut failed = None;
    let mut number = 0u32;
    for (n, entry) in plan.iter().enumerate() {
        let last = n + 1 == plan.len();
        if number > 0 && Instant::now() >= deadline {
            break;
        }
        // Checked before the breaker is claimed: a half-open breaker's one
        // probe must go to a request the model can be sent.
        let upstream = match d.request.upstream_for(entry) {
            Ok(u) => u,
            // This candidate's format cannot carry the request; another's may.
            Err(e) => {
                refused = Some(e);
                continue;
            }
        };
        // An open breaker or a cooldown skips the model, unless nothing has
        // been tried and nothing else is left.
        let only_chance = last && number == 0;
        let now = std::time::Instant::now();
        if !(only_chance || entry.health.try_begin(now)) {
            continue;
        }
        number += 1;
        let info = AttemptInfo {
            route,
            entry,
            number,
            needs: &needs,
            upstream: &upstream,
            request: d.request,
        };
        // A refusal, or a client that leaves while admission waits (on
        // Redis, say), gives a half-open breaker's probe back.
        let probe = outcome::Probe::new(entry.clone(), now);
        let admitted = match hooks.admit(&info).await {
            Ok(admitted) => admitted,
            Err(refusal) => return Err(DispatchError::Refused(refusal)),
        };
        let started = Instant::now();
        let metered = outcome::Metered::new(
            hooks.meter(&info, admitted),
            probe,
            upstream.operation,
            upstream.body.clone(),
            started,
        );
        let tried = attempt::run(&shared, entry, upstream.clone(), metered, started).await;
        let answer = match tried {
            attempt::Tried::Answered(answer) => answer,
            attempt::Tried::Failed { answer, reason } => {
                let now = std::time::Instant::now();
                let more = plan[n + 1..].iter().any(|m| m.health.available(now));
                if !last && more {
                    hooks.falling_back(&info, reason);
                    failed = Some(answer);
                    continue;
                }
                answer
            }
        };
        let mut answer = numbered(answer, number);
        // Said of answers only: an error is no candidate keeping a session.
        if let (Some(s), true) = (sticky, answer.status.is_success()) {
            let affinity = if entry.name == s.model {
                Affinity::Kept
            } else {
                Affinity::Moved
            };
            answer.affinity = Some(affinity);
            answer
                .headers
                .insert(AFFINITY_HEADER, HeaderValue::from_static(affinity.label()));
        }
        return Ok(answer);
    }
    match (refused, failed) {
        // Attempts failed and the candidates left could not carry the
        // request: the last failure is the answer (a retry may succeed),
        // not a refusal of the request.
        (Some(_), Some(answer)) => Ok(numbered(answer, number)),
        (Some(e), None) => Err(DispatchError::Translate(e)),
        (None, _) => Err(DispatchError::Unavailable {
            route: route.name.clone(),
        }),
    }
}

/// `answer` with the number of attempts it took, in its header too.
fn numbered(mut answer: Answer, number: u32) -> Answer {
    answer.attempts = number;
    if let Ok(v) = HeaderValue::from_str(&number.to_string()) {
        answer.headers.insert(ATTEMPTS_HEADER, v);
    }
    answer
}
