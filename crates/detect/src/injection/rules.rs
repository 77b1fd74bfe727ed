//! The rule pack: hand-written patterns for well-known injection and jailbreak techniques.
//!
//! Rules are written from the published taxonomy of attacks (instruction override,
//! system-prompt extraction, role hijack, fake chat turns and completions, persona set-ups
//! such as "DAN" and "developer mode"), never from phrases of a particular dataset, so
//! that they carry over to text nobody has seen yet. Each rule is a verb + object pattern
//! with short, bounded word gaps, because attackers paraphrase ("disregard all prior
//! directives") far more than they change the shape of the request.
//!
//! Matching runs on lowercased, normalised text. An aho-corasick pass over each rule's
//! keywords (one of which every match of the rule must contain) selects the candidate
//! rules, so clean text costs one pass; only then does the `RegexSet` run.
//!
//! Every rule has two scores: one for text the user or operator wrote (`user_prompt`,
//! `system`, and `assistant` turns the user steered) and one for data (`tool_output`,
//! `document`). A user may legitimately say "act as a
//! translator"; the same imperative inside a web page is addressed to the assistant by a
//! third party. A data score of 0 with a prompt score of 0 never happens; a prompt score
//! of 0 means the rule only fires inside data.
//!
//! Regex notes: `\b` is written as ASCII `(?-u:\b)` (via [`expand`]) because the lazy
//! DFA cannot evaluate Unicode word boundaries on non-ASCII text and would fall back to
//! a slower engine. Gaps are `(?:\w+\W+){0,n}?`: bounded, so matching stays linear.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::{Regex, RegexSet, RegexSetBuilder};

/// Cache of the rule set's lazy DFA, per scanning thread. With the regex crate's default
/// (2 MiB) the set's DFA states overflow the cache on prose longer than a few KB and matching
/// falls back to the PikeVM, 50–60× slower (measured: 100 KB went from 14 ms to 0.28 ms with
/// 4 MiB). Raising it costs up to this much memory per thread that scans; lowering it brings
/// the slow path back on long or varied text.
const RULE_SET_DFA_CACHE_BYTES: usize = 16 << 20;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::finding::{Category, Context};

mod pack;
mod techniques;

/// Every built-in rule: the core pack (`rules/pack.rs`) and the technique pack
/// (`rules/techniques.rs`). Order is irrelevant; ids must be unique (a test checks).
pub static RULES: std::sync::LazyLock<Vec<Rule>> = std::sync::LazyLock::new(|| {
    let mut all = pack::CORE.to_vec();
    all.extend_from_slice(techniques::TECHNIQUES);
    all
});

/// One documented rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Stable id, `family.name`.
    pub id: &'static str,
    /// What a match is evidence of: [`Category::PromptInjection`] or [`Category::Jailbreak`].
    pub category: Category,
    /// Score in `user_prompt`, `system` and `assistant` context (0 = the rule does not fire
    /// there).
    pub prompt_score: f32,
    /// Score in `tool_output` and `document` context.
    pub data_score: f32,
    /// Every match contains at least one of these (lowercase) keywords.
    pub keywords: &'static [&'static str],
    /// The pattern, before [`expand`].
    pub pattern: &'static str,
    /// One line on what the rule catches.
    pub doc: &'static str,
}

impl Rule {
    /// The score of this rule in a context.
    pub fn score(&self, context: Context) -> f32 {
        if context.is_data() {
            self.data_score
        } else {
            self.prompt_score
        }
    }
}

/// One rule match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleHit {
    /// The rule's id.
    pub rule_id: &'static str,
    /// The rule's category.
    pub category: Category,
    /// The rule's score in the context it was matched in.
    pub score: f32,
    /// Byte offset of the first match.
    pub start: usize,
    /// Byte offset just past the first match.
    pub end: usize,
}

/// Word characters as the feature extractor sees them: ASCII letters, digits and `_`, and
/// every non-ASCII char. Unicode `\w` would make the bounded gaps compile to a DFA over
/// every script's letter tables, which exceeds the regex size limit; this class is a
/// handful of UTF-8 byte ranges.
const WORD: &str = r"[a-z0-9_\x{80}-\x{10FFFF}]";
const NON_WORD: &str = r"[^a-z0-9_\x{80}-\x{10FFFF}]";

/// Rewrites a rule pattern for matching: `\b` becomes the ASCII word boundary the lazy
/// DFA can run on any text, and `\w` / `\W` (never used inside a class in these
/// patterns) become `WORD` / `NON_WORD`.
pub fn expand(pattern: &str) -> String {
    pattern
        .replace(r"\b", r"(?-u:\b)")
        .replace(r"\w", WORD)
        .replace(r"\W", NON_WORD)
}

/// The compiled rule pack.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: &'static [Rule],
    set: RegexSet,
    regexes: Vec<Regex>,
    /// Keyword prefilters for prompt contexts (`[0]`) and data contexts (`[1]`), each built
    /// from the keywords of the rules that score in that context only: common words that
    /// matter only in data ("ai", "use", "model") then cost nothing on user prompts.
    prefilters: [Prefilter; 2],
}

