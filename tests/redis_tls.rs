//! The conformance suite on the Redis driver over TLS (`rediss://`), against real
//! `redis-server` processes with a certificate from a private CA made here with `openssl`.
#![cfg(feature = "redis")]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use namestore::conformance::{Harness, Time};
use namestore::drivers::redis::{RedisConfig, RedisDriver};

mod support;

/// A CA and a server certificate for 127.0.0.1, made once per run.
fn certificates() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("namestore-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        let steps: [&[&str]; 3] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=namestore test CA",
            ],
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        ];
        for args in steps {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("openssl (apt-get install openssl)");
            assert!(status.success(), "openssl {args:?} failed");
        }
        dir
    })
}

/// Starts a TLS-only `redis-server` with the test certificate; returns its port.
fn start_tls_server(dir: &std::path::Path) -> u16 {
    let port = support::free_port();
    support::start_server(
        port,
        &format!(
            "--port 0 --tls-port {port} --tls-cert-file {d}/server.crt --tls-key-file {d}/server.key \
             --tls-ca-cert-file {d}/ca.crt --tls-auth-clients no",
            d = dir.display()
        ),
    );
    port
}

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
    let error = ns.get(&"k".to_owned()).await.unwrap_err();
    assert!(
        matches!(
            error.kind(),
            namestore::ErrorKind::Unavailable | namestore::ErrorKind::Backend
        ),
        "{error:?}"
    );
}
