/// A model-name pattern: `*` matches any run of characters, `?` exactly one; everything else is
/// literal. Matching is linear in the name's length times the number of `*`s, with no
/// backtracking blow-up (a `*` never needs to be retried once a later `*` has matched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Box<str>,
}

impl Glob {
    /// Wraps a pattern; every string is a valid pattern.
    pub fn new(pattern: &str) -> Self {
        Self {
            pattern: pattern.into(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the pattern contains a wildcard.
    pub fn is_wildcard(pattern: &str) -> bool {
        pattern.contains(['*', '?'])
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let pattern: Vec<char> = self.pattern.chars().collect();
        let text: Vec<char> = name.chars().collect();
        let (mut p, mut t) = (0usize, 0usize);
        // Position after the most recent `*` and the text position it is currently matched up to.
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match pattern.get(p) {
                Some('*') => {
                    star = Some((p + 1, t));
                    p += 1;
                }
                Some(&c) if c == '?' || c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((after_star, matched_to)) => {
                        p = after_star;
                        t = matched_to + 1;
                        star = Some((after_star, matched_to + 1));
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(|&c| c == '*')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_wildcards() {
        assert!(Glob::new("gpt-4o").matches("gpt-4o"));
        assert!(!Glob::new("gpt-4o").matches("gpt-4o-mini"));
        assert!(Glob::new("gpt-*").matches("gpt-4o-mini"));
        assert!(Glob::new("gpt-*").matches("gpt-"));
        assert!(!Glob::new("gpt-*").matches("claude-3"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("llama?-*b").matches("llama3-70b"));
        assert!(!Glob::new("llama?-*b").matches("llama31-70b"));
        assert!(Glob::new("*/*").matches("meta-llama/Llama-3.1-8B"));
        assert!(Glob::new("a*b*c").matches("aXXbYYbZc"));
        assert!(!Glob::new("a*b*c").matches("aXXbYYbZ"));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let name = "a".repeat(10_000);
        let pattern = format!("{}b", "*a".repeat(50));
        assert!(!Glob::new(&pattern).matches(&name));
    }
}
