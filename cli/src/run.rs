//! The store commands.

use std::io::{self, BufRead, Write};
use std::pin::pin;
use std::time::Duration;

use futures_util::StreamExt;
use namestore::{AnyDriver, Bytes, Driver, KeyTtl, Namespace};
use serde_json::{Map, Value, json};

use crate::args::{Command, Counter, Words, parse_duration};
use crate::output::{
    Failure, NOT_CONFIRMED, REFUSED, json_value, redacted_url, shown_duration, shown_listed_key,
    shown_value, write_json,
};

/// What a store command runs against.
pub struct Session<'a> {
    pub store: AnyDriver,
    pub url: &'a str,
    pub json: bool,
}

type Ns = Namespace<String, AnyDriver>;

/// The namespace named by the first one or two words, and the words after it.
fn namespace<'w>(
    session: &Session<'_>,
    words: &'w [String],
) -> Result<(Ns, &'w [String]), Failure> {
    let (root, domain, rest) = match words.split_first() {
        Some((first, rest)) => match first.split_once(':') {
            Some((root, domain)) => (root, domain, rest),
            None => match rest.split_first() {
                Some((domain, rest)) => (first.as_str(), domain.as_str(), rest),
                None => {
                    return Err(Failure::usage(format_args!(
                        "`{}` is not a namespace: write ROOT:DOMAIN or ROOT DOMAIN",
                        first.escape_debug()
                    )));
                }
            },
        },
        None => {
            return Err(Failure::usage(
                "missing the namespace: ROOT:DOMAIN or ROOT DOMAIN",
            ));
        }
    };
    Ok((session.store.namespace::<String>(root, domain)?, rest))
}

/// Checks the words after the namespace against the names of the arguments a command takes
/// (`[NAME]` is optional, `NAME...` takes one or more).
fn arguments<'w>(
    command: &str,
    rest: &'w [String],
    names: &[&str],
) -> Result<&'w [String], Failure> {
    let required = names.iter().filter(|n| !n.starts_with('[')).count();
    let variadic = names.last().is_some_and(|n| n.ends_with("..."));
    if rest.len() < required {
        return Err(Failure::usage(format_args!(
            "`{command}` needs {} after the namespace",
            names[rest.len()..required]
                .iter()
                .map(|n| format!("<{}>", n.trim_end_matches("...")))
                .collect::<Vec<_>>()
                .join(" ")
        )));
    }
    if !variadic && rest.len() > names.len() {
        return Err(Failure::usage(format_args!(
            "unexpected argument `{}` for `{command}` (see `namestore {command} --help`)",
            rest[names.len()].escape_debug()
        )));
    }
    Ok(rest)
}

fn name(ns: &Ns) -> String {
    ns.name().to_string()
}

fn object(ns: &Ns, key: &str) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("namespace".into(), json!(name(ns)));
    object.insert("key".into(), json!(key));
    object
}

/// Writes a command's answer about one key: `{"namespace", "key", fields…}` with `--json`,
/// `text` on a line otherwise.
fn reply(
    session: &Session<'_>,
    out: &mut dyn Write,
    ns: &Ns,
    key: &str,
    fields: &[(&str, Value)],
    text: impl std::fmt::Display,
) -> Result<(), Failure> {
    if session.json {
        let mut o = object(ns, key);
        for (field, value) in fields {
            o.insert((*field).into(), value.clone());
        }
        write_json(out, &o.into())?;
    } else {
        writeln!(out, "{text}")?;
    }
    Ok(())
}

/// A JSON array written item by item as a listing streams, so it is one valid document
/// however long the listing.
struct JsonArray {
    written: u64,
}

impl JsonArray {
    fn start(out: &mut dyn Write) -> io::Result<Self> {
        out.write_all(b"[")?;
        Ok(JsonArray { written: 0 })
    }

    fn item(&mut self, out: &mut dyn Write, item: &Value) -> io::Result<()> {
        out.write_all(if self.written == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *out, item).map_err(io::Error::from)?;
        self.written += 1;
        Ok(())
    }

