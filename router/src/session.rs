//! Which agent session a request belongs to, from the signals agents already
//! send, so the ledger can say what a task cost (and, later, so a session can
//! keep to one upstream and its prompt cache).
//!
//! # Order of precedence
//! The first signal present, usable and not secret-looking wins:
//! 1. the `x-tollgate-session` header: the client says so explicitly;
//! 2. Claude Code's `x-claude-code-session-id` header;
//! 3. Codex's `session-id` (or `session_id`) header, then its `thread-id`
//!    (or `conversation_id`) header;
//! 4. a session inside the body's user field: Claude Code's
//!    `metadata.user_id`, either the JSON object it sends now
//!    (`{"device_id":…, "session_id":…}`) or the older
//!    `user_<hash>_account_<uuid>_session_<uuid>` (the part after
//!    `_session_`); the same text where a translation carried it into
//!    `user` or `safety_identifier`; then Codex's
//!    `client_metadata.session_id`;
//! 5. the body's `prompt_cache_key` (Codex sends its thread id there; OpenAI
//!    clients a key per conversation);
//! 6. last, a user rather than a session: a `metadata.user_id`, `user` or
//!    `safety_identifier` with no session inside names the end user, not a
//!    task. It still groups that user's traffic, stored as `user:<value>` so
//!    a report shows it for what it is.
//!
//! # Bounds
//! A session id is at most [`MAX_LEN`] characters of printable ASCII (space
//! to `~`), trimmed. A longer value, or one with other characters, is kept
//! as its first printable characters (at most [`KEPT_PREFIX`]), `~`, and 16
//! hex digits of its SHA-256: still one id per value, and readable.
//!
//! # Never a secret
//! A signal that looks like a credential is not used (the next one in order
//! is): one that holds the caller's own key, or that starts, after any
//! `Bearer `, with a common API key prefix (`sk-`, Tollgate's own `tg-`,
//! and those in [`SECRET_PREFIXES`]). It is neither stored nor hashed: a
//! hash of a key would still be a handle on it.

use reqwest::header::HeaderMap;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The header a client sets to name its session explicitly.
pub const SESSION_HEADER: &str = "x-tollgate-session";

/// The longest session id stored, in characters (bytes: it is ASCII).
pub const MAX_LEN: usize = 128;

/// How much of an over-long or unprintable value is kept before its hash.
pub const KEPT_PREFIX: usize = 64;

/// Prefixes of credentials: a value starting with one is never a session.
pub const SECRET_PREFIXES: [&str; 9] = [
    "sk-",
    "tg-",
    "sk_",
    "xai-",
    "gsk_",
    "AKIA",
    "AIza",
    "ghp_",
    "github_pat_",
];

/// Headers that carry a session, in order (after [`SESSION_HEADER`]).
const AGENT_HEADERS: [&str; 5] = [
    "x-claude-code-session-id",
    "session-id",
    "session_id",
    "thread-id",
    "conversation_id",
];

/// Body fields that may hold a user id with a session inside, in order.
const USER_FIELDS: [&[&str]; 3] = [&["metadata", "user_id"], &["user"], &["safety_identifier"]];

/// Where a request's session was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// [`SESSION_HEADER`].
    Explicit,
    /// An agent's own header.
    AgentHeader,
    /// A session inside a user id, or Codex's `client_metadata.session_id`.
    Metadata,
    /// `prompt_cache_key`.
    PromptCacheKey,
    /// A user id with no session inside: stored as `user:<value>`.
    User,
}

/// A request's session: a bounded, printable id that is not a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The id stored in the ledger.
    pub id: String,
    /// Which signal it came from.
    pub source: Source,
}

/// The session of a request with `headers` and JSON `body`, presented with
/// `credential` (the caller's key, never used as a session), or `None` when
/// it carries no usable signal.
pub fn extract(
    headers: &HeaderMap,
    body: &Map<String, Value>,
    credential: Option<&str>,
) -> Option<Session> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let found = |raw: &str, source| {
        usable(raw, credential).map(|id| Session {
            id: bounded(id),
            source,
        })
    };
    if let Some(s) = header(SESSION_HEADER).and_then(|v| found(v, Source::Explicit)) {
        return Some(s);
    }
    for name in AGENT_HEADERS {
        if let Some(s) = header(name).and_then(|v| found(v, Source::AgentHeader)) {
            return Some(s);
        }
    }
    let text = |path: &[&str]| -> Option<&str> {
        let (first, rest) = path.split_first()?;
        rest.iter()
            .try_fold(body.get(*first)?, |v, k| v.get(k))?
            .as_str()
    };
    for path in USER_FIELDS {
        if let Some(s) = text(path)
            .and_then(session_in_user_id)
            .and_then(|v| found(&v, Source::Metadata))
        {
            return Some(s);
        }
    }
    if let Some(s) = text(&["client_metadata", "session_id"])
        .and_then(|v| found(v, Source::Metadata))
        .or_else(|| text(&["prompt_cache_key"]).and_then(|v| found(v, Source::PromptCacheKey)))
    {
        return Some(s);
    }
    USER_FIELDS.iter().find_map(|path| {
        let raw = text(path)?;
        let id = usable(raw, credential)?;
        Some(Session {
            id: bounded(&format!("user:{id}")),
            source: Source::User,
        })
    })
}

/// The session inside a user id: Claude Code's JSON `session_id`, or what
/// follows `_session_`.
fn session_in_user_id(user_id: &str) -> Option<String> {
    let trimmed = user_id.trim();
    if trimmed.starts_with('{') {
        let v: Value = serde_json::from_str(trimmed).ok()?;
        return v.get("session_id")?.as_str().map(str::to_owned);
    }
    let (_, session) = trimmed.rsplit_once("_session_")?;
    Some(session.to_owned())
}

