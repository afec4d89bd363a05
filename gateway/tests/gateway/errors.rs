//! Every rejection in OpenAI's error shape with the right status, and
//! upstream failures mapped to 502/504 or passed through.

use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs,
};
use loadtest::mock::{Faults, MockOptions};
use router::relay::End;
use serde_json::{json, Value};

use crate::helpers::*;

/// Asserts an OpenAI-shaped error and returns its `error` object.
async fn openai_error(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status(), status);
    assert!(resp.headers().contains_key("x-tollgate-request-id"));
    let body: Value = resp.json().await.expect("the error body is JSON");
    let err = body["error"].clone();
    for key in ["message", "type", "param", "code"] {
        assert!(err.get(key).is_some(), "error lacks {key}: {body}");
    }
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_incomplete_requests_are_400_and_never_reach_the_upstream() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(upstream_config(&mock, "")).await;
    let deep = "[".repeat(100_000);
    let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
        (b"{not json".to_vec(), None),
        (b"".to_vec(), None),
        (vec![0xff, 0xfe, 0x00, 0x7b], None),
        (deep.into_bytes(), None),
        (b"[1,2]".to_vec(), None),
        (br#"{"messages":[{"role":"user","content":"x"}]}"#.to_vec(), Some("model")),
        (br#"{"model":"m"}"#.to_vec(), Some("messages")),
        (br#"{"model":"m","messages":"hi"}"#.to_vec(), Some("messages")),
        (br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":1}"#.to_vec(), Some("stream")),
        (br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":"yes"}}"#.to_vec(), Some("stream_options.include_usage")),
        (br#"{"model":["m"],"messages":[{"role":"user","content":"x"}]}"#.to_vec(), Some("model")),
    ];
    for (body, param) in cases {
        let resp = app
            .post("/v1/chat/completions")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let err = openai_error(resp, 400).await;
        assert_eq!(err["type"], "invalid_request_error");
        assert_eq!(
            err["param"].as_str(),
            param,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        );
    }
    assert_eq!(mock.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_key_is_401() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(upstream_config(&mock, "")).await;
    let resp = app
        .http
        .post(app.url("/v1/chat/completions"))
        .json(&chat_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let err = openai_error(resp, 401).await;
    assert_eq!(err["code"], "invalid_api_key");
    let resp = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth("wrong-key")
        .json(&chat_body("m"))
        .send()
        .await
        .unwrap();
    openai_error(resp, 401).await;
    let resp = app.http.get(app.url("/v1/models")).send().await.unwrap();
    openai_error(resp, 401).await;
    // The client library sees its own authentication error type.
    let request = CreateChatCompletionRequestArgs::default()
        .model("m")
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content("x")
            .build()
            .unwrap()
            .into()])
        .build()
        .unwrap();
    match app.openai_with_key("nope").chat().create(request).await {
        Err(OpenAIError::ApiError(e)) => {
            assert_eq!(e.status_code, 401);
            assert_eq!(e.api_error.code.as_deref(), Some("invalid_api_key"));
        }
        other => panic!("expected a 401 API error, got {other:?}"),
    }
    assert_eq!(mock.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_x_api_key_header_is_accepted_too() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(upstream_config(&mock, "")).await;
    let resp = app
        .http
        .post(app.url("/v1/chat/completions"))
        .header("x-api-key", MASTER_KEY)
        .json(&chat_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_model_is_404_and_says_how_to_list_models() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(upstream_config(&mock, "")).await;
    let err = openai_error(app.chat(chat_body("gpt-9")).await, 404).await;
    assert_eq!(err["code"], "model_not_found");
    assert_eq!(err["param"], "model");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("gpt-9") && msg.contains("GET /v1/models"),
        "{msg}"
    );
    assert_eq!(mock.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413() {
    let mock = spawn_fast_mock().await;
    let cfg = config(&format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n[models.m]\nprovider = \"up\"\n",
        mock.base_url()
    ));
    let mut cfg = cfg;
    cfg.server.max_body_bytes = 1024;
    let app = spawn_app(cfg).await;
    let mut body = chat_body("m");
    body["messages"][0]["content"] = json!("x".repeat(2000));
    let err = openai_error(app.chat(body).await, 413).await;
    assert_eq!(err["code"], "request_too_large");
    assert!(err["message"].as_str().unwrap().contains("1024"));
    // Just under the limit still works.
    let mut body = chat_body("m");
    body["messages"][0]["content"] = json!("x".repeat(800));
    assert_eq!(app.chat(body).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_answer_in_openai_shape() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(upstream_config(&mock, "")).await;
    let err = openai_error(app.post("/v1/nothing").send().await.unwrap(), 404).await;
    assert_eq!(err["code"], "unknown_url");
    let err = openai_error(app.get("/v1/chat/completions").send().await.unwrap(), 405).await;
    assert_eq!(err["code"], "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_error_statuses_pass_through_with_their_body() {
    for (status, retry_after) in [(500u16, None), (429, Some("1")), (400, None)] {
        let mock = spawn_mock(MockOptions {
            sim: fast_sim(),
            faults: Faults {
                status: Some(status),
                ..Default::default()
            },
            ..Default::default()
        })
        .await;
        let mut app = spawn_app(upstream_config(&mock, "")).await;
        for stream in [false, true] {
            let mut body = chat_body("m");
            body["stream"] = json!(stream);
            let resp = app.chat(body).await;
            assert_eq!(resp.status(), status);
            assert_eq!(
                resp.headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap()),
                retry_after
            );
            assert_eq!(resp.headers()["x-tollgate-provider"], "up");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(
                body["error"]["message"],
                format!("mock fault: HTTP {status}"),
                "the upstream's own body"
            );
            let rec = app.next_record().await;
            assert_eq!(rec.status, status);
            assert_eq!(rec.end, End::UpstreamError);
            assert_eq!(rec.usage.total(), 0, "a refused request costs nothing");
        }
    }
}

async fn serve_raw(
    status: u16,
    content_type: &'static str,
    body: &'static str,
) -> std::net::SocketAddr {
    use axum::http::StatusCode;
    let upstream = axum::Router::new().fallback(move || async move {
        (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", content_type)],
            body,
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, upstream).await });
    addr
}

fn raw_config(addr: std::net::SocketAddr) -> gateway::Config {
    config(&format!("[providers.up]\nkind = \"openai\"\nbase_url = \"http://{addr}/v1\"\n[models.m]\nprovider = \"up\"\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_json_upstream_error_is_replaced_by_one_naming_its_status() {
    let page = "<html>Service Unavailable at lb-7.internal.corp</html>";
    let addr = serve_raw(503, "text/html", page).await;
    let app = spawn_app(raw_config(addr)).await;
    let err = openai_error(app.chat(chat_body("m")).await, 503).await;
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("HTTP 503"), "{message}");
    assert!(
        !message.contains("internal.corp"),
        "an error page's hosts stay inside: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_answer_that_is_not_json_is_502() {
    let addr = serve_raw(200, "application/json", "<html>oops</html>").await;
    let mut app = spawn_app(raw_config(addr)).await;
    let err = openai_error(app.chat(chat_body("m")).await, 502).await;
    assert_eq!(err["code"], "upstream_malformed");
    assert_eq!(app.next_record().await.status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_502() {
    // Bind and drop a listener: the port is free and refuses connections.
    let addr = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let mut app = spawn_app(raw_config(addr)).await;
    let err = openai_error(app.chat(chat_body("m")).await, 502).await;
    assert_eq!(err["code"], "upstream_unreachable");
    assert!(
        !err["message"].as_str().unwrap().contains(&addr.to_string()),
        "upstream addresses stay internal"
    );
    let rec = app.next_record().await;
    assert_eq!(rec.status, 502);
    assert_eq!(rec.usage.total(), 0);
    assert!(app
        .metrics()
        .await
        .contains(r#"tollgate_upstream_errors_total{kind="connect",provider="up"} 1"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upstream_is_504() {
    let mock = spawn_mock(MockOptions {
        sim: fast_sim(),
        faults: Faults {
            stall_after: Some(0),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let mut app = spawn_app(upstream_config(
        &mock,
        "timeouts = { first_byte = \"300ms\" }",
    ))
    .await;
    let err = openai_error(app.chat(chat_body("m")).await, 504).await;
    assert_eq!(err["code"], "upstream_timeout");
    let rec = app.next_record().await;
    assert_eq!(rec.status, 504);
    assert_eq!(
        rec.end,
        End::Timeout(router::provider::TimeoutPhase::FirstByte)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_drops_a_non_streaming_answer_is_502() {
    let mock = spawn_mock(MockOptions {
        sim: fast_sim(),
        faults: Faults {
            disconnect_after: Some(0),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let app = spawn_app(upstream_config(&mock, "")).await;
    let err = openai_error(app.chat(chat_body("m")).await, 502).await;
    assert_eq!(err["code"], "upstream_failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_rejects_the_vendor_key_is_502_not_401() {
    let mock = spawn_mock(MockOptions {
        sim: fast_sim(),
        api_key: Some("right".into()),
        ..Default::default()
    })
    .await;
    let mut app = spawn_app(upstream_config(&mock, "api_key = \"wrong-vendor-key\"")).await;
    let err = openai_error(app.chat(chat_body("m")).await, 502).await;
    assert_eq!(err["code"], "upstream_auth_failed");
    assert!(
        !err["message"]
            .as_str()
            .unwrap()
            .contains("Incorrect API key"),
        "the vendor's message stays out"
    );
    assert_eq!(app.next_record().await.error, Some("upstream_auth_failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_object_sent_with_200_is_a_502() {
    let addr = serve_raw(
        200,
        "application/json",
        r#"{"error":{"message":"quota exhausted","type":"billing"}}"#,
    )
    .await;
    let app = spawn_app(raw_config(addr)).await;
    for stream in [false, true] {
        let mut body = chat_body("m");
        body["stream"] = json!(stream);
        let resp = app.chat(body).await;
        assert_eq!(resp.status(), 502, "stream={stream}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["message"], "quota exhausted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pathological_prompt_is_answered_and_metered() {
    // Two megabytes of spaces: the tokenizer's worst case.
    let mut app = spawn_app(config(
        "[providers.demo]\nkind = \"mock\"\nttft = \"0s\"\ntokens_per_second = 0\n[models.demo]\nprovider = \"demo\"\n",
    ))
    .await;
    let mut body = chat_body("demo");
    body["messages"][0]["content"] = json!(format!("{}x", " ".repeat(2_000_000)));
    assert_eq!(app.chat(body).await.status(), 200);
    assert!(app.next_record().await.usage.input > 0);
}

/// An upstream that quotes the API key it was sent gets its message through
/// to the client, with the gateway's own key scrubbed out, on every door.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_error_quoting_our_api_key_reaches_the_client_redacted() {
    let secret = "sk-provider-secret-quoted-0123456789";
    let mock = spawn_mock(MockOptions {
        sim: fast_sim(),
        faults: Faults {
            status: Some(400),
            ..Faults::default()
        },
        ..Default::default()
    })
    .await;
    let mut app = spawn_app(upstream_config(&mock, &format!("api_key = \"{secret}\""))).await;
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let messages =
        json!({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    for (path, body) in [
        ("/v1/chat/completions", &chat),
        ("/v1/messages", &messages),
        ("/v1/responses", &json!({"model": "m", "input": "hi"})),
    ] {
        let resp = app
            .http
            .post(app.url(path))
            .bearer_auth(MASTER_KEY)
            .header("anthropic-version", "2023-06-01")
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let text = resp.text().await.unwrap();
        assert!(!text.contains(secret), "{path}: {text}");
        assert!(
            text.contains("mock fault: HTTP 400 (request key: [redacted])"),
            "{path}: {text}"
        );
        let _ = app.next_record().await;
    }
    let received = mock.received();
    assert!(
        received
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {secret}"))),
        "the upstream did get the key"
    );
}
