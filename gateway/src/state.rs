//! Shared state: a `Clone` bundle of `Arc`s. Handlers take only the part
//! they need through `FromRef`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::FromRef;
use billing::keys::KeyCache;
use billing::ledger::Spool;
use billing::tenancy::Tenancy;
use billing::Db;
use router::price::Price;
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
    /// What the admin API needs.
    pub admin: AdminState,
    /// How long a request body may take to arrive.
    #[from_ref(skip)]
    pub body_read_timeout: std::time::Duration,
}

/// The state of the admin API and `/v1/me`: one `Arc`, so the per-request
/// clone axum makes is one count, not one per part.
#[derive(Clone)]
pub struct AdminState(Arc<Admin>);

impl AdminState {
    /// Shares `admin`.
    pub fn new(admin: Admin) -> Self {
        Self(Arc::new(admin))
    }
}

impl std::ops::Deref for AdminState {
    type Target = Admin;
    fn deref(&self) -> &Admin {
        &self.0
    }
}

/// What [`AdminState`] shares.
pub struct Admin {
    /// Organizations, teams and keys.
    pub tenancy: Arc<Tenancy>,
    /// The database, for reports.
    pub db: Db,
    /// The key cache, invalidated on revocation.
    pub keys: KeyCache,
    /// The names policies may mention.
    pub names: Arc<crate::policy::KnownNames>,
    /// Budgets and rate limits (what `/v1/me` reports).
    pub quotas: billing::quota::QuotaEngine,
}

/// The state of the proxy endpoints: one `Arc` (see [`AdminState`]).
#[derive(Clone)]
pub struct ProxyState(Arc<Proxy>);

impl ProxyState {
    /// Shares `proxy`.
    pub fn new(proxy: Proxy) -> Self {
        Self(Arc::new(proxy))
    }
}

impl std::ops::Deref for ProxyState {
    type Target = Proxy;
    fn deref(&self) -> &Proxy {
        &self.0
    }
}

/// What [`ProxyState`] shares.
pub struct Proxy {
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
    /// Charged for models without a known price.
    pub default_price: Arc<Price>,
    /// Past this many unwritten ledger bytes new requests are refused.
    pub max_ledger_backlog: u64,
    /// Output tokens a stream under a hard budget reserves at a time once
    /// it outruns admission's reservation.
    pub stream_step_tokens: u64,
    /// The ledger spool: its health and backlog gate admission.
    pub spool: Arc<Spool>,
    /// Budgets and rate limits.
    pub quotas: billing::quota::QuotaEngine,
    /// The cap on request bytes being worked on at once.
    pub intake: crate::http::proxy::Intake,
    /// Which candidate each session is kept on, per route.
    pub affinity: crate::affinity::Affinities,
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
