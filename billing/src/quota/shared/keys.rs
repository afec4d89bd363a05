//! Where the counters live in Redis: the key layout.
//!
//! Every key carries the deployment's prefix first, then its
//! organization's hash tag, so all the keys one request touches (its
//! organization's, team's and key's budgets and rate limits) hash to one
//! Redis Cluster slot, and each script names keys of one slot only:
//!
//! ```text
//! <prefix>:{org:<org>}:b:<level>:<id>:<period>:<start>            budget counters (hash)
//! <prefix>:{org:<org>}:b:<level>:<id>:<period>:<start>:l          its holds' leases (zset)
//! <prefix>:{org:<org>}:r:<level>:<id>:<all | m/<model>>:<minute>  a rate limit's counts (hash)
//! <prefix>:{org:<org>}:r:<level>:<id>:<all | m/<model>>:f         its requests in flight (zset)
//! ```
//!
//! `<level>` is `org`, `team` or `key`; `<start>` is the period's start and
//! `<minute>` the minute's, in ms since the epoch. The prefix has no braces
//! (the config refuses them), so the first `{...}` of every key is its
//! organization's tag. Keys from before hash tags (`<prefix>:b:...`,
//! `<prefix>:r:...`) are no longer read: budgets are seeded again from the
//! ledger under the new names.

use super::super::rules::RateKey;
use super::super::{Level, Period};

/// Names the keys of one deployment (one prefix).
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

pub(super) fn level_tag(level: Level) -> &'static str {
    match level {
        Level::Org => "org",
        Level::Team => "team",
        Level::Key => "key",
    }
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// What every key of organization `org` starts with: the prefix and the
    /// organization's hash tag.
    fn org(&self, org: &str) -> String {
        format!("{}:{{org:{org}}}", self.prefix)
    }

    /// A budget's counters in the period starting at `start`.
    pub(super) fn budget(
        &self,
        org: &str,
        level: Level,
        id: &str,
        period: Period,
        start: i64,
    ) -> String {
        format!(
            "{}:b:{}:{id}:{}:{start}",
            self.org(org),
            level_tag(level),
            period.name()
        )
    }

    /// The key saying that the spend of operation `id` (a request's
    /// settlement, or spend counted while Redis was away) was counted, in
    /// the organization's slot.
    pub(super) fn done(&self, org: &str, id: &str) -> String {
        format!("{}:done:{id}", self.org(org))
    }

    /// What a rate limit's keys start with.
    pub(super) fn rate(&self, org: &str, key: &RateKey) -> String {
        let model = key.2.as_deref().map_or("all".into(), |m| format!("m/{m}"));
        format!("{}:r:{}:{}:{model}", self.org(org), level_tag(key.0), key.1)
    }
}

/// The leases of the holds on budget counters `budget`.
pub(super) fn leases(budget: &str) -> String {
    format!("{budget}:l")
}

/// The requests in flight under the rate limit whose keys start with `rate`.
pub(super) fn in_flight(rate: &str) -> String {
    format!("{rate}:f")
}

/// A rate limit's counts in the minute starting at `minute`.
pub(super) fn minute(rate: &str, minute: i64) -> String {
    format!("{rate}:{minute}")
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;

    use super::*;

    /// Every key an admission under all three levels, each with a budget,
    /// a limit over all models and one for the model, would touch.
    fn one_requests_keys(keys: &Keys, org: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (level, id) in [(Level::Org, org), (Level::Team, "t-1"), (Level::Key, "k-1")] {
            let b = keys.budget(org, level, id, Period::Monthly, 1_793_491_200_000);
            out.push(leases(&b));
            out.push(b);
            for model in [None, Some("gpt-4o{mini}".to_owned())] {
                let r = keys.rate(org, &(level, id.to_owned(), model));
                out.push(minute(&r, 1_795_000_000_000));
                out.push(in_flight(&r));
            }
        }
        out
    }

    #[test]
    fn one_requests_keys_share_its_organizations_slot() {
        let keys = Keys::new("tollgate");
        let org = "0193a5c8-7d1e-7c3a-9f00-5b6a1c2d3e4f";
        let all = one_requests_keys(&keys, org);
        let slot = Slot::for_key(format!("{{org:{org}}}"));
        for k in &all {
            assert!(k.starts_with(&format!("tollgate:{{org:{org}}}:")), "{k}");
            assert_eq!(Slot::for_key(k), slot, "{k}");
        }
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len(), "no two keys alike");
    }

    #[test]
    fn the_layout_reads_as_documented() {
        let keys = Keys::new("tg");
        let b = keys.budget("o", Level::Team, "t", Period::Daily, 86_400_000);
        assert_eq!(b, "tg:{org:o}:b:team:t:daily:86400000");
        assert_eq!(leases(&b), "tg:{org:o}:b:team:t:daily:86400000:l");
        let r = keys.rate("o", &(Level::Key, "k".into(), Some("m".into())));
        assert_eq!(minute(&r, 60_000), "tg:{org:o}:r:key:k:m/m:60000");
        let all = keys.rate("o", &(Level::Org, "o".into(), None));
        assert_eq!(in_flight(&all), "tg:{org:o}:r:org:o:all:f");
    }
}
