//! Forwards a server-sent-event stream in whole events.
//!
//! The gateway does not re-encode events: bytes pass through exactly as the upstream wrote
//! them. What the framer adds is *timing*: it releases bytes only up to the end of the last
//! complete event (a blank line), holding a partial event back until it is complete. If the
//! upstream then fails, what the client has received ends on an event boundary, and the
//! gateway can append an error event without the client ever parsing a truncated JSON chunk.
//!
//! Line endings follow the SSE spec: `\n`, `\r\n` or `\r`; an event ends at an empty line.

use bytes::{Bytes, BytesMut};

/// A partial event grew past the bound (a broken or hostile upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseOverflow {
    /// The bound that was exceeded, in bytes.
    pub limit: usize,
}

/// How a stream ended, judged from the bytes released so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The last event was `data: [DONE]`.
    Done,
    /// Whole events only, but no `[DONE]`: the upstream stopped early.
    MissingDone,
    /// Bytes of an unfinished event were held back and are dropped.
    PartialEvent,
}

/// Splits an upstream byte stream at event boundaries. See the module docs.
#[derive(Debug)]
pub struct SseFramer {
    pending: BytesMut,
    max_event_bytes: usize,
    saw_done: bool,
}

impl SseFramer {
    /// A framer that holds back at most `max_event_bytes` of one unfinished event.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            pending: BytesMut::new(),
            max_event_bytes,
            saw_done: false,
        }
    }

    /// Feeds the next upstream chunk and returns the bytes that may be sent now (possibly
    /// empty). The common case, a chunk that ends on an event boundary with nothing held back,
    /// is returned without copying.
    pub fn push(&mut self, chunk: Bytes) -> Result<Bytes, SseOverflow> {
        let released = if self.pending.is_empty() {
            match last_event_end(&chunk) {
                Some(end) if end == chunk.len() => chunk,
                Some(end) => {
                    let mut head = chunk;
                    let tail = head.split_off(end);
                    self.pending.extend_from_slice(&tail);
                    head
                }
                None => {
                    self.pending.extend_from_slice(&chunk);
                    Bytes::new()
                }
            }
        } else {
            self.pending.extend_from_slice(&chunk);
            match last_event_end(&self.pending) {
                Some(end) => self.pending.split_to(end).freeze(),
                None => Bytes::new(),
            }
        };
        // Line-ending bytes alone (the `\n` of a `\r\n` split across chunks) cannot start a
        // partial event: release them so the output stays byte-identical to the input.
        let released = if !self.pending.is_empty() && self.pending.iter().all(|b| is_eol(*b)) {
            let mut joined = BytesMut::with_capacity(released.len() + self.pending.len());
            joined.extend_from_slice(&released);
            joined.extend_from_slice(&self.pending.split());
            joined.freeze()
        } else {
            released
        };
        if self.pending.len() > self.max_event_bytes {
            return Err(SseOverflow {
                limit: self.max_event_bytes,
            });
        }
        if !released.is_empty() {
            self.saw_done = ends_with_done(&released);
        }
        Ok(released)
    }

    /// How the stream ended, once the upstream has no more bytes.
    pub fn end(&self) -> StreamEnd {
        if !self.pending.is_empty() {
            StreamEnd::PartialEvent
        } else if self.saw_done {
            StreamEnd::Done
        } else {
            StreamEnd::MissingDone
        }
    }
}

fn is_eol(byte: u8) -> bool {
    byte == b'\n' || byte == b'\r'
}

/// Index just past the last blank line in `buf`, i.e. the end of the last complete event.
fn last_event_end(buf: &[u8]) -> Option<usize> {
    for p in memchr::memrchr2_iter(b'\n', b'\r', buf) {
        // The line ending at `p` starts at `line_end`: a `\r\n` pair counts as one ending.
        let line_end = if buf[p] == b'\n' && p > 0 && buf[p - 1] == b'\r' {
            p - 1
        } else {
            p
        };
        // It is a blank line when the byte before it ends the previous line.
        if line_end > 0 && is_eol(buf[line_end - 1]) {
            return Some(p + 1);
        }
    }
    None
}

/// Splits bytes the framer released into events, each ending with its blank line, by the same
/// rule the framer cuts at (a line ending directly followed by another: `\n\n`, `\r\n\r\n`,
/// `\r\r`, `\n\r\n`, ...). Trailing bytes without a boundary (line endings the framer let
/// through) come last, as one piece.
pub fn split_events(bytes: &[u8]) -> Vec<&[u8]> {
    let eol_len = |at: usize| match (bytes[at], bytes.get(at + 1)) {
        (b'\r', Some(b'\n')) => 2,
        _ => 1,
    };
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while let Some(offset) = memchr::memchr2(b'\n', b'\r', &bytes[i..]) {
        let p = i + offset;
        let next = p + eol_len(p);
        if next < bytes.len() && is_eol(bytes[next]) {
            let end = next + eol_len(next);
            out.push(&bytes[start..end]);
            start = end;
            i = end;
        } else {
            i = next;
        }
        if i >= bytes.len() {
            break;
        }
    }
    if start < bytes.len() {
        out.push(&bytes[start..]);
    }
    out
}

