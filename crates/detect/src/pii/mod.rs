//! Personal data with validation: e-mail, phone, payment card, IBAN, US SSN, IPv4/IPv6 and
//! national identifiers (UK NHS, India Aadhaar, Spain NIF/NIE, Italy codice fiscale, Germany
//! Steuer-IdNr, Netherlands BSN, France NIR).
//!
//! `scan` finds candidates in one pass (see `scan.rs`), then each candidate is classified: the
//! shape (digit count, group lengths, separators) and checksum decide which kinds it can be,
//! each kind gives a base score for how distinctive that evidence is, and a context word within
//! `CONTEXT_BEFORE` bytes before or `CONTEXT_AFTER` after ("ssn", "iban", "phone", …) raises
//! it. The best-scoring kind wins; a candidate yields at most one finding per view.

mod scan;
mod validate;

use std::ops::Range;

use crate::finding::{Category, Detector, Finding, PiiKind, ScanInput};
use scan::{Candidate, Numeric, SEP_DASH, SEP_DOT, SEP_PAREN, SEP_SLASH, SEP_SPACE};

/// Bytes before a candidate searched for context words. Wider catches "SSN (on file): …" but
/// lets unrelated words in a long sentence count.
const CONTEXT_BEFORE: usize = 40;
/// Bytes after a candidate searched for context words ("… is my phone").
const CONTEXT_AFTER: usize = 20;

/// One PII match in a view's text.
#[derive(Clone, Debug, PartialEq)]
pub struct PiiMatch {
    /// What kind of data.
    pub kind: PiiKind,
    /// The rule that matched, e.g. `luhn_card`.
    pub rule: &'static str,
    /// Confidence in `0.0..=1.0`.
    pub score: f32,
    /// Byte range in the scanned text.
    pub range: Range<usize>,
}

/// The PII detector. Stateless; construct once and share.
#[derive(Debug, Default)]
pub struct PiiDetector;

impl PiiDetector {
    /// A detector with the built-in rules.
    pub fn new() -> Self {
        Self
    }

    /// Finds PII in one text (no normalisation; `Detector::scan` runs this on each view).
    pub fn scan_text(&self, text: &str) -> Vec<PiiMatch> {
        scan::candidates(text)
            .into_iter()
            .filter_map(|c| classify(text, c))
            .collect()
    }
}

impl Detector for PiiDetector {
    fn name(&self) -> &'static str {
        "pii"
    }

    fn scan(&self, input: &ScanInput<'_>, out: &mut Vec<Finding>) {
        for view in input.normalised.pattern_views() {
            for m in self.scan_text(&view.text) {
                let span = view.to_original(m.range);
                out.push(Finding {
                    category: Category::Pii(m.kind),
                    detector: "pii",
                    rule: m.rule,
                    score: m.score,
                    start: span.start,
                    end: span.end,
                });
            }
        }
    }
}

const CARD_WORDS: &[&str] = &[
    "card",
    "credit",
    "debit",
    "visa",
    "mastercard",
    "amex",
    "cc",
    "ccn",
    "pan",
    "payment",
];
const SSN_WORDS: &[&str] = &["ssn", "social security", "social sec", "ss#"];
const PHONE_WORDS: &[&str] = &[
    "phone",
    "tel",
    "telephone",
    "mobile",
    "cell",
    "call",
    "fax",
    "contact",
    "whatsapp",
    "sms",
    "dial",
    "office",
    "telefon",
    "téléphone",
];
const ADDRESS_WORDS: &[&str] = &[
    "apt",
    "apartment",
    "suite",
    "unit",
    "floor",
    "located at",
    "street",
    "st",
    "road",
    "rd",
    "avenue",
    "ave",
    "drive",
    "lane",
    "ln",
    "boulevard",
    "blvd",
    "way",
    "court",
    "ct",
    "square",
];
const IBAN_WORDS: &[&str] = &["iban", "account", "bank", "transfer", "wire"];
const IP_WORDS: &[&str] = &["ip", "ipv4", "ipv6", "address", "host", "server", "addr"];
const NHS_WORDS: &[&str] = &["nhs"];
const AADHAAR_WORDS: &[&str] = &["aadhaar", "aadhar", "uidai", "uid"];
const STEUER_WORDS: &[&str] = &[
    "steuer",
    "steuerid",
    "steuer-id",
    "idnr",
    "identifikationsnummer",
    "tax id",
    "tin",
];
const BSN_WORDS: &[&str] = &["bsn", "burgerservicenummer", "sofinummer"];
const NIR_WORDS: &[&str] = &[
    "nir",
    "insee",
    "securite sociale",
    "sécurité sociale",
    "secu",
];
const NIF_WORDS: &[&str] = &["nif", "nie", "dni"];
const CF_WORDS: &[&str] = &["codice fiscale", "cf", "fiscale"];

