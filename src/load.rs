//! Cache-aside reads: [`Namespace::get_or_load`] and [`TypedNamespace::get_or_load`] read a
//! key and, when it is missing, load its value from where it comes from, store it, and return
//! it; concurrent misses of one key in one process load it once.
//!
//! # Loads of one key, one at a time
//!
//! A miss joins the key's *flight*: an asynchronous lock per key, shared by every clone of the
//! namespace handle. The first caller loads while the others wait; each waiter then reads the
//! key again and finds what the first stored, so a hundred requests that miss the same key at
//! once cost one load, not a hundred (the thundering herd a hand-written `get`-then-`set`
//! lets through to the database). A caller whose miss was answered only after the flight
//! that loaded the key had ended (a slow read) reads the key again too, rather than load it a
//! second time. Then:
//!
//! - a load that fails returns its error to its own caller, and the next waiter loads in turn
//!   (an error is not handed to callers that did not run the load: a passing failure fails
//!   one request, not every request waiting on it);
//! - a caller dropped while it loads (a timeout, a client gone) lets the next waiter load;
//!   a load that never ends holds the key's turn for as long as its caller waits, so the
//!   callers of a load that can hang bound their wait (`tokio::time::timeout`);
//! - the lock is in this process: instances sharing a Redis store each load once.
//!
//! Waiting needs no particular runtime: the lock is `futures-util`'s asynchronous mutex, which
//! wakes the next waiter from whichever executor polls it.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::lock::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::codec::Codec;
use crate::driver::Driver;
use crate::error::Error;
use crate::key::Key;
use crate::namespace::Namespace;
use crate::ttl::Ttl;
use crate::typed::TypedNamespace;

/// Why [`get_or_load`](Namespace::get_or_load) returned no value: the store failed (reading,
/// or storing what was loaded), or the load did.
#[derive(Debug)]
pub enum LoadError<E> {
    /// The store's error: the key could not be read, or the loaded value not stored (it was
    /// loaded, and is dropped: a value that cannot be cached is not returned as if it were).
    Store(Error),
    /// The load's own error; nothing was stored.
    Load(E),
}

impl<E> From<Error> for LoadError<E> {
    fn from(error: Error) -> Self {
        LoadError::Store(error)
    }
}

impl<E: fmt::Display> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Store(error) => write!(f, "{error}"),
            LoadError::Load(error) => write!(f, "the load failed: {error}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for LoadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Store(error) => Some(error),
            LoadError::Load(error) => Some(error),
        }
    }
}

/// The keys of a namespace being loaded, each with its lock (see the [module](self)).
#[derive(Default)]
pub(crate) struct Flights {
    keys: Mutex<HashMap<String, Weak<AsyncMutex<()>>>>,
    /// How many loaded values the namespace's callers have stored: a caller that missed
    /// before a flight ended and joins after it started a new one, and reads the key again
    /// only if a value was stored meanwhile (any key's: a spare read at worst).
    stored: AtomicU64,
}

impl Flights {
    /// The count of values stored, read before a caller's first read of the key.
    fn stored(&self) -> u64 {
        self.stored.load(Ordering::SeqCst)
    }

    /// A caller stored what it loaded.
    fn store(&self) {
        self.stored.fetch_add(1, Ordering::SeqCst);
    }

    /// Joins `key`'s flight, starting it if none is under way; the flag says whether one was.
    fn join(&self, key: String) -> (Flight<'_>, bool) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let (lock, joined) = match keys.get(&key).and_then(Weak::upgrade) {
            Some(lock) => (lock, true),
            None => {
                let lock = Arc::new(AsyncMutex::new(()));
                keys.insert(key.clone(), Arc::downgrade(&lock));
                (lock, false)
            }
        };
        let flight = Flight {
            flights: self,
            key,
            lock,
        };
        (flight, joined)
    }
}

/// A caller's place in a key's flight; the flight ends with its last caller.
struct Flight<'f> {
    flights: &'f Flights,
    key: String,
    lock: Arc<AsyncMutex<()>>,
}

impl Flight<'_> {
    /// Waits for the callers ahead (the one loading first).
    async fn turn(&self) -> OwnedMutexGuard<()> {
        self.lock.clone().lock_owned().await
    }
}

impl Drop for Flight<'_> {
    /// The last caller out takes the key out of the flights (callers join under the same
    /// lock, and each holds the key's lock until it is out).
    fn drop(&mut self) {
        let mut keys = self
            .flights
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if Arc::strong_count(&self.lock) == 1 {
            keys.remove(&self.key);
            if keys.capacity() > 64 && keys.len() < keys.capacity() / 4 {
                keys.shrink_to_fit();
            }
        }
    }
}

