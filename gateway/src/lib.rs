//! Tollgate's gateway: the HTTP edge, configuration, auth and wiring.
//!
//! # Layout
//! - [`config`]: TOML config with `${ENV}` expansion, validated into [`Config`].
//! - [`app`]: [`App::build`] binds and wires everything; [`App::run`] serves
//!   with graceful shutdown.
//! - [`http`]: routes, middleware (request id, access log, auth, body
//!   deadline), handlers.
//! - `serve`: the accept loop and connections (HTTP/1.1 and h2c), with the
//!   connection limit and the header read, idle and write timeouts.
//! - [`auth`]: credentials and the [`Caller`](auth::Caller).
//! - [`context`]: the per-request [`RequestContext`](context::RequestContext).
//! - [`record`]: the end-of-request record and its sinks.
//! - [`ledger`]: the sink that turns records into spooled ledger rows.
//! - [`affinity`]: which candidate each session is kept on, per route, in
//!   this process and, with `[redis]`, shared by every replica.
//! - [`metrics`]: Prometheus metrics, counted per organization and team.
//! - [`error`]: [`ApiError`](error::ApiError), rendered in the client's wire shape.
//! - [`state`]: shared state.
//! - [`cli`], [`check`], [`admin_cli`]: the command line, `check-config`, and
//!   the admin subcommands.
//! - `fuzzing` (feature `fuzzing`, off by default): internals the fuzz
//!   targets under `fuzz/` drive; not part of the API.

pub mod admin_cli;
pub mod affinity;
pub mod app;
pub mod auth;
pub mod check;
pub mod cli;
pub mod config;
pub mod context;
pub mod error;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod policy;
pub mod quota;
pub mod record;
mod serve;
pub mod state;

/// Internals the fuzz targets (`fuzz/` at the repository root) drive
/// directly. Only with the `fuzzing` feature; not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// The admin API's body checks, without a database.
    pub use crate::http::admin::fuzzing as admin;
}

pub use app::{App, BuildError};
pub use config::Config;
