//! Connections to a standalone server or a cluster, and one call's round trip with its bounds
//! and error kinds.
//!
//! A call has two phases. Connecting (bounded by `connect_timeout`): nothing has been sent,
//! so a failure here is [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) and the call
//! can be retried. The exchange (bounded by `response_timeout`): the command was handed to
//! the connection, so no answer is [`ErrorKind::Timeout`](crate::ErrorKind::Timeout), outcome
//! unknown. A connection that failed, or could not be made (a refused password included), is
//! dropped and made again on the next call, so the handle works again as soon as the server
//! would accept it.
//!
//! On a standalone server, namestore keeps one multiplexed connection and makes it itself;
//! only idempotent calls are resent, once, after the connection was lost during the exchange
//! (if connecting again fails, the call is a timeout: it was sent once, outcome unknown).
//! On a cluster, redis-rs routes: `main` follows redirections and resends after connection
//! errors; `strict` never resends, so non-idempotent calls go through it, with namestore's own
//! handling of `MOVED` and `ASK` (a redirection means the command did not run).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, Value};
use tokio::time::Instant;

use super::config::{FARTHEST, RedisConfig};
use super::password::PasswordFile;
use super::sentinel::Sentinels;
use super::tls::Certificates;
use crate::{Error, Result};

/// A connection for one call; cheap to clone.
#[derive(Clone)]
pub(super) enum Connection {
    Single(MultiplexedConnection),
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

/// Whether a call may be sent again after its connection was lost mid-call.
#[derive(Clone, Copy)]
pub(super) enum Resend<'k> {
    /// Idempotent: running it twice changes neither the data nor the answer.
    Allowed,
    /// Sent once at most, to the node of the stored key `.0` (on a cluster, the one a
    /// connection check pings: see [`QUIET`]).
    Never(&'k [u8]),
}

/// Where the driver's connections come from.
pub(super) enum Link {
    Single(Box<SingleLink>),
    Cluster(Box<ClusterLink>),
}

/// A cluster's two connections, made on first use and made again after a call lost its
/// connection, and the certificates they present.
///
/// The strict connection never retries, and redis-rs does not mend a node's connection it
/// lost on it: after a node closed a quiet connection (its `timeout`), every call sent once on
/// that node failed with a broken pipe until the process restarted. So a connection failure
/// drops both, and the next call makes them again.
pub(super) struct ClusterLink {
    /// The main connection (retrying) and the strict one (never resending).
    current: Current<(ClusterConnection, ClusterConnection)>,
    certificates: Certificates,
    /// The URL's password file, read again for each new pair of connections.
    password: Option<PasswordFile>,
    /// When a node last answered, on any of the connections.
    answers: Answers,
}

/// A connection made on first use and made again after it failed: the current one with its
/// generation (`None` until first used and after a failure), and one attempt at a time.
struct Current<T> {
    slot: Mutex<Option<(u64, T)>>,
    /// Held while connecting, so concurrent calls wait for one attempt.
    connecting: tokio::sync::Mutex<()>,
    generations: AtomicU64,
}

impl<T: Clone> Current<T> {
    fn new() -> Self {
        Current {
            slot: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            generations: AtomicU64::new(0),
        }
    }

    fn get(&self) -> Option<(u64, T)> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current connection, or one `make` makes now, with its generation.
    async fn get_or_make<F: Future<Output = Result<T>>>(
        &self,
        make: impl FnOnce() -> F,
    ) -> Result<(u64, T)> {
        if let Some(current) = self.get() {
            return Ok(current);
        }
        let _one = self.connecting.lock().await;
        if let Some(current) = self.get() {
            return Ok(current);
        }
        let connection = make().await?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((generation, connection.clone()));
        Ok((generation, connection))
    }

    /// Drops the connection of `generation`, if it is still the current one: whether it was.
    fn discard(&self, generation: u64) -> bool {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        let current = slot.as_ref().is_some_and(|(g, _)| *g == generation);
        if current {
            *slot = None;
        }
        current
    }
}

/// The standalone server's connection, made on demand and replaced after a failure.
pub(super) struct SingleLink {
    /// Where the server is.
    server: Server,
    /// Shared with the task watching the Sentinels, when there are any.
    certificates: Arc<Certificates>,
    /// The URL's password file, read again for each new connection.
    password: Option<PasswordFile>,
    settings: AsyncConnectionConfig,
    current: Current<MultiplexedConnection>,
    /// When the server last answered on the current connection.
    answers: Answers,
}

/// Where a standalone server is.
// One per link, inside the link's box: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Server {
    /// At the address of the URL.
    At {
        /// The client for the config's certificates and password; made again with the files
        /// a URL named read again, when it named any.
        client: redis::Client,
        info: redis::ConnectionInfo,
    },
    /// Wherever the Sentinels say the master's primary is, asked for each new connection.
    Sentinels(Sentinels),
}

