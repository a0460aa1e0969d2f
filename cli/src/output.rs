//! Exit codes, one-line errors, and how values and durations are shown.

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use base64::Engine;
use namestore::{Error, ErrorKind};
use serde_json::{Map, Value, json};

/// How the process ends when a command fails: an exit code and a one-line message.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

pub const NOT_FOUND: u8 = 1;
pub const USAGE: u8 = 2;
pub const UNREACHABLE: u8 = 3;
pub const REFUSED: u8 = 4;
pub const NOT_CONFIRMED: u8 = 5;
pub const INTERRUPTED: u8 = 130;

impl Failure {
    pub fn new(code: u8, message: impl fmt::Display) -> Self {
        Failure {
            code,
            message: one_line(&message.to_string()),
        }
    }

    pub fn usage(message: impl fmt::Display) -> Self {
        Failure::new(USAGE, message)
    }

    pub fn not_found(namespace: &str, key: &str) -> Self {
        Failure::new(
            NOT_FOUND,
            format_args!("key not found: {}", shown_key(namespace, key)),
        )
    }
}

/// A store error's exit code: bad input is a usage error, an unreachable store has its own
/// code, anything the store refused or failed at is 4. The message is the library's, which
/// never holds a password from the URL.
impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let code = match error.kind() {
            ErrorKind::InvalidNamespace
            | ErrorKind::InvalidKey
            | ErrorKind::InvalidPattern
            | ErrorKind::InvalidTtl
            | ErrorKind::ValueTooLarge
            | ErrorKind::InvalidUrl => USAGE,
            ErrorKind::Unavailable | ErrorKind::Timeout => UNREACHABLE,
            _ => REFUSED,
        };
        let mut message = error.to_string();
        // The library's message stops at the error itself; the cause (e.g. the OS error of a
        // refused connection) helps an operator, and carries no URL.
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            let shown = cause.to_string();
            if !message.contains(&shown) {
                message.push_str(": ");
                message.push_str(&shown);
            }
            source = cause.source();
        }
        Failure::new(code, message)
    }
}

impl From<io::Error> for Failure {
    /// A closed pipe (`namestore keys … | head`) ends the command quietly and successfully.
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::BrokenPipe {
            return Failure {
                code: 0,
                message: String::new(),
            };
        }
        Failure::new(REFUSED, format_args!("output: {error}"))
    }
}

/// Joins lines and squeezes whitespace, so an error is one line whatever its source said.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `root:domain key` as shown in messages, with the key escaped and shortened.
pub fn shown_key(namespace: &str, key: &str) -> String {
    let key: String = key.chars().flat_map(char::escape_debug).collect();
    if key.chars().count() > 64 {
        let short: String = key.chars().take(61).collect();
        format!("{namespace} {short}...")
    } else {
        format!("{namespace} {key}")
    }
}

/// A value for a person: as is when it is UTF-8, otherwise escaped (`\xNN` for bytes that are
/// not UTF-8, `\\` for a backslash, `\n`-style escapes for control characters). The second
/// part says whether it was escaped.
pub fn shown_value(bytes: &[u8]) -> (String, bool) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return (text.to_owned(), false);
    }
    let mut shown = String::with_capacity(bytes.len() * 2);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' || c.is_control() {
                shown.extend(c.escape_debug());
            } else {
                shown.push(c);
            }
        }
        for byte in chunk.invalid() {
            shown.push_str(&format!("\\x{byte:02x}"));
        }
    }
    (shown, true)
}

/// A key for a line of text output: control characters escaped, so one key is one line.
pub fn shown_listed_key(key: &str) -> std::borrow::Cow<'_, str> {
    if !key.chars().any(char::is_control) {
        return key.into();
    }
    let mut shown = String::with_capacity(key.len() + 8);
    for c in key.chars() {
        if c.is_control() {
            shown.extend(c.escape_debug());
        } else {
            shown.push(c);
        }
    }
    shown.into()
}

/// A value in JSON: `"value"` when it is UTF-8, `"value_base64"` otherwise.
pub fn json_value(object: &mut Map<String, Value>, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => object.insert("value".into(), json!(text)),
        Err(_) => object.insert(
            "value_base64".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
    };
}

/// A duration for a person, to the millisecond: `29m 59s 998ms`.
pub fn shown_duration(duration: Duration) -> String {
    let ms = Duration::from_millis(duration.as_millis() as u64);
    if ms.is_zero() {
        return "0ms".to_owned();
    }
    humantime::format_duration(ms).to_string()
}

/// Writes a JSON document and a newline.
pub fn write_json(out: &mut dyn Write, value: &Value) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// Rows of text padded into aligned columns, two spaces apart; columns listed in `right`
/// are right-aligned (numbers).
pub fn write_table(
    out: &mut dyn Write,
    header: &[&str],
    rows: &[Vec<String>],
    right: &[usize],
) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            if i > 0 {
                line.push_str("  ");
            }
            if right.contains(&i) {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if i + 1 < row.len() {
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The URL with any user and password removed, for prompts: `redis://***@host:6379/0`.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "the store".to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rfind('@') {
        Some(at) => format!(
            "{scheme}://***@{}{}",
            &authority[at + 1..],
            strip_query(tail)
        ),
        None => format!("{scheme}://{authority}{}", strip_query(tail)),
    }
}

/// Drops the query, which may hold settings an operator does not need to see in a prompt.
fn strip_query(tail: &str) -> &str {
    tail.split('?').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_only_when_not_utf8() {
        assert_eq!(
            shown_value(b"caf\xc3\xa9 \\n"),
            ("café \\n".to_owned(), false)
        );
        assert_eq!(
            shown_value(b"a\xffb\\\n"),
            ("a\\xffb\\\\\\n".to_owned(), true)
        );
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redacted_url("redis://user:s3cret@host:6379/2?x=1"),
            "redis://***@host:6379/2"
        );
        assert_eq!(redacted_url("redis://:p@ss@host"), "redis://***@host");
        assert_eq!(redacted_url("redb:///tmp/a.redb"), "redb:///tmp/a.redb");
        assert_eq!(redacted_url("memory://"), "memory://");
        assert_eq!(redacted_url("garbage"), "the store");
    }

    #[test]
    fn tables_align() {
        let mut out = Vec::new();
        write_table(
            &mut out,
            &["KEYS", "NAMESPACE"],
            &[
                vec!["3".into(), "app:sessions".into()],
                vec!["1200".into(), "a:b".into()],
            ],
            &[0],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "KEYS  NAMESPACE\n   3  app:sessions\n1200  a:b\n"
        );
    }
}
