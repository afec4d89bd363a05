//! Upgrades: a database written by the first schema keeps its rows, and its
//! rollup and keys read right, after the later migrations.

use billing::ledger::insert_batch;
use billing::reports::{spend, GroupBy, SpendFilter};
use billing::tenancy::{hash_secret, Tenancy};
use billing::testing::TestDb;
use sqlx::{AssertSqlSafe, Row};

use crate::helpers::row;

const HOUR: i64 = 3_600_000;

async fn exec(t: &TestDb, sql: &str) {
    sqlx::query(AssertSqlSafe(sql.to_owned()))
        .execute(t.db.pool())
        .await
        .unwrap();
}

async fn upgrade(t: &TestDb) {
    // Written by schema 1: a key with allowed_models, a ledger row and its
    // rollup, as version 1 wrote them.
    let at = 1_795_000_000_000 / HOUR * HOUR + 60_000;
    exec(
        t,
        "INSERT INTO orgs (id, name, created_at, updated_at) VALUES ('o', 'acme', 1, 1)",
    )
    .await;
    exec(t, "INSERT INTO teams (id, org_id, name, created_at, updated_at) VALUES ('t', 'o', 'search', 1, 1)").await;
    exec(
        t,
        &format!(
            "INSERT INTO api_keys (id, team_id, key_hash, key_prefix, allowed_models, created_at, updated_at) \
             VALUES ('k', 't', '{}', 'tg-abc', '[\"kimi-k2.5\",\"glm-5\"]', 1, 1)",
            hash_secret("tg-old")
        ),
    )
    .await;
    exec(
        t,
        &format!(
            "INSERT INTO ledger (request_id, started_at, org_id, team_id, key_id, client_format, endpoint, \
             requested_model, provider, upstream_model, status, outcome, input_tokens, cached_input_tokens, \
             cache_write_tokens, output_tokens, reasoning_tokens, cost_picousd, latency_ms, ttft_ms, stream, \
             usage_estimated, priced) VALUES ('r1', {at}, 'o', 't', 'k', 'openai', 'chat_completions', \
             'kimi-k2.5', 'kimi', 'kimi-k2.5', 200, 'complete', 100, 0, 0, 10, 0, 5000, 7, NULL, 0, 0, 1)"
        ),
    )
    .await;
    exec(
        t,
        &format!(
            "INSERT INTO spend_hourly (hour, org_id, team_id, key_id, model, provider, requests, input_tokens, \
             cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_picousd) \
             VALUES ({}, 'o', 't', 'k', 'kimi-k2.5', 'kimi', 1, 100, 0, 0, 10, 0, 5000)",
            at / HOUR * HOUR
        ),
    )
    .await;

    t.db.migrate().await.unwrap();

    let r = sqlx::query(
        "SELECT route, attempt, client_request_id, reference_model, reference_cost_picousd FROM ledger",
    )
    .fetch_one(t.db.pool())
    .await
    .unwrap();
    assert_eq!(r.try_get::<String, _>("route").unwrap(), "kimi-k2.5");
    assert_eq!(r.try_get::<i64, _>("attempt").unwrap(), 1);
    assert_eq!(r.try_get::<String, _>("client_request_id").unwrap(), "r1");
    assert_eq!(
        r.try_get::<Option<String>, _>("reference_model").unwrap(),
        None
    );
    assert_eq!(
        r.try_get::<Option<i64>, _>("reference_cost_picousd")
            .unwrap(),
        None
    );

    // The key's allow list moved into its policy.
    let key = Tenancy::new(t.db.clone())
        .key_by_hash(&hash_secret("tg-old"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        key.policies.key.allowed_models,
        Some(vec!["kimi-k2.5".to_owned(), "glm-5".to_owned()])
    );
    assert!(key.policies.team.is_empty() && key.policies.org.is_empty());

    // A new row in the same hour, route and model joins the old rollup row.
    let mut new = row(1, at + 1000, Some(("o", "t", "k")), "kimi-k2.5", "kimi");
    new.cost_picousd = 7000;
    assert_eq!(insert_batch(&t.db, &[new]).await.unwrap(), 1);
    let f = SpendFilter {
        from_ms: at / HOUR * HOUR,
        to_ms: at / HOUR * HOUR + HOUR,
        ..Default::default()
    };
    let report = spend(&t.db, GroupBy::Route, &f).await.unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].group.as_deref(), Some("kimi-k2.5"));
    assert_eq!(report[0].requests, 2);
    assert_eq!(report[0].cost_picousd, 12_000);
    assert_eq!(report[0].reference_cost_picousd, 12_000);
    assert_eq!(report[0].savings_picousd, 0);
}

