//! The Postgres ledger's monthly partitions: made ahead, a default partition
//! that catches any month and is drained into the months' own, retention
//! that drops old months while reports still answer from the rollup, and a
//! maintenance task that takes part in shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use billing::db::now_ms;
use billing::ledger::{
    dropped_before, ensure_months, insert_batch, maintain, partitions, write_batch, LedgerRow,
    Maintenance, Month, Spool, Writer, WriterConfig, DEFAULT_PARTITION,
};
use billing::reports::{spend, GroupBy, SpendFilter, SpendRow};
use billing::testing::TestDb;
use billing::{Backend, Db};
use sqlx::{AssertSqlSafe, Row};
use tokio::sync::Notify;

use crate::helpers::{eventually, ledger_count, row};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

async fn count(db: &Db, sql: &str) -> i64 {
    sqlx::query(AssertSqlSafe(sql.to_owned()))
        .fetch_one(db.pool())
        .await
        .unwrap()
        .try_get::<i64, _>(0)
        .unwrap()
}

/// Which partition holds each row, by request id.
async fn homes(db: &Db) -> Vec<(String, String)> {
    sqlx::query("SELECT request_id, CAST(tableoid::regclass AS TEXT) AS home FROM ledger ORDER BY request_id")
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.try_get("request_id").unwrap(), r.try_get("home").unwrap()))
        .collect()
}

async fn names(db: &Db) -> Vec<String> {
    partitions(db)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect()
}

/// Rollup rows and their sums, to show retention never touches them.
async fn rollup_fingerprint(db: &Db) -> (i64, i64, i64) {
    let r = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n, CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS q, \
         CAST(COALESCE(SUM(cost_picousd), 0) AS BIGINT) AS c FROM spend_hourly",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    (
        r.try_get("n").unwrap(),
        r.try_get("q").unwrap(),
        r.try_get("c").unwrap(),
    )
}

fn month_filter(m: Month) -> SpendFilter {
    SpendFilter {
        from_ms: m.start_ms(),
        to_ms: m.end_ms(),
        ..Default::default()
    }
}

async fn by_team(db: &Db, f: &SpendFilter) -> Vec<SpendRow> {
    spend(db, GroupBy::Team, f).await.unwrap()
}

fn requests(rows: &[SpendRow]) -> i64 {
    rows.iter().map(|r| r.requests).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_month_and_the_next_have_partitions_from_the_start() {
    let Some(t) = billing::testing::postgres().await else {
        return;
    };
    let now = Month::of(now_ms());
    let made = names(&t.db).await;
    for want in [
        now.partition(),
        now.next().partition(),
        DEFAULT_PARTITION.into(),
    ] {
        assert!(made.contains(&want), "{want} in {made:?}");
    }
    // Maintenance finds nothing to do on a fresh ledger...
    let done = maintain(&t.db, now_ms(), None).await.unwrap();
    assert!(!done.changed(), "{done:?}");
    // ...and keeps one month ahead as time passes.
    let later = now.plus(3);
    let done = maintain(&t.db, later.start_ms() + 5 * DAY, None)
        .await
        .unwrap();
    assert_eq!(done.created, [later.partition(), later.next().partition()]);
    let bounds = partitions(&t.db)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.name == later.partition())
        .unwrap()
        .range;
    assert_eq!(bounds, Some((later.start_ms(), later.end_ms())));
}

