//! Tollgate's router: everything between a validated client request and the
//! bytes that go back to the client.
//!
//! # Layout
//! - [`wire`]: client wire formats (OpenAI chat, Anthropic Messages, OpenAI
//!   Responses), request validation,
//!   error shapes.
//! - [`translate`]: OpenAI chat ↔ Anthropic messages, requests, answers and
//!   streams.
//! - [`dispatch`]: from a client request and its route to the answer: the
//!   candidate loop, one attempt, fallbacks, with admission and metering as
//!   hooks the gateway supplies.
//! - [`catalog`]: the models clients may ask for and who serves them.
//! - [`price`]: model prices per token kind, with tiers, and the built-in list.
//! - [`provider`]: upstream providers (`openai`, `mock`), timeouts, one pooled
//!   HTTP client each.
//! - [`route`]: routes, their strategies, capability filters, model health,
//!   and cache affinity (a session kept on the candidate that served it).
//! - [`relay`]: relaying answers, whole or streamed, with usage extracted and a
//!   summary of every exchange.
//! - [`usage`]: the normalized [`Usage`] record and vendor usage shapes.
//! - [`session`]: which agent session a request belongs to, from the
//!   agents' own headers and body fields.
//! - [`estimate`]: tokenizer estimates for exchanges without reported usage.
//! - [`sim`]: the simulated model behind the `mock` provider and mock upstream,
//!   in OpenAI's and Anthropic's formats.
//! - `fuzzing` (feature `fuzzing`, off by default): internals the fuzz
//!   targets under `fuzz/` drive; not part of the API.

pub mod catalog;
pub mod dispatch;
pub mod estimate;
pub mod price;
pub mod provider;
pub mod redact;
pub mod relay;
pub mod route;
pub mod session;
pub mod sim;
pub mod translate;
pub mod usage;
pub mod wire;

/// Internals the fuzz targets (`fuzz/` at the repository root) drive
/// directly. Only with the `fuzzing` feature; not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// The SSE framer the stream relay splits upstream bodies with.
    pub use crate::relay::frame::{fields, Fields, Framer, NotText, Oversized, MAX_EVENT_BYTES};

    /// Reads one event's data with the relay's hand-written view readers
    /// and with `serde_json`; panics where a reader accepts what
    /// `serde_json` refuses or reads it differently.
    pub fn check_event_readers(data: &str) {
        crate::relay::check_readers(data);
    }

    /// Decodes an upstream body's HTTP framing (see
    /// `provider::h1::fuzz_decode`): what came out, whether the body
    /// ended, and the error that stopped it.
    pub fn decode_upstream_body(selector: u8, pieces: &[&[u8]]) -> (Vec<u8>, bool, Option<String>) {
        crate::provider::h1::fuzz_decode(selector, pieces)
    }
}

pub use catalog::{Catalog, ModelEntry};
pub use provider::{Operation, Provider, ProviderError, Timeouts};
pub use usage::{Usage, UsageSource};