mod upgrades_from_the_first_schema {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::upgrade(&billing::testing::sqlite_at(Some(1)).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(t) = billing::testing::postgres_at(Some(1)).await {
            super::upgrade(&t).await;
        }
    }
}

/// A row as schema 3 would have inserted it (its key was `request_id`).
fn v3_insert(r: &billing::ledger::LedgerRow) -> String {
    let s = |v: Option<&str>| v.map_or("NULL".to_owned(), |v| format!("'{v}'"));
    let n = |v: Option<i64>| v.map_or("NULL".to_owned(), |v| v.to_string());
    let u = &r.usage;
    format!(
        "INSERT INTO ledger (request_id, started_at, org_id, team_id, key_id, client_format, endpoint, \
         requested_model, provider, upstream_model, status, outcome, input_tokens, cached_input_tokens, \
         cache_write_tokens, output_tokens, reasoning_tokens, cost_picousd, latency_ms, ttft_ms, stream, \
         usage_estimated, priced, route, attempt, client_request_id, reference_model, reference_cost_picousd) \
         VALUES ('{}', {}, {}, {}, {}, '{}', '{}', '{}', '{}', '{}', {}, '{}', {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, '{}', {}, '{}', {}, {})",
        r.request_id,
        r.started_at_ms,
        s(r.org_id.as_deref()),
        s(r.team_id.as_deref()),
        s(r.key_id.as_deref()),
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
        n(r.ttft_ms.map(|v| v as i64)),
        i64::from(r.stream),
        i64::from(r.usage_estimated),
        i64::from(r.priced),
        r.route(),
        r.attempt,
        r.client_request_id(),
        s(r.reference_model.as_deref()),
        n(r.reference_cost_picousd),
    )
}

/// The rollup of every row, as the writer keeps it.
const ROLLUP_ALL: &str = "INSERT INTO spend_hourly (hour, org_id, team_id, key_id, route, model, provider, \
     requests, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, \
     cost_picousd, reference_cost_picousd) \
     SELECT (started_at / 3600000) * 3600000, COALESCE(org_id, ''), COALESCE(team_id, ''), COALESCE(key_id, ''), \
     route, requested_model, provider, COUNT(*), SUM(input_tokens), SUM(cached_input_tokens), \
     SUM(cache_write_tokens), SUM(output_tokens), SUM(reasoning_tokens), SUM(cost_picousd), \
     SUM(COALESCE(reference_cost_picousd, cost_picousd)) FROM ledger GROUP BY 1, 2, 3, 4, 5, 6, 7";