/// When a link's connections were last answered, to tell a quiet one ([`QUIET`]), and whether
/// the last attempt to connect failed (to report the change once, not each call's failure).
struct Answers {
    /// In milliseconds since `made`.
    answered: AtomicU64,
    made: Instant,
    unreachable: AtomicBool,
}

impl Answers {
    fn new() -> Self {
        Answers {
            answered: AtomicU64::new(0),
            made: Instant::now(),
            unreachable: AtomicBool::new(false),
        }
    }

    /// `at` in milliseconds since the link was made.
    fn since_made(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.made).as_millis()).unwrap_or(u64::MAX)
    }

    /// An answer came to a call that started `at` (the call's own clock reading: no other is
    /// taken).
    fn answered(&self, at: Instant) {
        self.answered
            .fetch_max(self.since_made(at), Ordering::Relaxed);
    }

    /// A connection to `server` was made now: it has just had its answers (the handshake).
    fn connected(&self, server: &RedisConfig) {
        self.answered
            .store(self.since_made(Instant::now()), Ordering::Relaxed);
        if self.unreachable.swap(false, Ordering::Relaxed) {
            tracing::info!(target: "namestore::redis", %server, "connected to Redis again");
        } else {
            tracing::debug!(target: "namestore::redis", %server, "connected to Redis");
        }
    }

    /// Connecting to `server` failed with `error`: reported when it is the first failure
    /// since a connection was made.
    fn not_connected(&self, server: &RedisConfig, error: &Error) {
        if !self.unreachable.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "namestore::redis",
                %server,
                %error,
                "cannot connect to Redis; calls fail until a connection is made"
            );
        }
    }

    /// Whether, at `now`, nothing had been answered for [`QUIET`] or more.
    fn quiet(&self, now: Instant) -> bool {
        let last = self.answered.load(Ordering::Relaxed);
        self.since_made(now).saturating_sub(last) >= QUIET.as_millis() as u64
    }
}

/// How long a connection may go without an answer before a call that is never resent checks
/// it with a `PING` first. A server's `timeout`, or a load balancer's or NAT's idle limit
/// (minutes, usually), closes a quiet connection; the next call on it then fails without
/// having been sent, which a call sent once could not tell from one lost in flight
/// ("may have been applied"). The check makes that failure a reconnection, for one round
/// trip after each quiet spell. A cluster's link counts an answer from any node: the check
/// pings the call's node only when the whole cluster has been quiet.
const QUIET: Duration = Duration::from_secs(1);

impl Link {
    /// The link for `config`; connects nothing yet.
    pub(super) fn new(config: &RedisConfig) -> Result<Self> {
        let certificates = Certificates::new(config)?;
        if config.is_cluster() {
            return Ok(Link::Cluster(Box::new(ClusterLink {
                current: Current::new(),
                certificates,
                password: PasswordFile::new(config),
                answers: Answers::new(),
            })));
        }
        let server = match Sentinels::new(config)? {
            Some(sentinels) => Server::Sentinels(sentinels),
            None => {
                let info = config
                    .connection_infos()?
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::invalid_url("a Redis URL names a host"))?;
                let client = single_client(info.clone(), certificates.given())?;
                Server::At { client, info }
            }
        };
        Ok(Link::Single(Box::new(SingleLink {
            server,
            certificates: Arc::new(certificates),
            password: PasswordFile::new(config),
            settings: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_bound()))
                .set_response_timeout(None),
            current: Current::new(),
            answers: Answers::new(),
        })))
    }

    /// A connection, made now if there is none, and its generation.
    async fn connect(&self, config: &RedisConfig) -> Result<(u64, Connection)> {
        match self {
            Link::Single(single) => single.connect(config).await,
            Link::Cluster(cluster) => cluster.connect(config).await,
        }
    }

    /// Whether this is a standalone server's link (a cluster's client keeps its own
    /// connections).
    fn is_single(&self) -> bool {
        matches!(self, Link::Single(_))
    }

    /// When the link's connections were last answered.
    fn answers(&self) -> &Answers {
        match self {
            Link::Single(single) => &single.answers,
            Link::Cluster(cluster) => &cluster.answers,
        }
    }

    /// Drops the connection of `generation` after it failed with `error` (`why`), reported
    /// by the first of the calls that saw it fail; the next call makes a new one.
    fn drop_failed(&self, generation: u64, config: &RedisConfig, error: &RedisError, why: &str) {
        if self.discard(generation) {
            tracing::warn!(target: "namestore::redis", server = %config, %error, "{why}");
        }
    }

    /// Drops the connection of `generation` after it failed; the next call makes a new one.
    /// Whether it was still the current one (the first of the calls that saw it fail).
    fn discard(&self, generation: u64) -> bool {
        match self {
            Link::Single(single) => single.current.discard(generation),
            Link::Cluster(cluster) => cluster.current.discard(generation),
        }
    }
}

