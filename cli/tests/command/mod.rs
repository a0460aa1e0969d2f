//! Running the `namestore` binary in the tests: its output and exit code checked.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;

use crate::support;

/// The binary with the store `url`, and no NAMESTORE_URL leaking in from the environment.
pub fn namestore(url: &str) -> Command {
    let mut command = Command::cargo_bin("namestore").expect("the namestore binary");
    command.env_remove("NAMESTORE_URL").arg("--url").arg(url);
    command.timeout(Duration::from_secs(60));
    command
}

/// Runs `namestore --url URL ARGS…` with stdin closed.
pub fn run(url: &str, args: &[&str]) -> Output {
    namestore(url).args(args).write_stdin("").output().unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 stdout")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("UTF-8 stderr")
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(url: &str, args: &[&str]) -> String {
    ok_reading(url, args, b"")
}

/// As [`ok`], with `input` on stdin.
#[track_caller]
pub fn ok_reading(url: &str, args: &[&str], input: &[u8]) -> String {
    let output = namestore(url)
        .args(args)
        .write_stdin(input.to_vec())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "namestore {args:?} failed ({:?}): {}",
        output.status.code(),
        stderr(&output)
    );
    stdout(&output)
}

/// Asserts the exit code and that stderr is one `error:` line; returns that line.
#[track_caller]
pub fn fails(url: &str, args: &[&str], code: i32) -> String {
    fails_reading(url, args, b"", code)
}

/// As [`fails`], with `input` on stdin.
#[track_caller]
pub fn fails_reading(url: &str, args: &[&str], input: &[u8], code: i32) -> String {
    let output = namestore(url)
        .args(args)
        .write_stdin(input.to_vec())
        .output()
        .unwrap();
    let err = stderr(&output);
    assert_eq!(
        output.status.code(),
        Some(code),
        "namestore {args:?}: exit code (stderr: {err})"
    );
    // Besides the error: notes, and the question `clear` asks.
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("note: ") && !l.starts_with("Delete every key of"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "namestore {args:?}: one line of error, got {err:?}"
    );
    assert!(errors[0].starts_with("error: "), "{err:?}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err:?}"
    );
    errors[0].to_owned()
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// A fresh, unique namespace per call.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "cli-{}-{}:{tag}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A path for a persistent store file in a fresh temporary directory.
pub fn redb_url(tag: &str) -> (String, PathBuf) {
    let dir = support::scratch_dir("cli").join(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("data.redb");
    (format!("redb://{}", path.display()), path)
}
