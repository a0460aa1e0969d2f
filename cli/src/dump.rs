//! `namestore dump` and `namestore restore`: a store's keys as JSON lines, and back, so data
//! moves between stores of any kind (a redb file to a Redis Cluster, one Redis to another) and
//! a store can be backed up in a form a person can read.
//!
//! # The format (version 1)
//!
//! One JSON object per line. The first line names the format, the last one counts the keys, so
//! a dump cut short (a full disk, a killed process) is told from a whole one:
//!
//! ```text
//! {"format":"namestore-dump","version":1,"taken_at_ms":1764360000000}
//! {"namespace":"app:sessions","key":"s-7f3a","value":"user=42","expires_at_ms":1764361800000}
//! {"namespace":"app:blobs","key":"b1","value_base64":"/wA="}
//! {"end":true,"keys":2}
//! ```
//!
//! A value is `"value"` when it is UTF-8 with no control characters other than tab, line feed
//! and carriage return (each escaped in two bytes), `"value_base64"` otherwise, so a line is
//! at most about twice its value. A key's expiry is absolute (`expires_at_ms`, Unix time in
//! milliseconds), so a dump restored later gives each key the life it had left, not more; a
//! key without one has no expiry.

use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::pin::pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use futures_util::FutureExt;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use namestore::{AnyDriver, Bytes, Driver, KeyTtl, Namespace, NamespaceName};
use serde_json::{Map, Value, json};

use crate::output::{Failure, write_json};
use crate::run::Session;

/// The first line's `format`.
const FORMAT: &str = "namestore-dump";
/// The version this build writes and reads.
const VERSION: u64 = 1;
/// Keys read at once while dumping (each held until its line is written).
const DUMP_IN_FLIGHT: usize = 32;
/// Writes in flight at once while restoring, and the value bytes they may hold together (a
/// larger value is written alone).
const RESTORE_IN_FLIGHT: usize = 64;
const RESTORE_IN_FLIGHT_BYTES: usize = 64 << 20;
/// The longest line `restore` reads: a value at the size limit written as text with every
/// character escaped in two bytes, and room for the key and the fields.
const MAX_LINE: usize = 2 * namestore::MAX_VALUE_LEN + (1 << 20);
/// The longest first line: input that is no dump (a binary file, an endless stream) is
/// refused after this much, not after a gigabyte.
const MAX_FIRST_LINE: usize = 4096;

type Ns = Namespace<String, AnyDriver>;

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// `namestore dump [NS…]`: the keys of the namespaces named (every namespace holding keys when
/// none is) written to `out` as JSON lines, and a summary on stderr.
pub async fn dump(
    session: &Session<'_>,
    names: &[String],
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let namespaces = match names {
        [] => every_namespace(&session.store).await?,
        names => names
            .iter()
            .map(|name| named_namespace(&session.store, name))
            .collect::<Result<_, _>>()?,
    };
    writeln!(
        out,
        "{{\"format\":\"{FORMAT}\",\"version\":{VERSION},\"taken_at_ms\":{}}}",
        now_ms()
    )?;
    let (mut keys, mut passed) = (0u64, 0u64);
    for ns in &namespaces {
        let name = ns.name().to_string();
        let mut entries = pin!(
            ns.scan("*")?
                .map(|key| async move {
                    let key = key?;
                    // `mget` rather than `get`: a key another client gave another Redis type
                    // (a list, a hash…) in the namespace is left out, as gone, where `get`
                    // fails and would end the dump.
                    let Some(value) = ns.mget([&key]).await?.pop().flatten() else {
                        return Ok(None);
                    };
                    // Read after the value: a key deleted or expired in between is left out,
                    // as it would have been a moment later.
                    let expires_at = match ns.ttl(&key).await? {
                        KeyTtl::Missing => return Ok(None),
                        KeyTtl::NoExpiry => None,
                        KeyTtl::ExpiresIn(left) => Some(now_ms().saturating_add(ceil_ms(left))),
                    };
                    Ok::<_, namestore::Error>(Some((key, value, expires_at)))
                })
                .buffered(DUMP_IN_FLIGHT)
        );
        while let Some(entry) = entries.next().await {
            let Some((key, value, expires_at)) = entry? else {
                passed += 1;
                continue;
            };
            write_entry(out, &name, &key, &value, expires_at)?;
            keys += 1;
        }
    }
    writeln!(out, "{{\"end\":true,\"keys\":{keys}}}")?;
    out.flush()?;
    eprintln!(
        "dumped {keys} key{} of {} namespace{}{}",
        plural(keys),
        namespaces.len(),
        plural(namespaces.len() as u64),
        match passed {
            0 => String::new(),
            n => format!(
                "; passed over {n} listed key{} gone by the time it was read, or holding \
                 another Redis type than a string (written by another client)",
                plural(n)
            ),
        }
    );
    Ok(())
}

