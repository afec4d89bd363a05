//! The quota engine alone: exact admission under a 64-way race, settlement
//! of shorter and longer requests, period rollover on an injected clock,
//! rate limits, alerts, and seeding from the ledger, each on the
//! in-process engine, on the Redis engine with one server, and on the
//! Redis engine with a local Redis Cluster.

use std::sync::Arc;

use billing::ledger::insert_batch;
use billing::quota::{
    Admission, Budget, Enforcement, FailureMode, Level, Limits, Period, Quota, QuotaEngine, Rates,
    Reason, Seed,
};
use billing::tenancy::parse_rfc3339;
use billing::testing::{TestDb, TestRedis};
use billing::Picodollars;

use crate::helpers::row;

pub(crate) fn at(s: &str) -> i64 {
    parse_rfc3339(s).unwrap()
}

pub(crate) fn budget(
    usd: Option<f64>,
    tokens: Option<u64>,
    period: Period,
    e: Enforcement,
) -> Quota {
    Quota {
        budget: Some(Budget {
            limit_usd: usd,
            limit_tokens: tokens,
            period,
            enforcement: e,
        }),
        limits: None,
    }
}

/// An admission for key `k` of team `t` in org `o`, with these quotas.
pub(crate) fn adm<'a>(
    q: &'a [Quota; 3],
    cost: i64,
    tokens: u64,
    new_request: bool,
    now_ms: i64,
) -> Admission<'a> {
    Admission {
        levels: [
            (Level::Org, "o", &q[0]),
            (Level::Team, "t", &q[1]),
            (Level::Key, "k", &q[2]),
        ],
        model: "m",
        cost: Picodollars(cost),
        tokens,
        new_request,
        now_ms,
    }
}

pub(crate) const NOW: &str = "2026-11-21T12:00:00Z";

/// Runs a check on the in-process engine, on the Redis engine and on the
/// Redis engine over a cluster, each alerting at `$thresholds`.
macro_rules! engines {
    ($name:ident, $thresholds:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn local() {
                super::$name(QuotaEngine::local(Seed::Empty, $thresholds)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn redis() {
                let Some(r) = TestRedis::new() else { return };
                let engine = QuotaEngine::redis(
                    Seed::Empty,
                    $thresholds,
                    r.options(&r.url, FailureMode::Closed),
                )
                .unwrap();
                super::$name(engine).await;
                assert!(!r.keys().is_empty(), "the counts were in Redis");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn cluster() {
                let Some(r) = TestRedis::cluster() else {
                    return;
                };
                let engine = QuotaEngine::redis(
                    Seed::Empty,
                    $thresholds,
                    r.options(&r.url, FailureMode::Closed),
                )
                .unwrap();
                super::$name(engine).await;
                assert!(!r.keys().is_empty(), "the counts were in the cluster");
            }
        }
    };
}

/// Lets settlements reach the engine's counts (Redis settles in batches).
async fn synced(engine: &QuotaEngine) {
    engine.sync().await.unwrap();
}

async fn a_64_way_race_admits_exactly_what_fits(engine: QuotaEngine) {
    // $1 a request; the team's hard budget fits 13 of them.
    let q = Arc::new([
        Quota::default(),
        budget(Some(13.0), None, Period::Monthly, Enforcement::Hard),
        Quota::default(),
    ]);
    let now = at(NOW);
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (engine, q, barrier) = (engine.clone(), q.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let ticket = engine
                    .admit(&adm(&q, 1_000_000_000_000, 10, true, now))
                    .await;
                // Hold the reservation a moment, as a request in flight does.
                tokio::task::yield_now().await;
                ticket
            })
        })
        .collect();
    let mut admitted = Vec::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(ticket) => admitted.push(ticket),
            Err(r) => {
                assert_eq!((r.reason, r.level), (Reason::Budget, Level::Team));
                assert!(
                    r.message.contains("monthly budget of $13.00"),
                    "{}",
                    r.message
                );
                assert!(
                    r.message.contains("It resets at 2026-12-01T00:00:00.000Z."),
                    "{}",
                    r.message
                );
                refused += 1;
            }
        }
    }
    assert_eq!((admitted.len(), refused), (13, 51));
    // Each settles for less than it reserved: the room comes back.
    for t in admitted {
        t.settle(Picodollars(400_000_000_000), 5, now);
    }
    synced(&engine).await;
    let used = engine
        .usage(Level::Team, "t", Period::Monthly, now)
        .unwrap();
    assert_eq!(used.spent, Picodollars(13 * 400_000_000_000));
    assert_eq!(used.reserved, Picodollars(0));
    // $13 - $5.20 = $7.80 left: seven more $1 requests fit, not eight.
    let mut held = Vec::new();
    for _ in 0..8 {
        if let Ok(t) = engine
            .admit(&adm(&q, 1_000_000_000_000, 10, true, now))
            .await
        {
            held.push(t);
        }
    }
    assert_eq!(held.len(), 7);
}

