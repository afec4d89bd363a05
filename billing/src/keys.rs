//! The key cache: virtual keys served from memory, loaded on first use, and
//! kept current by a watcher that polls for changed keys, so a revocation on
//! any replica takes effect within one poll interval.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use crate::db::{now_ms, DbError};
use crate::names::Names;
use crate::tenancy::{hash_secret, KeyInfo, Tenancy};

/// How far back the watcher looks on every poll, so a change committed late,
/// or stamped by a replica whose clock lags, is not missed. A change is acted
/// on at every sighting in this window: a key being loaded while it was
/// revoked may land in the cache after the first invalidation, and a later
/// one removes it.
const WATCH_OVERLAP_MS: i64 = 30_000;
/// A backstop: a cached key is reloaded at least this often.
const KEY_TTL: Duration = Duration::from_secs(600);

/// Keys by secret hash.
#[derive(Clone)]
pub struct KeyCache {
    tenancy: Arc<Tenancy>,
    known: Cache<String, Arc<KeyInfo>>,
    unknown: Cache<String, ()>,
    /// The names of every team and organization whose keys were loaded.
    names: Names,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("known", &self.known.entry_count())
            .finish()
    }
}

impl KeyCache {
    /// A cache over `tenancy` holding up to `capacity` keys.
    pub fn new(tenancy: Arc<Tenancy>, capacity: u64) -> Self {
        Self {
            tenancy,
            known: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(KEY_TTL)
                .build(),
            // Secrets nobody issued: remembered briefly, so a flood of bad
            // keys does not become a flood of queries.
            unknown: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            names: Names::new(),
        }
    }

    /// The names of the teams and organizations of every key loaded so far
    /// (kept current by the watcher as they are renamed).
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The key with this secret, from memory when cached; `None` when no
    /// such key exists. Concurrent misses for one key share one query.
    pub async fn lookup(&self, secret: &str) -> Result<Option<Arc<KeyInfo>>, DbError> {
        let hash = hash_secret(secret);
        if let Some(k) = self.known.get(&hash).await {
            return Ok(Some(k));
        }
        if self.unknown.contains_key(&hash) {
            return Ok(None);
        }
        let tenancy = self.tenancy.clone();
        let names = self.names.clone();
        let loaded = self
            .known
            .try_get_with(hash.clone(), async move {
                match tenancy.key_by_hash(&hash).await {
                    Ok(Some(k)) => {
                        names.learn(&k);
                        Ok(Arc::new(k))
                    }
                    Ok(None) => Err(None),
                    Err(e) => Err(Some(e.to_string())),
                }
            })
            .await;
        match loaded {
            Ok(k) => Ok(Some(k)),
            Err(e) => match e.as_ref() {
                None => {
                    self.unknown.insert(hash_secret(secret), ()).await;
                    Ok(None)
                }
                Some(msg) => Err(DbError::Sqlx(sqlx::Error::Protocol(msg.clone()))),
            },
        }
    }

    /// Forgets a key (by secret hash) so its next use reloads it.
    pub async fn invalidate(&self, hash: &str) {
        self.known.invalidate(hash).await;
        self.unknown.invalidate(hash).await;
    }

    /// Polls for changed keys every `interval` until `stop` resolves. Each
    /// key changed within the overlap window is reloaded into the cache on
    /// every poll (not just forgotten), so a key cached by a load that raced
    /// its revocation is corrected on the next poll, and a key in use keeps
    /// working from memory when the database cannot be reached.
    pub async fn watch(self, interval: Duration, stop: impl std::future::Future<Output = ()>) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = tick.tick() => {}
            }
            match self
                .tenancy
                .keys_changed_since(now_ms() - WATCH_OVERLAP_MS)
                .await
            {
                Ok(changes) => {
                    for (hash, _) in changes {
                        self.refresh(&hash).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "key watcher could not poll for changes; cached keys stay in use")
                }
            }
        }
    }

    /// Replaces a cached key with what the database holds now; a key nobody
    /// has used stays uncached. On a database error the cached copy stays.
    async fn refresh(&self, hash: &str) {
        self.unknown.invalidate(hash).await;
        if !self.known.contains_key(hash) {
            return;
        }
        match self.tenancy.key_by_hash(hash).await {
            Ok(Some(k)) => {
                self.names.learn(&k);
                self.known.insert(hash.to_owned(), Arc::new(k)).await
            }
            Ok(None) => self.known.invalidate(hash).await,
            Err(e) => tracing::warn!(error = %e, "key watcher could not reload a changed key"),
        }
    }
}