/// A row from a month with no partition (a spool replayed long after, a
/// skewed clock) is kept, counted and reported; maintenance then moves it
/// into a partition of its own month, and a replay of it still bills once.
async fn rows_outside_the_partitions(t: &TestDb) {
    let db = &t.db;
    let long_ago = Month::of(1_552_000_000_000); // 2019-03
    let far_ahead = Month::of(now_ms()).plus(40);
    let old = row(
        1,
        long_ago.start_ms() + 14 * DAY + 90 * 60_000 + 7,
        Some(("o", "t", "k")),
        "m",
        "p",
    );
    let new = row(
        2,
        far_ahead.start_ms() + 3 * HOUR,
        Some(("o", "t2", "k2")),
        "m",
        "p",
    );
    assert_eq!(
        insert_batch(db, &[old.clone(), new.clone()]).await.unwrap(),
        2
    );
    if db.backend() == Backend::Postgres {
        assert!(homes(db)
            .await
            .iter()
            .all(|(_, home)| home == DEFAULT_PARTITION));
    }
    let whole = by_team(db, &month_filter(long_ago)).await;
    assert_eq!(requests(&whole), 1);
    assert_eq!(whole[0].cost_picousd, old.cost_picousd);
    // A range that ends inside the row's hour reads the row itself.
    let partial = SpendFilter {
        from_ms: old.started_at_ms - 1,
        to_ms: old.started_at_ms + 1,
        ..Default::default()
    };
    assert_eq!(requests(&by_team(db, &partial).await), 1);
    assert_eq!(requests(&by_team(db, &month_filter(far_ahead)).await), 1);

    let done = maintain(db, now_ms(), None).await.unwrap();
    if db.backend() == Backend::Postgres {
        assert_eq!(done.created, [long_ago.partition(), far_ahead.partition()]);
        assert_eq!(done.moved_rows, 2);
        let mut want = vec![
            (old.request_id.to_string(), long_ago.partition()),
            (new.request_id.to_string(), far_ahead.partition()),
        ];
        want.sort();
        assert_eq!(homes(db).await, want);
    } else {
        assert!(!done.changed(), "SQLite has no partitions");
    }
    assert_eq!(by_team(db, &month_filter(long_ago)).await, whole);
    assert_eq!(requests(&by_team(db, &partial).await), 1);
    // Replayed after the move, into the new partition: still once.
    assert_eq!(insert_batch(db, &[old, new]).await.unwrap(), 0);
    assert_eq!(ledger_count(db).await, 2);
    assert_eq!(rollup_fingerprint(db).await.1, 2);
}
both_backends!(
    a_row_in_a_month_without_a_partition_is_kept_reported_and_moved,
    super::rows_outside_the_partitions
);