impl ClusterLink {
    async fn connect(&self, config: &RedisConfig) -> Result<(u64, Connection)> {
        let (generation, (main, strict)) = self
            .current
            .get_or_make(|| async {
                let made = self.make(config).await?;
                self.answers.connected(config);
                Ok(made)
            })
            .await?;
        Ok((generation, Connection::Cluster { main, strict }))
    }

    /// Both connections, each through a client of its own.
    ///
    /// The main connection's retries of a refusal for now (`CLUSTERDOWN`, `TRYAGAIN`,
    /// `LOADING`, `MASTERDOWN`) wait an eighth to a quarter of the response bound each, so
    /// that both fit in it: redis-rs waits 1.28 s at least before each, so a cluster that
    /// refused a read twice was reported as a `Timeout` after the whole bound (no answer, it
    /// said), when the server had answered that nothing ran.
    async fn make(&self, config: &RedisConfig) -> Result<(ClusterConnection, ClusterConnection)> {
        let certificates = self.certificates.now().await;
        let read_again;
        let config = match &self.password {
            Some(file) => {
                read_again = config.with_password(file.now().await);
                &read_again
            }
            None => config,
        };
        let wait = u64::try_from(config.response_bound().as_millis() / 8)
            .unwrap_or(u64::MAX)
            .max(1);
        let client = |retries| {
            let mut builder = redis::cluster::ClusterClient::builder(config.connection_infos()?)
                .connection_timeout(config.connect_bound())
                .response_timeout(config.response_bound())
                .retries(retries)
                .min_retry_wait(wait)
                .max_retry_wait(wait.saturating_mul(2));
            if let Some(user) = config.username() {
                builder = builder.username(user);
            }
            // The nodes' addresses are `rediss://`, which makes every connection TLS; a
            // private CA is trusted instead of the roots, and a client certificate presented.
            if let Some(certificates) = &certificates {
                builder = builder.certs(certificates.clone());
            }
            builder.build().map_err(|e| connect_error(&e, config))
        };
        let main = client(2)?
            .get_async_connection()
            .await
            .map_err(|e| connect_error(&e, config))?;
        let strict = client(0)?
            .get_async_connection()
            .await
            .map_err(|e| connect_error(&e, config))?;
        Ok((main, strict))
    }
}

impl SingleLink {
    async fn connect(&self, config: &RedisConfig) -> Result<(u64, Connection)> {
        loop {
            let (generation, connection) = self
                .current
                .get_or_make(|| async {
                    let connection = match &self.server {
                        Server::At { client, info } => {
                            let client =
                                if self.password.is_none() && !self.certificates.read_again() {
                                    client.clone()
                                } else {
                                    single_client(
                                        self.with_password(info.clone()).await,
                                        self.certificates.now().await,
                                    )?
                                };
                            match client
                                .get_multiplexed_async_connection_with_config(&self.settings)
                                .await
                            {
                                Ok(connection) => connection,
                                Err(e) => return Err(connect_failure(&e, config, info).await),
                            }
                        }
                        Server::Sentinels(sentinels) => {
                            let certificates = self.certificates.now().await;
                            let to_server = |info: redis::ConnectionInfo| {
                                let certificates = certificates.clone();
                                async move {
                                    let client = single_client(
                                        self.with_password(info.clone()).await,
                                        certificates,
                                    )?;
                                    match client
                                        .get_multiplexed_async_connection_with_config(
                                            &self.settings,
                                        )
                                        .await
                                    {
                                        Ok(connection) => Ok(connection),
                                        Err(e) => Err(connect_failure(&e, config, &info).await),
                                    }
                                }
                            };
                            let connection = sentinels
                                .connect(config, certificates.clone(), &self.settings, to_server)
                                .await?;
                            sentinels.keep_watching(config, &self.certificates);
                            connection
                        }
                    };
                    self.answers.connected(config);
                    Ok(connection)
                })
                .await?;
            // Found through the Sentinels before a switch of the master was announced: it
            // may be to the old primary, which takes writes until it is turned into a replica
            // and loses them then.
            if let Server::Sentinels(sentinels) = &self.server
                && sentinels.outdated()
            {
                self.current.discard(generation);
                continue;
            }
            return Ok((generation, Connection::Single(connection)));
        }
    }

