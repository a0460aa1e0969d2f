//! The Redis driver's settings, parsed from a `redis://` URL or built in code.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use redis::{ConnectionInfo, IntoConnectionInfo};

use super::file::read_file;
use super::password;
use super::tls;
use crate::{Error, Result};

/// The URL scheme of the standalone Redis driver.
pub const SCHEME: &str = "redis";

/// The URL scheme of the Redis Cluster driver: `redis+cluster://host1:port1,host2:port2`.
pub const CLUSTER_SCHEME: &str = "redis+cluster";

/// The URL scheme of a standalone Redis server over TLS.
pub const TLS_SCHEME: &str = "rediss";

/// The URL scheme of a Redis Cluster over TLS (every node, `tls-cluster yes`):
/// `rediss+cluster://host1:port1,host2:port2`.
pub const TLS_CLUSTER_SCHEME: &str = "rediss+cluster";

/// The URL scheme of a Redis server on the same machine, reached through its Unix socket
/// (`unixsocket` in its configuration): `redis+unix:///run/redis/redis-server.sock?db=2`.
pub const UNIX_SCHEME: &str = "redis+unix";

/// The URL scheme of a Redis server found through Redis Sentinel:
/// `redis+sentinel://sentinel1:26379,sentinel2:26379/mymaster`.
pub const SENTINEL_SCHEME: &str = "redis+sentinel";

/// The URL scheme of a Redis server found through Redis Sentinel, over TLS (the Sentinels and
/// the servers).
pub const TLS_SENTINEL_SCHEME: &str = "rediss+sentinel";

const DEFAULT_PORT: u16 = 6379;

/// The port a Sentinel listens on unless told otherwise.
const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// The farthest a timeout reaches: about 30 years, as the runtime's farthest timer. A longer
/// one (`Duration::MAX`, a program's "no bound") waits this long; added to the clock as it is,
/// it would overflow it.
pub(crate) const FARTHEST: Duration = Duration::from_secs(30 * 365 * 86_400);

/// Settings of a [`RedisDriver`](super::RedisDriver).
///
/// From a URL: `redis://[[user]:password@]host[:port][/db]` for a standalone server
/// (`rediss://` over TLS, verified against the system's roots or
/// [`RedisConfig::tls_root_certificate`]), or
/// `redis+cluster://[[user]:password@]host1:port1,host2:port2,…` with any of a cluster's nodes
/// as seeds (`rediss+cluster://` over TLS, as managed clusters with encryption in transit
/// require); with optional query parameters `connect_timeout_ms`, `response_timeout_ms`,
/// `hash_tag=1` and, over TLS, `tls_ca_file=/path/ca.pem` (a CA to trust instead of the
/// system's roots) and `tls_cert_file=/path/client.crt&tls_key_file=/path/client.key` (a
/// client certificate, for a server that requires one: Redis's default over TLS). Each file is
/// read when the URL is parsed, at most 16 MiB, and must hold what it names, in PEM; a named
/// pipe is read from its writer, within 10 s.
///
/// `redis+unix://[[user]:password@]/path/to/redis.sock[?db=N]` reaches a server on the same
/// machine through its Unix socket (the database is a parameter, `db`, since the path is the
/// socket's).
///
/// `redis+sentinel://[[user]:password@]sentinel1[:port],sentinel2[:port],…/master[/db]`
/// (`rediss+sentinel://` over TLS, to the Sentinels and the server alike) reaches the server
/// that the Redis Sentinels monitoring `master` name as its current primary, for a deployment
/// where Sentinel moves the primary on failure; see [`RedisConfig::from_url`]. The user and
/// password are the server's; the Sentinels' own password, when they require one
/// (`requirepass` in their configuration), is `sentinel_password=…` or
/// `sentinel_password_file=/path` (read again each time the Sentinels are asked, as
/// `password_file` below). A Sentinel's port is 26379 unless given.
///
/// `password_file=/run/secrets/redis-password` takes the password from a file (in place of
/// one in the URL, which must then give none: `redis://app@host/?password_file=…` with an ACL
/// user): its text, without a line ending at its end, never shown. Like the TLS files, it is
/// read when the URL is parsed and again for each new connection, so a password rotated on
/// disk (a Kubernetes secret, a secrets agent's file) is used from the next connection on,
/// without a restart: give the server the new password beside the old one
/// (`ACL SETUSER app >new`), replace the file, and remove the old one once every client has
/// reconnected. While the file cannot be read or holds no password (replaced half way), the
/// last password read is used.
///
/// The user and password may hold any character. Percent-encoding (`%40` for `@`, `%3F` for
/// `?`, `%25` for `%`…) is decoded; a password with a raw `?`, `#`, `/`, `@` or `:` is also
/// understood, because the credentials run to the *last* `@` of the URL. A parameter's value
/// may hold an `@` too (`tls_ca_file=/etc/redis@6380/ca.pem`): when a `?` naming one of the
/// parameters above comes before the last `@`, the URL is read with the credentials ending
/// before that `?` first, and the other way if that fails. The password is never shown: not
/// in an error (an error about a URL read both ways reports the second reading), not in
/// `Debug`.
///
/// ```
/// use namestore::drivers::redis::RedisConfig;
///
/// let config = RedisConfig::from_url("redis://:s3cret@127.0.0.1:6380/2?response_timeout_ms=500").unwrap();
/// assert_eq!(config.response_timeout.as_millis(), 500);
/// assert!(!format!("{config:?}").contains("s3cret"));
/// let raw = RedisConfig::from_url("redis://app:p?a#s/s@w%40rd@cache.internal").unwrap();
/// assert_eq!(format!("{raw:?}").contains("p?a#s"), false);
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    /// Seed nodes (one for a standalone server, none for a socket).
    nodes: Vec<Node>,
    /// For a `redis+unix://` URL: the socket's path.
    socket: Option<String>,
    username: Option<String>,
    /// Never printed.
    password: Option<String>,
    db: i64,
    tls: bool,
    cluster: bool,
    /// For a `redis+sentinel://` URL: the master to ask the Sentinels (the nodes) for.
    sentinel: Option<SentinelSettings>,
    /// Store a namespace's keys as `{root:domain}:key`, so Redis Cluster keeps the whole
    /// namespace in one slot: batches, scripts and listings stay on one node and `mset` stays
    /// atomic, at the price of one node carrying the namespace's whole load. Without it, keys
    /// spread over the cluster, batches are split by slot (atomic per slot only), and listings
    /// walk every primary. Default: off.
    pub hash_tag: bool,
    /// For `rediss://`: a CA certificate (PEM) to trust instead of the system's roots, for a
    /// server with a private CA. Default: none (the system's roots). From a URL:
    /// `tls_ca_file=/path/ca.pem`.
    ///
    /// A file a URL names is read when the config is made (a missing or malformed file is an
    /// error at once) and again for every new connection, so a certificate renewed on disk
    /// (by cert-manager, certbot, a secrets agent) is used without a restart; while a file
    /// reads as something unusable (half written, a client certificate without its new key),
    /// the last certificates read whole are kept. A field set in code replaces its file.
    pub tls_root_certificate: Option<Vec<u8>>,
    /// For TLS: the certificate (PEM, the chain from the client's certificate up) this client
    /// presents to a server that requires one (`tls-auth-clients yes`, Redis's default when it
    /// speaks TLS), with [`tls_client_key`](Self::tls_client_key); both or neither. Default:
    /// none. From a URL: `tls_cert_file=/path/client.crt`.
    pub tls_client_certificate: Option<Vec<u8>>,
    /// The private key (PEM) of [`tls_client_certificate`](Self::tls_client_certificate).
    /// Never printed. From a URL: `tls_key_file=/path/client.key`.
    pub tls_client_key: Option<Vec<u8>>,
    /// The TLS files the URL named, read again for each new connection.
    tls_files: TlsFiles,
    /// The file the URL named for the password (`password_file`), read again for each new
    /// connection.
    password_file: Option<String>,
    /// Bound on establishing a connection. Default: 2 s. A call that cannot connect within it
    /// fails with [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable): it was not sent.
    /// A bound past about 30 years (`Duration::MAX`) is taken as 30 years.
    pub connect_timeout: Duration,
    /// Bound on each command's answer. Default: 2 s. A call sent and not answered within it
    /// fails with [`ErrorKind::Timeout`](crate::ErrorKind::Timeout). Every call answers or
    /// fails within `connect_timeout + response_timeout` (SPEC 8.3), plus the time the process
    /// spends copying the call's arguments into the command it sends, which no timer stops (a
    /// second or more a GiB: give calls that move hundreds of MiB a bound to match). A bound
    /// past about 30 years (`Duration::MAX`) is taken as 30 years.
    pub response_timeout: Duration,
}

