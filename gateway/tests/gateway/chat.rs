//! Non-streaming chat completions through the gateway.

use async_openai::types::chat::{
    ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs,
};
use loadtest::mock::MockOptions;
use router::sim::SimConfig;
use router::UsageSource;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_client_gets_an_answer_from_an_openai_kind_upstream() {
    let mock = spawn_fast_mock().await;
    let mut app = spawn_app(upstream_config(&mock, "")).await;
    let request = CreateChatCompletionRequestArgs::default()
        .model("m")
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content("hello gateway")
            .build()
            .unwrap()
            .into()])
        .build()
        .unwrap();
    let resp = app
        .openai()
        .chat()
        .create(request)
        .await
        .expect("the client gets an answer");
    assert_eq!(
        resp.model, "m",
        "the response names the model the client asked for"
    );
    let text = resp.choices[0].message.content.clone().unwrap();
    assert_eq!(text.split(' ').count(), 8);
    let usage = resp.usage.expect("usage is passed through");
    assert_eq!(usage.completion_tokens, 8);

    let rec = app.next_record().await;
    assert_eq!(rec.ctx.requested_model, "m");
    assert_eq!(rec.ctx.provider, "up");
    assert_eq!(rec.ctx.upstream_model, "up-model");
    assert_eq!(rec.status, 200);
    assert!(rec.complete());
    assert_eq!(rec.usage_source, UsageSource::Provider);
    assert_eq!(rec.usage.output, 8);
    assert_eq!(rec.usage.prompt_total(), u64::from(usage.prompt_tokens));
    assert_eq!(
        mock.received()[0].body["model"],
        "up-model",
        "the upstream gets its own model name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_and_provider_are_named_in_response_headers() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(upstream_config(&mock, "")).await;
    let resp = app.chat(chat_body("m")).await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["x-tollgate-provider"], "up");
    assert_eq!(h["x-tollgate-model"], "up-model");
    let id = h["x-tollgate-request-id"].to_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    assert_eq!(h["content-type"], "application/json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_request_fields_reach_the_upstream_untouched() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(upstream_config(&mock, "")).await;
    let body = json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "reasoning_content": "earlier thoughts",
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}
        ],
        "thinking": {"type": "enabled", "budget_tokens": 512},
        "reasoning_split": true,
        "enable_thinking": false,
        "max_completion_tokens": 4,
        "temperature": 1
    });
    assert_eq!(app.chat(body.clone()).await.status(), 200);
    let sent = &mock.received()[0].body;
    let mut expected = body;
    expected["model"] = json!("up-model");
    assert_eq!(
        sent, &expected,
        "only the model name changes on the way upstream"
    );
    let keys: Vec<&String> = sent.as_object().unwrap().keys().collect();
    assert_eq!(
        keys[..3],
        ["model", "messages", "thinking"],
        "key order is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_response_fields_reach_the_client_untouched() {
    let mock = spawn_mock(MockOptions {
        sim: SimConfig {
            reasoning_tokens: 3,
            ..fast_sim()
        },
        ..Default::default()
    })
    .await;
    let mut app = spawn_app(upstream_config(&mock, "")).await;
    let body: Value = app.chat(chat_body("m")).await.json().await.unwrap();
    let reasoning = body["choices"][0]["message"]["reasoning_content"]
        .as_str()
        .unwrap();
    assert_eq!(reasoning.split(' ').count(), 3);
    assert_eq!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"],
        3
    );
    let rec = app.next_record().await;
    assert_eq!((rec.usage.output, rec.usage.reasoning), (8, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glm_style_base_url_is_joined_without_adding_v1() {
    let mock = spawn_fast_mock().await;
    let cfg = config(&format!(
        "[providers.glm]\nkind = \"openai\"\nbase_url = \"http://{}/api/paas/v4/\"\n[models.\"glm-4.6\"]\nprovider = \"glm\"\n",
        mock.addr()
    ));
    let app = spawn_app(cfg).await;
    assert_eq!(app.chat(chat_body("glm-4.6")).await.status(), 200);
    assert_eq!(mock.received()[0].path, "/api/paas/v4/chat/completions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_key_is_sent_upstream_and_the_client_key_is_not() {
    let mock = spawn_mock(MockOptions {
        sim: fast_sim(),
        api_key: Some("sk-vendor-secret".into()),
        ..Default::default()
    })
    .await;
    let app = spawn_app(upstream_config(&mock, "api_key = \"sk-vendor-secret\"")).await;
    assert_eq!(app.chat(chat_body("m")).await.status(), 200);
    let got = mock.received()[0].authorization.clone();
    assert_eq!(got.as_deref(), Some("Bearer sk-vendor-secret"));
    assert!(!got.unwrap().contains(MASTER_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_mock_provider_needs_no_upstream() {
    let mut app = spawn_app(config(
        "[providers.demo]\nkind = \"mock\"\nttft = \"0s\"\ntokens_per_second = 0\noutput_tokens = 5\ncached_tokens = 2\n[models.demo]\nprovider = \"demo\"\n",
    ))
    .await;
    let body: Value = app.chat(chat_body("demo")).await.json().await.unwrap();
    assert_eq!(body["model"], "demo");
    assert_eq!(body["usage"]["completion_tokens"], 5);
    let rec = app.next_record().await;
    assert_eq!(rec.ctx.provider, "demo");
    assert_eq!((rec.usage.cached_input, rec.usage.output), (2, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_tokens_and_latency_by_model_and_provider() {
    let mock = spawn_fast_mock().await;
    let mut app = spawn_app(upstream_config(&mock, "")).await;
    assert_eq!(app.chat(chat_body("m")).await.status(), 200);
    app.next_record().await;
    let _ = app.chat(chat_body("nope")).await;
    let text = app.metrics().await;
    for line in [
        r#"tollgate_requests_total{endpoint="chat_completions",model="m",org="master",provider="up",status="200",team="master"} 1"#,
        r#"tollgate_tokens_total{kind="output",model="m",org="master",provider="up",team="master"} 8"#,
        r#"tollgate_request_duration_seconds_count{endpoint="chat_completions",model="m",provider="up"} 1"#,
        r#"tollgate_http_requests_total{route="/v1/chat/completions",status="404"} 1"#,
        "tollgate_requests_in_flight 0",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(
        !text.contains("nope"),
        "a model a client made up never becomes a label"
    );
}
