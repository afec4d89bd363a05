//! What the Responses door refuses, in OpenAI's error shape: what a
//! translated backend cannot carry (named), invalid bodies, unknown models,
//! stored responses, spent budgets, rate limits and upstream errors.

use loadtest::mock::Faults;
use router::Usage;
use serde_json::{json, Value};

use super::*;
use crate::quotas::team_key;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_come_in_openais_shape_naming_the_parameter() {
    let mock = mock_with(fast_sim(), Faults::default()).await;
    let app = spawn_app(backends(&mock, "")).await;
    for b in [Backend::Chat, Backend::Anthropic] {
        let mut body = request(b.model(), false);
        body["previous_response_id"] = json!("resp_earlier");
        let err = openai_error(app.responses(&body).await, 400).await;
        assert_eq!(err["param"], "previous_response_id", "{b:?}: {err}");
        assert_eq!(err["type"], "invalid_request_error");
        assert!(err["message"].as_str().unwrap().contains("store"), "{err}");
    }
    let mut schema = request("claude", false);
    schema["text"] = json!({"format": {"type": "json_schema", "name": "answer",
                                       "schema": {"type": "object", "properties": {}}}});
    let err = openai_error(app.responses(&schema).await, 400).await;
    assert_eq!(err["param"], "text.format", "{err}");
    // The chat backend can: the schema becomes response_format.
    schema["model"] = json!("gpt-chat");
    assert_eq!(app.responses(&schema).await.status(), 200);
    assert_eq!(
        last_at(&mock, "/v1/chat/completions").body["response_format"]["json_schema"]["name"],
        "answer"
    );
    let before = mock.received().len();
    for (body, param) in [
        (json!({"model": "gpt-resp", "input": 5}), "input"),
        (json!({"model": "gpt-resp", "input": ["hi"]}), "input[0]"),
        (
            json!({"model": "gpt-chat", "input": "hi", "stream": "yes"}),
            "stream",
        ),
        (
            json!({"model": "gpt-chat", "input": "hi", "max_output_tokens": 0}),
            "max_output_tokens",
        ),
        (json!({"input": "hi"}), "model"),
    ] {
        let err = openai_error(app.responses(&body).await, 400).await;
        assert_eq!(err["param"], param, "{body}: {err}");
    }
    let err = openai_error(app.responses(&request("nope", false)).await, 404).await;
    assert_eq!(err["code"], "model_not_found", "{err}");
    let resp = app
        .http
        .post(app.url("/v1/responses"))
        .bearer_auth("wrong-key")
        .json(&request("gpt-chat", false))
        .send()
        .await
        .unwrap();
    openai_error(resp, 401).await;
    assert_eq!(
        mock.received().len(),
        before,
        "no refusal reached the upstream"
    );

    // Nothing is stored, so there is nothing to fetch, delete or cancel.
    for req in [
        app.get("/v1/responses/resp_x"),
        app.http
            .delete(app.url("/v1/responses/resp_x"))
            .bearer_auth(MASTER_KEY),
        app.post("/v1/responses/resp_x/cancel"),
    ] {
        let err = openai_error(req.send().await.unwrap(), 404).await;
        assert!(err["message"].as_str().unwrap().contains("resp_x"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_refuses_the_responses_door_with_insufficient_quota() {
    let mock = mock_with(fast_sim(), Faults::default()).await;
    let app = spawn_app(backends(&mock, "")).await;
    let mut body = request("gpt-chat", false);
    body["max_output_tokens"] = json!(8);
    let prompt = router::estimate::responses_prompt_of(body.as_object().unwrap());
    // Room for one request's worst case, not two.
    let budget = json!({"limit_tokens": prompt + 8, "period": "daily", "enforcement": "hard"});
    let (_, key) = team_key(&app, json!({"budget": budget}), json!({})).await;
    let send = |body: Value| {
        app.http
            .post(app.url("/v1/responses"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let resp = send(body.clone()).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    for (model, stream) in [("gpt-chat", false), ("claude", true), ("gpt-resp", true)] {
        body["model"] = json!(model);
        body["stream"] = json!(stream);
        let resp = send(body.clone()).await.unwrap();
        assert!(resp.headers().contains_key("retry-after"), "{model}");
        let err = openai_error(resp, 429).await;
        assert_eq!(err["code"], "insufficient_quota", "{model}: {err}");
        assert!(err["message"].as_str().unwrap().contains("budget"), "{err}");
    }
    assert_eq!(mock.received().len(), 1, "refused requests go nowhere");
    rows(&app.db, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_counts_responses_requests() {
    let mock = mock_with(fast_sim(), Faults::default()).await;
    let app = spawn_app(backends(&mock, "")).await;
    let (_, key) = team_key(&app, json!({}), json!({"limits": {"rpm": 2}})).await;
    let send = |model: &str| {
        app.http
            .post(app.url("/v1/responses"))
            .bearer_auth(&key)
            .json(&request(model, false))
            .send()
    };
    for (model, remaining) in [("gpt-resp", "1"), ("claude", "0")] {
        let resp = send(model).await.unwrap();
        assert_eq!(resp.status(), 200, "{model}");
        assert_eq!(resp.headers()["x-ratelimit-limit-requests"], "2");
        assert_eq!(resp.headers()["x-ratelimit-remaining-requests"], remaining);
    }
    let resp = send("gpt-chat").await.unwrap();
    assert!(resp.headers().contains_key("retry-after"));
    let err = openai_error(resp, 429).await;
    assert_eq!(err["code"], "rate_limit_exceeded", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_error_statuses_reach_a_responses_client_in_openais_shape() {
    for (status, expected) in [(400, 400), (429, 429), (500, 500), (529, 503)] {
        let mock = spawn_mock(failing(status)).await;
        let mut app = spawn_app(backends(&mock, "")).await;
        for b in Backend::ALL {
            if status == 529 && b != Backend::Anthropic {
                continue;
            }
            for stream in [false, true] {
                let what = format!("{status} on {b:?} stream={stream}");
                let resp = app.responses(&request(b.model(), stream)).await;
                if status == 429 {
                    assert_eq!(resp.headers()["retry-after"], "1", "{what}");
                }
                assert_eq!(resp.headers()["content-type"], "application/json", "{what}");
                let err = openai_error(resp, expected).await;
                assert!(
                    err["message"].as_str().unwrap().contains("mock fault"),
                    "{what}: {err}"
                );
                let record = app.next_record().await;
                assert_eq!(record.status, expected, "{what}");
                assert_eq!(record.usage, Usage::default(), "{what}: nothing to bill");
                // A 429 rests the model for its retry-after: start afresh.
                if status == 429 {
                    app = spawn_app(backends(&mock, "")).await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_budget_holds_under_a_race_through_the_responses_door() {
    // The pass-through's mock counts the prompt as admission estimates it,
    // and answers max_output_tokens: each request costs what it reserves.
    let mock = mock_with(fast_sim(), Faults::default()).await;
    let app = spawn_app(backends(&mock, "")).await;
    let mut body = request("gpt-resp", false);
    body["max_output_tokens"] = json!(8);
    let prompt = router::estimate::responses_prompt_of(body.as_object().unwrap());
    let k = 5;
    let budget =
        json!({"limit_tokens": (prompt + 8) * k, "period": "daily", "enforcement": "hard"});
    let (_, key) = team_key(&app, json!({"budget": budget}), json!({})).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(24));
    let results = futures_util::future::join_all((0..24).map(|i| {
        let (app, key, barrier) = (&app, &key, barrier.clone());
        let mut body = body.clone();
        body["stream"] = json!(i % 2 == 0);
        async move {
            barrier.wait().await;
            let resp = app
                .http
                .post(app.url("/v1/responses"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap())
        }
    }))
    .await;
    let admitted = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(admitted, k as usize, "exactly k admitted: {results:?}");
    for (status, text) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 429, "{text}");
        let err: Value = serde_json::from_str(text).unwrap();
        assert_eq!(err["error"]["code"], "insufficient_quota", "{text}");
    }
    let rows = rows(&app.db, k as usize).await;
    let spent: u64 = rows.iter().map(|r| r.usage.total()).sum();
    assert_eq!(spent, (prompt + 8) * k, "the budget, to the token");
    assert!(rows
        .iter()
        .all(|r| !r.estimated && r.endpoint == "responses"));
}
