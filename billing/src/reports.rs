//! Spend reports: totals grouped by org, team, key, route, model, provider,
//! day or hour over `[from, to)` (and by agent session: [`sessions`]), with what the same usage would have cost on
//! each route's reference model and so what routing saved. Whole hours come from the hourly rollup; the
//! partial hours at either end come from the ledger rows, so any range is
//! exact and a month over ten million rows reads about a hundred thousand
//! rollup rows and two hours of rows.
//!
//! Before the retention horizon (months whose raw rows were dropped) only
//! the rollup is left, so there a report is exact to the hour: a range end
//! inside such an hour moves to the hour's start (each hour counts in the
//! range that holds its start, so adjacent ranges still add up).

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use crate::db::{Db, DbError};
use crate::money::Picodollars;
use crate::tenancy::rfc3339;

mod sessions;

pub use sessions::{sessions, sessions_csv, sessions_total, SessionRow, MAX_SESSIONS};

const HOUR_MS: i64 = 3_600_000;

/// What to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Org,
    Team,
    Key,
    Route,
    Model,
    Provider,
    Day,
    Hour,
}

impl GroupBy {
    /// Parses `org`, `team`, `key`, `route`, `model`, `provider`, `day` or `hour`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "org" => Self::Org,
            "team" => Self::Team,
            "key" => Self::Key,
            "route" => Self::Route,
            "model" => Self::Model,
            "provider" => Self::Provider,
            "day" => Self::Day,
            "hour" => Self::Hour,
            _ => return None,
        })
    }

    /// The grouping expression over the rollup and over the ledger.
    fn exprs(self) -> (&'static str, &'static str) {
        match self {
            Self::Org => ("org_id", "COALESCE(org_id, '')"),
            Self::Team => ("team_id", "COALESCE(team_id, '')"),
            Self::Key => ("key_id", "COALESCE(key_id, '')"),
            Self::Route => ("route", "route"),
            Self::Model => ("model", "requested_model"),
            Self::Provider => ("provider", "provider"),
            Self::Day => (
                "CAST((hour / 86400000) * 86400000 AS TEXT)",
                "CAST((started_at / 86400000) * 86400000 AS TEXT)",
            ),
            Self::Hour => (
                "CAST(hour AS TEXT)",
                "CAST((started_at / 3600000) * 3600000 AS TEXT)",
            ),
        }
    }

    fn is_time(self) -> bool {
        matches!(self, Self::Day | Self::Hour)
    }
}

/// Which rows count.
#[derive(Debug, Clone, Default)]
pub struct SpendFilter {
    /// Start, inclusive, ms since the epoch.
    pub from_ms: i64,
    /// End, exclusive.
    pub to_ms: i64,
    pub org_id: Option<String>,
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub route: Option<String>,
    pub model: Option<String>,
}

/// One group's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpendRow {
    /// The group's value; `null` for master-key traffic in org, team and key
    /// groupings; an RFC 3339 time for day and hour.
    pub group: Option<String>,
    pub requests: i64,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub cache_write_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    /// Exact, as a decimal string.
    pub cost_usd: String,
    pub cost_picousd: i64,
    /// What the same usage would have cost on each route's reference model
    /// (the actual cost where a route has no reference).
    pub reference_cost_usd: String,
    pub reference_cost_picousd: i64,
    /// Reference cost minus cost: what routing saved (negative: what it cost).
    pub savings_usd: String,
    pub savings_picousd: i64,
}

const SUMS: [&str; 8] = [
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_picousd",
    "reference_cost_picousd",
];

/// The `WHERE` conditions of a filter (the range's ends are parameters 1
/// and 2), and the values to bind after them.
fn conditions(
    db: &Db,
    f: &SpendFilter,
    time_col: &str,
    model_col: &str,
) -> (Vec<String>, Vec<String>) {
    let mut conds = vec![
        format!("{time_col} >= {}", db.param(1)),
        format!("{time_col} < {}", db.param(2)),
    ];
    let mut binds: Vec<String> = Vec::new();
    for (col, value) in [
        ("org_id", &f.org_id),
        ("team_id", &f.team_id),
        ("key_id", &f.key_id),
        ("route", &f.route),
        (model_col, &f.model),
    ] {
        if let Some(v) = value {
            binds.push(v.clone());
            conds.push(format!("{col} = {}", db.param(2 + binds.len())));
        }
    }
    (conds, binds)
}