/// A duration in whole milliseconds, rounded up: a key is never restored with less life than
/// it had, down to 0 (which would drop it).
fn ceil_ms(duration: Duration) -> u64 {
    let ms = duration.as_millis() + u128::from(!duration.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The value as a JSON string, when it is UTF-8 whose only control characters are tab, line
/// feed and carriage return (escaped in two bytes each, where others take six).
fn dumped_text(value: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(value).ok()?;
    let plain = text
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'));
    plain.then_some(text)
}

/// A key's line, its fields in the order a person reads them.
fn write_entry(
    out: &mut dyn Write,
    namespace: &str,
    key: &str,
    value: &[u8],
    expires_at: Option<u64>,
) -> io::Result<()> {
    let string = |text: &str| serde_json::to_string(text).map_err(io::Error::from);
    write!(
        out,
        "{{\"namespace\":{},\"key\":{},",
        string(namespace)?,
        string(key)?
    )?;
    match dumped_text(value) {
        Some(text) => write!(out, "\"value\":{}", string(text)?)?,
        None => write!(
            out,
            "\"value_base64\":\"{}\"",
            base64::engine::general_purpose::STANDARD.encode(value)
        )?,
    }
    if let Some(at) = expires_at {
        write!(out, ",\"expires_at_ms\":{at}")?;
    }
    out.write_all(b"}\n")
}

/// Every namespace holding keys, in name order.
async fn every_namespace(store: &AnyDriver) -> Result<Vec<Ns>, Failure> {
    let mut names: Vec<NamespaceName> = Vec::new();
    let mut listed = pin!(store.namespaces());
    while let Some(info) = listed.next().await {
        names.push(info?.name().clone());
    }
    names.sort_by(|a, b| (a.root(), a.domain()).cmp(&(b.root(), b.domain())));
    Ok(names
        .iter()
        .map(|name| store.namespace::<String>(name.root(), name.domain()))
        .collect::<Result<_, _>>()?)
}

/// The namespace `ROOT:DOMAIN` names.
fn named_namespace(store: &AnyDriver, name: &str) -> Result<Ns, Failure> {
    let Some((root, domain)) = name.split_once(':') else {
        return Err(Failure::usage(format_args!(
            "`{}` is not a namespace written ROOT:DOMAIN",
            name.escape_debug()
        )));
    };
    Ok(store.namespace::<String>(root, domain)?)
}

/// What `restore` did, for its summary.
#[derive(Default)]
struct Restored {
    /// Keys written.
    written: u64,
    /// Keys left alone because the store held them already (without `--replace`).
    present: u64,
    /// Keys whose expiry passed since the dump, not written.
    expired: u64,
}

/// One key read from a dump line.
struct Entry {
    namespace: String,
    key: String,
    value: Bytes,
    expires_at: Option<u64>,
}

/// `namestore restore [--replace]`: the keys of a dump read from `input` written to the store;
/// a summary on `out`.
pub async fn restore(
    session: &Session<'_>,
    replace: bool,
    mut input: impl BufRead,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let mut restored = Restored::default();
    let result = restore_lines(session, replace, &mut input, &mut restored).await;
    let summary = |restored: &Restored| {
        format!(
            "restored {} key{}{}{}",
            restored.written,
            plural(restored.written),
            match restored.present {
                0 => String::new(),
                n => format!(", kept {n} the store held already (--replace overwrites them)"),
            },
            match restored.expired {
                0 => String::new(),
                n => format!(", skipped {n} expired since the dump"),
            },
        )
    };
    match result {
        Ok(()) => {
            if session.json {
                write_json(
                    out,
                    &json!({
                        "restored": restored.written,
                        "present": restored.present,
                        "expired": restored.expired,
                    }),
                )?;
            } else {
                writeln!(out, "{}", summary(&restored))?;
            }
            Ok(())
        }
        Err(failure) => {
            let done = match restored {
                Restored {
                    written: 0,
                    present: 0,
                    expired: 0,
                } => "nothing was written".to_owned(),
                _ => format!("before it: {}", summary(&restored)),
            };
            Err(Failure {
                message: format!("{}; {done}", failure.message),
                ..failure
            })
        }
    }
}

/// The write of one key: whether it was written (`false`: present, kept), or the store's
/// error with the key; and the value bytes it held.
type Written = (Result<bool, (namestore::Error, String, Ns)>, usize);
type Writes = FuturesUnordered<LocalBoxFuture<'static, Written>>;

/// Reads the dump and writes its keys; every write sent is waited for, whatever ends the
/// reading, so the summary counts what the store holds.
async fn restore_lines(
    session: &Session<'_>,
    replace: bool,
    input: &mut impl BufRead,
    restored: &mut Restored,
) -> Result<(), Failure> {
    let mut writes = Writes::new();
    let read = read_dump(session, replace, input, restored, &mut writes).await;
    let mut outcome = read;
    while let Some((done, _)) = writes.next().await {
        if let Err(failure) = count(done, restored)
            && outcome.is_ok()
        {
            outcome = Err(failure);
        }
    }
    outcome
}

async fn read_dump(
    session: &Session<'_>,
    replace: bool,
    input: &mut impl BufRead,
    restored: &mut Restored,
    writes: &mut Writes,
) -> Result<(), Failure> {
    let mut namespaces: HashMap<String, Ns> = HashMap::new();
    let mut bytes_in_flight = 0usize;
    let mut line = Vec::new();
    let mut number = 0u64;
    let mut header = false;
    let mut entries = 0u64;
    let at_line = |number: u64, message: &dyn std::fmt::Display| {
        Failure::usage(format_args!("line {number} of the dump: {message}"))
    };
    loop {
        line.clear();
        let longest = if header { MAX_LINE } else { MAX_FIRST_LINE };
        let read = io::Read::take(&mut *input, longest as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| Failure::usage(format_args!("reading the dump from stdin: {e}")))?;
        if read == 0 {
            break;
        }
        number += 1;
        if line.len() > longest {
            let message = if header {
                format!("longer than {longest} bytes, which no dump line is")
            } else {
                format!("not a namestore dump: its first line runs past {longest} bytes")
            };
            return Err(at_line(number, &message));
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let object: Map<String, Value> = match serde_json::from_slice(text) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return Err(at_line(number, &"not a JSON object")),
            Err(e) => return Err(at_line(number, &format_args!("not JSON: {e}"))),
        };
        if !header {
            check_header(&object).map_err(|message| at_line(number, &message))?;
            header = true;
            continue;
        }
        if object.get("end").is_some() {
            let counted = object.get("keys").and_then(Value::as_u64);
            if counted != Some(entries) {
                return Err(at_line(
                    number,
                    &format_args!(
                        "the dump's last line counts {} keys, but {entries} came before it",
                        counted.map_or_else(|| "no".to_owned(), |n| n.to_string())
                    ),
                ));
            }
            return after_end(input, number);
        }
        let entry = read_entry(object).map_err(|message| at_line(number, &message))?;
        entries += 1;
        let ttl = match entry.expires_at {
            None => None,
            Some(at) => match at.checked_sub(now_ms()).filter(|&left| left > 0) {
                Some(left) => Some(Duration::from_millis(left)),
                None => {
                    restored.expired += 1;
                    continue;
                }
            },
        };
        let ns = match namespaces.get(&entry.namespace) {
            Some(ns) => ns.clone(),
            None => {
                let ns = named_namespace(&session.store, &entry.namespace)
                    .map_err(|failure| at_line(number, &failure.message))?;
                namespaces.insert(entry.namespace.clone(), ns.clone());
                ns
            }
        };
        // Wait for room: a count of writes, and of the bytes they hold.
        let size = entry.value.len();
        while !writes.is_empty()
            && (writes.len() >= RESTORE_IN_FLIGHT
                || bytes_in_flight + size > RESTORE_IN_FLIGHT_BYTES)
        {
            let (done, freed) = writes.next().await.expect("not empty");
            bytes_in_flight -= freed;
            count(done, restored)?;
        }
        bytes_in_flight += size;
        let Entry { key, value, .. } = entry;
        writes.push(
            async move {
                let done = if replace {
                    ns.set(&key, value, ttl).await.map(|()| true)
                } else {
                    ns.set_nx(&key, value, ttl).await
                };
                (done.map_err(|error| (error, key, ns)), size)
            }
            .boxed_local(),
        );
    }
    if !header {
        return Err(Failure::usage(
            "the dump is empty: no line came on stdin (write it with `namestore dump`)",
        ));
    }
    Err(Failure::usage(format_args!(
        "the dump ends at line {number} without its last line (`{{\"end\":true,…}}`): it was \
         cut short"
    )))
}

/// Counts a finished write; a failed one becomes the command's failure, naming its key.
fn count(
    done: Result<bool, (namestore::Error, String, Ns)>,
    restored: &mut Restored,
) -> Result<(), Failure> {
    match done {
        Ok(true) => restored.written += 1,
        Ok(false) => restored.present += 1,
        Err((error, key, ns)) => {
            let failure = Failure::from(error);
            return Err(Failure {
                message: format!(
                    "writing {}: {}",
                    crate::output::shown_key(&ns.name().to_string(), &key),
                    failure.message
                ),
                ..failure
            });
        }
    }
    Ok(())
}

/// Checks that nothing but blank lines follows the dump's last line (line `end`).
fn after_end(input: &mut impl BufRead, end: u64) -> Result<(), Failure> {
    let mut rest = [0u8; 4096];
    loop {
        let read = io::Read::read(input, &mut rest)
            .map_err(|e| Failure::usage(format_args!("reading the dump from stdin: {e}")))?;
        if read == 0 {
            return Ok(());
        }
        if !rest[..read].iter().all(u8::is_ascii_whitespace) {
            return Err(Failure::usage(format_args!(
                "more follows the dump's last line (line {end}): two dumps joined, or a damaged one"
            )));
        }
    }
}

/// Checks the first line: this format, a version this build reads.
fn check_header(object: &Map<String, Value>) -> Result<(), String> {
    if object.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err("not a namestore dump: its first line must be \
                    {\"format\":\"namestore-dump\",\"version\":1,…}"
            .to_owned());
    }
    match object.get("version").and_then(Value::as_u64) {
        Some(VERSION) => Ok(()),
        Some(version) => Err(format!(
            "a dump of version {version}, which this namestore does not read (it reads version \
             {VERSION})"
        )),
        None => Err("the first line has no version".to_owned()),
    }
}

/// The key a data line holds.
fn read_entry(mut object: Map<String, Value>) -> Result<Entry, String> {
    let mut text = |field: &str| match object.remove(field) {
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(format!("`{field}` is not a string")),
        None => Ok(None),
    };
    let namespace = text("namespace")?.ok_or("no `namespace`")?;
    let key = text("key")?.ok_or("no `key`")?;
    let value = match (text("value")?, text("value_base64")?) {
        (Some(value), None) => Bytes::from(value),
        (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map(Bytes::from)
            .map_err(|e| format!("`value_base64` is not base64: {e}"))?,
        (Some(_), Some(_)) => return Err("both `value` and `value_base64`".to_owned()),
        (None, None) => return Err("no `value` or `value_base64`".to_owned()),
    };
    let expires_at = match object.remove("expires_at_ms") {
        None | Some(Value::Null) => None,
        Some(at) => Some(
            at.as_u64()
                .ok_or("`expires_at_ms` is not a whole number of milliseconds")?,
        ),
    };
    Ok(Entry {
        namespace,
        key,
        value,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The time left is rounded up to the millisecond, never down to a shorter life (or to 0,
    /// which would drop the key).
    #[test]
    fn time_left_rounds_up() {
        assert_eq!(ceil_ms(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_ms(Duration::from_millis(7)), 7);
        assert_eq!(ceil_ms(Duration::from_micros(7_001)), 8);
        assert_eq!(ceil_ms(Duration::MAX), u64::MAX);
    }

    /// Text stays text unless a control character other than tab and line ends would take six
    /// bytes to escape; bytes that are not UTF-8 are never text.
    #[test]
    fn which_values_are_text() {
        assert_eq!(dumped_text(b"user=42"), Some("user=42"));
        assert_eq!(dumped_text(b"a\tb\r\nc"), Some("a\tb\r\nc"));
        assert_eq!(dumped_text("é\u{2028}".as_bytes()), Some("é\u{2028}"));
        assert_eq!(dumped_text(b""), Some(""));
        assert_eq!(dumped_text(b"\x1b[2J"), None);
        assert_eq!(dumped_text(b"\0"), None);
        assert_eq!(dumped_text("\u{85}".as_bytes()), None);
        assert_eq!(dumped_text(b"\xff"), None);
    }
}