/// Whether one of `words` appears, as a whole word, near `span`.
fn near(text: &str, span: &Range<usize>, words: &[&str]) -> bool {
    near_within(text, span, words, CONTEXT_BEFORE, CONTEXT_AFTER)
}

/// Whether one of `words` appears within `before` bytes before or `after` bytes after `span`.
fn near_within(
    text: &str,
    span: &Range<usize>,
    words: &[&str],
    before: usize,
    after: usize,
) -> bool {
    let bytes = text.as_bytes();
    let before = bytes
        .get(span.start.saturating_sub(before)..span.start)
        .unwrap_or_default();
    let after = bytes
        .get(span.end..(span.end + after).min(bytes.len()))
        .unwrap_or_default();
    words
        .iter()
        .any(|w| has_word(before, w.as_bytes()) || has_word(after, w.as_bytes()))
}

fn has_word(hay: &[u8], word: &[u8]) -> bool {
    if word.is_empty() || hay.len() < word.len() {
        return false;
    }
    let alpha = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphabetic);
    (0..=hay.len() - word.len()).any(|i| {
        hay.get(i..i + word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
            && !alpha(i.checked_sub(1).and_then(|p| hay.get(p)))
            && !alpha(hay.get(i + word.len()))
    })
}

/// Picks `with` when a context word is near, `without` otherwise.
fn score(text: &str, span: &Range<usize>, words: &[&str], without: f32, with: f32) -> f32 {
    if near(text, span, words) {
        with
    } else {
        without
    }
}

fn hit(kind: PiiKind, rule: &'static str, score: f32, range: Range<usize>) -> Option<PiiMatch> {
    (score > 0.0).then_some(PiiMatch {
        kind,
        rule,
        score,
        range,
    })
}

/// File extensions that follow `name@2x` in asset names and are no top-level domain.
const NOT_TLDS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "css", "js", "pdf",
];

fn classify(text: &str, candidate: Candidate) -> Option<PiiMatch> {
    match candidate {
        Candidate::Email(r) => {
            let tld = text
                .get(r.clone())?
                .rsplit('.')
                .next()?
                .to_ascii_lowercase();
            if NOT_TLDS.contains(&tld.as_str()) {
                return None;
            }
            hit(PiiKind::Email, "email", 0.9, r)
        }
        Candidate::Ipv6(r) => {
            let s = score(text, &r, IP_WORDS, 0.7, 0.9);
            hit(PiiKind::Ipv6, "ipv6", s, r)
        }
        Candidate::Alnum { span, token } => classify_alnum(text, span, &token),
        Candidate::Numeric(n) => classify_numeric(text, &n),
    }
}

fn classify_alnum(text: &str, span: Range<usize>, token: &[u8]) -> Option<PiiMatch> {
    let letters = token.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    match letters {
        2 => {
            let len = validate::iban_length(token.get(..2)?)?;
            if token.len() != len || !validate::iban_mod97(token) {
                return None;
            }
            let s = score(text, &span, IBAN_WORDS, 0.9, 0.97);
            hit(PiiKind::Iban, "iban_mod97", s, span)
        }
        6 if validate::it_codice_fiscale(token) => {
            let s = score(text, &span, CF_WORDS, 0.85, 0.95);
            hit(PiiKind::ItCodiceFiscale, "it_codice_fiscale", s, span)
        }
        1 if validate::es_nif(token) => {
            let s = score(text, &span, NIF_WORDS, 0.8, 0.95);
            hit(PiiKind::EsNif, "es_nie", s, span)
        }
        _ => None,
    }
}

/// Day-month-year or year-month-day shapes with plausible values, possibly followed by a time
/// ("1970-09-24 09:15"); never personal data here.
fn is_date(n: &Numeric) -> bool {
    let d = n.digits();
    let gaps = n.gaps();
    let date_sep = |k: usize| {
        gaps.get(k)
            .is_some_and(|&f| matches!(f, SEP_DASH | SEP_DOT | SEP_SLASH))
    };
    if n.plus || !date_sep(0) || gaps.get(1).is_some_and(|&f| Some(&f) != gaps.first()) {
        return false;
    }
    let g = n.groups().get(..3).unwrap_or(n.groups());
    let num = |from: usize, len: u8| {
        d.iter()
            .skip(from)
            .take(usize::from(len))
            .fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'))
    };
    let year = |v: u32, len: u8| len == 2 || (1900..=2099).contains(&v);
    match *g {
        [4, a, b] if a <= 2 && b <= 2 => {
            year(num(0, 4), 4)
                && (1..=12).contains(&num(4, a))
                && (1..=31).contains(&num(4 + usize::from(a), b))
        }
        [a, b, y] if a <= 2 && b <= 2 && (y == 4 || y == 2) => {
            let (x, z) = (num(0, a), num(usize::from(a), b));
            let yv = num(usize::from(a + b), y);
            (1..=31).contains(&x) && (1..=31).contains(&z) && (x <= 12 || z <= 12) && year(yv, y)
        }
        // "2019-2020": a range of years.
        [4, 4] => (1900..=2099).contains(&num(0, 4)) && (1900..=2099).contains(&num(4, 4)),
        _ => false,
    }
}

