//! The Redis driver, standalone server (by address, by Unix socket, or found through Redis
//! Sentinel) or Redis Cluster, on redis-rs with tokio. Cargo feature `redis`.
//!
//! Every key of a namespace is stored as `root:domain:key`. Each operation is one command
//! that Redis runs atomically, a `MULTI`/`EXEC` transaction (`incr` with a TTL on creation,
//! `mset` with a TTL), or a cached Lua script called by SHA (`cas`, `cad`). `keys`/`scan` and
//! `clear` walk the namespace with `SCAN MATCH root:domain:*`, never `KEYS` or `FLUSHDB`, and
//! `clear` deletes with `UNLINK` in batches. The business pattern is applied by namestore's
//! own matcher, so glob semantics are the same as on every driver.
//!
//! The parts: [`config`](RedisConfig) (the URL), `connection` (connecting, a call's bounds and
//! error kinds, sending once), `sentinel` (finding the primary, watching for failovers),
//! `tls` (certificate files, and which handshakes are refusals), `password` and `file` (the
//! files a URL names), `scripts`, `batches` (`mget`, `mset`, `mdel`, split by slot on a
//! cluster), `listing` (`SCAN` walks).
//!
//! A call whose effect or answer would change if it ran twice (`set_nx`, `replace`, `delete`,
//! `persist`, `incr`, `get_set`, `cas`, `cad`) is sent once and never resent after a
//! connection error: the caller gets [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) and
//! cannot know whether it ran. A call that could not be sent at all, or that the server
//! refused to run for now (`LOADING`, `BUSY`, `MASTERDOWN`, `CLUSTERDOWN`, `TRYAGAIN`), is
//! [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable).

mod batches;
mod config;
mod connection;
mod file;
mod listing;
mod password;
mod scripts;
mod sentinel;
mod tls;
mod turned_away;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use redis::{Cmd, FromRedisValue, Pipeline, RedisError};

pub(crate) use config::PARAMETERS;
pub use config::{
    CLUSTER_SCHEME, RedisConfig, SCHEME, SENTINEL_SCHEME, TLS_CLUSTER_SCHEME, TLS_SCHEME,
    TLS_SENTINEL_SCHEME, UNIX_SCHEME,
};

use self::connection::{Connection, Link, Resend, send_once, send_transaction_once};
use self::listing::{Seen, Target};
use self::scripts::{Lua, scripts};
use crate::driver::Driver;
use crate::glob::Pattern;
use crate::name::{NamespaceInfo, NamespaceName};
use crate::ttl::{Expiry, KeyTtl, Ttl};
use crate::{Error, Key, Namespace, Result};

/// A Redis server as a namestore store. Cheap to clone (one `Arc`); clones share the
/// connection.
///
/// Its calls run on a tokio runtime with IO and timers (`#[tokio::main]`, `enable_all`), the
/// connection made on first use and made again after a failure, in whichever runtime the
/// call runs (a handle outlives the runtime it first connected in). A call polled outside any
/// tokio runtime fails with [`ErrorKind::Backend`](crate::ErrorKind::Backend).
///
/// ```no_run
/// # async fn run() -> namestore::Result<()> {
/// use namestore::drivers::redis::RedisDriver;
///
/// let store = RedisDriver::from_url("redis://127.0.0.1:6379/0")?;
/// let sessions = store.namespace::<String>("app", "sessions")?;
/// sessions.set(&"s1".to_owned(), "user=42", None).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisDriver {
    inner: Arc<Inner>,
}

struct Inner {
    config: RedisConfig,
    link: Link,
}

/// A Redis namespace: its key prefix, `root:domain:` (or `{root:domain}:` with the hash tag).
#[derive(Clone, Debug)]
pub struct RedisScope(Arc<str>);

impl RedisScope {
    fn key(&self, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.0.len() + key.len());
        full.extend_from_slice(self.0.as_bytes());
        full.extend_from_slice(key.as_bytes());
        full
    }
}

impl RedisDriver {
    /// A driver for the server `config` names. Connects on first use.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) when the settings cannot make
    /// a client (a TLS setting the build does not support).
    pub fn new(config: RedisConfig) -> Result<Self> {
        let link = Link::new(&config)?;
        Ok(RedisDriver {
            inner: Arc::new(Inner { config, link }),
        })
    }

