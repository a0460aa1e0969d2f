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
    /// The kind of the store error it came from, if it came from one.
    pub kind: Option<ErrorKind>,
}

pub const NOT_FOUND: u8 = 1;
pub const USAGE: u8 = 2;
pub const UNREACHABLE: u8 = 3;
pub const REFUSED: u8 = 4;
pub const NOT_CONFIRMED: u8 = 5;
/// A bug in the command (sysexits' EX_SOFTWARE).
pub const INTERNAL: u8 = 70;
pub const INTERRUPTED: u8 = 130;

impl Failure {
    /// The message is one line, with control characters escaped: an error may quote stored
    /// data or a server's words, and neither may drive the operator's terminal.
    pub fn new(code: u8, message: impl fmt::Display) -> Self {
        Failure {
            code,
            message: escape_controls(&one_line(&message.to_string())).into_owned(),
            kind: None,
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
        Failure {
            kind: Some(error.kind()),
            ..Failure::new(code, message)
        }
    }
}

impl From<io::Error> for Failure {
    /// A closed pipe (`namestore keys … | head`) ends the command quietly and successfully.
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::BrokenPipe {
            return Failure {
                code: 0,
                message: String::new(),
                kind: None,
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

/// A value for a person: as is when it is UTF-8 without control characters, otherwise
/// escaped (`\xNN` for bytes that are not UTF-8, `\\` for a backslash, `\n`, `\u{1b}`-style
/// escapes for control characters, so stored data cannot send the terminal an escape
/// sequence). The second part says whether it was escaped.
pub fn shown_value(bytes: &[u8]) -> (String, bool) {
    if let Ok(text) = std::str::from_utf8(bytes)
        && !text.chars().any(char::is_control)
    {
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

/// A key for a line of text output: control characters escaped, so one key is one line and
/// cannot drive the terminal.
pub fn shown_listed_key(key: &str) -> std::borrow::Cow<'_, str> {
    escape_controls(key)
}

/// `text` with its control characters (C0, DEL, C1: ESC and CSI among them) escaped.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
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

/// The units a duration is shown in, largest first; a year is 365.25 days, as `--ttl 100y`
/// reads it.
const UNITS: [(&str, u128); 6] = [
    ("y", 31_557_600_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// A duration for a person at a glance: its two largest units, rounded to the smaller one
/// (`30m` for 29 min 59.993 s, `99y 340d`, `1h 30m`, `2s 500ms`). Exact values are in the
/// `--json` output (`ttl_ms`).
pub fn shown_duration(duration: Duration) -> String {
    let mut ms = duration.as_millis();
    if ms == 0 {
        return "0ms".to_owned();
    }
    let largest = |ms: u128| UNITS.iter().position(|&(_, size)| ms >= size).unwrap_or(5);
    if let Some(&(_, step)) = UNITS.get(largest(ms) + 1) {
        ms = (ms + step / 2) / step * step;
    }
    let at = largest(ms);
    let (name, size) = UNITS[at];
    let mut shown = format!("{}{name}", ms / size);
    if let Some(&(minor, step)) = UNITS.get(at + 1) {
        let rest = ms % size / step;
        if rest > 0 {
            shown.push_str(&format!(" {rest}{minor}"));
        }
    }
    shown
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

/// The URL with any user and password removed, for prompts: `redis://***@host:6379/0`. A
/// Redis URL is shown as the driver reads it (its hosts and database; a password holding `?`,
/// `#`, `/` or `@` is removed whole, and a parameter's value holding an `@` is not taken for
/// the end of the credentials); any other URL, or one the driver cannot read, loses everything
/// up to its last `@`. The query is dropped too: an operator does not need its settings in a
/// prompt.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "the store".to_owned();
    };
    if let Ok(config) = namestore::drivers::redis::RedisConfig::from_url(url) {
        // `scheme://[credentials@]hosts/db`; hosts hold no `@`.
        let shown = config.to_string();
        let (scheme, read) = shown.split_once("://").unwrap_or(("redis", &shown));
        let shown = match read.rsplit_once('@') {
            Some((_, address)) => format!("{scheme}://***@{address}"),
            None => format!("{scheme}://{read}"),
        };
        return escape_controls(&shown).into_owned();
    }
    let network = scheme.to_ascii_lowercase().starts_with("redis");
    let (credentials, rest) = match rest.rfind('@') {
        Some(at) if network => ("***@", &rest[at + 1..]),
        _ => ("", rest),
    };
    let shown = rest.split(['?', '#']).next().unwrap_or("");
    escape_controls(&format!("{scheme}://{credentials}{shown}")).into_owned()
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
    fn control_characters_are_escaped_everywhere() {
        let hostile = "a\x1b]0;owned\x07b\x1b[2Jc\u{9b}d";
        let (shown, escaped) = shown_value(hostile.as_bytes());
        assert!(escaped);
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(shown, "a\\u{1b}]0;owned\\u{7}b\\u{1b}[2Jc\\u{9b}d");
        assert_eq!(shown_value(b"tab\tnew\nline").0, "tab\\tnew\\nline");
        assert!(!shown_listed_key(hostile).chars().any(char::is_control));
        let failure = Failure::new(4, format_args!("server said {hostile}"));
        assert!(!failure.message.chars().any(char::is_control));
    }

    #[test]
    fn durations_read_at_a_glance() {
        let ms = Duration::from_millis;
        for (duration, shown) in [
            (ms(0), "0ms"),
            (ms(250), "250ms"),
            (ms(2_500), "2s 500ms"),
            (ms(29 * 60_000 + 59_993), "30m"),
            (ms(90 * 60_000), "1h 30m"),
            (ms(3_599_999), "1h"),
            (ms(36_500 * 86_400_000), "99y 340d"),
            (ms(100 * 31_557_600_000 - 5), "100y"),
            (ms(86_400_000 + 1), "1d"),
        ] {
            assert_eq!(shown_duration(duration), shown, "{duration:?}");
        }
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redacted_url("redis://user:s3cret@host:6379/2?x=1"),
            "redis://***@host:6379/2"
        );
        assert_eq!(
            redacted_url("redis://:p@ss@host"),
            "redis://***@host:6379/0"
        );
        for password in [
            "pa?ssSECRET",
            "pa#ssSECRET",
            "pa/ssSECRET",
            "pa@ssSECRET",
            "pa%3FssSECRET",
        ] {
            let shown = redacted_url(&format!("redis://user:{password}@127.0.0.1:6379/0?x=1"));
            assert_eq!(shown, "redis://***@127.0.0.1:6379/0", "{password}");
        }
        // A parameter's value holding an `@` (a CA file in a directory named with one).
        let dir =
            std::env::temp_dir().join(format!("namestore-cli-{}/redis@6380", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        // A URL naming a file that holds no certificate is refused: make one.
        let made = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=namestore test",
                "-keyout",
            ])
            .arg(dir.join("ca.key"))
            .arg("-out")
            .arg(&ca)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl (apt-get install openssl)");
        assert!(made.success());
        let ca = ca.display();
        assert_eq!(
            redacted_url(&format!("rediss://u:p@w@host:6380/1?tls_ca_file={ca}")),
            "rediss://***@host:6380/1"
        );
        assert_eq!(
            redacted_url(&format!("rediss://host/0?tls_ca_file={ca}")),
            "rediss://host:6379/0"
        );
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
        assert_eq!(redacted_url("redb:///tmp/a@b.redb"), "redb:///tmp/a@b.redb");
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