    fn finish(self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(if self.written > 0 { b"\n]\n" } else { b"]\n" })
    }
}

/// Runs a store command, writing its answer to `out`.
pub async fn run(
    session: &Session<'_>,
    command: Command,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match command {
        Command::Get { target, raw } => get(session, &target, raw, out).await,
        Command::Set { target, ttl, stdin } => set(session, &target, ttl, stdin, out).await,
        Command::Del { target } => del(session, &target, out).await,
        Command::Exists { target } => {
            let (ns, rest) = namespace(session, &target.words)?;
            let key = &arguments("exists", rest, &["KEY"])?[0];
            let exists = ns.exists(key).await?;
            reply(session, out, &ns, key, &[("exists", json!(exists))], exists)
        }
        Command::Ttl { target } => ttl(session, &target, out).await,
        Command::Expire { target } => {
            let (ns, rest) = namespace(session, &target.words)?;
            let rest = arguments("expire", rest, &["KEY", "DURATION"])?;
            let (key, duration) = (&rest[0], parse_duration(&rest[1]).map_err(Failure::usage)?);
            if !ns.expire(key, duration).await? {
                return Err(Failure::not_found(&name(&ns), key));
            }
            reply(session, out, &ns, key, &[("expire", json!(true))], "OK")
        }
        Command::Persist { target } => {
            let (ns, rest) = namespace(session, &target.words)?;
            let key = &arguments("persist", rest, &["KEY"])?[0];
            let persisted = ns.persist(key).await?;
            if !persisted && !ns.exists(key).await? {
                return Err(Failure::not_found(&name(&ns), key));
            }
            let text = if persisted { "OK" } else { "no expiry" };
            reply(
                session,
                out,
                &ns,
                key,
                &[("persisted", json!(persisted))],
                text,
            )
        }
        Command::Incr(counter) => count(session, "incr", counter, false, out).await,
        Command::Decr(counter) => count(session, "decr", counter, true, out).await,
        Command::Keys { target } => keys(session, &target, out).await,
        Command::Clear { target, yes } => clear(session, &target, yes, out).await,
        Command::Namespaces => namespaces(session, out).await,
        Command::Dump { namespaces } => crate::dump::dump(session, &namespaces, out).await,
        Command::Restore { replace } => {
            crate::dump::restore(session, replace, io::stdin().lock(), out).await
        }
        Command::Bench(_)
        | Command::Demo
        | Command::Check
        | Command::Compact
        | Command::Completions { .. }
        | Command::Man => {
            unreachable!("handled before a store command runs")
        }
    }
}

async fn get(
    session: &Session<'_>,
    target: &Words,
    raw: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let (ns, rest) = namespace(session, &target.words)?;
    let key = &arguments("get", rest, &["KEY"])?[0];
    let Some(value) = ns.get(key).await? else {
        return Err(Failure::not_found(&name(&ns), key));
    };
    if raw {
        out.write_all(&value)?;
    } else if session.json {
        let mut o = object(&ns, key);
        json_value(&mut o, &value);
        write_json(out, &o.into())?;
    } else {
        let (shown, escaped) = shown_value(&value);
        writeln!(out, "{shown}")?;
        if escaped {
            eprintln!(
                "note: the value holds control characters or bytes that are not UTF-8, shown escaped; --raw writes its bytes"
            );
        }
    }
    Ok(())
}

async fn set(
    session: &Session<'_>,
    target: &Words,
    ttl: Option<Duration>,
    stdin: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let (ns, rest) = namespace(session, &target.words)?;
    let (key, value) = if stdin {
        let key = &arguments("set --stdin", rest, &["KEY"])?[0];
        let budget = session
            .store
            .downcast_ref::<namestore::MemoryDriver>()
            .and_then(|memory| memory.usage())
            .and_then(|usage| usage.max_bytes);
        (key, read_value(io::stdin().lock(), budget)?)
    } else {
        let rest = arguments("set", rest, &["KEY", "VALUE"])?;
        (&rest[0], Bytes::from(rest[1].clone()))
    };
    if ttl.is_some_and(|t| t.is_zero()) {
        return Err(Failure::usage("--ttl must be longer than zero"));
    }
    ns.set(key, value, ttl).await?;
    let ttl_ms = json!(ttl.map(|t| t.as_millis() as u64));
    reply(
        session,
        out,
        &ns,
        key,
        &[("stored", json!(true)), ("ttl_ms", ttl_ms)],
        "OK",
    )
}

