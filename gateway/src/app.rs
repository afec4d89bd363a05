//! Building and running the gateway: config in, a bound listener and a
//! router out, then serving until a shutdown signal and a bounded drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use billing::keys::KeyCache;
use billing::ledger::{Maintenance, Spool, Writer, WriterConfig};
use billing::tenancy::Tenancy;
use billing::Db;
use router::provider::{AnthropicProvider, MockProvider, OpenAiProvider};
use router::route::{Health, LowBudget, Route, Strategy};
use router::{Catalog, ModelEntry, Provider, ProviderError};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::affinity::Affinities;
use crate::auth::Authenticator;
use crate::config::{Config, ConnectionLimits, ProviderKind};
use crate::http::build_router;
use crate::ledger::LedgerSink;
use crate::metrics::Metrics;
use crate::policy::KnownNames;
use crate::record::{RecordSink, Recorder};
use crate::state::{Admin, AdminState, AppState, Proxy, ProxyState, Readiness};
use billing::quota::{QuotaEngine, Seed};

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
    /// The database could not be opened or migrated.
    #[error("database {url}: {source}")]
    Database {
        /// The URL, password redacted.
        url: String,
        /// Why.
        source: billing::DbError,
    },
    /// The Redis URL is not one Redis can be reached by.
    #[error("redis {url}: {source}")]
    Redis {
        /// The URL, password redacted.
        url: String,
        /// Why.
        source: billing::quota::StoreError,
    },
    /// The ledger spool could not be opened.
    #[error("ledger spool: {0}")]
    Spool(#[from] billing::ledger::SpoolError),
}

/// How long the ledger writer may take to drain at shutdown.
const LEDGER_DRAIN: Duration = Duration::from_secs(5);

/// How often the Postgres ledger's partitions are maintained (made ahead
/// for this month and the next, default-partition rows moved, old months
/// dropped under `retention_months`). Also once at start.
const LEDGER_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(3600);

/// How long a start waits for the rows an earlier run left in the spool to
/// reach the database.
const SPOOL_REPLAY_WAIT: Duration = Duration::from_secs(10);
/// How far back a start looks for spooled requests whose Redis settlement
/// may have been lost: as long as Redis remembers settlements, less the
/// time this start may take to check them.
const SETTLE_LEFT_WINDOW_MS: i64 = billing::quota::SETTLED_MEMORY_MS - 30_000;

/// Builds the model catalog, with one provider (and one HTTP client) each.
pub fn build_catalog(config: &Config) -> Result<Catalog, BuildError> {
    let mut providers = std::collections::BTreeMap::new();
    for (name, p) in &config.providers {
        let built = match &p.kind {
            ProviderKind::OpenAi {
                base_url,
                api_key,
                responses,
            } => OpenAiProvider::new(
                name,
                base_url,
                api_key.as_ref().map(|k| k.expose()),
                p.timeouts,
                *responses,
            )
            .map(Provider::OpenAi),
            ProviderKind::Anthropic {
                base_url,
                api_key,
                auth,
            } => AnthropicProvider::new(
                name,
                base_url,
                api_key.as_ref().map(|k| k.expose()),
                *auth,
                p.timeouts,
            )
            .map(Provider::Anthropic),
            ProviderKind::Mock(sim) => Ok(Provider::Mock(MockProvider::new(
                name,
                sim.clone(),
                p.timeouts,
            ))),
        };
        let provider = built.map_err(|source| BuildError::Provider {
            name: name.clone(),
            source,
        })?;
        providers.insert(name.clone(), Arc::new(provider));
    }
    let entries: std::collections::BTreeMap<String, Arc<ModelEntry>> = config
        .models
        .iter()
        .filter_map(|(name, m)| {
            let entry = ModelEntry {
                name: name.clone(),
                provider: providers.get(&m.provider)?.clone(),
                upstream_model: m.upstream_model.clone(),
                max_output_tokens: m.max_output_tokens,
                context_window: m.context_window,
                capabilities: m.capabilities,
                health: Health::new(config.breaker),
                price: m.price.clone(),
            };
            Some((name.clone(), Arc::new(entry)))
        })
        .collect();
    let pick = |names: &[String]| -> Vec<Arc<ModelEntry>> {
        names
            .iter()
            .filter_map(|c| entries.get(c).cloned())
            .collect()
    };
    let routes = config
        .routes
        .iter()
        .map(|(name, r)| {
            let route = |candidates: Vec<Arc<ModelEntry>>, strategy: Strategy, low_budget| Route {
                name: name.clone(),
                affinity: r
                    .affinity
                    .unwrap_or_else(|| strategy.keeps_sessions_by_default(candidates.len())),
                candidates,
                strategy,
                max_attempts: r.max_attempts,
                max_time: r.max_time,
                reference: r
                    .reference_model
                    .as_ref()
                    .and_then(|m| entries.get(m).cloned()),
                filter: true,
                low_budget,
            };
            let low = r.low_budget.as_ref().map(|l| LowBudget {
                below: l.below,
                route: Arc::new(route(pick(&l.candidates), Strategy::Cheapest, None)),
            });
            route(pick(&r.candidates), r.strategy.clone(), low)
        })
        .collect();
    Ok(Catalog::with_routes(
        entries.into_values().collect(),
        routes,
    ))
}

