//! Provider rules: each is called at an anchor match and reads the token around it.

use super::generic::is_placeholder;
use super::{SecretMatch, entropy, run_end, starts_token};
use crate::finding::SecretKind;

/// Longest token any provider rule reads.
const MAX_TOKEN: usize = 512;

fn found(
    kind: SecretKind,
    rule: &'static str,
    score: f32,
    start: usize,
    end: usize,
) -> Option<SecretMatch> {
    Some(SecretMatch {
        kind,
        rule,
        score,
        range: start..end,
    })
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// A token made of `prefix` (exact case, at a token start) and a body of `class` bytes whose
/// length is within `min..=max`, not followed by another body byte. Returns the token's end.
fn prefixed(
    text: &str,
    start: usize,
    prefix: &str,
    class: impl Fn(u8) -> bool + Copy,
    min: usize,
    max: usize,
) -> Option<usize> {
    let bytes = text.as_bytes();
    let body = start + prefix.len();
    if text.get(start..body) != Some(prefix) || !starts_token(bytes, start) {
        return None;
    }
    let end = run_end(bytes, body, MAX_TOKEN, class);
    (min..=max).contains(&(end - body)).then_some(end)
}

/// Lowers the score of tokens that are documentation examples or fillers.
fn placeholder_adjusted(text: &str, start: usize, end: usize, score: f32) -> f32 {
    let token = text.as_bytes().get(start..end).unwrap_or_default();
    if is_placeholder(token) {
        score.min(0.3)
    } else {
        score
    }
}

pub(super) fn aws_key_id(text: &str, start: usize) -> Option<SecretMatch> {
    let prefix = text.get(start..start + 4)?;
    if !prefix.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let class = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let end = prefixed(text, start, prefix, class, 16, 16)?;
    let suffix = text.as_bytes().get(start + 4..end)?;
    // AKIA/ASIA keys authenticate; the other prefixes name users, roles and policies.
    let mut score = if matches!(prefix, "AKIA" | "ASIA") {
        0.95
    } else {
        0.7
    };
    // Real ids are random base32; "AKIATESTTESTTESTTEST" is not.
    if entropy(suffix) < 3.0 {
        score = 0.3;
    }
    let score = placeholder_adjusted(text, start, end, score);
    found(
        SecretKind::AwsAccessKey,
        "aws_access_key_id",
        score,
        start,
        end,
    )
}

/// The value of an `aws_secret_access_key`-style assignment: exactly 40 base64 characters.
pub(super) fn aws_secret(text: &str, value: std::ops::Range<usize>) -> Option<SecretMatch> {
    let v = text.as_bytes().get(value.clone())?;
    let class = |b: u8| alnum(b) || b == b'/' || b == b'+';
    if v.len() != 40 || !v.iter().all(|&b| class(b)) {
        return None;
    }
    let score = placeholder_adjusted(text, value.start, value.end, 0.9);
    found(
        SecretKind::AwsSecretKey,
        "aws_secret_access_key",
        score,
        value.start,
        value.end,
    )
}

/// A `"private_key"` value in a Google service-account key file: the file's `"type":
/// "service_account"` comes before it. Looking back only (never ahead) keeps the rule local,
/// which the stream scanner relies on.
pub(super) fn gcp_service_account(
    text: &str,
    value: std::ops::Range<usize>,
) -> Option<SecretMatch> {
    let bytes = text.as_bytes();
    let before = bytes.get(value.start.saturating_sub(2048)..value.start)?;
    memchr::memmem::find(before, b"\"service_account\"")?;
    found(
        SecretKind::GcpServiceAccount,
        "gcp_service_account",
        0.95,
        value.start,
        value.end,
    )
}

/// The value of `AccountKey=` / `SharedAccessKey=`, starting at `end`.
pub(super) fn azure_key(text: &str, end: usize) -> Option<SecretMatch> {
    let bytes = text.as_bytes();
    let class = |b: u8| alnum(b) || matches!(b, b'+' | b'/' | b'=');
    let value_end = run_end(bytes, end, 128, class);
    let len = value_end - end;
    if len < 30 {
        return None;
    }
    let score = if len >= 80 { 0.95 } else { 0.7 };
    let score = placeholder_adjusted(text, end, value_end, score);
    found(
        SecretKind::AzureStorageKey,
        "azure_account_key",
        score,
        end,
        value_end,
    )
}

/// The `sig=` of a SAS URL (`start` is at `sig`), when the URL also has the `sv=` version.
pub(super) fn azure_sas(
    text: &str,
    start: usize,
    value: std::ops::Range<usize>,
) -> Option<SecretMatch> {
    let bytes = text.as_bytes();
    let before = bytes.get(start.saturating_sub(400)..start)?;
    memchr::memmem::find(before, b"sv=")?;
    let class = |b: u8| alnum(b) || matches!(b, b'%' | b'+' | b'/' | b'=');
    let value_end = run_end(bytes, value.start, 256, class);
    if value_end - value.start < 20 {
        return None;
    }
    found(
        SecretKind::AzureStorageKey,
        "azure_sas_signature",
        0.8,
        value.start,
        value_end,
    )
}

pub(super) fn github(text: &str, start: usize, end: usize) -> Option<SecretMatch> {
    let prefix = text.get(start..end)?;
    let token_end = prefixed(text, start, prefix, alnum, 36, 251)?;
    let score = placeholder_adjusted(text, start, token_end, 0.95);
    found(
        SecretKind::GithubToken,
        "github_token",
        score,
        start,
        token_end,
    )
}

pub(super) fn github_pat(text: &str, start: usize, _end: usize) -> Option<SecretMatch> {
    let token_end = prefixed(
        text,
        start,
        "github_pat_",
        |b| alnum(b) || b == b'_',
        50,
        244,
    )?;
    let score = placeholder_adjusted(text, start, token_end, 0.95);
    found(
        SecretKind::GithubToken,
        "github_pat",
        score,
        start,
        token_end,
    )
}

pub(super) fn gitlab(text: &str, start: usize, _end: usize) -> Option<SecretMatch> {
    let token_end = prefixed(text, start, "glpat-", b64url, 20, 100)?;
    let score = placeholder_adjusted(text, start, token_end, 0.95);
    found(
        SecretKind::GitlabToken,
        "gitlab_pat",
        score,
        start,
        token_end,
    )
}

pub(super) fn slack(text: &str, start: usize, end: usize) -> Option<SecretMatch> {
    let prefix = text.get(start..end)?;
    let token_end = prefixed(text, start, prefix, |b| alnum(b) || b == b'-', 10, 250)?;
    let body = text.as_bytes().get(end..token_end)?;
    if !body.iter().any(u8::is_ascii_digit) {
        return None;
    }
    let score = placeholder_adjusted(text, start, token_end, 0.95);
    found(
        SecretKind::SlackToken,
        "slack_token",
        score,
        start,
        token_end,
    )
}

/// `https://hooks.slack.com/services/…`, found at its `://` (at `at`).
pub(super) fn slack_webhook(text: &str, at: usize) -> Option<SecretMatch> {
    let bytes = text.as_bytes();
    let host = b"hooks.slack.com/services/";
    if !bytes.get(at + 3..)?.starts_with(host) {
        return None;
    }
    let path_start = at + 3 + host.len();
    let path_end = run_end(bytes, path_start, 128, |b| {
        alnum(b) || b == b'/' || b == b'_'
    });
    if path_end - path_start < 20 {
        return None;
    }
    let url_start = at.saturating_sub(5);
    let url_start = if bytes.get(url_start..at) == Some(b"https") {
        url_start
    } else {
        at
    };
    found(
        SecretKind::SlackWebhook,
        "slack_webhook",
        0.9,
        url_start,
        path_end,
    )
}

pub(super) fn stripe(text: &str, start: usize, end: usize) -> Option<SecretMatch> {
    let prefix = text.get(start..end)?;
    let token_end = prefixed(text, start, prefix, alnum, 20, 247)?;
    // Test-mode keys reach no money but still open the account's test data.
    let score = if prefix.contains("live") { 0.95 } else { 0.5 };
    let score = placeholder_adjusted(text, start, token_end, score);
    found(SecretKind::StripeKey, "stripe_key", score, start, token_end)
}

pub(super) fn stripe_webhook(text: &str, start: usize, _end: usize) -> Option<SecretMatch> {
    let token_end = prefixed(text, start, "whsec_", alnum, 24, 100)?;
    let score = placeholder_adjusted(text, start, token_end, 0.85);
    found(
        SecretKind::StripeKey,
        "stripe_webhook_secret",
        score,
        start,
        token_end,
    )
}

pub(super) fn anthropic(text: &str, start: usize, _end: usize) -> Option<SecretMatch> {
    let token_end = prefixed(text, start, "sk-ant-", b64url, 20, 250)?;
    let score = placeholder_adjusted(text, start, token_end, 0.95);
    found(
        SecretKind::AnthropicKey,
        "anthropic_key",
        score,
        start,
        token_end,
    )
}

pub(super) fn openai_project(text: &str, start: usize, end: usize) -> Option<SecretMatch> {
    let prefix = text.get(start..end)?;
    let token_end = prefixed(text, start, prefix, b64url, 20, 250)?;
    let score = placeholder_adjusted(text, start, token_end, 0.95);
    found(SecretKind::OpenaiKey, "openai_key", score, start, token_end)
}

pub(super) fn openai_legacy(text: &str, start: usize, _end: usize) -> Option<SecretMatch> {
    let rest = text.get(start + 3..)?;
    if ["ant-", "proj-", "svcacct-", "admin-"]
        .iter()
        .any(|p| rest.starts_with(p))
    {
        return None;
    }
    let token_end = prefixed(text, start, "sk-", alnum, 32, 200)?;
    let body = text.get(start + 3..token_end)?;
    let mixed = body.bytes().any(|b| b.is_ascii_uppercase())
        && body.bytes().any(|b| b.is_ascii_lowercase());
    if !mixed {
        return None;
    }
    // "T3BlbkFJ" is base64 for "OpenAI"; classic OpenAI keys carry it in the middle.
    let score = if body.contains("T3BlbkFJ") { 0.9 } else { 0.7 };
    let score = placeholder_adjusted(text, start, token_end, score);
    found(SecretKind::OpenaiKey, "openai_key", score, start, token_end)
}

pub(super) fn huggingface(text: &str, start: usize, _end: usize) -> Option<SecretMatch> {
    let token_end = prefixed(text, start, "hf_", alnum, 30, 40)?;
    let body = text.as_bytes().get(start + 3..token_end)?;
    let mixed = body.iter().any(u8::is_ascii_uppercase) && body.iter().any(u8::is_ascii_lowercase);
    if !mixed || entropy(body) < 3.5 {
        return None;
    }
    let score = placeholder_adjusted(text, start, token_end, 0.9);
    found(
        SecretKind::HuggingfaceToken,
        "huggingface_token",
        score,
        start,
        token_end,
    )
}

pub(super) fn jwt(text: &str, start: usize) -> Option<SecretMatch> {
    let bytes = text.as_bytes();
    if text.get(start..start + 3) != Some("eyJ") || !starts_token(bytes, start) {
        return None;
    }
    let header_end = run_end(bytes, start, 4096, b64url);
    if header_end - start < 10 || bytes.get(header_end) != Some(&b'.') {
        return None;
    }
    let payload_end = run_end(bytes, header_end + 1, 16384, b64url);
    if payload_end - header_end < 3 || bytes.get(payload_end) != Some(&b'.') {
        return None;
    }
    let sig_end = run_end(bytes, payload_end + 1, 4096, b64url);
    let header = crate::normalise::base64_decode(bytes.get(start..header_end)?)?;
    let header = std::str::from_utf8(&header).ok()?;
    if !(header.trim_start().starts_with('{') && header.contains("\"alg\"")) {
        return None;
    }
    // Without a signature ("alg": "none") the token proves nothing, but its claims still leak.
    let score = if sig_end > payload_end + 1 { 0.9 } else { 0.7 };
    found(SecretKind::Jwt, "jwt", score, start, sig_end)
}

/// A PEM private key from its `-----BEGIN ` at `start`; `footers` are the positions of every
/// `-----END ` in the text, ascending.
pub(super) fn pem(text: &str, start: usize, end: usize, footers: &[usize]) -> Option<SecretMatch> {
    let bytes = text.as_bytes();
    if text.get(start..end) != Some("-----BEGIN ") {
        return None;
    }
    let label_len = memchr::memmem::find(bytes.get(end..(end + 60).min(bytes.len()))?, b"-----")?;
    let label = text.get(end..end + label_len)?;
    if !label.ends_with("PRIVATE KEY") && label != "PGP PRIVATE KEY BLOCK" {
        return None;
    }
    let header_end = end + label_len + 5;
    let window = bytes.get(header_end..(header_end + 16384).min(bytes.len()))?;
    let next_footer = footers
        .get(footers.partition_point(|&f| f < header_end))
        .filter(|&&f| f < header_end + window.len());
    if let Some(&footer) = next_footer {
        let footer_end = memchr::memmem::find(bytes.get(footer + 9..)?, b"-----")
            .map_or(footer + 9, |e| footer + 9 + e + 5);
        let body = bytes.get(header_end..footer)?;
        let b64 = body.iter().filter(|b| b.is_ascii_alphanumeric()).count();
        let score = if b64 >= 40 { 0.95 } else { 0.7 };
        return found(
            SecretKind::PrivateKey,
            "pem_private_key",
            score,
            start,
            footer_end,
        );
    }
    // No footer (yet): the key is the header and the base64 lines that follow it, so a key
    // cut off, or still streaming, is covered up to where it stops.
    let body_end = pem_body_end(bytes, header_end, window.len());
    found(
        SecretKind::PrivateKey,
        "pem_private_key",
        0.85,
        start,
        body_end,
    )
}

/// The end of the base64 (and `Name: value` header) lines after a PEM header.
fn pem_body_end(bytes: &[u8], from: usize, max: usize) -> usize {
    let mut end = from;
    let mut i = from;
    while i - from < max {
        let line_start = i;
        while matches!(bytes.get(i), Some(b'\r' | b'\n')) {
            i += 1;
        }
        let content = i;
        i = run_end(bytes, i, max, |b| b != b'\n' && b != b'\r');
        let line = bytes.get(content..i).unwrap_or_default();
        let base64 = line
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        let header = line.contains(&b':') && line.len() < 80;
        if line.is_empty() || !(base64 || header) || line_start == i {
            break;
        }
        end = i;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_checks_boundaries_and_length() {
        assert_eq!(prefixed("x ghp_abc", 2, "ghp_", alnum, 3, 5), Some(9));
        assert_eq!(prefixed("xghp_abc", 1, "ghp_", alnum, 3, 5), None);
        assert_eq!(prefixed("x ghp_abcdef", 2, "ghp_", alnum, 3, 5), None);
        assert_eq!(prefixed("x GHP_abc", 2, "ghp_", alnum, 3, 5), None);
    }
}
