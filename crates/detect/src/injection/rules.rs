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
//! rules, so clean text costs one pass; only then do the candidates' regexes run, each alone.
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
use regex::Regex;

// There is deliberately no `RegexSet` over all rules. With the 32-rule core pack a set with a
// 16 MiB lazy-DFA cache was the fast path for texts with many candidate rules; with the
// technique pack's 62 rules (multilingual alternations, bounded word gaps) its DFA thrashed on
// real prompts and fell back to the PikeVM: 5.4 s for the 3,826 dev texts against 58 ms with
// each candidate rule's regex run alone (a one-off timing loop, 2026-12-04). Each regex has
// its own small lazy DFA, and the keyword prefilter keeps the candidates few.
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
    /// What a match is evidence of: [`Category::PromptInjection`] or [`Category::Jailbreak`]
    /// in the built-in packs, [`Category::ToolPoisoning`] in the tool-poisoning table
    /// ([`crate::tool_poisoning`]), which reuses this engine.
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
    regexes: Vec<Regex>,
    /// Per rule: whether its pattern uses `$` (end of text), so a stretch must run to the
    /// text's end for it. Read off the pattern once, here, not per scan.
    ends_at_text_end: Vec<bool>,
    /// Keyword prefilters for prompt contexts (`[0]`) and data contexts (`[1]`), each built
    /// from the keywords of the rules that score in that context only: common words that
    /// matter only in data ("ai", "use", "model") then cost nothing on user prompts.
    prefilters: [Prefilter; 2],
    /// Whether `scan` also runs the structural [`REPEATED_TOKEN`] rule (on by default; a
    /// table of other evidence turns it off with [`RuleSet::without_structural_rule`]).
    structural: bool,
}

/// A keyword automaton and, for each of its patterns, the bitmask of rules it makes
/// candidates.
#[derive(Debug, Clone)]
struct Prefilter {
    automaton: AhoCorasick,
    keyword_rules: Vec<u64>,
    /// Per keyword: whether it only counts as a whole word (see [`is_whole_word_keyword`]).
    whole_word: Vec<bool>,
}

/// Keywords of at most this many ASCII letters count only as whole words: "ai" in "said",
/// "stan" in "understand" and "mode" in "model" would otherwise make their rules candidates on
/// nearly every English text, and each candidate costs a regex pass (a rule table test checks
/// that every rule still fires on its positives). A rule whose pattern takes a short word with
/// a suffix lists the longer form too ("parts", "laws", "hexadecimal").
const WHOLE_WORD_KEYWORD_MAX: usize = 4;

fn is_whole_word_keyword(keyword: &str) -> bool {
    keyword.len() <= WHOLE_WORD_KEYWORD_MAX && keyword.bytes().all(|b| b.is_ascii_alphabetic())
}

impl Prefilter {
    fn build(rules: &[Rule], data: bool) -> Result<Prefilter> {
        let mut keywords: Vec<&str> = Vec::new();
        let mut keyword_rules: Vec<u64> = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let score = if data {
                rule.data_score
            } else {
                rule.prompt_score
            };
            if score <= 0.0 {
                continue;
            }
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
        let whole_word = keywords.iter().map(|k| is_whole_word_keyword(k)).collect();
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
            whole_word,
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
        // Each rule compiled alone, so that an error names the rule.
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
        let prefilters = [
            Prefilter::build(rules, false)?,
            Prefilter::build(rules, true)?,
        ];
        let ends_at_text_end = rules.iter().map(|r| r.pattern.contains('$')).collect();
        Ok(RuleSet {
            rules,
            regexes,
            ends_at_text_end,
            prefilters,
            structural: true,
        })
    }

    /// The same set without the structural [`REPEATED_TOKEN`] rule, for a rule table that is
    /// not about injection (its hits would be another detector's business).
    pub fn without_structural_rule(mut self) -> RuleSet {
        self.structural = false;
        self
    }

