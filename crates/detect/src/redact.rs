//! Redaction: replaces finding spans with typed placeholders (`[EMAIL_1]`, `[CARD_2]`,
//! `[SECRET_1]`) and remembers, for one exchange, which placeholder stands for which value, so
//! the same value always gets the same placeholder and a later text (the model's answer) can be
//! unmasked for the caller.
//!
//! Overlapping spans are merged into one region that takes the label of its longest finding.
//! The map holds the original values in memory for the exchange's lifetime; its `Debug` output
//! shows only counts.

use std::collections::HashMap;
use std::ops::Range;

use crate::finding::{Category, Finding, PiiKind};

/// The placeholder label for a category.
pub fn label(category: Category) -> &'static str {
    match category {
        Category::Pii(kind) => match kind {
            PiiKind::Email => "EMAIL",
            PiiKind::Phone => "PHONE",
            PiiKind::PaymentCard => "CARD",
            PiiKind::Iban => "IBAN",
            PiiKind::UsSsn => "SSN",
            PiiKind::Ipv4 | PiiKind::Ipv6 => "IP",
            PiiKind::UkNhs
            | PiiKind::InAadhaar
            | PiiKind::EsNif
            | PiiKind::ItCodiceFiscale
            | PiiKind::DeSteuerId
            | PiiKind::NlBsn
            | PiiKind::FrNir => "ID",
        },
        Category::Secret(_) => "SECRET",
        Category::Exfiltration => "URL",
        Category::Obfuscation => "ENCODED",
        Category::InvisibleText => "HIDDEN",
        Category::SystemPromptLeak => "LEAK",
        Category::Banned => "BANNED",
        Category::PromptInjection | Category::Jailbreak | Category::ToolPoisoning => "REDACTED",
    }
}

/// One replaced region of a redacted text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// The byte range in the input text.
    pub span: Range<usize>,
    /// The placeholder put in its place, e.g. `[EMAIL_1]`.
    pub placeholder: String,
}

/// A redacted text and what was replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redacted {
    /// The text with placeholders.
    pub text: String,
    /// The replacements, in text order.
    pub replacements: Vec<Replacement>,
}

/// Placeholders of one exchange, both ways.
#[derive(Clone, Default)]
pub struct RedactionMap {
    by_value: HashMap<(&'static str, String), String>,
    by_placeholder: HashMap<String, String>,
    counters: HashMap<&'static str, usize>,
}

impl std::fmt::Debug for RedactionMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the values: they are the secrets being protected.
        f.debug_struct("RedactionMap")
            .field("placeholders", &self.by_placeholder.len())
            .finish()
    }
}

