//! The Redis driver through Redis Sentinel (`redis+sentinel://`), against real `redis-server`
//! processes started here on free loopback ports: primaries, replicas, and Sentinels
//! (`redis-server --sentinel`, quorum 1, a primary down after 500 ms). The conformance suite
//! runs through a Sentinel; the other tests fail a primary over, name a replica as the
//! primary, and leave the Sentinels down, unaware of the master, or requiring a password.
#![cfg(feature = "redis")]

#[path = "support/acl.rs"]
mod acl;
#[path = "support/events.rs"]
mod events;
mod support;

use std::time::{Duration, Instant};

use namestore::ErrorKind;
use namestore::conformance::{Harness, Time};
use namestore::drivers::redis::RedisDriver;

/// The name the Sentinels monitor the primary under.
const MASTER: &str = "cache";

/// Starts a server on `port` as `support::start_server` does, its files (a replica's copy of
/// its primary's data, written whatever `save` says) in a scratch directory.
fn start_server(port: u16, extra: &str) {
    let data = support::scratch_dir("redis-sentinel-data");
    let files = format!("--dir {} --dbfilename {port}.rdb", data.display());
    support::start_server(port, &format!("{files} {extra}"));
}

/// A primary and a Sentinel monitoring it: the primary's port and the Sentinel's.
fn primary_behind_a_sentinel(server_extra: &str, sentinel_extra: &str) -> (u16, u16) {
    let primary = support::free_port();
    start_server(primary, server_extra);
    let sentinel = support::free_port();
    support::start_sentinel(sentinel, MASTER, primary, sentinel_extra);
    (primary, sentinel)
}

fn harness() -> Harness<RedisDriver> {
    let (primary, sentinel) = primary_behind_a_sentinel("", "");
    let url = format!("redis+sentinel://127.0.0.1:{sentinel}/{MASTER}?response_timeout_ms=30000");
    let driver = RedisDriver::from_url(&url).unwrap();
    let server = format!("redis://127.0.0.1:{primary}/0");
    // Keys the server holds, expired ones it has not reclaimed yet included.
    Harness::new(driver, Time::Real).with_stored_entries(move |_, _| support::stored_keys(&server))
}

namestore::conformance_tests!(harness());

/// A plain connection to the server (or Sentinel) on `port`.
fn raw(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// What the server on `port` answers `ROLE` with first: `master` or `slave`.
fn role(port: u16) -> String {
    let answer: Vec<redis::Value> = redis::cmd("ROLE").query(&mut raw(port)).unwrap();
    match &answer[0] {
        redis::Value::BulkString(role) => String::from_utf8(role.clone()).unwrap(),
        other => panic!("ROLE answered {other:?}"),
    }
}

/// Waits up to 20 s for `done`, polling every 50 ms.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "waited 20 s for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The port of the primary the Sentinel on `sentinel` names.
fn named_primary(sentinel: u16) -> u16 {
    let (_, port): (String, u16) = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(MASTER)
        .query(&mut raw(sentinel))
        .unwrap();
    port
}

/// A primary with one replica in sync, and a Sentinel that knows both: the ports of the
/// primary, the replica and the Sentinel.
fn primary_replica_and_sentinel() -> (u16, u16, u16) {
    let primary = support::free_port();
    start_server(primary, "");
    let replica = support::free_port();
    start_server(replica, &format!("--replicaof 127.0.0.1 {primary}"));
    wait_for("the replica to sync", || {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut raw(replica))
            .unwrap();
        info.contains("master_link_status:up")
    });
    let sentinel = support::free_port();
    support::start_sentinel(sentinel, MASTER, primary, "");
    // Known from the primary's `INFO`, and then from its own (the replica's link to its
    // primary is up): only then will the Sentinel promote it (else `NOGOODSLAVE`, and a
    // failover tried again only after twice `failover-timeout`).
    wait_for("the Sentinel to know the replica", || {
        let replicas: Vec<std::collections::HashMap<String, String>> = redis::cmd("SENTINEL")
            .arg("replicas")
            .arg(MASTER)
            .query(&mut raw(sentinel))
            .unwrap();
        replicas.iter().any(|replica| {
            replica.get("flags").map(String::as_str) == Some("slave")
                && replica.get("master-link-status").map(String::as_str) == Some("ok")
        })
    });
    (primary, replica, sentinel)
}

