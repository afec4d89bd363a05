//! Configuration: TOML with `${ENV}` expansion, unknown keys rejected, and
//! validation that names the file, the key and the problem.
//!
//! The file is read into [`raw`] structs, then validated into [`Config`],
//! the runtime type the rest of the gateway uses.

mod env;
mod metering;
mod metrics;
mod raw;
mod redis;
mod routes;
mod secret;
mod server;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use router::sim::{SimConfig, UsageShape};
use router::Timeouts;

pub use metering::{
    BillingConfig, DatabaseConfig, LedgerConfig, DEFAULT_DATABASE_URL, DEFAULT_SPOOL_DIR,
};
pub use metrics::MetricsConfig;
pub use redis::RedisConfig;
pub use secret::Secret;
pub use server::{
    ConnectionLimits, RequestBytes, ServerConfig, DEFAULT_BODY_READ_TIMEOUT,
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_LISTEN, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_SHUTDOWN_GRACE, DEFAULT_WRITE_TIMEOUT,
};

use raw::{RawConfig, RawProvider, RawTimeouts};

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The HTTP server.
    pub server: ServerConfig,
    /// Upstreams by name.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Client-facing model names.
    pub models: BTreeMap<String, ModelConfig>,
    /// Where tenancy and the ledger live.
    pub database: DatabaseConfig,
    /// How ledger rows reach the database.
    pub ledger: LedgerConfig,
    /// Prices and keys.
    pub billing: BillingConfig,
    /// Routes: names that choose among models.
    pub routes: BTreeMap<String, RouteConfig>,
    /// Circuit breakers.
    pub breaker: router::route::BreakerPolicy,
    /// How long a session's candidate on a route is remembered after its
    /// last answer there (`router.affinity_idle`).
    pub affinity_idle: std::time::Duration,
    /// Budgets and rate limits.
    pub quotas: QuotasConfig,
    /// Where budgets and rate limits are counted when several replicas
    /// share them; `None` counts them in this process.
    pub redis: Option<RedisConfig>,
    /// What `/metrics` labels per-team series with.
    pub metrics: MetricsConfig,
}

/// `[quotas]`.
#[derive(Debug, Clone)]
pub struct QuotasConfig {
    /// Fractions of a budget's limit at which an alert is raised once per
    /// period (metric, log line, webhook).
    pub alert_thresholds: Vec<f64>,
    /// Where alerts are POSTed as JSON, if anywhere. A secret: webhook URLs
    /// often carry their token in the path.
    pub alert_webhook: Option<Secret>,
    /// Output tokens a stream under a hard budget reserves each time it
    /// outruns its reservation; a budget with no room for one more step
    /// ends the stream.
    pub stream_step_tokens: u64,
}

impl Default for QuotasConfig {
    fn default() -> Self {
        Self {
            alert_thresholds: vec![0.8, 1.0],
            alert_webhook: None,
            stream_step_tokens: 1024,
        }
    }
}

pub use routes::RouteConfig;

/// `[providers.NAME]`.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// What kind of upstream, with its settings.
    pub kind: ProviderKind,
    /// Upstream timeouts.
    pub timeouts: Timeouts,
}

/// A provider's kind and kind-specific settings.
#[derive(Debug, Clone)]
pub enum ProviderKind {
    /// An OpenAI-compatible HTTP upstream.
    OpenAi {
        /// Joined with `/chat/completions` and `/embeddings`.
        base_url: String,
        /// Sent as `Authorization: Bearer`.
        api_key: Option<Secret>,
        /// Whether it serves the Responses API at `/responses` too.
        responses: bool,
    },
    /// An Anthropic Messages upstream (Anthropic, or a vendor's
    /// Anthropic-compatible endpoint).
    Anthropic {
        /// Joined with `/v1/messages`.
        base_url: String,
        /// Sent as `x-api-key`, or as `Authorization: Bearer`.
        api_key: Option<Secret>,
        /// How the key is sent.
        auth: router::provider::AnthropicAuth,
    },
    /// The in-process simulated model.
    Mock(SimConfig),
}

/// `[models."NAME"]`.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The provider that serves it.
    pub provider: String,
    /// The name sent upstream.
    pub upstream_model: String,
    /// The most output tokens the model can produce: fills Anthropic's
    /// required `max_tokens` when an OpenAI client sent none.
    pub max_output_tokens: u64,
    /// Prompt and output tokens together.
    pub context_window: u64,
    /// What the model can do.
    pub capabilities: router::catalog::Capabilities,
    /// Its price; `None` when none is known (the default price is charged).
    pub price: Option<router::price::Price>,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key (`providers.kimi.base_url`), empty for the whole file.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

