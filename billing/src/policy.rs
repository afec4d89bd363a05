//! Policy: which models and providers an organization, a team or a key may
//! use. A request must satisfy the policy of its key, its team and its
//! organization; a route's candidates that one of them excludes are left out
//! of the route for that caller.
//!
//! - `allowed_models`: when set, only these names: a route named here may
//!   use all its candidates, a model named here may be used directly or as a
//!   candidate of any route.
//! - `denied_models`: never these, whether asked for by name (model or
//!   route) or reached as a route's candidate.
//! - `allowed_providers`: when set, only models of these providers.
//! - `denied_providers`: never models of these providers (say, a team whose
//!   data may not leave for a given vendor).

use serde::{Deserialize, Deserializer, Serialize};

/// One level's policy (an organization's, a team's or a key's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Only these models and routes (`None`: any).
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Never these models and routes.
    #[serde(default)]
    pub denied_models: Vec<String>,
    /// Only models of these providers (`None`: any).
    #[serde(default)]
    pub allowed_providers: Option<Vec<String>>,
    /// Never models of these providers.
    #[serde(default)]
    pub denied_providers: Vec<String>,
}

/// A change to a policy, as `PATCH` sends it: an absent field stays as it
/// is; `null` clears an allow list (anything is allowed again) or a deny
/// list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PolicyPatch {
    #[serde(default, deserialize_with = "present")]
    pub allowed_models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub denied_models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub allowed_providers: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub denied_providers: Option<Option<Vec<String>>>,
}

/// A field that is present (`Some`), possibly `null` (`Some(None)`): for
/// `#[serde(default, deserialize_with = "present")]` on `Option<Option<T>>`.
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl PolicyPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// `policy` with this patch applied.
    pub fn apply(&self, mut policy: Policy) -> Policy {
        if let Some(v) = &self.allowed_models {
            policy.allowed_models = v.clone();
        }
        if let Some(v) = &self.denied_models {
            policy.denied_models = v.clone().unwrap_or_default();
        }
        if let Some(v) = &self.allowed_providers {
            policy.allowed_providers = v.clone();
        }
        if let Some(v) = &self.denied_providers {
            policy.denied_providers = v.clone().unwrap_or_default();
        }
        policy
    }
}

impl Policy {
    /// Whether the policy restricts nothing.
    pub fn is_empty(&self) -> bool {
        self.allowed_models.is_none()
            && self.denied_models.is_empty()
            && self.allowed_providers.is_none()
            && self.denied_providers.is_empty()
    }

    /// Every name in the policy, with the field it is in.
    pub fn names(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let models = self
            .allowed_models
            .iter()
            .flatten()
            .map(|n| ("allowed_models", n.as_str()))
            .chain(
                self.denied_models
                    .iter()
                    .map(|n| ("denied_models", n.as_str())),
            );
        let providers = self
            .allowed_providers
            .iter()
            .flatten()
            .map(|n| ("allowed_providers", n.as_str()))
            .chain(
                self.denied_providers
                    .iter()
                    .map(|n| ("denied_providers", n.as_str())),
            );
        models.chain(providers)
    }

    /// Rejects empty names and overlong lists.
    pub fn validate(&self) -> Result<(), String> {
        for (field, name) in self.names() {
            if name.trim().is_empty() {
                return Err(format!("{field} must not contain empty names"));
            }
        }
        Ok(())
    }

    /// Whether the name the client asked for is refused outright.
    pub fn denies_name(&self, requested: &str) -> bool {
        self.denied_models.iter().any(|m| m == requested)
    }

    /// Why this policy excludes `model` (of `provider`) from a request that
    /// asked for `requested` (the model itself, or a route it is a
    /// candidate of), or `None` when it may serve.
    pub fn excludes(&self, requested: &str, model: &str, provider: &str) -> Option<String> {
        if let Some(m) = self
            .denied_models
            .iter()
            .find(|m| *m == requested || *m == model)
        {
            return Some(format!("denies model '{m}'"));
        }
        if self.denied_providers.iter().any(|p| p == provider) {
            return Some(format!("denies provider '{provider}'"));
        }
        if let Some(allowed) = &self.allowed_providers {
            if !allowed.iter().any(|p| p == provider) {
                return Some(format!("does not allow provider '{provider}'"));
            }
        }
        if let Some(allowed) = &self.allowed_models {
            if !allowed.iter().any(|m| m == requested || m == model) {
                return Some(format!("does not allow model '{model}'"));
            }
        }
        None
    }
}

/// The policies over one key: its organization's, its team's and its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policies {
    pub org: Policy,
    pub team: Policy,
    pub key: Policy,
}