/// The trimmed value, unless it is empty or looks like a credential.
fn usable<'a>(raw: &'a str, credential: Option<&str>) -> Option<&'a str> {
    let v = raw.trim();
    if v.is_empty() || looks_secret(v, credential) {
        return None;
    }
    Some(v)
}

/// Whether `v` holds the caller's credential or starts like an API key.
pub fn looks_secret(v: &str, credential: Option<&str>) -> bool {
    if credential.is_some_and(|c| c.len() >= 8 && v.contains(c)) {
        return true;
    }
    let bare = v.strip_prefix("Bearer ").unwrap_or(v).trim_start();
    SECRET_PREFIXES.iter().any(|p| bare.starts_with(p))
}

/// `v` as stored: as it is when short and printable, else its printable
/// start, `~` and a hash of the whole.
pub fn bounded(v: &str) -> String {
    let printable = |c: char| (' '..='~').contains(&c);
    if v.len() <= MAX_LEN && v.chars().all(printable) {
        return v.to_owned();
    }
    let kept: String = v
        .chars()
        .take_while(|c| printable(*c))
        .take(KEPT_PREFIX)
        .collect();
    let digest = Sha256::digest(v.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}~{hex}", kept.trim_end())
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;
    use serde_json::json;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn id(h: &[(&'static str, &str)], b: Value) -> Option<String> {
        extract(&headers(h), &body(b), Some("tg-callerkey123")).map(|s| s.id)
    }

    #[test]
    fn the_explicit_header_comes_first() {
        let b = json!({"prompt_cache_key": "pck", "metadata": {"user_id": "u_session_meta"}});
        let h = [
            ("x-tollgate-session", "task-7"),
            ("x-claude-code-session-id", "cc"),
        ];
        assert_eq!(id(&h, b.clone()).as_deref(), Some("task-7"));
        assert_eq!(
            id(&[("x-claude-code-session-id", "cc")], b.clone()).as_deref(),
            Some("cc")
        );
        assert_eq!(id(&[], b).as_deref(), Some("meta"));
    }

    #[test]
    fn codex_headers_prefer_the_session_to_the_thread() {
        let h = [("thread-id", "t"), ("session-id", "s")];
        assert_eq!(id(&h, json!({})).as_deref(), Some("s"));
        assert_eq!(
            id(&[("conversation_id", "c")], json!({})).as_deref(),
            Some("c")
        );
        assert_eq!(
            id(&[("session_id", "s2")], json!({})).as_deref(),
            Some("s2")
        );
    }

    #[test]
    fn claude_code_user_ids_give_their_session_in_both_shapes() {
        let new = json!({"metadata": {"user_id": "{\"device_id\":\"d\",\"account_uuid\":\"\",\"session_id\":\"0b5e\"}"}});
        assert_eq!(id(&[], new).as_deref(), Some("0b5e"));
        let old = json!({"metadata": {"user_id": "user_ab12_account_1111_session_2222-33"}});
        assert_eq!(id(&[], old).as_deref(), Some("2222-33"));
        // Translated to chat, Claude Code's user id travels in `user`.
        let chat = json!({"user": "user_ab_account__session_9", "prompt_cache_key": "k"});
        assert_eq!(id(&[], chat).as_deref(), Some("9"));
    }

    #[test]
    fn prompt_cache_key_comes_before_a_user() {
        let b = json!({"prompt_cache_key": "conv-1", "user": "alice", "safety_identifier": "h"});
        assert_eq!(id(&[], b).as_deref(), Some("conv-1"));
        let codex = json!({"client_metadata": {"session_id": "cs"}, "prompt_cache_key": "thread"});
        assert_eq!(id(&[], codex).as_deref(), Some("cs"));
    }

    #[test]
    fn a_user_is_a_last_resort_and_marked_as_such() {
        let s = extract(&HeaderMap::new(), &body(json!({"user": "alice"})), None).unwrap();
        assert_eq!((s.id.as_str(), s.source), ("user:alice", Source::User));
        assert_eq!(
            id(&[], json!({"safety_identifier": "hash1"})).as_deref(),
            Some("user:hash1")
        );
        assert_eq!(
            id(&[], json!({"metadata": {"user_id": "plain"}})).as_deref(),
            Some("user:plain")
        );
        assert_eq!(id(&[], json!({"messages": []})), None);
    }

    #[test]
    fn secret_looking_values_are_skipped_for_the_next_signal() {
        let b = json!({"prompt_cache_key": "conv-2"});
        for secret in [
            "sk-proj-abc",
            "Bearer sk-ant-x",
            "tg-anotherkey",
            "my tg-callerkey123 x",
        ] {
            assert_eq!(
                id(&[("x-tollgate-session", secret)], b.clone()).as_deref(),
                Some("conv-2"),
                "{secret}"
            );
        }
        assert_eq!(id(&[], json!({"user": "sk-live"})), None);
    }

    #[test]
    fn long_or_unprintable_values_are_bounded_and_stay_distinct() {
        let long = "a".repeat(500);
        let b = bounded(&long);
        assert!(b.len() <= MAX_LEN, "{b}");
        assert!(b.starts_with(&"a".repeat(KEPT_PREFIX)));
        assert_ne!(b, bounded(&"a".repeat(501)));
        assert_eq!(bounded(&"x".repeat(MAX_LEN)), "x".repeat(MAX_LEN));
        let odd = bounded("caf\u{e9}\u{1}");
        assert!(odd.starts_with("caf~") && odd.len() == 4 + 16, "{odd}");
        assert_eq!(
            id(&[("x-tollgate-session", "  padded  ")], json!({})).as_deref(),
            Some("padded")
        );
    }
}