/// Has the Sentinel on `sentinel` fail `primary` over to `replica`, then sets `key` through
/// `ns` while the old primary still takes writes (the Sentinel turns it into a replica some
/// seconds later, and its writes are lost then): the write must land on the new primary,
/// under `stored`.
async fn fail_over_then_set(
    ns: &namestore::Namespace<String, RedisDriver>,
    (primary, replica, sentinel): (u16, u16, u16),
    key: &str,
    stored: &str,
) {
    // Refused (`NOGOODSLAVE`) until the Sentinel has the replica's own `INFO`.
    wait_for("the Sentinel to fail the primary over", || {
        let failover: redis::RedisResult<()> = redis::cmd("SENTINEL")
            .arg("failover")
            .arg(MASTER)
            .query(&mut raw(sentinel));
        failover.is_ok()
    });
    wait_for("the Sentinel to name the replica", || {
        named_primary(sentinel) == replica
    });
    // The handle must have left the old primary at the switch (the Sentinel's
    // `+switch-master`, published when it named the new primary).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        role(primary),
        "master",
        "the old primary still takes writes"
    );
    let key = key.to_owned();
    until_ok(|| ns.set(&key, "yes", None)).await;
    let on_new: Option<String> = redis::cmd("GET")
        .arg(stored)
        .query(&mut raw(replica))
        .unwrap();
    assert_eq!(on_new.as_deref(), Some("yes"), "written to the new primary");
}

/// Calls `call` until it succeeds, for 20 s at most: a handle finding the new primary.
async fn until_ok<T, F, Fut>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = namestore::Result<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match call().await {
            Ok(value) => return value,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("failing 20 s on: {error}"),
        }
    }
}

/// A failover the Sentinels make (`SENTINEL FAILOVER`) is followed by the handle made before
/// it: its writes then land on the new primary, and what it wrote before is read back there.
/// The failover is reported as a `tracing` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_is_followed_by_the_same_handle() {
    let events = events::captured();
    let (primary, replica, sentinel) = primary_replica_and_sentinel();
    let store =
        RedisDriver::from_url(&format!("redis+sentinel://127.0.0.1:{sentinel}/{MASTER}")).unwrap();
    let ns = store.namespace::<String>("app", "failover").unwrap();
    for i in 0..20 {
        ns.set(&format!("k{i}"), "before", None).await.unwrap();
    }
    let synced: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut raw(primary))
        .unwrap();
    assert_eq!(synced, 1, "the replica has every write before the failover");

    let servers = (primary, replica, sentinel);
    fail_over_then_set(&ns, servers, "after", "app:failover:after").await;
    assert_eq!(role(replica), "master");
    // Reported to the program's `tracing` subscriber as it happened.
    let announced = format!("announced={MASTER} 127.0.0.1 {primary} 127.0.0.1 {replica}");
    let reported = events.lines_with(&["namestore::redis", "announced a failover", &announced]);
    assert_eq!(reported.len(), 1, "{reported:?}");
    for i in 0..20 {
        let read = ns.get(&format!("k{i}")).await.unwrap();
        assert_eq!(read.as_deref(), Some(&b"before"[..]), "k{i}");
    }
    assert_eq!(ns.incr(&"count".to_owned(), 5).await.unwrap(), 5);
    wait_for("the old primary to follow the new one", || {
        role(primary) == "slave"
    });
}

/// The Sentinel the handle listens to for failovers stops: it listens to another, and follows
/// the failover that one makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_announced_by_another_sentinel_is_followed() {
    let (primary, replica, first) = primary_replica_and_sentinel();
    let second = support::free_port();
    support::start_sentinel(second, MASTER, primary, "");
    let url = format!("redis+sentinel://127.0.0.1:{first},127.0.0.1:{second}/{MASTER}");
    let store = RedisDriver::from_url(&url).unwrap();
    let ns = store.namespace::<String>("app", "another").unwrap();
    ns.set(&"before".to_owned(), "1", None).await.unwrap();

    support::stop_server(first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let servers = (primary, replica, second);
    fail_over_then_set(&ns, servers, "after", "app:another:after").await;
}

/// A handle used in one tokio runtime, that runtime dropped (and with it the task listening
/// for failovers), then used in another: it listens again from there, and follows a failover.
#[test]
fn a_handle_moved_to_another_runtime_still_follows_failovers() {
    let (primary, replica, sentinel) = primary_replica_and_sentinel();
    let url = format!("redis+sentinel://127.0.0.1:{sentinel}/{MASTER}");
    let store = RedisDriver::from_url(&url).unwrap();
    let ns = store.namespace::<String>("app", "runtimes").unwrap();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    let first = runtime();
    first
        .block_on(ns.set(&"first".to_owned(), "1", None))
        .unwrap();
    drop(first);

    let second = runtime();
    second.block_on(async {
        let second = "second".to_owned();
        until_ok(|| ns.set(&second, "2", None)).await;
        let servers = (primary, replica, sentinel);
        fail_over_then_set(&ns, servers, "after", "app:runtimes:after").await;
    });
}

