//! The spool: append-only segment files of JSON lines, one row a line.
//!
//! Appends go to the active segment under a lock, one `write` per row. The
//! writer seals the active segment by rotating to a new one, and deletes a
//! sealed segment once every row in it is in the database. On start the
//! spool opens a fresh segment; older ones are all sealed and get replayed.
//!
//! The rows appended are also kept in memory, each with where its line lies
//! in its segment, so that the writer takes them from there rather than
//! reading their lines back and parsing them; it reads the file whenever
//! its place in the spool is not where the rows in memory start (rows an
//! earlier run left, or more than memory keeps). The file stays what
//! counts: a row is in memory only once its line is written whole.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::{LedgerRow, LedgerStats};

/// A spool failure.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The file system failed.
    #[error("ledger spool I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Another process holds the spool directory.
    #[error("the ledger spool {0} is in use by another process ({1}); give each gateway its own spool_dir")]
    Busy(PathBuf, String),
    /// A row could not be encoded.
    #[error("ledger row could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

struct Active {
    seq: u64,
    file: File,
    bytes: u64,
    opened: Instant,
    /// The rows appended and not yet taken by the writer, oldest first, at
    /// most [`RECENT_ROWS`]; rotation keeps them (they name their segment).
    recent: VecDeque<Recent>,
}

/// A row appended, and where its line lies.
struct Recent {
    seq: u64,
    start: u64,
    end: u64,
    row: LedgerRow,
}

/// Most rows kept in memory for the writer: what a busy gateway appends
/// while the writer waits for a batch to gather (200 ms at 15,000 requests
/// a second is 3,000), a few hundred bytes each. Past it rows are read
/// back from the file.
const RECENT_ROWS: usize = 4096;

/// The rows an earlier run left in the spool, from a point in time on
/// ([`Spool::rows_left_since`]); an I/O error ends them with that error.
pub struct LeftRows<'a> {
    paths: std::slice::Iter<'a, PathBuf>,
    since: std::time::SystemTime,
    since_ms: i64,
    reader: Option<std::io::BufReader<File>>,
    line: Vec<u8>,
}

impl LeftRows<'_> {
    /// The next segment written to since the point in time, opened.
    fn open_next(&mut self) -> Result<bool, SpoolError> {
        for path in self.paths.by_ref() {
            let recent = match fs::metadata(path).and_then(|m| m.modified()) {
                Ok(modified) => modified >= self.since,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => return Err(e.into()),
            };
            if !recent {
                continue;
            }
            match File::open(path) {
                Ok(f) => {
                    self.reader = Some(std::io::BufReader::new(f));
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(false)
    }
}

impl Iterator for LeftRows<'_> {
    type Item = Result<LedgerRow, SpoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::io::BufRead;
        loop {
            let Some(reader) = self.reader.as_mut() else {
                match self.open_next() {
                    Ok(true) => continue,
                    Ok(false) => return None,
                    Err(e) => {
                        self.paths = [].iter();
                        return Some(Err(e));
                    }
                }
            };
            self.line.clear();
            match reader.read_until(b'\n', &mut self.line) {
                Ok(0) => self.reader = None,
                Ok(_) => {
                    let Ok(row) = serde_json::from_slice::<LedgerRow>(&self.line) else {
                        continue;
                    };
                    let latency = i64::try_from(row.latency_ms).unwrap_or(i64::MAX);
                    if row.started_at_ms.saturating_add(latency) >= self.since_ms {
                        return Some(Ok(row));
                    }
                }
                Err(e) => {
                    self.reader = None;
                    self.paths = [].iter();
                    return Some(Err(e.into()));
                }
            }
        }
    }
}

/// The spool directory and its active segment.
pub struct Spool {
    dir: PathBuf,
    active: Mutex<Active>,
    stats: Arc<LedgerStats>,
    /// Held for the spool's life: one process per spool directory.
    _lock: File,
    /// Set when an append failed, cleared when a fresh segment opens.
    failing: AtomicBool,
    /// The segments an earlier run left, found at open.
    left: Vec<PathBuf>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("dir", &self.dir).finish()
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.jsonl"))
}

fn open_segment(dir: &Path, seq: u64) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, seq))
}

/// The segments in `dir`, oldest first.
pub(super) fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(seq) = seq {
            out.push((seq, path));
        }
    }
    out.sort();
    Ok(out)
}

