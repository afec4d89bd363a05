//! Budgets and rate limits that hold under concurrency.
//!
//! Admission reserves a request's worst-case cost and tokens against every
//! budget over it (key, team, organization) and takes a request and a slot
//! from every rate limit, all at once or not at all. The [`Ticket`] it
//! returns is settled exactly once when the request ends: the reservation
//! becomes the actual spend, the slot is freed and the tokens count against
//! the minute's token limit. A ticket dropped unsettled releases what it
//! holds. Budget spend for the current period is seeded from the ledger the
//! first time a budget is used in this process.
//!
//! Periods are UTC calendar windows ([`Period`]); rate limits count in fixed
//! minute windows, so a limit of N admits exactly N requests in a minute.
//!
//! The counters live in this process ([`QuotaEngine::local`]) or in Redis
//! (one server or a Redis Cluster), shared by every replica
//! ([`QuotaEngine::redis`]).

pub mod limits;
mod local;
mod rules;
mod shared;

use std::sync::Arc;

pub use limits::{Budget, Enforcement, Limits, Period, Quota, Quotas, Rates};
pub use shared::{
    redact_urls, FailureMode, RedisConn, RedisMode, RedisOptions, StoreError, StoreStatus,
    SETTLED_MEMORY_MS,
};

use crate::db::Db;
use crate::money::Picodollars;
use crate::reports::{self, SpendFilter};

/// The level a budget or limit is set on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Org,
    Team,
    Key,
}

impl Level {
    /// The name in messages and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Org => "organization",
            Self::Team => "team",
            Self::Key => "key",
        }
    }
}

/// A request asking to be admitted.
#[derive(Debug, Clone)]
pub struct Admission<'a> {
    /// The organization, team and key, each with its id and quota.
    pub levels: [(Level, &'a str, &'a Quota); 3],
    /// The configured model that would serve it (for per-model limits).
    pub model: &'a str,
    /// Its worst-case cost and tokens (reserved against budgets).
    pub cost: Picodollars,
    pub tokens: u64,
    /// Whether this is a new client request (counted against `rpm`) rather
    /// than a further attempt at one.
    pub new_request: bool,
    /// Now, ms since the epoch.
    pub now_ms: i64,
}

impl<'a> Admission<'a> {
    /// The organization's id: every counter of the request lives under it.
    fn org(&self) -> &'a str {
        org_of(&self.levels)
    }
}

/// The organization's id among a request's levels.
fn org_of<'a>(levels: &[(Level, &'a str, &Quota); 3]) -> &'a str {
    levels
        .iter()
        .find(|(level, _, _)| *level == Level::Org)
        .map_or("", |(_, id, _)| id)
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A hard budget has no room for the request's worst case.
    Budget,
    /// Requests per minute.
    Requests,
    /// Tokens per minute.
    Tokens,
    /// Requests in flight.
    Concurrency,
    /// The shared counters (Redis) cannot be reached and the engine fails
    /// closed.
    Unavailable,
}

impl Reason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Budget => "budget",
            Self::Requests => "rpm",
            Self::Tokens => "tpm",
            Self::Concurrency => "concurrency",
            Self::Unavailable => "unavailable",
        }
    }
}

/// The tightest request and token limits that applied, for the
/// `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateView {
    pub requests: Option<Window>,
    pub tokens: Option<Window>,
}

/// One limit's state in the current minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u64,
    pub remaining: u64,
    /// Until the window resets.
    pub reset_ms: i64,
}

/// A refusal, with what the client is told.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub reason: Reason,
    pub level: Level,
    /// A message naming the limit and when it resets.
    pub message: String,
    /// Seconds until retrying can succeed (at least 1); `None` when waiting
    /// will not help (a lifetime budget).
    pub retry_after_s: Option<u64>,
    pub rate: RateView,
}

/// A budget crossing one of the alert thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub level: Level,
    pub id: String,
    pub period: Period,
    pub enforcement: Enforcement,
    /// The threshold crossed, as a fraction of the limit (0.8, 1.0, ...).
    pub threshold: f64,
    /// Which limit: `usd` or `tokens`.
    pub unit: &'static str,
    pub used: f64,
    pub limit: f64,
    pub period_start_ms: i64,
}

/// How much a budget has used in its current period.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    pub spent: Picodollars,
    pub tokens: u64,
    /// Held by requests in flight.
    pub reserved: Picodollars,
    pub reserved_tokens: u64,
}

/// Where period spend comes from the first time a budget is used.
#[derive(Debug, Clone)]
pub enum Seed {
    /// Sums of the ledger.
    Ledger(Db),
    /// Nothing before this process (tests of the engine alone).
    Empty,
}