impl<K: Key, D: Driver> Namespace<K, D> {
    /// The value of `key`; when it is missing, the value `load` gives, stored under `key` with
    /// `ttl` first. Concurrent misses of one key through this handle and its clones load it
    /// once: the others wait and read what it stored (see the [module](crate::load)).
    ///
    /// `load` runs only on a miss, and only in the caller that loads: a waiter whose turn
    /// comes after the value was stored returns it without calling its own. A `load` that
    /// asks this namespace's handles for the same key with `get_or_load` waits for itself,
    /// for ever; a panicking `load` is as a dropped caller: the next waiter loads.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> namestore::Result<()> {
    /// use std::time::Duration;
    /// use namestore::load::LoadError;
    ///
    /// let store = namestore::MemoryDriver::new();
    /// let pages = store.namespace::<String>("site", "pages")?;
    /// let page = pages
    ///     .get_or_load(&"/about".to_owned(), Some(Duration::from_secs(60)), || async {
    ///         // The database, a rendering, another service...
    ///         Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"<h1>About</h1>"))
    ///     })
    ///     .await
    ///     .map_err(|e| match e {
    ///         LoadError::Store(e) => e,
    ///         LoadError::Load(e) => panic!("the page could not be made: {e}"),
    ///     })?;
    /// assert_eq!(page, "<h1>About</h1>");
    /// // Stored, with its TTL: the next read is a hit.
    /// assert_eq!(pages.get(&"/about".to_owned()).await?.unwrap(), "<h1>About</h1>");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`LoadError::Load`] with `load`'s error (nothing stored); [`LoadError::Store`] with
    /// the store's: an invalid key or `ttl` (before anything is loaded), a read or the write
    /// of the loaded value that failed (as [`get`](Self::get) and [`set`](Self::set)).
    pub async fn get_or_load<E, F, Fut>(
        &self,
        key: &K,
        ttl: Option<Duration>,
        load: F,
    ) -> Result<Bytes, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        if let Some(ttl) = ttl {
            Ttl::new(ttl)?;
        }
        let stored = self.flights().stored();
        if let Some(value) = self.get(key).await? {
            return Ok(value);
        }
        let (flight, joined) = self.flights().join(self.full_key(key)?);
        let _turn = flight.turn().await;
        // Someone was loading it, or a flight that ended since the miss stored a value: what
        // they stored (unless their load failed).
        let stored_since = self.flights().stored() != stored;
        if (joined || stored_since)
            && let Some(value) = self.get(key).await?
        {
            return Ok(value);
        }
        let value = load().await.map_err(LoadError::Load)?;
        self.set(key, value.clone(), ttl).await?;
        self.flights().store();
        Ok(value)
    }
}

impl<K: Key, C: Codec, D: Driver> TypedNamespace<K, C, D> {
    /// The value of `key`; when it is missing, the value `load` gives, stored under `key`
    /// with `ttl` first; concurrent misses of one key load it once. See
    /// [`Namespace::get_or_load`].
    ///
    /// A stored value the codec cannot decode is a miss: loaded, and overwritten with what
    /// `load` gives. Such a value is most often one an earlier build wrote before the type
    /// changed (a field added or renamed): after a deploy, every key cached by the old build
    /// would otherwise fail every request until its TTL ran out. (So two programs that share
    /// a namespace with types of different shapes overwrite each other's values at each read,
    /// each loading; [`get`](Self::get) still reports such a value as
    /// [`ErrorKind::Decode`](crate::ErrorKind::Decode).)
    ///
    /// # Errors
    ///
    /// As [`Namespace::get_or_load`]; a loaded value the codec cannot encode is
    /// [`LoadError::Store`] with [`ErrorKind::Encode`](crate::ErrorKind::Encode) (nothing is
    /// stored).
    pub async fn get_or_load<E, F, Fut>(
        &self,
        key: &K,
        ttl: Option<Duration>,
        load: F,
    ) -> Result<C::Value, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C::Value, E>>,
    {
        if let Some(ttl) = ttl {
            Ttl::new(ttl)?;
        }
        let flights = self.bytes().flights();
        let stored = flights.stored();
        if let Some(value) = self.cached(key).await? {
            return Ok(value);
        }
        let (flight, joined) = flights.join(self.bytes().full_key(key)?);
        let _turn = flight.turn().await;
        let stored_since = flights.stored() != stored;
        if (joined || stored_since)
            && let Some(value) = self.cached(key).await?
        {
            return Ok(value);
        }
        let value = load().await.map_err(LoadError::Load)?;
        self.set(key, &value, ttl).await?;
        flights.store();
        Ok(value)
    }
}

impl<K: Key, C: Codec, D: Driver> TypedNamespace<K, C, D> {
    /// The value of `key` for [`get_or_load`](Self::get_or_load): `None` when it is missing,
    /// and when the codec cannot decode it (it is loaded over).
    async fn cached(&self, key: &K) -> crate::Result<Option<C::Value>> {
        match self.get(key).await {
            Err(error) if error.kind() == crate::ErrorKind::Decode => Ok(None),
            read => read,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    fn flying(ns: &Namespace<String, crate::MemoryDriver>) -> usize {
        ns.flights().keys.lock().unwrap().len()
    }

    /// A key leaves the flights with its last caller, whether it loaded, failed, or was
    /// dropped while it waited: loading many keys leaves nothing behind.
    #[test]
    fn keys_leave_the_flights_with_their_last_caller() {
        let ns = crate::MemoryDriver::new()
            .namespace::<String>("load", "flights")
            .unwrap();
        let loaded = ns
            .get_or_load(&"a".to_owned(), None, || async {
                Ok::<_, std::io::Error>(Bytes::from_static(b"1"))
            })
            .now_or_never()
            .unwrap();
        assert_eq!(loaded.unwrap(), "1");
        let failed = ns
            .get_or_load(&"b".to_owned(), None, || async {
                Err::<Bytes, _>(std::io::Error::other("no"))
            })
            .now_or_never()
            .unwrap();
        assert!(matches!(failed, Err(LoadError::Load(_))));
        assert_eq!(flying(&ns), 0);

        // One caller loading, held at its load; another waiting on it.
        let c = "c".to_owned();
        let mut loading = Box::pin(ns.get_or_load(&c, None, || {
            std::future::pending::<Result<Bytes, std::io::Error>>()
        }));
        assert!(loading.as_mut().now_or_never().is_none());
        let mut waiting = Box::pin(ns.get_or_load(&c, None, || async {
            Ok::<_, std::io::Error>(Bytes::from_static(b"3"))
        }));
        assert!(waiting.as_mut().now_or_never().is_none());
        assert_eq!(flying(&ns), 1);
        drop(loading);
        assert_eq!(flying(&ns), 1, "the waiter is still in it");
        drop(waiting);
        assert_eq!(flying(&ns), 0);
    }
}
