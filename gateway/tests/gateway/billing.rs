//! Keys, prices and the ledger end to end: every request the gateway accepts
//! is one ledger row, priced, on SQLite and on Postgres.

use std::time::Duration;

use futures_util::StreamExt;
use loadtest::mock::{Faults, MockOptions};
use router::sim;
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::*;

/// A ledger row as the tests read it back.
#[derive(Debug, Clone, PartialEq)]
pub struct Billed {
    pub request_id: String,
    pub key_id: Option<String>,
    pub outcome: String,
    pub stream: bool,
    pub tokens: [i64; 5],
    pub cost: i64,
    pub estimated: bool,
}

pub async fn ledger(db: &billing::Db) -> Vec<Billed> {
    sqlx::query(
        "SELECT request_id, key_id, outcome, stream, input_tokens, cached_input_tokens, cache_write_tokens, \
         output_tokens, reasoning_tokens, cost_picousd, usage_estimated FROM ledger ORDER BY request_id",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| Billed {
        request_id: r.try_get("request_id").unwrap(),
        key_id: r.try_get("key_id").unwrap(),
        outcome: r.try_get("outcome").unwrap(),
        stream: r.try_get::<i64, _>("stream").unwrap() == 1,
        tokens: [
            r.try_get("input_tokens").unwrap(),
            r.try_get("cached_input_tokens").unwrap(),
            r.try_get("cache_write_tokens").unwrap(),
            r.try_get("output_tokens").unwrap(),
            r.try_get("reasoning_tokens").unwrap(),
        ],
        cost: r.try_get("cost_picousd").unwrap(),
        estimated: r.try_get::<i64, _>("usage_estimated").unwrap() == 1,
    })
    .collect()
}

/// Waits until the ledger holds `n` rows.
pub async fn ledger_with(db: &billing::Db, n: usize) -> Vec<Billed> {
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let rows = ledger(db).await;
        if rows.len() >= n {
            assert_eq!(rows.len(), n, "no more rows than requests");
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "only {} of {n} rows reached the ledger",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates an org, a team and a key through the admin API.
pub async fn new_key(app: &TestApp, extra: Value) -> (String, Value) {
    let post = |path: &'static str, body: Value| async move {
        let resp = app.post(path).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 201, "{path}");
        resp.json::<Value>().await.unwrap()
    };
    let org = post(
        "/admin/orgs",
        json!({"name": format!("org-{}", uuid::Uuid::now_v7())}),
    )
    .await;
    let team = post("/admin/teams", json!({"org_id": org["id"], "name": "team"})).await;
    let mut body = json!({"team_id": team["id"], "name": "test key"});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    let key = post("/admin/keys", body).await;
    (key["key"].as_str().unwrap().to_owned(), key)
}

