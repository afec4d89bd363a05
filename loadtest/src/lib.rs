//! Tollgate's load-testing tools.
//!
//! # Layout
//! - [`mock`]: the mock upstream, an OpenAI-compatible server backed by the
//!   simulated model, with injectable faults.
//! - [`drive`]: the load driver, bounded in time and request count.
//! - [`forward`]: a TCP forwarder tests cut and restore.

pub mod drive;
pub mod forward;
pub mod mock;
