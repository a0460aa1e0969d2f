//! `namestore dump` and `namestore restore`, run for real: a store's keys moved whole between
//! a file, a Redis server and a Redis Cluster; what the target holds kept; a damaged dump
//! refused, saying what was written before the damage.

#[path = "../../tests/support/mod.rs"]
mod support;

mod command;

use std::collections::BTreeMap;
use std::process::Output;

use command::{fails, fails_reading, json, namestore, ok, ok_reading, redb_url, stderr, stdout};
use serde_json::Value;

/// Runs `namestore --url URL ARGS…` with `input` on stdin.
fn with_stdin(url: &str, args: &[&str], input: &[u8]) -> Output {
    namestore(url)
        .args(args)
        .write_stdin(input.to_vec())
        .output()
        .unwrap()
}

/// `restore` of `input`, which must succeed; its summary line.
#[track_caller]
fn restore(url: &str, args: &[&str], input: &[u8]) -> String {
    ok_reading(url, args, input)
}

/// `restore` of `input`, which must fail with `code` and one error line; that line.
#[track_caller]
fn restore_fails(url: &str, input: &[u8], code: i32) -> String {
    fails_reading(url, &["restore"], input, code)
}

/// A dump's lines, checked for its first and last line: its keys by (namespace, key), each
/// line without `namespace` and `key`.
#[track_caller]
fn entries(dump: &str) -> BTreeMap<(String, String), Value> {
    let lines: Vec<Value> = dump.lines().map(json).collect();
    assert_eq!(lines[0]["format"], "namestore-dump", "{dump}");
    assert_eq!(lines[0]["version"], 1, "{dump}");
    assert!(lines[0]["taken_at_ms"].as_u64().unwrap() > 1_700_000_000_000);
    let last = lines.last().unwrap();
    assert_eq!(last["end"], true, "{dump}");
    assert_eq!(last["keys"], lines.len() as u64 - 2, "{dump}");
    lines[1..lines.len() - 1]
        .iter()
        .map(|line| {
            let mut line = line.as_object().unwrap().clone();
            let namespace = line
                .remove("namespace")
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned();
            let key = line.remove("key").unwrap().as_str().unwrap().to_owned();
            ((namespace, key), Value::Object(line))
        })
        .collect()
}

/// Asserts that two dumps hold the same keys and values, and the same expiry to within a
/// second (each dump rounds the time left up to a millisecond, and reads the clock per key).
#[track_caller]
fn assert_same_keys(a: &str, b: &str) {
    let (mut a, mut b) = (entries(a), entries(b));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "different keys"
    );
    for (name, line) in &mut a {
        let other = b.get_mut(name).unwrap();
        let at = |line: &mut Value| {
            line.as_object_mut()
                .unwrap()
                .remove("expires_at_ms")
                .map(|at| at.as_u64().unwrap())
        };
        match (at(line), at(other)) {
            (Some(x), Some(y)) => assert!(x.abs_diff(y) < 1000, "{name:?}: {x} against {y}"),
            (x, y) => assert_eq!(x, y, "{name:?}"),
        }
        assert_eq!(line, other, "{name:?}");
    }
}