fn priced_mock_config(mock: &loadtest::mock::MockHandle) -> gateway::Config {
    config(&format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n[models.m]\nprovider = \"up\"\nupstream_model = \"deepseek-v4-pro\"\n",
        mock.base_url()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_created_used_and_revoked() {
    let mock = spawn_fast_mock().await;
    let mut app = spawn_app(priced_mock_config(&mock)).await;
    let (secret, key) = new_key(&app, json!({})).await;
    assert!(secret.starts_with("tg-") && secret.len() >= 3 + 43);

    let ok = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&secret)
        .json(&chat_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let rec = app.next_record().await;
    assert_eq!(
        rec.ctx.caller.key().map(|k| k.id.as_str()),
        key["id"].as_str()
    );
    // Anthropic clients send x-api-key.
    let ok = app
        .http
        .post(app.url("/v1/chat/completions"))
        .header("x-api-key", &secret)
        .json(&chat_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    app.next_record().await;

    let revoked = app
        .post(&format!(
            "/admin/keys/{}/revoke",
            key["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let after = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&secret)
        .json(&chat_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.status(),
        401,
        "revocation takes effect at once on this replica"
    );
    let body: Value = after.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("revoked"));

    let rows = ledger_with(&app.db, 2).await;
    assert!(rows
        .iter()
        .all(|r| r.key_id.as_deref() == key["id"].as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_another_replica_within_a_second() {
    let mock = spawn_fast_mock().await;
    let a = spawn_app(priced_mock_config(&mock)).await;
    // Replica B shares A's database, with a spool of its own.
    let mut cfg = priced_mock_config(&mock);
    let url = format!("sqlite://{}", a.dir.path().join("tollgate.db").display());
    cfg.database.url = gateway::config::Secret::new(url);
    let b_dir = tempfile::tempdir().unwrap();
    cfg.ledger.spool_dir = b_dir.path().join("spool");
    let b = spawn_app_in(cfg, b_dir).await;

    let (secret, key) = new_key(&a, json!({})).await;
    let call = |app: &TestApp| {
        app.http
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&secret)
            .json(&chat_body("m"))
            .send()
    };
    assert_eq!(
        call(&b).await.unwrap().status(),
        200,
        "B knows the key (and caches it)"
    );
    assert_eq!(
        a.post(&format!(
            "/admin/keys/{}/revoke",
            key["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .status(),
        200
    );
    let revoked_at = std::time::Instant::now();
    loop {
        if call(&b).await.unwrap().status() == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "B still accepts the key after a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_unknown_and_malformed_keys_are_401_and_other_models_403() {
    let mock = spawn_fast_mock().await;
    let mut cfg = priced_mock_config(&mock);
    cfg.models.insert("other".into(), cfg.models["m"].clone());
    let app = spawn_app(cfg).await;
    // The admin API refuses a past expiry; the store takes one, as a key that
    // has since expired looks.
    let past = app
        .post("/admin/keys")
        .json(&json!({"team_id": "x", "expires_at": "2020-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(past.status(), 400);
    let (_, live) = new_key(&app, json!({})).await;
    let expired = billing::tenancy::Tenancy::new(app.db.clone())
        .create_key(billing::tenancy::KeySpec {
            team_id: live["team_id"].as_str().unwrap().to_owned(),
            expires_at_ms: Some(billing::db::now_ms() - 1000),
            ..Default::default()
        })
        .await
        .unwrap()
        .key;
    let (limited, _) = new_key(&app, json!({"allowed_models": ["m"]})).await;
    let call = |key: String, model: &'static str| {
        app.http
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat_body(model))
            .send()
    };
    let resp = call(expired, "m").await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("expired"));
    let unknown = format!("tg-{}", "A".repeat(43));
    assert_eq!(call(unknown, "m").await.unwrap().status(), 401);
    assert_eq!(call("sk-not-ours".into(), "m").await.unwrap().status(), 401);
    assert_eq!(call(limited.clone(), "m").await.unwrap().status(), 200);
    let resp = call(limited.clone(), "other").await.unwrap();
    assert_eq!(resp.status(), 403);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "model_not_allowed");
    // A key is not an admin.
    let admin = app
        .http
        .get(app.url("/admin/keys"))
        .bearer_auth(&limited)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 403);
    let bad = app
        .post("/admin/keys")
        .json(&json!({"team_id": "x", "expires_at": "tomorrow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// N concurrent mixed requests: exactly N rows, with the mock's own token counts.
pub async fn exact_under_concurrency(
    mut app: TestApp,
    mock: &loadtest::mock::MockHandle,
    sim: &sim::SimConfig,
) {
    let (secret, key) = new_key(&app, json!({})).await;
    const N: usize = 120;
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let client = app.http.clone();
            let url = app.url("/v1/chat/completions");
            let secret = secret.clone();
            tokio::spawn(async move {
                let mut body = json!({"model": "m", "messages": [{"role": "user", "content": format!("request {i} {}", "word ".repeat(i % 17))}]});
                if i % 2 == 0 {
                    body["stream"] = json!(true);
                }
                let resp = client.post(url).bearer_auth(secret).json(&body).send().await.unwrap();
                assert_eq!(resp.status(), 200);
                resp.bytes().await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rows = ledger_with(&app.db, N).await;
    assert_eq!(rows.iter().filter(|r| r.stream).count(), N / 2);
    assert!(rows.iter().all(|r| r.outcome == "complete"
        && !r.estimated
        && r.key_id.as_deref() == key["id"].as_str()));
    // The mock's own figures for what it received.
    let mut want = [0i64; 5];
    for received in mock.received() {
        let plan = sim::plan(&received.body, sim);
        let prompt = plan.prompt_tokens as i64;
        let cached = plan.cached_tokens as i64;
        for (w, v) in want.iter_mut().zip([
            prompt - cached,
            cached,
            0,
            plan.completion_tokens() as i64,
            plan.reasoning.len() as i64,
        ]) {
            *w += v;
        }
    }
    let mut got = [0i64; 5];
    for r in &rows {
        for (g, v) in got.iter_mut().zip(r.tokens) {
            *g += v;
        }
    }
    assert_eq!(got, want, "token sums equal the upstream's own counts");
    let price = router::price::builtin("deepseek-v4-pro").unwrap();
    let cost: i64 = rows.iter().map(|r| r.cost).sum();
    let expected = billing::cost(
        &router::Usage {
            input: want[0] as u64,
            cached_input: want[1] as u64,
            cache_write: 0,
            output: want[3] as u64,
            reasoning: want[4] as u64,
        },
        &price,
    );
    assert_eq!(
        cost, expected.0,
        "the sum of row costs is the cost of the summed usage"
    );
    while app.try_record().is_some() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_is_exact_under_concurrency_on_sqlite() {
    let sim = sim::SimConfig {
        cached_tokens: 3,
        reasoning_tokens: 2,
        ..fast_sim()
    };
    let mock = spawn_mock(MockOptions {
        sim: sim.clone(),
        ..Default::default()
    })
    .await;
    let app = spawn_app(priced_mock_config(&mock)).await;
    exact_under_concurrency(app, &mock, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_is_exact_under_concurrency_on_postgres() {
    let Some(pg) = billing::testing::postgres().await else {
        return;
    };
    let sim = sim::SimConfig {
        cached_tokens: 3,
        reasoning_tokens: 2,
        ..fast_sim()
    };
    let mock = spawn_mock(MockOptions {
        sim: sim.clone(),
        ..Default::default()
    })
    .await;
    let mut cfg = priced_mock_config(&mock);
    cfg.database.url = gateway::config::Secret::new(pg.url.clone());
    let app = spawn_app(cfg).await;
    exact_under_concurrency(app, &mock, &sim).await;
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_stream_is_billed() {
    let mock = spawn_mock(MockOptions {
        sim: fast_sim(),
        faults: Faults {
            hold_after: Some(4),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let app = spawn_app(priced_mock_config(&mock)).await;
    let mut body = chat_body("m");
    body["stream"] = json!(true);
    let mut stream = app.chat(body).await.bytes_stream();
    let mut seen = String::new();
    while sse_data(&seen).len() < 4 {
        seen.push_str(std::str::from_utf8(&stream.next().await.unwrap().unwrap()).unwrap());
    }
    drop(stream);
    let rows = ledger_with(&app.db, 1).await;
    assert_eq!(rows[0].outcome, "client_disconnected");
    assert!(rows[0].estimated);
    assert!(rows[0].tokens[0] > 0 && rows[0].tokens[3] > 0);
    assert!(rows[0].cost > 0, "never billed as zero");
    mock.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_header_matches_the_ledger_and_me_shows_the_spend() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(priced_mock_config(&mock)).await;
    let (secret, key) = new_key(&app, json!({})).await;
    let resp = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&secret)
        .json(&chat_body("m"))
        .send()
        .await
        .unwrap();
    let header = resp.headers()["x-tollgate-cost-usd"]
        .to_str()
        .unwrap()
        .to_owned();
    let id = resp.headers()["x-tollgate-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let rows = ledger_with(&app.db, 1).await;
    assert_eq!(rows[0].request_id, id);
    assert_eq!(header, billing::Picodollars(rows[0].cost).usd());

    let me: Value = app
        .http
        .get(app.url("/v1/me"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["key"]["id"], key["id"]);
    assert_eq!(me["team"]["id"], key["team_id"]);
    assert_eq!(me["spend"]["today"]["requests"], 1);
    assert_eq!(me["spend"]["month"]["cost_usd"], header.as_str());
    assert!(!me.to_string().contains(&secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_reports_agree_with_the_ledger_rows() {
    let mock = spawn_fast_mock().await;
    let app = spawn_app(priced_mock_config(&mock)).await;
    let (k1, key1) = new_key(&app, json!({})).await;
    let (k2, key2) = new_key(&app, json!({})).await;
    for (secret, n) in [(&k1, 3), (&k2, 2)] {
        for _ in 0..n {
            let r = app
                .http
                .post(app.url("/v1/chat/completions"))
                .bearer_auth(secret)
                .json(&chat_body("m"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    let rows = ledger_with(&app.db, 5).await;
    let report: Value = app
        .get("/admin/spend?group_by=key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for key in [&key1, &key2] {
        let id = key["id"].as_str().unwrap();
        let mine: Vec<&Billed> = rows
            .iter()
            .filter(|r| r.key_id.as_deref() == Some(id))
            .collect();
        let row = report["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"] == id)
            .unwrap();
        assert_eq!(row["requests"], mine.len());
        assert_eq!(
            row["output_tokens"],
            mine.iter().map(|r| r.tokens[3]).sum::<i64>()
        );
        assert_eq!(
            row["cost_picousd"],
            mine.iter().map(|r| r.cost).sum::<i64>()
        );
    }
    let csv = app
        .get("/admin/spend?group_by=model&format=csv")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    assert!(text.starts_with("group,requests,"));
    assert!(text.lines().nth(1).unwrap().starts_with("m,5,"), "{text}");
    for bad in [
        "/admin/spend?group_by=planet",
        "/admin/spend?to=1800000000000",
        "/admin/spend?to=-9223372036854775808",
        "/admin/spend?key_id=",
        "/admin/spend?colour=blue",
        "/admin/keys?team=x",
    ] {
        let resp = app.get(bad).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let err: Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("{bad}: not JSON: {e}"));
        assert_eq!(err["error"]["type"], "invalid_request_error", "{bad}");
    }
    let listed = app
        .get("/admin/keys")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !listed.contains(&k1) && !listed.contains(&k2),
        "listings never carry secrets"
    );
}
