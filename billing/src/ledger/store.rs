//! Writing rows: one multi-row insert that skips rows already present, and
//! the hourly rollup of exactly the rows that went in, in one transaction.
//!
//! A row is already present when its dedup key is: `(request_id,
//! started_at)` on Postgres, whose partitioned ledger can only enforce keys
//! that hold the partition key (a replayed row carries the `started_at` it
//! was first written with, so it still conflicts), and `request_id` alone on
//! SQLite. On Postgres, rows older than the retention horizon are set aside,
//! not inserted: their month's raw rows are gone, so a replay could no
//! longer be told from a new row.

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use sqlx::Row;

use super::LedgerRow;
use crate::db::{Backend, Db, DbError};

const LEDGER_COLUMNS: [&str; 29] = [
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
    "route",
    "attempt",
    "client_request_id",
    "reference_model",
    "reference_cost_picousd",
    "session",
];

const ROLLUP_COLUMNS: [&str; 15] = [
    "hour",
    "org_id",
    "team_id",
    "key_id",
    "route",
    "model",
    "provider",
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_picousd",
    "reference_cost_picousd",
];

/// The most parameters one statement may carry (SQLite's limit).
const MAX_PARAMS: usize = 32_766;

/// The rollup's key columns; the rest are sums.
const ROLLUP_KEY: usize = 7;

fn placeholders(db: &Db, rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let ps: Vec<String> = (1..=cols).map(|c| db.param(r * cols + c)).collect();
            format!("({})", ps.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tables a batch inserts into.
#[derive(Clone, Copy)]
enum Table {
    Ledger,
    Rollup,
}

/// The insert statement for a piece of `size` rows (a power of two, as
/// [`pieces`] cuts them) into `table`, written once per backend, table and
/// size: building the text for every batch cost about as much as SQLite's
/// whole insert.
fn insert_statement(db: &Db, table: Table, size: usize) -> &'static str {
    const SIZES: usize = MAX_PIECE.trailing_zeros() as usize + 1;
    // Backend by table by size.
    static STATEMENTS: [OnceLock<String>; 4 * SIZES] = [const { OnceLock::new() }; 4 * SIZES];
    let backend = match db.backend() {
        Backend::Postgres => 0,
        Backend::Sqlite => 1,
    };
    debug_assert!(size.is_power_of_two() && size <= MAX_PIECE);
    let slot = &STATEMENTS[(backend * 2 + table as usize) * SIZES + size.trailing_zeros() as usize];
    slot.get_or_init(|| match table {
        Table::Ledger => {
            let conflict = match db.backend() {
                Backend::Postgres => "request_id, started_at",
                Backend::Sqlite => "request_id",
            };
            format!(
                "INSERT INTO ledger ({}) VALUES {} ON CONFLICT ({conflict}) DO NOTHING RETURNING request_id, started_at",
                LEDGER_COLUMNS.join(", "),
                placeholders(db, size, LEDGER_COLUMNS.len())
            )
        }
        Table::Rollup => {
            let sums = ROLLUP_COLUMNS[ROLLUP_KEY..]
                .iter()
                .map(|c| format!("{c} = spend_hourly.{c} + excluded.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "INSERT INTO spend_hourly ({}) VALUES {} ON CONFLICT ({}) DO UPDATE SET {sums}",
                ROLLUP_COLUMNS.join(", "),
                placeholders(db, size, ROLLUP_COLUMNS.len()),
                ROLLUP_COLUMNS[..ROLLUP_KEY].join(", ")
            )
        }
    })
}

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[derive(Default)]
struct Sums {
    requests: i64,
    tokens: [i64; 5],
    cost: i64,
    reference_cost: i64,
}

/// What a batch did.
#[derive(Debug, Default)]
pub struct Written {
    /// Rows that were new, now in the ledger and the rollup.
    pub inserted: usize,
    /// Rows already in the ledger (replays), skipped.
    pub duplicates: usize,
    /// Rows older than the retention horizon, neither inserted nor counted:
    /// the caller keeps them aside.
    pub expired: Vec<LedgerRow>,
}

/// The most rows one insert statement carries.
const MAX_PIECE: usize = 64;

/// `items` in pieces whose sizes are powers of two up to [`MAX_PIECE`]
/// (and within SQLite's 32,766 parameters a statement at `columns` a row),
/// largest first: a statement's text depends only on its size, so a
/// connection prepares at most seven of each (each kept compiled: parsing
/// and planning a multi-row insert costs more than running it), however
/// the batches vary.
fn pieces<T>(items: &[T], columns: usize) -> impl Iterator<Item = &[T]> {
    let most = MAX_PIECE.min(MAX_PARAMS / columns.max(1)).max(1);
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = rest.len().min(most);
        // The largest power of two not above n.
        let size = 1 << (usize::BITS - 1 - n.leading_zeros());
        let (piece, after) = rest.split_at(size);
        rest = after;
        Some(piece)
    })
}

