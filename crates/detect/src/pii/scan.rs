//! Candidate scanning: one pass over the bytes finds e-mail addresses (around each `@`), IPv6
//! addresses (around each `:`), and digit runs; each digit run is then either a numeric
//! candidate (cards, phones, SSNs, IPv4, national numbers) or, when letters lead into it, an
//! alphanumeric identifier (IBAN, codice fiscale, NIE).
//!
//! A hand-written scanner rather than one big regex: none of these patterns has a literal
//! prefix, so a regex would run its automaton over every byte; skipping to the next digit, `@`
//! or `:` with byte tests is several times faster, and the candidate's shape (group lengths,
//! separators) falls out of the scan for the classifier.

use std::ops::Range;

use super::validate;

/// Longest numeric candidate in bytes; longer runs (tables of numbers) are skipped whole.
const MAX_NUMERIC_BYTES: usize = 40;
/// Most digits in a numeric candidate (19-digit cards plus a country code and extension).
const MAX_DIGITS: usize = 24;
/// Most digit groups in a numeric candidate.
const MAX_GROUPS: usize = 12;

/// Separator characters seen between digit groups, as bit flags.
pub(crate) const SEP_SPACE: u8 = 1;
pub(crate) const SEP_DASH: u8 = 2;
pub(crate) const SEP_DOT: u8 = 4;
pub(crate) const SEP_SLASH: u8 = 8;
pub(crate) const SEP_PAREN: u8 = 16;

/// A run of digit groups with separators, such as `+44 (0)20 7946 0958` or `4111-1111-…`.
#[derive(Debug, Default)]
pub(crate) struct Numeric {
    pub(crate) span: Range<usize>,
    digits: [u8; MAX_DIGITS],
    n_digits: usize,
    groups: [u8; MAX_GROUPS],
    n_groups: usize,
    /// Union of `SEP_*` flags.
    pub(crate) seps: u8,
    /// The `SEP_*` flags of each gap (gap `k` is between groups `k` and `k + 1`).
    gaps: [u8; MAX_GROUPS],
    /// The separators differ between gaps (e.g. "(555) 123-4567").
    pub(crate) mixed_seps: bool,
    pub(crate) plus: bool,
    /// A phone extension ("x1234") follows.
    pub(crate) extension: bool,
    /// An uppercase letter that directly follows (or follows a dash), for NIF.
    pub(crate) trailing_letter: Option<u8>,
}

impl Numeric {
    pub(crate) fn digits(&self) -> &[u8] {
        self.digits.get(..self.n_digits).unwrap_or_default()
    }
    pub(crate) fn groups(&self) -> &[u8] {
        self.groups.get(..self.n_groups).unwrap_or_default()
    }
    pub(crate) fn gaps(&self) -> &[u8] {
        self.gaps
            .get(..self.n_groups.saturating_sub(1))
            .unwrap_or_default()
    }
}

/// What the scanner found; the classifier decides what each is.
#[derive(Debug)]
pub(crate) enum Candidate {
    Email(Range<usize>),
    Ipv6(Range<usize>),
    Numeric(Box<Numeric>),
    /// Letters followed by digits, from the start of the word; the detector tries IBAN,
    /// codice fiscale and NIE on it. `token` is uppercase with spaces removed.
    Alnum {
        span: Range<usize>,
        token: Vec<u8>,
    },
}

fn is_alnum(b: Option<&u8>) -> bool {
    b.is_some_and(u8::is_ascii_alphanumeric)
}