    /// `info` with the password file read again, if the URL named one.
    async fn with_password(&self, info: redis::ConnectionInfo) -> redis::ConnectionInfo {
        match &self.password {
            Some(file) => {
                let settings = info.redis_settings().clone().set_password(file.now().await);
                info.set_redis_settings(settings)
            }
            None => info,
        }
    }
}

/// The client of a standalone server, with `certificates` when TLS needs any beyond the roots.
pub(super) fn single_client(
    info: redis::ConnectionInfo,
    certificates: Option<redis::TlsCertificates>,
) -> Result<redis::Client> {
    match certificates {
        Some(certificates) => redis::Client::build_with_tls(info, certificates),
        None => redis::Client::open(info),
    }
    .map_err(|_| Error::invalid_url("malformed Redis connection settings"))
}

/// A failure to connect: nothing was sent. A refused password, a refused setting (a database
/// the server does not have) or a refused TLS certificate would be refused again, so it is a
/// backend error (the caller must fix the URL or the certificates); anything else is
/// unavailable.
pub(super) fn connect_error(error: &RedisError, config: &RedisConfig) -> Error {
    let refused_credentials = error.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(error.code(), Some("WRONGPASS" | "NOAUTH"));
    if refused_credentials {
        Error::backend(format!("the Redis server refused the credentials: {error}"))
    } else if forbidden(error) {
        // Signed in, as a user whose ACL forbids a command connecting needs (`SELECT` of the
        // URL's database, a cluster's `CLUSTER SLOTS`).
        Error::backend(format!(
            "the Redis user may not run a command that connecting needs (see the commands a \
             namestore user needs, in namestore's README): {error}"
        ))
    } else if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) {
        // The server answered the connection's setup with a refusal it will give again (a
        // database number past its `databases`): the settings must change, and a retry cannot
        // help, so this is no more "unavailable" than refused credentials are. (A server
        // loading its data answers `LOADING`, another kind: unavailable, as below.)
        Error::backend(format!(
            "the Redis server refused the connection's settings: {error}"
        ))
    } else if let Some(refusal) = super::tls::refused(error) {
        // The TLS handshake ended on a certificate (or a protocol) the other side will refuse
        // again: the settings (the CA, the host name, the server's certificate) must change.
        let required = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        let hint = if refusal.contains(&required.to_string()) {
            " (the server requires a client certificate: give one with `tls_cert_file` and \
             `tls_key_file`)"
        } else {
            ""
        };
        Error::backend(format!(
            "the TLS handshake with the Redis server failed: {refusal}{hint}"
        ))
    } else if error.is_timeout() {
        connect_timed_out(config)
    } else {
        Error::unavailable(format!("cannot reach the Redis server: {error}"), None)
    }
}

/// Whether the server refused a command the user's ACL does not allow (`NOPERM`: the command,
/// a key or a channel), in a transaction or a script too, or while connecting (the code, or
/// the server's words, are then inside the text).
fn forbidden(error: &RedisError) -> bool {
    let text = error.to_string();
    error.code() == Some("NOPERM")
        || text.contains("NOPERM")
        || text.contains("this user has no permissions to")
}

/// The error of a connection to `info` that could not be made: what the server said when it
/// turned the connection away, if it did, else [`connect_error`].
async fn connect_failure(
    error: &RedisError,
    config: &RedisConfig,
    info: &redis::ConnectionInfo,
) -> Error {
    match super::turned_away::turned_away(error, info).await {
        Some(said) => said,
        None => connect_error(error, config),
    }
}

/// Connecting took longer than `connect_timeout` (namestore's bound, or the client library's,
/// which is given the same).
fn connect_timed_out(config: &RedisConfig) -> Error {
    // A server that does not speak TLS reads the handshake as the start of a command and
    // waits for its end: the connection never fails, it times out.
    let hint = if config.is_tls() {
        " (the URL asks for TLS: a server that does not speak TLS on that port never answers \
         the handshake, and `redis://` reaches it)"
    } else {
        ""
    };
    Error::unavailable(
        format!(
            "could not connect to the Redis server within {:?}{hint}",
            config.connect_timeout
        ),
        None,
    )
}

