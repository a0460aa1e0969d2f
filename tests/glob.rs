//! The glob matcher against a simple recursive reference implementation (SPEC 6.1, 6.2).

use namestore::Pattern;
use proptest::prelude::*;

/// Parses a set starting after `[`: returns (matches `c`, index after `]`), or `None` when
/// the set is unclosed or ends in a lone `\`.
fn reference_set(p: &[char], mut i: usize, c: Option<char>) -> Option<(bool, usize)> {
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut hit = false;
    loop {
        let lo = match *p.get(i)? {
            ']' => break,
            '\\' => {
                i += 1;
                *p.get(i)?
            }
            other => other,
        };
        i += 1;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&e| e != ']') {
            let mut hi = p[i + 1];
            i += 2;
            if hi == '\\' {
                hi = *p.get(i)?;
                i += 1;
            }
            let (lo, hi) = (lo.min(hi), lo.max(hi));
            hit |= c.is_some_and(|c| lo <= c && c <= hi);
        } else {
            hit |= c == Some(lo);
        }
    }
    Some((hit != negated, i + 1))
}

/// Whether the whole pattern is well formed.
fn reference_valid(p: &[char]) -> bool {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' if i + 1 == p.len() => return false,
            '\\' => i += 2,
            '[' => match reference_set(p, i + 1, None) {
                Some((_, next)) => i = next,
                None => return false,
            },
            _ => i += 1,
        }
    }
    true
}

/// Backtracking matcher: exponential in the worst case, obviously right on small inputs.
fn reference_match(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') => reference_match(&p[1..], s) || (!s.is_empty() && reference_match(p, &s[1..])),
        Some('?') => !s.is_empty() && reference_match(&p[1..], &s[1..]),
        Some('\\') => s.first() == p.get(1) && reference_match(&p[2..], &s[1..]),
        Some('[') => match reference_set(p, 1, s.first().copied()) {
            Some((true, next)) if !s.is_empty() => reference_match(&p[next..], &s[1..]),
            _ => false,
        },
        Some(c) => s.first() == Some(c) && reference_match(&p[1..], &s[1..]),
    }
}

fn pattern() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!['a', 'b', 'é', '*', '?', '[', ']', '^', '-', '\\', ':']),
        0..12,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn key() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!['a', 'b', 'é', '*', '[', ']', '^', '-', '\\', ':']),
        0..10,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn matches_like_the_reference(pattern in pattern(), key in key()) {
        let p: Vec<char> = pattern.chars().collect();
        let s: Vec<char> = key.chars().collect();
        match Pattern::new(&pattern) {
            Ok(compiled) => {
                prop_assert!(reference_valid(&p), "{:?} accepted but malformed", pattern);
                prop_assert_eq!(compiled.matches(&key), reference_match(&p, &s), "{:?} on {:?}", pattern, key);
            }
            Err(_) => prop_assert!(!reference_valid(&p), "{:?} refused but well formed", pattern),
        }
    }
}

#[test]
fn pathological_patterns_finish() {
    let key = "a".repeat(4096);
    for pattern in [
        format!("{}b", "*a".repeat(4000)),
        format!("{}b", "*".repeat(100_000)),
        "?*".repeat(5000),
    ] {
        let compiled = Pattern::new(&pattern).unwrap();
        let _ = compiled.matches(&key);
    }
}