/// Merges overlapping finding spans; each region takes the label of its longest finding (ties:
/// the higher score). Spans are widened to `text`'s character boundaries.
pub fn merge_regions(text: &str, findings: &[Finding]) -> Vec<(Range<usize>, &'static str)> {
    let mut spans: Vec<(Range<usize>, &'static str, f32)> = findings
        .iter()
        .filter_map(|f| {
            let span = char_span(text, f.span())?;
            (!span.is_empty()).then_some((span, label(f.category), f.score))
        })
        .collect();
    spans.sort_by_key(|(s, _, _)| (s.start, std::cmp::Reverse(s.end)));
    let mut regions: Vec<(Range<usize>, &'static str, usize, f32)> = Vec::new();
    for (span, lab, score) in spans {
        let len = span.len();
        match regions.last_mut() {
            Some((r, best, best_len, best_score)) if span.start < r.end => {
                r.end = r.end.max(span.end);
                if len > *best_len || len == *best_len && score > *best_score {
                    (*best, *best_len, *best_score) = (lab, len, score);
                }
            }
            _ => regions.push((span, lab, len, score)),
        }
    }
    regions.into_iter().map(|(r, l, _, _)| (r, l)).collect()
}

/// `span` clamped to `text` and widened to character boundaries.
fn char_span(text: &str, span: Range<usize>) -> Option<Range<usize>> {
    let mut start = span.start.min(text.len());
    let mut end = span.end.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    while !text.is_char_boundary(end) {
        end += 1;
    }
    (start <= end).then_some(start..end)
}

impl RedactionMap {
    /// An empty map for a new exchange.
    pub fn new() -> Self {
        Self::default()
    }

    /// The placeholder for `value` under `label`, allocating the next number if it is new.
    pub fn placeholder_for(&mut self, label: &'static str, value: &str) -> String {
        if let Some(p) = self.by_value.get(&(label, value.to_owned())) {
            return p.clone();
        }
        let n = self.counters.entry(label).or_insert(0);
        *n += 1;
        let placeholder = format!("[{label}_{n}]");
        self.by_value
            .insert((label, value.to_owned()), placeholder.clone());
        self.by_placeholder
            .insert(placeholder.clone(), value.to_owned());
        placeholder
    }

    /// Replaces the spans of `findings` in `text` (the text the findings were reported on).
    pub fn redact(&mut self, text: &str, findings: &[Finding]) -> Redacted {
        let mut out = String::with_capacity(text.len());
        let mut replacements = Vec::new();
        let mut copied = 0;
        for (region, lab) in merge_regions(text, findings) {
            out.push_str(text.get(copied..region.start).unwrap_or_default());
            let value = text.get(region.clone()).unwrap_or_default();
            let placeholder = self.placeholder_for(lab, value);
            out.push_str(&placeholder);
            replacements.push(Replacement {
                span: region.clone(),
                placeholder,
            });
            copied = region.end;
        }
        out.push_str(text.get(copied..).unwrap_or_default());
        Redacted {
            text: out,
            replacements,
        }
    }

    /// The original value behind `placeholder` (`[EMAIL_1]`), if this map issued it.
    pub fn original(&self, placeholder: &str) -> Option<&str> {
        self.by_placeholder.get(placeholder).map(String::as_str)
    }

    /// Puts the original values back into a text that repeats this map's placeholders (a
    /// model's answer, say). Unknown bracketed words are left alone.
    pub fn unmask(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for open in memchr::memchr_iter(b'[', text.as_bytes()) {
            if open < copied {
                continue;
            }
            let Some(len) = placeholder_len(text.get(open..).unwrap_or_default()) else {
                continue;
            };
            if let Some(original) = text.get(open..open + len).and_then(|p| self.original(p)) {
                out.push_str(text.get(copied..open).unwrap_or_default());
                out.push_str(original);
                copied = open + len;
            }
        }
        out.push_str(text.get(copied..).unwrap_or_default());
        out
    }
}

/// Longest placeholder this module writes: a label and a number, in brackets.
pub(crate) const MAX_PLACEHOLDER: usize = 32;

/// The length of a `[LABEL_N]` placeholder at the start of `s`, if one is there.
pub(crate) fn placeholder_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.first() != Some(&b'[') {
        return None;
    }
    let label = b
        .iter()
        .skip(1)
        .take_while(|c| c.is_ascii_uppercase())
        .count();
    let underscore = 1 + label;
    if label == 0 || b.get(underscore) != Some(&b'_') {
        return None;
    }
    let digits = b
        .iter()
        .skip(underscore + 1)
        .take_while(|c| c.is_ascii_digit())
        .count();
    let close = underscore + 1 + digits;
    (digits > 0 && b.get(close) == Some(&b']') && close < MAX_PLACEHOLDER).then_some(close + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::SecretKind;

    fn f(category: Category, start: usize, end: usize, score: f32) -> Finding {
        Finding {
            category,
            detector: "t",
            rule: "r",
            score,
            start,
            end,
        }
    }

    const EMAIL: Category = Category::Pii(PiiKind::Email);

    #[test]
    fn same_value_same_placeholder() {
        let text = "a@b.io wrote to c@d.io and a@b.io again";
        let findings = [
            f(EMAIL, 0, 6, 0.9),
            f(EMAIL, 16, 22, 0.9),
            f(EMAIL, 27, 33, 0.9),
        ];
        let mut map = RedactionMap::new();
        let r = map.redact(text, &findings);
        assert_eq!(r.text, "[EMAIL_1] wrote to [EMAIL_2] and [EMAIL_1] again");
        assert_eq!(r.replacements.len(), 3);
        // A later text in the same exchange reuses the numbering.
        let r2 = map.redact("cc c@d.io", &[f(EMAIL, 3, 9, 0.9)]);
        assert_eq!(r2.text, "cc [EMAIL_2]");
    }

    #[test]
    fn overlaps_merge_and_longest_labels() {
        let text = "key=sk-abcdef0123456789 end";
        let findings = [
            f(Category::Secret(SecretKind::OpenaiKey), 4, 23, 0.9),
            f(Category::Pii(PiiKind::Phone), 10, 20, 0.5),
        ];
        let r = RedactionMap::new().redact(text, &findings);
        assert_eq!(r.text, "key=[SECRET_1] end");
    }

    #[test]
    fn unmask_round_trip() {
        let text = "mail a@b.io, card 4111 1111 1111 1111";
        let findings = [
            f(EMAIL, 5, 11, 0.9),
            f(Category::Pii(PiiKind::PaymentCard), 18, 37, 0.9),
        ];
        let mut map = RedactionMap::new();
        let r = map.redact(text, &findings);
        assert_eq!(r.text, "mail [EMAIL_1], card [CARD_1]");
        let answer = "I will email [EMAIL_1] about [CARD_1] and [NOTE_1] [EMAIL_9].";
        assert_eq!(
            map.unmask(answer),
            "I will email a@b.io about 4111 1111 1111 1111 and [NOTE_1] [EMAIL_9]."
        );
        assert_eq!(map.unmask(&r.text), text);
        assert!(!format!("{map:?}").contains("a@b.io"));
    }

    #[test]
    fn spans_snap_to_char_boundaries() {
        let text = "é@x.io";
        let r = RedactionMap::new().redact(text, &[f(EMAIL, 1, 7, 0.9)]);
        assert_eq!(r.text, "[EMAIL_1]");
    }

    #[test]
    fn placeholder_shapes() {
        assert_eq!(placeholder_len("[EMAIL_12] x"), Some(10));
        assert_eq!(placeholder_len("[EMAIL_] x"), None);
        assert_eq!(placeholder_len("[email_1]"), None);
        assert_eq!(placeholder_len("[_1]"), None);
    }
}
