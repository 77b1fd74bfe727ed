//! Credentials: provider tokens with known prefixes (AWS, GitHub, GitLab, Slack, Stripe, OpenAI,
//! Anthropic, Hugging Face), JWTs, PEM private keys, GCP service-account JSON, Azure storage keys,
//! URLs with embedded passwords, and generic `password = …`-style assignments.
//!
//! Three cheap passes find candidates, and a rule reads and validates the token at each:
//! - an Aho-Corasick automaton over the provider prefixes (`ghp_`, `sk-ant-`, `-----BEGIN `,
//!   `://`, …), all of which contain a byte rare in prose, so its prefilter skips most text;
//! - every `=` and `:`, for `name = value` assignments whose name holds a keyword (password,
//!   token, secret, api_key, …), bearer and basic credentials, Azure and GCP key material;
//! - long runs of token bytes, for prefix-less formats (AWS key ids, JWTs) and, at a low score,
//!   any high-entropy token.

mod generic;
mod rules;

use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::finding::{Category, Detector, Finding, ScanInput, SecretKind};

/// One secret match in a view's text.
#[derive(Clone, Debug, PartialEq)]
pub struct SecretMatch {
    /// What kind of credential.
    pub kind: SecretKind,
    /// The rule that matched, e.g. `github_pat`.
    pub rule: &'static str,
    /// Confidence in `0.0..=1.0`.
    pub score: f32,
    /// Byte range in the scanned text.
    pub range: Range<usize>,
}

/// Which rule a prefix anchor triggers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    Github,
    GithubPat,
    Gitlab,
    Slack,
    Stripe,
    StripeWebhook,
    Anthropic,
    OpenaiProject,
    OpenaiLegacy,
    Huggingface,
    Pem,
    Url,
}

/// Provider prefixes, matched case-sensitively (providers issue them in one case). Every one
/// holds `_`, `-` or `:`, bytes rare in prose, so the automaton's prefilter skips most text.
const ANCHORS: &[(&str, Rule)] = &[
    ("ghp_", Rule::Github),
    ("gho_", Rule::Github),
    ("ghu_", Rule::Github),
    ("ghs_", Rule::Github),
    ("ghr_", Rule::Github),
    ("github_pat_", Rule::GithubPat),
    ("glpat-", Rule::Gitlab),
    ("xoxb-", Rule::Slack),
    ("xoxp-", Rule::Slack),
    ("xoxa-", Rule::Slack),
    ("xoxr-", Rule::Slack),
    ("xoxs-", Rule::Slack),
    ("xoxe-", Rule::Slack),
    ("sk_live_", Rule::Stripe),
    ("rk_live_", Rule::Stripe),
    ("sk_test_", Rule::Stripe),
    ("rk_test_", Rule::Stripe),
    ("whsec_", Rule::StripeWebhook),
    ("sk-ant-", Rule::Anthropic),
    ("sk-proj-", Rule::OpenaiProject),
    ("sk-svcacct-", Rule::OpenaiProject),
    ("sk-admin-", Rule::OpenaiProject),
    ("sk-", Rule::OpenaiLegacy),
    ("hf_", Rule::Huggingface),
    ("-----BEGIN ", Rule::Pem),
    ("://", Rule::Url),
];

/// The secrets detector. Build once (compiles the anchor automaton) and share.
#[derive(Debug)]
pub struct SecretsDetector {
    anchors: AhoCorasick,
}

impl Default for SecretsDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl SecretsDetector {
    /// A detector with the built-in rules.
    pub fn new() -> Self {
        let patterns: Vec<&str> = ANCHORS.iter().map(|(p, _)| *p).collect();
        // INVARIANT: the anchors are a fixed, small set of literals, far below any automaton
        // size limit, so building cannot fail; `anchors_build` tests this.
        #[allow(clippy::expect_used)]
        let anchors = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .expect("invariant: the fixed anchor set builds");
        Self { anchors }
    }

    /// Finds secrets in one text (no normalisation; `Detector::scan` runs this on each view).
    pub fn scan_text(&self, text: &str) -> Vec<SecretMatch> {
        self.scan_with_runs(text, None)
    }

