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
    /// `openai` or `anthropic`.
    pub client_format: String,
    /// `chat_completions`, `embeddings` or `messages`.
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
    /// The route the client asked for (a plain model's own name).
    #[serde(default)]
    pub route: String,
    /// Which attempt at the client's request this row is, from 1.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// The id the client was given; every attempt at one request shares it
    /// (`None`: the row's own id).
    #[serde(default)]
    pub client_request_id: Option<Uuid>,
    /// The route's reference model and what this usage would have cost on
    /// it, when the route names one.
    #[serde(default)]
    pub reference_model: Option<String>,
    #[serde(default)]
    pub reference_cost_picousd: Option<i64>,
    /// The agent session the request belongs to, when it named one (see
    /// `router::session`): bounded, printable, never a credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

fn first_attempt() -> u32 {
    1
}

impl LedgerRow {
    /// The cost as money.
    pub fn cost(&self) -> Picodollars {
        Picodollars(self.cost_picousd)
    }

    /// What the request would have cost on the reference model; the actual
    /// cost when there is none, so savings are zero there.
    pub fn reference_cost(&self) -> Picodollars {
        Picodollars(self.reference_cost_picousd.unwrap_or(self.cost_picousd))
    }

    /// The id the client was given.
    pub fn client_request_id(&self) -> Uuid {
        self.client_request_id.unwrap_or(self.request_id)
    }

    /// The route, or the model for rows written before routes existed.
    pub fn route(&self) -> &str {
        if self.route.is_empty() {
            &self.requested_model
        } else {
            &self.route
        }
    }

    /// The start of the UTC hour the request started in, ms.
    pub fn hour_ms(&self) -> i64 {
        self.started_at_ms.div_euclid(3_600_000) * 3_600_000
    }
}
