//! Minimal URL reading for the link detector: the host (for the allowlist) and whether the URL
//! carries data out in its path or query. Not a general URL parser; it only needs to be right
//! about absolute `http(s)` URLs and to fail closed (treat as foreign) on anything odd.

use crate::secrets::entropy;

/// The parts of an absolute URL the detector needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UrlParts<'a> {
    /// Lowercased host without port or userinfo.
    pub(crate) host: String,
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
}

/// Splits an absolute `http://` or `https://` URL (also protocol-relative `//host/…`); `None`
/// for relative URLs, which stay on the page's own origin.
pub(crate) fn parse(url: &str) -> Option<UrlParts<'_>> {
    let lower_scheme = url
        .get(..8)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let rest = if lower_scheme.starts_with("https://") {
        url.get(8..)?
    } else if lower_scheme.starts_with("http://") {
        url.get(7..)?
    } else {
        url.strip_prefix("//")?
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..authority_end)?;
    let after = rest.get(authority_end..)?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    let after = after.split('#').next().unwrap_or_default();
    let (path, query) = after.split_once('?').unwrap_or((after, ""));
    Some(UrlParts {
        host: host.trim_end_matches('.').to_ascii_lowercase(),
        path,
        query,
    })
}

/// Hosts that may receive requests. An entry `example.com` allows that host and its
/// subdomains; `*.example.com` allows only subdomains.
#[derive(Clone, Debug, Default)]
pub struct HostAllowlist {
    exact_or_sub: Vec<String>,
    sub_only: Vec<String>,
}

impl HostAllowlist {
    /// Builds the list; entries are lowercased, a trailing dot is ignored.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(hosts: I) -> Self {
        let mut list = Self::default();
        for h in hosts {
            let h = h.as_ref().trim().trim_end_matches('.').to_ascii_lowercase();
            match h.strip_prefix("*.") {
                Some(base) => list.sub_only.push(base.to_owned()),
                None if !h.is_empty() => list.exact_or_sub.push(h),
                None => {}
            }
        }
        list
    }

    /// Whether `host` (lowercase) is allowed.
    pub fn allows(&self, host: &str) -> bool {
        let is_sub = |base: &str| {
            host.len() > base.len()
                && host.ends_with(base)
                && host.as_bytes().get(host.len() - base.len() - 1) == Some(&b'.')
        };
        self.exact_or_sub.iter().any(|b| host == b || is_sub(b))
            || self.sub_only.iter().any(|b| is_sub(b))
    }
}

/// How strongly a URL looks like it carries data, from 0 (plain) to 1.
pub(crate) fn data_weight(parts: &UrlParts<'_>) -> f32 {
    let mut weight: f32 = 0.0;
    let params: Vec<&str> = parts.query.split('&').filter(|p| !p.is_empty()).collect();
    if params.len() >= 5 {
        weight = weight.max(0.6);
    }
    for p in &params {
        let value = p.split_once('=').map_or(*p, |(_, v)| v);
        weight = weight.max(value_weight(value));
    }
    for seg in parts.path.split('/') {
        weight = weight.max(segment_weight(seg));
    }
    weight
}

/// A query value: long, encoded or sentence-like values carry data.
fn value_weight(value: &str) -> f32 {
    let len = value.len();
    // "+" and "%20" stand for spaces: a sentence in a query string is text being sent out.
    let spaces = value.matches('+').count() + value.matches("%20").count();
    if spaces >= 3 {
        return 1.0;
    }
    if len >= 64 {
        return 1.0;
    }
    if len >= 24 && looks_encoded(value) {
        return 0.9;
    }
    if len >= 32 {
        return 0.7;
    }
    0.0
}

/// A path segment: long base64- or hex-looking segments carry data; words and ids do not.
fn segment_weight(seg: &str) -> f32 {
    if seg.len() >= 24 && looks_encoded(seg) {
        0.9
    } else if seg.len() >= 80 {
        0.7
    } else {
        0.0
    }
}

fn looks_encoded(s: &str) -> bool {
    let b = s.as_bytes();
    let token = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'_' | b'-' | b'%'));
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    token && digits > 0 && entropy(b) >= 3.5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts() {
        let p = parse("https://user:pw@Evil.Example.com:8443/a/b?q=1#frag").unwrap();
        assert_eq!(p.host, "evil.example.com");
        assert_eq!(p.path, "/a/b");
        assert_eq!(p.query, "q=1");
        assert_eq!(parse("//cdn.x.io/i.png").unwrap().host, "cdn.x.io");
        assert_eq!(parse("http://[::1]:80/").unwrap().host, "::1");
        assert!(parse("/relative/path").is_none());
        assert!(parse("javascript:alert(1)").is_none());
    }

    #[test]
    fn allowlist_matching() {
        let a = HostAllowlist::new(["example.com", "*.cdn.net"]);
        assert!(a.allows("example.com"));
        assert!(a.allows("img.example.com"));
        assert!(!a.allows("badexample.com"));
        assert!(!a.allows("cdn.net"));
        assert!(a.allows("eu.cdn.net"));
    }

    #[test]
    fn data_weights() {
        let w = |u: &str| data_weight(&parse(u).unwrap());
        assert_eq!(w("https://x.io/logo.png"), 0.0);
        assert_eq!(w("https://x.io/search?q=rust"), 0.0);
        assert!(w("https://x.io/p?d=the+user+password+is+hunter2") >= 0.9);
        assert!(w("https://x.io/c/aGVsbG8gd29ybGQgdGhpcyBpcyBkYXRh") >= 0.9);
        assert!(w("https://x.io/?a=1&b=2&c=3&d=4&e=5") >= 0.6);
    }
}
