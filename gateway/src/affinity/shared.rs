//! Affinity in Redis: one key per session and route,
//! `{prefix}:affinity:{hash}` (the hash of the route and session, so keys
//! have a bounded length and no character of a session id matters), whose
//! value names the candidate and the cache share, set with a time to live
//! of `router.affinity_idle` at each answer.
//!
//! Reads are one `GET` on the request's path, given up after
//! `redis.timeout`; after a failure Redis is left alone for a second, so an
//! outage costs one request a second the wait, not every request. Writes
//! queue (up to [`QUEUE`]; past it an update stays in this process only)
//! and go out pipelined from the [`Writer`], which the gateway runs as an
//! owned background task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use billing::quota::{RedisConn, RedisOptions, StoreError};
use router::route::Sticky;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// Updates waiting for Redis, at most.
const QUEUE: usize = 10_000;
/// Updates sent in one pipeline, at most.
const BATCH: usize = 256;
/// How long Redis is left alone after a failed call.
const BACKOFF: Duration = Duration::from_secs(1);

/// Whether Redis answers, shared by the readers and the writer.
struct Link {
    up: AtomicBool,
    retry_at: Mutex<Option<Instant>>,
}

impl Link {
    fn usable(&self) -> bool {
        self.retry_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none_or(|t| Instant::now() >= t)
    }

    fn failed(&self, e: &StoreError) {
        *self.retry_at.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Instant::now() + BACKOFF);
        if self.up.swap(false, Ordering::SeqCst) {
            tracing::error!(
                error = %e,
                "Redis cannot be reached for session affinity: each replica keeps sessions on what it remembers itself until it is back"
            );
        }
    }

    fn answered(&self) {
        if !self.up.swap(true, Ordering::SeqCst) {
            *self.retry_at.lock().unwrap_or_else(PoisonError::into_inner) = None;
            tracing::info!("Redis answers again: session affinity is shared again");
        }
    }
}

/// The replica's side of the shared affinity.
pub(super) struct Shared {
    conn: RedisConn,
    prefix: String,
    timeout: Duration,
    link: Arc<Link>,
    queue: mpsc::Sender<(String, String)>,
}

/// Sends queued affinity updates to Redis until stopped, then what is left.
pub struct Writer {
    conn: RedisConn,
    timeout: Duration,
    ttl_ms: u64,
    link: Arc<Link>,
    queue: mpsc::Receiver<(String, String)>,
}

async fn within<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(StoreError::Timeout(timeout)),
    }
}

fn encode(sticky: &Sticky) -> String {
    serde_json::json!({"model": sticky.model, "cache_share": sticky.cache_share}).to_string()
}

fn decode(text: &str) -> Option<Sticky> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(Sticky {
        model: v.get("model")?.as_str()?.to_owned(),
        cache_share: v.get("cache_share")?.as_f64()?,
    })
}

impl Shared {
    pub(super) fn open(idle: Duration, opts: &RedisOptions) -> Result<(Self, Writer), StoreError> {
        let conn = RedisConn::open(opts)?;
        let link = Arc::new(Link {
            up: AtomicBool::new(true),
            retry_at: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = Writer {
            conn: conn.clone(),
            timeout: opts.timeout,
            ttl_ms: u64::try_from(idle.as_millis()).unwrap_or(u64::MAX).max(1),
            link: link.clone(),
            queue: rx,
        };
        Ok((
            Self {
                conn,
                prefix: opts.prefix.clone(),
                timeout: opts.timeout,
                link,
                queue: tx,
            },
            writer,
        ))
    }

    fn key(&self, route: &str, session: &str) -> String {
        let mut h = Sha256::new();
        h.update(route.as_bytes());
        h.update([0]);
        h.update(session.as_bytes());
        let digest = h.finalize();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:affinity:{hex}", self.prefix)
    }

    /// What Redis remembers (`Some(None)`: nothing), or `None` when Redis
    /// could not say in time.
    pub(super) async fn get(&self, route: &str, session: &str) -> Option<Option<Sticky>> {
        if !self.link.usable() {
            return None;
        }
        let mut conn = self.conn.clone();
        let key = self.key(route, session);
        let got: Result<Option<String>, _> = within(
            self.timeout,
            redis::cmd("GET").arg(&key).query_async(&mut conn),
        )
        .await;
        match got {
            Ok(v) => {
                self.link.answered();
                Some(v.as_deref().and_then(decode))
            }
            Err(e) => {
                self.link.failed(&e);
                None
            }
        }
    }

    /// Queues an update for the writer.
    pub(super) fn put(&self, route: &str, session: &str, sticky: &Sticky) {
        // A full queue (Redis slow or away): this replica still remembers.
        let _ = self
            .queue
            .try_send((self.key(route, session), encode(sticky)));
    }
}

impl Writer {
    /// Sends updates as they come until `stop` resolves, then the rest.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                n = self.queue.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        return;
                    }
                    self.send(&mut batch).await;
                }
                () = &mut stop => break,
            }
        }
        while let Ok(update) = self.queue.try_recv() {
            batch.push(update);
            if batch.len() == BATCH {
                self.send(&mut batch).await;
            }
        }
        self.send(&mut batch).await;
    }

    async fn send(&mut self, batch: &mut Vec<(String, String)>) {
        if batch.is_empty() {
            return;
        }
        if !self.link.usable() {
            batch.clear();
            return;
        }
        // A cluster's pipeline keeps to one slot, and these keys are spread
        // over all of them: one command each there.
        let per_pipe = if self.conn.is_cluster() { 1 } else { BATCH };
        for chunk in batch.chunks(per_pipe) {
            let mut pipe = redis::pipe();
            for (key, value) in chunk {
                pipe.cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(self.ttl_ms)
                    .ignore();
            }
            let sent: Result<(), _> = within(self.timeout, pipe.query_async(&mut self.conn)).await;
            match sent {
                Ok(()) => self.link.answered(),
                Err(e) => {
                    // The rest waits no longer: this replica remembers it.
                    self.link.failed(&e);
                    break;
                }
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_candidate_reads_back_as_it_was() {
        let s = Sticky {
            model: "kimi \"k2\"".into(),
            cache_share: 0.8125,
        };
        assert_eq!(decode(&encode(&s)), Some(s));
        assert_eq!(decode("not json"), None);
    }
}
