//! The owned background task that keeps the Postgres ledger's partitions:
//! one maintenance step at start, then one every interval (sooner after a
//! failure), until told to stop. Stopping mid-step rolls the step back.

use std::future::Future;
use std::time::Duration;

use super::partitions::maintain;
use crate::db::{now_ms, Backend, Db};

/// How soon a failed step is tried again (at most).
const RETRY: Duration = Duration::from_secs(60);

/// The partition maintenance task.
#[derive(Debug)]
pub struct Maintenance {
    db: Db,
    retention_months: Option<u32>,
    interval: Duration,
}

impl Maintenance {
    /// Maintenance of `db`'s ledger every `interval`, dropping months older
    /// than `retention_months` (`None`: keep every month).
    pub fn new(db: Db, retention_months: Option<u32>, interval: Duration) -> Self {
        Self {
            db,
            retention_months,
            interval,
        }
    }

    /// Runs until `stop` resolves. Returns at once on SQLite (one table, no
    /// partitions).
    pub async fn run(self, stop: impl Future<Output = ()>) {
        if self.db.backend() != Backend::Postgres {
            return;
        }
        tokio::pin!(stop);
        loop {
            let step = tokio::select! {
                () = &mut stop => return,
                step = maintain(&self.db, now_ms(), self.retention_months) => step,
            };
            let wait = match step {
                Ok(done) => {
                    if done.changed() {
                        tracing::info!(
                            created = ?done.created,
                            moved_rows = done.moved_rows,
                            dropped = ?done.dropped,
                            expired_rows = done.expired_rows,
                            "ledger partitions maintained"
                        );
                    }
                    self.interval
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ledger partition maintenance failed; rows outside the partitions wait in the default partition");
                    self.interval.min(RETRY)
                }
            };
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
