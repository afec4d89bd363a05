//! The proxied endpoints: validate, resolve the model, call the provider,
//! relay the answer, and record every request exactly once.

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use billing::quota::Ticket;
use billing::Picodollars;
use bytes::Bytes;
use router::provider::{ReplyBody, UpstreamReply};
use router::relay::{self, End, MalformedBody, StreamOptions, Summary};
use router::route::{Needs, Route};
use router::translate;
use router::wire::anthropic::{self, ParsedMessages};
use router::wire::openai::{self, error_body, ParsedRequest};
use router::wire::Wire;
use router::ModelEntry;
use router::{estimate, Operation, Timeouts, Usage, UsageSource};
use std::sync::Arc;
use tokio::time::Instant;

use super::middleware::RequestId;
use crate::auth::Caller;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::record::RequestRecord;
use crate::state::ProxyState;

/// Response header naming the provider that served the request.
pub const PROVIDER_HEADER: &str = "x-tollgate-provider";
/// Response header naming the upstream model that served the request.
pub const MODEL_HEADER: &str = "x-tollgate-model";
/// Response header with the cost of a non-streaming request, exact USD.
pub const COST_HEADER: &str = "x-tollgate-cost-usd";

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(proxy): State<ProxyState>,
    Extension(RequestId(id)): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| ApiError::from_body_rejection(r, proxy.max_body_bytes))?;
    let request = openai::parse_chat(&body)?;
    forward(
        &proxy,
        Incoming::Chat(request),
        id,
        caller,
        &HeaderMap::new(),
    )
    .await
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    State(proxy): State<ProxyState>,
    Extension(RequestId(id)): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| ApiError::from_body_rejection(r, proxy.max_body_bytes))?;
    let request = openai::parse_embeddings(&body)?;
    forward(
        &proxy,
        Incoming::Embeddings(request),
        id,
        caller,
        &HeaderMap::new(),
    )
    .await
}

/// `POST /v1/messages`: Anthropic's Messages API, served by any model.
pub async fn messages(
    State(proxy): State<ProxyState>,
    Extension(RequestId(id)): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| ApiError::from_body_rejection(r, proxy.max_body_bytes))?;
    let request = anthropic::parse_messages(&body)?;
    forward(&proxy, Incoming::Messages(request), id, caller, &headers).await
}

/// A validated client request, in the client's format.
pub(super) enum Incoming {
    Chat(ParsedRequest),
    Embeddings(ParsedRequest),
    Messages(ParsedMessages),
}

impl Incoming {
    fn model(&self) -> &str {
        match self {
            Self::Chat(r) | Self::Embeddings(r) => &r.model,
            Self::Messages(r) => &r.model,
        }
    }

    fn stream(&self) -> bool {
        match self {
            Self::Chat(r) | Self::Embeddings(r) => r.stream,
            Self::Messages(r) => r.stream,
        }
    }

    fn include_usage(&self) -> bool {
        match self {
            Self::Chat(r) | Self::Embeddings(r) => r.include_usage,
            Self::Messages(_) => true,
        }
    }

    fn client(&self) -> Wire {
        match self {
            Self::Chat(_) | Self::Embeddings(_) => Wire::OpenAi,
            Self::Messages(_) => Wire::Anthropic,
        }
    }

    /// What the request needs from a model (for routes' capability filter).
    fn needs(&self) -> Needs {
        match self {
            Self::Chat(r) => Needs::of_chat(r.body()),
            Self::Embeddings(r) => {
                let input = serde_json::json!({"input": r.body().get("input")});
                Needs {
                    prompt_tokens: estimate::embeddings_input(&input),
                    max_output: Some(0),
                    ..Needs::default()
                }
            }
            Self::Messages(r) => Needs::of_messages(r.body()),
        }
    }