/// What a `redis+sentinel://` URL adds to a standalone server's settings.
#[derive(Clone)]
pub(super) struct SentinelSettings {
    /// The name the Sentinels monitor the server under.
    pub(super) master: String,
    /// The Sentinels' password. Never printed.
    pub(super) password: Option<String>,
    /// The file it was read from, read again each time the Sentinels are asked.
    pub(super) password_file: Option<String>,
}

/// The TLS files a URL named.
#[derive(Clone, Default)]
struct TlsFiles {
    ca: Option<TlsFile>,
    certificate: Option<TlsFile>,
    key: Option<TlsFile>,
}

/// A TLS file a URL named: its path, and a digest of what was read from it, to tell whether
/// the field it filled was set in code since.
#[derive(Clone)]
struct TlsFile {
    path: String,
    read: u64,
}

impl TlsFile {
    fn new(path: &str, read: &[u8]) -> Self {
        TlsFile {
            path: path.to_owned(),
            read: digest(read),
        }
    }
}

/// The path of `file` while `field` holds what was read from it.
fn unchanged<'c>(file: &'c Option<TlsFile>, field: &Option<Vec<u8>>) -> Option<&'c str> {
    file.as_ref()
        .filter(|file| field.as_deref().is_some_and(|pem| file.read == digest(pem)))
        .map(|file| file.path.as_str())
}

/// A digest to tell two contents apart (not a cryptographic one: it guards against a
/// mistake, not an adversary).
fn digest(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    host: String,
    port: u16,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `host[:port]` or `[v6]:port`, the port `default_port` unless given.
fn parse_node(text: &str, default_port: u16) -> Result<Node> {
    let bad = |why: &str| {
        Error::invalid_url(format!(
            "Redis host `{}`: {why}",
            crate::error::shorten(text)
        ))
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("an IPv6 address needs a closing `]`"))?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| bad("expected `:port` after `]`"))?,
                ),
            ),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(Error::invalid_url(
            "a Redis URL names a host: `redis://host:port`",
        ));
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
    {
        return Err(bad("not a host name or address"));
    }
    let port = match port {
        None => default_port,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| bad("the port is a number from 1 to 65535"))?,
    };
    Ok(Node {
        host: host.to_owned(),
        port,
    })
}

