//! The Redis driver's settings, parsed from a `redis://` URL or built in code.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use redis::{ConnectionInfo, IntoConnectionInfo};

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

const DEFAULT_PORT: u16 = 6379;

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
    /// Seed nodes (one for a standalone server).
    nodes: Vec<Node>,
    username: Option<String>,
    /// Never printed.
    password: Option<String>,
    db: i64,
    tls: bool,
    cluster: bool,
    /// Store a namespace's keys as `{root:domain}:key`, so Redis Cluster keeps the whole
    /// namespace in one slot: batches, scripts and listings stay on one node and `mset` stays
    /// atomic, at the price of one node carrying the namespace's whole load. Without it, keys
    /// spread over the cluster, batches are split by slot (atomic per slot only), and listings
    /// walk every primary. Default: off.
    pub hash_tag: bool,
    /// For `rediss://`: a CA certificate (PEM) to trust instead of the system's roots, for a
    /// server with a private CA. Default: none (the system's roots).
    pub tls_root_certificate: Option<Vec<u8>>,
    /// For TLS: the certificate (PEM, the chain from the client's certificate up) this client
    /// presents to a server that requires one (`tls-auth-clients yes`, Redis's default when it
    /// speaks TLS), with [`tls_client_key`](Self::tls_client_key); both or neither. Default:
    /// none. From a URL: `tls_cert_file=/path/client.crt`.
    pub tls_client_certificate: Option<Vec<u8>>,
    /// The private key (PEM) of [`tls_client_certificate`](Self::tls_client_certificate).
    /// Never printed. From a URL: `tls_key_file=/path/client.key`.
    pub tls_client_key: Option<Vec<u8>>,
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

/// Parses `host[:port]` or `[v6]:port`.
fn parse_node(text: &str) -> Result<Node> {
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
        None => DEFAULT_PORT,
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

/// The most bytes a `tls_ca_file` may hold: a bundle of every public root is about 200 KiB.
const MAX_CA_FILE: u64 = 16 << 20;

/// How long a CA file that is a pipe (a secrets agent's) may take to be written.
const CA_PIPE_WAIT: Duration = Duration::from_secs(10);

/// Reads the file the URL's parameter `name` names (a CA, a client certificate or key), at
/// most [`MAX_CA_FILE`] bytes, and checks it with `check`: a path to something endless
/// (`/dev/zero`, a pipe no one closes) must not read until memory runs out. A named pipe is
/// opened without waiting for a writer (one with none reads as empty: no certificate, rather
/// than a parse that never returns), and waited for [`CA_PIPE_WAIT`] at most.
fn read_tls_file(
    name: &str,
    path: &str,
    check: fn(&[u8]) -> std::result::Result<(), String>,
) -> Result<Vec<u8>> {
    use std::io::Read;
    let cannot_read = |e: std::io::Error| {
        Error::invalid_url(format!(
            "Redis parameter `{name}`: cannot read `{}`: {e}",
            crate::error::shorten(path)
        ))
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let mut file = options
        .open(path)
        .map_err(cannot_read)?
        .take(MAX_CA_FILE + 1);
    let mut pem = Vec::new();
    let started = std::time::Instant::now();
    loop {
        match file.read_to_end(&mut pem) {
            Ok(_) => break,
            // A pipe whose writer has not written yet.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if started.elapsed() > CA_PIPE_WAIT {
                    return Err(cannot_read(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("nothing more came in {CA_PIPE_WAIT:?}"),
                    )));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(cannot_read(e)),
        }
    }
    if pem.len() as u64 > MAX_CA_FILE {
        return Err(Error::invalid_url(format!(
            "Redis parameter `{name}`: `{}` holds more than {} MiB, more than any certificate \
             file",
            crate::error::shorten(path),
            MAX_CA_FILE >> 20
        )));
    }
    check(&pem).map_err(|why| {
        Error::invalid_url(format!(
            "Redis parameter `{name}`: `{}` holds {why}",
            crate::error::shorten(path)
        ))
    })?;
    Ok(pem)
}

/// Checks that `pem` holds a certificate chain, as a client presents it.
pub(crate) fn check_certificate_pem(pem: &[u8]) -> std::result::Result<(), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut certificates = 0;
    for certificate in CertificateDer::pem_slice_iter(pem) {
        certificate.map_err(pem_error)?;
        certificates += 1;
    }
    if certificates == 0 {
        return Err("no PEM certificate (`-----BEGIN CERTIFICATE-----`)".into());
    }
    Ok(())
}