/// A keyword automaton and, for each of its patterns, the bitmask of rules it makes
/// candidates.
#[derive(Debug, Clone)]
struct Prefilter {
    automaton: AhoCorasick,
    keyword_rules: Vec<u64>,
    /// The rules this prefilter serves (those scoring above 0 in its contexts).
    active: u64,
}

impl Prefilter {
    fn build(rules: &[Rule], data: bool) -> Result<Prefilter> {
        let mut keywords: Vec<&str> = Vec::new();
        let mut keyword_rules: Vec<u64> = Vec::new();
        let mut active = 0u64;
        for (i, rule) in rules.iter().enumerate() {
            let score = if data {
                rule.data_score
            } else {
                rule.prompt_score
            };
            if score <= 0.0 {
                continue;
            }
            active |= 1 << i;
            for &k in rule.keywords {
                match keywords.iter().position(|&x| x == k) {
                    Some(p) => keyword_rules[p] |= 1 << i,
                    None => {
                        keywords.push(k);
                        keyword_rules.push(1 << i);
                    }
                }
            }
        }
        // A DFA: overlapping search over ~150 keywords, many of them common words, is the
        // rules' main cost on ordinary prose, and the DFA takes one table step per byte.
        let automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&keywords)
            .map_err(|source| Error::Automaton {
                what: "injection rule keyword",
                source,
            })?;
        Ok(Prefilter {
            automaton,
            keyword_rules,
            active,
        })
    }
}

impl RuleSet {
    /// Compiles the built-in rules.
    pub fn builtin() -> Result<RuleSet> {
        RuleSet::compile(&RULES)
    }

