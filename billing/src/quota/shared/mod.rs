//! The Redis engine: counters, reservations and period spend that every
//! replica shares, so several Tollgate processes enforce one budget and one
//! rate limit as one.
//!
//! Admission is one script call (one round trip) over all of a request's
//! budgets and limits. Settlements queue and go out in batches, off the
//! request's path. Every hold carries a lease on Redis's clock, renewed
//! while its request runs, so the holds of a replica that dies lapse
//! instead of holding budget forever. Budgets not counted yet (a new
//! period, or a Redis that lost its data) are seeded from the ledger, the
//! first replica to get there winning.
//!
//! Redis is one server or a Redis Cluster. Every key carries its
//! organization's hash tag ([`keys`]), so each script touches one slot;
//! work spanning organizations (a batch of settlements, lease renewals,
//! rereading the budgets) goes out one call per slot on a cluster
//! ([`conn`]).
//!
//! When Redis cannot be reached the engine either fails open, counting in
//! this process (seeded from the ledger) and adding that spend to Redis
//! when it is back, or fails closed, refusing requests under a quota.
//!
//! # Layout
//! - `options`: the configuration, status and errors.
//! - `keys`: the key layout and its hash tags.
//! - `conn`: one server or a cluster, behind one connection.
//! - `admit`: admission and seeding from the ledger.
//! - `background`: settling, renewing leases, rereading, watching Redis.

mod admit;
mod background;
mod conn;
mod keys;
mod options;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redis::Script;
use uuid::Uuid;

pub use background::SETTLED_MEMORY_MS;
pub use conn::Conn as RedisConn;
pub use options::{redact_urls, FailureMode, RedisMode, RedisOptions, StoreError, StoreStatus};

use self::conn::Conn;
use self::keys::Keys;
use super::local::{self, Local};
use super::{Alert, Budget, Level, Period, RateView, Seed, Usage};
use crate::money::Picodollars;

/// A budget a request holds.
#[derive(Debug, Clone)]
struct BudgetHold {
    level: Level,
    id: String,
    budget: Budget,
    start: i64,
    end: i64,
    /// The counters' key (see [`keys`]).
    key: String,
}

/// What one admission took in Redis.
#[derive(Debug, Clone)]
pub(super) struct Holds {
    ticket: String,
    org: String,
    budgets: Vec<BudgetHold>,
    /// What each rate limit's keys start with.
    rates: Vec<String>,
    pub(super) cost: Picodollars,
    pub(super) tokens: u64,
    pub(super) rate: RateView,
}

impl Holds {
    /// The level of the first budget held (the organization's, when it has one).
    pub(super) fn first_level(&self) -> Level {
        self.budgets.first().map_or(Level::Key, |b| b.level)
    }

    /// Whether the admission took nothing in Redis (no budget or limit
    /// applied), so settling it has nothing to send.
    fn is_empty(&self) -> bool {
        self.budgets.is_empty() && self.rates.is_empty()
    }
}

/// Work for Redis that is not on a request's path.
#[derive(Debug)]
enum Op {
    Settle {
        /// Names the settlement, so that it counts once however often it
        /// is sent: the request's id (which its ledger row carries), or the
        /// ticket's when it has none.
        id: String,
        holds: Holds,
        cost: i64,
        tokens: u64,
        now: i64,
    },
    /// Spend counted in this process while Redis was away, for budget
    /// counters of one organization.
    Reconcile {
        /// Names this reconciliation, so that it counts once however often
        /// it is sent: the request's id, when there is one.
        id: String,
        org: String,
        keys: Vec<String>,
        cost: i64,
        tokens: u64,
    },
}

/// A budget as this replica last read it from Redis.
#[derive(Debug, Clone)]
struct Seen {
    budget: Budget,
    key: String,
    usage: Usage,
    /// Which change to the view this is (see `Shared::changes`): a
    /// background reread replaces only counts that did not change while it
    /// was under way.
    version: u64,
}