async fn query_part(
    db: &Db,
    by: GroupBy,
    f: &SpendFilter,
    rollup: bool,
    (from, to): (i64, i64),
    totals: &mut BTreeMap<String, [i64; 8]>,
) -> Result<(), DbError> {
    if from >= to {
        return Ok(());
    }
    let (roll_expr, raw_expr) = by.exprs();
    let (table, expr, time_col, model_col) = if rollup {
        ("spend_hourly", roll_expr, "hour", "model")
    } else {
        ("ledger", raw_expr, "started_at", "requested_model")
    };
    let sums: Vec<String> = SUMS
        .iter()
        .map(|c| match (*c, rollup) {
            ("requests", false) => "CAST(COUNT(*) AS BIGINT)".to_owned(),
            ("reference_cost_picousd", false) => {
                "CAST(SUM(COALESCE(reference_cost_picousd, cost_picousd)) AS BIGINT)".to_owned()
            }
            (c, _) => format!("CAST(SUM({c}) AS BIGINT)"),
        })
        .collect();
    let (conds, binds) = conditions(db, f, time_col, model_col);
    let sql = format!(
        "SELECT {expr} AS g, {} FROM {table} WHERE {} GROUP BY {expr}",
        sums.join(", "),
        conds.join(" AND ")
    );
    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(from).bind(to);
    for b in binds {
        q = q.bind(b);
    }
    for row in q.fetch_all(db.pool()).await? {
        let g: String = row.try_get("g")?;
        let t = totals.entry(g).or_insert([0; 8]);
        for (i, slot) in t.iter_mut().enumerate() {
            *slot = slot.saturating_add(row.try_get::<Option<i64>, _>(i + 1)?.unwrap_or(0));
        }
    }
    Ok(())
}

impl SpendRow {
    /// A row from its sums, in `SUMS` order.
    fn new(group: Option<String>, t: [i64; 8]) -> Self {
        let savings = t[7].saturating_sub(t[6]);
        SpendRow {
            group,
            requests: t[0],
            input_tokens: t[1],
            cached_input_tokens: t[2],
            cache_write_tokens: t[3],
            output_tokens: t[4],
            reasoning_tokens: t[5],
            cost_usd: Picodollars(t[6]).usd(),
            cost_picousd: t[6],
            reference_cost_usd: Picodollars(t[7]).usd(),
            reference_cost_picousd: t[7],
            savings_usd: Picodollars(savings).usd(),
            savings_picousd: savings,
        }
    }
}

/// The sums per raw group value over the range: whole hours from the
/// rollup, the partial hours at either end from the rows.
async fn totals(
    db: &Db,
    by: GroupBy,
    filter: &SpendFilter,
) -> Result<BTreeMap<String, [i64; 8]>, DbError> {
    let horizon = crate::ledger::dropped_before(db).await?;
    let snap = |t: i64| {
        if t < horizon {
            t.div_euclid(HOUR_MS) * HOUR_MS
        } else {
            t
        }
    };
    let (from, to) = (snap(filter.from_ms), snap(filter.to_ms));
    let whole_from = from.div_euclid(HOUR_MS) * HOUR_MS
        + if from.rem_euclid(HOUR_MS) == 0 {
            0
        } else {
            HOUR_MS
        };
    let whole_to = to.div_euclid(HOUR_MS) * HOUR_MS;
    let mut totals = BTreeMap::new();
    if whole_from < whole_to {
        query_part(db, by, filter, true, (whole_from, whole_to), &mut totals).await?;
        query_part(db, by, filter, false, (from, whole_from), &mut totals).await?;
        query_part(db, by, filter, false, (whole_to, to), &mut totals).await?;
    } else {
        query_part(db, by, filter, false, (from, to), &mut totals).await?;
    }
    Ok(totals)
}

/// Spend grouped by `by` for the rows `filter` selects, sorted by group.
pub async fn spend(db: &Db, by: GroupBy, filter: &SpendFilter) -> Result<Vec<SpendRow>, DbError> {
    let mut rows: Vec<(Option<i64>, SpendRow)> = totals(db, by, filter)
        .await?
        .into_iter()
        .map(|(g, t)| {
            let time = by.is_time().then(|| g.parse::<i64>().unwrap_or(0));
            let group = match time {
                Some(ms) => Some(rfc3339(ms)),
                None if g.is_empty() => None,
                None => Some(g),
            };
            (time, SpendRow::new(group, t))
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.group.cmp(&b.1.group)));
    Ok(rows.into_iter().map(|(_, r)| r).collect())
}

/// Spend of one key (or all traffic) over a range, as one row.
pub async fn total(db: &Db, filter: &SpendFilter) -> Result<SpendRow, DbError> {
    let mut t = [0i64; 8];
    for sums in totals(db, GroupBy::Provider, filter).await?.values() {
        for (slot, v) in t.iter_mut().zip(sums) {
            *slot = slot.saturating_add(*v);
        }
    }
    Ok(SpendRow::new(None, t))
}

