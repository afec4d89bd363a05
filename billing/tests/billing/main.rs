//! Billing against real databases: SQLite always, Postgres when
//! `DATABASE_URL` is set (and always in CI).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

/// Runs `$check(&TestDb)` once on SQLite and once on Postgres.
macro_rules! both_backends {
    ($name:ident, $check:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = billing::testing::sqlite().await;
                $check(&t).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(t) = billing::testing::postgres().await {
                    $check(&t).await;
                }
            }
        }
    };
}

mod helpers;
mod ledger;
mod migrations;
mod partitions;
mod quota;
mod quota_cluster;
mod quota_redis;
mod reports;
mod tenancy;
