//! Row factories and polling.

use std::time::Duration;

use billing::ledger::LedgerRow;
use billing::Db;
use router::Usage;
use sqlx::Row;
use uuid::Uuid;

pub const DEADLINE: Duration = Duration::from_secs(15);

/// A row with distinct token counts derived from `i`.
pub fn row(
    i: u64,
    started_at_ms: i64,
    key: Option<(&str, &str, &str)>,
    model: &str,
    provider: &str,
) -> LedgerRow {
    let usage = Usage {
        input: 100 + i,
        cached_input: i % 7,
        cache_write: i % 3,
        output: 10 + i % 11,
        reasoning: i % 5,
    };
    LedgerRow {
        request_id: Uuid::now_v7(),
        started_at_ms,
        org_id: key.map(|k| k.0.to_owned()),
        team_id: key.map(|k| k.1.to_owned()),
        key_id: key.map(|k| k.2.to_owned()),
        client_format: "openai".into(),
        endpoint: "chat_completions".into(),
        requested_model: model.into(),
        provider: provider.into(),
        upstream_model: model.into(),
        status: 200,
        outcome: "complete".into(),
        usage,
        cost_picousd: 1_000_003 * (i as i64 + 1),
        latency_ms: 5,
        ttft_ms: Some(1),
        stream: i.is_multiple_of(2),
        usage_estimated: false,
        priced: true,
        route: model.into(),
        attempt: 1,
        client_request_id: None,
        reference_model: None,
        reference_cost_picousd: None,
        session: None,
    }
}

/// Rows in the ledger.
pub async fn ledger_count(db: &Db) -> i64 {
    sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ledger")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

/// Polls `check` until it holds or the deadline passes.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let until = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