/// Reads a value of at most [`MAX_VALUE_LEN`](namestore::MAX_VALUE_LEN) bytes, stopping one
/// byte past it: an endless or oversized input is refused without being held in memory. In a
/// store with a budget of `max_bytes` (a memory store's) a value over the budget could never be
/// stored (an entry costs its key and the store's overhead besides): reading stops one byte
/// past the budget, and the value is refused as the store refuses it.
fn read_value(input: impl io::Read, max_bytes: Option<u64>) -> Result<Bytes, Failure> {
    let limit = namestore::MAX_VALUE_LEN as u64;
    let budget = max_bytes.filter(|&budget| budget < limit);
    let mut value = Vec::new();
    io::Read::read_to_end(&mut input.take(budget.unwrap_or(limit) + 1), &mut value)
        .map_err(|e| Failure::usage(format_args!("reading the value from stdin: {e}")))?;
    let read = value.len() as u64;
    match budget {
        Some(budget) if read > budget => Err(Failure {
            kind: Some(namestore::ErrorKind::OutOfMemory),
            ..Failure::new(
                REFUSED,
                format_args!(
                    "out of memory: the value on stdin is larger than the store's budget of \
                     {budget} bytes (`max_bytes`): it cannot be stored"
                ),
            )
        }),
        _ if read > limit => Err(Failure::usage(format_args!(
            "the value on stdin is larger than the {limit}-byte limit (512 MiB)"
        ))),
        _ => Ok(Bytes::from(value)),
    }
}

async fn del(session: &Session<'_>, target: &Words, out: &mut dyn Write) -> Result<(), Failure> {
    let (ns, rest) = namespace(session, &target.words)?;
    let keys = arguments("del", rest, &["KEY..."])?;
    let mut distinct: Vec<&String> = keys.iter().collect();
    distinct.sort();
    distinct.dedup();
    let deleted = if let [key] = distinct[..] {
        u64::from(ns.delete(key).await?)
    } else {
        ns.mdel(distinct.iter().copied()).await?
    };
    let missing = distinct.len() as u64 - deleted;
    if session.json {
        let o = json!({"namespace": name(&ns), "deleted": deleted, "missing": missing});
        write_json(out, &o)?;
    } else {
        writeln!(out, "deleted {deleted}")?;
    }
    match (missing, &distinct[..]) {
        (0, _) => Ok(()),
        (_, [key]) => Err(Failure::not_found(&name(&ns), key)),
        (missing, _) => Err(Failure::new(
            crate::output::NOT_FOUND,
            format_args!(
                "{missing} of {} keys not found in {}",
                distinct.len(),
                name(&ns)
            ),
        )),
    }
}

async fn ttl(session: &Session<'_>, target: &Words, out: &mut dyn Write) -> Result<(), Failure> {
    let (ns, rest) = namespace(session, &target.words)?;
    let key = &arguments("ttl", rest, &["KEY"])?[0];
    let left = match ns.ttl(key).await? {
        KeyTtl::Missing => return Err(Failure::not_found(&name(&ns), key)),
        KeyTtl::NoExpiry => None,
        KeyTtl::ExpiresIn(left) => Some(left),
    };
    let text = left.map_or_else(|| "no expiry".to_owned(), shown_duration);
    let ttl_ms = json!(left.map(|d| d.as_millis() as u64));
    reply(session, out, &ns, key, &[("ttl_ms", ttl_ms)], text)
}