/// Whether the connection itself failed during an exchange (rather than the server answering
/// with an error).
fn connection_failed(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
}

/// Whether the server refused a write because it is a read-only replica (`READONLY`, also
/// inside a transaction's or a pipeline's answer): nothing ran.
fn refused_by_replica(error: &RedisError) -> bool {
    error.code() == Some("READONLY") || {
        let text = error.to_string();
        text.contains("READONLY") || text.contains("write against a read only replica")
    }
}

/// The server's answers that refuse a call without running it, for a while: loading its data
/// set (`LOADING`), busy with a script past `busy-reply-threshold` (`BUSY`), a replica cut off
/// from its primary that serves no stale data (`MASTERDOWN`), a cluster without a quorum for a
/// slot (`CLUSTERDOWN`) or moving it (`TRYAGAIN`), refusing writes until it can save its
/// snapshot again (`MISCONF`: a full or failed disk, `stop-writes-on-bgsave-error`). The call
/// is `Unavailable`: nothing was applied, and it can be retried. (`READONLY`, a write sent to a replica, is not among them:
/// the same connection would answer it again; [`call`] drops the connection and sends once
/// more.)
///
/// Each code with how redis-rs shows it inside a pipeline's or a transaction's error, where
/// only the first failure's code is the error's.
const REFUSED_FOR_NOW: [(&str, &str); 6] = [
    ("LOADING", "BusyLoading:"),
    ("BUSY", "\"BUSY\":"),
    ("MASTERDOWN", "MasterDown:"),
    ("CLUSTERDOWN", "ClusterDown:"),
    ("TRYAGAIN", "TryAgain:"),
    ("MISCONF", "MISCONF"),
];

/// Whether a cluster's client has no connection to the node a call goes to (redis-rs's
/// `ClusterConnectionNotFound`): nothing was sent, and no node answered.
fn no_connection(error: &RedisError) -> bool {
    error.kind() == redis::ErrorKind::ClusterConnectionNotFound
}

/// A cluster call found no connection to its node. The client library makes a lost node's
/// connection again itself, with the settings it was made with; when that cannot work (every
/// node moved to certificates renewed on disk, which only a new client reads), no node
/// answers again, and every call would fail so for as long as the process runs. So once no
/// node has answered for [`QUIET`], the connections are dropped and the next call makes new
/// ones (at most once per `QUIET`: a new connection counts as an answer).
fn unanswered(link: &Link, config: &RedisConfig, generation: u64) {
    if link.answers().quiet(Instant::now()) && link.discard(generation) {
        tracing::warn!(
            target: "namestore::redis",
            server = %config,
            "no Redis Cluster node answered for a second and calls find no connection: the \
             cluster's connections are made again"
        );
    }
}

/// Whether a cluster call ended before reaching the node that serves its key: no connection
/// to that node (redis-rs's `ClusterConnectionNotFound`: a primary that failed, until its
/// replica takes over; a node the client has not connected to yet), or a redirection
/// (`MOVED`, `ASK`) left to follow when the call ran out of them. Either way the command ran
/// nowhere: a node that redirects runs nothing, and a call is not sent without a connection.
fn unreached_node(error: &RedisError) -> bool {
    error.kind() == redis::ErrorKind::ClusterConnectionNotFound
        || error.redirect_node().is_some()
        || redirected_transaction(error)
}

/// Whether `error` is a transaction the server discarded (`EXECABORT`) because a command in it
/// was redirected (`MOVED`, `ASK`: its slot moved, as it does when a replica takes over), which
/// the client library does not follow for a transaction: nothing in it ran.
pub(super) fn redirected_transaction(error: &RedisError) -> bool {
    use redis::ServerErrorKind::{Ask, ExecAbort, Moved};
    error.kind() == redis::ErrorKind::Server(ExecAbort)
        && error.clone().into_server_errors().is_some_and(|errors| {
            errors
                .iter()
                .any(|(_, error)| matches!(error.kind(), Some(Moved | Ask)))
        })
}

