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
    /// Its price; `None` when none is known (billing then charges its default).
    pub price: Option<Price>,
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
