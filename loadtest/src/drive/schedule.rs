//! When requests leave: a closed loop (N clients, each sending its next
//! request when its last one is answered) or an open loop (a fixed
//! schedule, whatever the answers do).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::request::Shot;
use super::tally::Failure;

/// N clients in a loop until `deadline` or `max_requests` requests in all.
pub(crate) async fn closed(
    shot: Arc<Shot>,
    clients: usize,
    deadline: Instant,
    max_requests: Option<u64>,
) {
    let issued = Arc::new(AtomicU64::new(0));
    // Each client on its own task, so the driver uses every core.
    let mut set = JoinSet::new();
    for _ in 0..clients.max(1) {
        let (shot, issued) = (shot.clone(), issued.clone());
        set.spawn(async move {
            shot.tally.in_flight.fetch_add(1, Ordering::Relaxed);
            while Instant::now() < deadline {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if max_requests.is_some_and(|max| n >= max) {
                    break;
                }
                shot.fire(Instant::now()).await;
            }
            shot.tally.in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
    while set.join_next().await.is_some() {}
}

/// How an open loop kept to its schedule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kept {
    /// Requests sent.
    pub(crate) sent: u64,
    /// When the last one left, from the start.
    pub(crate) last_sent: Duration,
    /// The longest a request left after its time.
    pub(crate) max_lag: Duration,
    /// The most in flight at once.
    pub(crate) peak_in_flight: u64,
}

/// Request `i` is meant to leave at `start + i / rate`, until `deadline`
/// or `max_requests`, with at most `max_in_flight` unanswered. A request
/// that finds no free slot at its time, or whose time passed while the
/// schedule waited for one, is late: it leaves as soon as a slot frees, and
/// its latency still runs from its time. Requests still waiting at the
/// shot's hard stop are never sent and count as errors.
pub(crate) async fn open(
    shot: Arc<Shot>,
    rate: f64,
    max_in_flight: usize,
    start: Instant,
    deadline: Instant,
    max_requests: Option<u64>,
) -> Kept {
    let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let mut set = JoinSet::new();
    let mut kept = Kept {
        sent: 0,
        last_sent: Duration::ZERO,
        max_lag: Duration::ZERO,
        peak_in_flight: 0,
    };
    // When the schedule last got a slot after waiting for one.
    let mut waited_until: Option<Instant> = None;
    let mut i: u64 = 0;
    loop {
        if max_requests.is_some_and(|max| i >= max) {
            break;
        }
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        if due >= deadline {
            break;
        }
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        } else if i % 64 == 63 {
            // Catching up: let the answers in now and then.
            tokio::task::yield_now().await;
        }
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                if waited_until.is_some_and(|t| t > due) {
                    shot.tally.late.fetch_add(1, Ordering::Relaxed);
                }
                slot
            }
            Err(_) => {
                shot.tally.late.fetch_add(1, Ordering::Relaxed);
                let wait = tokio::time::timeout_at(shot.hard_stop, slots.clone().acquire_owned());
                match wait.await {
                    Ok(Ok(slot)) => {
                        waited_until = Some(Instant::now());
                        slot
                    }
                    _ => {
                        // Past the hard stop: what is left of the schedule
                        // is never sent.
                        let left = max_requests
                            .unwrap_or(u64::MAX)
                            .min(scheduled(rate, deadline.saturating_duration_since(start)))
                            .saturating_sub(i);
                        for _ in 0..left {
                            shot.tally.failed(Failure::NotSent);
                        }
                        break;
                    }
                }
            }
        };
        let now = Instant::now();
        kept.sent += 1;
        kept.last_sent = now.saturating_duration_since(start);
        kept.max_lag = kept.max_lag.max(now.saturating_duration_since(due));
        let in_flight = shot.tally.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        kept.peak_in_flight = kept.peak_in_flight.max(in_flight);
        let shot = shot.clone();
        set.spawn(async move {
            shot.fire(due).await;
            shot.tally.in_flight.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
        while set.try_join_next().is_some() {}
        i += 1;
    }
    while set.join_next().await.is_some() {}
    kept
}

/// How many requests a schedule at `rate` holds in `span`.
pub(crate) fn scheduled(rate: f64, span: Duration) -> u64 {
    let mut n = (span.as_secs_f64() * rate).ceil() as u64;
    // Request n is due at n / rate; the last one is due strictly before
    // the end.
    while n > 0 && Duration::from_secs_f64((n - 1) as f64 / rate) >= span {
        n -= 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::scheduled;
    use std::time::Duration;

    #[test]
    fn a_schedule_holds_the_requests_due_before_its_end() {
        assert_eq!(scheduled(200.0, Duration::from_millis(500)), 100);
        assert_eq!(scheduled(3.0, Duration::from_secs(1)), 3);
        assert_eq!(scheduled(1.0, Duration::from_millis(1500)), 2);
        assert_eq!(scheduled(10.0, Duration::ZERO), 0);
    }
}