/// Checks that `pem` holds a private key. Says what is wrong, never quoting the file: it is a
/// secret.
pub(crate) fn check_key_pem(pem: &[u8]) -> std::result::Result<(), String> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::{self, PemObject};
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(_) => Ok(()),
        Err(pem::Error::NoItemsFound) => {
            Err("no PEM private key (`-----BEGIN PRIVATE KEY-----`, RSA or EC)".into())
        }
        Err(_) => Err("a malformed PEM private key".into()),
    }
}

/// Checks that the client certificate `certificate` (a PEM chain) and the private key `key`
/// (PEM) make an identity rustls presents, as it does when it connects: the key is one it can
/// sign with and belongs to the certificate, which is X.509 v3 (rustls refuses v1, which
/// `openssl x509 -req` makes without an extension, where it failed as if the server's
/// certificate were at fault). Never quotes the key.
pub(crate) fn check_client_identity(
    certificate: &[u8],
    key: &[u8],
) -> std::result::Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(certificate)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| "a malformed PEM private key")?;
    let provider = rustls::crypto::ring::default_provider();
    match rustls::sign::CertifiedKey::from_der(chain, key, &provider) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => {
            Err("a private key that does not belong to the client certificate".into())
        }
        Err(error) if error.to_string().contains("UnsupportedCertVersion") => Err(
            "a client certificate of X.509 version 1, which TLS here refuses: issue it as \
             version 3 (with any extension, such as `extendedKeyUsage=clientAuth`)"
                .into(),
        ),
        Err(rustls::Error::General(_)) => {
            Err("a private key of a kind TLS here cannot sign with".into())
        }
        Err(error) => Err(format!("a client certificate TLS cannot use ({error})")),
    }
}

/// What is wrong with a PEM file, never quoting it.
fn pem_error(error: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { .. } => "a PEM section without its END line".into(),
        Error::IllegalSectionStart { .. } => "a malformed PEM BEGIN line".into(),
        Error::Base64Decode(_) => "a PEM section that is not valid base64".into(),
        _ => "a malformed PEM file".into(),
    }
}

/// Checks that `pem` holds at least one certificate and that each is one rustls takes as a
/// trust anchor, as the client library does when it connects: a file holding none (the wrong
/// file, a key, a certificate in DER) made every connection fail as if the server's
/// certificate were at fault, and a malformed one failed without its reason. Says what is
/// wrong, never quoting the file.
pub(crate) fn check_ca_pem(pem: &[u8]) -> std::result::Result<(), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem) {
        let certificate = certificate.map_err(pem_error)?;
        roots
            .add(certificate)
            .map_err(|error| format!("a certificate that is not a usable CA ({error})"))?;
    }
    if roots.is_empty() {
        return Err(
            "no PEM certificate (`-----BEGIN CERTIFICATE-----`): give the certificate \
                    of the CA that signed the server's, in PEM"
                .into(),
        );
    }
    Ok(())
}

/// The parameters a Redis URL's query may name.
pub(crate) const PARAMETERS: [&str; 6] = [
    "connect_timeout_ms",
    "response_timeout_ms",
    "hash_tag",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
];

