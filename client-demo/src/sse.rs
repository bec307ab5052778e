//! A server-sent events parser, as the WHATWG HTML standard specifies the stream
//! ("9.2.6 Interpreting an event stream"), fed bytes in whatever pieces the network delivers.
//!
//! It handles every line ending (CRLF, LF, CR, including a CRLF split across two reads), a
//! leading byte order mark, comments, `data:` with or without its one space, multi-line data,
//! `id` and `retry`. Lines and events are bounded, so a server cannot make it grow forever.

use std::time::Duration;

/// Longest line or event data accepted: a snapshot of a very full world, as JSON.
pub const MAX_EVENT_BYTES: usize = 32 << 20;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, or `message` when there was none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last event id seen so far in the stream (ids carry over to later events).
    pub id: String,
}

/// The tick in a tickcast event id: `<epoch>-<tick>` (or a bare tick, as servers before
/// epochs wrote them).
pub fn event_tick(id: &str) -> Option<u64> {
    id.rsplit('-').next()?.trim().parse().ok()
}

/// Why the stream cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line or an event's data grew past [`MAX_EVENT_BYTES`].
    #[error("event stream line or event over {MAX_EVENT_BYTES} bytes")]
    TooLong,
}

/// The parser's state between two reads.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    /// The previous read ended in CR: an LF starting this one belongs to the same line end.
    after_cr: bool,
    /// Past the first bytes, where a byte order mark is no longer skipped.
    started: bool,
    event: String,
    data: String,
    last_id: String,
    retry: Option<Duration>,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `bytes`, appending every event they complete to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if !self.started {
            self.started = true;
            bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
        }
        if self.after_cr && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        self.after_cr = false;
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.take(&bytes[..end])?;
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out)?;
            self.line = line;
            self.line.clear();
            let crlf = bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n');
            if bytes[end] == b'\r' && end + 1 == bytes.len() {
                self.after_cr = true;
            }
            bytes = &bytes[end + if crlf { 2 } else { 1 }..];
        }
        self.take(bytes)
    }

    /// Prepares for the stream of a reconnection: a partial line or event of the broken stream
    /// is dropped, the last event id and the retry delay are kept, as the standard says.
    pub fn restart(&mut self) {
        *self = Self {
            last_id: std::mem::take(&mut self.last_id),
            retry: self.retry,
            ..Self::default()
        };
    }

    /// Forgets the last event id, so the next connection asks for the stream from its start
    /// rather than a resume.
    pub fn forget_last_event_id(&mut self) {
        self.last_id.clear();
    }

    /// The reconnection time the server asked for with `retry:`, if it did.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// The last event id seen, for a reconnection's `Last-Event-ID` header.
    pub fn last_event_id(&self) -> &str {
        &self.last_id
    }

    /// Appends part of a line, within the bound.
    fn take(&mut self, part: &[u8]) -> Result<(), SseError> {
        if self.line.len() + part.len() > MAX_EVENT_BYTES {
            return Err(SseError::TooLong);
        }
        self.line.extend_from_slice(part);
        Ok(())
    }

    /// Interprets one complete line.
    fn line_done(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // a comment, often a keep-alive
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.data.len() + value.len() + 1 > MAX_EVENT_BYTES {
                    return Err(SseError::TooLong);
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => value.clone_into(&mut self.last_id),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // All digits; only a number too large for u64 fails, and it is ignored like
                // any other unusable field.
                if let Ok(ms) = value.parse() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {} // unknown fields are ignored
        }
        Ok(())
    }

    /// A blank line: hands over the event being built, if it has data.
    fn dispatch(&mut self, out: &mut Vec<Event>) {
        let event = std::mem::take(&mut self.event);
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the newline after the last data line
        out.push(Event {
            event: if event.is_empty() { "message".into() } else { event },
            data,
            id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `stream` fed in pieces of `size` bytes.
    fn parse_in_pieces(stream: &[u8], size: usize) -> (Vec<Event>, Parser) {
        let mut parser = Parser::new();
        let mut out = Vec::new();
        for piece in stream.chunks(size) {
            parser.push(piece, &mut out).unwrap();
        }
        (out, parser)
    }

    fn parse(stream: &str) -> Vec<Event> {
        parse_in_pieces(stream.as_bytes(), usize::MAX).0
    }

    fn event(event: &str, data: &str, id: &str) -> Event {
        Event {
            event: event.into(),
            data: data.into(),
            id: id.into(),
        }
    }

    #[test]
    fn fields_with_and_without_the_space() {
        let events = parse("event: snapshot\nid: 300\ndata: {\"tick\":300}\n\nevent:delta\ndata:{}\n\n");
        assert_eq!(
            events,
            [event("snapshot", "{\"tick\":300}", "300"), event("delta", "{}", "300")]
        );
    }

    #[test]
    fn multi_line_data_joins_with_newlines_and_keeps_extra_spaces() {
        assert_eq!(parse("data:  a\ndata\ndata: b\n\n"), [event("message", " a\n\nb", "")]);
    }

    #[test]
    fn every_line_ending_and_every_split_gives_the_same_events() {
        let expected = [event("delta", "one", "7"), event("message", "two", "7")];
        for ending in ["\n", "\r\n", "\r"] {
            let stream = [
                "event: delta",
                "id: 7",
                "data: one",
                "",
                ": keep-alive",
                "data: two",
                "",
                "",
            ]
            .join(ending);
            for size in 1..=stream.len() {
                let (events, _) = parse_in_pieces(stream.as_bytes(), size);
                assert_eq!(events, expected, "ending {ending:?}, pieces of {size}");
            }
        }
    }

    #[test]
    fn comments_retry_and_bom_are_handled() {
        let (events, parser) = parse_in_pieces("\u{feff}retry: 2500\n: hello\n\ndata: x\n\n".as_bytes(), 3);
        assert_eq!(events, [event("message", "x", "")]);
        assert_eq!(parser.retry(), Some(Duration::from_millis(2500)));
        let (_, parser) = parse_in_pieces(b"retry: 1.5\nretry\nid: a\0b\n\n", 64);
        assert_eq!(parser.retry(), None);
        assert_eq!(parser.last_event_id(), "");
    }

    #[test]
    fn an_event_without_data_or_without_its_blank_line_is_not_dispatched() {
        assert_eq!(parse("event: delta\n\ndata: x"), []);
        // The event type does not leak into the next event.
        assert_eq!(parse("event: delta\n\ndata: x\n\n"), [event("message", "x", "")]);
    }

    #[test]
    fn a_restart_drops_the_broken_event_and_keeps_id_and_retry() {
        let (_, mut parser) = parse_in_pieces(b"retry: 20\nid: 9\ndata: {\"tick\":9}\n\ndata: half of an ev", 64);
        parser.restart();
        let mut out = Vec::new();
        parser.push(b"ent\n\ndata: whole\n\n", &mut out).unwrap();
        assert_eq!(out, [event("message", "whole", "9")]);
        assert_eq!(parser.retry(), Some(Duration::from_millis(20)));
        parser.forget_last_event_id();
        assert_eq!(parser.last_event_id(), "");
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut parser = Parser::new();
        let chunk = vec![b'a'; 1 << 20];
        let mut out = Vec::new();
        let fed = (0..40).try_for_each(|_| parser.push(&chunk, &mut out));
        assert_eq!(fed, Err(SseError::TooLong));
    }
}
