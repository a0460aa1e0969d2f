//! Finding the primary through Redis Sentinel (`redis+sentinel://`): each new connection
//! asks the Sentinels where the master is, and keeps the server they name only once it
//! answers `ROLE` as a primary.
//!
//! The Sentinels are asked all at once and their answers taken as they come, so a Sentinel
//! that is down or cut off costs nothing while another answers; each server named is checked
//! at once, so one that never answers holds nothing up either, and one that is not the
//! primary (a Sentinel that missed a failover names the old one, now a replica) is passed
//! over. This is the discovery Redis documents for Sentinel clients, asked in parallel rather
//! than in turn.
//!
//! A failover leaves the old primary running and taking writes for a while when it was not
//! down (a failover asked for with `SENTINEL FAILOVER`, or one the Sentinels decided while the
//! old primary was cut off from them but not from the clients): the Sentinels turn it into a
//! replica only some seconds later, and every write it took meanwhile is lost. So, once a
//! connection is made, a task watches one Sentinel's `+switch-master` announcements, and a
//! call that finds the master switched since its connection was looked for drops it and asks
//! the Sentinels again.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionInfo, TlsCertificates, Value};
use tokio::task::JoinHandle;

use super::config::RedisConfig;
use super::connection::{connect_error, single_client};
use super::password::PasswordFile;
use super::tls::Certificates;
use crate::{Error, ErrorKind, Result};

/// How long the watching task waits before it subscribes again after losing its Sentinel.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// How long a watched Sentinel may stay silent before the task checks it with a `PING` (a
/// Sentinel gone without closing the connection would otherwise be watched for ever).
const PING_AFTER: Duration = Duration::from_secs(5);

/// The Sentinels of a `redis+sentinel://` URL and the master to ask them for.
pub(super) struct Sentinels {
    /// Each Sentinel's `host:port` and settings, in the URL's order, with the password the
    /// URL gave them.
    nodes: Vec<(String, ConnectionInfo)>,
    /// The name the Sentinels monitor the master under.
    master: String,
    /// The Sentinels' password file, read again each time they are asked.
    password: Option<Arc<PasswordFile>>,
    /// The task watching for failovers, once a connection is made.
    watcher: Mutex<Option<JoinHandle<()>>>,
    /// How many switches of the master the task has seen (or may have missed).
    switches: Arc<AtomicU64>,
    /// What `switches` was when the current connection began to be looked for.
    found_under: AtomicU64,
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        if let Some(watcher) = self
            .watcher
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
        {
            watcher.abort();
        }
    }
}

/// A server's address as a Sentinel gives it.
type Address = (String, u16);

impl Sentinels {
    /// The Sentinels `config` names, if it is a `redis+sentinel://` config.
    pub(super) fn new(config: &RedisConfig) -> Result<Option<Self>> {
        let Some(sentinel) = config.sentinel() else {
            return Ok(None);
        };
        Ok(Some(Sentinels {
            nodes: config.sentinel_infos()?,
            master: sentinel.master.clone(),
            password: PasswordFile::sentinels(config).map(Arc::new),
            watcher: Mutex::new(None),
            switches: Arc::new(AtomicU64::new(0)),
            found_under: AtomicU64::new(0),
        }))
    }

    /// The password for the Sentinels now, the file read again if the URL named one.
    async fn password(&self) -> Option<String> {
        match &self.password {
            Some(file) => Some(file.now().await),
            None => None,
        }
    }

    /// Makes sure a task watches the Sentinels for switches of the master, which make the
    /// current connection [`outdated`](Self::outdated), until this is dropped. The task runs
    /// on the caller's runtime; after that runtime is gone, the next connection starts one on
    /// its own.
    ///
    /// Each time the task subscribes (again, after losing its Sentinel), it counts a switch
    /// too: one may have been announced while it was not listening.
    pub(super) fn keep_watching(&self, config: &RedisConfig, certificates: &Arc<Certificates>) {
        let mut watcher = self.watcher.lock().unwrap_or_else(PoisonError::into_inner);
        if watcher.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let watch = Watch {
            nodes: self.nodes.clone(),
            master: self.master.clone(),
            password: self.password.clone(),
            certificates: Arc::clone(certificates),
            bound: config.call_timeout(),
            switches: Arc::clone(&self.switches),
        };
        *watcher = Some(tokio::spawn(watch.run()));
    }

