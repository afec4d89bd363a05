//! `[metrics]`: what `/metrics` labels its per-team series with, and who
//! may read it.

use super::raw::RawMetrics;
use super::Secret;

/// `[metrics]`.
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    /// Whether the per-team metrics also carry a `key` label (the key's
    /// name, or its display prefix). Off by default: keys can number in
    /// the thousands, and each multiplies the series.
    pub per_key: bool,
    /// When set, `/metrics` (which names organizations and teams) wants
    /// `Authorization: Bearer` with this token or the master key.
    pub token: Option<Secret>,
}

impl MetricsConfig {
    /// The validated table; an empty token means none.
    pub(super) fn from_raw(raw: &RawMetrics) -> Self {
        Self {
            per_key: raw.per_key.unwrap_or(false),
            token: raw
                .token
                .as_deref()
                .filter(|t| !t.is_empty())
                .map(Secret::new),
        }
    }
}
