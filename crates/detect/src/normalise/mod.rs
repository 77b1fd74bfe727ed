//! The normaliser: one input text becomes several *views*, each with a map back to the
//! original's byte offsets, so detectors match on a cleaned-up rendering and report spans on the
//! text the caller holds.
//!
//! # Views
//!
//! | kind | what it is | read by |
//! |---|---|---|
//! | `Canonical` (always first) | NFKC; lookalike letters folded to ASCII inside words that mix scripts or are all lookalikes; zero-width, bidi and other format characters removed; tag-character and variation-selector smuggling decoded *inline* | every detector |
//! | `LeetFolded` | canonical with `0→o 1→i/l 3→e 4→a 5→s 7→t @→a $→s` inside words that mix letters and those symbols, and in text written in leetspeak also in short words of them alone ("70" → "to") | wording detectors (classifier) |
//! | `Despaced` | canonical with runs of four or more single letters joined ("i g n o r e" → "ignore") | wording detectors |
//! | `Decoded*` | a base64, hex, percent-encoded or rot13 segment, decoded, when the result reads as text | every detector; spans map to the whole encoded segment |
//!
//! `ViewKind::suits_pattern_detectors` says which views PII, secret and URL detectors read: the
//! leet and despaced views rewrite digits and spacing and would invent numbers.
//!
//! # Offsets
//!
//! Every view byte maps back to an original span (`View::to_original`). The canonical view of a
//! pure-ASCII input *is* the input (identity map, no table); otherwise a table holds, for each
//! view byte, the start and end of the original characters that produced it. Inserted text
//! (decoded tag characters) maps to the invisible run it came from; a decoded view maps as a whole
//! to its encoded segment.
//!
//! # Cost
//!
//! Pure ASCII input costs a copy plus one pass each for leetspeak, spacing and encodings, and
//! allocates no table unless one of them fires. Decoding is bounded: at most
//! `NormaliserConfig::max_decode_depth` nested decodes, `max_decoded_bytes` decoded bytes and
//! `max_views` views per input; segments beyond the budget are not decoded (and not reported).

mod canonical;
mod decode;
mod derived;
mod tables;
mod view;
mod words;

pub use view::{View, ViewKind};

pub(crate) use decode::base64_decode;

use crate::finding::{Finding, dedup_findings};
use view::OffsetMap;
use words::CommonWords;

/// Limits for the normaliser. Raising them lets deeper or longer encodings through at a cost
/// linear in the added bytes; lowering them hides payloads beyond the limit from detectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormaliserConfig {
    /// Nested decoding steps (base64 inside hex counts two).
    pub max_decode_depth: u8,
    /// Decoded bytes per input, summed over all decoded views.
    pub max_decoded_bytes: usize,
    /// Decoded views per input.
    pub max_views: usize,
}

impl Default for NormaliserConfig {
    fn default() -> Self {
        Self {
            max_decode_depth: 2,
            max_decoded_bytes: 64 * 1024,
            max_views: 32,
        }
    }
}

/// Which views [`Normaliser::normalise_views`] builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Views {
    /// Every view.
    All,
    /// Only those that suit pattern detectors ([`ViewKind::suits_pattern_detectors`]): no
    /// leet or despaced view.
    Patterns,
}

/// Builds views of input texts. Cheap to share; holds only the config and a word table.
#[derive(Debug)]
pub struct Normaliser {
    config: NormaliserConfig,
    words: CommonWords,
}

/// The views of one input and the normaliser's own findings (`invisible_text`, `obfuscation`).
#[derive(Clone, Debug)]
pub struct NormalisedText {
    canonical: View,
    others: Vec<View>,
    findings: Vec<Finding>,
}

impl NormalisedText {
    /// The canonical view; always present.
    pub fn canonical(&self) -> &View {
        &self.canonical
    }

    /// All views, canonical first.
    pub fn views(&self) -> impl Iterator<Item = &View> {
        std::iter::once(&self.canonical).chain(self.others.iter())
    }

    /// The views that pattern detectors (PII, secrets, URLs) read.
    pub fn pattern_views(&self) -> impl Iterator<Item = &View> {
        self.views().filter(|v| v.kind.suits_pattern_detectors())
    }

