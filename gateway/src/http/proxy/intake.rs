//! A cap on the request bytes being worked on at once: from a proxied
//! body's arrival, through parsing, estimating and translating it, until
//! the upstream has answered, a body takes several times its size in
//! memory (about 6× for a large translated one). A body that does not fit
//! under `server.max_request_bytes_in_flight` waits for room, up to
//! `server.request_bytes_wait`, then gets a 503. Room is not queued: a
//! small body that fits goes ahead of a large one waiting, so everyday
//! requests are not held up behind a few huge ones.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntGauge;
use tokio::sync::Notify;

use crate::config::RequestBytes;
use crate::error::ApiError;

/// The cap, shared by every proxied request.
#[derive(Debug)]
pub struct Intake {
    room: Arc<Room>,
    wait: Duration,
}

#[derive(Debug)]
struct Room {
    used: AtomicU64,
    cap: u64,
    freed: Notify,
    gauge: IntGauge,
}

/// Room held for one request's body until dropped.
#[derive(Debug)]
pub struct Held {
    room: Arc<Room>,
    bytes: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        let before = self.room.used.fetch_sub(self.bytes, Ordering::AcqRel);
        self.room.gauge.set(gauge_value(before - self.bytes));
        self.room.freed.notify_waiters();
    }
}

fn gauge_value(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

impl Room {
    /// Takes `bytes` if they fit now.
    fn take(&self, bytes: u64) -> bool {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|after| *after <= self.cap)
            });
        match taken {
            Ok(before) => {
                self.gauge.set(gauge_value(before + bytes));
                true
            }
            Err(_) => false,
        }
    }
}

impl Intake {
    pub fn new(limit: RequestBytes, gauge: IntGauge) -> Self {
        Self {
            room: Arc::new(Room {
                used: AtomicU64::new(0),
                cap: limit.max_in_flight.max(1),
                freed: Notify::new(),
                gauge,
            }),
            wait: limit.wait,
        }
    }

    /// Room for a body of `bytes` (a body larger than the whole cap waits
    /// for all of it), once there is some.
    pub async fn admit(&self, bytes: usize) -> Result<Held, ApiError> {
        let bytes = (bytes as u64).clamp(1, self.room.cap);
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            // Listening before looking, so that room freed in between is
            // not missed.
            let freed = self.room.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.room.take(bytes) {
                return Ok(Held {
                    room: self.room.clone(),
                    bytes,
                });
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                tracing::warn!(
                    bytes,
                    "a request waited too long for room under server.max_request_bytes_in_flight"
                );
                return Err(ApiError::unavailable(
                    "overloaded",
                    "The gateway is working on as many request bytes as it may at once; retry shortly.",
                ));
            }
        }
    }
}
