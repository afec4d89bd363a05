//! The Responses door (`POST /v1/responses`, what Codex speaks) on every
//! backend kind: translated to chat completions, translated to Anthropic
//! Messages, and passed through to an upstream that serves the Responses API
//! itself. This file: the shared scaffolding (the three backends on one
//! mock, the ledger as the tests read it).
//!
//! # Layout
//! - `answers.rs`: whole answers, what each upstream receives, metering.
//! - `streams.rs`: event sequences, and the terminal event however a stream ends.
//! - `tools.rs`: function, custom and parallel calls; reasoning round trips.
//! - `refusals.rs`: errors in OpenAI's shape; budgets and rate limits.
//! - `routes.rs`: fallbacks across backend kinds, skips, the model list.

mod answers;
mod refusals;
mod routes;
mod streams;
mod tools;

use loadtest::mock::{Faults, MockHandle, MockOptions};
use router::sim::{self, Plan, SimConfig};
use router::{Usage, UsageSource};
use serde_json::{json, Map, Value};
use sqlx::Row as _;

use crate::helpers::*;

const ANTHROPIC_KEY: &str = "sk-ant-provider-secret";
const OPENAI_KEY: &str = "sk-oai-provider-secret";

/// The three ways a Responses request is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// An openai-kind provider: translated to chat completions.
    Chat,
    /// An anthropic-kind provider: translated to Messages.
    Anthropic,
    /// An openai-kind provider with `responses = true`: passed through.
    Pass,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Self::Chat, Self::Anthropic, Self::Pass];

    /// The configured model that reaches it.
    pub fn model(self) -> &'static str {
        match self {
            Self::Chat => "gpt-chat",
            Self::Anthropic => "claude",
            Self::Pass => "gpt-resp",
        }
    }

    pub fn provider(self) -> &'static str {
        match self {
            Self::Chat => "oai",
            Self::Anthropic => "ant",
            Self::Pass => "resp",
        }
    }

    pub fn upstream_model(self) -> &'static str {
        match self {
            Self::Chat => "up-chat",
            Self::Anthropic => "up-claude",
            Self::Pass => "up-resp",
        }
    }

    /// Where the mock is asked.
    pub fn path(self) -> &'static str {
        match self {
            Self::Chat => "/v1/chat/completions",
            Self::Anthropic => "/v1/messages",
            Self::Pass => "/v1/responses",
        }
    }

    /// The mock's own plan for the body it received.
    pub fn plan(self, received: &Value, sim: &SimConfig) -> Plan {
        match self {
            Self::Chat => sim::plan(received, sim),
            Self::Anthropic => sim::anthropic::plan(received, sim),
            Self::Pass => sim::responses::plan(received, sim),
        }
    }

    /// The usage the mock reports for `plan`, as Tollgate normalizes it.
    pub fn usage(self, plan: &Plan) -> Usage {
        let (write, reasoning) = match self {
            // Anthropic reports cache writes, and no reasoning share.
            Self::Anthropic => (plan.cache_write_tokens, 0),
            Self::Chat | Self::Pass => (0, plan.reasoning.len() as u64),
        };
        Usage {
            input: plan.prompt_tokens - plan.cached_tokens - write,
            cached_input: plan.cached_tokens,
            cache_write: write,
            output: plan.completion_tokens(),
            reasoning,
        }
    }

    /// The usage for the last request the mock received.
    pub fn mock_usage(self, mock: &MockHandle, sim: &SimConfig) -> (Usage, Plan) {
        let received = last_at(mock, self.path());
        let plan = self.plan(&received.body, sim);
        (self.usage(&plan), plan)
    }
}

/// A fast model that thinks and reads and writes the prompt cache.
pub(crate) fn thinking_sim() -> SimConfig {
    SimConfig {
        reasoning_tokens: 2,
        cached_tokens: 3,
        cache_write_tokens: 4,
        ..fast_sim()
    }
}

pub(crate) async fn mock_with(sim: SimConfig, faults: Faults) -> MockHandle {
    spawn_mock(MockOptions {
        sim,
        faults,
        ..Default::default()
    })
    .await
}

const PRICES: &str = "input_per_mtok = 3.0\ncached_input_per_mtok = 0.30\ncache_write_per_mtok = 3.75\noutput_per_mtok = 15.0\n";

/// Picodollars for `u` at [`PRICES`] (1 token at $1/Mtok is 1,000,000 pUSD).
pub(crate) fn priced(u: &Usage) -> i64 {
    (u.input * 3_000_000
        + u.cached_input * 300_000
        + u.cache_write * 3_750_000
        + u.output * 15_000_000) as i64
}

/// The three backends at `mock`, each provider with `provider_extra`.
pub(crate) fn backends(mock: &MockHandle, provider_extra: &str) -> gateway::Config {
    let mut text = format!(
        "[providers.oai]\nkind = \"openai\"\nbase_url = \"{base}\"\n{provider_extra}\n\
         [providers.ant]\nkind = \"anthropic\"\nbase_url = \"http://{addr}\"\napi_key = \"{ANTHROPIC_KEY}\"\n{provider_extra}\n\
         [providers.resp]\nkind = \"openai\"\nbase_url = \"{base}\"\napi_key = \"{OPENAI_KEY}\"\nresponses = true\n{provider_extra}\n",
        base = mock.base_url(),
        addr = mock.addr(),
    );
    for b in Backend::ALL {
        text.push_str(&format!(
            "[models.{}]\nprovider = \"{}\"\nupstream_model = \"{}\"\n{PRICES}",
            b.model(),
            b.provider(),
            b.upstream_model()
        ));
    }
    config(&text)
}

