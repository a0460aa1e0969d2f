//! The Redis driver on a Redis Cluster over TLS (`rediss+cluster://`): three primaries that
//! speak TLS only, to clients and to each other (`tls-cluster yes`), as managed clusters with
//! encryption in transit do, with a certificate from a private CA made here with `openssl`.
//! The conformance suite (a cluster a test), and every kind of call without the hash tag.
//! Needs `redis-server` and `redis-cli`; they are installed when missing.
#![cfg(feature = "redis")]

use std::time::Duration;

use futures_util::TryStreamExt;
use namestore::conformance::{Harness, Time};
use namestore::drivers::redis::{RedisConfig, RedisDriver};
use namestore::rate_limit::RateLimiter;
use namestore::{AnyDriver, Driver, ErrorKind, Namespace};

mod support;

/// The conformance suite with the namespace hash tag, as on the plain cluster.
fn harness() -> Harness<RedisDriver> {
    let url = support::start_tls_cluster();
    let ca = support::certificates().join("ca.crt");
    let driver = RedisDriver::from_url(&format!(
        "{url}?hash_tag=1&response_timeout_ms=30000&tls_ca_file={}",
        ca.display()
    ))
    .unwrap();
    Harness::new(driver, Time::Real)
        .with_real_ttl(Duration::from_secs(2))
        .with_stored_entries(move |_, _| stored_keys(&url))
}

namestore::conformance_tests!(harness());

/// Keys the cluster's nodes hold, expired ones not reclaimed yet included (`redis-cli
/// --tls DBSIZE` on each).
fn stored_keys(url: &str) -> usize {
    let ca = support::certificates().join("ca.crt");
    support::nodes(url)
        .iter()
        .map(|node| {
            let port = node.trim_end_matches('/').rsplit(':').next().unwrap();
            let out = std::process::Command::new("redis-cli")
                .args(["--tls", "--cacert"])
                .arg(&ca)
                .args(["-h", "127.0.0.1", "-p", port, "DBSIZE"])
                .output()
                .unwrap();
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .parse::<usize>()
                .unwrap()
        })
        .sum()
}

