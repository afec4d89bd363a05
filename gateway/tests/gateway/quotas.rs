//! Budgets and rate limits end to end: a 64-way race against a hard budget
//! through both doors, in USD and in tokens; rate limits with their headers;
//! changes that reach the gateway within a second.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::*;

/// Model `m` at $1/Mtok in and $2/Mtok out on a fast mock answering
/// 8 tokens (as many as the requests below allow), so each request costs
/// exactly what it reserves.
async fn priced_app() -> (loadtest::mock::MockHandle, TestApp) {
    let mock = spawn_fast_mock().await;
    let cfg = config(&format!(
        "[billing]\nkey_refresh_interval = \"100ms\"\n\
         [providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.m]\nprovider = \"up\"\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n",
        mock.base_url()
    ));
    (mock, spawn_app(cfg).await)
}

/// A team with `team` settings and a key in it: (team id, key secret).
pub(crate) async fn team_key(app: &TestApp, team: Value, key: Value) -> (String, String) {
    let (_, org) = app
        .admin(
            reqwest::Method::POST,
            "/admin/orgs",
            json!({"name": format!("org-{}", uuid::Uuid::now_v7())}),
        )
        .await;
    let mut body = json!({"org_id": org["id"], "name": "team"});
    body.as_object_mut()
        .unwrap()
        .extend(team.as_object().unwrap().clone());
    let (status, t) = app.admin(reqwest::Method::POST, "/admin/teams", body).await;
    assert_eq!(status, 201, "{t}");
    let mut body = json!({"team_id": t["id"]});
    body.as_object_mut()
        .unwrap()
        .extend(key.as_object().unwrap().clone());
    let (status, k) = app.admin(reqwest::Method::POST, "/admin/keys", body).await;
    assert_eq!(status, 201, "{k}");
    (
        t["id"].as_str().unwrap().to_owned(),
        k["key"].as_str().unwrap().to_owned(),
    )
}

pub(crate) fn chat(max_tokens: u64) -> Value {
    json!({"model": "m", "max_tokens": max_tokens,
           "messages": [{"role": "user", "content": "count the sheep in the meadow"}]})
}

pub(crate) fn messages(max_tokens: u64) -> Value {
    json!({"model": "m", "max_tokens": max_tokens,
           "messages": [{"role": "user", "content": "count the sheep in the meadow"}]})
}

/// Posts `body` to `path` with `key` the way that door's SDK would.
pub(crate) async fn post_as(
    app: &TestApp,
    key: &str,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    let req = app.http.post(app.url(path)).json(body);
    let req = if path == "/v1/messages" {
        req.header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
    } else {
        req.bearer_auth(key)
    };
    req.send().await.unwrap()
}

