//! The redb file behind a driver: opening it, reopening it after an I/O failure, and keeping
//! redb's failures (errors and panics) at the driver's boundary.
//!
//! redb latches an I/O error (a full disk, say): every later transaction fails with "a
//! previous I/O error occurred" until the database is closed and opened again. The store
//! drops its handle on such an error and opens the file again on the next call, so the same
//! driver works again once the cause is gone. A panic inside redb (a damaged file can trigger
//! one) is caught here and turns into [`ErrorKind::Corrupted`](crate::ErrorKind::Corrupted);
//! the store is then broken for good: every later call fails with that error, never touching
//! the file again.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, TableHandle};

use super::config::RedbConfig;
use super::layout::{DATA, EXPIRY, FORMAT, META, now_ms};
use crate::{Error, Result};

/// Maps a redb error to namestore's: corruption is [`Error::corrupted`], anything else a
/// backend error whose message carries redb's (and the operating system's) reason.
pub(super) fn storage<E: Into<redb::Error>>(error: E) -> Error {
    match error.into() {
        redb::Error::Corrupted(reason) => Error::corrupted(reason),
        other => Error::backend(other),
    }
}

/// Whether redb needs the database closed and opened again after this error.
fn needs_reopen(error: &redb::Error) -> bool {
    matches!(
        error,
        redb::Error::Io(_)
            | redb::Error::PreviousIo
            | redb::Error::DatabaseClosed
            | redb::Error::LockPoisoned(_)
    )
}

/// The open file: a database that reads and writes, or one that only reads
/// ([`RedbConfig::read_only`]).
pub(super) enum Handle {
    Writable(Database),
    ReadOnly(ReadOnlyDatabase),
}

impl Handle {
    /// A read transaction on the latest committed snapshot.
    pub(super) fn begin_read(&self) -> Result<ReadTransaction, redb::TransactionError> {
        match self {
            Handle::Writable(db) => db.begin_read(),
            Handle::ReadOnly(db) => db.begin_read(),
        }
    }

    /// The database to write to; an error for a read-only store.
    pub(super) fn writable(&self) -> Result<&Database> {
        match self {
            Handle::Writable(db) => Ok(db),
            Handle::ReadOnly(_) => Err(read_only()),
        }
    }
}

/// The error of a write to a read-only store.
pub(super) fn read_only() -> Error {
    Error::backend("the store is read-only (`read_only`): it takes no writes")
}

pub(super) struct Store {
    pub(super) config: RedbConfig,
    /// The open database; `None` after an I/O failure, until the next call opens it again.
    db: RwLock<Option<Arc<Handle>>>,
    /// Held while the file is being opened again, so one caller does it.
    reopening: Mutex<()>,
    /// Why the store is broken, once redb has panicked on it.
    broken: OnceLock<String>,
    /// Set when the last driver handle is gone: the file stays closed.
    shut: std::sync::atomic::AtomicBool,
    /// How many times the open database was closed (after an I/O failure, or for good): what
    /// it held unflushed is gone then.
    closes: std::sync::atomic::AtomicU64,
    pub(super) visibility: Visibility,
}

impl Store {
    /// Opens the file `config` names.
    pub(super) fn open(config: RedbConfig) -> Result<Self> {
        let db = open_database(&config)?;
        Ok(Store {
            config,
            db: RwLock::new(Some(Arc::new(db))),
            reopening: Mutex::new(()),
            broken: OnceLock::new(),
            shut: std::sync::atomic::AtomicBool::new(false),
            closes: std::sync::atomic::AtomicU64::new(0),
            visibility: Visibility::new(),
        })
    }

