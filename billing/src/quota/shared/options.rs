//! How the Redis engine is configured, what it reports about Redis, and why
//! a call to Redis failed.

use std::time::Duration;

/// What to do when Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Keep serving under limits counted in this process; add what was
    /// spent to Redis when it is back.
    Open,
    /// Refuse requests that a budget or limit applies to.
    Closed,
}

impl FailureMode {
    /// The name, as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

/// What `url` names: one Redis server, or a Redis Cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedisMode {
    /// One server (or a proxy that looks like one).
    #[default]
    Single,
    /// A Redis Cluster: `url` names one or more of its nodes, and the
    /// client learns the rest, follows `MOVED`/`ASK` and failovers.
    Cluster,
}

impl RedisMode {
    /// The name, as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Cluster => "cluster",
        }
    }
}

/// Where and how to reach Redis.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[:password@]host:port[/db]`; for a cluster, one or more of
    /// its nodes, comma-separated (`redis://h1:6379,redis://h2:6379`).
    pub url: String,
    pub mode: RedisMode,
    /// Starts every key, so replicas of one deployment share counters and
    /// other deployments do not. No `{` or `}`: the hash tag that keeps an
    /// organization's keys in one cluster slot follows it.
    pub prefix: String,
    pub on_failure: FailureMode,
    /// How long one call may take before Redis counts as unreachable.
    pub timeout: Duration,
    /// How long a hold outlives a replica that stopped renewing it.
    pub lease: Duration,
}

impl RedisOptions {
    /// The node URLs `url` names (one for a single server).
    pub fn nodes(&self) -> Vec<&str> {
        match self.mode {
            RedisMode::Single => vec![self.url.as_str()],
            RedisMode::Cluster => self
                .url
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .collect(),
        }
    }

    /// `url` with every password replaced by `***`, for logs and errors.
    pub fn redacted_url(&self) -> String {
        redact_urls(&self.url)
    }
}

/// `urls` (one URL, or several comma-separated) with every password
/// replaced by `***`.
pub fn redact_urls(urls: &str) -> String {
    urls.split(',')
        .map(|u| crate::db::redact_url(u.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry Redis's password.
        f.debug_struct("RedisOptions")
            .field("url", &self.redacted_url())
            .field("mode", &self.mode)
            .field("prefix", &self.prefix)
            .field("on_failure", &self.on_failure)
            .field("timeout", &self.timeout)
            .field("lease", &self.lease)
            .finish()
    }
}

/// Redis's state as this replica sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStatus {
    pub up: bool,
    /// Calls that failed or timed out, since start.
    pub failures: u64,
    /// Requests admitted by this process's own counts while Redis was away.
    pub local_admissions: u64,
}

/// Why Redis could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("unexpected reply: {0}")]
    Reply(String),
    #[error("{0}")]
    Config(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(url: &str, mode: RedisMode) -> RedisOptions {
        RedisOptions {
            url: url.into(),
            mode,
            prefix: "tollgate".into(),
            on_failure: FailureMode::Open,
            timeout: Duration::from_millis(250),
            lease: Duration::from_secs(30),
        }
    }

    #[test]
    fn options_never_show_the_password() {
        let shown = format!(
            "{:?}",
            opts("redis://:hunter2@127.0.0.1:6379/0", RedisMode::Single)
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redis://:***@127.0.0.1:6379/0"), "{shown}");
    }

    #[test]
    fn a_cluster_url_names_each_node_and_hides_each_password() {
        let o = opts(
            "redis://:hunter2@10.0.0.1:6379, redis://:hunter2@10.0.0.2:6379,",
            RedisMode::Cluster,
        );
        assert_eq!(
            o.nodes(),
            [
                "redis://:hunter2@10.0.0.1:6379",
                "redis://:hunter2@10.0.0.2:6379"
            ]
        );
        let shown = format!("{o:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            o.redacted_url(),
            "redis://:***@10.0.0.1:6379,redis://:***@10.0.0.2:6379,"
        );
    }
}