    /// Compiles a rule table (at most 64 rules, each with at least one keyword).
    pub fn compile(rules: &'static [Rule]) -> Result<RuleSet> {
        if rules.len() > 64 || rules.iter().any(|r| r.keywords.is_empty()) {
            return Err(Error::InvalidConfig {
                what: "rule table: at most 64 rules, each with keywords",
            });
        }
        let patterns: Vec<String> = rules.iter().map(|r| expand(r.pattern)).collect();
        // Each rule alone first, so that an error names the rule.
        let regexes = rules
            .iter()
            .zip(&patterns)
            .map(|(rule, p)| {
                Regex::new(p).map_err(|e| Error::Rule {
                    rule: rule.id,
                    source: Box::new(e),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let set = RegexSetBuilder::new(&patterns)
            .dfa_size_limit(RULE_SET_DFA_CACHE_BYTES)
            .build()
            .map_err(|e| Error::Rule {
                rule: "(rule set)",
                source: Box::new(e),
            })?;
        let prefilters = [
            Prefilter::build(rules, false)?,
            Prefilter::build(rules, true)?,
        ];
        Ok(RuleSet {
            rules,
            set,
            regexes,
            prefilters,
        })
    }

    /// The rules in this set.
    pub fn rules(&self) -> &'static [Rule] {
        self.rules
    }

    /// Bitmask of rules that score in `context` and whose keywords occur in `lower`.
    fn candidates(&self, lower: &str, context: Context) -> u64 {
        let prefilter = &self.prefilters[usize::from(context.is_data())];
        let mut mask = 0u64;
        for m in prefilter.automaton.find_overlapping_iter(lower) {
            mask |= prefilter.keyword_rules[m.pattern().as_usize()];
            if mask == prefilter.active {
                break;
            }
        }
        mask
    }

    /// All rules that match lowercased `lower`, with the score they have in `context`.
    /// Rules scoring 0 in `context` are skipped.
    pub fn scan(&self, lower: &str, context: Context) -> Vec<RuleHit> {
        let mut hits = Vec::new();
        if let Some((start, end)) = repeated_token_run(lower) {
            let rule = &REPEATED_TOKEN;
            let score = rule.score(context);
            if score > 0.0 {
                hits.push(RuleHit {
                    rule_id: rule.id,
                    category: rule.category,
                    score,
                    start,
                    end,
                });
            }
        }
        let mask = self.candidates(lower, context);
        if mask == 0 {
            return hits;
        }
        let mut push = |i: usize, m: regex::Match<'_>| {
            let rule = &self.rules[i];
            hits.push(RuleHit {
                rule_id: rule.id,
                category: rule.category,
                score: rule.score(context),
                start: m.start(),
                end: m.end(),
            });
        };
        if mask.count_ones() <= SET_MIN_CANDIDATES {
            // A few candidates: each regex alone, which can skip ahead on its own literals.
            for i in (0..self.rules.len()).filter(|i| mask & (1 << i) != 0) {
                if let Some(m) = self.regexes[i].find(lower) {
                    push(i, m);
                }
            }
        } else {
            for i in self.set.matches(lower).iter() {
                if mask & (1 << i) != 0
                    && let Some(m) = self.regexes[i].find(lower)
                {
                    push(i, m);
                }
            }
        }
        hits
    }
}

/// The one structural rule: a token (or a short phrase) repeated many times in a row. Long
/// runs of one token are a known way to push a model out of its instructions ("repeated token"
/// or divergence attacks) and to flood a context window; ordinary prose, code and tables
/// rarely repeat one word twenty times back to back. It is not a regex (the regex crate has no
/// back-references), so [`repeated_token_run`] finds it in one linear pass. Its pattern field is
/// documentation only and is never compiled.
pub static REPEATED_TOKEN: Rule = Rule {
    id: "structure.repeated_token",
    category: Category::PromptInjection,
    prompt_score: 0.55,
    data_score: 0.35,
    keywords: &[],
    pattern: "(one token or a phrase of up to three tokens, repeated REPEATED_TOKEN_MIN_RUN times in a row)",
    doc: "a token or short phrase repeated twenty or more times in a row (repeated-token attack)",
};

/// How many back-to-back repeats of a token (or of a phrase of up to [`REPEATED_PHRASE_MAX`]
/// tokens) make a [`REPEATED_TOKEN`] hit. Lowering it flags shorter runs, and with them lists,
/// ASCII art and table padding; raising it lets shorter floods through.
pub const REPEATED_TOKEN_MIN_RUN: usize = 20;
/// Longest phrase, in tokens, whose repeats count as one run.
pub const REPEATED_PHRASE_MAX: usize = 3;

/// The byte span of the first run of [`REPEATED_TOKEN_MIN_RUN`] back-to-back repeats of a
/// token (split at spaces and control characters) or of a phrase of up to
/// [`REPEATED_PHRASE_MAX`] tokens, if any.
/// Tokens of punctuation only (`|`, `---`, `*`) do not count: tables and rules repeat them.
/// Linear: one pass that keeps the last few tokens.
pub fn repeated_token_run(lower: &str) -> Option<(usize, usize)> {
    let bytes = lower.as_bytes();
    // The last REPEATED_PHRASE_MAX tokens, as spans, in a ring.
    let mut recent: [(usize, usize); REPEATED_PHRASE_MAX] = [(0, 0); REPEATED_PHRASE_MAX];
    let mut seen = 0usize;
    // Per period p (1-based): how many tokens in a row equal the token p back, and where
    // that run began.
    let mut run = [0usize; REPEATED_PHRASE_MAX];
    let mut run_start = [0usize; REPEATED_PHRASE_MAX];
    let mut i = 0usize;
    // A hand-rolled token walk: this runs on every text. `split_ascii_whitespace` with a
    // per-token character scan cost ~19 µs on 10 KB of prose, memchr3 per token as much; one
    // comparison per byte (every byte up to the space is a separator) ~10 µs. Whether a token
    // holds a letter is only asked of tokens that repeat, which is rare.
    loop {
        i += bytes.get(i..)?.iter().position(|&b| b > b' ')?;
        let start = i;
        i += bytes
            .get(i..)
            .and_then(|rest| rest.iter().position(|&b| b <= b' '))
            .unwrap_or(bytes.len() - i);
        let end = i;
        let token = bytes.get(start..end);
        for p in 1..=REPEATED_PHRASE_MAX {
            let slot = p - 1;
            let same = seen >= p
                && {
                    let (s, e) = recent[(seen - p) % REPEATED_PHRASE_MAX];
                    // Lengths first: most neighbouring tokens differ in length.
                    e - s == end - start
                    && bytes.get(s..e) == token
                    // Tables and rules repeat punctuation ("|", "---"): not a word.
                    && token.is_some_and(|t| t.iter().any(|&b| b.is_ascii_alphanumeric() || b >= 0x80))
                };
            if !same {
                run[slot] = 0;
                continue;
            }
            if run[slot] == 0 {
                run_start[slot] = recent[(seen - p) % REPEATED_PHRASE_MAX].0;
            }
            run[slot] += 1;
            // `run` counts tokens equal to the one p back: a phrase of p tokens repeated n
            // times gives p * (n - 1) of them.
            if run[slot] >= p * (REPEATED_TOKEN_MIN_RUN - 1) {
                return Some((run_start[slot], end));
            }
        }
        recent[seen % REPEATED_PHRASE_MAX] = (start, end);
        seen += 1;
    }
}

/// Below this many candidate rules, `scan` runs their regexes one by one rather than the
/// `RegexSet` over all rules. Raising it trades one pass of the set for more single passes.
const SET_MIN_CANDIDATES: u32 = 3;

/// Combines rule hits of one category (or all, with `None`) as a noisy-or: independent
/// weak signals add up, and no number of them reaches 1.
pub fn combine(hits: &[RuleHit], category: Option<Category>) -> f32 {
    let keep = 1.0
        - hits
            .iter()
            .filter(|h| category.is_none_or(|c| h.category == c))
            .fold(1.0f32, |acc, h| acc * (1.0 - h.score.clamp(0.0, 1.0)));
    keep.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests;
