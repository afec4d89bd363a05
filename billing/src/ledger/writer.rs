//! The background writer: tails the spool, inserts rows in batches, seals and
//! deletes segments once they are in the database, and retries with backoff
//! while the database is away.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::spool::list_segments;
use super::{write_batch, LedgerRow, Spool};
use crate::db::Db;

/// How the writer batches.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Most rows in one insert.
    pub batch_rows: usize,
    /// How long rows may wait for a batch to fill.
    pub flush_interval: Duration,
    /// Seal the active segment once it is this large and fully written...
    pub rotate_bytes: u64,
    /// ...or this old, so a restart replays little.
    pub rotate_age: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            batch_rows: 500,
            flush_interval: Duration::from_millis(200),
            rotate_bytes: 4 * 1024 * 1024,
            rotate_age: Duration::from_secs(5),
        }
    }
}

/// Counters the gateway exports as metrics.
#[derive(Debug, Default)]
pub struct LedgerStats {
    /// Rows appended to the spool by this process.
    pub appended: AtomicU64,
    /// Rows the writer inserted (new ones only).
    pub inserted: AtomicU64,
    /// Rows the writer found already in the database (replays).
    pub duplicates: AtomicU64,
    /// Rows older than the retention horizon, set aside in `expired.jsonl`
    /// beside the segments rather than inserted (see `write_batch`).
    pub expired: AtomicU64,
    /// Batches written (each one transaction).
    pub batches: AtomicU64,
    /// Batches that failed and will be retried.
    pub failed_batches: AtomicU64,
    /// Spool lines that could not be read (torn or corrupt) and were skipped.
    pub bad_lines: AtomicU64,
    /// Bytes appended to the spool, counting segments found at start.
    pub spooled_bytes: AtomicU64,
    /// Spool bytes the writer has put in the database (or skipped as unreadable).
    pub written_bytes: AtomicU64,
}

impl LedgerStats {
    /// Spool bytes not yet in the database: the writer's queue depth.
    pub fn backlog_bytes(&self) -> u64 {
        self.spooled_bytes
            .load(Ordering::Relaxed)
            .saturating_sub(self.written_bytes.load(Ordering::Relaxed))
    }
}

/// Largest read from a segment at once: room for a batch of rows.
const READ_CHUNK: u64 = 1024 * 1024;

struct Cursor {
    seq: u64,
    offset: u64,
}

/// The writer task's state.
pub struct Writer {
    db: Db,
    spool: Arc<Spool>,
    wake: Arc<Notify>,
    cfg: WriterConfig,
    stats: Arc<LedgerStats>,
    cursor: Option<Cursor>,
}

/// What one step did.
enum Step {
    /// Something happened; step again at once.
    Progress,
    /// Everything in the spool is in the database.
    Idle,
}

impl Writer {
    /// A writer over `spool`, woken by `wake` when rows are appended.
    pub fn new(db: Db, spool: Arc<Spool>, wake: Arc<Notify>, cfg: WriterConfig) -> Self {
        let stats = spool.stats();
        Self {
            db,
            spool,
            wake,
            cfg,
            stats,
            cursor: None,
        }
    }

