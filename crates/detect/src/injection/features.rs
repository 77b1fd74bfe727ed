//! Hashed text features and the windows they are computed over.
//!
//! The classifier sees two feature families, each hashed into the same table of
//! `2^bucket_bits` signed buckets:
//!
//! - **words**: unigrams and (optionally) bigrams of word tokens. A token is a run of
//!   ASCII letters and digits or of non-ASCII bytes, so accented words, Cyrillic and CJK
//!   runs stay whole without a Unicode table lookup per byte.
//! - **chars**: byte n-grams (`char_min..=char_max`) over a cleaned stream in which every
//!   whitespace run becomes one space. Byte grams over UTF-8 are cheaper than char grams
//!   and, for a linear model, just as informative.
//!
//! Digits are folded to `0` in both families so that ids, prices and dates do not
//! fragment the vocabulary (and so the model cannot memorise a particular id).
//!
//! Both training and inference walk features through [`visit_features`], so the two can
//! never disagree about what a feature is. The family value is `count / sqrt(n_family)`:
//! an L2 normalisation that treats every occurrence as distinct. Exact normalisation
//! would need a per-window dedupe (a hash map or a sort), which costs more than the
//! whole rest of scoring; the approximation is exact for windows without repeats and
//! the model is trained on the very same values, so nothing is lost in consistency.

use crate::error::{Error, Result};

/// The two feature families; each is normalised on its own so that long words or
/// punctuation-heavy text cannot drown the other family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Word unigrams and bigrams.
    Words = 0,
    /// Byte n-grams.
    Chars = 1,
}

/// What features are extracted and how they are hashed. Stored in the model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureConfig {
    /// log2 of the number of hash buckets (16..=20).
    pub bucket_bits: u8,
    /// Seed mixed into every hash, so that two models can use different collisions.
    pub seed: u64,
    /// Whether word unigrams are features.
    pub word_unigrams: bool,
    /// Whether word bigrams are features.
    pub word_bigrams: bool,
    /// Shortest byte n-gram (1..=7); `char_max == 0` disables byte grams.
    pub char_min: u8,
    /// Longest byte n-gram (0 or `char_min..=7`).
    pub char_max: u8,
    /// Window length in bytes for long inputs.
    pub window_bytes: u32,
    /// Overlap between consecutive windows, in bytes.
    pub window_overlap: u32,
}

impl Default for FeatureConfig {
    /// 2^17 buckets keep the i8 weight table at 256 KiB for two heads: on varied text the
    /// table's cache misses are the classifier's main cost, and 2^17 scored ~10% faster than
    /// 2^18 with the same leave-one-source-out recall and FPR within a record or two (2^16
    /// was no faster than 2^17). One byte-gram length (4) costs one lookup per byte, where
    /// 3..=5 would cost three (3..=5 was not evaluated); dropping byte grams entirely lost
    /// recall at low FPR in leave-one-source-out runs. 2 KiB windows hold a typical attack
    /// paragraph with context; 256 bytes of overlap (down from 512) scores ~12% fewer bytes
    /// on long text and gave the same leave-one-source-out numbers (see `models/REPORT.md`).
    fn default() -> Self {
        FeatureConfig {
            bucket_bits: 17,
            seed: 0x5eed_0f7c_0115,
            word_unigrams: true,
            word_bigrams: true,
            char_min: 4,
            char_max: 4,
            window_bytes: 2048,
            window_overlap: 256,
        }
    }
}

impl FeatureConfig {
    /// Checks that every field is in range, so that later code may rely on it.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &'static str| Err(Error::InvalidConfig { what });
        if !(16..=20).contains(&self.bucket_bits) {
            return bad("bucket_bits must be in 16..=20");
        }
        if self.char_max != 0
            && !(1 <= self.char_min && self.char_min <= self.char_max && self.char_max <= 7)
        {
            return bad("byte n-gram range must satisfy 1 <= char_min <= char_max <= 7");
        }
        if !self.word_unigrams && !self.word_bigrams && self.char_max == 0 {
            return bad("at least one feature family must be enabled");
        }
        if !(256..=65_536).contains(&self.window_bytes) {
            return bad("window_bytes must be in 256..=65536");
        }
        if self.window_overlap.saturating_mul(2) > self.window_bytes {
            return bad("window_overlap must be at most half of window_bytes");
        }
        Ok(())
    }

    /// Number of hash buckets.
    pub fn buckets(&self) -> usize {
        1usize << self.bucket_bits
    }
}

const WORD_SALT: u64 = 0x9e37_79b9_7f4a_7c15;
const BIGRAM_SALT: u64 = 0xc2b2_ae3d_27d4_eb4f;
const CHAR_SALT: u64 = 0x1656_67b1_9e37_79f9;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A cheap 64-bit finaliser: one xor-shift, one multiply. The bucket is taken from the
/// top bits, which a multiply mixes well; the sign from bit 0 after folding the top half
/// down. Half of murmur3's `fmix64` measured 10% faster overall at the same accuracy.
#[inline(always)]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 31;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 32)
}

#[inline(always)]
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