pub(crate) async fn ledger_cost_and_tokens(db: &billing::Db, n: usize) -> (i64, i64) {
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let r = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n, CAST(COALESCE(SUM(cost_picousd), 0) AS BIGINT) AS c, \
             CAST(COALESCE(SUM(input_tokens + cached_input_tokens + cache_write_tokens + output_tokens), 0) AS BIGINT) AS t FROM ledger",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        let rows: i64 = r.try_get("n").unwrap();
        if rows as usize >= n {
            assert_eq!(rows as usize, n, "one row per admitted request");
            return (r.try_get("c").unwrap(), r.try_get("t").unwrap());
        }
        assert!(tokio::time::Instant::now() < until, "{rows} of {n} rows");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// 64 requests at once against a hard team budget that fits exactly `k`.
async fn race(door: &str, unit: &str) {
    let (_mock, app) = priced_app().await;
    let (body, prompt) = if door == "/v1/messages" {
        let b = messages(8);
        let p = router::estimate::messages_prompt(&b);
        (b, p)
    } else {
        let b = chat(8);
        let p = router::estimate::chat_prompt(&b);
        (b, p)
    };
    // Worst case: the prompt at $1/Mtok, 8 output tokens at $2/Mtok.
    let reserved = prompt as i64 * 1_000_000 + 8 * 2_000_000;
    let k = 11;
    let budget = if unit == "usd" {
        json!({"limit_usd": (reserved * k) as f64 / 1e12, "period": "monthly", "enforcement": "hard"})
    } else {
        json!({"limit_tokens": (prompt + 8) * k as u64, "period": "daily", "enforcement": "hard"})
    };
    let (_, key) = team_key(&app, json!({"budget": budget}), json!({})).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(64));
    let results = join_all((0..64).map(|i| {
        let (app, key, body, barrier) = (&app, &key, &body, barrier.clone());
        async move {
            let mut body = body.clone();
            body["stream"] = json!(i % 2 == 0);
            barrier.wait().await;
            let resp = post_as(app, key, door, &body).await;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let text = resp.text().await.unwrap();
            (status, headers, text)
        }
    }))
    .await;
    let admitted = results.iter().filter(|r| r.0 == 200).count();
    assert_eq!(admitted, k as usize, "{door} {unit}: exactly k admitted");
    for (status, headers, text) in results.iter().filter(|r| r.0 != 200) {
        assert_eq!(*status, 429, "{text}");
        let err: Value = serde_json::from_str(text).unwrap();
        if door == "/v1/messages" {
            assert_eq!(err["error"]["type"], "rate_limit_error", "{text}");
        } else {
            assert_eq!(err["error"]["code"], "insufficient_quota", "{text}");
        }
        let msg = err["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("The team's") && msg.contains("It resets at"),
            "{msg}"
        );
        assert!(headers.contains_key("retry-after"));
    }
    let (cost, tokens) = ledger_cost_and_tokens(&app.db, k as usize).await;
    if unit == "usd" {
        assert_eq!(
            cost,
            reserved * k,
            "each cost what it reserved; the total is the limit"
        );
    } else {
        assert_eq!(tokens, ((prompt + 8) * k as u64) as i64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hard_usd_budget_admits_exactly_what_fits_through_the_openai_door() {
    race("/v1/chat/completions", "usd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hard_usd_budget_admits_exactly_what_fits_through_the_anthropic_door() {
    race("/v1/messages", "usd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hard_token_budget_admits_exactly_what_fits_through_both_doors() {
    race("/v1/chat/completions", "tokens").await;
    race("/v1/messages", "tokens").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_openais_headers() {
    let (_mock, app) = priced_app().await;
    let (_, key) = team_key(
        &app,
        json!({}),
        json!({"limits": {"rpm": 3, "tpm": 100000}}),
    )
    .await;
    for remaining in [2, 1, 0] {
        let resp = post_as(&app, &key, "/v1/chat/completions", &chat(8)).await;
        assert_eq!(resp.status(), 200);
        let h = resp.headers();
        assert_eq!(h["x-ratelimit-limit-requests"], "3");
        assert_eq!(
            h["x-ratelimit-remaining-requests"],
            remaining.to_string().as_str()
        );
        assert_eq!(h["x-ratelimit-limit-tokens"], "100000");
        assert!(h["x-ratelimit-reset-requests"]
            .to_str()
            .unwrap()
            .ends_with('s'));
    }
    let resp = post_as(&app, &key, "/v1/chat/completions", &chat(8)).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "rate_limit_exceeded");
    assert_eq!(err["error"]["type"], "requests");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("3 requests per minute"));
    // The Anthropic door says the same in Anthropic's shape.
    let resp = post_as(&app, &key, "/v1/messages", &messages(8)).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["x-ratelimit-limit-requests"], "3");
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["type"], "rate_limit_error");
    let metrics = app.metrics().await;
    let rpm = [("level", "key"), ("reason", "rpm"), ("team", "team")];
    assert_eq!(
        crate::metrics::sum(&metrics, "tollgate_quota_rejections_total", &rpm),
        2.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limits_hold_requests_in_flight() {
    let mock = spawn_mock(loadtest::mock::MockOptions {
        sim: router::sim::SimConfig {
            ttft: Duration::from_millis(400),
            ..fast_sim()
        },
        ..Default::default()
    })
    .await;
    let cfg = config(&format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n[models.m]\nprovider = \"up\"\n",
        mock.base_url()
    ));
    let app = spawn_app(cfg).await;
    let (_, key) = team_key(&app, json!({"limits": {"max_concurrent": 2}}), json!({})).await;
    let statuses: Vec<u16> = join_all((0..3).map(|i| {
        let (app, key) = (&app, &key);
        async move {
            tokio::time::sleep(Duration::from_millis(50 * i)).await;
            post_as(app, key, "/v1/chat/completions", &chat(8))
                .await
                .status()
                .as_u16()
        }
    }))
    .await;
    assert_eq!(statuses, [200, 200, 429]);
    // Once they are done there is room again.
    assert_eq!(
        post_as(&app, &key, "/v1/chat/completions", &chat(8))
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_changes_apply_within_a_second() {
    let (_mock, app) = priced_app().await;
    let (team, key) = team_key(&app, json!({}), json!({})).await;
    assert_eq!(
        post_as(&app, &key, "/v1/chat/completions", &chat(8))
            .await
            .status(),
        200
    );
    let (status, t) = app
        .admin(
            reqwest::Method::PATCH,
            &format!("/admin/teams/{team}"),
            json!({"budget": {"limit_usd": 0.000001, "period": "daily", "enforcement": "hard"}}),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["budget"]["limit_usd"], 0.000001);
    let started = std::time::Instant::now();
    loop {
        let status = post_as(&app, &key, "/v1/chat/completions", &chat(8))
            .await
            .status();
        if status == 429 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the budget applies within a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Removing it lifts it.
    let (status, _) = app
        .admin(
            reqwest::Method::PATCH,
            &format!("/admin/teams/{team}"),
            json!({"budget": null}),
        )
        .await;
    assert_eq!(status, 200);
    let started = std::time::Instant::now();
    while post_as(&app, &key, "/v1/chat/completions", &chat(8))
        .await
        .status()
        != 200
    {
        assert!(started.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Bad budgets and limits are refused with what is wrong.
    for (bad, field) in [
        (
            json!({"budget": {"period": "daily", "enforcement": "hard"}}),
            "budget",
        ),
        (
            json!({"budget": {"limit_usd": 1, "period": "hourly", "enforcement": "hard"}}),
            "budget",
        ),
        (
            json!({"limits": {"rpm": 1, "models": {"nope": {"rpm": 1}}}}),
            "limits",
        ),
    ] {
        let (status, err) = app
            .admin(reqwest::Method::PATCH, &format!("/admin/teams/{team}"), bad)
            .await;
        assert_eq!(status, 400, "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(field),
            "{err}"
        );
    }
}

/// A webhook receiver on loopback: the bodies it was sent.
async fn webhook_sink() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
) {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_budgets_serve_and_alert_once_per_threshold() {
    let (hook, received) = webhook_sink().await;
    let mock = spawn_fast_mock().await;
    let cfg = config(&format!(
        "[quotas]\nalert_thresholds = [0.5, 1.0]\nalert_webhook = \"http://{hook}/hook\"\n\
         [providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.m]\nprovider = \"up\"\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n",
        mock.base_url()
    ));
    let app = spawn_app(cfg).await;
    let body = chat(8);
    let cost = router::estimate::chat_prompt(&body) as i64 * 1_000_000 + 8 * 2_000_000;
    // Room for two and a half requests.
    let limit = cost as f64 * 2.5 / 1e12;
    let (team, key) = team_key(
        &app,
        json!({"budget": {"limit_usd": limit, "period": "monthly", "enforcement": "soft"}}),
        json!({}),
    )
    .await;
    for _ in 0..4 {
        // Soft: served even past the limit.
        assert_eq!(
            post_as(&app, &key, "/v1/chat/completions", &body)
                .await
                .status(),
            200
        );
    }
    eventually("two alerts reach the webhook", async || {
        received.lock().unwrap().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let alerts = received.lock().unwrap().clone();
    assert_eq!(alerts.len(), 2, "once per threshold: {alerts:?}");
    assert_eq!(alerts[0]["threshold"], 0.5);
    assert_eq!(alerts[1]["threshold"], 1.0);
    for a in &alerts {
        assert_eq!(
            (a["level"].as_str(), a["id"].as_str()),
            (Some("team"), Some(team.as_str()))
        );
        assert_eq!(
            (a["unit"].as_str(), a["enforcement"].as_str()),
            (Some("usd"), Some("soft"))
        );
    }
    let metrics = app.metrics().await;
    for t in ["0.5", "1"] {
        assert!(
            metrics.contains(&format!(
                "tollgate_budget_alerts_total{{level=\"team\",threshold=\"{t}\",unit=\"usd\"}} 1"
            )),
            "{metrics}"
        );
    }
    let spent = [("level", "team"), ("team", "team"), ("kind", "spent")];
    let m = app.metrics().await;
    let gauge = crate::metrics::matching(&m, "tollgate_budget_usd", &spent);
    assert_eq!(gauge.len(), 1, "the budget gauge, by name: {m}");
    // The key holder sees what is used and what remains.
    let me = app.get_json_as(&key, "/v1/me").await;
    let b = &me["team"]["budget"];
    assert_eq!(b["enforcement"], "soft");
    assert_eq!(b["spent_usd"], billing::Picodollars(4 * cost).usd());
    assert_eq!(b["remaining_usd"], "0.000000000000");
    assert!(b["resets_at"].as_str().unwrap().ends_with("T00:00:00.000Z"));
    assert_eq!(me["key"]["budget"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_moves_to_its_cheaper_tier_when_the_budget_runs_low() {
    let (dear, cheap) = (spawn_fast_mock().await, spawn_fast_mock().await);
    let cfg = config(&format!(
        "[providers.p0]\nkind = \"openai\"\nbase_url = \"{}\"\n[providers.p1]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.dear]\nprovider = \"p0\"\ninput_per_mtok = 10.0\noutput_per_mtok = 10.0\n\
         [models.cheap]\nprovider = \"p1\"\ninput_per_mtok = 0.1\noutput_per_mtok = 0.1\n\
         [routes.auto]\ncandidates = [\"dear\"]\nlow_budget = {{ below = 0.5, candidates = [\"cheap\"] }}\n",
        dear.base_url(),
        cheap.base_url()
    ));
    let app = spawn_app(cfg).await;
    let mut body = chat(8);
    body["model"] = json!("auto");
    let dear_cost = (router::estimate::chat_prompt(&body) as i64 + 8) * 10_000_000;
    let (_, key) = team_key(
        &app,
        json!({"budget": {"limit_usd": (dear_cost * 3) as f64 / 1e12, "period": "monthly", "enforcement": "hard"}}),
        json!({}),
    )
    .await;
    let mut served = Vec::new();
    for _ in 0..4 {
        let resp = post_as(&app, &key, "/v1/chat/completions", &body).await;
        assert_eq!(resp.status(), 200);
        let tier = resp
            .headers()
            .get("x-tollgate-tier")
            .map(|v| v.to_str().unwrap().to_owned());
        served.push((
            resp.headers()["x-tollgate-provider"]
                .to_str()
                .unwrap()
                .to_owned(),
            tier,
        ));
        // Let the ledger record settle before the next request looks.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let low = Some("low_budget".to_owned());
    assert_eq!(
        served,
        [
            ("p0".to_owned(), None),
            ("p0".to_owned(), None),
            ("p1".to_owned(), low.clone()),
            ("p1".to_owned(), low)
        ],
        "a third of the budget left is under the tier's half"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_shorter_than_reserved_gives_the_difference_back() {
    let (_mock, app) = priced_app().await;
    // Room for two reservations of 200 output tokens; the mock answers 8.
    let mut body = chat(200);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let prompt = router::estimate::chat_prompt(&chat(200)) as i64;
    let reserved = prompt * 1_000_000 + 200 * 2_000_000;
    let actual = prompt * 1_000_000 + 8 * 2_000_000;
    let (_, key) = team_key(
        &app,
        json!({"budget": {"limit_usd": (reserved * 2) as f64 / 1e12, "period": "monthly", "enforcement": "hard"}}),
        json!({}),
    )
    .await;
    // Two streams held open at once take all the room...
    let (a, b) = tokio::join!(
        post_as(&app, &key, "/v1/chat/completions", &body),
        post_as(&app, &key, "/v1/chat/completions", &body)
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    read_sse(a).await;
    read_sse(b).await;
    // ...and once they end, what they did not use is free again. The i-th
    // request (from 0) is admitted while i * actual + reserved fits in
    // 2 * reserved, so floor(reserved / actual) + 1 are served in all.
    let total = (reserved / actual) as usize + 1;
    let mut served = 0;
    loop {
        let resp = post_as(&app, &key, "/v1/chat/completions", &body).await;
        if resp.status() != 200 {
            assert_eq!(resp.status(), 429);
            break;
        }
        read_sse(resp).await;
        served += 1;
        assert!(served <= 100);
    }
    // Each settled at its actual cost, so more fit than the reservations alone.
    let (cost, _) = ledger_cost_and_tokens(&app.db, 2 + served).await;
    assert_eq!(cost, actual * (2 + served) as i64);
    assert!(cost <= reserved * 2, "never over the limit");
    assert_eq!(2 + served, total);
}

/// A stream that outruns its reservation (a vendor ignoring `max_tokens`)
/// extends it while the budget has room and is charged in full; the next
/// one, with no room left, is cut with an error event and charged for what
/// it delivered. (`runaway.rs` races 16 such streams through every door.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_longer_than_reserved_is_extended_then_cut_at_the_budget() {
    // Asked for 4 tokens, the vendor streams 40.
    let mock = spawn_mock(loadtest::mock::MockOptions {
        sim: router::sim::SimConfig {
            output_tokens: 40,
            ignore_max_tokens: true,
            ..fast_sim()
        },
        ..Default::default()
    })
    .await;
    let cfg = config(&format!(
        "[billing]\nkey_refresh_interval = \"100ms\"\n\
         [quotas]\nstream_step_tokens = 36\n\
         [providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.m]\nprovider = \"up\"\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n",
        mock.base_url()
    ));
    let app = spawn_app(cfg).await;
    let mut body = chat(4);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let prompt = router::estimate::chat_prompt(&chat(4)) as i64;
    let reserved = prompt * 1_000_000 + 4 * 2_000_000;
    let actual = prompt * 1_000_000 + 40 * 2_000_000;
    // Room for one whole answer and one more reservation.
    let limit = actual + reserved;
    let (_, key) = team_key(
        &app,
        json!({"budget": {"limit_usd": limit as f64 / 1e12, "period": "monthly", "enforcement": "hard"}}),
        json!({}),
    )
    .await;
    let first = post_as(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(first.status(), 200);
    let events = json_events(&read_sse(first).await);
    assert!(
        events.iter().all(|e| e.get("error").is_none()),
        "{events:?}"
    );
    // Ten times longer than reserved, extended in one step: all of it is
    // charged.
    let (cost, _) = ledger_cost_and_tokens(&app.db, 1).await;
    assert_eq!(cost, actual);
    // The second is admitted (its reservation fits) but has no room to
    // run past it: it ends with OpenAI's quota error event.
    let second = post_as(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(second.status(), 200, "actual + reserved still fits");
    let events = json_events(&read_sse(second).await);
    let last = events.last().unwrap();
    assert_eq!(last["error"]["type"], "insufficient_quota", "{events:?}");
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no room for more of this answer"));
    let delivered: String = events
        .iter()
        .filter_map(|e| {
            e.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect();
    let (cost, _) = ledger_cost_and_tokens(&app.db, 2).await;
    let output = router::estimate::count_text(&delivered) as i64;
    assert!((4..40).contains(&output), "cut after {output} tokens");
    assert_eq!(cost, actual + prompt * 1_000_000 + output * 2_000_000);
    // Over the limit by at most the event that outran the reservation
    // (well within one step).
    assert!(cost <= limit + 36 * 2_000_000, "{cost} against {limit}");
    let third = post_as(&app, &key, "/v1/chat/completions", &body).await;
    assert_eq!(third.status(), 429, "the budget counted both");
}

/// A worst case is reserved whole, however large (no cap at a charge's
/// $10,000), and with two output limits the larger one counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worst_case_is_held_back_whole_and_at_the_larger_output_limit() {
    let mock = spawn_fast_mock().await;
    // $1 an output token: 100,000 tokens are a $100,000 worst case.
    let cfg = config(&format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.m]\nprovider = \"up\"\ninput_per_mtok = 1.0\noutput_per_mtok = 1000000.0\n",
        mock.base_url()
    ));
    let app = spawn_app(cfg).await;
    let budget =
        json!({"budget": {"limit_usd": 10001, "period": "monthly", "enforcement": "hard"}});
    let (_, key) = team_key(&app, budget, json!({})).await;
    let resp = post_as(&app, &key, "/v1/chat/completions", &chat(100_000)).await;
    assert_eq!(resp.status(), 429);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "insufficient_quota");
    // Vendors differ in which limit they honour: the larger is reserved.
    let mut both = chat(100_000);
    both["max_completion_tokens"] = json!(5);
    let resp = post_as(&app, &key, "/v1/chat/completions", &both).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(mock.request_count(), 0, "nothing reached the upstream");
    // 5,000 tokens ($5,000 at most) fit.
    let resp = post_as(&app, &key, "/v1/chat/completions", &chat(5_000)).await;
    assert_eq!(resp.status(), 200);
}
