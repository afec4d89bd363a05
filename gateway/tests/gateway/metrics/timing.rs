//! Where the time goes: Tollgate's own time per attempt (the upstream's
//! left out), time per output token of streams, and streams open now.

use std::time::Duration;

use loadtest::mock::{Faults, MockOptions};
use serde_json::json;

use super::*;

/// How long each mock upstream below waits before answering.
const UPSTREAM_WAIT: Duration = Duration::from_millis(300);

fn slow(status: Option<u16>) -> MockOptions {
    MockOptions {
        sim: router::sim::SimConfig {
            latency: UPSTREAM_WAIT,
            ..fast_sim()
        },
        faults: Faults {
            status,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn stream_body() -> serde_json::Value {
    let mut body = chat_body("m");
    body["stream"] = json!(true);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_overhead_is_observed_per_attempt_without_the_upstreams_time() {
    let (bad, good) = (
        spawn_mock(slow(Some(500))).await,
        spawn_mock(slow(None)).await,
    );
    let cfg = config(&format!(
        "[providers.p0]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [providers.p1]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.m0]\nprovider = \"p0\"\n[models.m1]\nprovider = \"p1\"\n\
         [routes.auto]\ncandidates = [\"m0\", \"m1\"]\n",
        bad.base_url(),
        good.base_url()
    ));
    let app = spawn_app(cfg).await;
    let resp = app.chat(chat_body("auto")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-attempts"], "2");

    let m = app.metrics().await;
    let endpoint = [("endpoint", "chat_completions")];
    let count = value(&m, "tollgate_gateway_overhead_seconds_count", &endpoint);
    assert_eq!(count, Some(2.0), "one per attempt: {m}");
    // Each attempt waited on its upstream; none of that is Tollgate's.
    let waited = sum(&m, "tollgate_request_duration_seconds_sum", &endpoint);
    assert!(waited >= 2.0 * UPSTREAM_WAIT.as_secs_f64(), "{waited}");
    let overhead = sum(&m, "tollgate_gateway_overhead_seconds_sum", &endpoint);
    assert!(
        (0.0..UPSTREAM_WAIT.as_secs_f64()).contains(&overhead),
        "{overhead} s of overhead for two attempts"
    );
    let finest = [("endpoint", "chat_completions"), ("le", "0.0001")];
    assert!(
        value(&m, "tollgate_gateway_overhead_seconds_bucket", &finest).is_some(),
        "fine buckets: {m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_per_output_token_is_observed_for_streams_of_several_tokens_only() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(upstream_config(&mock, "")).await;
    assert_eq!(app.chat(chat_body("m")).await.status(), 200);
    let data = read_sse(app.chat(stream_body()).await).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));

    let m = app.metrics().await;
    let model = [("model", "m"), ("provider", "up")];
    assert_eq!(
        value(&m, "tollgate_time_per_output_token_seconds_count", &model),
        Some(1.0),
        "the stream's, not the whole answer's: {m}"
    );
    let per_token = value(&m, "tollgate_time_per_output_token_seconds_sum", &model).unwrap();
    let ttft = value(&m, "tollgate_time_to_first_token_seconds_sum", &model).unwrap();
    let whole = value(
        &m,
        "tollgate_request_duration_seconds_sum",
        &[("endpoint", "chat_completions"), model[0], model[1]],
    )
    .unwrap();
    assert!(per_token >= 0.0 && per_token * 7.0 <= whole - ttft + 1e-9);
    let endpoint = [("endpoint", "chat_completions")];
    assert_eq!(
        value(&m, "tollgate_gateway_overhead_seconds_count", &endpoint),
        Some(2.0),
        "streamed attempts have an overhead too"
    );
}

fn open(m: &str) -> Option<f64> {
    value(m, "tollgate_streams_open", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_open_falls_back_to_zero_however_streams_end() {
    // Streams hold after the role chunk and two tokens until released.
    let mock = spawn_mock(MockOptions {
        sim: fast_sim(),
        faults: Faults {
            hold_after: Some(3),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let app = spawn_app(upstream_config(&mock, "")).await;
    assert_eq!(open(&app.metrics().await), Some(0.0));
    let leaving = app.chat(stream_body()).await;
    let staying = app.chat(stream_body()).await;
    let mut leaving = leaving.bytes_stream();
    let mut staying = staying.bytes_stream();
    assert!(next_piece(&mut leaving).await.is_some());
    assert!(next_piece(&mut staying).await.is_some());
    eventually("two streams are open", async || {
        open(&app.metrics().await) == Some(2.0)
    })
    .await;

    // One client goes away mid-stream.
    drop(leaving);
    eventually("the abandoned stream is closed", async || {
        open(&app.metrics().await) == Some(1.0)
    })
    .await;

    // The other gets its whole answer.
    mock.release();
    while next_piece(&mut staying).await.is_some() {}
    let m = app.metrics().await;
    assert_eq!(open(&m), Some(0.0), "{m}");
    assert_eq!(value(&m, "tollgate_requests_in_flight", &[]), Some(0.0));
    let ended = |end| {
        let labels = [("model", "m"), ("provider", "up"), ("end", end)];
        value(&m, "tollgate_streams_total", &labels)
    };
    assert_eq!(ended("client_disconnected"), Some(1.0));
    assert_eq!(ended("complete"), Some(1.0));
}
