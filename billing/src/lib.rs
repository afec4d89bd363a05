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
//! - `fuzzing` (feature, off by default): internals the fuzz targets under
//!   `fuzz/` drive; not part of the API.

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

/// Internals the fuzz targets (`fuzz/` at the repository root) drive
/// directly. Only with the `fuzzing` feature; not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use serde_json::Value;

    use crate::tenancy::{self, Controls, TenancyError};

    /// What creating an organization, a team or a key checks and writes
    /// before the database sees it (`kind` names it in errors; a key's name
    /// is optional), read back as a row of it is read: the stored metadata
    /// and controls.
    pub fn store_and_read(
        kind: &str,
        name: Option<&str>,
        metadata: Option<Value>,
        controls: &Controls,
    ) -> Result<(Value, Controls), TenancyError> {
        if let Some(name) = name {
            tenancy::check_name(kind, name)?;
        }
        let (policy, budget, limits) = tenancy::controls_text(controls)?;
        let meta = tenancy::metadata_text(metadata)?;
        Ok((
            tenancy::parse_json(&meta),
            tenancy::controls_from_text(&policy, budget, limits),
        ))
    }
}

pub use db::{Backend, Db, DbError};
pub use money::{cost, uncapped_cost, Picodollars};