    /// The upstream operation and body for `entry`'s provider, translated
    /// when the formats differ. The request stays whole for later attempts.
    fn upstream(&self, entry: &ModelEntry) -> Result<(Operation, Bytes), ApiError> {
        let up = entry.upstream_model.as_str();
        let json = |map: serde_json::Map<String, serde_json::Value>| {
            Bytes::from(serde_json::to_vec(&map).unwrap_or_default())
        };
        Ok(match (self, entry.provider.wire()) {
            (Self::Chat(r), Wire::OpenAi) => (Operation::ChatCompletions, r.upstream_body(up)),
            (Self::Chat(r), Wire::Anthropic) => (
                Operation::Messages,
                json(translate::chat_to_messages(
                    r.body(),
                    up,
                    entry.max_output_tokens,
                )?),
            ),
            (Self::Embeddings(r), Wire::OpenAi) => (Operation::Embeddings, r.upstream_body(up)),
            (Self::Embeddings(_), Wire::Anthropic) => {
                return Err(ApiError::invalid(
                    Some("model"),
                    format!(
                    "The model '{}' is served by an Anthropic provider, which has no embeddings.",
                    entry.name
                ),
                ))
            }
            (Self::Messages(r), Wire::Anthropic) => (Operation::Messages, r.upstream_body(up)),
            (Self::Messages(r), Wire::OpenAi) => (
                Operation::ChatCompletions,
                json(translate::messages_to_chat(r.body(), up)?),
            ),
        })
    }
}

/// How an exchange ended, for its record.
struct Outcome {
    status: StatusCode,
    end: End,
    error: Option<&'static str>,
    /// Usage the provider reported.
    usage: Option<Usage>,
    /// Whether the upstream did work worth estimating when it reported no
    /// usage. A refused connection or an upstream error status cost nothing.
    charged: bool,
    output_text: String,
    ttft: Option<Duration>,
}

/// A request on its way: records itself exactly once, when finished, or when
/// dropped unfinished (the client went away while Tollgate waited).
struct Pending {
    proxy: ProxyState,
    ctx: Option<RequestContext>,
    model: Arc<ModelEntry>,
    upstream_body: Bytes,
    /// What the request holds of its budgets and limits, settled with its cost.
    ticket: Option<Ticket>,
}

impl Pending {
    fn new(
        proxy: &ProxyState,
        ctx: RequestContext,
        model: Arc<ModelEntry>,
        upstream_body: Bytes,
        ticket: Option<Ticket>,
    ) -> Self {
        proxy.metrics.in_flight.inc();
        Self {
            proxy: proxy.clone(),
            ctx: Some(ctx),
            model,
            upstream_body,
            ticket,
        }
    }

    fn ctx(&self) -> Option<&RequestContext> {
        self.ctx.as_ref()
    }

    /// Records the outcome; returns what the request cost.
    fn finish(mut self, outcome: Outcome) -> Picodollars {
        self.record(outcome)
    }

    fn record(&mut self, o: Outcome) -> Picodollars {
        let Some(ctx) = self.ctx.take() else {
            return Picodollars::ZERO;
        };
        self.proxy.metrics.in_flight.dec();
        let (usage, usage_source) = match o.usage {
            // Cut short after the provider reported part of the usage (an
            // Anthropic stream reports input up front, output at the end):
            // the output produced so far is counted, if that is more.
            Some(mut u) if !o.end.is_complete() => {
                let counted = estimate::count_text(&o.output_text);
                if counted > u.output {
                    u.output = counted;
                    (u, UsageSource::Estimated)
                } else {
                    (u, UsageSource::Provider)
                }
            }
            Some(u) => (u, UsageSource::Provider),
            None if o.charged => (
                estimate::exchange(ctx.operation, &self.upstream_body, &o.output_text),
                UsageSource::Estimated,
            ),
            None => (Usage::default(), UsageSource::Provider),
        };
        let latency = ctx.started.elapsed();
        let (price, priced) = match &self.model.price {
            Some(p) => (p, true),
            None => (self.proxy.default_price.as_ref(), false),
        };
        let cost = billing::cost(&usage, price);
        if let Some(ticket) = self.ticket.take() {
            ticket.settle(cost, usage.total(), billing::db::now_ms());
        }
        let reference_cost = ctx.reference.as_ref().map(|r| {
            billing::cost(
                &usage,
                r.price
                    .as_ref()
                    .unwrap_or(self.proxy.default_price.as_ref()),
            )
        });
        // What the exchange says about the model's health. Failures before
        // an answer started are counted where they happen.
        if o.status.is_success() {
            let now = std::time::Instant::now();
            match &o.end {
                End::Complete => {
                    let prompt = usage.prompt_total();
                    let ratio = (prompt > 0).then(|| usage.cached_input as f64 / prompt as f64);
                    self.model.health.success(o.ttft.unwrap_or(latency), ratio);
                }
                End::UpstreamDisconnected(_)
                | End::UpstreamError
                | End::Malformed(_)
                | End::Timeout(_) => self.model.health.failure(now),
                End::ClientDisconnected | End::Shutdown => {}
            }
            self.proxy
                .metrics
                .breaker_state
                .with_label_values(&[&self.model.name])
                .set(self.model.health.breaker(now).gauge());
        }
        self.proxy.recorder.record(RequestRecord {
            ctx,
            status: o.status.as_u16(),
            end: o.end,
            error: o.error,
            usage,
            usage_source,
            cost,
            reference_cost,
            priced,
            ttft: o.ttft,
            latency,
        });
        cost
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Dropped unfinished: the client disconnected while the upstream was
        // still working. The prompt was sent, so it is estimated.
        self.record(Outcome {
            status: StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            end: End::ClientDisconnected,
            error: Some("client_disconnected"),
            usage: None,
            charged: true,
            output_text: String::new(),
            ttft: None,
        });
    }
}

