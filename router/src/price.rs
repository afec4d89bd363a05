//! Model prices: integer micro-dollars per million tokens for each token
//! kind, with optional tiers above an input-size threshold, and the built-in
//! prices of the models Tollgate knows. Config overrides any of them.
//!
//! Integers keep money exact: a price of $0.0028 per million tokens is 2,800
//! micro-dollars per million, and a cost is tokens × that, in picodollars.

use serde::Serialize;

/// Micro-dollars (1e-6 USD) per million tokens.
pub type MicrosPerMtok = u64;

/// The per-kind prices of one tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rates {
    /// Uncached input.
    pub input: MicrosPerMtok,
    /// Cache reads.
    pub cached_input: MicrosPerMtok,
    /// Cache writes.
    pub cache_write: MicrosPerMtok,
    /// Output, reasoning included.
    pub output: MicrosPerMtok,
}

/// A tier: these rates apply to the whole request once its prompt is larger
/// than `above_input_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tier {
    /// Prompt size (all input kinds) past which the tier applies.
    pub above_input_tokens: u64,
    /// The tier's rates.
    pub rates: Rates,
}

/// A model's price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Price {
    /// The base rates.
    pub base: Rates,
    /// Higher tiers, by ascending threshold.
    pub tiers: Vec<Tier>,
}

impl Price {
    /// A flat price with no tiers.
    pub fn flat(rates: Rates) -> Self {
        Self {
            base: rates,
            tiers: Vec::new(),
        }
    }

    /// The rates that apply to a request with `prompt_tokens` of input.
    pub fn rates_for(&self, prompt_tokens: u64) -> &Rates {
        self.tiers
            .iter()
            .rev()
            .find(|t| prompt_tokens > t.above_input_tokens)
            .map(|t| &t.rates)
            .unwrap_or(&self.base)
    }
}

/// USD per million tokens to micro-dollars per million, exactly for up to six
/// decimals (the finest any vendor lists); `None` for negative or absurd values.
pub fn usd_per_mtok(usd: f64) -> Option<MicrosPerMtok> {
    if !usd.is_finite() || !(0.0..=1_000_000.0).contains(&usd) {
        return None;
    }
    Some((usd * 1_000_000.0).round() as u64)
}

const fn r(input: u64, cached: u64, write: u64, output: u64) -> Rates {
    Rates {
        input,
        cached_input: cached,
        cache_write: write,
        output,
    }
}

/// Built-in prices, in micro-dollars per million tokens (autumn 2026 list
/// prices). Where a vendor lists no cache-write price, writes cost the input price.
const BUILTIN: &[(&[&str], Rates)] = &[
    (
        &["minimax-m2", "minimax-m2.1", "minimax-m2.5"],
        r(300_000, 30_000, 375_000, 1_200_000),
    ),
    (
        &["minimax-m2.7", "minimax-m3"],
        r(300_000, 60_000, 300_000, 1_200_000),
    ),
    (&["kimi-k2.5"], r(600_000, 100_000, 600_000, 3_000_000)),
    (&["kimi-k2.6"], r(950_000, 160_000, 950_000, 4_000_000)),
    (&["kimi-k3"], r(3_000_000, 300_000, 3_000_000, 15_000_000)),
    (
        &["glm-4.5", "glm-4.6", "glm-4.7"],
        r(600_000, 110_000, 600_000, 2_200_000),
    ),
    (&["glm-4.5-air"], r(200_000, 30_000, 200_000, 1_100_000)),
    (&["glm-5"], r(1_000_000, 200_000, 1_000_000, 3_200_000)),
    (
        &["glm-5-turbo"],
        r(1_200_000, 240_000, 1_200_000, 4_000_000),
    ),
    (&["deepseek-v4-flash"], r(140_000, 2_800, 140_000, 280_000)),
    (&["deepseek-v4-pro"], r(435_000, 3_625, 435_000, 870_000)),
    (
        &[
            "claude-opus-4.5",
            "claude-opus-4-5",
            "claude-opus-4.6",
            "claude-opus-4-6",
        ],
        r(5_000_000, 500_000, 6_250_000, 25_000_000),
    ),
    (
        &["claude-sonnet-4.5", "claude-sonnet-4-5"],
        r(3_000_000, 300_000, 3_750_000, 15_000_000),
    ),
    (
        &["claude-haiku-4.5", "claude-haiku-4-5"],
        r(1_000_000, 100_000, 1_250_000, 5_000_000),
    ),
];

/// The built-in price of a model, by its upstream name (case-insensitive;
/// a dated suffix such as `claude-sonnet-4-5-20250929` matches its family).
pub fn builtin(model: &str) -> Option<Price> {
    let name = model.to_ascii_lowercase();
    let exact = BUILTIN
        .iter()
        .find(|(names, _)| names.contains(&name.as_str()));
    let dated = || {
        let (base, suffix) = name.rsplit_once('-')?;
        let is_date = suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_digit());
        is_date.then(|| BUILTIN.iter().find(|(names, _)| names.contains(&base)))?
    };
    exact.or_else(dated).map(|(_, rates)| Price::flat(*rates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_prices_match_the_published_list() {
        let p = builtin("deepseek-v4-pro").unwrap();
        assert_eq!(p.base, r(435_000, 3_625, 435_000, 870_000));
        assert_eq!(builtin("Kimi-K2.5").unwrap().base.output, 3_000_000);
        assert_eq!(
            builtin("claude-sonnet-4-5-20250929")
                .unwrap()
                .base
                .cache_write,
            3_750_000
        );
        assert!(builtin("gpt-unknown").is_none());
        assert!(builtin("glm-5-20250101x").is_none());
    }

    #[test]
    fn usd_prices_convert_exactly() {
        assert_eq!(usd_per_mtok(0.0028), Some(2_800));
        assert_eq!(usd_per_mtok(0.003625), Some(3_625));
        assert_eq!(usd_per_mtok(15.0), Some(15_000_000));
        assert_eq!(usd_per_mtok(-1.0), None);
        assert_eq!(usd_per_mtok(f64::NAN), None);
    }

    #[test]
    fn tiers_apply_above_their_threshold() {
        let p = Price {
            base: r(3, 0, 0, 15),
            tiers: vec![Tier {
                above_input_tokens: 200_000,
                rates: r(6, 0, 0, 22),
            }],
        };
        assert_eq!(p.rates_for(200_000).input, 3);
        assert_eq!(p.rates_for(200_001).input, 6);
    }
}
