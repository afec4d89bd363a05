//! The Redis engine's work off the request path: settlements and
//! reconciliations sent in batches, leases renewed, the budgets this
//! replica counts reread, and Redis watched while it is away.
//!
//! Each operation touches one organization's slot. On one server a batch
//! is one pipeline; on a cluster each operation is its own call (the
//! client multiplexes them over one connection per node), so each is
//! routed to its slot's primary and redirected on its own. Renewals are
//! one script call per slot.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::join_all;
use redis::{RedisResult, Value};

use super::super::rules::{minute_of, MINUTE_MS};
use super::super::{Alert, Level, Usage};
use super::admit::{opt, strings, supersedes};
use super::conn::transient;
use super::keys::{in_flight, leases, minute as minute_key};
use super::{lock, Holds, Op, Shared, StoreError};
use crate::money::Picodollars;

/// One budget as a reread found it.
struct Reread {
    id: (Level, String),
    key: String,
    /// The version of the counts kept when the read began.
    version: u64,
    spent: Picodollars,
    tokens: u64,
    reserved: Picodollars,
    reserved_tokens: u64,
}

/// At most this many settlements wait for Redis; past it the oldest are
/// dropped (the ledger still has them, and reseeding will count them).
const MAX_QUEUE: usize = 100_000;
/// At most this many operations per batch.
const BATCH: usize = 512;

/// How long Redis remembers that a settlement or reconciliation ran, so
/// that one sent again (its reply was lost to a timeout after Redis ran
/// it, or a restart found its request's row in the spool) does not count
/// twice: about 100 bytes of Redis per request for this long.
pub const SETTLED_MEMORY_MS: i64 = 600_000;

impl Shared {
    pub(super) fn push(&self, op: Op) {
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

    /// Sends queued operations in batches until the queue is empty or
    /// Redis cannot be reached (what did not go through is put back, in
    /// order). Only operations Redis did not run are sent again, so none
    /// counts twice; one Redis refused outright is dropped.
    pub(super) async fn flush(&self) -> Result<usize, StoreError> {
        let _one_at_a_time = self.flushing.lock().await;
        let mut sent = 0;
        loop {
            let batch: Vec<Op> = {
                let mut q = lock(&self.queue);
                let n = q.len().min(BATCH);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                return Ok(sent);
            }
            let replies = match self.send(&batch).await {
                Ok(replies) => replies,
                Err(e) => {
                    self.put_back(batch);
                    return Err(e);
                }
            };
            let mut again = Vec::new();
            let mut fault = None;
            for (op, reply) in batch.into_iter().zip(replies) {
                match reply {
                    Ok(v) => {
                        if let Op::Settle { holds, .. } = &op {
                            self.raise(holds, v);
                        }
                        sent += 1;
                    }
                    Err(e)
                        if matches!(&e, StoreError::Timeout(_))
                            || matches!(&e, StoreError::Redis(r) if transient(r)) =>
                    {
                        again.push(op);
                        fault.get_or_insert(e);
                    }
                    Err(e) => {
                        // Redis answered and refused: sending it again would
                        // be refused again.
                        self.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, "Redis refused a quota settlement; it is dropped (the ledger has the request)");
                    }
                }
            }
            if let Some(e) = fault {
                self.put_back(again);
                return Err(e);
            }
        }
    }

    fn put_back(&self, ops: Vec<Op>) {
        let mut q = lock(&self.queue);
        for op in ops.into_iter().rev() {
            q.push_front(op);
        }
    }

