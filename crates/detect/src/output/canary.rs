//! Canary leak detection: the gateway plants a per-request random string in the system prompt;
//! seeing it in output means the system prompt leaked.

use crate::finding::{Category, Detector, Finding, ScanInput};

/// Shortest canary (after squashing) that the normalised match accepts; shorter ones would match
/// by chance.
const MIN_SQUASHED: usize = 8;

/// Looks for one request's canary, verbatim and in any normalised view (spaced out, split by
/// invisible characters, homoglyphs, case changes, base64 or hex encoded).
#[derive(Clone, Debug)]
pub struct CanaryDetector {
    canary: String,
    squashed: Vec<u8>,
}

/// Lowercase ASCII alphanumerics only, so separators and case do not matter.
fn squash(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase())
        .collect()
}

impl CanaryDetector {
    /// A detector for `canary` (built per request; cheap).
    pub fn new(canary: impl Into<String>) -> Self {
        let canary = canary.into();
        let squashed = squash(&canary);
        Self { canary, squashed }
    }

    /// Byte ranges of `text` where the squashed canary occurs.
    fn squashed_matches(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        if self.squashed.len() < MIN_SQUASHED {
            return Vec::new();
        }
        let mut squashed = Vec::with_capacity(text.len());
        let mut positions = Vec::with_capacity(text.len());
        for (i, b) in text.bytes().enumerate() {
            if b.is_ascii_alphanumeric() {
                squashed.push(b.to_ascii_lowercase());
                positions.push(i);
            }
        }
        memchr::memmem::find_iter(&squashed, &self.squashed)
            .filter_map(|k| {
                let s = *positions.get(k)?;
                let e = *positions.get(k + self.squashed.len() - 1)? + 1;
                Some(s..e)
            })
            .collect()
    }
}

impl Detector for CanaryDetector {
    fn name(&self) -> &'static str {
        "canary"
    }

    fn scan(&self, input: &ScanInput<'_>, out: &mut Vec<Finding>) {
        if self.canary.is_empty() {
            return;
        }
        let mut exact = Vec::new();
        for s in memchr::memmem::find_iter(input.original.as_bytes(), self.canary.as_bytes()) {
            exact.push(s..s + self.canary.len());
            out.push(leak("canary_exact", 1.0, s, s + self.canary.len()));
        }
        // Several views can show the same disguised leak (the canonical squash and the
        // despaced view both read "P C X 7 …"); each span is reported once.
        let mut seen: Vec<std::ops::Range<usize>> = Vec::new();
        for view in input.normalised.views() {
            for r in self.squashed_matches(&view.text) {
                let span = view.to_original(r);
                let inside_exact = exact
                    .iter()
                    .any(|e| e.start <= span.start && span.end <= e.end);
                if !inside_exact && !seen.contains(&span) {
                    out.push(leak("canary_normalised", 0.9, span.start, span.end));
                    seen.push(span);
                }
            }
        }
    }
}

fn leak(rule: &'static str, score: f32, start: usize, end: usize) -> Finding {
    Finding {
        category: Category::SystemPromptLeak,
        detector: "canary",
        rule,
        score,
        start,
        end,
    }
}
