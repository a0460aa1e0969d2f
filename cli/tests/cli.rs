//! The `namestore` binary, run for real: every command against the in-memory default, a
//! persistent file and real Redis servers (standalone and Cluster) started by the tests.

#[path = "../../tests/support/mod.rs"]
mod support;

mod command;

use std::time::Duration;

use assert_cmd::Command;
use command::{fails, json, namestore, ok, redb_url, run, stderr, stdout, unique};

/// Every store command against the store at `url`, which keeps data between processes.
fn every_command(url: &str) {
    let ns = unique("every");
    let ns = ns.as_str();
    let (root, domain) = ns.split_once(':').unwrap();

    // set / get, the namespace written as one word or two.
    assert_eq!(ok(url, &["set", ns, "k1", "hello wörld"]), "OK\n");
    assert_eq!(ok(url, &["get", ns, "k1"]), "hello wörld\n");
    assert_eq!(ok(url, &["get", root, domain, "k1"]), "hello wörld\n");
    let got = json(&ok(url, &["--json", "get", ns, "k1"]));
    assert_eq!(got["value"], "hello wörld");
    assert_eq!(got["namespace"], ns);
    assert_eq!(got["key"], "k1");
    let line = fails(url, &["get", ns, "nope"], 1);
    assert!(
        line.contains("not found") && line.contains("nope"),
        "{line}"
    );

    // exists
    assert_eq!(ok(url, &["exists", ns, "k1"]), "true\n");
    assert_eq!(ok(url, &["exists", ns, "nope"]), "false\n");
    assert_eq!(
        json(&ok(url, &["exists", ns, "nope", "--json"]))["exists"],
        false
    );

    // ttl, expire, persist
    assert_eq!(ok(url, &["ttl", ns, "k1"]), "no expiry\n");
    assert!(json(&ok(url, &["--json", "ttl", ns, "k1"]))["ttl_ms"].is_null());
    assert_eq!(ok(url, &["expire", ns, "k1", "1h"]), "OK\n");
    let left = json(&ok(url, &["--json", "ttl", ns, "k1"]))["ttl_ms"]
        .as_u64()
        .expect("a TTL in ms");
    assert!((3_500_000..=3_600_000).contains(&left), "{left}");
    let shown = ok(url, &["ttl", ns, "k1"]);
    assert!(shown.starts_with("59m") || shown == "1h\n", "{shown:?}");
    assert_eq!(ok(url, &["persist", ns, "k1"]), "OK\n");
    assert_eq!(ok(url, &["persist", ns, "k1"]), "no expiry\n");
    assert_eq!(ok(url, &["ttl", ns, "k1"]), "no expiry\n");
    fails(url, &["ttl", ns, "nope"], 1);
    fails(url, &["expire", ns, "nope", "10s"], 1);
    fails(url, &["persist", ns, "nope"], 1);

    // set with a TTL, which then runs out.
    // (2 s: the next command must start, and connect, before the key runs out.)
    assert_eq!(ok(url, &["set", ns, "short", "v", "--ttl", "2s"]), "OK\n");
    // The key expires at most 2 s after the command returned.
    let set_at = std::time::Instant::now();
    let left = json(&ok(url, &["ttl", ns, "short", "--json"]))["ttl_ms"]
        .as_u64()
        .unwrap();
    assert!((1..=2000).contains(&left), "{left}");
    std::thread::sleep(Duration::from_millis(2300).saturating_sub(set_at.elapsed()));
    fails(url, &["get", ns, "short"], 1);

    // incr / decr, with BY, with a TTL on creation.
    assert_eq!(ok(url, &["incr", ns, "n"]), "1\n");
    assert_eq!(ok(url, &["incr", ns, "n", "41"]), "42\n");
    assert_eq!(ok(url, &["decr", ns, "n", "-8"]), "50\n");
    assert_eq!(ok(url, &["decr", ns, "n"]), "49\n");
    assert_eq!(
        json(&ok(url, &["--json", "incr", ns, "n", "1"]))["value"],
        50
    );
    assert_eq!(ok(url, &["get", ns, "n"]), "50\n");
    assert_eq!(ok(url, &["incr", ns, "window", "--ttl", "1m"]), "1\n");
    let left = json(&ok(url, &["ttl", ns, "window", "--json"]))["ttl_ms"]
        .as_u64()
        .unwrap();
    assert!((50_000..=60_000).contains(&left), "{left}");
    assert_eq!(ok(url, &["incr", ns, "window", "--ttl", "1h"]), "2\n");
    let left = json(&ok(url, &["ttl", ns, "window", "--json"]))["ttl_ms"]
        .as_u64()
        .unwrap();
    assert!(left <= 60_000, "an existing counter keeps its TTL: {left}");

    // keys: every key, a pattern, JSON.
    let mut keys: Vec<String> = ok(url, &["keys", ns]).lines().map(String::from).collect();
    keys.sort();
    assert_eq!(keys, ["k1", "n", "window"]);
    assert_eq!(ok(url, &["keys", ns, "k*"]), "k1\n");
    assert_eq!(ok(url, &["keys", ns, "zz*"]), "");
    let mut listed: Vec<String> =
        serde_json::from_value(json(&ok(url, &["--json", "keys", root, domain]))).unwrap();
    listed.sort();
    assert_eq!(listed, ["k1", "n", "window"]);
    assert_eq!(
        json(&ok(url, &["--json", "keys", ns, "zz*"])),
        serde_json::json!([])
    );

    // namespaces: ours, with its count.
    let table = ok(url, &["namespaces"]);
    assert!(table.starts_with("        KEYS  NAMESPACE\n"), "{table}");
    assert!(table.contains(&format!("           3  {ns}\n")), "{table}");
    let rows = json(&ok(url, &["--json", "namespaces"]));
    let ours: Vec<_> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["namespace"] == ns)
        .collect();
    assert_eq!(ours.len(), 1, "{rows}");
    assert_eq!(ours[0]["keys"], 3);
    assert_eq!(ours[0]["root"], root);
    assert_eq!(ours[0]["domain"], domain);

    // del: one key, several keys, missing keys.
    assert_eq!(ok(url, &["del", ns, "window"]), "deleted 1\n");
    fails(url, &["del", ns, "window"], 1);
    ok(url, &["set", ns, "a", "1"]);
    ok(url, &["set", ns, "b", "2"]);
    let output = run(url, &["--json", "del", ns, "a", "b", "ghost", "a"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let answer = json(&stdout(&output));
    assert_eq!(
        (answer["deleted"].as_u64(), answer["missing"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(
        stderr(&output).contains("1 of 3 keys not found"),
        "{}",
        stderr(&output)
    );
    assert_eq!(ok(url, &["exists", ns, "a"]), "false\n");

    // expire with zero deletes, as Redis does.
    ok(url, &["set", ns, "gone", "v"]);
    assert_eq!(ok(url, &["expire", ns, "gone", "0s"]), "OK\n");
    assert_eq!(ok(url, &["exists", ns, "gone"]), "false\n");

    // Bytes that are not UTF-8: exact with --raw, escaped for people, base64 in JSON.
    let bytes = b"\xff\x00a\\\n".to_vec();
    namestore(url)
        .args(["set", ns, "bin", "--stdin"])
        .write_stdin(bytes.clone())
        .assert()
        .success();
    let raw = namestore(url)
        .args(["get", ns, "bin", "--raw"])
        .output()
        .unwrap();
    assert!(raw.status.success());
    assert_eq!(raw.stdout, bytes);
    let shown = run(url, &["get", ns, "bin"]);
    assert_eq!(stdout(&shown), "\\xff\\0a\\\\\\n\n");
    assert!(stderr(&shown).contains("not UTF-8"), "{}", stderr(&shown));
    assert_eq!(
        json(&ok(url, &["--json", "get", ns, "bin"]))["value_base64"],
        "/wBhXAo="
    );

    // clear: refused without an answer, done after `y`, or with --yes.
    let line = fails(url, &["clear", ns], 5);
    assert!(line.contains("not confirmed"), "{line}");
    assert_eq!(ok(url, &["exists", ns, "k1"]), "true\n");
    let output = namestore(url)
        .args(["clear", ns])
        .write_stdin("n\n")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(5));
    assert_eq!(ok(url, &["exists", ns, "k1"]), "true\n");
    let output = namestore(url)
        .args(["clear", ns])
        .write_stdin("y\n")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "deleted 3\n");
    assert!(stderr(&output).contains(&format!("Delete every key of {ns}")));
    assert_eq!(ok(url, &["keys", ns]), "");
    ok(url, &["set", ns, "again", "v"]);
    assert_eq!(
        json(&ok(url, &["clear", ns, "--yes", "--json"]))["deleted"],
        1
    );
    assert!(!ok(url, &["namespaces"]).contains(ns));
}

/// The namespace's keys, sorted: listings come in no particular order (on a cluster, not even
/// the same order twice).
fn sorted_keys(url: &str, ns: &str) -> Vec<String> {
    let mut keys: Vec<String> =
        serde_json::from_value(json(&ok(url, &["--json", "keys", ns]))).unwrap();
    keys.sort();
    keys
}

/// Malformed commands: one line and exit code 2, before the store is touched.
fn usage_errors(url: &str, ns: &str) {
    let line = fails(url, &["keys", ns, "[abc"], 2);
    assert!(line.contains("pattern"), "{line}");
    let line = fails(url, &["set", "bad root", "x", "k", "v"], 2);
    assert!(line.contains("invalid namespace"), "{line}");
    fails(url, &["set", "a:b:c", "k", "v"], 2);
    fails(url, &["set", ns, "", "v"], 2);
    fails(url, &["set", ns, "k", "v", "--ttl", "0s"], 2);
    fails(url, &["set", ns, "k", "v", "--ttl", "soon"], 2);
    fails(url, &["set", ns, "k", "v", "--ttl", "200y"], 2);
    fails(url, &["set", ns, "k"], 2);
    fails(url, &["set", ns, "k", "v", "extra"], 2);
    fails(url, &["expire", ns, "n", "whenever"], 2);
    fails(url, &["incr", ns, "n", "seven"], 2);
    fails(url, &["decr", ns, "n", "-9223372036854775808"], 2);
    fails(url, &["get", ns], 2);
    fails(url, &["get"], 2);
    fails(url, &["get", "lonely"], 2);
    fails(url, &["frobnicate", ns], 2);
}

/// Bad input: one line, the documented code, and nothing changed.
fn bad_input_changes_nothing(url: &str) {
    let ns = unique("bad");
    let ns = ns.as_str();
    ok(url, &["set", ns, "text", "not a number"]);
    ok(url, &["set", ns, "n", "7"]);
    let before = sorted_keys(url, ns);

    let line = fails(url, &["incr", ns, "text"], 4);
    assert!(line.contains("not an integer"), "{line}");
    assert_eq!(ok(url, &["get", ns, "text"]), "not a number\n");
    fails(url, &["incr", ns, "n", "9223372036854775807"], 4);
    assert_eq!(ok(url, &["get", ns, "n"]), "7\n");
    usage_errors(url, ns);
    assert_eq!(ok(url, &["get", ns, "n"]), "7\n");
    assert_eq!(sorted_keys(url, ns), before);
    assert_eq!(ok(url, &["exists", ns, "k"]), "false\n");
    ok(url, &["clear", ns, "--yes"]);
}

#[test]
fn persistent_file_every_command() {
    let (url, path) = redb_url("every");
    every_command(&url);
    bad_input_changes_nothing(&url);
    assert!(path.exists());
}

#[test]
fn persistent_file_keys_stream_and_namespaces_count() {
    let (url, path) = redb_url("many");
    {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store = namestore::open(&url).unwrap();
        runtime.block_on(async {
            let big = store.namespace::<String>("big", "keys").unwrap();
            for chunk in (0..5000).collect::<Vec<_>>().chunks(1000) {
                big.mset(chunk.iter().map(|i| (format!("k{i:05}"), "v")), None)
                    .await
                    .unwrap();
            }
            let small = store.namespace::<String>("a", "small").unwrap();
            small.set(&"x".to_owned(), "v", None).await.unwrap();
        });
    }
    let keys = ok(&url, &["keys", "big:keys"]);
    let mut keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 5000);
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 5000);
    assert_eq!(
        ok(&url, &["namespaces"]),
        "        KEYS  NAMESPACE\n           1  a:small\n        5000  big:keys\n"
    );
    // A reader that goes away (`| head -1`) ends the listing quietly and successfully.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("namestore"))
        .env_remove("NAMESTORE_URL")
        .args(["--url", &url, "keys", "big:keys"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 3];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    assert_eq!(stderr(&output), "");
    drop(path);
}

#[test]
fn persistent_file_in_missing_directory_is_one_line() {
    let url = "redb:///nonexistent-dir-for-namestore/x/data.redb";
    let line = fails(url, &["set", "a:b", "k", "v"], 3);
    assert!(line.contains("cannot open"), "{line}");
    let line = fails(url, &["get", "a:b", "k"], 3);
    assert!(line.contains("does not exist"), "{line}");
}

/// A read never creates a store: a mistyped path is exit 3 and no file appears. An empty
/// (0-byte) file is refused by reads and left empty; a write makes it a new store (it held
/// nothing to lose). A file that is not a namestore file is exit 3 for every command and is
/// left unchanged.
#[test]
fn persistent_file_reads_never_create_and_foreign_files_are_refused() {
    let (url, path) = redb_url("mistyped");
    for args in [
        &["get", "a:b", "k"][..],
        &["exists", "a:b", "k"],
        &["ttl", "a:b", "k"],
        &["keys", "a:b"],
        &["namespaces"],
    ] {
        let line = fails(&url, args, 3);
        assert!(line.contains("does not exist"), "{args:?}: {line}");
        assert!(!path.exists(), "{args:?} created {}", path.display());
    }

    std::fs::write(&path, b"").unwrap();
    let line = fails(&url, &["get", "a:b", "k"], 3);
    assert!(line.contains("is empty"), "{line}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    assert_eq!(ok(&url, &["set", "a:b", "k", "v"]), "OK\n");
    assert_eq!(ok(&url, &["get", "a:b", "k"]), "v\n");

    let foreign = path.with_file_name("notes.txt");
    std::fs::write(&foreign, b"not a database, keep me").unwrap();
    let foreign_url = format!("redb://{}", foreign.display());
    for args in [&["get", "a:b", "k"][..], &["set", "a:b", "k", "v"]] {
        let line = fails(&foreign_url, args, 3);
        assert!(line.contains("not a namestore file"), "{line}");
    }
    assert_eq!(std::fs::read(&foreign).unwrap(), b"not a database, keep me");
}

/// A damaged file is exit 3 with one line that points at `namestore check`, never a panic;
/// `check` repairs what redb can (exit 0) and says when it cannot (exit 4).
#[test]
fn persistent_file_damaged_is_one_line_and_check_repairs_or_says_why() {
    let (url, path) = redb_url("damaged");
    for i in 0..40 {
        ok(
            &url,
            &["set", "app:s", &format!("k{i}"), &format!("value {i}")],
        );
    }
    assert!(ok(&url, &["check"]).starts_with("intact: "));
    let pristine = std::fs::read(&path).unwrap();
    let (mut refused, mut repaired, mut beyond) = (0, 0, 0);
    for page in 0..pristine.len() / 4096 {
        let mut bytes = pristine.clone();
        bytes[page * 4096..(page + 1) * 4096].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        let output = run(&url, &["keys", "app:s"]);
        let err = stderr(&output);
        match output.status.code() {
            Some(0) => {}
            // 3: the open found the damage; 4: a read did (`keys` opens the file read-only,
            // which checks less when opening).
            Some(3 | 4) => {
                refused += 1;
                assert_eq!(err.lines().count(), 1, "page {page}: {err}");
                // Page 0 holds redb's magic number: without it, the file is not a database.
                assert!(
                    err.contains("namestore check")
                        || (page == 0 && err.contains("not a namestore file")),
                    "page {page}: {err}"
                );
            }
            other => panic!("page {page}: exit {other:?}: {err}"),
        }
        let output = run(&url, &["check"]);
        let err = stderr(&output);
        match output.status.code() {
            Some(0) if stdout(&output).starts_with("repaired: ") => repaired += 1,
            Some(0) => assert!(stdout(&output).starts_with("intact: ")),
            Some(4) => {
                beyond += 1;
                assert!(err.contains("cannot be repaired"), "page {page}: {err}");
            }
            Some(3) if page == 0 => assert!(err.contains("not a namestore file"), "{err}"),
            other => panic!("page {page}: check exit {other:?}: {err}"),
        }
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(
        refused > 0 && repaired + beyond > 0,
        "{refused} {repaired} {beyond}"
    );
    fails("memory://", &["check"], 2);
}

/// `compact` gives a file's free space back: a file that held 8 MB, since deleted, shrinks,
/// and keeps what it holds; JSON gives the sizes; a missing file is not created (exit 3), and
/// a store that is not a file is a usage error.
#[test]
fn persistent_file_compact_gives_space_back() {
    let (url, path) = redb_url("compact");
    let value = vec![b'x'; 1_000_000];
    for i in 0..8 {
        let output = namestore(&url)
            .args(["set", "app:s", &format!("big{i}"), "--stdin"])
            .write_stdin(value.clone())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    ok(&url, &["set", "app:s", "kept", "here"]);
    for i in 0..8 {
        ok(&url, &["del", "app:s", &format!("big{i}")]);
    }
    let held = std::fs::metadata(&path).unwrap().len();
    let shown = ok(&url, &["compact"]);
    assert!(shown.starts_with("compacted: "), "{shown}");
    assert!(shown.contains(" MiB to "), "{shown}");
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(
        after < held / 2,
        "{held} bytes before, {after} after: {shown}"
    );
    assert_eq!(ok(&url, &["get", "app:s", "kept"]), "here\n");

    // (redb may trim the file's end when it opens or closes it: sizes are compared loosely.)
    let report = json(&ok(&url, &["--json", "compact"]));
    let (before, compacted) = (report["before"].as_u64(), report["after"].as_u64());
    assert!(before.is_some_and(|before| before <= after), "{report}");
    assert!(
        compacted.is_some_and(|compacted| compacted <= before.unwrap()),
        "{report}"
    );
    assert_eq!(report["path"], path.display().to_string());

    let missing = path.with_file_name("never-made.redb");
    let error = fails(&format!("redb://{}", missing.display()), &["compact"], 3);
    assert!(!missing.exists(), "compact made a file: {error}");
    fails("memory://", &["compact"], 2);
}

/// Stored data cannot drive the operator's terminal: control characters (ESC, BEL, CSI…) are
/// escaped in text output, and `--raw` still writes the exact bytes.
#[test]
fn control_characters_in_values_and_keys_are_escaped() {
    let (url, _) = redb_url("escapes");
    let hostile = "title\x1b]0;owned\x07 clear\x1b[2J csi\u{9b}31m";
    namestore(&url)
        .args(["set", "app:s", "k", "--stdin"])
        .write_stdin(hostile)
        .assert()
        .success();
    ok(&url, &["set", "app:s", "key\x1b[31m", "v"]);
    let output = run(&url, &["get", "app:s", "k"]);
    let shown = stdout(&output);
    assert!(!shown.trim_end().chars().any(char::is_control), "{shown:?}");
    assert!(shown.contains("\\u{1b}]0;owned\\u{7}"), "{shown:?}");
    assert!(stderr(&output).contains("shown escaped"));
    let raw = namestore(&url)
        .args(["get", "app:s", "k", "--raw"])
        .output()
        .unwrap();
    assert_eq!(raw.stdout, hostile.as_bytes());
    let keys = ok(&url, &["keys", "app:s"]);
    assert!(
        !keys.replace('\n', "").chars().any(char::is_control),
        "{keys:?}"
    );
    let line = fails(&url, &["incr", "app:s", "k"], 4);
    assert!(!line.chars().any(char::is_control), "{line:?}");
}

/// Runs `namestore --url URL set app:s big --stdin` with up to 1 GiB written to its stdin, as
/// fast as it reads; the command's output and how much was written before it stopped reading.
fn set_from_endless_stdin(url: &str) -> (std::process::Output, u64) {
    use std::io::Write;
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("namestore"))
        .env_remove("NAMESTORE_URL")
        .args(["--url", url, "set", "app:s", "big", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![0u8; 1 << 20];
        let mut written: u64 = 0;
        // Up to 1 GiB: twice the limit.
        while written < 1 << 30 {
            match input.write_all(&chunk) {
                Ok(()) => written += chunk.len() as u64,
                Err(_) => break,
            }
        }
        written
    });
    let output = child.wait_with_output().unwrap();
    (output, writer.join().unwrap())
}

/// `set --stdin` stops reading one byte past the 512 MiB limit: an endless input is refused
/// (usage error) without being read to its end.
#[test]
fn an_endless_stdin_is_refused_at_the_limit() {
    let (url, _) = redb_url("stdin");
    let (output, written) = set_from_endless_stdin(&url);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("512 MiB"), "{}", stderr(&output));
    assert!(
        written < 600 << 20,
        "the command read {} MiB of stdin before refusing it",
        written >> 20
    );
}

/// In a memory store with a byte budget, `set --stdin` stops reading one byte past the budget:
/// a value the store could never hold is refused as the store refuses it (out of memory, exit
/// code 4), not read to 512 MiB first. A value within the budget is stored.
#[test]
fn stdin_past_a_memory_budget_is_refused_at_the_budget() {
    let url = "memory://?max_bytes=1MiB";
    let (output, written) = set_from_endless_stdin(url);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("budget of 1048576 bytes"),
        "{}",
        stderr(&output)
    );
    assert!(
        written < 64 << 20,
        "the command read {} MiB of stdin before refusing it",
        written >> 20
    );
    let stored = namestore(url)
        .args(["set", "app:s", "k", "--stdin"])
        .write_stdin(vec![7u8; 100_000])
        .output()
        .unwrap();
    assert_eq!(stored.status.code(), Some(0), "{}", stderr(&stored));
}

/// A TTL of `100y` is the documented maximum, and `ttl` shows it at a glance.
#[test]
fn a_hundred_years_is_the_longest_ttl() {
    let (url, _) = redb_url("century");
    assert_eq!(
        ok(&url, &["set", "app:s", "k", "v", "--ttl", "100y"]),
        "OK\n"
    );
    assert_eq!(ok(&url, &["ttl", "app:s", "k"]), "100y\n");
    fails(&url, &["set", "app:s", "k", "v", "--ttl", "101y"], 2);
    assert_eq!(ok(&url, &["expire", "app:s", "k", "36500d"]), "OK\n");
    assert_eq!(ok(&url, &["ttl", "app:s", "k"]), "99y 340d\n");
}

/// A password holding `?`, `#`, `@`, `/`, `%` or `:` (written raw or percent-encoded) never
/// reaches an error line, and the right one still logs in.
#[test]
fn passwords_with_url_characters_never_leak() {
    let port = support::free_port();
    let password = "p?a#s@s/w%o:rdSENTINEL";
    support::start_server(port, &format!("--requirepass '{password}'"));
    let encoded = "p%3Fa%23s%40s%2Fw%25o%3ArdSENTINEL";
    for special in ["?", "#", "@", "/", ":"] {
        let wrong = format!("redis://user:pa{special}ssSENTINEL@127.0.0.1:{port}");
        let output = run(&wrong, &["get", "a:b", "k"]);
        let err = stderr(&output);
        assert!(!err.contains("SENTINEL"), "{special}: {err}");
        assert!(!err.contains("ssSENT"), "{special}: {err}");
        assert_eq!(output.status.code(), Some(4), "{special}: {err}");
    }
    let unreachable = format!(
        "redis://user:pa?ssSENTINEL@127.0.0.1:{}",
        support::free_port()
    );
    let line = fails(&unreachable, &["get", "a:b", "k"], 3);
    assert!(!line.contains("SENTINEL"), "{line}");
    let output = namestore(&unreachable)
        .args(["clear", "a:b"])
        .write_stdin("n\n")
        .output()
        .unwrap();
    assert!(!stderr(&output).contains("SENTINEL"), "{}", stderr(&output));
    let right = format!("redis://:{encoded}@127.0.0.1:{port}/0");
    assert_eq!(ok(&right, &["set", "a:b", "k", "v"]), "OK\n");
    let raw_right = format!(
        "redis://:{}@127.0.0.1:{port}/0",
        password.replace('%', "%25")
    );
    assert_eq!(ok(&raw_right, &["get", "a:b", "k"]), "v\n");
}

#[test]
fn redis_every_command() {
    let url = support::start_server(support::free_port(), "");
    every_command(&url);
    bad_input_changes_nothing(&url);
    // Bad input sent nothing that wrote: the server holds no key.
    assert_eq!(support::stored_keys(&url), 0);
}

#[test]
fn redis_cluster_every_command() {
    let url = support::start_cluster();
    // With keys spread over the slots, and with each namespace in one slot (hash tag).
    for url in [url.clone(), format!("{url}?hash_tag=1")] {
        every_command(&url);
        bad_input_changes_nothing(&url);
        let ns = unique("spread");
        for i in 0..50 {
            ok(&url, &["set", &ns, &format!("k{i}"), "v"]);
        }
        assert_eq!(ok(&url, &["keys", &ns]).lines().count(), 50);
        assert!(
            ok(&url, &["namespaces"]).contains(&format!("          50  {ns}\n")),
            "{url}"
        );
        assert_eq!(ok(&url, &["clear", &ns, "--yes"]), "deleted 50\n");
    }
    assert_eq!(support::stored_keys(&url), 0);
}

#[test]
fn unreachable_store_has_its_own_code_and_hides_the_password() {
    let port = support::free_port();
    let url = format!("redis://user:hunter2-secret@127.0.0.1:{port}/0?connect_timeout_ms=500");
    for args in [
        &["get", "a:b", "k"][..],
        &["set", "a:b", "k", "v"],
        &["keys", "a:b"],
        &["namespaces"],
        &["clear", "a:b", "--yes"],
        &["bench", "--time", "100ms", "--ops", "get"],
    ] {
        let output = run(&url, args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    // The prompt names the store without its password.
    let output = namestore(&url)
        .args(["clear", "a:b"])
        .write_stdin("n\n")
        .output()
        .unwrap();
    let err = stderr(&output);
    assert!(
        err.contains(&format!("redis://***@127.0.0.1:{port}/0?")),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn malformed_urls_are_usage_errors() {
    for url in [
        "nosuch://x",
        "no-scheme",
        "redis://host:notaport",
        "memory://?shards=banana",
    ] {
        let line = fails(url, &["get", "a:b", "k"], 2);
        assert!(
            line.contains("URL") || line.contains("url"),
            "{url}: {line}"
        );
    }
}

#[test]
fn url_from_the_environment() {
    let (url, _) = redb_url("env");
    let mut command = Command::cargo_bin("namestore").unwrap();
    command
        .env("NAMESTORE_URL", &url)
        .args(["set", "env:test", "k", "from-env"])
        .assert()
        .success();
    assert_eq!(ok(&url, &["get", "env:test", "k"]), "from-env\n");
    // --help shows where the URL comes from, never its value.
    let help = Command::cargo_bin("namestore")
        .unwrap()
        .env("NAMESTORE_URL", "redis://:topsecret@host")
        .arg("--help")
        .output()
        .unwrap();
    let help = stdout(&help);
    assert!(
        help.contains("NAMESTORE_URL") && !help.contains("topsecret"),
        "{help}"
    );
}

#[test]
fn memory_default_commands() {
    let url = "memory://";
    // Each process has its own empty store.
    assert_eq!(ok(url, &["set", "app:s", "k", "v"]), "OK\n");
    let output = run(url, &["get", "app:s", "k"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("memory:// starts empty"));
    assert_eq!(ok(url, &["incr", "app:s", "n", "3"]), "3\n");
    assert_eq!(ok(url, &["exists", "app:s", "k"]), "false\n");
    assert_eq!(ok(url, &["keys", "app:s"]), "");
    assert_eq!(ok(url, &["namespaces"]), "        KEYS  NAMESPACE\n");
    assert_eq!(ok(url, &["--json", "namespaces"]), "[]\n");
    assert_eq!(ok(url, &["clear", "app:s", "--yes"]), "deleted 0\n");
    fails(url, &["ttl", "app:s", "k"], 1);
    fails(url, &["del", "app:s", "k"], 1);
    // The default store is memory://.
    let mut command = Command::cargo_bin("namestore").unwrap();
    command
        .env_remove("NAMESTORE_URL")
        .args(["set", "app:s", "k", "v"])
        .assert()
        .success()
        .stdout("OK\n");
    usage_errors(url, "app:s");
}

#[test]
fn demo_tours_the_commands() {
    let out = ok("memory://", &["demo"]);
    for expected in [
        "$ namestore set app:sessions s-7f3a user=42 --ttl 30m\nOK\n",
        "$ namestore get app:sessions s-7f3a\nuser=42\n",
        "$ namestore incr app:visits home 10\n11\n",
        "           2  app:sessions\n           1  app:visits\n",
        "error: key not found: app:sessions s-7f3a (exit code 1)",
        "is not an integer (exit code 4)",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

/// The bench's table: one row per operation, with throughput and percentiles.
fn bench_table(url: &str, extra: &[&str]) -> String {
    let mut args = vec!["bench", "--time", "150ms"];
    args.extend_from_slice(extra);
    let out = ok(url, &args);
    let header = out.lines().nth(1).expect("a header row");
    for column in ["op", "ops/s", "time/op", "p50", "p99", "p99.9"] {
        assert!(header.split_whitespace().any(|c| c == column), "{header}");
    }
    out
}

#[test]
fn bench_on_memory_prints_every_operation() {
    let out = bench_table("memory://", &[]);
    for op in [
        "get",
        "set",
        "exists",
        "incr",
        "delete+set",
        "delete+set_nx",
        "get_set",
        "cas",
        "ttl",
        "mget(10)",
        "mset(10)",
        "mdel(10)+mset(10)",
        "get/set",
        "keys(*)",
    ] {
        assert!(
            out.lines().any(|l| l.split_whitespace().next() == Some(op)),
            "no row for {op}:\n{out}"
        );
    }
    assert!(
        out.starts_with(
            "memory:// (memory, statically dispatched, calls polled in place on threads)"
        ),
        "{out}"
    );
    let doc = json(&ok(
        "memory://",
        &[
            "--json",
            "bench",
            "--time",
            "100ms",
            "--ops",
            "get,incr,get",
            "-c",
            "3",
        ],
    ));
    let rows = doc["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(doc["concurrency"], 3);
    for row in rows {
        assert!(row["ops"].as_u64().unwrap() > 1000, "{row}");
        let (p50, p99, p999) = (
            row["p50_ns"].as_u64().unwrap(),
            row["p99_ns"].as_u64().unwrap(),
            row["p999_ns"].as_u64().unwrap(),
        );
        assert!(p50 <= p99 && p99 <= p999, "{row}");
    }
}

#[test]
fn bench_on_redis_and_file() {
    let url = support::start_server(support::free_port(), "");
    let out = bench_table(
        &url,
        &[
            "--ops",
            "get,set,mget",
            "--concurrency",
            "4",
            "--keys",
            "100",
        ],
    );
    assert_eq!(out.lines().count(), 6, "{out}");
    // The bench leaves nothing behind.
    assert_eq!(support::stored_keys(&url), 0);
    // It refuses a namespace that holds data.
    ok(&url, &["set", "mine:data", "k", "v"]);
    for bad in [
        &["bench", "--time", "0s"][..],
        &["bench", "--keys", "0"],
        &["bench", "-c", "0"],
        &["bench", "--ops", "frob"],
        &["bench", "--namespace", "no-colon"],
        &["bench", "--namespace", "a:b:c"],
    ] {
        fails(&url, bad, 2);
    }
    // A run longer than the clock holds was a panic, and the bench's loops then kept the
    // process running, at full CPU and deaf to Ctrl-C.
    for endless in ["18446744073709551615s", "101y"] {
        let line = fails(&url, &["bench", "--time", endless, "--ops", "get"], 2);
        assert!(line.contains("at most 100 years"), "{line}");
    }
    let line = fails(
        &url,
        &["bench", "--namespace", "mine:data", "--time", "50ms"],
        2,
    );
    assert!(line.contains("holds keys"), "{line}");
    assert_eq!(ok(&url, &["get", "mine:data", "k"]), "v\n");

    let (file, _) = redb_url("bench");
    let out = bench_table(&file, &["--ops", "get,incr", "--keys", "50"]);
    assert_eq!(out.lines().count(), 5, "{out}");
}

#[test]
fn help_completions_and_man_page() {
    let help = ok("memory://", &["--help"]);
    for command in [
        "get",
        "set",
        "del",
        "exists",
        "ttl",
        "expire",
        "persist",
        "incr",
        "decr",
        "keys",
        "clear",
        "namespaces",
        "bench",
        "demo",
        "completions",
        "man",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "--help lists {command}:\n{help}"
        );
        let sub = ok("memory://", &[command, "--help"]);
        assert!(sub.contains("Usage: namestore"), "{command} --help:\n{sub}");
    }
    assert!(help.contains("Exit codes:"), "{help}");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = ok("memory://", &["completions", shell]);
        assert!(script.contains("namespaces"), "{shell}");
    }
    let man = ok("memory://", &["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH namestore"),
        "{man}"
    );
    fails("memory://", &["completions", "tcsh"], 2);
    for command in ["demo", "man"] {
        let line = fails("memory://", &["--json", command], 2);
        assert!(line.contains("--json"), "{line}");
    }
}

#[test]
fn redis_over_tls_with_a_private_ca() {
    let dir = support::certificates();
    let port = support::start_tls_server(dir);
    let url = format!(
        "rediss://127.0.0.1:{port}/0?tls_ca_file={}&response_timeout_ms=30000",
        dir.join("ca.crt").display()
    );
    let ns = unique("tls");
    assert_eq!(
        ok(&url, &["set", &ns, "k", "over tls", "--ttl", "1h"]),
        "OK\n"
    );
    assert_eq!(ok(&url, &["get", &ns, "k"]), "over tls\n");
    assert_eq!(ok(&url, &["incr", &ns, "n", "2"]), "2\n");
    assert_eq!(ok(&url, &["keys", &ns]).lines().count(), 2);
    assert!(ok(&url, &["namespaces"]).contains(&format!("           2  {ns}\n")));
    assert_eq!(ok(&url, &["clear", &ns, "--yes"]), "deleted 2\n");
    // Without the CA the server is not trusted: refused as refused credentials are (a retry
    // meets the same certificate), one line.
    let untrusted = format!("rediss://127.0.0.1:{port}/0?connect_timeout_ms=1000");
    let line = fails(&untrusted, &["get", &ns, "k"], 4);
    assert!(line.contains("certificate"), "{line}");
}

#[test]
fn bench_interrupted_removes_its_keys() {
    let url = support::start_server(support::free_port(), "");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("namestore"))
        .env_remove("NAMESTORE_URL")
        .args([
            "--url", &url, "bench", "--time", "20s", "--ops", "set", "-c", "4",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run is under way: the bench's keys are in the store.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while support::stored_keys(&url) < 1000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the bench never filled its keys"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the bench stopped late"
    );
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("error: interrupted; the bench's keys were removed"),
        "{err}"
    );
    assert_eq!(support::stored_keys(&url), 0, "the bench's keys remain");
}

#[test]
fn persistent_file_open_elsewhere_is_unreachable() {
    let (url, _) = redb_url("locked");
    let _held = namestore::open(&url).expect("the test holds the file");
    let line = fails(&url, &["get", "a:b", "k"], 3);
    assert!(line.contains("already open"), "{line}");
}

/// Commands that only read open a file read-only: they read a file that cannot be written
/// (a read-only filesystem, another user's file), share it with other readers, and leave it
/// as it was; a file its writer left open (a crash) is recovered first, as before.
#[test]
fn persistent_file_reads_open_it_read_only() {
    let (url, path) = redb_url("read-only");
    ok(&url, &["set", "a:b", "k", "v"]);
    ok(&url, &["set", "a:b", "t", "w", "--ttl", "1h"]);
    let reads = [
        (&["get", "a:b", "k"][..], "v\n"),
        (&["exists", "a:b", "k"], "true\n"),
        (&["keys", "a:b"], "k\nt\n"),
    ];
    let read_all = |url: &str| {
        for (args, expected) in reads {
            assert_eq!(ok(url, args), expected, "{args:?}");
        }
        let ttl = ok(url, &["ttl", "a:b", "t"]);
        assert!(ttl == "1h\n" || ttl.starts_with("59m"), "{ttl}");
        assert!(ok(url, &["namespaces"]).contains("a:b"));
    };
    let before = std::fs::read(&path).unwrap();
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    // Beside a reader in another process.
    {
        let _reader = namestore::open(&format!("{url}?read_only=1")).unwrap();
        read_all(&url);
    }
    assert!(
        std::fs::read(&path).unwrap() == before,
        "a read changed the file"
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        modified
    );
    {
        if let Some(_read_only) = support::read_only::read_only(path.parent().unwrap()) {
            read_all(&url);
            let line = fails(&url, &["set", "a:b", "k", "new"], 3);
            assert!(line.contains("read_only=1"), "{line}");
            // The check may repair: it says to check a copy, not to open it read-only.
            let line = fails(&url, &["check"], 3);
            assert!(line.contains("writable copy"), "{line}");
        }
    }
    // A copy taken while the file was open: its writer never closed it.
    let copy = path.with_file_name("copy.redb");
    {
        let _writer = namestore::open(&url).unwrap();
        std::fs::copy(&path, &copy).unwrap();
    }
    read_all(&format!("redb://{}", copy.display()));
}

#[test]
fn redis_refusing_the_password_is_one_line_without_it() {
    let port = support::free_port();
    support::start_server(port, "--requirepass right-one");
    let line = fails(
        &format!("redis://:wrong-hunter2@127.0.0.1:{port}/0"),
        &["get", "a:b", "k"],
        4,
    );
    assert!(line.contains("auth") || line.contains("Auth"), "{line}");
    assert!(!line.contains("hunter2"), "{line}");
    fails(&format!("redis://127.0.0.1:{port}/0"), &["keys", "a:b"], 4);
    let url = format!("redis://:right-one@127.0.0.1:{port}/0");
    assert_eq!(ok(&url, &["set", "a:b", "k", "v"]), "OK\n");
    assert_eq!(ok(&url, &["get", "a:b", "k"]), "v\n");
}

/// A memory store with a budget: `namespaces` shows usage against it, `bench` runs in it and
/// reports what it evicted, and a budget that may not evict refuses the bench's writes
/// (exit 4, out of memory) instead of growing.
#[test]
fn memory_budget_in_namespaces_and_bench() {
    let shown = ok("memory://?max_bytes=1MiB&eviction=any", &["namespaces"]);
    assert!(
        shown.starts_with("budget: 0 of 1048576 bytes, 0 entries\n"),
        "{shown}"
    );
    let json = json(&ok("memory://?max_entries=5", &["--json", "namespaces"]));
    assert_eq!(json["max_entries"], 5);
    let report = ok(
        "memory://?max_entries=100&eviction=any",
        &[
            "bench", "--time", "50ms", "--ops", "get,set", "--keys", "1000",
        ],
    );
    let budget = report.lines().last().unwrap();
    assert!(budget.starts_with("budget: "), "{report}");
    assert!(budget.contains("in 100 entries of 100 entries"), "{budget}");
    assert!(budget.contains("(eviction any)"), "{budget}");
    let line = fails(
        "memory://?max_entries=100",
        &["bench", "--time", "50ms", "--ops", "set", "--keys", "1000"],
        4,
    );
    assert!(line.contains("out of memory"), "{line}");
    // It says how to measure the store as a cache.
    assert!(line.contains("add `eviction=any` to the URL"), "{line}");
    let line = fails(
        "memory://?max_entries=100&eviction=with-ttl",
        &["bench", "--time", "50ms", "--ops", "set", "--keys", "1000"],
        4,
    );
    assert!(
        line.contains("out of memory") && !line.contains("eviction=any"),
        "{line}"
    );
    // A store that may evict but is too small for the bench's batches says so.
    let line = fails(
        "memory://?max_entries=5&eviction=any",
        &["bench", "--time", "50ms", "--ops", "get", "--keys", "100"],
        4,
    );
    assert!(
        line.contains("give the store room for at least 10 keys"),
        "{line}"
    );
}