/// Maps the server's error answer, naming `key`. Messages come from redis-rs and the server
/// and hold no credentials.
pub(super) fn answer_error(error: RedisError, key: &str) -> Error {
    let text = error.to_string();
    if error.code() == Some("OOM") || text.contains("command not allowed when used memory") {
        // SPEC 10.8: the server is at `maxmemory` and may not evict. In a transaction the
        // refusal comes back inside EXECABORT; either way nothing ran.
        Error::out_of_memory(key, format!("the Redis server refused the write: {error}"))
    } else if REFUSED_FOR_NOW
        .iter()
        .any(|&(code, shown)| error.code() == Some(code) || text.contains(shown))
    {
        // The server is there but runs no command for now (loading its data after a restart,
        // running a script past its limit, cut off from its primary, a cluster changing):
        // nothing ran, and the same call may succeed later.
        Error::unavailable(
            format!("the Redis server ran nothing, and may later: {error}"),
            Some(Box::new(error)),
        )
    } else if unreached_node(&error) {
        Error::unavailable(
            format!(
                "the Redis Cluster node serving the key was not reached (a node failing over, \
                 or a slot moving to a node not connected yet); nothing ran, and the call may \
                 succeed later: {error}"
            ),
            Some(Box::new(error)),
        )
    } else if forbidden(&error) {
        Error::backend(format!(
            "the Redis user may not run this command on key {key:?}: its ACL forbids the \
             command or the key (see the commands a namestore user needs, in namestore's \
             README): {error}"
        ))
    } else if error.code() == Some("WRONGTYPE") || text.contains("WRONGTYPE") {
        // Another client stored a list, a hash… under the key (in a transaction or a script,
        // the code is inside the answer's text). A counter's caller turns it into "not an
        // integer" (`RedisDriver::incr`).
        Error::wrong_type(key, Box::new(error))
    } else if text.contains("not an integer") {
        Error::not_an_integer(key)
    } else if text.contains("overflow") {
        Error::overflow(key)
    } else {
        Error::backend(error)
    }
}