fn classify_numeric(text: &str, n: &Numeric) -> Option<PiiMatch> {
    let r = n.span.clone();
    let d = n.digits();
    if let Some(letter) = n.trailing_letter {
        // Only a NIF ends in a letter; "2020s" or "12345678A" that fail the check are nothing.
        let mut id = d.to_vec();
        id.push(letter);
        if n.groups().len() == 1 && validate::es_nif(&id) {
            let s = score(text, &r, NIF_WORDS, 0.8, 0.95);
            return hit(PiiKind::EsNif, "es_nif", s, r);
        }
        return None;
    }
    if d.len() < 7 && !is_ipv4_shape(n) || is_date(n) {
        return None;
    }
    let mut best: Option<PiiMatch> = None;
    let mut consider = |m: Option<PiiMatch>| {
        if let Some(m) = m
            && best.as_ref().is_none_or(|b| m.score > b.score)
        {
            best = Some(m);
        }
    };
    consider(ipv4(text, n));
    consider(card(text, n));
    consider(ssn(text, n));
    consider(phone(text, n));
    consider(national(text, n));
    best
}

fn is_ipv4_shape(n: &Numeric) -> bool {
    n.seps == SEP_DOT && n.groups().len() == 4 && n.groups().iter().all(|&g| g <= 3)
}

fn ipv4(text: &str, n: &Numeric) -> Option<PiiMatch> {
    if !is_ipv4_shape(n) || n.plus || n.extension {
        return None;
    }
    let s = text.get(n.span.clone())?;
    s.parse::<std::net::Ipv4Addr>().ok()?;
    let sc = score(text, &n.span, IP_WORDS, 0.6, 0.9);
    hit(PiiKind::Ipv4, "ipv4", sc, n.span.clone())
}

fn card(text: &str, n: &Numeric) -> Option<PiiMatch> {
    let d = n.digits();
    let g = n.groups();
    if n.plus || n.extension || n.mixed_seps || n.seps & !(SEP_SPACE | SEP_DASH) != 0 {
        return None;
    }
    // Printed card numbers are one block, groups of four (the last may be shorter), or the
    // Amex/Diners 4-6-5 and 4-6-4 layouts.
    let layout_ok = g.len() == 1
        || matches!(g, [4, 6, 5] | [4, 6, 4])
        || g.split_last()
            .is_some_and(|(last, rest)| rest.iter().all(|&x| x == 4) && (1..=4).contains(last));
    if !(12..=19).contains(&d.len()) || !layout_ok || !validate::luhn(d) {
        return None;
    }
    validate::card_network(d)?;
    let base = if g.len() == 1 { 0.85 } else { 0.9 };
    let s = score(text, &n.span, CARD_WORDS, base, 0.97);
    hit(PiiKind::PaymentCard, "luhn_card", s, n.span.clone())
}

fn ssn(text: &str, n: &Numeric) -> Option<PiiMatch> {
    if n.plus || n.extension || !validate::us_ssn(n.digits()) {
        return None;
    }
    let (without, with) = match (n.groups(), n.seps) {
        ([3, 2, 4], SEP_DASH) if !n.mixed_seps => (0.8, 0.95),
        ([3, 2, 4], SEP_SPACE) => (0.55, 0.9),
        ([9], 0) => (0.3, 0.85),
        _ => return None,
    };
    let s = score(text, &n.span, SSN_WORDS, without, with);
    hit(PiiKind::UsSsn, "us_ssn", s, n.span.clone())
}