/// Response header with how many upstream attempts the answer took.
pub const ATTEMPTS_HEADER: &str = "x-tollgate-attempts";
/// Response header saying a route's low-budget tier served the request.
pub const TIER_HEADER: &str = "x-tollgate-tier";

async fn forward(
    proxy: &ProxyState,
    request: Incoming,
    id: uuid::Uuid,
    caller: Caller,
    client_headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let client_model = request.model().to_owned();
    let route = proxy
        .catalog
        .route(&client_model)
        .ok_or_else(|| ApiError::model_not_found(&client_model))?;
    // A caller low on budget gets the route's cheaper tier, if it has one.
    let mut low_tier = false;
    let route = match (&route.low_budget, caller.key()) {
        (Some(low), Some(key))
            if crate::quota::budget_left(&proxy.quotas, key, billing::db::now_ms())
                .is_some_and(|left| left < low.below) =>
        {
            low_tier = true;
            &low.route
        }
        _ => route,
    };
    // The caller's policies may leave out some candidates, or all.
    let route = crate::policy::permitted(&caller, route)?;
    if !proxy.spool.healthy() || proxy.spool.stats().backlog_bytes() > proxy.max_ledger_backlog {
        // Serving now would mean serving unbilled: refuse until the ledger catches up.
        return Err(ApiError::unavailable(
            "ledger_backlog",
            "The gateway cannot record usage right now; retry shortly.",
        ));
    }
    // Budgets and limits over the caller, if any; a hard budget needs the
    // request's worst case, and so its estimated prompt.
    let limited = caller.key().filter(|k| !k.quotas.is_empty());
    let hard = limited.is_some_and(|k| k.quotas.has_hard_budget());
    let needs = if route.filter || hard {
        request.needs()
    } else {
        Needs::default()
    };
    let plan = route
        .plan(&needs, &proxy.default_price, std::time::Instant::now())
        .map_err(|e| ApiError::invalid(Some("model"), e.to_string()))?;
    if route.filter {
        if let Some(first) = plan.first() {
            proxy
                .metrics
                .route_choices
                .with_label_values(&[&route.name, &first.name])
                .inc();
        }
    }
    let deadline = Instant::now() + route.max_time;
    let mut refused = None;
    let mut attempt = 0u32;
    for (n, entry) in plan.iter().enumerate() {
        let last = n + 1 == plan.len();
        if attempt > 0 && Instant::now() >= deadline {
            break;
        }
        // An open breaker or a cooldown skips the model, unless nothing has
        // been tried and nothing else is left.
        let only_chance = last && attempt == 0;
        if !(only_chance || entry.health.try_begin(std::time::Instant::now())) {
            continue;
        }
        let (op, body) = match request.upstream(entry) {
            Ok(x) => x,
            // This candidate's format cannot carry the request; another's may.
            Err(e) if !last => {
                refused = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        attempt += 1;
        let ticket = match limited {
            None => None,
            Some(key) => {
                let worst = if hard {
                    crate::quota::worst_case(
                        entry,
                        &proxy.default_price,
                        needs.prompt_tokens,
                        needs.max_output,
                    )
                } else {
                    (Picodollars::ZERO, 0)
                };
                let admission = crate::quota::admission(
                    key,
                    &entry.name,
                    worst,
                    attempt == 1,
                    billing::db::now_ms(),
                );
                match proxy.quotas.admit(&admission).await {
                    Ok(t) => Some(t),
                    Err(r) => {
                        proxy
                            .metrics
                            .quota_rejections
                            .with_label_values(&[r.reason.label(), r.level.name()])
                            .inc();
                        tracing::info!(request_id = %id, reason = r.reason.label(), level = r.level.name(), "request refused by a quota");
                        return Ok(crate::quota::rejection(&r));
                    }
                }
            }
        };
        let rate = ticket.as_ref().map(Ticket::rate);
        let attempt_id = if attempt == 1 {
            id
        } else {
            uuid::Uuid::now_v7()
        };
        let outcome = try_once(
            proxy,
            Try {
                route: &route,
                attempt,
                id: attempt_id,
                client_id: id,
                caller: caller.clone(),
                ticket,
            },
            entry,
            &client_model,
            &request,
            (op, body),
            client_headers,
        )
        .await;
        let (mut resp, failed) = match outcome {
            Attempt::Answered(resp) => (resp, None),
            Attempt::Failed { resp, reason } => (resp, Some(reason)),
        };
        if let Some(reason) = failed {
            let more = plan[n + 1..]
                .iter()
                .any(|m| m.health.available(std::time::Instant::now()));
            if !last && more {
                proxy
                    .metrics
                    .fallbacks
                    .with_label_values(&[&route.name, &entry.name, reason.label()])
                    .inc();
                tracing::info!(request_id = %id, route = %route.name, model = %entry.name, reason = reason.label(), attempt, "falling back to the next candidate");
                continue;
            }
        }
        set_header(&mut resp, ATTEMPTS_HEADER, &attempt.to_string());
        if low_tier {
            set_header(&mut resp, TIER_HEADER, "low_budget");
        }
        if let Some(rate) = &rate {
            crate::quota::set_rate_headers(resp.headers_mut(), rate);
        }
        return Ok(resp);
    }
    Err(refused.unwrap_or_else(|| {
        ApiError::unavailable(
            "no_model_available",
            format!(
                "Every model of '{}' failed or is unavailable; retry shortly.",
                route.name
            ),
        )
    }))
}

fn set_header(resp: &mut Response, name: &'static str, value: &str) {
    if let Some(v) = header_value(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// How one attempt went.
enum Attempt {
    /// The answer, or an error the next candidate would not fix.
    Answered(Response),
    /// A failure another candidate may not have: the response is the
    /// client's if no attempt is left. The attempt is already recorded.
    Failed { resp: Response, reason: Retry },
}

/// Why an attempt failed in a way another candidate may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    RateLimited,
    Overloaded,
    UpstreamAuth,
    ServerError,
    ContextLength,
    Timeout,
    Connect,
}

impl Retry {
    /// The metric label.
    fn label(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::UpstreamAuth => "upstream_auth",
            Self::ServerError => "server_error",
            Self::ContextLength => "context_length",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
        }
    }

    /// Whether an upstream error status is worth another candidate, and why.
    fn from_status(status: StatusCode, body: &[u8]) -> Option<Self> {
        match status.as_u16() {
            429 => Some(Self::RateLimited),
            529 | 503 => Some(Self::Overloaded),
            401 | 403 => Some(Self::UpstreamAuth),
            s if s >= 500 => Some(Self::ServerError),
            400 | 413 => {
                let text =
                    String::from_utf8_lossy(&body[..body.len().min(4096)]).to_ascii_lowercase();
                [
                    "context_length",
                    "context length",
                    "context window",
                    "prompt is too long",
                    "too many tokens",
                    "maximum context",
                ]
                .iter()
                .any(|p| text.contains(p))
                .then_some(Self::ContextLength)
            }
            _ => None,
        }
    }
}

/// Seconds in a `retry-after` header (delta-seconds form), capped at 5 minutes.
fn retry_after(value: Option<&str>) -> Option<Duration> {
    let secs: f64 = value?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(300.0)))
}