/// The same spool written twice, its rows spread over months with and
/// without partitions, moved by maintenance in between: every row once.
async fn replayed_spool(t: &TestDb) {
    let db = &t.db;
    let now = Month::of(now_ms());
    let months = [now.plus(-14), now.plus(-1), now, now.next()];
    let rows: Vec<LedgerRow> = (0..400u64)
        .map(|i| {
            let m = months[i as usize % months.len()];
            let at = m.start_ms() + (i as i64 * 7_919_777) % (28 * DAY);
            row(
                i,
                at,
                Some(("o", ["t1", "t2"][i as usize % 2], "k")),
                "m",
                "p",
            )
        })
        .collect();
    let first = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(first.path()).unwrap();
        for r in &rows {
            spool.append(r).unwrap();
        }
    }
    // The same segments, to replay after the first run has deleted its own.
    let second = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(first.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "jsonl") {
            std::fs::copy(&p, second.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    let drain = |dir: std::path::PathBuf| async move {
        let spool = Arc::new(Spool::open(&dir).unwrap());
        let stats = spool.stats();
        let fast = WriterConfig {
            batch_rows: 64,
            flush_interval: Duration::from_millis(5),
            rotate_bytes: 64 * 1024,
            rotate_age: Duration::from_millis(50),
        };
        let writer = Writer::new(db.clone(), spool, Arc::new(Notify::new()), fast);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(writer.run(
            async {
                let _ = stop_rx.await;
            },
            Duration::from_secs(5),
        ));
        eventually("the spool to be written", || async {
            stats.inserted.load(Ordering::Relaxed) + stats.duplicates.load(Ordering::Relaxed) == 400
        })
        .await;
        let _ = stop_tx.send(());
        task.await.unwrap();
        (
            stats.inserted.load(Ordering::Relaxed),
            stats.duplicates.load(Ordering::Relaxed),
        )
    };
    assert_eq!(drain(first.path().to_owned()).await, (400, 0));
    let reports: Vec<_> = {
        let mut out = Vec::new();
        for m in months {
            out.push(by_team(db, &month_filter(m)).await);
        }
        out
    };
    let moved = maintain(db, now_ms(), None).await.unwrap();
    if db.backend() == Backend::Postgres {
        assert_eq!(
            moved.moved_rows, 200,
            "last month's and the old month's rows"
        );
        assert_eq!(
            count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_default").await,
            0
        );
    }
    assert_eq!(
        drain(second.path().to_owned()).await,
        (0, 400),
        "all replays"
    );
    assert_eq!(ledger_count(db).await, 400);
    assert_eq!(
        rollup_fingerprint(db).await.1,
        400,
        "the rollup counts each row once"
    );
    for (m, before) in months.iter().zip(reports) {
        assert_eq!(requests(&before), 100);
        assert_eq!(by_team(db, &month_filter(*m)).await, before);
    }
}
both_backends!(
    a_spool_replayed_across_partitions_bills_each_row_once,
    super::replayed_spool
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_only_old_months_and_reports_still_answer_from_the_rollup() {
    let Some(t) = billing::testing::postgres().await else {
        return;
    };
    let db = &t.db;
    let now_at = now_ms();
    let now = Month::of(now_at);
    let months: Vec<Month> = (0..5).map(|k| now.plus(k - 4)).collect();
    let keys = [Some(("o1", "t1", "k1")), Some(("o1", "t2", "k2")), None];
    let rows: Vec<LedgerRow> = (0..500u64)
        .map(|i| {
            let m = months[i as usize % 5];
            let at = m.start_ms() + (i as i64 * 5_555_555_557) % (27 * DAY);
            let mut r = row(i, at.min(now_at - 1), keys[i as usize % 3], "m", "p");
            r.attempt = 1 + (i % 2) as u32;
            r
        })
        .collect();
    assert_eq!(insert_batch(db, &rows).await.unwrap(), 500);
    maintain(db, now_at, None).await.unwrap();
    assert_eq!(
        count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_default").await,
        0
    );
    // A straggler that lands in the default partition after that, in a
    // month retention will drop.
    let straggler = row(900, now.plus(-6).start_ms() + DAY, keys[0], "m", "p");
    assert_eq!(insert_batch(db, &[straggler]).await.unwrap(), 1);

    // Reports before: whole months, and ranges whose ends fall inside hours
    // of an old month (the hour counts in the range holding its start).
    let old = months[0];
    let ragged = SpendFilter {
        from_ms: old.start_ms() + 3 * DAY + 20 * 60_000,
        to_ms: old.start_ms() + 17 * DAY + 5 * HOUR + 1_234,
        ..Default::default()
    };
    let floored = SpendFilter {
        from_ms: old.start_ms() + 3 * DAY,
        to_ms: old.start_ms() + 17 * DAY + 5 * HOUR,
        ..Default::default()
    };
    let mut before = Vec::new();
    for m in &months {
        before.push(by_team(db, &month_filter(*m)).await);
        before.push(spend(db, GroupBy::Key, &month_filter(*m)).await.unwrap());
        before.push(spend(db, GroupBy::Hour, &month_filter(*m)).await.unwrap());
    }
    let before_floored = by_team(db, &floored).await;
    let six_months = SpendFilter {
        from_ms: now.plus(-6).start_ms(),
        to_ms: now_at,
        ..Default::default()
    };
    let before_all = by_team(db, &six_months).await;
    assert_eq!(requests(&before_all), 501);
    let rollup = rollup_fingerprint(db).await;

    // Keep this month and the two before it.
    let done = maintain(db, now_at, Some(2)).await.unwrap();
    let horizon = months[2].start_ms();
    assert_eq!(done.dropped_before, horizon);
    assert_eq!(done.dropped, [months[0].partition(), months[1].partition()]);
    assert_eq!(
        done.expired_rows, 1,
        "the straggler in the default partition"
    );
    assert_eq!(dropped_before(db).await.unwrap(), horizon);
    let left = names(db).await;
    for m in &months[2..] {
        assert!(left.contains(&m.partition()), "{left:?}");
    }
    assert!(left.contains(&DEFAULT_PARTITION.to_owned()));
    assert!(left.contains(&now.next().partition()));
    assert!(!left.contains(&months[1].partition()));
    // The raw rows (and their per-attempt detail) of old months are gone...
    assert_eq!(
        count(
            db,
            &format!("SELECT CAST(COUNT(*) AS BIGINT) FROM ledger WHERE started_at < {horizon}")
        )
        .await,
        0
    );
    assert_eq!(ledger_count(db).await, 300);
    // ...the rollup is untouched, and reports read the same.
    assert_eq!(rollup_fingerprint(db).await, rollup);
    let mut after = Vec::new();
    for m in &months {
        after.push(by_team(db, &month_filter(*m)).await);
        after.push(spend(db, GroupBy::Key, &month_filter(*m)).await.unwrap());
        after.push(spend(db, GroupBy::Hour, &month_filter(*m)).await.unwrap());
    }
    assert_eq!(after, before);
    assert_eq!(by_team(db, &ragged).await, before_floored);
    assert_eq!(by_team(db, &six_months).await, before_all);
    // Again: nothing more to do.
    assert!(!maintain(db, now_at, Some(2)).await.unwrap().changed());

    // A row from a dropped month (a spool replayed months later) cannot be
    // told from one already counted: it is set aside, not billed.
    let late = rows[0].clone();
    let w = write_batch(db, &[late.clone(), row(901, now_at - 10, None, "m", "p")])
        .await
        .unwrap();
    assert_eq!((w.inserted, w.duplicates, w.expired.len()), (1, 0, 1));
    assert_eq!(w.expired[0], late);
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    spool.append(&late).unwrap();
    let stats = spool.stats();
    let writer = Writer::new(
        db.clone(),
        spool,
        Arc::new(Notify::new()),
        WriterConfig::default(),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(writer.run(
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));
    eventually("the late row to be set aside", || async {
        stats.expired.load(Ordering::Relaxed) == 1
    })
    .await;
    let _ = stop_tx.send(());
    task.await.unwrap();
    let kept = std::fs::read_to_string(dir.path().join("expired.jsonl")).unwrap();
    let kept: LedgerRow = serde_json::from_str(kept.trim()).unwrap();
    assert_eq!(kept, late, "kept aside whole");
    assert_eq!(
        rollup_fingerprint(db).await.1,
        rollup.1 + 1,
        "only the new row counted"
    );
}

/// Writers keep writing while maintenance makes, moves and drops: no batch
/// fails (a partition attached while a batch routes rows into the default
/// one would fail it), neither waits on the other in a cycle, and every row
/// lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_and_writers_run_side_by_side() {
    let Some(t) = billing::testing::postgres().await else {
        return;
    };
    let db = t.db.clone();
    let now_at = now_ms();
    let now = Month::of(now_at);
    ensure_months(&db, now.plus(-3).start_ms(), now.start_ms())
        .await
        .unwrap();
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                for b in 0..40u64 {
                    let rows: Vec<_> = (0..50)
                        .map(|i| {
                            let n = w * 10_000 + b * 100 + i;
                            // This month, and months made only as the
                            // steps below pretend time passes.
                            let m = if i % 5 == 0 {
                                now.plus(2 + (n as i64 % 12))
                            } else {
                                now
                            };
                            row(n, m.start_ms() + (n as i64 % 20) * DAY, None, "m", "p")
                        })
                        .collect();
                    assert_eq!(insert_batch(&db, &rows).await.unwrap(), 50);
                }
            })
        })
        .collect();
    for step in 0.. {
        let retention = [Some(2), None, Some(1)][step % 3];
        maintain(&db, now_at, retention).await.unwrap();
        // As if a month passed each step: its partition is made, and the
        // rows it holds in the default partition moved, while batches write
        // more of them.
        let later = now.plus(1 + (step as i64 % 14));
        maintain(&db, later.start_ms() + DAY, None).await.unwrap();
        if writers.iter().all(|w| w.is_finished()) {
            break;
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(ledger_count(&db).await, 8000);
    assert_eq!(rollup_fingerprint(&db).await.1, 8000);
    assert!(!names(&db).await.contains(&now.plus(-3).partition()));
    // The last rows into the default partition move out too.
    for k in 1..15 {
        maintain(&db, now.plus(k).start_ms(), None).await.unwrap();
    }
    assert_eq!(
        count(&db, "SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_default").await,
        0
    );
    assert_eq!(ledger_count(&db).await, 8000);
}

/// One row of `month`, inserted by hand (inside a transaction of the test's).
fn one_row_sql(n: u64, month: Month) -> String {
    format!(
        "INSERT INTO ledger (request_id, started_at, client_format, endpoint, requested_model, provider, \
         upstream_model, status, outcome, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, \
         reasoning_tokens, cost_picousd, latency_ms, stream, usage_estimated, priced) \
         VALUES ('held-{n}', {}, 'openai', 'chat_completions', 'm', 'p', 'm', 200, 'complete', 1, 0, 0, 1, 0, 5, 1, 0, 0, 1)",
        month.start_ms() + n as i64
    )
}

/// A batch is writing rows of a month into the default partition when
/// maintenance comes to make that month's partition: the step waits for the
/// batch, then moves every row, the ones written while it waited too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_made_while_a_batch_writes_its_rows_keeps_them_all() {
    let Some(t) = billing::testing::postgres().await else {
        return;
    };
    let db = t.db.clone();
    let month = Month::of(now_ms()).plus(5);
    let mut batch = db.pool().begin().await.unwrap();
    sqlx::query(AssertSqlSafe(one_row_sql(1, month)))
        .execute(&mut *batch)
        .await
        .unwrap();
    let step = {
        let db = db.clone();
        tokio::spawn(async move { maintain(&db, month.start_ms() + DAY, None).await })
    };
    eventually("the step to wait for the batch", || async {
        count(
            &t.db,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM pg_locks WHERE NOT granted \
             AND relation IN (CAST('ledger' AS regclass), CAST('ledger_default' AS regclass))",
        )
        .await
            > 0
    })
    .await;
    // More rows of the month while the step waits, then the commit.
    sqlx::query(AssertSqlSafe(one_row_sql(2, month)))
        .execute(&mut *batch)
        .await
        .unwrap();
    batch.commit().await.unwrap();
    let done = step.await.unwrap().unwrap();
    assert!(done.created.contains(&month.partition()), "{done:?}");
    assert_eq!(done.moved_rows, 2);
    let homes = homes(&db).await;
    assert_eq!(homes.len(), 2);
    assert!(
        homes.iter().all(|(_, home)| *home == month.partition()),
        "{homes:?}"
    );
}

