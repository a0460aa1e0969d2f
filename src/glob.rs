//! Redis-style glob patterns over business keys (SPEC 6.1, 6.2).
//!
//! A pattern is parsed and validated once, up front, into tokens. Matching is the classic
//! two-pointer algorithm with one backtrack point: on a mismatch it resumes from the most
//! recent `*`, one character further. Every token other than `*` consumes exactly one
//! character, so the work per key is bounded by `pattern tokens × key characters`: linear in
//! the pattern for a given key, never exponential (`*a*a*a*…b` included).

use std::sync::Arc;

use crate::error::Error;

/// A validated glob pattern over business keys.
///
/// | syntax   | matches |
/// |----------|---------|
/// | `*`      | any run of characters, `:` included, the empty run too |
/// | `?`      | exactly one character |
/// | `[abc]`  | one of the listed characters |
/// | `[a-z]`  | one character in the range (a reversed range `[z-a]` is the same range) |
/// | `[^a]`   | one character not in the set |
/// | `\x`     | the character `x` itself, also inside a set |
///
/// Matching is by Unicode character and case-sensitive. Inside a set, `-` is literal when it
/// comes first or last, and `]` right after `[` or `[^` closes an empty set (which matches
/// nothing, or anything when negated), as in Redis. An unclosed `[` or a trailing `\` is an
/// [`ErrorKind::InvalidPattern`](crate::ErrorKind::InvalidPattern).
///
/// ```
/// use namestore::Pattern;
///
/// let p = Pattern::new("user:[0-9]*").unwrap();
/// assert!(p.matches("user:42"));
/// assert!(!p.matches("user:x"));
/// assert!(Pattern::new("[abc").is_err());
/// ```
#[derive(Clone)]
pub struct Pattern {
    source: Arc<str>,
    tokens: Arc<[Token]>,
    match_all: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Star,
    Any,
    Char(char),
    Set {
        negated: bool,
        ranges: Box<[(char, char)]>,
    },
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Star | Token::Any => true,
            Token::Char(expected) => *expected == c,
            Token::Set { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

impl Pattern {
    /// Parses and validates a pattern.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidPattern`](crate::ErrorKind::InvalidPattern) for an unclosed `[` or a trailing `\`, naming the position.
    pub fn new(pattern: &str) -> crate::Result<Self> {
        let invalid = |position: usize, reason: &'static str| {
            Error::invalid_pattern(pattern, position, reason)
        };
        let mut tokens = Vec::new();
        let mut chars = pattern.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            let token = match c {
                '*' => {
                    if tokens.last() == Some(&Token::Star) {
                        continue;
                    }
                    Token::Star
                }
                '?' => Token::Any,
                '\\' => match chars.next() {
                    Some((_, escaped)) => Token::Char(escaped),
                    None => return Err(invalid(at, "trailing `\\` escapes nothing")),
                },
                '[' => {
                    let negated = chars.next_if(|&(_, c)| c == '^').is_some();
                    let mut ranges = Vec::new();
                    let mut closed = false;
                    let mut first = true;
                    while let Some((item_at, item)) = chars.next() {
                        let lo = match item {
                            ']' => {
                                closed = true;
                                break;
                            }
                            '\\' => match chars.next() {
                                Some((_, escaped)) => escaped,
                                None => {
                                    return Err(invalid(item_at, "trailing `\\` escapes nothing"));
                                }
                            },
                            '-' if first => '-',
                            other => other,
                        };
                        first = false;
                        let range_end = {
                            let mut ahead = chars.clone();
                            match (ahead.next(), ahead.next()) {
                                (Some((_, '-')), Some((_, end))) if end != ']' => Some(end),
                                _ => None,
                            }
                        };
                        match range_end {
                            Some(end) => {
                                chars.next();
                                chars.next();
                                let hi = if end == '\\' {
                                    match chars.next() {
                                        Some((_, escaped)) => escaped,
                                        None => {
                                            return Err(invalid(
                                                item_at,
                                                "trailing `\\` escapes nothing",
                                            ));
                                        }
                                    }
                                } else {
                                    end
                                };
                                ranges.push((lo.min(hi), lo.max(hi)));
                            }
                            None => ranges.push((lo, lo)),
                        }
                    }
                    if !closed {
                        return Err(invalid(at, "unclosed `[`"));
                    }
                    Token::Set {
                        negated,
                        ranges: ranges.into_boxed_slice(),
                    }
                }
                other => Token::Char(other),
            };
            tokens.push(token);
        }
        let match_all = tokens.iter().all(|t| *t == Token::Star) && !tokens.is_empty();
        Ok(Pattern {
            source: pattern.into(),
            tokens: tokens.into(),
            match_all,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern matches every non-empty key (it is made of `*` only).
    pub fn matches_everything(&self) -> bool {
        self.match_all
    }

    /// Whether `key` matches the whole pattern.
    pub fn matches(&self, key: &str) -> bool {
        if self.match_all {
            return true;
        }
        let tokens = &self.tokens[..];
        let (mut t, mut s) = (0usize, 0usize);
        // The token after the most recent `*`, and the key position that `*` resumes from.
        let mut resume: Option<(usize, usize)> = None;
        loop {
            match tokens.get(t) {
                Some(Token::Star) => {
                    resume = Some((t + 1, s));
                    t += 1;
                    continue;
                }
                Some(token) => {
                    if let Some(c) = key[s..].chars().next()
                        && token.matches(c)
                    {
                        t += 1;
                        s += c.len_utf8();
                        continue;
                    }
                }
                None if s == key.len() => return true,
                None => {}
            }
            match resume {
                Some((after_star, from)) => match key[from..].chars().next() {
                    Some(c) => {
                        let next = from + c.len_utf8();
                        resume = Some((after_star, next));
                        t = after_star;
                        s = next;
                    }
                    None => return false,
                },
                None => return false,
            }
        }
    }
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, key: &str) -> bool {
        Pattern::new(pattern).unwrap().matches(key)
    }

    #[test]
    fn syntax() {
        assert!(m("*", "a:b:c"));
        assert!(m("a*", "a"));
        assert!(m("a*c", "abbbc"));
        assert!(!m("a*c", "abbbd"));
        assert!(m("?", "é"));
        assert!(!m("?", "ab"));
        assert!(m("[abc]x", "bx"));
        assert!(m("[a-c]", "b"));
        assert!(m("[c-a]", "b"));
        assert!(!m("[^a-c]", "b"));
        assert!(m("[^a-c]", "d"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "x"));
        assert!(m("[\\]]", "]"));
        assert!(m("[-a]", "-"));
        assert!(m("[a-]", "-"));
        assert!(!m("[]", "a"));
        assert!(m("[^]", "a"));
        assert!(m("", ""));
        assert!(!m("", "a"));
    }

    #[test]
    fn malformed() {
        for bad in ["[", "[abc", "a\\", "[a\\", "[^", "[a-\\"] {
            assert!(
                matches!(Pattern::new(bad), Err(e) if e.kind() == crate::ErrorKind::InvalidPattern),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let pattern = format!("{}b", "*a".repeat(2000));
        let key = "a".repeat(4096);
        assert!(!m(&pattern, &key));
    }
}
