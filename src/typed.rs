//! Namespaces typed by their values too: a [`Codec`] turns each value into the bytes stored
//! (SPEC 11).

use std::borrow::Borrow;
use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use crate::codec::Codec;
use crate::driver::Driver;
use crate::key::{self, Key, KeyBuf};
use crate::{AnyDriver, Error, KeyTtl, Namespace, NamespaceName, Result};

/// A namespace bound to a key type `K` and, through its codec `C`, a value type
/// `C::Value`: every call that takes or returns a value takes or returns a `C::Value`.
///
/// Made with [`Namespace::with_codec`], so the call site shows the key type, the value type
/// and the codec:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> namestore::Result<()> {
/// # #[cfg(feature = "json")]
/// # {
/// use std::time::Duration;
/// use namestore::codec::Json;
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Session {
///     user: u64,
///     roles: Vec<String>,
/// }
///
/// let store = namestore::MemoryDriver::new();
/// let sessions = store
///     .namespace::<String>("app", "sessions")?
///     .with_codec(Json::<Session>::new());
///
/// let id = "s-1".to_owned();
/// let session = Session { user: 7, roles: vec!["admin".into()] };
/// sessions.set(&id, &session, Some(Duration::from_secs(3600))).await?;
/// assert_eq!(sessions.get(&id).await?, Some(session));
/// # }
/// # Ok(()) }
/// ```
///
/// # What stays on bytes
///
/// Counters are decimal text whatever the codec (SPEC 11.3): `incr` and `decr` live on the
/// byte namespace underneath, [`bytes`](Self::bytes). So does anything that wants the stored
/// bytes as they are.
///
/// # Errors
///
/// Besides the byte API's errors, a read whose stored bytes the codec cannot decode fails
/// with [`ErrorKind::Decode`](crate::ErrorKind::Decode), naming the key and leaving the value
/// as it is (SPEC 11.2), and a value the codec cannot encode fails with
/// [`ErrorKind::Encode`](crate::ErrorKind::Encode) before anything is written.
pub struct TypedNamespace<K, C, D: Driver = AnyDriver> {
    bytes: Namespace<K, D>,
    codec: C,
}

impl<K, C: Clone, D: Driver> Clone for TypedNamespace<K, C, D> {
    fn clone(&self) -> Self {
        TypedNamespace {
            bytes: self.bytes.clone(),
            codec: self.codec.clone(),
        }
    }
}

impl<K, C, D: Driver> fmt::Debug for TypedNamespace<K, C, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedNamespace")
            .field("bytes", &self.bytes)
            .field("codec", &std::any::type_name::<C>())
            .finish()
    }
}

impl<K: Key, D: Driver> Namespace<K, D> {
    /// This namespace with its values typed by `codec`: see [`TypedNamespace`]. The byte
    /// namespace stays usable (and is [`TypedNamespace::bytes`]); both see the same keys.
    pub fn with_codec<C: Codec>(self, codec: C) -> TypedNamespace<K, C, D> {
        TypedNamespace { bytes: self, codec }
    }
}