async fn token_budgets_hold_and_a_longer_answer_is_charged_in_full(engine: QuotaEngine) {
    let q = [
        budget(None, Some(1000), Period::Daily, Enforcement::Hard),
        Quota::default(),
        Quota::default(),
    ];
    let now = at(NOW);
    let a = engine.admit(&adm(&q, 0, 600, true, now)).await.unwrap();
    let refused = engine.admit(&adm(&q, 0, 500, true, now)).await.unwrap_err();
    assert_eq!(refused.level, Level::Org);
    assert!(
        refused.message.contains("1000 tokens"),
        "{}",
        refused.message
    );
    // The first ran longer than reserved: all of it counts.
    a.settle(Picodollars(0), 900, now);
    synced(&engine).await;
    assert_eq!(
        engine
            .usage(Level::Org, "o", Period::Daily, now)
            .unwrap()
            .tokens,
        900
    );
    assert!(engine.admit(&adm(&q, 0, 101, true, now)).await.is_err());
    let b = engine.admit(&adm(&q, 0, 100, true, now)).await.unwrap();
    // A ticket dropped unsettled (a request that failed) gives its room back.
    drop(b);
    synced(&engine).await;
    let c = engine.admit(&adm(&q, 0, 100, true, now)).await.unwrap();
    c.settle(Picodollars(0), 100, now);
    synced(&engine).await;
    // Spent in full: nothing more, however small.
    assert!(engine.admit(&adm(&q, 0, 1, true, now)).await.is_err());
}

