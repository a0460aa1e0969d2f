//! The conformance suite on the Redis driver over TLS (`rediss://`), against real
//! `redis-server` processes with a certificate from a private CA made here with `openssl`.
#![cfg(feature = "redis")]

use namestore::conformance::{Harness, Time};
use namestore::drivers::redis::{RedisConfig, RedisDriver};

mod support;

use support::{certificates, start_tls_server};

fn harness() -> Harness<RedisDriver> {
    let dir = certificates();
    let port = start_tls_server(dir);
    let url = format!("rediss://127.0.0.1:{port}/0?response_timeout_ms=30000");
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    let mut config = RedisConfig::from_url(&url).unwrap();
    config.tls_root_certificate = Some(ca.clone());
    let driver = RedisDriver::new(config).unwrap();
    // TLS handshakes on a loaded 2-core machine are slow: give keys time to be checked
    // before they expire.
    Harness::new(driver, Time::Real)
        .with_real_ttl(std::time::Duration::from_secs(2))
        .with_stored_entries(move |_, _| {
            // Keys the server holds, expired ones it has not reclaimed yet included; asked over
            // TLS from a thread of its own, outside the test's runtime.
            let (url, ca) = (url.clone(), ca.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let certificates = redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(ca),
                    };
                    let client = redis::Client::build_with_tls(url.as_str(), certificates).unwrap();
                    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
                    redis::cmd("DBSIZE")
                        .query_async::<usize>(&mut connection)
                        .await
                        .unwrap()
                })
            })
            .join()
            .unwrap()
        })
}

namestore::conformance_tests!(harness());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused() {
    let dir = certificates();
    let port = start_tls_server(dir);
    // The system's roots do not know the private CA.
    let url =
        format!("rediss://127.0.0.1:{port}/0?connect_timeout_ms=1000&response_timeout_ms=1000");
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "tls")
        .unwrap();
    // A retry would meet the same certificate: the settings must change, so not Unavailable
    // (which tells a caller that a retry may succeed).
    let error = ns.get(&"k".to_owned()).await.unwrap_err();
    assert_eq!(error.kind(), namestore::ErrorKind::Backend, "{error:?}");
    assert!(error.to_string().contains("certificate"), "{error}");
}

