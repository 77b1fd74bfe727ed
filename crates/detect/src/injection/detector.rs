//! `InjectionDetector`: the rule pack and the classifier over the normaliser's views, emitting
//! findings and deciding, per context, which of them flag.

use super::features::lowercase_in_place_offsets;
use super::model::{Model, Scores};
use super::rules::{RuleHit, RuleSet, combine};
use super::thresholds::Thresholds;
use crate::error::Result;
use crate::finding::{Category, Context, Detector, Finding, ScanInput};
use crate::normalise::ViewKind;

/// `Finding::detector` of every injection finding.
const NAME: &str = "injection";
/// `Finding::rule` of the classifier's finding.
pub const CLASSIFIER_RULE: &str = "classifier";
/// The classifier reports a text once its attack probability reaches this (or the context's
/// classifier threshold, if lower): from here on it thinks an attack more likely than not.
/// Lower values report more sub-threshold findings for policies to read, at no cost in flags.
const CLASSIFIER_REPORT_FLOOR: f32 = 0.5;
/// The classifier reads a decoded view only if it holds at least this many words. Decoded
/// fragments are short and unlike anything it was trained on, and it scores short text high
/// ("secret data 1234567890", decoded from a URL parameter, scores 0.99); the rules still read
/// every decoded view. Lowering this catches shorter encoded paraphrases at the cost of such
/// false positives.
const DECODED_MIN_WORDS: usize = 8;
/// The classifier reads a text only from this many words up (counted on the canonical view;
/// see [`classifier_reads`]). Below it there is too little wording for a bag of n-grams to tell an
/// attack from a button label or a log line ("OK", "password reset" scored 0.74 and 0.99
/// before this floor and the short benign synthetic examples); the rules still read every
/// text, and short attacks are the rules' home ground ("ignore previous instructions").
/// Raising it hands more short texts to the rules alone.
pub const CLASSIFIER_MIN_WORDS: usize = 3;

/// The shipped model: trained on the dev datasets plus synthetic examples, thresholds from
/// leave-one-source-out evaluation. `models/README.md` says how to rebuild it.
static EMBEDDED_MODEL: &[u8] = include_bytes!("../../models/injection.bin");

/// What the rules and the classifier say about one text (one view, no normalisation).
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Injection score in [0, 1]: the larger of the classifier's P(injection) and the
    /// noisy-or of injection rule hits.
    pub injection: f32,
    /// Jailbreak score in [0, 1], combined the same way.
    pub jailbreak: f32,
    /// The larger of the classifier's P(not benign) and `rules`: a summary for display;
    /// flagging uses `rules` and the classifier separately (see [`super::ContextThreshold`]).
    pub attack: f32,
    /// Noisy-or of all rule hits' scores.
    pub rules: f32,
    /// The classifier's own scores for its highest-scoring window.
    pub classifier: Scores,
    /// Every rule that matched, with the byte span of its first match.
    pub rule_hits: Vec<RuleHit>,
    /// Byte span of the classifier's highest-scoring window.
    pub window: (usize, usize),
}

/// Prompt-injection and jailbreak detection: the rule pack and the hashed linear classifier.
/// Cheap to share: build once, use from any thread.
///
/// As a [`Detector`] it reads every view of the normaliser (canonical, leetspeak-folded,
/// despaced and decoded), because each undoes a disguise of the *wording*, and reports:
///
/// - one finding per rule that matches, with the rule's score in the context and the span of
///   its first match in each view (mapped to the original text; a decoded view maps to its
///   whole encoded segment);
/// - at most one `classifier` finding per text: the highest-scoring window over all views
///   (decoded views only from eight words up), scored P(not benign), categorised by the more
///   likely attack class, reported from P ≥ 0.5.
///
/// Which of them flag depends on the context's [`Thresholds`] (see [`Detector::flagged`]).
///
/// Not for the stream scanner: the classifier scores 2 KiB windows whose placement depends on
/// the whole text, so its findings are not local in the way `stream` requires.
#[derive(Debug, Clone)]
pub struct InjectionDetector {
    rules: RuleSet,
    model: Model,
    thresholds: Thresholds,
}

impl InjectionDetector {
    /// A detector from a model, with the built-in rules and the model's stored thresholds.
    pub fn new(model: Model) -> Result<Self> {
        let thresholds = model.thresholds();
        Ok(Self {
            rules: RuleSet::builtin()?,
            model,
            thresholds,
        })
    }

    /// The detector with the model shipped in this crate (`models/injection.bin`).
    pub fn embedded() -> Result<Self> {
        Self::from_model_bytes(EMBEDDED_MODEL)
    }

    /// Loads a model file (see [`Model::from_bytes`]) and builds a detector from it.
    pub fn from_model_bytes(bytes: &[u8]) -> Result<Self> {
        Self::new(Model::from_bytes(bytes)?)
    }

    /// The same detector with other thresholds.
    pub fn with_thresholds(mut self, thresholds: Thresholds) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// The thresholds in force.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// The rule pack.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The classifier.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Assesses one text as it appears in `context`, without the normaliser (evaluation and
    /// debugging; the gateway goes through [`Detector::scan`]).
    ///
    /// The text is lowercased without moving byte offsets, so every span in the result is a
    /// span of `text`.
    pub fn assess(&self, text: &str, context: Context) -> Assessment {
        let lower = lowercase_in_place_offsets(text);
        let rule_hits = self.rules.scan(&lower, context);
        let (classifier, window) = if !classifier_reads(&lower) {
            (Scores::default(), (0, lower.len()))
        } else {
            self.model.score_text(&lower)
        };
        let injection = classifier
            .injection
            .max(combine(&rule_hits, Some(Category::PromptInjection)));
        let jailbreak = classifier
            .jailbreak
            .max(combine(&rule_hits, Some(Category::Jailbreak)));
        let rules = combine(&rule_hits, None);
        Assessment {
            injection,
            jailbreak,
            attack: classifier.attack.max(rules),
            rules,
            classifier,
            rule_hits,
            window,
        }
    }
}

