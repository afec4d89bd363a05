//! Exact money: picodollars (1e-12 USD) in integers, and the cost of a
//! request's usage at a model's price.

use std::fmt;

use router::price::Price;
use router::Usage;
use serde::Serialize;

/// An amount in picodollars (1e-12 USD). Token counts times prices in
/// micro-dollars per million tokens land here exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Picodollars(pub i64);

const PER_USD: i64 = 1_000_000_000_000;

impl Picodollars {
    /// Zero.
    pub const ZERO: Picodollars = Picodollars(0);

    /// The amount as a decimal USD string with 12 places (`"0.000001234000"`).
    pub fn usd(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let per = PER_USD as u64;
        format!("{sign}{}.{:012}", abs / per, abs % per)
    }

    /// The amount in USD as a float, for metrics only.
    pub fn usd_f64(self) -> f64 {
        self.0 as f64 / PER_USD as f64
    }

    /// Adds, saturating.
    pub fn saturating_add(self, other: Picodollars) -> Picodollars {
        Picodollars(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Picodollars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.usd())
    }
}

/// What `usage` costs at `price`: each token kind at its rate, with the tier
/// chosen by the prompt's size. Saturates at the largest representable amount.
pub fn cost(usage: &Usage, price: &Price) -> Picodollars {
    Picodollars(uncapped_cost(usage, price).0.min(MAX_REQUEST_COST.0))
}

/// What `usage` would cost at `price` with no cap: a reservation's worst
/// case, which must hold back the whole amount however large (a charge is
/// capped by [`cost`]; a reservation that were would let a request past a
/// budget its worst case exceeds). Saturates at the largest amount.
pub fn uncapped_cost(usage: &Usage, price: &Price) -> Picodollars {
    let rates = price.rates_for(usage.prompt_total());
    let parts = [
        (usage.input, rates.input),
        (usage.cached_input, rates.cached_input),
        (usage.cache_write, rates.cache_write),
        (usage.output, rates.output),
    ];
    // tokens × micro-dollars per million tokens = picodollars.
    let total: u128 = parts
        .iter()
        .map(|(tokens, rate)| u128::from(*tokens) * u128::from(*rate))
        .sum();
    Picodollars(i64::try_from(total).unwrap_or(i64::MAX))
}

/// The most one request is charged: $10,000. Anything above comes from an
/// absurd usage report; capping it keeps the rollup's sums far from overflow.
pub const MAX_REQUEST_COST: Picodollars = Picodollars(10_000 * PER_USD);

#[cfg(test)]
mod tests {
    use super::*;
    use router::price::{Rates, Tier};

    fn usage(input: u64, cached: u64, write: u64, output: u64) -> Usage {
        Usage {
            input,
            cached_input: cached,
            cache_write: write,
            output,
            reasoning: 0,
        }
    }

    #[test]
    fn every_token_kind_is_charged_at_its_own_rate() {
        let price = router::price::builtin("claude-sonnet-4.5").unwrap();
        // 1M of each kind: $3 + $0.30 + $3.75 + $15.
        let c = cost(&usage(1_000_000, 1_000_000, 1_000_000, 1_000_000), &price);
        assert_eq!(c.usd(), "22.050000000000");
        assert_eq!(cost(&usage(0, 0, 1, 0), &price), Picodollars(3_750_000));
        assert_eq!(cost(&usage(0, 0, 0, 1), &price), Picodollars(15_000_000));
    }

    #[test]
    fn tiny_prices_stay_exact() {
        // DeepSeek cache hits: $0.0028 per million tokens.
        let price = router::price::builtin("deepseek-v4-flash").unwrap();
        let c = cost(&usage(0, 1, 0, 0), &price);
        assert_eq!(c, Picodollars(2_800));
        assert_eq!(c.usd(), "0.000000002800");
        let many: i64 = (0..1000).map(|_| cost(&usage(0, 1, 0, 0), &price).0).sum();
        assert_eq!(
            many,
            cost(&usage(0, 1000, 0, 0), &price).0,
            "sums of rows equal the row of sums"
        );
    }

    #[test]
    fn the_tier_follows_the_whole_prompt_size() {
        let base = Rates {
            input: 3_000_000,
            cached_input: 300_000,
            cache_write: 3_750_000,
            output: 15_000_000,
        };
        let high = Rates {
            input: 6_000_000,
            cached_input: 600_000,
            cache_write: 7_500_000,
            output: 22_500_000,
        };
        let price = Price {
            base,
            tiers: vec![Tier {
                above_input_tokens: 200_000,
                rates: high,
            }],
        };
        assert_eq!(
            cost(&usage(100_000, 100_000, 0, 1_000), &price).usd(),
            "0.345000000000"
        );
        assert_eq!(
            cost(&usage(100_000, 100_001, 0, 1_000), &price).usd(),
            "0.682500600000"
        );
    }

    #[test]
    fn formatting_handles_signs_and_whole_dollars() {
        assert_eq!(Picodollars(-1_500_000_000_000).usd(), "-1.500000000000");
        assert_eq!(Picodollars::ZERO.to_string(), "$0.000000000000");
    }
}
