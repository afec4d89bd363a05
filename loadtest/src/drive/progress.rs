//! The progress line on stderr: elapsed of total, requests done, the
//! current rate and errors. On a terminal it is redrawn in place four
//! times a second; elsewhere (when forced) it is written once a second, one
//! line each. Either way a last line says how the run ended.

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::request::Shot;

/// What the line shows besides the counts.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    /// Shown first, in brackets (the target's name), if any.
    pub(crate) label: Option<String>,
    pub(crate) started: Instant,
    pub(crate) duration: Duration,
    pub(crate) max_requests: Option<u64>,
    pub(crate) open_loop: bool,
}

/// Draws the line until `stop` turns true, then draws it one last time.
pub(crate) async fn show(shot: Arc<Shot>, frame: Frame, mut stop: watch::Receiver<bool>) {
    let terminal = std::io::stderr().is_terminal();
    let tick = if terminal {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(1)
    };
    // (when, requests done) over the last second or so, for the rate.
    let mut recent: std::collections::VecDeque<(Instant, u64)> = Default::default();
    let mut ticker = tokio::time::interval_at(Instant::now() + tick, tick);
    loop {
        let last = tokio::select! {
            _ = ticker.tick() => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        let now = Instant::now();
        let done =
            shot.tally.ok.load(Ordering::Relaxed) + shot.tally.errors.load(Ordering::Relaxed);
        recent.push_back((now, done));
        while recent.len() > 2 && now - recent[0].0 > Duration::from_millis(1100) {
            recent.pop_front();
        }
        let rate = match (recent.front(), last) {
            (Some(&(t0, n0)), false) if now > t0 => (done - n0) as f64 / (now - t0).as_secs_f64(),
            _ => done as f64 / (now - frame.started).as_secs_f64().max(1e-9),
        };
        let text = line(&shot, &frame, now, done, rate, last);
        let mut err = std::io::stderr().lock();
        let _ = if terminal {
            write!(err, "\r\x1b[2K{text}{}", if last { "\n" } else { "" })
        } else {
            writeln!(err, "{text}")
        };
        let _ = err.flush();
        if last {
            return;
        }
    }
}

fn line(shot: &Shot, frame: &Frame, now: Instant, done: u64, rate: f64, last: bool) -> String {
    let t = &shot.tally;
    let mut out = String::new();
    if let Some(label) = &frame.label {
        out.push_str(&format!("[{label}] "));
    }
    let elapsed = now.saturating_duration_since(frame.started).as_secs_f64();
    out.push_str(&format!(
        "{elapsed:5.1}s/{:.1}s",
        frame.duration.as_secs_f64()
    ));
    match frame.max_requests {
        Some(max) => out.push_str(&format!("  {done}/{max} requests")),
        None => out.push_str(&format!("  {done} requests")),
    }
    let which = if last { "overall" } else { "now" };
    out.push_str(&format!("  {rate:.0} req/s {which}"));
    out.push_str(&format!("  {} errors", t.errors.load(Ordering::Relaxed)));
    if frame.open_loop {
        out.push_str(&format!(
            "  {} late  {} in flight",
            t.late.load(Ordering::Relaxed),
            t.in_flight.load(Ordering::Relaxed)
        ));
    }
    if !last && elapsed > frame.duration.as_secs_f64() {
        out.push_str("  (waiting for the last answers)");
    }
    out
}
