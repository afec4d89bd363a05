//! One attempt: send the request to one candidate, and relay its answer (or
//! its error) in the client's format, metered exactly once.

use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER,
};
use reqwest::StatusCode;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::failure::{retry_after, Failure, Retry};
use super::outcome::{Ended, Metered};
use super::request::{ClientRequest, UpstreamRequest};
use super::{upstream_error, Answer, AnswerBody, COST_HEADER, MODEL_HEADER, PROVIDER_HEADER};
use crate::catalog::ModelEntry;
use crate::provider::{Passthrough, ProviderError, ReplyBody, UpstreamReply};
use crate::relay::{self, End, MalformedBody, StreamOptions, Summary};
use crate::wire::Wire;

/// What every attempt at one request shares.
pub(crate) struct Shared<'a> {
    pub request: &'a ClientRequest,
    pub client_headers: &'a HeaderMap,
    pub client_query: Option<&'a str>,
    pub shutdown: &'a CancellationToken,
}

/// How one attempt went.
pub(crate) enum Tried {
    /// The answer, or an error the next candidate would not fix.
    Answered(Answer),
    /// A failure another candidate may not have: the answer is the client's
    /// if no attempt is left. The attempt is already metered.
    Failed { answer: Answer, reason: Retry },
}

/// Counts a failure against the model's breaker.
fn note_failure(entry: &ModelEntry) {
    entry.health.failure(std::time::Instant::now());
}

fn json_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// Runs one attempt at `entry` with `upstream`, metered by `metered`.
pub(crate) async fn run(
    shared: &Shared<'_>,
    entry: &Arc<ModelEntry>,
    upstream: UpstreamRequest,
    mut metered: Metered,
    started: Instant,
) -> Tried {
    let client = shared.request.client();
    let stream = shared.request.stream();
    metered.sending();
    let sent = entry
        .provider
        .send(
            upstream.operation,
            upstream.body,
            stream,
            started,
            Passthrough {
                headers: shared.client_headers,
                query: shared.client_query,
                same_format: upstream.wire == client,
            },
        )
        .await;
    // A whole body has been read by now; a stream's end is noted when it ends.
    metered.upstream_until(Instant::now());
    let mut tried = match sent {
        Ok(reply) => answer(shared, entry, upstream.wire, reply, metered, started),
        Err(e) => {
            tracing::warn!(provider = entry.provider.name(), error = %e, "upstream request failed");
            let failure = Failure::from_provider_error(&e);
            let reason = Retry::from_provider_error(&e);
            let label = e.metric_label();
            let end = match e {
                ProviderError::Timeout(phase) => End::Timeout(phase),
                other => End::UpstreamDisconnected(other.to_string()),
            };
            if reason.is_some() {
                note_failure(entry);
            }
            metered.finish(Ended::uncharged(
                failure.status,
                end,
                failure.code,
                Some(label),
            ));
            let answer = Answer::full(
                failure.status,
                json_headers(),
                failure.body(client),
                Some(failure.code),
            );
            match reason {
                Some(reason) => Tried::Failed { answer, reason },
                None => Tried::Answered(answer),
            }
        }
    };
    let headers = match &mut tried {
        Tried::Answered(a) | Tried::Failed { answer: a, .. } => &mut a.headers,
    };
    set(headers, PROVIDER_HEADER, entry.provider.name());
    set(headers, MODEL_HEADER, &entry.upstream_model);
    tried
}

/// The upstream answered: relay its answer or its error.
fn answer(
    shared: &Shared<'_>,
    entry: &Arc<ModelEntry>,
    upstream: Wire,
    reply: UpstreamReply,
    metered: Metered,
    started: Instant,
) -> Tried {
    if reply.status.is_success() {
        return Tried::Answered(relay_success(
            shared, entry, upstream, reply, metered, started,
        ));
    }
    let body = match reply.body {
        ReplyBody::Full(b) => b,
        ReplyBody::Stream(_) => Bytes::new(),
    };
    let failed = Retry::from_status(reply.status, &body);
    match failed {
        Some(Retry::RateLimited) => {
            let wait = retry_after(reply.retry_after.as_deref())
                .unwrap_or(std::time::Duration::from_secs(1));
            entry.health.cool_down(std::time::Instant::now() + wait);
        }
        // The model is fine; this prompt is too long for it.
        Some(Retry::ContextLength) | None => {}
        Some(_) => note_failure(entry),
    }
    let answer = relay_error(
        shared.request.client(),
        entry,
        reply.status,
        reply.retry_after,
        &body,
        metered,
    );
    match failed {
        Some(reason) => Tried::Failed { answer, reason },
        None => Tried::Answered(answer),
    }
}