async fn extensions_take_from_every_budget_at_once_until_a_hard_one_is_full(engine: QuotaEngine) {
    // A soft organization budget over a hard $10 team budget and a hard
    // 10,000-token key budget: 16 requests hold $0.50 and 100 tokens each,
    // then grow a $0.25 and 100-token step at a time, all at once.
    let q = Arc::new([
        budget(Some(1000.0), None, Period::Monthly, Enforcement::Soft),
        budget(Some(10.0), None, Period::Monthly, Enforcement::Hard),
        budget(None, Some(10_000), Period::Monthly, Enforcement::Hard),
    ]);
    let now = at(NOW);
    let mut tickets = Vec::new();
    for _ in 0..16 {
        tickets.push(
            engine
                .admit(&adm(&q, 500_000_000_000, 100, true, now))
                .await
                .unwrap(),
        );
    }
    let tasks: Vec<_> = tickets
        .iter()
        .map(|t| {
            let ext = t.extender().unwrap();
            tokio::spawn(async move {
                let mut granted = 0;
                loop {
                    match ext.extend(Picodollars(250_000_000_000), 100, now).await {
                        Ok(()) => granted += 1,
                        Err(r) => return (granted, r),
                    }
                }
            })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        let (n, refusal) = t.await.unwrap();
        granted += n;
        assert_eq!(
            (refusal.reason, refusal.level),
            (Reason::Budget, Level::Team)
        );
    }
    // $8 held at admission leaves room for exactly eight $0.25 steps.
    assert_eq!(granted, 8);
    synced(&engine).await;
    let team = engine
        .usage(Level::Team, "t", Period::Monthly, now)
        .unwrap();
    assert_eq!(team.reserved, Picodollars(10_000_000_000_000));
    let org = engine.usage(Level::Org, "o", Period::Monthly, now).unwrap();
    assert_eq!(
        org.reserved, team.reserved,
        "the soft budget holds the steps too"
    );
    let key = engine.usage(Level::Key, "k", Period::Monthly, now).unwrap();
    assert_eq!(key.reserved_tokens, 16 * 100 + 8 * 100);
    // Each settles at what it came to hold: the whole budget is spent and
    // nothing stays held.
    let extenders: Vec<_> = tickets.iter().map(|t| t.extender().unwrap()).collect();
    let mut total = 0;
    for t in tickets {
        let (cost, tokens) = t.reserved();
        total += cost.0;
        t.settle(cost, tokens, now);
    }
    assert_eq!(total, 10_000_000_000_000);
    // Extending a settled ticket holds nothing.
    for e in &extenders {
        let _ = e.extend(Picodollars(1), 1, now).await;
    }
    synced(&engine).await;
    let team = engine
        .usage(Level::Team, "t", Period::Monthly, now)
        .unwrap();
    assert_eq!(team.spent, Picodollars(10_000_000_000_000));
    assert_eq!(team.reserved, Picodollars(0));
    assert_eq!(team.reserved_tokens, 0);
    let key = engine.usage(Level::Key, "k", Period::Monthly, now).unwrap();
    assert_eq!((key.tokens, key.reserved_tokens), (2_400, 0));
    // The key's token budget refuses a step too (7,600 tokens of room
    // left), once the team's is out of the way.
    let q = [q[0].clone(), Quota::default(), q[2].clone()];
    let t = engine.admit(&adm(&q, 0, 7_500, true, now)).await.unwrap();
    let ext = t.extender().unwrap();
    ext.extend(Picodollars(0), 100, now).await.unwrap();
    let refusal = ext.extend(Picodollars(0), 1, now).await.unwrap_err();
    assert_eq!(
        (refusal.reason, refusal.level),
        (Reason::Budget, Level::Key)
    );
}

async fn periods_roll_over_on_the_injected_clock(engine: QuotaEngine) {
    let q = [
        Quota::default(),
        Quota::default(),
        budget(Some(1.0), None, Period::Daily, Enforcement::Hard),
    ];
    let before = at("2026-11-21T23:59:59.999Z");
    let t = engine
        .admit(&adm(&q, 1_000_000_000_000, 1, true, before))
        .await
        .unwrap();
    t.settle(Picodollars(1_000_000_000_000), 1, before);
    synced(&engine).await;
    let refused = engine
        .admit(&adm(&q, 1, 1, true, before))
        .await
        .unwrap_err();
    assert_eq!(refused.retry_after_s, Some(1));
    let after = at("2026-11-22T00:00:00Z");
    let t = engine
        .admit(&adm(&q, 1_000_000_000_000, 1, true, after))
        .await;
    assert!(t.is_ok(), "a new day, a new budget");
    // A request from the old day settling late does not count on the new one.
    let week = [
        Quota::default(),
        Quota::default(),
        budget(Some(1.0), None, Period::Weekly, Enforcement::Hard),
    ];
    let sunday = at("2026-11-22T23:59:00Z");
    let late = engine
        .admit(&adm(&week, 500_000_000_000, 1, true, sunday))
        .await
        .unwrap();
    let monday = at("2026-11-23T00:00:01Z");
    let fresh = engine
        .admit(&adm(&week, 1_000_000_000_000, 1, true, monday))
        .await
        .unwrap();
    late.settle(Picodollars(500_000_000_000), 1, monday);
    fresh.settle(Picodollars(0), 0, monday);
    synced(&engine).await;
    let used = engine
        .usage(Level::Key, "k", Period::Weekly, monday)
        .unwrap();
    assert_eq!(
        (used.spent, used.reserved),
        (Picodollars(0), Picodollars(0))
    );
    // A lifetime budget never resets.
    let life = [
        Quota::default(),
        budget(Some(1.0), None, Period::Lifetime, Enforcement::Hard),
        Quota::default(),
    ];
    let t = engine
        .admit(&adm(&life, 1_000_000_000_000, 1, true, before))
        .await
        .unwrap();
    t.settle(Picodollars(1_000_000_000_000), 1, before);
    synced(&engine).await;
    let r = engine
        .admit(&adm(&life, 1, 1, true, at("2030-01-01T00:00:00Z")))
        .await
        .unwrap_err();
    assert_eq!(r.retry_after_s, None);
    assert!(r.message.contains("It does not reset."), "{}", r.message);
}

pub(crate) fn limited(rates: Rates, per_model: Option<Rates>) -> Quota {
    Quota {
        budget: None,
        limits: Some(Limits {
            rpm: rates.rpm,
            tpm: rates.tpm,
            max_concurrent: rates.max_concurrent,
            models: per_model.into_iter().map(|r| ("m".to_owned(), r)).collect(),
        }),
    }
}

async fn rate_limits_count_requests_tokens_and_requests_in_flight(engine: QuotaEngine) {
    let minute = at("2026-11-21T12:00:00Z");
    // rpm 3 on the key.
    let q = [
        Quota::default(),
        Quota::default(),
        limited(
            Rates {
                rpm: Some(3),
                ..Rates::default()
            },
            None,
        ),
    ];
    for i in 0..3 {
        let t = engine
            .admit(&adm(&q, 0, 0, true, minute + i))
            .await
            .unwrap();
        assert_eq!(t.rate().requests.unwrap().remaining, 2 - i as u64);
        t.settle(Picodollars(0), 0, minute + i);
    }
    let r = engine
        .admit(&adm(&q, 0, 0, true, minute + 10_000))
        .await
        .unwrap_err();
    assert_eq!(r.reason, Reason::Requests);
    assert_eq!(r.retry_after_s, Some(50));
    // A further attempt at an admitted request is not a new request.
    assert!(engine
        .admit(&adm(&q, 0, 0, false, minute + 10_000))
        .await
        .is_ok());
    assert!(
        engine
            .admit(&adm(&q, 0, 0, true, minute + 60_000))
            .await
            .is_ok(),
        "next minute"
    );

    // tpm 100 on the team, counted when requests finish.
    let q = [
        Quota::default(),
        limited(
            Rates {
                tpm: Some(100),
                ..Rates::default()
            },
            None,
        ),
        Quota::default(),
    ];
    let t = engine.admit(&adm(&q, 0, 0, true, minute)).await.unwrap();
    assert!(
        engine.admit(&adm(&q, 0, 0, true, minute)).await.is_ok(),
        "nothing counted yet"
    );
    t.settle(Picodollars(0), 100, minute + 1);
    synced(&engine).await;
    let r = engine
        .admit(&adm(&q, 0, 0, true, minute + 2))
        .await
        .unwrap_err();
    assert_eq!(r.reason, Reason::Tokens);
    assert!(engine
        .admit(&adm(&q, 0, 0, true, minute + 60_000))
        .await
        .is_ok());

    // Two in flight per model on the org; other models are not limited.
    let q = [
        limited(
            Rates::default(),
            Some(Rates {
                max_concurrent: Some(2),
                ..Rates::default()
            }),
        ),
        Quota::default(),
        Quota::default(),
    ];
    let a = engine.admit(&adm(&q, 0, 0, true, minute)).await.unwrap();
    let b = engine.admit(&adm(&q, 0, 0, true, minute)).await.unwrap();
    let r = engine
        .admit(&adm(&q, 0, 0, true, minute))
        .await
        .unwrap_err();
    assert_eq!((r.reason, r.level), (Reason::Concurrency, Level::Org));
    assert!(r.message.contains("'m'"), "{}", r.message);
    let mut other = adm(&q, 0, 0, true, minute);
    other.model = "n";
    assert!(engine.admit(&other).await.is_ok());
    drop(a);
    synced(&engine).await;
    assert!(engine.admit(&adm(&q, 0, 0, true, minute)).await.is_ok());
    drop(b);
}

async fn a_refusal_takes_nothing_from_the_other_limits(engine: QuotaEngine) {
    let now = at(NOW);
    let q = [
        Quota::default(),
        budget(Some(1.0), None, Period::Monthly, Enforcement::Hard),
        limited(
            Rates {
                rpm: Some(5),
                ..Rates::default()
            },
            None,
        ),
    ];
    // The key's rpm would allow it; the team's budget does not.
    for _ in 0..3 {
        assert!(engine
            .admit(&adm(&q, 2_000_000_000_000, 1, true, now))
            .await
            .is_err());
    }
    let t = engine.admit(&adm(&q, 1, 1, true, now)).await.unwrap();
    assert_eq!(
        t.rate().requests.unwrap().remaining,
        4,
        "refused requests did not count against the rpm"
    );
}

async fn alerts_fire_once_per_threshold_per_period(engine: QuotaEngine) {
    let now = at(NOW);
    let q = [
        Quota::default(),
        budget(Some(10.0), Some(1000), Period::Monthly, Enforcement::Soft),
        Quota::default(),
    ];
    let spend = |usd: i64, tokens: u64| {
        let engine = engine.clone();
        let q = q.clone();
        async move {
            let t = engine.admit(&adm(&q, 0, 0, true, now)).await.unwrap();
            t.settle(Picodollars(usd * 1_000_000_000_000), tokens, now);
            synced(&engine).await;
        }
    };
    spend(7, 100).await;
    assert!(engine.take_alerts().is_empty());
    spend(1, 100).await; // $8: 80%
    let a = engine.take_alerts();
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].level, a[0].unit, a[0].threshold),
        (Level::Team, "usd", 0.8)
    );
    spend(1, 0).await; // $9: nothing new
    assert!(engine.take_alerts().is_empty());
    spend(5, 700).await; // $14 and 900 tokens: 100% of USD, 80% of tokens
    let mut a: Vec<_> = engine
        .take_alerts()
        .into_iter()
        .map(|a| (a.unit, a.threshold))
        .collect();
    a.sort_by(|x, y| x.partial_cmp(y).unwrap());
    assert_eq!(a, [("tokens", 0.8), ("usd", 1.0)]);
    // A soft budget over its limit still admits.
    assert!(engine.admit(&adm(&q, 0, 0, true, now)).await.is_ok());
}