/// A gateway bound to its address, ready to run.
pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown_grace: Duration,
    limits: ConnectionLimits,
    /// The owned background tasks (ledger writer and partition maintenance,
    /// key watcher), stopped by `background_stop` after the server has
    /// drained.
    background: JoinSet<()>,
    background_stop: CancellationToken,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("addr", &self.local_addr())
            .finish()
    }
}

/// Opens the configured database and applies its migrations.
pub async fn open_database(config: &Config) -> Result<Db, BuildError> {
    let url = config.database.url.expose();
    let db = Db::connect(url)
        .await
        .map_err(|source| BuildError::Database {
            url: billing::db::redact_url(url),
            source,
        })?;
    db.migrate().await.map_err(|source| BuildError::Database {
        url: billing::db::redact_url(url),
        source,
    })?;
    Ok(db)
}

/// The quota engine: counting in Redis when `[redis]` is set, else in
/// this process.
fn quota_engine(config: &Config, db: &Db) -> Result<QuotaEngine, BuildError> {
    let seed = Seed::Ledger(db.clone());
    let thresholds = config.quotas.alert_thresholds.clone();
    let Some(r) = &config.redis else {
        return Ok(QuotaEngine::local(seed, thresholds));
    };
    let url = r.url.expose();
    let opts = redis_options(r);
    let engine =
        QuotaEngine::redis(seed, thresholds, opts).map_err(|source| BuildError::Redis {
            url: billing::quota::redact_urls(url),
            source,
        })?;
    tracing::info!(
        url = %billing::quota::redact_urls(url),
        mode = r.mode.name(),
        prefix = %r.prefix,
        on_failure = r.on_failure.name(),
        "budgets and rate limits are counted in Redis, shared with every replica"
    );
    Ok(engine)
}

