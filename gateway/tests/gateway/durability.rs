//! The ledger survives crashes and outages: `kill -9` under load, and a
//! database that goes away while the gateway keeps serving. Secrets never
//! reach the log.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Row;

use crate::billing::ledger;
use crate::helpers::*;
use crate::process::{tollgate, Gateway};

fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let url = format!("sqlite://{}/tollgate.db", dir.display());
    write_config_on(dir, &url, extra)
}

fn write_config_on(dir: &Path, url: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("tollgate.toml");
    let d = dir.display();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nmaster_key = \"{MASTER_KEY}\"\n\
         [database]\nurl = \"{url}\"\n[ledger]\nspool_dir = \"{d}/spool\"\nflush_interval = \"5ms\"\n\
         [providers.demo]\nkind = \"mock\"\nttft = \"0s\"\ntokens_per_second = 400\noutput_tokens = 12\n\
         [models.demo]\nprovider = \"demo\"\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n{extra}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Makes the writer wait an hour between batches: rows stay in the spool.
fn keep_rows_in_the_spool(config: &Path) {
    let text = std::fs::read_to_string(config)
        .unwrap()
        .replace("flush_interval = \"5ms\"", "flush_interval = \"1h\"");
    std::fs::write(config, text).unwrap();
}

async fn rollup_requests(db: &billing::Db) -> i64 {
    sqlx::query("SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS n FROM spend_hourly")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_and_duplicates_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/tollgate.db", dir.path().display());
    kill_9_under_load(dir.path(), &url).await;
}

/// The same on the partitioned Postgres ledger, whose rows are told apart by
/// (request id, start time): batches cut off mid-transaction and segments
/// replayed after a commit still bill every request once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_on_postgres_loses_and_duplicates_no_row() {
    let Some(pg) = billing::testing::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    kill_9_under_load(dir.path(), &pg.url).await;
}

