//! SPEC 6.4 on Redis: clearing a namespace of 100,000 keys never blocks the server: every
//! command `clear` sends is a `SCAN` of at most 1,000 keys or an `UNLINK` of at most 1,000,
//! never `KEYS`, `FLUSHDB` or `FLUSHALL`, and those `UNLINK`s delete the 100,000 keys. Read
//! from the server's slow log with every command logged: what each command did, not how long
//! it took (wall time on a shared machine says more about the machine).
#![cfg(feature = "redis")]

use namestore::drivers::redis::RedisDriver;
use redis::Value;
use support::{free_port, start_server};

mod support;

/// The most keys one command of `clear` may touch.
const BATCH: usize = 1000;

/// A logged command: its name and how many arguments it had (the log shows the first 31 of
/// a long command, then `... (N more arguments)`).
fn logged(entry: &Value) -> (String, usize, Vec<String>) {
    let Value::Array(fields) = entry else {
        panic!("a slow log entry that is not an array: {entry:?}")
    };
    let Value::Array(args) = &fields[3] else {
        panic!("a slow log entry without its arguments: {entry:?}")
    };
    let text: Vec<String> = args
        .iter()
        .map(|arg| match arg {
            Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Value::SimpleString(text) => text.clone(),
            other => panic!("an argument that is not a string: {other:?}"),
        })
        .collect();
    let mut count = text.len() - 1;
    if let Some(more) = text.last().and_then(|last| {
        last.strip_prefix("... (")?
            .strip_suffix(" more arguments)")?
            .parse::<usize>()
            .ok()
    }) {
        count += more - 1;
    }
    (text[0].to_ascii_lowercase(), count, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_100_000_keys_never_blocks_the_server() {
    let port = free_port();
    let url = start_server(port, "");
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "big")
        .unwrap();
    for chunk in 0..100 {
        ns.mset((0..1000).map(|i| (format!("k{chunk}-{i}"), "v")), None)
            .await
            .unwrap();
    }
    let mut connection = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    // Log every command, and keep them all.
    for (setting, value) in [
        ("slowlog-log-slower-than", 0),
        ("slowlog-max-len", 1_000_000),
    ] {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(setting)
            .arg(value)
            .query::<()>(&mut connection)
            .unwrap();
    }
    redis::cmd("SLOWLOG")
        .arg("RESET")
        .query::<()>(&mut connection)
        .unwrap();
    assert_eq!(ns.clear().await.unwrap(), 100_000);
    let entries: Vec<Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query(&mut connection)
        .unwrap();
    let (mut unlinked, mut scans) = (0, 0);
    for entry in &entries {
        let (command, args, text) = logged(entry);
        match command.as_str() {
            "keys" | "flushdb" | "flushall" | "del" => {
                panic!("clear sent a command that may block the server: {text:?}")
            }
            "unlink" => {
                assert!(args <= BATCH, "an UNLINK of {args} keys");
                unlinked += args;
            }
            "scan" => {
                let count = text
                    .iter()
                    .position(|arg| arg.eq_ignore_ascii_case("count"))
                    .and_then(|at| text.get(at + 1)?.parse::<usize>().ok())
                    .unwrap_or_else(|| panic!("a SCAN without a COUNT: {text:?}"));
                assert!(count <= BATCH, "a SCAN of COUNT {count}");
                scans += 1;
            }
            _ => {}
        }
    }
    assert_eq!(
        unlinked, 100_000,
        "the keys were not deleted by the UNLINKs"
    );
    assert!(
        scans >= 100,
        "{scans} SCANs walked 100,000 keys at most 1,000 at a time"
    );
    let left: usize = redis::cmd("DBSIZE").query(&mut connection).unwrap();
    assert_eq!(left, 0);
}
