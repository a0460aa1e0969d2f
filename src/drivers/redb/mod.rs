//! The embedded persistent driver: one durable file, no server, on
//! [redb](https://docs.rs/redb) (ACID, copy-on-write B-trees). Cargo feature `redb`.
//!
//! Every key is stored under `root:domain:key` in one table, so a namespace is a key range and
//! `keys`, `scan` and `clear` read only that range. A value is stored with its absolute
//! wall-clock deadline (Unix milliseconds), so a TTL keeps running while the process is down;
//! a second table indexes keys by deadline, so a background thread reclaims expired keys
//! without scanning the data. Each operation, and each batch, is one write transaction; by
//! default a call returns once its transaction is durable on disk.

use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_core::Stream;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use crate::driver::Driver;
use crate::glob::Pattern;
use crate::name::{NamespaceInfo, NamespaceName, split_full_key};
use crate::ttl::{Expiry, KeyTtl, Ttl};
use crate::{Error, Key, Namespace, Result, counter};

/// The URL scheme of the persistent driver: `redb:///path/to/file.redb`.
pub const SCHEME: &str = "redb";

/// Key → 8-byte deadline (Unix ms, big-endian; 0 for none) followed by the value.
const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("namestore.data");
/// (deadline, key) → (): the keys with a TTL, by deadline.
const EXPIRY: TableDefinition<(u64, &[u8]), ()> = TableDefinition::new("namestore.expiry");
/// Marks a file as namestore's, with its format version.
const META: TableDefinition<&str, &str> = TableDefinition::new("namestore.meta");
const FORMAT: &str = "namestore-redb-1";

/// Keys per page of `scan`, per transaction of `clear` and per reclamation step.
const PAGE: usize = 1000;

/// Settings of a [`RedbDriver`].
#[derive(Clone, Debug)]
pub struct RedbConfig {
    /// The database file; created when missing.
    pub path: PathBuf,
    /// `true` (the default): a call returns only once its write is on disk. `false`: commits
    /// are not flushed, and a crash (of the process or the machine) can lose every write since
    /// the last flushed commit; the file stays consistent either way.
    pub durable: bool,
    /// How often expired keys are reclaimed; `None` turns the background thread off.
    pub reap_interval: Option<Duration>,
}

impl RedbConfig {
    /// Settings for the file at `path`, durable, reclaiming every 100 ms.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RedbConfig {
            path: path.into(),
            durable: true,
            reap_interval: Some(Duration::from_millis(100)),
        }
    }

    /// Parses `redb:///absolute/path` or `redb://relative/path`, with `?durable=0` for the fast,
    /// non-durable mode.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) without a path or with an
    /// unknown parameter.
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
        let mut config = RedbConfig::new(path);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=').unwrap_or((pair, "")) {
                ("durable", "1" | "true") => config.durable = true,
                ("durable", "0" | "false") => config.durable = false,
                (name, _) => {
                    return Err(Error::invalid_url(format!(
                        "unknown or malformed redb parameter `{}` (known: durable=1|0)",
                        crate::error::shorten(name)
                    )));
                }
            }
        }
        Ok(config)
    }
}

/// The persistent store: one redb file. Cheap to clone (one `Arc`); clones share the file.
#[derive(Clone)]
pub struct RedbDriver {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    config: RedbConfig,
    /// Writes queued for the committer thread; dropped first when the driver goes.
    jobs: Option<mpsc::Sender<Job>>,
    committer: Option<std::thread::JoinHandle<()>>,
    _stop: Option<mpsc::Sender<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Close the queue, then wait for the committer, so the file is closed when the last
        // handle is gone and can be opened again at once.
        self.jobs.take();
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
    }
}

