//! The Redis engine on a real Redis Cluster made by the test (nodes on
//! loopback): every key of one request hashes to its organization's slot
//! (by our own CRC16 and by the server's); organizations on every primary
//! are settled, renewed and reread; with the whole cluster stopped the
//! engine fails closed or fails open and reconciles; and when a primary
//! dies, its promoted replica is used, with the counts it was sent.
//!
//! The shared engine checks (the 64-way race, rate limits, seeding,
//! alerts, leases lapsing, two replicas) run on the cluster too, as the
//! `cluster` variant of `quota` and `quota_redis`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use billing::ledger::insert_batch;
use billing::quota::{
    Admission, Enforcement, FailureMode, Level, Limits, Period, Quota, Rates, Reason, RedisOptions,
    Seed,
};
use billing::testing::cluster::TestCluster;
use billing::testing::TestRedis;
use billing::Picodollars;

use crate::helpers::{eventually, row};
use crate::quota::{adm, at, budget, NOW};
use crate::quota_redis::{engine, run};

const USD: i64 = 1_000_000_000_000;

/// CRC16/XMODEM, as Redis Cluster hashes keys.
fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A key's slot: the CRC16 of its hash tag (the first non-empty `{...}`),
/// or of the whole key, modulo 16384.
fn slot(key: &str) -> u16 {
    let k = key.as_bytes();
    let tagged = k.iter().position(|&c| c == b'{').and_then(|open| {
        let len = k[open + 1..].iter().position(|&c| c == b'}')?;
        (len > 0).then(|| &k[open + 1..open + 1 + len])
    });
    crc16(tagged.unwrap_or(k)) % 16384
}

/// Options with a short lease, so renewals run within the test.
fn short_lease(r: &TestRedis, on_failure: FailureMode) -> RedisOptions {
    RedisOptions {
        lease: Duration::from_secs(1),
        ..r.options(&r.url, on_failure)
    }
}

/// A quota with a budget and limits over all models and for model `m`.
fn everything(b: Quota) -> Quota {
    let rates = Rates {
        rpm: Some(100),
        tpm: Some(100_000),
        max_concurrent: Some(10),
    };
    Quota {
        budget: b.budget,
        limits: Some(Limits {
            rpm: rates.rpm,
            tpm: rates.tpm,
            max_concurrent: rates.max_concurrent,
            models: [("m".to_owned(), rates)].into_iter().collect(),
        }),
    }
}

/// An admission under organization `org`, its team `<org>-t` and key
/// `<org>-k`.
fn adm_in<'a>(org: &'a str, ids: &'a [String; 2], q: &'a [Quota; 3], cost: i64) -> Admission<'a> {
    Admission {
        levels: [
            (Level::Org, org, &q[0]),
            (Level::Team, &ids[0], &q[1]),
            (Level::Key, &ids[1], &q[2]),
        ],
        model: "m",
        cost: Picodollars(cost),
        tokens: 1,
        new_request: true,
        now_ms: at(NOW),
    }
}