impl Detector for InjectionDetector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn scan(&self, input: &ScanInput<'_>, out: &mut Vec<Finding>) {
        let context = input.context;
        // The canonical view comes first; the leet view differs from it only in folded bytes
        // (same length, same whitespace, so the same windows), and only windows holding a
        // folded byte are scored again.
        let mut canonical_lower = String::new();
        let mut best: Option<(Scores, std::ops::Range<usize>)> = None;
        let classify = classifier_reads(&input.normalised.canonical().text);
        // Spaced-out letters ("i g n o r e") are single-letter tokens the classifier never saw
        // in training, and it scores them as attacks: 68% of the benign dev texts, spaced out,
        // flagged when it read them. Where the normaliser joined such runs, the classifier
        // reads the joined view instead of the canonical one (they differ only in those runs);
        // the rules read both.
        let despaced = input
            .normalised
            .views()
            .any(|v| v.kind == ViewKind::Despaced);
        for view in input.normalised.views() {
            let lower = lowercase_in_place_offsets(&view.text);
            for hit in self.rules.scan(&lower, context) {
                let span = view.to_original(hit.start..hit.end);
                out.push(Finding {
                    category: hit.category,
                    detector: NAME,
                    rule: hit.rule_id,
                    score: hit.score,
                    start: span.start,
                    end: span.end,
                });
            }
            let scored = if !classify
                || (view.kind.is_decoded() && word_count(&lower) < DECODED_MIN_WORDS)
                || (despaced && view.kind == ViewKind::Canonical)
            {
                None
            } else if view.kind == ViewKind::LeetFolded {
                let (a, b) = (canonical_lower.as_bytes(), lower.as_bytes());
                self.model
                    .score_windows(&lower, |s, e| a.get(s..e) != b.get(s..e))
            } else {
                Some(self.model.score_text(&lower))
            };
            if let Some((scores, (s, e))) = scored
                && best.as_ref().is_none_or(|b| scores.attack > b.0.attack)
            {
                best = Some((scores, view.to_original(s..e)));
            }
            if view.kind == ViewKind::Canonical {
                canonical_lower = lower;
            }
        }
        let floor = CLASSIFIER_REPORT_FLOOR.min(self.thresholds.get(context).classifier);
        if let Some((scores, span)) = best
            && scores.attack >= floor
        {
            out.push(Finding {
                category: classifier_category(&scores),
                detector: NAME,
                rule: CLASSIFIER_RULE,
                score: scores.attack.clamp(0.0, 1.0),
                start: span.start,
                end: span.end,
            });
        }
    }

    /// Flags like the evaluated operating point: the rule findings' categories when the
    /// noisy-or of the rules' scores (each rule counted once, at its highest score) reaches the
    /// context's `rules` threshold, and the classifier finding's category when its score
    /// reaches the context's `classifier` threshold.
    fn flagged(&self, own: &[&Finding], context: Context, out: &mut Vec<Category>) {
        let t = self.thresholds.get(context);
        let mut rules: Vec<(&str, f32)> = Vec::new();
        for f in own.iter().filter(|f| f.rule != CLASSIFIER_RULE) {
            match rules.iter_mut().find(|(id, _)| *id == f.rule) {
                Some((_, score)) => *score = score.max(f.score),
                None => rules.push((f.rule, f.score)),
            }
        }
        let keep = rules
            .iter()
            .fold(1.0f32, |acc, (_, s)| acc * (1.0 - s.clamp(0.0, 1.0)));
        let rule_score = (1.0 - keep).clamp(0.0, 1.0);
        if rule_score > 0.0 && rule_score >= t.rules {
            out.extend(
                own.iter()
                    .filter(|f| f.rule != CLASSIFIER_RULE)
                    .map(|f| f.category),
            );
        }
        out.extend(
            own.iter()
                .filter(|f| f.rule == CLASSIFIER_RULE && f.score >= t.classifier)
                .map(|f| f.category),
        );
    }
}

/// Whether the classifier reads `text` at all: [`CLASSIFIER_MIN_WORDS`] words, or 24 bytes
/// of which some are non-ASCII (CJK and Thai are written without spaces, so a whole
/// sentence counts as one word).
pub fn classifier_reads(text: &str) -> bool {
    // Stops at the third word: this runs on every text, however long.
    let is_word = |b: &u8| b.is_ascii_alphanumeric() || *b >= 0x80;
    let mut words = 0;
    let mut in_word = false;
    for b in text.as_bytes() {
        let w = is_word(b);
        if w && !in_word {
            words += 1;
            if words >= CLASSIFIER_MIN_WORDS {
                return true;
            }
        }
        in_word = w;
    }
    text.len() >= 24 && !text.is_ascii()
}

/// Words as the classifier's features see them: runs of ASCII letters and digits or of
/// non-ASCII bytes.
pub fn word_count(text: &str) -> usize {
    let is_word = |b: &u8| b.is_ascii_alphanumeric() || *b >= 0x80;
    let bytes = text.as_bytes();
    let starts = bytes
        .windows(2)
        .filter(|w| !is_word(&w[0]) && is_word(&w[1]))
        .count();
    starts + usize::from(bytes.first().is_some_and(is_word))
}

fn classifier_category(scores: &Scores) -> Category {
    if scores.injection >= scores.jailbreak {
        Category::PromptInjection
    } else {
        Category::Jailbreak
    }
}

#[cfg(test)]
mod tests;