/// A dump written by hand: the lines given between a first and a last line.
fn dump_of(lines: &[String]) -> Vec<u8> {
    let mut dump = String::from(r#"{"format":"namestore-dump","version":1,"taken_at_ms":0}"#);
    dump.push('\n');
    for line in lines {
        dump.push_str(line);
        dump.push('\n');
    }
    dump.push_str(&format!(r#"{{"end":true,"keys":{}}}"#, lines.len()));
    dump.push('\n');
    dump.into_bytes()
}

fn dump(url: &str) -> String {
    ok(url, &["dump"])
}

#[test]
fn a_file_moves_to_redis_then_a_cluster_and_back_whole() {
    let (file, _) = redb_url("moves");
    ok(
        &file,
        &["set", "app:sessions", "s-1", "user=42", "--ttl", "30m"],
    );
    ok(
        &file,
        &["set", "app:sessions", "a key: with / spaces é?*[", "v"],
    );
    ok(&file, &["set", "app:text", "lines", "one\ntwo\tthree\r\n"]);
    ok(&file, &["set", "app:text", "empty", ""]);
    ok(
        &file,
        &["set", "app:text", "quoted", r#"{"json": "in \"a\" value"}"#],
    );
    ok(&file, &["incr", "app:visits", "home", "10"]);
    let binary = [0xff, 0x00, 0x1b, b'[', b'2', b'J', 0x80];
    let output = with_stdin(&file, &["set", "app:blobs", "b", "--stdin"], &binary);
    assert!(output.status.success(), "{}", stderr(&output));
    // A value of 3 MiB among many small ones: the restore's writes in flight are bounded by
    // their bytes as well as their count.
    let big: String = (0..3 << 20)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut bulk: Vec<String> = (0..2000)
        .map(|i| format!(r#"{{"namespace":"bulk:items","key":"item-{i}","value":"{i}"}}"#))
        .collect();
    bulk.insert(
        1000,
        format!(r#"{{"namespace":"bulk:items","key":"big","value":"{big}"}}"#),
    );
    let summary = restore(&file, &["restore"], &dump_of(&bulk));
    assert_eq!(summary, "restored 2001 keys\n");

    let from_file = dump(&file);
    let keys = entries(&from_file);
    assert_eq!(keys.len(), 2001 + 7);
    let line = |ns: &str, key: &str| keys[&(ns.to_owned(), key.to_owned())].clone();
    assert_eq!(line("app:text", "lines")["value"], "one\ntwo\tthree\r\n");
    assert_eq!(line("app:visits", "home")["value"], "10");
    // Control characters other than tab and line ends, and bytes that are not UTF-8, go in
    // base64.
    assert_eq!(line("app:blobs", "b")["value_base64"], "/wAbWzJKgA==");
    assert_eq!(
        line("bulk:items", "big")["value"].as_str().unwrap().len(),
        3 << 20
    );
    let expires = line("app:sessions", "s-1")["expires_at_ms"]
        .as_u64()
        .unwrap();
    let taken = json(from_file.lines().next().unwrap())["taken_at_ms"]
        .as_u64()
        .unwrap();
    assert!(
        (29 * 60_000..=30 * 60_000).contains(&(expires - taken)),
        "{expires} - {taken}"
    );
    assert!(line("app:text", "empty").get("expires_at_ms").is_none());

    let redis = support::start_server(support::free_port(), "");
    assert_eq!(
        restore(&redis, &["restore"], from_file.as_bytes()),
        "restored 2008 keys\n"
    );
    let from_redis = dump(&redis);
    assert_same_keys(&from_file, &from_redis);

    let cluster = support::start_cluster();
    restore(&cluster, &["restore"], from_redis.as_bytes());
    let from_cluster = dump(&cluster);
    assert_same_keys(&from_file, &from_cluster);

    let (back, _) = redb_url("moved-back");
    restore(&back, &["restore"], from_cluster.as_bytes());
    assert_same_keys(&from_file, &dump(&back));
    // What came back works as it did: the counter counts on, the session expires as before,
    // the bytes are the bytes.
    assert_eq!(ok(&back, &["incr", "app:visits", "home"]), "11\n");
    let ttl = json(&ok(&back, &["--json", "ttl", "app:sessions", "s-1"]))["ttl_ms"]
        .as_u64()
        .unwrap();
    assert!((28 * 60_000..=30 * 60_000).contains(&ttl), "{ttl}");
    let raw = namestore(&back)
        .args(["get", "app:blobs", "b", "--raw"])
        .output()
        .unwrap();
    assert_eq!(raw.stdout, binary);
}

#[test]
fn restore_keeps_what_the_store_holds_unless_told_to_replace() {
    let (file, _) = redb_url("keeps");
    ok(&file, &["set", "app:x", "k", "mine"]);
    let far = 4_102_444_800_000u64; // 2100-01-01
    let theirs = dump_of(&[
        format!(r#"{{"namespace":"app:x","key":"k","value":"theirs","expires_at_ms":{far}}}"#),
        r#"{"namespace":"app:x","key":"new","value":"n"}"#.to_owned(),
    ]);
    assert_eq!(
        restore(&file, &["restore"], &theirs),
        "restored 1 key, kept 1 the store held already (--replace overwrites them)\n"
    );
    assert_eq!(ok(&file, &["get", "app:x", "k"]), "mine\n");
    assert_eq!(ok(&file, &["ttl", "app:x", "k"]), "no expiry\n");
    let summary = json(&restore(
        &file,
        &["--json", "restore", "--replace"],
        &theirs,
    ));
    assert_eq!(
        summary,
        serde_json::json!({"restored": 2, "present": 0, "expired": 0})
    );
    assert_eq!(ok(&file, &["get", "app:x", "k"]), "theirs\n");
    let ttl = json(&ok(&file, &["--json", "ttl", "app:x", "k"]))["ttl_ms"]
        .as_u64()
        .unwrap();
    assert!(ttl > 70 * 365 * 86_400_000, "{ttl}");
}

#[test]
fn keys_expired_since_the_dump_are_skipped() {
    let (file, _) = redb_url("expired");
    let dump = dump_of(&[
        r#"{"namespace":"app:x","key":"gone","value":"v","expires_at_ms":1000}"#.to_owned(),
        r#"{"namespace":"app:x","key":"kept","value":"v","expires_at_ms":4102444800000}"#
            .to_owned(),
    ]);
    assert_eq!(
        restore(&file, &["restore"], &dump),
        "restored 1 key, skipped 1 expired since the dump\n"
    );
    assert_eq!(ok(&file, &["exists", "app:x", "gone"]), "false\n");
    assert_eq!(ok(&file, &["exists", "app:x", "kept"]), "true\n");
}

#[test]
fn a_damaged_dump_is_refused_saying_what_was_written() {
    let (file, _) = redb_url("damaged");
    ok(&file, &["set", "seed:x", "k", "v"]);
    let whole = dump(&file);
    let key = |i: u32| format!(r#"{{"namespace":"app:d","key":"k{i}","value":"v"}}"#);
    let two = String::from_utf8(dump_of(&[key(1), key(2)])).unwrap();
    let cut: String = two.lines().take(3).map(|l| format!("{l}\n")).collect();
    let cases: Vec<(String, &str)> = vec![
        (
            cut,
            "error: the dump ends at line 3 without its last line (`{\"end\":true,…}`): it was \
             cut short; before it: restored 2 keys",
        ),
        (
            two.replace(r#""keys":2"#, r#""keys":3"#),
            "error: line 4 of the dump: the dump's last line counts 3 keys, but 2 came before it",
        ),
        (
            format!("{two}{whole}"),
            "error: more follows the dump's last line (line 4): two dumps joined, or a damaged one",
        ),
        (
            two.replace(r#""version":1"#, r#""version":2"#),
            "error: line 1 of the dump: a dump of version 2, which this namestore does not read \
             (it reads version 1); nothing was written",
        ),
        (
            key(1),
            "error: line 1 of the dump: not a namestore dump: its first line must be \
             {\"format\":\"namestore-dump\",\"version\":1,…}; nothing was written",
        ),
        (
            String::new(),
            "error: the dump is empty: no line came on stdin (write it with `namestore dump`); \
             nothing was written",
        ),
        (
            two.replace(r#""value":"v"}"#, r#""value":"v""#),
            "error: line 2 of the dump: not JSON: EOF while parsing an object",
        ),
        (
            two.replace(r#""value":"v""#, r#""value_base64":"*""#),
            "error: line 2 of the dump: `value_base64` is not base64",
        ),
        (
            two.replace(r#""value":"v""#, r#""value":"v","value_base64":"dg==""#),
            "error: line 2 of the dump: both `value` and `value_base64`",
        ),
        (
            two.replace(r#""value":"v""#, r#""value":7"#),
            "error: line 2 of the dump: `value` is not a string",
        ),
        (
            two.replace(r#""value":"v""#, r#""value":"v","expires_at_ms":-5"#),
            "error: line 2 of the dump: `expires_at_ms` is not a whole number of milliseconds",
        ),
        (
            two.replace("app:d", "app d"),
            "error: line 2 of the dump: `app d` is not a namespace written ROOT:DOMAIN",
        ),
        (
            two.replace("app:d", "app!:d"),
            "error: line 2 of the dump: invalid namespace root",
        ),
    ];
    for (input, expected) in &cases {
        let (target, _) = redb_url("damaged-target");
        let error = restore_fails(&target, input.as_bytes(), 2);
        assert!(error.starts_with(expected), "{error}\nexpected: {expected}");
    }
    // Input that is no dump, however long, is refused after its first few kilobytes.
    let (target, _) = redb_url("damaged-target");
    let endless = vec![b'x'; 64 << 20];
    let error = restore_fails(&target, &endless, 2);
    assert_eq!(
        error,
        "error: line 1 of the dump: not a namestore dump: its first line runs past 4096 bytes; \
         nothing was written"
    );
    // A key the store refuses is the store's error, naming the key; what came before it was
    // written.
    let (target, _) = redb_url("damaged-target");
    let error = restore_fails(&target, &dump_of(&[key(1), key(1).replace("k1", "")]), 2);
    assert_eq!(
        error,
        "error: writing app:d : invalid key \"\": a key cannot be empty; before it: restored 1 key"
    );
    // The dump cut short wrote the keys before the cut.
    let (target, _) = redb_url("cut-target");
    restore_fails(&target, &two.as_bytes()[..two.len() - 5], 2);
    assert_eq!(ok(&target, &["keys", "app:d"]).lines().count(), 2);
}

#[test]
fn a_store_refusing_a_write_stops_the_restore_naming_the_key() {
    let lines: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{"namespace":"app:big","key":"k{i:03}","value":"{}"}}"#,
                "x".repeat(1024)
            )
        })
        .collect();
    let dump = dump_of(&lines);
    let full = "memory://?max_bytes=64KiB";
    let error = restore_fails(full, &dump, 4);
    assert!(error.starts_with("error: writing app:big k"), "{error}");
    assert!(error.contains("out of memory"), "{error}");
    let written: u64 = error
        .split("before it: restored ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{error}"));
    assert!((30..64).contains(&written), "{error}");
    // A store that evicts takes every key, keeping what fits.
    let summary = restore(
        "memory://?max_bytes=64KiB&eviction=any",
        &["restore"],
        &dump,
    );
    assert_eq!(summary, "restored 200 keys\n");
}

#[test]
fn dump_reads_only_the_namespaces_named() {
    let (file, path) = redb_url("named");
    ok(&file, &["set", "app:a", "k", "1"]);
    ok(&file, &["set", "app:b", "k", "2"]);
    let only_a = entries(&ok(&file, &["dump", "app:a"]));
    assert_eq!(
        only_a.keys().collect::<Vec<_>>(),
        [&("app:a".to_owned(), "k".to_owned())]
    );
    let error = fails(&file, &["dump", "app a"], 2);
    assert_eq!(
        error,
        "error: `app a` is not a namespace written ROOT:DOMAIN"
    );
    fails(&file, &["--json", "dump"], 2);
    // A read: a file that is not there is not created.
    let missing = format!("redb://{}", path.with_file_name("missing.redb").display());
    fails(&missing, &["dump"], 3);
    assert!(!path.with_file_name("missing.redb").exists());
    let output = namestore(&file).arg("dump").output().unwrap();
    assert_eq!(stderr(&output), "dumped 2 keys of 2 namespaces\n");
}

/// On a terminal, `restore` says where the dump should come from rather than wait for one in
/// silence (`script` gives the command a terminal).
#[test]
fn restore_on_a_terminal_says_what_it_reads() {
    let (file, path) = redb_url("terminal");
    let binary = assert_cmd::cargo::cargo_bin("namestore");
    let command = format!("{} --url {file} restore", binary.display());
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("NAMESTORE_URL")
        .output()
        .expect("script (util-linux) runs the command on a terminal");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("error: restore reads a dump on stdin, which is a terminal"),
        "{shown}"
    );
    assert!(!path.exists(), "a store was created");
}

/// A key another client gave another Redis type in a dumped namespace is passed over, and
/// said so; the dump goes on (it ended at that key, on `get`'s `WRONGTYPE`).
#[test]
fn keys_of_other_redis_types_are_passed_over() {
    let url = support::start_server(support::free_port(), "");
    ok(&url, &["set", "app:x", "a", "1"]);
    ok(&url, &["set", "app:x", "b", "2"]);
    let mut connection = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let pushed: i64 = redis::cmd("RPUSH")
        .arg("app:x:list")
        .arg("item")
        .query(&mut connection)
        .unwrap();
    assert_eq!(pushed, 1);
    let output = namestore(&url).arg("dump").output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let keys = entries(&stdout(&output));
    assert_eq!(
        keys.keys().map(|(_, key)| key.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(
        stderr(&output),
        "dumped 2 keys of 1 namespace; passed over 1 listed key gone by the time it was read, \
         or holding another Redis type than a string (written by another client)\n"
    );
}
