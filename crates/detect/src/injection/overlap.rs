//! Scoring overlapping windows from one pass over the text.
//!
//! Long texts are scored in windows that overlap (`window_overlap` bytes, and the last window
//! is full-length, so on 10 KB about a fifth of the bytes were read twice). A window's score
//! depends only on the sums of its features' weights and on how many there are, and the
//! features of a window are, with few exceptions, the features of the whole text that lie
//! inside it. So one walk over the whole text ([`visit_features_at`]) records running sums at
//! every window edge, and a window's sums are the difference of two of them, less the
//! exceptions:
//!
//! - a window that starts after whitespace begins its byte-gram state afresh (one space, as at
//!   the text's start), so the whole text's grams at its first `n - 2` bytes, which reach
//!   back before the window, are not the window's; from the next byte on they agree;
//! - its first word has no bigram in the window, but has one (with the word before) in the
//!   whole text;
//! - a window that ends after whitespace ends no word early, so nothing differs at its end.
//!
//! Windows that do not start and end at whitespace (a hard cut, rare: `windows` looks for
//! whitespace first), and feature configurations other than the shipped kind, are scored
//! directly. The sums are integers, so the result is bit-identical to scoring every window
//! on its own; the tests compare the two.

use super::features::{FeatureConfig, Kind, visit_features, visit_features_at};
use super::model::HEADS;

/// Per-family, per-head sums of one window's signed feature weights, and the feature
/// counts per family (index = [`super::features::Family`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WindowSums {
    pub(crate) acc: [[i32; HEADS]; 2],
    pub(crate) count: [u32; 2],
}

/// Running sums with both heads in one `i64` per family (head 0 in the low 32 bits, head 1
/// above). Two's complement is linear, so differences of packed sums are packed differences;
/// arithmetic wraps, and a window's own sums (under 2^31 per head: at most 2^17 features of at
/// most ±127 in a 64 KiB window) come out exactly whatever the running totals did.
#[derive(Debug, Clone, Copy, Default)]
struct Running {
    packed: [i64; 2],
    count: [u32; 2],
    /// 1 once recorded at an edge (only read for `Walk::at_edge`).
    written: u8,
}

impl Running {
    #[inline(always)]
    fn add(&mut self, family: usize, value: i64) {
        if let (Some(p), Some(c)) = (self.packed.get_mut(family), self.count.get_mut(family)) {
            *p = p.wrapping_add(value);
            *c = c.wrapping_add(1);
        }
    }

    fn minus(self, other: Running) -> Running {
        Running {
            packed: [
                self.packed[0].wrapping_sub(other.packed[0]),
                self.packed[1].wrapping_sub(other.packed[1]),
            ],
            count: [
                self.count[0].wrapping_sub(other.count[0]),
                self.count[1].wrapping_sub(other.count[1]),
            ],
            written: 0,
        }
    }

    fn unpack(self) -> WindowSums {
        let split = |packed: i64| {
            // The low half is head 0's sum; what it borrowed from the high half goes back
            // before head 1 is shifted down.
            let low = packed as i32;
            [low, (packed.wrapping_sub(i64::from(low)) >> 32) as i32]
        };
        WindowSums {
            acc: [split(self.packed[0]), split(self.packed[1])],
            count: self.count,
        }
    }
}

/// The state of the one pass in [`window_sums`]: where the edges and corrections are, and
/// what has been recorded.
struct Walk {
    /// `(position, slot)`, sorted: record the running sums (of features before `position`)
    /// in `at_edge[slot]`.
    edges: Vec<(usize, usize)>,
    /// `(position, window)`, sorted: the byte gram at `position` is not the window's.
    gram_fixes: Vec<(usize, usize)>,
    /// `(start, end, window)`, sorted: the bigram of the first word after `start`, if before
    /// `end`, is not the window's.
    word_fixes: Vec<(usize, usize, usize)>,
    at_edge: Vec<Running>,
    /// Per window, the sums of the features that are the whole text's but not the window's.
    fixes: Vec<Running>,
    /// Next unvisited index into `edges`, `gram_fixes`, `word_fixes`.
    next: [usize; 3],
    /// Windows whose first word is the one being emitted (its bigram, if any, comes next).
    first_word_of: Vec<usize>,
}