    /// The open database, opened again first if an I/O failure closed it.
    pub(super) fn database(&self) -> Result<Arc<Handle>> {
        self.check()?;
        if self.shut.load(Ordering::SeqCst) {
            return Err(Error::backend("the store is closed"));
        }
        if let Some(db) = &*self.db.read().unwrap_or_else(PoisonError::into_inner) {
            return Ok(Arc::clone(db));
        }
        let _one = self
            .reopening
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(db) = &*self.db.read().unwrap_or_else(PoisonError::into_inner) {
            return Ok(Arc::clone(db));
        }
        // The old handle closes when its last reader lets go of it; until then redb refuses a
        // second open of the same file.
        let waited = Instant::now();
        let db = loop {
            match open_database(&self.config) {
                Err(e) if already_open(&e) && waited.elapsed() < Duration::from_secs(2) => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                other => break Arc::new(other?),
            }
        };
        *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&db));
        tracing::info!(
            target: "namestore::redb",
            path = %self.config.path.display(),
            "opened the redb file again"
        );
        Ok(db)
    }

    /// Maps a redb result; on an error after which redb must be reopened, closes the database
    /// so that the next call opens it again.
    pub(super) fn redb<T, E: Into<redb::Error>>(&self, result: Result<T, E>) -> Result<T> {
        result.map_err(|error| {
            let error = error.into();
            if needs_reopen(&error) && self.close() {
                tracing::warn!(
                    target: "namestore::redb",
                    path = %self.config.path.display(),
                    %error,
                    "an I/O failure closed the redb file; the next call opens it again"
                );
            }
            storage(error)
        })
    }

    /// Closes the file for good: the driver's last handle is gone.
    pub(super) fn shut_down(&self) {
        self.shut.store(true, Ordering::SeqCst);
        self.close();
    }

    /// The open database, or `None` when it must be opened again first (after an I/O
    /// failure): a read that must not wait for the file to be opened goes elsewhere then.
    pub(super) fn database_now(&self) -> Result<Option<Arc<Handle>>> {
        self.check()?;
        if self.shut.load(Ordering::SeqCst) {
            return Err(Error::backend("the store is closed"));
        }
        Ok(self
            .db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    /// Runs `work` on the database alone: no read or write transaction open (redb's
    /// `compact` needs that). The handle is taken out while `work` runs, with the reopening
    /// lock held, so a read that comes meanwhile finds no database and waits on that lock (as
    /// after an I/O failure) until it is back. Waits up to `readers` for the reads in flight
    /// to let go of it; for the committer's thread only, between commits.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) when reads held the database
    /// for all of `readers`, or it was closed after an I/O failure; `work`'s errors.
    pub(super) fn alone<T>(
        &self,
        readers: Duration,
        mut work: impl FnMut(&mut Database) -> Result<T>,
    ) -> Result<T> {
        self.database()?;
        let _one = self
            .reopening
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let taken = self
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut held) = taken else {
            return Err(Error::unavailable(
                "the file was closed after an I/O failure: try again",
                None,
            ));
        };
        let put_back = |handle: Arc<Handle>| {
            *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        };
        let waited = Instant::now();
        let mut handle = loop {
            match Arc::try_unwrap(held) {
                Ok(handle) => break handle,
                Err(shared) if waited.elapsed() >= readers => {
                    // A reader still holds it: it stays as it was.
                    put_back(shared);
                    return Err(Error::unavailable(
                        format!("reads held the file for {readers:?}: try again"),
                        None,
                    ));
                }
                Err(shared) => {
                    held = shared;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        };
        let outcome = match &mut handle {
            Handle::Writable(db) => work(db),
            Handle::ReadOnly(_) => Err(read_only()),
        };
        if outcome.is_ok() {
            put_back(Arc::new(handle));
        } else {
            // After a failure in redb, the file is opened again by the next call, as after an
            // I/O failure (what it held unflushed is gone: a close).
            self.closes.fetch_add(1, Ordering::SeqCst);
            if let Err(error) = &outcome {
                tracing::warn!(
                    target: "namestore::redb",
                    path = %self.config.path.display(),
                    %error,
                    "a failure closed the redb file; the next call opens it again"
                );
            }
            let _ = catch_unwind(AssertUnwindSafe(move || drop(handle)));
        }
        outcome
    }

    /// Drops the store's handle on the database (redb closes the file with the last one):
    /// whether it was open.
    fn close(&self) -> bool {
        let taken = self
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let open = taken.is_some();
        if open {
            self.closes.fetch_add(1, Ordering::SeqCst);
        }
        // Closing a database redb has failed on may panic in turn.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(taken)));
        open
    }

    /// How many times the open database has been closed: a change means that commits not yet
    /// flushed before it are lost.
    pub(super) fn closes(&self) -> u64 {
        self.closes.load(Ordering::SeqCst)
    }

    /// `Err` once the store is broken.
    pub(super) fn check(&self) -> Result<()> {
        match self.broken.get() {
            Some(why) => Err(broken_error(why)),
            None => Ok(()),
        }
    }

    /// Runs `work`, which calls into redb, and turns a panic into an error: the store is then
    /// broken, and every later call fails with the same error.
    pub(super) fn contain<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        self.check()?;
        match catch_unwind(AssertUnwindSafe(work)) {
            Ok(result) => result,
            Err(payload) => {
                let why = panic_message(&*payload);
                tracing::error!(
                    target: "namestore::redb",
                    path = %self.config.path.display(),
                    panic = %why,
                    "redb panicked: the store is broken, and every call fails"
                );
                let _ = self.broken.set(why);
                self.close();
                Err(broken_error(self.broken.get().map_or("", String::as_str)))
            }
        }
    }
}

fn broken_error(why: &str) -> Error {
    Error::corrupted(format!(
        "redb failed on the file ({why}); this handle no longer uses it: close every handle and run `namestore check` (RedbDriver::check) on the file"
    ))
}

pub(super) fn panic_message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    crate::error::shorten(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// How an open of a file another handle holds ends its message.
const ALREADY_OPEN: &str = "is already open in another process or driver";

fn already_open(error: &Error) -> bool {
    error.kind() == crate::ErrorKind::Unavailable && error.to_string().ends_with(ALREADY_OPEN)
}

/// Opens (or, if the config allows, creates) the file, contained: a file that makes redb
/// panic is [`ErrorKind::Corrupted`](crate::ErrorKind::Corrupted), and checks that it is
/// namestore's.
pub(super) fn open_database(config: &RedbConfig) -> Result<Handle> {
    let path = &config.path;
    let shown = path.display().to_string();
    if !config.create || config.read_only {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::unavailable(
                    format!("{shown} does not exist (it is not created here)"),
                    None,
                ));
            }
            Ok(meta) if meta.len() == 0 => {
                return Err(Error::unavailable(
                    format!("{shown} is empty, not a namestore file (it is not made one here)"),
                    None,
                ));
            }
            _ => {}
        }
    }
    let open = || {
        if config.read_only {
            open_read_only(path, &shown, config.cache_size).map(Handle::ReadOnly)
        } else {
            open_and_check(path, &shown, config.cache_size).map(Handle::Writable)
        }
    };
    match catch_unwind(AssertUnwindSafe(open)) {
        Ok(result) => result,
        Err(payload) => Err(Error::corrupted(format!(
            "{shown}: redb failed while opening it ({}); run `namestore check` (RedbDriver::check) on it",
            panic_message(&*payload)
        ))),
    }
}