/// A config file that cannot be used, with every problem found in it.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// What is wrong, key by key.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {} problem{}",
            self.file,
            n,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            if p.key.is_empty() {
                write!(f, "\n  {}: {}", self.file, p.problem)?;
            } else {
                write!(f, "\n  {}: {}: {}", self.file, p.key, p.problem)?;
            }
        }
        Ok(())
    }
}

/// A URL with any `user:password@` replaced, for messages.
fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        (None, Some(at)) => format!("***@{}", &url[at + 1..]),
        _ => url.to_owned(),
    }
}

pub(crate) struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    pub(crate) fn fail(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            problem: problem.into(),
        });
    }

    pub(crate) fn duration(
        &mut self,
        key: String,
        value: Option<&str>,
        default: Duration,
    ) -> Duration {
        self.duration_from(key, value, default, false)
    }

    fn duration_from(
        &mut self,
        key: String,
        value: Option<&str>,
        default: Duration,
        zero_ok: bool,
    ) -> Duration {
        let Some(text) = value else { return default };
        match humantime::parse_duration(text) {
            Ok(d) if zero_ok || !d.is_zero() => d,
            Ok(_) => {
                self.fail(key, "must be longer than zero");
                default
            }
            Err(e) => {
                self.fail(
                    key,
                    format!(
                        "'{text}' is not a duration ({e}); write e.g. \"500ms\", \"30s\" or \"5m\""
                    ),
                );
                default
            }
        }
    }

    fn timeouts(&mut self, prefix: &str, raw: &RawTimeouts) -> Timeouts {
        let d = Timeouts::default();
        let key = |k: &str| format!("{prefix}.timeouts.{k}");
        let t = Timeouts {
            connect: self.duration(key("connect"), raw.connect.as_deref(), d.connect),
            first_byte: self.duration(key("first_byte"), raw.first_byte.as_deref(), d.first_byte),
            idle: self.duration(key("idle"), raw.idle.as_deref(), d.idle),
            total: self.duration(key("total"), raw.total.as_deref(), d.total),
        };
        if t.first_byte > t.total {
            self.fail(key("first_byte"), "is longer than timeouts.total");
        }
        t
    }

    fn provider(&mut self, name: &str, raw: &RawProvider) -> Option<ProviderConfig> {
        let prefix = format!("providers.{name}");
        let timeouts = self.timeouts(&prefix, &raw.timeouts);
        let mock_keys = [
            ("latency", raw.latency.is_some()),
            ("ttft", raw.ttft.is_some()),
            ("tokens_per_second", raw.tokens_per_second.is_some()),
            ("output_tokens", raw.output_tokens.is_some()),
            ("reasoning_tokens", raw.reasoning_tokens.is_some()),
            ("cached_tokens", raw.cached_tokens.is_some()),
            ("cache_write_tokens", raw.cache_write_tokens.is_some()),
            ("usage_shape", raw.usage_shape.is_some()),
            ("embedding_dims", raw.embedding_dims.is_some()),
            ("prefix_cache", raw.prefix_cache.is_some()),
        ];
        let openai_keys = [
            ("base_url", raw.base_url.is_some()),
            ("api_key", raw.api_key.is_some()),
            ("auth", raw.auth.is_some()),
            ("responses", raw.responses.is_some()),
        ];
        let reject = |this: &mut Self, keys: &[(&str, bool)], kind: &str| {
            for (k, set) in keys {
                if *set {
                    this.fail(
                        format!("{prefix}.{k}"),
                        format!("is not a setting of kind \"{kind}\""),
                    );
                }
            }
        };
        let kind = match raw.kind.as_str() {
            kind @ ("openai" | "anthropic") => {
                reject(self, &mock_keys, kind);
                if kind == "openai" {
                    reject(self, &openai_keys[2..3], kind);
                } else {
                    reject(self, &openai_keys[3..], kind);
                }
                let base_url = match raw.base_url.as_deref().map(str::trim) {
                    None | Some("") => {
                        self.fail(
                            format!("{prefix}.base_url"),
                            format!("is required for kind \"{kind}\""),
                        );
                        return None;
                    }
                    Some(u)
                        if !(u.starts_with("http://") || u.starts_with("https://"))
                            || u.contains(char::is_whitespace) =>
                    {
                        self.fail(
                            format!("{prefix}.base_url"),
                            format!("'{}' is not an http:// or https:// URL", redact_userinfo(u)),
                        );
                        return None;
                    }
                    Some(u) => u.trim_end_matches('/').to_owned(),
                };
                let api_key = raw
                    .api_key
                    .as_deref()
                    .filter(|k| !k.is_empty())
                    .map(Secret::new);
                if kind == "openai" {
                    ProviderKind::OpenAi {
                        base_url,
                        api_key,
                        responses: raw.responses.unwrap_or(false),
                    }
                } else {
                    let auth = match raw.auth.as_deref() {
                        None | Some("x-api-key") => router::provider::AnthropicAuth::ApiKey,
                        Some("bearer") => router::provider::AnthropicAuth::Bearer,
                        Some(other) => {
                            self.fail(
                                format!("{prefix}.auth"),
                                format!("'{other}' is not \"x-api-key\" or \"bearer\""),
                            );
                            router::provider::AnthropicAuth::ApiKey
                        }
                    };
                    ProviderKind::Anthropic {
                        base_url,
                        api_key,
                        auth,
                    }
                }
            }
            "mock" => {
                reject(self, &openai_keys, "mock");
                let d = SimConfig::default();
                let usage_shape = match raw.usage_shape.as_deref() {
                    None => d.usage_shape,
                    Some(s) => UsageShape::parse(s).unwrap_or_else(|| {
                        self.fail(
                            format!("{prefix}.usage_shape"),
                            format!(
                                "'{s}' is not one of openai, glm, kimi, deepseek, minimax, none"
                            ),
                        );
                        d.usage_shape
                    }),
                };
                let tps = raw.tokens_per_second.unwrap_or(d.tokens_per_second);
                if !tps.is_finite() || tps < 0.0 {
                    self.fail(
                        format!("{prefix}.tokens_per_second"),
                        "must be 0 (unpaced) or a positive number",
                    );
                }
                let latency = self.duration_from(
                    format!("{prefix}.latency"),
                    raw.latency.as_deref(),
                    d.latency,
                    true,
                );
                let ttft =
                    self.duration_from(format!("{prefix}.ttft"), raw.ttft.as_deref(), d.ttft, true);
                ProviderKind::Mock(SimConfig {
                    latency,
                    ttft,
                    tokens_per_second: tps,
                    output_tokens: raw.output_tokens.unwrap_or(d.output_tokens),
                    reasoning_tokens: raw.reasoning_tokens.unwrap_or(d.reasoning_tokens),
                    cached_tokens: raw.cached_tokens.unwrap_or(d.cached_tokens),
                    cache_write_tokens: raw.cache_write_tokens.unwrap_or(d.cache_write_tokens),
                    usage_shape,
                    embedding_dims: raw
                        .embedding_dims
                        .map(|n| n as usize)
                        .unwrap_or(d.embedding_dims),
                    ignore_max_tokens: false,
                    prefix_cache: raw.prefix_cache.unwrap_or(d.prefix_cache),
                })
            }
            other => {
                self.fail(
                    format!("{prefix}.kind"),
                    format!("'{other}' is not a provider kind; use \"openai\", \"anthropic\" or \"mock\""),
                );
                return None;
            }
        };
        Some(ProviderConfig { kind, timeouts })
    }
}