impl Walk {
    /// Handles the feature at `pos` for edges and corrections; `running` holds the features
    /// before it. Returns the next position at which there is something to do.
    /// Out of line and cold: inlined, it kept the per-feature closure from being inlined
    /// into the feature walk, which then spilled its state to the stack (25% slower).
    #[cold]
    #[inline(never)]
    fn visit(&mut self, pos: usize, kind: Kind, value: i64, running: Running) -> usize {
        while let Some(&(p, slot)) = self.edges.get(self.next[0])
            && p <= pos
        {
            if let Some(r) = self.at_edge.get_mut(slot) {
                *r = Running {
                    written: 1,
                    ..running
                };
            }
            self.next[0] += 1;
        }
        let family = kind.family() as usize;
        match kind {
            Kind::Gram => {
                self.first_word_of.clear();
                while self
                    .gram_fixes
                    .get(self.next[1])
                    .is_some_and(|&(p, _)| p < pos)
                {
                    self.next[1] += 1;
                }
                let due = self.gram_fixes.get(self.next[1]..).unwrap_or_default();
                for &(_, k) in due.iter().take_while(|&&(p, _)| p == pos) {
                    if let Some(f) = self.fixes.get_mut(k) {
                        f.add(family, value);
                    }
                }
            }
            Kind::Unigram => {
                self.first_word_of.clear();
                while let Some(&(s, e, k)) = self.word_fixes.get(self.next[2])
                    && s <= pos
                {
                    if pos < e {
                        self.first_word_of.push(k);
                    }
                    self.next[2] += 1;
                }
            }
            Kind::Bigram => {
                for &k in &self.first_word_of {
                    if let Some(f) = self.fixes.get_mut(k) {
                        f.add(family, value);
                    }
                }
                self.first_word_of.clear();
            }
        }
        self.due(pos)
    }

    /// The next position with an edge or a correction; while a first word's bigram may still
    /// come, that is the very next feature.
    fn due(&self, pos: usize) -> usize {
        if !self.first_word_of.is_empty() {
            return pos;
        }
        let edge = self.edges.get(self.next[0]).map_or(usize::MAX, |e| e.0);
        let gram = self
            .gram_fixes
            .get(self.next[1])
            .map_or(usize::MAX, |g| g.0);
        let word = self
            .word_fixes
            .get(self.next[2])
            .map_or(usize::MAX, |w| w.0);
        edge.min(gram).min(word)
    }
}

#[inline(always)]
fn signed(weights: &[[i8; HEADS]], bucket: u32, negative: bool) -> i64 {
    // INVARIANT: buckets are < 2^bucket_bits == weights.len() (see `Model`); a miss would only
    // drop a feature, never panic.
    let Some(&[w0, w1]) = weights.get(bucket as usize) else {
        return 0;
    };
    let pair = i64::from(w0) + (i64::from(w1) << 32);
    if negative { pair.wrapping_neg() } else { pair }
}

/// The sums of one window, read on its own.
pub(crate) fn direct(window: &[u8], config: &FeatureConfig, weights: &[[i8; HEADS]]) -> WindowSums {
    let mut sums = WindowSums::default();
    visit_features(window, config, |family, bucket, negative| {
        let f = family as usize;
        let w = weights.get(bucket as usize).copied().unwrap_or_default();
        sums.count[f] += 1;
        if negative {
            sums.acc[f][0] -= i32::from(w[0]);
            sums.acc[f][1] -= i32::from(w[1]);
        } else {
            sums.acc[f][0] += i32::from(w[0]);
            sums.acc[f][1] += i32::from(w[1]);
        }
    });
    sums
}

/// Whether the corrections in the module docs are complete for `config`: one byte-gram length
/// of at most 4 (its first `n - 2 <= 2` bytes after a window start are consecutive) or none,
/// and unigrams on whenever bigrams are (a word's first feature marks it).
fn shares(config: &FeatureConfig) -> bool {
    let grams =
        config.char_max == 0 || (config.char_min == config.char_max && config.char_max <= 4);
    grams && (config.word_unigrams || !config.word_bigrams)
}

