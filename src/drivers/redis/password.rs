//! The password a URL's `password_file` (or `sentinel_password_file`) names: read when the
//! config is made and again for each new connection, so a password rotated on disk (a
//! Kubernetes secret, a secrets agent's file) is used without a restart.

use std::sync::{Mutex, PoisonError};

use super::config::RedisConfig;
use super::file::read_file;
use crate::Result;

/// Reads the password in the file at `path`, which the URL's parameter `parameter` names: its
/// text, without one line ending at its end (`echo pass > file` writes one).
///
/// # Errors
///
/// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) when the file cannot be read, is
/// not UTF-8 text or holds no password; the message never quotes the file.
pub(super) fn read_password_file(parameter: &str, path: &str) -> Result<String> {
    let read = read_file(parameter, path, check_password)?;
    // Checked as UTF-8 by `check_password`.
    let text = String::from_utf8_lossy(&read);
    Ok(without_line_ending(&text).to_owned())
}

fn without_line_ending(text: &str) -> &str {
    match text.strip_suffix('\n') {
        Some(line) => line.strip_suffix('\r').unwrap_or(line),
        None => text,
    }
}

/// Checks that a password file holds a password, never quoting it.
fn check_password(read: &[u8]) -> std::result::Result<(), String> {
    let text = std::str::from_utf8(read).map_err(|_| "bytes that are not UTF-8 text")?;
    if without_line_ending(text).is_empty() {
        return Err("no password (the file is empty)".into());
    }
    Ok(())
}

/// The password file of a link's connections, read again for each ([`now`](Self::now)).
pub(super) struct PasswordFile {
    /// The URL's parameter that named the file.
    parameter: &'static str,
    path: String,
    /// The last password read from the file.
    last: Mutex<String>,
}

impl PasswordFile {
    /// The server's password file `config`'s URL named, if any, with the password read from
    /// it.
    pub(super) fn new(config: &RedisConfig) -> Option<Self> {
        let (path, password) = config.password_file()?;
        Some(PasswordFile::at("password_file", path, password))
    }

    /// The Sentinels' password file `config`'s URL named, if any, with the password read
    /// from it.
    pub(super) fn sentinels(config: &RedisConfig) -> Option<Self> {
        let sentinel = config.sentinel()?;
        let path = sentinel.password_file.as_deref()?;
        let password = sentinel.password.as_deref()?;
        Some(PasswordFile::at("sentinel_password_file", path, password))
    }

    fn at(parameter: &'static str, path: &str, password: &str) -> Self {
        PasswordFile {
            parameter,
            path: path.to_owned(),
            last: Mutex::new(password.to_owned()),
        }
    }

    /// The password for a connection about to be made: the file read again (off the
    /// runtime's threads: it may be a pipe), or, while it cannot be read or holds none (a
    /// rotation caught half way), the last password read from it.
    pub(super) async fn now(&self) -> String {
        let (parameter, path) = (self.parameter, self.path.clone());
        let read = tokio::task::spawn_blocking(move || read_password_file(parameter, &path)).await;
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Ok(Ok(password)) = read {
            *last = password;
        }
        last.clone()
    }
}
