//! Validation of the billing settings: `[database]`, `[ledger]`,
//! `[billing]`, and each model's price.

use std::path::PathBuf;
use std::time::Duration;

use router::price::{self, Price, Rates, Tier};

use super::raw::{RawBilling, RawDatabase, RawLedger, RawModel, RawRates};
use super::{Checker, Secret};

/// The embedded default database, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tollgate.db";
/// The default spool directory.
pub const DEFAULT_SPOOL_DIR: &str = "tollgate-spool";

/// `[database]`.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `postgres://...` or `sqlite://...`; may hold a password.
    pub url: Secret,
}

/// `[ledger]`.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Where rows wait for the database.
    pub spool_dir: PathBuf,
    /// Most rows per insert.
    pub batch_rows: usize,
    /// How long rows may wait for a batch to fill.
    pub flush_interval: Duration,
    /// Past this many unwritten spool bytes, new requests are refused (503)
    /// rather than served unbilled.
    pub max_backlog_bytes: u64,
    /// Postgres only: drop the raw rows of months older than this many
    /// months before the current one (the hourly rollup keeps them);
    /// `None` keeps every month.
    pub retention_months: Option<u32>,
}

/// `[billing]`.
#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// Charged for models with no known price (never free).
    pub default_price: Price,
    /// How often each replica polls for changed keys.
    pub key_refresh_interval: Duration,
}

/// The default price for models Tollgate has no price for: a frontier
/// model's list price, so an unknown model is over- rather than undercharged.
pub fn fallback_rates() -> Rates {
    Rates {
        input: 3_000_000,
        cached_input: 300_000,
        cache_write: 3_750_000,
        output: 15_000_000,
    }
}