fn script(body: &str) -> Script {
    Script::new(&format!("{}\n{body}", include_str!("../lua/prelude.lua")))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The quota scripts, loaded once per server (per primary on a cluster).
struct Scripts {
    admit: Script,
    extend: Script,
    settle: Script,
    seed: Script,
    renew: Script,
    reconcile: Script,
}

pub(super) struct Shared {
    conn: Conn,
    keys: Keys,
    opts: RedisOptions,
    seed: Seed,
    thresholds_arg: String,
    fallback: Arc<Local>,
    scripts: Scripts,
    up: AtomicBool,
    failures: AtomicU64,
    local_admissions: AtomicU64,
    /// Settlements dropped from a full queue.
    dropped: AtomicU64,
    /// This replica's tag in ticket names, and the tickets issued.
    replica: String,
    issued: AtomicU64,
    queue: Mutex<VecDeque<Op>>,
    wake: tokio::sync::Notify,
    /// Tickets in flight: the lease keys each one must keep renewing.
    live: Mutex<HashMap<String, Vec<String>>>,
    seen: Mutex<HashMap<(Level, String), Seen>>,
    /// Changes made to `seen` by admissions and settlements, counted.
    changes: AtomicU64,
    alerts: Mutex<Vec<Alert>>,
    /// One seeding from the ledger at a time in this replica.
    seeding: tokio::sync::Mutex<()>,
    /// One flush at a time, so that `sync` returns only once batches the
    /// background loop already took off the queue have landed too.
    flushing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("mode", &self.opts.mode)
            .field("prefix", &self.opts.prefix)
            .field("up", &self.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(super) fn new(
        seed: Seed,
        thresholds: Vec<f64>,
        opts: RedisOptions,
        fallback: Arc<Local>,
    ) -> Result<Self, StoreError> {
        if opts.prefix.contains(['{', '}']) {
            return Err(StoreError::Config(format!(
                "the key prefix '{}' has a brace: keys carry their organization's hash tag in braces after it",
                opts.prefix
            )));
        }
        let conn = Conn::open(&opts)?;
        let thresholds = super::rules::thousandths(thresholds);
        let thresholds_arg = thresholds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        Ok(Self {
            conn,
            keys: Keys::new(&opts.prefix),
            seed,
            thresholds_arg,
            fallback,
            scripts: Scripts {
                admit: script(include_str!("../lua/admit.lua")),
                extend: script(include_str!("../lua/extend.lua")),
                settle: script(include_str!("../lua/settle.lua")),
                seed: script(include_str!("../lua/seed.lua")),
                renew: script(include_str!("../lua/renew.lua")),
                reconcile: script(include_str!("../lua/reconcile.lua")),
            },
            up: AtomicBool::new(true),
            failures: AtomicU64::new(0),
            local_admissions: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            replica: format!("{:016x}", rand::random::<u64>()),
            issued: AtomicU64::new(0),
            queue: Mutex::new(VecDeque::new()),
            wake: tokio::sync::Notify::new(),
            live: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            changes: AtomicU64::new(0),
            alerts: Mutex::new(Vec::new()),
            seeding: tokio::sync::Mutex::new(()),
            flushing: tokio::sync::Mutex::new(()),
            opts,
        })
    }

    pub(super) fn status(&self) -> StoreStatus {
        StoreStatus {
            up: self.up.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            local_admissions: self.local_admissions.load(Ordering::Relaxed),
        }
    }

    pub(super) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub(super) fn mode(&self) -> FailureMode {
        self.opts.on_failure
    }

    pub(super) fn note_local_admission(&self) {
        self.local_admissions.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed call; the first failure of an outage is logged.
    fn failed(&self, e: &StoreError) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if self.up.swap(false, Ordering::SeqCst) {
            let mode = self.opts.on_failure;
            match mode {
                FailureMode::Open => tracing::error!(
                    error = %e,
                    on_failure = mode.name(),
                    "Redis cannot be reached: budgets and limits are counted in this process until it is back"
                ),
                FailureMode::Closed => tracing::error!(
                    error = %e,
                    on_failure = mode.name(),
                    "Redis cannot be reached: requests under a budget or limit are refused until it is back"
                ),
            }
        }
    }

    /// Runs one call to Redis, within the timeout.
    async fn call<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.opts.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StoreError::Timeout(self.opts.timeout)),
        }
    }

    /// Queues a settlement; it reaches Redis with the next batch. Named by
    /// `request` (the request's id, which its ledger row carries), it is
    /// counted once, whether it lands or a restart settles the row instead
    /// (see [`Shared::owe`]).
    pub(super) fn settle(
        &self,
        holds: Holds,
        cost: Picodollars,
        tokens: u64,
        now: i64,
        request: Option<Uuid>,
    ) {
        if holds.is_empty() {
            return;
        }
        lock(&self.live).remove(&holds.ticket);
        self.settle_seen(&holds, cost, tokens);
        self.push(Op::Settle {
            id: request.map_or_else(|| holds.ticket.clone(), |r| r.to_string()),
            holds,
            cost: cost.0,
            tokens,
            now,
        });
    }

    /// Counts a settlement in this replica's view of its budgets at once,
    /// as Redis will once it lands, so that the view neither keeps a
    /// finished request's hold nor misses its spend.
    fn settle_seen(&self, holds: &Holds, cost: Picodollars, tokens: u64) {
        let mut seen = lock(&self.seen);
        for b in &holds.budgets {
            let Some(s) = seen
                .get_mut(&(b.level, b.id.clone()))
                .filter(|s| s.key == b.key)
            else {
                continue;
            };
            s.version = self.changes.fetch_add(1, Ordering::Relaxed) + 1;
            let u = &mut s.usage;
            u.reserved = Picodollars(u.reserved.0.saturating_sub(holds.cost.0).max(0));
            u.reserved_tokens = u.reserved_tokens.saturating_sub(holds.tokens);
            u.spent = Picodollars(u.spent.0.saturating_add(cost.0));
            u.tokens = u.tokens.saturating_add(tokens);
        }
    }

    /// Queues spend counted in this process while Redis was away, named
    /// by `request` like a settlement.
    pub(super) fn reconcile(
        &self,
        holds: &local::Holds,
        cost: Picodollars,
        tokens: u64,
        request: Option<Uuid>,
    ) {
        let keys: Vec<String> = holds
            .budget_windows()
            .map(|(level, id, period, start)| {
                self.keys.budget(holds.org(), level, id, period, start)
            })
            .collect();
        let id = request.map_or_else(
            || {
                format!(
                    "{}-r{}",
                    self.replica,
                    self.issued.fetch_add(1, Ordering::Relaxed)
                )
            },
            |r| r.to_string(),
        );
        self.owe(id, holds.org(), keys, cost, tokens);
    }

    /// Queues `cost` and `tokens` for the budget counters `keys` (of
    /// organization `org`), once under the name `id`: a request's spend
    /// whose settlement did not reach Redis, when `id` is its request id
    /// and its settlement never ran.
    fn owe(&self, id: String, org: &str, keys: Vec<String>, cost: Picodollars, tokens: u64) {
        if keys.is_empty() || (cost.0 == 0 && tokens == 0) {
            return;
        }
        self.push(Op::Reconcile {
            id,
            org: org.to_owned(),
            keys,
            cost: cost.0,
            tokens,
        });
    }

    /// Settles in Redis, once, a request that its ledger row says was
    /// served but whose settlement may never have reached Redis (the
    /// process that served it was killed first): its spend is added to
    /// the budgets over it, unless Redis remembers the settlement. Redis
    /// remembers settlements for [`SETTLED_MEMORY_MS`]; older rows are the
    /// caller's to leave out.
    pub(super) fn settle_left(
        &self,
        request: Uuid,
        levels: [(Level, &str, &super::Quota); 3],
        at_ms: i64,
        cost: Picodollars,
        tokens: u64,
    ) {
        let org = super::org_of(&levels);
        let keys = levels
            .iter()
            .filter_map(|(level, id, quota)| {
                let b = quota.budget.as_ref()?;
                let (start, _) = b.period.window(at_ms);
                Some(self.keys.budget(org, *level, id, b.period, start))
            })
            .collect();
        self.owe(request.to_string(), org, keys, cost, tokens);
    }

    /// What a budget has used, read from Redis now; `None` when it has no
    /// counters there yet.
    pub(super) async fn read(
        &self,
        org: &str,
        level: Level,
        id: &str,
        period: Period,
        now: i64,
    ) -> Result<Option<Usage>, StoreError> {
        let (start, end) = period.window(now);
        let mut conn = self.conn.clone();
        let v: Vec<Option<i64>> = self
            .call(
                redis::cmd("HMGET")
                    .arg(self.keys.budget(org, level, id, period, start))
                    .arg(&["spent", "tokens", "reserved", "reserved_tokens"])
                    .query_async(&mut conn),
            )
            .await?;
        let field = |i: usize| v.get(i).copied().flatten();
        let Some(spent) = field(0) else {
            return Ok(None);
        };
        let tokens = |i: usize| field(i).map_or(0, |t| u64::try_from(t).unwrap_or(0));
        Ok(Some(Usage {
            period_start_ms: start,
            period_end_ms: end,
            spent: Picodollars(spent),
            tokens: tokens(1),
            reserved: Picodollars(field(2).unwrap_or(0)),
            reserved_tokens: tokens(3),
        }))
    }

    /// Sends what is queued and rereads the budgets, now.
    pub(super) async fn sync(&self) -> Result<(), StoreError> {
        self.flush().await?;
        self.refresh().await
    }

    pub(super) fn take_alerts(&self) -> Vec<Alert> {
        std::mem::take(&mut *lock(&self.alerts))
    }

    pub(super) fn budgets(&self, now: i64) -> Vec<(Level, String, Budget, Usage)> {
        lock(&self.seen)
            .iter()
            .filter(|(_, s)| s.usage.period_start_ms <= now && now < s.usage.period_end_ms)
            .map(|((level, id), s)| (*level, id.clone(), s.budget.clone(), s.usage.clone()))
            .collect()
    }

    pub(super) fn usage(&self, level: Level, id: &str, period: Period, now: i64) -> Option<Usage> {
        let (start, _) = period.window(now);
        lock(&self.seen)
            .get(&(level, id.to_owned()))
            .filter(|s| s.budget.period == period && s.usage.period_start_ms == start)
            .map(|s| s.usage.clone())
    }
}