/// A primary that dies is replaced by its replica once the Sentinels have failed it over; the
/// calls made meanwhile fail as unavailable or timed out, never with another error, and the
/// handle then writes to the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_dies_is_replaced_by_its_replica() {
    let (primary, replica, sentinel) = primary_replica_and_sentinel();
    let url = format!(
        "redis+sentinel://127.0.0.1:{sentinel}/{MASTER}\
         ?connect_timeout_ms=300&response_timeout_ms=300"
    );
    let store = RedisDriver::from_url(&url).unwrap();
    let ns = store.namespace::<String>("app", "died").unwrap();
    ns.set(&"kept".to_owned(), "1", None).await.unwrap();
    let synced: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut raw(primary))
        .unwrap();
    assert_eq!(synced, 1);

    support::stop_server(primary);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut failures = 0;
    loop {
        match ns.set(&"after".to_owned(), "1", None).await {
            Ok(()) => break,
            Err(error) => {
                assert!(
                    matches!(error.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
                    "{error}"
                );
                failures += 1;
                assert!(Instant::now() < deadline, "no failover in 20 s: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert!(failures > 0, "the primary was down for a while");
    assert_eq!(named_primary(sentinel), replica);
    assert_eq!(role(replica), "master");
    assert_eq!(
        ns.get(&"kept".to_owned()).await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
}

/// A server a Sentinel names as the primary is used only if it answers `ROLE` as one: a
/// Sentinel that names a replica (one that missed a failover) is passed over for another, and
/// alone it leaves calls unavailable, reads too (a replica's data may be stale).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_named_as_the_primary_is_passed_over() {
    let (primary, replica, good) = primary_replica_and_sentinel();
    let stale = support::free_port();
    support::start_sentinel(stale, MASTER, replica, "");

    let alone =
        RedisDriver::from_url(&format!("redis+sentinel://127.0.0.1:{stale}/{MASTER}")).unwrap();
    let ns = alone.namespace::<String>("app", "stale").unwrap();
    for error in [
        ns.get(&"k".to_owned()).await.unwrap_err(),
        ns.set(&"k".to_owned(), "v", None).await.unwrap_err(),
    ] {
        assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
        let text = error.to_string();
        assert!(
            text.contains(&format!("127.0.0.1:{replica} answers `ROLE` as slave")),
            "{text}"
        );
    }

    for round in 0..5 {
        let url = format!("redis+sentinel://127.0.0.1:{stale},127.0.0.1:{good}/{MASTER}");
        let store = RedisDriver::from_url(&url).unwrap();
        let ns = store.namespace::<String>("app", "stale").unwrap();
        ns.set(&format!("k{round}"), "v", None).await.unwrap();
        let on_primary: Option<String> = redis::cmd("GET")
            .arg(format!("app:stale:k{round}"))
            .query(&mut raw(primary))
            .unwrap();
        assert_eq!(on_primary.as_deref(), Some("v"));
    }
}

/// A Sentinel that names a server that never answers (a host gone without a word, as a
/// Sentinel that missed the failover may name the old primary's) holds nothing up: the server
/// another Sentinel names is checked meanwhile, and every call succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_holds_nothing_up() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    // Accepts connections and never answers on them.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    let (primary, good) = primary_behind_a_sentinel("", "");
    let stale = support::free_port();
    support::start_sentinel(stale, MASTER, silent_port, "");

    for round in 0..10 {
        // The silent server's Sentinel first: taken in turn, its answer would hold each call
        // for the whole `connect_timeout`, and fail it.
        let url = format!(
            "redis+sentinel://127.0.0.1:{stale},127.0.0.1:{good}/{MASTER}?connect_timeout_ms=3000"
        );
        let store = RedisDriver::from_url(&url).unwrap();
        let ns = store.namespace::<String>("app", "silent").unwrap();
        ns.set(&format!("k{round}"), "v", None).await.unwrap();
    }
    let stored: usize = support::stored_keys(&format!("redis://127.0.0.1:{primary}/0"));
    assert_eq!(stored, 10);
}

/// Sentinels that are down, that know no such master, or that require a password the URL
/// does not give: a Sentinel that answers is enough; otherwise the error says what each one
/// answered, unavailable while they may come back, a backend error for what only the settings
/// can fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_down_unaware_or_locked_are_reported() {
    let down = [support::free_port(), support::free_port()];
    let (primary, sentinel) =
        primary_behind_a_sentinel("--requirepass server-pw", "requirepass sentinel-pw");
    let url = |sentinels: &[u16], rest: &str| {
        let hosts: Vec<String> = sentinels.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+sentinel://:server-pw@{}/{rest}", hosts.join(","))
    };
    let answer = |url: String| async move {
        let store = RedisDriver::from_url(&url).unwrap();
        store
            .namespace::<String>("app", "sentinels")
            .unwrap()
            .incr(&"calls".to_owned(), 1)
            .await
    };

    let secret = support::scratch_dir("sentinel-password").join("password");
    std::fs::write(&secret, "sentinel-pw\n").unwrap();
    let with_file = format!("{MASTER}?sentinel_password_file={}", secret.display());
    assert_eq!(
        answer(url(&[down[0], sentinel, down[1]], &with_file))
            .await
            .unwrap(),
        1
    );
    let with_password = format!("{MASTER}?sentinel_password=sentinel-pw");
    assert_eq!(answer(url(&[sentinel], &with_password)).await.unwrap(), 2);

    let error = answer(url(&down, &with_password)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
    for port in down {
        assert!(
            error
                .to_string()
                .contains(&format!("the Sentinel at 127.0.0.1:{port}:")),
            "{error}"
        );
    }

    let error = answer(url(
        &[down[0], sentinel],
        "other?sentinel_password=sentinel-pw",
    ))
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Backend, "{error}");
    assert!(
        error
            .to_string()
            .contains("monitors no master of that name"),
        "{error}"
    );

    let error = answer(url(&[primary], MASTER)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Backend, "{error}");
    let said = format!("the Sentinel at 127.0.0.1:{primary} is no Sentinel");
    assert!(error.to_string().contains(&said), "{error}");

    let error = answer(url(&[sentinel], MASTER)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Backend, "{error}");
    assert!(
        error
            .to_string()
            .contains(&format!("the Sentinel at 127.0.0.1:{sentinel}:")),
        "{error}"
    );

    let wrong_server_password = url(&[sentinel], &with_password).replace("server-pw", "wrong");
    let error = answer(wrong_server_password).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Backend, "{error}");
    assert!(
        error.to_string().contains("refused the credentials"),
        "{error}"
    );
    assert!(!error.to_string().contains("sentinel-pw"), "{error}");
}

/// `rediss+sentinel://`: the Sentinels and the server they name speak TLS only, each checked
/// against the URL's CA (the server's certificate names 127.0.0.1, the address the Sentinel
/// gives).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinels_and_server_over_tls() {
    let certificates = support::certificates();
    let primary = support::start_tls_server(certificates);
    let sentinel = support::free_port();
    let d = certificates.display();
    support::start_sentinel(
        sentinel,
        MASTER,
        primary,
        &format!(
            "port 0\ntls-port {sentinel}\ntls-replication yes\ntls-auth-clients no\n\
             tls-cert-file {d}/server.crt\ntls-key-file {d}/server.key\ntls-ca-cert-file {d}/ca.crt"
        ),
    );
    let url = format!("rediss+sentinel://127.0.0.1:{sentinel}/{MASTER}?tls_ca_file={d}/ca.crt");
    let store = RedisDriver::from_url(&url).unwrap();
    let ns = store.namespace::<String>("app", "tls").unwrap();
    ns.set(&"k".to_owned(), "v", None).await.unwrap();
    assert_eq!(
        ns.get(&"k".to_owned()).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );

    // Without the CA, the Sentinel's certificate is refused: a backend error (the settings
    // must change), naming the Sentinel.
    let url = format!("rediss+sentinel://127.0.0.1:{sentinel}/{MASTER}");
    let store = RedisDriver::from_url(&url).unwrap();
    let error = store
        .namespace::<String>("app", "tls")
        .unwrap()
        .get(&"k".to_owned())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Backend, "{error}");
    assert!(
        error.to_string().contains(&format!(
            "the Sentinel at 127.0.0.1:{sentinel}: the TLS handshake"
        )),
        "{error}"
    );
}

