//! Writing rows: one multi-row insert that skips request ids already present,
//! and the hourly rollup of exactly the rows that went in, in one transaction.

use std::collections::{BTreeMap, HashSet};

use sqlx::{AssertSqlSafe, Row};

use super::LedgerRow;
use crate::db::{Db, DbError};

const LEDGER_COLUMNS: [&str; 23] = [
    "request_id",
    "started_at",
    "org_id",
    "team_id",
    "key_id",
    "client_format",
    "endpoint",
    "requested_model",
    "provider",
    "upstream_model",
    "status",
    "outcome",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_picousd",
    "latency_ms",
    "ttft_ms",
    "stream",
    "usage_estimated",
    "priced",
];

const ROLLUP_COLUMNS: [&str; 13] = [
    "hour",
    "org_id",
    "team_id",
    "key_id",
    "model",
    "provider",
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_picousd",
];

fn placeholders(db: &Db, rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let ps: Vec<String> = (1..=cols).map(|c| db.param(r * cols + c)).collect();
            format!("({})", ps.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[derive(Default)]
struct Sums {
    requests: i64,
    tokens: [i64; 5],
    cost: i64,
}

/// Inserts `rows`, skipping ids already in the ledger, and adds the inserted
/// ones to the hourly rollup, atomically. Returns how many were new.
pub async fn insert_batch(db: &Db, rows: &[LedgerRow]) -> Result<usize, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut tx = db.pool().begin().await?;
    let sql = format!(
        "INSERT INTO ledger ({}) VALUES {} ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
        LEDGER_COLUMNS.join(", "),
        placeholders(db, rows.len(), LEDGER_COLUMNS.len())
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for r in rows {
        let u = &r.usage;
        q = q
            .bind(r.request_id.to_string())
            .bind(r.started_at_ms)
            .bind(r.org_id.clone())
            .bind(r.team_id.clone())
            .bind(r.key_id.clone())
            .bind(r.client_format.clone())
            .bind(r.endpoint.clone())
            .bind(r.requested_model.clone())
            .bind(r.provider.clone())
            .bind(r.upstream_model.clone())
            .bind(i64::from(r.status))
            .bind(r.outcome.clone())
            .bind(n(u.input))
            .bind(n(u.cached_input))
            .bind(n(u.cache_write))
            .bind(n(u.output))
            .bind(n(u.reasoning))
            .bind(r.cost_picousd)
            .bind(n(r.latency_ms))
            .bind(r.ttft_ms.map(n))
            .bind(i64::from(r.stream))
            .bind(i64::from(r.usage_estimated))
            .bind(i64::from(r.priced));
    }
    let inserted: HashSet<String> = q
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>("request_id"))
        .collect::<Result<_, _>>()?;
    // Roll up only what went in: a replayed row must not count twice.
    let mut groups: BTreeMap<(i64, &str, &str, &str, &str, &str), Sums> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| inserted.contains(&r.request_id.to_string()))
    {
        let key = (
            r.hour_ms(),
            r.org_id.as_deref().unwrap_or(""),
            r.team_id.as_deref().unwrap_or(""),
            r.key_id.as_deref().unwrap_or(""),
            r.requested_model.as_str(),
            r.provider.as_str(),
        );
        let s = groups.entry(key).or_default();
        s.requests += 1;
        let u = &r.usage;
        for (slot, v) in s.tokens.iter_mut().zip([
            u.input,
            u.cached_input,
            u.cache_write,
            u.output,
            u.reasoning,
        ]) {
            *slot = slot.saturating_add(n(v));
        }
        s.cost = s.cost.saturating_add(r.cost_picousd);
    }
    if !groups.is_empty() {
        let sums = ROLLUP_COLUMNS[6..]
            .iter()
            .map(|c| format!("{c} = spend_hourly.{c} + excluded.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO spend_hourly ({}) VALUES {} ON CONFLICT (hour, org_id, team_id, key_id, model, provider) DO UPDATE SET {sums}",
            ROLLUP_COLUMNS.join(", "),
            placeholders(db, groups.len(), ROLLUP_COLUMNS.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for ((hour, org, team, key, model, provider), s) in &groups {
            q = q
                .bind(*hour)
                .bind(*org)
                .bind(*team)
                .bind(*key)
                .bind(*model)
                .bind(*provider)
                .bind(s.requests);
            for t in s.tokens {
                q = q.bind(t);
            }
            q = q.bind(s.cost);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(inserted.len())
}