/// The last request the mock received at `path`.
pub(crate) fn last_at(mock: &MockHandle, path: &str) -> loadtest::mock::Received {
    mock.received()
        .into_iter()
        .rev()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("the mock received nothing at {path}"))
}

pub(crate) fn words(plan: &Plan) -> String {
    plan.content
        .iter()
        .map(|w| w.as_ref())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A plain Responses request for `model`.
pub(crate) fn request(model: &str, stream: bool) -> Value {
    json!({"model": model, "instructions": "Be brief.", "stream": stream, "store": false,
           "input": [{"type": "message", "role": "user",
                      "content": [{"type": "input_text", "text": "hello gateway"}]}]})
}

/// Asserts a whole answer is a Response the OpenAI client crate reads.
pub(crate) fn assert_readable(answer: &Value) {
    if let Err(e) =
        serde_json::from_value::<async_openai::types::responses::Response>(answer.clone())
    {
        panic!("not what OpenAI's clients read ({e}): {answer}");
    }
}

/// The output items of `type`.
pub(crate) fn items_of<'a>(response: &'a Value, kind: &str) -> Vec<&'a Value> {
    response["output"]
        .as_array()
        .unwrap_or_else(|| panic!("no output: {response}"))
        .iter()
        .filter(|i| i["type"] == kind)
        .collect()
}

/// The text of a response's messages.
pub(crate) fn output_text(response: &Value) -> String {
    items_of(response, "message")
        .iter()
        .flat_map(|m| m["content"].as_array().unwrap().iter())
        .filter(|p| p["type"] == "output_text")
        .map(|p| p["text"].as_str().unwrap())
        .collect()
}

/// Asserts a Responses `usage` object says `u`.
pub(crate) fn assert_usage_json(usage: &Value, u: &Usage, what: &str) {
    assert_eq!(
        usage["input_tokens"].as_u64(),
        Some(u.prompt_total()),
        "{what}: {usage}"
    );
    assert_eq!(
        usage["input_tokens_details"]["cached_tokens"].as_u64(),
        Some(u.cached_input),
        "{what}: {usage}"
    );
    assert_eq!(
        usage["output_tokens"].as_u64(),
        Some(u.output),
        "{what}: {usage}"
    );
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(u.total()),
        "{what}: {usage}"
    );
}

/// A ledger row with the columns these tests read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LedgerRow {
    pub request_id: String,
    pub client_request_id: String,
    pub client_format: String,
    pub endpoint: String,
    pub requested_model: String,
    pub provider: String,
    pub status: i64,
    pub outcome: String,
    pub stream: bool,
    pub usage: Usage,
    pub cost: i64,
    pub estimated: bool,
}

/// Waits for exactly `n` ledger rows, oldest first.
pub(crate) async fn rows(db: &billing::Db, n: usize) -> Vec<LedgerRow> {
    let mut found = Vec::new();
    eventually(&format!("{n} ledger rows"), async || {
        found = sqlx::query(
            "SELECT request_id, client_request_id, client_format, endpoint, requested_model, provider, \
             status, outcome, stream, input_tokens, cached_input_tokens, cache_write_tokens, \
             output_tokens, reasoning_tokens, cost_picousd, usage_estimated FROM ledger ORDER BY request_id",
        )
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let n = |c: &str| r.try_get::<i64, _>(c).unwrap();
            let s = |c: &str| r.try_get::<String, _>(c).unwrap();
            LedgerRow {
                request_id: s("request_id"),
                client_request_id: s("client_request_id"),
                client_format: s("client_format"),
                endpoint: s("endpoint"),
                requested_model: s("requested_model"),
                provider: s("provider"),
                status: n("status"),
                outcome: s("outcome"),
                stream: n("stream") == 1,
                usage: Usage {
                    input: n("input_tokens") as u64,
                    cached_input: n("cached_input_tokens") as u64,
                    cache_write: n("cache_write_tokens") as u64,
                    output: n("output_tokens") as u64,
                    reasoning: n("reasoning_tokens") as u64,
                },
                cost: n("cost_picousd"),
                estimated: n("usage_estimated") == 1,
            }
        })
        .collect();
        found.len() >= n
    })
    .await;
    assert_eq!(found.len(), n, "one row per attempt: {found:#?}");
    found
}

/// A fast mock that answers every request with `status`.
pub(crate) fn failing(status: u16) -> MockOptions {
    MockOptions {
        sim: fast_sim(),
        faults: Faults {
            status: Some(status),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The OpenAI error object of a refusal, asserting OpenAI's shape.
pub(crate) async fn openai_error(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status(), status);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body.get("type").is_none(),
        "OpenAI's shape, not Anthropic's: {body}"
    );
    let err = body["error"].clone();
    assert!(err["message"].is_string(), "{body}");
    assert!(err["type"].is_string(), "{body}");
    err
}
