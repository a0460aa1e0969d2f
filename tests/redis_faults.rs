//! The Redis driver under server faults: an unreachable server, a restart, and secrets.
//! Needs `redis-server` on the PATH (`apt-get install redis-server`); `.ci/run` installs it.
#![cfg(feature = "redis")]

use std::time::{Duration, Instant};

use namestore::ErrorKind;
use namestore::drivers::redis::{RedisConfig, RedisDriver};
use support::{free_port, start_server, stop_server};

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_within_the_bound() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/0?connect_timeout_ms=300&response_timeout_ms=300");
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "down")
        .unwrap();
    let started = Instant::now();
    let error = ns.get(&"k".to_owned()).await.unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
        "expected unavailable or timeout, got {error:?}"
    );
    // The bound is connect + response timeouts; allow scheduling slack.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_handle_works_again_after_a_restart() {
    let port = free_port();
    start_server(port, "");
    let url = format!("redis://127.0.0.1:{port}/0?connect_timeout_ms=500&response_timeout_ms=500");
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "restart")
        .unwrap();
    let key = "k".to_owned();
    ns.set(&key, "before", None).await.unwrap();

    stop_server(port);
    let error = ns.get(&key).await.unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
        "{error:?}"
    );

    start_server(port, "");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match ns.set(&key, "after", None).await {
            Ok(()) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "the handle did not reconnect: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ns.get(&key).await.unwrap().as_deref(), Some(&b"after"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_never_appears_in_errors_or_debug() {
    let port = free_port();
    start_server(port, "--requirepass hunter2secret");
    let wrong =
        format!("redis://:wrongpass-hunter2secret@127.0.0.1:{port}/0?connect_timeout_ms=500");
    let driver = RedisDriver::from_url(&wrong).unwrap();
    for shown in [format!("{driver:?}"), format!("{:?}", driver.config())] {
        assert!(!shown.contains("hunter2secret"), "{shown}");
    }
    let error = driver
        .namespace::<String>("app", "auth")
        .unwrap()
        .get(&"k".to_owned())
        .await
        .unwrap_err();
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains("hunter2secret"), "{shown}");
    }
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        assert!(!cause.to_string().contains("hunter2secret"), "{cause}");
        source = cause.source();
    }

    let right = format!("redis://:hunter2secret@127.0.0.1:{port}/0");
    let ns = namestore::open(&right)
        .unwrap()
        .namespace::<String>("app", "auth")
        .unwrap();
    ns.set(&"k".to_owned(), "v", None).await.unwrap();
    assert!(!format!("{:?}", RedisConfig::from_url(&right).unwrap()).contains("hunter2secret"));
    for bad in [
        "redis://:hunter2secret@",
        "redis://:hunter2secret@host:notaport",
        "redis://u:hunter2secret@h/x?bogus=1",
    ] {
        let error = namestore::open(bad).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidUrl, "{bad}");
        assert!(!error.to_string().contains("hunter2secret"), "{error}");
    }
}
