//! The embedded persistent driver: one durable file, no server, on
//! [redb](https://docs.rs/redb) (ACID, copy-on-write B-trees). Cargo feature `redb`.
//!
//! Every key is stored under `root:domain:key` in one table, so a namespace is a key range and
//! `keys`, `scan` and `clear` read only that range. A value is stored with its absolute
//! wall-clock deadline (Unix milliseconds), so a TTL keeps running while the process is down;
//! a second table indexes keys by deadline, so the background reclaimer (one thread for every
//! file of the process) reclaims expired keys without scanning the data. Each operation, and each batch, is one write transaction; by
//! default a call returns once its transaction is durable on disk.
//!
//! # The write path
//!
//! One committer thread owns redb's single writer. A call queues its write (a channel send
//! that never blocks) and its task awaits the answer, holding no thread; the committer takes
//! every write queued while the previous commit was in flight, runs them in one write
//! transaction and commits once (group commit), so 64 concurrent writers share each `fsync`.
//! In the non-durable mode (`durable = false`) commits are not flushed as they are made: the
//! committer flushes within [`flush_interval`](RedbConfig::flush_interval) of the first commit
//! left unflushed, with the next group's commit or, when no write comes, an empty commit of
//! its own, so a crash loses the writes of about that long.
//!
//! # The read path
//!
//! A read (`get`, `exists`, `ttl`, an `mget` of up to 64 keys) runs on the calling task's
//! thread: one redb read transaction on the latest committed snapshot, a microsecond or two
//! when the pages are cached, plus the file reads of the pages that are not. It never waits
//! for a lock held across a commit: redb's readers do not block on its writer. Two cases hand
//! the read to tokio's blocking pool instead (`spawn_blocking`): a read that found a key
//! expired while a write in flight may have decided otherwise (it must wait for that commit,
//! SPEC 3.2), and a file that must be opened again after an I/O failure. Listings (`keys`,
//! `scan`, `namespaces`) page through many keys, one page per read transaction, and larger
//! `mget`s hold their transaction for longer: both run on the blocking pool too. Outside a
//! tokio runtime (another executor, or a future polled by hand) every call works: what would
//! go to the blocking pool runs on the calling thread.
//!
//! # Read-only
//!
//! With [`RedbConfig::read_only`] (`?read_only=1`) the file is opened for reading alone: no
//! committer, no reclaimer, every write refused, the file never written; read-only stores
//! share a file with each other, and a file that cannot be written can be read.
//!
//! The parts: [`config`](RedbConfig) (settings and URL), `layout` (tables, value encoding, the
//! clock), `store` (the file: opening, reopening after an I/O failure, containing redb's
//! panics), `commit` (the group-commit write path), `read` (snapshots) and `reclaim`.

mod commit;
mod compact;
mod config;
mod layout;
mod read;
mod reclaim;
mod store;

use std::borrow::Borrow;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, mpsc};

use bytes::Bytes;
use futures_core::Stream;
use redb::{Database, ReadableDatabase, ReadableTable};

pub use compact::Compaction;
pub use config::RedbConfig;

use self::commit::{Request, Writer, commit_loop};
use self::layout::{DATA, EXPIRY, PAGE, deadline};
use self::read::Census;
use self::store::{Store, storage};
use crate::driver::Driver;
use crate::glob::Pattern;
use crate::name::{NamespaceInfo, NamespaceName};
use crate::ttl::{Expiry, KeyTtl, Ttl};
use crate::{Error, Key, Namespace, Result, counter};

/// The largest `mget` read on the calling thread; a larger batch holds its read transaction
/// for longer and is read on a blocking thread.
const INLINE_BATCH: usize = 64;

/// The URL scheme of the persistent driver: `redb:///path/to/file.redb`.
pub const SCHEME: &str = "redb";

/// What [`RedbDriver::check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Integrity {
    /// Every page passed redb's checks: nothing was changed.
    Intact,
    /// The check failed and redb repaired the file; writes that were not yet durable may be
    /// gone.
    Repaired,
}

/// The persistent store: one redb file. Cheap to clone (one `Arc`); clones share the file.
#[derive(Clone)]
pub struct RedbDriver {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    /// Writes queued for the committer thread; dropped first when the driver goes.
    jobs: Option<mpsc::Sender<Request>>,
    committer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Close the queue (the reclaimer forgets the store at its next round), wait for the
        // committer (it finishes what is queued, a reclamation in flight included), then close
        // the file: it can be opened again as soon as the last handle is gone.
        self.jobs.take();
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
        self.store.shut_down();
    }
}

