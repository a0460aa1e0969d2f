//! Scratch directories for a test process, removed once the process is gone.
//!
//! Files a test leaves behind (store files, Redis nodes' configurations, certificates) are
//! needed until the last test of the process that uses them, and servers started by the
//! process may write to them until they stop; so a directory is removed by a shell that waits
//! for the process to end, as the servers' wrappers do (`support::start_server`), not by the
//! test. Runs left a directory per file-writing test binary and per cluster behind before:
//! thousands of them after a few dozen runs.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};

/// `namestore-{name}-{pid}` in the system's temporary directory, created on the first call
/// for `name` in this process (emptied first: a process of the same id may have left it) and
/// removed with everything in it once this process is gone.
#[allow(clippy::zombie_processes)]
pub fn scratch_dir(name: &str) -> PathBuf {
    static MADE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("namestore-{name}-{pid}"));
    let mut made = MADE.lock().unwrap_or_else(PoisonError::into_inner);
    if made.insert(name.to_owned()) {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Not waited for, by design: it outlives the process.
        Command::new("sh")
            .arg("-c")
            .arg(r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; rm -rf -- "$2""#)
            .arg("sh")
            .arg(pid.to_string())
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("a shell to remove the scratch directory");
    }
    dir
}