/// The parameters a Redis URL's query may name.
pub(crate) const PARAMETERS: [&str; 10] = [
    "connect_timeout_ms",
    "response_timeout_ms",
    "hash_tag",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "password_file",
    "sentinel_password",
    "sentinel_password_file",
    "db",
];

/// What a Redis URL reaches, by its scheme.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Standalone,
    Unix,
    Cluster,
    Sentinel,
}

impl RedisConfig {
    /// Parses a `redis://`, `rediss://`, `redis+unix://`, `redis+cluster://`,
    /// `rediss+cluster://`, `redis+sentinel://` or `rediss+sentinel://` URL.
    ///
    /// # Redis Sentinel
    ///
    /// With `redis+sentinel://`, each new connection asks the Sentinels (all of them at once)
    /// which server is the primary of the master name the URL's path gives, connects to the
    /// first one named that answers `ROLE` as a primary (a Sentinel that missed a failover
    /// names a server that is now a replica: passed over), and keeps that connection until it
    /// fails. A failover ends every connection to the old primary (Sentinel closes its
    /// clients' connections when it turns it into a replica), and a write that reaches a
    /// replica anyway (`READONLY`) drops the connection and is sent once more on a new one;
    /// so a handle follows failovers by itself. While the Sentinels name a primary that is
    /// down (for `down-after-milliseconds`, until they fail it over), calls fail with
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable).
    ///
    /// ```
    /// use namestore::drivers::redis::RedisConfig;
    ///
    /// let url = "redis+sentinel://:s3cret@sentinel-0,sentinel-1:26380/cache/2";
    /// let config = RedisConfig::from_url(url).unwrap();
    /// assert_eq!(config.sentinel_master(), Some("cache"));
    /// assert_eq!(config.db(), 2);
    /// assert_eq!(
    ///     config.to_string(),
    ///     "redis+sentinel://:<redacted>@sentinel-0:26379,sentinel-1:26380/cache/2"
    /// );
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) for another scheme, a missing
    /// host, a bad port or database, a Sentinel URL without its master's name, an unknown
    /// parameter or a bad value; the message never repeats the user or password.
    pub fn from_url(url: &str) -> Result<Self> {
        let schemes = [
            (CLUSTER_SCHEME, Kind::Cluster, false),
            (TLS_CLUSTER_SCHEME, Kind::Cluster, true),
            (SENTINEL_SCHEME, Kind::Sentinel, false),
            (TLS_SENTINEL_SCHEME, Kind::Sentinel, true),
            (UNIX_SCHEME, Kind::Unix, false),
            (SCHEME, Kind::Standalone, false),
            (TLS_SCHEME, Kind::Standalone, true),
        ];
        let Some((kind, tls, rest)) = schemes.iter().find_map(|&(scheme, kind, tls)| {
            let rest = url.strip_prefix(scheme)?.strip_prefix("://")?;
            Some((kind, tls, rest))
        }) else {
            return Err(Error::invalid_url(
                "a Redis URL starts with `redis://`, `rediss://`, `redis+unix://`, \
                 `redis+cluster://`, `rediss+cluster://`, `redis+sentinel://` or \
                 `rediss+sentinel://`",
            ));
        };
        // A password may hold `?`, `#`, `/` and `@`, and a parameter's value `@`: each reading
        // in turn, the likelier first; the last one's error never quotes the credentials.
        let readings = crate::query::credentials_end(rest, &PARAMETERS);
        let mut parsed = Err(Error::invalid_url("a Redis URL names a host"));
        for &end in &readings {
            parsed = Self::parse(kind, tls, rest, end);
            if parsed.is_ok() {
                return parsed;
            }
        }
        match readings.len() {
            1 => parsed,
            _ => parsed.map_err(|e| e.with_note(crate::query::AT_IN_A_VALUE)),
        }
    }

    /// Parses `rest`, a Redis URL after its scheme, whose credentials end at the `@` at `end`
    /// (none without it).
    fn parse(kind: Kind, tls: bool, rest: &str, end: Option<usize>) -> Result<Self> {
        let cluster = kind == Kind::Cluster;
        let (credentials, tail) = match end {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (username, password) = match credentials {
            None => (None, None),
            Some(credentials) => {
                let (user, password) = match credentials.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (credentials, None),
                };
                let decode = |part: &str, what: &str| {
                    crate::query::percent_decode(part).map(Cow::into_owned).ok_or_else(|| {
                        Error::invalid_url(format!(
                            "the {what} in the Redis URL has a malformed %-escape or is not UTF-8"
                        ))
                    })
                };
                let user = decode(user, "user")?;
                let password = password.map(|p| decode(p, "password")).transpose()?;
                ((!user.is_empty()).then_some(user), password)
            }
        };
        let (address, query) = tail.split_once('?').unwrap_or((tail, ""));
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        let (hosts, path) = match kind {
            // The whole address is the socket's path; the database comes as a parameter.
            Kind::Unix => ("", ""),
            _ => address.split_once('/').unwrap_or((address, "")),
        };
        let default_port = match kind {
            Kind::Sentinel => DEFAULT_SENTINEL_PORT,
            Kind::Standalone | Kind::Unix | Kind::Cluster => DEFAULT_PORT,
        };
        let (nodes, socket) = match kind {
            Kind::Unix => {
                let socket = crate::query::percent_decode(address)
                    .filter(|path| path.starts_with('/'))
                    .ok_or_else(|| {
                        Error::invalid_url(
                            "a Redis socket URL names the socket's absolute path: \
                             `redis+unix:///run/redis/redis-server.sock`",
                        )
                    })?;
                (Vec::new(), Some(socket.into_owned()))
            }
            _ => {
                let nodes = hosts
                    .split(',')
                    .map(|node| parse_node(node, default_port))
                    .collect::<Result<Vec<_>>>()?;
                (nodes, None)
            }
        };
        if nodes.len() > 1 && kind == Kind::Standalone {
            return Err(Error::invalid_url(
                "several hosts need `redis+cluster://` (or `redis+sentinel://` for Sentinels); \
                 a standalone URL names one",
            ));
        }
        let (sentinel, path) = match kind {
            Kind::Sentinel => {
                let (master, db) = path.split_once('/').unwrap_or((path, ""));
                let master = crate::query::percent_decode(master)
                    .filter(|master| !master.is_empty())
                    .ok_or_else(|| {
                        Error::invalid_url(
                            "a Redis Sentinel URL names the master the Sentinels monitor: \
                             `redis+sentinel://host:26379/mymaster`",
                        )
                    })?;
                let settings = SentinelSettings {
                    master: master.into_owned(),
                    password: None,
                    password_file: None,
                };
                (Some(settings), db)
            }
            Kind::Standalone | Kind::Unix | Kind::Cluster => (None, path),
        };
        let db = match path.trim_end_matches('/') {
            "" => 0,
            db => db.parse::<i64>().ok().filter(|&d| d >= 0).ok_or_else(|| {
                Error::invalid_url(format!(
                    "the Redis database `{}` is not a number",
                    crate::error::shorten(db)
                ))
            })?,
        };
        if cluster && db != 0 {
            return Err(Error::invalid_url("a Redis Cluster has database 0 only"));
        }
        let mut config = RedisConfig {
            nodes,
            socket,
            username,
            password,
            db,
            tls,
            cluster,
            sentinel,
            hash_tag: false,
            tls_root_certificate: None,
            tls_client_certificate: None,
            tls_client_key: None,
            tls_files: TlsFiles::default(),
            password_file: None,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
        };
        for parameter in crate::query::parameters(query, "Redis")? {
            config.parameter(&parameter.name, &parameter.value)?;
        }
        match (&config.tls_client_certificate, &config.tls_client_key) {
            (Some(certificate), Some(key)) => {
                tls::check_client_identity(certificate, key).map_err(|why| {
                    Error::invalid_url(format!(
                        "Redis parameters `tls_cert_file` and `tls_key_file` hold {why}"
                    ))
                })?;
            }
            (None, None) => {}
            _ => {
                return Err(Error::invalid_url(
                    "Redis parameters `tls_cert_file` and `tls_key_file` go together: a \
                     client certificate and its private key",
                ));
            }
        }
        // The connection settings redis-rs will use: checked now, not on first use.
        match config.sentinel.is_some() {
            true => config.sentinel_infos().map(drop)?,
            false => config.connection_infos().map(drop)?,
        }
        Ok(config)
    }

    fn parameter(&mut self, name: &str, value: &str) -> Result<()> {
        match name {
            "tls_ca_file" => {
                if !self.tls {
                    return Err(Error::invalid_url(
                        "Redis parameter `tls_ca_file` needs TLS: a `rediss://` or \
                         `rediss+cluster://` URL",
                    ));
                }
                let pem = read_file(name, value, tls::check_ca_pem)?;
                self.tls_files.ca = Some(TlsFile::new(value, &pem));
                self.tls_root_certificate = Some(pem);
            }
            "tls_cert_file" | "tls_key_file" => {
                if !self.tls {
                    return Err(Error::invalid_url(format!(
                        "Redis parameter `{name}` needs TLS: a `rediss://` or \
                         `rediss+cluster://` URL"
                    )));
                }
                if name == "tls_cert_file" {
                    let pem = read_file(name, value, tls::check_certificate_pem)?;
                    self.tls_files.certificate = Some(TlsFile::new(value, &pem));
                    self.tls_client_certificate = Some(pem);
                } else {
                    let pem = read_file(name, value, tls::check_key_pem)?;
                    self.tls_files.key = Some(TlsFile::new(value, &pem));
                    self.tls_client_key = Some(pem);
                }
            }
            "password_file" => {
                if self.password_file.is_some() {
                    return Err(Error::invalid_url(
                        "Redis parameter `password_file` is given twice",
                    ));
                }
                if self.password.is_some() {
                    return Err(Error::invalid_url(
                        "the Redis URL gives a password and `password_file`: give one",
                    ));
                }
                self.password = Some(password::read_password_file(name, value)?);
                self.password_file = Some(value.to_owned());
            }
            "sentinel_password" | "sentinel_password_file" => {
                let Some(sentinel) = &mut self.sentinel else {
                    return Err(Error::invalid_url(format!(
                        "Redis parameter `{name}` is for the Sentinels of a `redis+sentinel://` \
                         URL"
                    )));
                };
                if sentinel.password.is_some() {
                    return Err(Error::invalid_url(
                        "the Redis URL gives `sentinel_password` and `sentinel_password_file`: \
                         give one",
                    ));
                }
                if name == "sentinel_password" {
                    sentinel.password = Some(value.to_owned());
                } else {
                    let password = password::read_password_file(name, value)?;
                    sentinel.password = Some(password);
                    sentinel.password_file = Some(value.to_owned());
                }
            }
            "db" => {
                if self.socket.is_none() {
                    return Err(Error::invalid_url(
                        "Redis parameter `db` is for a `redis+unix://` URL; elsewhere the \
                         database is the URL's path: `redis://host/2`",
                    ));
                }
                self.db = value
                    .parse::<i64>()
                    .ok()
                    .filter(|&d| d >= 0)
                    .ok_or_else(|| {
                        Error::invalid_url(format!(
                            "the Redis database `{}` is not a number",
                            crate::error::shorten(value)
                        ))
                    })?;
            }
            "hash_tag" => {
                self.hash_tag = match value {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => {
                        return Err(Error::invalid_url(
                            "Redis parameter `hash_tag` takes 1 or 0",
                        ));
                    }
                };
            }
            "connect_timeout_ms" | "response_timeout_ms" => {
                let millis: u64 = value.parse().ok().filter(|&ms| ms > 0).ok_or_else(|| {
                    Error::invalid_url(format!(
                        "Redis parameter `{name}` takes a positive number of milliseconds"
                    ))
                })?;
                let bound = Duration::from_millis(millis);
                if name == "connect_timeout_ms" {
                    self.connect_timeout = bound;
                } else {
                    self.response_timeout = bound;
                }
            }
            other => {
                return Err(Error::invalid_url(format!(
                    "unknown Redis parameter `{}` (known: {})",
                    crate::error::shorten(other),
                    PARAMETERS.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Whether this names a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// For a `redis+sentinel://` URL, the name of the master the Sentinels are asked for.
    pub fn sentinel_master(&self) -> Option<&str> {
        self.sentinel
            .as_ref()
            .map(|sentinel| sentinel.master.as_str())
    }

    /// What a `redis+sentinel://` URL gave.
    pub(super) fn sentinel(&self) -> Option<&SentinelSettings> {
        self.sentinel.as_ref()
    }

    /// Whether this connects over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The database number (0 on a cluster).
    pub fn db(&self) -> i64 {
        self.db
    }

    /// The ACL user, if the URL names one.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The TLS files the URL named whose fields still hold what was read from them (a field
    /// set in code since replaces its file): the CA, the client certificate, its key.
    pub(super) fn tls_files(&self) -> [Option<&str>; 3] {
        [
            unchanged(&self.tls_files.ca, &self.tls_root_certificate),
            unchanged(&self.tls_files.certificate, &self.tls_client_certificate),
            unchanged(&self.tls_files.key, &self.tls_client_key),
        ]
    }

    /// The password file the URL named, and the password read from it when the URL was
    /// parsed.
    pub(super) fn password_file(&self) -> Option<(&str, &str)> {
        Some((self.password_file.as_deref()?, self.password.as_deref()?))
    }

    /// This config with `password` in place of its own: the password file read again.
    pub(super) fn with_password(&self, password: String) -> RedisConfig {
        RedisConfig {
            password: Some(password),
            ..self.clone()
        }
    }

    /// redis-rs's connection settings, one per seed node, credentials included.
    pub(crate) fn connection_infos(&self) -> Result<Vec<ConnectionInfo>> {
        if let Some(socket) = &self.socket {
            let info = redis::ConnectionAddr::Unix(socket.into())
                .into_connection_info()
                .map_err(|_| Error::invalid_url("malformed Redis socket path"))?;
            return Ok(vec![self.with_credentials(info)]);
        }
        self.nodes
            .iter()
            .map(|node| self.server_info(node))
            .collect()
    }

    /// redis-rs's connection settings for the server at `host:port` (one a Sentinel named),
    /// credentials included.
    pub(super) fn master_info(&self, host: &str, port: u16) -> Result<ConnectionInfo> {
        self.server_info(&Node {
            host: host.to_owned(),
            port,
        })
    }

    /// Each Sentinel's `host:port` and redis-rs's connection settings for it, with the
    /// Sentinels' password.
    pub(super) fn sentinel_infos(&self) -> Result<Vec<(String, ConnectionInfo)>> {
        let password = self.sentinel.as_ref().and_then(|s| s.password.as_deref());
        self.nodes
            .iter()
            .map(|node| {
                let info = self.node_info(node)?;
                let mut redis = info.redis_settings().clone();
                if let Some(password) = password {
                    redis = redis.set_password(password);
                }
                Ok((node.to_string(), info.set_redis_settings(redis)))
            })
            .collect()
    }

    fn server_info(&self, node: &Node) -> Result<ConnectionInfo> {
        Ok(self.with_credentials(self.node_info(node)?))
    }

    /// `info` with the server's database, user and password.
    fn with_credentials(&self, info: ConnectionInfo) -> ConnectionInfo {
        let mut redis = info.redis_settings().clone().set_db(self.db);
        if let Some(user) = &self.username {
            redis = redis.set_username(user);
        }
        if let Some(password) = &self.password {
            redis = redis.set_password(password);
        }
        info.set_redis_settings(redis)
    }

    /// The settings to reach `node`, without credentials.
    fn node_info(&self, node: &Node) -> Result<ConnectionInfo> {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://{node}")
            .into_connection_info()
            .map_err(|_| Error::invalid_url("malformed Redis host or port"))
    }

    /// The bound on one whole call.
    pub(crate) fn call_timeout(&self) -> Duration {
        self.connect_timeout.saturating_add(self.response_timeout)
    }

    /// The bound on connecting, as the client library is given it: at most [`FARTHEST`].
    pub(crate) fn connect_bound(&self) -> Duration {
        self.connect_timeout.min(FARTHEST)
    }

    /// The bound on an answer, as the client library is given it: at most [`FARTHEST`].
    pub(crate) fn response_bound(&self) -> Duration {
        self.response_timeout.min(FARTHEST)
    }
}

/// The server's URL as the config reads it, its password `<redacted>` and its parameters left
/// out: `redis://user:<redacted>@host:6379/0`.
///
/// ```
/// use namestore::drivers::redis::RedisConfig;
///
/// let config = RedisConfig::from_url("rediss://app:s3cret@cache:6380/2?hash_tag=1").unwrap();
/// assert_eq!(config.to_string(), "rediss://app:<redacted>@cache:6380/2");
/// ```
impl fmt::Display for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match (self.cluster, self.sentinel.is_some(), self.tls) {
            (true, _, true) => TLS_CLUSTER_SCHEME,
            (true, _, false) => CLUSTER_SCHEME,
            (false, true, true) => TLS_SENTINEL_SCHEME,
            (false, true, false) => SENTINEL_SCHEME,
            (false, false, true) => TLS_SCHEME,
            (false, false, false) => SCHEME,
        };
        let credentials = match (&self.username, &self.password) {
            (None, None) => String::new(),
            (Some(user), None) => format!("{user}@"),
            (user, Some(_)) => format!("{}:<redacted>@", user.as_deref().unwrap_or("")),
        };
        if let Some(socket) = &self.socket {
            return write!(
                f,
                "{UNIX_SCHEME}://{credentials}{}?db={}",
                escaped(socket, b"/"),
                self.db
            );
        }
        let hosts: Vec<String> = self.nodes.iter().map(Node::to_string).collect();
        let master = match &self.sentinel {
            Some(sentinel) => escaped(&sentinel.master, b"") + "/",
            None => String::new(),
        };
        write!(
            f,
            "{scheme}://{credentials}{}/{master}{}",
            hosts.join(","),
            self.db
        )
    }
}

/// `text` as it reads back in a URL: bytes outside RFC 3986's unreserved set escaped, but
/// those in `kept`.
fn escaped(text: &str, kept: &[u8]) -> String {
    let mut escaped = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                escaped.push(char::from(byte));
            }
            _ if kept.contains(&byte) => escaped.push(char::from(byte)),
            _ => escaped.push_str(&format!("%{byte:02X}")),
        }
    }
    escaped
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.to_string())
            .field("hash_tag", &self.hash_tag)
            .field(
                "tls_root_certificate",
                &self.tls_root_certificate.as_ref().map(|_| "<set>"),
            )
            .field(
                "tls_client_certificate",
                &self.tls_client_certificate.as_ref().map(|_| "<set>"),
            )
            .field(
                "tls_client_key",
                &self.tls_client_key.as_ref().map(|_| "<redacted>"),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "SENTINEL-7f3a";

    #[test]
    fn any_character_in_a_password_stays_in_the_password() {
        for special in ["?", "#", "@", "/", "%", ":", "?x=1&y", "@host:1/2?a#b"] {
            let password = format!("pa{special}ss{SECRET}");
            let encoded: String = password
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b == b'-' {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            for written in [encoded.clone(), password.clone()] {
                if written == password && special.contains('%') {
                    continue; // a raw `%` starts an escape: it must be written `%25`
                }
                for scheme in ["redis", "rediss", "redis+cluster"] {
                    let url =
                        format!("{scheme}://us%3Aer:{written}@127.0.0.1:6390?connect_timeout_ms=5");
                    let config =
                        RedisConfig::from_url(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
                    assert_eq!(config.password.as_deref(), Some(password.as_str()), "{url}");
                    assert_eq!(config.username(), Some("us:er"), "{url}");
                    assert_eq!(
                        config.nodes,
                        [Node {
                            host: "127.0.0.1".into(),
                            port: 6390
                        }]
                    );
                    assert_eq!(config.connect_timeout, Duration::from_millis(5));
                    let shown = format!("{config:?}");
                    assert!(!shown.contains(SECRET), "{shown}");
                    assert!(
                        shown.contains(&format!("{scheme}://us:er:<redacted>@")),
                        "{shown}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_parameter_may_hold_an_at_sign() {
        // A file that is not there: read two ways, reported the way that never quotes the
        // password, with a note; with the `@` escaped, read one way.
        let url = format!(
            "rediss://user:pa@ss{SECRET}@127.0.0.1:6390/2?tls_ca_file=/no/such/redis@6380/ca.pem"
        );
        let error = RedisConfig::from_url(&url).unwrap_err();
        assert!(error.to_string().contains("`%40`"), "{error}");
        assert!(!error.to_string().contains(SECRET), "{error}");
        let url = url.replace("redis@6380", "redis%406380");
        let error = RedisConfig::from_url(&url).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("cannot read `/no/such/redis@6380/ca.pem`"),
            "{error}"
        );
        assert!(!error.to_string().contains(SECRET), "{error}");
        let url =
            format!("redis://user:pa@ss{SECRET}@127.0.0.1:6390/2?hash_tag=1&connect_timeout_ms=7");
        let config = RedisConfig::from_url(&url).unwrap();
        assert_eq!(config.password.as_deref(), Some(&*format!("pa@ss{SECRET}")));
        assert_eq!((config.db, config.hash_tag), (2, true));
        assert_eq!(config.connect_timeout, Duration::from_millis(7));
        // A password holding `?` and a parameter's name still reads as the password ...
        let url = format!("redis://user:pa?hash_tag=1{SECRET}@127.0.0.1:6390/2");
        let config = RedisConfig::from_url(&url).unwrap();
        let password = format!("pa?hash_tag=1{SECRET}");
        assert_eq!(config.password.as_deref(), Some(&*password));
        assert_eq!((config.db, config.hash_tag), (2, false));
        // ... and an error about the rest of such a URL never quotes it.
        for url in [
            format!("redis://user:pa?hash_tag=1{SECRET}@127.0.0.1:notaport"),
            format!("redis://user:pa?tls_ca_file=/x{SECRET}@127.0.0.1/notadb"),
            format!("rediss://user:pa?tls_ca_file={SECRET}@h/0?tls_ca_file=/no@such:port"),
        ] {
            let error = RedisConfig::from_url(&url).unwrap_err();
            assert!(!error.to_string().contains(SECRET), "{url}: {error}");
        }
    }

    #[test]
    fn errors_never_repeat_the_credentials() {
        for url in [
            format!("redis://user:pa?ss{SECRET}@127.0.0.1:6379?bogus=1"),
            format!("redis://user:pa?ss{SECRET}@127.0.0.1:notaport"),
            format!("redis://user:pa?ss{SECRET}@"),
            format!("redis://user:pa%zz{SECRET}@host"),
            format!("redis://:{SECRET}@host/notadb"),
            format!("redis+cluster://:{SECRET}@h1:1,h2:x"),
        ] {
            let error = RedisConfig::from_url(&url).unwrap_err();
            assert_eq!(error.kind(), crate::ErrorKind::InvalidUrl, "{url}");
            assert!(!error.to_string().contains(SECRET), "{url}: {error}");
            assert!(!error.to_string().contains("pa?ss"), "{url}: {error}");
        }
    }

    #[test]
    fn hosts_ports_databases() {
        let c = RedisConfig::from_url("redis://cache.internal").unwrap();
        assert_eq!(
            (c.nodes[0].port, c.db, c.username(), c.password.is_none()),
            (6379, 0, None, true)
        );
        let c = RedisConfig::from_url("rediss://u@[::1]:7000/3").unwrap();
        assert_eq!(
            c.nodes[0],
            Node {
                host: "::1".into(),
                port: 7000
            }
        );
        assert_eq!((c.db, c.username(), c.is_tls()), (3, Some("u"), true));
        assert!(format!("{c:?}").contains("rediss://u@[::1]:7000/3"));
        let c = RedisConfig::from_url("redis+cluster://a:1,b:2?hash_tag=1").unwrap();
        assert_eq!(c.nodes.len(), 2);
        assert!(c.hash_tag && c.is_cluster());
        for bad in [
            "redis://",
            "redis://a,b",
            "redis+cluster://a/1",
            "redis://h:0",
            "redis://h/-1",
        ] {
            assert!(RedisConfig::from_url(bad).is_err(), "{bad}");
        }
    }

    /// `redis+sentinel://`: Sentinels on port 26379 unless given, the master's name (escapes
    /// decoded, shown escaped) and database in the path, the URL's credentials for the server
    /// and `sentinel_password` (or `sentinel_password_file`) for the Sentinels, never shown.
    #[test]
    fn sentinel_urls() {
        let url = format!(
            "redis+sentinel://app:pw{SECRET}@s1,s2:26380,[::1]/my%2Fmaster/4?sentinel_password=\
             sp{SECRET}&connect_timeout_ms=9"
        );
        let c = RedisConfig::from_url(&url).unwrap();
        let ports: Vec<u16> = c.nodes.iter().map(|node| node.port).collect();
        assert_eq!(ports, [26379, 26380, 26379]);
        assert_eq!(
            (c.sentinel_master(), c.db(), c.is_cluster()),
            (Some("my/master"), 4, false)
        );
        assert_eq!(c.connect_timeout, Duration::from_millis(9));
        let shown = c.to_string();
        assert_eq!(
            shown,
            "redis+sentinel://app:<redacted>@s1:26379,s2:26380,[::1]:26379/my%2Fmaster/4"
        );
        assert!(!format!("{c:?}").contains(SECRET));
        let again = RedisConfig::from_url(&shown.replace("<redacted>", "x")).unwrap();
        assert_eq!(again.sentinel_master(), Some("my/master"));

        let sentinels = c.sentinel_infos().unwrap();
        assert_eq!(sentinels[1].0, "s2:26380");
        let (sentinel, server) = (
            sentinels[0].1.redis_settings(),
            c.master_info("10.1.2.3", 6390),
        );
        let expected = format!("sp{SECRET}");
        assert_eq!(
            (sentinel.username(), sentinel.password()),
            (None, Some(&*expected))
        );
        assert_eq!(sentinel.db(), 0, "a Sentinel has no databases");
        let server = server.unwrap();
        let expected = format!("pw{SECRET}");
        let settings = server.redis_settings();
        assert_eq!(settings.username(), Some("app"));
        assert_eq!((settings.password(), settings.db()), (Some(&*expected), 4));
        assert_eq!(server.addr().to_string(), "10.1.2.3:6390");
        let c = RedisConfig::from_url("rediss+sentinel://s/m").unwrap();
        assert!(
            c.is_tls()
                && c.sentinel_infos().unwrap()[0]
                    .1
                    .redis_settings()
                    .password()
                    .is_none()
        );
        assert_eq!(c.to_string(), "rediss+sentinel://s:26379/m/0");

        for (url, says) in [
            ("redis+sentinel://s1".to_owned(), "names the master"),
            ("redis+sentinel://s1/".to_owned(), "names the master"),
            ("redis+sentinel://s1/m/x".to_owned(), "not a number"),
            (
                "redis://h/?sentinel_password=x".to_owned(),
                "is for the Sentinels",
            ),
            (
                "redis+cluster://h/?sentinel_password_file=/x".to_owned(),
                "is for the Sentinels",
            ),
            (
                "redis+sentinel://s/m?sentinel_password=x&sentinel_password_file=/x".to_owned(),
                "give one",
            ),
            (format!("redis+sentinel://:{SECRET}@s:x/m"), "port"),
        ] {
            let error = RedisConfig::from_url(&url).unwrap_err();
            assert_eq!(error.kind(), crate::ErrorKind::InvalidUrl, "{url}");
            assert!(error.to_string().contains(says), "{url}: {error}");
            assert!(!error.to_string().contains(SECRET), "{url}: {error}");
        }
    }

    /// `redis+unix://`: the socket's path (escapes decoded, shown escaped), the database as the
    /// `db` parameter (only there), the credentials as anywhere.
    #[test]
    fn unix_socket_urls() {
        let url = format!("redis+unix://app:pw{SECRET}@/run/redis%20x/redis.sock?db=3");
        let c = RedisConfig::from_url(&url).unwrap();
        assert_eq!(
            (c.socket.as_deref(), c.db()),
            (Some("/run/redis x/redis.sock"), 3)
        );
        assert!(c.nodes.is_empty() && !c.is_cluster() && !c.is_tls());
        let shown = c.to_string();
        assert_eq!(
            shown,
            "redis+unix://app:<redacted>@/run/redis%20x/redis.sock?db=3"
        );
        assert!(!format!("{c:?}").contains(SECRET));
        let again = RedisConfig::from_url(&shown.replace("<redacted>", "x")).unwrap();
        assert_eq!((again.socket, again.db), (c.socket.clone(), 3));
        let info = &c.connection_infos().unwrap()[0];
        let socket = std::path::PathBuf::from("/run/redis x/redis.sock");
        assert_eq!(info.addr(), &redis::ConnectionAddr::Unix(socket));
        let expected = format!("pw{SECRET}");
        let settings = info.redis_settings();
        assert_eq!(
            (settings.username(), settings.password()),
            (Some("app"), Some(&*expected))
        );
        assert_eq!(settings.db(), 3);
        let c = RedisConfig::from_url("redis+unix:///tmp/r.sock").unwrap();
        assert_eq!(
            (c.db(), c.to_string().as_str()),
            (0, "redis+unix:///tmp/r.sock?db=0")
        );

        for (url, says) in [
            ("redis+unix://", "absolute path"),
            ("redis+unix://relative.sock", "absolute path"),
            ("redis+unix:///r.sock?db=x", "not a number"),
            ("redis+unix:///r.sock?db=-1", "not a number"),
            ("redis://h/?db=2", "is for a `redis+unix://` URL"),
            ("redis+unix:///r.sock?tls_ca_file=/x", "needs TLS"),
        ] {
            let error = RedisConfig::from_url(url).unwrap_err();
            assert_eq!(error.kind(), crate::ErrorKind::InvalidUrl, "{url}");
            assert!(error.to_string().contains(says), "{url}: {error}");
        }
    }

    /// `password_file`: the file's text without its line ending, never shown; refused beside
    /// a password in the URL, and when missing, empty or not text, the errors naming the
    /// parameter and never the file's content.
    #[test]
    fn a_password_file_gives_the_password() {
        let dir = std::env::temp_dir().join(format!("namestore-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, content: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, content).unwrap();
            path.display().to_string()
        };
        for (content, read) in [
            (format!("p@ss {SECRET}\n"), format!("p@ss {SECRET}")),
            (format!("{SECRET}\r\n"), SECRET.to_owned()),
            (format!("{SECRET}\n\n"), format!("{SECRET}\n")),
            (format!(" {SECRET} "), format!(" {SECRET} ")),
        ] {
            let path = file("given", content.as_bytes());
            let config =
                RedisConfig::from_url(&format!("redis://app@h/?password_file={path}")).unwrap();
            assert_eq!(config.password.as_deref(), Some(read.as_str()));
            assert_eq!(config.username(), Some("app"));
            assert_eq!(config.password_file(), Some((path.as_str(), read.as_str())));
            assert!(!format!("{config:?}{config}").contains(SECRET));
            let url = format!("redis+sentinel://s/m?sentinel_password_file={path}");
            let config = RedisConfig::from_url(&url).unwrap();
            let sentinel = config.sentinel().unwrap();
            assert_eq!(sentinel.password.as_deref(), Some(read.as_str()));
            assert_eq!(sentinel.password_file.as_deref(), Some(path.as_str()));
            assert_eq!(
                (config.password.as_deref(), config.password_file()),
                (None, None)
            );
        }

        let given = file("both", SECRET.as_bytes());
        let empty = file("empty", b"\n");
        let binary = file("binary", &[0xff, 0xfe, b'x']);
        for (url, says) in [
            (
                format!("redis://:pw@h/?password_file={given}"),
                "gives a password and",
            ),
            (
                format!("redis://h/?password_file={given}&password_file={given}"),
                "twice",
            ),
            (
                format!("redis://h/?password_file={}/missing", dir.display()),
                "cannot read",
            ),
            (format!("redis://h/?password_file={empty}"), "no password"),
            (format!("redis://h/?password_file={binary}"), "not UTF-8"),
            (
                format!("redis+sentinel://h/m?sentinel_password_file={empty}"),
                "no password",
            ),
        ] {
            let error = RedisConfig::from_url(&url).unwrap_err();
            assert_eq!(error.kind(), crate::ErrorKind::InvalidUrl, "{url}");
            let text = error.to_string();
            assert!(
                text.contains(says) && text.contains("password"),
                "{url}: {text}"
            );
            assert!(!text.contains(SECRET), "{url}: {text}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
