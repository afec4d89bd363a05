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
    eventually("a probe reaches m0", async || {
        chat_on(&app, "auto").await.1 == "p0"
    })
    .await;
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

/// Ledger rows with the routing columns, oldest first.
async fn routed_rows(db: &billing::Db, n: usize) -> Vec<sqlx::any::AnyRow> {
    use sqlx::Row;
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let rows = sqlx::query(
            "SELECT request_id, client_request_id, attempt, route, requested_model, status, \
             input_tokens, cached_input_tokens, output_tokens, cost_picousd, reference_model, \
             reference_cost_picousd FROM ledger ORDER BY request_id",
        )
        .fetch_all(db.pool())
        .await
        .unwrap();
        if rows.len() >= n {
            assert_eq!(rows.len(), n);
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{} of {n} rows",
            rows.len()
        );
        let _ = rows.first().map(|r| r.try_get::<String, _>("request_id"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_attempt_is_a_ledger_row_under_the_clients_request_id() {
    use sqlx::Row;
    let (_bad, _good, app) = fallback_case(failing(500)).await;
    let resp = app.chat(chat_body("auto")).await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-tollgate-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let rows = routed_rows(&app.db, 2).await;
    let get = |r: &sqlx::any::AnyRow, c: &str| r.try_get::<String, _>(c).unwrap();
    let num = |r: &sqlx::any::AnyRow, c: &str| r.try_get::<i64, _>(c).unwrap();
    for (r, attempt, status, model) in [(&rows[0], 1, 500, "m0"), (&rows[1], 2, 200, "m1")] {
        assert_eq!(get(r, "client_request_id"), id);
        assert_eq!(num(r, "attempt"), attempt);
        assert_eq!(num(r, "status"), status);
        assert_eq!(get(r, "route"), "auto");
        assert_eq!(get(r, "requested_model"), model);
    }
    assert_eq!(
        get(&rows[0], "request_id"),
        id,
        "the first attempt's id is the client's"
    );
    assert_eq!(
        num(&rows[0], "cost_picousd"),
        0,
        "a refused attempt costs nothing"
    );
    assert!(num(&rows[1], "cost_picousd") > 0);
}

#[tokio::test]
async fn the_spend_report_shows_what_routing_saved_against_the_reference() {
    use sqlx::Row;
    let (a, b) = (spawn_fast_mock().await, spawn_fast_mock().await);
    // m0 at $0.5/$1 and m1 at $2/$4 per Mtok; the reference, never called,
    // at Claude-like $3/$15.
    let cfg = config(&format!(
        "[providers.p0]\nkind = \"openai\"\nbase_url = \"{}\"\n[providers.p1]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.m0]\nprovider = \"p0\"\ninput_per_mtok = 0.5\noutput_per_mtok = 1.0\n\
         [models.m1]\nprovider = \"p1\"\ninput_per_mtok = 2.0\noutput_per_mtok = 4.0\n\
         [models.claude]\nprovider = \"p1\"\ninput_per_mtok = 3.0\noutput_per_mtok = 15.0\n\
         [routes.auto]\ncandidates = [\"m0\", \"m1\"]\nstrategy = \"cheapest\"\nreference_model = \"claude\"\n",
        a.base_url(),
        b.base_url()
    ));
    let app = spawn_app(cfg).await;
    let (key, _) = crate::billing::new_key(&app, json!({})).await;
    let client = |model: &str| {
        let mut body = chat_body(model);
        body["messages"][0]["content"] = json!(format!("a question for {model} ").repeat(30));
        app.http
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    for model in ["auto", "auto", "auto", "m1"] {
        assert_eq!(client(model).await.unwrap().status(), 200);
    }
    let rows = routed_rows(&app.db, 4).await;
    // Each row's reference cost is its own usage at the reference's prices.
    let (mut cost, mut reference, mut plain_cost) = (0i64, 0i64, 0i64);
    for r in &rows {
        let n = |c: &str| r.try_get::<i64, _>(c).unwrap();
        let route: String = r.try_get("route").unwrap();
        let tokens = n("input_tokens") + n("cached_input_tokens");
        assert!(tokens > 100 && n("output_tokens") > 0);
        if route == "auto" {
            assert_eq!(
                r.try_get::<Option<String>, _>("reference_model")
                    .unwrap()
                    .as_deref(),
                Some("claude")
            );
            // $1/Mtok is 1,000,000 picodollars a token.
            let want = n("input_tokens") * 3_000_000 + n("output_tokens") * 15_000_000;
            assert_eq!(
                r.try_get::<Option<i64>, _>("reference_cost_picousd")
                    .unwrap(),
                Some(want)
            );
            assert_eq!(
                n("cost_picousd"),
                n("input_tokens") * 500_000 + n("output_tokens") * 1_000_000,
                "served by the cheapest, m0"
            );
            cost += n("cost_picousd");
            reference += want;
        } else {
            assert_eq!(route, "m1");
            assert_eq!(
                r.try_get::<Option<i64>, _>("reference_cost_picousd")
                    .unwrap(),
                None
            );
            plain_cost += n("cost_picousd");
        }
    }
    let report = |group: &'static str| {
        let app = &app;
        async move {
            app.get(&format!("/admin/spend?group_by={group}"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let by_route = report("route").await;
    let data = by_route["data"].as_array().unwrap();
    let auto = data.iter().find(|r| r["group"] == "auto").unwrap();
    assert_eq!(auto["requests"], 3);
    assert_eq!(auto["cost_picousd"], cost);
    assert_eq!(auto["reference_cost_picousd"], reference);
    assert_eq!(auto["savings_picousd"], reference - cost);
    assert_eq!(
        auto["savings_usd"].as_str().unwrap(),
        billing::Picodollars(reference - cost).usd()
    );
    assert!(
        reference > 5 * cost,
        "the cheap route saved most of the reference cost"
    );
    let m1 = data.iter().find(|r| r["group"] == "m1").unwrap();
    assert_eq!(
        m1["reference_cost_picousd"], plain_cost,
        "no reference: savings are zero"
    );
    assert_eq!(m1["savings_picousd"], 0);
    // Per team and per key, the same totals.
    for group in ["team", "key"] {
        let r = report(group).await;
        let row = &r["data"][0];
        assert_eq!(row["cost_picousd"], cost + plain_cost, "{group}");
        assert_eq!(row["savings_picousd"], reference - cost, "{group}");
    }
    let csv = app
        .get("/admin/spend?group_by=route&format=csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("group,requests,")
            && csv
                .lines()
                .next()
                .unwrap()
                .ends_with(",cost_usd,reference_cost_usd,savings_usd")
    );
    assert!(csv.contains(&format!(
        ",{}\n",
        billing::Picodollars(reference - cost).usd()
    )));
    // Only the route's rows, by filter.
    let only: Value = app
        .get("/admin/spend?group_by=model&route=auto")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(only["data"].as_array().unwrap().len(), 1);
    assert_eq!(only["data"][0]["group"], "m0");
}
