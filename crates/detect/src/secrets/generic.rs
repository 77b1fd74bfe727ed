//! Generic rules: keyword assignments (`password = …`), bearer tokens, URLs with passwords and
//! long high-entropy tokens, with the placeholder and code-reference exclusions they share.

use std::ops::Range;

use super::{SecretMatch, entropy, run_end};
use crate::finding::SecretKind;

/// Longest value read after an assignment.
const MAX_VALUE: usize = 512;

/// Values that only stand in for a secret. Lowercase; matched as substrings.
const PLACEHOLDER_PARTS: &[&str] = &[
    "xxxx",
    "****",
    "...",
    "${",
    "{{",
    "}}",
    "<",
    ">",
    "%(",
    "$(",
    "example",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "redacted",
    "your_",
    "your-",
    "yourpassword",
    "dummy",
    "sample",
    "replace_me",
    "replaceme",
    "todo",
    "fixme",
    "insert",
    "process.env",
    "os.environ",
    "getenv",
];
/// Values that are placeholders when they are the whole value. Lowercase.
const PLACEHOLDER_WORDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "test",
    "none",
    "null",
    "nil",
    "true",
    "false",
    "undefined",
    "empty",
    "string",
    "str",
    "required",
    "optional",
    "hidden",
    "masked",
    "n/a",
    "tbd",
    "bearer",
    "foo",
    "bar",
    "key",
    "value",
];

/// Whether `v` is a stand-in rather than a real value.
pub(crate) fn is_placeholder(v: &[u8]) -> bool {
    let lower = v.to_ascii_lowercase();
    let s = String::from_utf8_lossy(&lower);
    PLACEHOLDER_WORDS.contains(&s.as_ref())
        || PLACEHOLDER_PARTS.iter().any(|p| s.contains(p))
        || matches!(lower.first(), Some(b'$' | b'%' | b'@' | b'&' | b'*'))
        || lower.windows(2).all(|w| w[0] == w[1])
}

/// Reads `= value`, `: value`, `:= value` or `=> value` after a name ending at `from`, skipping
/// the name's closing quote and a YAML tag. Returns the value's range and whether it was quoted.
pub(crate) fn assignment_value(bytes: &[u8], from: usize) -> Option<(Range<usize>, bool)> {
    let mut i = from;
    let skip_spaces = |mut i: usize| {
        while matches!(bytes.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        i
    };
    if matches!(bytes.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    i = skip_spaces(i);
    match (bytes.get(i), bytes.get(i + 1)) {
        (Some(b':'), Some(b'=')) | (Some(b'='), Some(b'>' | b'=')) => i += 2,
        // "::" is a path separator, not an assignment.
        (Some(b':'), Some(b':')) => return None,
        (Some(b'=' | b':'), _) => i += 1,
        _ => return None,
    }
    i = skip_spaces(i);
    if bytes.get(i..i + 2) == Some(b"!!") {
        i = skip_spaces(run_end(bytes, i, 32, |b| !b.is_ascii_whitespace()));
    }
    match bytes.get(i) {
        Some(&q @ (b'"' | b'\'' | b'`')) => {
            let close = bytes
                .get(i + 1..(i + 1 + MAX_VALUE).min(bytes.len()))?
                .iter()
                .position(|&b| b == q || b == b'\n')?;
            (bytes.get(i + 1 + close) == Some(&q)).then_some((i + 1..i + 1 + close, true))
        }
        Some(_) => {
            let end = run_end(bytes, i, MAX_VALUE, |b| {
                !b.is_ascii_whitespace()
                    && !matches!(b, b',' | b';' | b')' | b'}' | b']' | b'"' | b'\'' | b'`')
            });
            (end > i).then_some((i..end, false))
        }
        None => None,
    }
}

/// Name endings that describe a secret rather than hold one (`token_url`, `key_id`, …).
const META_SUFFIXES: &[&str] = &[
    "id", "ids", "name", "file", "path", "url", "uri", "type", "length", "len", "size", "count",
    "field", "label", "hint", "prompt", "policy", "format", "header", "endpoint", "ref", "expiry",
    "expires", "ttl", "timeout", "min", "max", "index", "column", "provider", "version", "mode",
    "method", "enabled", "required", "tokens",
];

/// Names holding one of these (in any part) label a secret.
const STRONG_KEYWORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "accesskey",
    "access_key",
    "privatekey",
    "private_key",
    "credential",
];
/// Name parts that label a secret only when the value looks random.
const WEAK_KEYWORDS: &[&str] = &["key", "auth", "pass", "pw"];
/// Ordinary words that contain a strong keyword.
const FALSE_FRIENDS: &[&str] = &[
    "secretary",
    "secretaries",
    "secretariat",
    "tokenizer",
    "tokenizers",
    "tokenize",
    "tokenization",
    "tokenized",
];

fn ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Splits a name into its parts at `_`, `.`, `-` and lower-to-upper case changes, lowercased.
fn name_parts(name: &[u8]) -> Vec<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = vec![Vec::new()];
    let mut prev_lower = false;
    for &b in name {
        if matches!(b, b'_' | b'.' | b'-') {
            parts.push(Vec::new());
            prev_lower = false;
            continue;
        }
        if b.is_ascii_uppercase() && prev_lower {
            parts.push(Vec::new());
        }
        prev_lower = b.is_ascii_lowercase() || b.is_ascii_digit();
        if let Some(last) = parts.last_mut() {
            last.push(b.to_ascii_lowercase());
        }
    }
    parts.retain(|p| !p.is_empty());
    parts
}