/// Hands a write its answer once the commit that carries it is done (or failed, with why).
type Completion = Box<dyn FnOnce(Option<&str>) + Send>;
/// One call's writes, run inside a shared transaction.
type Job = Box<dyn FnOnce(&mut Writer<'_>) -> Completion + Send>;

/// The committer: takes the writes queued while the previous commit was in flight, runs them
/// in one write transaction and commits once (group commit), then answers each.
fn commit_loop(db: Arc<Database>, durable: bool, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut completions = Vec::with_capacity(batch.len());
        let committed = (|| -> Result<()> {
            let mut txn = db.begin_write().map_err(storage)?;
            if !durable {
                txn.set_durability(Durability::None).map_err(storage)?;
            }
            {
                let mut writer = Writer {
                    data: txn.open_table(DATA).map_err(storage)?,
                    expiry: txn.open_table(EXPIRY).map_err(storage)?,
                    now: now_ms(),
                };
                for job in batch.drain(..) {
                    completions.push(job(&mut writer));
                }
            }
            txn.commit().map_err(storage)
        })();
        let failure = committed.err().map(|e| e.to_string());
        for complete in completions {
            complete(failure.as_deref());
        }
    }
}

/// A persistent namespace: its key prefix.
#[derive(Clone, Debug)]
pub struct RedbScope(Arc<[u8]>);

impl RedbScope {
    fn key(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.0.len() + key.len());
        full.extend_from_slice(&self.0);
        full.extend_from_slice(key.as_bytes());
        full
    }
}

fn storage<E: Into<redb::Error>>(error: E) -> Error {
    let error: redb::Error = error.into();
    Error::backend(error)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn deadline(ttl: Option<Ttl>, now: u64) -> u64 {
    ttl.map_or(0, |ttl| now.saturating_add(ttl.as_millis()))
}

fn encode(deadline: u64, value: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(8 + value.len());
    stored.extend_from_slice(&deadline.to_be_bytes());
    stored.extend_from_slice(value);
    stored
}

fn decode(stored: &[u8]) -> (u64, &[u8]) {
    let (deadline, value) = stored.split_at(8.min(stored.len()));
    (
        u64::from_be_bytes(deadline.try_into().unwrap_or([0; 8])),
        value,
    )
}

fn live(deadline: u64, now: u64) -> bool {
    deadline == 0 || now < deadline
}

/// A write transaction's view: the live entry of a key, and writes that keep the expiry index
/// in step with the data.
struct Writer<'t> {
    data: redb::Table<'t, &'static [u8], &'static [u8]>,
    expiry: redb::Table<'t, (u64, &'static [u8]), ()>,
    now: u64,
}