    /// The rules in this set.
    pub fn rules(&self) -> &'static [Rule] {
        self.rules
    }

    /// Bitmask of rules that score in `context` and whose keywords occur in `lower`.
    #[cfg(test)]
    fn candidates(&self, lower: &str, context: Context) -> u64 {
        let mut mask = 0u64;
        self.keyword_hits(lower, context, |rules, _, _| mask |= rules);
        mask
    }

    /// Calls `hit(rules, start, end)` for every keyword occurrence in `lower` that counts
    /// (whole-word keywords only as whole words), with the bitmask of the rules it makes
    /// candidates in `context`.
    fn keyword_hits(&self, lower: &str, context: Context, mut hit: impl FnMut(u64, usize, usize)) {
        let prefilter = &self.prefilters[usize::from(context.is_data())];
        let bytes = lower.as_bytes();
        let is_word = |b: Option<&u8>| b.is_some_and(|&b| b.is_ascii_alphanumeric() || b >= 0x80);
        for m in prefilter.automaton.find_overlapping_iter(lower) {
            let k = m.pattern().as_usize();
            if prefilter.whole_word.get(k).copied().unwrap_or(false)
                && (is_word(m.start().checked_sub(1).and_then(|p| bytes.get(p)))
                    || is_word(bytes.get(m.end())))
            {
                continue;
            }
            hit(
                prefilter.keyword_rules.get(k).copied().unwrap_or(0),
                m.start(),
                m.end(),
            );
        }
    }

    /// The stretches of `lower` each candidate rule's regex must read: [`KEYWORD_REACH`]
    /// bytes either side of each of its keyword occurrences, merged, as `(rule, start, end)`
    /// in text order per rule. Every match holds a keyword, so a match no longer than the
    /// reach lies inside one stretch; on long text most rules then read a few hundred bytes
    /// instead of all of it.
    fn candidate_windows(&self, lower: &str, context: Context) -> Vec<(usize, usize, usize)> {
        let mut open: [Option<(usize, usize)>; 64] = [None; 64];
        let mut done = Vec::new();
        let len = lower.len();
        self.keyword_hits(lower, context, |mut rules, start, end| {
            let (ws, we) = (
                start.saturating_sub(KEYWORD_REACH),
                (end + KEYWORD_REACH).min(len),
            );
            while rules != 0 {
                let i = rules.trailing_zeros() as usize;
                rules &= rules - 1;
                let Some(slot) = open.get_mut(i) else {
                    continue;
                };
                *slot = match *slot {
                    Some((s, e)) if ws <= e => Some((s, e.max(we))),
                    Some(w) => {
                        done.push((i, w.0, w.1));
                        Some((ws, we))
                    }
                    None => Some((ws, we)),
                };
            }
        });
        for (i, w) in open.iter().enumerate() {
            if let Some((s, e)) = *w {
                done.push((i, s, e));
            }
        }
        done.sort_unstable();
        done
    }

    /// All rules that match lowercased `lower`, with the score they have in `context`.
    /// Rules scoring 0 in `context` are skipped.
    pub fn scan(&self, lower: &str, context: Context) -> Vec<RuleHit> {
        self.scan_filtered(lower, context, |_, _, _| true)
    }

    /// Like [`RuleSet::scan`], but a match counts only when `accept(rule, start, end)` says
    /// so; a rejected match makes the rule look for its next match instead. A detector uses it
    /// for context a regex cannot see ("never read ~/.ssh" is not an instruction to read it).
    /// Each rejected match costs one more regex search from its end, so the work stays linear.
    pub fn scan_filtered(
        &self,
        lower: &str,
        context: Context,
        mut accept: impl FnMut(&Rule, usize, usize) -> bool,
    ) -> Vec<RuleHit> {
        let mut hits = Vec::new();
        if self.structural
            && let Some((start, end)) = repeated_token_run(lower)
        {
            let rule = &REPEATED_TOKEN;
            let score = rule.score(context);
            if score > 0.0 && accept(rule, start, end) {
                hits.push(RuleHit {
                    rule_id: rule.id,
                    category: rule.category,
                    score,
                    start,
                    end,
                });
            }
        }
        let mut last_rule = None;
        for (i, start, end) in self.candidate_windows(lower, context) {
            if last_rule == Some(i) {
                continue; // this rule already matched in an earlier stretch
            }
            let (Some(rule), Some(regex)) = (self.rules.get(i), self.regexes.get(i)) else {
                continue;
            };
            let to_end = self.ends_at_text_end.get(i).copied().unwrap_or(true);
            let (start, end) = stretch_bounds(lower, start, end, to_end);
            // `find_at` reads the bytes before `start` for `^` and `\b`, so the stretch's
            // start needs no care; only its end is cut (at whitespace).
            let Some(haystack) = lower.get(..end) else {
                continue;
            };
            let mut at = start;
            let found = loop {
                let Some(m) = regex.find_at(haystack, at) else {
                    break None;
                };
                if accept(rule, m.start(), m.end()) {
                    break Some(m);
                }
                // Past the rejected match (at least one char, for an empty one).
                at = if m.end() > m.start() {
                    m.end()
                } else if m.end() < haystack.len() {
                    haystack.ceil_char_boundary(m.end() + 1)
                } else {
                    break None;
                };
            };
            let Some(m) = found else {
                continue;
            };
            last_rule = Some(i);
            hits.push(RuleHit {
                rule_id: rule.id,
                category: rule.category,
                score: rule.score(context),
                start: m.start(),
                end: m.end(),
            });
        }
        hits
    }
}

/// How far from a keyword occurrence a rule's regex reads, each way. A match must hold one
/// of its rule's keywords, so every match up to this long is found; the rules' bounded gaps
/// keep real matches to a sentence or two. Raising it costs time on long text; lowering it
/// below the longest realistic match loses matches.
const KEYWORD_REACH: usize = 1024;

/// A stretch's bounds on char boundaries, its end moved forward to the next whitespace (at
/// most [`KEYWORD_REACH`] further), so that no word is cut and `\b` and `\W` read the end as
/// in the whole text; `to_end` runs it to the text's end, for patterns with `$`. The start
/// needs no widening: the search starts there with `find_at`, which sees the text before it.
fn stretch_bounds(lower: &str, start: usize, end: usize, to_end: bool) -> (usize, usize) {
    let start = lower.floor_char_boundary(start);
    if to_end {
        return (start, lower.len());
    }
    let limit = (end + KEYWORD_REACH).min(lower.len());
    let end = lower
        .as_bytes()
        .get(end..limit)
        .and_then(|t| t.iter().position(u8::is_ascii_whitespace))
        .map_or(limit, |p| end + p);
    (start, lower.floor_char_boundary(end).max(start))
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