/// A batch that read the retention horizon before a step raised it commits
/// before the step drops anything: its rows of an old month go with the
/// month, never into the default partition behind the horizon, where a
/// later replay could not be told from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_in_flight_commits_before_its_month_is_dropped() {
    let Some(t) = billing::testing::postgres().await else {
        return;
    };
    let db = t.db.clone();
    let now_at = now_ms();
    let old = Month::of(now_at).plus(-3);
    ensure_months(&db, old.start_ms(), old.end_ms())
        .await
        .unwrap();
    let mut batch = db.pool().begin().await.unwrap();
    sqlx::query("SELECT dropped_before FROM ledger_retention FOR SHARE")
        .execute(&mut *batch)
        .await
        .unwrap();
    let step = {
        let db = db.clone();
        tokio::spawn(async move { maintain(&db, now_at, Some(1)).await })
    };
    eventually("the step to wait for the batch", || async {
        count(
            &t.db,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM pg_locks WHERE NOT granted",
        )
        .await
            > 0
    })
    .await;
    sqlx::query(AssertSqlSafe(one_row_sql(1, old)))
        .execute(&mut *batch)
        .await
        .unwrap();
    batch.commit().await.unwrap();
    let done = step.await.unwrap().unwrap();
    assert!(done.dropped.contains(&old.partition()), "{done:?}");
    assert_eq!(ledger_count(&db).await, 0, "the row went with its month");
    let late = row(2, old.start_ms() + 1, None, "m", "p");
    let w = write_batch(&db, &[late]).await.unwrap();
    assert_eq!((w.inserted, w.expired.len()), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maintenance_task_works_at_start_and_stops_when_told() {
    let Some(t) = billing::testing::postgres().await else {
        return;
    };
    let long_ago = Month::of(1_400_000_000_000);
    insert_batch(&t.db, &[row(1, long_ago.start_ms() + 5, None, "m", "p")])
        .await
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(
        Maintenance::new(t.db.clone(), None, Duration::from_secs(3600)).run(async {
            let _ = stop_rx.await;
        }),
    );
    eventually("the first step at start", || async {
        names(&t.db).await.contains(&long_ago.partition())
    })
    .await;
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops when told")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_has_no_partitions_to_maintain() {
    let t = billing::testing::sqlite().await;
    assert!(partitions(&t.db).await.unwrap().is_empty());
    assert_eq!(dropped_before(&t.db).await.unwrap(), i64::MIN);
    let (_stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::time::timeout(
        Duration::from_secs(5),
        Maintenance::new(t.db.clone(), None, Duration::from_millis(1)).run(async {
            let _ = stop_rx.await;
        }),
    )
    .await
    .expect("returns at once");
}
