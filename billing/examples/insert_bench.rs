//! Sustained ledger inserts on Postgres through the real writer path, with
//! baselines measured in the same run on the same table:
//!
//! 1. `COPY` of the rows into the ledger: no dedup, no rollup, one stream;
//!    the floor.
//! 2. `insert_batch` called directly: the writer's transaction (multi-row
//!    `INSERT ... ON CONFLICT DO NOTHING RETURNING`, the rollup upsert, the
//!    retention horizon read), without the spool.
//! 3. The writer draining a spool backlog: rows appended to spool segments
//!    as request tasks append them, then read, parsed, batched and written
//!    by `Writer` with the gateway's default settings. The sustained rate.
//! 4. The same while four threads keep appending: spool and writer share
//!    the cores, as in the gateway.
//!
//! Every phase starts on an empty ledger and rollup (TRUNCATE, CHECKPOINT),
//! writes the same number of fresh rows (UUIDv7 ids, started in the current
//! month's partition over the last hours, 50 keys, 6 models, 3 routes: the
//! report benchmark's mix), and checks they all arrived.
//!
//!   cargo run --release -p tollgate-billing --features testing --example insert_bench -- [ROWS] [BATCH_ROWS]
//!
//! Uses a fresh database on the server in `DATABASE_URL` (dropped at the end).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use billing::ledger::{insert_batch, LedgerRow, Spool, Writer, WriterConfig};
use billing::testing::bench_row;
use billing::Db;
use sqlx::{Connection, Row};
use tokio::sync::Notify;

/// `n` fresh rows that started over the last three hours, in order.
fn rows(n: usize) -> Vec<LedgerRow> {
    let span = 3 * 3_600_000i64;
    let start = billing::db::now_ms() - span;
    (0..n).map(|i| bench_row(i, n, start, span)).collect()
}

/// One row in COPY's text format, columns in the table's order.
fn copy_line(r: &LedgerRow, out: &mut String) {
    use std::fmt::Write;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "\\N".into());
    let u = &r.usage;
    let _ = writeln!(
        out,
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        r.request_id,
        r.started_at_ms,
        opt(&r.org_id),
        opt(&r.team_id),
        opt(&r.key_id),
        r.client_format,
        r.endpoint,
        r.requested_model,
        r.provider,
        r.upstream_model,
        r.status,
        r.outcome,
        u.input,
        u.cached_input,
        u.cache_write,
        u.output,
        u.reasoning,
        r.cost_picousd,
        r.latency_ms,
        r.ttft_ms.map_or("\\N".into(), |v| v.to_string()),
        i64::from(r.stream),
        i64::from(r.usage_estimated),
        i64::from(r.priced),
        r.route(),
        r.attempt,
        r.client_request_id(),
        opt(&r.reference_model),
        r.reference_cost_picousd.map_or("\\N".into(), |v| v.to_string()),
    );
}

async fn fresh(db: &Db) {
    sqlx::raw_sql("TRUNCATE ledger, spend_hourly; CHECKPOINT")
        .execute(db.pool())
        .await
        .unwrap();
}