async fn count(
    session: &Session<'_>,
    command: &str,
    counter: Counter,
    down: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let (ns, rest) = namespace(session, &counter.target.words)?;
    let rest = arguments(command, rest, &["KEY", "[BY]"])?;
    let key = &rest[0];
    let by: i64 = match rest.get(1) {
        Some(by) => by.parse().map_err(|_| {
            Failure::usage(format_args!(
                "BY must be a whole number from {} to {}, got `{}`",
                i64::MIN,
                i64::MAX,
                by.escape_debug()
            ))
        })?,
        None => 1,
    };
    let delta = if down {
        by.checked_neg()
            .ok_or_else(|| Failure::usage(format_args!("decr BY cannot be {}", i64::MIN)))?
    } else {
        by
    };
    let value = match counter.ttl {
        Some(ttl) => ns.incr_with_ttl(key, delta, ttl).await?,
        None => ns.incr(key, delta).await?,
    };
    reply(session, out, &ns, key, &[("value", json!(value))], value)
}

/// Writes the keys as the scan yields them, flushing every few hundred so a long listing
/// shows up as it goes.
async fn keys(session: &Session<'_>, target: &Words, out: &mut dyn Write) -> Result<(), Failure> {
    let (ns, rest) = namespace(session, &target.words)?;
    let rest = arguments("keys", rest, &["[PATTERN]"])?;
    let pattern = rest.first().map_or("*", String::as_str);
    let mut stream = ns.scan(pattern)?;
    let mut array = if session.json {
        Some(JsonArray::start(out)?)
    } else {
        None
    };
    let mut written = 0u64;
    while let Some(key) = stream.next().await {
        let key = key?;
        match &mut array {
            Some(array) => array.item(out, &json!(key))?,
            None => writeln!(out, "{}", shown_listed_key(&key))?,
        }
        written += 1;
        if written.is_multiple_of(512) {
            out.flush()?;
        }
    }
    if let Some(array) = array {
        array.finish(out)?;
    }
    Ok(())
}

async fn clear(
    session: &Session<'_>,
    target: &Words,
    yes: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let (ns, rest) = namespace(session, &target.words)?;
    arguments("clear", rest, &[])?;
    if !yes {
        eprint!(
            "Delete every key of {} in {}? [y/N] ",
            name(&ns),
            redacted_url(session.url)
        );
        let mut answer = String::new();
        let read = io::stdin().lock().read_line(&mut answer);
        let confirmed = matches!(read, Ok(n) if n > 0)
            && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
        if !confirmed {
            if !answer.ends_with('\n') {
                eprintln!();
            }
            return Err(Failure::new(
                NOT_CONFIRMED,
                "clear was not confirmed; nothing was deleted (--yes skips the question)",
            ));
        }
    }
    let deleted = ns.clear().await?;
    if session.json {
        write_json(out, &json!({"namespace": name(&ns), "deleted": deleted}))?;
    } else {
        writeln!(out, "deleted {deleted}")?;
    }
    Ok(())
}

/// Streams the namespaces: a row per namespace as the store reports it. The count column has
/// a fixed width so rows line up without waiting for the last one.
async fn namespaces(session: &Session<'_>, out: &mut dyn Write) -> Result<(), Failure> {
    if let Some(memory) = session.store.downcast_ref::<namestore::MemoryDriver>()
        && memory.usage().is_some()
    {
        return budget_namespaces(session, memory, out);
    }
    let mut stream = pin!(session.store.namespaces());
    let mut array = if session.json {
        Some(JsonArray::start(out)?)
    } else {
        writeln!(out, "{:>12}  NAMESPACE", "KEYS")?;
        None
    };
    while let Some(info) = stream.next().await {
        let info = info?;
        match &mut array {
            Some(array) => array.item(
                out,
                &json!({
                    "namespace": info.name().to_string(),
                    "root": info.name().root(),
                    "domain": info.name().domain(),
                    "keys": info.keys(),
                }),
            )?,
            None => writeln!(out, "{:>12}  {}", info.keys(), info.name())?,
        }
        out.flush()?;
    }
    if let Some(array) = array {
        array.finish(out)?;
    }
    Ok(())
}