fn relay_success(
    shared: &Shared<'_>,
    entry: &Arc<ModelEntry>,
    upstream: Wire,
    reply: UpstreamReply,
    mut metered: Metered,
    started: Instant,
) -> Answer {
    let request = shared.request;
    let client = request.client();
    let client_model = request.model();
    match reply.body {
        ReplyBody::Full(bytes) => {
            match relay::relay_json(&bytes, client_model, client, upstream, request.body()) {
                Ok(relayed) => {
                    let cost = metered.finish(Ended {
                        status: StatusCode::OK,
                        end: End::Complete,
                        error: None,
                        upstream_failure: None,
                        usage: relayed.usage,
                        charged: true,
                        output: relayed.output,
                        ttft: None,
                    });
                    let mut headers = json_headers();
                    if let Some(cost) = cost {
                        set(&mut headers, COST_HEADER, &cost);
                    }
                    Answer::full(StatusCode::OK, headers, relayed.body, None)
                }
                Err(MalformedBody::ErrorObject) => relay_error(
                    client,
                    entry,
                    StatusCode::BAD_GATEWAY,
                    reply.retry_after,
                    &bytes,
                    metered,
                ),
                Err(MalformedBody::NotJson) => {
                    let failure = Failure::malformed();
                    metered.finish(Ended {
                        charged: true,
                        ..Ended::uncharged(
                            failure.status,
                            End::Malformed("the body is not a JSON object".into()),
                            failure.code,
                            Some("malformed"),
                        )
                    });
                    Answer::full(
                        failure.status,
                        json_headers(),
                        failure.body(client),
                        Some(failure.code),
                    )
                }
            }
        }
        ReplyBody::Stream(body) => {
            let timeouts = entry.provider.timeouts();
            let opts = StreamOptions {
                client_model: client_model.to_owned(),
                client,
                upstream,
                include_usage: request.include_usage(),
                idle: timeouts.idle,
                deadline: started + timeouts.total,
                started,
                shutdown: shared.shutdown.clone(),
            };
            let allowance = metered.streaming();
            let stream = relay::relay_stream_within(
                body,
                opts,
                request.body(),
                allowance,
                move |summary: Summary| {
                    metered.upstream_until(summary.upstream_done);
                    metered.finish(Ended {
                        status: StatusCode::OK,
                        error: (!summary.end.is_complete()).then(|| summary.end.label()),
                        upstream_failure: stream_failure_label(&summary.end),
                        end: summary.end,
                        usage: summary.usage,
                        charged: true,
                        output: summary.output,
                        ttft: summary.ttft,
                    });
                },
            );
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            // Nginx and its kin would otherwise buffer the stream.
            headers.insert(
                HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            );
            Answer {
                status: StatusCode::OK,
                headers,
                body: AnswerBody::Stream(Box::pin(stream)),
                error: None,
                attempts: 0,
                affinity: None,
            }
        }
    }
}

/// The metric label of an upstream failure that ended a stream.
fn stream_failure_label(end: &End) -> Option<&'static str> {
    match end {
        End::Complete | End::ClientDisconnected | End::Shutdown | End::Budget(_) => None,
        End::UpstreamDisconnected(_) => Some("stream_interrupted"),
        End::UpstreamError => Some("stream_error_event"),
        End::Malformed(_) => Some("malformed"),
        End::Timeout(_) => Some("timeout"),
    }
}

/// The upstream answered with an error: its status and body pass through in
/// the client's format, except a 401 or 403, which means the upstream refused
/// Tollgate's own credentials, not the client's: the client gets a 502 that
/// says so.
fn relay_error(
    client: Wire,
    entry: &ModelEntry,
    status: StatusCode,
    retry_after: Option<String>,
    body: &Bytes,
    metered: Metered,
) -> Answer {
    let label = upstream_error::status_label(status);
    let provider = entry.provider.name();
    let (status, body, code) = if label == "auth" {
        tracing::error!(
            provider,
            upstream_status = status.as_u16(),
            "the upstream rejected the provider's API key"
        );
        let failure = Failure::upstream_auth(provider);
        (failure.status, failure.body(client), failure.code)
    } else {
        let (status, body) = upstream_error::for_client(client, status, body);
        (status, body, "upstream_status")
    };
    metered.finish(Ended::uncharged(
        status,
        End::UpstreamError,
        code,
        Some(label),
    ));
    let mut headers = json_headers();
    if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(RETRY_AFTER, v);
    }
    Answer::full(status, headers, body, Some(code))
}