    /// Runs until `stop` resolves, then drains what it can within `drain`.
    /// Rows still in the spool then are replayed by the next start.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>, drain: Duration) {
        tokio::pin!(stop);
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.step().await {
                Ok(Step::Progress) => {
                    backoff = Duration::from_millis(100);
                    // Stay a good neighbour on the runtime between batches.
                    tokio::task::yield_now().await;
                }
                Ok(Step::Idle) => {
                    backoff = Duration::from_millis(100);
                    tokio::select! {
                        () = &mut stop => break,
                        () = self.wake.notified() => {
                            // Let a batch gather before writing it.
                            tokio::time::sleep(self.cfg.flush_interval).await;
                        }
                        () = tokio::time::sleep(self.cfg.rotate_age) => {}
                    }
                }
                Err(e) => {
                    self.stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "ledger write failed; rows stay in the spool");
                    tokio::select! {
                        () = &mut stop => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        let drained = tokio::time::timeout(drain, async {
            // Seal the active segment, then write and remove every segment.
            if self.spool.rotate().is_err() {
                return false;
            }
            loop {
                match self.step().await {
                    Ok(Step::Progress) => tokio::task::yield_now().await,
                    Ok(Step::Idle) => return self.backlog_empty(),
                    Err(_) => return false,
                }
            }
        })
        .await
        .unwrap_or(false);
        if !drained {
            let _ = self.spool.sync();
            tracing::warn!(
                "ledger not fully drained at shutdown; the rest is replayed at next start"
            );
        }
    }

    fn backlog_empty(&self) -> bool {
        list_segments(self.spool.dir())
            .map(|s| s.len() <= 1)
            .unwrap_or(false)
            && self.stats.backlog_bytes() == 0
    }

    async fn step(&mut self) -> Result<Step, String> {
        let segments = list_segments(self.spool.dir()).map_err(|e| e.to_string())?;
        let Some((seq, path)) = segments.first().cloned() else {
            return Ok(Step::Idle);
        };
        let (active_seq, active_bytes, active_age) = self.spool.active();
        // Seal the active segment on size or age even under steady load, so
        // a restart replays little; a failed append also asks for a fresh one.
        let due = active_bytes >= self.cfg.rotate_bytes
            || (active_bytes > 0 && active_age >= self.cfg.rotate_age)
            || !self.spool.healthy();
        if due {
            self.spool.rotate().map_err(|e| e.to_string())?;
        }
        let active_seq = if due { active_seq + 1 } else { active_seq };
        let sealed = seq < active_seq;
        let offset = match &self.cursor {
            Some(c) if c.seq == seq => c.offset,
            _ => 0,
        };
        let (rows, consumed, torn) = match self.spool.take_recent(seq, offset, self.cfg.batch_rows)
        {
            Some((rows, consumed)) => (rows, consumed, false),
            None => read_rows(&path, offset, self.cfg.batch_rows, sealed, &self.stats)
                .map_err(|e| format!("reading {}: {e}", path.display()))?,
        };
        if !rows.is_empty() {
            let written = write_batch(&self.db, &rows)
                .await
                .map_err(|e| e.to_string())?;
            // After the commit: a failure here retries the batch, whose
            // other rows are then duplicates.
            set_aside(&path, &written.expired)
                .map_err(|e| format!("keeping expired rows aside: {e}"))?;
            let s = &self.stats;
            s.batches.fetch_add(1, Ordering::Relaxed);
            s.inserted
                .fetch_add(written.inserted as u64, Ordering::Relaxed);
            s.duplicates
                .fetch_add(written.duplicates as u64, Ordering::Relaxed);
            s.expired
                .fetch_add(written.expired.len() as u64, Ordering::Relaxed);
        }
        if consumed > 0 || torn {
            self.stats
                .written_bytes
                .fetch_add(consumed, Ordering::Relaxed);
            self.cursor = Some(Cursor {
                seq,
                offset: offset + consumed,
            });
            return Ok(Step::Progress);
        }
        if sealed {
            // Every row of a sealed segment is in the database: drop it.
            std::fs::remove_file(&path).map_err(|e| e.to_string())?;
            self.cursor = None;
            return Ok(Step::Progress);
        }
        Ok(Step::Idle)
    }
}

/// Appends rows older than the retention horizon to `expired.jsonl` beside
/// the segments (which the writer never reads): not billed, not lost. A
/// crash before the segment is done replays it and can repeat a row here.
fn set_aside(segment: &std::path::Path, rows: &[LedgerRow]) -> std::io::Result<()> {
    let Some(dir) = segment.parent().filter(|_| !rows.is_empty()) else {
        return Ok(());
    };
    let mut out = Vec::new();
    for r in rows {
        serde_json::to_writer(&mut out, r)?;
        out.push(b'\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("expired.jsonl"))?;
    std::io::Write::write_all(&mut f, &out)?;
    tracing::error!(
        rows = rows.len(),
        file = %dir.join("expired.jsonl").display(),
        "ledger rows older than the retention horizon were set aside, not billed: their month's raw rows are dropped, so a replay cannot be told from a new row"
    );
    Ok(())
}

/// Keeps a line the writer cannot read in `quarantine.jsonl` beside the
/// segments (which the writer never reads), rather than dropping it.
fn quarantine(segment: &std::path::Path, line: &[u8]) {
    let Some(dir) = segment.parent() else { return };
    let kept = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("quarantine.jsonl"))
        .and_then(|mut f| {
            let mut out = line.to_vec();
            out.push(b'\n');
            std::io::Write::write_all(&mut f, &out)
        });
    if let Err(e) = kept {
        tracing::error!(error = %e, "could not quarantine an unreadable ledger line");
    }
}

/// Reads up to `max_rows` complete lines from `path` at `offset`. Returns the
/// rows, the bytes consumed, and whether a torn tail of a sealed segment was
/// skipped. Unreadable lines are skipped and counted.
fn read_rows(
    path: &PathBuf,
    offset: u64,
    max_rows: usize,
    sealed: bool,
    stats: &LedgerStats,
) -> std::io::Result<(Vec<LedgerRow>, u64, bool)> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if offset >= len {
        return Ok((Vec::new(), 0, false));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.take(READ_CHUNK.min(len - offset))
        .read_to_end(&mut buf)?;
    let mut rows = Vec::new();
    let mut consumed = 0usize;
    for line in buf.split_inclusive(|b| *b == b'\n') {
        if rows.len() >= max_rows || !line.ends_with(b"\n") {
            break;
        }
        consumed += line.len();
        match serde_json::from_slice::<LedgerRow>(&line[..line.len() - 1]) {
            Ok(row) => rows.push(row),
            Err(e) => {
                stats.bad_lines.fetch_add(1, Ordering::Relaxed);
                quarantine(path, &line[..line.len() - 1]);
                tracing::error!(error = %e, file = %path.display(), "an unreadable ledger spool line was moved to quarantine.jsonl");
            }
        }
    }
    let rest = buf.len() - consumed;
    // A sealed segment never grows again: an unterminated tail is a write cut
    // short by a crash, before the request it belongs to was answered.
    let torn = sealed
        && rows.len() < max_rows
        && rest > 0
        && offset + buf.len() as u64 == len
        && !buf[consumed..].contains(&b'\n');
    if torn {
        stats.bad_lines.fetch_add(1, Ordering::Relaxed);
        quarantine(path, &buf[consumed..]);
        tracing::warn!(file = %path.display(), bytes = rest, "skipping a torn line at the end of a ledger spool segment");
        return Ok((rows, (consumed + rest) as u64, true));
    }
    Ok((rows, consumed as u64, false))
}
