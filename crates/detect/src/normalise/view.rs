//! `View`: one rendering of the input, with the map back to original byte offsets.

use std::ops::Range;

/// How a view was derived from the original text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViewKind {
    /// NFKC, confusables folded, invisible characters removed, smuggled text decoded inline.
    Canonical,
    /// The canonical view with leetspeak digits and symbols folded to letters inside words.
    LeetFolded,
    /// The canonical view with spaced-out letters ("i g n o r e") joined into words.
    Despaced,
    /// A base64 (standard or URL-safe) segment, decoded.
    DecodedBase64,
    /// A hexadecimal segment, decoded.
    DecodedHex,
    /// A percent-encoded segment, decoded.
    DecodedUrl,
    /// A rot13 segment, rotated back.
    DecodedRot13,
}

impl ViewKind {
    /// Whether this view came from decoding an encoded segment.
    pub fn is_decoded(self) -> bool {
        matches!(
            self,
            Self::DecodedBase64 | Self::DecodedHex | Self::DecodedUrl | Self::DecodedRot13
        )
    }

    /// Whether pattern detectors (PII, secrets, URLs) should read this view. The leet and
    /// despaced views rewrite digits and spacing, so they would invent numbers and tokens that
    /// are not in the text; they exist for the wording-based classifiers.
    pub fn suits_pattern_detectors(self) -> bool {
        !matches!(self, Self::LeetFolded | Self::Despaced)
    }

    /// A short stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Canonical => "canonical",
            Self::LeetFolded => "leet_folded",
            Self::Despaced => "despaced",
            Self::DecodedBase64 => "decoded_base64",
            Self::DecodedHex => "decoded_hex",
            Self::DecodedUrl => "decoded_url",
            Self::DecodedRot13 => "decoded_rot13",
        }
    }
}

/// Maps each byte of a view back to the original text.
#[derive(Clone, Debug)]
pub(crate) enum OffsetMap {
    /// View byte `i` is original byte `origin.start + i` (the ASCII fast path).
    Identity,
    /// View byte `i` came from original bytes `starts[i]..ends[i]`.
    Table { starts: Vec<u32>, ends: Vec<u32> },
    /// Every view byte came from the whole origin span (decoded segments).
    Whole,
}

/// One rendering of the input text.
#[derive(Clone, Debug)]
pub struct View {
    /// How the view was derived.
    pub kind: ViewKind,
    /// The view's text.
    pub text: String,
    /// The span of the original text this view renders.
    pub origin: Range<usize>,
    /// How many decoding steps produced it: 0 for the canonical, leet and despaced views.
    pub depth: u8,
    pub(crate) map: OffsetMap,
    /// Maximal runs of `[A-Za-z0-9+/_-]` of 16 bytes or more, when the normaliser's decode
    /// pre-scan already found them (the secrets detector reuses them).
    pub(crate) token_runs: Option<Vec<Range<usize>>>,
}

impl View {
    /// Long token runs, if known (see the field).
    pub(crate) fn token_runs(&self) -> Option<&[Range<usize>]> {
        self.token_runs.as_deref()
    }

    /// Maps a byte range of this view to the byte range of the original text it came from. For
    /// decoded views that is the whole encoded segment.
    pub fn to_original(&self, range: Range<usize>) -> Range<usize> {
        let len = self.text.len();
        let (start, end) = (range.start.min(len), range.end.min(len));
        match &self.map {
            OffsetMap::Identity => {
                (self.origin.start + start).min(self.origin.end)
                    ..(self.origin.start + end).min(self.origin.end)
            }
            OffsetMap::Whole => self.origin.clone(),
            OffsetMap::Table { starts, ends } => {
                let at = |v: &[u32], i: usize| v.get(i).map_or(self.origin.end, |&o| o as usize);
                if start >= end {
                    let p = at(starts, start);
                    return p..p;
                }
                let (s, e) = (at(starts, start), at(ends, end - 1));
                s.min(e)..e.max(s)
            }
        }
    }
}

/// A text buffer that records, for each byte it holds, the original span that produced it.
#[derive(Debug, Default)]
pub(crate) struct MappedBuf {
    pub(crate) text: String,
    pub(crate) starts: Vec<u32>,
    pub(crate) ends: Vec<u32>,
}

/// Offsets are stored as `u32` to halve the map's memory; inputs are bounded by the gateway's
/// body limit, far below 4 GiB, and anything beyond saturates rather than wraps.
pub(crate) fn off(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl MappedBuf {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            text: String::with_capacity(n),
            starts: Vec::with_capacity(n),
            ends: Vec::with_capacity(n),
        }
    }

    pub(crate) fn push_str(&mut self, s: &str, start: usize, end: usize) {
        self.text.push_str(s);
        let n = s.len();
        self.starts.extend(std::iter::repeat_n(off(start), n));
        self.ends.extend(std::iter::repeat_n(off(end), n));
    }

    pub(crate) fn push_char(&mut self, c: char, start: usize, end: usize) {
        if c.is_ascii() {
            // The common case, without the encode and iterator setup.
            self.text.push(c);
            self.starts.push(off(start));
            self.ends.push(off(end));
        } else {
            let mut tmp = [0u8; 4];
            self.push_str(c.encode_utf8(&mut tmp), start, end);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.text.len()
    }

    /// The original span of view bytes `range` (empty range → empty span at its start).
    pub(crate) fn span(&self, range: Range<usize>) -> Range<usize> {
        let s = self.starts.get(range.start).copied().unwrap_or(0) as usize;
        let e = if range.end > range.start {
            self.ends.get(range.end - 1).copied().unwrap_or(0) as usize
        } else {
            s
        };
        s..e.max(s)
    }

    pub(crate) fn into_view(self, kind: ViewKind, origin: Range<usize>) -> View {
        View {
            kind,
            text: self.text,
            origin,
            depth: 0,
            map: OffsetMap::Table {
                starts: self.starts,
                ends: self.ends,
            },
            token_runs: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_maps_ranges() {
        let mut b = MappedBuf::default();
        b.push_str("ab", 0, 1); // expansion: one original byte became two
        b.push_char('c', 4, 5); // bytes 1..4 were dropped
        let v = b.into_view(ViewKind::Canonical, 0..5);
        assert_eq!(v.to_original(0..1), 0..1);
        assert_eq!(v.to_original(1..3), 0..5);
        assert_eq!(v.to_original(2..3), 4..5);
        assert_eq!(v.to_original(3..3), 5..5);
        assert_eq!(v.to_original(9..12), 5..5);
    }

    #[test]
    fn identity_and_whole() {
        let v = View {
            kind: ViewKind::Canonical,
            text: "hello".into(),
            origin: 0..5,
            depth: 0,
            map: OffsetMap::Identity,
            token_runs: None,
        };
        assert_eq!(v.to_original(1..3), 1..3);
        let w = View {
            kind: ViewKind::DecodedBase64,
            text: "hi".into(),
            origin: 10..14,
            depth: 1,
            map: OffsetMap::Whole,
            token_runs: None,
        };
        assert_eq!(w.to_original(0..1), 10..14);
    }
}