fn from_raw(
    raw: RawConfig,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let server = server::server(&mut c, &raw.server);
    let providers: BTreeMap<String, ProviderConfig> = raw
        .providers
        .iter()
        .filter_map(|(name, p)| Some((name.clone(), c.provider(name, p)?)))
        .collect();
    let mut models = BTreeMap::new();
    for (name, m) in raw.models {
        if name.trim().is_empty() {
            c.fail("models", "a model name must not be empty");
            continue;
        }
        if !raw.providers.contains_key(&m.provider) {
            let known: Vec<&str> = raw.providers.keys().map(String::as_str).collect();
            c.fail(
                format!("models.\"{name}\".provider"),
                format!(
                    "no provider named '{}' (configured: {})",
                    m.provider,
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            );
            continue;
        }
        let upstream_model = m.upstream_model.clone().unwrap_or_else(|| name.clone());
        let price = c.model_price(&name, &upstream_model, &m);
        if m.max_output_tokens == Some(0) {
            c.fail(
                format!("models.\"{name}\".max_output_tokens"),
                "must be a positive number of tokens",
            );
        }
        let facts = router::catalog::model_facts(&upstream_model);
        let max_output_tokens = m.max_output_tokens.unwrap_or(facts.max_output_tokens);
        if m.context_window == Some(0) {
            c.fail(
                format!("models.\"{name}\".context_window"),
                "must be a positive number of tokens",
            );
        }
        let context_window = m.context_window.unwrap_or(facts.context_window);
        let capabilities = match &m.capabilities {
            None => facts.capabilities,
            Some(names) => router::catalog::Capabilities::parse(names.iter().map(String::as_str))
                .unwrap_or_else(|bad| {
                    c.fail(
                        format!("models.\"{name}\".capabilities"),
                        format!(
                            "'{bad}' is not a capability; use {}",
                            router::catalog::Capabilities::NAMES.join(", ")
                        ),
                    );
                    facts.capabilities
                }),
        };
        models.insert(
            name,
            ModelConfig {
                provider: m.provider,
                upstream_model,
                max_output_tokens,
                context_window,
                capabilities,
                price,
            },
        );
    }
    let routes = routes::routes(&mut c, &raw.routes, &models);
    let breaker = routes::breaker(&mut c, &raw.router);
    let affinity_idle = routes::affinity_idle(&mut c, &raw.router);
    let database = c.database(&raw.database, lookup);
    let ledger = c.ledger(&raw.ledger, &database);
    let billing = c.billing(&raw.billing);
    let quotas = quotas(&mut c, &raw.quotas);
    let redis = redis::redis(&mut c, &raw.redis);
    if c.problems.is_empty() {
        Ok(Config {
            server,
            providers,
            models,
            database,
            ledger,
            billing,
            routes,
            breaker,
            affinity_idle,
            quotas,
            redis,
            metrics: MetricsConfig::from_raw(&raw.metrics),
        })
    } else {
        Err(ConfigError {
            file: file.to_owned(),
            problems: c.problems,
        })
    }
}

fn quotas(c: &mut Checker, raw: &raw::RawQuotas) -> QuotasConfig {
    let d = QuotasConfig::default();
    let thresholds = raw.alert_thresholds.clone().unwrap_or(d.alert_thresholds);
    if thresholds
        .iter()
        .any(|t| !(t.is_finite() && *t > 0.0 && *t <= 10.0))
    {
        c.fail(
            "quotas.alert_thresholds",
            "each must be above 0 and at most 10 (1.0 is the limit)",
        );
    }
    let webhook = raw.alert_webhook.clone();
    if let Some(url) = &webhook {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            c.fail("quotas.alert_webhook", "must be an http:// or https:// URL");
        }
    }
    let step = raw.stream_step_tokens.unwrap_or(d.stream_step_tokens);
    if !(1..=1_000_000).contains(&step) {
        c.fail(
            "quotas.stream_step_tokens",
            "must be from 1 to 1000000 (output tokens)",
        );
    }
    QuotasConfig {
        alert_thresholds: thresholds,
        alert_webhook: webhook.map(Secret::new),
        stream_step_tokens: step,
    }
}

