//! The Redis engine across replicas and outages: two engines sharing one
//! Redis (one server, or a local cluster) enforce one budget and one rate
//! limit; a stopped replica's holds lapse while a live one's are renewed;
//! with Redis cut off behind a forwarder, the engine fails closed or fails
//! open and reconciles; and counters kept under the key names from before
//! hash tags are left behind for the ledger's sums.

use std::sync::Arc;
use std::time::Duration;

use billing::ledger::insert_batch;
use billing::quota::{
    Enforcement, FailureMode, Level, Period, Quota, QuotaEngine, Rates, Reason, RedisOptions, Seed,
};
use billing::testing::TestRedis;
use billing::Picodollars;
use loadtest::forward::Forwarder;

use crate::helpers::{eventually, row};
use crate::quota::{adm, at, budget, limited, NOW};

const USD: i64 = 1_000_000_000_000;

pub(crate) fn engine(seed: Seed, opts: RedisOptions) -> QuotaEngine {
    QuotaEngine::redis(seed, vec![], opts).unwrap()
}

/// Runs a check on the Redis in `REDIS_URL` and on the local cluster.
macro_rules! stores {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn redis() {
                let Some(r) = billing::testing::TestRedis::new() else {
                    return;
                };
                super::$name(r).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn cluster() {
                let Some(r) = billing::testing::TestRedis::cluster() else {
                    return;
                };
                super::$name(r).await;
            }
        }
    };
}

/// Runs the engine's background work (settling, renewing, watching Redis)
/// until the returned sender drops.
pub(crate) fn run(engine: &QuotaEngine) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let engine = engine.clone();
    tokio::spawn(async move {
        engine
            .run(async {
                let _ = rx.await;
            })
            .await;
    });
    tx
}