fn open_and_check(path: &Path, shown: &str, cache_size: usize) -> Result<Database> {
    create_private(path).map_err(|e| cannot_open(shown, &e))?;
    let db = redb::Builder::new()
        .set_cache_size(cache_size)
        .create(path)
        .map_err(|e| open_error(e, shown))?;
    mark_as_namestore(&db, shown, true)?;
    Ok(db)
}

/// Opens the file for reading only, never for writing, and checks that it is namestore's.
fn open_read_only(path: &Path, shown: &str, cache_size: usize) -> Result<ReadOnlyDatabase> {
    let db = redb::Builder::new()
        .set_cache_size(cache_size)
        .open_read_only(path)
        .map_err(|e| open_error(e, shown))?;
    if !is_namestore(&db, shown)? {
        return Err(empty_redb(shown));
    }
    Ok(db)
}

/// A file that cannot be opened for the operating system's reason `io`; a file that may only be
/// read says how to read it.
fn cannot_open(shown: &str, io: &std::io::Error) -> Error {
    let hint = match io.kind() {
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => {
            " (to read a file that cannot be written, open it read-only: `?read_only=1`)"
        }
        _ => "",
    };
    Error::unavailable(format!("cannot open {shown}: {io}{hint}"), None)
}

/// Creates the file at `path`, empty, if there is none, readable and writable by its owner
/// only (on Unix, mode 0600 whatever the umask): a store may hold sessions and other secrets.
/// An existing file is left as it is, its mode included.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// What a failed open means, for the file `shown`.
pub(super) fn open_error(error: redb::DatabaseError, shown: &str) -> Error {
    match error {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            Error::unavailable(format!("the file {shown} {ALREADY_OPEN}"), None)
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            not_namestore(shown)
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => cannot_open(shown, &io),
        redb::DatabaseError::RepairAborted => Error::unavailable(
            format!(
                "{shown} was left open by a writer that stopped (a crash?), and recovering it \
                 writes to the file, which a read-only store does not: open it once with a \
                 store that writes, or run `namestore check` on it"
            ),
            Some(Box::new(redb::DatabaseError::RepairAborted)),
        ),
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(reason)) => {
            Error::corrupted(format!("{shown}: {reason}"))
        }
        other => storage(other),
    }
}