impl Seed {
    /// What `level` `id` spent over `[from, to)`: cost and tokens.
    pub async fn spent(
        &self,
        level: Level,
        id: &str,
        (from_ms, to_ms): (i64, i64),
    ) -> Result<(Picodollars, u64), crate::DbError> {
        let Seed::Ledger(db) = self else {
            return Ok((Picodollars::ZERO, 0));
        };
        let mut f = SpendFilter {
            from_ms,
            to_ms: to_ms.min(crate::tenancy::MAX_RFC3339_MS),
            ..Default::default()
        };
        let id = Some(id.to_owned());
        match level {
            Level::Org => f.org_id = id,
            Level::Team => f.team_id = id,
            Level::Key => f.key_id = id,
        }
        let t = reports::total(db, &f).await?;
        let tokens =
            t.input_tokens + t.cached_input_tokens + t.cache_write_tokens + t.output_tokens;
        Ok((
            Picodollars(t.cost_picousd),
            u64::try_from(tokens).unwrap_or(0),
        ))
    }
}

/// The quota engine, shared by every request of this replica.
#[derive(Debug, Clone)]
pub struct QuotaEngine {
    /// In-process counts: the engine itself, or Redis's stand-in while
    /// Redis cannot be reached.
    local: Arc<local::Local>,
    shared: Option<Arc<shared::Shared>>,
}

impl QuotaEngine {
    /// An in-process engine seeding from `seed`, alerting at `thresholds`
    /// (fractions of each budget's limit).
    pub fn local(seed: Seed, thresholds: Vec<f64>) -> Self {
        Self {
            local: Arc::new(local::Local::new(seed, thresholds)),
            shared: None,
        }
    }

    /// An engine counting in Redis, shared with every replica using the same
    /// Redis and prefix. It connects on first use, so it starts even when
    /// Redis is away.
    pub fn redis(seed: Seed, thresholds: Vec<f64>, opts: RedisOptions) -> Result<Self, StoreError> {
        let local = Arc::new(local::Local::new(seed.clone(), thresholds.clone()));
        let shared = shared::Shared::new(seed, thresholds, opts, local.clone())?;
        Ok(Self {
            local,
            shared: Some(Arc::new(shared)),
        })
    }

    /// Redis's state, for an engine counting there.
    pub fn store_status(&self) -> Option<StoreStatus> {
        self.shared.as_ref().map(|s| s.status())
    }

    /// Admits the request, reserving what it may use, or says why not.
    pub async fn admit(&self, a: &Admission<'_>) -> Result<Ticket, Box<Rejection>> {
        let Some(shared) = &self.shared else {
            return self.admit_locally(a, None).await;
        };
        if shared.is_up() {
            match shared.admit(a).await {
                Ok(Ok(holds)) => {
                    return Ok(Ticket {
                        rate: holds.rate,
                        reserved: (holds.cost, holds.tokens),
                        held: Some(Held::Shared(shared.clone(), holds)),
                        grown: Arc::default(),
                    })
                }
                Ok(Err(rejection)) => return Err(rejection),
                // Counted as a failure; fall through to the failure mode.
                Err(_) => {}
            }
        }
        match shared.mode() {
            FailureMode::Open => {
                let ticket = self.admit_locally(a, Some(shared.clone())).await?;
                shared.note_local_admission();
                Ok(ticket)
            }
            FailureMode::Closed => {
                let level = a
                    .levels
                    .iter()
                    .find(|(_, _, q)| !q.is_empty())
                    .map_or(Level::Key, |(l, _, _)| *l);
                Err(Box::new(Rejection {
                    reason: Reason::Unavailable,
                    level,
                    message: "Budgets and rate limits cannot be checked right now (their shared store is unreachable); retry shortly.".into(),
                    retry_after_s: Some(1),
                    rate: RateView::default(),
                }))
            }
        }
    }

