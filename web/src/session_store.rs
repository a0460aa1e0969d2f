//! A `tower_sessions` session store on any namestore driver.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use namestore::codec::MessagePack;
use namestore::{AnyDriver, Driver, ErrorKind, Key, KeyBuf, Namespace, Ttl, TypedNamespace};
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, Error};

use crate::Sha256Key;

/// How many fresh ids `create` tries when the ones it drew are taken. A 128-bit random id
/// collides with a live one with odds far below 2^-64; more than one retry in a row means
/// something other than chance writes the ids.
const CREATE_ATTEMPTS: usize = 8;

/// A session's key in the store: the SHA-256 digest of its id as the cookie carries it (22
/// characters of URL-safe base64), in 64 lowercase hex digits; never the id itself.
///
/// A session id is a credential: whoever has it is signed in. Keyed by its digest, a session
/// cannot be taken over by what shows its key: a listing of the store (`namestore keys`), a
/// backup, Redis's `MONITOR` and slow log, an error naming the key, a TRACE span of the
/// telemetry layer (SPEC 12.2: secrets never appear in telemetry). The digest of a 128-bit
/// random id cannot be turned back into it. An operator finds the key of a cookie's session
/// with `printf %s "$cookie" | sha256sum`.
///
/// ```
/// use namestore::Key;
/// use namestore_web::SessionKey;
///
/// let id: tower_sessions_core::session::Id = "AAAAAAAAAAAAAAAAAAAAAA".parse().unwrap();
/// let key = SessionKey::of(&id);
/// let mut text = namestore::KeyBuf::new();
/// key.encode(&mut text);
/// assert_eq!(text.as_str().len(), 64);
/// assert!(!text.as_str().contains(&id.to_string()));
/// assert_eq!(SessionKey::decode(text.as_str()), Some(key));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey(Sha256Key);

impl SessionKey {
    /// The key of the session `id`.
    pub fn of(id: &Id) -> Self {
        SessionKey(Sha256Key::of(id.to_string()))
    }

    /// The digest's 32 bytes.
    pub fn digest(&self) -> &[u8; 32] {
        self.0.digest()
    }
}

impl From<Id> for SessionKey {
    fn from(id: Id) -> Self {
        SessionKey::of(&id)
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({})", self.0)
    }
}

impl Key for SessionKey {
    fn encode(&self, out: &mut KeyBuf) {
        self.0.encode(out);
    }

    fn decode(key: &str) -> Option<Self> {
        Sha256Key::decode(key).map(SessionKey)
    }

    const NEVER_ESCAPED: bool = true;
}

/// A [`tower_sessions_core::SessionStore`] keeping each session as one key of a namestore
/// namespace: the record in MessagePack, the session's expiry as the key's TTL, the key the
/// digest of the session's id ([`SessionKey`]), so nothing that shows keys shows a usable id.
/// (Sessions that an earlier build of this crate stored under their raw ids are not found:
/// their users sign in again, and the old keys expire with their TTLs.)
///
/// ```
/// # fn main() -> namestore::Result<()> {
/// use namestore_web::SessionStore;
///
/// let store = SessionStore::new(namestore::open("memory://")?, "app", "sessions")?;
/// let layer = tower_sessions::SessionManagerLayer::new(store);
/// # let _ = layer;
/// # Ok(()) }
/// ```
///
/// The same code serves a store opened from `redb:///var/lib/app/sessions.redb` (sessions
/// survive a restart) or `redis://…` (sessions shared by every instance of the service).
/// Expired sessions need no deletion task: their keys expire. A session set to outlive the
/// longest TTL a key may have ([`Ttl::MAX`], 100 years) is kept with that TTL. `create` never
/// overwrites a session (`set_nx`, drawing a new id on a collision), and `save` never brings
/// one back (`replace`): a request that saves its session after a logout in another request
/// deleted it leaves it deleted.
///
/// On an in-memory store with a budget, [`new`](Self::new) takes the store's default eviction
/// mode: where that default evicts (a URL such as `memory://?max_bytes=64MiB&eviction=any`),
/// a full store signs users out. Give the sessions' namespace its own mode:
///
/// ```
/// # fn main() -> namestore::Result<()> {
/// use namestore::Eviction;
/// use namestore_web::SessionStore;
///
/// let store = namestore::open("memory://?max_bytes=64MiB&eviction=any")?;
/// let sessions = store.namespace_with_eviction("app", "sessions", Eviction::Never)?;
/// let store = SessionStore::from_namespace(sessions);
/// # let _ = store;
/// # Ok(()) }
/// ```
pub struct SessionStore<D: Driver = AnyDriver> {
    sessions: TypedNamespace<SessionKey, MessagePack<Record>, D>,
}

