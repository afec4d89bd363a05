//! `tollgate check-config`: the resolved configuration as text, secrets redacted.

use std::fmt::Write as _;

use crate::config::{Config, ProviderKind};

/// Rates as USD per million tokens.
fn rates(r: &router::price::Rates) -> String {
    let usd = |m: u64| m as f64 / 1e6;
    format!(
        "in ${} cached ${} write ${} out ${} per Mtok",
        usd(r.input),
        usd(r.cached_input),
        usd(r.cache_write),
        usd(r.output)
    )
}

fn secs(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Describes a validated config for a person to read. Never prints a secret.
pub fn describe(config: &Config) -> String {
    let mut out = String::new();
    let s = &config.server;
    let _ = writeln!(out, "server");
    let _ = writeln!(out, "  listen          {}", s.listen);
    let _ = writeln!(out, "  master_key      {} (redacted)", s.master_key);
    if let Some(why) = &s.weak_master_key {
        let _ = writeln!(
            out,
            "  WARNING         {why}; allowed only because {} is a loopback address",
            s.listen
        );
    }
    let _ = writeln!(out, "  max_body_bytes  {}", s.max_body_bytes);
    let _ = writeln!(out, "  shutdown_grace  {}", secs(s.shutdown_grace));
    let c = &s.connections;
    let _ = writeln!(
        out,
        "  connections     max {}; timeouts: header_read={} body_read={} idle={} write={}",
        c.max_connections,
        secs(c.header_read_timeout),
        secs(c.body_read_timeout),
        secs(c.idle_timeout),
        secs(c.write_timeout)
    );
    let _ = writeln!(
        out,
        "  request bytes   at most {} in flight; wait {} for room",
        s.request_bytes.max_in_flight,
        secs(s.request_bytes.wait)
    );
    let _ = writeln!(out, "providers ({})", config.providers.len());
    for (name, p) in &config.providers {
        let t = &p.timeouts;
        match &p.kind {
            ProviderKind::OpenAi {
                base_url,
                api_key,
                responses,
            } => {
                let key = if api_key.is_some() {
                    "*** (set)"
                } else {
                    "none"
                };
                let _ = writeln!(
                    out,
                    "  {name}: kind=openai base_url={base_url} api_key={key} responses={responses}"
                );
            }
            ProviderKind::Anthropic {
                base_url,
                api_key,
                auth,
            } => {
                let key = if api_key.is_some() {
                    "*** (set)"
                } else {
                    "none"
                };
                let auth = match auth {
                    router::provider::AnthropicAuth::ApiKey => "x-api-key",
                    router::provider::AnthropicAuth::Bearer => "bearer",
                };
                let _ = writeln!(
                    out,
                    "  {name}: kind=anthropic base_url={base_url} api_key={key} auth={auth}"
                );
            }
            ProviderKind::Mock(sim) => {
                let _ = writeln!(
                    out,
                    "  {name}: kind=mock latency={} ttft={} tokens_per_second={} output_tokens={} reasoning_tokens={} cached_tokens={} usage_shape={}",
                    secs(sim.latency), secs(sim.ttft), sim.tokens_per_second, sim.output_tokens,
                    sim.reasoning_tokens, sim.cached_tokens, sim.usage_shape.name()
                );
            }
        }
        let _ = writeln!(
            out,
            "    timeouts: connect={} first_byte={} idle={} total={}",
            secs(t.connect),
            secs(t.first_byte),
            secs(t.idle),
            secs(t.total)
        );
    }
    let _ = writeln!(out, "models ({})", config.models.len());
    for (name, m) in &config.models {
        let price = match &m.price {
            Some(p) => {
                rates(&p.base)
                    + &if p.tiers.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} tiers)", p.tiers.len())
                    }
            }
            None => "no known price: charged the default".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {name} -> {} / {}  [{price}]",
            m.provider, m.upstream_model
        );
    }
    let _ = writeln!(out, "routes ({})", config.routes.len());
    for (name, r) in &config.routes {
        let strategy = match &r.strategy {
            router::route::Strategy::Weighted(w) => format!(
                "weighted {}",
                w.iter().map(u32::to_string).collect::<Vec<_>>().join("/")
            ),
            other => other.name().to_owned(),
        };
        let affinity = match r.affinity {
            Some(true) => "on",
            Some(false) => "off",
            None if r.strategy.keeps_sessions_by_default(r.candidates.len()) => "on (default)",
            None => "off (default)",
        };
        let _ = writeln!(
            out,
            "  {name}: {strategy} of [{}]; at most {} attempts in {}; affinity {affinity}",
            r.candidates.join(", "),
            r.max_attempts,
            secs(r.max_time)
        );
        if let Some(reference) = &r.reference_model {
            let _ = writeln!(out, "    savings against {reference}");
        }
        if let Some(low) = &r.low_budget {
            let _ = writeln!(
                out,
                "    below {}% of the tightest budget left: [{}]",
                low.below * 100.0,
                low.candidates.join(", ")
            );
        }
    }
    let _ = writeln!(
        out,
        "router\n  breaker         opens after {} failures, probes after {}\n  affinity_idle   {}",
        config.breaker.failures,
        secs(config.breaker.cooldown),
        secs(config.affinity_idle)
    );
    let _ = writeln!(
        out,
        "database\n  url             {}",
        billing::db::redact_url(config.database.url.expose())
    );
    let l = &config.ledger;
    let _ = writeln!(
        out,
        "ledger\n  spool_dir       {}\n  batch_rows      {}\n  flush_interval  {}\n  max_backlog     {} bytes",
        l.spool_dir.display(),
        l.batch_rows,
        secs(l.flush_interval),
        l.max_backlog_bytes
    );
    let _ = writeln!(
        out,
        "billing\n  default_price   {}",
        rates(&config.billing.default_price.base)
    );
    out
}
