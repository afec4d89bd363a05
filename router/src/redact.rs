//! Secrets never leave in a relayed body. An upstream's error may quote the
//! request it refused, the gateway's own upstream API key included, or a
//! proxy's error page may name internal hosts: every configured secret is
//! registered here at start, and every upstream error relayed to a client
//! is scrubbed of them.

use std::borrow::Cow;
use std::sync::RwLock;

/// Secrets shorter than this are not registered: scrubbing them would mangle
/// ordinary text, and the configuration refuses such keys anyway.
pub const MIN_SECRET_BYTES: usize = 8;

/// What a secret becomes.
pub const REDACTED: &str = "[redacted]";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a configured secret (an API key, a token, a password) to be
/// scrubbed from relayed bodies from now on.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET_BYTES {
        return;
    }
    let mut all = SECRETS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !all.iter().any(|s| s == secret) {
        all.push(secret.to_owned());
    }
}

/// `body` with every registered secret replaced by [`REDACTED`]; borrowed
/// when it holds none.
pub fn scrub(body: &[u8]) -> Cow<'_, [u8]> {
    let all = SECRETS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out: Cow<'_, [u8]> = Cow::Borrowed(body);
    for secret in all.iter() {
        let needle = secret.as_bytes();
        if memchr::memmem::find(&out, needle).is_none() {
            continue;
        }
        let mut next = Vec::with_capacity(out.len());
        let mut rest: &[u8] = &out;
        while let Some(at) = memchr::memmem::find(rest, needle) {
            next.extend_from_slice(&rest[..at]);
            next.extend_from_slice(REDACTED.as_bytes());
            rest = &rest[at + needle.len()..];
        }
        next.extend_from_slice(rest);
        out = Cow::Owned(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_scrubbed_wherever_they_appear() {
        register("sk-redact-test-0123456789");
        register("short");
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-redact-test-0123456789 (and sk-redact-test-0123456789)"}}"#;
        let out = scrub(body);
        let text = String::from_utf8(out.into_owned()).unwrap();
        assert!(!text.contains("sk-redact-test"), "{text}");
        assert_eq!(text.matches(REDACTED).count(), 2);
        assert!(matches!(scrub(b"short and clean"), Cow::Borrowed(_)));
    }
}