impl RedisConfig {
    /// Parses a `redis://`, `rediss://`, `redis+cluster://` or `rediss+cluster://` URL.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) for another scheme, a missing
    /// host, a bad port or database, an unknown parameter or a bad value; the message never
    /// repeats the user or password.
    pub fn from_url(url: &str) -> Result<Self> {
        let (cluster, tls, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
            (true, false, rest)
        } else if let Some(rest) = url.strip_prefix("rediss+cluster://") {
            (true, true, rest)
        } else if let Some(rest) = url.strip_prefix("redis://") {
            (false, false, rest)
        } else if let Some(rest) = url.strip_prefix("rediss://") {
            (false, true, rest)
        } else {
            return Err(Error::invalid_url(
                "a Redis URL starts with `redis://`, `rediss://`, `redis+cluster://` or \
                 `rediss+cluster://`",
            ));
        };
        // A password may hold `?`, `#`, `/` and `@`, and a parameter's value `@`: each reading
        // in turn, the likelier first; the last one's error never quotes the credentials.
        let readings = crate::query::credentials_end(rest, &PARAMETERS);
        let mut parsed = Err(Error::invalid_url("a Redis URL names a host"));
        for &end in &readings {
            parsed = Self::parse(cluster, tls, rest, end);
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
    fn parse(cluster: bool, tls: bool, rest: &str, end: Option<usize>) -> Result<Self> {
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
        let (hosts, path) = address.split_once('/').unwrap_or((address, ""));
        let nodes = hosts
            .split(',')
            .map(parse_node)
            .collect::<Result<Vec<_>>>()?;
        if nodes.len() > 1 && !cluster {
            return Err(Error::invalid_url(
                "several hosts need `redis+cluster://`; a standalone URL names one",
            ));
        }
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
            username,
            password,
            db,
            tls,
            cluster,
            hash_tag: false,
            tls_root_certificate: None,
            tls_client_certificate: None,
            tls_client_key: None,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
        };
        for parameter in crate::query::parameters(query, "Redis")? {
            config.parameter(&parameter.name, &parameter.value)?;
        }
        match (&config.tls_client_certificate, &config.tls_client_key) {
            (Some(certificate), Some(key)) => {
                check_client_identity(certificate, key).map_err(|why| {
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
        config.connection_infos()?;
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
                self.tls_root_certificate = Some(read_tls_file(name, value, check_ca_pem)?);
            }
            "tls_cert_file" | "tls_key_file" => {
                if !self.tls {
                    return Err(Error::invalid_url(format!(
                        "Redis parameter `{name}` needs TLS: a `rediss://` or \
                         `rediss+cluster://` URL"
                    )));
                }
                if name == "tls_cert_file" {
                    let pem = read_tls_file(name, value, check_certificate_pem)?;
                    self.tls_client_certificate = Some(pem);
                } else {
                    self.tls_client_key = Some(read_tls_file(name, value, check_key_pem)?);
                }
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

    /// redis-rs's connection settings, one per seed node, credentials included.
    pub(crate) fn connection_infos(&self) -> Result<Vec<ConnectionInfo>> {
        let scheme = if self.tls { "rediss" } else { "redis" };
        self.nodes
            .iter()
            .map(|node| {
                let info = format!("{scheme}://{node}")
                    .into_connection_info()
                    .map_err(|_| Error::invalid_url("malformed Redis host or port"))?;
                let mut redis = info.redis_settings().clone().set_db(self.db);
                if let Some(user) = &self.username {
                    redis = redis.set_username(user);
                }
                if let Some(password) = &self.password {
                    redis = redis.set_password(password);
                }
                Ok(info.set_redis_settings(redis))
            })
            .collect()
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
        let scheme = match (self.cluster, self.tls) {
            (true, true) => TLS_CLUSTER_SCHEME,
            (true, false) => CLUSTER_SCHEME,
            (false, true) => TLS_SCHEME,
            (false, false) => SCHEME,
        };
        let credentials = match (&self.username, &self.password) {
            (None, None) => String::new(),
            (Some(user), None) => format!("{user}@"),
            (user, Some(_)) => format!("{}:<redacted>@", user.as_deref().unwrap_or("")),
        };
        let hosts: Vec<String> = self.nodes.iter().map(Node::to_string).collect();
        write!(f, "{scheme}://{credentials}{}/{}", hosts.join(","), self.db)
    }
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
    fn an_endless_ca_file_is_refused_not_read_to_the_end() {
        let error = RedisConfig::from_url("rediss://h/0?tls_ca_file=/dev/zero").unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::InvalidUrl);
        assert!(error.to_string().contains("more than 16 MiB"), "{error}");
    }

    /// A file that holds no usable CA certificate is refused when the URL is parsed, saying
    /// why and quoting nothing of it; every connection failed as if the server's certificate
    /// were at fault before.
    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let dir = std::env::temp_dir().join(format!("namestore-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = concat!(
            "-----BEGIN PRIVATE KEY-----\n",
            "MC4CAQAwBQYDK2VwBCIEIB2q6v3cXc0N1Yp9dLz5r1vJtD+Q9yQ2d5xk0pYwq1Ld\n",
            "-----END PRIVATE KEY-----\n",
        );
        let cases: [(&str, &[u8], &str); 6] = [
            (
                "text",
                b"root:x:0:0:root:/root:/bin/bash\n",
                "no PEM certificate",
            ),
            ("key", key.as_bytes(), "no PEM certificate"),
            (
                "der",
                &[0x30, 0x82, 0x01, 0x0a, 0x02, 0x82],
                "no PEM certificate",
            ),
            ("empty", b"", "no PEM certificate"),
            (
                "cut",
                b"-----BEGIN CERTIFICATE-----\nMIIB\n",
                "without its END line",
            ),
            (
                "garbage",
                concat!(
                    "-----BEGIN CERTIFICATE-----\n",
                    "bm90IGEgY2VydGlmaWNhdGU=\n",
                    "-----END CERTIFICATE-----\n",
                )
                .as_bytes(),
                "not a usable CA",
            ),
        ];
        for (name, bytes, why) in cases {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            for scheme in ["rediss", "rediss+cluster"] {
                let url = format!("{scheme}://h:1/?tls_ca_file={}", path.display());
                let error = RedisConfig::from_url(&url).unwrap_err();
                assert_eq!(error.kind(), crate::ErrorKind::InvalidUrl, "{name}");
                assert!(error.to_string().contains(why), "{name}: {error}");
                assert!(!error.to_string().contains("root:x"), "{error}");
            }
            // Set in code, it is refused when the driver is made.
            let mut config = RedisConfig::from_url("rediss://h:1/").unwrap();
            config.tls_root_certificate = Some(bytes.to_vec());
            let error = super::super::RedisDriver::new(config).unwrap_err();
            assert_eq!(error.kind(), crate::ErrorKind::InvalidUrl, "{name}");
            assert!(error.to_string().contains(why), "{name}: {error}");
        }
        // A certificate for a connection without TLS would be ignored: refused.
        let mut config = RedisConfig::from_url("redis+cluster://h:1").unwrap();
        config.tls_root_certificate = Some(b"whatever".to_vec());
        let error = super::super::RedisDriver::new(config).unwrap_err();
        assert!(error.to_string().contains("without TLS"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A CA file that is a named pipe (a secrets agent's) is read from its writer, and one
    /// without a writer reads as empty: the URL's parse no longer waits for ever in `open`.
    #[cfg(unix)]
    #[test]
    fn a_ca_file_that_is_a_pipe_is_read_without_waiting_for_ever() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("namestore-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pipe = dir.join("ca.pem");
        let made = std::process::Command::new("mkfifo")
            .arg(&pipe)
            .status()
            .unwrap();
        assert!(made.success());
        let url = format!("rediss://h:1/?tls_ca_file={}", pipe.display());
        let started = std::time::Instant::now();
        let error = RedisConfig::from_url(&url).unwrap_err();
        assert!(error.to_string().contains("no PEM certificate"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // A writer waiting for a reader, which writes a while after the reader came.
        let writer = {
            let pipe = pipe.clone();
            std::thread::spawn(move || {
                let mut file = std::fs::OpenOptions::new().write(true).open(pipe).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                file.write_all(b"-----BEGIN CERTIFICATE-----\nMIIB\n")
                    .unwrap();
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        let error = RedisConfig::from_url(&url).unwrap_err();
        assert!(
            error.to_string().contains("without its END line"),
            "{error}"
        );
        writer.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
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
}