impl Config {
    /// Reads and validates a config file, expanding `${VAR}` from the process
    /// environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            problems: vec![Problem {
                key: String::new(),
                problem: format!("cannot read the file: {e}"),
            }],
        })?;
        Self::parse(&text, &file, &|name| std::env::var(name).ok())
    }

    /// Parses and validates config text. `file` names it in errors; `lookup`
    /// reads environment variables.
    pub fn parse(
        text: &str,
        file: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let whole = |problem: String| ConfigError {
            file: file.to_owned(),
            problems: vec![Problem {
                key: String::new(),
                problem,
            }],
        };
        let table: toml::Table =
            toml::from_str(text).map_err(|e| whole(e.to_string().trim_end().to_owned()))?;
        let as_written = toml::Value::Table(table);
        let mut tree = as_written.clone();
        let mut problems = Vec::new();
        env::expand_tree(&mut tree, &mut Vec::new(), lookup, &mut problems);
        if !problems.is_empty() {
            return Err(ConfigError {
                file: file.to_owned(),
                problems: problems
                    .into_iter()
                    .map(|(key, problem)| Problem { key, problem })
                    .collect(),
            });
        }
        let raw: RawConfig = match serde_path_to_error::deserialize(tree) {
            Ok(raw) => raw,
            Err(e) => {
                let key = e.path().to_string().replace('?', "");
                // Serde quotes the offending value. Describe the error as the
                // file has it, so a value expanded from the environment (a
                // secret, perhaps) is never echoed.
                let problem = match serde_path_to_error::deserialize::<_, RawConfig>(as_written) {
                    Err(w) if w.path().to_string().replace('?', "") == key => w.inner().to_string(),
                    _ => "has the wrong type for this setting".to_owned(),
                };
                return Err(ConfigError {
                    file: file.to_owned(),
                    problems: vec![Problem { key, problem }],
                });
            }
        };
        from_raw(raw, file, lookup)
    }
}

#[cfg(test)]
mod tests;