/// A persistent namespace: its key prefix.
#[derive(Clone, Debug)]
pub struct RedbScope(Arc<[u8]>);

impl RedbScope {
    /// The stored key of `key`, on the stack for keys up to 128 bytes with their prefix.
    fn stack_key(&self, key: &str) -> smallvec::SmallVec<[u8; 128]> {
        let mut full = smallvec::SmallVec::with_capacity(self.0.len() + key.len());
        full.extend_from_slice(&self.0);
        full.extend_from_slice(key.as_bytes());
        full
    }

    fn key(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.0.len() + key.len());
        full.extend_from_slice(&self.0);
        full.extend_from_slice(key.as_bytes());
        full
    }
}

/// What a failed open means for [`RedbDriver::check`]: a file that cannot be written cannot
/// be checked where it is, since the check may repair it.
fn check_open_error(error: redb::DatabaseError, shown: &str) -> Error {
    match error {
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if matches!(
                io.kind(),
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            Error::unavailable(
                format!(
                    "cannot check {shown}: {io}; the check may repair the file, so it must be \
                     writable: check a writable copy"
                ),
                None,
            )
        }
        other => store::open_error(other, shown),
    }
}

impl RedbDriver {
    /// Opens the file `config` names, creating it when missing if `config.create` allows.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable): another process (or
    ///   driver) has the file open (for a read-only store: one that writes), or it cannot be
    ///   opened or created (a missing directory, no permission, a read-only filesystem), or it
    ///   is missing or empty and `config.create` is off (or `config.read_only` on), or, for a
    ///   read-only store, its writer left it open and it needs recovering
    ///   ([`RedbConfig::read_only`]).
    /// - [`ErrorKind::Corrupted`](crate::ErrorKind::Corrupted): the file is damaged; see
    ///   [`RedbDriver::check`].
    /// - [`ErrorKind::Backend`](crate::ErrorKind::Backend): the file is not a namestore file
    ///   (it is left unchanged), or cannot be read.
    pub fn open(config: RedbConfig) -> Result<Self> {
        let store = Arc::new(Store::open(config)?);
        if store.config.read_only {
            // Nothing to commit and nothing to reclaim: no thread.
            return Ok(RedbDriver {
                inner: Arc::new(Inner {
                    store,
                    jobs: None,
                    committer: None,
                }),
            });
        }
        // Zero turns the reclaimer off, as `None` does, rather than reclaim without pause.
        let interval = store.config.reap_interval.filter(|i| !i.is_zero());
        let (jobs, queue) = mpsc::channel::<Request>();
        let committer = {
            let store = Arc::clone(&store);
            std::thread::Builder::new()
                .name("namestore-redb-commit".into())
                .spawn(move || commit_loop(store, queue))
                .map_err(Error::backend)?
        };
        let inner = Arc::new(Inner {
            store,
            jobs: Some(jobs),
            committer: Some(committer),
        });
        if let Some(interval) = interval {
            let weak = Arc::downgrade(&inner);
            crate::drivers::reaper::watch(&crate::drivers::reaper::FILES, weak, interval)?;
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
        &self.inner.store.config.path
    }

    /// Whether the file was opened read-only ([`RedbConfig::read_only`]): every write is then
    /// refused.
    ///
    /// ```
    /// # fn main() -> namestore::Result<()> {
    /// use namestore::drivers::redb::RedbDriver;
    ///
    /// let path = std::env::temp_dir().join(format!("read-only-doc-{}.redb", std::process::id()));
    /// drop(RedbDriver::from_url(&format!("redb://{}", path.display()))?);
    /// let store = RedbDriver::from_url(&format!("redb://{}?read_only=1", path.display()))?;
    /// assert!(store.is_read_only());
    /// # drop(store);
    /// # std::fs::remove_file(&path).ok();
    /// # Ok(()) }
    /// ```
    pub fn is_read_only(&self) -> bool {
        self.inner.store.config.read_only
    }

    /// Puts every write acknowledged before the call on disk, and says whether it could.
    ///
    /// In the non-durable mode (`durable = false`) a write is acknowledged before it is on
    /// disk, and flushed within [`flush_interval`](RedbConfig::flush_interval): call this
    /// where losing that interval matters (before a process exits, after an import, at a
    /// checkpoint of the program's own). Dropping the store's last handle flushes too, but a
    /// drop cannot say that the flush failed; this can.
    ///
    /// A durable store has nothing to flush (each write was on disk when it was acknowledged):
    /// the call returns at once, as it does on a read-only store.
    ///
    /// # Errors
    ///
    /// - The flush failed (a full disk: [`ErrorKind::Backend`](crate::ErrorKind::Backend)
    ///   naming the cause, `No space left on device`): the writes it was to flush are lost, as
    ///   in a crash. The store goes on; writes made after this are flushed as they commit for a
    ///   while ([`RedbConfig::flush_interval`]).
    /// - Writes acknowledged earlier were already lost (a flush of the committer's own failed),
    ///   or may have been (the file was closed after another I/O failure before they were
    ///   flushed), which no call has reported yet:
    ///   [`ErrorKind::Backend`](crate::ErrorKind::Backend) saying how long a span of writes and
    ///   why. Each loss is reported once, to the next call.
    /// - The store is broken or closing, as any write.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> namestore::Result<()> {
    /// use namestore::drivers::redb::RedbDriver;
    ///
    /// let path = std::env::temp_dir().join(format!("flush-doc-{}.redb", std::process::id()));
    /// let store = RedbDriver::from_url(&format!("redb://{}?durable=0", path.display()))?;
    /// let imported = store.namespace::<String>("app", "imported")?;
    /// for i in 0..1000 {
    ///     imported.set(&format!("row{i}"), "…", None).await?;
    /// }
    /// store.flush().await?; // the 1,000 rows are on disk
    /// # drop((imported, store));
    /// # std::fs::remove_file(&path).ok();
    /// # Ok(()) }
    /// ```
    ///
    /// From a store opened by URL ([`crate::open`]), the driver is reached with
    /// [`AnyDriver::downcast_ref`](crate::AnyDriver::downcast_ref).
    pub async fn flush(&self) -> Result<()> {
        if self.inner.store.config.durable || self.inner.store.config.read_only {
            return self.inner.store.check();
        }
        commit::flush(&self.inner.store, self.inner.jobs.as_ref()).await
    }

    /// Gives the file's free space back to the filesystem, and says how large the file was
    /// before and is after.
    ///
    /// redb reuses the pages that deletions and expiries free, but never shrinks its file by
    /// itself: a file that once held 10 GiB (a burst of sessions, a cache that has since
    /// expired) keeps its 10 GiB on disk however little it holds now. A compaction moves the
    /// live pages to the start of the file and cuts off the rest (redb's `compact`); nothing
    /// stored changes. It needs no free space (pages move within the file): on a full disk it
    /// gives space back when it is most needed. It is committed durably, so on a non-durable
    /// store it also flushes every write before it.
    ///
    /// It runs between two commits: writes queue meanwhile, and reads wait too (redb needs
    /// the file to itself), for as long as it takes: on the 2-vCPU machine of
    /// `docs/performance.md` (release build), 0.2 s to bring a file of 544 MiB that held
    /// 50 MB (200 MB written, three values in four deleted) down to 78 MiB. Run it at a quiet
    /// time, or where such a pause is acceptable; the command
    /// `namestore compact --url redb:///path` runs it on a file no process has open.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable): reads held the file for
    ///   10 s (nothing was changed: try again), or it was closed after an I/O failure.
    /// - [`ErrorKind::Backend`](crate::ErrorKind::Backend): a read-only store, or redb's
    ///   failure (the disk); the file is opened again by the next call, as after any I/O
    ///   failure, and holds what it held before.
    /// - The store is broken or closing, as any write.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> namestore::Result<()> {
    /// use namestore::drivers::redb::RedbDriver;
    ///
    /// let path = std::env::temp_dir().join(format!("compact-doc-{}.redb", std::process::id()));
    /// let store = RedbDriver::from_url(&format!("redb://{}", path.display()))?;
    /// let burst = store.namespace::<String>("app", "burst")?;
    /// burst.mset((0..200).map(|i| (format!("k{i}"), vec![0u8; 10_000])), None).await?;
    /// burst.clear().await?;
    /// let compaction = store.compact().await?;
    /// assert!(compaction.after < compaction.before);
    /// # drop((burst, store));
    /// # std::fs::remove_file(&path).ok();
    /// # Ok(()) }
    /// ```
    pub async fn compact(&self) -> Result<Compaction> {
        if self.inner.store.config.read_only {
            return Err(store::read_only());
        }
        commit::compact_file(&self.inner.store, self.inner.jobs.as_ref()).await
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
    ///
    /// # Errors
    ///
    /// As any read: the file could not be read.
    pub fn stored_entries(&self, prefix: &str) -> Result<usize> {
        let store = &self.inner.store;
        store.contain(|| store.stored_entries(prefix.as_bytes()))
    }

    /// Runs redb's integrity check on the file at `path`, and its repair when the check
    /// fails: the way out for a file that a driver reported as
    /// [`ErrorKind::Corrupted`](crate::ErrorKind::Corrupted). The file must not be open
    /// elsewhere; the command `namestore check` calls this.
    ///
    /// The check reads every page of the file and verifies its checksum. A repair rolls the
    /// file back to its last intact durable commit: writes after it may be lost.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable): the file is missing, or
    ///   open in another process or driver.
    /// - [`ErrorKind::Corrupted`](crate::ErrorKind::Corrupted): the file is damaged beyond
    ///   what redb can repair.
    /// - [`ErrorKind::Backend`](crate::ErrorKind::Backend): it is not a namestore file.
    ///
    /// ```
    /// # fn main() -> namestore::Result<()> {
    /// use namestore::drivers::redb::{Integrity, RedbDriver};
    ///
    /// let path = std::env::temp_dir().join(format!("check-doc-{}.redb", std::process::id()));
    /// drop(RedbDriver::from_url(&format!("redb://{}", path.display()))?);
    /// assert_eq!(RedbDriver::check(&path)?, Integrity::Intact);
    /// # std::fs::remove_file(&path).ok();
    /// # Ok(()) }
    /// ```
    pub fn check(path: impl AsRef<Path>) -> Result<Integrity> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        if !path.exists() {
            return Err(Error::unavailable(format!("{shown} does not exist"), None));
        }
        let cannot_repair =
            |why: &str| Error::corrupted(format!("{shown} cannot be repaired: {why}"));
        // A plain open first; a file it cannot trust (an error, or a panic inside redb) is
        // opened again with redb's check on, which repairs what it can.
        let plain = catch_unwind(AssertUnwindSafe(|| Database::builder().open(path)));
        let checked = catch_unwind(AssertUnwindSafe(|| -> Result<Integrity> {
            let (mut db, repaired) = match plain {
                Ok(Ok(db)) => (db, false),
                Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(_))))
                | Err(_) => {
                    let db = Database::builder()
                        .set_check_integrity_on_open(true)
                        .open(path)
                        .map_err(|e| match e {
                            redb::DatabaseError::Storage(redb::StorageError::Corrupted(why)) => {
                                cannot_repair(&why)
                            }
                            other => check_open_error(other, &shown),
                        })?;
                    (db, true)
                }
                Ok(Err(other)) => return Err(check_open_error(other, &shown)),
            };
            store::mark_as_namestore(&db, &shown, false)?;
            let intact = db.check_integrity().map_err(|e| match e {
                redb::DatabaseError::Storage(redb::StorageError::Corrupted(why)) => {
                    cannot_repair(&why)
                }
                other => storage(other),
            })?;
            // Every entry must also read back: walk both tables.
            let txn = db.begin_read().map_err(storage)?;
            for entry in txn
                .open_table(DATA)
                .map_err(storage)?
                .iter()
                .map_err(storage)?
            {
                entry.map_err(storage)?;
            }
            for entry in txn
                .open_table(EXPIRY)
                .map_err(storage)?
                .iter()
                .map_err(storage)?
            {
                entry.map_err(storage)?;
            }
            Ok(if intact && !repaired {
                Integrity::Intact
            } else {
                Integrity::Repaired
            })
        }));
        checked.unwrap_or_else(|payload| {
            Err(Error::corrupted(format!(
                "{shown} cannot be repaired: redb failed while checking it ({})",
                store::panic_message(&*payload)
            )))
        })
    }

    /// Queues a write for the committer and awaits its commit (see the module's write path).
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnMut(&mut Writer<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if self.inner.store.config.read_only {
            return Err(store::read_only());
        }
        commit::write_async(&self.inner.store, self.inner.jobs.as_ref(), work).await
    }

    /// Stores `value` only if `key` is present (`present`: `replace`) or missing (`set_nx`),
    /// in one write transaction; says whether it did.
    async fn put_if(
        &self,
        s: &RedbScope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
        present: bool,
    ) -> Result<bool> {
        let full = s.key(key);
        self.write(move |w| {
            if w.live(&full)?.is_some() != present {
                return Ok(false);
            }
            w.put(&full, deadline(ttl, w.now), &value)?;
            Ok(true)
        })
        .await
    }

    /// Runs blocking work off the async executor (tokio's blocking pool), with redb's panics
    /// contained. Outside a tokio runtime there is no executor to keep free: the work runs on
    /// the calling thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&RedbDriver) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.inner.store.contain(|| f(self));
        };
        let driver = self.clone();
        runtime
            .spawn_blocking(move || driver.inner.store.contain(|| f(&driver)))
            .await
            .map_err(|e| Error::backend(format!("a storage task failed: {e}")))?
    }

    /// Runs a read on the store off the async executor.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.blocking(move |d| f(&d.inner.store)).await
    }

    /// Answers `look` on `args` with one read transaction on the calling thread when the
    /// answer needs no wait; else (a write in flight may decide an expiry the read saw, or
    /// the file must be opened again) on a blocking thread (see the module's read path).
    ///
    /// `args` is borrowed for the read on the calling thread (a key built on the stack) and
    /// copied only when the read goes to the blocking pool.
    async fn look<A: ?Sized + ToOwned + Sync + 'static, T: Send + 'static>(
        &self,
        args: &A,
        look: fn(&A, &read::Data, u64, &mut read::Expired) -> Result<T>,
    ) -> Result<T>
    where
        A::Owned: Send + 'static,
    {
        let store = &self.inner.store;
        let now = store
            .contain(|| store.read_now(|data, now, expired| look(args, data, now, expired)))?;
        match now {
            Some(answer) => Ok(answer),
            None => {
                let args = args.to_owned();
                self.read(move |store| {
                    store.read(|data, now, expired| look(args.borrow(), data, now, expired))
                })
                .await
            }
        }
    }
}