stores!(two_replicas_enforce_one_budget_and_one_rpm);
async fn two_replicas_enforce_one_budget_and_one_rpm(r: TestRedis) {
    let replicas = [
        engine(Seed::Empty, r.options(&r.url, FailureMode::Closed)),
        engine(Seed::Empty, r.options(&r.url, FailureMode::Closed)),
    ];
    let now = at(NOW);
    // The team's $10 fits ten $1 requests, however they are spread.
    let q = Arc::new([
        Quota::default(),
        budget(Some(10.0), None, Period::Monthly, Enforcement::Hard),
        Quota::default(),
    ]);
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (engine, q, barrier) = (replicas[i % 2].clone(), q.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                engine.admit(&adm(&q, USD, 1, true, now)).await
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for t in tasks {
        if let Ok(ticket) = t.await.unwrap() {
            admitted.push(ticket);
        }
    }
    assert_eq!(admitted.len(), 10);
    for t in admitted {
        t.settle(Picodollars(USD), 1, now);
    }
    // Each sends its settlements, then each rereads the shared counts.
    for e in replicas.iter().chain(&replicas) {
        e.sync().await.unwrap();
    }
    for e in &replicas {
        let used = e.usage(Level::Team, "t", Period::Monthly, now).unwrap();
        assert_eq!(
            (used.spent, used.reserved),
            (Picodollars(10 * USD), Picodollars(0))
        );
    }

    // The key's 12 requests a minute, however they are spread.
    let q = Arc::new([
        Quota::default(),
        Quota::default(),
        limited(
            Rates {
                rpm: Some(12),
                ..Rates::default()
            },
            None,
        ),
    ]);
    let barrier = Arc::new(tokio::sync::Barrier::new(40));
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (engine, q, barrier) = (replicas[i % 2].clone(), q.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                engine.admit(&adm(&q, 0, 0, true, now)).await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let admitted = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(admitted, 12);
    let refused = outcomes.iter().find_map(|o| o.as_ref().err()).unwrap();
    assert_eq!(refused.reason, Reason::Requests);
    assert_eq!(refused.rate.requests.unwrap().remaining, 0);
}

stores!(a_stopped_replicas_holds_lapse_and_a_live_ones_are_renewed);
async fn a_stopped_replicas_holds_lapse_and_a_live_ones_are_renewed(r: TestRedis) {
    let opts = RedisOptions {
        lease: Duration::from_millis(600),
        ..r.options(&r.url, FailureMode::Closed)
    };
    let live = engine(Seed::Empty, opts.clone());
    let _running = run(&live);
    let dead = engine(Seed::Empty, opts.clone());
    let other = engine(Seed::Empty, opts);
    let now = at(NOW);
    let q = [
        Quota::default(),
        budget(Some(10.0), None, Period::Monthly, Enforcement::Hard),
        limited(
            Rates {
                max_concurrent: Some(2),
                ..Rates::default()
            },
            None,
        ),
    ];
    let kept = live.admit(&adm(&q, 5 * USD, 1, true, now)).await.unwrap();
    // A replica that dies mid-request never settles nor renews.
    let lost = dead.admit(&adm(&q, 5 * USD, 1, true, now)).await.unwrap();
    std::mem::forget(lost);
    let full = other.admit(&adm(&q, USD, 1, true, now)).await.unwrap_err();
    assert_eq!(full.reason, Reason::Budget);
    // Past several leases: the dead replica's $5 and its slot are free
    // again; the live replica's, renewed, are still held.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let t = other
        .admit(&adm(&q, 5 * USD, 1, true, now))
        .await
        .expect("the lapsed hold was given back");
    let r2 = other.admit(&adm(&q, 1, 1, true, now)).await.unwrap_err();
    assert!(
        matches!(r2.reason, Reason::Budget | Reason::Concurrency),
        "{r2:?}"
    );
    drop(t);
    kept.settle(Picodollars(USD), 1, now);
    // A dropped ticket's release and a settlement reach Redis from each
    // replica's queue, and a replica's view is reread from Redis: both
    // replicas flush and reread until the view shows them (or 5 s pass).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        live.sync().await.unwrap();
        other.sync().await.unwrap();
        let used = other.usage(Level::Team, "t", Period::Monthly, now).unwrap();
        let seen = (used.spent, used.reserved);
        if seen == (Picodollars(USD), Picodollars(0)) || std::time::Instant::now() > deadline {
            assert_eq!(seen, (Picodollars(USD), Picodollars(0)));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_from_redis_it_fails_closed_then_recovers() {
    let Some(r) = TestRedis::new() else { return };
    let fwd = Forwarder::start(r.server_addr().await).await.unwrap();
    let url = billing::testing::url_via(&r.url, fwd.addr());
    let opts = RedisOptions {
        lease: Duration::from_secs(1),
        ..r.options(&url, FailureMode::Closed)
    };
    let e = engine(Seed::Empty, opts);
    let _running = run(&e);
    let now = at(NOW);
    let q = [
        Quota::default(),
        budget(Some(10.0), None, Period::Monthly, Enforcement::Hard),
        Quota::default(),
    ];
    let before = e.admit(&adm(&q, USD, 1, true, now)).await.unwrap();

    fwd.cut();
    let refused = e.admit(&adm(&q, USD, 1, true, now)).await.unwrap_err();
    assert_eq!(refused.reason, Reason::Unavailable);
    assert_eq!(refused.retry_after_s, Some(1));
    let status = e.store_status().unwrap();
    assert!(!status.up && status.failures >= 1, "{status:?}");
    // A request admitted before the cut finishes during it: its settlement
    // waits for Redis.
    before.settle(Picodollars(2 * USD), 1, now);
    assert_eq!(
        e.admit(&adm(&q, USD, 1, true, now))
            .await
            .unwrap_err()
            .reason,
        Reason::Unavailable
    );

    fwd.restore();
    eventually("Redis is used again", async || {
        e.admit(&adm(&q, USD, 1, true, now)).await.is_ok()
    })
    .await;
    assert!(e.store_status().unwrap().up);
    e.sync().await.unwrap();
    let used = e.usage(Level::Team, "t", Period::Monthly, now).unwrap();
    assert_eq!(
        used.spent,
        Picodollars(2 * USD),
        "the late settlement arrived"
    );
    // The admission cut off mid-call may have reserved in Redis without
    // hearing back; nothing renews that hold, so it lapses with its lease
    // and the next admission gives it back.
    eventually("every hold is given back", async || {
        drop(e.admit(&adm(&q, USD, 1, true, now)).await);
        e.sync().await.unwrap();
        let used = e.usage(Level::Team, "t", Period::Monthly, now).unwrap();
        used.reserved == Picodollars(0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_from_redis_it_fails_open_on_local_counts_and_reconciles() {
    let Some(r) = TestRedis::new() else { return };
    let t = billing::testing::sqlite().await;
    // The team spent $3 this month, in the ledger.
    let now = at(NOW);
    let mut spent = row(1, now - 60_000, Some(("o", "t", "k")), "m", "p");
    spent.cost_picousd = 3 * USD;
    insert_batch(&t.db, &[spent]).await.unwrap();

    let fwd = Forwarder::start(r.server_addr().await).await.unwrap();
    let url = billing::testing::url_via(&r.url, fwd.addr());
    let e = engine(
        Seed::Ledger(t.db.clone()),
        r.options(&url, FailureMode::Open),
    );
    let _running = run(&e);
    // Another replica that keeps its connection to Redis.
    let peer = engine(
        Seed::Ledger(t.db.clone()),
        r.options(&r.url, FailureMode::Open),
    );
    let q = [
        Quota::default(),
        budget(Some(10.0), None, Period::Monthly, Enforcement::Hard),
        Quota::default(),
    ];
    e.admit(&adm(&q, USD, 1, true, now)).await.unwrap();
    // Counted from here: a slow first call may have been counted locally.
    eventually("Redis is used", async || e.store_status().unwrap().up).await;
    let counted = e.store_status().unwrap().local_admissions;

    fwd.cut();
    // Local counts, seeded from the ledger, still hold the budget: $7 left.
    let mut local = Vec::new();
    for _ in 0..8 {
        match e.admit(&adm(&q, USD, 1, true, now)).await {
            Ok(ticket) => local.push(ticket),
            Err(r) => assert_eq!(r.reason, Reason::Budget),
        }
    }
    assert_eq!(local.len(), 7);
    let status = e.store_status().unwrap();
    assert!(!status.up, "{status:?}");
    assert_eq!(status.local_admissions - counted, 7);
    for ticket in local {
        ticket.settle(Picodollars(USD), 10, now);
    }

    fwd.restore();
    eventually("Redis is used again", async || e.store_status().unwrap().up).await;
    e.sync().await.unwrap();
    // What was spent during the outage reached the shared counters.
    let full = peer.admit(&adm(&q, 1, 1, true, now)).await.unwrap_err();
    assert_eq!(full.reason, Reason::Budget);
    peer.sync().await.unwrap();
    let used = peer.usage(Level::Team, "t", Period::Monthly, now).unwrap();
    assert_eq!(used.spent, Picodollars(10 * USD));
    assert_eq!(used.tokens, spent_tokens(&t).await + 70);
}

async fn spent_tokens(t: &billing::testing::TestDb) -> u64 {
    let (_, tokens) = Seed::Ledger(t.db.clone())
        .spent(Level::Team, "t", Period::Monthly.window(at(NOW)))
        .await
        .unwrap();
    tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_under_the_names_from_before_hash_tags_are_left_for_the_ledgers_sums() {
    let Some(r) = TestRedis::new() else { return };
    let t = billing::testing::sqlite().await;
    // The team spent $3 this month, in the ledger.
    let now = at(NOW);
    let mut spent = row(1, now - 60_000, Some(("o", "t", "k")), "m", "p");
    spent.cost_picousd = 3 * USD;
    insert_batch(&t.db, &[spent]).await.unwrap();
    // A replica of the previous release counted $8 under its key names,
    // without hash tags, and holds $1 for a request in flight.
    let (start, _) = Period::Monthly.window(now);
    let old = format!("{}:b:team:t:monthly:{start}", r.prefix);
    let mut conn = redis::Client::open(r.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(&old)
        .arg(&[
            ("spent", "8000000000000"),
            ("tokens", "80"),
            ("reserved", "1000000000000"),
            ("reserved_tokens", "1"),
        ])
        .query(&mut conn)
        .unwrap();

    // This release reads none of it: the budget is seeded from the ledger,
    // under the organization's hash tag, and $7 fit.
    let e = engine(
        Seed::Ledger(t.db.clone()),
        r.options(&r.url, FailureMode::Closed),
    );
    let q = [
        Quota::default(),
        budget(Some(10.0), None, Period::Monthly, Enforcement::Hard),
        Quota::default(),
    ];
    let mut held = Vec::new();
    for _ in 0..8 {
        if let Ok(ticket) = e.admit(&adm(&q, USD, 1, true, now)).await {
            held.push(ticket);
        }
    }
    assert_eq!(held.len(), 7, "$10 less the ledger's $3");
    let used = e
        .current_usage("o", Level::Team, "t", Period::Monthly, now)
        .await
        .unwrap();
    assert_eq!(
        (used.spent, used.reserved),
        (Picodollars(3 * USD), Picodollars(7 * USD))
    );
    let new = format!("{}:{{org:o}}:b:team:t:monthly:{start}", r.prefix);
    assert!(r.keys().contains(&new), "{:?}", r.keys());
    // The old counters are untouched, for the operator to delete.
    let left: String = redis::cmd("HGET")
        .arg(&old)
        .arg("spent")
        .query(&mut conn)
        .unwrap();
    assert_eq!(left, "8000000000000");
}

/// Requests admitted through Redis that are still running when it goes
/// away hold their reservations in Redis, where the local counts cannot
/// see them, and their spend is not in the ledger yet: the local counts
/// start from what Redis last showed, so the budget still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_from_redis_it_counts_the_requests_redis_admitted_that_still_run() {
    let Some(r) = TestRedis::new() else { return };
    let t = billing::testing::sqlite().await;
    // The team spent $3 this month, in the ledger.
    let now = at(NOW);
    let mut spent = row(1, now - 60_000, Some(("o", "t", "k")), "m", "p");
    spent.cost_picousd = 3 * USD;
    insert_batch(&t.db, &[spent]).await.unwrap();

    let fwd = Forwarder::start(r.server_addr().await).await.unwrap();
    let url = billing::testing::url_via(&r.url, fwd.addr());
    let e = engine(
        Seed::Ledger(t.db.clone()),
        r.options(&url, FailureMode::Open),
    );
    let _running = run(&e);
    let q = [
        Quota::default(),
        budget(Some(10.0), None, Period::Monthly, Enforcement::Hard),
        Quota::default(),
    ];
    // A $4 request admitted through Redis, still running at the cut.
    let mut running = None;
    eventually("a request is admitted through Redis", async || {
        let counted = e.store_status().unwrap().local_admissions;
        let ticket = e.admit(&adm(&q, 4 * USD, 40, true, now)).await.unwrap();
        if e.store_status().unwrap().local_admissions == counted {
            running = Some(ticket);
            true
        } else {
            false
        }
    })
    .await;

    fwd.cut();
    // $10 less the ledger's $3 and the running request's $4: three $1
    // requests, not seven.
    let mut local = Vec::new();
    for _ in 0..8 {
        match e.admit(&adm(&q, USD, 1, true, now)).await {
            Ok(ticket) => local.push(ticket),
            Err(r) => assert_eq!(r.reason, Reason::Budget),
        }
    }
    assert!(!e.store_status().unwrap().up);
    assert_eq!(local.len(), 3);
    running
        .take()
        .unwrap()
        .settle(Picodollars(4 * USD), 40, now);
    for ticket in local {
        ticket.settle(Picodollars(USD), 1, now);
    }

    fwd.restore();
    eventually("Redis is used again", async || e.store_status().unwrap().up).await;
    e.sync().await.unwrap();
    let used = e.usage(Level::Team, "t", Period::Monthly, now).unwrap();
    assert_eq!(used.spent, Picodollars(10 * USD), "never past the limit");
}
