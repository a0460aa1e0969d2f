//! The Redis driver on a real three-primary Redis Cluster (one per test): the conformance suite
//! with the namespace hash tag, and batches and listings across slots without it. Needs
//! `redis-server` and `redis-cli`; they are installed when missing.
#![cfg(feature = "redis")]

use std::time::Duration;

use namestore::conformance::{Harness, Time};
use namestore::drivers::redis::RedisDriver;

#[path = "support/other_types.rs"]
mod other_types;
mod support;

fn harness() -> Harness<RedisDriver> {
    let url = support::start_cluster();
    let driver =
        RedisDriver::from_url(&format!("{url}?hash_tag=1&response_timeout_ms=30000")).unwrap();
    Harness::new(driver, Time::Real).with_stored_entries(move |_, _| support::stored_keys(&url))
}

namestore::conformance_tests!(harness());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_hash_tag_batches_and_listings_span_every_primary() {
    let url = support::start_cluster();
    let driver = RedisDriver::from_url(&url).unwrap();
    let ns = driver.namespace::<String>("app", "spread").unwrap();
    let keys: Vec<String> = (0..600).map(|i| format!("k{i}")).collect();
    ns.mset(keys.iter().map(|k| (k, k.clone())), None)
        .await
        .unwrap();
    ns.mset(
        keys.iter().take(50).map(|k| (k, "ttl")),
        Some(std::time::Duration::from_secs(60)),
    )
    .await
    .unwrap();

    // The keys really are spread: every primary holds some.
    for node in url.trim_start_matches("redis+cluster://").split(',') {
        let mut connection = redis::Client::open(format!("redis://{node}/").as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let held: usize = redis::cmd("DBSIZE").query(&mut connection).unwrap();
        assert!(held > 50, "node {node} holds {held} keys");
    }

    let values = ns.mget(&keys).await.unwrap();
    for (i, value) in values.iter().enumerate() {
        let expected = if i < 50 {
            "ttl".to_owned()
        } else {
            format!("k{i}")
        };
        assert_eq!(value.as_deref(), Some(expected.as_bytes()));
    }
    assert!(
        ns.ttl(&"k7".to_owned())
            .await
            .unwrap()
            .remaining()
            .is_some()
    );
    let mut listed = ns.keys("*").await.unwrap();
    listed.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(ns.keys("k1?").await.unwrap().len(), 10);
    assert_eq!(ns.mdel(keys.iter().take(100)).await.unwrap(), 100);
    assert_eq!(ns.incr(&"counter".to_owned(), 5).await.unwrap(), 5);
    assert!(
        ns.cas(&"k200".to_owned(), "k200", "swapped", None)
            .await
            .unwrap()
    );
    assert_eq!(ns.clear().await.unwrap(), 501);
    assert!(ns.keys("*").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_hash_tag_a_batch_of_ten_is_one_round_trip() {
    let url = support::start_cluster();
    let ns = RedisDriver::from_url(&format!("{url}?hash_tag=1"))
        .unwrap()
        .namespace::<String>("app", "tagged")
        .unwrap();
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    ns.mset(keys.iter().map(|k| (k, "v")), None).await.unwrap();
    let (mget, get) = (
        support::command_calls(&url, "mget"),
        support::command_calls(&url, "get"),
    );
    ns.mget(&keys).await.unwrap();
    assert_eq!(
        (
            support::command_calls(&url, "mget") - mget,
            support::command_calls(&url, "get") - get
        ),
        (1, 0)
    );
    let mset = support::command_calls(&url, "mset");
    ns.mset(keys.iter().map(|k| (k, "w")), None).await.unwrap();
    assert_eq!(support::command_calls(&url, "mset") - mset, 1);
    let exec = support::command_calls(&url, "exec");
    ns.mset(
        keys.iter().map(|k| (k, "x")),
        Some(std::time::Duration::from_secs(60)),
    )
    .await
    .unwrap();
    assert_eq!(support::command_calls(&url, "exec") - exec, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_slots_are_followed_after_a_reshard() {
    let url = support::start_cluster();
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "moving")
        .unwrap();
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    for key in &keys {
        ns.set(key, key.clone(), None).await.unwrap();
    }
    // Move 3000 slots, with their keys, to the second node while the driver holds its slot map.
    let nodes: Vec<&str> = url
        .trim_start_matches("redis+cluster://")
        .split(',')
        .collect();
    let target: String = {
        let mut c = redis::Client::open(format!("redis://{}/", nodes[1]).as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("CLUSTER").arg("MYID").query(&mut c).unwrap()
    };
    let resharded = tokio::task::spawn_blocking({
        let seed = nodes[0].to_owned();
        move || {
            std::process::Command::new("redis-cli")
                .args([
                    "--cluster",
                    "reshard",
                    &seed,
                    "--cluster-from",
                    "all",
                    "--cluster-to",
                    &target,
                ])
                .args(["--cluster-slots", "3000", "--cluster-yes"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(resharded.success(), "redis-cli --cluster reshard failed");
    for key in &keys {
        assert_eq!(
            ns.get(key).await.unwrap().as_deref(),
            Some(key.as_bytes()),
            "{key} after the reshard"
        );
        // Non-idempotent calls go through the connection that never resends, and follow the
        // MOVED answers themselves.
        assert!(
            ns.cas(key, key.as_bytes(), "swapped", None).await.unwrap(),
            "cas of {key}"
        );
        assert_eq!(
            ns.get_set(key, "0", None).await.unwrap().as_deref(),
            Some(&b"swapped"[..])
        );
        assert_eq!(ns.incr(key, 2).await.unwrap(), 2, "incr of {key}");
        ns.set(key, "moved", None).await.unwrap();
    }
    assert_eq!(ns.keys("*").await.unwrap().len(), keys.len());
    assert_eq!(ns.clear().await.unwrap(), keys.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_increment_whose_connection_drops_is_not_resent() {
    let url = support::start_cluster();
    let ns = RedisDriver::from_url(&format!("{url}?response_timeout_ms=5000"))
        .unwrap()
        .namespace::<String>("app", "dropped")
        .unwrap();
    let key = "n".to_owned();
    ns.incr(&key, 1).await.unwrap();
    let admin = |node: &str| redis::Client::open(node).unwrap().get_connection().unwrap();
    // Hold every write, send an increment, then cut every client connection before it runs.
    for node in support::nodes(&url) {
        redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(1500)
            .arg("WRITE")
            .query::<()>(&mut admin(&node))
            .unwrap();
    }
    let pending = tokio::spawn({
        let (ns, key) = (ns.clone(), key.clone());
        async move { ns.incr(&key, 1).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for node in support::nodes(&url) {
        redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
            .query::<i64>(&mut admin(&node))
            .unwrap();
    }
    let outcome = pending.await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    // A resend on a new connection would have run after the pause: the value would be 2.
    assert!(
        outcome.is_err(),
        "the increment was resent and answered {outcome:?}"
    );
    let mut cluster = client_of(&url);
    let value: i64 = redis::cmd("GET")
        .arg("app:dropped:n")
        .query(&mut cluster)
        .unwrap();
    assert_eq!(value, 1, "the dropped increment ran after all");
}

/// A key another client filled with a list, a hash or a set, on a cluster: named, and left
/// alone (the server's `WRONGTYPE` answer comes through the cluster connection as it does
/// from one server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_other_redis_types_are_named_and_left_alone() {
    let url = support::start_cluster();
    let mut raw = client_of(&url);
    for (query, hash_tag) in [("", false), ("?hash_tag=1", true)] {
        let driver = RedisDriver::from_url(&format!("{url}{query}")).unwrap();
        other_types::are_named_and_left_alone(&driver, &mut raw, hash_tag).await;
    }
}

/// A connection to the cluster at `url` as another client (redis-rs's own cluster client).
fn client_of(url: &str) -> redis::cluster::ClusterConnection {
    redis::cluster::ClusterClient::new(
        support::nodes(url)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )
    .unwrap()
    .get_connection()
    .unwrap()
}

/// Nodes that close quiet connections (`timeout`): a call sent once (`incr`, `set_nx`, `cas`,
/// a counter with a TTL in a transaction) after a quiet spell is served, exactly once: the
/// connection to the call's node is checked with a `PING` first and made again. Before, the
/// first such call failed (a broken pipe, `Timeout`: the driver cannot tell it was never
/// sent), and before that every later one too: the strict connection, which never retries,
/// was never made again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_a_node_closed_is_made_again() {
    let url = support::start_cluster();
    for node in support::nodes(&url) {
        let mut connection = redis::Client::open(node.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("timeout")
            .arg("1")
            .query(&mut connection)
            .unwrap();
    }
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "quiet")
        .unwrap();
    let n = "n".to_owned();
    assert_eq!(ns.incr(&n, 1).await.unwrap(), 1);
    // Past the nodes' timeout (checked once a second) before each call: the connections are
    // closed.
    let quiet = || tokio::time::sleep(Duration::from_millis(2500));
    for count in 2..4 {
        quiet().await;
        assert_eq!(ns.incr(&n, 1).await.unwrap(), count);
    }
    quiet().await;
    assert!(ns.set_nx(&"once".to_owned(), "1", None).await.unwrap());
    quiet().await;
    assert!(ns.cas(&"once".to_owned(), "1", "2", None).await.unwrap());
    quiet().await;
    let ttl = Duration::from_secs(60);
    assert_eq!(ns.incr_with_ttl(&"t".to_owned(), 5, ttl).await.unwrap(), 5);
    assert_eq!(ns.get(&"once".to_owned()).await.unwrap().unwrap(), "2");
}