impl Policies {
    /// Whether none of them restricts anything.
    pub fn is_empty(&self) -> bool {
        self.org.is_empty() && self.team.is_empty() && self.key.is_empty()
    }

    fn levels(&self) -> [(&'static str, &Policy); 3] {
        [
            ("organization", &self.org),
            ("team", &self.team),
            ("key", &self.key),
        ]
    }

    /// Why `model` (of `provider`) may not serve a request for `requested`,
    /// naming the level whose policy excludes it; `None` when it may.
    pub fn excludes(&self, requested: &str, model: &str, provider: &str) -> Option<String> {
        self.levels().into_iter().find_map(|(level, p)| {
            p.excludes(requested, model, provider)
                .map(|why| format!("the {level}'s policy {why}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Policy {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn an_empty_policy_allows_everything() {
        let p = Policy::default();
        assert!(p.is_empty());
        assert_eq!(p.excludes("auto", "kimi-k2.5", "kimi"), None);
        assert_eq!(policy("{}"), p);
    }

    #[test]
    fn deny_lists_exclude_models_and_providers() {
        let p = policy(r#"{"denied_providers": ["deepseek"], "denied_models": ["glm-5"]}"#);
        assert_eq!(
            p.excludes("auto", "deepseek-v4-pro", "deepseek").as_deref(),
            Some("denies provider 'deepseek'")
        );
        assert_eq!(
            p.excludes("auto", "glm-5", "glm").as_deref(),
            Some("denies model 'glm-5'")
        );
        assert_eq!(p.excludes("auto", "kimi-k2.5", "kimi"), None);
        // A denied route name excludes every candidate.
        let p = policy(r#"{"denied_models": ["auto"]}"#);
        assert!(p.denies_name("auto"));
        assert!(p.excludes("auto", "kimi-k2.5", "kimi").is_some());
        assert_eq!(p.excludes("kimi-k2.5", "kimi-k2.5", "kimi"), None);
    }

    #[test]
    fn allow_lists_admit_a_route_whole_or_models_one_by_one() {
        let route = policy(r#"{"allowed_models": ["auto"]}"#);
        assert_eq!(route.excludes("auto", "deepseek-v4-pro", "deepseek"), None);
        assert!(route
            .excludes("deepseek-v4-pro", "deepseek-v4-pro", "deepseek")
            .is_some());
        let models = policy(r#"{"allowed_models": ["kimi-k2.5"]}"#);
        assert_eq!(models.excludes("auto", "kimi-k2.5", "kimi"), None);
        assert_eq!(
            models.excludes("auto", "glm-5", "glm").as_deref(),
            Some("does not allow model 'glm-5'")
        );
        let providers = policy(r#"{"allowed_providers": ["kimi"]}"#);
        assert_eq!(
            providers.excludes("auto", "glm-5", "glm").as_deref(),
            Some("does not allow provider 'glm'")
        );
    }

    #[test]
    fn every_level_must_agree_and_the_refusing_one_is_named() {
        let all = Policies {
            org: policy(r#"{"denied_providers": ["anthropic"]}"#),
            team: policy(r#"{"denied_providers": ["deepseek"]}"#),
            key: Policy::default(),
        };
        assert_eq!(
            all.excludes("auto", "claude-sonnet-4.5", "anthropic")
                .as_deref(),
            Some("the organization's policy denies provider 'anthropic'")
        );
        assert_eq!(
            all.excludes("auto", "deepseek-v4-pro", "deepseek")
                .as_deref(),
            Some("the team's policy denies provider 'deepseek'")
        );
        assert_eq!(all.excludes("auto", "kimi-k2.5", "kimi"), None);
    }

    #[test]
    fn patches_change_only_what_they_name() {
        let p = policy(r#"{"allowed_models": ["a"], "denied_providers": ["x"]}"#);
        let patch: PolicyPatch = serde_json::from_str(r#"{"allowed_models": null}"#).unwrap();
        let q = patch.apply(p.clone());
        assert_eq!(q.allowed_models, None);
        assert_eq!(q.denied_providers, vec!["x".to_owned()]);
        let patch: PolicyPatch =
            serde_json::from_str(r#"{"denied_providers": null, "denied_models": ["m"]}"#).unwrap();
        let q = patch.apply(p);
        assert!(q.denied_providers.is_empty());
        assert_eq!(q.denied_models, vec!["m".to_owned()]);
        assert!(PolicyPatch::default().is_empty());
    }

    #[test]
    fn empty_names_are_refused() {
        assert!(policy(r#"{"denied_providers": [" "]}"#).validate().is_err());
        assert!(policy(r#"{"allowed_models": ["a"]}"#).validate().is_ok());
    }
}