#[allow(clippy::too_many_arguments)]
/// Which attempt at which request.
struct Try<'a> {
    route: &'a Route,
    /// From 1.
    attempt: u32,
    /// This attempt's id (the ledger row's).
    id: uuid::Uuid,
    /// The id the client was given.
    client_id: uuid::Uuid,
    caller: Caller,
    /// What admission reserved for this attempt.
    ticket: Option<Ticket>,
}

async fn try_once(
    proxy: &ProxyState,
    at: Try<'_>,
    entry: &Arc<ModelEntry>,
    client_model: &str,
    request: &Incoming,
    (op, upstream_body): (Operation, Bytes),
    client_headers: &HeaderMap,
) -> Attempt {
    let id = at.id;
    let formats = Formats {
        client: request.client(),
        upstream: entry.provider.wire(),
        stream: request.stream(),
        include_usage: request.include_usage(),
    };
    let ctx = RequestContext {
        id,
        caller: at.caller,
        format: formats.client,
        operation: op,
        // The configured model that served (the route is in `route`), so
        // per-model metrics and reports show real models.
        requested_model: entry.name.clone(),
        provider: entry.provider.name().to_owned(),
        upstream_model: entry.upstream_model.clone(),
        stream: formats.stream,
        route: at.route.name.clone(),
        attempt: at.attempt,
        client_request_id: at.client_id,
        reference: at.route.reference.clone(),
        started: Instant::now(),
        started_at: SystemTime::now(),
    };
    let started = ctx.started;
    let pending = Pending::new(proxy, ctx, entry.clone(), upstream_body.clone(), at.ticket);
    let sent = entry
        .provider
        .send(op, upstream_body, formats.stream, started, client_headers)
        .await;
    let reply = match sent {
        Ok(reply) => reply,
        Err(e) => {
            proxy
                .metrics
                .upstream_errors
                .with_label_values(&[entry.provider.name(), e.metric_label()])
                .inc();
            tracing::warn!(request_id = %id, provider = entry.provider.name(), error = %e, "upstream request failed");
            let err = ApiError::upstream(&e);
            let reason = match &e {
                router::ProviderError::Timeout(_) => Some(Retry::Timeout),
                router::ProviderError::Connect(_) | router::ProviderError::Transport(_) => {
                    Some(Retry::Connect)
                }
                _ => None,
            };
            let end = match e {
                router::ProviderError::Timeout(phase) => End::Timeout(phase),
                other => End::UpstreamDisconnected(other.to_string()),
            };
            pending.finish(Outcome {
                status: err.status(),
                end,
                error: Some(err.label()),
                usage: None,
                charged: false,
                output_text: String::new(),
                ttft: None,
            });
            if reason.is_some() {
                note_failure(proxy, entry);
            }
            let resp = err.into_response();
            return match reason {
                Some(reason) => Attempt::Failed { resp, reason },
                None => Attempt::Answered(resp),
            };
        }
    };
    let headers = [
        (PROVIDER_HEADER, header_value(entry.provider.name())),
        (MODEL_HEADER, header_value(&entry.upstream_model)),
    ];
    let mut failed = None;
    let mut resp = if reply.status.is_success() {
        relay_success(
            proxy,
            client_model,
            formats,
            reply,
            pending,
            started,
            *entry.provider.timeouts(),
        )
    } else {
        let body = match reply.body {
            ReplyBody::Full(b) => b,
            ReplyBody::Stream(_) => Bytes::new(),
        };
        failed = Retry::from_status(reply.status, &body);
        match failed {
            Some(Retry::RateLimited) => {
                let wait =
                    retry_after(reply.retry_after.as_deref()).unwrap_or(Duration::from_secs(1));
                entry.health.cool_down(std::time::Instant::now() + wait);
            }
            // The model is fine; this prompt is too long for it.
            Some(Retry::ContextLength) | None => {}
            Some(_) => note_failure(proxy, entry),
        }
        relay_upstream_error(
            proxy,
            entry.provider.name(),
            formats,
            reply.status,
            reply.retry_after,
            body,
            pending,
        )
    };
    for (name, value) in headers {
        if let Some(v) = value {
            resp.headers_mut().insert(name, v);
        }
    }
    match failed {
        Some(reason) => Attempt::Failed { resp, reason },
        None => Attempt::Answered(resp),
    }
}

