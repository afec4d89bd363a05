//! The names of the organizations and teams this process has loaded keys
//! of, by id: what turns the quota engine's ids into the names metrics are
//! labelled with. Filled by the key cache when it loads a key (off the
//! request path); bounded by tenancy, never by what clients send.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::tenancy::KeyInfo;

/// One team, named.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TeamNames {
    /// The organization's id and name.
    pub org_id: String,
    pub org: String,
    /// The team's id and name.
    pub team_id: String,
    pub team: String,
}

#[derive(Debug, Default)]
struct Inner {
    orgs: HashMap<String, String>,
    /// Team id to (name, organization id).
    teams: HashMap<String, (String, String)>,
}

/// Organization and team names by id, shared by clones.
#[derive(Debug, Clone, Default)]
pub struct Names(Arc<RwLock<Inner>>);

impl Names {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Learns (or updates, after a rename) the names of `key`'s team and
    /// organization.
    pub fn learn(&self, key: &KeyInfo) {
        let known = {
            let inner = self.0.read().unwrap_or_else(PoisonError::into_inner);
            inner.orgs.get(&key.org_id) == Some(&key.org_name)
                && inner
                    .teams
                    .get(&key.team_id)
                    .is_some_and(|(name, org)| *name == key.team_name && *org == key.org_id)
        };
        if known {
            return;
        }
        let mut inner = self.0.write().unwrap_or_else(PoisonError::into_inner);
        inner.orgs.insert(key.org_id.clone(), key.org_name.clone());
        inner.teams.insert(
            key.team_id.clone(),
            (key.team_name.clone(), key.org_id.clone()),
        );
    }

    /// An organization's name.
    pub fn org(&self, id: &str) -> Option<String> {
        let inner = self.0.read().unwrap_or_else(PoisonError::into_inner);
        inner.orgs.get(id).cloned()
    }

    /// A team's names, with its organization's.
    pub fn team(&self, id: &str) -> Option<TeamNames> {
        let inner = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let (team, org_id) = inner.teams.get(id)?;
        Some(TeamNames {
            org: inner.orgs.get(org_id).cloned().unwrap_or_default(),
            org_id: org_id.clone(),
            team_id: id.to_owned(),
            team: team.clone(),
        })
    }

    /// Every team seen, sorted.
    pub fn teams(&self) -> Vec<TeamNames> {
        let inner = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<TeamNames> = inner
            .teams
            .iter()
            .map(|(id, (team, org_id))| TeamNames {
                org: inner.orgs.get(org_id).cloned().unwrap_or_default(),
                org_id: org_id.clone(),
                team_id: id.clone(),
                team: team.clone(),
            })
            .collect();
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(team_id: &str, team: &str, org: &str) -> KeyInfo {
        KeyInfo {
            id: "k".into(),
            team_id: team_id.into(),
            org_id: "o1".into(),
            team_name: team.into(),
            org_name: org.into(),
            name: None,
            prefix: "tg-x".into(),
            policies: Default::default(),
            quotas: Default::default(),
            expires_at_ms: None,
            revoked: false,
        }
    }

    #[test]
    fn names_follow_renames_of_teams_and_organizations() {
        let names = Names::new();
        names.learn(&key("t1", "search", "acme"));
        names.learn(&key("t2", "ads", "acme"));
        assert_eq!(names.org("o1").as_deref(), Some("acme"));
        assert_eq!(names.team("t1").map(|t| t.team).as_deref(), Some("search"));
        names.learn(&key("t1", "discovery", "acme-corp"));
        let teams = names.teams();
        assert_eq!(teams.len(), 2);
        assert!(teams
            .iter()
            .all(|t| t.org == "acme-corp" && t.org_id == "o1"));
        assert_eq!(
            names.team("t1").map(|t| t.team).as_deref(),
            Some("discovery")
        );
        assert_eq!(names.team("t3"), None);
    }
}