    /// Admits by this process's counts; with `reconcile`, the spend is also
    /// owed to Redis.
    async fn admit_locally(
        &self,
        a: &Admission<'_>,
        reconcile: Option<Arc<shared::Shared>>,
    ) -> Result<Ticket, Box<Rejection>> {
        // Standing in for Redis, local counts start from no less than what
        // Redis last showed this replica: requests it admitted may still run.
        let floor = reconcile.as_ref().map(|shared| {
            move |level: Level, id: &str, period: Period, now: i64| {
                shared.usage(level, id, period, now)
            }
        });
        self.local
            .ensure_seeded(a, floor.as_ref().map(|f| f as &local::Floor<'_>))
            .await;
        let holds = self.local.admit(a)?;
        Ok(Ticket {
            rate: holds.rate,
            reserved: (holds.cost, holds.tokens),
            held: Some(Held::Local(self.local.clone(), holds, reconcile)),
            grown: Arc::default(),
        })
    }

    /// Settles, renews leases and watches Redis until `stop` (for an engine
    /// counting in Redis; otherwise it just waits for `stop`).
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        match &self.shared {
            Some(shared) => shared.run(stop).await,
            None => stop.await,
        }
    }

    /// Sends settlements still queued for Redis and rereads the budgets
    /// this replica counts, now rather than with the next batch. Nothing to
    /// do for an engine counting in process.
    pub async fn sync(&self) -> Result<(), StoreError> {
        match &self.shared {
            Some(shared) => shared.sync().await,
            None => Ok(()),
        }
    }

    /// Settles a request served by an earlier run of this replica, found in
    /// the ledger spool after a restart, whose settlement may never have
    /// reached Redis (the run was killed first): its spend is added to the
    /// budgets over `levels` in the period containing `at_ms`, once, unless
    /// Redis remembers its settlement (or an earlier `settle_left`) under
    /// `request`. Redis remembers them for [`SETTLED_MEMORY_MS`]: leave out
    /// rows older than that. Nothing to do for an engine counting in
    /// process (its counts start from the ledger).
    pub fn settle_left(
        &self,
        request: uuid::Uuid,
        levels: [(Level, &str, &Quota); 3],
        at_ms: i64,
        cost: Picodollars,
        tokens: u64,
    ) {
        if let Some(shared) = &self.shared {
            shared.settle_left(request, levels, at_ms, cost, tokens);
        }
    }

    /// Every budget counted in its current period at `now_ms`.
    pub fn budgets(&self, now_ms: i64) -> Vec<(Level, String, Budget, Usage)> {
        match &self.shared {
            Some(s) if s.is_up() => s.budgets(now_ms),
            _ => self.local.budgets(now_ms),
        }
    }

    /// The budget alerts raised since the last call.
    pub fn take_alerts(&self) -> Vec<Alert> {
        let mut alerts = self.local.take_alerts();
        if let Some(s) = &self.shared {
            alerts.extend(s.take_alerts());
        }
        alerts
    }

    /// What a budget of organization `org` (its own, or one of its teams'
    /// or keys') has used in the period containing `now_ms`, as counted
    /// right now (with Redis, one read; its cached view if Redis cannot be
    /// reached). `None` when it has not been counted this period.
    pub async fn current_usage(
        &self,
        org: &str,
        level: Level,
        id: &str,
        period: Period,
        now_ms: i64,
    ) -> Option<Usage> {
        if let Some(s) = self.shared.as_ref().filter(|s| s.is_up()) {
            if let Ok(read) = s.read(org, level, id, period, now_ms).await {
                return read;
            }
        }
        self.usage(level, id, period, now_ms)
    }

    /// What a budget has used in the period containing `now_ms`, if this
    /// process has seen it used (with Redis, as of the last second; no
    /// round trip).
    pub fn usage(&self, level: Level, id: &str, period: Period, now_ms: i64) -> Option<Usage> {
        match &self.shared {
            Some(s) if s.is_up() => s.usage(level, id, period, now_ms),
            _ => self.local.usage(level, id, period, now_ms),
        }
    }
}

/// Where a ticket's holds are.
#[derive(Debug, Clone)]
enum Held {
    /// In this process; with the Redis engine to owe the spend to, when it
    /// was admitted while Redis was away.
    Local(Arc<local::Local>, local::Holds, Option<Arc<shared::Shared>>),
    Shared(Arc<shared::Shared>, shared::Holds),
}

/// What an admitted request holds: settle it once, with what it used.
#[derive(Debug)]
pub struct Ticket {
    held: Option<Held>,
    rate: RateView,
    reserved: (Picodollars, u64),
    grown: Arc<std::sync::Mutex<Grown>>,
}

/// What a ticket's holds grew by after admission, shared with its
/// [`Extender`].
#[derive(Debug, Default)]
pub(crate) struct Grown {
    cost: i64,
    tokens: u64,
    /// Set when the ticket settles: holds no longer grow.
    settled: bool,
}

/// Extends an admitted request's reservation while it runs: a stream that
/// outruns what admission held asks for more, one step at a time, from
/// every budget over it at once.
#[derive(Debug, Clone)]
pub struct Extender {
    held: Held,
    grown: Arc<std::sync::Mutex<Grown>>,
}

impl Extender {
    /// Holds `cost` and `tokens` more for the request on every budget over
    /// it, atomically (one lock in process, one script in Redis), or says
    /// which hard budget has no room. When Redis cannot be reached, the
    /// engine's failure mode decides: open lets the request go on (its
    /// spend reaches Redis when it settles), closed refuses.
    pub async fn extend(
        &self,
        cost: Picodollars,
        tokens: u64,
        now_ms: i64,
    ) -> Result<(), Box<Rejection>> {
        match &self.held {
            Held::Local(engine, holds, _) => {
                engine.extend(holds, &self.grown, (cost, tokens), now_ms)
            }
            Held::Shared(engine, holds) => {
                if lock_grown(&self.grown).settled {
                    return Ok(());
                }
                match engine.extend(holds, (cost, tokens), now_ms).await {
                    Ok(Ok(())) => {
                        let mut grown = lock_grown(&self.grown);
                        grown.cost += cost.0;
                        grown.tokens += tokens;
                        Ok(())
                    }
                    Ok(Err(refusal)) => Err(refusal),
                    Err(_) => match engine.mode() {
                        FailureMode::Open => Ok(()),
                        FailureMode::Closed => Err(Box::new(Rejection {
                            reason: Reason::Unavailable,
                            level: holds.first_level(),
                            message: "Budgets cannot be checked right now (their shared store is unreachable).".into(),
                            retry_after_s: Some(1),
                            rate: RateView::default(),
                        })),
                    },
                }
            }
        }
    }
}

fn lock_grown(g: &std::sync::Mutex<Grown>) -> std::sync::MutexGuard<'_, Grown> {
    g.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ticket {
    /// The request and token limits as admission left them.
    pub fn rate(&self) -> RateView {
        self.rate
    }

    /// What the request was reserved for at admission, plus what its
    /// [`Extender`] added since.
    pub fn reserved(&self) -> (Picodollars, u64) {
        let grown = lock_grown(&self.grown);
        (
            Picodollars(self.reserved.0 .0 + grown.cost),
            self.reserved.1 + grown.tokens,
        )
    }

    /// A handle that extends this ticket's reservation while its request
    /// runs; `None` once settled.
    pub fn extender(&self) -> Option<Extender> {
        Some(Extender {
            held: self.held.clone()?,
            grown: self.grown.clone(),
        })
    }

    /// Turns the reservation into actual spend and frees the request's slot.
    pub fn settle(mut self, cost: Picodollars, tokens: u64, now_ms: i64) {
        self.finish(cost, tokens, now_ms, None);
    }

    /// Like [`Ticket::settle`], for the request whose ledger row has id
    /// `request`: Redis remembers the settlement under that id, so that a
    /// restart that finds the row in the spool knows whether the settlement
    /// landed before the process died ([`QuotaEngine::settle_left`]).
    pub fn settle_request(
        mut self,
        request: uuid::Uuid,
        cost: Picodollars,
        tokens: u64,
        now_ms: i64,
    ) {
        self.finish(cost, tokens, now_ms, Some(request));
    }

    fn finish(&mut self, cost: Picodollars, tokens: u64, now_ms: i64, request: Option<uuid::Uuid>) {
        let Some(held) = self.held.take() else {
            return;
        };
        let grown = {
            let mut g = lock_grown(&self.grown);
            g.settled = true;
            (g.cost, g.tokens)
        };
        match held {
            Held::Local(engine, holds, owed) => {
                engine.settle(&holds, grown, cost, tokens, now_ms);
                if let Some(shared) = owed {
                    shared.reconcile(&holds, cost, tokens, request);
                }
            }
            // Redis knows what each hold grew to; this replica's view of
            // the budgets learns it here.
            Held::Shared(engine, mut holds) => {
                holds.cost = Picodollars(holds.cost.0 + grown.0);
                holds.tokens += grown.1;
                engine.settle(holds, cost, tokens, now_ms, request)
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.finish(Picodollars::ZERO, 0, crate::db::now_ms(), None);
    }
}

/// `ms` as a short duration the way OpenAI's reset headers write it
/// (`1s`, `6m0s`, `1h2m3s`; under a second as `250ms`).
pub fn reset_text(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = (ms + 999) / 1000;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn resets_read_like_openais() {
        assert_eq!(super::reset_text(250), "250ms");
        assert_eq!(super::reset_text(1000), "1s");
        assert_eq!(super::reset_text(59_001), "1m0s");
        assert_eq!(super::reset_text(3_723_000), "1h2m3s");
    }
}