/// Counts a failure against the model's breaker and updates its gauge.
fn note_failure(proxy: &ProxyState, entry: &ModelEntry) {
    let now = std::time::Instant::now();
    entry.health.failure(now);
    proxy
        .metrics
        .breaker_state
        .with_label_values(&[&entry.name])
        .set(entry.health.breaker(now).gauge());
}

/// The formats on either side of one exchange.
#[derive(Debug, Clone, Copy)]
struct Formats {
    client: Wire,
    upstream: Wire,
    stream: bool,
    include_usage: bool,
}

fn header_value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

fn relay_success(
    proxy: &ProxyState,
    client_model: &str,
    formats: Formats,
    reply: UpstreamReply,
    pending: Pending,
    started: Instant,
    timeouts: Timeouts,
) -> Response {
    match reply.body {
        ReplyBody::Full(bytes) => {
            match relay::relay_json(&bytes, client_model, formats.client, formats.upstream) {
                Ok(relayed) => {
                    let cost = pending.finish(Outcome {
                        status: StatusCode::OK,
                        end: End::Complete,
                        error: None,
                        usage: relayed.usage,
                        charged: true,
                        output_text: relayed.output_text,
                        ttft: None,
                    });
                    let mut resp = ([(header::CONTENT_TYPE, "application/json")], relayed.body)
                        .into_response();
                    if let Some(v) = header_value(&cost.usd()) {
                        resp.headers_mut().insert(COST_HEADER, v);
                    }
                    resp
                }
                Err(MalformedBody::ErrorObject) => {
                    let provider = pending
                        .ctx()
                        .map(|c| c.provider.clone())
                        .unwrap_or_default();
                    relay_upstream_error(
                        proxy,
                        &provider,
                        formats,
                        StatusCode::BAD_GATEWAY,
                        reply.retry_after,
                        bytes,
                        pending,
                    )
                }
                Err(MalformedBody::NotJson) => {
                    if let Some(ctx) = pending.ctx() {
                        proxy
                            .metrics
                            .upstream_errors
                            .with_label_values(&[&ctx.provider, "malformed"])
                            .inc();
                    }
                    let err = ApiError::upstream_malformed();
                    pending.finish(Outcome {
                        status: err.status(),
                        end: End::Malformed("the body is not a JSON object".into()),
                        error: Some(err.label()),
                        usage: None,
                        charged: true,
                        output_text: String::new(),
                        ttft: None,
                    });
                    err.into_response()
                }
            }
        }
        ReplyBody::Stream(upstream) => {
            let opts = StreamOptions {
                client_model: client_model.to_owned(),
                client: formats.client,
                upstream: formats.upstream,
                include_usage: formats.include_usage,
                idle: timeouts.idle,
                deadline: started + timeouts.total,
                started,
                shutdown: proxy.shutdown.clone(),
            };
            let metrics = proxy.metrics.clone();
            let stream = relay::relay_stream(upstream, opts, move |summary: Summary| {
                if let (Some(ctx), Some(kind)) =
                    (pending.ctx(), upstream_failure_label(&summary.end))
                {
                    metrics
                        .upstream_errors
                        .with_label_values(&[&ctx.provider, kind])
                        .inc();
                }
                pending.finish(Outcome {
                    status: StatusCode::OK,
                    error: (!summary.end.is_complete()).then(|| summary.end.label()),
                    end: summary.end,
                    usage: summary.usage,
                    charged: true,
                    output_text: summary.output_text,
                    ttft: summary.ttft,
                });
            });
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .header("x-accel-buffering", "no")
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| ApiError::upstream_malformed().into_response())
        }
    }
}

