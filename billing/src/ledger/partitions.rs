//! The Postgres ledger's monthly partitions: made ahead (this month and the
//! next), rows moved out of the default partition into their month's, and
//! whole months dropped past the retention horizon. `spend_hourly` is never
//! touched, so reports answer for dropped months from it. SQLite keeps one
//! plain table: every step here is a no-op there.
//!
//! Locking: one maintenance transaction at a time across replicas (an
//! advisory lock). A step first looks, taking no other lock; most find
//! nothing to do. One that has work raises the horizon first, under its
//! row's lock (the writer reads that row `FOR SHARE` as the first statement
//! of each batch, so a batch either commits before the drop or sees the new
//! horizon), then locks the ledger against writes (not reads) for the rest
//! of the step: attaching a partition while a batch routes rows into the
//! default one fails that batch, and rows moving out of the default
//! partition must not be joined by new ones. Dropping a month takes the
//! ledger exclusively until the commit. A batch waits for a step at most; a
//! step never waits on a batch that waits on it. Lock waits are bounded by
//! `lock_timeout`: a step that cannot get its locks gives up until the next
//! run, and rows keep landing in the default partition meanwhile.

use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::db::{Backend, Db, DbError};

/// The partition that catches rows in months without one of their own.
pub const DEFAULT_PARTITION: &str = "ledger_default";

/// Shared by every replica's maintenance: one transaction at a time.
const ADVISORY_LOCK: i64 = 0x746f_6c6c_6761_7465; // "tollgate"

/// A maintenance step waits this long for a lock, then gives up until the
/// next run (a long report holding the default partition must not stall
/// the writers queued behind the step).
const LOCK_TIMEOUT: &str = "5s";

/// A UTC calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i64,
    /// 1 to 12.
    month: i64,
}

const DAY_MS: i64 = 86_400_000;

/// The first day of (year, month) as days since the epoch.
fn first_day(y: i64, m: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Month {
    /// The month containing `ms`.
    pub fn of(ms: i64) -> Month {
        let (year, month, _) = crate::quota::limits::civil(ms.div_euclid(DAY_MS));
        Month { year, month }
    }

    /// Its first millisecond.
    pub fn start_ms(self) -> i64 {
        first_day(self.year, self.month) * DAY_MS
    }

    /// The first millisecond after it.
    pub fn end_ms(self) -> i64 {
        self.next().start_ms()
    }

    /// The month after.
    pub fn next(self) -> Month {
        self.plus(1)
    }

    /// `n` months later (earlier when negative).
    pub fn plus(self, n: i64) -> Month {
        let i = self.year * 12 + (self.month - 1) + n;
        Month {
            year: i.div_euclid(12),
            month: i.rem_euclid(12) + 1,
        }
    }

    /// The name of its partition: `ledger_pYYYYMM`.
    pub fn partition(self) -> String {
        format!("ledger_p{:04}{:02}", self.year, self.month)
    }
}

/// One partition of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    /// `[from, to)` in ms; `None` for the default partition.
    pub range: Option<(i64, i64)>,
}

/// What a maintenance step did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Maintained {
    /// Partitions made (ahead, or for rows that were in the default one).
    pub created: Vec<String>,
    /// Rows moved out of the default partition into their month's.
    pub moved_rows: u64,
    /// Partitions dropped past the retention horizon.
    pub dropped: Vec<String>,
    /// Rows deleted from the default partition past the horizon.
    pub expired_rows: u64,
    /// The horizon after the step (`i64::MIN`: nothing ever dropped).
    pub dropped_before: i64,
}

impl Maintained {
    /// Whether the step changed anything.
    pub fn changed(&self) -> bool {
        !self.created.is_empty()
            || self.moved_rows > 0
            || !self.dropped.is_empty()
            || self.expired_rows > 0
    }
}

/// The retention horizon: raw rows that started before it are gone (the
/// rollup still counts them). `i64::MIN` when nothing was ever dropped, and
/// always on SQLite.
pub async fn dropped_before(db: &Db) -> Result<i64, DbError> {
    if db.backend() != Backend::Postgres {
        return Ok(i64::MIN);
    }
    let row = sqlx::query("SELECT dropped_before FROM ledger_retention")
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get("dropped_before")?)
}

/// Parses `FOR VALUES FROM ('a') TO ('b')`; `None` for anything else.
fn parse_bound(expr: &str) -> Option<(i64, i64)> {
    let nums: Vec<i64> = expr
        .split(|c: char| !(c.is_ascii_digit() || c == '-'))
        .filter(|s| !s.is_empty() && *s != "-")
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    match nums[..] {
        [from, to] if expr.starts_with("FOR VALUES FROM") => Some((from, to)),
        _ => None,
    }
}

