//! Test support (feature `testing`): fresh databases on both backends, and
//! a Redis key prefix of a test's own, on the Redis in `REDIS_URL` or on a
//! local Redis Cluster ([`cluster`]).
//!
//! SQLite always runs, in a temporary directory. Postgres runs when
//! `DATABASE_URL` names a server: each test gets a database of its own,
//! dropped afterwards. Without `DATABASE_URL` the Postgres variant is skipped
//! with a printed reason, except under `CI`, where it fails.

#![allow(clippy::expect_used, clippy::disallowed_methods)]

pub mod cluster;

use std::sync::Arc;

use sqlx::{AssertSqlSafe, Connection};

use crate::db::Db;

/// A database for one test.
pub struct TestDb {
    /// The pool, migrated.
    pub db: Db,
    /// Its URL.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    drop_pg: Option<(String, String)>,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb").field("url", &self.url).finish()
    }
}

/// A migrated SQLite database in a temporary directory.
pub async fn sqlite() -> TestDb {
    sqlite_at(None).await
}

/// Applies the migrations up to `version`, or all of them.
async fn migrate(db: &Db, version: Option<i64>) {
    match version {
        Some(v) => db.migrate_to(v).await,
        None => db.migrate().await,
    }
    .expect("the test database migrates");
}

/// A SQLite database migrated up to `version` (all migrations: `None`), to
/// test upgrades.
pub async fn sqlite_at(version: Option<i64>) -> TestDb {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("tollgate.db").display());
    let db = Db::connect(&url).await.expect("sqlite connects");
    migrate(&db, version).await;
    TestDb {
        db,
        url,
        _dir: Some(dir),
        drop_pg: None,
    }
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let host = rest.split('/').next().unwrap_or(rest);
    match query {
        Some(q) => format!("{scheme}://{host}/{name}?{q}"),
        None => format!("{scheme}://{host}/{name}"),
    }
}

/// `url` with its host and port replaced by `addr` (to go through a proxy).
pub fn url_via(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (userinfo, hostpath) = match rest.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), rest),
    };
    let tail = hostpath
        .find(['/', '?'])
        .map(|i| &hostpath[i..])
        .unwrap_or("");
    format!("{scheme}://{userinfo}{addr}{tail}")
}

/// The socket address of the Postgres server in `DATABASE_URL`, if any.
pub async fn postgres_server_addr() -> Option<std::net::SocketAddr> {
    let url = postgres_url()?;
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(&url);
    let hostpath = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let host = hostpath.split(['/', '?']).next().unwrap_or("127.0.0.1");
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    tokio::net::lookup_host(host).await.ok()?.next()
}

/// The Postgres server URL tests use, if any. Panics under `CI` without one.
pub fn postgres_url() -> Option<String> {
    match std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
    {
        Some(u) => Some(u),
        None if std::env::var_os("CI").is_some() => {
            panic!("CI is set but DATABASE_URL names no Postgres server: Postgres tests must run in CI")
        }
        None => {
            eprintln!("skipping the Postgres variant: set DATABASE_URL=postgres://... to run it");
            None
        }
    }
}

/// A fresh, migrated Postgres database, or `None` when no server is configured.
pub async fn postgres() -> Option<TestDb> {
    postgres_at(None).await
}

