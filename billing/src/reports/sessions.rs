//! The session report: what each agent session (task) cost over a range,
//! with when it was first and last seen and how much of its prompt the
//! provider's cache served. Read from the ledger rows (the rollup has no
//! sessions), through the partial index on `(started_at, session)`; rows
//! that name no session are not in it. On Postgres, months whose raw rows
//! retention dropped have no sessions left to report.

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use super::{conditions, csv_field, SpendFilter, SpendRow, SUMS};
use crate::db::{Db, DbError};
use crate::tenancy::rfc3339;

/// The most sessions one report lists.
pub const MAX_SESSIONS: u32 = 10_000;

/// One session's totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRow {
    /// The session in `group`, and its sums, cost, reference cost and
    /// savings, as in every spend report.
    #[serde(flatten)]
    pub spend: SpendRow,
    /// When its first and last request in the range started (RFC 3339).
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    /// Cached input over all input (uncached, cached and cache writes),
    /// from 0 to 1; `null` when it had no input tokens.
    pub cache_hit_share: Option<f64>,
    #[serde(skip)]
    first_ms: i64,
    #[serde(skip)]
    last_ms: i64,
}

impl SessionRow {
    fn new(group: Option<String>, (first_ms, last_ms): (i64, i64), sums: [i64; 8]) -> Self {
        let spend = SpendRow::new(group, sums);
        let input = spend
            .input_tokens
            .saturating_add(spend.cached_input_tokens)
            .saturating_add(spend.cache_write_tokens);
        let share = (input > 0).then(|| {
            // Four decimals: a share, not money; exact enough to read.
            (spend.cached_input_tokens as f64 / input as f64 * 10_000.0).round() / 10_000.0
        });
        let seen = spend.requests > 0;
        Self {
            spend,
            first_seen: seen.then(|| rfc3339(first_ms)),
            last_seen: seen.then(|| rfc3339(last_ms)),
            cache_hit_share: share,
            first_ms,
            last_ms,
        }
    }
}

/// The sessions of the rows `filter` selects, most recently seen first, at
/// most `limit` (capped at [`MAX_SESSIONS`]).
pub async fn sessions(
    db: &Db,
    filter: &SpendFilter,
    limit: u32,
) -> Result<Vec<SessionRow>, DbError> {
    let (mut conds, binds) = conditions(db, filter, "started_at", "requested_model");
    conds.push("session IS NOT NULL".to_owned());
    let sums: Vec<String> = SUMS
        .iter()
        .map(|c| match *c {
            "requests" => "CAST(COUNT(*) AS BIGINT)".to_owned(),
            "reference_cost_picousd" => {
                "CAST(SUM(COALESCE(reference_cost_picousd, cost_picousd)) AS BIGINT)".to_owned()
            }
            c => format!("CAST(SUM({c}) AS BIGINT)"),
        })
        .collect();
    let sql = format!(
        "SELECT session, CAST(MIN(started_at) AS BIGINT) AS first_ms, \
         CAST(MAX(started_at) AS BIGINT) AS last_ms, {} FROM ledger WHERE {} \
         GROUP BY session ORDER BY last_ms DESC, session LIMIT {}",
        sums.join(", "),
        conds.join(" AND "),
        limit.min(MAX_SESSIONS)
    );
    let mut q = sqlx::query(AssertSqlSafe(sql))
        .bind(filter.from_ms)
        .bind(filter.to_ms);
    for b in binds {
        q = q.bind(b);
    }
    let mut out = Vec::new();
    for row in q.fetch_all(db.pool()).await? {
        let mut t = [0i64; 8];
        for (i, slot) in t.iter_mut().enumerate() {
            *slot = row.try_get::<Option<i64>, _>(i + 3)?.unwrap_or(0);
        }
        let seen = (row.try_get("first_ms")?, row.try_get("last_ms")?);
        out.push(SessionRow::new(Some(row.try_get("session")?), seen, t));
    }
    Ok(out)
}

/// Sessions added up into one, with no group: the report's total, first
/// and last seen over all of them.
pub fn sessions_total(rows: &[SessionRow]) -> SessionRow {
    let spend: Vec<SpendRow> = rows.iter().map(|r| r.spend.clone()).collect();
    let s = super::sum(&spend);
    let sums = [
        s.requests,
        s.input_tokens,
        s.cached_input_tokens,
        s.cache_write_tokens,
        s.output_tokens,
        s.reasoning_tokens,
        s.cost_picousd,
        s.reference_cost_picousd,
    ];
    let first = rows.iter().map(|r| r.first_ms).min().unwrap_or(0);
    let last = rows.iter().map(|r| r.last_ms).max().unwrap_or(0);
    SessionRow::new(None, (first, last), sums)
}

/// Sessions as CSV with a header line.
pub fn sessions_csv(rows: &[SessionRow]) -> String {
    let mut out = String::from(
        "session,first_seen,last_seen,requests,input_tokens,cached_input_tokens,cache_write_tokens,\
         output_tokens,reasoning_tokens,cache_hit_share,cost_usd,reference_cost_usd,savings_usd\n",
    );
    for r in rows {
        let s = &r.spend;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(s.group.as_deref().unwrap_or("")),
            r.first_seen.as_deref().unwrap_or(""),
            r.last_seen.as_deref().unwrap_or(""),
            s.requests,
            s.input_tokens,
            s.cached_input_tokens,
            s.cache_write_tokens,
            s.output_tokens,
            s.reasoning_tokens,
            r.cache_hit_share.map(|v| v.to_string()).unwrap_or_default(),
            s.cost_usd,
            s.reference_cost_usd,
            s.savings_usd
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_hit_share_is_cached_over_all_input() {
        let r = SessionRow::new(Some("s".into()), (1, 2), [2, 30, 60, 10, 5, 0, 7, 7]);
        assert_eq!(r.cache_hit_share, Some(0.6));
        let none = SessionRow::new(Some("s".into()), (1, 2), [1, 0, 0, 0, 5, 0, 7, 7]);
        assert_eq!(none.cache_hit_share, None);
    }

    #[test]
    fn a_total_spans_its_sessions() {
        let a = SessionRow::new(Some("a".into()), (5_000, 9_000), [1, 10, 0, 0, 1, 0, 3, 4]);
        let b = SessionRow::new(Some("b".into()), (1_000, 6_000), [2, 10, 20, 0, 1, 0, 5, 5]);
        let t = sessions_total(&[a, b]);
        assert_eq!(t.spend.group, None);
        assert_eq!(t.spend.requests, 3);
        assert_eq!(t.first_seen.as_deref(), Some("1970-01-01T00:00:01.000Z"));
        assert_eq!(t.last_seen.as_deref(), Some("1970-01-01T00:00:09.000Z"));
        assert_eq!(t.cache_hit_share, Some(0.5));
        assert_eq!(t.spend.savings_picousd, 1);
        let empty = sessions_total(&[]);
        assert_eq!((empty.first_seen, empty.cache_hit_share), (None, None));
    }

    #[test]
    fn csv_has_one_line_a_session_with_its_times_and_share() {
        let r = SessionRow::new(
            Some("task,1".into()),
            (0, 3_600_000),
            [4, 25, 75, 0, 8, 2, 9, 9],
        );
        let csv = sessions_csv(&[r]);
        assert_eq!(
            csv.lines().nth(1),
            Some("\"task,1\",1970-01-01T00:00:00.000Z,1970-01-01T01:00:00.000Z,4,25,75,0,8,2,0.75,0.000000000009,0.000000000009,0.000000000000")
        );
    }
}
