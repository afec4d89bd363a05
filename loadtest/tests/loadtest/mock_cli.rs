//! The `loadtest mock` binary as its own process: flags for the model,
//! vendor usage shapes and faults.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

struct Mock {
    child: Child,
    base_url: String,
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Mock {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["mock", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadtest starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let base_url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the mock logs its address");
        if let Some(rest) = line.split("base_url=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    Mock { child, base_url }
}

fn client() -> reqwest::Client {
    router::provider::ensure_tls_provider();
    reqwest::Client::new()
}

fn body(stream: bool) -> Value {
    json!({"model": "x", "stream": stream, "stream_options": {"include_usage": true},
           "messages": [{"role": "user", "content": "hello"}]})
}

#[tokio::test]
async fn the_mock_answers_in_the_requested_vendor_usage_shape() {
    let mock = start(&[
        "--ttft",
        "0s",
        "--tokens-per-second",
        "0",
        "--output-tokens",
        "5",
        "--cached-tokens",
        "2",
        "--usage-shape",
        "deepseek",
    ]);
    let client = client();
    let url = format!("{}/chat/completions", mock.base_url);
    let answer: Value = client
        .post(&url)
        .json(&body(false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["usage"]["completion_tokens"], 5);
    assert_eq!(answer["usage"]["prompt_cache_hit_tokens"], 2);
    let text = client
        .post(&url)
        .json(&body(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(text.contains("\"prompt_cache_miss_tokens\""), "{text}");
}

#[tokio::test]
async fn the_mock_injects_an_error_status() {
    let mock = start(&["--fail-status", "503"]);
    let resp = client()
        .post(format!("{}/chat/completions", mock.base_url))
        .json(&body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["message"], "mock fault: HTTP 503");
}

#[tokio::test]
async fn the_mock_drops_a_stream_mid_answer() {
    let mock = start(&[
        "--ttft",
        "0s",
        "--tokens-per-second",
        "0",
        "--disconnect-after",
        "2",
    ]);
    let resp = client()
        .post(format!("{}/chat/completions", mock.base_url))
        .json(&body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.text().await.is_err(),
        "the body ends with a broken connection"
    );
}

fn anthropic_body(stream: bool) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
           "messages": [{"role": "user", "content": "hello"}]})
}

/// `(event, data)` pairs of an Anthropic SSE body.
fn anthropic_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap();
                }
            }
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn the_mock_speaks_anthropic_messages_with_cache_usage() {
    let mock = start(&[
        "--ttft",
        "0s",
        "--tokens-per-second",
        "0",
        "--output-tokens",
        "5",
        "--cached-tokens",
        "2",
        "--cache-write-tokens",
        "1",
        "--api-key",
        "sk-ant-test",
    ]);
    let url = format!("{}/messages", mock.base_url);
    let client = client();
    let denied = client
        .post(&url)
        .json(&anthropic_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let err: Value = denied.json().await.unwrap();
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["type"], "authentication_error");

    let whole: Value = client
        .post(&url)
        .header("x-api-key", "sk-ant-test")
        .json(&anthropic_body(false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whole["type"], "message");
    assert_eq!(whole["usage"]["cache_read_input_tokens"], 2);
    assert_eq!(whole["usage"]["cache_creation_input_tokens"], 1);
    assert_eq!(whole["usage"]["output_tokens"], 5);

    let text = client
        .post(&url)
        .header("x-api-key", "sk-ant-test")
        .json(&anthropic_body(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let names: Vec<String> = anthropic_events(&text)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    assert!(names.iter().any(|n| n == "content_block_delta"));
}

#[tokio::test]
async fn the_mock_sends_an_anthropic_error_event_after_200() {
    let mock = start(&[
        "--ttft",
        "0s",
        "--tokens-per-second",
        "0",
        "--error-event-after",
        "3",
    ]);
    let resp = client()
        .post(format!("{}/messages", mock.base_url))
        .json(&anthropic_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let events = anthropic_events(&resp.text().await.unwrap());
    assert_eq!(events.len(), 4, "three events, then the error");
    assert_eq!(events[3].0, "error");
    assert_eq!(events[3].1["error"]["type"], "overloaded_error");
}
