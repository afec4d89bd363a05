//! The loadtest crate's integration tests: the mock upstream and the cut
//! proxy as their own processes, and the load driver and `compare` against a real mock on
//! loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod compare;
mod cut_proxy;
mod drive;
mod mock_cli;
mod support;
