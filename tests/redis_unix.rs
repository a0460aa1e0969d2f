//! The Redis driver through a server's Unix socket (`redis+unix://`), against a real
//! `redis-server` started here with `--unixsocket`: the conformance suite, and the URL's
//! credentials and database reaching the server through the socket.
#![cfg(all(feature = "redis", unix))]

mod support;

use namestore::ErrorKind;
use namestore::conformance::{Harness, Time};
use namestore::drivers::redis::RedisDriver;

/// A server listening on a loopback port and on a socket: the port, and the socket's path.
fn server_with_a_socket(extra: &str) -> (u16, std::path::PathBuf) {
    let port = support::free_port();
    let socket = support::scratch_dir("redis-sockets").join(format!("{port}.sock"));
    let listen = format!("--unixsocket {} --unixsocketperm 700", socket.display());
    support::start_server(port, &format!("{listen} {extra}"));
    // The server listens on its port first, on its socket a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "no socket at {}",
            socket.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (port, socket)
}

fn harness() -> Harness<RedisDriver> {
    let (port, socket) = server_with_a_socket("");
    let url = format!(
        "redis+unix://{}?response_timeout_ms=30000",
        socket.display()
    );
    let driver = RedisDriver::from_url(&url).unwrap();
    let server = format!("redis://127.0.0.1:{port}/0");
    // Keys the server holds, expired ones it has not reclaimed yet included.
    Harness::new(driver, Time::Real).with_stored_entries(move |_, _| support::stored_keys(&server))
}

namestore::conformance_tests!(harness());

/// The URL's user, password and database go through the socket: a key written lands in that
/// database; a wrong password is refused as a backend error, a socket that is not there is
/// unavailable and names its path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_database_through_the_socket() {
    let (port, socket) = server_with_a_socket("--requirepass 'p@ss?#%'");
    let url = format!("redis+unix://:p%40ss%3F%23%25@{}?db=5", socket.display());
    let store = RedisDriver::from_url(&url).unwrap();
    let ns = store.namespace::<String>("app", "socket").unwrap();
    ns.set(&"k".to_owned(), "v", None).await.unwrap();
    let mut raw = redis::Client::open(format!("redis://:p%40ss%3F%23%25@127.0.0.1:{port}/5"))
        .unwrap()
        .get_connection()
        .unwrap();
    let stored: Option<String> = redis::cmd("GET")
        .arg("app:socket:k")
        .query(&mut raw)
        .unwrap();
    assert_eq!(stored.as_deref(), Some("v"));

    let read = |url: String| async move {
        let store = RedisDriver::from_url(&url).unwrap();
        let ns = store.namespace::<String>("app", "socket").unwrap();
        ns.get(&"k".to_owned()).await.unwrap_err()
    };
    let error = read(url.replace("p%40ss", "nope")).await;
    assert_eq!(error.kind(), ErrorKind::Backend, "{error}");
    assert!(!error.to_string().contains("p@ss"), "{error}");

    let missing = socket.with_file_name("missing.sock");
    let error = read(format!("redis+unix://{}", missing.display())).await;
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
}
