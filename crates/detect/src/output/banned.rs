//! Operator-configured banned text: substrings (any occurrence, case-insensitive) and topics
//! (enough distinct keywords of a set, as whole words).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::Error;
use crate::finding::{Category, Detector, Finding, ScanInput};

/// A topic: flagged when at least `min_matches` distinct keywords appear in one text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BannedTopic {
    /// The topic's name, for callers that report it (see `BannedDetector::topics_in`).
    pub name: String,
    /// Keywords, matched case-insensitively as whole words.
    pub keywords: Vec<String>,
    /// Distinct keywords needed; 1 makes every keyword a banned word.
    pub min_matches: usize,
}

/// The banned-text configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BannedConfig {
    /// Substrings banned anywhere, case-insensitively.
    pub substrings: Vec<String>,
    /// Topics.
    pub topics: Vec<BannedTopic>,
}

/// Finds banned substrings and topics. Build once per configuration.
#[derive(Debug)]
pub struct BannedDetector {
    substrings: Option<AhoCorasick>,
    keywords: Option<AhoCorasick>,
    /// For each keyword pattern: (topic index, keyword index within the topic).
    keyword_topic: Vec<(usize, usize)>,
    topics: Vec<BannedTopic>,
}

fn automaton(patterns: &[&str], what: &'static str) -> Result<Option<AhoCorasick>, Error> {
    if patterns.is_empty() {
        return Ok(None);
    }
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(patterns)
        .map(Some)
        .map_err(|source| Error::Automaton { what, source })
}

impl BannedDetector {
    /// Compiles the configuration; fails when the automata cannot be built (very large lists).
    pub fn try_new(config: BannedConfig) -> Result<Self, Error> {
        let subs: Vec<&str> = config
            .substrings
            .iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        let substrings = automaton(&subs, "banned substrings")?;
        let mut patterns = Vec::new();
        let mut keyword_topic = Vec::new();
        for (t, topic) in config.topics.iter().enumerate() {
            for (k, kw) in topic.keywords.iter().enumerate() {
                if !kw.is_empty() {
                    patterns.push(kw.as_str());
                    keyword_topic.push((t, k));
                }
            }
        }
        let keywords = automaton(&patterns, "banned topic keywords")?;
        Ok(Self {
            substrings,
            keywords,
            keyword_topic,
            topics: config.topics,
        })
    }

    /// Topics present in `text`: (topic, byte span from its first to last keyword).
    pub fn topics_in(&self, text: &str) -> Vec<(&BannedTopic, std::ops::Range<usize>)> {
        let Some(ac) = &self.keywords else {
            return Vec::new();
        };
        let bytes = text.as_bytes();
        let word = |i: Option<&u8>| i.is_some_and(|b| b.is_ascii_alphanumeric());
        // Per topic: which keywords were seen, and the covered span.
        let mut seen: Vec<(Vec<bool>, Option<std::ops::Range<usize>>)> = self
            .topics
            .iter()
            .map(|t| (vec![false; t.keywords.len()], None))
            .collect();
        for m in ac.find_iter(text) {
            let whole = !word(m.start().checked_sub(1).and_then(|p| bytes.get(p)))
                && !word(bytes.get(m.end()));
            let Some(&(t, k)) = self.keyword_topic.get(m.pattern().as_usize()) else {
                continue;
            };
            if let (true, Some((kws, span))) = (whole, seen.get_mut(t)) {
                if let Some(flag) = kws.get_mut(k) {
                    *flag = true;
                }
                *span = Some(
                    span.as_ref()
                        .map_or(m.start()..m.end(), |s| s.start..m.end()),
                );
            }
        }
        self.topics
            .iter()
            .zip(seen)
            .filter_map(|(topic, (kws, span))| {
                let distinct = kws.iter().filter(|&&b| b).count();
                (distinct >= topic.min_matches.max(1)).then_some((topic, span?))
            })
            .collect()
    }
}

impl Detector for BannedDetector {
    fn name(&self) -> &'static str {
        "banned"
    }

    fn scan(&self, input: &ScanInput<'_>, out: &mut Vec<Finding>) {
        for view in input.normalised.views() {
            if let Some(ac) = &self.substrings {
                for m in ac.find_iter(&view.text) {
                    let span = view.to_original(m.start()..m.end());
                    out.push(banned("banned_substring", 1.0, span));
                }
            }
            for (_, span) in self.topics_in(&view.text) {
                out.push(banned("banned_topic", 0.8, view.to_original(span)));
            }
        }
    }
}

fn banned(rule: &'static str, score: f32, span: std::ops::Range<usize>) -> Finding {
    Finding {
        category: Category::Banned,
        detector: "banned",
        rule,
        score,
        start: span.start,
        end: span.end,
    }
}
