//! Routes end to end: several mock upstreams at different prices and with
//! different faults behind one route name, through both doors.

use std::time::Duration;

use loadtest::mock::{Faults, MockHandle, MockOptions};
use serde_json::{json, Value};

use crate::helpers::*;

fn failing(status: u16) -> MockOptions {
    MockOptions {
        sim: fast_sim(),
        faults: Faults {
            status: Some(status),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Providers `p0`, `p1`, ... at `mocks` (openai kind), models `m0`, `m1`, ...
/// with `prices[i]` as input and output $/Mtok, and `route`.
fn routed(mocks: &[&str], prices: &[f64], route: &str) -> gateway::Config {
    let mut text = String::new();
    for (i, base) in mocks.iter().enumerate() {
        text.push_str(&format!(
            "[providers.p{i}]\nkind = \"openai\"\nbase_url = \"{base}\"\n[providers.p{i}.timeouts]\nfirst_byte = \"1s\"\n\
             [models.m{i}]\nprovider = \"p{i}\"\ninput_per_mtok = {p}\noutput_per_mtok = {p}\n",
            p = prices[i]
        ));
    }
    text.push_str(route);
    config(&text)
}

async fn chat_on(app: &TestApp, model: &str) -> (reqwest::StatusCode, String, String, Value) {
    let resp = app.chat(chat_body(model)).await;
    let status = resp.status();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (served, attempts) = (header("x-tollgate-provider"), header("x-tollgate-attempts"));
    (status, served, attempts, resp.json().await.unwrap())
}

#[tokio::test]
async fn cheapest_sends_each_request_to_the_cheapest_model_that_can_serve_it() {
    let (a, b) = (spawn_fast_mock().await, spawn_fast_mock().await);
    let cfg = config(&format!(
        "[providers.p0]\nkind = \"openai\"\nbase_url = \"{}\"\n[providers.p1]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.big]\nprovider = \"p0\"\ninput_per_mtok = 5.0\noutput_per_mtok = 5.0\ncapabilities = [\"tools\", \"vision\"]\n\
         [models.small]\nprovider = \"p1\"\ninput_per_mtok = 0.5\noutput_per_mtok = 0.5\ncontext_window = 2000\ncapabilities = [\"tools\"]\n\
         [routes.auto]\ncandidates = [\"big\", \"small\"]\nstrategy = \"cheapest\"\n",
        a.base_url(),
        b.base_url()
    ));
    let mut app = spawn_app(cfg).await;
    let (status, served, attempts, body) = chat_on(&app, "auto").await;
    assert_eq!(
        (status.as_u16(), served.as_str(), attempts.as_str()),
        (200, "p1", "1")
    );
    assert!(app
        .metrics()
        .await
        .contains("tollgate_route_choices_total{model=\"small\",route=\"auto\"} 1"));
    assert_eq!(
        body["model"], "auto",
        "the client sees the route it asked for"
    );
    let record = app.next_record().await;
    assert_eq!(record.ctx.route, "auto");
    assert_eq!(record.ctx.requested_model, "small");
    // An image needs vision: only the dear model has it.
    let mut img = chat_body("auto");
    img["messages"][0]["content"] = json!([{"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]);
    let resp = app.chat(img).await;
    assert_eq!(resp.headers()["x-tollgate-provider"], "p0");
    // A long prompt does not fit the small model's context window.
    let mut long = chat_body("auto");
    long["messages"][0]["content"] = json!("lorem ipsum dolor sit amet ".repeat(600));
    let resp = app.chat(long).await;
    assert_eq!(resp.headers()["x-tollgate-provider"], "p0");
    // Nothing can serve a JSON schema here: a 400 that says why.
    let mut schema = chat_body("auto");
    schema["response_format"] =
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}});
    let resp = app.chat(schema).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("'big' lacks json_schema") && msg.contains("'small' lacks json_schema"),
        "{msg}"
    );
}

/// A route over a failing upstream, then a healthy one.
async fn fallback_case(first: MockOptions) -> (MockHandle, MockHandle, TestApp) {
    let bad = spawn_mock(first).await;
    let good = spawn_fast_mock().await;
    let cfg = routed(
        &[&bad.base_url(), &good.base_url()],
        &[1.0, 2.0],
        "[routes.auto]\ncandidates = [\"m0\", \"m1\"]\n",
    );
    let app = spawn_app(cfg).await;
    (bad, good, app)
}

#[tokio::test]
async fn a_failed_attempt_falls_back_to_the_next_candidate() {
    // Refused connection: a port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    let good = spawn_fast_mock().await;
    let mut app = spawn_app(routed(
        &[&closed, &good.base_url()],
        &[1.0, 2.0],
        "[routes.auto]\ncandidates = [\"m0\", \"m1\"]\n",
    ))
    .await;
    let (status, served, attempts, _) = chat_on(&app, "auto").await;
    assert_eq!(
        (status.as_u16(), served.as_str(), attempts.as_str()),
        (200, "p1", "2")
    );
    // Both attempts are recorded: the failed one with no tokens.
    let first = app.next_record().await;
    let second = app.next_record().await;
    assert_eq!((first.ctx.attempt, second.ctx.attempt), (1, 2));
    assert_eq!(first.usage, router::Usage::default());
    assert!(second.usage.output > 0);

    for (options, reason) in [
        (failing(429), "rate_limited"),
        (failing(500), "server_error"),
        (
            MockOptions {
                sim: fast_sim(),
                faults: Faults {
                    stall_after: Some(0),
                    ..Default::default()
                },
                ..Default::default()
            },
            "timeout",
        ),
    ] {
        let (bad, good, app) = fallback_case(options).await;
        let (status, served, attempts, _) = chat_on(&app, "auto").await;
        assert_eq!(
            (status.as_u16(), served.as_str(), attempts.as_str()),
            (200, "p1", "2"),
            "{reason}"
        );
        assert_eq!((bad.request_count(), good.request_count()), (1, 1));
        if reason == "rate_limited" {
            // The mock asked to retry after 1 s: until then m0 is skipped.
            let (_, served, attempts, _) = chat_on(&app, "auto").await;
            assert_eq!((served.as_str(), attempts.as_str()), ("p1", "1"));
            assert_eq!(bad.request_count(), 1, "m0 rests for its retry-after");
        }
        let metrics = app.metrics().await;
        assert!(
            metrics.contains(&format!(
                "tollgate_fallbacks_total{{model=\"m0\",reason=\"{reason}\",route=\"auto\"}} 1"
            )),
            "{reason}: {metrics}"
        );
    }
}

#[tokio::test]
async fn when_every_candidate_fails_the_last_error_is_answered() {
    let (a, b) = (
        spawn_mock(failing(500)).await,
        spawn_mock(failing(429)).await,
    );
    let app = spawn_app(routed(
        &[&a.base_url(), &b.base_url()],
        &[1.0, 2.0],
        "[routes.auto]\ncandidates = [\"m0\", \"m1\"]\n",
    ))
    .await;
    let resp = app.chat(chat_body("auto")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["x-tollgate-attempts"], "2");
    assert_eq!(resp.headers()["retry-after"], "1");
}

#[tokio::test]
async fn a_stream_does_not_fall_back_after_its_first_byte() {
    let (bad, good, mut app) = fallback_case(MockOptions {
        sim: fast_sim(),
        faults: Faults {
            disconnect_after: Some(2),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let mut body = chat_body("auto");
    body["stream"] = json!(true);
    let resp = app.chat(body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-attempts"], "1");
    let data = read_sse(resp).await;
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_disconnected");
    assert_eq!((bad.request_count(), good.request_count()), (1, 0));
    assert_eq!(app.next_record().await.ctx.attempt, 1);
}

#[tokio::test]
async fn the_breaker_opens_skips_probes_and_recovers() {
    let bad = spawn_mock(failing(500)).await;
    let good = spawn_fast_mock().await;
    let cfg = routed(
        &[&bad.base_url(), &good.base_url()],
        &[1.0, 2.0],
        "[routes.auto]\ncandidates = [\"m0\", \"m1\"]\n[router]\nbreaker_failures = 2\nbreaker_cooldown = \"300ms\"\n",
    );
    let app = spawn_app(cfg).await;
    for _ in 0..2 {
        let (_, served, attempts, _) = chat_on(&app, "auto").await;
        assert_eq!((served.as_str(), attempts.as_str()), ("p1", "2"));
    }
    assert!(app
        .metrics()
        .await
        .contains("tollgate_breaker_state{model=\"m0\"} 1"));
    // Open: m0 is skipped without a request.
    let (_, served, attempts, _) = chat_on(&app, "auto").await;
    assert_eq!((served.as_str(), attempts.as_str()), ("p1", "1"));
    assert_eq!(bad.request_count(), 2);
    // m0 recovers; after the cooldown one probe goes to it, and it closes.
    bad.set_options(MockOptions {
        sim: fast_sim(),
        ..Default::default()
    });
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (_, served, _, _) = chat_on(&app, "auto").await;
        if served == "p0" {
            break;
        }
        assert!(tokio::time::Instant::now() < until, "no probe reached m0");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(app
        .metrics()
        .await
        .contains("tollgate_breaker_state{model=\"m0\"} 0"));
    let (_, served, attempts, _) = chat_on(&app, "auto").await;
    assert_eq!((served.as_str(), attempts.as_str()), ("p0", "1"));
}

#[tokio::test]
async fn a_route_serves_the_anthropic_door_across_provider_kinds() {
    let bad = spawn_mock(failing(503)).await;
    let good = spawn_fast_mock().await;
    let cfg = config(&format!(
        "[providers.ant]\nkind = \"anthropic\"\nbase_url = \"http://{}\"\n[providers.oai]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.claude]\nprovider = \"ant\"\n[models.gpt]\nprovider = \"oai\"\n\
         [routes.coder]\ncandidates = [\"claude\", \"gpt\"]\n",
        bad.addr(),
        good.base_url()
    ));
    let app = spawn_app(cfg).await;
    let resp = app
        .messages(&json!({"model": "coder", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-provider"], "oai");
    assert_eq!(resp.headers()["x-tollgate-attempts"], "2");
    let msg: Value = resp.json().await.unwrap();
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["model"], "coder");
    // The route is listed with the models.
    let list: Value = app
        .get("/v1/models")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"coder"), "{ids:?}");
}
