//! The model catalog: the names clients send as `model`, each resolved to a
//! provider and the model name that provider expects.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::price::Price;
use crate::provider::Provider;

/// One model clients can ask for.
#[derive(Debug)]
pub struct ModelEntry {
    /// The name clients send as `model`.
    pub name: String,
    /// The provider that serves it.
    pub provider: Arc<Provider>,
    /// The model name sent upstream.
    pub upstream_model: String,
    /// The most output tokens the model can produce (fills a required
    /// `max_tokens` the client left out).
    pub max_output_tokens: u64,
    /// Its price; `None` when none is known (billing then charges its default).
    pub price: Option<Price>,
}

/// The output limit of a known model family, by upstream name; 8,192 for any
/// other model, a limit every current chat model accepts.
pub fn default_max_output(upstream_model: &str) -> u64 {
    let m = upstream_model.to_ascii_lowercase();
    const KNOWN: &[(&str, u64)] = &[
        ("claude-opus-4-5", 64_000),
        ("claude-opus-4", 32_000),
        ("claude-sonnet-4", 64_000),
        ("claude-haiku-4", 64_000),
        ("claude-3-7-sonnet", 64_000),
        ("claude-3-5", 8_192),
        ("claude-3", 4_096),
        ("deepseek-reasoner", 64_000),
        ("deepseek-chat", 8_192),
        ("kimi-k2", 32_768),
        ("glm-4", 32_768),
        ("minimax-m2", 65_536),
    ];
    KNOWN
        .iter()
        .find(|(prefix, _)| m.starts_with(prefix))
        .map(|(_, n)| *n)
        .unwrap_or(8_192)
}

/// Every model Tollgate serves, by client-facing name.
#[derive(Debug, Default)]
pub struct Catalog {
    models: BTreeMap<String, Arc<ModelEntry>>,
}

impl Catalog {
    /// Builds the catalog from its entries.
    pub fn new(entries: impl IntoIterator<Item = ModelEntry>) -> Self {
        let models = entries
            .into_iter()
            .map(|e| (e.name.clone(), Arc::new(e)))
            .collect();
        Self { models }
    }

    /// Looks a model up by the name a client sent.
    pub fn get(&self, name: &str) -> Option<&Arc<ModelEntry>> {
        self.models.get(name)
    }

    /// All models, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ModelEntry>> {
        self.models.values()
    }

    /// How many models there are.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether the catalog is empty.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}