impl Checker {
    pub(super) fn database(
        &mut self,
        raw: &RawDatabase,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> DatabaseConfig {
        let url = raw
            .url
            .clone()
            .or_else(|| lookup("DATABASE_URL").filter(|u| !u.is_empty()))
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if billing::db::backend_of(&url).is_err() {
            self.fail(
                "database.url",
                "must start with postgres://, postgresql:// or sqlite:",
            );
        }
        DatabaseConfig {
            url: Secret::new(url),
        }
    }

    pub(super) fn ledger(&mut self, raw: &RawLedger, database: &DatabaseConfig) -> LedgerConfig {
        let d = billing::ledger::WriterConfig::default();
        let batch_rows = raw.batch_rows.unwrap_or(d.batch_rows);
        if !(1..=2000).contains(&batch_rows) {
            self.fail("ledger.batch_rows", "must be between 1 and 2000");
        }
        match raw.retention_months {
            Some(0) => self.fail(
                "ledger.retention_months",
                "must be at least 1 (leave it out to keep every month)",
            ),
            Some(_)
                if matches!(
                    billing::db::backend_of(database.url.expose()),
                    Ok(billing::Backend::Sqlite)
                ) =>
            {
                self.fail(
                    "ledger.retention_months",
                    "needs Postgres: the SQLite ledger is one table with no monthly partitions to drop (leave it out)",
                )
            }
            _ => {}
        }
        LedgerConfig {
            spool_dir: PathBuf::from(raw.spool_dir.as_deref().unwrap_or(DEFAULT_SPOOL_DIR)),
            batch_rows: batch_rows.clamp(1, 2000),
            flush_interval: self.duration(
                "ledger.flush_interval".into(),
                raw.flush_interval.as_deref(),
                d.flush_interval,
            ),
            max_backlog_bytes: raw.max_backlog_bytes.unwrap_or(1024 * 1024 * 1024),
            retention_months: raw.retention_months,
        }
    }

    pub(super) fn billing(&mut self, raw: &RawBilling) -> BillingConfig {
        let default_price = match &raw.default_price {
            None => Price::flat(fallback_rates()),
            Some(r) => Price::flat(
                self.rates("billing.default_price", r, None)
                    .unwrap_or_else(fallback_rates),
            ),
        };
        BillingConfig {
            default_price,
            key_refresh_interval: self.duration(
                "billing.key_refresh_interval".into(),
                raw.key_refresh_interval.as_deref(),
                Duration::from_millis(250),
            ),
        }
    }

    fn usd(&mut self, key: String, v: Option<f64>) -> Option<u64> {
        let v = v?;
        let micros = price::usd_per_mtok(v);
        if micros.is_none() {
            self.fail(key, format!("{v} is not a price in USD per million tokens"));
        }
        micros
    }

    /// Rates from config fields over `base`. Without a base, input and output
    /// are required; cached input and cache writes default to the input price.
    fn rates(&mut self, prefix: &str, raw: &RawRates, base: Option<Rates>) -> Option<Rates> {
        let input = self.usd(format!("{prefix}.input_per_mtok"), raw.input_per_mtok);
        let cached = self.usd(
            format!("{prefix}.cached_input_per_mtok"),
            raw.cached_input_per_mtok,
        );
        let write = self.usd(
            format!("{prefix}.cache_write_per_mtok"),
            raw.cache_write_per_mtok,
        );
        let output = self.usd(format!("{prefix}.output_per_mtok"), raw.output_per_mtok);
        match base {
            Some(b) => Some(Rates {
                input: input.unwrap_or(b.input),
                cached_input: cached.unwrap_or(b.cached_input),
                cache_write: write.unwrap_or(b.cache_write),
                output: output.unwrap_or(b.output),
            }),
            None => {
                let (Some(input), Some(output)) = (input, output) else {
                    let missing = if input.is_none() {
                        "input_per_mtok"
                    } else {
                        "output_per_mtok"
                    };
                    self.fail(
                        format!("{prefix}.{missing}"),
                        "is required: Tollgate has no built-in price for this model",
                    );
                    return None;
                };
                Some(Rates {
                    input,
                    cached_input: cached.unwrap_or(input),
                    cache_write: write.unwrap_or(input),
                    output,
                })
            }
        }
    }

    /// A model's price: the built-in one for its upstream (or own) name, with
    /// any price fields of its config over it. `None`: no price is known.
    pub(super) fn model_price(
        &mut self,
        name: &str,
        upstream: &str,
        raw: &RawModel,
    ) -> Option<Price> {
        let prefix = format!("models.\"{name}\"");
        let builtin = price::builtin(upstream).or_else(|| price::builtin(name));
        let fields = raw.rates();
        let any_field = fields.input_per_mtok.is_some()
            || fields.cached_input_per_mtok.is_some()
            || fields.cache_write_per_mtok.is_some()
            || fields.output_per_mtok.is_some();
        let mut price = match (any_field, builtin) {
            (false, builtin) => builtin,
            (true, builtin) => {
                let base = self.rates(&prefix, &fields, builtin.as_ref().map(|b| b.base))?;
                Some(Price {
                    base,
                    tiers: builtin.map(|b| b.tiers).unwrap_or_default(),
                })
            }
        };
        if let Some(tiers) = &raw.tiers {
            let Some(p) = price.as_mut() else {
                self.fail(
                    format!("{prefix}.tiers"),
                    "needs a base price (input_per_mtok and output_per_mtok)",
                );
                return None;
            };
            let mut out: Vec<Tier> = Vec::new();
            for (i, t) in tiers.iter().enumerate() {
                let rates =
                    self.rates(&format!("{prefix}.tiers[{i}]"), &t.rates(), Some(p.base))?;
                if out
                    .last()
                    .is_some_and(|prev| prev.above_input_tokens >= t.above_input_tokens)
                {
                    self.fail(
                        format!("{prefix}.tiers[{i}].above_input_tokens"),
                        "tiers must be in ascending order",
                    );
                }
                out.push(Tier {
                    above_input_tokens: t.above_input_tokens,
                    rates,
                });
            }
            p.tiers = out;
        }
        price
    }
}