    /// A connection to the master's primary: the Sentinels asked at once, each server they
    /// name connected to with `to_server` as its answer comes, and the first to answer `ROLE`
    /// as a primary kept. The connection counts as [`outdated`](Self::outdated) once a switch
    /// of the master is announced after this began: the server it found may be the old
    /// primary.
    ///
    /// # Errors
    ///
    /// When no server named answers as the primary: [`ErrorKind::Backend`] if a failure
    /// will come again until the settings change (a refused password, a Sentinel that knows
    /// no such master), else [`ErrorKind::Unavailable`] (Sentinels or servers down, a
    /// failover under way); the message says what each Sentinel and server answered.
    pub(super) async fn connect<F, C>(
        &self,
        config: &RedisConfig,
        certificates: Option<TlsCertificates>,
        settings: &AsyncConnectionConfig,
        to_server: F,
    ) -> Result<MultiplexedConnection>
    where
        F: Fn(ConnectionInfo) -> C,
        C: Future<Output = Result<MultiplexedConnection>>,
    {
        let seen = self.switches.load(Ordering::Acquire);
        let password = self.password().await;
        let mut answers: FuturesUnordered<_> = self
            .nodes
            .iter()
            .map(|(shown, node)| {
                let mut node = node.clone();
                if let Some(password) = &password {
                    let settings = node.redis_settings().clone().set_password(password);
                    node = node.set_redis_settings(settings);
                }
                self.ask(shown, node, certificates.clone(), settings, config)
            })
            .collect();
        // Each server named, connected to and asked its role at once: one that never answers
        // (a host gone, named by a Sentinel that missed the failover) holds nothing up.
        let mut checks = FuturesUnordered::new();
        let mut tried: Vec<Address> = Vec::new();
        let mut failures: Vec<Failure> = Vec::new();
        loop {
            tokio::select! {
                Some(answer) = answers.next(), if !answers.is_empty() => match answer {
                    Ok(address) if !tried.contains(&address) => {
                        checks.push(check(config, address.clone(), &to_server));
                        tried.push(address);
                    }
                    Ok(_) => {}
                    Err(failure) => failures.push(failure),
                },
                Some(checked) = checks.next(), if !checks.is_empty() => match checked {
                    Ok(connection) => {
                        self.found_under.store(seen, Ordering::Release);
                        return Ok(connection);
                    }
                    Err(failure) => failures.push(failure),
                },
                else => break,
            }
        }
        Err(none_found(&self.master, failures))
    }

    /// Whether a switch of the master was announced since the last connection
    /// [`connect`](Self::connect) made began to be looked for (or may have been, while the
    /// task watching for them was not listening): that connection may be to the old primary.
    pub(super) fn outdated(&self) -> bool {
        self.switches.load(Ordering::Acquire) != self.found_under.load(Ordering::Acquire)
    }

    /// Asks the Sentinel at `node` (`shown`) where the master is.
    async fn ask(
        &self,
        shown: &str,
        node: ConnectionInfo,
        certificates: Option<TlsCertificates>,
        settings: &AsyncConnectionConfig,
        config: &RedisConfig,
    ) -> std::result::Result<Address, Failure> {
        let context = format!("the Sentinel at {shown}");
        let failed =
            |error: &redis::RedisError| Failure::of(&context, &connect_error(error, config));
        let client = single_client(node, certificates).map_err(|e| Failure::of(&context, &e))?;
        let mut connection = client
            .get_multiplexed_async_connection_with_config(settings)
            .await
            .map_err(|e| failed(&e))?;
        let address: Option<Address> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.master)
            .query_async(&mut connection)
            .await
            .map_err(|e| match e.to_string().contains("unknown command") {
                // A Redis server's port given for a Sentinel's.
                true => Failure {
                    kind: ErrorKind::Backend,
                    said: format!(
                        "{context} is no Sentinel: it does not know the `SENTINEL` command (a \
                         Redis server's port rather than a Sentinel's? Sentinels listen on 26379 \
                         unless configured otherwise)"
                    ),
                },
                false => failed(&e),
            })?;
        address.ok_or_else(|| Failure {
            kind: ErrorKind::Backend,
            said: format!(
                "{context} monitors no master of that name (the name in the URL's path is the \
                 one in the Sentinels' `sentinel monitor` line)"
            ),
        })
    }
}

