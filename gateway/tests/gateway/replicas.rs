//! Several replicas sharing one database and one Redis (one server, or a
//! local Redis Cluster): one team budget and one rpm enforced as one,
//! revocations and budget changes reaching every replica within a second,
//! and Redis cut off mid-test in both failure modes with the gateway still
//! answering and the ledger complete.

use std::time::Duration;

use billing::testing::{TestDb, TestRedis};
use futures_util::future::join_all;
use loadtest::forward::Forwarder;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::quotas::{chat, ledger_cost_and_tokens, post_as, team_key};

/// The database replicas share: Postgres when configured, else one SQLite
/// file.
async fn shared_db() -> TestDb {
    match billing::testing::postgres().await {
        Some(db) => db,
        None => billing::testing::sqlite().await,
    }
}

/// A replica: model `m` at $1/Mtok in and $2/Mtok out on `mock`, on the
/// shared database, counting in Redis at `redis_url` (a cluster when `r` is
/// on one) under `r`'s prefix.
async fn replica(
    mock: &loadtest::mock::MockHandle,
    db: &TestDb,
    r: &TestRedis,
    redis_url: &str,
    on_failure: &str,
) -> TestApp {
    let cfg = config(&format!(
        "[billing]\nkey_refresh_interval = \"100ms\"\n\
         [database]\nurl = \"{}\"\n\
         [providers.up]\nkind = \"openai\"\nbase_url = \"{}\"\n\
         [models.m]\nprovider = \"up\"\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n\
         [redis]\nurl = \"{redis_url}\"\nmode = \"{}\"\nprefix = \"{}\"\n\
         on_failure = \"{on_failure}\"\ntimeout = \"1s\"\nlease = \"5s\"\n",
        db.url,
        mock.base_url(),
        if r.cluster.is_some() {
            "cluster"
        } else {
            "single"
        },
        r.prefix
    ));
    spawn_app(cfg).await
}