/// Runs one call: connects (within `connect_timeout`), then runs `exchange` (within
/// `response_timeout`), resending once after a lost connection if `resend` allows; the whole
/// call ends within `connect_timeout + response_timeout` (SPEC 8.3).
///
/// Each phase waits until the nearer of its own deadline and the call's, so a call keeps at
/// most one timer in the runtime at a time, and none while connecting takes no wait (the
/// connection is already made): a timer per phase and another for the whole call cost a
/// seventh of the throughput of 64 tasks sharing a connection (the runtime's timer wheel is
/// locked to insert and remove each).
pub(super) async fn call<T, F>(
    link: &Link,
    config: &RedisConfig,
    key: &str,
    resend: Resend<'_>,
    exchange: impl Fn(Connection) -> F,
) -> Result<T>
where
    F: Future<Output = redis::RedisResult<T>>,
{
    // The connection's task and the call's timers live in a tokio runtime; polled outside one
    // (another executor, `futures::executor::block_on`), tokio would panic.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::backend(
            "the Redis driver runs on a tokio runtime, and this call was made outside one: \
             call it from a task of a tokio runtime (`#[tokio::main]`, `Runtime::block_on`)",
        ));
    }
    let start = Instant::now();
    let call_deadline = after(start, config.call_timeout());
    // What ran out: a phase's own bound, or the whole call's.
    let nearer = |from: Instant, bound: Duration| {
        let own = after(from, bound);
        (own.min(call_deadline), own <= call_deadline)
    };
    let mut sent = false;
    let mut resends = 0;
    let mut replica_retried = false;
    let mut checked = false;
    loop {
        let (deadline, own) = nearer(
            if sent { Instant::now() } else { start },
            config.connect_timeout,
        );
        let connected = match tokio::time::timeout_at(deadline, link.connect(config)).await {
            Ok(connected) => connected,
            Err(_) if own => Err(connect_timed_out(config)),
            // Out of time for the whole call while connecting again to resend.
            Err(_) => Err(Error::timeout(config.call_timeout())),
        };
        if let Err(error) = &connected {
            link.answers().not_connected(config, error);
        }
        let (generation, connection) = match connected {
            Ok(connected) => connected,
            // Connecting again to resend: the first sending may have been applied.
            Err(error) if sent => return Err(not_resent(error)),
            Err(error) => return Err(error),
        };
        let (deadline, own) = nearer(Instant::now(), config.response_timeout);
        // A call sent once, about to go on a connection that has been quiet: make sure first
        // that the connection still stands (see `QUIET`); on a cluster, the connection to the
        // node the call goes to, the one its key's slot is served by.
        if let Resend::Never(stored) = resend
            && !sent
            && !checked
            && link.answers().quiet(start)
        {
            checked = true;
            let command = redis::cmd("PING");
            let ping = async {
                match connection.clone() {
                    Connection::Single(mut single) => {
                        command.query_async::<Value>(&mut single).await
                    }
                    Connection::Cluster { mut strict, .. } => {
                        let node = Route::with_key(stored, SlotAddr::Master);
                        let node =
                            RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(node));
                        route(&mut strict, command.clone(), node).await
                    }
                }
            };
            match tokio::time::timeout_at(deadline, ping).await {
                // A cluster's client without a connection to the node, on a quiet link: made
                // again (see `unanswered`), and the call sent on the new connections.
                Ok(Err(error)) if connection_failed(&error) || no_connection(&error) => {
                    let why = "a quiet Redis connection was found closed; connecting again";
                    link.drop_failed(generation, config, &error, why);
                    continue;
                }
                Ok(_) => link.answers().answered(start),
                Err(_) => {
                    return Err(Error::unavailable(
                        "the Redis server did not answer a PING in time; the call was not sent",
                        None,
                    ));
                }
            }
        }
        sent = true;
        match tokio::time::timeout_at(deadline, exchange(connection)).await {
            Ok(Ok(answer)) => {
                link.answers().answered(start);
                return Ok(answer);
            }
            Ok(Err(error)) if connection_failed(&error) => {
                let why = "the connection to Redis failed; the next call connects again";
                link.drop_failed(generation, config, &error, why);
                if matches!(resend, Resend::Allowed) && resends == 0 {
                    resends += 1;
                    continue;
                }
                return Err(lost(error));
            }
            // A write that reached a read-only replica ran nothing. Behind one name (a managed
            // service's primary endpoint), a failover leaves the connection on the old primary,
            // now a replica, for as long as it lives: drop it, so the next connection finds the
            // new primary, and send once more (nothing ran, unless an earlier sending was lost
            // in flight). A cluster's client follows its own topology.
            Ok(Err(error)) if refused_by_replica(&error) && link.is_single() => {
                let why = "the Redis server refused a write as a read-only replica (a failover?); \
                           connecting again";
                link.drop_failed(generation, config, &error, why);
                if resends > 0 {
                    return Err(not_resent(answer_error(error, key)));
                }
                if !replica_retried {
                    replica_retried = true;
                    sent = false;
                    continue;
                }
                return Err(Error::unavailable(
                    format!(
                        "the Redis server is a read-only replica and ran nothing (after a \
                         failover, a later connection may reach the new primary): {error}"
                    ),
                    Some(Box::new(error)),
                ));
            }
            Ok(Err(error)) if no_connection(&error) => {
                unanswered(link, config, generation);
                return Err(answer_error(error, key));
            }
            Ok(Err(error)) => {
                link.answers().answered(start);
                return Err(answer_error(error, key));
            }
            Err(_) if own => return Err(Error::timeout(config.response_timeout)),
            Err(_) => return Err(Error::timeout(config.call_timeout())),
        }
    }
}

/// `bound` after `from`, or [`FARTHEST`] after it for a longer bound (which the clock may not
/// hold).
fn after(from: Instant, bound: Duration) -> Instant {
    from + bound.min(FARTHEST)
}

/// The connection failed while an idempotent call was in flight, and connecting again to
/// resend it failed too: the outcome is still unknown.
fn not_resent(error: Error) -> Error {
    Error::timeout_with_reason(format!(
        "the connection to the Redis server failed during the call and could not be made again ({error}); it may or may not have been applied"
    ))
}

/// The connection failed while the call was in flight: it may or may not have run.
fn lost(error: RedisError) -> Error {
    let mut failure = Error::timeout_with_reason(format!(
        "the connection to the Redis server failed during the call ({error}); it may or may not have been applied"
    ));
    failure.set_source(Box::new(error));
    failure
}

/// `value`, or the server's refusal it is, as an error. A cluster client's routed calls
/// (`route_command`, `route_pipeline`) hand a refusal back as a value, where `query_async`
/// makes it an error: taken as an answer, an `MSET` a full node refused (`OOM`) was reported
/// done, and a refusal to redirect (`MOVED`) was not followed. Routed calls go through
/// [`route`] and [`route_last`], which apply it.
fn refusal(value: Value) -> redis::RedisResult<Value> {
    match value {
        Value::ServerError(error) => Err(error.into()),
        value => Ok(value),
    }
}

