//! The persistent driver's settings, parsed from a `redb://` URL or built in code.

use std::path::PathBuf;
use std::time::Duration;

use crate::{Error, Result};

/// redb's own default for [`RedbConfig::cache_size`].
const DEFAULT_CACHE_SIZE: usize = 1 << 30;

/// Settings of a [`RedbDriver`](super::RedbDriver).
#[derive(Clone, Debug)]
pub struct RedbConfig {
    /// The database file.
    pub path: PathBuf,
    /// `true` (the default): a call returns only once its write is on disk. `false`: a call
    /// returns once its write is committed, and commits are flushed to disk at most every
    /// [`flush_interval`](Self::flush_interval): a crash (of the process or the machine) can
    /// lose the writes of about that long, never more; the file stays consistent either way.
    pub durable: bool,
    /// With `durable = false`, how long a commit may stay unflushed: the first write after a
    /// flush is flushed by the first commit this long after it, or by the committer thread
    /// on its own when no write comes (as Redis's `appendfsync everysec`). One second by
    /// default; zero flushes every commit. [`RedbDriver::flush`](super::RedbDriver::flush)
    /// flushes at once, and reports a flush that failed. A store closed (its last handle
    /// dropped) flushes what it holds (a failure there goes unreported), and a process that
    /// exits without dropping its store (one kept in a `static`, or `std::process::exit`)
    /// loses no more than a crash would. A flush that fails (a full disk) loses what it was to
    /// flush, as a crash would; for a minute after a failed commit every commit is flushed, so
    /// writes fail with the cause instead of being acknowledged and lost at the next flush.
    pub flush_interval: Duration,
    /// How often expired keys are reclaimed; `None` (or zero) turns the background thread
    /// off. A tick with no key past its deadline writes nothing.
    pub reap_interval: Option<Duration>,
    /// `true` (the default): a missing file is created (on Unix with mode 0600, its owner's
    /// alone, whatever the umask), and an empty (0-byte) file is made a new store. `false`: the
    /// file must already be a namestore file; a missing or empty file is refused with
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) and left as it is, so a
    /// mistyped path cannot turn a read into a new store.
    pub create: bool,
    /// `false` (the default): the store reads and writes. `true`: it only reads, and never
    /// writes to the file, nor opens it for writing: a file on a read-only filesystem (a
    /// backup, a container's read-only volume) or one the process may only read can be
    /// inspected, and any number of read-only stores, in this process or others, share the
    /// file (a store that writes still excludes every other). Every write is refused with
    /// [`ErrorKind::Backend`](crate::ErrorKind::Backend) and changes nothing; expired keys read
    /// as absent but are not reclaimed (no background thread runs); `create` does not apply
    /// (the file must be a namestore file). A file whose writer stopped without closing it (a
    /// crash) needs a recovery that writes: a read-only open refuses it with
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) until a store that writes has
    /// opened it once (or [`RedbDriver::check`](super::RedbDriver::check) has run on it).
    pub read_only: bool,
    /// The most memory, in bytes, redb keeps of the file's pages to serve reads and writes
    /// without reading the file again: 1 GiB by default (redb's own default). It is a cap, not
    /// an allocation: a store holds what it has read, up to the cap, for as long as it is
    /// open, so a process reading a file of several GiB holds a full GiB. Beside a memory limit
    /// (a container's), give it less: a page not cached is read from the file (from the
    /// operating system's cache, which holds it too, when it has room). From a URL:
    /// `cache_size=64MiB` (sizes as [`MemoryConfig`](crate::drivers::memory::MemoryConfig)
    /// reads them).
    pub cache_size: usize,
}

impl RedbConfig {
    /// Settings for the file at `path`: durable, created when missing, reclaiming every
    /// 100 ms.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RedbConfig {
            path: path.into(),
            durable: true,
            flush_interval: Duration::from_secs(1),
            reap_interval: Some(Duration::from_millis(100)),
            create: true,
            read_only: false,
            cache_size: DEFAULT_CACHE_SIZE,
        }
    }

    /// Parses `redb:///absolute/path` or `redb://relative/path`, with `?durable=0` for the fast,
    /// non-durable mode (and `flush_interval_ms=…` for its
    /// [`flush_interval`](Self::flush_interval)), `?create=0` to open only a file that is
    /// already a store, `?read_only=1` to only read it ([`read_only`](Self::read_only)), and
    /// `?cache_size=64MiB` to bound its memory ([`cache_size`](Self::cache_size)). The path
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
    /// let fast = RedbConfig::from_url("redb:///tmp/cache.redb?durable=0&flush_interval_ms=200")
    ///     .unwrap();
    /// assert_eq!(fast.flush_interval, std::time::Duration::from_millis(200));
    /// assert!(RedbConfig::from_url("redb:///tmp/cache.redb?flush_interval_ms=soon").is_err());
    ///
    /// let small = RedbConfig::from_url("redb:///var/lib/app/store.redb?cache_size=64MiB").unwrap();
    /// assert_eq!(small.cache_size, 64 << 20);
    /// assert!(RedbConfig::from_url("redb://").is_err());
    ///
    /// let backup = RedbConfig::from_url("redb:///mnt/backup/store.redb?read_only=1").unwrap();
    /// assert!(backup.read_only);
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
            if parameter.name == "cache_size" {
                config.cache_size = crate::size::parse_size(&parameter.value)
                    .ok()
                    .and_then(|bytes| usize::try_from(bytes).ok())
                    .ok_or_else(|| {
                        Error::invalid_url(
                            "redb parameter `cache_size` takes a size such as 64MiB, 1gb or \
                             1048576",
                        )
                    })?;
                continue;
            }
            if parameter.name == "flush_interval_ms" {
                let ms: u64 = parameter.value.parse().map_err(|_| {
                    Error::invalid_url(
                        "redb parameter `flush_interval_ms` takes a number of milliseconds",
                    )
                })?;
                config.flush_interval = Duration::from_millis(ms);
                continue;
            }
            let flag = match (&*parameter.name, &*parameter.value) {
                (name @ ("durable" | "create" | "read_only"), "1" | "true") => (name, true),
                (name @ ("durable" | "create" | "read_only"), "0" | "false") => (name, false),
                (name, _) => {
                    return Err(Error::invalid_url(format!(
                        "unknown or malformed redb parameter `{}` (known: durable=1|0, \
                         flush_interval_ms=N, cache_size=SIZE, create=1|0, read_only=1|0)",
                        crate::error::shorten(name)
                    )));
                }
            };
            match flag {
                ("durable", on) => config.durable = on,
                ("create", on) => config.create = on,
                (_, on) => config.read_only = on,
            }
        }
        Ok(config)
    }
}
