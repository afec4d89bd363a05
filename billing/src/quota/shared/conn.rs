//! The connection to Redis: one server through a connection manager, or a
//! Redis Cluster through the cluster client, behind one
//! [`redis::aio::ConnectionLike`] so scripts and commands are sent the same
//! way to either.
//!
//! On a cluster, each command goes to the primary owning its first key's
//! slot; the client follows `MOVED`/`ASK`, refreshes its slot map after a
//! failover, and on `NOSCRIPT` loads the script (`SCRIPT LOAD` goes to
//! every primary) and sends it again. A pipeline must stay within one
//! slot there, so work spanning organizations is sent one call per slot
//! ([`Conn::slot`] says which calls may go together).

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::options::{RedisMode, RedisOptions, StoreError};

/// A connection to Redis: one server or a cluster. Cheap to clone (the
/// clones share one multiplexed connection). Besides the quota engine, the
/// gateway's session affinity opens one with the same options.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// A connection that connects on first use, so the gateway starts (and
    /// fails open or closed) even when Redis is away at start.
    pub fn open(opts: &RedisOptions) -> Result<Self, StoreError> {
        match opts.mode {
            RedisMode::Single => {
                let client = redis::Client::open(opts.url.as_str())?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(opts.timeout))
                    .set_response_timeout(Some(opts.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                Ok(Self::Single(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
            RedisMode::Cluster => {
                let nodes = opts.nodes();
                if nodes.is_empty() {
                    return Err(StoreError::Config("no cluster node is named".into()));
                }
                let client = redis::cluster::ClusterClientBuilder::new(nodes)
                    .connection_timeout(opts.timeout)
                    .response_timeout(opts.timeout)
                    // Redirections and a failover's brief refusals are
                    // retried within the call's timeout; past it, the call
                    // fails and the failure mode applies.
                    .retries(3)
                    .min_retry_wait(10)
                    .max_retry_wait(100)
                    .build()?;
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(opts.timeout)
                    .set_response_timeout(opts.timeout);
                Ok(Self::Cluster(
                    client.get_pending_async_connection_with_config(config),
                ))
            }
        }
    }

    /// Which calls may share a pipeline or a script: on a cluster, those
    /// whose keys have one slot; on one server, all of them.
    pub(super) fn slot(&self, key: &str) -> Option<Slot> {
        match self {
            Self::Single(_) => None,
            Self::Cluster(_) => Some(Slot::for_key(key)),
        }
    }

    /// Whether this is a Redis Cluster (a pipeline must then keep to one slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Whether a call that failed with `e` may succeed if sent again later
/// (Redis away, a failover or resharding under way, the script cache
/// emptied) rather than having been refused for what it is.
pub(super) fn transient(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                        | ServerErrorKind::BusyLoading
                        | ServerErrorKind::NoScript
                )
        )
}