async fn seeded(t: &TestDb) {
    // This month the team already spent $3 (in the ledger, by an earlier
    // process); last month's spend does not count.
    let now = at(NOW);
    let mut rows = Vec::new();
    for (i, when) in [now - 3_600_000, now - 60_000, at("2026-10-31T23:00:00Z")]
        .into_iter()
        .enumerate()
    {
        let mut r = row(i as u64, when, Some(("o", "t", "k")), "m", "p");
        r.cost_picousd = 1_000_000_000_000 + if i == 0 { 1_000_000_000_000 } else { 0 };
        rows.push(r);
    }
    insert_batch(&t.db, &rows).await.unwrap();
    seeded_engine(
        QuotaEngine::local(Seed::Ledger(t.db.clone()), vec![]),
        &rows,
    )
    .await;
    for r in [TestRedis::new(), TestRedis::cluster()]
        .into_iter()
        .flatten()
    {
        let opts = r.options(&r.url, FailureMode::Closed);
        let engine = QuotaEngine::redis(Seed::Ledger(t.db.clone()), vec![], opts).unwrap();
        seeded_engine(engine.clone(), &rows).await;
        if t.url.starts_with("sqlite") {
            // Redis loses its data and its scripts (a restart without
            // persistence): the next admission seeds again from the
            // ledger, which has the spend, and the scripts are loaded
            // again. Once per run: forgetting scripts is server-wide, and
            // two at once could beat an engine's reload between them.
            r.wipe();
            r.forget_scripts();
            seeded_engine(engine, &rows).await;
        }
    }
}

