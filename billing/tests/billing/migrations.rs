//! Upgrades: a database written by the first schema keeps its rows, and its
//! rollup and keys read right, after the later migrations.

use billing::ledger::insert_batch;
use billing::reports::{spend, GroupBy, SpendFilter};
use billing::tenancy::{hash_secret, Tenancy};
use billing::testing::TestDb;
use sqlx::{AssertSqlSafe, Row};

use crate::helpers::row;

const HOUR: i64 = 3_600_000;

async fn exec(t: &TestDb, sql: &str) {
    sqlx::query(AssertSqlSafe(sql.to_owned()))
        .execute(t.db.pool())
        .await
        .unwrap();
}

async fn upgrade(t: &TestDb) {
    // Written by schema 1: a key with allowed_models, a ledger row and its
    // rollup, as version 1 wrote them.
    let at = 1_795_000_000_000 / HOUR * HOUR + 60_000;
    exec(
        t,
        "INSERT INTO orgs (id, name, created_at, updated_at) VALUES ('o', 'acme', 1, 1)",
    )
    .await;
    exec(t, "INSERT INTO teams (id, org_id, name, created_at, updated_at) VALUES ('t', 'o', 'search', 1, 1)").await;
    exec(
        t,
        &format!(
            "INSERT INTO api_keys (id, team_id, key_hash, key_prefix, allowed_models, created_at, updated_at) \
             VALUES ('k', 't', '{}', 'tg-abc', '[\"kimi-k2.5\",\"glm-5\"]', 1, 1)",
            hash_secret("tg-old")
        ),
    )
    .await;
    exec(
        t,
        &format!(
            "INSERT INTO ledger (request_id, started_at, org_id, team_id, key_id, client_format, endpoint, \
             requested_model, provider, upstream_model, status, outcome, input_tokens, cached_input_tokens, \
             cache_write_tokens, output_tokens, reasoning_tokens, cost_picousd, latency_ms, ttft_ms, stream, \
             usage_estimated, priced) VALUES ('r1', {at}, 'o', 't', 'k', 'openai', 'chat_completions', \
             'kimi-k2.5', 'kimi', 'kimi-k2.5', 200, 'complete', 100, 0, 0, 10, 0, 5000, 7, NULL, 0, 0, 1)"
        ),
    )
    .await;
    exec(
        t,
        &format!(
            "INSERT INTO spend_hourly (hour, org_id, team_id, key_id, model, provider, requests, input_tokens, \
             cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_picousd) \
             VALUES ({}, 'o', 't', 'k', 'kimi-k2.5', 'kimi', 1, 100, 0, 0, 10, 0, 5000)",
            at / HOUR * HOUR
        ),
    )
    .await;

    t.db.migrate().await.unwrap();

    let r = sqlx::query(
        "SELECT route, attempt, client_request_id, reference_model, reference_cost_picousd FROM ledger",
    )
    .fetch_one(t.db.pool())
    .await
    .unwrap();
    assert_eq!(r.try_get::<String, _>("route").unwrap(), "kimi-k2.5");
    assert_eq!(r.try_get::<i64, _>("attempt").unwrap(), 1);
    assert_eq!(r.try_get::<String, _>("client_request_id").unwrap(), "r1");
    assert_eq!(
        r.try_get::<Option<String>, _>("reference_model").unwrap(),
        None
    );
    assert_eq!(
        r.try_get::<Option<i64>, _>("reference_cost_picousd")
            .unwrap(),
        None
    );

    // The key's allow list moved into its policy.
    let key = Tenancy::new(t.db.clone())
        .key_by_hash(&hash_secret("tg-old"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        key.policies.key.allowed_models,
        Some(vec!["kimi-k2.5".to_owned(), "glm-5".to_owned()])
    );
    assert!(key.policies.team.is_empty() && key.policies.org.is_empty());

    // A new row in the same hour, route and model joins the old rollup row.
    let mut new = row(1, at + 1000, Some(("o", "t", "k")), "kimi-k2.5", "kimi");
    new.cost_picousd = 7000;
    assert_eq!(insert_batch(&t.db, &[new]).await.unwrap(), 1);
    let f = SpendFilter {
        from_ms: at / HOUR * HOUR,
        to_ms: at / HOUR * HOUR + HOUR,
        ..Default::default()
    };
    let report = spend(&t.db, GroupBy::Route, &f).await.unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].group.as_deref(), Some("kimi-k2.5"));
    assert_eq!(report[0].requests, 2);
    assert_eq!(report[0].cost_picousd, 12_000);
    assert_eq!(report[0].reference_cost_picousd, 12_000);
    assert_eq!(report[0].savings_picousd, 0);
}

mod upgrades_from_the_first_schema {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::upgrade(&billing::testing::sqlite_at(Some(1)).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(t) = billing::testing::postgres_at(Some(1)).await {
            super::upgrade(&t).await;
        }
    }
}