/// Every kind of call on `ns`, whose keys spread over the cluster's slots (no hash tag): the
/// batches are split by slot, the listings walk every primary, each over its own TLS
/// connection.
async fn every_kind_of_call(ns: &Namespace<String, AnyDriver>) {
    let key = |k: &str| k.to_owned();
    ns.set(&key("a"), "1", None).await.unwrap();
    assert_eq!(ns.get(&key("a")).await.unwrap().as_deref(), Some(&b"1"[..]));
    let many: Vec<String> = (0..100).map(|i| format!("k{i:03}")).collect();
    ns.mset(
        many.iter().map(|k| (k.clone(), k.clone())),
        Some(Duration::from_secs(600)),
    )
    .await
    .unwrap();
    let values = ns.mget(&many).await.unwrap();
    assert!(
        many.iter()
            .zip(&values)
            .all(|(k, v)| v.as_deref() == Some(k.as_bytes()))
    );
    let mut listed = ns.keys("k*").await.unwrap();
    listed.sort();
    assert_eq!(listed, many);
    assert_eq!(ns.incr(&key("n"), 41).await.unwrap(), 41);
    assert_eq!(ns.incr(&key("n"), 1).await.unwrap(), 42);
    assert!(ns.cas(&key("a"), b"1", "2", None).await.unwrap());
    assert!(ns.cad(&key("a"), b"2").await.unwrap());
    assert!(!ns.exists(&key("a")).await.unwrap());
    let found: Vec<_> = ns
        .driver()
        .namespaces()
        .try_filter(|info| futures_util::future::ready(info.name() == ns.name()))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].keys(), 101);
    let counts = Namespace::new(ns.driver().clone(), ns.name().root(), ns.name().domain()).unwrap();
    let limiter = RateLimiter::new(counts, 2, Duration::from_secs(60)).unwrap();
    let client = key("client");
    assert!(limiter.check(&client).await.unwrap().allowed);
    assert!(limiter.check(&client).await.unwrap().allowed);
    assert!(!limiter.check(&client).await.unwrap().allowed);
    assert_eq!(ns.clear().await.unwrap(), 102);
    assert!(ns.keys("*").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_tls_serves_every_kind_of_call() {
    let url = support::start_tls_cluster();
    let ca = support::certificates().join("ca.crt");
    // From a URL naming the CA…
    let store = namestore::open(&format!(
        "{url}?tls_ca_file={}&response_timeout_ms=30000",
        ca.display()
    ))
    .unwrap();
    every_kind_of_call(&store.namespace("app", "url").unwrap()).await;
    // …and with the CA given in code.
    let mut config = RedisConfig::from_url(&format!("{url}?response_timeout_ms=30000")).unwrap();
    assert!(config.is_tls() && config.is_cluster());
    config.tls_root_certificate = Some(std::fs::read(&ca).unwrap());
    let store = AnyDriver::new(RedisDriver::new(config).unwrap());
    every_kind_of_call(&store.namespace("app", "code").unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_whose_certificate_is_not_trusted_is_refused() {
    let url = support::start_tls_cluster();
    // The system's roots do not know the private CA: a retry meets the same certificate.
    let ns = namestore::open(&format!(
        "{url}?connect_timeout_ms=2000&response_timeout_ms=2000"
    ))
    .unwrap()
    .namespace::<String>("app", "tls")
    .unwrap();
    let error = ns.get(&"k".to_owned()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Backend, "{error:?}");
    assert!(error.to_string().contains("certificate"), "{error}");
    // Without TLS, the nodes answer nothing a client can read.
    let plain = url.replacen("rediss+cluster://", "redis+cluster://", 1);
    let ns = namestore::open(&format!(
        "{plain}?connect_timeout_ms=1000&response_timeout_ms=1000"
    ))
    .unwrap()
    .namespace::<String>("app", "plain")
    .unwrap();
    assert!(ns.get(&"k".to_owned()).await.is_err());
}

/// Nodes that require a client certificate (`tls-auth-clients yes`, Redis's default over
/// TLS): refused without one, a settings error; served with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_requires_client_certificates_gets_them() {
    let url = support::start_tls_cluster_requiring_clients();
    let dir = support::certificates();
    let base = format!(
        "{url}?tls_ca_file={}&connect_timeout_ms=5000&response_timeout_ms=30000",
        dir.join("ca.crt").display()
    );
    let without = namestore::open(&base)
        .unwrap()
        .namespace::<String>("app", "mtls")
        .unwrap();
    let error = without.get(&"k".to_owned()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Backend, "{error:?}");
    assert!(error.to_string().contains("client certificate"), "{error}");
    let with = namestore::open(&format!(
        "{base}&tls_cert_file={}&tls_key_file={}",
        dir.join("client.crt").display(),
        dir.join("client.key").display()
    ))
    .unwrap();
    every_kind_of_call(&with.namespace("app", "mtls").unwrap()).await;
}

/// `redis-cli` over TLS with the certificates in `dir`, on the node at `port`.
fn ask_node(port: &str, dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(support::tls_cli_args(dir))
        .args(["-h", "127.0.0.1", "-p", port])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Certificates renewed on disk are used when the handle connects again, on a cluster too:
/// every node moves to a new CA while it runs (`CONFIG SET` of its TLS files, for the
/// connections made after) and drops its clients, the files the URL named are replaced, and
/// the same handle's calls succeed again once it has connected anew. Before, the files were
/// read once, when the URL was, and every connection after the renewal failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_certificate_files_are_read_when_the_cluster_is_connected_again() {
    let url = support::start_tls_cluster_requiring_clients();
    let (old, new) = (support::certificates(), support::other_certificates());
    let files = support::scratch_dir("cluster-tls-renewed");
    for name in ["ca.crt", "client.crt", "client.key"] {
        std::fs::copy(old.join(name), files.join(name)).unwrap();
    }
    let ns = namestore::open(&format!(
        "{url}?tls_ca_file={f}/ca.crt&tls_cert_file={f}/client.crt&tls_key_file={f}/client.key\
         &connect_timeout_ms=2000&response_timeout_ms=5000",
        f = files.display()
    ))
    .unwrap()
    .namespace::<String>("app", "renewed")
    .unwrap();
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    ns.mset(keys.iter().map(|k| (k, "before")), None)
        .await
        .unwrap();

    let ports: Vec<String> = url
        .split_once("://")
        .unwrap()
        .1
        .split(',')
        .map(|node| node.rsplit(':').next().unwrap().to_owned())
        .collect();
    let renew = |from: &std::path::Path, to: &std::path::Path| {
        for port in &ports {
            let set = ask_node(
                port,
                from,
                &[
                    "CONFIG",
                    "SET",
                    "tls-ca-cert-file",
                    &to.join("ca.crt").display().to_string(),
                    "tls-cert-file",
                    &to.join("server.crt").display().to_string(),
                    "tls-key-file",
                    &to.join("server.key").display().to_string(),
                ],
            );
            assert!(set.contains("OK"), "CONFIG SET on {port}: {set}");
        }
        for name in ["ca.crt", "client.crt", "client.key"] {
            let staged = files.join(format!("{name}.new"));
            std::fs::copy(to.join(name), &staged).unwrap();
            std::fs::rename(&staged, files.join(name)).unwrap();
        }
        for port in &ports {
            ask_node(port, to, &["CLIENT", "KILL", "TYPE", "normal"]);
        }
    };

    // A call that may be sent again (`mset`).
    renew(old, new);
    let written = support::until_ok(|| ns.mset(keys.iter().map(|k| (k, "after")), None)).await;
    assert_eq!(written, Ok(()), "the renewed certificates were not used");
    // And one sent once at most (`incr`, checked with a `PING` first on a quiet link).
    renew(new, old);
    let n = "n".to_owned();
    let counted = support::until_ok(|| ns.incr(&n, 1)).await;
    assert!(
        counted.is_ok(),
        "renewed again, not used by incr: {counted:?}"
    );
    let read = ns.mget(&keys).await.unwrap();
    assert!(read.iter().all(|v| v.as_deref() == Some(&b"after"[..])));
}