    /// Findings of the normaliser itself, spans in original offsets.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }
}

impl Default for Normaliser {
    fn default() -> Self {
        Self::new(NormaliserConfig::default())
    }
}

impl Normaliser {
    /// A normaliser with the given limits.
    pub fn new(config: NormaliserConfig) -> Self {
        Self {
            config,
            words: CommonWords::new(),
        }
    }

    /// Builds all views of `text`.
    pub fn normalise(&self, text: &str) -> NormalisedText {
        self.normalise_views(text, Views::All)
    }

    /// Builds the views of `text` that `views` asks for. [`Views::Patterns`] leaves out the
    /// leet and despaced views, which only wording detectors read; every other view, and the
    /// normaliser's own findings, are the same as [`Normaliser::normalise`]'s.
    pub fn normalise_views(&self, text: &str, views: Views) -> NormalisedText {
        let (canonical, mut findings) = canonical_view(text, 0..text.len());
        let (leet, despaced) = match views {
            Views::All => (
                derived::leet_folded(&canonical),
                derived::despaced(&canonical),
            ),
            Views::Patterns => (None, None),
        };

        let mut budget = decode::Budget {
            bytes_left: self.config.max_decoded_bytes,
            views_left: self.config.max_views,
        };
        // Views are decoded level by level; `frontier` indexes the previous level in `all`.
        let mut all = vec![canonical];
        let mut frontier = 0..1;
        for depth in 1..=self.config.max_decode_depth {
            let mut next = Vec::new();
            for parent in all.get_mut(frontier.clone()).into_iter().flatten() {
                let (decoded, runs) = decode::decode_all(&parent.text, &self.words, &mut budget);
                parent.token_runs = Some(runs);
                for d in decoded {
                    let span = parent.to_original(d.range.clone());
                    findings.extend(decode::finding(&d, span.clone()));
                    next.push(decoded_view(&d, span, depth, &mut findings));
                }
            }
            frontier = all.len()..all.len() + next.len();
            all.extend(next);
            if frontier.is_empty() {
                break;
            }
        }
        dedup_findings(&mut findings);
        let mut all = all.into_iter();
        let canonical = all.next().unwrap_or_else(|| canonical_view("", 0..0).0);
        let others = leet.into_iter().chain(despaced).chain(all).collect();
        NormalisedText {
            canonical,
            others,
            findings,
        }
    }
}

/// The canonical view of `text`, whose bytes sit at `origin` in the original.
fn canonical_view(text: &str, origin: std::ops::Range<usize>) -> (View, Vec<Finding>) {
    if text.is_ascii() {
        let view = View {
            kind: ViewKind::Canonical,
            text: text.to_owned(),
            origin,
            depth: 0,
            map: OffsetMap::Identity,
            token_runs: None,
        };
        return (view, Vec::new());
    }
    let folded = canonical::fold(text);
    (
        folded.buf.into_view(ViewKind::Canonical, origin),
        folded.findings,
    )
}

fn decoded_view(
    d: &decode::Decoded,
    span: std::ops::Range<usize>,
    depth: u8,
    findings: &mut Vec<Finding>,
) -> View {
    let kind = match d.encoding {
        decode::Encoding::Base64 => ViewKind::DecodedBase64,
        decode::Encoding::Hex => ViewKind::DecodedHex,
        decode::Encoding::Url => ViewKind::DecodedUrl,
        decode::Encoding::Rot13 => ViewKind::DecodedRot13,
    };
    // Decoded text gets the same canonical fold; what the fold finds (say, tag characters
    // inside base64) is reported on the encoded segment, the only place it exists in the input.
    let (folded, inner) = canonical_view(&d.text, 0..d.text.len());
    findings.extend(inner.into_iter().map(|mut f| {
        f.start = span.start;
        f.end = span.end;
        f
    }));
    View {
        kind,
        text: folded.text,
        origin: span,
        depth,
        map: OffsetMap::Whole,
        token_runs: None,
    }
}

#[cfg(test)]
mod tests;

/// Encoders for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) use super::tests::b64_encode;

    /// Unpadded URL-safe base64.
    pub(crate) fn b64url(data: &[u8]) -> String {
        b64_encode(data)
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_")
    }
}