impl fmt::Debug for RedbDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbDriver")
            .field("config", &self.inner.store.config)
            .finish_non_exhaustive()
    }
}

impl Driver for RedbDriver {
    type Scope = RedbScope;

    fn system_name(&self) -> &'static str {
        "redb"
    }

    fn scope(&self, namespace: &NamespaceName) -> Result<RedbScope> {
        Ok(RedbScope(namespace.prefix().as_bytes().into()))
    }

    async fn set(&self, s: &RedbScope, key: &str, value: Bytes, expiry: Expiry) -> Result<()> {
        let full = s.key(key);
        self.write(move |w| {
            let deadline = match expiry {
                Expiry::Never => 0,
                Expiry::After(ttl) => deadline(Some(ttl), w.now),
                Expiry::Keep => w.live(&full)?.map_or(0, |(deadline, _)| deadline),
            };
            w.put(&full, deadline, &value)
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
        self.put_if(s, key, value, ttl, false).await
    }

    async fn replace(
        &self,
        s: &RedbScope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<bool> {
        self.put_if(s, key, value, ttl, true).await
    }

    async fn get(&self, s: &RedbScope, key: &str) -> Result<Option<Bytes>> {
        let full = s.stack_key(key);
        let found = self.look(&full[..], |key, data, now, expired| {
            read::entry(key, data, now, expired)
        });
        Ok(found.await?.map(|(_, value)| value))
    }

    async fn exists(&self, s: &RedbScope, key: &str) -> Result<bool> {
        let full = s.stack_key(key);
        let found = self.look(&full[..], |key, data, now, expired| {
            read::entry(key, data, now, expired)
        });
        Ok(found.await?.is_some())
    }

    async fn delete(&self, s: &RedbScope, key: &str) -> Result<bool> {
        let full = s.key(key);
        self.write(move |w| w.remove(&full)).await
    }

    async fn ttl(&self, s: &RedbScope, key: &str) -> Result<KeyTtl> {
        let full = s.stack_key(key);
        self.look(&full[..], |key, data, now, expired| {
            read::ttl(key, data, now, expired)
        })
        .await
    }

    async fn expire(&self, s: &RedbScope, key: &str, ttl: Ttl) -> Result<bool> {
        let full = s.key(key);
        self.write(move |w| match w.live(&full)? {
            Some((_, value)) => {
                w.put(&full, deadline(Some(ttl), w.now), &value)?;
                Ok(true)
            }
            None => Ok(false),
        })
        .await
    }

    async fn persist(&self, s: &RedbScope, key: &str) -> Result<bool> {
        let full = s.key(key);
        self.write(move |w| match w.live(&full)? {
            Some((deadline, value)) if deadline != 0 => {
                w.put(&full, 0, &value)?;
                Ok(true)
            }
            _ => Ok(false),
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
        self.write(move |w| {
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
        self.write(move |w| {
            let previous = w.live(&full)?.map(|(_, v)| Bytes::from(v));
            w.put(&full, deadline(ttl, w.now), &value)?;
            Ok(previous)
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
        self.write(move |w| match w.live(&full)? {
            Some((_, value)) if value == expected => {
                w.put(&full, deadline(ttl, w.now), &new)?;
                Ok(true)
            }
            _ => Ok(false),
        })
        .await
    }

    async fn cad(&self, s: &RedbScope, key: &str, expected: &[u8]) -> Result<bool> {
        let (full, expected) = (s.key(key), expected.to_vec());
        self.write(move |w| match w.live(&full)? {
            Some((_, value)) if value == expected => w.remove(&full),
            _ => Ok(false),
        })
        .await
    }

    async fn mget(&self, s: &RedbScope, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let full: Vec<Vec<u8>> = keys.iter().map(|k| s.key(k)).collect();
        // One read transaction: one consistent snapshot for the whole batch; a large batch
        // is read on a blocking thread, as it holds the transaction for longer.
        if full.len() > INLINE_BATCH {
            return self
                .read(move |store| {
                    store.read(|data, now, expired| read::entries(&full, data, now, expired))
                })
                .await;
        }
        self.look(&full[..], |keys, data, now, expired| {
            read::entries(keys, data, now, expired)
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
        self.write(move |w| {
            let deadline = deadline(ttl, w.now);
            for (key, value) in &pairs {
                w.put(key, deadline, value)?;
            }
            Ok(())
        })
        .await
    }

    async fn mdel(&self, s: &RedbScope, keys: &[&str]) -> Result<u64> {
        let full: Vec<Vec<u8>> = keys.iter().map(|k| s.key(k)).collect();
        self.write(move |w| {
            let mut removed = 0;
            for key in &full {
                if w.remove(key)? {
                    removed += 1;
                }
            }
            Ok(removed)
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
            let (prefix, pattern, after) =
                (walk.prefix.clone(), walk.pattern.clone(), walk.after.take());
            let page = walk
                .driver
                .read(move |store| store.page(&prefix, after.as_deref(), &pattern))
                .await;
            match page {
                Ok((keys, last)) => {
                    walk.done = last.is_none();
                    walk.after = last;
                    Some((Ok(keys), walk))
                }
                Err(error) => {
                    walk.done = true;
                    Some((Err(error), walk))
                }
            }
        })
    }

    async fn clear(&self, s: &RedbScope) -> Result<u64> {
        let mut cleared = 0;
        let mut previous_first: Option<Vec<u8>> = None;
        loop {
            // A page per transaction, so a huge namespace never holds the writer for long.
            let prefix = s.0.clone();
            let (count, first, more) = self
                .write(move |w| {
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
                    Ok((count, keys.first().cloned(), keys.len() == PAGE))
                })
                .await?;
            cleared += count;
            if !more {
                return Ok(cleared);
            }
            // Every page's keys were removed, so the next page starts after them: a page that
            // starts where the last one did means a damaged tree that would loop for ever.
            if first.is_some() && first == previous_first {
                return Err(Error::corrupted(
                    "clearing made no progress: the file is damaged",
                ));
            }
            previous_first = first;
        }
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
                let walked = driver
                    .read(move |store| {
                        let mut census = census;
                        let page = store.census_page(&mut census);
                        Ok((page, census))
                    })
                    .await;
                Some(match walked {
                    Ok((Ok(page), census)) => (Ok(page), census),
                    Ok((Err(error), _)) | Err(error) => (Err(error), Census::ended()),
                })
            }
        });
        super::items(pages)
    }
}
