//! One ledger row.

use router::Usage;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::Picodollars;

/// One request, as billed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRow {
    /// The request id (UUIDv7): unique, and what makes replays idempotent.
    pub request_id: Uuid,
    /// When the request started, ms since the epoch.
    pub started_at_ms: i64,
    /// The caller's organization, team and key; `None` for the master key.
    pub org_id: Option<String>,
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    /// `openai` (later `anthropic`).
    pub client_format: String,
    /// `chat_completions` or `embeddings`.
    pub endpoint: String,
    pub requested_model: String,
    pub provider: String,
    pub upstream_model: String,
    /// The HTTP status the client got.
    pub status: u16,
    /// How the exchange ended (`complete`, `client_disconnected`, ...).
    pub outcome: String,
    pub usage: Usage,
    /// What it cost, in picodollars.
    pub cost_picousd: i64,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub stream: bool,
    /// Whether the usage was counted by Tollgate's tokenizer.
    pub usage_estimated: bool,
    /// Whether the model had a known price (else the default price was charged).
    pub priced: bool,
}

impl LedgerRow {
    /// The cost as money.
    pub fn cost(&self) -> Picodollars {
        Picodollars(self.cost_picousd)
    }

    /// The start of the UTC hour the request started in, ms.
    pub fn hour_ms(&self) -> i64 {
        self.started_at_ms.div_euclid(3_600_000) * 3_600_000
    }
}