/// What one request reserves and costs: the prompt at $1/Mtok and 8
/// output tokens at $2/Mtok (the mock answers exactly 8).
fn cost_of_one() -> i64 {
    router::estimate::chat_prompt(&chat(8)) as i64 * 1_000_000 + 8 * 2_000_000
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_enforce_one_team_budget_and_one_rpm() {
    let Some(r) = TestRedis::new() else { return };
    enforce_one_team_budget_and_one_rpm(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_sharing_a_redis_cluster_enforce_one_team_budget_and_one_rpm() {
    let Some(r) = TestRedis::cluster() else {
        return;
    };
    enforce_one_team_budget_and_one_rpm(r).await;
}

async fn enforce_one_team_budget_and_one_rpm(r: TestRedis) {
    let db = shared_db().await;
    let mock = spawn_fast_mock().await;
    let a = replica(&mock, &db, &r, &r.url, "closed").await;
    let b = replica(&mock, &db, &r, &r.url, "closed").await;

    // 64 requests at once, half to each replica, against a budget that
    // fits exactly 11.
    let k = 11;
    let one = cost_of_one();
    let budget =
        json!({"limit_usd": (one * k) as f64 / 1e12, "period": "monthly", "enforcement": "hard"});
    let (team, key) = team_key(&a, json!({"budget": budget}), json!({})).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(64));
    let statuses = join_all((0..64).map(|i| {
        let (app, key, barrier) = (if i % 2 == 0 { &a } else { &b }, &key, barrier.clone());
        async move {
            let mut body = chat(8);
            body["stream"] = json!(i % 4 < 2);
            barrier.wait().await;
            let resp = post_as(app, key, "/v1/chat/completions", &body).await;
            let status = resp.status().as_u16();
            let _ = resp.text().await;
            status
        }
    }))
    .await;
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(admitted, k as usize, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429));
    let (cost, _) = ledger_cost_and_tokens(&a.db, k as usize).await;
    assert_eq!(cost, one * k, "the shared ledger total is the limit");
    // Either replica's /v1/me shows the shared count, once the last
    // settlements (sent in batches) have landed.
    let spent = billing::Picodollars(one * k).usd();
    eventually("both replicas show the whole team's spend", async || {
        let mut shown = Vec::new();
        for app in [&a, &b] {
            let me = app.get_json_as(&key, "/v1/me").await;
            shown.push(me["team"]["budget"].clone());
        }
        shown.iter().all(|v| {
            v["spent_usd"] == json!(spent)
                && v["reserved_usd"] == json!("0.000000000000")
                && v["remaining_usd"] == json!("0.000000000000")
        })
    })
    .await;

    // A budget raised on one replica applies on the other within a second.
    let (status, _) = a
        .admin(
            Method::PATCH,
            &format!("/admin/teams/{team}"),
            json!({"budget": {"limit_usd": (one * (k + 1)) as f64 / 1e12, "period": "monthly", "enforcement": "hard"}}),
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resp = post_as(&b, &key, "/v1/chat/completions", &chat(8)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    // 30 requests at once against one key's 10 a minute, over both.
    let (_, org) = a
        .admin(Method::POST, "/admin/orgs", json!({"name": "rpm-org"}))
        .await;
    let (_, t) = a
        .admin(
            Method::POST,
            "/admin/teams",
            json!({"org_id": org["id"], "name": "rpm-team"}),
        )
        .await;
    let (status, k2) = a
        .admin(
            Method::POST,
            "/admin/keys",
            json!({"team_id": t["id"], "limits": {"rpm": 10}}),
        )
        .await;
    assert_eq!(status, 201, "{k2}");
    let key2 = k2["key"].as_str().unwrap().to_owned();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(30));
    let results = join_all((0..30).map(|i| {
        let (app, key, barrier) = (if i % 2 == 0 { &a } else { &b }, &key2, barrier.clone());
        async move {
            barrier.wait().await;
            let resp = post_as(app, key, "/v1/chat/completions", &chat(8)).await;
            let status = resp.status().as_u16();
            let remaining = resp
                .headers()
                .get("x-ratelimit-remaining-requests")
                .map(|v| v.to_str().unwrap().to_owned());
            let _ = resp.text().await;
            (status, remaining)
        }
    }))
    .await;
    let admitted = results.iter().filter(|r| r.0 == 200).count();
    // Unless the minute turned mid-burst, exactly the limit.
    assert!(
        admitted == 10 || (admitted > 10 && admitted <= 20),
        "{results:?}"
    );
    if admitted == 10 {
        for (_, remaining) in results.iter().filter(|r| r.0 == 429) {
            assert_eq!(remaining.as_deref(), Some("0"));
        }
    }

    // A key revoked on one replica is refused by the other within a second.
    let revoked = a
        .post(&format!(
            "/admin/keys/{}/revoke",
            k2["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resp = post_as(&b, &key2, "/v1/chat/completions", &chat(8)).await;
    assert_eq!(resp.status(), 401);
}

/// A replica reaching Redis through a forwarder the test cuts.
async fn cut_off(
    on_failure: &str,
) -> Option<(
    TestRedis,
    TestDb,
    loadtest::mock::MockHandle,
    Forwarder,
    TestApp,
)> {
    let r = TestRedis::new()?;
    let db = shared_db().await;
    let mock = spawn_fast_mock().await;
    let fwd = Forwarder::start(r.server_addr().await).await.unwrap();
    let url = billing::testing::url_via(&r.url, fwd.addr());
    let app = replica(&mock, &db, &r, &url, on_failure).await;
    Some((r, db, mock, fwd, app))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_cut_off_and_failing_closed_quota_keys_get_503_and_others_are_served() {
    let Some((_r, _db, _mock, fwd, app)) = cut_off("closed").await else {
        return;
    };
    let budget = json!({"limit_usd": 5.0, "period": "monthly", "enforcement": "hard"});
    let (_, limited) = team_key(&app, json!({"budget": budget}), json!({})).await;
    let (_, free) = team_key(&app, json!({}), json!({})).await;
    let ok = post_as(&app, &limited, "/v1/chat/completions", &chat(8)).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        metric(&app.metrics().await, "tollgate_quota_store_up"),
        Some(1.0)
    );

    fwd.cut();
    let refused = post_as(&app, &limited, "/v1/chat/completions", &chat(8)).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let err: Value = refused.json().await.unwrap();
    assert_eq!(err["error"]["code"], "quota_unavailable", "{err}");
    // The Anthropic door says it in Anthropic's shape.
    let refused = post_as(&app, &limited, "/v1/messages", &crate::quotas::messages(8)).await;
    assert_eq!(refused.status(), 503);
    let err: Value = refused.json().await.unwrap();
    assert_eq!(err["type"], "error", "{err}");
    // A key no budget or limit applies to does not need Redis.
    let served = post_as(&app, &free, "/v1/chat/completions", &chat(8)).await;
    assert_eq!(served.status(), 200);
    let m = app.metrics().await;
    assert_eq!(metric(&m, "tollgate_quota_store_up"), Some(0.0));
    assert!(metric(&m, "tollgate_quota_store_failures_total").unwrap() >= 1.0);
    let refused = [
        ("level", "team"),
        ("reason", "unavailable"),
        ("team", "team"),
    ];
    assert_eq!(
        crate::metrics::sum(&m, "tollgate_quota_rejections_total", &refused),
        2.0,
        "{m}"
    );

    fwd.restore();
    eventually("the budget is checked again", async || {
        post_as(&app, &limited, "/v1/chat/completions", &chat(8))
            .await
            .status()
            == 200
    })
    .await;
    assert_eq!(
        metric(&app.metrics().await, "tollgate_quota_store_up"),
        Some(1.0)
    );
    // Every request served is in the ledger: the first, the free key's,
    // and the one after Redis came back.
    ledger_cost_and_tokens(&app.db, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_cut_off_and_failing_open_local_counts_hold_the_budget_and_reconcile() {
    let Some((r, db, mock, fwd, app)) = cut_off("open").await else {
        return;
    };
    // Another replica whose Redis stays reachable.
    let peer = replica(&mock, &db, &r, &r.url, "open").await;
    let one = cost_of_one();
    let k = 6;
    let budget =
        json!({"limit_usd": (one * k) as f64 / 1e12, "period": "monthly", "enforcement": "hard"});
    let (_, key) = team_key(&app, json!({"budget": budget}), json!({})).await;
    for _ in 0..2 {
        let ok = post_as(&app, &key, "/v1/chat/completions", &chat(8)).await;
        assert_eq!(ok.status(), 200);
    }
    // Local counts start from the ledger: let the two rows land there.
    ledger_cost_and_tokens(&app.db, 2).await;

    fwd.cut();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let resp = post_as(&app, &key, "/v1/chat/completions", &chat(8)).await;
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429], "four more fit");
    let m = app.metrics().await;
    assert_eq!(metric(&m, "tollgate_quota_store_up"), Some(0.0));
    assert_eq!(
        metric(&m, "tollgate_quota_local_admissions_total"),
        Some(4.0)
    );

    fwd.restore();
    eventually("Redis is used again", async || {
        metric(&app.metrics().await, "tollgate_quota_store_up") == Some(1.0)
    })
    .await;
    // What was spent while cut off reached the shared counts before Redis
    // was used again: the other replica, which never lost Redis, finds the
    // budget spent.
    let refused = post_as(&peer, &key, "/v1/chat/completions", &chat(8)).await;
    assert_eq!(refused.status(), 429);
    let err: Value = refused.json().await.unwrap();
    assert_eq!(err["error"]["code"], "insufficient_quota", "{err}");
    let (cost, _) = ledger_cost_and_tokens(&app.db, k as usize).await;
    assert_eq!(cost, one * k, "the ledger has every request, none twice");
}