#[inline(always)]
fn fold_digit(b: u8) -> u8 {
    if b.is_ascii_digit() { b'0' } else { b }
}

/// Calls `sink(family, bucket, negative)` once per feature occurrence in `text`.
///
/// `text` should already be lowercased; bucket is `< config.buckets()` and `negative`
/// is the hash sign bit (signed hashing halves the bias that collisions add).
#[inline]
pub fn visit_features(
    text: &[u8],
    config: &FeatureConfig,
    mut sink: impl FnMut(Family, u32, bool),
) {
    visit_features_at(text, config, |_, kind, bucket, negative| {
        sink(kind.family(), bucket, negative)
    });
}

/// Which kind of feature an occurrence is (finer than [`Family`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A word unigram.
    Unigram,
    /// A word bigram; it follows its word's unigram, if unigrams are on.
    Bigram,
    /// A byte n-gram.
    Gram,
}

impl Kind {
    #[inline(always)]
    pub(crate) fn family(self) -> Family {
        match self {
            Kind::Unigram | Kind::Bigram => Family::Words,
            Kind::Gram => Family::Chars,
        }
    }
}

/// [`visit_features`] with each occurrence's position and kind: `sink(pos, kind, bucket,
/// negative)`, in the same order. A byte gram sits at the byte that completes it; a word's
/// features at the byte after the word (the one that ends it), or at the last byte for a
/// word that ends the text. Positions never decrease.
#[inline]
pub(crate) fn visit_features_at(
    text: &[u8],
    config: &FeatureConfig,
    sink: impl FnMut(usize, Kind, u32, bool),
) {
    let shipped = config.word_unigrams
        && config.word_bigrams
        && config.char_max != 0
        && config.char_min == config.char_max;
    if shipped {
        walk::<true>(text, config, sink);
    } else {
        walk::<false>(text, config, sink);
    }
}

/// The walk behind [`visit_features_at`]. `SHIPPED` says the configuration has the shipped
/// shape (both word families, one byte-gram length): the flags are then constants, and the
/// loop needs fewer registers and no flag tests (it had spilled its state to the stack).
#[inline(always)]
fn walk<const SHIPPED: bool>(
    text: &[u8],
    config: &FeatureConfig,
    mut sink: impl FnMut(usize, Kind, u32, bool),
) {
    // Generic all the way down (no `dyn` callback): the sink is a few adds in the model's
    // scorer, and an indirect call per feature cost more than the hashing.
    let shift = 64 - u32::from(config.bucket_bits);
    let mut emit = |pos: usize, kind: Kind, h: u64| {
        let m = mix(h);
        sink(pos, kind, (m >> shift) as u32, m & 1 == 1);
    };
    let seed = config.seed;
    let want_words = SHIPPED || config.word_unigrams || config.word_bigrams;
    let want_chars = SHIPPED || config.char_max != 0;
    let (cmin, cmax) = (u32::from(config.char_min), u32::from(config.char_max));
    let (unigrams, bigrams) = (
        SHIPPED || config.word_unigrams,
        SHIPPED || config.word_bigrams,
    );
    let single_gram = SHIPPED || (want_chars && cmin == cmax);
    let gram_mask = u64::MAX >> (64 - 8 * cmin.clamp(1, 8));
    let gram_salt = (u64::from(cmin) << 58) ^ seed ^ CHAR_SALT;

    let mut word_hash = FNV_OFFSET ^ seed;
    let mut in_word = false;
    let mut prev_word: Option<u64> = None;
    // Byte-gram state: the last up-to-8 cleaned bytes, newest in the low byte. It starts
    // as one space so that the first word's grams carry a word-start marker.
    let mut state: u64 = u64::from(b' ');
    let mut filled: u32 = 1;
    let mut last_space = true;

    for (pos, &raw) in text.iter().enumerate() {
        let b = fold_digit(raw);
        if want_words {
            if is_word_byte(b) {
                word_hash = (word_hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
                in_word = true;
            } else if in_word {
                finish_word(pos, word_hash, &mut prev_word, unigrams, bigrams, &mut emit);
                word_hash = FNV_OFFSET ^ seed;
                in_word = false;
            }
        }
        if want_chars {
            let space = b.is_ascii_whitespace();
            if space && last_space {
                continue;
            }
            last_space = space;
            let c = if space { b' ' } else { b };
            state = (state << 8) | u64::from(c);
            filled = (filled + 1).min(8);
            if single_gram {
                // The shipped config (one gram length): no inner loop, constants hoisted.
                if filled >= cmin {
                    emit(pos, Kind::Gram, (state & gram_mask) ^ gram_salt);
                }
                continue;
            }
            for n in cmin..=cmax.min(filled) {
                let gram = state & (u64::MAX >> (64 - 8 * n));
                emit(
                    pos,
                    Kind::Gram,
                    gram ^ (u64::from(n) << 58) ^ seed ^ CHAR_SALT,
                );
            }
        }
    }
    if want_words && in_word {
        let last = text.len().saturating_sub(1);
        finish_word(
            last,
            word_hash,
            &mut prev_word,
            unigrams,
            bigrams,
            &mut emit,
        );
    }
}

#[inline(always)]
fn finish_word(
    pos: usize,
    hash: u64,
    prev: &mut Option<u64>,
    unigrams: bool,
    bigrams: bool,
    emit: &mut impl FnMut(usize, Kind, u64),
) {
    if unigrams {
        emit(pos, Kind::Unigram, hash ^ WORD_SALT);
    }
    if let (true, Some(p)) = (bigrams, *prev) {
        emit(pos, Kind::Bigram, p.rotate_left(23) ^ hash ^ BIGRAM_SALT);
    }
    *prev = Some(hash);
}

/// Lowercases `text` without moving any byte offset: a char whose lowercase form has a
/// different UTF-8 length (or is several chars) is kept as it is. Spans found in the
/// result are therefore valid spans of the input.
pub fn lowercase_in_place_offsets(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let mut lower = c.to_lowercase();
        match (lower.next(), lower.next()) {
            (Some(l), None) if l.len_utf8() == c.len_utf8() => out.push(l),
            _ => out.push(c),
        }
    }
    out
}

