//! The Redis engine: counters, reservations and period spend that every
//! replica shares, so several Tollgate processes enforce one budget and one
//! rate limit as one.
//!
//! Admission is one script call (one round trip) over all of a request's
//! budgets and limits. Settlements queue and go out in one pipeline per
//! batch, off the request's path. Every hold carries a lease on Redis's
//! clock, renewed while its request runs, so the holds of a replica that
//! dies lapse instead of holding budget forever. Budgets not counted yet
//! (a new period, or a Redis that lost its data) are seeded from the
//! ledger, the first replica to get there winning.
//!
//! When Redis cannot be reached the engine either fails open, counting in
//! this process (seeded from the ledger) and adding that spend to Redis
//! when it is back, or fails closed, refusing requests under a quota.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Script, Value};

use super::local::{self, Local};
use super::rules::{self, minute_of, Held, RateKey, MINUTE_MS};
use super::{
    Admission, Alert, Budget, Enforcement, Level, Period, RateView, Rejection, Seed, Usage,
};
use crate::money::Picodollars;

/// What to do when Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Keep serving under limits counted in this process; add what was
    /// spent to Redis when it is back.
    Open,
    /// Refuse requests that a budget or limit applies to.
    Closed,
}

impl FailureMode {
    /// The name, as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

/// Where and how to reach Redis.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[:password@]host:port[/db]`.
    pub url: String,
    /// Prepended to every key, so replicas of one deployment share counters
    /// and other deployments do not.
    pub prefix: String,
    pub on_failure: FailureMode,
    /// How long one call may take before Redis counts as unreachable.
    pub timeout: Duration,
    /// How long a hold outlives a replica that stopped renewing it.
    pub lease: Duration,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry Redis's password.
        f.debug_struct("RedisOptions")
            .field("url", &crate::db::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("on_failure", &self.on_failure)
            .field("timeout", &self.timeout)
            .field("lease", &self.lease)
            .finish()
    }
}

/// Redis's state as this replica sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStatus {
    pub up: bool,
    /// Calls that failed or timed out, since start.
    pub failures: u64,
    /// Requests admitted by this process's own counts while Redis was away.
    pub local_admissions: u64,
}

/// Why Redis could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("unexpected reply: {0}")]
    Reply(String),
}

/// A budget a request holds.
#[derive(Debug, Clone)]
struct BudgetHold {
    level: Level,
    id: String,
    budget: Budget,
    start: i64,
    end: i64,
    /// The counters' key; the leases' key is this with `:l`.
    key: String,
}

/// What one admission took in Redis.
#[derive(Debug)]
pub(super) struct Holds {
    ticket: String,
    budgets: Vec<BudgetHold>,
    rates: Vec<RateKey>,
    pub(super) cost: Picodollars,
    pub(super) tokens: u64,
    pub(super) rate: RateView,
}