    /// A driver from a `redis://` URL; see [`RedisConfig::from_url`].
    ///
    /// # Errors
    ///
    /// As [`RedisConfig::from_url`].
    pub fn from_url(url: &str) -> Result<Self> {
        RedisDriver::new(RedisConfig::from_url(url)?)
    }

    /// The driver's settings.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// Opens the namespace (`root`, `domain`) bound to key type `K`; see [`Namespace::new`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidNamespace`](crate::ErrorKind::InvalidNamespace) when a name breaks
    /// SPEC 1.2.
    pub fn namespace<K: Key>(&self, root: &str, domain: &str) -> Result<Namespace<K, RedisDriver>> {
        Namespace::new(self.clone(), root, domain)
    }

    /// Runs one call within the configured bounds; see [`connection::call`].
    async fn call<T, F>(
        &self,
        key: &str,
        resend: Resend<'_>,
        exchange: impl Fn(Connection) -> F,
    ) -> Result<T>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        connection::call(&self.inner.link, &self.inner.config, key, resend, exchange).await
    }

    /// Runs an idempotent command: resent once if the connection is lost during the call.
    async fn query<T: FromRedisValue>(&self, key: &str, command: Cmd) -> Result<T> {
        let command = &command;
        self.call(key, Resend::Allowed, |mut connection| async move {
            command.query_async(&mut connection).await
        })
        .await
    }

    /// Runs a non-idempotent command on the stored key `full`: sent once, never resent after a
    /// connection error.
    async fn once<T: FromRedisValue>(&self, key: &str, full: &[u8], command: Cmd) -> Result<T> {
        let command = &command;
        self.call(key, Resend::Never(full), |connection| async move {
            let value = send_once(connection, command).await?;
            T::from_redis_value(value).map_err(RedisError::from)
        })
        .await
    }

    /// Runs a non-idempotent `MULTI`/`EXEC` transaction on the stored key `full` once.
    async fn transaction_once<T: FromRedisValue>(
        &self,
        key: &str,
        full: &[u8],
        transaction: Pipeline,
    ) -> Result<T> {
        let transaction = &transaction;
        self.call(key, Resend::Never(full), |connection| async move {
            let values = send_transaction_once(connection, transaction).await?;
            T::from_redis_value(redis::Value::Array(values)).map_err(RedisError::from)
        })
        .await
    }

    /// Runs a script once by SHA; when the server does not know it yet (`NOSCRIPT`, so it did
    /// not run), once by source.
    async fn script_once<T: FromRedisValue>(
        &self,
        key: &str,
        lua: &'static Lua,
        full_key: Vec<u8>,
        args: Vec<Vec<u8>>,
    ) -> Result<T> {
        let (full_key, args) = (&full_key, &args);
        self.call(key, Resend::Never(full_key), |connection| async move {
            let mut by_sha = redis::cmd("EVALSHA");
            by_sha
                .arg(lua.script.get_hash())
                .arg(1)
                .arg(full_key)
                .arg(args);
            let value = match send_once(connection.clone(), &by_sha).await {
                Err(error) if error.code() == Some("NOSCRIPT") => {
                    let mut by_source = redis::cmd("EVAL");
                    by_source.arg(lua.source).arg(1).arg(full_key).arg(args);
                    send_once(connection, &by_source).await?
                }
                other => other?,
            };
            T::from_redis_value(value).map_err(RedisError::from)
        })
        .await
    }
}

impl fmt::Debug for RedisDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDriver")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn px(command: &mut redis::Cmd, ttl: Option<Ttl>) {
    if let Some(ttl) = ttl {
        command.arg("PX").arg(ttl.as_millis());
    }
}

impl RedisDriver {
    /// `SET key value NX|XX [PX ttl]`: stores only a missing (`NX`) or a present (`XX`) key;
    /// says whether it did. Sent once (its answer would change if it ran twice).
    async fn set_if(
        &self,
        s: &RedisScope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
        condition: &str,
    ) -> Result<bool> {
        let full = s.key(key);
        let mut command = redis::cmd("SET");
        command.arg(&full).arg(&value[..]).arg(condition);
        px(&mut command, ttl);
        Ok(self
            .once::<Option<String>>(key, full.as_ref(), command)
            .await?
            .is_some())
    }
}

impl Driver for RedisDriver {
    type Scope = RedisScope;

