//! Who a request's metrics are counted against: the organization's and
//! team's names (`master` for the master key, which has no tenant) and,
//! when `[metrics] per_key` is on, the key's name or display prefix.

use crate::auth::Caller;

/// The tenant label values of one caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenant<'a> {
    /// The organization's name.
    pub org: &'a str,
    /// The team's name.
    pub team: &'a str,
    /// The key's name or display prefix, when per-key labels are on.
    pub key: Option<&'a str>,
}

/// The org, team and key label value of the master key.
pub const MASTER: &str = "master";

impl<'a> Tenant<'a> {
    /// `caller`'s labels; the key's only with `per_key`.
    pub fn of(caller: &'a Caller, per_key: bool) -> Self {
        match caller {
            Caller::Master => Self {
                org: MASTER,
                team: MASTER,
                key: per_key.then_some(MASTER),
            },
            Caller::Key(k) => Self {
                org: &k.org_name,
                team: &k.team_name,
                key: per_key.then(|| k.label()),
            },
        }
    }

    /// `base` label values followed by the tenant's, in the order
    /// [`label_names`] declares them.
    pub fn values(&self, base: &[&'a str]) -> Vec<&'a str> {
        let mut v = Vec::with_capacity(base.len() + 3);
        v.extend_from_slice(base);
        v.push(self.org);
        v.push(self.team);
        v.extend(self.key);
        v
    }
}

/// `base` label names followed by `org`, `team` and, with `per_key`, `key`.
pub(super) fn label_names(base: &[&'static str], per_key: bool) -> Vec<&'static str> {
    let mut v = base.to_vec();
    v.extend(["org", "team"]);
    if per_key {
        v.push("key");
    }
    v
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use billing::tenancy::KeyInfo;

    use super::*;

    fn key(name: Option<&str>) -> Caller {
        Caller::Key(Arc::new(KeyInfo {
            id: "k1".into(),
            team_id: "t1".into(),
            org_id: "o1".into(),
            team_name: "search".into(),
            org_name: "acme".into(),
            name: name.map(str::to_owned),
            prefix: "tg-abcdefgh".into(),
            policies: Default::default(),
            quotas: Default::default(),
            expires_at_ms: None,
            revoked: false,
        }))
    }

    #[test]
    fn keys_are_labelled_by_their_team_and_org_names() {
        let caller = key(Some("ci"));
        let t = Tenant::of(&caller, false);
        assert_eq!(t.values(&["m"]), ["m", "acme", "search"]);
        assert_eq!(label_names(&["model"], false), ["model", "org", "team"]);
    }

    #[test]
    fn the_key_label_is_opt_in_and_falls_back_to_the_prefix() {
        let named = key(Some("ci"));
        let unnamed = key(None);
        assert_eq!(Tenant::of(&named, true).key, Some("ci"));
        assert_eq!(Tenant::of(&unnamed, true).key, Some("tg-abcdefgh"));
        assert_eq!(
            label_names(&["model"], true),
            ["model", "org", "team", "key"]
        );
    }

    #[test]
    fn the_master_key_is_its_own_org_and_team() {
        let t = Tenant::of(&Caller::Master, true);
        assert_eq!(t.values(&[]), ["master", "master", "master"]);
    }
}
