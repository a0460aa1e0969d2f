//! The conformance suite on the Redis driver, against real `redis-server` processes started
//! here on free loopback ports (one per test, so each test's `DBSIZE` counts only its keys).
//! Needs `redis-server` on the PATH (`apt-get install redis-server`); `.ci/run` installs it.
#![cfg(feature = "redis")]

#[path = "support/other_types.rs"]
mod other_types;
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

/// SPEC 11.1 across clients: a JSON namespace is plain JSON to `redis-cli` and to
/// `serde_json`, both ways, and a MessagePack one is plain `rmp-serde` to a raw client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_values_are_plain_to_other_clients() {
    use namestore::codec::{Json, MessagePack};

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Session {
        user: u64,
        roles: Vec<String>,
        note: Option<String>,
    }

    let port = support::free_port();
    let url = support::start_server(port, "");
    let driver = RedisDriver::from_url(&url).unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };

    let sessions = driver
        .namespace::<String>("app", "sessions")
        .unwrap()
        .with_codec(Json::<Session>::new());
    let written = Session {
        user: 7,
        roles: vec!["admin".into(), "ünïcode \"quoted\"".into()],
        note: None,
    };
    sessions
        .set(&"s1".to_owned(), &written, None)
        .await
        .unwrap();
    let shown = cli(&["--raw", "GET", "app:sessions:s1"]);
    let read: Session = serde_json::from_str(shown.trim_end_matches('\n')).unwrap();
    assert_eq!(read, written);

    cli(&[
        "SET",
        "app:sessions:s2",
        r#"{"user": 9, "roles": [], "note": "from redis-cli"}"#,
    ]);
    assert_eq!(
        sessions.get(&"s2".to_owned()).await.unwrap(),
        Some(Session {
            user: 9,
            roles: vec![],
            note: Some("from redis-cli".into())
        })
    );
    cli(&["SET", "app:sessions:s3", "{\"user\": \"not a number\"}"]);
    let err = sessions.get(&"s3".to_owned()).await.unwrap_err();
    assert_eq!(err.kind(), namestore::ErrorKind::Decode, "{err}");
    assert_eq!(
        cli(&["--raw", "GET", "app:sessions:s3"]).trim_end(),
        "{\"user\": \"not a number\"}",
        "a failed decode touched the value"
    );

    let packed = driver
        .namespace::<String>("app", "packed")
        .unwrap()
        .with_codec(MessagePack::<Session>::new());
    packed.set(&"p1".to_owned(), &written, None).await.unwrap();
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let stored: Vec<u8> = redis::cmd("GET")
        .arg("app:packed:p1")
        .query(&mut raw)
        .unwrap();
    assert_eq!(rmp_serde::from_slice::<Session>(&stored).unwrap(), written);
    let other = Session {
        user: 1,
        roles: vec!["r".into()],
        note: Some("n".into()),
    };
    redis::cmd("SET")
        .arg("app:packed:p2")
        .arg(rmp_serde::to_vec(&other).unwrap())
        .query::<()>(&mut raw)
        .unwrap();
    assert_eq!(packed.get(&"p2".to_owned()).await.unwrap(), Some(other));
}

/// A key another client filled with a list, a hash or a set: named, and left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_other_redis_types_are_named_and_left_alone() {
    let url = support::start_server(support::free_port(), "");
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let driver = RedisDriver::from_url(&url).unwrap();
    other_types::are_named_and_left_alone(&driver, &mut raw, false).await;
}