async fn kill_9_under_load(dir: &Path, db_url: &str) {
    let config = write_config_on(dir, db_url, "");
    let mut gw = Gateway::start(&config);
    let url = format!("http://{}/v1/chat/completions", gw.addr);
    let completed = Arc::new(Mutex::new(HashSet::new()));
    let started = Arc::new(Mutex::new(HashSet::new()));
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (url, completed, started) = (url.clone(), completed.clone(), started.clone());
            tokio::spawn(async move {
                let client = http_client();
                for i in 0.. {
                    let body = json!({"model": "demo", "stream": (w + i) % 2 == 0, "messages": [{"role": "user", "content": format!("w{w} i{i}")}]});
                    let Ok(resp) = client.post(&url).bearer_auth(MASTER_KEY).json(&body).send().await else { return };
                    let id = resp.headers()["x-tollgate-request-id"].to_str().unwrap().to_owned();
                    started.lock().unwrap().insert(id.clone());
                    let Ok(text) = resp.text().await else { return };
                    // A stream is complete when [DONE] arrived; a plain answer when read whole.
                    if !text.contains("data:") || text.contains("[DONE]") {
                        completed.lock().unwrap().insert(id);
                    }
                }
            })
        })
        .collect();
    let until = tokio::time::Instant::now() + DEADLINE;
    while completed.lock().unwrap().len() < 150 {
        assert!(
            tokio::time::Instant::now() < until,
            "load did not get going"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.kill_9();
    for w in workers {
        let _ = w.await;
    }
    let completed = completed.lock().unwrap().clone();
    let started = started.lock().unwrap().clone();

    // Restart on the same database and spool: the spool is replayed.
    let gw = Gateway::start(&config);
    let db = billing::Db::connect(db_url).await.unwrap();
    let until = tokio::time::Instant::now() + DEADLINE;
    let rows = loop {
        let rows = ledger(&db).await;
        let ids: HashSet<String> = rows.iter().map(|r| r.request_id.clone()).collect();
        if completed.is_subset(&ids) {
            break rows;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{} completed requests never reached the ledger",
            completed.difference(&ids).count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ids: HashSet<&String> = rows.iter().map(|r| &r.request_id).collect();
    assert_eq!(ids.len(), rows.len(), "no request twice");
    // A whole answer is billed before it is sent: one the kill cut off
    // before its headers reached the client has a row the client never saw
    // start. At most one per client in flight; no row from nowhere.
    let unseen = rows
        .iter()
        .filter(|r| !started.contains(&r.request_id))
        .count();
    assert!(
        unseen <= 16,
        "{unseen} rows for requests no client saw start"
    );
    assert_eq!(
        rollup_requests(&db).await,
        rows.len() as i64,
        "the rollup counts each row once, replay or not"
    );
    drop(gw);
}

/// Budgets are seeded from the ledger when first used after a start, so
/// rows a killed run left in its spool must be in the ledger before the
/// gateway serves: otherwise their spend goes uncounted and a hard budget
/// can overrun (the fault matrix's kill -9 phase found one request's worth).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_the_gateway_serves_only_once_the_spooled_rows_are_in_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    keep_rows_in_the_spool(&config);
    let mut gw = Gateway::start(&config);
    let client = http_client();
    let url = format!("http://{}/v1/chat/completions", gw.addr);
    let sent = 300;
    for i in 0..sent {
        let body =
            json!({"model": "demo", "messages": [{"role": "user", "content": format!("r{i}")}]});
        let r = client
            .post(&url)
            .bearer_auth(MASTER_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let url = format!("sqlite://{}/tollgate.db", dir.path().display());
    let db = billing::Db::connect(&url).await.unwrap();
    assert!(ledger(&db).await.len() < sent, "rows wait in the spool");
    gw.kill_9();

    let gw = Gateway::start(&config);
    assert_eq!(
        ledger(&db).await.len(),
        sent,
        "every spooled row is in the ledger once the gateway listens"
    );
    drop(gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_while_postgres_is_away_and_every_row_arrives() {
    let Some(pg) = billing::testing::postgres().await else {
        return;
    };
    let server = billing::testing::postgres_server_addr().await.unwrap();
    let fwd = loadtest::forward::Forwarder::start(server).await.unwrap();
    let via = billing::testing::url_via(&pg.url, fwd.addr());
    let mut cfg = config("[providers.demo]\nkind = \"mock\"\nttft = \"0s\"\ntokens_per_second = 0\n[models.demo]\nprovider = \"demo\"\n");
    cfg.database.url = gateway::config::Secret::new(via);
    let app = spawn_app(cfg).await;
    let direct = pg.db.clone();
    // A team's key: checked from the key cache, so it keeps working while
    // the database is away (no query per request).
    let (secret, _) = crate::billing::new_key(&app, json!({})).await;
    let send = |n: usize| {
        let (app, secret) = (&app, &secret);
        async move {
            let calls = (0..n).map(|_| async {
                let mut body = chat_body("demo");
                body["stream"] = json!(true);
                let r = app
                    .http
                    .post(app.url("/v1/chat/completions"))
                    .bearer_auth(secret)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            });
            futures_util::future::join_all(calls).await;
        }
    };
    send(20).await;
    crate::billing::ledger_with(&direct, 20).await;
    fwd.cut();
    send(60).await;
    // Nothing more can arrive while the database is away...
    assert_eq!(ledger(&direct).await.len(), 20);
    fwd.restore();
    // ...and everything arrives once it is back.
    crate::billing::ledger_with(&direct, 80).await;
    assert_eq!(rollup_requests(&direct).await, 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_log_or_admin_listings() {
    let dir = tempfile::tempdir().unwrap();
    let mock = spawn_mock(loadtest::mock::MockOptions {
        sim: fast_sim(),
        api_key: Some("sk-vendor-abcdef123456".into()),
        ..Default::default()
    })
    .await;
    // A webhook whose URL carries its token, and a Redis whose URL carries
    // its password, on a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let extra = format!(
        "[providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"sk-vendor-abcdef123456\"\n[models.m]\nprovider = \"up\"\n\
         [quotas]\nalert_webhook = \"http://{closed}/hooks/whsec-token-98765\"\n\
         [redis]\nurl = \"redis://:redis-pass-24680@{closed}/0\"\non_failure = \"open\"\n",
        mock.base_url()
    );
    let mut gw = Gateway::start_logging(&write_config(dir.path(), &extra), "debug");
    let base = format!("http://{}", gw.addr);
    let client = http_client();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(MASTER_KEY)
            .json(&body)
            .send()
    };
    let org: Value = post("/admin/orgs", json!({"name": "acme"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // A soft budget the first request crosses, so an alert goes out.
    let budget = json!({"limit_usd": 0.000000001, "period": "daily", "enforcement": "soft"});
    let team: Value = post(
        "/admin/teams",
        json!({"org_id": org["id"], "name": "t", "budget": budget}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let key: Value = post("/admin/keys", json!({"team_id": team["id"]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = key["key"].as_str().unwrap().to_owned();
    for model in ["m", "demo"] {
        let r = client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(&secret)
            .json(&chat_body(model))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let wrong = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(format!("{secret}x"))
        .json(&chat_body("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let listed = client
        .get(format!("{base}/admin/keys"))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let revoked = post(
        &format!("/admin/keys/{}/revoke", key["id"].as_str().unwrap()),
        json!({}),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let until = std::time::Instant::now() + DEADLINE;
    while !gw
        .logged()
        .contains("budget alert webhook could not be reached")
    {
        assert!(
            std::time::Instant::now() < until,
            "the failed webhook is logged"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    gw.terminate();
    gw.wait();
    let log = gw.logged();
    assert!(
        log.contains("key created"),
        "the log is being captured: {log}"
    );
    assert!(
        log.contains("Redis cannot be reached") && log.contains("redis://:***@"),
        "the Redis outage and URL are logged: {log}"
    );
    let hash = billing::tenancy::hash_secret(&secret);
    for (what, s) in [
        ("key secret", secret.as_str()),
        ("key hash", hash.as_str()),
        ("master key", MASTER_KEY),
        ("vendor key", "sk-vendor-abcdef123456"),
        ("webhook token", "whsec-token-98765"),
        ("Redis password", "redis-pass-24680"),
    ] {
        assert!(!log.contains(s), "the {what} reached the log");
        assert!(
            !listed.contains(s) && !revoked.contains(s),
            "the {what} reached an admin response"
        );
    }
}

#[test]
fn the_admin_cli_manages_orgs_teams_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[models.demo-b]\nprovider = \"demo\"\n[routes.auto]\ncandidates = [\"demo\", \"demo-b\"]\n",
    );
    let run = |args: &[&str]| -> Value {
        let out = tollgate()
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON: {e}"))
    };
    assert_eq!(run(&["migrate"])["migrated"], true);
    let org = run(&["orgs", "create", "acme", "--metadata", r#"{"cc": "42"}"#]);
    assert_eq!(run(&["orgs", "list"]).as_array().unwrap().len(), 1);
    let team = run(&[
        "teams",
        "create",
        "--org",
        org["id"].as_str().unwrap(),
        "search",
    ]);
    assert_eq!(
        run(&["teams", "list", "--org", org["id"].as_str().unwrap()])[0]["name"],
        "search"
    );
    let key = run(&[
        "keys",
        "create",
        "--team",
        team["id"].as_str().unwrap(),
        "--name",
        "ci",
        "--allowed-models",
        "auto,demo-b",
    ]);
    let secret = key["key"].as_str().unwrap();
    assert!(secret.starts_with("tg-"));
    assert_eq!(key["allowed_models"], json!(["auto", "demo-b"]));
    // Policies change with `update`; --clear empties a list.
    let team_id = team["id"].as_str().unwrap();
    let denied = run(&["teams", "update", team_id, "--denied-providers", "demo"]);
    assert_eq!(denied["denied_providers"], json!(["demo"]));
    assert_eq!(denied["name"], "search");
    let cleared = run(&["teams", "update", team_id, "--clear", "denied_providers"]);
    assert_eq!(cleared["denied_providers"], json!([]));
    let key_id = key["id"].as_str().unwrap();
    let opened = run(&["keys", "update", key_id, "--clear", "allowed_models"]);
    assert_eq!(opened["allowed_models"], Value::Null);
    let org_id = org["id"].as_str().unwrap();
    let renamed = run(&[
        "orgs",
        "update",
        org_id,
        "--name",
        "acme-2",
        "--denied-models",
        "demo",
    ]);
    assert_eq!(
        (renamed["name"].as_str(), renamed["cc"].as_str()),
        (Some("acme-2"), None)
    );
    assert_eq!(renamed["metadata"]["cc"], "42");
    assert_eq!(renamed["denied_models"], json!(["demo"]));
    // A name the config does not have is refused: a misspelt deny list
    // would deny nothing.
    let out = tollgate()
        .args([
            "teams",
            "update",
            team_id,
            "--denied-providers",
            "demmo",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("'demmo'"));
    let listed = run(&["keys", "list"]);
    assert!(!listed.to_string().contains(secret));
    let revoked = run(&["keys", "revoke", key["id"].as_str().unwrap()]);
    assert!(revoked["revoked_at"].is_string());
    let out = tollgate()
        .args(["teams", "create", "--org", "missing", "x", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_ledger_backlog_refuses_requests_instead_of_serving_them_unbilled() {
    let Some(pg) = billing::testing::postgres().await else {
        return;
    };
    let server = billing::testing::postgres_server_addr().await.unwrap();
    let fwd = loadtest::forward::Forwarder::start(server).await.unwrap();
    let via = billing::testing::url_via(&pg.url, fwd.addr());
    let mut cfg = config("[providers.demo]\nkind = \"mock\"\nttft = \"0s\"\ntokens_per_second = 0\n[models.demo]\nprovider = \"demo\"\n");
    cfg.database.url = gateway::config::Secret::new(via);
    // Room for a few rows only.
    cfg.ledger.max_backlog_bytes = 2_000;
    let app = spawn_app(cfg).await;
    fwd.cut();
    let mut served = 0;
    let refusal = loop {
        let resp = app.chat(chat_body("demo")).await;
        if resp.status() == 503 {
            break resp.json::<Value>().await.unwrap();
        }
        assert_eq!(resp.status(), 200);
        served += 1;
        assert!(served < 100, "the backlog bound never took effect");
    };
    assert_eq!(refusal["error"]["code"], "ledger_backlog");
    assert!(served >= 1);
    fwd.restore();
    // Everything served arrives, and service resumes once the backlog drains.
    crate::billing::ledger_with(&pg.db, served).await;
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        if app.chat(chat_body("demo")).await.status() == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < until, "service never resumed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    crate::billing::ledger_with(&pg.db, served + 1).await;
}

/// A replica killed after a request's row reached the spool but before its
/// settlement reached Redis: the restart finds the row and settles it in
/// Redis, once; a row whose settlement did land is not counted again. Redis
/// then holds what the ledger holds (the fault matrix's kill -9 phase found
/// Redis one request short).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_lost_to_kill_9_reaches_redis_once_on_restart() {
    use billing::quota::{FailureMode, Level, Period, QuotaEngine, Seed};
    use futures_util::StreamExt;

    let Some(r) = billing::testing::TestRedis::new() else {
        return;
    };
    let fwd = loadtest::forward::Forwarder::start(r.server_addr().await)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Rows stay in the spool until the restart (the writer waits an hour
    // between batches): the restart finds both requests' rows there.
    let config = write_config(
        dir.path(),
        &format!(
            "[providers.slow]\nkind = \"mock\"\nttft = \"0s\"\ntokens_per_second = 20\noutput_tokens = 30\n\
             [models.slow]\nprovider = \"slow\"\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n\
             [redis]\nurl = \"{}\"\nprefix = \"{}\"\non_failure = \"open\"\ntimeout = \"500ms\"\nlease = \"5s\"\n",
            billing::testing::url_via(&r.url, fwd.addr()),
            r.prefix
        ),
    );
    keep_rows_in_the_spool(&config);
    let mut gw = Gateway::start(&config);
    let client = http_client();
    let base = format!("http://{}", gw.addr);
    let admin = async |path: &str, body: Value| -> Value {
        let resp = client
            .post(format!("{base}{path}"))
            .bearer_auth(MASTER_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "POST {path}");
        resp.json().await.unwrap()
    };
    let budget = json!({"limit_usd": 100.0, "period": "monthly", "enforcement": "hard"});
    let org = admin("/admin/orgs", json!({"name": "o", "budget": budget})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let team = admin("/admin/teams", json!({"org_id": org, "name": "t"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = admin("/admin/keys", json!({"team_id": team, "name": "k"})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let counted =
        QuotaEngine::redis(Seed::Empty, vec![], r.options(&r.url, FailureMode::Closed)).unwrap();
    let in_redis = async || {
        let now = billing::db::now_ms();
        counted
            .current_usage(&org, Level::Org, &org, Period::Monthly, now)
            .await
    };

    // One request settles in Redis while it is reachable.
    let chat = format!("{base}/v1/chat/completions");
    let resp = client
        .post(&chat)
        .bearer_auth(&key)
        .json(&json!({"model": "demo", "messages": [{"role": "user", "content": "one"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    eventually("the first request is settled in Redis", async || {
        in_redis()
            .await
            .is_some_and(|u| u.spent.0 > 0 && u.reserved.0 == 0)
    })
    .await;

    // A stream admitted through Redis, which is cut before it ends: its
    // row is spooled, its settlement waits for Redis, and the process dies.
    let resp = client
        .post(&chat)
        .bearer_auth(&key)
        .json(&json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "two"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    next_piece(&mut body).await.expect("the stream starts");
    fwd.cut();
    let mut text = Vec::new();
    while let Some(piece) = body.next().await {
        text.extend_from_slice(&piece.unwrap());
    }
    assert!(
        String::from_utf8_lossy(&text).contains("[DONE]"),
        "the stream completes while Redis is cut"
    );
    let before = in_redis().await.unwrap();
    gw.kill_9();
    fwd.restore();

    let gw = Gateway::start(&config);
    let url = format!("sqlite://{}/tollgate.db", dir.path().display());
    let db = billing::Db::connect(&url).await.unwrap();
    let rows = ledger(&db).await;
    assert_eq!(rows.len(), 2, "both requests are in the ledger");
    let cost: i64 = rows.iter().map(|r| r.cost).sum();
    let tokens: i64 = rows.iter().map(|r| r.tokens[..4].iter().sum::<i64>()).sum();
    assert!(
        before.spent.0 < cost,
        "the stream's settlement had not reached Redis when the process died"
    );
    // Settled before the restart listens.
    let after = in_redis().await.unwrap();
    assert_eq!(after.spent.0, cost, "Redis counts each ledger row once");
    assert_eq!(after.tokens, tokens as u64);
    assert!(
        gw.logged().contains("settled in Redis (once each)"),
        "{}",
        gw.logged()
    );
    drop(gw);
}
