//! Deterministic reply text and the rough token counts the mock reports.
//!
//! A reply is a prefix that depends on the request ("Mock reply to 2 messages: ") followed by a
//! fixed sentence, repeated until the text has at least `stream_chunks` words so that a stream can
//! always be cut into exactly `stream_chunks` non-empty content deltas at word boundaries.
//! One word counts as one token; the numbers only need to be stable, not realistic.

use std::ops::Range;

/// The fixed sentence every reply ends with.
const SENTENCE: &str = "Portcullis mock upstream answers deterministically so that golden files \
                        stay stable across runs and machines.";

/// The request-independent end of every reply, computed once per server.
#[derive(Debug)]
pub(crate) struct ReplyTail {
    text: String,
    words: usize,
}

impl ReplyTail {
    /// A tail long enough that any reply built on it has at least `chunks` words.
    pub(crate) fn new(chunks: usize) -> Self {
        let sentence_words = count_words(SENTENCE);
        let repeats = chunks.div_ceil(sentence_words).max(1);
        let text = vec![SENTENCE; repeats].join(" ");
        ReplyTail {
            text,
            words: sentence_words * repeats,
        }
    }
}

/// A full reply and where each stream delta starts and ends.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The whole reply text.
    pub(crate) text: String,
    /// Word count of `text`, reported as completion tokens.
    pub(crate) words: usize,
    /// Byte ranges of `text`, one per stream delta, covering it exactly.
    pub(crate) pieces: Vec<Range<usize>>,
}

impl Reply {
    /// Builds `prefix` + `tail` and cuts it into `chunks` (at least one) word-aligned pieces.
    pub(crate) fn new(prefix: &str, tail: &ReplyTail, chunks: usize) -> Self {
        let mut text = String::with_capacity(prefix.len() + tail.text.len());
        text.push_str(prefix);
        text.push_str(&tail.text);
        let starts = word_starts(&text);
        let words = starts.len();
        debug_assert!(words >= tail.words);
        let pieces = split_even(&starts, text.len(), chunks.clamp(1, words.max(1)));
        Reply {
            text,
            words,
            pieces,
        }
    }

    /// An echo of `text`, cut into pieces of at most `piece_bytes` bytes (at character
    /// boundaries, so words and tokens are split across deltas on purpose).
    pub(crate) fn echo(text: &str, piece_bytes: usize) -> Self {
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < text.len() {
            let mut end = (start + piece_bytes.max(1)).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            pieces.push(start..end);
            start = end;
        }
        if pieces.is_empty() {
            pieces.push(0..0);
        }
        Reply {
            text: text.to_string(),
            words: count_words(text),
            pieces,
        }
    }

    /// The text of each stream delta, in order.
    pub(crate) fn deltas(&self) -> impl Iterator<Item = &str> {
        self.pieces
            .iter()
            .filter_map(|range| self.text.get(range.clone()))
    }
}

/// Cuts `0..len` into `chunks` ranges that start at word starts, as evenly as the words allow.
fn split_even(starts: &[usize], len: usize, chunks: usize) -> Vec<Range<usize>> {
    // With no words at all, `chunks` is 1 and the one piece is the whole text.
    let words = starts.len();
    (0..chunks)
        .map(|chunk| {
            let first = chunk * words / chunks;
            let next = (chunk + 1) * words / chunks;
            // The first piece also takes any leading whitespace.
            let start = if chunk == 0 { 0 } else { starts[first] };
            let end = starts.get(next).copied().unwrap_or(len);
            start..end
        })
        .collect()
}

/// Byte offsets where a whitespace-separated word begins.
fn word_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut previous_was_space = true;
    for (offset, ch) in text.char_indices() {
        let is_space = ch.is_whitespace();
        if !is_space && previous_was_space {
            starts.push(offset);
        }
        previous_was_space = is_space;
    }
    starts
}

/// Whitespace-separated words in `text`, the mock's notion of a token.
pub(crate) fn count_words(text: &str) -> usize {
    text.split_whitespace().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_text_exactly() {
        for chunks in [1, 2, 3, 8, 15, 16, 17, 40, 200] {
            let tail = ReplyTail::new(chunks);
            let reply = Reply::new("Mock reply to 3 messages: ", &tail, chunks);
            assert_eq!(reply.pieces.len(), chunks, "chunks = {chunks}");
            assert_eq!(reply.deltas().collect::<String>(), reply.text);
            assert!(reply.deltas().all(|delta| !delta.trim().is_empty()));
        }
    }

    #[test]
    fn zero_chunks_means_one() {
        let tail = ReplyTail::new(0);
        let reply = Reply::new("x ", &tail, 0);
        assert_eq!(reply.pieces.len(), 1);
    }

    #[test]
    fn words_are_counted_by_whitespace() {
        assert_eq!(count_words("  a b\tc\n"), 3);
        assert_eq!(count_words(""), 0);
    }
}
