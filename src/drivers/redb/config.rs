//! The persistent driver's settings, parsed from a `redb://` URL or built in code.

use std::path::PathBuf;
use std::time::Duration;

use crate::{Error, Result};

/// Settings of a [`RedbDriver`](super::RedbDriver).
#[derive(Clone, Debug)]
pub struct RedbConfig {
    /// The database file.
    pub path: PathBuf,
    /// `true` (the default): a call returns only once its write is on disk. `false`: commits
    /// are not flushed, and a crash (of the process or the machine) can lose every write since
    /// the last flushed commit; the file stays consistent either way.
    pub durable: bool,
    /// How often expired keys are reclaimed; `None` (or zero) turns the background thread
    /// off. A tick with no key past its deadline writes nothing.
    pub reap_interval: Option<Duration>,
    /// `true` (the default): a missing file is created (on Unix with mode 0600, its owner's
    /// alone, whatever the umask), and an empty (0-byte) file is made a new store. `false`: the file must already be a namestore file; a missing or empty file
    /// is refused with [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) and left as it
    /// is, so a mistyped path cannot turn a read into a new store.
    pub create: bool,
}

impl RedbConfig {
    /// Settings for the file at `path`: durable, created when missing, reclaiming every
    /// 100 ms.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RedbConfig {
            path: path.into(),
            durable: true,
            reap_interval: Some(Duration::from_millis(100)),
            create: true,
        }
    }

    /// Parses `redb:///absolute/path` or `redb://relative/path`, with `?durable=0` for the fast,
    /// non-durable mode and `?create=0` to open only a file that is already a store. The path
    /// runs to the first `?`; `%XX` escapes in it are decoded, so a file whose name holds a `?`
    /// is `%3F` (and a `%` is `%25`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) without a path or with an
    /// unknown parameter.
    ///
    /// ```
    /// use namestore::drivers::redb::RedbConfig;
    ///
    /// let config = RedbConfig::from_url("redb:///var/lib/app/store.redb?durable=0").unwrap();
    /// assert!(!config.durable && config.create);
    /// assert!(RedbConfig::from_url("redb://").is_err());
    ///
    /// let odd = RedbConfig::from_url("redb:///tmp/what%3F%20100%25.redb").unwrap();
    /// assert_eq!(odd.path, std::path::Path::new("/tmp/what? 100%.redb"));
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("redb://")
            .ok_or_else(|| Error::invalid_url("a redb URL starts with `redb://`"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err(Error::invalid_url(
                "a redb URL names a file: `redb:///path/to/file.redb`",
            ));
        }
        let path = crate::query::percent_decode(path).ok_or_else(|| {
            Error::invalid_url("the path in the redb URL has a malformed %-escape or is not UTF-8")
        })?;
        let mut config = RedbConfig::new(&*path);
        for parameter in crate::query::parameters(query, "redb")? {
            let flag = match (&*parameter.name, &*parameter.value) {
                (name @ ("durable" | "create"), "1" | "true") => (name, true),
                (name @ ("durable" | "create"), "0" | "false") => (name, false),
                (name, _) => {
                    return Err(Error::invalid_url(format!(
                        "unknown or malformed redb parameter `{}` (known: durable=1|0, create=1|0)",
                        crate::error::shorten(name)
                    )));
                }
            };
            match flag {
                ("durable", on) => config.durable = on,
                (_, on) => config.create = on,
            }
        }
        Ok(config)
    }
}