fn phone(text: &str, n: &Numeric) -> Option<PiiMatch> {
    let d = n.digits();
    let g = n.groups();
    // The SSN layout is reserved for SSNs: if the SSN rules reject it, it is no phone either.
    let ssn_layout = g == [3, 2, 4] && n.seps == SEP_DASH;
    if n.seps & SEP_SLASH != 0 && !n.plus || d.len() > 15 || ssn_layout {
        return None;
    }
    // "(256 - 36 - 14" is arithmetic; a phone's parentheses pair up.
    let span = text.as_bytes().get(n.span.clone()).unwrap_or_default();
    let count = |c: u8| span.iter().filter(|&&b| b == c).count();
    if count(b'(') != count(b')') {
        return None;
    }
    let first = |k: usize| d.get(k).copied().unwrap_or(b'0');
    let us_shape = matches!(g, [3, 3, 4] | [1, 3, 3, 4])
        || g.len() == 1 && (d.len() == 10 || d.len() == 11 && first(0) == b'1');
    let us_offset = if d.len() == 11 { 1 } else { 0 };
    let nanp = (d.len() == 10 || d.len() == 11 && first(0) == b'1')
        && first(us_offset) >= b'2'
        && first(us_offset + 3) >= b'2';
    let grouped_ok =
        g.iter().skip(1).all(|&x| (2..=4).contains(&x)) && g.first().is_some_and(|&x| x <= 4);
    let (rule, without, with) = if n.plus && (8..=15).contains(&d.len()) {
        ("phone_e164", 0.8, 0.95)
    } else if us_shape && nanp && g.len() > 1 {
        ("phone_us", 0.75, 0.95)
    } else if first(0) == b'0'
        && (9..=12).contains(&d.len())
        && g.first().is_some_and(|&x| (2..=5).contains(&x))
        && (g.len() >= 2 && g.iter().skip(1).all(|&x| (2..=4).contains(&x))
            // Trunk prefix and area code, then the subscriber number in one block.
            || g.len() == 2 && g.get(1).is_some_and(|&x| (5..=8).contains(&x)))
    {
        ("phone_national", 0.6, 0.9)
    } else if (7..=13).contains(&d.len()) && g.len() >= 3 && grouped_ok {
        ("phone_grouped", 0.5, 0.85)
    } else if g == [3, 4] && !n.mixed_seps {
        // The classic seven-digit local number, "555-0134"; but "500-1000" is a range and
        // "875-2022" ends in a year.
        let tail = d.get(3..).unwrap_or_default();
        let year = matches!(tail, [b'1', b'9', ..] | [b'2', b'0', ..]);
        let round = d.get(2) == Some(&b'0') && d.last() == Some(&b'0');
        ("phone_local", if year || round { 0.3 } else { 0.5 }, 0.85)
    } else if (7..=12).contains(&d.len()) && g.len() == 2 && grouped_ok
        || n.seps & SEP_PAREN != 0 && (7..=12).contains(&d.len())
    {
        ("phone_grouped", 0.35, 0.8)
    } else if g.len() == 1 && (10..=11).contains(&d.len()) {
        ("phone_digits", 0.3, 0.8)
    } else if g.len() == 1 && (7..=9).contains(&d.len()) {
        ("phone_digits", 0.0, 0.7)
    } else {
        return None;
    };
    let mut s = score(text, &n.span, PHONE_WORDS, without, with);
    // Weak layouts next to address words ("Apt. 117 5720", "704 1436 Redbud Drive") are
    // house and flat numbers, not phones.
    // The window is narrow: an address line above a phone line must not demote the phone.
    if s < 0.6 && near_within(text, &n.span, ADDRESS_WORDS, 12, 20) {
        s = s.min(0.3);
    }
    if n.extension && s > 0.0 {
        s = (s + 0.1).min(0.95);
    }
    hit(PiiKind::Phone, rule, s, n.span.clone())
}

/// National identifiers that are plain digit strings; without a context word they score low,
/// since a checksum alone passes one random number in ten or eleven.
fn national(text: &str, n: &Numeric) -> Option<PiiMatch> {
    if n.plus || n.extension || n.seps & !(SEP_SPACE | SEP_DASH) != 0 {
        return None;
    }
    let d = n.digits();
    let g = n.groups();
    let r = n.span.clone();
    let (kind, rule, without, with, words) = match d.len() {
        10 if matches!(g, [10] | [3, 3, 4]) && validate::uk_nhs(d) => (
            PiiKind::UkNhs,
            "uk_nhs_mod11",
            if g.len() == 3 { 0.35 } else { 0.2 },
            0.9,
            NHS_WORDS,
        ),
        12 if matches!(g, [12] | [4, 4, 4]) && validate::in_aadhaar(d) => (
            PiiKind::InAadhaar,
            "in_aadhaar_verhoeff",
            if g.len() == 3 { 0.5 } else { 0.3 },
            0.9,
            AADHAAR_WORDS,
        ),
        11 if validate::de_steuer_id(d) => {
            (PiiKind::DeSteuerId, "de_steuer_id", 0.35, 0.9, STEUER_WORDS)
        }
        9 if g.len() == 1 && validate::nl_bsn(d) => {
            (PiiKind::NlBsn, "nl_bsn_11test", 0.25, 0.9, BSN_WORDS)
        }
        15 if validate::fr_nir(d) => (PiiKind::FrNir, "fr_nir", 0.6, 0.95, NIR_WORDS),
        _ => return None,
    };
    let s = score(text, &r, words, without, with);
    hit(kind, rule, s, r)
}

#[cfg(test)]
mod tests;
