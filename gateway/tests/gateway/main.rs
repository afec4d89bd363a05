//! Integration tests: the real gateway on port 0 against real mock upstreams
//! on port 0, driven with raw HTTP and an OpenAI client crate.

// Test code: a failed unwrap is a failed test; helpers may block and spawn.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod helpers;
mod process;

mod affinity;
mod anthropic;
mod billing;
mod chat;
mod cli;
mod connections;
mod durability;
mod embeddings;
mod errors;
mod logging;
mod metrics;
mod models;
mod passthrough;
mod policy;
mod quotas;
mod replicas;
mod responses;
mod routing;
mod runaway;
mod sessions;
mod shutdown;
mod spend_page;
mod streaming;
mod usage;