async fn seeded_engine(engine: QuotaEngine, rows: &[billing::ledger::LedgerRow]) {
    let now = at(NOW);
    let q = [
        Quota::default(),
        budget(Some(4.0), None, Period::Monthly, Enforcement::Hard),
        Quota::default(),
    ];
    assert!(engine
        .admit(&adm(&q, 1_000_000_000_001, 1, true, now))
        .await
        .is_err());
    let ok = engine
        .admit(&adm(&q, 1_000_000_000_000, 1, true, now))
        .await;
    assert!(ok.is_ok());
    drop(ok);
    synced(&engine).await;
    let used = engine
        .usage(Level::Team, "t", Period::Monthly, now)
        .unwrap();
    assert_eq!(used.spent, Picodollars(3_000_000_000_000));
    assert_eq!(
        used.reserved,
        Picodollars(0),
        "the dropped ticket gave its hold back"
    );
    let tokens: u64 = rows[..2].iter().map(|r| r.usage.total()).sum();
    assert_eq!(used.tokens, tokens);
}
both_backends!(budgets_are_seeded_from_the_ledger, super::seeded);

engines!(a_64_way_race_admits_exactly_what_fits, vec![]);
engines!(
    extensions_take_from_every_budget_at_once_until_a_hard_one_is_full,
    vec![]
);
engines!(
    token_budgets_hold_and_a_longer_answer_is_charged_in_full,
    vec![]
);
engines!(periods_roll_over_on_the_injected_clock, vec![]);
engines!(
    rate_limits_count_requests_tokens_and_requests_in_flight,
    vec![]
);
engines!(a_refusal_takes_nothing_from_the_other_limits, vec![]);
engines!(alerts_fire_once_per_threshold_per_period, vec![0.8, 1.0]);