/// `namespaces` on a memory store with a budget: usage against the budget, then each
/// namespace with the bytes it is charged, its eviction mode and the keys it evicted and
/// reclaimed after expiry.
fn budget_namespaces(
    session: &Session<'_>,
    memory: &namestore::MemoryDriver,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let usage = memory.usage().expect("a store with a budget");
    let stats = memory.namespace_stats();
    if session.json {
        let namespaces: Vec<Value> = stats
            .iter()
            .filter(|s| s.keys > 0 || s.evicted > 0 || s.expired > 0)
            .map(|s| {
                json!({
                    "namespace": s.name.to_string(),
                    "root": s.name.root(),
                    "domain": s.name.domain(),
                    "keys": s.keys,
                    "bytes": s.bytes,
                    "eviction": s.eviction.as_str(),
                    "evicted": s.evicted,
                    "expired": s.expired,
                })
            })
            .collect();
        let document = json!({
            "used_bytes": usage.bytes,
            "used_entries": usage.entries,
            "max_bytes": usage.max_bytes,
            "max_entries": usage.max_entries,
            "namespaces": namespaces,
        });
        return Ok(write_json(out, &document)?);
    }
    let of = |used: u64, max: Option<u64>| match max {
        Some(max) => format!("{used} of {max}"),
        None => used.to_string(),
    };
    writeln!(
        out,
        "budget: {} bytes, {} entries",
        of(usage.bytes, usage.max_bytes),
        of(usage.entries, usage.max_entries)
    )?;
    let rows: Vec<Vec<String>> = stats
        .iter()
        .filter(|s| s.keys > 0 || s.evicted > 0 || s.expired > 0)
        .map(|s| {
            vec![
                s.keys.to_string(),
                s.bytes.unwrap_or_default().to_string(),
                s.evicted.to_string(),
                s.expired.to_string(),
                s.eviction.to_string(),
                s.name.to_string(),
            ]
        })
        .collect();
    crate::output::write_table(
        out,
        &[
            "KEYS",
            "BYTES",
            "EVICTED",
            "EXPIRED",
            "EVICTION",
            "NAMESPACE",
        ],
        &rows,
        &[0, 1, 2, 3],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memory store with a budget lists each namespace with the bytes it is charged, which
    /// add up to the usage on the first line (a store the process filled: the command's own
    /// memory stores start empty).
    #[test]
    fn budget_namespaces_show_their_bytes() {
        let url = "memory://?max_bytes=1MiB&eviction=any";
        let store = namestore::open(url).unwrap();
        let memory = store.downcast_ref::<namestore::MemoryDriver>().unwrap();
        let cache = memory.namespace::<String>("app", "cache").unwrap();
        let counters = memory.namespace::<String>("app", "counters").unwrap();
        futures_util::FutureExt::now_or_never(async {
            for i in 0..100 {
                cache
                    .set(&format!("k{i}"), vec![1u8; 100], None)
                    .await
                    .unwrap();
                counters.incr(&format!("c{i}"), 1).await.unwrap();
            }
        })
        .unwrap();
        let mut text = Vec::new();
        let session = Session {
            store: store.clone(),
            url,
            json: false,
        };
        budget_namespaces(&session, memory, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let usage = memory.usage().unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            format!("budget: {} of 1048576 bytes, 200 entries", usage.bytes)
        );
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            [
                "KEYS",
                "BYTES",
                "EVICTED",
                "EXPIRED",
                "EVICTION",
                "NAMESPACE"
            ]
        );
        let bytes: Vec<u64> = lines
            .map(|line| {
                let row: Vec<&str> = line.split_whitespace().collect();
                assert_eq!(row[0], "100", "{text}");
                row[1].parse().unwrap()
            })
            .collect();
        assert_eq!(bytes.len(), 2, "{text}");
        assert_eq!(bytes.iter().sum::<u64>(), usage.bytes, "{text}");
        let mut json = Vec::new();
        let session = Session {
            json: true,
            ..session
        };
        budget_namespaces(&session, memory, &mut json).unwrap();
        let json: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(json["namespaces"][0]["bytes"], bytes[0], "{json}");
    }
}