async fn list_on(conn: &mut AnyConnection) -> Result<Vec<Partition>, DbError> {
    let rows = sqlx::query(
        "SELECT CAST(c.relname AS TEXT) AS name, pg_get_expr(c.relpartbound, c.oid) AS bound \
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = CAST('ledger' AS regclass) ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let bound: String = r.try_get("bound")?;
        out.push(Partition {
            name: r.try_get("name")?,
            range: parse_bound(&bound),
        });
    }
    Ok(out)
}

/// The ledger's partitions, by name (empty on SQLite).
pub async fn list(db: &Db) -> Result<Vec<Partition>, DbError> {
    if db.backend() != Backend::Postgres {
        return Ok(Vec::new());
    }
    let mut conn = db.pool().acquire().await?;
    list_on(&mut conn).await
}

/// Makes `month`'s partition unless a partition already covers part of it,
/// moving its rows out of the default partition. Returns the rows moved, or
/// `None` when nothing was made. The caller has locked writers out.
async fn make(
    conn: &mut AnyConnection,
    existing: &mut Vec<Partition>,
    month: Month,
) -> Result<Option<u64>, DbError> {
    let (from, to) = (month.start_ms(), month.end_ms());
    if existing
        .iter()
        .any(|p| p.range.is_some_and(|(a, b)| a < to && from < b))
    {
        return Ok(None);
    }
    let name = month.partition();
    // Made beside the table, filled, then attached (reports go on reading
    // the ledger meanwhile, but for the instant of the attach).
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE {name} (LIKE ledger INCLUDING DEFAULTS)"
    )))
    .execute(&mut *conn)
    .await?;
    let moved = sqlx::raw_sql(AssertSqlSafe(format!(
        "WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE started_at >= {from} AND started_at < {to} RETURNING *) \
         INSERT INTO {name} SELECT * FROM moved"
    )))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "ALTER TABLE ledger ATTACH PARTITION {name} FOR VALUES FROM ({from}) TO ({to})"
    )))
    .execute(&mut *conn)
    .await?;
    existing.push(Partition {
        name,
        range: Some((from, to)),
    });
    Ok(Some(moved))
}

/// Opens a maintenance transaction: one at a time across replicas, bounded
/// lock waits. Returns the current horizon.
async fn begin(conn: &mut AnyConnection) -> Result<i64, DbError> {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"
    )))
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ADVISORY_LOCK)
        .execute(&mut *conn)
        .await?;
    let row = sqlx::query("SELECT dropped_before FROM ledger_retention")
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get("dropped_before")?)
}

/// Locks the ledger against writes (not reads) until the commit. Batches in
/// flight commit first.
async fn lock_out_writers(conn: &mut AnyConnection) -> Result<(), DbError> {
    sqlx::raw_sql("LOCK TABLE ledger IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Moves every row in the default partition at or past `horizon` into its
/// month's partition, making the partitions.
async fn drain_default(
    conn: &mut AnyConnection,
    existing: &mut Vec<Partition>,
    horizon: i64,
    done: &mut Maintained,
) -> Result<(), DbError> {
    let mut after = horizon;
    loop {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT MIN(started_at) AS at FROM {DEFAULT_PARTITION} WHERE started_at >= $1"
        )))
        .bind(after)
        .fetch_one(&mut *conn)
        .await?;
        let Some(at) = row.try_get::<Option<i64>, _>("at")? else {
            return Ok(());
        };
        let month = Month::of(at);
        if let Some(moved) = make(conn, existing, month).await? {
            done.created.push(month.partition());
            done.moved_rows += moved;
        }
        // A month some other partition covers in part keeps its rows here.
        after = month.end_ms();
    }
}

/// Makes the partitions of every month that overlaps `[from_ms, to_ms)`
/// (moving their rows out of the default partition). Returns the names made.
pub async fn ensure_months(db: &Db, from_ms: i64, to_ms: i64) -> Result<Vec<String>, DbError> {
    if db.backend() != Backend::Postgres || from_ms >= to_ms {
        return Ok(Vec::new());
    }
    let mut tx = db.pool().begin().await?;
    let horizon = begin(&mut tx).await?;
    lock_out_writers(&mut tx).await?;
    let mut existing = list_on(&mut tx).await?;
    let mut made = Vec::new();
    let mut month = Month::of(from_ms.max(horizon));
    while month.start_ms() < to_ms {
        if make(&mut tx, &mut existing, month).await?.is_some() {
            made.push(month.partition());
        }
        month = month.next();
    }
    tx.commit().await?;
    Ok(made)
}