fn upstream_failure_label(end: &End) -> Option<&'static str> {
    match end {
        End::Complete | End::ClientDisconnected | End::Shutdown => None,
        End::UpstreamDisconnected(_) => Some("stream_interrupted"),
        End::UpstreamError => Some("stream_error_event"),
        End::Malformed(_) => Some("malformed"),
        End::Timeout(_) => Some("timeout"),
    }
}

/// The upstream answered with an error: its status and body pass through in
/// the client's format, with two exceptions. A 401 or 403 means the upstream
/// refused Tollgate's own credentials, not the client's, so the client gets a
/// 502 that says so (and nothing of the vendor's message, which may quote the
/// vendor key). A body that is not error JSON (an HTML page from a proxy,
/// say) is wrapped in one, so clients still get an error they can read.
fn relay_upstream_error(
    proxy: &ProxyState,
    provider: &str,
    formats: Formats,
    status: StatusCode,
    retry_after: Option<String>,
    bytes: Bytes,
    pending: Pending,
) -> Response {
    let label = match status.as_u16() {
        401 | 403 => "auth",
        429 => "http_429",
        s if s >= 500 => "http_5xx",
        _ => "http_4xx",
    };
    proxy
        .metrics
        .upstream_errors
        .with_label_values(&[provider, label])
        .inc();
    let (status, body) = if label == "auth" {
        tracing::error!(
            provider,
            upstream_status = status.as_u16(),
            "the upstream rejected the provider's API key"
        );
        let message = format!("The upstream provider '{provider}' rejected the gateway's credentials. This is a gateway configuration problem, not your key.");
        let body = match formats.client {
            Wire::OpenAi => {
                error_body(&message, "server_error", None, Some("upstream_auth_failed"))
            }
            Wire::Anthropic => anthropic::error_body("api_error", &message),
        };
        (StatusCode::BAD_GATEWAY, Bytes::from(body.to_string()))
    } else {
        match formats.client {
            Wire::OpenAi => openai_error_from_upstream(status, bytes),
            Wire::Anthropic => (
                status,
                Bytes::from(anthropic::error_from_upstream(status.as_u16(), &bytes).to_string()),
            ),
        }
    };
    pending.finish(Outcome {
        status,
        end: End::UpstreamError,
        error: Some(if label == "auth" {
            "upstream_auth_failed"
        } else {
            "upstream_status"
        }),
        usage: None,
        charged: false,
        output_text: String::new(),
        ttft: None,
    });
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(v) = retry_after.as_deref().and_then(header_value) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// An upstream error for an OpenAI client: OpenAI-style error JSON passes as
/// it is; Anthropic's error JSON keeps its message and type; anything else is
/// quoted. Anthropic's non-standard 529 (overloaded) becomes 503.
fn openai_error_from_upstream(status: StatusCode, bytes: Bytes) -> (StatusCode, Bytes) {
    let status = if status.as_u16() == 529 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        status
    };
    let parsed = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
    if let Some(v) = &parsed {
        if v.get("type").and_then(|t| t.as_str()) == Some("error") {
            let message = v
                .pointer("/error/message")
                .and_then(|m| m.as_str())
                .unwrap_or("The upstream failed.");
            let kind = v
                .pointer("/error/type")
                .and_then(|m| m.as_str())
                .unwrap_or("api_error");
            let body = error_body(message, kind, None, Some(kind));
            return (status, Bytes::from(body.to_string()));
        }
        if v.get("error").is_some() {
            return (status, bytes);
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let snippet: String = text.chars().take(512).collect();
    let message = format!(
        "The upstream answered HTTP {}: {}",
        status.as_u16(),
        snippet.trim()
    );
    (
        status,
        Bytes::from(
            error_body(&message, "upstream_error", None, Some("upstream_error")).to_string(),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_failures_are_classified_for_fallback() {
        let ctx = br#"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}}"#;
        assert_eq!(
            Retry::from_status(StatusCode::BAD_REQUEST, ctx),
            Some(Retry::ContextLength)
        );
        let anthropic = br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#;
        assert_eq!(
            Retry::from_status(StatusCode::BAD_REQUEST, anthropic),
            Some(Retry::ContextLength)
        );
        assert_eq!(
            Retry::from_status(
                StatusCode::BAD_REQUEST,
                b"{\"error\":{\"message\":\"bad temperature\"}}"
            ),
            None
        );
        assert_eq!(Retry::from_status(StatusCode::NOT_FOUND, b""), None);
        assert_eq!(
            Retry::from_status(StatusCode::TOO_MANY_REQUESTS, b""),
            Some(Retry::RateLimited)
        );
        let overloaded = StatusCode::from_u16(529).unwrap();
        assert_eq!(Retry::from_status(overloaded, b""), Some(Retry::Overloaded));
        assert_eq!(
            Retry::from_status(StatusCode::BAD_GATEWAY, b""),
            Some(Retry::ServerError)
        );
        assert_eq!(
            Retry::from_status(StatusCode::UNAUTHORIZED, b""),
            Some(Retry::UpstreamAuth)
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        assert_eq!(retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(Some(" 0.5 ")), Some(Duration::from_millis(500)));
        assert_eq!(retry_after(Some("86400")), Some(Duration::from_secs(300)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2026 07:28:00 GMT")), None);
        assert_eq!(retry_after(Some("-1")), None);
        assert_eq!(retry_after(None), None);
    }
}
