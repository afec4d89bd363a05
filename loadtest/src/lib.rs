//! Tollgate's load-testing tools.
//!
//! # Layout
//! - [`mock`]: the mock upstream, an OpenAI-compatible server backed by the
//!   simulated model, with injectable faults.

pub mod mock;