/// `rediss://` to a port where the server speaks plain text: the server reads the handshake
/// as the start of a command and waits for the rest, so the connection times out rather than
/// fails; the error says what a timeout alone would not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_a_plain_text_port_says_so() {
    let url = support::start_server(support::free_port(), "");
    let tls = url.replacen("redis://", "rediss://", 1);
    let ns = RedisDriver::from_url(&format!("{tls}?connect_timeout_ms=500"))
        .unwrap()
        .namespace::<String>("app", "tls")
        .unwrap();
    let error = ns.get(&"k".to_owned()).await.unwrap_err();
    assert_eq!(error.kind(), namestore::ErrorKind::Unavailable, "{error:?}");
    assert!(
        error.to_string().contains("`redis://` reaches it"),
        "{error}"
    );
    // The same server, as the hint says.
    let plain = RedisDriver::from_url(&url).unwrap();
    let ns = plain.namespace::<String>("app", "tls").unwrap();
    assert_eq!(ns.get(&"k".to_owned()).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_named_in_the_url_is_trusted() {
    let dir = certificates();
    let port = start_tls_server(dir);
    let ca = dir.join("ca.crt");
    let url = format!(
        "rediss://127.0.0.1:{port}/0?tls_ca_file={}&response_timeout_ms=30000",
        ca.display()
    );
    let ns = namestore::open(&url)
        .unwrap()
        .namespace::<String>("app", "tls-url")
        .unwrap();
    ns.set(&"k".to_owned(), "v", None).await.unwrap();
    assert_eq!(
        ns.get(&"k".to_owned()).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );

    // A path holding `@` (a systemd instance's directory), through `open` and its
    // `telemetry` parameter too: the `@` is the path's, not the end of credentials.
    let instance = dir.join("redis@6380");
    std::fs::create_dir_all(&instance).unwrap();
    std::fs::copy(&ca, instance.join("ca.crt")).unwrap();
    for query in [
        format!("tls_ca_file={}/ca.crt", instance.display()),
        format!("tls_ca_file={}/ca.crt&telemetry=1", instance.display()),
        format!(
            "response_timeout_ms=30000&tls_ca_file={}/ca.crt&telemetry=1",
            instance.display()
        ),
    ] {
        let url = format!("rediss://127.0.0.1:{port}/0?{query}");
        let ns = namestore::open(&url)
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .namespace::<String>("app", "tls-url")
            .unwrap();
        let value = ns.get(&"k".to_owned()).await;
        assert_eq!(value.unwrap().as_deref(), Some(&b"v"[..]), "{url}");
    }

    for (bad, mentions) in [
        (
            format!("redis://127.0.0.1:{port}/0?tls_ca_file={}", ca.display()),
            "rediss://",
        ),
        (
            format!("rediss://127.0.0.1:{port}/0?tls_ca_file=/no/such/ca.pem"),
            "cannot read",
        ),
    ] {
        let error = namestore::open(&bad).unwrap_err();
        assert_eq!(error.kind(), namestore::ErrorKind::InvalidUrl, "{error}");
        assert!(error.to_string().contains(mentions), "{error}");
    }
}

/// A server that requires a client certificate (`tls-auth-clients yes`, Redis's default over
/// TLS): refused without one, a settings error; served with one, from the URL or from code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_requires_a_client_certificate_gets_one() {
    let dir = certificates();
    let port = support::start_tls_server_requiring_clients(dir);
    let ca = dir.join("ca.crt");
    let base = format!(
        "rediss://127.0.0.1:{port}/0?tls_ca_file={}&connect_timeout_ms=5000&response_timeout_ms=30000",
        ca.display()
    );
    let key = "k".to_owned();
    let without = namestore::open(&base)
        .unwrap()
        .namespace::<String>("app", "mtls")
        .unwrap();
    let error = without.get(&key).await.unwrap_err();
    // A retry presents no certificate again: the settings must change.
    assert_eq!(error.kind(), namestore::ErrorKind::Backend, "{error:?}");
    assert!(error.to_string().contains("certificate"), "{error}");

    let url = format!(
        "{base}&tls_cert_file={}&tls_key_file={}",
        dir.join("client.crt").display(),
        dir.join("client.key").display()
    );
    let with = namestore::open(&url)
        .unwrap()
        .namespace::<String>("app", "mtls")
        .unwrap();
    with.set(&key, "v", None).await.unwrap();
    assert_eq!(with.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
    // The key is never printed.
    let config = RedisConfig::from_url(&url).unwrap();
    let key_text = std::fs::read_to_string(dir.join("client.key")).unwrap();
    let secret_line = key_text.lines().nth(1).unwrap().to_owned();
    let secret_line = secret_line.as_str();
    assert!(!format!("{config:?}").contains(secret_line));
    assert!(format!("{config:?}").contains("<redacted>"));

    // From code.
    let mut config = RedisConfig::from_url(&base).unwrap();
    config.tls_client_certificate = Some(std::fs::read(dir.join("client.crt")).unwrap());
    config.tls_client_key = Some(key_text.clone().into_bytes());
    let in_code = RedisDriver::new(config)
        .unwrap()
        .namespace::<String>("app", "mtls")
        .unwrap();
    assert_eq!(in_code.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));

    // Half of the pair, a key that is no key, a certificate that is no certificate: refused
    // when the URL is parsed, without quoting the file.
    let cert = dir.join("client.crt").display().to_string();
    let client_key = dir.join("client.key").display().to_string();
    for (query, mentions) in [
        (format!("tls_cert_file={cert}"), "go together"),
        (format!("tls_key_file={client_key}"), "go together"),
        (
            format!("tls_cert_file={cert}&tls_key_file={cert}"),
            "no PEM private key",
        ),
        (
            format!("tls_cert_file={client_key}&tls_key_file={client_key}"),
            "no PEM certificate",
        ),
    ] {
        let error = namestore::open(&format!("{base}&{query}")).unwrap_err();
        assert_eq!(error.kind(), namestore::ErrorKind::InvalidUrl, "{error}");
        assert!(error.to_string().contains(mentions), "{query}: {error}");
        assert!(!error.to_string().contains(secret_line), "{error}");
    }
    // A certificate with another's key, and one of X.509 v1 (what `openssl x509 -req` makes
    // without an extension), which TLS here refuses: said when the URL is parsed, not as a
    // refused handshake at every call.
    let v1 = dir.join("client-v1.crt");
    let made = std::process::Command::new("openssl")
        .args([
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
        ])
        .args(["-CAcreateserial", "-days", "2", "-out"])
        .arg(&v1)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    let server_key = dir.join("server.key").display().to_string();
    for (query, mentions) in [
        (
            format!("tls_cert_file={cert}&tls_key_file={server_key}"),
            "does not belong",
        ),
        (
            format!("tls_cert_file={}&tls_key_file={client_key}", v1.display()),
            "version 1",
        ),
    ] {
        let error = namestore::open(&format!("{base}&{query}")).unwrap_err();
        assert_eq!(error.kind(), namestore::ErrorKind::InvalidUrl, "{error}");
        assert!(error.to_string().contains(mentions), "{query}: {error}");
    }
    let plain =
        format!("redis://127.0.0.1:{port}/0?tls_cert_file={cert}&tls_key_file={client_key}");
    let error = namestore::open(&plain).unwrap_err();
    assert!(error.to_string().contains("needs TLS"), "{error}");
}