impl<D: Driver> Clone for SessionStore<D> {
    fn clone(&self) -> Self {
        SessionStore {
            sessions: self.sessions.clone(),
        }
    }
}

impl<D: Driver> fmt::Debug for SessionStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("namespace", &self.sessions.name().to_string())
            .finish()
    }
}

impl<D: Driver> SessionStore<D> {
    /// Sessions in the namespace (`root`, `domain`) of `driver`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidNamespace`] for a name breaking SPEC 1.2.
    pub fn new(driver: D, root: &str, domain: &str) -> namestore::Result<Self> {
        Ok(Self::from_namespace(Namespace::new(driver, root, domain)?))
    }

    /// Sessions in `namespace`.
    pub fn from_namespace(namespace: Namespace<SessionKey, D>) -> Self {
        SessionStore {
            sessions: namespace.with_codec(MessagePack::<Record>::new()),
        }
    }

    /// The typed namespace holding the sessions.
    pub fn namespace(&self) -> &TypedNamespace<SessionKey, MessagePack<Record>, D> {
        &self.sessions
    }
}

/// The time left before `expiry`, or `None` once it has passed; at most [`Ttl::MAX`] (100
/// years), the longest a key may live: a session meant to outlast it is kept that long.
fn time_left(expiry: OffsetDateTime) -> Option<Duration> {
    let left = expiry - OffsetDateTime::now_utc();
    Duration::try_from(left)
        .ok()
        .filter(|left| !left.is_zero())
        .map(|left| left.min(Ttl::MAX.as_duration()))
}

fn store_error(error: namestore::Error) -> Error {
    match error.kind() {
        ErrorKind::Decode => Error::Decode(error.to_string()),
        ErrorKind::Encode => Error::Encode(error.to_string()),
        _ => Error::Backend(error.to_string()),
    }
}

#[async_trait]
impl<D: Driver> session_store::SessionStore for SessionStore<D> {
    /// Stores a new session under a fresh id: `set_nx`, drawing another id while the one
    /// drawn is taken, so a collision never overwrites another session.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let Some(ttl) = time_left(record.expiry_date) else {
            return Ok(()); // already expired: nothing to keep
        };
        for _ in 0..CREATE_ATTEMPTS {
            if self
                .sessions
                .set_nx(&SessionKey::of(&record.id), record, Some(ttl))
                .await
                .map_err(store_error)?
            {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(Error::Backend(format!(
            "no free session id after {CREATE_ATTEMPTS} attempts"
        )))
    }

    /// Replaces the session's record and TTL if the session is still stored (`replace`, Redis
    /// `SET … XX`): a session deleted since the request loaded it (a logout in another
    /// request, `cycle_id`) or expired meanwhile stays gone, and the save stores nothing. A
    /// record whose expiry has passed is deleted.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let key = SessionKey::of(&record.id);
        match time_left(record.expiry_date) {
            Some(ttl) => self
                .sessions
                .replace(&key, record, Some(ttl))
                .await
                .map(drop),
            None => self.sessions.delete(&key).await.map(drop),
        }
        .map_err(store_error)
    }

    /// The session's record; `None` when it is missing, expired, or stored in a form the codec
    /// cannot read (by another version of tower-sessions whose record has another shape, or
    /// damaged): its user signs in again, where an error would fail every request carrying
    /// its cookie for as long as the record lived.
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let record = match self.sessions.get(&SessionKey::of(id)).await {
            Err(error) if error.kind() == ErrorKind::Decode => None,
            read => read.map_err(store_error)?,
        };
        // The key's TTL is rounded to the store's resolution; the record's own date rules.
        Ok(record.filter(|record| time_left(record.expiry_date).is_some()))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.sessions
            .delete(&SessionKey::of(id))
            .await
            .map(drop)
            .map_err(store_error)
    }
}