#[test]
fn our_crc16_is_redis_clusters() {
    // The check value of CRC16/XMODEM, and the slots Redis's cluster
    // specification gives as examples.
    assert_eq!(crc16(b"123456789"), 0x31c3);
    assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
    assert_eq!(slot("foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
    assert_eq!(slot("foo{{bar}}zap"), crc16(b"{bar") % 16384);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_of_one_request_hashes_to_its_organizations_slot() {
    let Some(r) = TestRedis::cluster() else {
        return;
    };
    let cluster = r.cluster.clone().unwrap();
    let e = engine(Seed::Empty, short_lease(&r, FailureMode::Closed));
    let _running = run(&e);
    // A budget and limits (over all models, and for the model) at every
    // level: the most keys one request can touch.
    let q = [
        everything(budget(
            Some(10.0),
            Some(1000),
            Period::Monthly,
            Enforcement::Hard,
        )),
        everything(budget(Some(5.0), None, Period::Daily, Enforcement::Soft)),
        everything(budget(None, Some(500), Period::Weekly, Enforcement::Hard)),
    ];
    let ticket = e.admit(&adm(&q, USD, 10, true, at(NOW))).await.unwrap();
    let in_flight = r.keys();
    ticket.settle(Picodollars(USD), 10, at(NOW));
    e.sync().await.unwrap();
    let after = r.keys();
    // Three budgets (counters and leases) and six rate limits (the
    // minute's counts and the requests in flight).
    assert_eq!(in_flight.len(), 18, "{in_flight:#?}");
    let all: BTreeSet<&String> = in_flight.iter().chain(&after).collect();
    let org_slot = slot("{org:o}");
    for key in all {
        assert!(
            key.starts_with(&format!("{}:{{org:o}}:", r.prefix)),
            "{key} starts with the prefix, then the organization's tag"
        );
        assert_eq!(slot(key), org_slot, "{key}");
        assert_eq!(cluster.keyslot(key), org_slot, "Redis agrees on {key}");
    }
    assert_eq!(e.store_status().unwrap().failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn organizations_on_every_primary_are_settled_renewed_and_reread() {
    let Some(r) = TestRedis::cluster() else {
        return;
    };
    let cluster = r.cluster.clone().unwrap();
    let e = engine(Seed::Empty, short_lease(&r, FailureMode::Closed));
    let _running = run(&e);
    let orgs: Vec<String> = (0..24).map(|i| format!("org-{i}")).collect();
    let ids: Vec<[String; 2]> = orgs
        .iter()
        .map(|o| [format!("{o}-t"), format!("{o}-k")])
        .collect();
    let primaries: BTreeSet<u16> = orgs
        .iter()
        .map(|o| cluster.primary_of(&format!("{{org:{o}}}")))
        .collect();
    assert_eq!(primaries.len(), 3, "the organizations span every primary");
    // Each team has $10; each key one request in flight at a time.
    let q = [
        Quota::default(),
        budget(Some(10.0), None, Period::Monthly, Enforcement::Hard),
        Quota {
            budget: None,
            limits: Some(Limits {
                max_concurrent: Some(1),
                ..Limits::default()
            }),
        },
    ];
    let mut held = Vec::new();
    for (o, ids) in orgs.iter().zip(&ids) {
        held.push(e.admit(&adm_in(o, ids, &q, USD)).await.unwrap());
    }
    // Past two leases: renewed slot by slot, every hold is still there.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (o, ids) in orgs.iter().zip(&ids) {
        let refused = e.admit(&adm_in(o, ids, &q, USD)).await.unwrap_err();
        assert_eq!(refused.reason, Reason::Concurrency, "{o}");
    }
    // One batch of settlements across every slot; then every budget is
    // reread.
    for (i, ticket) in held.into_iter().enumerate() {
        ticket.settle(Picodollars((i as i64 % 9 + 1) * USD), 1, at(NOW));
    }
    e.sync().await.unwrap();
    for (i, (o, ids)) in orgs.iter().zip(&ids).enumerate() {
        let want = Picodollars((i as i64 % 9 + 1) * USD);
        let seen = e
            .usage(Level::Team, &ids[0], Period::Monthly, at(NOW))
            .unwrap();
        assert_eq!((seen.spent, seen.reserved), (want, Picodollars(0)), "{o}");
        let read = e
            .current_usage(o, Level::Team, &ids[0], Period::Monthly, at(NOW))
            .await
            .unwrap();
        assert_eq!(read.spent, want, "{o}");
    }
    assert_eq!(e.store_status().unwrap().failures, 0);
}

/// A cluster of the test's own (it stops or kills nodes), with a prefix.
fn own_cluster(primaries: usize, replicas: usize, node_timeout: Duration) -> Option<TestRedis> {
    let c = TestCluster::start(primaries, replicas, node_timeout)?;
    Some(TestRedis::on(&Arc::new(c)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_whole_cluster_stopped_it_fails_closed_then_recovers() {
    let Some(r) = own_cluster(3, 0, Duration::from_secs(5)) else {
        return;
    };
    let cluster = r.cluster.clone().unwrap();
    let e = engine(Seed::Empty, short_lease(&r, FailureMode::Closed));
    let _running = run(&e);
    let now = at(NOW);
    let q = [
        Quota::default(),
        budget(Some(10.0), None, Period::Monthly, Enforcement::Hard),
        Quota::default(),
    ];
    let before = e.admit(&adm(&q, USD, 1, true, now)).await.unwrap();

    cluster.pause();
    let refused = e.admit(&adm(&q, USD, 1, true, now)).await.unwrap_err();
    assert_eq!(refused.reason, Reason::Unavailable);
    let status = e.store_status().unwrap();
    assert!(!status.up && status.failures >= 1, "{status:?}");
    // Finishing during the outage: the settlement waits for the cluster.
    before.settle(Picodollars(2 * USD), 1, now);

    cluster.resume();
    eventually("the cluster is used again", async || {
        e.admit(&adm(&q, USD, 1, true, now)).await.is_ok()
    })
    .await;
    e.sync().await.unwrap();
    let used = e.usage(Level::Team, "t", Period::Monthly, now).unwrap();
    assert_eq!(used.spent, Picodollars(2 * USD), "the late settlement");
    eventually("every hold is given back", async || {
        drop(e.admit(&adm(&q, USD, 1, true, now)).await);
        e.sync().await.unwrap();
        let used = e.usage(Level::Team, "t", Period::Monthly, now).unwrap();
        used.reserved == Picodollars(0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_whole_cluster_stopped_it_fails_open_on_local_counts_and_reconciles() {
    let Some(r) = own_cluster(3, 0, Duration::from_secs(5)) else {
        return;
    };
    let cluster = r.cluster.clone().unwrap();
    let t = billing::testing::sqlite().await;
    let now = at(NOW);
    let mut spent = row(1, now - 60_000, Some(("o", "t", "k")), "m", "p");
    spent.cost_picousd = 3 * USD;
    insert_batch(&t.db, &[spent]).await.unwrap();
    let e = engine(
        Seed::Ledger(t.db.clone()),
        short_lease(&r, FailureMode::Open),
    );
    let _running = run(&e);
    let q = [
        Quota::default(),
        budget(Some(10.0), None, Period::Monthly, Enforcement::Hard),
        Quota::default(),
    ];
    e.admit(&adm(&q, USD, 1, true, now)).await.unwrap();
    // Counted from here: a slow first call may have been counted locally.
    eventually("the cluster is used", async || e.store_status().unwrap().up).await;
    let counted = e.store_status().unwrap().local_admissions;

    cluster.pause();
    // Local counts, seeded from the ledger: $7 left.
    let mut local = Vec::new();
    for _ in 0..8 {
        match e.admit(&adm(&q, USD, 1, true, now)).await {
            Ok(ticket) => local.push(ticket),
            Err(r) => assert_eq!(r.reason, Reason::Budget),
        }
    }
    assert_eq!(local.len(), 7);
    assert_eq!(e.store_status().unwrap().local_admissions - counted, 7);
    for ticket in local {
        ticket.settle(Picodollars(USD), 10, now);
    }

    cluster.resume();
    eventually("the cluster is used again", async || {
        e.store_status().unwrap().up
    })
    .await;
    e.sync().await.unwrap();
    // A replica starting now finds the outage's spend in the cluster.
    let peer = engine(
        Seed::Ledger(t.db.clone()),
        r.options(&r.url, FailureMode::Open),
    );
    let full = peer.admit(&adm(&q, 1, 1, true, now)).await.unwrap_err();
    assert_eq!(full.reason, Reason::Budget);
    let used = peer
        .current_usage("o", Level::Team, "t", Period::Monthly, now)
        .await
        .unwrap();
    assert_eq!(used.spent, Picodollars(10 * USD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_a_primary_dies_its_promoted_replica_is_used_with_the_counts_it_was_sent() {
    let Some(r) = own_cluster(3, 1, Duration::from_millis(1000)) else {
        return;
    };
    let cluster = r.cluster.clone().unwrap();
    let e = engine(Seed::Empty, r.options(&r.url, FailureMode::Closed));
    let _running = run(&e);
    let now = at(NOW);
    let q = Arc::new([
        Quota::default(),
        budget(Some(10.0), None, Period::Monthly, Enforcement::Hard),
        Quota::default(),
    ]);
    for _ in 0..4 {
        let t = e.admit(&adm(&q, USD, 1, true, now)).await.unwrap();
        t.settle(Picodollars(USD), 1, now);
    }
    e.sync().await.unwrap();
    let (start, _) = Period::Monthly.window(now);
    let key = format!("{}:{{org:o}}:b:team:t:monthly:{start}", r.prefix);
    cluster.wait_replicated(&key);
    let primary = cluster.primary_of(&key);

    cluster.kill(primary);
    // Refused (failing closed) until the replica takes over; then admitted.
    eventually("the promoted replica is used", async || {
        e.admit(&adm(&q, 0, 0, true, now)).await.is_ok()
    })
    .await;
    assert_ne!(cluster.primary_of(&key), primary);
    e.sync().await.unwrap();
    let used = e.usage(Level::Team, "t", Period::Monthly, now).unwrap();
    assert_eq!(used.spent, Picodollars(4 * USD));
    // And the rest of the budget, exactly, to a race.
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (e, q, barrier) = (e.clone(), q.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                e.admit(&adm(&q, USD, 1, true, now)).await
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(ticket) => admitted.push(ticket),
            Err(r) => assert_eq!(r.reason, Reason::Budget),
        }
    }
    assert_eq!(admitted.len(), 6);
}