/// Splits `text` into windows of at most `window` bytes that overlap by about `overlap`
/// bytes, cut at whitespace where possible and always at char boundaries. Text no longer
/// than `window` is one window. Every byte belongs to at least one window; the last
/// window is full-length so that a short tail is not scored on its own.
pub fn windows(text: &str, window: usize, overlap: usize) -> Vec<(usize, usize)> {
    let len = text.len();
    if len <= window {
        return vec![(0, len)];
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(len / window.saturating_sub(overlap).max(1) + 2);
    let mut start = 0usize;
    loop {
        if len - start <= window {
            out.push((start, len));
            break;
        }
        let hard_end = floor_boundary(text, start + window);
        // Prefer to end at whitespace in the last quarter of the window.
        let min_end = start + window * 3 / 4;
        let end = (min_end..hard_end)
            .rev()
            .find(|&i| bytes[i].is_ascii_whitespace())
            .map_or(hard_end, |i| i + 1);
        out.push((start, end));
        let mut next = end.saturating_sub(overlap).max(start + 1);
        if len - next <= window {
            // Make the last window full-length instead of a short tail.
            next = len - window;
        }
        next = ceil_boundary(text, next);
        // Start just after a whitespace byte if one is near, so no window begins mid-word.
        let scan_to = (next + 64).min(end);
        if let Some(i) = (next..scan_to).find(|&i| bytes[i].is_ascii_whitespace()) {
            next = i + 1;
        }
        if next <= start || next >= len {
            // INVARIANT guard: always progress; cannot happen with window > overlap.
            break;
        }
        start = next;
    }
    out
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn collect(text: &str, cfg: &FeatureConfig) -> Vec<(Family, u32, bool)> {
        let mut v = Vec::new();
        visit_features(text.as_bytes(), cfg, |f, b, s| v.push((f, b, s)));
        v
    }

    #[test]
    fn whitespace_runs_and_digits_do_not_change_features() {
        let cfg = FeatureConfig::default();
        assert_eq!(
            collect("call  me\n\tat 12", &cfg),
            collect("call me at 99", &cfg)
        );
    }

    #[test]
    fn counts_match_the_config() {
        let cfg = FeatureConfig::default();
        // 3 words -> 3 unigrams + 2 bigrams; cleaned stream " ab cd ef" has 9 bytes,
        // of which 6 full 4-grams (state starts with one space).
        let v = collect("ab cd ef", &cfg);
        let words = v.iter().filter(|x| x.0 == Family::Words).count();
        let chars = v.iter().filter(|x| x.0 == Family::Chars).count();
        assert_eq!(words, 5);
        assert_eq!(chars, 6);
        assert!(v.iter().all(|x| (x.1 as usize) < cfg.buckets()));
    }

    #[test]
    fn default_config_is_valid_and_bad_ones_are_not() {
        assert!(FeatureConfig::default().validate().is_ok());
        let bad = FeatureConfig {
            bucket_bits: 30,
            ..FeatureConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = FeatureConfig {
            char_min: 5,
            char_max: 3,
            ..FeatureConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn lowercase_keeps_offsets() {
        let s = "İSTANBUL Ärger ΣΑΣ";
        let l = lowercase_in_place_offsets(s);
        assert_eq!(l.len(), s.len());
        assert!(l.contains("ärger"));
    }

    proptest! {
        #[test]
        fn windows_cover_text_on_boundaries(text in "\\PC{0,3000}", w in 256usize..1200) {
            let ov = w / 4;
            let ws = windows(&text, w, ov);
            prop_assert!(!ws.is_empty());
            prop_assert_eq!(ws[0].0, 0);
            prop_assert_eq!(ws[ws.len() - 1].1, text.len());
            for pair in ws.windows(2) {
                prop_assert!(pair[1].0 <= pair[0].1, "gap between windows");
                prop_assert!(pair[1].0 > pair[0].0);
            }
            for &(s, e) in &ws {
                prop_assert!(text.is_char_boundary(s) && text.is_char_boundary(e));
                prop_assert!(e - s <= w);
            }
        }
    }
}