impl Writer<'_> {
    /// The key's deadline and value if it is present and live; an expired entry is removed.
    fn live(&mut self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>> {
        let found = self.data.get(key).map_err(storage)?.map(|v| {
            let (deadline, value) = decode(v.value());
            (deadline, value.to_vec())
        });
        match found {
            Some((deadline, value)) if live(deadline, self.now) => Ok(Some((deadline, value))),
            Some(_) => {
                self.remove(key)?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn put(&mut self, key: &[u8], deadline: u64, value: &[u8]) -> Result<()> {
        if let Some(old) = self
            .data
            .insert(key, encode(deadline, value).as_slice())
            .map_err(storage)?
        {
            let (old_deadline, _) = decode(old.value());
            drop(old);
            if old_deadline != 0 {
                self.expiry.remove((old_deadline, key)).map_err(storage)?;
            }
        }
        if deadline != 0 {
            self.expiry.insert((deadline, key), ()).map_err(storage)?;
        }
        Ok(())
    }

    /// Removes the key; returns whether it was present and live.
    fn remove(&mut self, key: &[u8]) -> Result<bool> {
        let Some(old) = self.data.remove(key).map_err(storage)? else {
            return Ok(false);
        };
        let (deadline, _) = decode(old.value());
        drop(old);
        if deadline != 0 {
            self.expiry.remove((deadline, key)).map_err(storage)?;
        }
        Ok(live(deadline, self.now))
    }
}

impl RedbDriver {
    /// Opens (or creates) the file `config` names.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) when another process (or
    /// driver) has the file open, or the file cannot be opened or created (a missing
    /// directory, no permission); [`ErrorKind::Backend`](crate::ErrorKind::Backend) when the
    /// file is not a namestore file or cannot be read.
    pub fn open(config: RedbConfig) -> Result<Self> {
        let shown = config.path.display().to_string();
        let db = Database::create(&config.path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::unavailable(
                format!("the file {shown} is already open in another process or driver"),
                None,
            ),
            redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => Error::backend(
                format!("{shown} is not a namestore file (not a redb database)"),
            ),
            redb::DatabaseError::Storage(redb::StorageError::Io(io))
                if io.kind() == std::io::ErrorKind::InvalidData =>
            {
                Error::backend(format!(
                    "{shown} is not a namestore file (not a redb database)"
                ))
            }
            redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
                Error::unavailable(format!("cannot open {shown}: {io}"), None)
            }
            other => storage(other),
        })?;
        let txn = db.begin_write().map_err(storage)?;
        {
            let mut meta = txn.open_table(META).map_err(storage)?;
            let format = meta
                .get("format")
                .map_err(storage)?
                .map(|v| v.value().to_owned());
            match format.as_deref() {
                Some(FORMAT) => {}
                Some(_) => {
                    return Err(Error::backend(format!(
                        "{shown} has an unknown namestore format"
                    )));
                }
                None => {
                    let foreign = txn
                        .list_tables()
                        .map_err(storage)?
                        .any(|t| !t.name().starts_with("namestore."));
                    if foreign {
                        return Err(Error::backend(format!(
                            "{shown} is a redb file, but not namestore's"
                        )));
                    }
                    meta.insert("format", FORMAT).map_err(storage)?;
                }
            }
            txn.open_table(DATA).map_err(storage)?;
            txn.open_table(EXPIRY).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;

        let (stop, stopped) = match config.reap_interval {
            Some(_) => {
                let (tx, rx) = mpsc::channel::<()>();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let db = Arc::new(db);
        let (jobs, queue) = mpsc::channel::<Job>();
        let committer = {
            let (db, durable) = (Arc::clone(&db), config.durable);
            std::thread::Builder::new()
                .name("namestore-redb-commit".into())
                .spawn(move || commit_loop(db, durable, queue))
                .map_err(Error::backend)?
        };
        let inner = Arc::new(Inner {
            db,
            config,
            jobs: Some(jobs),
            committer: Some(committer),
            _stop: stop,
        });
        if let (Some(interval), Some(stopped)) = (inner.config.reap_interval, stopped) {
            let weak = Arc::downgrade(&inner);
            std::thread::Builder::new()
                .name("namestore-redb-reaper".into())
                .spawn(move || reclaim_loop(weak, stopped, interval))
                .map_err(Error::backend)?;
        }
        Ok(RedbDriver { inner })
    }

    /// Opens the file a `redb://` URL names; see [`RedbConfig::from_url`].
    ///
    /// # Errors
    ///
    /// As [`RedbConfig::from_url`] and [`RedbDriver::open`].
    pub fn from_url(url: &str) -> Result<Self> {
        RedbDriver::open(RedbConfig::from_url(url)?)
    }

    /// The file this driver stores in.
    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    /// Opens the namespace (`root`, `domain`) bound to key type `K`; see [`Namespace::new`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidNamespace`](crate::ErrorKind::InvalidNamespace) when a name breaks
    /// SPEC 1.2.
    pub fn namespace<K: Key>(&self, root: &str, domain: &str) -> Result<Namespace<K, RedbDriver>> {
        Namespace::new(self.clone(), root, domain)
    }

    /// Entries stored for a namespace prefix, expired ones not reclaimed yet included.
    pub fn stored_entries(&self, prefix: &str) -> Result<usize> {
        let txn = self.inner.db.begin_read().map_err(storage)?;
        let data = txn.open_table(DATA).map_err(storage)?;
        let mut count = 0;
        for entry in data.range::<&[u8]>(prefix.as_bytes()..).map_err(storage)? {
            let (key, _) = entry.map_err(storage)?;
            if !key.value().starts_with(prefix.as_bytes()) {
                break;
            }
            count += 1;
        }
        Ok(count)
    }

    /// Reclaims up to [`PAGE`] expired keys; returns how many.
    fn reclaim(&self) -> Result<usize> {
        self.write(|w| {
            let due: Vec<(u64, Vec<u8>)> = w
                .expiry
                .range::<(u64, &[u8])>(..(w.now + 1, &[][..]))
                .map_err(storage)?
                .take(PAGE)
                .map(|entry| {
                    entry
                        .map(|(k, _)| (k.value().0, k.value().1.to_vec()))
                        .map_err(storage)
                })
                .collect::<Result<_>>()?;
            for (_, key) in &due {
                w.remove(key)?;
            }
            Ok(due.len())
        })
    }

    /// Runs `f` in a write transaction shared with the writes queued at the same time, and
    /// returns once that transaction is committed (durably unless configured otherwise). `f`
    /// must check before it writes: a failing call leaves its transaction's other writes alone.
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (answer, answered) = mpsc::sync_channel::<Result<T>>(1);
        let job: Job = Box::new(move |writer| {
            let result = f(writer);
            Box::new(move |failure: Option<&str>| {
                let _ = answer.send(match failure {
                    Some(why) => Err(Error::backend(format!("commit failed: {why}"))),
                    None => result,
                });
            })
        });
        let jobs = self
            .inner
            .jobs
            .as_ref()
            .ok_or_else(|| Error::backend("the store is closing"))?;
        jobs.send(job)
            .map_err(|_| Error::backend("the committer thread stopped"))?;
        answered
            .recv()
            .map_err(|_| Error::backend("the write was dropped: the transaction could not start"))?
    }

    /// Reads the live entry of `key`.
    fn read(&self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>> {
        let txn = self.inner.db.begin_read().map_err(storage)?;
        let data = txn.open_table(DATA).map_err(storage)?;
        let now = now_ms();
        Ok(data.get(key).map_err(storage)?.and_then(|v| {
            let (deadline, value) = decode(v.value());
            live(deadline, now).then(|| (deadline, value.to_vec()))
        }))
    }

    /// Runs blocking work off the async executor.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(RedbDriver) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let driver = self.clone();
        tokio::task::spawn_blocking(move || f(driver))
            .await
            .map_err(|e| Error::backend(format!("a storage task failed: {e}")))?
    }

    /// One page of the namespace's live keys matching `pattern`, after `after`.
    fn page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        pattern: &Pattern,
    ) -> Result<(Vec<String>, Option<Vec<u8>>)> {
        let txn = self.inner.db.begin_read().map_err(storage)?;
        let data = txn.open_table(DATA).map_err(storage)?;
        let now = now_ms();
        let start = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Included(prefix),
        };
        let mut keys = Vec::new();
        let mut last = None;
        for entry in data
            .range::<&[u8]>((start, Bound::Unbounded))
            .map_err(storage)?
            .take(PAGE)
        {
            let (key, value) = entry.map_err(storage)?;
            let full = key.value();
            let Some(business) = full.strip_prefix(prefix) else {
                return Ok((keys, None));
            };
            last = Some(full.to_vec());
            if let Ok(business) = std::str::from_utf8(business) {
                if live(decode(value.value()).0, now) && pattern.matches(business) {
                    keys.push(business.to_owned());
                }
            }
        }
        Ok((keys, last))
    }
}

/// Where a walk of every namespace stands: keys are in order, so a namespace's keys are
/// contiguous and its count is final when the next namespace starts.
#[derive(Default)]
struct Census {
    after: Option<Vec<u8>>,
    current: Option<(NamespaceName, u64)>,
    done: bool,
}

impl Census {
    /// A walk that stopped (after an error).
    fn ended() -> Self {
        Census {
            done: true,
            ..Census::default()
        }
    }
}

impl RedbDriver {
    /// Counts up to [`PAGE`] keys after `census.after` in one read transaction; returns the
    /// namespaces completed in that page.
    fn census_page(&self, census: &mut Census) -> Result<Vec<NamespaceInfo>> {
        let txn = self.inner.db.begin_read().map_err(storage)?;
        let data = txn.open_table(DATA).map_err(storage)?;
        let now = now_ms();
        let start = match census.after.as_deref() {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let mut finished = Vec::new();
        let mut read = 0;
        for entry in data
            .range::<&[u8]>((start, Bound::Unbounded))
            .map_err(storage)?
            .take(PAGE)
        {
            let (key, value) = entry.map_err(storage)?;
            read += 1;
            let full = key.value();
            census.after = Some(full.to_vec());
            let name = std::str::from_utf8(full)
                .ok()
                .and_then(split_full_key)
                .filter(|(_, key)| !key.is_empty());
            let Some((name, _)) = name else { continue };
            if !live(decode(value.value()).0, now) {
                continue;
            }
            match &mut census.current {
                Some((current, count)) if *current == name => *count += 1,
                current => {
                    if let Some((done, count)) = current.replace((name, 1)) {
                        finished.push(NamespaceInfo::new(done, count));
                    }
                }
            }
        }
        if read < PAGE {
            census.done = true;
            if let Some((name, count)) = census.current.take() {
                finished.push(NamespaceInfo::new(name, count));
            }
        }
        Ok(finished)
    }
}

fn reclaim_loop(inner: Weak<Inner>, stopped: mpsc::Receiver<()>, interval: Duration) {
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
        let Some(inner) = inner.upgrade() else { return };
        let driver = RedbDriver { inner };
        // Keep going while whole pages come back: a mass expiry is reclaimed in one tick.
        while let Ok(PAGE) = driver.reclaim() {}
    }
}

impl fmt::Debug for RedbDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbDriver")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Driver for RedbDriver {
    type Scope = RedbScope;

    fn scope(&self, namespace: &NamespaceName) -> Result<RedbScope> {
        Ok(RedbScope(namespace.prefix().as_bytes().into()))
    }

    async fn set(&self, s: &RedbScope, key: &str, value: Bytes, expiry: Expiry) -> Result<()> {
        let full = s.key(key);
        self.blocking(move |d| {
            d.write(move |w| {
                let deadline = match expiry {
                    Expiry::Never => 0,
                    Expiry::After(ttl) => deadline(Some(ttl), w.now),
                    Expiry::Keep => w.live(&full)?.map_or(0, |(deadline, _)| deadline),
                };
                w.put(&full, deadline, &value)
            })
        })
        .await
    }

    async fn set_nx(
        &self,
        s: &RedbScope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<bool> {
        let full = s.key(key);
        self.blocking(move |d| {
            d.write(move |w| {
                if w.live(&full)?.is_some() {
                    return Ok(false);
                }
                let deadline = deadline(ttl, w.now);
                w.put(&full, deadline, &value)?;
                Ok(true)
            })
        })
        .await
    }

    async fn get(&self, s: &RedbScope, key: &str) -> Result<Option<Bytes>> {
        let full = s.key(key);
        self.blocking(move |d| Ok(d.read(&full)?.map(|(_, v)| Bytes::from(v))))
            .await
    }

    async fn exists(&self, s: &RedbScope, key: &str) -> Result<bool> {
        let full = s.key(key);
        self.blocking(move |d| Ok(d.read(&full)?.is_some())).await
    }

    async fn delete(&self, s: &RedbScope, key: &str) -> Result<bool> {
        let full = s.key(key);
        self.blocking(move |d| d.write(move |w| w.remove(&full)))
            .await
    }

    async fn ttl(&self, s: &RedbScope, key: &str) -> Result<KeyTtl> {
        let full = s.key(key);
        self.blocking(move |d| {
            Ok(match d.read(&full)? {
                None => KeyTtl::Missing,
                Some((0, _)) => KeyTtl::NoExpiry,
                Some((deadline, _)) => KeyTtl::ExpiresIn(Duration::from_millis(
                    deadline.saturating_sub(now_ms()).max(1),
                )),
            })
        })
        .await
    }

    async fn expire(&self, s: &RedbScope, key: &str, ttl: Ttl) -> Result<bool> {
        let full = s.key(key);
        self.blocking(move |d| {
            d.write(move |w| match w.live(&full)? {
                Some((_, value)) => {
                    let deadline = deadline(Some(ttl), w.now);
                    w.put(&full, deadline, &value)?;
                    Ok(true)
                }
                None => Ok(false),
            })
        })
        .await
    }

    async fn persist(&self, s: &RedbScope, key: &str) -> Result<bool> {
        let full = s.key(key);
        self.blocking(move |d| {
            d.write(move |w| match w.live(&full)? {
                Some((deadline, value)) if deadline != 0 => {
                    w.put(&full, 0, &value)?;
                    Ok(true)
                }
                _ => Ok(false),
            })
        })
        .await
    }

    async fn incr(
        &self,
        s: &RedbScope,
        key: &str,
        delta: i64,
        ttl_on_create: Option<Ttl>,
    ) -> Result<i64> {
        let full = s.key(key);
        let shown = key.to_owned();
        self.blocking(move |d| {
            d.write(move |w| {
                let (deadline, current) = match w.live(&full)? {
                    Some((deadline, value)) => {
                        let current = counter::parse_canonical(&value)
                            .ok_or_else(|| Error::not_an_integer(&shown))?;
                        (deadline, current)
                    }
                    None => (deadline(ttl_on_create, w.now), 0),
                };
                let next = current
                    .checked_add(delta)
                    .ok_or_else(|| Error::overflow(&shown))?;
                w.put(
                    &full,
                    deadline,
                    counter::format(next, &mut itoa::Buffer::new()),
                )?;
                Ok(next)
            })
        })
        .await
    }

    async fn get_set(
        &self,
        s: &RedbScope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<Option<Bytes>> {
        let full = s.key(key);
        self.blocking(move |d| {
            d.write(move |w| {
                let previous = w.live(&full)?.map(|(_, v)| Bytes::from(v));
                let deadline = deadline(ttl, w.now);
                w.put(&full, deadline, &value)?;
                Ok(previous)
            })
        })
        .await
    }

    async fn cas(
        &self,
        s: &RedbScope,
        key: &str,
        expected: &[u8],
        new: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<bool> {
        let (full, expected) = (s.key(key), expected.to_vec());
        self.blocking(move |d| {
            d.write(move |w| match w.live(&full)? {
                Some((_, value)) if value == expected => {
                    let deadline = deadline(ttl, w.now);
                    w.put(&full, deadline, &new)?;
                    Ok(true)
                }
                _ => Ok(false),
            })
        })
        .await
    }

    async fn cad(&self, s: &RedbScope, key: &str, expected: &[u8]) -> Result<bool> {
        let (full, expected) = (s.key(key), expected.to_vec());
        self.blocking(move |d| {
            d.write(move |w| match w.live(&full)? {
                Some((_, value)) if value == expected => w.remove(&full),
                _ => Ok(false),
            })
        })
        .await
    }

    async fn mget(&self, s: &RedbScope, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let full: Vec<Vec<u8>> = keys.iter().map(|k| s.key(k)).collect();
        self.blocking(move |d| {
            // One read transaction: one consistent snapshot for the whole batch.
            let txn = d.inner.db.begin_read().map_err(storage)?;
            let data = txn.open_table(DATA).map_err(storage)?;
            let now = now_ms();
            full.iter()
                .map(|key| {
                    Ok(data.get(key.as_slice()).map_err(storage)?.and_then(|v| {
                        let (deadline, value) = decode(v.value());
                        live(deadline, now).then(|| Bytes::copy_from_slice(value))
                    }))
                })
                .collect()
        })
        .await
    }

    async fn mset(
        &self,
        s: &RedbScope,
        pairs: &mut [(&str, Bytes)],
        ttl: Option<Ttl>,
    ) -> Result<()> {
        let pairs: Vec<(Vec<u8>, Bytes)> = pairs
            .iter_mut()
            .map(|(k, v)| (s.key(k), std::mem::take(v)))
            .collect();
        self.blocking(move |d| {
            d.write(move |w| {
                let deadline = deadline(ttl, w.now);
                for (key, value) in &pairs {
                    w.put(key, deadline, value)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn mdel(&self, s: &RedbScope, keys: &[&str]) -> Result<u64> {
        let full: Vec<Vec<u8>> = keys.iter().map(|k| s.key(k)).collect();
        self.blocking(move |d| {
            d.write(move |w| {
                let mut removed = 0;
                for key in &full {
                    if w.remove(key)? {
                        removed += 1;
                    }
                }
                Ok(removed)
            })
        })
        .await
    }

    fn scan(
        &self,
        s: &RedbScope,
        pattern: &Pattern,
    ) -> impl Stream<Item = Result<Vec<String>>> + Send + 'static {
        struct Walk {
            driver: RedbDriver,
            prefix: Arc<[u8]>,
            pattern: Pattern,
            after: Option<Vec<u8>>,
            done: bool,
        }
        let walk = Walk {
            driver: self.clone(),
            prefix: s.0.clone(),
            pattern: pattern.clone(),
            after: None,
            done: false,
        };
        futures_util::stream::unfold(walk, |mut walk| async move {
            if walk.done {
                return None;
            }
            let (driver, prefix, pattern, after) = (
                walk.driver.clone(),
                walk.prefix.clone(),
                walk.pattern.clone(),
                walk.after.take(),
            );
            let page = tokio::task::spawn_blocking(move || {
                driver.page(&prefix, after.as_deref(), &pattern)
            })
            .await;
            match page {
                Ok(Ok((keys, last))) => {
                    walk.done = last.is_none();
                    walk.after = last;
                    Some((Ok(keys), walk))
                }
                Ok(Err(error)) => {
                    walk.done = true;
                    Some((Err(error), walk))
                }
                Err(error) => {
                    walk.done = true;
                    Some((
                        Err(Error::backend(format!("a storage task failed: {error}"))),
                        walk,
                    ))
                }
            }
        })
    }

    async fn clear(&self, s: &RedbScope) -> Result<u64> {
        let prefix = s.0.clone();
        self.blocking(move |d| {
            let mut cleared = 0;
            loop {
                // A page per transaction, so a huge namespace never holds the writer for long.
                let prefix = prefix.clone();
                let (count, more) = d.write(move |w| {
                    let keys: Vec<Vec<u8>> = w
                        .data
                        .range::<&[u8]>(&prefix[..]..)
                        .map_err(storage)?
                        .take(PAGE)
                        .map(|e| e.map(|(k, _)| k.value().to_vec()).map_err(storage))
                        .take_while(|k| k.as_ref().map_or(true, |k| k.starts_with(&prefix)))
                        .collect::<Result<_>>()?;
                    let mut count = 0;
                    for key in &keys {
                        if w.remove(key)? {
                            count += 1;
                        }
                    }
                    Ok((count, keys.len() == PAGE))
                })?;
                cleared += count;
                if !more {
                    return Ok(cleared);
                }
            }
        })
        .await
    }

    /// Walks the whole data table in key order, 1000 keys per read transaction, and
    /// yields each namespace as soon as the walk has passed its last key.
    fn namespaces(&self) -> impl Stream<Item = Result<NamespaceInfo>> + Send + 'static {
        let driver = self.clone();
        let pages = futures_util::stream::unfold(Census::default(), move |census| {
            let driver = driver.clone();
            async move {
                if census.done {
                    return None;
                }
                let walked = tokio::task::spawn_blocking(move || {
                    let mut census = census;
                    (driver.census_page(&mut census), census)
                })
                .await;
                Some(match walked {
                    Ok((Ok(page), census)) => (Ok(page), census),
                    Ok((Err(error), _)) => (Err(error), Census::ended()),
                    Err(error) => (
                        Err(Error::backend(format!("a storage task failed: {error}"))),
                        Census::ended(),
                    ),
                })
            }
        });
        super::items(pages)
    }
}
