//! `POST /v1/embeddings`.

use async_openai::types::embeddings::CreateEmbeddingRequestArgs;
use router::UsageSource;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_are_proxied_and_their_usage_recorded() {
    let mock = spawn_fast_mock().await;
    let mut app = spawn_app(upstream_config(&mock, "")).await;
    let request = CreateEmbeddingRequestArgs::default()
        .model("m")
        .input(vec!["hello world", "the gate meters tokens"])
        .build()
        .unwrap();
    let resp = app
        .openai()
        .embeddings()
        .create(request)
        .await
        .expect("embeddings answer");
    assert_eq!(resp.data.len(), 2);
    assert_eq!(resp.model, "m");
    assert!(resp.data.iter().all(|d| d.embedding.len() == 16));
    let rec = app.next_record().await;
    assert_eq!(rec.ctx.endpoint(), "embeddings");
    assert_eq!(rec.usage_source, UsageSource::Provider);
    assert_eq!(rec.usage.input, u64::from(resp.usage.prompt_tokens));
    assert_eq!(rec.usage.output, 0);
    assert_eq!(mock.received()[0].path, "/v1/embeddings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base64_embeddings_and_dimensions_pass_through() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(upstream_config(&mock, "")).await;
    let resp = app
        .post("/v1/embeddings")
        .json(&json!({"model": "m", "input": "hi", "encoding_format": "base64", "dimensions": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["data"][0]["embedding"].as_str().unwrap().len(),
        24,
        "4 floats in base64"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_embeddings_input_is_a_400_naming_the_parameter() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(upstream_config(&mock, "")).await;
    for body in [
        json!({"model": "m"}),
        json!({"model": "m", "input": []}),
        json!({"model": "m", "input": [{"x": 1}]}),
    ] {
        let resp = app.post("/v1/embeddings").json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["param"], "input");
    }
    assert_eq!(
        mock.request_count(),
        0,
        "nothing invalid reaches the upstream"
    );
}