/// Work for Redis that is not on a request's path.
#[derive(Debug)]
enum Op {
    Settle {
        holds: Holds,
        cost: i64,
        tokens: u64,
        now: i64,
    },
    /// Spend counted in this process while Redis was away.
    Reconcile {
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
}

/// At most this many settlements wait for Redis; past it the oldest are
/// dropped (the ledger still has them, and reseeding will count them).
const MAX_QUEUE: usize = 100_000;
/// At most this many operations per pipeline.
const BATCH: usize = 512;

pub(super) struct Shared {
    conn: ConnectionManager,
    opts: RedisOptions,
    seed: Seed,
    thresholds_arg: String,
    fallback: Arc<Local>,
    admit_script: Script,
    settle_script: Script,
    seed_script: Script,
    renew_script: Script,
    reconcile_script: Script,
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
            .field("prefix", &self.opts.prefix)
            .field("up", &self.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn script(body: &str) -> Script {
    Script::new(&format!("{}\n{body}", include_str!("lua/prelude.lua")))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn level_tag(level: Level) -> &'static str {
    match level {
        Level::Org => "org",
        Level::Team => "team",
        Level::Key => "key",
    }
}

/// A limit for a script argument: the number, or '' for none.
fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

/// How long, from `now`, a budget's counters are kept: until an hour past
/// its period, or for ever for a lifetime budget. Relative, so that an
/// injected clock and Redis's agree.
fn expiry(end: i64, now: i64) -> String {
    if end == i64::MAX {
        String::new()
    } else {
        (end.saturating_sub(now).max(0) + 3_600_000).to_string()
    }
}

/// The reply of a script as strings.
fn strings(v: Value) -> Result<Vec<String>, StoreError> {
    let Value::Array(items) = v else {
        return Err(StoreError::Reply(format!("{v:?}")));
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::BulkString(b) => {
                String::from_utf8(b).map_err(|e| StoreError::Reply(e.to_string()))
            }
            Value::SimpleString(s) => Ok(s),
            Value::Int(n) => Ok(n.to_string()),
            other => Err(StoreError::Reply(format!("{other:?}"))),
        })
        .collect()
}

fn num<T: std::str::FromStr>(s: Option<&String>) -> Result<T, StoreError> {
    s.and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Reply(format!("not a number: {s:?}")))
}

/// What an admission call answered.
enum Reply {
    /// These budgets (indexes into the call's) are not counted yet.
    Seed(Vec<usize>),
    Done {
        refused: Option<(String, usize)>,
        held: Vec<Held>,
        counts: Vec<(u64, u64, u64)>,
    },
}

impl Shared {
    pub(super) fn new(
        seed: Seed,
        thresholds: Vec<f64>,
        opts: RedisOptions,
        fallback: Arc<Local>,
    ) -> Result<Self, StoreError> {
        let client = redis::Client::open(opts.url.as_str())?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(opts.timeout))
            .set_response_timeout(Some(opts.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        // Lazy: the gateway starts (and fails open or closed) even when
        // Redis is away at start.
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        let thresholds = rules::thousandths(thresholds);
        let thresholds_arg = thresholds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        Ok(Self {
            conn,
            seed,
            thresholds_arg,
            fallback,
            admit_script: script(include_str!("lua/admit.lua")),
            settle_script: script(include_str!("lua/settle.lua")),
            seed_script: script(include_str!("lua/seed.lua")),
            renew_script: script(include_str!("lua/renew.lua")),
            reconcile_script: script(include_str!("lua/reconcile.lua")),
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

    fn budget_key(&self, level: Level, id: &str, period: Period, start: i64) -> String {
        format!(
            "{}:b:{}:{id}:{}:{start}",
            self.opts.prefix,
            level_tag(level),
            period.name()
        )
    }

    fn rate_base(&self, key: &RateKey) -> String {
        let model = key.2.as_deref().map_or("all".into(), |m| format!("m/{m}"));
        format!(
            "{}:r:{}:{}:{model}",
            self.opts.prefix,
            level_tag(key.0),
            key.1
        )
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

    async fn call<T: redis::FromRedisValue>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.opts.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StoreError::Timeout(self.opts.timeout)),
        }
    }

    /// Admits `a` through Redis. `Err` means Redis could not be used.
    pub(super) async fn admit(
        self: &Arc<Self>,
        a: &Admission<'_>,
    ) -> Result<Result<Holds, Box<Rejection>>, StoreError> {
        let now = a.now_ms;
        let minute = minute_of(now);
        let mut budgets: Vec<BudgetHold> = a
            .levels
            .iter()
            .filter_map(|(level, id, quota)| {
                let budget = quota.budget.as_ref()?;
                let (start, end) = budget.period.window(now);
                Some(BudgetHold {
                    level: *level,
                    id: (*id).to_owned(),
                    budget: budget.clone(),
                    start,
                    end,
                    key: self.budget_key(*level, id, budget.period, start),
                })
            })
            .collect();
        let limited = rules::rate_limits(a);
        let ticket = format!(
            "{}-{}",
            self.replica,
            self.issued.fetch_add(1, Ordering::Relaxed)
        );
        for _round in 0..3 {
            let reply = self
                .call_admit(a, &ticket, &budgets, &limited, minute)
                .await
                .inspect_err(|e| self.failed(e))?;
            let (refused, held, counts) = match reply {
                Reply::Seed(missing) => {
                    let seeded = self
                        .seed_budgets(&mut budgets, &missing, now)
                        .await
                        .inspect_err(|e| self.failed(e))?;
                    if let Err(level) = seeded {
                        let view = view_of(&limited, &[], minute, now);
                        return Ok(Err(rules::unknown_budget(level, view)));
                    }
                    continue;
                }
                Reply::Done {
                    refused,
                    held,
                    counts,
                } => (refused, held, counts),
            };
            self.remember(&budgets, &held);
            let view = view_of(&limited, &counts, minute, now);
            if let Some((what, i)) = refused {
                let rejection = match what.as_str() {
                    "budget" => budgets.get(i).zip(held.get(i)).and_then(|(b, h)| {
                        rules::check_budget(
                            b.level,
                            &b.budget,
                            *h,
                            (a.cost.0, a.tokens),
                            b.end,
                            now,
                            view,
                        )
                        .err()
                    }),
                    _ => limited.get(i).zip(counts.get(i)).and_then(|((k, r), c)| {
                        rules::check_rates(k, r, *c, a.new_request, minute, now, view).err()
                    }),
                };
                // The script and these rules agree; should they not, the
                // script's refusal stands, in general words.
                let level = match what.as_str() {
                    "budget" => budgets.get(i).map(|b| b.level),
                    _ => limited.get(i).map(|(k, _)| k.0),
                }
                .unwrap_or(Level::Key);
                return Ok(Err(
                    rejection.unwrap_or_else(|| rules::unknown_budget(level, view))
                ));
            }
            // Admitted: the view counts this request too.
            let after: Vec<(u64, u64, u64)> = counts
                .iter()
                .map(|(r, t, f)| (r + u64::from(a.new_request), *t, f + 1))
                .collect();
            let leases = budgets
                .iter()
                .map(|b| format!("{}:l", b.key))
                .chain(
                    limited
                        .iter()
                        .map(|(k, _)| format!("{}:f", self.rate_base(k))),
                )
                .collect();
            lock(&self.live).insert(ticket.clone(), leases);
            let rate = view_of(&limited, &after, minute, now);
            return Ok(Ok(Holds {
                ticket,
                budgets,
                rates: limited.into_iter().map(|(k, _)| k).collect(),
                cost: a.cost,
                tokens: a.tokens,
                rate,
            }));
        }
        let level = budgets.first().map_or(Level::Key, |b| b.level);
        let view = view_of(&limited, &[], minute, now);
        Ok(Err(rules::unknown_budget(level, view)))
    }

    async fn call_admit(
        &self,
        a: &Admission<'_>,
        ticket: &str,
        budgets: &[BudgetHold],
        limited: &[(RateKey, super::Rates)],
        minute: i64,
    ) -> Result<Reply, StoreError> {
        let mut inv = self.admit_script.prepare_invoke();
        inv.arg(ticket)
            .arg(a.cost.0.to_string())
            .arg(a.tokens.to_string())
            .arg(if a.new_request { "1" } else { "0" })
            .arg(budgets.len())
            .arg(limited.len())
            .arg(self.opts.lease.as_millis().to_string());
        for b in budgets {
            inv.key(&b.key).key(format!("{}:l", b.key));
            inv.arg(if b.budget.enforcement == Enforcement::Hard {
                "1"
            } else {
                "0"
            })
            .arg(opt(b.budget.limit_cost().map(|c| c.0)))
            .arg(opt(b.budget.limit_tokens))
            .arg(expiry(b.end, a.now_ms));
        }
        for (key, rates) in limited {
            let base = self.rate_base(key);
            inv.key(format!("{base}:{minute}")).key(format!("{base}:f"));
            inv.arg(opt(rates.rpm))
                .arg(opt(rates.tpm))
                .arg(opt(rates.max_concurrent))
                .arg((minute + 2 * MINUTE_MS - a.now_ms).to_string());
        }
        let mut conn = self.conn.clone();
        let v: Value = self.call(inv.invoke_async(&mut conn)).await?;
        let out = strings(v)?;
        if out.first().map(String::as_str) == Some("seed") {
            let missing = out[1..]
                .iter()
                .filter_map(|s| s.parse::<usize>().ok())
                .filter_map(|i| i.checked_sub(1))
                .collect();
            return Ok(Reply::Seed(missing));
        }
        let refused = match out.first().map(String::as_str) {
            Some("ok") => None,
            Some("refused") => {
                let i: usize = num(out.get(2))?;
                Some((out.get(1).cloned().unwrap_or_default(), i.saturating_sub(1)))
            }
            _ => return Err(StoreError::Reply(format!("{out:?}"))),
        };
        let mut rest = out.iter().skip(3);
        let mut held = Vec::with_capacity(budgets.len());
        for _ in budgets {
            held.push(Held {
                spent: num(rest.next())?,
                tokens: num(rest.next())?,
                reserved: num(rest.next())?,
                reserved_tokens: num(rest.next())?,
            });
        }
        let mut counts = Vec::with_capacity(limited.len());
        for _ in limited {
            counts.push((num(rest.next())?, num(rest.next())?, num(rest.next())?));
        }
        Ok(Reply::Done {
            refused,
            held,
            counts,
        })
    }

    /// Seeds the budgets at `missing` from the ledger. A soft budget whose
    /// spend cannot be read is left out of this admission; a hard one
    /// refuses it (the inner `Err` names its level). The outer `Err` is
    /// Redis failing.
    async fn seed_budgets(
        &self,
        budgets: &mut Vec<BudgetHold>,
        missing: &[usize],
        now: i64,
    ) -> Result<Result<(), Level>, StoreError> {
        let _one_at_a_time = self.seeding.lock().await;
        let mut inv = self.seed_script.prepare_invoke();
        let mut unreadable = Vec::new();
        for &i in missing {
            let Some(b) = budgets.get(i) else { continue };
            let window = b.budget.period.window(now);
            match self.seed.spent(b.level, &b.id, window).await {
                Ok((spent, tokens)) => {
                    inv.key(&b.key)
                        .arg(spent.0.to_string())
                        .arg(tokens.to_string())
                        .arg(expiry(b.end, now));
                }
                Err(e) => {
                    tracing::warn!(level = b.level.name(), id = %b.id, error = %e, "budget spend could not be read from the ledger");
                    if b.budget.enforcement == Enforcement::Hard {
                        return Ok(Err(b.level));
                    }
                    unreadable.push(i);
                }
            }
        }
        let mut conn = self.conn.clone();
        let _: Value = self.call(inv.invoke_async(&mut conn)).await?;
        for i in unreadable.into_iter().rev() {
            budgets.remove(i);
        }
        Ok(Ok(()))
    }

    /// Keeps what Redis said of each budget, for `usage` and the gauges.
    fn remember(&self, budgets: &[BudgetHold], held: &[Held]) {
        let mut seen = lock(&self.seen);
        for (b, h) in budgets.iter().zip(held) {
            seen.insert(
                (b.level, b.id.clone()),
                Seen {
                    budget: b.budget.clone(),
                    key: b.key.clone(),
                    usage: Usage {
                        period_start_ms: b.start,
                        period_end_ms: b.end,
                        spent: Picodollars(h.spent),
                        tokens: h.tokens,
                        reserved: Picodollars(h.reserved),
                        reserved_tokens: h.reserved_tokens,
                    },
                },
            );
        }
    }

    /// Queues a settlement; it reaches Redis with the next batch.
    pub(super) fn settle(&self, holds: Holds, cost: Picodollars, tokens: u64, now: i64) {
        lock(&self.live).remove(&holds.ticket);
        self.push(Op::Settle {
            holds,
            cost: cost.0,
            tokens,
            now,
        });
    }

    /// Queues spend counted in this process while Redis was away.
    pub(super) fn reconcile(&self, holds: &local::Holds, cost: Picodollars, tokens: u64) {
        if cost.0 == 0 && tokens == 0 {
            return;
        }
        let keys: Vec<String> = holds
            .budget_windows()
            .map(|(level, id, period, start)| self.budget_key(level, id, period, start))
            .collect();
        if !keys.is_empty() {
            self.push(Op::Reconcile {
                keys,
                cost: cost.0,
                tokens,
            });
        }
    }

    fn push(&self, op: Op) {
        let mut q = lock(&self.queue);
        if q.len() >= MAX_QUEUE {
            q.pop_front();
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed);
            // One line per 10,000, not one per request.
            if dropped.is_multiple_of(10_000) {
                tracing::warn!(dropped = dropped + 1, "quota settlements are backing up while Redis is away; the oldest are dropped (the ledger still has them)");
            }
        }
        q.push_back(op);
        drop(q);
        self.wake.notify_one();
    }

    /// Sends queued settlements in batches until the queue is empty or
    /// Redis cannot be reached (the batch is then put back, in order). The
    /// scripts are loaded once, and again only when Redis says it lost them;
    /// only the operations it refused are sent again, so none counts twice.
    async fn flush(&self) -> Result<usize, StoreError> {
        let _one_at_a_time = self.flushing.lock().await;
        let mut sent = 0;
        let mut reloads = 0;
        loop {
            let batch: Vec<Op> = {
                let mut q = lock(&self.queue);
                let n = q.len().min(BATCH);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                return Ok(sent);
            }
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            let invocations: Vec<_> = batch.iter().map(|op| self.invocation(op)).collect();
            for inv in &invocations {
                pipe.invoke_script(inv);
            }
            let mut conn = self.conn.clone();
            let replies: Result<Vec<redis::RedisResult<Value>>, _> =
                self.call(pipe.query_async(&mut conn)).await;
            drop(invocations);
            let replies = match replies {
                Ok(replies) => replies,
                Err(e) => {
                    let mut q = lock(&self.queue);
                    for op in batch.into_iter().rev() {
                        q.push_front(op);
                    }
                    return Err(e);
                }
            };
            let mut again = Vec::new();
            for (op, reply) in batch.into_iter().zip(replies) {
                match reply {
                    Ok(v) => {
                        if let Op::Settle { holds, .. } = &op {
                            self.raise(holds, v);
                        }
                        sent += 1;
                    }
                    Err(e)
                        if e.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                    {
                        again.push(op);
                    }
                    Err(e) => {
                        // Redis answered and refused: sending it again would
                        // be refused again.
                        self.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, "Redis refused a quota settlement; it is dropped (the ledger has the request)");
                    }
                }
            }
            if !again.is_empty() {
                reloads += 1;
                {
                    let mut q = lock(&self.queue);
                    for op in again.into_iter().rev() {
                        q.push_front(op);
                    }
                }
                if reloads > 2 {
                    return Err(StoreError::Reply(
                        "the quota scripts do not stay loaded".into(),
                    ));
                }
                let mut load = redis::pipe();
                load.load_script(&self.settle_script)
                    .load_script(&self.reconcile_script);
                let _: Vec<String> = self.call(load.query_async(&mut conn)).await?;
            }
        }
    }