    /// `runs` are the text's maximal runs of token bytes (`[A-Za-z0-9+/_-]`) of 16 bytes or
    /// more, if the caller has them (the normaliser does); otherwise they are found here.
    fn scan_with_runs(&self, text: &str, runs: Option<&[Range<usize>]>) -> Vec<SecretMatch> {
        let mut out = Vec::new();
        // Positions of PEM footers, found once on the first header, so that many headers
        // cost one search rather than one each.
        let mut pem_footers: Option<Vec<usize>> = None;
        // Leftmost-longest: "sk-ant-" wins over "sk-".
        for m in self.anchors.find_iter(text) {
            let Some(&(_, rule)) = ANCHORS.get(m.pattern().as_usize()) else {
                continue;
            };
            let (s, e) = (m.start(), m.end());
            out.extend(match rule {
                Rule::Github => rules::github(text, s, e),
                Rule::GithubPat => rules::github_pat(text, s, e),
                Rule::Gitlab => rules::gitlab(text, s, e),
                Rule::Slack => rules::slack(text, s, e),
                Rule::Stripe => rules::stripe(text, s, e),
                Rule::StripeWebhook => rules::stripe_webhook(text, s, e),
                Rule::Anthropic => rules::anthropic(text, s, e),
                Rule::OpenaiProject => rules::openai_project(text, s, e),
                Rule::OpenaiLegacy => rules::openai_legacy(text, s, e),
                Rule::Huggingface => rules::huggingface(text, s, e),
                Rule::Pem => {
                    let footers = pem_footers.get_or_insert_with(|| {
                        memchr::memmem::find_iter(text.as_bytes(), b"-----END ").collect()
                    });
                    rules::pem(text, s, e, footers)
                }
                Rule::Url => {
                    rules::slack_webhook(text, s).or_else(|| generic::url_credentials(text, s))
                }
            });
        }
        // Keyword assignments hang off their operator: "=" and ":" are far rarer than the
        // letters of "key" or "token", so this finds them without reading every word.
        for op in memchr::memchr2_iter(b'=', b':', text.as_bytes()) {
            out.extend(generic::assignment(text, op));
        }
        match runs {
            Some(runs) => runs
                .iter()
                .for_each(|r| long_token(text, r.clone(), &mut out)),
            None => token_runs(text.as_bytes())
                .into_iter()
                .for_each(|r| long_token(text, r, &mut out)),
        }
        resolve_overlaps(&mut out);
        out
    }
}

/// Tokens without a distinctive prefix byte: AWS key ids, JWTs, and anything of high entropy.
fn long_token(text: &str, run: Range<usize>, out: &mut Vec<SecretMatch>) {
    let bytes = text.as_bytes();
    let head = bytes.get(run.start..run.start + 4).unwrap_or_default();
    if run.len() == 20 && AWS_PREFIXES.iter().any(|p| head == p.as_bytes()) {
        out.extend(rules::aws_key_id(text, run.start));
    } else if head.starts_with(b"eyJ") {
        out.extend(rules::jwt(text, run.start));
    }
    generic::high_entropy(text, run, out);
}

/// Prefixes of AWS key ids: AKIA/ASIA are access keys, the rest name users, roles, policies.
const AWS_PREFIXES: &[&str] = &[
    "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA",
];

/// Maximal runs of token bytes of 16 bytes or more (the normaliser's decode pre-scan finds
/// the same runs; this is for texts scanned without it).
pub(crate) fn token_runs(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        if generic::token_byte(b) {
            start.get_or_insert(i);
        } else if let Some(s) = start.take()
            && i - s >= 16
        {
            runs.push(s..i);
        }
    }
    if let Some(s) = start
        && bytes.len() - s >= 16
    {
        runs.push(s..bytes.len());
    }
    runs
}

/// Where rules overlap (a generic keyword rule and a provider rule on the same token), keep the
/// most specific: the higher score, then the longer span. Greedy by rank; the kept spans never
/// overlap, so only the kept span starting last before a candidate's end can clash with it,
/// which keeps this O(k log k).
fn resolve_overlaps(out: &mut Vec<SecretMatch>) {
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then((b.range.end - b.range.start).cmp(&(a.range.end - a.range.start)))
            .then(a.range.start.cmp(&b.range.start))
    });
    let mut kept: std::collections::BTreeMap<usize, SecretMatch> =
        std::collections::BTreeMap::new();
    for m in out.drain(..) {
        let clash = kept
            .range(..m.range.end.max(m.range.start + 1))
            .next_back()
            .is_some_and(|(_, k)| k.range.end > m.range.start);
        if !clash {
            kept.insert(m.range.start, m);
        }
    }
    *out = kept.into_values().collect();
}

impl Detector for SecretsDetector {
    fn name(&self) -> &'static str {
        "secrets"
    }

    fn scan(&self, input: &ScanInput<'_>, out: &mut Vec<Finding>) {
        for view in input.normalised.pattern_views() {
            for m in self.scan_with_runs(&view.text, view.token_runs()) {
                let span = view.to_original(m.range);
                out.push(Finding {
                    category: Category::Secret(m.kind),
                    detector: "secrets",
                    rule: m.rule,
                    score: m.score,
                    start: span.start,
                    end: span.end,
                });
            }
        }
    }
}

/// Shannon entropy in bits per byte.
pub(crate) fn entropy(s: &[u8]) -> f32 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
    }
    let n = s.len() as f32;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f32 / n;
            -p * p.log2()
        })
        .sum()
}

/// The end of a run of bytes satisfying `class` starting at `from`, at most `max` long.
pub(crate) fn run_end(bytes: &[u8], from: usize, max: usize, class: impl Fn(u8) -> bool) -> usize {
    let mut i = from;
    while i - from < max && bytes.get(i).copied().is_some_and(&class) {
        i += 1;
    }
    i
}

/// True when the byte before `at` cannot be part of a token (so a prefix starts a token).
pub(crate) fn starts_token(bytes: &[u8], at: usize) -> bool {
    at.checked_sub(1)
        .and_then(|p| bytes.get(p))
        .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-'))
}

#[cfg(test)]
mod tests;
