//! Server-sent events framing without copying events apart: the upstream's
//! bytes gather in one buffer, each complete event is split off as a slice of
//! it, and its fields are read in place. A codec that changes nothing
//! forwards the slice as it arrived.

use std::borrow::Cow;
use std::ops::Range;

use bytes::{Buf, BytesMut};

/// The largest single event accepted (bytes between two blank lines).
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// Splits a byte stream into events, read in place in one buffer.
#[derive(Debug, Default)]
pub struct Framer {
    buf: BytesMut,
    /// Where the first event not yet handed out begins.
    start: usize,
    /// Where the search for the end of that event resumes: the start of the
    /// first line not yet seen whole (every line before it was not blank).
    scanned: usize,
    /// Whether the stream's start (and a byte order mark there) was seen.
    started: bool,
}

/// The stream holds more than [`MAX_EVENT_BYTES`] without an event boundary.
#[derive(Debug)]
pub struct Oversized;

impl Framer {
    /// Adds a piece of the upstream body.
    pub fn push(&mut self, piece: &[u8]) -> Result<(), Oversized> {
        // Drop what was handed out, so the buffer holds one event at most
        // between reads.
        if self.start > 0 {
            self.buf.advance(self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.buf.is_empty() {
            // Nothing carried over (the usual case: a read ends on an event
            // boundary): a buffer the piece's size, so that a stream waiting
            // for its next read holds no more than its last one.
            self.buf = BytesMut::from(piece);
        } else {
            self.buf.extend_from_slice(piece);
        }
        if !self.started {
            // A byte order mark at the stream's start is dropped, also when
            // it arrives split across pieces (found by fuzzing: a mark cut
            // after its first byte stayed, and hid the first event's first
            // field). Until three bytes are in, a prefix of it waits.
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            if self.buf.starts_with(BOM) {
                self.buf.advance(BOM.len());
                self.started = true;
            } else if !BOM.starts_with(&self.buf) {
                self.started = true;
            }
        }
        if self.buf.len() > MAX_EVENT_BYTES && self.boundary().is_none() {
            return Err(Oversized);
        }
        Ok(())
    }

    /// Where the next complete event lies in [`Framer::bytes`], with the
    /// blank line that ends it; valid until the next `push`.
    pub fn next_event(&mut self) -> Option<Range<usize>> {
        loop {
            let end = self.boundary()?;
            let event = self.start..end;
            self.start = end;
            self.scanned = end;
            // A blank line with nothing before it ends no event.
            if !self.buf[event.clone()]
                .iter()
                .all(|b| matches!(b, b'\n' | b'\r'))
            {
                return Some(event);
            }
        }
    }

    /// The buffered bytes that [`Framer::next_event`]'s ranges index.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// What is left once the upstream's body ended: a last event that lacked
    /// its blank line, if any.
    pub fn rest(&mut self) -> Option<Range<usize>> {
        let rest = self.start..self.buf.len();
        self.start = rest.end;
        self.scanned = rest.end;
        (!self.buf[rest.clone()].iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }

    /// Where the first complete event after `start` ends (after its blank
    /// line). Lines end with LF, CRLF or CR.
    fn boundary(&mut self) -> Option<usize> {
        let buf = &self.buf[..];
        let mut line = self.scanned.max(self.start);
        while let Some(off) = memchr::memchr2(b'\n', b'\r', &buf[line..]) {
            let at = line + off;
            let eol = match (buf[at], buf.get(at + 1)) {
                (b'\r', Some(b'\n')) => 2,
                // A CR at the end: wait to see whether LF follows.
                (b'\r', None) => break,
                _ => 1,
            };
            if at == line {
                return Some(at + eol);
            }
            line = at + eol;
        }
        self.scanned = line;
        None
    }
}

/// One event's fields, read in place.
#[derive(Debug)]
pub struct Fields<'a> {
    /// The `event:` field; empty when there was none.
    pub name: &'a str,
    /// The `data:` lines, joined by newlines.
    pub data: Cow<'a, str>,
    /// Where `data` lies in the event's bytes, when it is one line as sent
    /// (so it can be rewritten in place).
    pub data_span: Option<Range<usize>>,
}

/// An event that is not UTF-8 text.
#[derive(Debug)]
pub struct NotText;

/// Reads an event's fields (`raw` is one event as [`Framer`] split it).
pub fn fields(raw: &[u8]) -> Result<Fields<'_>, NotText> {
    fn text(b: &[u8]) -> Result<&str, NotText> {
        std::str::from_utf8(b).map_err(|_| NotText)
    }
    let mut name = "";
    let mut data: Option<Cow<'_, str>> = None;
    let mut data_span = None;
    let mut pos = 0;
    while pos < raw.len() {
        let end = memchr::memchr2(b'\n', b'\r', &raw[pos..]).map_or(raw.len(), |i| pos + i);
        let line = &raw[pos..end];
        let start = pos;
        pos = end + 1;
        if raw.get(end) == Some(&b'\r') && raw.get(end + 1) == Some(&b'\n') {
            pos += 1;
        }
        if line.is_empty() || line[0] == b':' {
            continue;
        }
        let (field, value_at) = match memchr::memchr(b':', line) {
            Some(colon) if line.get(colon + 1) == Some(&b' ') => (&line[..colon], colon + 2),
            Some(colon) => (&line[..colon], colon + 1),
            None => (line, line.len()),
        };
        let value = &line[value_at..];
        match field {
            b"event" => name = text(value)?,
            b"data" => {
                let value = text(value)?;
                data = Some(match data {
                    None => {
                        let at = start + value_at;
                        data_span = Some(at..at + value.len());
                        Cow::Borrowed(value)
                    }
                    Some(prev) => {
                        data_span = None;
                        let mut joined = prev.into_owned();
                        joined.push('\n');
                        joined.push_str(value);
                        Cow::Owned(joined)
                    }
                });
            }
            _ => {}
        }
    }
    Ok(Fields {
        name,
        data: data.unwrap_or(Cow::Borrowed("")),
        data_span,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(pieces: &[&[u8]]) -> Vec<String> {
        let mut f = Framer::default();
        let mut out = Vec::new();
        for p in pieces {
            f.push(p).unwrap();
            while let Some(ev) = f.next_event() {
                out.push(String::from_utf8(f.bytes()[ev].to_vec()).unwrap());
            }
        }
        if let Some(rest) = f.rest() {
            out.push(String::from_utf8(f.bytes()[rest].to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn events_split_at_blank_lines_of_every_line_ending() {
        let want = vec![
            "data: 1\n\n",
            "data: 2\r\n\r\n",
            "data: 3\r\r",
            "event: e\ndata: 4\n\n",
        ];
        let whole = want.concat();
        assert_eq!(split_all(&[whole.as_bytes()]), want);
        // Byte by byte, every terminator split across pieces.
        let bytes: Vec<&[u8]> = whole.as_bytes().chunks(1).collect();
        assert_eq!(split_all(&bytes), want);
        let pairs: Vec<&[u8]> = whole.as_bytes().chunks(2).collect();
        assert_eq!(split_all(&pairs), want);
    }

    #[test]
    fn a_last_event_without_its_blank_line_is_kept_and_a_bom_dropped() {
        assert_eq!(
            split_all(&[b"\xEF\xBB\xBFdata: a\n\ndata: [DONE]\n"]),
            vec!["data: a\n\n", "data: [DONE]\n"]
        );
        assert_eq!(split_all(&[b"data: a\n\n\n"]), vec!["data: a\n\n"]);
    }

    #[test]
    fn a_bom_split_across_pieces_is_dropped_too() {
        let whole: &[u8] = b"\xEF\xBB\xBFdata: a\n\n";
        for cut in 1..3 {
            let (head, tail) = whole.split_at(cut);
            assert_eq!(
                split_all(&[head, tail]),
                vec!["data: a\n\n"],
                "cut at {cut}"
            );
        }
        assert_eq!(
            split_all(&[b"", b"\xEF", b"\xBB", b"\xBF", b"data: a\n\n"]),
            vec!["data: a\n\n"]
        );
        // Bytes that only begin like a mark are kept.
        let mut f = Framer::default();
        f.push(b"\xEF").unwrap();
        f.push(b"data: a\n\n").unwrap();
        let ev = f.next_event().unwrap();
        assert_eq!(&f.bytes()[ev], b"\xEFdata: a\n\n");
    }

    #[test]
    fn fields_are_read_in_place() {
        let raw = b"event: message_start\r\nid: 7\r\n: note\r\ndata: {\"a\":1}\r\n\r\n";
        let f = fields(raw).unwrap();
        assert_eq!(f.name, "message_start");
        assert_eq!(f.data, "{\"a\":1}");
        assert!(matches!(f.data, Cow::Borrowed(_)));
        assert_eq!(&raw[f.data_span.unwrap()], b"{\"a\":1}");
        let f = fields(b"data:x\ndata: y\n\n").unwrap();
        assert_eq!((f.name, &*f.data, f.data_span), ("", "x\ny", None));
        let f = fields(b": keep-alive\n\n").unwrap();
        assert_eq!(f.data, "");
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut f = Framer::default();
        let chunk = vec![b'x'; 1024 * 1024];
        let mut refused = false;
        for _ in 0..9 {
            if f.push(&chunk).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused);
    }
}
