//! Spots the event that ends a streamed answer, or the one that fails it.
//!
//! The driver shares cores with what it measures, so it does not build
//! events: it looks at the start of each `event:` and `data:` line as the
//! bytes go by, keeping at most a short prefix of a line cut between two
//! pieces.

use super::api::Api;

/// Enough of a line to tell the events apart.
const PREFIX: usize = 64;

/// What a stream said about how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The API's terminal event: the answer is complete.
    Complete,
    /// An error event (after HTTP 200).
    Failed,
}

/// Watches one stream for its terminal event.
#[derive(Debug)]
pub(crate) struct StreamEnd {
    api: Api,
    /// The start of the line the last piece cut.
    line: Vec<u8>,
    /// The first terminal or error event seen.
    end: Option<End>,
}

impl StreamEnd {
    pub(crate) fn new(api: Api) -> Self {
        Self {
            api,
            line: Vec::with_capacity(PREFIX),
            end: None,
        }
    }

    /// The first terminal or error event seen so far.
    pub(crate) fn end(&self) -> Option<End> {
        self.end
    }

    /// Reads one more piece of the body.
    pub(crate) fn feed(&mut self, piece: &[u8]) {
        if self.end.is_some() {
            return;
        }
        let mut rest = piece;
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(at);
            rest = &tail[1..];
            let end = if self.line.is_empty() {
                self.classify(head)
            } else {
                self.keep(head);
                let line = std::mem::take(&mut self.line);
                let end = self.classify(&line);
                self.line = line;
                self.line.clear();
                end
            };
            if end.is_some() {
                self.end = end;
                return;
            }
        }
        self.keep(rest);
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = PREFIX.saturating_sub(self.line.len());
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn classify(&self, line: &[u8]) -> Option<End> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(name) = field(line, b"event:") {
            return self.by_name(name);
        }
        let data = field(line, b"data:")?;
        match self.api {
            Api::Chat if data == b"[DONE]" => Some(End::Complete),
            Api::Chat if data.starts_with(b"{\"error\"") => Some(End::Failed),
            Api::Chat => None,
            // Streams without `event:` lines carry the name as `type`.
            Api::Messages | Api::Responses => type_of(data).and_then(|t| self.by_name(t)),
        }
    }

    fn by_name(&self, name: &[u8]) -> Option<End> {
        match (self.api, name) {
            (Api::Messages, b"message_stop") => Some(End::Complete),
            (Api::Responses, b"response.completed" | b"response.incomplete") => Some(End::Complete),
            (Api::Messages, b"error") | (Api::Responses, b"response.failed" | b"error") => {
                Some(End::Failed)
            }
            _ => None,
        }
    }
}

/// The value of an SSE field line `name: value`, if the line is that field.
fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let value = line.strip_prefix(name)?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

/// The `type` of a JSON object whose first key is `type`.
fn type_of(data: &[u8]) -> Option<&[u8]> {
    let trim = |s: &'_ [u8]| -> usize { s.iter().take_while(|b| b.is_ascii_whitespace()).count() };
    let mut s = data.strip_prefix(b"{")?;
    s = &s[trim(s)..];
    s = s.strip_prefix(b"\"type\"")?;
    s = &s[trim(s)..];
    s = s.strip_prefix(b":")?;
    s = &s[trim(s)..];
    s = s.strip_prefix(b"\"")?;
    let close = s.iter().position(|&b| b == b'"')?;
    Some(&s[..close])
}

#[cfg(test)]
mod tests {
    use super::{Api, End, StreamEnd};

    fn scan(api: Api, pieces: &[&str]) -> Option<End> {
        let mut s = StreamEnd::new(api);
        for p in pieces {
            s.feed(p.as_bytes());
        }
        s.end()
    }

    #[test]
    fn chat_streams_end_at_done_even_when_cut_mid_line() {
        let body = "data: {\"choices\":[]}\n\ndata: [DO";
        assert_eq!(scan(Api::Chat, &[body]), None);
        assert_eq!(scan(Api::Chat, &[body, "NE]\n\n"]), Some(End::Complete));
        assert_eq!(
            scan(Api::Chat, &["data: {\"error\": {}}\n\n"]),
            Some(End::Failed)
        );
        // Text that mentions the marker does not end the stream.
        assert_eq!(
            scan(Api::Chat, &["data: {\"content\":\"data: [DONE]\"}\n\n"]),
            None
        );
    }

    #[test]
    fn messages_and_responses_streams_end_at_their_terminal_events() {
        let stop = "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n";
        assert_eq!(scan(Api::Messages, &[stop]), Some(End::Complete));
        assert_eq!(
            scan(Api::Messages, &["event: error\ndata: {}\n\n"]),
            Some(End::Failed)
        );
        assert_eq!(
            scan(
                Api::Responses,
                &["data: {\"type\": \"response.completed\"}\n\n"]
            ),
            Some(End::Complete)
        );
        assert_eq!(
            scan(Api::Responses, &["event: response.fa", "iled\n"]),
            Some(End::Failed)
        );
        assert_eq!(
            scan(Api::Responses, &["event: response.output_text.delta\n"]),
            None
        );
    }
}
