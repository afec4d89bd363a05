//! What a run counts while it goes: counters the progress line reads, and
//! the latency histograms the report is made from.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Percentiles {
    /// The figures of a histogram in microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

/// A latency histogram in microseconds, up to an hour, three significant
/// figures.
pub fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| e.to_string())
}

/// Why a request failed, as a short label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Failure {
    /// The connection could not be made or the request not sent.
    Connect,
    /// An answer with this non-2xx status.
    Status(u16),
    /// The body broke off.
    Body,
    /// The stream ended without its terminal event.
    Cut,
    /// The stream carried an error event.
    ErrorEvent,
    /// No answer by the end of the grace period.
    Timeout,
    /// Open loop: still waiting for a free slot at the end of the grace
    /// period, never sent.
    NotSent,
}

impl Failure {
    fn label(self) -> String {
        match self {
            Self::Connect => "connect".to_owned(),
            Self::Status(s) => format!("http_{s}"),
            Self::Body => "body".to_owned(),
            Self::Cut => "stream_cut".to_owned(),
            Self::ErrorEvent => "error_event".to_owned(),
            Self::Timeout => "timeout".to_owned(),
            Self::NotSent => "not_sent".to_owned(),
        }
    }
}

/// The counters and histograms of one run, shared by its requests.
#[derive(Debug)]
pub(crate) struct Tally {
    pub(crate) ok: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// Open loop: requests that could not leave on time for want of a slot.
    pub(crate) late: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    bytes: u64,
    latency: Histogram<u64>,
    ttft: Histogram<u64>,
    failures: BTreeMap<Failure, u64>,
    /// The request ids of the answers, when kept.
    ids: Option<Vec<String>>,
}

/// What a tally holds at the end of a run.
#[derive(Debug)]
pub(crate) struct Totals {
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) late: u64,
    pub(crate) bytes: u64,
    pub(crate) latency: Histogram<u64>,
    pub(crate) ttft: Histogram<u64>,
    pub(crate) failures: BTreeMap<String, u64>,
    pub(crate) ids: Vec<String>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl Tally {
    /// A tally; with `keep_ids`, it keeps the request id of every answer.
    pub(crate) fn new(keep_ids: bool) -> Result<Self, String> {
        Ok(Self {
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            late: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                bytes: 0,
                latency: histogram()?,
                ttft: histogram()?,
                failures: BTreeMap::new(),
                ids: keep_ids.then(Vec::new),
            }),
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn answered(
        &self,
        latency: Duration,
        ttft: Option<Duration>,
        bytes: u64,
        id: Option<String>,
    ) {
        {
            let mut t = self.inner();
            t.bytes += bytes;
            if let (Some(ids), Some(id)) = (t.ids.as_mut(), id) {
                ids.push(id);
            }
            t.latency.saturating_record(micros(latency));
            if let Some(f) = ttft {
                t.ttft.saturating_record(micros(f));
            }
        }
        self.ok.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, why: Failure) {
        *self.inner().failures.entry(why).or_default() += 1;
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn totals(&self) -> Totals {
        let t = self.inner();
        Totals {
            ok: self.ok.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
            bytes: t.bytes,
            latency: t.latency.clone(),
            ttft: t.ttft.clone(),
            failures: t.failures.iter().map(|(k, v)| (k.label(), *v)).collect(),
            ids: t.ids.clone().unwrap_or_default(),
        }
    }
}
