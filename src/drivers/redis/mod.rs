//! The Redis driver, standalone server or Redis Cluster, on redis-rs with tokio. Cargo
//! feature `redis`.
//!
//! Every key of a namespace is stored as `root:domain:key`. Each operation is one command
//! that Redis runs atomically, or a cached Lua script called by SHA where the rule needs
//! more than one command (`cas`, `cad`, `incr` with a TTL on creation); `mset` with a TTL is
//! a `MULTI`/`EXEC` transaction. `keys`/`scan` and `clear` walk the namespace with
//! `SCAN MATCH root:domain:*`, never `KEYS` or `FLUSHDB`, and `clear` deletes with `UNLINK`
//! in batches. The business pattern is applied by namestore's own matcher, so glob semantics
//! are the same as on every driver.
//!
//! The connection is multiplexed and reconnects by itself after a server restart; it is made
//! on first use, inside the caller's tokio runtime. A call whose effect or answer would change
//! if it ran twice (`set_nx`, `delete`, `persist`, `incr`, `get_set`, `cas`, `cad`) is sent
//! once and never resent after a connection error: the caller gets `Unavailable` or `Timeout`
//! and cannot know whether it ran. On a cluster those calls go through a second connection
//! with redis-rs's resending turned off, and namestore follows `MOVED` and `ASK` itself (a
//! redirection means the command did not run). Idempotent calls use the cluster client's own
//! retries.

mod config;

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, Script, Value};

pub use config::{CLUSTER_SCHEME, RedisConfig, SCHEME, TLS_SCHEME};

use crate::driver::Driver;
use crate::glob::Pattern;
use crate::name::{NamespaceInfo, NamespaceName, split_full_key};
use crate::ttl::{Expiry, KeyTtl, Ttl};
use crate::{Error, Key, Namespace, Result};

/// How many keys one `SCAN` call asks for, and at most how many keys one `UNLINK` deletes.
const SCAN_COUNT: usize = 1000;

/// A Redis server as a namestore store. Cheap to clone (one `Arc`); clones share the
/// connection.
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
    connection: tokio::sync::OnceCell<Connection>,
}

/// A multiplexed connection to a standalone server or to a cluster; cheap to clone.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    /// `main` follows redirections and resends after connection errors; `strict` never
    /// resends, so non-idempotent calls go through it with namestore's own redirect handling.
    Cluster {
        main: ClusterConnection,
        strict: ClusterConnection,
    },
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster { main, .. } => main.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster { main, .. } => main.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster { main, .. } => main.get_db(),
        }
    }
}

/// The keys a `SCAN` walk has already yielded, as 128-bit fingerprints (two independently
/// seeded hashes): 16 bytes a key instead of the key itself, and a chance of two keys
/// colliding below 10^-20 for a billion keys.
#[derive(Default)]
struct Seen {
    fingerprints: HashSet<u128>,
    hashers: (RandomState, RandomState),
}

impl Seen {
    /// Whether `key` is new to the walk; remembers it.
    fn insert(&mut self, key: &[u8]) -> bool {
        let (a, b) = &self.hashers;
        let fingerprint = (u128::from(a.hash_one(key)) << 64) | u128::from(b.hash_one(key));
        self.fingerprints.insert(fingerprint)
    }
}