/// What one Sentinel or one server it named answered instead of a primary.
struct Failure {
    kind: ErrorKind,
    said: String,
}

impl Failure {
    /// `error`, met by the Sentinel or server `context` names.
    fn of(context: &str, error: &Error) -> Self {
        let text = error.to_string();
        // The kind is said once, for the whole.
        let said = [
            "backend unavailable: ",
            "backend error: ",
            "backend timed out: ",
        ]
        .iter()
        .find_map(|kind| text.strip_prefix(kind))
        .unwrap_or(&text);
        Failure {
            kind: error.kind(),
            said: format!("{context}: {said}"),
        }
    }
}

/// What the task watching for failovers needs.
struct Watch {
    nodes: Vec<(String, ConnectionInfo)>,
    master: String,
    password: Option<Arc<PasswordFile>>,
    certificates: Arc<Certificates>,
    /// The bound on subscribing and on a `PING`'s answer.
    bound: Duration,
    switches: Arc<AtomicU64>,
}

impl Watch {
    /// Subscribes to `+switch-master` on the first Sentinel that lets it, and counts each
    /// switch of the master; on losing the Sentinel, subscribes again (to it or another).
    /// Each subscription counts one too: a switch may have been announced before it listened
    /// (after the connection was found, or while it listened to no Sentinel), so the next
    /// call looks for the primary again, once. Runs until it is aborted.
    async fn run(self) {
        // Whether the last round found no Sentinel to listen to (reported once).
        let mut deaf = false;
        loop {
            let mut listened = false;
            for (shown, node) in &self.nodes {
                let Some(pubsub) = self.subscribe(node.clone()).await else {
                    continue;
                };
                listened = true;
                if std::mem::take(&mut deaf) {
                    tracing::info!(
                        target: "namestore::redis",
                        master = %self.master,
                        sentinel = %shown,
                        "listening to a Redis Sentinel for failovers again"
                    );
                }
                self.switches.fetch_add(1, Ordering::AcqRel);
                let (mut sink, mut stream) = pubsub.split();
                loop {
                    let message = tokio::select! {
                        message = stream.next() => message,
                        () = tokio::time::sleep(PING_AFTER) => {
                            let ping = tokio::time::timeout(self.bound, sink.ping::<Value>());
                            match ping.await {
                                Ok(Ok(_)) => continue,
                                _ => break,
                            }
                        }
                    };
                    let Some(message) = message else { break };
                    // `<master> <old ip> <old port> <new ip> <new port>`
                    let payload: String = message.get_payload().unwrap_or_default();
                    if payload.split(' ').next() == Some(self.master.as_str()) {
                        self.switches.fetch_add(1, Ordering::AcqRel);
                        tracing::info!(
                            target: "namestore::redis",
                            sentinel = %shown,
                            announced = %payload,
                            "a Redis Sentinel announced a failover (master, old address, new \
                             address); connections look for the primary again"
                        );
                    }
                }
                tracing::warn!(
                    target: "namestore::redis",
                    master = %self.master,
                    sentinel = %shown,
                    "lost the Redis Sentinel listened to for failovers; listening to another"
                );
            }
            if !listened && !std::mem::replace(&mut deaf, true) {
                tracing::warn!(
                    target: "namestore::redis",
                    master = %self.master,
                    "no Redis Sentinel can be listened to for failovers (a failover that leaves \
                     the old primary up is not seen until one can); trying again every second"
                );
            }
            tokio::time::sleep(RESUBSCRIBE_AFTER).await;
        }
    }

