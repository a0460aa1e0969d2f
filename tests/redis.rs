//! The conformance suite on the Redis driver, against real `redis-server` processes started
//! here on free loopback ports (one per test, so each test's `DBSIZE` counts only its keys).
//! Needs `redis-server` on the PATH (`apt-get install redis-server`); `.ci/run` installs it.
#![cfg(feature = "redis")]

mod support;

use namestore::conformance::{Harness, Time};
use namestore::drivers::redis::RedisDriver;

fn harness() -> Harness<RedisDriver> {
    let url = support::start_server(support::free_port(), "");
    let driver = RedisDriver::from_url(&format!("{url}?response_timeout_ms=30000")).unwrap();
    // Keys the server holds, expired ones it has not reclaimed yet included.
    Harness::new(driver, Time::Real).with_stored_entries(move |_, _| support::stored_keys(&url))
}

namestore::conformance_tests!(harness());

/// `namespaces` counts only keys namestore could have written: other keys in the same
/// database (another application's, or malformed ones) are left out, in both key layouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_skip_keys_namestore_did_not_write() {
    use futures_util::TryStreamExt;
    use namestore::Driver;

    let url = support::start_server(support::free_port(), "");
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    for key in [
        "plain",
        "only:one",
        "bad root:d:k",
        "app:dom:",
        "a*b:dom:k",
        "{app:tagged}:k",
        "{app:tagged}",
        "app:dom:ok",
        "app:dom:also:ok",
    ] {
        redis::cmd("SET")
            .arg(key)
            .arg("v")
            .query::<()>(&mut raw)
            .unwrap();
    }
    redis::cmd("SET")
        .arg(&b"app:dom:\xff"[..])
        .arg("v")
        .query::<()>(&mut raw)
        .unwrap();

    let listed = |url: String| async move {
        let driver = RedisDriver::from_url(&url).unwrap();
        let infos: Vec<namestore::NamespaceInfo> = driver.namespaces().try_collect().await.unwrap();
        infos
            .iter()
            .map(|i| (i.name().to_string(), i.keys()))
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(url.clone()).await, [("app:dom".to_owned(), 2)]);
    assert_eq!(
        listed(format!("{url}?hash_tag=1")).await,
        [("app:tagged".to_owned(), 1)]
    );
}