/// `command` sent to the node `routing` names; a refusal is an error (see [`refusal`]).
pub(super) async fn route(
    cluster: &mut ClusterConnection,
    command: Cmd,
    routing: RoutingInfo,
) -> redis::RedisResult<Value> {
    cluster
        .route_command(command, routing)
        .await
        .and_then(refusal)
}

/// `pipeline` sent to `node`, skipping the answers of its first `offset` commands: the last
/// answer, a refusal as an error (see [`refusal`]).
async fn route_last(
    cluster: &mut ClusterConnection,
    pipeline: Pipeline,
    offset: usize,
    node: SingleNodeRoutingInfo,
) -> redis::RedisResult<Value> {
    let mut answers = cluster.route_pipeline(pipeline, offset, 1, node).await?;
    refusal(answers.pop().unwrap_or(Value::Nil))
}

/// Sends `command` once: on a cluster, through the connection that never resends, following
/// `MOVED` and `ASK` itself (a redirection means the command did not run, so sending it to the
/// named node cannot apply it twice).
pub(super) async fn send_once(connection: Connection, command: &Cmd) -> redis::RedisResult<Value> {
    let mut strict = match connection {
        Connection::Single(mut single) => return command.query_async(&mut single).await,
        Connection::Cluster { strict, .. } => strict,
    };
    let mut answer = command.query_async::<Value>(&mut strict).await;
    for _ in 0..5 {
        let Some((node, ask)) = redirection(&answer) else {
            break;
        };
        answer = if ask {
            let mut pipeline = redis::pipe();
            pipeline.cmd("ASKING").add_command(command.clone());
            // The answer after ASKING's.
            route_last(&mut strict, pipeline, 1, node).await
        } else {
            route(&mut strict, command.clone(), RoutingInfo::SingleNode(node)).await
        };
    }
    answer
}

/// Sends a transaction (`MULTI` … `EXEC`) once, as [`send_once`] does a command, following a
/// redirection the server discarded it for; returns the answers of all its commands. A
/// transaction given here ignores none (`Pipeline::ignore`): a followed transaction is sent
/// command by command, and which ones the caller ignored cannot be read back from it.
pub(super) async fn send_transaction_once(
    connection: Connection,
    transaction: &Pipeline,
) -> redis::RedisResult<Vec<Value>> {
    let mut strict = match connection {
        Connection::Single(mut single) => return transaction.query_async(&mut single).await,
        Connection::Cluster { strict, .. } => strict,
    };
    let mut answer = transaction.query_async::<Vec<Value>>(&mut strict).await;
    for _ in 0..5 {
        let Some((node, ask)) = redirection(&answer) else {
            break;
        };
        // route_pipeline sends the commands as they are: the transaction is spelled out, and
        // only EXEC's answer (the last) is taken.
        let mut routed = redis::pipe();
        let mut sent = 0;
        if ask {
            routed.cmd("ASKING");
            sent += 1;
        }
        routed.cmd("MULTI");
        sent += 1;
        for command in transaction.cmd_iter() {
            routed.add_command(command.clone());
            sent += 1;
        }
        routed.cmd("EXEC");
        answer = route_last(&mut strict, routed, sent, node)
            .await
            .and_then(|exec| match exec {
                Value::Array(values) => Ok(values),
                other => Vec::<Value>::from_redis_value(other).map_err(RedisError::from),
            });
    }
    answer
}

/// The node a `MOVED` or `ASK` answer names, and whether it is an `ASK`: the answer's own, or,
/// for a transaction the server discarded for them ([`redirected_transaction`]), the first
/// inside it.
fn redirection<T>(answer: &redis::RedisResult<T>) -> Option<(SingleNodeRoutingInfo, bool)> {
    use redis::ServerErrorKind::{Ask, Moved};
    let error = answer.as_ref().err()?;
    let (address, ask) = match error.redirect_node() {
        Some((address, _)) => (
            address.to_owned(),
            error.kind() == redis::ErrorKind::Server(Ask),
        ),
        None if redirected_transaction(error) => {
            let errors = error.clone().into_server_errors()?;
            let (_, inner) = errors
                .iter()
                .find(|(_, inner)| matches!(inner.kind(), Some(Moved | Ask)))?;
            // The detail of a redirection: `<slot> <host>:<port>`.
            let address = inner.details()?.split_ascii_whitespace().nth(1)?;
            (address.to_owned(), inner.kind() == Some(Ask))
        }
        None => return None,
    };
    let (host, port) = address.rsplit_once(':')?;
    let node = SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port: port.parse::<u16>().ok()?,
    };
    Some((node, ask))
}