/// Finds candidates in `text`, left to right, each at most once.
pub(crate) fn candidates(text: &str) -> Vec<Candidate> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    emails(bytes, &mut out);
    ipv6(text, &mut out);
    // Digits inside an address already found are not numbers of their own.
    let mut taken: Vec<Range<usize>> = out
        .iter()
        .filter_map(|c| match c {
            Candidate::Email(r) | Candidate::Ipv6(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    taken.sort_by_key(|r| r.start);
    let mut taken = taken.into_iter().peekable();
    let mut i = 0;
    while i < bytes.len() {
        // Skip to the next digit; this loop is where clean text spends its time.
        match bytes
            .get(i..)
            .and_then(|b| b.iter().position(u8::is_ascii_digit))
        {
            Some(k) => i += k,
            None => break,
        }
        while taken.next_if(|r| r.end <= i).is_some() {}
        if let Some(r) = taken.peek().filter(|r| r.start <= i) {
            i = r.end;
            continue;
        }
        let prev = i.checked_sub(1).and_then(|p| bytes.get(p));
        if prev.is_some_and(u8::is_ascii_alphabetic) {
            i = alnum_token(bytes, i, &mut out);
        } else if is_alnum(prev) || prev.is_some_and(|&b| b == b'$') {
            // Inside a word or an amount: skip the rest of the token.
            i = token_end(bytes, i);
        } else {
            i = numeric(text, i, &mut out);
        }
    }
    out
}

fn token_end(bytes: &[u8], mut i: usize) -> usize {
    while is_alnum(bytes.get(i)) {
        i += 1;
    }
    i.max(1)
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn emails(bytes: &[u8], out: &mut Vec<Candidate>) {
    let mut next_free = 0;
    for at in memchr::memchr_iter(b'@', bytes) {
        if at < next_free {
            continue;
        }
        let mut s = at;
        while s > next_free && at - s < 64 && bytes.get(s - 1).copied().is_some_and(is_local) {
            s -= 1;
        }
        while bytes.get(s) == Some(&b'.') {
            s += 1;
        }
        let mut e = at + 1;
        while e - at < 254
            && bytes
                .get(e)
                .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            e += 1;
        }
        while e > at + 1 && matches!(bytes.get(e - 1), Some(b'.' | b'-')) {
            e -= 1;
        }
        let domain = bytes.get(at + 1..e).unwrap_or_default();
        let tld = domain.rsplit(|&b| b == b'.').next().unwrap_or_default();
        let valid = s < at
            && bytes.get(at - 1) != Some(&b'.')
            && domain.contains(&b'.')
            && !domain.starts_with(b".")
            && !domain.windows(2).any(|w| w == b"..")
            && tld.len() >= 2
            && tld.iter().all(u8::is_ascii_alphabetic);
        if valid {
            out.push(Candidate::Email(s..e));
            next_free = e;
        }
    }
}

fn ipv6(text: &str, out: &mut Vec<Candidate>) {
    let bytes = text.as_bytes();
    let is_v6 = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
    let mut next_free = 0;
    for c in memchr::memchr_iter(b':', bytes) {
        if c < next_free {
            continue;
        }
        let mut s = c;
        while s > next_free && c - s < 45 && bytes.get(s - 1).copied().is_some_and(is_v6) {
            s -= 1;
        }
        let mut e = c;
        while e - s < 45 && bytes.get(e).copied().is_some_and(is_v6) {
            e += 1;
        }
        next_free = e;
        // Trailing dots or colons are punctuation ("… at fe80::1.").
        while e > c && matches!(bytes.get(e - 1), Some(b'.')) {
            e -= 1;
        }
        let bounded =
            !is_alnum(s.checked_sub(1).and_then(|p| bytes.get(p))) && !is_alnum(bytes.get(e));
        let colons = bytes
            .get(s..e)
            .map_or(0, |b| b.iter().filter(|&&b| b == b':').count());
        let Some(cand) = text.get(s..e) else { continue };
        if bounded && colons >= 2 && cand.len() >= 6 && cand.parse::<std::net::Ipv6Addr>().is_ok() {
            out.push(Candidate::Ipv6(s..e));
        }
    }
}

fn is_sep(b: u8) -> Option<u8> {
    Some(match b {
        b' ' => SEP_SPACE,
        b'-' => SEP_DASH,
        b'.' => SEP_DOT,
        b'/' => SEP_SLASH,
        b'(' | b')' => SEP_PAREN,
        _ => return None,
    })
}

/// Scans a numeric candidate whose first digit is at `d`; returns where scanning resumes.
fn numeric(text: &str, d: usize, out: &mut Vec<Candidate>) -> usize {
    let bytes = text.as_bytes();
    let mut n = Numeric::default();
    let mut start = d;
    match d.checked_sub(1).and_then(|p| bytes.get(p)) {
        Some(b'+') => {
            n.plus = true;
            start = d - 1;
        }
        Some(b'(') => {
            n.seps |= SEP_PAREN;
            start = d - 1;
            n.plus = d >= 3 && bytes.get(d - 3) == Some(&b'+');
        }
        _ => {}
    }
    // Amounts in pounds or euros are not identifiers.
    if text.get(..start).is_some_and(|t| t.ends_with(['£', '€'])) {
        return token_end(bytes, d);
    }
    let mut i = d;
    let mut overflow = false;
    let mut first_sep: Option<u8> = None;
    loop {
        let gs = i;
        while let Some(&b) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
            match n.digits.get_mut(n.n_digits) {
                Some(slot) => {
                    *slot = b;
                    n.n_digits += 1;
                }
                None => overflow = true,
            }
            i += 1;
        }
        match n.groups.get_mut(n.n_groups) {
            Some(slot) => {
                *slot = u8::try_from(i - gs).unwrap_or(u8::MAX);
                n.n_groups += 1;
            }
            None => overflow = true,
        }
        let ss = i;
        let mut flags = 0u8;
        while i - ss < 3
            && let Some(f) = bytes.get(i).copied().and_then(is_sep)
        {
            flags |= f;
            i += 1;
        }
        if i == ss || !bytes.get(i).is_some_and(u8::is_ascii_digit) || i - start > MAX_NUMERIC_BYTES
        {
            i = ss;
            break;
        }
        n.seps |= flags;
        if let Some(slot) = n.gaps.get_mut(n.n_groups - 1) {
            *slot = flags;
        }
        n.mixed_seps |= first_sep.is_some_and(|f| f != flags);
        first_sep.get_or_insert(flags);
    }
    if overflow || i - start > MAX_NUMERIC_BYTES {
        return i.max(d + 1);
    }
    let end = suffix(bytes, i, &mut n);
    if is_alnum(bytes.get(end)) {
        return token_end(bytes, end);
    }
    n.span = start..end;
    out.push(Candidate::Numeric(Box::new(n)));
    end.max(d + 1)
}

/// What directly follows a numeric candidate ending at `i`: a phone extension ("x1234") or a
/// single letter (a NIF's check letter, maybe after a dash). Returns the candidate's new end.
fn suffix(bytes: &[u8], i: usize, n: &mut Numeric) -> usize {
    let mut end = i;
    match (bytes.get(end), bytes.get(end + 1)) {
        (Some(b'x'), Some(b'0'..=b'9')) => {
            end += 1;
            while bytes.get(end).is_some_and(u8::is_ascii_digit) && end - i <= 6 {
                end += 1;
            }
            n.extension = true;
        }
        (Some(&l), next) if l.is_ascii_alphabetic() && !is_alnum(next) => {
            n.trailing_letter = Some(l.to_ascii_uppercase());
            end += 1;
        }
        (Some(b'-'), Some(&l)) if l.is_ascii_alphabetic() && !is_alnum(bytes.get(end + 2)) => {
            n.trailing_letter = Some(l.to_ascii_uppercase());
            end += 2;
        }
        _ => {}
    }
    end
}

/// Letters lead into the digit at `d`: collect the token from its word start (at most seven
/// letters back, enough for IBAN, codice fiscale and NIE), allowing single spaces between groups
/// of four as printed IBANs have them. Returns where scanning resumes.
fn alnum_token(bytes: &[u8], d: usize, out: &mut Vec<Candidate>) -> usize {
    let mut w = d;
    while w > 0 && d - w < 8 && bytes.get(w - 1).is_some_and(u8::is_ascii_alphabetic) {
        w -= 1;
    }
    let word_start = !is_alnum(w.checked_sub(1).and_then(|p| bytes.get(p)));
    if !word_start || d - w > 6 {
        return token_end(bytes, d);
    }
    // A printed IBAN stops at its country's length, so a following word is not pulled in.
    let max_len = match (d - w, bytes.get(w..w + 2)) {
        (2, Some(cc)) => validate::iban_length(&cc.to_ascii_uppercase()).unwrap_or(34),
        _ => 34,
    };
    let mut token = Vec::with_capacity(34);
    let mut i = w;
    let mut end = w;
    while token.len() < max_len {
        match bytes.get(i) {
            Some(&b) if b.is_ascii_alphanumeric() => {
                token.push(b.to_ascii_uppercase());
                i += 1;
                end = i;
            }
            Some(b' ') if is_alnum(bytes.get(i + 1)) && token.len() % 4 == 0 && d - w == 2 => {
                i += 1;
            }
            _ => break,
        }
    }
    // Only shapes that can be an identifier: IBAN (two letters, digits, 15–34 long), codice
    // fiscale (six letters, 16 long) or NIE (X/Y/Z, 9 long).
    let plausible = match d - w {
        2 => (15..=34).contains(&token.len()),
        6 => token.len() == 16,
        1 => token.len() == 9 && matches!(token.first(), Some(b'X' | b'Y' | b'Z')),
        _ => false,
    };
    if plausible {
        out.push(Candidate::Alnum {
            span: w..end,
            token,
        });
    }
    token_end(bytes, end.max(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str) -> Vec<&str> {
        candidates(text)
            .into_iter()
            .map(|c| match c {
                Candidate::Email(r) | Candidate::Ipv6(r) => &text[r],
                Candidate::Numeric(n) => &text[n.span.clone()],
                Candidate::Alnum { span, .. } => &text[span],
            })
            .collect()
    }

    #[test]
    fn finds_candidates() {
        assert_eq!(spans("mail a.b@c.co."), vec!["a.b@c.co"]);
        assert_eq!(
            spans("call +1 (555) 123-4567 now"),
            vec!["+1 (555) 123-4567"]
        );
        assert_eq!(
            spans("card 4111 1111 1111 1111."),
            vec!["4111 1111 1111 1111"]
        );
        assert_eq!(
            spans("ip 10.0.0.1, v6 fe80::1:2"),
            vec!["fe80::1:2", "10.0.0.1"]
        );
        assert_eq!(
            spans("IBAN GB82 WEST 1234 5698 7654 32 ok"),
            vec!["GB82 WEST 1234 5698 7654 32"]
        );
        assert_eq!(spans("nif 12345678Z x"), vec!["12345678Z"]);
        assert_eq!(spans("call 555-0100x42"), vec!["555-0100x42"]);
        assert!(spans("abc123 $100 100km std::vec").is_empty());
    }
}