    /// Sends `batch`; one reply per operation. `Err` when none could be
    /// sent.
    async fn send(&self, batch: &[Op]) -> Result<Vec<Result<Value, StoreError>>, StoreError> {
        if self.conn.is_cluster() {
            let calls = batch.iter().map(|op| async move {
                let mut conn = self.conn.clone();
                self.call(self.invocation(op).invoke_async(&mut conn)).await
            });
            return Ok(join_all(calls).await);
        }
        // One server: one pipeline. Scripts it lost (a restart) are loaded
        // again, and only the operations it did not run are sent again.
        let mut replies: Vec<Option<Result<Value, StoreError>>> =
            std::iter::repeat_with(|| None).take(batch.len()).collect();
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        let mut conn = self.conn.clone();
        for reload in 0..3 {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            let invocations: Vec<_> = pending
                .iter()
                .map(|&i| self.invocation(&batch[i]))
                .collect();
            for inv in &invocations {
                pipe.invoke_script(inv);
            }
            let got: Vec<RedisResult<Value>> = self.call(pipe.query_async(&mut conn)).await?;
            drop(invocations);
            let mut lost = Vec::new();
            for (i, reply) in pending.into_iter().zip(got) {
                match reply {
                    Err(e)
                        if e.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
                            && reload < 2 =>
                    {
                        lost.push(i);
                    }
                    other => replies[i] = Some(other.map_err(StoreError::from)),
                }
            }
            if lost.is_empty() {
                break;
            }
            pending = lost;
            let mut load = redis::pipe();
            load.load_script(&self.scripts.settle)
                .load_script(&self.scripts.reconcile);
            let _: Vec<String> = self.call(load.query_async(&mut conn)).await?;
        }
        Ok(replies
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::Reply("not sent".into()))))
            .collect())
    }

    fn invocation(&self, op: &Op) -> redis::ScriptInvocation<'_> {
        match op {
            Op::Settle {
                id,
                holds,
                cost,
                tokens,
                now,
            } => {
                let minute = minute_of(*now);
                let mut inv = self.scripts.settle.prepare_invoke();
                inv.arg(&holds.ticket)
                    .arg(cost.to_string())
                    .arg(tokens.to_string())
                    .arg(holds.budgets.len())
                    .arg(holds.rates.len())
                    .arg(&self.thresholds_arg);
                for b in &holds.budgets {
                    inv.key(&b.key).key(leases(&b.key));
                    inv.arg(opt(b.budget.limit_cost().map(|c| c.0)))
                        .arg(opt(b.budget.limit_tokens));
                }
                for base in &holds.rates {
                    inv.key(in_flight(base)).key(minute_key(base, minute));
                    inv.arg((minute + 2 * MINUTE_MS - now).to_string());
                }
                // In the organization's slot, like every key above.
                inv.key(self.keys.done(&holds.org, id))
                    .arg(SETTLED_MEMORY_MS);
                inv
            }
            Op::Reconcile {
                id,
                org,
                keys,
                cost,
                tokens,
            } => {
                let mut inv = self.scripts.reconcile.prepare_invoke();
                for k in keys {
                    inv.key(k).arg(cost.to_string()).arg(tokens.to_string());
                }
                inv.key(self.keys.done(org, id)).arg(SETTLED_MEMORY_MS);
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

    /// Extends the leases of every ticket in flight: one call per slot
    /// (one call in all on one server).
    async fn renew(&self) -> Result<(), StoreError> {
        let mut by_slot: HashMap<_, Vec<(String, String)>> = HashMap::new();
        for (ticket, keys) in lock(&self.live).iter() {
            for k in keys {
                by_slot
                    .entry(self.conn.slot(k))
                    .or_default()
                    .push((k.clone(), ticket.clone()));
            }
        }
        let lease = self.opts.lease.as_millis().to_string();
        let calls = by_slot.values().map(|leases| {
            let mut inv = self.scripts.renew.prepare_invoke();
            inv.arg(&lease);
            for (k, ticket) in leases {
                inv.key(k).arg(ticket);
            }
            async move {
                let mut conn = self.conn.clone();
                let _: Value = self.call(inv.invoke_async(&mut conn)).await?;
                Ok::<_, StoreError>(())
            }
        });
        join_all(calls).await.into_iter().collect()
    }

    /// Reads every budget this replica has seen, for `usage` and gauges.
    pub(super) async fn refresh(&self) -> Result<(), StoreError> {
        let read = self.reread().await?;
        self.apply_reread(read);
        Ok(())
    }

    /// Every budget this replica has seen, as Redis has it now, with the
    /// version of the counts kept when the read began.
    async fn reread(&self) -> Result<Vec<Reread>, StoreError> {
        let seen: Vec<_> = lock(&self.seen)
            .iter()
            .map(|(k, s)| (k.clone(), s.key.clone(), s.version))
            .collect();
        if seen.is_empty() {
            return Ok(Vec::new());
        }
        let read = |key: &str| {
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(key)
                .arg(&["spent", "tokens", "reserved", "reserved_tokens"]);
            cmd
        };
        let replies: Vec<Vec<Option<String>>> = if self.conn.is_cluster() {
            let calls = seen.iter().map(|(_, key, _)| async move {
                let mut conn = self.conn.clone();
                self.call(read(key).query_async(&mut conn)).await
            });
            join_all(calls)
                .await
                .into_iter()
                .collect::<Result<_, _>>()?
        } else {
            let mut pipe = redis::pipe();
            for (_, key, _) in &seen {
                pipe.add_command(read(key));
            }
            let mut conn = self.conn.clone();
            self.call(pipe.query_async(&mut conn)).await?
        };
        Ok(seen
            .into_iter()
            .zip(replies)
            .map(|((id, key, version), v)| {
                let field = |i: usize| v.get(i).cloned().flatten().and_then(|s| s.parse().ok());
                Reread {
                    id,
                    key,
                    version,
                    spent: Picodollars(field(0).unwrap_or(0)),
                    tokens: field(1).map_or(0, |t: i64| t.max(0) as u64),
                    reserved: Picodollars(field(2).unwrap_or(0)),
                    reserved_tokens: field(3).map_or(0, |t: i64| t.max(0) as u64),
                }
            })
            .collect())
    }

    /// Keeps what a reread found. Counts an admission or settlement changed
    /// while the read was under way stay, unless the read is newer than
    /// them in Redis's order ([`supersedes`]): it may be older, and taking
    /// back a hold they showed would leave an outage's local counts short.
    fn apply_reread(&self, read: Vec<Reread>) {
        let mut map = lock(&self.seen);
        for r in read {
            let Some(s) = map.get_mut(&r.id).filter(|s| s.key == r.key) else {
                continue;
            };
            let usage = Usage {
                spent: r.spent,
                tokens: r.tokens,
                reserved: r.reserved,
                reserved_tokens: r.reserved_tokens,
                ..s.usage.clone()
            };
            if s.version == r.version || supersedes(&s.usage, &usage) {
                s.usage = usage;
            }
        }
    }

    /// Whether Redis answers (on a cluster, every primary).
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: Value = self.call(redis::cmd("PING").query_async(&mut conn)).await?;
        Ok(())
    }

    /// Settles, renews, refreshes, and watches for Redis coming back,
    /// until `stop`; then sends what is still queued, if Redis answers.
    pub(in super::super) async fn run(&self, stop: impl std::future::Future<Output = ()>) {
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
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::quota::{
        Admission, Budget, Enforcement, FailureMode, Held, Level, Period, Quota, QuotaEngine, Seed,
        Ticket,
    };

    /// A Redis engine, and a hard $100 monthly budget to put over an
    /// organization.
    fn engine_under_a_hard_budget(r: &crate::testing::TestRedis) -> (QuotaEngine, Quota) {
        let engine =
            QuotaEngine::redis(Seed::Empty, vec![], r.options(&r.url, FailureMode::Closed))
                .unwrap_or_else(|e| panic!("{e}"));
        let quota = Quota {
            budget: Some(Budget {
                limit_usd: Some(100.0),
                limit_tokens: None,
                period: Period::Monthly,
                enforcement: Enforcement::Hard,
            }),
            limits: None,
        };
        (engine, quota)
    }

    /// Admits a request of `cost` (and 10 tokens) under organization `o`
    /// with `quota`.
    async fn admit(engine: &QuotaEngine, quota: &Quota, cost: i64, now: i64) -> Ticket {
        let none = Quota::default();
        engine
            .admit(&Admission {
                levels: [
                    (Level::Org, "o", quota),
                    (Level::Team, "t", &none),
                    (Level::Key, "k", &none),
                ],
                model: "m",
                cost: Picodollars(cost),
                tokens: 10,
                new_request: true,
                now_ms: now,
            })
            .await
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// A settlement Redis ran whose reply was lost is sent again with the
    /// next batch: it must count once.
    #[tokio::test]
    async fn a_settlement_or_reconciliation_sent_twice_counts_once() {
        let Some(r) = crate::testing::TestRedis::new() else {
            return;
        };
        let (engine, quota) = engine_under_a_hard_budget(&r);
        let now = crate::db::now_ms();
        let ticket = admit(&engine, &quota, 1_000, now).await;
        let Some(Held::Shared(shared, holds)) = ticket.held.clone() else {
            panic!("admitted in Redis");
        };
        let settle = || Op::Settle {
            id: holds.ticket.clone(),
            holds: holds.clone(),
            cost: 700,
            tokens: 9,
            now,
        };
        let keys: Vec<String> = holds.budgets.iter().map(|b| b.key.clone()).collect();
        let reconcile = || Op::Reconcile {
            id: "replica-r1".into(),
            org: "o".into(),
            keys: keys.clone(),
            cost: 50,
            tokens: 1,
        };
        let replies = shared
            .send(&[settle(), settle(), reconcile(), reconcile()])
            .await
            .unwrap();
        assert!(replies.iter().all(Result::is_ok));
        // The ticket's own settlement (dropped unsettled) comes too late.
        drop(ticket);
        engine.sync().await.unwrap();
        let used = engine
            .current_usage("o", Level::Org, "o", Period::Monthly, now)
            .await
            .unwrap();
        assert_eq!(used.spent, Picodollars(750));
        assert_eq!(used.tokens, 10);
        assert_eq!(used.reserved, Picodollars(0));
    }

    /// The background reread can be older than an admission whose reply
    /// was read while it was under way: it must not take back that
    /// admission's hold (an outage's local counts start from these, and a
    /// budget counted short lets a request past its limit). With nothing
    /// in between, a reread replaces the counts kept.
    #[tokio::test]
    async fn a_reread_older_than_an_admission_does_not_take_back_its_hold() {
        let Some(r) = crate::testing::TestRedis::new() else {
            return;
        };
        let (engine, quota) = engine_under_a_hard_budget(&r);
        let now = crate::db::now_ms();
        let admit = |cost: i64| admit(&engine, &quota, cost, now);
        let reserved = || {
            engine
                .usage(Level::Org, "o", Period::Monthly, now)
                .unwrap()
                .reserved
        };
        let first = admit(1_000).await;
        let Some(Held::Shared(shared, _)) = first.held.clone() else {
            panic!("admitted in Redis");
        };
        let read = shared.reread().await.unwrap();
        let second = admit(500).await;
        assert_eq!(reserved(), Picodollars(1_500));
        shared.apply_reread(read);
        assert_eq!(reserved(), Picodollars(1_500), "the older read is not kept");

        // The first settles for 700 and lands; a read taken then is older
        // than a third admission read before it is applied.
        first.settle(Picodollars(700), 9, now);
        engine.sync().await.unwrap();
        let read = shared.reread().await.unwrap();
        let third = admit(200).await;
        shared.apply_reread(read);
        assert_eq!(reserved(), Picodollars(700));

        // Nothing in between: the read stands, down as well as up.
        drop((second, third));
        shared.flush().await.unwrap();
        let read = shared.reread().await.unwrap();
        shared.apply_reread(read);
        let used = engine.usage(Level::Org, "o", Period::Monthly, now).unwrap();
        assert_eq!(
            (used.spent, used.reserved),
            (Picodollars(700), Picodollars(0))
        );
    }
}