/// The assignment whose operator (`=` or `:`) is at `op`: reads the name before it and the
/// value after it, and applies the rule the name calls for.
pub(crate) fn assignment(text: &str, op: usize) -> Option<SecretMatch> {
    let bytes = text.as_bytes();
    // "::" and "://" are paths and URLs; "==" and "!=" are handled at their first byte.
    if bytes.get(op) == Some(&b':') && matches!(bytes.get(op + 1), Some(b':' | b'/')) {
        return None;
    }
    let mut name_end = op;
    while name_end > 0 && matches!(bytes.get(name_end - 1), Some(b' ' | b'\t')) {
        name_end -= 1;
    }
    if name_end > 0 && matches!(bytes.get(name_end - 1), Some(b'"' | b'\'')) {
        name_end -= 1;
    }
    let mut name_start = name_end;
    while name_start > 0
        && name_end - name_start < 64
        && bytes.get(name_start - 1).copied().is_some_and(ident)
    {
        name_start -= 1;
    }
    if name_start == name_end {
        return None;
    }
    let name = bytes.get(name_start..name_end)?;
    let (value, quoted) = assignment_value(bytes, name_end)?;
    let v = bytes.get(value.clone())?;
    let lower = name.to_ascii_lowercase();
    let has = |k: &[u8]| memchr::memmem::find(&lower, k).is_some();
    if has(b"accountkey") || has(b"sharedaccesskey") {
        return super::rules::azure_key(text, value.start);
    }
    if lower == b"sig"
        && matches!(
            name_start.checked_sub(1).and_then(|p| bytes.get(p)),
            Some(b'?' | b'&')
        )
    {
        return super::rules::azure_sas(text, name_start, value);
    }
    if lower == b"private_key"
        && quoted
        && let Some(m) = super::rules::gcp_service_account(text, value.clone())
    {
        return Some(m);
    }
    // An unquoted value stops at the space, so the scheme is read from the text itself.
    let scheme = |s: &[u8]| {
        bytes
            .get(value.start..value.start + s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s))
    };
    if scheme(b"bearer ") {
        return bearer(text, value.start + 7);
    }
    if scheme(b"basic ") {
        return basic_auth(text, value.start + 6);
    }
    if (has(b"aws_secret") || has(b"secret_access_key") || has(b"secretaccesskey"))
        && let Some(m) = super::rules::aws_secret(text, value.clone())
    {
        return Some(m);
    }
    keyword(&lower, name, value, v, quoted)
}

/// A `name = value` whose name holds a keyword. Strong keywords (password, token, …) accept any
/// real-looking literal; weak ones (key, auth, pass) need a long, high-entropy value.
fn keyword(
    lower: &[u8],
    name: &[u8],
    value: Range<usize>,
    v: &[u8],
    quoted: bool,
) -> Option<SecretMatch> {
    let parts = name_parts(name);
    let strong = parts.iter().any(|p| {
        !FALSE_FRIENDS.iter().any(|f| p.as_slice() == f.as_bytes())
            && STRONG_KEYWORDS
                .iter()
                .any(|k| memchr::memmem::find(p, k.as_bytes()).is_some())
    });
    let weak = parts
        .iter()
        .any(|p| WEAK_KEYWORDS.iter().any(|k| p.as_slice() == k.as_bytes()));
    if !strong && !weak {
        return None;
    }
    let last_part = parts.last().map(Vec::as_slice).unwrap_or_default();
    let meta = META_SUFFIXES.iter().any(|s| last_part == s.as_bytes());
    if meta || memchr::memmem::find(lower, b"foreign_key").is_some() {
        return None;
    }
    let score = value_score(v, quoted, strong)?;
    let rule = if strong {
        "keyword_assignment"
    } else {
        "weak_keyword_assignment"
    };
    Some(SecretMatch {
        kind: SecretKind::GenericAssignment,
        rule,
        score,
        range: value,
    })
}