/// One maintenance step at `now_ms`: with `retention_months` set, raises the
/// horizon to the start of the month that many months before this one and
/// drops the partitions (and default-partition rows) wholly before it; moves
/// rows out of the default partition into their months' partitions; makes
/// this month's and the next month's partitions. One transaction.
pub async fn maintain(
    db: &Db,
    now_ms: i64,
    retention_months: Option<u32>,
) -> Result<Maintained, DbError> {
    let mut done = Maintained {
        dropped_before: i64::MIN,
        ..Maintained::default()
    };
    if db.backend() != Backend::Postgres {
        return Ok(done);
    }
    let this_month = Month::of(now_ms);
    let mut tx = db.pool().begin().await?;
    let old = begin(&mut tx).await?;
    let horizon = retention_months
        .map(|n| this_month.plus(-i64::from(n)).start_ms())
        .unwrap_or(i64::MIN)
        .max(old);
    done.dropped_before = horizon;
    // A look first, taking no lock writers would wait on.
    let existing = list_on(&mut tx).await?;
    let default_rows: bool = sqlx::query(AssertSqlSafe(format!(
        "SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION}) AS any"
    )))
    .fetch_one(&mut *tx)
    .await?
    .try_get("any")?;
    let covered = |m: Month| {
        existing.iter().any(|p| {
            p.range
                .is_some_and(|(a, b)| a < m.end_ms() && m.start_ms() < b)
        })
    };
    let work = horizon > old
        || default_rows
        || !covered(this_month)
        || !covered(this_month.next())
        || existing
            .iter()
            .any(|p| p.range.is_some_and(|(_, to)| to <= horizon));
    if !work {
        tx.commit().await?;
        return Ok(done);
    }
    if horizon > old {
        // Before the ledger lock: batches that read the old horizon commit
        // first, later ones wait for this step and see the new one.
        sqlx::query("UPDATE ledger_retention SET dropped_before = $1")
            .bind(horizon)
            .execute(&mut *tx)
            .await?;
    }
    lock_out_writers(&mut tx).await?;
    if horizon > i64::MIN {
        done.expired_rows = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {DEFAULT_PARTITION} WHERE started_at < $1"
        )))
        .bind(horizon)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    let mut kept = Vec::new();
    for p in existing {
        if p.range.is_some_and(|(_, to)| to <= horizon) {
            sqlx::raw_sql(AssertSqlSafe(format!("DROP TABLE {}", p.name)))
                .execute(&mut *tx)
                .await?;
            done.dropped.push(p.name);
        } else {
            kept.push(p);
        }
    }
    drain_default(&mut tx, &mut kept, horizon, &mut done).await?;
    for month in [this_month, this_month.next()] {
        if month.end_ms() > horizon && make(&mut tx, &mut kept, month).await?.is_some() {
            done.created.push(month.partition());
        }
    }
    tx.commit().await?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::{parse_rfc3339, rfc3339};

    fn at(s: &str) -> i64 {
        parse_rfc3339(s).unwrap_or(i64::MIN)
    }

    #[test]
    fn months_are_utc_calendar_months() {
        let m = Month::of(at("2026-02-28T23:59:59.999Z"));
        assert_eq!(m.partition(), "ledger_p202602");
        assert_eq!(rfc3339(m.start_ms()), "2026-02-01T00:00:00.000Z");
        assert_eq!(rfc3339(m.end_ms()), "2026-03-01T00:00:00.000Z");
        assert_eq!(Month::of(m.end_ms()).partition(), "ledger_p202603");
        let leap = Month::of(at("2024-02-10T00:00:00Z"));
        assert_eq!(leap.end_ms() - leap.start_ms(), 29 * DAY_MS);
        assert_eq!(Month::of(0).partition(), "ledger_p197001");
        assert_eq!(Month::of(-1).partition(), "ledger_p196912");
        let dec = Month::of(at("2025-12-31T12:00:00Z"));
        assert_eq!(dec.next().partition(), "ledger_p202601");
        assert_eq!(dec.plus(-12).partition(), "ledger_p202412");
        assert_eq!(dec.plus(-13).partition(), "ledger_p202411");
        for ms in [0, 1_795_272_229_000, -86_400_001, 253_402_300_799_999] {
            let m = Month::of(ms);
            assert!(m.start_ms() <= ms && ms < m.end_ms(), "{ms}");
        }
    }

    #[test]
    fn partition_bounds_are_read_back() {
        assert_eq!(
            parse_bound("FOR VALUES FROM ('1793491200000') TO ('1796083200000')"),
            Some((1_793_491_200_000, 1_796_083_200_000))
        );
        assert_eq!(
            parse_bound("FOR VALUES FROM ('-2678400000') TO ('0')"),
            Some((-2_678_400_000, 0))
        );
        assert_eq!(parse_bound("DEFAULT"), None);
        assert_eq!(parse_bound("FOR VALUES FROM (MINVALUE) TO ('5')"), None);
    }
}