    fn invocation(&self, op: &Op) -> redis::ScriptInvocation<'_> {
        match op {
            Op::Settle {
                holds,
                cost,
                tokens,
                now,
            } => {
                let minute = minute_of(*now);
                let mut inv = self.settle_script.prepare_invoke();
                inv.arg(&holds.ticket)
                    .arg(cost.to_string())
                    .arg(tokens.to_string())
                    .arg(holds.budgets.len())
                    .arg(holds.rates.len())
                    .arg(&self.thresholds_arg);
                for b in &holds.budgets {
                    inv.key(&b.key).key(format!("{}:l", b.key));
                    inv.arg(opt(b.budget.limit_cost().map(|c| c.0)))
                        .arg(opt(b.budget.limit_tokens));
                }
                for key in &holds.rates {
                    let base = self.rate_base(key);
                    inv.key(format!("{base}:f")).key(format!("{base}:{minute}"));
                    inv.arg((minute + 2 * MINUTE_MS - now).to_string());
                }
                inv
            }
            Op::Reconcile { keys, cost, tokens } => {
                let mut inv = self.reconcile_script.prepare_invoke();
                for k in keys {
                    inv.key(k).arg(cost.to_string()).arg(tokens.to_string());
                }
                inv
            }
        }
    }

    /// The alerts a settlement claimed.
    fn raise(&self, holds: &Holds, reply: Value) {
        let Ok(out) = strings(reply) else { return };
        let mut raised = Vec::new();
        for chunk in out.chunks_exact(4) {
            let (Ok(i), Ok(t)) = (chunk[0].parse::<usize>(), chunk[2].parse::<u64>()) else {
                continue;
            };
            let Some(b) = i.checked_sub(1).and_then(|i| holds.budgets.get(i)) else {
                continue;
            };
            let used: f64 = chunk[3].parse().unwrap_or(0.0);
            let (unit, used, limit) = if chunk[1] == "usd" {
                let limit = b.budget.limit_cost().map_or(0.0, |l| l.0 as f64 / 1e12);
                ("usd", used / 1e12, limit)
            } else {
                ("tokens", used, b.budget.limit_tokens.unwrap_or(0) as f64)
            };
            raised.push(Alert {
                level: b.level,
                id: b.id.clone(),
                period: b.budget.period,
                enforcement: b.budget.enforcement,
                threshold: t as f64 / 1000.0,
                unit,
                used,
                limit,
                period_start_ms: b.start,
            });
        }
        if !raised.is_empty() {
            lock(&self.alerts).extend(raised);
        }
    }

