//! Output-side detectors: links that could carry data out (`exfiltration`), `data:` URLs,
//! canary leaks (`system_prompt_leak`) and operator-banned text (`banned`).
//!
//! The classic exfiltration is a markdown image whose URL points at the attacker's host with the
//! stolen text in the query string: the client renders the image and sends the request itself.
//! So images and auto-loading HTML (`<img>`, `<iframe>`, …) to hosts outside the allowlist score
//! high even without visible data, plain links only when the URL carries data, and bare URLs
//! lower still.

mod banned;
mod canary;
mod url;

pub use banned::{BannedConfig, BannedDetector, BannedTopic};
pub use canary::CanaryDetector;
pub use url::HostAllowlist;

use std::ops::Range;

use crate::finding::{Category, Detector, Finding, ScanInput};

/// How a URL is used, which decides how much a foreign host matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Use {
    /// Markdown image.
    MarkdownImage,
    /// HTML element that the client fetches by itself (`img`, `iframe`, `script`, …).
    HtmlAutoload,
    /// Markdown link: fetched only when the user clicks.
    MarkdownLink,
    /// HTML anchor.
    HtmlLink,
    /// A URL in running text.
    Bare,
}

/// One link finding in a view's text.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkMatch {
    /// `Exfiltration`, or `Obfuscation` for `data:` URLs.
    pub category: Category,
    /// The rule, e.g. `markdown_image`.
    pub rule: &'static str,
    /// Confidence in `0.0..=1.0`.
    pub score: f32,
    /// The URL's byte range in the scanned text.
    pub range: Range<usize>,
}

/// Finds links to hosts outside an allowlist. Build once per configuration.
#[derive(Clone, Debug)]
pub struct LinkDetector {
    allowlist: HostAllowlist,
}

impl LinkDetector {
    /// A detector that treats every host outside `allowlist` as foreign.
    pub fn new(allowlist: HostAllowlist) -> Self {
        Self { allowlist }
    }

    /// Finds risky links in one text. Every construct is found from one of three bytes that
    /// are rare in prose: `]` (markdown `](`), `<` (HTML tags) and `:` (`://` and `data:`), so
    /// the search runs at memchr speed.
    pub fn scan_text(&self, text: &str) -> Vec<LinkMatch> {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut covered = 0;
        for at in memchr::memchr3_iter(b']', b'<', b':', bytes) {
            if at < covered {
                continue;
            }
            let found = match bytes.get(at) {
                Some(b']') if bytes.get(at + 1) == Some(&b'(') => {
                    let usage = if is_image(bytes, at) {
                        Use::MarkdownImage
                    } else {
                        Use::MarkdownLink
                    };
                    markdown(bytes, at, usage)
                }
                Some(b'<') => tag_use(bytes, at).and_then(|usage| html_tag(text, at, usage)),
                Some(b':') if bytes.get(at + 1..at + 3) == Some(b"//") => {
                    scheme_start(bytes, at).and_then(|s| bare_url(bytes, s))
                }
                Some(b':')
                    if at >= 4
                        && bytes
                            .get(at - 4..at)
                            .is_some_and(|d| d.eq_ignore_ascii_case(b"data")) =>
                {
                    data_url(bytes, at - 4)
                }
                _ => None,
            };
            if let Some((url, end, usage)) = found {
                covered = end;
                out.extend(self.classify(text, url, usage));
            }
        }
        out
    }