    /// A connection to the Sentinel at `node` subscribed to `+switch-master`, if it answers
    /// within the bound.
    async fn subscribe(&self, mut node: ConnectionInfo) -> Option<redis::aio::PubSub> {
        let subscribing = async {
            if let Some(file) = &self.password {
                let settings = node.redis_settings().clone().set_password(file.now().await);
                node = node.set_redis_settings(settings);
            }
            let client = single_client(node, self.certificates.now().await).ok()?;
            let mut pubsub = client.get_async_pubsub().await.ok()?;
            pubsub.subscribe("+switch-master").await.ok()?;
            Some(pubsub)
        };
        tokio::time::timeout(self.bound, subscribing)
            .await
            .ok()
            .flatten()
    }
}

/// A connection to the server at `address`, made with `to_server`, if it answers `ROLE` as a
/// primary.
async fn check<F, C>(
    config: &RedisConfig,
    (host, port): Address,
    to_server: &F,
) -> std::result::Result<MultiplexedConnection, Failure>
where
    F: Fn(ConnectionInfo) -> C,
    C: Future<Output = Result<MultiplexedConnection>>,
{
    let context = format!("the server at {}", shown(&host, port));
    let connecting = config
        .master_info(&host, port)
        .map(to_server)
        .map_err(|e| Failure::of(&context, &e))?;
    let mut connection = connecting.await.map_err(|e| Failure::of(&context, &e))?;
    let answer = redis::cmd("ROLE")
        .query_async::<Value>(&mut connection)
        .await
        .map_err(|e| Failure::of(&context, &connect_error(&e, config)))?;
    match role(&answer) {
        Some("master") => Ok(connection),
        role => Err(Failure {
            kind: ErrorKind::Unavailable,
            said: format!(
                "{context} answers `ROLE` as {} (a failover under way, or a Sentinel that \
                 missed one)",
                role.unwrap_or("something else than a primary")
            ),
        }),
    }
}

/// `host:port`, an IPv6 address in brackets.
fn shown(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The role a `ROLE` answer gives: `master`, `slave` or `sentinel`.
fn role(answer: &Value) -> Option<&str> {
    let Value::Array(parts) = answer else {
        return None;
    };
    match parts.first()? {
        Value::BulkString(role) => std::str::from_utf8(role).ok(),
        Value::SimpleString(role) => Some(role),
        _ => None,
    }
}

/// The error of a connection no Sentinel led to: backend when a failure will come again until
/// the settings change, else unavailable; every failure said.
fn none_found(master: &str, failures: Vec<Failure>) -> Error {
    let backend = failures.iter().any(|f| f.kind == ErrorKind::Backend);
    let said: Vec<&str> = failures.iter().map(|f| f.said.as_str()).collect();
    let message = format!(
        "no primary of `{master}` was found through the Redis Sentinels: {}",
        said.join("; ")
    );
    if backend {
        Error::backend(message)
    } else {
        Error::unavailable(message, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_read_from_either_string_form() {
        let answer = |first: Value| Value::Array(vec![first, Value::Int(0)]);
        assert_eq!(
            role(&answer(Value::BulkString(b"master".to_vec()))),
            Some("master")
        );
        assert_eq!(
            role(&answer(Value::SimpleString("slave".into()))),
            Some("slave")
        );
        assert_eq!(role(&answer(Value::Int(1))), None);
        assert_eq!(role(&Value::Nil), None);
    }

    #[test]
    fn a_failure_that_will_come_again_makes_the_whole_a_backend_error() {
        let down = || Failure::of("the Sentinel at a:1", &Error::unavailable("refused", None));
        let unknown = Failure {
            kind: ErrorKind::Backend,
            said: "the Sentinel at b:2 monitors no master of that name".into(),
        };
        let error = none_found("m", vec![down(), unknown]);
        assert_eq!(error.kind(), ErrorKind::Backend);
        assert!(
            error
                .to_string()
                .contains("Sentinels: the Sentinel at a:1: refused;"),
            "{error}"
        );
        assert!(
            error.to_string().contains("b:2 monitors no master"),
            "{error}"
        );
        assert_eq!(none_found("m", vec![down()]).kind(), ErrorKind::Unavailable);
    }
}
