//! `application/x-www-form-urlencoded` (login and decision forms, query strings) and percent
//! decoding of path segments, as browsers encode them.

use portcullis_core::hex;

/// A form or query string that does not decode to UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotUtf8;

/// The name/value pairs of a form body or query string, in order. `+` is a space; a `%` not
/// followed by two hex digits is kept as it is (as browsers do).
pub(crate) fn parse(input: &[u8]) -> Result<Vec<(String, String)>, NotUtf8> {
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            Ok((decode(name, true)?, decode(value, true)?))
        })
        .collect()
}

/// The first value named `name`.
pub(crate) fn value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Percent-decodes a path segment (`+` stays `+`).
pub(crate) fn path_segment(segment: &str) -> Result<String, NotUtf8> {
    decode(segment.as_bytes(), false)
}

fn decode(input: &[u8], plus_is_space: bool) -> Result<String, NotUtf8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < input.len() => {
                match (hex::digit(input[i + 1]), hex::digit(input[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push(high << 4 | low);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_like_browsers() {
        let pairs = parse(b"token=a%2Bb+c&csrf=00&empty=&flag&reason=%E2%9C%93%").unwrap();
        assert_eq!(value(&pairs, "token"), Some("a+b c"));
        assert_eq!(value(&pairs, "csrf"), Some("00"));
        assert_eq!(value(&pairs, "empty"), Some(""));
        assert_eq!(value(&pairs, "flag"), Some(""));
        assert_eq!(value(&pairs, "reason"), Some("✓%"));
        assert_eq!(value(&pairs, "missing"), None);
    }

    #[test]
    fn bad_escapes_are_kept_and_bad_utf8_is_refused() {
        assert_eq!(
            parse(b"a=%zz%4").unwrap(),
            vec![("a".into(), "%zz%4".into())]
        );
        assert_eq!(parse(b"a=%ff"), Err(NotUtf8));
        assert_eq!(path_segment("apr%5F1+x").unwrap(), "apr_1+x");
    }
}