/// Waits, up to `wait`, until the writer has put every row the spool held
/// at start into the database (nothing is served yet, so the backlog is
/// exactly those rows).
async fn wait_for_replay(spool: &Spool, wait: Duration) {
    let stats = spool.stats();
    if stats.backlog_bytes() == 0 {
        return;
    }
    let until = tokio::time::Instant::now() + wait;
    while stats.backlog_bytes() > 0 {
        if tokio::time::Instant::now() >= until {
            tracing::warn!(
                backlog_bytes = stats.backlog_bytes(),
                "rows left in the ledger spool by an earlier run are not in the database yet; budgets first used before they are will not count them"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::info!("rows left in the ledger spool by an earlier run are in the database");
}

/// The Redis options `[redis]` names.
fn redis_options(r: &crate::config::RedisConfig) -> billing::quota::RedisOptions {
    billing::quota::RedisOptions {
        url: r.url.expose().to_owned(),
        mode: r.mode,
        prefix: r.prefix.clone(),
        on_failure: r.on_failure,
        timeout: r.timeout,
        lease: r.lease,
    }
}

/// Session affinity's memory: in this process, and in Redis when `[redis]`
/// is set, with its writer spawned among the owned background tasks.
fn affinities(
    config: &Config,
    background: &mut JoinSet<()>,
    stop: &CancellationToken,
) -> Result<Affinities, BuildError> {
    let idle = config.affinity_idle;
    let Some(r) = &config.redis else {
        return Ok(Affinities::local(idle));
    };
    let (affinities, writer) =
        Affinities::redis(idle, &redis_options(r)).map_err(|source| BuildError::Redis {
            url: billing::quota::redact_urls(r.url.expose()),
            source,
        })?;
    background.spawn(writer.run(stop.clone().cancelled_owned()));
    Ok(affinities)
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
        register_secrets(&config);
        let db = open_database(&config).await?;
        let catalog = Arc::new(build_catalog(&config)?);
        for m in catalog.iter().filter(|m| m.price.is_none()) {
            tracing::warn!(model = %m.name, "no known price: requests are charged billing.default_price; set input_per_mtok and output_per_mtok");
        }
        let metrics = Arc::new(Metrics::new(config.metrics.per_key)?);

        let spool = Arc::new(Spool::open(&config.ledger.spool_dir)?);
        let wake = Arc::new(Notify::new());
        metrics.attach_ledger(spool.stats());
        let tenancy = Arc::new(Tenancy::new(db.clone()));
        let keys = KeyCache::new(tenancy.clone(), 100_000);
        metrics.attach_names(keys.names().clone());
        let quotas = quota_engine(&config, &db)?;
        if config.redis.is_some() {
            // Requests an earlier run served but may not have settled in
            // Redis (it was killed between spooling a row and sending its
            // settlement): settled before the writer starts, which deletes
            // their segments once they are in the database.
            let since = billing::db::now_ms() - SETTLE_LEFT_WINDOW_MS;
            crate::quota::settle_left(&quotas, &tenancy, || spool.rows_left_since(since)).await;
        }

        let background_stop = CancellationToken::new();
        let mut background = JoinSet::new();
        let writer_cfg = WriterConfig {
            batch_rows: config.ledger.batch_rows,
            flush_interval: config.ledger.flush_interval,
            ..WriterConfig::default()
        };
        let writer = Writer::new(db.clone(), spool.clone(), wake.clone(), writer_cfg);
        background.spawn(writer.run(background_stop.clone().cancelled_owned(), LEDGER_DRAIN));
        let maintenance = Maintenance::new(
            db.clone(),
            config.ledger.retention_months,
            LEDGER_MAINTENANCE_INTERVAL,
        );
        background.spawn(maintenance.run(background_stop.clone().cancelled_owned()));
        background.spawn(keys.clone().watch(
            config.billing.key_refresh_interval,
            background_stop.clone().cancelled_owned(),
        ));

        let mut all_sinks: Vec<Arc<dyn RecordSink>> = vec![Arc::new(LedgerSink::new(
            spool.clone(),
            wake,
            metrics.clone(),
        ))];
        all_sinks.extend(sinks);
        let recorder = Recorder::new(metrics.clone(), all_sinks);
        let catalog_loaded_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let names = Arc::new(KnownNames::of(&config));
        let affinity = affinities(&config, &mut background, &background_stop)?;
        metrics.attach_quotas(&quotas)?;
        {
            let quotas = quotas.clone();
            let stop = background_stop.clone().cancelled_owned();
            background.spawn(async move { quotas.run(stop).await });
        }
        background.spawn(crate::quota::watch(
            quotas.clone(),
            metrics.clone(),
            config.quotas.alert_webhook.clone(),
            background_stop.clone().cancelled_owned(),
        ));
        let state = AppState {
            proxy: ProxyState::new(Proxy {
                catalog,
                recorder,
                metrics: metrics.clone(),
                max_body_bytes: config.server.max_body_bytes,
                catalog_loaded_at,
                shutdown: CancellationToken::new(),
                default_price: Arc::new(config.billing.default_price.clone()),
                max_ledger_backlog: config.ledger.max_backlog_bytes,
                stream_step_tokens: config.quotas.stream_step_tokens,
                spool: spool.clone(),
                quotas: quotas.clone(),
                intake: crate::http::proxy::Intake::new(
                    config.server.request_bytes,
                    metrics.request_bytes_in_flight.clone(),
                ),
                affinity,
            }),
            auth: Arc::new(Authenticator::new(
                &config.server.master_key,
                config.metrics.token.as_ref(),
                keys.clone(),
            )),
            metrics,
            readiness: Readiness::default(),
            body_read_timeout: config.server.connections.body_read_timeout,
            admin: AdminState::new(Admin {
                tenancy,
                db,
                keys,
                names,
                quotas,
            }),
        };
        // Budgets are seeded from the ledger the first time they are used:
        // rows an earlier run left in the spool (it was killed) must be in
        // it first, or that spend goes uncounted and a budget can overrun.
        wait_for_replay(&spool, SPOOL_REPLAY_WAIT).await;
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BuildError::Bind { addr, source })?;
        // Estimates need the tokenizer; load it now, not on a request.
        background.spawn_blocking(router::estimate::warm_up);
        Ok(App {
            router: build_router(state.clone()),
            listener,
            state,
            shutdown_grace: config.server.shutdown_grace,
            limits: config.server.connections,
            background,
            background_stop,
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
        let drain = CancellationToken::new();
        let signal = {
            let drain = drain.clone();
            async move {
                shutdown.await;
                readiness.start_draining();
                tracing::info!(
                    grace_secs = grace.as_secs_f64(),
                    "shutting down: no new connections, draining in-flight requests"
                );
                drain.cancel();
            }
        };
        let in_flight = self.state.metrics.in_flight.clone();
        let server = crate::serve::serve(
            self.listener,
            self.router,
            self.limits,
            self.state.metrics.connections_open.clone(),
            drain.clone(),
        );
        // Ends once shutdown has begun and every connection has closed;
        // dropped, it closes the connections still open.
        let mut server = Box::pin(async move {
            tokio::join!(signal, server);
        });
        let grace_expired = async {
            drain.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            () = &mut server => {}
            () = grace_expired => {
                tracing::warn!(in_flight = in_flight.get(), "grace period over; ending open streams");
                // Open streams end with an error event and record themselves,
                // and their connections close once it is written; give them a
                // moment to, then close what is left.
                self.state.proxy.shutdown.cancel();
                let settle = tokio::time::Instant::now() + Duration::from_secs(2);
                let _ = tokio::time::timeout_at(settle, &mut server).await;
                while in_flight.get() > 0 && tokio::time::Instant::now() < settle {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                drop(server);
            }
        }
        // Every request has recorded itself by now: let the ledger writer
        // drain the spool into the database, then stop the rest.
        self.background_stop.cancel();
        let mut background = self.background;
        let stopped = tokio::time::timeout(LEDGER_DRAIN + Duration::from_secs(1), async {
            while background.join_next().await.is_some() {}
        })
        .await;
        if stopped.is_err() {
            tracing::warn!(
                "background tasks did not stop in time; unwritten ledger rows stay in the spool"
            );
        }
        tracing::info!("shutdown complete");
        Ok(())
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

/// Every configured secret, registered so that no relayed upstream error
/// carries one back out (an upstream that quotes the API key it refused,
/// say). A URL's password is registered on its own as well as the URL.
fn register_secrets(config: &Config) {
    use crate::config::{ProviderKind, Secret};
    let mut secrets: Vec<&Secret> = vec![&config.server.master_key, &config.database.url];
    secrets.extend(config.metrics.token.as_ref());
    secrets.extend(config.quotas.alert_webhook.as_ref());
    secrets.extend(config.redis.as_ref().map(|r| &r.url));
    for p in config.providers.values() {
        match &p.kind {
            ProviderKind::OpenAi { api_key, .. } | ProviderKind::Anthropic { api_key, .. } => {
                secrets.extend(api_key.as_ref());
            }
            _ => {}
        }
    }
    for secret in secrets {
        let text = secret.expose();
        router::redact::register(text);
        // postgres://user:PASSWORD@host/db, redis://:PASSWORD@host
        if let Some((_, rest)) = text.split_once("://") {
            if let Some((userinfo, _)) = rest.split_once('@') {
                if let Some((_, password)) = userinfo.split_once(':') {
                    router::redact::register(password);
                }
            }
        }
    }
}