/// A fresh Postgres database migrated up to `version` (all: `None`).
pub async fn postgres_at(version: Option<i64>) -> Option<TestDb> {
    let admin = postgres_url()?;
    let name = format!("tollgate_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::postgres::PgConnection::connect(&admin)
        .await
        .expect("the Postgres server in DATABASE_URL answers");
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("a test database can be created");
    let _ = conn.close().await;
    let url = with_database(&admin, &name);
    let db = Db::connect(&url).await.expect("the test database connects");
    migrate(&db, version).await;
    Some(TestDb {
        db,
        url,
        _dir: None,
        drop_pg: Some((admin, name)),
    })
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.drop_pg.take() else {
            return;
        };
        // Drop runs outside async: drop the database from a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::postgres::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// The Redis server tests use: `REDIS_URL`, if set. Panics under `CI`
/// without one; otherwise `None` skips the Redis variant with a reason.
pub fn redis_url() -> Option<String> {
    match std::env::var("REDIS_URL")
        .ok()
        .filter(|u| u.starts_with("redis"))
    {
        Some(u) => Some(u),
        None if std::env::var_os("CI").is_some() => {
            panic!("CI is set but REDIS_URL names no Redis server: Redis tests must run in CI")
        }
        None => {
            eprintln!("skipping the Redis variant: set REDIS_URL=redis://127.0.0.1:6379 to run it");
            None
        }
    }
}

/// A test's own corner of the Redis in `REDIS_URL` (or of a local Redis
/// Cluster): a key prefix nobody else uses, whose keys are deleted when it
/// drops.
#[derive(Debug)]
pub struct TestRedis {
    /// The server; for a cluster, its nodes, comma-separated.
    pub url: String,
    /// The prefix of this test's keys.
    pub prefix: String,
    /// The cluster, when on one.
    pub cluster: Option<Arc<cluster::TestCluster>>,
}

fn fresh_prefix() -> String {
    format!("tollgate-test:{}", uuid::Uuid::now_v7().simple())
}

impl TestRedis {
    /// A fresh prefix on the test server, or `None` when there is none.
    pub fn new() -> Option<TestRedis> {
        let url = redis_url()?;
        Some(TestRedis {
            url,
            prefix: fresh_prefix(),
            cluster: None,
        })
    }

    /// A fresh prefix on the cluster this test process shares, or `None`
    /// when Redis is not installed (outside CI).
    pub fn cluster() -> Option<TestRedis> {
        Some(Self::on(&cluster::TestCluster::shared()?))
    }

    /// A fresh prefix on `cluster`.
    pub fn on(cluster: &Arc<cluster::TestCluster>) -> TestRedis {
        TestRedis {
            url: cluster.url(),
            prefix: fresh_prefix(),
            cluster: Some(cluster.clone()),
        }
    }

    /// Engine options for this prefix, reaching Redis at `url`.
    pub fn options(
        &self,
        url: &str,
        on_failure: crate::quota::FailureMode,
    ) -> crate::quota::RedisOptions {
        crate::quota::RedisOptions {
            url: url.to_owned(),
            mode: match self.cluster {
                Some(_) => crate::quota::RedisMode::Cluster,
                None => crate::quota::RedisMode::Single,
            },
            prefix: self.prefix.clone(),
            on_failure,
            // Generous: a loaded CI machine (clusters starting beside the
            // tests) must not turn a slow first call into an outage.
            timeout: std::time::Duration::from_secs(2),
            lease: std::time::Duration::from_secs(30),
        }
    }

    /// Every key under the prefix.
    pub fn keys(&self) -> Vec<String> {
        let pattern = format!("{}:*", self.prefix);
        if let Some(c) = &self.cluster {
            return c.keys(&pattern);
        }
        let Ok(mut conn) = redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        else {
            return Vec::new();
        };
        redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut conn)
            .unwrap_or_default()
    }

    /// Deletes every key under the prefix (Redis losing its data).
    pub fn wipe(&self) {
        if let Some(c) = &self.cluster {
            c.delete(&format!("{}:*", self.prefix));
            return;
        }
        let keys = self.keys();
        if keys.is_empty() {
            return;
        }
        if let Ok(mut conn) =
            redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(&keys).query(&mut conn);
        }
    }

    /// Makes the server (every node of a cluster) forget every loaded
    /// script, as a restart does (the engines load them again when told
    /// they are missing).
    pub fn forget_scripts(&self) {
        if let Some(c) = &self.cluster {
            c.forget_scripts();
            return;
        }
        if let Ok(mut conn) =
            redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        {
            let _: redis::RedisResult<String> = redis::cmd("SCRIPT").arg("FLUSH").query(&mut conn);
        }
    }

    /// The socket address of the server (to put a forwarder in front).
    pub async fn server_addr(&self) -> std::net::SocketAddr {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        let hostpath = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let host = hostpath.split(['/', '?']).next().unwrap_or("127.0.0.1");
        let host = if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:6379")
        };
        tokio::net::lookup_host(host)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .expect("the Redis host in REDIS_URL resolves")
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.wipe();
    }
}

/// The models the benchmarks' synthetic ledger rows cycle through.
pub const BENCH_MODELS: [&str; 6] = [
    "kimi-k2.5",
    "glm-5",
    "deepseek-v4-pro",
    "minimax-m2.5",
    "claude-sonnet-4.5",
    "glm-4.5-air",
];
/// The providers they cycle through.
pub const BENCH_PROVIDERS: [&str; 3] = ["kimi", "glm", "deepseek"];

/// Synthetic ledger row `i` of `n` for the benchmarks: start times spread
/// evenly over `[start, start + span_ms)` in the order of `i` (as the writer
/// appends them), 50 keys in 10 teams of 3 organizations, 6 models, 3
/// providers and 3 routes, cycling: 150 combinations, each in every hour
/// when rows are dense enough.
pub fn bench_row(i: usize, n: usize, start: i64, span_ms: i64) -> crate::ledger::LedgerRow {
    let key = i % 50;
    let model = BENCH_MODELS[i % BENCH_MODELS.len()];
    crate::ledger::LedgerRow {
        request_id: uuid::Uuid::now_v7(),
        started_at_ms: start + (i as i64 * span_ms) / n.max(1) as i64,
        org_id: Some(format!("org-{}", key % 3)),
        team_id: Some(format!("team-{}", key % 10)),
        key_id: Some(format!("key-{key}")),
        client_format: "openai".into(),
        endpoint: "chat_completions".into(),
        requested_model: model.into(),
        provider: BENCH_PROVIDERS[i % BENCH_PROVIDERS.len()].into(),
        upstream_model: model.into(),
        status: 200,
        outcome: "complete".into(),
        usage: router::Usage {
            input: 1000 + (i % 500) as u64,
            cached_input: (i % 300) as u64,
            cache_write: 0,
            output: 200 + (i % 90) as u64,
            reasoning: (i % 40) as u64,
        },
        cost_picousd: 1_000_000 + (i % 777) as i64,
        latency_ms: 900,
        ttft_ms: Some(300),
        stream: i.is_multiple_of(2),
        usage_estimated: false,
        priced: true,
        route: format!("route-{}", i % 3),
        attempt: 1,
        client_request_id: None,
        reference_model: Some("claude-sonnet-4.5".into()),
        reference_cost_picousd: Some(20_000_000 + (i % 777) as i64),
        session: None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts_are_swapped_in_urls() {
        let addr: std::net::SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(
            super::url_via("postgres://u:p@h:5432/db?x=1", addr),
            "postgres://u:p@127.0.0.1:4000/db?x=1"
        );
        assert_eq!(
            super::url_via("postgres://localhost/db", addr),
            "postgres://127.0.0.1:4000/db"
        );
    }

    #[test]
    fn database_names_are_swapped_in_urls() {
        assert_eq!(
            super::with_database("postgres://root@127.0.0.1:5432/test", "x"),
            "postgres://root@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://h", "x"), "postgres://h/x");
    }
}
