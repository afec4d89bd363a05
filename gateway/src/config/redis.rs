//! `[redis]`: where the counters every replica shares live (one server or
//! a Redis Cluster), and how the gateway behaves while they are away.

use std::time::Duration;

use super::raw::RawRedis;
use super::{Checker, Secret};

/// `[redis]`: the counters every replica shares.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]`; for a cluster, one or more of
    /// its nodes, comma-separated. A secret: it may carry a password.
    pub url: Secret,
    /// One server, or a Redis Cluster.
    pub mode: billing::quota::RedisMode,
    /// Prepended to every key: replicas with the same prefix share counts.
    pub prefix: String,
    /// What happens while Redis cannot be reached.
    pub on_failure: billing::quota::FailureMode,
    /// How long one Redis call may take before Redis counts as unreachable.
    pub timeout: Duration,
    /// How long a crashed replica's reservations outlive it.
    pub lease: Duration,
}

/// The validated table; `None` without a URL (counts stay in process).
pub(super) fn redis(c: &mut Checker, raw: &RawRedis) -> Option<RedisConfig> {
    // An empty URL (`url = "${REDIS_URL:-}"` with the variable unset) means
    // no Redis: counts stay in this process.
    let url = raw.url.clone().filter(|u| !u.is_empty())?;
    let mode = match raw.mode.as_deref() {
        None | Some("single") => billing::quota::RedisMode::Single,
        Some("cluster") => billing::quota::RedisMode::Cluster,
        Some(other) => {
            c.fail(
                "redis.mode",
                format!("'{other}' is neither \"single\" nor \"cluster\""),
            );
            billing::quota::RedisMode::Single
        }
    };
    redis_url(c, &url, mode);
    let on_failure = match raw.on_failure.as_deref() {
        None | Some("open") => billing::quota::FailureMode::Open,
        Some("closed") => billing::quota::FailureMode::Closed,
        Some(other) => {
            c.fail(
                "redis.on_failure",
                format!("'{other}' is neither \"open\" nor \"closed\""),
            );
            billing::quota::FailureMode::Open
        }
    };
    let prefix = raw.prefix.clone().unwrap_or_else(|| "tollgate".into());
    if prefix.is_empty() || prefix.chars().any(char::is_whitespace) {
        c.fail("redis.prefix", "must be non-empty, without spaces");
    } else if prefix.contains(['{', '}']) {
        c.fail(
            "redis.prefix",
            "must not contain '{' or '}': keys carry their organization's hash tag in braces after the prefix",
        );
    }
    let timeout = c.duration(
        "redis.timeout".into(),
        raw.timeout.as_deref(),
        Duration::from_millis(250),
    );
    let lease = c.duration(
        "redis.lease".into(),
        raw.lease.as_deref(),
        Duration::from_secs(30),
    );
    if lease < Duration::from_secs(1) || lease < timeout * 4 {
        c.fail(
            "redis.lease",
            "must be at least 1s and at least four times redis.timeout (leases are renewed every third of it)",
        );
    }
    Some(RedisConfig {
        url: Secret::new(url),
        mode,
        prefix,
        on_failure,
        timeout,
        lease,
    })
}

/// Checks `redis.url` for `mode`: one `redis://` URL for a single server;
/// for a cluster, one or more nodes, comma-separated, in database 0.
fn redis_url(c: &mut Checker, url: &str, mode: billing::quota::RedisMode) {
    const SHAPE: &str = "must be a redis:// URL (redis://[:password@]host:port[/db])";
    let nodes: Vec<&str> = url.split(',').map(str::trim).collect();
    match mode {
        billing::quota::RedisMode::Single => {
            if !url.starts_with("redis://") {
                c.fail("redis.url", SHAPE);
            } else if nodes[1..].iter().any(|n| n.starts_with("redis://")) {
                c.fail(
                    "redis.url",
                    "names several servers: set redis.mode = \"cluster\" for a Redis Cluster",
                );
            }
        }
        billing::quota::RedisMode::Cluster => {
            let nodes: Vec<&str> = nodes.into_iter().filter(|n| !n.is_empty()).collect();
            if nodes.is_empty() || !nodes.iter().all(|n| n.starts_with("redis://")) {
                c.fail(
                    "redis.url",
                    "must be one or more redis:// URLs of the cluster's nodes, comma-separated (redis://[:password@]host:port,redis://...)",
                );
                return;
            }
            for node in nodes {
                let rest = &node["redis://".len()..];
                let hostpath = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                let db = hostpath
                    .split_once('/')
                    .map_or("", |(_, p)| p.split('?').next().unwrap_or(""));
                if !db.is_empty() && db != "0" {
                    c.fail(
                        "redis.url",
                        format!("names database {db}: a Redis Cluster has only database 0"),
                    );
                    return;
                }
            }
        }
    }
}