async fn dump(t: &TestDb) -> Vec<String> {
    sqlx::query("SELECT CAST(row_to_json(l) AS TEXT) AS j FROM ledger l ORDER BY request_id")
        .fetch_all(t.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("j").unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpartitioned_ledger_is_partitioned_in_place_keeping_every_row() {
    use billing::ledger::{partitions, Month, DEFAULT_PARTITION};
    let Some(t) = billing::testing::postgres_at(Some(3)).await else {
        return;
    };
    let now = Month::of(billing::db::now_ms());
    let months = [
        Month::of(0),
        Month::of(1_552_000_000_000),
        now.plus(-1),
        now,
    ];
    let keys = [Some(("o1", "t1", "k1")), Some(("o1", "t2", "k2")), None];
    let rows: Vec<_> = (0..120u64)
        .map(|i| {
            let m = months[i as usize % 4];
            let mut r = row(
                i,
                m.start_ms() + (i as i64 * 86_399_999) % (28 * 24 * HOUR),
                keys[i as usize % 3],
                "kimi-k2.5",
                "kimi",
            );
            if i % 5 == 0 {
                r.route = "auto".into();
                r.attempt = 2;
                r.reference_model = Some("glm-5".into());
                r.reference_cost_picousd = Some(r.cost_picousd * 3);
                r.ttft_ms = None;
            }
            r
        })
        .collect();
    for r in &rows {
        exec(&t, &v3_insert(r)).await;
    }
    exec(&t, ROLLUP_ALL).await;
    let before = dump(&t).await;
    assert_eq!(before.len(), 120);

    t.db.migrate_to(4).await.unwrap();

    assert_eq!(dump(&t).await, before, "every row, every column, unchanged");
    let made: Vec<String> = partitions(&t.db)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    for m in months.iter().chain([&now.next()]) {
        assert!(
            made.contains(&m.partition()),
            "{} in {made:?}",
            m.partition()
        );
    }
    assert!(made.contains(&DEFAULT_PARTITION.to_owned()));
    // Each row sits in its own month's partition.
    let homes =
        sqlx::query("SELECT started_at, CAST(tableoid::regclass AS TEXT) AS home FROM ledger")
            .fetch_all(t.db.pool())
            .await
            .unwrap();
    assert_eq!(homes.len(), 120);
    for h in homes {
        let at: i64 = h.try_get("started_at").unwrap();
        assert_eq!(
            h.try_get::<String, _>("home").unwrap(),
            Month::of(at).partition()
        );
    }
    // Every partition carries the ledger's indexes.
    let n: i64 = sqlx::query(AssertSqlSafe(format!(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM pg_indexes WHERE tablename = '{}'",
        months[1].partition()
    )))
    .fetch_one(t.db.pool())
    .await
    .unwrap()
    .try_get("n")
    .unwrap();
    assert_eq!(n, 5, "the key and the four lookups");
    let gone: Option<String> =
        sqlx::query("SELECT CAST(to_regclass('ledger_unpartitioned') AS TEXT) AS t")
            .fetch_one(t.db.pool())
            .await
            .unwrap()
            .try_get("t")
            .unwrap();
    assert_eq!(gone, None);

    // Sessions come next: a column on the parent, so on every partition,
    // NULL for the rows before it, and one more index on each partition.
    t.db.migrate().await.unwrap();
    let sessions: i64 =
        sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ledger WHERE session IS NULL")
            .fetch_one(t.db.pool())
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
    assert_eq!(sessions, 120);
    for m in [months[1], now.next()] {
        let n: i64 = sqlx::query(AssertSqlSafe(format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM pg_indexes WHERE tablename = '{}'",
            m.partition()
        )))
        .fetch_one(t.db.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
        assert_eq!(n, 6, "{}: and the session index", m.partition());
    }

    // Rows written before the upgrade are still recognised when replayed.
    assert_eq!(insert_batch(&t.db, &rows).await.unwrap(), 0);
    assert_eq!(
        insert_batch(
            &t.db,
            &[row(500, now.start_ms() + 1, None, "kimi-k2.5", "kimi")]
        )
        .await
        .unwrap(),
        1
    );
    // Reports over the upgraded ledger agree with the rows.
    for m in months {
        let f = SpendFilter {
            from_ms: m.start_ms(),
            to_ms: m.end_ms(),
            ..Default::default()
        };
        let got = spend(&t.db, GroupBy::Team, &f).await.unwrap();
        let want: Vec<_> = rows
            .iter()
            .filter(|r| Month::of(r.started_at_ms) == m)
            .collect();
        let extra = i64::from(m == now);
        assert_eq!(
            got.iter().map(|r| r.requests).sum::<i64>(),
            want.len() as i64 + extra
        );
        if m != now {
            assert_eq!(
                got.iter().map(|r| r.cost_picousd).sum::<i64>(),
                want.iter().map(|r| r.cost_picousd).sum::<i64>()
            );
        }
    }
}