impl Spool {
    /// Opens (or creates) the spool in `dir` with a fresh active segment.
    /// Fails when another process holds the directory: two writers on one
    /// spool would delete each other's segments.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        if let Err(e) = lock.try_lock() {
            return Err(SpoolError::Busy(dir.to_owned(), e.to_string()));
        }
        let segments = list_segments(dir)?;
        let next = segments.last().map(|(s, _)| s + 1).unwrap_or(1);
        let stats = Arc::new(LedgerStats::default());
        // Rows left by an earlier run are part of the backlog.
        let left: u64 = segments
            .iter()
            .filter_map(|(_, p)| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        stats.spooled_bytes.store(left, Ordering::Relaxed);
        let file = open_segment(dir, next)?;
        Ok(Spool {
            dir: dir.to_owned(),
            active: Mutex::new(Active {
                seq: next,
                file,
                bytes: 0,
                opened: Instant::now(),
                recent: VecDeque::new(),
            }),
            stats,
            _lock: lock,
            failing: AtomicBool::new(false),
            left: segments.into_iter().map(|(_, p)| p).collect(),
        })
    }

    /// The rows an earlier run left in the spool that it wrote at or after
    /// `since_ms` (a row is written when its request ends: its start plus
    /// its latency), oldest segment first, read a line at a time. Read them
    /// before the writer starts: it deletes segments once they are in the
    /// database. Unreadable lines are skipped (the writer counts them).
    pub fn rows_left_since(&self, since_ms: i64) -> LeftRows<'_> {
        let since = std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(u64::try_from(since_ms).unwrap_or(0));
        LeftRows {
            paths: self.left.iter(),
            since,
            since_ms,
            reader: None,
            line: Vec::new(),
        }
    }

    /// The counters of this spool and its writer.
    pub fn stats(&self) -> Arc<LedgerStats> {
        self.stats.clone()
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Active> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one row. When this returns, the row survives the process.
    /// A failed write is cut back off the file (so the next row starts on a
    /// line of its own) and marks the spool unhealthy until it is rotated.
    pub fn append(&self, row: &LedgerRow) -> Result<(), SpoolError> {
        self.append_row(row.clone())
    }

    /// [`append`](Self::append), taking the row.
    pub fn append_row(&self, row: LedgerRow) -> Result<(), SpoolError> {
        let mut line = serde_json::to_vec(&row)?;
        line.push(b'\n');
        let mut active = self.lock();
        if let Err(e) = active.file.write_all(&line) {
            let _ = active.file.set_len(active.bytes);
            self.failing.store(true, Ordering::SeqCst);
            return Err(e.into());
        }
        let start = active.bytes;
        active.bytes += line.len() as u64;
        if active.recent.len() < RECENT_ROWS {
            let (seq, end) = (active.seq, active.bytes);
            active.recent.push_back(Recent {
                seq,
                start,
                end,
                row,
            });
        }
        self.stats
            .spooled_bytes
            .fetch_add(line.len() as u64, Ordering::Relaxed);
        self.stats.appended.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Up to `max_rows` rows whose lines follow one another from `offset`
    /// in segment `seq`, and how many bytes those lines take: the rows the
    /// writer would read there, without reading them. `None` when memory
    /// does not hold the row at that place (the writer reads the file).
    /// Rows before that place were taken from the file and are dropped.
    pub(super) fn take_recent(
        &self,
        seq: u64,
        offset: u64,
        max_rows: usize,
    ) -> Option<(Vec<LedgerRow>, u64)> {
        let mut active = self.lock();
        let recent = &mut active.recent;
        while recent
            .front()
            .is_some_and(|r| r.seq < seq || (r.seq == seq && r.start < offset))
        {
            recent.pop_front();
        }
        let mut end = offset;
        let mut rows = Vec::new();
        while rows.len() < max_rows
            && recent
                .front()
                .is_some_and(|r| r.seq == seq && r.start == end)
        {
            let Some(r) = recent.pop_front() else { break };
            end = r.end;
            rows.push(r.row);
        }
        // A burst's worth of room is not kept once the writer caught up.
        if recent.is_empty() && recent.capacity() > 256 {
            recent.shrink_to(256);
        }
        (!rows.is_empty()).then_some((rows, end - offset))
    }

    /// Whether appends are working. While they are not, the gateway refuses
    /// new requests rather than serve them unbilled.
    pub fn healthy(&self) -> bool {
        !self.failing.load(Ordering::SeqCst)
    }

    /// The active segment's number, size in bytes, and age.
    pub(super) fn active(&self) -> (u64, u64, std::time::Duration) {
        let a = self.lock();
        (a.seq, a.bytes, a.opened.elapsed())
    }

    /// Seals the active segment and starts a new one, if it holds anything.
    pub(super) fn rotate(&self) -> Result<(), SpoolError> {
        let mut a = self.lock();
        if a.bytes == 0 && !self.failing.load(Ordering::SeqCst) {
            return Ok(());
        }
        a.file.flush()?;
        let seq = a.seq + 1;
        let file = open_segment(&self.dir, seq)?;
        a.seq = seq;
        a.file = file;
        a.bytes = 0;
        a.opened = Instant::now();
        self.failing.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Forces everything appended so far to disk (for an orderly shutdown).
    pub fn sync(&self) -> Result<(), SpoolError> {
        self.lock().file.sync_data()?;
        Ok(())
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;

    /// The rows segment `seq`'s lines hold.
    fn lines(dir: &Path, seq: u64) -> Result<Vec<LedgerRow>, Box<dyn std::error::Error>> {
        let text = fs::read(segment_path(dir, seq))?;
        let mut rows = Vec::new();
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            rows.push(serde_json::from_slice(line)?);
        }
        Ok(rows)
    }

    /// The rows the writer takes from memory are the rows their lines hold,
    /// at the places and with the lengths the lines have; any other place
    /// is left to the file.
    #[test]
    fn rows_kept_in_memory_are_the_rows_their_lines_hold() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let now = crate::db::now_ms();
        let mut rows: Vec<LedgerRow> = (0..5)
            .map(|i| crate::testing::bench_row(i, 3, now, 0))
            .collect();
        rows[1].session = Some("s-1 \"quoted\" \u{e9}".into());
        rows[2].org_id = None;
        for r in &rows {
            spool.append(r).unwrap();
        }
        let (seq, bytes, _) = spool.active();
        assert_eq!(lines(dir.path(), seq).unwrap(), rows);
        assert!(
            spool.take_recent(seq - 1, 0, 10).is_none(),
            "an older segment is read from its file"
        );
        let (first, used) = spool.take_recent(seq, 0, 2).unwrap();
        assert_eq!(first, rows[..2]);
        let (rest, more) = spool.take_recent(seq, used, 10).unwrap();
        assert_eq!(rest, rows[2..]);
        assert_eq!(used + more, bytes, "the lines' lengths");
        assert!(spool.take_recent(seq, bytes, 10).is_none(), "all taken");

        // Only a line's start is a place memory answers for.
        spool.append(&rows[3]).unwrap();
        spool.append(&rows[4]).unwrap();
        assert!(spool.take_recent(seq, bytes + 1, 10).is_none());
        let (_, end, _) = spool.active();
        assert!(spool.take_recent(seq, end, 10).is_none());

        // Rows the writer read from the file are dropped when it asks past
        // them; a new segment's rows start at 0 again.
        spool.append(&rows[0]).unwrap();
        let (_, at, _) = spool.active();
        spool.append(&rows[1]).unwrap();
        spool.rotate().unwrap();
        spool.append(&rows[2]).unwrap();
        let (taken, _) = spool.take_recent(seq, at, 10).unwrap();
        assert_eq!(taken, rows[1..2], "the first row was read from the file");
        let (taken, _) = spool.take_recent(seq + 1, 0, 10).unwrap();
        assert_eq!(taken, rows[2..3]);
        assert_eq!(lines(dir.path(), seq + 1).unwrap(), rows[2..3]);
    }

    /// Past what memory keeps, rows are left to the file, and the rows
    /// memory holds still start where their lines do.
    #[test]
    fn rows_past_what_memory_keeps_are_read_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let now = crate::db::now_ms();
        let row = crate::testing::bench_row(0, 3, now, 0);
        for _ in 0..RECENT_ROWS + 10 {
            spool.append(&row).unwrap();
        }
        let (seq, bytes, _) = spool.active();
        let mut at = 0;
        let mut taken = 0;
        while let Some((rows, used)) = spool.take_recent(seq, at, 500) {
            taken += rows.len();
            at += used;
        }
        assert_eq!(taken, RECENT_ROWS);
        assert_eq!(lines(dir.path(), seq).unwrap().len(), RECENT_ROWS + 10);
        assert!(at < bytes, "the rest is only in the file");
        spool.append(&row).unwrap();
        assert!(
            spool.take_recent(seq, at, 500).is_none(),
            "a row after a gap is not where the writer is"
        );
    }

    /// A restart reads the rows the killed run left, from the window asked
    /// for, as often as asked, past a torn line.
    #[test]
    fn rows_left_by_an_earlier_run_are_read_from_a_point_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::db::now_ms();
        let mut rows: Vec<LedgerRow> = (0..3)
            .map(|i| crate::testing::bench_row(i, 3, now - 1_000, 0))
            .collect();
        rows[0].started_at_ms = now - 20 * 60_000;
        {
            let spool = Spool::open(dir.path()).unwrap();
            for r in &rows {
                spool.append(r).unwrap();
            }
            assert_eq!(
                spool.rows_left_since(0).count(),
                0,
                "its own rows are not left"
            );
            let (seq, _, _) = spool.active();
            let mut f = OpenOptions::new()
                .append(true)
                .open(segment_path(dir.path(), seq))
                .unwrap();
            f.write_all(b"{\"torn\":\n").unwrap();
        }
        let spool = Spool::open(dir.path()).unwrap();
        let ids = |since: i64| -> Vec<_> {
            spool
                .rows_left_since(since)
                .map(|r| r.unwrap().request_id)
                .collect()
        };
        let recent = ids(now - 10 * 60_000);
        assert_eq!(recent, vec![rows[1].request_id, rows[2].request_id]);
        assert_eq!(ids(now - 10 * 60_000), recent, "read again, the same");
        assert_eq!(ids(0).len(), 3);
    }
}