/// The sums of every window `spans[k]` of `text`, as [`direct`] computes them.
pub(crate) fn window_sums(
    text: &[u8],
    spans: &[(usize, usize)],
    config: &FeatureConfig,
    weights: &[[i8; HEADS]],
) -> Vec<WindowSums> {
    let read =
        |&(s, e): &(usize, usize)| direct(text.get(s..e).unwrap_or_default(), config, weights);
    let is_space = |i: usize| text.get(i).is_some_and(u8::is_ascii_whitespace);
    let shared: Vec<bool> = spans
        .iter()
        .map(|&(s, e)| {
            s < e
                && e <= text.len()
                && (s == 0 || is_space(s - 1))
                && (e == text.len() || is_space(e - 1))
        })
        .collect();
    if !shares(config) || shared.iter().filter(|&&x| x).count() < 2 {
        return spans.iter().map(read).collect();
    }

    // Window edges, where the running sums are recorded (slot 2k: start, 2k + 1: end), and
    // the corrections each shared window needs.
    let mut edges: Vec<(usize, usize)> = Vec::with_capacity(2 * spans.len());
    let mut gram_fixes: Vec<(usize, usize)> = Vec::new();
    let mut word_fixes: Vec<(usize, usize, usize)> = Vec::new();
    let fixed_grams = usize::from(config.char_min).saturating_sub(2);
    for (k, (&(s, e), _)) in spans.iter().zip(&shared).enumerate().filter(|x| *x.1.1) {
        edges.push((s, 2 * k));
        edges.push((e, 2 * k + 1));
        if s == 0 {
            continue; // starts like the text: nothing differs
        }
        let first = (s..e).find(|&i| !is_space(i)).unwrap_or(e);
        gram_fixes.extend((first..e).take(fixed_grams).map(|p| (p, k)));
        word_fixes.push((s, e, k));
    }
    edges.sort_unstable();
    gram_fixes.sort_unstable();
    word_fixes.sort_unstable();

    let mut walk = Walk {
        edges,
        gram_fixes,
        word_fixes,
        at_edge: vec![Running::default(); 2 * spans.len()],
        fixes: vec![Running::default(); spans.len()],
        next: [0; 3],
        first_word_of: Vec::new(),
    };
    // The running sums and the next due position stay in locals (passed by value), so that
    // the walk keeps them in registers.
    let mut running = Running::default();
    let mut due = walk.due(0);
    visit_features_at(text, config, |pos, kind, bucket, negative| {
        let value = signed(weights, bucket, negative);
        // Edges and corrections are a few dozen positions in a long text: one compare per
        // feature decides whether any is due.
        if pos >= due {
            due = walk.visit(pos, kind, value, running);
        }
        running.add(kind.family() as usize, value);
    });
    let Walk {
        edges,
        mut at_edge,
        fixes,
        ..
    } = walk;
    for &(_, slot) in &edges {
        // Edges past the last feature (and, harmlessly, all others again) get the total;
        // `visit` only ever wrote the ones before it.
        if let Some(r) = at_edge.get_mut(slot)
            && r.written == 0
        {
            *r = running;
        }
    }
    spans
        .iter()
        .enumerate()
        .map(
            |(k, span)| match (shared.get(k), at_edge.get(2 * k), at_edge.get(2 * k + 1)) {
                (Some(true), Some(&start), Some(&end)) => end
                    .minus(start)
                    .minus(fixes.get(k).copied().unwrap_or_default())
                    .unpack(),
                _ => read(span),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::features::windows;
    use super::*;
    use proptest::prelude::*;

    fn test_weights(config: &FeatureConfig) -> Vec<[i8; HEADS]> {
        (0..config.buckets() as u64)
            .map(|i| {
                let m = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
                [(m & 0xff) as u8 as i8, ((m >> 8) & 0xff) as u8 as i8]
            })
            .collect()
    }

    fn check(text: &str, config: &FeatureConfig) -> std::result::Result<(), TestCaseError> {
        let weights = test_weights(config);
        let window = config.window_bytes as usize;
        let spans = windows(text, window, config.window_overlap as usize);
        let got = window_sums(text.as_bytes(), &spans, config, &weights);
        for (span, sums) in spans.iter().zip(got) {
            let want = direct(&text.as_bytes()[span.0..span.1], config, &weights);
            prop_assert_eq!(sums, want, "window {:?}", span);
        }
        Ok(())
    }

    #[test]
    fn shared_sums_match_direct_on_long_prose() {
        let config = FeatureConfig::default();
        let words = [
            "the",
            "quarterly",
            "report",
            "ignore",
            "1234",
            "a",
            "I",
            "x2",
        ];
        let mut text = String::new();
        for i in 0..4000usize {
            text.push_str(words[i * 7 % words.len()]);
            text.push_str(match i % 11 {
                0 => ".\n",
                3 => ",  ",
                7 => "\t",
                _ => " ",
            });
        }
        check(&text, &config).unwrap();
    }

    proptest! {
        #[test]
        fn shared_sums_match_direct(
            text in "([a-e]{1,7}|[0-9]{1,3}|[ \\n\\t]{1,3}|[.,!]|\\u{e9}|\\u{4e2d}){0,600}",
            gram in 0u8..=5,
            unigrams in any::<bool>(),
            bigrams in any::<bool>(),
        ) {
            let config = FeatureConfig {
                bucket_bits: 16,
                word_unigrams: unigrams || (!bigrams && gram == 0),
                word_bigrams: bigrams,
                char_min: gram.max(1),
                char_max: gram,
                window_bytes: 256,
                window_overlap: 96,
                ..FeatureConfig::default()
            };
            check(&text, &config)?;
        }
    }
}