/// Inserts `rows`, skipping those already in the ledger, and adds the
/// inserted ones to the hourly rollup, atomically. Returns how many were
/// new. Rows older than the retention horizon are not inserted (see
/// [`write_batch`], which returns them).
pub async fn insert_batch(db: &Db, rows: &[LedgerRow]) -> Result<usize, DbError> {
    Ok(write_batch(db, rows).await?.inserted)
}

/// Like [`insert_batch`], saying what happened to every row.
pub async fn write_batch(db: &Db, rows: &[LedgerRow]) -> Result<Written, DbError> {
    let mut written = Written::default();
    if rows.is_empty() {
        return Ok(written);
    }
    let mut tx = db.pool().begin().await?;
    let horizon = match db.backend() {
        Backend::Postgres => {
            // First statement: maintenance raises the horizon under this
            // row's lock before it drops a month, so the horizon read here
            // holds until commit.
            let horizon: i64 = sqlx::query("SELECT dropped_before FROM ledger_retention FOR SHARE")
                .fetch_one(&mut *tx)
                .await?
                .try_get("dropped_before")?;
            horizon
        }
        Backend::Sqlite => i64::MIN,
    };
    let (live, expired): (Vec<&LedgerRow>, Vec<&LedgerRow>) =
        rows.iter().partition(|r| r.started_at_ms >= horizon);
    written.expired = expired.into_iter().cloned().collect();
    let mut inserted: HashSet<(String, i64)> = HashSet::new();
    for chunk in pieces(&live, LEDGER_COLUMNS.len()) {
        // One statement per piece size, prepared once per connection.
        let mut q = sqlx::query(insert_statement(db, Table::Ledger, chunk.len()));
        for r in chunk {
            let u = &r.usage;
            q = q
                .bind(r.request_id.to_string())
                .bind(r.started_at_ms)
                .bind(r.org_id.as_deref())
                .bind(r.team_id.as_deref())
                .bind(r.key_id.as_deref())
                .bind(r.client_format.as_str())
                .bind(r.endpoint.as_str())
                .bind(r.requested_model.as_str())
                .bind(r.provider.as_str())
                .bind(r.upstream_model.as_str())
                .bind(i64::from(r.status))
                .bind(r.outcome.as_str())
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
                .bind(i64::from(r.priced))
                .bind(r.route())
                .bind(i64::from(r.attempt))
                .bind(r.client_request_id().to_string())
                .bind(r.reference_model.as_deref())
                .bind(r.reference_cost_picousd)
                .bind(r.session.as_deref());
        }
        for row in q.fetch_all(&mut *tx).await? {
            inserted.insert((row.try_get("request_id")?, row.try_get("started_at")?));
        }
    }
    written.inserted = inserted.len();
    written.duplicates = live.len() - inserted.len();
    // Roll up only what went in: a replayed row must not count twice, nor
    // a row the batch carries twice (each returned key is taken once).
    type GroupKey<'a> = (i64, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str);
    let mut groups: BTreeMap<GroupKey, Sums> = BTreeMap::new();
    for r in live
        .iter()
        .filter(|r| inserted.remove(&(r.request_id.to_string(), r.started_at_ms)))
    {
        let key = (
            r.hour_ms(),
            r.org_id.as_deref().unwrap_or(""),
            r.team_id.as_deref().unwrap_or(""),
            r.key_id.as_deref().unwrap_or(""),
            r.route(),
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
        s.reference_cost = s.reference_cost.saturating_add(r.reference_cost().0);
    }
    let groups: Vec<_> = groups.into_iter().collect();
    for chunk in pieces(&groups, ROLLUP_COLUMNS.len()) {
        let mut q = sqlx::query(insert_statement(db, Table::Rollup, chunk.len()));
        for ((hour, org, team, key, route, model, provider), s) in chunk {
            q = q
                .bind(*hour)
                .bind(*org)
                .bind(*team)
                .bind(*key)
                .bind(*route)
                .bind(*model)
                .bind(*provider)
                .bind(s.requests);
            for t in s.tokens {
                q = q.bind(t);
            }
            q = q.bind(s.cost).bind(s.reference_cost);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(written)
}

#[cfg(test)]
mod piece_tests {
    #[test]
    fn pieces_are_powers_of_two_up_to_the_most_a_statement_takes() {
        let items: Vec<u32> = (0..100).collect();
        let sizes: Vec<usize> = super::pieces(&items, 29).map(<[u32]>::len).collect();
        assert_eq!(sizes, vec![64, 32, 4]);
        let all: Vec<u32> = super::pieces(&items, 29).flatten().copied().collect();
        assert_eq!(all, items);
        assert_eq!(super::pieces(&items[..0], 29).count(), 0);
        let sizes: Vec<usize> = super::pieces(&items[..7], 29).map(<[u32]>::len).collect();
        assert_eq!(sizes, vec![4, 2, 1]);
    }
}