    fn classify(&self, text: &str, range: Range<usize>, usage: Use) -> Option<LinkMatch> {
        let url = text.get(range.clone())?;
        if url
            .get(..5)
            .is_some_and(|s| s.eq_ignore_ascii_case("data:"))
        {
            // Inline content: nothing leaves, but it can hide what the text says.
            let score = if usage == Use::Bare { 0.5 } else { 0.6 };
            return Some(LinkMatch {
                category: Category::Obfuscation,
                rule: "data_url",
                score,
                range,
            });
        }
        let parts = url::parse(url)?;
        if self.allowlist.allows(&parts.host) {
            return None;
        }
        let w = url::data_weight(&parts);
        let (rule, score) = match usage {
            Use::MarkdownImage => ("markdown_image", 0.7 + 0.25 * w),
            Use::HtmlAutoload => ("html_autoload", 0.7 + 0.25 * w),
            Use::MarkdownLink if w >= 0.6 => ("markdown_link", 0.4 + 0.3 * w),
            Use::HtmlLink if w >= 0.6 => ("html_link", 0.4 + 0.3 * w),
            Use::Bare if w >= 0.6 => ("url_with_data", 0.35 + 0.25 * w),
            _ => return None,
        };
        Some(LinkMatch {
            category: Category::Exfiltration,
            rule,
            score,
            range,
        })
    }
}

impl Detector for LinkDetector {
    fn name(&self) -> &'static str {
        "output"
    }

    fn scan(&self, input: &ScanInput<'_>, out: &mut Vec<Finding>) {
        for view in input.normalised.pattern_views() {
            for m in self.scan_text(&view.text) {
                let span = view.to_original(m.range);
                out.push(Finding {
                    category: m.category,
                    detector: "output",
                    rule: m.rule,
                    score: m.score,
                    start: span.start,
                    end: span.end,
                });
            }
        }
    }
}

/// Longest URL read; longer ones are cut here (still long enough to be judged).
const MAX_URL: usize = 8192;

fn url_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i - start < MAX_URL
        && bytes.get(i).is_some_and(|&b| {
            !b.is_ascii_whitespace() && !matches!(b, b'<' | b'>' | b'"' | b'\'' | b'`')
        })
    {
        i += 1;
    }
    i
}

/// Whether the `]` at `close` ends the alt text of a markdown image (`![alt](…)`): the
/// matching `[` on the same stretch of text is preceded by `!`.
fn is_image(bytes: &[u8], close: usize) -> bool {
    let window_start = close.saturating_sub(1024);
    let Some(window) = bytes.get(window_start..close) else {
        return false;
    };
    let mut depth = 0usize;
    for (k, &b) in window.iter().enumerate().rev() {
        match b {
            b']' => depth += 1,
            b'[' if depth > 0 => depth -= 1,
            b'[' => {
                let open = window_start + k;
                return open > 0 && bytes.get(open - 1) == Some(&b'!');
            }
            b'\n' if window.get(k.wrapping_sub(1)) == Some(&b'\n') => return false,
            _ => {}
        }
    }
    false
}

/// `[text](url "title")` with `close` at the `](`: the URL range, where the construct ends and
/// how the URL is used.
fn markdown(bytes: &[u8], close: usize, usage: Use) -> Option<(Range<usize>, usize, Use)> {
    let mut start = close + 2;
    while matches!(bytes.get(start), Some(b' ' | b'<')) {
        start += 1;
    }
    let mut end = url_end(bytes, start);
    // A markdown URL ends at the closing parenthesis (balanced ones belong to the URL).
    let mut depth = 0i32;
    for (k, &b) in bytes.get(start..end)?.iter().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' if depth == 0 => {
                end = start + k;
                break;
            }
            b')' => depth -= 1,
            _ => {}
        }
    }
    let close = memchr::memchr(b')', bytes.get(end..(end + 256).min(bytes.len()))?)
        .map_or(end, |k| end + k + 1);
    (end > start).then_some((start..end, close, usage))
}

/// The scheme before the `://` at `at`: `http` or `https` (any case).
fn scheme_start(bytes: &[u8], at: usize) -> Option<usize> {
    let is = |n: usize, s: &[u8]| {
        at >= n
            && bytes
                .get(at - n..at)
                .is_some_and(|b| b.eq_ignore_ascii_case(s))
            && !bytes
                .get(at.wrapping_sub(n + 1))
                .is_some_and(u8::is_ascii_alphanumeric)
    };
    if is(5, b"https") {
        Some(at - 5)
    } else if is(4, b"http") {
        Some(at - 4)
    } else {
        None
    }
}

