//! Admission through Redis: one script call over every budget and rate
//! limit of a request (all keys of its organization's slot), and seeding
//! budgets Redis does not count yet from the ledger.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use redis::Value;

use super::super::rules::{self, minute_of, Held, RateKey, MINUTE_MS};
use super::super::{Admission, Enforcement, Level, RateView, Rates, Rejection, Usage};
use super::keys::{in_flight, leases, minute as minute_key};
use super::{lock, BudgetHold, Holds, Seen, Shared, StoreError};
use crate::money::Picodollars;

/// A limit for a script argument: the number, or '' for none.
pub(super) fn opt<T: ToString>(v: Option<T>) -> String {
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
pub(super) fn strings(v: Value) -> Result<Vec<String>, StoreError> {
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

/// `n` budgets' counters as a script lists them: spent, tokens, reserved,
/// reserved tokens, each.
fn read_held<'a>(
    rest: &mut impl Iterator<Item = &'a String>,
    n: usize,
) -> Result<Vec<Held>, StoreError> {
    (0..n)
        .map(|_| {
            Ok(Held {
                spent: num(rest.next())?,
                tokens: num(rest.next())?,
                reserved: num(rest.next())?,
                reserved_tokens: num(rest.next())?,
            })
        })
        .collect()
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

/// A rate limit over a request: its identity, the start of its keys, its
/// limits.
type Limited = (RateKey, String, Rates);

impl Shared {
    /// Admits `a` through Redis. `Err` means Redis could not be used.
    pub(in super::super) async fn admit(
        self: &Arc<Self>,
        a: &Admission<'_>,
    ) -> Result<Result<Holds, Box<Rejection>>, StoreError> {
        let now = a.now_ms;
        let minute = minute_of(now);
        let org = a.org();
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
                    key: self.keys.budget(org, *level, id, budget.period, start),
                })
            })
            .collect();
        let limited: Vec<Limited> = rules::rate_limits(a)
            .into_iter()
            .map(|(k, r)| {
                let base = self.keys.rate(org, &k);
                (k, base, r)
            })
            .collect();
        let ticket = format!(
            "{}-{}",
            self.replica,
            self.issued.fetch_add(1, Ordering::Relaxed)
        );
        if budgets.is_empty() && limited.is_empty() {
            // Nothing over this request is counted: nothing to ask Redis.
            return Ok(Ok(Holds {
                ticket,
                org: org.to_owned(),
                budgets,
                rates: Vec::new(),
                cost: a.cost,
                tokens: a.tokens,
                rate: RateView::default(),
            }));
        }
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
            // Redis answered its counts from before this request; once
            // admitted, its reservation is held there too.
            let admitted = refused.is_none().then_some((a.cost.0, a.tokens));
            self.remember(&budgets, &held, admitted);
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
                    _ => limited
                        .get(i)
                        .zip(counts.get(i))
                        .and_then(|((k, _, r), c)| {
                            rules::check_rates(k, r, *c, a.new_request, minute, now, view).err()
                        }),
                };
                // The script and these rules agree; should they not, the
                // script's refusal stands, in general words.
                let level = match what.as_str() {
                    "budget" => budgets.get(i).map(|b| b.level),
                    _ => limited.get(i).map(|(k, _, _)| k.0),
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
            let lease_keys = budgets
                .iter()
                .map(|b| leases(&b.key))
                .chain(limited.iter().map(|(_, base, _)| in_flight(base)))
                .collect();
            lock(&self.live).insert(ticket.clone(), lease_keys);
            let rate = view_of(&limited, &after, minute, now);
            return Ok(Ok(Holds {
                ticket,
                org: org.to_owned(),
                budgets,
                rates: limited.into_iter().map(|(_, base, _)| base).collect(),
                cost: a.cost,
                tokens: a.tokens,
                rate,
            }));
        }
        let level = budgets.first().map_or(Level::Key, |b| b.level);
        let view = view_of(&limited, &[], minute, now);
        Ok(Err(rules::unknown_budget(level, view)))
    }

    /// Extends `holds` by `cost` and `tokens` on every budget, atomically,
    /// unless a hard budget has no room for it. `Err` means Redis could
    /// not be used.
    pub(in super::super) async fn extend(
        &self,
        holds: &Holds,
        (cost, tokens): (Picodollars, u64),
        now: i64,
    ) -> Result<Result<(), Box<Rejection>>, StoreError> {
        if holds.budgets.is_empty() {
            return Ok(Ok(()));
        }
        let mut inv = self.scripts.extend.prepare_invoke();
        inv.arg(&holds.ticket)
            .arg(cost.0.to_string())
            .arg(tokens.to_string())
            .arg(holds.budgets.len());
        for b in &holds.budgets {
            inv.key(&b.key);
            inv.arg(if b.budget.enforcement == Enforcement::Hard {
                "1"
            } else {
                "0"
            })
            .arg(opt(b.budget.limit_cost().map(|c| c.0)))
            .arg(opt(b.budget.limit_tokens));
        }
        let mut conn = self.conn.clone();
        let v: Value = self
            .call(inv.invoke_async(&mut conn))
            .await
            .inspect_err(|e| self.failed(e))?;
        let out = strings(v)?;
        let mut rest = out.iter().skip(2);
        let held = read_held(&mut rest, holds.budgets.len())?;
        let granted = out.first().map(String::as_str) == Some("ok");
        self.remember(&holds.budgets, &held, granted.then_some((cost.0, tokens)));
        match out.first().map(String::as_str) {
            Some("ok") => Ok(Ok(())),
            Some("refused") => {
                let i = num::<usize>(out.get(1))?.saturating_sub(1);
                let refusal = holds.budgets.get(i).zip(held.get(i)).and_then(|(b, h)| {
                    rules::check_budget(
                        b.level,
                        &b.budget,
                        *h,
                        (cost.0, tokens),
                        b.end,
                        now,
                        RateView::default(),
                    )
                    .err()
                });
                let level = holds.budgets.get(i).map_or(Level::Key, |b| b.level);
                Ok(Err(refusal.unwrap_or_else(|| {
                    rules::unknown_budget(level, RateView::default())
                })))
            }
            _ => Err(StoreError::Reply(format!("{out:?}"))),
        }
    }

    async fn call_admit(
        &self,
        a: &Admission<'_>,
        ticket: &str,
        budgets: &[BudgetHold],
        limited: &[Limited],
        minute: i64,
    ) -> Result<Reply, StoreError> {
        let mut inv = self.scripts.admit.prepare_invoke();
        inv.arg(ticket)
            .arg(a.cost.0.to_string())
            .arg(a.tokens.to_string())
            .arg(if a.new_request { "1" } else { "0" })
            .arg(budgets.len())
            .arg(limited.len())
            .arg(self.opts.lease.as_millis().to_string());
        for b in budgets {
            inv.key(&b.key).key(leases(&b.key));
            inv.arg(if b.budget.enforcement == Enforcement::Hard {
                "1"
            } else {
                "0"
            })
            .arg(opt(b.budget.limit_cost().map(|c| c.0)))
            .arg(opt(b.budget.limit_tokens))
            .arg(expiry(b.end, a.now_ms));
        }
        for (_, base, rates) in limited {
            inv.key(minute_key(base, minute)).key(in_flight(base));
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
        let held = read_held(&mut rest, budgets.len())?;
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
        let mut inv = self.scripts.seed.prepare_invoke();
        let mut unreadable = Vec::new();
        let mut seeding = 0;
        for &i in missing {
            let Some(b) = budgets.get(i) else { continue };
            let window = b.budget.period.window(now);
            match self.seed.spent(b.level, &b.id, window).await {
                Ok((spent, tokens)) => {
                    inv.key(&b.key)
                        .arg(spent.0.to_string())
                        .arg(tokens.to_string())
                        .arg(expiry(b.end, now));
                    seeding += 1;
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
        if seeding > 0 {
            let mut conn = self.conn.clone();
            let _: Value = self.call(inv.invoke_async(&mut conn)).await?;
        }
        for i in unreadable.into_iter().rev() {
            budgets.remove(i);
        }
        Ok(Ok(()))
    }

    /// Keeps what Redis said of each budget, for `usage`, the gauges and
    /// the local counts of an outage; with `admitted`, the cost and tokens
    /// this admission reserved on top.
    fn remember(&self, budgets: &[BudgetHold], held: &[Held], admitted: Option<(i64, u64)>) {
        let (cost, tokens) = admitted.unwrap_or((0, 0));
        let mut seen = lock(&self.seen);
        for (b, h) in budgets.iter().zip(held) {
            let usage = Usage {
                period_start_ms: b.start,
                period_end_ms: b.end,
                spent: Picodollars(h.spent),
                tokens: h.tokens,
                reserved: Picodollars(h.reserved.saturating_add(cost)),
                reserved_tokens: h.reserved_tokens.saturating_add(tokens),
            };
            let id = (b.level, b.id.clone());
            if let Some(old) = seen.get(&id).filter(|s| s.key == b.key) {
                if !supersedes(&old.usage, &usage) {
                    continue;
                }
            }
            seen.insert(
                id,
                Seen {
                    budget: b.budget.clone(),
                    key: b.key.clone(),
                    usage,
                    version: self.changes.fetch_add(1, Ordering::Relaxed) + 1,
                },
            );
        }
    }
}

/// Whether an admission reply's counts of a budget (or a reread's) replace
/// the ones kept. Replies to concurrent admissions can be read in another
/// order than Redis ran them, and an older one must not take back the
/// holds a newer one showed: the counts kept seed the local ones of an
/// outage, where a budget counted short lets a request past its limit.
///
/// Within a period, spend only grows in Redis, and the counts kept are a
/// reply's plus this replica's own settlements on their way there
/// (`settle_seen`), which only add spend. So counts with more spend (and
/// no fewer tokens) than those kept are newer in Redis's order than the
/// reply those came from, and replace them whatever their total: that is
/// how holds that lapsed or settled for less leave the view under load.
/// Otherwise the counts with the larger total (spend and holds, in USD and
/// tokens) are kept, which errs strict until the next reread.
pub(super) fn supersedes(old: &Usage, new: &Usage) -> bool {
    if old.period_start_ms != new.period_start_ms {
        return new.period_start_ms > old.period_start_ms;
    }
    let more_spent = (new.spent.0 > old.spent.0 && new.tokens >= old.tokens)
        || (new.spent.0 >= old.spent.0 && new.tokens > old.tokens);
    if more_spent {
        return true;
    }
    let total = |u: &Usage| u.spent.0.saturating_add(u.reserved.0);
    let total_tokens = |u: &Usage| u.tokens.saturating_add(u.reserved_tokens);
    total(new) >= total(old) && total_tokens(new) >= total_tokens(old)
}

/// The tightest windows of `limited`, given each one's counts.
fn view_of(limited: &[Limited], counts: &[(u64, u64, u64)], minute: i64, now: i64) -> RateView {
    let used = limited.iter().enumerate().map(|(i, (_, _, r))| {
        let (req, tok, _) = counts.get(i).copied().unwrap_or((0, 0, 0));
        (r, (req, tok))
    });
    rules::rate_view(used, minute, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(start: i64, spent: i64, reserved: i64, tokens: u64) -> Usage {
        Usage {
            period_start_ms: start,
            period_end_ms: start + 1000,
            spent: Picodollars(spent),
            tokens,
            reserved: Picodollars(reserved),
            reserved_tokens: tokens,
        }
    }

    #[test]
    fn an_older_reply_read_late_does_not_take_back_holds() {
        // Redis ran A then B; B's reply was read first.
        let after_b = usage(0, 100, 60, 10);
        let after_a = usage(0, 100, 30, 10);
        assert!(!supersedes(&after_b, &after_a));
        assert!(supersedes(&after_a, &after_b));
        // A settlement kept (spend 25 for a hold of 30), then a newer reply
        // that still holds the settled request's 30 (the settlement is on
        // its way) and a new hold of 20: newer, and larger.
        let settled = usage(0, 125, 30, 10);
        let newer = usage(0, 100, 80, 10);
        assert!(supersedes(&settled, &newer));
        // A new period starts afresh; an old one never comes back.
        assert!(supersedes(&after_b, &usage(1000, 0, 5, 0)));
        assert!(!supersedes(&usage(1000, 0, 5, 0), &after_b));
        // Tokens count the same way.
        assert!(!supersedes(&usage(0, 100, 60, 10), &usage(0, 100, 60, 9)));
        // More spend is newer in Redis's order: a hold that settled for
        // less than it held (or lapsed) leaves the view, though the total
        // shrinks.
        let later = usage(0, 110, 0, 10);
        assert!(supersedes(&after_b, &later));
        // Less spend with a smaller total is an older reply.
        assert!(!supersedes(&settled, &after_a));
    }
}