/// The error for a redb database without namestore's tables, which is not made one here.
fn empty_redb(shown: &str) -> Error {
    Error::backend(format!(
        "{shown} is an empty redb database, not a namestore file"
    ))
}

fn not_namestore(shown: &str) -> Error {
    Error::backend(format!(
        "{shown} is not a namestore file (not a redb database)"
    ))
}

/// Checks that the database is namestore's, reading it without writing. A new (empty)
/// database gets namestore's tables when `may_create`; otherwise it is refused.
pub(super) fn mark_as_namestore(db: &Database, shown: &str, may_create: bool) -> Result<()> {
    if is_namestore(db, shown)? {
        return Ok(());
    }
    if !may_create {
        return Err(empty_redb(shown));
    }
    let txn = db.begin_write().map_err(storage)?;
    {
        txn.open_table(META)
            .map_err(storage)?
            .insert("format", FORMAT)
            .map_err(storage)?;
        txn.open_table(DATA).map_err(storage)?;
        txn.open_table(EXPIRY).map_err(storage)?;
    }
    txn.commit().map_err(storage)
}

/// Whether the database is namestore's (`false`: a redb database without tables, which can be
/// made one); an error for another program's database or an unknown namestore format.
fn is_namestore(db: &impl ReadableDatabase, shown: &str) -> Result<bool> {
    let read = db.begin_read().map_err(storage)?;
    let format = match read.open_table(META) {
        Ok(meta) => meta
            .get("format")
            .map_err(storage)?
            .map(|v| v.value().to_owned()),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(other) => return Err(storage(other)),
    };
    match format.as_deref() {
        Some(FORMAT) => return Ok(true),
        Some(_) => {
            return Err(Error::backend(format!(
                "{shown} has an unknown namestore format"
            )));
        }
        None => {}
    }
    let foreign = read
        .list_tables()
        .map_err(storage)?
        .any(|t| !t.name().starts_with("namestore."));
    drop(read);
    if foreign {
        return Err(Error::backend(format!(
            "{shown} is a redb file, but not namestore's"
        )));
    }
    Ok(false)
}

/// What readers need to know about the write transaction in flight, so that no read answers
/// "expired" for a key that a write in flight has decided is live (SPEC 3.2, 7.1).
///
/// A group of writes decides liveness against one clock reading, and becomes visible only when
/// its transaction commits, a few milliseconds later. A read in between sees the old snapshot
/// with a later clock: it could answer "expired" for a key the group found live and, say, gave
/// a new TTL, and a read after the commit would then see the key again. So a read that finds a
/// key expired at a deadline later than the clock reading of the group in flight waits for
/// that group to commit and reads again. Reads of live keys, and of keys that expired before
/// the group's clock reading, never wait.
pub(super) struct Visibility {
    /// The clock reading of the group in flight: 0 while it is being taken, `u64::MAX` when
    /// no group is in flight.
    deciding: AtomicU64,
    /// Groups finished (committed, or failed and rolled back).
    finished: AtomicU64,
    signal: (Mutex<()>, Condvar),
}