async fn count(db: &Db) -> (i64, i64) {
    let r = sqlx::query(
        "SELECT (SELECT CAST(COUNT(*) AS BIGINT) FROM ledger) AS rows, \
         (SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) FROM spend_hourly) AS rolled",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    (r.try_get("rows").unwrap(), r.try_get("rolled").unwrap())
}

/// Runs a writer over `spool` until `n` rows are in, returning the time.
async fn drain(db: &Db, spool: Arc<Spool>, wake: Arc<Notify>, cfg: WriterConfig, n: u64) -> f64 {
    let stats = spool.stats();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = Writer::new(db.clone(), spool, wake, cfg);
    let began = Instant::now();
    let task = tokio::spawn(writer.run(
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(30),
    ));
    while stats.inserted.load(Ordering::Relaxed) < n {
        assert_eq!(stats.failed_batches.load(Ordering::Relaxed), 0);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = began.elapsed().as_secs_f64();
    let _ = stop_tx.send(());
    task.await.unwrap();
    secs
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let cfg = WriterConfig {
        batch_rows: args
            .get(2)
            .and_then(|a| a.parse().ok())
            .unwrap_or(WriterConfig::default().batch_rows),
        ..WriterConfig::default()
    };
    let t = billing::testing::postgres()
        .await
        .expect("DATABASE_URL names a Postgres server");
    let db = &t.db;
    println!(
        "{n} rows a phase, batches of {} rows, fresh database, partitioned ledger",
        cfg.batch_rows
    );
    let report = |what: &str, secs: f64| {
        let rate = n as f64 / secs;
        println!("{what}: {secs:.1} s, {rate:.0} rows/s");
        rate
    };

    // 1. COPY.
    fresh(db).await;
    let batch = rows(n);
    let mut pg = sqlx::postgres::PgConnection::connect(&t.url).await.unwrap();
    let began = Instant::now();
    let mut copy = pg.copy_in_raw("COPY ledger FROM STDIN").await.unwrap();
    let mut text = String::new();
    for chunk in batch.chunks(10_000) {
        text.clear();
        for r in chunk {
            copy_line(r, &mut text);
        }
        copy.send(text.as_bytes()).await.unwrap();
    }
    copy.finish().await.unwrap();
    let copy_rate = report("COPY (no dedup, no rollup)", began.elapsed().as_secs_f64());
    assert_eq!(count(db).await.0, n as i64);
    let _ = pg.close().await;

    // 2. insert_batch directly.
    fresh(db).await;
    let batch = rows(n);
    let began = Instant::now();
    for chunk in batch.chunks(cfg.batch_rows) {
        insert_batch(db, chunk).await.unwrap();
    }
    let direct_rate = report(
        "insert_batch (dedup + rollup, no spool)",
        began.elapsed().as_secs_f64(),
    );
    assert_eq!(count(db).await, (n as i64, n as i64));

    // 3. The writer draining a backlog.
    fresh(db).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let batch = rows(n);
    let began = Instant::now();
    for r in &batch {
        spool.append(r).unwrap();
    }
    let append_secs = began.elapsed().as_secs_f64();
    println!(
        "spool appends: {:.0} rows/s ({:.0} MB)",
        n as f64 / append_secs,
        spool.stats().spooled_bytes.load(Ordering::Relaxed) as f64 / 1e6
    );
    let secs = drain(db, spool, Arc::new(Notify::new()), cfg.clone(), n as u64).await;
    let writer_rate = report("writer draining the spool (the gateway's path)", secs);
    assert_eq!(count(db).await, (n as i64, n as i64));
    drop(dir);

    // 4. The writer while four threads append.
    fresh(db).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let wake = Arc::new(Notify::new());
    let per = n / 4;
    let parts: Vec<Vec<LedgerRow>> = (0..4).map(|_| rows(per)).collect();
    let appenders: Vec<_> = parts
        .into_iter()
        .map(|batch| {
            let (spool, wake) = (spool.clone(), wake.clone());
            std::thread::spawn(move || {
                for r in &batch {
                    spool.append(r).unwrap();
                    wake.notify_one();
                }
            })
        })
        .collect();
    let secs = drain(db, spool, wake, cfg.clone(), (per * 4) as u64).await;
    for a in appenders {
        a.join().unwrap();
    }
    let live_rate = (per * 4) as f64 / secs;
    println!("writer while 4 threads append: {secs:.1} s, {live_rate:.0} rows/s");
    assert_eq!(count(db).await, ((per * 4) as i64, (per * 4) as i64));

    println!(
        "ratios to COPY: insert_batch {:.2}, writer {:.2}, writer with appenders {:.2}; writer to insert_batch {:.2}",
        direct_rate / copy_rate,
        writer_rate / copy_rate,
        live_rate / copy_rate,
        writer_rate / direct_rate
    );
}