/// Whether an unquoted value is code rather than data: a variable, attribute or module path
/// (`self.password`, `pkg.main:entry`) or a call.
fn is_code_ref(v: &[u8]) -> bool {
    let identifier = v
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && v.iter()
            .all(|&b| b.is_ascii_alphabetic() || matches!(b, b'_' | b'.' | b':'));
    identifier || v.iter().any(|&b| matches!(b, b'(' | b'['))
}

fn classes(v: &[u8]) -> usize {
    let has = |f: fn(&u8) -> bool| usize::from(v.iter().any(f));
    has(u8::is_ascii_lowercase)
        + has(u8::is_ascii_uppercase)
        + has(u8::is_ascii_digit)
        + has(|b| b.is_ascii_punctuation())
}

fn value_score(v: &[u8], quoted: bool, strong: bool) -> Option<f32> {
    if v.len() < 4 || is_placeholder(v) || !quoted && is_code_ref(v) {
        return None;
    }
    // Secrets are single tokens; a value with spaces is prose ("Large softbox (left)"). A
    // passphrase may hold one space, so strong keywords allow one.
    let spaces = v.iter().filter(|b| b.is_ascii_whitespace()).count();
    if spaces > usize::from(strong) {
        return None;
    }
    let (h, len, c) = (entropy(v), v.len(), classes(v));
    if strong {
        Some(if h >= 3.5 && len >= 16 {
            0.85
        } else if quoted || c >= 2 {
            0.7
        } else {
            0.4
        })
    } else if len >= 16 && h >= 3.5 && c >= 2 {
        Some(if quoted { 0.65 } else { 0.6 })
    } else {
        None
    }
}

/// `Bearer <token>`, as in an `Authorization` header.
pub(crate) fn bearer(text: &str, end: usize) -> Option<SecretMatch> {
    let bytes = text.as_bytes();
    let class = |b: u8| {
        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'+' | b'/' | b'=' | b'-')
    };
    let token_end = run_end(bytes, end, MAX_VALUE, class);
    let token = bytes.get(end..token_end)?;
    if token.len() < 16 || entropy(token) < 3.0 || is_placeholder(token) {
        return None;
    }
    Some(SecretMatch {
        kind: SecretKind::GenericAssignment,
        rule: "bearer_token",
        score: 0.85,
        range: end..token_end,
    })
}

/// `Basic <base64 of user:password>`, as in an `Authorization` header.
fn basic_auth(text: &str, start: usize) -> Option<SecretMatch> {
    let bytes = text.as_bytes();
    let end = run_end(bytes, start, MAX_VALUE, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
    });
    let decoded = crate::normalise::base64_decode(bytes.get(start..end)?)?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let password = decoded.get(colon + 1..)?;
    if password.is_empty()
        || is_placeholder(password)
        || !decoded.iter().all(|b| b.is_ascii_graphic())
    {
        return None;
    }
    Some(SecretMatch {
        kind: SecretKind::GenericAssignment,
        rule: "basic_auth",
        score: 0.85,
        range: start..end,
    })
}

const DB_SCHEMES: &[&str] = &[
    "postgres",
    "postgresql",
    "mysql",
    "mariadb",
    "mongodb",
    "mongodb+srv",
    "redis",
    "rediss",
    "amqp",
    "amqps",
    "mssql",
    "sqlserver",
    "clickhouse",
    "cockroachdb",
    "neo4j",
    "couchdb",
    "cassandra",
    "memcached",
    "oracle",
];

/// `scheme://user:password@host`; database and broker schemes are `database_url`, others
/// (http, ftp, …) a generic credential.
pub(crate) fn url_credentials(text: &str, at: usize) -> Option<SecretMatch> {
    let bytes = text.as_bytes();
    let mut s = at;
    while s > 0
        && at - s < 20
        && bytes
            .get(s - 1)
            .is_some_and(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        s -= 1;
    }
    let scheme = text.get(s..at)?.to_ascii_lowercase();
    if scheme.is_empty()
        || !scheme
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphabetic)
    {
        return None;
    }
    let user_start = at + 3;
    let stop = |b: u8| {
        b.is_ascii_whitespace()
            || matches!(b, b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'@')
    };
    let at_sign = run_end(bytes, user_start, 256, |b| !stop(b));
    if bytes.get(at_sign) != Some(&b'@') {
        return None;
    }
    let userinfo = bytes.get(user_start..at_sign)?;
    let colon = userinfo.iter().position(|&b| b == b':')?;
    let password = userinfo.get(colon + 1..)?;
    let host_end = run_end(bytes, at_sign + 1, 256, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b',' | b'_')
    });
    if password.is_empty() || host_end == at_sign + 1 {
        return None;
    }
    let db = DB_SCHEMES.contains(&scheme.as_str());
    let mut score = if db { 0.9 } else { 0.8 };
    if is_placeholder(password) || password.len() < 3 {
        score = 0.3;
    }
    let (kind, rule) = if db {
        (SecretKind::DatabaseUrl, "database_url")
    } else {
        (SecretKind::GenericAssignment, "url_credentials")
    };
    Some(SecretMatch {
        kind,
        rule,
        score,
        range: s..host_end,
    })
}

