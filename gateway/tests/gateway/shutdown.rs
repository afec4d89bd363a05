//! Graceful shutdown: stop accepting, let in-flight streams finish within the
//! grace period, exit 0.

use futures_util::StreamExt;
use loadtest::mock::{Faults, MockOptions};
use serde_json::json;

use crate::helpers::*;
use crate::process::Gateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_in_flight_stream_finish_and_refuses_new_connections() {
    let mock = spawn_mock(MockOptions {
        sim: fast_sim(),
        faults: Faults {
            hold_after: Some(3),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let mut app = spawn_app(upstream_config(&mock, "")).await;
    let mut body = chat_body("m");
    body["stream"] = json!(true);
    let mut stream = app.chat(body).await.bytes_stream();
    let mut seen = String::new();
    while sse_data(&seen).len() < 3 {
        seen.push_str(std::str::from_utf8(&next_piece(&mut stream).await.unwrap()).unwrap());
    }
    app.begin_shutdown();
    // New connections are refused once shutdown has begun.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        router::provider::ensure_tls_provider();
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        if fresh.get(app.url("/healthz")).send().await.is_err() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway still accepts connections"
        );
        tokio::task::yield_now().await;
    }
    mock.release();
    while let Some(piece) = next_piece(&mut stream).await {
        seen.push_str(std::str::from_utf8(&piece).unwrap());
    }
    assert_eq!(
        sse_data(&seen).last().map(String::as_str),
        Some("[DONE]"),
        "the stream finished whole"
    );
    assert!(app.next_record().await.complete());
    app.shutdown()
        .await
        .expect("the server drains and stops cleanly");
}

fn write_config(
    dir: &tempfile::TempDir,
    grace: &str,
    tokens_per_second: u32,
    output_tokens: u32,
) -> std::path::PathBuf {
    let path = dir.path().join("tollgate.toml");
    let dir = dir.path().display();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nmaster_key = \"{MASTER_KEY}\"\nshutdown_grace = \"{grace}\"\n\
         [database]\nurl = \"sqlite://{dir}/tollgate.db\"\n[ledger]\nspool_dir = \"{dir}/spool\"\n\
         [providers.demo]\nkind = \"mock\"\nttft = \"0s\"\ntokens_per_second = {tokens_per_second}\noutput_tokens = {output_tokens}\n\
         [models.demo]\nprovider = \"demo\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_stream_finish_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    // About a second of streaming: long enough to be mid-stream at SIGTERM.
    let mut gw = Gateway::start(&write_config(&dir, "30s", 40, 40));
    let client = http_client();
    let resp = client
        .post(format!("http://{}/v1/chat/completions", gw.addr))
        .bearer_auth(MASTER_KEY)
        .json(&json!({"model": "demo", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let mut seen = String::from_utf8(next_piece(&mut stream).await.unwrap().to_vec()).unwrap();
    gw.terminate();
    while let Some(piece) = stream.next().await {
        seen.push_str(std::str::from_utf8(&piece.expect("the stream is not cut")).unwrap());
    }
    let data = sse_data(&seen);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let words: usize = json_events(&data)
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .filter(|s| !s.is_empty())
        .count();
    assert_eq!(words, 40, "every token arrived");
    let status = tokio::task::spawn_blocking(move || gw.wait())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero_when_the_grace_period_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    // A stream far longer than the grace period.
    let mut gw = Gateway::start(&write_config(&dir, "200ms", 2, 1000));
    let client = http_client();
    let resp = client
        .post(format!("http://{}/v1/chat/completions", gw.addr))
        .bearer_auth(MASTER_KEY)
        .json(&json!({"model": "demo", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let mut seen = String::from_utf8(next_piece(&mut stream).await.unwrap().to_vec()).unwrap();
    gw.terminate();
    while let Some(Ok(piece)) = stream.next().await {
        seen.push_str(std::str::from_utf8(&piece).unwrap());
    }
    let last: serde_json::Value = serde_json::from_str(sse_data(&seen).last().unwrap()).unwrap();
    assert_eq!(
        last["error"]["code"], "gateway_shutdown",
        "the cut stream says why"
    );
    let status = tokio::task::spawn_blocking(move || gw.wait())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}
