//! Cache affinity's memory: which candidate served each session's last
//! request on each route, and how much of that request's prompt its cache
//! held, so the session's next request goes back there (see
//! [`router::route::Route::plan_for`]).
//!
//! In this process it is a bounded cache whose entries lapse
//! `router.affinity_idle` after the session's last answer on the route.
//! With `[redis]` it is also kept in Redis under the configured prefix, with
//! the same time to live, so every replica sends a session to the same
//! candidate: a request reads it with one `GET` (within `redis.timeout`;
//! while Redis cannot be reached, this process's memory answers), and an
//! answer's update is written after it, in batches, off the request's path
//! (`shared.rs`).

mod shared;

use std::time::Duration;

use billing::quota::{RedisOptions, StoreError};
use router::route::Sticky;

pub use shared::Writer;

/// Sessions remembered in this process, at most (least recently used first
/// out); each is about 200 bytes with its route and model.
const LOCAL_CAPACITY: u64 = 100_000;

/// Which candidate each session is kept on, per route.
pub struct Affinities {
    local: moka::sync::Cache<String, Sticky>,
    shared: Option<shared::Shared>,
}

impl std::fmt::Debug for Affinities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Affinities")
            .field("sessions", &self.local.entry_count())
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

fn local_key(route: &str, session: &str) -> String {
    format!("{route}\u{0}{session}")
}

impl Affinities {
    /// Kept in this process only; entries lapse `idle` after their last
    /// update.
    pub fn local(idle: Duration) -> Self {
        Self {
            local: moka::sync::Cache::builder()
                .max_capacity(LOCAL_CAPACITY)
                .time_to_live(idle)
                .build(),
            shared: None,
        }
    }

    /// Shared through the Redis `opts` names, and kept here too; the
    /// returned writer sends updates to Redis and must be run.
    pub fn redis(idle: Duration, opts: &RedisOptions) -> Result<(Self, Writer), StoreError> {
        let (shared, writer) = shared::Shared::open(idle, opts)?;
        Ok((
            Self {
                shared: Some(shared),
                ..Self::local(idle)
            },
            writer,
        ))
    }

    /// The candidate that served `session`'s last request on `route`, if it
    /// is remembered.
    pub async fn lookup(&self, route: &str, session: &str) -> Option<Sticky> {
        let key = local_key(route, session);
        if let Some(shared) = &self.shared {
            // Redis, when it answers, is what every replica agrees on.
            if let Some(found) = shared.get(route, session).await {
                match &found {
                    Some(sticky) => self.local.insert(key, sticky.clone()),
                    None => self.local.invalidate(&key),
                }
                return found;
            }
        }
        self.local.get(&key)
    }

    /// `session`'s request on `route` was answered by `sticky.model`: its
    /// next one goes there too, while that candidate can take it.
    pub fn record(&self, route: &str, session: &str, sticky: Sticky) {
        if let Some(shared) = &self.shared {
            shared.put(route, session, &sticky);
        }
        self.local.insert(local_key(route, session), sticky);
    }
}
