//! Shared state: a `Clone` bundle of `Arc`s. Handlers take only the part
//! they need through `FromRef`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::FromRef;
use router::Catalog;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::metrics::Metrics;
use crate::record::Recorder;

/// Everything the HTTP layer shares.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// What proxy handlers need.
    pub proxy: ProxyState,
    /// Credential checks.
    pub auth: Arc<Authenticator>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Whether the gateway takes new work.
    pub readiness: Readiness,
}

/// The state of the proxy endpoints.
#[derive(Clone)]
pub struct ProxyState {
    /// Models and their providers.
    pub catalog: Arc<Catalog>,
    /// Where finished requests go.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The request body limit, for error messages.
    pub max_body_bytes: usize,
    /// When the catalog was loaded (unix seconds), shown as models' `created`.
    pub catalog_loaded_at: u64,
    /// Cancelled when the shutdown grace period is over: open streams end.
    pub shutdown: CancellationToken,
}

/// Ready until shutdown starts; `/readyz` turns 503 while draining so load
/// balancers stop sending new requests.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the gateway as draining.
    pub fn start_draining(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown has started.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
