//! Building and running the gateway: config in, a bound listener and a
//! router out, then serving until a shutdown signal and a bounded drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::serve::ListenerExt;
use axum::Router;
use router::provider::{MockProvider, OpenAiProvider};
use router::{Catalog, ModelEntry, Provider, ProviderError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::config::{Config, ProviderKind};
use crate::http::build_router;
use crate::metrics::Metrics;
use crate::record::{RecordSink, Recorder};
use crate::state::{AppState, ProxyState, Readiness};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A provider could not be set up.
    #[error("provider '{name}': {source}")]
    Provider {
        /// The provider.
        name: String,
        /// Why.
        source: ProviderError,
    },
    /// The metrics registry refused a metric (a bug).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Builds the model catalog, with one provider (and one HTTP client) each.
pub fn build_catalog(config: &Config) -> Result<Catalog, BuildError> {
    let mut providers = std::collections::BTreeMap::new();
    for (name, p) in &config.providers {
        let provider = match &p.kind {
            ProviderKind::OpenAi { base_url, api_key } => Provider::OpenAi(
                OpenAiProvider::new(
                    name,
                    base_url,
                    api_key.as_ref().map(|k| k.expose()),
                    p.timeouts,
                )
                .map_err(|source| BuildError::Provider {
                    name: name.clone(),
                    source,
                })?,
            ),
            ProviderKind::Mock(sim) => {
                Provider::Mock(MockProvider::new(name, sim.clone(), p.timeouts))
            }
        };
        providers.insert(name.clone(), Arc::new(provider));
    }
    let entries = config.models.iter().filter_map(|(name, m)| {
        Some(ModelEntry {
            name: name.clone(),
            provider: providers.get(&m.provider)?.clone(),
            upstream_model: m.upstream_model.clone(),
        })
    });
    Ok(Catalog::new(entries))
}

/// A gateway bound to its address, ready to run.
pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown_grace: Duration,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("addr", &self.local_addr())
            .finish()
    }
}

impl App {
    /// Builds the gateway and binds its listener (port 0 picks a free port).
    pub async fn build(config: Config) -> Result<App, BuildError> {
        Self::build_with_sinks(config, Vec::new()).await
    }

    /// Like [`App::build`], with extra consumers of request records.
    pub async fn build_with_sinks(
        config: Config,
        sinks: Vec<Arc<dyn RecordSink>>,
    ) -> Result<App, BuildError> {
        let catalog = Arc::new(build_catalog(&config)?);
        let metrics = Arc::new(Metrics::new()?);
        let recorder = Recorder::new(metrics.clone(), sinks);
        let catalog_loaded_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let state = AppState {
            proxy: ProxyState {
                catalog,
                recorder,
                metrics: metrics.clone(),
                max_body_bytes: config.server.max_body_bytes,
                catalog_loaded_at,
                shutdown: CancellationToken::new(),
            },
            auth: Arc::new(Authenticator::new(&config.server.master_key)),
            metrics,
            readiness: Readiness::default(),
        };
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BuildError::Bind { addr, source })?;
        // Estimates need the tokenizer; load it now, not on a request.
        tokio::task::spawn_blocking(router::estimate::warm_up);
        Ok(App {
            router: build_router(state.clone()),
            listener,
            state,
            shutdown_grace: config.server.shutdown_grace,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The shared state (metrics, catalog), for tests and embedding.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting connections and
    /// lets in-flight requests and streams finish for up to the grace period.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let readiness = self.state.readiness.clone();
        let grace = self.shutdown_grace;
        let (draining_tx, mut draining_rx) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            readiness.start_draining();
            tracing::info!(
                grace_secs = grace.as_secs_f64(),
                "shutting down: no new connections, draining in-flight requests"
            );
            let _ = draining_tx.send(true);
        };
        let in_flight = self.state.metrics.in_flight.clone();
        // Streamed events are small writes: with Nagle's algorithm on, each
        // could wait for the client's delayed ACK (~40 ms).
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let server = axum::serve(listener, self.router).with_graceful_shutdown(signal);
        let grace_expired = async move {
            if draining_rx.wait_for(|d| *d).await.is_err() {
                // The server ended on its own; nothing to wait for.
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = server => {
                tracing::info!("shutdown complete");
                result
            }
            () = grace_expired => {
                tracing::warn!(in_flight = in_flight.get(), "grace period over; ending open streams");
                // Open streams end with an error event and record themselves;
                // give them a moment to do so.
                self.state.proxy.shutdown.cancel();
                let settle = tokio::time::Instant::now() + Duration::from_secs(2);
                while in_flight.get() > 0 && tokio::time::Instant::now() < settle {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(())
            }
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
