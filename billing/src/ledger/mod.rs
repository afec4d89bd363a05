//! The ledger: one row for every request Tollgate accepted, written exactly
//! once.
//!
//! A row is appended to a local spool file on the request's own task before
//! the client sees the end of its answer, so a crash or `kill -9` loses no row
//! (the bytes are in the kernel). A background writer tails the spool, inserts
//! rows in batches with the hourly rollup in the same transaction, and deletes
//! spool segments once they are in the database. Inserts ignore rows already
//! present (by request id, and on Postgres its start time too), so replaying
//! a segment after a crash never duplicates a row. When the database is
//! unreachable the spool grows and drains later.
//!
//! On Postgres the ledger is partitioned by month; a maintenance task makes
//! partitions ahead and, with a retention setting, drops old months whole
//! while the rollup keeps counting them.

mod maintenance;
mod partitions;
mod row;
mod spool;
mod store;
mod writer;

pub use maintenance::Maintenance;
pub use partitions::{
    dropped_before, ensure_months, list as partitions, maintain, Maintained, Month, Partition,
    DEFAULT_PARTITION,
};
pub use row::LedgerRow;
pub use spool::{LeftRows, Spool, SpoolError};
pub use store::{insert_batch, write_batch, Written};
pub use writer::{LedgerStats, Writer, WriterConfig};
