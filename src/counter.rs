//! Counters as canonical base-10 ASCII (SPEC 4.4), shared by every driver.

/// Parses `bytes` as a counter, accepting only the form `i64`'s `Display` writes: `0`, or an
/// optional `-`, a digit 1-9, then digits, within the i64 range. This is exactly what Redis
/// accepts for `INCRBY`; `str::parse` also takes `+1`, `007` and `-0`, so it is not the check.
///
/// ```
/// use namestore::counter::parse_canonical;
///
/// assert_eq!(parse_canonical(b"-42"), Some(-42));
/// assert_eq!(parse_canonical(b"007"), None);
/// assert_eq!(parse_canonical(b"+1"), None);
/// ```
pub fn parse_canonical(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    match digits {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    if digits.len() > 19 {
        return None;
    }
    // Accumulate towards negative: the i64 range has one more negative value than positive.
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

/// A counter read back as a count: its value when it is one and not negative, else 0
/// (missing, negative, or something other than a counter).
pub(crate) fn count_of(value: Option<&[u8]>) -> u64 {
    value
        .and_then(parse_canonical)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// Writes `value` the way [`parse_canonical`] reads it.
pub fn format(value: i64, buffer: &mut itoa::Buffer) -> &[u8] {
    buffer.format(value).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_only() {
        for (text, want) in [
            ("0", Some(0)),
            ("1", Some(1)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("+1", None),
            (" 1", None),
            ("1 ", None),
            ("007", None),
            ("-0", None),
            ("00", None),
            ("1.5", None),
            ("1e3", None),
            ("", None),
            ("-", None),
            ("12a", None),
            ("99999999999999999999", None),
        ] {
            assert_eq!(parse_canonical(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn format_round_trips() {
        let mut buffer = itoa::Buffer::new();
        for v in [0, 1, -1, i64::MAX, i64::MIN, 1234567890] {
            assert_eq!(parse_canonical(format(v, &mut buffer)), Some(v));
        }
    }
}