/// Where one `SCAN` walk runs: the standalone server, or one cluster node.
#[derive(Clone, Debug)]
enum Target {
    Server,
    Node(RoutingInfo),
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
    /// None today; kept fallible for settings checked when the driver is built.
    pub fn new(config: RedisConfig) -> Result<Self> {
        Ok(RedisDriver {
            inner: Arc::new(Inner {
                config,
                connection: tokio::sync::OnceCell::new(),
            }),
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

    async fn connection(&self) -> Result<Connection> {
        let config = &self.inner.config;
        let connection = self
            .inner
            .connection
            .get_or_try_init(|| async {
                if config.is_cluster() {
                    let client = |retries| {
                        redis::cluster::ClusterClient::builder(config.urls().to_vec())
                            .connection_timeout(config.connect_timeout)
                            .response_timeout(config.response_timeout)
                            .retries(retries)
                            .build()
                    };
                    Ok(Connection::Cluster {
                        main: client(2)?.get_async_connection().await?,
                        strict: client(0)?.get_async_connection().await?,
                    })
                } else {
                    let url = config.urls()[0].as_str();
                    let client = match &config.tls_root_certificate {
                        Some(pem) => redis::Client::build_with_tls(
                            url,
                            redis::TlsCertificates {
                                client_tls: None,
                                root_cert: Some(pem.clone()),
                            },
                        )?,
                        None => redis::Client::open(url)?,
                    };
                    let settings = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(config.connect_timeout))
                        .set_response_timeout(Some(config.response_timeout))
                        .set_number_of_retries(2)
                        .set_max_delay(Duration::from_millis(500));
                    Ok(Connection::Single(ConnectionManager::new_lazy_with_config(
                        client, settings,
                    )?))
                }
            })
            .await
            .map_err(|e: RedisError| map_error(e, ""))?;
        Ok(connection.clone())
    }

    /// Runs one exchange with the server within the configured bound (SPEC 8.3).
    async fn call<T, F>(&self, key: &str, exchange: impl FnOnce(Connection) -> F) -> Result<T>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let bound = self.inner.config.call_timeout();
        let work = async {
            let connection = self.connection().await?;
            exchange(connection).await.map_err(|e| map_error(e, key))
        };
        match tokio::time::timeout(bound, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::timeout(bound)),
        }
    }

    async fn query<T: FromRedisValue>(&self, key: &str, command: redis::Cmd) -> Result<T> {
        self.call(key, |mut connection| async move {
            command.query_async(&mut connection).await
        })
        .await
    }
}

/// Sends `command` once: on a cluster, through the connection that never resends, following
/// `MOVED` and `ASK` itself (a redirection means the command did not run, so sending it to the
/// named node cannot apply it twice). A connection error is returned, not retried.
async fn send_once(connection: Connection, command: &Cmd) -> redis::RedisResult<Value> {
    let mut strict = match connection {
        Connection::Single(mut single) => return command.query_async(&mut single).await,
        Connection::Cluster { strict, .. } => strict,
    };
    let mut answer = command.query_async::<Value>(&mut strict).await;
    for _ in 0..5 {
        let redirect = match &answer {
            Err(error) => error.redirect_node().and_then(|(address, _)| {
                let (host, port) = address.rsplit_once(':')?;
                let ask = matches!(
                    error.kind(),
                    redis::ErrorKind::Server(redis::ServerErrorKind::Ask)
                );
                Some((host.to_owned(), port.parse::<u16>().ok()?, ask))
            }),
            Ok(_) => None,
        };
        let Some((host, port, ask)) = redirect else {
            break;
        };
        let node = SingleNodeRoutingInfo::ByAddress { host, port };
        answer = if ask {
            let mut pipeline = redis::pipe();
            pipeline.cmd("ASKING").ignore().add_command(command.clone());
            strict
                .route_pipeline(pipeline, 0, 1, node)
                .await
                .map(|mut values| values.pop().unwrap_or(Value::Nil))
        } else {
            strict
                .route_command(command.clone(), RoutingInfo::SingleNode(node))
                .await
        };
    }
    answer
}

impl RedisDriver {
    /// Runs a non-idempotent command: sent once, never resent after a connection error.
    async fn once<T: FromRedisValue>(&self, key: &str, command: Cmd) -> Result<T> {
        self.call(key, |connection| async move {
            let value = send_once(connection, &command).await?;
            T::from_redis_value(value).map_err(RedisError::from)
        })
        .await
    }

