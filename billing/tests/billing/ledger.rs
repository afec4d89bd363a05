//! The ledger: idempotent batches, the spool and its writer, crash replay,
//! and a database that goes away.

use std::sync::Arc;
use std::time::Duration;

use billing::db::now_ms;
use billing::ledger::{insert_batch, Spool, Writer, WriterConfig};
use billing::testing::TestDb;
use billing::Db;
use sqlx::Row;
use tokio::sync::Notify;

use crate::helpers::{eventually, ledger_count, row};

fn fast_writer() -> WriterConfig {
    WriterConfig {
        batch_rows: 100,
        flush_interval: Duration::from_millis(5),
        rotate_bytes: 64 * 1024,
        rotate_age: Duration::from_millis(100),
    }
}

async fn rollup_requests(db: &Db) -> i64 {
    sqlx::query("SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS n FROM spend_hourly")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

async fn batches_are_idempotent(t: &TestDb) {
    let now = now_ms();
    let rows: Vec<_> = (0..10)
        .map(|i| row(i, now, Some(("o", "t", "k")), "m", "p"))
        .collect();
    assert_eq!(insert_batch(&t.db, &rows).await.unwrap(), 10);
    assert_eq!(
        insert_batch(&t.db, &rows).await.unwrap(),
        0,
        "a replayed batch inserts nothing"
    );
    let mut mixed = rows[..3].to_vec();
    mixed.push(row(99, now, None, "m", "p"));
    assert_eq!(insert_batch(&t.db, &mixed).await.unwrap(), 1);
    assert_eq!(ledger_count(&t.db).await, 11);
    assert_eq!(
        rollup_requests(&t.db).await,
        11,
        "the rollup counts each row once"
    );
}
both_backends!(
    batches_are_idempotent_and_rolled_up_once,
    super::batches_are_idempotent
);

async fn writer_drains(t: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let stats = spool.stats();
    let wake = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = Writer::new(t.db.clone(), spool.clone(), wake.clone(), fast_writer());
    let task = tokio::spawn(writer.run(
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));
    // Four threads append 250 rows each, as request tasks would.
    let now = now_ms();
    let threads: Vec<_> = (0..4)
        .map(|th| {
            let (spool, wake) = (spool.clone(), wake.clone());
            std::thread::spawn(move || {
                for i in 0..250 {
                    spool
                        .append(&row(th * 1000 + i, now, Some(("o", "t", "k")), "m", "p"))
                        .unwrap();
                    wake.notify_one();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    eventually("all 1000 rows in the database", || async {
        ledger_count(&t.db).await == 1000
    })
    .await;
    assert_eq!(rollup_requests(&t.db).await, 1000);
    let _ = stop_tx.send(());
    task.await.unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    assert!(left.len() <= 1, "written segments are deleted: {left:?}");
    assert_eq!(ledger_count(&t.db).await, 1000);
    assert_eq!(
        stats.inserted.load(std::sync::atomic::Ordering::Relaxed),
        1000
    );
}
both_backends!(
    the_writer_drains_the_spool_into_the_database,
    super::writer_drains
);

async fn crash_replay(t: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let rows: Vec<_> = (0..50)
        .map(|i| row(i, now, Some(("o", "t", "k")), "m", "p"))
        .collect();
    {
        let spool = Spool::open(dir.path()).unwrap();
        for r in &rows {
            spool.append(r).unwrap();
        }
        // The old writer got the first 20 in before the crash...
        insert_batch(&t.db, &rows[..20]).await.unwrap();
        // ...and the process died mid-append. The spool buffers nothing, so
        // dropping it leaves the files exactly as a crash would (and frees
        // its directory lock, as the kernel does for a dead process).
        drop(spool);
    }
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    std::io::Write::write_all(&mut torn, br#"{"request_id":"0199"#).unwrap();
    drop(torn);

    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let stats = spool.stats();
    let writer = Writer::new(t.db.clone(), spool, Arc::new(Notify::new()), fast_writer());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(writer.run(
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));
    eventually("the replayed segment to be written and removed", || async {
        !segment.exists()
    })
    .await;
    assert_eq!(ledger_count(&t.db).await, 50, "every row exactly once");
    assert_eq!(rollup_requests(&t.db).await, 50);
    let s = &stats;
    assert_eq!(s.duplicates.load(std::sync::atomic::Ordering::Relaxed), 20);
    assert_eq!(
        s.bad_lines.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the torn line is skipped"
    );
    let _ = stop_tx.send(());
    task.await.unwrap();
}
both_backends!(
    rows_left_in_the_spool_are_replayed_once_after_a_crash,
    super::crash_replay
);

/// Postgres behind a forwarder the test cuts and restores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_wait_in_the_spool_while_postgres_is_away() {
    let Some(t) = billing::testing::postgres().await else {
        return;
    };
    let server = billing::testing::postgres_server_addr().await.unwrap();
    let fwd = loadtest::forward::Forwarder::start(server).await.unwrap();
    let via = billing::testing::url_via(&t.url, fwd.addr());
    let db = Db::connect(&via).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let stats = spool.stats();
    let wake = Arc::new(Notify::new());
    let writer = Writer::new(db, spool.clone(), wake.clone(), fast_writer());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(writer.run(
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));
    let now = now_ms();
    for i in 0..100 {
        spool.append(&row(i, now, None, "m", "p")).unwrap();
    }
    wake.notify_one();
    eventually("the first rows", || async {
        ledger_count(&t.db).await == 100
    })
    .await;

    fwd.cut();
    for i in 100..400 {
        spool.append(&row(i, now, None, "m", "p")).unwrap();
        wake.notify_one();
    }
    eventually("a failed batch while the database is away", || async {
        stats
            .failed_batches
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    })
    .await;
    assert_eq!(ledger_count(&t.db).await, 100);
    fwd.restore();
    eventually("every row after the database returns", || async {
        ledger_count(&t.db).await == 400
    })
    .await;
    assert_eq!(rollup_requests(&t.db).await, 400);
    let _ = stop_tx.send(());
    task.await.unwrap();
}

#[test]
fn a_spool_directory_has_one_owner() {
    let dir = tempfile::tempdir().unwrap();
    let first = Spool::open(dir.path()).unwrap();
    let second = Spool::open(dir.path());
    assert!(
        matches!(second, Err(billing::ledger::SpoolError::Busy(..))),
        "{second:?}"
    );
    drop(first);
    Spool::open(dir.path()).expect("free again once the owner is gone");
}

async fn big_batches(t: &TestDb) {
    // More rows than one SQLite statement can carry parameters for.
    let now = now_ms();
    let rows: Vec<_> = (0..2000)
        .map(|i| row(i, now, Some(("o", "t", "k")), "m", "p"))
        .collect();
    assert_eq!(insert_batch(&t.db, &rows).await.unwrap(), 2000);
    assert_eq!(ledger_count(&t.db).await, 2000);
    assert_eq!(rollup_requests(&t.db).await, 2000);
}
both_backends!(the_largest_batches_go_in_whole, super::big_batches);

/// Throughput without timing: a backlog is written in full batches (one
/// transaction per `batch_rows` rows), not row by row, whichever partitions
/// the rows fall in. The speed itself is `examples/insert_bench.rs`'s.
async fn whole_batches(t: &TestDb) {
    const ROWS: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let now = now_ms();
    for i in 0..ROWS {
        // Forty days back: this month's partition, and last month's or the
        // default partition.
        let at = now - (i as i64 % 40) * 86_400_000;
        spool
            .append(&row(i, at, Some(("o", "t", "k")), "m", "p"))
            .unwrap();
    }
    let stats = spool.stats();
    let cfg = WriterConfig::default();
    let writer = Writer::new(t.db.clone(), spool, Arc::new(Notify::new()), cfg.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(writer.run(
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));
    let until = tokio::time::Instant::now() + Duration::from_secs(120);
    while stats.inserted.load(std::sync::atomic::Ordering::Relaxed) < ROWS {
        assert!(
            tokio::time::Instant::now() < until,
            "the backlog never drained"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(());
    task.await.unwrap();
    assert_eq!(ledger_count(&t.db).await, ROWS as i64);
    assert_eq!(rollup_requests(&t.db).await, ROWS as i64);
    let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed);
    let full = ROWS / cfg.batch_rows as u64;
    assert!(
        (full..=full + 2).contains(&batches),
        "{batches} transactions for {ROWS} rows in batches of {}",
        cfg.batch_rows
    );
}
both_backends!(a_backlog_is_written_in_whole_batches, super::whole_batches);
