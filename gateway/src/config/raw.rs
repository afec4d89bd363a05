//! The config file as written: every table rejects unknown keys. Validation
//! into the runtime [`Config`](super::Config) happens in `super`.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub models: BTreeMap<String, RawModel>,
    #[serde(default)]
    pub database: RawDatabase,
    #[serde(default)]
    pub ledger: RawLedger,
    #[serde(default)]
    pub billing: RawBilling,
    #[serde(default)]
    pub routes: BTreeMap<String, RawRoute>,
    #[serde(default)]
    pub router: RawRouter,
    #[serde(default)]
    pub quotas: RawQuotas,
    #[serde(default)]
    pub redis: RawRedis,
    #[serde(default)]
    pub metrics: RawMetrics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub per_key: Option<bool>,
    pub token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    pub url: Option<String>,
    pub mode: Option<String>,
    pub prefix: Option<String>,
    pub on_failure: Option<String>,
    pub timeout: Option<String>,
    pub lease: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuotas {
    pub alert_thresholds: Option<Vec<f64>>,
    pub alert_webhook: Option<String>,
    pub stream_step_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub candidates: Vec<String>,
    pub strategy: Option<String>,
    pub weights: Option<Vec<u32>>,
    pub max_attempts: Option<usize>,
    pub max_time: Option<String>,
    pub reference_model: Option<String>,
    pub low_budget: Option<RawLowBudget>,
    pub affinity: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLowBudget {
    pub below: f64,
    pub candidates: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouter {
    pub breaker_failures: Option<u32>,
    pub breaker_cooldown: Option<String>,
    pub affinity_idle: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLedger {
    pub spool_dir: Option<String>,
    pub batch_rows: Option<usize>,
    pub flush_interval: Option<String>,
    pub max_backlog_bytes: Option<u64>,
    pub retention_months: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBilling {
    pub default_price: Option<RawRates>,
    pub key_refresh_interval: Option<String>,
}

/// Prices in USD per million tokens.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRates {
    pub input_per_mtok: Option<f64>,
    pub cached_input_per_mtok: Option<f64>,
    pub cache_write_per_mtok: Option<f64>,
    pub output_per_mtok: Option<f64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    pub above_input_tokens: u64,
    pub input_per_mtok: Option<f64>,
    pub cached_input_per_mtok: Option<f64>,
    pub cache_write_per_mtok: Option<f64>,
    pub output_per_mtok: Option<f64>,
}

impl RawTier {
    /// The tier's price fields.
    pub fn rates(&self) -> RawRates {
        RawRates {
            input_per_mtok: self.input_per_mtok,
            cached_input_per_mtok: self.cached_input_per_mtok,
            cache_write_per_mtok: self.cache_write_per_mtok,
            output_per_mtok: self.output_per_mtok,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub master_key: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub shutdown_grace: Option<String>,
    pub header_read_timeout: Option<String>,
    pub body_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub write_timeout: Option<String>,
    pub max_connections: Option<u64>,
    pub max_request_bytes_in_flight: Option<u64>,
    pub request_bytes_wait: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<String>,
    pub first_byte: Option<String>,
    pub idle: Option<String>,
    pub total: Option<String>,
}

/// One provider. Which keys apply depends on `kind`; the rest are rejected
/// during validation with a message naming the kind.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub kind: String,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    // kind = "openai"
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub responses: Option<bool>,
    // kind = "anthropic"
    pub auth: Option<String>,
    // kind = "mock"
    pub latency: Option<String>,
    pub ttft: Option<String>,
    pub tokens_per_second: Option<f64>,
    pub output_tokens: Option<u32>,
    pub reasoning_tokens: Option<u32>,
    pub cached_tokens: Option<u32>,
    pub cache_write_tokens: Option<u32>,
    pub usage_shape: Option<String>,
    pub embedding_dims: Option<u32>,
    pub prefix_cache: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub provider: String,
    pub upstream_model: Option<String>,
    pub max_output_tokens: Option<u64>,
    pub context_window: Option<u64>,
    pub capabilities: Option<Vec<String>>,
    pub input_per_mtok: Option<f64>,
    pub cached_input_per_mtok: Option<f64>,
    pub cache_write_per_mtok: Option<f64>,
    pub output_per_mtok: Option<f64>,
    pub tiers: Option<Vec<RawTier>>,
}

impl RawModel {
    /// The model's own price fields.
    pub fn rates(&self) -> RawRates {
        RawRates {
            input_per_mtok: self.input_per_mtok,
            cached_input_per_mtok: self.cached_input_per_mtok,
            cache_write_per_mtok: self.cache_write_per_mtok,
            output_per_mtok: self.output_per_mtok,
        }
    }
}