    /// Runs a script once by SHA; when the server does not know it yet (`NOSCRIPT`, so it did
    /// not run), once by source.
    async fn script_once<T: FromRedisValue>(
        &self,
        key: &str,
        script: &'static (Script, &'static str),
        full_key: Vec<u8>,
        args: Vec<Vec<u8>>,
    ) -> Result<T> {
        self.call(key, |connection| async move {
            let mut by_sha = redis::cmd("EVALSHA");
            by_sha
                .arg(script.0.get_hash())
                .arg(1)
                .arg(&full_key)
                .arg(&args);
            let value = match send_once(connection.clone(), &by_sha).await {
                Err(error) if error.code() == Some("NOSCRIPT") => {
                    let mut by_source = redis::cmd("EVAL");
                    by_source.arg(script.1).arg(1).arg(&full_key).arg(&args);
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

/// Maps a redis-rs error to namestore's, naming `key`. Messages come from redis-rs and the
/// server and hold no credentials.
fn map_error(error: RedisError, key: &str) -> Error {
    let text = error.to_string();
    if error.is_timeout() {
        Error::unavailable(
            "the Redis server did not answer in time",
            Some(Box::new(error)),
        )
    } else if error.is_connection_refusal() || error.is_io_error() || error.is_connection_dropped()
    {
        Error::unavailable("cannot reach the Redis server", Some(Box::new(error)))
    } else if text.contains("not an integer") {
        Error::not_an_integer(key)
    } else if text.contains("overflow") {
        Error::overflow(key)
    } else {
        Error::backend(error)
    }
}

fn px(command: &mut redis::Cmd, ttl: Option<Ttl>) {
    if let Some(ttl) = ttl {
        command.arg("PX").arg(ttl.as_millis());
    }
}

/// Scripts for rules one command cannot keep. Each is loaded once per server and called by
/// SHA (`EVALSHA`, falling back to `EVAL` after a server restart).
struct Scripts {
    incr_ttl_on_create: (Script, &'static str),
    cas: (Script, &'static str),
    cad: (Script, &'static str),
}

const INCR_TTL_ON_CREATE: &str = "local created = redis.call('EXISTS', KEYS[1]) == 0 \
     local value = redis.call('INCRBY', KEYS[1], ARGV[1]) \
     if created then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
     return value";
const CAS: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
     if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2]) \
     else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end \
     return 1";
const CAD: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
     return redis.call('DEL', KEYS[1])";

fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        incr_ttl_on_create: (Script::new(INCR_TTL_ON_CREATE), INCR_TTL_ON_CREATE),
        cas: (Script::new(CAS), CAS),
        cad: (Script::new(CAD), CAD),
    })
}

impl RedisDriver {
    /// Where a walk of `scope` runs: the standalone server; on a cluster with the hash tag,
    /// the primary of the namespace's slot; on a cluster without it, every primary.
    async fn targets(&self, scope: &RedisScope) -> Result<Vec<Target>> {
        if !self.inner.config.is_cluster() {
            return Ok(vec![Target::Server]);
        }
        if self.inner.config.hash_tag {
            let route = Route::with_key(scope.0.as_bytes(), SlotAddr::Master);
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
            return Ok(vec![Target::Node(routing)]);
        }
        self.primaries().await
    }

    /// Every place keys live: the standalone server, or each primary of the cluster.
    async fn primaries(&self) -> Result<Vec<Target>> {
        if !self.inner.config.is_cluster() {
            return Ok(vec![Target::Server]);
        }
        let any = Target::Node(RoutingInfo::SingleNode(
            SingleNodeRoutingInfo::RandomPrimary,
        ));
        let mut command = redis::cmd("CLUSTER");
        command.arg("NODES");
        let nodes: String = self.routed("", command, &any).await?;
        Ok(nodes
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let (address, flags) = (fields.get(1)?, fields.get(2)?);
                if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                    return None;
                }
                let (host, port) = address.split(['@', ',']).next()?.rsplit_once(':')?;
                Some(Target::Node(RoutingInfo::SingleNode(
                    SingleNodeRoutingInfo::ByAddress {
                        host: host.to_owned(),
                        port: port.parse().ok()?,
                    },
                )))
            })
            .collect())
    }

    /// Sends `command` to `target`.
    async fn routed<T: FromRedisValue>(
        &self,
        key: &str,
        command: Cmd,
        target: &Target,
    ) -> Result<T> {
        let target = target.clone();
        self.call(key, |connection| async move {
            match (connection, target) {
                (
                    Connection::Cluster {
                        main: mut cluster, ..
                    },
                    Target::Node(routing),
                ) => {
                    let value = cluster.route_command(command, routing).await?;
                    T::from_redis_value(value).map_err(RedisError::from)
                }
                (mut connection, _) => command.query_async(&mut connection).await,
            }
        })
        .await
    }

    /// The namespace of a stored key in this driver's layout (`root:domain:key`, or
    /// `{root:domain}:key` with the hash tag), if namestore could have written it.
    fn namespace_of(&self, full: &[u8]) -> Option<NamespaceName> {
        let full = std::str::from_utf8(full).ok()?;
        let (name, key) = if self.inner.config.hash_tag {
            let (tag, key) = full.strip_prefix('{')?.split_once("}:")?;
            let (root, domain) = tag.split_once(':')?;
            (NamespaceName::new(root, domain).ok()?, key)
        } else {
            split_full_key(full)?
        };
        (!key.is_empty()).then_some(name)
    }

    /// Counts the keys of every namespace with `SCAN` over the whole keyspace of each primary.
    /// A key `SCAN` returns twice (it may, while the server rehashes) is counted once: the
    /// walk remembers a [`Seen`] fingerprint of every key it has counted.
    async fn count_namespaces(&self) -> Result<Vec<NamespaceInfo>> {
        let mut counts: HashMap<NamespaceName, u64> = HashMap::new();
        let mut seen = Seen::default();
        for target in self.primaries().await? {
            let mut cursor = 0;
            loop {
                let mut command = redis::cmd("SCAN");
                command.arg(cursor).arg("COUNT").arg(SCAN_COUNT);
                let (next, raw): (u64, Vec<Vec<u8>>) = self.routed("", command, &target).await?;
                for full in raw {
                    if let Some(name) = self.namespace_of(&full) {
                        if seen.insert(&full) {
                            *counts.entry(name).or_default() += 1;
                        }
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        let mut listed: Vec<NamespaceInfo> = counts
            .into_iter()
            .map(|(name, keys)| NamespaceInfo::new(name, keys))
            .collect();
        listed.sort_by(|a, b| {
            (a.name().root(), a.name().domain()).cmp(&(b.name().root(), b.name().domain()))
        });
        Ok(listed)
    }

    /// One step of a namespace walk: `SCAN` from `cursor` on `target`, keeping the business
    /// keys that match.
    async fn scan_step(
        &self,
        scope: &RedisScope,
        target: &Target,
        cursor: u64,
        pattern: Option<&Pattern>,
    ) -> Result<(u64, Vec<String>)> {
        let mut command = redis::cmd("SCAN");
        command
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{}*", scope.0))
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let (next, raw): (u64, Vec<Vec<u8>>) = self.routed("", command, target).await?;
        let keys = raw
            .into_iter()
            .filter_map(|full| {
                let key = full.strip_prefix(scope.0.as_bytes())?;
                let key = std::str::from_utf8(key).ok()?;
                (!key.is_empty() && pattern.is_none_or(|p| p.matches(key))).then(|| key.to_owned())
            })
            .collect();
        Ok((next, keys))
    }
}

impl Driver for RedisDriver {
    type Scope = RedisScope;

    fn scope(&self, namespace: &NamespaceName) -> Result<RedisScope> {
        Ok(RedisScope(if self.inner.config.hash_tag {
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
        let mut command = redis::cmd("SET");
        command.arg(s.key(key)).arg(&value[..]).arg("NX");
        px(&mut command, ttl);
        Ok(self.once::<Option<String>>(key, command).await?.is_some())
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
        let mut command = redis::cmd("DEL");
        command.arg(s.key(key));
        Ok(self.once::<i64>(key, command).await? > 0)
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
        let mut command = redis::cmd("PERSIST");
        command.arg(s.key(key));
        Ok(self.once::<i64>(key, command).await? == 1)
    }

    async fn incr(
        &self,
        s: &RedisScope,
        key: &str,
        delta: i64,
        ttl_on_create: Option<Ttl>,
    ) -> Result<i64> {
        let full = s.key(key);
        match ttl_on_create {
            None => {
                let mut command = redis::cmd("INCRBY");
                command.arg(full).arg(delta);
                self.once(key, command).await
            }
            Some(ttl) => {
                let args = vec![
                    delta.to_string().into_bytes(),
                    ttl.as_millis().to_string().into_bytes(),
                ];
                self.script_once(key, &scripts().incr_ttl_on_create, full, args)
                    .await
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
        let mut command = redis::cmd("SET");
        command.arg(s.key(key)).arg(&value[..]);
        px(&mut command, ttl);
        command.arg("GET");
        Ok(self
            .once::<Option<Vec<u8>>>(key, command)
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
        let mut command = redis::cmd("MGET");
        for key in keys {
            command.arg(s.key(key));
        }
        let values: Vec<Option<Vec<u8>>> = self.query(keys[0], command).await?;
        Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    async fn mset(
        &self,
        s: &RedisScope,
        pairs: &mut [(&str, Bytes)],
        ttl: Option<Ttl>,
    ) -> Result<()> {
        let first = pairs.first().map_or("", |(k, _)| *k);
        match ttl {
            None => {
                let mut command = redis::cmd("MSET");
                for (key, value) in pairs.iter() {
                    command.arg(s.key(key)).arg(&value[..]);
                }
                self.query::<()>(first, command).await
            }
            Some(ttl) => {
                // One MULTI/EXEC per slot: a transaction cannot span slots on a cluster. With
                // the hash tag (or on a standalone server) that is one transaction.
                let split_by_slot = self.inner.config.is_cluster() && !self.inner.config.hash_tag;
                let mut groups: Vec<(Route, Pipeline)> = Vec::new();
                for (key, value) in pairs.iter() {
                    let full = s.key(key);
                    // Only a cluster without the hash tag needs one transaction per slot.
                    let route = if split_by_slot {
                        Route::with_key(&full, SlotAddr::Master)
                    } else {
                        Route::new(0, SlotAddr::Master)
                    };
                    let at = match groups.iter().position(|(r, _)| *r == route) {
                        Some(at) => at,
                        None => {
                            let mut pipeline = redis::pipe();
                            pipeline.atomic();
                            groups.push((route, pipeline));
                            groups.len() - 1
                        }
                    };
                    groups[at]
                        .1
                        .cmd("SET")
                        .arg(full)
                        .arg(&value[..])
                        .arg("PX")
                        .arg(ttl.as_millis())
                        .ignore();
                }
                for (_, pipeline) in groups {
                    self.call(first, |mut connection| async move {
                        pipeline.query_async::<()>(&mut connection).await
                    })
                    .await?;
                }
                Ok(())
            }
        }
    }

    async fn mdel(&self, s: &RedisScope, keys: &[&str]) -> Result<u64> {
        let mut command = redis::cmd("DEL");
        for key in keys {
            command.arg(s.key(key));
        }
        Ok(self.query::<i64>(keys[0], command).await?.max(0) as u64)
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
                if !keys.is_empty() {
                    let mut command = redis::cmd("UNLINK");
                    for key in &keys {
                        command.arg(s.key(key));
                    }
                    cleared += self.query::<i64>("", command).await?.max(0) as u64;
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

#[cfg(test)]
mod tests {
    use super::Seen;

    #[test]
    fn a_key_is_seen_once() {
        let mut seen = Seen::default();
        assert!(seen.insert(b"app:s:a"));
        assert!(seen.insert(b"app:s:b"));
        assert!(!seen.insert(b"app:s:a"));
        assert!(seen.insert(b""));
        assert!(!seen.insert(b""));
        let fresh = (0..10_000)
            .filter(|i| seen.insert(format!("k{i}").as_bytes()))
            .count();
        assert_eq!(fresh, 10_000);
        assert_eq!(
            (0..10_000)
                .filter(|i| seen.insert(format!("k{i}").as_bytes()))
                .count(),
            0
        );
    }
}
