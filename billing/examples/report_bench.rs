//! Spend-report timing on a large ledger: generates N rows (default one
//! million) over 30 days, then times month-long reports through the rollup
//! and the same totals straight from the ledger rows, in one run.
//!
//!   cargo run --release -p tollgate-billing --features testing --example report_bench -- [ROWS] [sqlite|postgres]
//!
//! Postgres uses a fresh database on the server in `DATABASE_URL`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Instant;

use billing::ledger::{insert_batch, LedgerRow};
use billing::reports::{spend, GroupBy, SpendFilter};
use router::Usage;
use sqlx::Row;
use uuid::Uuid;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let backend = args.get(2).map(String::as_str).unwrap_or("sqlite");
    let t = match backend {
        "postgres" => billing::testing::postgres()
            .await
            .expect("DATABASE_URL names a Postgres server"),
        _ => billing::testing::sqlite().await,
    };
    let db = &t.db;
    const DAY: i64 = 86_400_000;
    let start = billing::db::now_ms() / DAY * DAY - 30 * DAY;
    let models = [
        "kimi-k2.5",
        "glm-5",
        "deepseek-v4-pro",
        "minimax-m2.5",
        "claude-sonnet-4.5",
        "glm-4.5-air",
    ];
    let providers = ["kimi", "glm", "deepseek"];
    let began = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..rows {
        let key = i % 50;
        batch.push(LedgerRow {
            request_id: Uuid::now_v7(),
            started_at_ms: start + (i as i64 * 2_591_999) % (30 * DAY),
            org_id: Some(format!("org-{}", key % 3)),
            team_id: Some(format!("team-{}", key % 10)),
            key_id: Some(format!("key-{key}")),
            client_format: "openai".into(),
            endpoint: "chat_completions".into(),
            requested_model: models[i % models.len()].into(),
            provider: providers[i % providers.len()].into(),
            upstream_model: models[i % models.len()].into(),
            status: 200,
            outcome: "complete".into(),
            usage: Usage {
                input: 1000 + (i % 500) as u64,
                cached_input: (i % 300) as u64,
                cache_write: 0,
                output: 200 + (i % 90) as u64,
                reasoning: (i % 40) as u64,
            },
            cost_picousd: 1_000_000 + (i % 777) as i64,
            latency_ms: 900,
            ttft_ms: Some(300),
            stream: i % 2 == 0,
            usage_estimated: false,
            priced: true,
            route: format!("route-{}", i % 3),
            attempt: 1,
            client_request_id: None,
            reference_model: Some("claude-sonnet-4.5".into()),
            reference_cost_picousd: Some(20_000_000 + (i % 777) as i64),
        });
        if batch.len() == 1000 {
            insert_batch(db, &batch).await.unwrap();
            batch.clear();
        }
    }
    insert_batch(db, &batch).await.unwrap();
    let load = began.elapsed();
    println!(
        "{backend}: inserted {rows} rows in {:.1}s ({:.0} rows/s, with the rollup)",
        load.as_secs_f64(),
        rows as f64 / load.as_secs_f64()
    );

    let month = SpendFilter {
        from_ms: start + 1_234,
        to_ms: start + 30 * DAY - 5_678,
        ..Default::default()
    };
    let time =
        |what: &'static str, secs: f64| println!("{backend}: {what}: {:.1} ms", secs * 1000.0);
    for (label, by, filter) in [
        ("month by model", GroupBy::Model, month.clone()),
        ("month by day", GroupBy::Day, month.clone()),
        ("month by key", GroupBy::Key, month.clone()),
        (
            "month by hour, one team",
            GroupBy::Hour,
            SpendFilter {
                team_id: Some("team-3".into()),
                ..month.clone()
            },
        ),
    ] {
        let t0 = Instant::now();
        let out = spend(db, by, &filter).await.unwrap();
        time(label, t0.elapsed().as_secs_f64());
        assert!(!out.is_empty());
    }
    // The same month by model, straight from the ledger rows.
    let t0 = Instant::now();
    let sql = match db.backend() {
        billing::Backend::Postgres => "SELECT requested_model, CAST(COUNT(*) AS BIGINT) AS n, CAST(SUM(cost_picousd) AS BIGINT) AS c FROM ledger WHERE started_at >= $1 AND started_at < $2 GROUP BY requested_model",
        billing::Backend::Sqlite => "SELECT requested_model, CAST(COUNT(*) AS BIGINT) AS n, CAST(SUM(cost_picousd) AS BIGINT) AS c FROM ledger WHERE started_at >= ?1 AND started_at < ?2 GROUP BY requested_model",
    };
    let raw = sqlx::query(sql)
        .bind(month.from_ms)
        .bind(month.to_ms)
        .fetch_all(db.pool())
        .await
        .unwrap();
    time(
        "month by model from raw rows (no rollup)",
        t0.elapsed().as_secs_f64(),
    );
    let total: i64 = raw.iter().map(|r| r.try_get::<i64, _>("n").unwrap()).sum();
    let via_rollup: i64 = spend(db, GroupBy::Model, &month)
        .await
        .unwrap()
        .iter()
        .map(|r| r.requests)
        .sum();
    assert_eq!(total, via_rollup, "the rollup agrees with the rows");
    println!("{backend}: both ways count {total} requests in the month");
}