impl Visibility {
    fn new() -> Self {
        Visibility {
            deciding: AtomicU64::new(u64::MAX),
            finished: AtomicU64::new(0),
            signal: (Mutex::new(()), Condvar::new()),
        }
    }

    /// A group starts: returns the clock reading its writes decide with. The reading is
    /// published before it is taken (as 0), so a reader that does not see it published read
    /// its own clock earlier.
    pub(super) fn begin(&self) -> u64 {
        self.deciding.store(0, Ordering::SeqCst);
        let now = now_ms();
        self.deciding.store(now, Ordering::SeqCst);
        now
    }

    /// The group is committed (visible to new reads) or rolled back.
    pub(super) fn end(&self) {
        let _guard = self.signal.0.lock().unwrap_or_else(PoisonError::into_inner);
        self.finished.fetch_add(1, Ordering::SeqCst);
        self.deciding.store(u64::MAX, Ordering::SeqCst);
        self.signal.1.notify_all();
    }

    /// Taken before a read transaction begins.
    pub(super) fn mark(&self) -> u64 {
        self.finished.load(Ordering::SeqCst)
    }

    /// Whether a read that began after `mark` and found a key expired at `deadline` can
    /// answer so now: no group finished since it began, and none in flight decides at a later
    /// clock reading.
    pub(super) fn stands_now(&self, mark: u64, deadline: u64) -> bool {
        let deciding = self.deciding.load(Ordering::SeqCst);
        self.finished.load(Ordering::SeqCst) == mark && deciding >= deadline
    }

    /// Whether a read that began after `mark` and found a key expired at `deadline` can
    /// answer so. When it cannot, waits until the group in flight is done: read again.
    pub(super) fn expiry_stands(&self, mark: u64, deadline: u64) -> bool {
        if self.stands_now(mark, deadline) {
            return true;
        }
        // A group finished since the read began (its snapshot may predate it), or the group
        // in flight decides later than the deadline: once it is done, read again.
        let mut guard = self.signal.0.lock().unwrap_or_else(PoisonError::into_inner);
        while self.finished.load(Ordering::SeqCst) == mark {
            guard = self
                .signal
                .1
                .wait_timeout(guard, Duration::from_millis(50))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        false
    }
}

/// A store on a new file of its own in the temporary directory, for unit tests.
#[cfg(test)]
pub(super) fn fresh_store(name: &str) -> (Store, std::path::PathBuf) {
    let path =
        std::env::temp_dir().join(format!("namestore-{name}-unit-{}.redb", std::process::id()));
    let _ = std::fs::remove_file(&path);
    (Store::open(RedbConfig::new(&path)).unwrap(), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`Store::alone`] waits for the reads that hold the database; one that holds it past the
    /// wait leaves it as it was (the reads after it work, nothing ran), and once let go of,
    /// the database is had alone.
    #[test]
    fn a_read_holding_the_database_is_waited_for_then_left_alone() {
        let (store, path) = fresh_store("alone");
        let reader = store.database().unwrap();
        let mut ran = 0;
        let refused = store
            .alone(Duration::from_millis(50), |_| {
                ran += 1;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(refused.kind(), crate::ErrorKind::Unavailable, "{refused}");
        assert_eq!(ran, 0);
        assert!(
            store.database_now().unwrap().is_some(),
            "the database was not put back"
        );

        let let_go = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(reader);
        });
        store
            .alone(Duration::from_secs(5), |db| {
                ran += 1;
                db.compact().map_err(storage).map(drop)
            })
            .unwrap();
        let_go.join().unwrap();
        assert_eq!(ran, 1);
        assert!(store.database_now().unwrap().is_some());
        drop(store);
        let _ = std::fs::remove_file(&path);
    }
}
