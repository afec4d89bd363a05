//! The ledger: one row for every request Tollgate accepted, written exactly
//! once.
//!
//! A row is appended to a local spool file on the request's own task before
//! the client sees the end of its answer, so a crash or `kill -9` loses no row
//! (the bytes are in the kernel). A background writer tails the spool, inserts
//! rows in batches with the hourly rollup in the same transaction, and deletes
//! spool segments once they are in the database. Inserts ignore request ids
//! already present, so replaying a segment after a crash never duplicates a
//! row. When the database is unreachable the spool grows and drains later.

mod row;
mod spool;
mod store;
mod writer;

pub use row::LedgerRow;
pub use spool::{Spool, SpoolError};
pub use store::insert_batch;
pub use writer::{LedgerStats, Writer, WriterConfig};