const fn token_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'_' | b'-');
        b += 1;
    }
    t
}
const TOKEN_BYTES: [bool; 256] = token_table();

/// Token bytes; `=` only counts as trailing padding, so `name=value` splits at the `=`.
pub(crate) fn token_byte(b: u8) -> bool {
    TOKEN_BYTES[usize::from(b)]
}

/// Whether the token at `start` is the value of an assignment or a quoted literal.
fn is_assigned(bytes: &[u8], start: usize) -> bool {
    let mut i = start;
    while i > 0 && matches!(bytes.get(i - 1), Some(b' ' | b'\t' | b'"' | b'\'' | b'`')) {
        i -= 1;
    }
    matches!(
        i.checked_sub(1).and_then(|p| bytes.get(p)),
        Some(b'=' | b':')
    )
}

/// A long token (a maximal run of token bytes) with high entropy that no other rule explained:
/// likely a key. Scored low unless assigned, since hashes, ids and encoded data share the shape.
pub(crate) fn high_entropy(text: &str, run: Range<usize>, out: &mut Vec<SecretMatch>) {
    let bytes = text.as_bytes();
    if run.len() < 20 || run.len() > 1024 {
        return;
    }
    let end = run_end(bytes, run.end, 2, |b| b == b'=');
    let token = bytes.get(run.start..end).unwrap_or_default();
    if let Some(score) = entropy_score(token, is_assigned(bytes, run.start)) {
        out.push(SecretMatch {
            kind: SecretKind::GenericAssignment,
            rule: "high_entropy_string",
            score,
            range: run.start..end,
        });
    }
}

/// Words joined by separators ("Critical/High/Low", "HotKeyManager-v2"): every part is a
/// word (capitalised, lower, upper or CamelCase) or a short number.
fn is_word_compound(token: &[u8]) -> bool {
    token
        .split(|&b| matches!(b, b'/' | b'-' | b'_' | b'+' | b'='))
        .filter(|p| !p.is_empty())
        .all(|part| {
            let short_number = part.len() <= 4 && part.iter().all(u8::is_ascii_digit);
            let upper = part.iter().all(u8::is_ascii_uppercase);
            // CamelCase or plain words: an upper-case letter only starts a run of lower case.
            let camel = part.iter().all(u8::is_ascii_alphabetic)
                && part
                    .windows(2)
                    .all(|w| !(w[0].is_ascii_uppercase() && w[1].is_ascii_uppercase()))
                && part.iter().filter(|b| b.is_ascii_lowercase()).count() * 2 >= part.len();
            short_number || upper || camel
        })
}

fn entropy_score(token: &[u8], assigned: bool) -> Option<f32> {
    let is_uuid = token.len() == 36
        && token.iter().enumerate().all(|(k, &b)| {
            if matches!(k, 8 | 13 | 18 | 23) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        });
    if is_uuid || is_placeholder(token) {
        return None;
    }
    let h = entropy(token);
    let hex = token.iter().all(u8::is_ascii_hexdigit);
    if hex {
        // Hex digests (git ids, checksums) are everywhere; they never pass the threshold alone.
        return (token.len() >= 32 && h >= 3.0).then_some(if assigned { 0.45 } else { 0.3 });
    }
    // Random base64 of n characters has entropy near log2(n) up to 6 bits, and nearly always
    // mixes upper case, lower case and digits; words and identifiers do not.
    let bound = (token.len() as f32).log2().min(6.0);
    let mixed = [
        u8::is_ascii_lowercase,
        u8::is_ascii_uppercase,
        u8::is_ascii_digit,
    ]
    .iter()
    .all(|f| token.iter().any(f));
    if !mixed || h < 0.8 * bound || h < 3.7 || is_word_compound(token) {
        return None;
    }
    Some(if assigned { 0.55 } else { 0.4 })
}
