//! Applying organization, team and key policies (see [`billing::policy`]) to
//! routes, and checking the names a policy is written with.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use billing::policy::{Policies, Policy};
use router::route::Route;

use crate::auth::Caller;
use crate::error::ApiError;

/// The route as `caller` may use it: the candidates its policies exclude are
/// left out. When none is left, a 403 naming what excluded each one.
pub fn permitted(caller: &Caller, route: &Arc<Route>) -> Result<Arc<Route>, ApiError> {
    let Some(policies) = caller.policies() else {
        return Ok(route.clone());
    };
    let mut reasons = String::new();
    let kept = route.retain(
        |m| match policies.excludes(&route.name, &m.name, m.provider.name()) {
            Some(why) => {
                if !reasons.is_empty() {
                    reasons.push_str("; ");
                }
                if m.name == route.name {
                    reasons.push_str(&why);
                } else {
                    let _ = write!(reasons, "'{}': {why}", m.name);
                }
                false
            }
            None => true,
        },
    );
    if kept.candidates.is_empty() {
        return Err(ApiError::model_not_allowed(&route.name).because(&reasons));
    }
    if kept.candidates.len() == route.candidates.len() {
        return Ok(route.clone());
    }
    Ok(Arc::new(kept))
}

/// Whether `caller` may use `route` at all (for listing models).
pub fn may_use(policies: Option<&Policies>, route: &Route) -> bool {
    policies.is_none_or(|p| {
        route.candidates.iter().any(|m| {
            p.excludes(&route.name, &m.name, m.provider.name())
                .is_none()
        })
    })
}

/// The model, route and provider names policies may mention.
#[derive(Debug, Clone, Default)]
pub struct KnownNames {
    /// Models and routes.
    pub models: BTreeSet<String>,
    pub providers: BTreeSet<String>,
}

impl KnownNames {
    /// The names in a config (what its catalog will hold).
    pub fn of(config: &crate::config::Config) -> Self {
        Self {
            models: config
                .models
                .keys()
                .chain(config.routes.keys())
                .cloned()
                .collect(),
            providers: config.providers.keys().cloned().collect(),
        }
    }

    /// Refuses a policy naming a model, route or provider this gateway does
    /// not have: a misspelt deny list would otherwise deny nothing.
    pub fn check(&self, policy: &Policy) -> Result<(), ApiError> {
        for (field, name) in policy.names() {
            let known = if field.ends_with("_providers") {
                &self.providers
            } else {
                &self.models
            };
            if !known.contains(name) {
                let list: Vec<&str> = known.iter().map(String::as_str).collect();
                return Err(ApiError::invalid(
                    Some(field),
                    format!(
                        "{field} names '{name}', which this gateway does not have (it has: {}).",
                        list.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}