/// Starts a TLS-only server on `port` with the certificates in `dir`, requiring clients to
/// present one its CA signed.
fn start_tls_server_on(port: u16, dir: &std::path::Path) {
    support::start_server(
        port,
        &format!(
            "--port 0 --tls-port {port} --tls-cert-file {d}/server.crt --tls-key-file \
             {d}/server.key --tls-ca-cert-file {d}/ca.crt --tls-auth-clients yes",
            d = dir.display()
        ),
    );
}

/// Stops the TLS-only server on `port`, whose certificates are in `dir` (`redis-cli` over TLS:
/// there is no plain-text port to send `SHUTDOWN` to).
fn stop_tls_server(port: u16, dir: &std::path::Path) {
    let _ = std::process::Command::new("redis-cli")
        .args(support::tls_cli_args(dir))
        .args(["-p", &port.to_string(), "SHUTDOWN", "NOSAVE"])
        .output();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Replaces `to` with `from` at once (a rename), as a renewal tool does.
fn replace(from: &std::path::Path, to: &std::path::Path) {
    let staged = to.with_extension("new");
    std::fs::copy(from, &staged).unwrap();
    std::fs::rename(&staged, to).unwrap();
}

/// Certificates renewed on disk are used at the next connection, without a restart: the
/// server moves to a new CA (and takes only client certificates it signed), the files the URL
/// named are replaced with the new CA, client certificate and key, and the same handle's
/// calls succeed again once it connects. Before, the files were read once, when the URL was:
/// every connection after the renewal failed (an unknown CA) until the process restarted.
/// A file caught half written is not used: the last certificates read whole are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_certificate_files_are_read_at_the_next_connection() {
    let (old, new) = (certificates(), support::other_certificates());
    let files = support::scratch_dir("tls-renewed");
    for name in ["ca.crt", "client.crt", "client.key"] {
        replace(&old.join(name), &files.join(name));
    }
    let port = support::free_port();
    start_tls_server_on(port, old);
    let url = format!(
        "rediss://127.0.0.1:{port}/0?tls_ca_file={f}/ca.crt&tls_cert_file={f}/client.crt\
         &tls_key_file={f}/client.key&connect_timeout_ms=2000&response_timeout_ms=5000",
        f = files.display()
    );
    let ns = namestore::open(&url)
        .unwrap()
        .namespace::<String>("app", "renewed")
        .unwrap();
    ns.set(&"before".to_owned(), "v", None).await.unwrap();

    // Served until it connects again: a call or two on the lost connection may fail.
    async fn served(ns: &namestore::Namespace<String>, key: &str) -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..20 {
            match ns.set(&key.to_owned(), "v", None).await {
                Ok(()) => return Ok(()),
                Err(error) => last = error.to_string(),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(last)
    }

    for name in ["ca.crt", "client.crt", "client.key"] {
        replace(&new.join(name), &files.join(name));
    }
    stop_tls_server(port, old);
    start_tls_server_on(port, new);
    served(&ns, "after")
        .await
        .expect("the renewed certificates were not used");

    // A renewal caught half way (the new certificate beside a key that is not its own, or a
    // key half written): the last certificates read whole are used.
    replace(&old.join("client.key"), &files.join("client.key"));
    stop_tls_server(port, new);
    start_tls_server_on(port, new);
    served(&ns, "half-renewed")
        .await
        .expect("a half-renewed pair was used instead of the last whole one");
    std::fs::write(
        files.join("client.key"),
        "-----BEGIN PRIVATE KEY-----\nMIIE",
    )
    .unwrap();
    stop_tls_server(port, new);
    start_tls_server_on(port, new);
    served(&ns, "half-written")
        .await
        .expect("a half-written key was used instead of the last whole one");
    stop_tls_server(port, new);
}
