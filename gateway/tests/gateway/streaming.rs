//! Streaming chat completions: event by event, metered however they end.

use async_openai::types::chat::{
    ChatCompletionRequestUserMessageArgs, ChatCompletionStreamOptions,
    CreateChatCompletionRequestArgs,
};
use futures_util::StreamExt;
use loadtest::mock::{Faults, MockOptions};
use router::estimate::count_text;
use router::provider::TimeoutPhase;
use router::relay::End;
use router::UsageSource;
use serde_json::{json, Value};

use crate::helpers::*;

/// The content the client received, from the chunks that carry choices.
fn streamed_text(data: &[String]) -> String {
    data.iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|e| {
            e["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

fn stream_body(include_usage: Option<bool>) -> Value {
    let mut b = chat_body("m");
    b["stream"] = json!(true);
    if let Some(u) = include_usage {
        b["stream_options"] = json!({"include_usage": u});
    }
    b
}

async fn mock_with(faults: Faults) -> loadtest::mock::MockHandle {
    spawn_mock(MockOptions {
        sim: fast_sim(),
        faults,
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_chunk_reaches_the_client_before_the_upstream_has_finished() {
    // The upstream sends the role chunk and two tokens, then holds.
    let mock = mock_with(Faults {
        hold_after: Some(3),
        ..Default::default()
    })
    .await;
    let mut app = spawn_app(upstream_config(&mock, "")).await;
    let resp = app.chat(stream_body(None)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    while sse_data(&seen).len() < 3 {
        let piece = next_piece(&mut body)
            .await
            .expect("the stream is still open");
        seen.push_str(std::str::from_utf8(&piece).unwrap());
    }
    assert!(
        !seen.contains("[DONE]"),
        "the upstream is held, so the answer cannot be over"
    );
    assert!(app.try_record().is_none(), "the request is still in flight");
    mock.release();
    while let Some(piece) = next_piece(&mut body).await {
        seen.push_str(std::str::from_utf8(&piece).unwrap());
    }
    let data = sse_data(&seen);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(streamed_text(&data).split(' ').count(), 8);
    let rec = app.next_record().await;
    assert!(rec.complete());
    assert!(rec.ttft.is_some());
    assert_eq!(rec.usage_source, UsageSource::Provider);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_chunk_is_forwarded_only_when_the_client_asks_for_it() {
    let mock = spawn_fast_mock().await;
    let mut app = spawn_app(upstream_config(&mock, "")).await;

    let events = json_events(&read_sse(app.chat(stream_body(None)).await).await);
    assert!(
        events.iter().all(|e| e.get("usage").is_none()),
        "{events:?}"
    );
    assert!(events
        .iter()
        .all(|e| !e["choices"].as_array().unwrap().is_empty()));
    assert!(
        events.iter().all(|e| e["model"] == "m"),
        "every chunk names the requested model"
    );
    let rec = app.next_record().await;
    assert_eq!(
        rec.usage_source,
        UsageSource::Provider,
        "Tollgate asked the upstream for usage anyway"
    );
    assert_eq!(rec.usage.output, 8);
    assert_eq!(
        mock.received()[0].body["stream_options"]["include_usage"],
        true
    );

    let events = json_events(&read_sse(app.chat(stream_body(Some(true))).await).await);
    let last = events.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 8);
    let rec = app.next_record().await;
    assert_eq!(
        rec.usage.prompt_total(),
        last["usage"]["prompt_tokens"].as_u64().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_client_streams_through_the_gateway() {
    let mock = spawn_fast_mock().await;
    let mut app = spawn_app(upstream_config(&mock, "")).await;
    let request = CreateChatCompletionRequestArgs::default()
        .model("m")
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content("stream please")
            .build()
            .unwrap()
            .into()])
        .stream_options(ChatCompletionStreamOptions {
            include_usage: Some(true),
            include_obfuscation: None,
        })
        .build()
        .unwrap();
    let mut stream = app
        .openai()
        .chat()
        .create_stream(request)
        .await
        .expect("stream opens");
    let mut text = String::new();
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("every chunk parses");
        assert_eq!(chunk.model, "m");
        for c in &chunk.choices {
            text.push_str(c.delta.content.as_deref().unwrap_or(""));
        }
        if chunk.usage.is_some() {
            usage = chunk.usage;
        }
    }
    assert_eq!(text.split(' ').count(), 8);
    assert_eq!(usage.expect("usage chunk").completion_tokens, 8);
    assert!(app.next_record().await.complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_stream_still_produces_a_usage_record() {
    let mock = mock_with(Faults {
        hold_after: Some(4),
        ..Default::default()
    })
    .await;
    let mut app = spawn_app(upstream_config(&mock, "")).await;
    let resp = app.chat(stream_body(Some(true))).await;
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    while sse_data(&seen).len() < 4 {
        seen.push_str(std::str::from_utf8(&next_piece(&mut body).await.unwrap()).unwrap());
    }
    drop(body);
    let sent = streamed_text(&sse_data(&seen));
    assert_eq!(sent.split(' ').count(), 3);
    let rec = app.next_record().await;
    assert_eq!(rec.end, End::ClientDisconnected);
    assert!(!rec.complete());
    assert_eq!(rec.usage_source, UsageSource::Estimated);
    assert!(rec.usage.input > 0, "the prompt is counted");
    assert_eq!(
        rec.usage.output,
        count_text(&sent),
        "what was sent so far is counted"
    );
    assert!(app.metrics().await.contains(
        r#"tollgate_streams_total{end="client_disconnected",model="m",provider="up"} 1"#
    ));
    mock.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_disconnects_mid_stream_ends_the_stream_with_an_error_event() {
    let mock = mock_with(Faults {
        disconnect_after: Some(3),
        ..Default::default()
    })
    .await;
    let mut app = spawn_app(upstream_config(&mock, "")).await;
    let data = read_sse(app.chat(stream_body(None)).await).await;
    assert_ne!(data.last().map(String::as_str), Some("[DONE]"));
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_disconnected");
    assert_eq!(last["error"]["type"], "server_error");
    let rec = app.next_record().await;
    assert!(
        matches!(rec.end, End::UpstreamDisconnected(_)),
        "{:?}",
        rec.end
    );
    assert_eq!(rec.usage_source, UsageSource::Estimated);
    let sent = streamed_text(&data);
    assert_eq!(sent.split(' ').count(), 2);
    assert_eq!(rec.usage.output, count_text(&sent));
    assert!(app
        .metrics()
        .await
        .contains(r#"tollgate_upstream_errors_total{kind="stream_interrupted",provider="up"} 1"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_upstream_events_end_the_stream_with_an_error_event() {
    let mock = mock_with(Faults {
        malformed_after: Some(2),
        ..Default::default()
    })
    .await;
    let mut app = spawn_app(upstream_config(&mock, "")).await;
    let data = read_sse(app.chat(stream_body(None)).await).await;
    assert_eq!(data.len(), 3, "two good events, then the error: {data:?}");
    let last: Value = serde_json::from_str(&data[2]).unwrap();
    assert_eq!(last["error"]["code"], "upstream_malformed");
    let rec = app.next_record().await;
    assert!(matches!(rec.end, End::Malformed(_)), "{:?}", rec.end);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_is_ended_by_the_idle_timeout() {
    let mock = mock_with(Faults {
        stall_after: Some(2),
        ..Default::default()
    })
    .await;
    let mut app = spawn_app(upstream_config(&mock, "timeouts = { idle = \"300ms\" }")).await;
    let data = read_sse(app.chat(stream_body(None)).await).await;
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_timeout");
    let rec = app.next_record().await;
    assert_eq!(rec.end, End::Timeout(TimeoutPhase::Idle));
    let sent = streamed_text(&data);
    assert_eq!(sent.split(' ').count(), 1);
    assert_eq!(
        rec.usage.output,
        count_text(&sent),
        "the word that arrived is counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_error_event_after_200_passes_through() {
    // A chunk carrying `error` is forwarded as is and ends the stream.
    use axum::routing::post;
    let upstream = axum::Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            (
                [("content-type", "text/event-stream")],
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n\
                 data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"code\":\"overloaded\"}}\n\n",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, upstream).await });
    let mut app = spawn_app(config(&format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"http://{addr}/v1\"\n[models.m]\nprovider = \"up\"\n"
    )))
    .await;
    let data = read_sse(app.chat(stream_body(None)).await).await;
    let events = json_events(&data);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["error"]["code"], "overloaded");
    let rec = app.next_record().await;
    assert_eq!(rec.end, End::UpstreamError);
    assert_eq!(rec.usage_source, UsageSource::Estimated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_stream_reaches_the_client_in_openai_shape() {
    use router::sim::UsageShape;
    for shape in UsageShape::ALL
        .into_iter()
        .filter(|s| *s != UsageShape::None)
    {
        let sim = router::sim::SimConfig {
            usage_shape: shape,
            cached_tokens: 2,
            ..fast_sim()
        };
        let mock = spawn_mock(MockOptions {
            sim,
            ..Default::default()
        })
        .await;
        let mut app = spawn_app(upstream_config(&mock, "")).await;

        // Not asked: no usage anywhere, no empty trailer, no empty roles.
        let events = json_events(&read_sse(app.chat(stream_body(None)).await).await);
        for e in &events {
            assert!(e.get("usage").is_none(), "{shape:?}: {e}");
            let choices = e["choices"].as_array().unwrap();
            assert!(!choices.is_empty(), "{shape:?}: {e}");
            assert!(
                choices.iter().all(|c| c.get("usage").is_none()),
                "{shape:?}: {e}"
            );
            assert_ne!(e["choices"][0]["delta"]["role"], "", "{shape:?}: {e}");
        }
        app.next_record().await;

        // Asked: top-level usage in OpenAI's shape, whatever the vendor did.
        let events = json_events(&read_sse(app.chat(stream_body(Some(true))).await).await);
        let with_usage: Vec<&Value> = events
            .iter()
            .filter(|e| e.get("usage").is_some_and(|u| !u.is_null()))
            .collect();
        assert_eq!(with_usage.len(), 1, "{shape:?}: {events:?}");
        let usage = &with_usage[0]["usage"];
        assert_eq!(usage["completion_tokens"], 8, "{shape:?}");
        let cached = usage["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .or_else(|| usage["cached_tokens"].as_u64())
            .or_else(|| usage["prompt_cache_hit_tokens"].as_u64());
        assert_eq!(cached, Some(2), "{shape:?}: {usage}");
        app.next_record().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_client_reads_a_minimax_stream() {
    let sim = router::sim::SimConfig {
        usage_shape: router::sim::UsageShape::MiniMax,
        ..fast_sim()
    };
    let mock = spawn_mock(MockOptions {
        sim,
        ..Default::default()
    })
    .await;
    let app = spawn_app(upstream_config(&mock, "")).await;
    let request = CreateChatCompletionRequestArgs::default()
        .model("m")
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content("hi")
            .build()
            .unwrap()
            .into()])
        .build()
        .unwrap();
    let mut stream = app.openai().chat().create_stream(request).await.unwrap();
    let mut words = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("MiniMax's empty roles do not reach the client");
        words += chunk
            .choices
            .iter()
            .filter(|c| c.delta.content.as_deref().is_some_and(|t| !t.is_empty()))
            .count();
    }
    assert_eq!(words, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_answer_to_a_stream_request_is_relayed_as_json() {
    use axum::routing::post;
    let answer = r#"{"id":"x","object":"chat.completion","model":"up","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
    let upstream = axum::Router::new().route(
        "/v1/chat/completions",
        post(move || async move { ([("content-type", "application/json")], answer) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, upstream).await });
    let mut app = spawn_app(config(&format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"http://{addr}/v1\"\n[models.m]\nprovider = \"up\"\n"
    )))
    .await;
    let resp = app.chat(stream_body(None)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["model"], "m");
    let rec = app.next_record().await;
    assert_eq!((rec.usage.input, rec.usage.output), (3, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_still_open_when_the_grace_period_ends_get_an_error_event() {
    let mock = mock_with(Faults {
        hold_after: Some(3),
        ..Default::default()
    })
    .await;
    let mut cfg = upstream_config(&mock, "");
    cfg.server.shutdown_grace = std::time::Duration::from_millis(200);
    let mut app = spawn_app(cfg).await;
    let resp = app.chat(stream_body(None)).await;
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    while sse_data(&seen).len() < 3 {
        seen.push_str(std::str::from_utf8(&next_piece(&mut body).await.unwrap()).unwrap());
    }
    app.begin_shutdown();
    while let Some(piece) = next_piece(&mut body).await {
        seen.push_str(std::str::from_utf8(&piece).unwrap());
    }
    let last: Value = serde_json::from_str(sse_data(&seen).last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "gateway_shutdown");
    let rec = app.next_record().await;
    assert_eq!(rec.end, End::Shutdown);
    assert_eq!(rec.usage_source, UsageSource::Estimated);
    app.shutdown().await.unwrap();
}
