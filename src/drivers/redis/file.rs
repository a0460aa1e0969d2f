//! The files a Redis URL names (TLS certificates and keys, a password), read with bounds: a
//! path to something endless or a pipe no one writes must not hang or exhaust a call.

use std::time::Duration;

use crate::{Error, Result};

/// The most bytes a file may hold: a bundle of every public root CA is about 200 KiB.
const MAX_FILE: u64 = 16 << 20;

/// How long a file that is a pipe (a secrets agent's) may take to be written.
const PIPE_WAIT: Duration = Duration::from_secs(10);

/// Reads the file the URL's parameter `name` names (a CA, a client certificate or key, a
/// password), at most [`MAX_FILE`] bytes, and checks it with `check`, which says what is
/// wrong without quoting the file (it may be a secret): a path to something endless
/// (`/dev/zero`, a pipe no one closes) must not read until memory runs out. A named pipe is
/// opened without waiting for a writer (one with none reads as empty: no certificate, rather
/// than a parse that never returns), and waited for [`PIPE_WAIT`] at most.
pub(super) fn read_file(
    name: &str,
    path: &str,
    check: fn(&[u8]) -> std::result::Result<(), String>,
) -> Result<Vec<u8>> {
    use std::io::Read;
    let cannot_read = |e: std::io::Error| {
        Error::invalid_url(format!(
            "Redis parameter `{name}`: cannot read `{}`: {e}",
            crate::error::shorten(path)
        ))
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let mut file = options.open(path).map_err(cannot_read)?.take(MAX_FILE + 1);
    let mut read = Vec::new();
    let started = std::time::Instant::now();
    loop {
        match file.read_to_end(&mut read) {
            Ok(_) => break,
            // A pipe whose writer has not written yet.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if started.elapsed() > PIPE_WAIT {
                    return Err(cannot_read(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("nothing more came in {PIPE_WAIT:?}"),
                    )));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(cannot_read(e)),
        }
    }
    if read.len() as u64 > MAX_FILE {
        return Err(Error::invalid_url(format!(
            "Redis parameter `{name}`: `{}` holds more than {} MiB, more than any certificate \
             or password file",
            crate::error::shorten(path),
            MAX_FILE >> 20
        )));
    }
    check(&read).map_err(|why| {
        Error::invalid_url(format!(
            "Redis parameter `{name}`: `{}` holds {why}",
            crate::error::shorten(path)
        ))
    })?;
    Ok(read)
}