/// A least-privilege user behind Sentinel needs `ROLE` besides the README's commands: each new
/// connection asks the server it found whether it is the primary. Without it, the call is a
/// `Backend` error that says the user may not run a command connecting needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_least_privilege_user_behind_sentinel() {
    let (primary, sentinel) = primary_behind_a_sentinel("", "");
    let server = format!("redis://127.0.0.1:{primary}/0");
    let url = acl::as_user(
        &format!("redis+sentinel://127.0.0.1:{sentinel}/{MASTER}"),
        "app",
    );
    let key = "k".to_owned();

    acl::add_user(&server, "app", &format!("~* -@all {}", acl::COMMANDS));
    let driver = RedisDriver::from_url(&url).unwrap();
    let ns = driver.namespace::<String>("app", "x").unwrap();
    let error = ns.set(&key, "v", None).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Backend, "{error}");
    let text = error.to_string();
    assert!(
        text.contains("may not run a command that connecting needs") && text.contains("'role'"),
        "{text}"
    );

    acl::add_user(&server, "app", &format!("~* -@all {} +role", acl::COMMANDS));
    let driver = RedisDriver::from_url(&url).unwrap();
    let ns = driver.namespace::<String>("app", "x").unwrap();
    ns.set(&key, "v", None).await.unwrap();
    assert!(ns.cas(&key, "v", "w", None).await.unwrap());
    assert_eq!(ns.get(&key).await.unwrap().as_deref(), Some(&b"w"[..]));
}