impl<K: Key, C: Codec, D: Driver> TypedNamespace<K, C, D> {
    /// The byte namespace underneath: counters (SPEC 11.3), and the stored bytes as they are.
    pub fn bytes(&self) -> &Namespace<K, D> {
        &self.bytes
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The namespace's name.
    pub fn name(&self) -> &NamespaceName {
        self.bytes.name()
    }

    /// Encodes `value` for storing: into a buffer kept by the thread and reused, then copied
    /// once into an allocation of exactly its size (one allocation per value, whatever the
    /// codec's growth pattern). An encoding over [`REUSED_MAX`] is stored from the buffer it
    /// was written in, without a copy, and the thread keeps no buffer that large.
    fn encode(&self, key: &K, value: &C::Value) -> Result<Bytes> {
        thread_local! {
            static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        let encode = |out: &mut Vec<u8>| {
            self.codec
                .encode(value, out)
                .map_err(|source| Error::encode(&shown(key), C::NAME, source))
        };
        BUFFER.with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut out) => {
                out.clear();
                let encoded = encode(&mut out);
                let stored = if out.len() <= REUSED_MAX {
                    Bytes::copy_from_slice(&out)
                } else {
                    Bytes::from(std::mem::take(&mut *out))
                };
                if out.capacity() > REUSED_MAX {
                    *out = Vec::new();
                }
                encoded.map(|()| stored)
            }
            // A codec that stores a value while encoding one (re-entered on this thread).
            Err(_) => {
                let mut out = Vec::new();
                encode(&mut out).map(|()| Bytes::from(out))
            }
        })
    }

    fn decode(&self, key: &K, stored: &[u8]) -> Result<C::Value> {
        self.codec
            .decode(stored)
            .map_err(|source| Error::decode(&shown(key), C::NAME, source))
    }

    /// Stores `value` under `key`, with a TTL or without one (SPEC 2.1, 3.1); see
    /// [`Namespace::set`].
    ///
    /// # Errors
    ///
    /// As [`Namespace::set`], and [`ErrorKind::Encode`](crate::ErrorKind::Encode).
    pub async fn set(&self, key: &K, value: &C::Value, ttl: Option<Duration>) -> Result<()> {
        let encoded = self.encode(key, value)?;
        self.bytes.set(key, encoded, ttl).await
    }

    /// Stores `value` under `key` only if the key is absent; see [`Namespace::set_nx`].
    ///
    /// # Errors
    ///
    /// As [`Namespace::set_nx`], and [`ErrorKind::Encode`](crate::ErrorKind::Encode).
    pub async fn set_nx(&self, key: &K, value: &C::Value, ttl: Option<Duration>) -> Result<bool> {
        let encoded = self.encode(key, value)?;
        self.bytes.set_nx(key, encoded, ttl).await
    }

    /// Stores `value` under `key` only if the key is present; see [`Namespace::replace`].
    ///
    /// # Errors
    ///
    /// As [`Namespace::replace`], and [`ErrorKind::Encode`](crate::ErrorKind::Encode).
    pub async fn replace(&self, key: &K, value: &C::Value, ttl: Option<Duration>) -> Result<bool> {
        let encoded = self.encode(key, value)?;
        self.bytes.replace(key, encoded, ttl).await
    }

    /// Stores `value` under `key` and keeps the key's TTL; see [`Namespace::set_keep_ttl`].
    ///
    /// # Errors
    ///
    /// As [`Namespace::set_keep_ttl`], and [`ErrorKind::Encode`](crate::ErrorKind::Encode).
    pub async fn set_keep_ttl(&self, key: &K, value: &C::Value) -> Result<()> {
        let encoded = self.encode(key, value)?;
        self.bytes.set_keep_ttl(key, encoded).await
    }

    /// The value of `key`, or `None` when it is absent or expired; see [`Namespace::get`].
    ///
    /// # Errors
    ///
    /// As [`Namespace::get`], and [`ErrorKind::Decode`](crate::ErrorKind::Decode) when the
    /// stored bytes are not the codec's encoding of a value (the value is left as it is).
    pub async fn get(&self, key: &K) -> Result<Option<C::Value>> {
        match self.bytes.get(key).await? {
            Some(stored) => self.decode(key, &stored).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `value` and returns the previous value; see [`Namespace::get_set`].
    ///
    /// The previous value is decoded after the write: if it does not decode, the call fails
    /// with [`ErrorKind::Decode`](crate::ErrorKind::Decode) and the new value is stored.
    ///
    /// # Errors
    ///
    /// As [`Namespace::get_set`], [`ErrorKind::Encode`](crate::ErrorKind::Encode) (nothing
    /// written), [`ErrorKind::Decode`](crate::ErrorKind::Decode) (see above).
    pub async fn get_set(
        &self,
        key: &K,
        value: &C::Value,
        ttl: Option<Duration>,
    ) -> Result<Option<C::Value>> {
        let encoded = self.encode(key, value)?;
        match self.bytes.get_set(key, encoded, ttl).await? {
            Some(previous) => self.decode(key, &previous).map(Some),
            None => Ok(None),
        }
    }

    /// Replaces the value of `key` with `new` only if it currently is `expected`; see
    /// [`Namespace::cas`].
    ///
    /// The comparison is of encodings: the stored bytes against `expected` encoded by the
    /// codec. Two values equal as Rust values but encoded differently (a `HashMap` whose JSON
    /// lists its entries in another order) do not match, and a value written by another
    /// client matches only if that client wrote the same bytes.
    ///
    /// # Errors
    ///
    /// As [`Namespace::cas`], and [`ErrorKind::Encode`](crate::ErrorKind::Encode).
    pub async fn cas(
        &self,
        key: &K,
        expected: &C::Value,
        new: &C::Value,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let expected = self.encode(key, expected)?;
        let new = self.encode(key, new)?;
        self.bytes.cas(key, &expected, new, ttl).await
    }

    /// Deletes `key` only if its value currently is `expected` (compared as encodings, as
    /// [`cas`](Self::cas)); see [`Namespace::cad`].
    ///
    /// # Errors
    ///
    /// As [`Namespace::cad`], and [`ErrorKind::Encode`](crate::ErrorKind::Encode).
    pub async fn cad(&self, key: &K, expected: &C::Value) -> Result<bool> {
        let expected = self.encode(key, expected)?;
        self.bytes.cad(key, &expected).await
    }

    /// The values of many keys, from one atomic read; see [`Namespace::mget`].
    ///
    /// # Errors
    ///
    /// As [`Namespace::mget`], and [`ErrorKind::Decode`](crate::ErrorKind::Decode) naming the
    /// first key (in the batch's order) whose value does not decode.
    pub async fn mget<Q: Borrow<K>>(
        &self,
        keys: impl IntoIterator<Item = Q>,
    ) -> Result<Vec<Option<C::Value>>> {
        let keys: Vec<Q> = keys.into_iter().collect();
        let stored = self.bytes.mget(keys.iter().map(Borrow::borrow)).await?;
        keys.iter()
            .zip(stored)
            .map(|(key, stored)| match stored {
                Some(stored) => self.decode(key.borrow(), &stored).map(Some),
                None => Ok(None),
            })
            .collect()
    }

    /// Writes many pairs with one TTL, atomically; see [`Namespace::mset`]. Every value is
    /// encoded before anything is written.
    ///
    /// # Errors
    ///
    /// As [`Namespace::mset`], and [`ErrorKind::Encode`](crate::ErrorKind::Encode).
    pub async fn mset<Q: Borrow<K>, V: Borrow<C::Value>>(
        &self,
        pairs: impl IntoIterator<Item = (Q, V)>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let mut encoded = Vec::new();
        for (key, value) in pairs {
            let bytes = self.encode(key.borrow(), value.borrow())?;
            encoded.push((key, bytes));
        }
        self.bytes.mset(encoded, ttl).await
    }

    /// Deletes `key`; see [`Namespace::delete`].
    ///
    /// # Errors
    ///
    /// As [`Namespace::delete`].
    pub async fn delete(&self, key: &K) -> Result<bool> {
        self.bytes.delete(key).await
    }

    /// Deletes many keys; see [`Namespace::mdel`].
    ///
    /// # Errors
    ///
    /// As [`Namespace::mdel`].
    pub async fn mdel<Q: Borrow<K>>(&self, keys: impl IntoIterator<Item = Q>) -> Result<u64> {
        self.bytes.mdel(keys).await
    }

    /// Whether `key` is present and live; see [`Namespace::exists`].
    ///
    /// # Errors
    ///
    /// As [`Namespace::exists`].
    pub async fn exists(&self, key: &K) -> Result<bool> {
        self.bytes.exists(key).await
    }

    /// The time `key` has left; see [`Namespace::ttl`].
    ///
    /// # Errors
    ///
    /// As [`Namespace::ttl`].
    pub async fn ttl(&self, key: &K) -> Result<KeyTtl> {
        self.bytes.ttl(key).await
    }

    /// Gives `key` a new TTL; see [`Namespace::expire`].
    ///
    /// # Errors
    ///
    /// As [`Namespace::expire`].
    pub async fn expire(&self, key: &K, ttl: Duration) -> Result<bool> {
        self.bytes.expire(key, ttl).await
    }

    /// Removes `key`'s TTL; see [`Namespace::persist`].
    ///
    /// # Errors
    ///
    /// As [`Namespace::persist`].
    pub async fn persist(&self, key: &K) -> Result<bool> {
        self.bytes.persist(key).await
    }

    /// The live keys matching `pattern`; see [`Namespace::keys`].
    ///
    /// # Errors
    ///
    /// As [`Namespace::keys`].
    pub async fn keys(&self, pattern: &str) -> Result<Vec<K>> {
        self.bytes.keys(pattern).await
    }

    /// Deletes every key of the namespace; see [`Namespace::clear`].
    ///
    /// # Errors
    ///
    /// As [`Namespace::clear`].
    pub async fn clear(&self) -> Result<u64> {
        self.bytes.clear().await
    }
}

/// The largest encoding built in the thread's reused buffer.
const REUSED_MAX: usize = 64 * 1024;

/// The key's text for an error message.
fn shown<K: Key>(key: &K) -> String {
    let mut buf = KeyBuf::new();
    match key::encode(key, &mut buf) {
        Ok(text) => text.to_owned(),
        Err(_) => buf.as_str().to_owned(),
    }
}