    fn system_name(&self) -> &'static str {
        "redis"
    }

    fn scope(&self, namespace: &NamespaceName) -> Result<RedisScope> {
        Ok(RedisScope(if self.config().hash_tag {
            format!("{{{}:{}}}:", namespace.root(), namespace.domain()).into()
        } else {
            namespace.prefix().into()
        }))
    }

    async fn set(&self, s: &RedisScope, key: &str, value: Bytes, expiry: Expiry) -> Result<()> {
        let mut command = redis::cmd("SET");
        command.arg(s.key(key)).arg(&value[..]);
        match expiry {
            Expiry::Never => {}
            Expiry::After(ttl) => px(&mut command, Some(ttl)),
            Expiry::Keep => {
                command.arg("KEEPTTL");
            }
        }
        self.query::<()>(key, command).await
    }

    async fn set_nx(
        &self,
        s: &RedisScope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<bool> {
        self.set_if(s, key, value, ttl, "NX").await
    }

    async fn replace(
        &self,
        s: &RedisScope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<bool> {
        self.set_if(s, key, value, ttl, "XX").await
    }

    async fn get(&self, s: &RedisScope, key: &str) -> Result<Option<Bytes>> {
        let mut command = redis::cmd("GET");
        command.arg(s.key(key));
        Ok(self
            .query::<Option<Vec<u8>>>(key, command)
            .await?
            .map(Bytes::from))
    }

    async fn exists(&self, s: &RedisScope, key: &str) -> Result<bool> {
        let mut command = redis::cmd("EXISTS");
        command.arg(s.key(key));
        Ok(self.query::<i64>(key, command).await? > 0)
    }

    async fn delete(&self, s: &RedisScope, key: &str) -> Result<bool> {
        let full = s.key(key);
        let mut command = redis::cmd("DEL");
        command.arg(&full);
        Ok(self.once::<i64>(key, full.as_ref(), command).await? > 0)
    }

    async fn ttl(&self, s: &RedisScope, key: &str) -> Result<KeyTtl> {
        let mut command = redis::cmd("PTTL");
        command.arg(s.key(key));
        Ok(match self.query::<i64>(key, command).await? {
            -1 => KeyTtl::NoExpiry,
            left if left < 0 => KeyTtl::Missing,
            left => KeyTtl::ExpiresIn(Duration::from_millis(left.max(1) as u64)),
        })
    }

    async fn expire(&self, s: &RedisScope, key: &str, ttl: Ttl) -> Result<bool> {
        let mut command = redis::cmd("PEXPIRE");
        command.arg(s.key(key)).arg(ttl.as_millis());
        Ok(self.query::<i64>(key, command).await? == 1)
    }

    async fn persist(&self, s: &RedisScope, key: &str) -> Result<bool> {
        let full = s.key(key);
        let mut command = redis::cmd("PERSIST");
        command.arg(&full);
        Ok(self.once::<i64>(key, full.as_ref(), command).await? == 1)
    }

    async fn incr(
        &self,
        s: &RedisScope,
        key: &str,
        delta: i64,
        ttl_on_create: Option<Ttl>,
    ) -> Result<i64> {
        let full = s.key(key);
        // A key holding a list, a hash… (another client's) holds no integer (SPEC 4.4), as a
        // string that is not one.
        let counted = |result: Result<i64>| {
            result.map_err(|error| {
                if error.is_wrong_type() {
                    Error::not_an_integer(key)
                } else {
                    error
                }
            })
        };
        match ttl_on_create {
            None => {
                let mut command = redis::cmd("INCRBY");
                command.arg(&full).arg(delta);
                counted(self.once(key, full.as_ref(), command).await)
            }
            Some(ttl) => {
                // A counter the call creates starts at 0 with the TTL; INCRBY keeps a TTL. Both
                // in one transaction, and the answer is INCRBY's integer reply: exact. (SET's
                // answer is not ignored: see `send_transaction_once`.)
                let mut transaction = redis::pipe();
                transaction
                    .atomic()
                    .cmd("SET")
                    .arg(&full)
                    .arg(0)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl.as_millis())
                    .cmd("INCRBY")
                    .arg(&full)
                    .arg(delta);
                let answer = self.transaction_once(key, full.as_ref(), transaction).await;
                counted(answer.map(|(_, value): (redis::Value, i64)| value))
            }
        }
    }

    async fn get_set(
        &self,
        s: &RedisScope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<Option<Bytes>> {
        let full = s.key(key);
        let mut command = redis::cmd("SET");
        command.arg(&full).arg(&value[..]);
        px(&mut command, ttl);
        command.arg("GET");
        Ok(self
            .once::<Option<Vec<u8>>>(key, full.as_ref(), command)
            .await?
            .map(Bytes::from))
    }

    async fn cas(
        &self,
        s: &RedisScope,
        key: &str,
        expected: &[u8],
        new: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<bool> {
        let full = s.key(key);
        let ttl = ttl.map_or(0, Ttl::as_millis);
        let args = vec![
            expected.to_vec(),
            new.to_vec(),
            ttl.to_string().into_bytes(),
        ];
        self.script_once::<i64>(key, &scripts().cas, full, args)
            .await
            .map(|done| done == 1)
    }

    async fn cad(&self, s: &RedisScope, key: &str, expected: &[u8]) -> Result<bool> {
        let full = s.key(key);
        self.script_once::<i64>(key, &scripts().cad, full, vec![expected.to_vec()])
            .await
            .map(|done| done == 1)
    }

    async fn mget(&self, s: &RedisScope, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        self.get_batch(s, keys).await
    }

    async fn mset(
        &self,
        s: &RedisScope,
        pairs: &mut [(&str, Bytes)],
        ttl: Option<Ttl>,
    ) -> Result<()> {
        match ttl {
            None => self.set_batch(s, pairs).await,
            Some(ttl) => self.set_batch_with_ttl(s, pairs, ttl).await,
        }
    }

    async fn mdel(&self, s: &RedisScope, keys: &[&str]) -> Result<u64> {
        self.delete_batch(s, keys).await
    }

    fn scan(
        &self,
        s: &RedisScope,
        pattern: &Pattern,
    ) -> impl Stream<Item = Result<Vec<String>>> + Send + 'static {
        // SCAN may return a key twice while a server rehashes; the walk remembers what it has
        // yielded so each key comes once.
        struct Walk {
            driver: RedisDriver,
            scope: RedisScope,
            pattern: Pattern,
            /// Targets still to walk, the current one last; `None` until first polled.
            targets: Option<Vec<Target>>,
            cursor: u64,
            seen: Seen,
        }
        let walk = Walk {
            driver: self.clone(),
            scope: s.clone(),
            pattern: pattern.clone(),
            targets: None,
            cursor: 0,
            seen: Seen::default(),
        };
        futures_util::stream::unfold(walk, |mut walk| async move {
            let mut targets = match walk.targets.take() {
                Some(targets) => targets,
                None => match walk.driver.targets(&walk.scope).await {
                    Ok(targets) => targets,
                    Err(error) => {
                        walk.targets = Some(Vec::new());
                        return Some((Err(error), walk));
                    }
                },
            };
            let target = targets.last()?.clone();
            match walk
                .driver
                .scan_step(&walk.scope, &target, walk.cursor, Some(&walk.pattern))
                .await
            {
                Ok((next, keys)) => {
                    if next == 0 {
                        targets.pop();
                    }
                    walk.cursor = next;
                    walk.targets = Some(targets);
                    let page: Vec<String> = keys
                        .into_iter()
                        .filter(|k| walk.seen.insert(k.as_bytes()))
                        .collect();
                    Some((Ok(page), walk))
                }
                Err(error) => {
                    walk.targets = Some(Vec::new());
                    Some((Err(error), walk))
                }
            }
        })
    }

    async fn clear(&self, s: &RedisScope) -> Result<u64> {
        let mut cleared = 0;
        for target in self.targets(s).await? {
            let mut cursor = 0;
            loop {
                let (next, keys) = self.scan_step(s, &target, cursor, None).await?;
                // A `SCAN` page may hold more keys than its `COUNT` asked for.
                for batch in keys.chunks(listing::SCAN_COUNT) {
                    let full: Vec<Vec<u8>> = batch.iter().map(|key| s.key(key)).collect();
                    cleared += self.remove("UNLINK", "", &full).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(cleared)
    }

    /// Counts are final only when the whole keyspace has been walked, so the items come
    /// together at the end, in name order; memory grows with the number of namespaces and
    /// a 16-byte fingerprint per key (the de-duplication set).
    fn namespaces(&self) -> impl Stream<Item = Result<NamespaceInfo>> + Send + 'static {
        let driver = self.clone();
        super::items(futures_util::stream::once(async move {
            driver.count_namespaces().await
        }))
    }
}
