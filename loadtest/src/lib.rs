//! Tollgate's load-testing tools.
//!
//! # Layout
//! - [`mock`]: the mock upstream, an OpenAI-compatible server backed by the
//!   simulated model, with injectable faults.
//! - [`drive`]: the load driver, bounded in time and request count, in a
//!   closed or an open loop.
//! - [`compare`]: the same load against several targets, side by side.
//! - [`plot`]: latency plots as SVG.
//! - [`procstat`]: a process's CPU time and memory, from `/proc`.
//! - [`forward`]: a TCP forwarder tests cut and restore.
//! - [`cut_proxy`]: the forwarder as a process that scripts cut and
//!   restore with signals (`loadtest cut-proxy`).

pub mod compare;
pub mod cut_proxy;
pub mod drive;
pub mod forward;
pub mod mock;
pub mod plot;
pub mod procstat;