/// How an HTML element at `<` uses its URL, for the elements that have one.
fn tag_use(bytes: &[u8], lt: usize) -> Option<Use> {
    const AUTOLOAD: &[&[u8]] = &[
        b"img", b"iframe", b"script", b"video", b"audio", b"source", b"embed", b"object",
    ];
    let name_end = run_end_alpha(bytes, lt + 1);
    let name = bytes.get(lt + 1..name_end)?;
    if !matches!(
        bytes.get(name_end),
        Some(b' ' | b'\t' | b'\n' | b'/' | b'>')
    ) {
        return None;
    }
    if AUTOLOAD.iter().any(|t| name.eq_ignore_ascii_case(t)) {
        Some(Use::HtmlAutoload)
    } else if name.eq_ignore_ascii_case(b"a") {
        Some(Use::HtmlLink)
    } else {
        None
    }
}

fn run_end_alpha(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_alphabetic) {
        i += 1;
    }
    i
}

fn bare_url(bytes: &[u8], start: usize) -> Option<(Range<usize>, usize, Use)> {
    let mut end = url_end(bytes, start);
    // Trailing punctuation belongs to the sentence, and a ")" to an enclosing parenthesis
    // unless the URL opened one.
    while end > start {
        let b = bytes.get(end - 1).copied().unwrap_or(b' ');
        let opened = bytes.get(start..end).is_some_and(|u| u.contains(&b'('));
        if matches!(b, b'.' | b',' | b';' | b':' | b'!' | b'?' | b'*') || b == b')' && !opened {
            end -= 1;
        } else {
            break;
        }
    }
    (end > start + 8).then_some((start..end, end, Use::Bare))
}

fn data_url(bytes: &[u8], start: usize) -> Option<(Range<usize>, usize, Use)> {
    let prev = start.checked_sub(1).and_then(|p| bytes.get(p));
    if prev.is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    // "data:" must be followed by a media type ("image/png") or directly by ";base64," / ",".
    let after = bytes.get(start + 5..(start + 5 + 64).min(bytes.len()))?;
    let mime_end = after
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'+' | b'-')))?;
    let mime = after.get(..mime_end)?;
    let delim = after.get(mime_end)?;
    if !(mime.is_empty() || mime.contains(&b'/')) || !matches!(delim, b';' | b',') {
        return None;
    }
    let end = url_end(bytes, start);
    Some((start..end, end, Use::Bare))
}

/// An HTML element at `start` (`<img …>`): the `src` (or `href`, `data`) attribute's value.
fn html_tag(text: &str, start: usize, usage: Use) -> Option<(Range<usize>, usize, Use)> {
    let bytes = text.as_bytes();
    let window = bytes.get(start..(start + 2048).min(bytes.len()))?;
    let close = start + memchr::memchr(b'>', window).unwrap_or(window.len());
    let tag = bytes.get(start..close)?.to_ascii_lowercase();
    let attrs: &[&[u8]] = match usage {
        Use::HtmlLink => &[b"href="],
        _ => &[b"src=", b"data=", b"poster=", b"href="],
    };
    let at = attrs.iter().find_map(|a| {
        memchr::memmem::find_iter(&tag, a)
            .find(|&k| {
                tag.get(k.wrapping_sub(1))
                    .is_none_or(|b| b.is_ascii_whitespace())
            })
            .map(|k| k + a.len())
    })?;
    let mut vstart = start + at;
    let quote = bytes
        .get(vstart)
        .copied()
        .filter(|&q| q == b'"' || q == b'\'');
    if quote.is_some() {
        vstart += 1;
    }
    let vend = match quote {
        Some(q) => vstart + memchr::memchr(q, bytes.get(vstart..close)?)?,
        None => url_end(bytes, vstart).min(close),
    };
    (vend > vstart).then_some((vstart..vend, close, usage))
}

#[cfg(test)]
mod tests;