    /// Extends the leases of every ticket in flight, in one call.
    async fn renew(&self) -> Result<(), StoreError> {
        let live: Vec<(String, Vec<String>)> = lock(&self.live)
            .iter()
            .map(|(t, keys)| (t.clone(), keys.clone()))
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let mut inv = self.renew_script.prepare_invoke();
        inv.arg(self.opts.lease.as_millis().to_string());
        for (ticket, keys) in &live {
            for k in keys {
                inv.key(k).arg(ticket);
            }
        }
        let mut conn = self.conn.clone();
        let _: Value = self.call(inv.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// Reads every budget this replica has seen, for `usage` and gauges.
    async fn refresh(&self) -> Result<(), StoreError> {
        let seen: Vec<((Level, String), String)> = lock(&self.seen)
            .iter()
            .map(|(k, s)| (k.clone(), s.key.clone()))
            .collect();
        if seen.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (_, key) in &seen {
            pipe.cmd("HMGET")
                .arg(key)
                .arg(&["spent", "tokens", "reserved", "reserved_tokens"]);
        }
        let mut conn = self.conn.clone();
        let replies: Vec<Vec<Option<String>>> = self.call(pipe.query_async(&mut conn)).await?;
        let mut map = lock(&self.seen);
        for ((k, key), v) in seen.into_iter().zip(replies) {
            let Some(s) = map.get_mut(&k).filter(|s| s.key == key) else {
                continue;
            };
            let field = |i: usize| v.get(i).cloned().flatten().and_then(|s| s.parse().ok());
            s.usage.spent = Picodollars(field(0).unwrap_or(0));
            s.usage.tokens = field(1).map_or(0, |t: i64| t.max(0) as u64);
            s.usage.reserved = Picodollars(field(2).unwrap_or(0));
            s.usage.reserved_tokens = field(3).map_or(0, |t: i64| t.max(0) as u64);
        }
        Ok(())
    }

    /// What a budget has used, read from Redis now; `None` when it has no
    /// counters there yet.
    pub(super) async fn read(
        &self,
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
                    .arg(self.budget_key(level, id, period, start))
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

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = self.call(redis::cmd("PING").query_async(&mut conn)).await?;
        Ok(())
    }

    /// Settles, renews, refreshes, and watches for Redis coming back,
    /// until `stop`; then sends what is still queued, if Redis answers.
    pub(super) async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let renew_every = (self.opts.lease / 3).max(Duration::from_millis(100));
        let mut last_renew = tokio::time::Instant::now();
        let mut last_refresh = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = self.wake.notified() => {}
                _ = tick.tick() => {}
            }
            if !self.is_up() {
                if self.ping().await.is_err() {
                    continue;
                }
                self.back_up().await;
            }
            if let Err(e) = self.flush().await {
                self.failed(&e);
                continue;
            }
            if last_renew.elapsed() >= renew_every {
                last_renew = tokio::time::Instant::now();
                if let Err(e) = self.renew().await {
                    self.failed(&e);
                    continue;
                }
            }
            if last_refresh.elapsed() >= Duration::from_secs(1) {
                last_refresh = tokio::time::Instant::now();
                if let Err(e) = self.refresh().await {
                    self.failed(&e);
                }
            }
        }
        if self.is_up() || self.ping().await.is_ok() {
            if let Err(e) = self.flush().await {
                tracing::warn!(error = %e, "quota settlements could not reach Redis at shutdown; reseeding from the ledger will count them");
            }
        }
    }

    /// Redis answers again: send what was counted meanwhile, and start the
    /// next outage's local counts afresh from the ledger.
    async fn back_up(&self) {
        let queued = lock(&self.queue).len();
        match self.flush().await {
            Ok(_) => {
                self.fallback.clear();
                self.up.store(true, Ordering::SeqCst);
                tracing::info!(
                    reconciled = queued,
                    "Redis is reachable again: budgets and limits are shared again"
                );
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "Redis answered but settlements did not go through");
            }
        }
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

/// The tightest windows of `limited`, given each one's counts.
fn view_of(
    limited: &[(RateKey, super::Rates)],
    counts: &[(u64, u64, u64)],
    minute: i64,
    now: i64,
) -> RateView {
    let used = limited.iter().enumerate().map(|(i, (_, r))| {
        let (req, tok, _) = counts.get(i).copied().unwrap_or((0, 0, 0));
        (r, (req, tok))
    });
    rules::rate_view(used, minute, now)
}

#[cfg(test)]
mod tests {
    #[test]
    fn options_never_show_the_password() {
        let opts = super::RedisOptions {
            url: "redis://:hunter2@127.0.0.1:6379/0".into(),
            prefix: "tollgate".into(),
            on_failure: super::FailureMode::Open,
            timeout: std::time::Duration::from_millis(250),
            lease: std::time::Duration::from_secs(30),
        };
        let shown = format!("{opts:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redis://:***@127.0.0.1:6379/0"), "{shown}");
    }
}