/// The joined `data:` field of one event (lines joined with `\n`, one leading space dropped,
/// as the SSE spec says), or `None` if it has no `data:` line or is not UTF-8.
pub fn event_data(event: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    let text = std::str::from_utf8(event).ok()?;
    let mut data: Option<Cow<'_, str>> = None;
    let mut rest_of_event = text;
    while !rest_of_event.is_empty() {
        let end =
            memchr::memchr2(b'\n', b'\r', rest_of_event.as_bytes()).unwrap_or(rest_of_event.len());
        let line = &rest_of_event[..end];
        rest_of_event = rest_of_event.get(end + 1..).unwrap_or("");
        let Some(value) = line.strip_prefix("data:") else {
            continue;
        };
        let value = value.strip_prefix(' ').unwrap_or(value);
        match &mut data {
            // A second `data:` line: only now is an owned, joined string needed.
            Some(joined) => {
                let joined = joined.to_mut();
                joined.push('\n');
                joined.push_str(value);
            }
            None => data = Some(Cow::Borrowed(value)),
        }
    }
    data
}

/// Whether the last event in `events` (which ends on a boundary) is `data: [DONE]`.
fn ends_with_done(events: &[u8]) -> bool {
    let trimmed = events
        .iter()
        .rposition(|b| !is_eol(*b))
        .map_or(&events[..0], |i| &events[..=i]);
    trimmed.ends_with(b"data: [DONE]") || trimmed.ends_with(b"data:[DONE]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_where_the_framer_cuts() {
        let bytes = b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\n\r\n: keep\n\n\n";
        let events = split_events(bytes);
        assert_eq!(events.len(), 6, "{events:?}");
        assert_eq!(event_data(events[1]).as_deref(), Some("b"));
        assert_eq!(event_data(events[3]).as_deref(), Some("d"));
        assert_eq!(event_data(events[4]), None);
        assert_eq!(event_data(b"data: a\r\n\r\n").as_deref(), Some("a"));
        assert_eq!(event_data(b"event: x\ndata:\n\n").as_deref(), Some(""));
        assert_eq!(events[5], b"\n");
        assert_eq!(events.concat(), bytes.to_vec());
        assert_eq!(event_data(b"data: x\ndata:y\n\n").as_deref(), Some("x\ny"));
        // Every cut is one the framer would make, and nothing is lost.
        let mut framer = SseFramer::new(1 << 20);
        let released = framer.push(Bytes::from_static(bytes)).unwrap();
        assert_eq!(split_events(&released).concat(), released.to_vec());
    }
    use proptest::prelude::*;

    fn feed(framer: &mut SseFramer, chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend_from_slice(&framer.push(Bytes::copy_from_slice(chunk)).unwrap());
        }
        out
    }

    #[test]
    fn whole_events_pass_through_and_partials_are_held() {
        let mut framer = SseFramer::new(1024);
        let out = feed(
            &mut framer,
            &[b"data: {\"a\":1}\n\ndata: {\"b\"", b":2}\n", b"\n"],
        );
        assert_eq!(out, b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n");
        assert_eq!(framer.end(), StreamEnd::MissingDone);
    }

    #[test]
    fn a_partial_event_at_the_end_is_reported() {
        let mut framer = SseFramer::new(1024);
        let out = feed(&mut framer, &[b"data: {\"a\":1}\n\ndata: {\"trunc"]);
        assert_eq!(out, b"data: {\"a\":1}\n\n");
        assert_eq!(framer.end(), StreamEnd::PartialEvent);
    }

    #[test]
    fn done_is_recognised_with_any_line_ending() {
        for stream in [
            &b"data: x\n\ndata: [DONE]\n\n"[..],
            b"data: x\r\n\r\ndata: [DONE]\r\n\r\n",
            b"data: [DONE]\r\r",
        ] {
            let mut framer = SseFramer::new(1024);
            assert_eq!(feed(&mut framer, &[stream]), stream);
            assert_eq!(framer.end(), StreamEnd::Done);
        }
    }

    #[test]
    fn crlf_events_are_split_correctly() {
        let mut framer = SseFramer::new(1024);
        let out = feed(&mut framer, &[b"data: 1\r\n\r\ndata: 2\r\n"]);
        assert_eq!(out, b"data: 1\r\n\r\n");
        assert_eq!(framer.end(), StreamEnd::PartialEvent);
    }

    #[test]
    fn an_oversized_partial_event_is_an_error() {
        let mut framer = SseFramer::new(8);
        assert_eq!(
            framer.push(Bytes::from_static(b"data: 0123456789")),
            Err(SseOverflow { limit: 8 })
        );
    }

    proptest! {
        /// Whatever the chunking, the released bytes are exactly the complete events, in order.
        #[test]
        fn chunking_does_not_change_output(
            events in proptest::collection::vec("[a-z{}\":, ]{0,20}", 0..6),
            eol in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
            tail in "[a-z]{0,10}",
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let mut whole = String::new();
            for event in &events {
                whole.push_str(&format!("data: {event}{eol}{eol}"));
            }
            let complete = whole.len();
            if !tail.is_empty() {
                whole.push_str(&format!("data: {tail}"));
            }
            let bytes = whole.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut framer = SseFramer::new(4096);
            let mut out = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                out.extend_from_slice(&framer.push(Bytes::copy_from_slice(&bytes[start..cut])).unwrap());
                start = cut;
            }
            // Everything complete is out, except possibly the `\n` of a `\r\n` split across
            // chunks when a partial event follows it (harmless: a bare `\r` ends the line).
            prop_assert!(bytes[..complete].starts_with(&out));
            prop_assert!(bytes[out.len()..complete].iter().all(|b| is_eol(*b)));
            prop_assert!(complete - out.len() <= 1);
            let expected_end = if tail.is_empty() { StreamEnd::MissingDone } else { StreamEnd::PartialEvent };
            prop_assert_eq!(framer.end(), expected_end);
        }
    }
}
