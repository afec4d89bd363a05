//! Who is calling: credentials from `Authorization: Bearer` or `x-api-key`,
//! either the master key (compared in constant time) or a virtual key
//! (served from the in-memory key cache, so no database query per request).

use std::sync::Arc;

use axum::http::HeaderMap;
use billing::keys::KeyCache;
use billing::tenancy::KeyInfo;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::error::ApiError;

/// The authenticated caller, carried in the request context.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// The holder of the master key: every endpoint, no tenant.
    Master,
    /// A team's virtual key.
    Key(Arc<KeyInfo>),
}

impl Caller {
    /// A label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Key(_) => "key",
        }
    }

    /// The virtual key, when the caller used one.
    pub fn key(&self) -> Option<&KeyInfo> {
        match self {
            Self::Master => None,
            Self::Key(k) => Some(k),
        }
    }

    /// The policies over the caller (none for the master key).
    pub fn policies(&self) -> Option<&billing::policy::Policies> {
        self.key().map(|k| &k.policies).filter(|p| !p.is_empty())
    }
}

/// The credentials the gateway accepts.
#[derive(Debug)]
pub struct Authenticator {
    master_digest: [u8; 32],
    /// `[metrics] token`: when set, `/metrics` wants it (or the master key).
    scrape_digest: Option<[u8; 32]>,
    keys: KeyCache,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The token a request presents, if any.
pub fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (scheme, token) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers.get("x-api-key")?.to_str().ok().map(str::trim)
}

/// Whether `token` is the secret whose digest is `secret` (the master key,
/// the metrics token), in constant time.
fn is_secret(secret: &[u8; 32], token: &str) -> bool {
    // Comparing digests keeps the time independent of the token's length too.
    bool::from(digest(token).ct_eq(secret))
}

impl Authenticator {
    /// Accepts the master key and the keys in `keys`; `/metrics` is open,
    /// or wants `scrape_token` (or the master key) when one is set.
    pub fn new(master_key: &Secret, scrape_token: Option<&Secret>, keys: KeyCache) -> Self {
        Self {
            master_digest: digest(master_key.expose()),
            scrape_digest: scrape_token.map(|t| digest(t.expose())),
            keys,
        }
    }

    /// Whether a request may read `/metrics`, which names organizations and
    /// teams: always when no `[metrics] token` is set, else with that token
    /// or the master key, compared in constant time.
    pub fn may_scrape(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(scrape) = &self.scrape_digest else {
            return Ok(());
        };
        match presented_token(headers) {
            Some(t) if is_secret(scrape, t) || is_secret(&self.master_digest, t) => Ok(()),
            Some(_) => Err(ApiError::unauthorized("Incorrect metrics token provided.")),
            None => Err(ApiError::unauthorized(
                "/metrics needs the token set in [metrics] token, as 'Authorization: Bearer TOKEN'.",
            )),
        }
    }

    /// The key cache.
    pub fn keys(&self) -> &KeyCache {
        &self.keys
    }

    /// Authenticates a request by its headers.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let token = presented_token(headers)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
                )
            })?;
        if is_secret(&self.master_digest, token) {
            return Ok(Caller::Master);
        }
        if !token.starts_with("tg-") {
            return Err(ApiError::unauthorized("Incorrect API key provided."));
        }
        let key = self.keys.lookup(token).await.map_err(|e| {
            tracing::error!(error = %e, "key lookup failed");
            ApiError::unavailable(
                "key_store_unavailable",
                "Keys cannot be checked right now; retry shortly.",
            )
        })?;
        let Some(key) = key else {
            return Err(ApiError::unauthorized("Incorrect API key provided."));
        };
        if key.revoked {
            return Err(ApiError::unauthorized("This API key has been revoked."));
        }
        if key.expired_at(billing::db::now_ms()) {
            return Err(ApiError::unauthorized("This API key has expired."));
        }
        Ok(Caller::Key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn tokens_come_from_bearer_or_x_api_key() {
        assert_eq!(
            presented_token(&headers("authorization", "Bearer abc")),
            Some("abc")
        );
        assert_eq!(
            presented_token(&headers("authorization", "bearer  abc ")),
            Some("abc")
        );
        assert_eq!(presented_token(&headers("x-api-key", "abc")), Some("abc"));
        assert_eq!(
            presented_token(&headers("authorization", "Basic abc")),
            None
        );
        assert_eq!(presented_token(&headers("authorization", "abc")), None);
        assert_eq!(presented_token(&HeaderMap::new()), None);
    }

    #[test]
    fn only_the_master_key_matches_its_digest() {
        let master = digest("master-key-1");
        assert!(is_secret(&master, "master-key-1"));
        assert!(!is_secret(&master, "master-key-2"));
        assert!(!is_secret(&master, ""));
    }
}
