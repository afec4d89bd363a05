//! Who is calling: credentials from `Authorization: Bearer` or `x-api-key`,
//! checked in constant time against the master key.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::error::ApiError;

/// The authenticated caller, carried in the request context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The holder of the master key.
    Master,
}

impl Caller {
    /// A label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Master => "master",
        }
    }
}

/// The credentials the gateway accepts.
#[derive(Debug)]
pub struct Authenticator {
    master_digest: [u8; 32],
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

impl Authenticator {
    /// Accepts the master key.
    pub fn new(master_key: &Secret) -> Self {
        Self {
            master_digest: digest(master_key.expose()),
        }
    }

    /// Authenticates a request by its headers.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let token = presented_token(headers)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
                )
            })?;
        // Comparing digests keeps the comparison constant-time whatever the
        // length of the presented token.
        if bool::from(digest(token).ct_eq(&self.master_digest)) {
            Ok(Caller::Master)
        } else {
            Err(ApiError::unauthorized("Incorrect API key provided."))
        }
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
    fn accepts_the_master_key_as_bearer_or_x_api_key() {
        let auth = Authenticator::new(&Secret::new("master-key-1"));
        assert_eq!(
            auth.authenticate(&headers("authorization", "Bearer master-key-1"))
                .unwrap(),
            Caller::Master
        );
        assert_eq!(
            auth.authenticate(&headers("authorization", "bearer  master-key-1 "))
                .unwrap(),
            Caller::Master
        );
        assert_eq!(
            auth.authenticate(&headers("x-api-key", "master-key-1"))
                .unwrap(),
            Caller::Master
        );
    }

    #[test]
    fn rejects_missing_wrong_and_malformed_credentials() {
        let auth = Authenticator::new(&Secret::new("master-key-1"));
        for h in [
            HeaderMap::new(),
            headers("authorization", "Bearer master-key-2"),
            headers("authorization", "Basic master-key-1"),
            headers("authorization", "master-key-1"),
            headers("authorization", "Bearer "),
        ] {
            let e = auth.authenticate(&h).unwrap_err();
            assert_eq!(e.status(), axum::http::StatusCode::UNAUTHORIZED);
        }
    }
}
