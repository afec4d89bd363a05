//! Tollgate's billing: tenancy and virtual keys, exact money, the ledger, and
//! spend reports.
//!
//! # Layout
//! - [`db`]: the Postgres or SQLite pool, migrations, dialect helpers.
//! - [`tenancy`]: organizations, teams, keys; the admin operations.
//! - [`policy`]: which models and providers an org, team or key may use.
//! - [`quota`]: budgets and rate limits: reserve, settle, alert.
//! - [`keys`]: the in-memory key cache and its change watcher.
//! - [`names`]: organization and team names by id, learned as keys load.
//! - [`money`]: picodollars and the cost of a request's usage.
//! - [`ledger`]: the spool, the batching writer, and the rows they carry.
//! - [`reports`]: spend reports over the rollup and the ledger.
//! - `testing` (feature): fresh SQLite and Postgres databases for tests.

pub mod db;
pub mod keys;
pub mod ledger;
pub mod money;
pub mod names;
pub mod policy;
pub mod quota;
pub mod reports;
pub mod tenancy;
#[cfg(feature = "testing")]
pub mod testing;

pub use db::{Backend, Db, DbError};
pub use money::{cost, uncapped_cost, Picodollars};