/// Rows added up into one, with no group: a report's total.
pub fn sum(rows: &[SpendRow]) -> SpendRow {
    let mut t = [0i64; 8];
    for r in rows {
        let sums = [
            r.requests,
            r.input_tokens,
            r.cached_input_tokens,
            r.cache_write_tokens,
            r.output_tokens,
            r.reasoning_tokens,
            r.cost_picousd,
            r.reference_cost_picousd,
        ];
        for (slot, v) in t.iter_mut().zip(sums) {
            *slot = slot.saturating_add(v);
        }
    }
    SpendRow::new(None, t)
}

/// The start of the UTC day and month containing `now_ms`.
pub fn day_and_month_start(now_ms: i64) -> (i64, i64) {
    use crate::quota::Period;
    (
        Period::Daily.window(now_ms).0,
        Period::Monthly.window(now_ms).0,
    )
}

/// A CSV field, quoted when it holds a comma, a quote or a line break. A
/// field a spreadsheet would take for a formula (one starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return: session ids come from
/// clients) gets a leading `'`, which spreadsheets show as text.
fn csv_field(v: &str) -> std::borrow::Cow<'_, str> {
    let formula = v.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula {
        format!("\"'{}\"", v.replace('"', "\"\"")).into()
    } else if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\"")).into()
    } else {
        v.into()
    }
}

/// Rows as CSV with a header line.
pub fn to_csv(rows: &[SpendRow]) -> String {
    let mut out = String::from("group,requests,input_tokens,cached_input_tokens,cache_write_tokens,output_tokens,reasoning_tokens,cost_usd,reference_cost_usd,savings_usd\n");
    for r in rows {
        let quoted = csv_field(r.group.as_deref().unwrap_or(""));
        out.push_str(&format!(
            "{quoted},{},{},{},{},{},{},{},{},{}\n",
            r.requests,
            r.input_tokens,
            r.cached_input_tokens,
            r.cache_write_tokens,
            r.output_tokens,
            r.reasoning_tokens,
            r.cost_usd,
            r.reference_cost_usd,
            r.savings_usd
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_and_month_starts_are_utc_calendar_boundaries() {
        // 2026-11-21T14:43:49Z
        let now = 1_795_272_229_000;
        let (day, month) = day_and_month_start(now);
        assert_eq!(rfc3339(day), "2026-11-21T00:00:00.000Z");
        assert_eq!(rfc3339(month), "2026-11-01T00:00:00.000Z");
        let (_, march) =
            day_and_month_start(crate::tenancy::parse_rfc3339("2024-03-01T00:00:00Z").unwrap());
        assert_eq!(rfc3339(march), "2024-03-01T00:00:00.000Z");
    }

    #[test]
    fn a_sum_adds_every_column_and_recomputes_savings() {
        let row = |cost: i64, reference: i64| {
            SpendRow::new(Some("g".into()), [1, 2, 3, 4, 5, 6, cost, reference])
        };
        let total = sum(&[row(700_000, 1_000_000), row(300_000, 250_000)]);
        assert_eq!(total.group, None);
        assert_eq!(
            [total.requests, total.input_tokens, total.reasoning_tokens],
            [2, 4, 12]
        );
        assert_eq!(total.cost_usd, "0.000001000000");
        assert_eq!(total.reference_cost_usd, "0.000001250000");
        assert_eq!(total.savings_usd, "0.000000250000");
        assert_eq!(sum(&[]).cost_usd, "0.000000000000");
    }

    #[test]
    fn csv_quotes_awkward_groups() {
        let row = SpendRow {
            group: Some("a,b".into()),
            requests: 1,
            input_tokens: 2,
            cached_input_tokens: 3,
            cache_write_tokens: 4,
            output_tokens: 5,
            reasoning_tokens: 6,
            cost_usd: "0.1".into(),
            cost_picousd: 0,
            reference_cost_usd: "0.3".into(),
            reference_cost_picousd: 0,
            savings_usd: "0.2".into(),
            savings_picousd: 0,
        };
        assert_eq!(
            to_csv(&[row]).lines().nth(1),
            Some("\"a,b\",1,2,3,4,5,6,0.1,0.3,0.2")
        );
    }

    #[test]
    fn csv_fields_a_spreadsheet_would_run_are_text() {
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        for v in ["+1", "-1+2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(csv_field(v), format!("\"'{v}\""));
        }
        assert_eq!(csv_field("team-a"), "team-a");
        assert_eq!(csv_field("a=b"), "a=b");
    }
}
