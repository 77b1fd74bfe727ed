//! HTML output that cannot forget to escape.
//!
//! Pages are built with [`Html`], which accepts only two things: markup written in the source
//! (`&'static str` literals) and text, which it always escapes. A value from a request, the
//! store or the config therefore has no way into a page unescaped: there is no method taking a
//! runtime `&str` as markup. Attribute values are written inside double quotes in the literals,
//! and [`escape`] covers both quote kinds, so the same escaping is right in text and in
//! attributes.

use std::borrow::Cow;

/// Escapes `& < > " '` as character references; safe in text and in quoted attributes.
/// Borrows when there is nothing to escape.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Percent-encodes one URL path segment: everything but `A-Z a-z 0-9 - . _ ~`. The result
/// still goes through [`Html::text`] when written into a page.
pub(crate) fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// A page being written: static markup and escaped text only.
#[derive(Debug, Default)]
pub(crate) struct Html {
    out: String,
}

impl Html {
    /// An empty page.
    pub(crate) fn new() -> Self {
        Self {
            out: String::with_capacity(8 * 1024),
        }
    }

    /// Markup from the source code. Only literals can be `'static` here in practice; never
    /// leak a runtime string to pass it.
    pub(crate) fn raw(&mut self, markup: &'static str) -> &mut Self {
        self.out.push_str(markup);
        self
    }

    /// Text, escaped.
    pub(crate) fn text(&mut self, text: &str) -> &mut Self {
        self.out.push_str(&escape(text));
        self
    }

    /// A number (no escaping needed, but kept on the same path).
    pub(crate) fn number(&mut self, value: impl Into<i128>) -> &mut Self {
        self.text(&value.into().to_string())
    }

    /// The finished page.
    pub(crate) fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_the_five_characters() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn text_is_escaped_and_markup_is_not() {
        let mut html = Html::new();
        html.raw("<td title=\"")
            .text("\"><b>")
            .raw("\">")
            .number(42)
            .raw("</td>");
        assert_eq!(html.finish(), "<td title=\"&quot;&gt;&lt;b&gt;\">42</td>");
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(path_segment("apr_0f-A.~"), "apr_0f-A.~");
        assert_eq!(path_segment("a/b?c d\"é"), "a%2Fb%3Fc%20d%22%C3%A9");
    }
}
