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
        config_set(&node, "timeout", "1");
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

/// A primary that fails (killed) is replaced by its replica, and the same handle follows: while
/// the cluster fails over, every call on the failed primary's slots ends as `Unavailable`
/// (nothing ran: no connection to the node, a `MOVED` to it, the cluster down) or `Timeout` (a
/// call lost in flight), never as a backend error a caller would not retry; once the replica
/// has taken over, every key is read and written through the handle again. Before, a call
/// routed to the failed node without a connection to it, or redirected there, was a
/// `Backend` error, and so was an `mget` that redis-rs split by slot; a listing left out the
/// failed primary's keys and said nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_primary_is_replaced_and_the_handle_follows() {
    let url = support::start_cluster_with_replicas();
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "failover")
        .unwrap();
    let keys: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
    ns.mset(keys.iter().map(|k| (k, "before")), None)
        .await
        .unwrap();
    let failed = Failed::primary_of(&url, "app:failover:k0");
    let counter = (0..)
        .map(|i| format!("n{i}"))
        .find(|key| failed.serves(&url, &format!("app:failover:{key}")))
        .unwrap();
    let on_it: Vec<&String> = keys
        .iter()
        .filter(|key| failed.serves(&url, &format!("app:failover:{key}")))
        .collect();
    assert_eq!(ns.incr(&counter, 1).await.unwrap(), 1);
    failed.kill();

    let mut batches = Batches::default();
    let mut served_in_a_row = 0;
    while served_in_a_row < 20 {
        batches.in_time();
        // Calls at once, so that more of them meet the failover's stages.
        let (incr, set, gets, listed, batched) = tokio::join!(
            async { ns.incr(&counter, 1).await.map(drop) },
            ns.set(&keys[0], "after", None),
            futures_util::future::join_all(on_it.iter().map(|key| ns.get(key))),
            ns.keys("k*"),
            batches.round(&ns),
        );
        // A listing that misses the slots of the failed primary is an error, not a short list.
        if let Ok(listed) = &listed {
            assert_eq!(listed.len(), keys.len(), "a listing missed keys");
        }
        let outcomes = [("incr", incr), ("set", set), ("keys", listed.map(drop))]
            .into_iter()
            .chain(gets.into_iter().map(|get| ("get", get.map(drop))));
        let served = batches.served(batched.into_iter().chain(outcomes));
        served_in_a_row = if served { served_in_a_row + 1 } else { 0 };
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    batches.check(&ns).await;
    let values = ns.mget(&keys).await.unwrap();
    assert_eq!(values[0].as_deref(), Some(&b"after"[..]));
    assert!(
        values[1..]
            .iter()
            .all(|value| value.as_deref() == Some(&b"before"[..]))
    );
    assert!(ns.incr(&counter, 1).await.unwrap() > 1);
}

/// Batches across every slot while a primary fails: each `mset` reported done wrote every key,
/// each `mdel` reported done counted every key it deleted. redis-rs, splitting a batch by
/// slot itself, left out the slots of a node it had no connection to and reported the rest:
/// a third of each `mset` was never written, and with nothing but batches sent, the client
/// never learned of the new primary and went on losing them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_across_a_failed_primary_are_written_whole_or_fail() {
    let url = support::start_cluster_with_replicas();
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "batches")
        .unwrap();
    ns.mset((0..60).map(|i| (format!("k{i}"), "before")), None)
        .await
        .unwrap();
    Failed::primary_of(&url, "app:batches:k0").kill();
    let mut batches = Batches::default();
    let start = std::time::Instant::now();
    // Past the failover (a second or two), with batches alone, until they are served again.
    let mut served_in_a_row = 0;
    while start.elapsed() < Duration::from_secs(5) || served_in_a_row < 5 {
        batches.in_time();
        let batched = batches.round(&ns).await;
        served_in_a_row = if batches.served(batched) {
            served_in_a_row + 1
        } else {
            0
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    batches.check(&ns).await;
}

/// A primary failed and no replica took its slots: a listing (`keys`, `clear`, `namespaces`)
/// is `Unavailable`, never the keys of the other primaries alone. Before, the walk left out
/// the primary the cluster marked failed, and a third of the keys went unlisted (and
/// uncleared) without a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_is_unavailable_while_slots_have_no_primary() {
    let url = support::start_cluster();
    let driver = RedisDriver::from_url(&url).unwrap();
    let ns = driver.namespace::<String>("app", "listed").unwrap();
    ns.mset((0..60).map(|i| (format!("k{i}"), "v")), None)
        .await
        .unwrap();
    assert_eq!(ns.keys("*").await.unwrap().len(), 60);
    let failed = Failed::primary_of(&url, "app:listed:k0");
    let others: Vec<String> = support::nodes(&url)
        .into_iter()
        .filter(|node| !node.contains(&failed.address))
        .collect();
    for node in &others {
        config_set(node, "cluster-node-timeout", "500");
    }
    failed.kill();
    // Until the others agree it failed (`fail`, not `fail?`).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !others.iter().all(|node| {
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut node_connection(node))
            .unwrap();
        nodes
            .lines()
            .any(|line| line.contains(&failed.address) && line.contains("master,fail "))
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "the cluster did not mark it failed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let listed = ns.keys("*").await;
    assert_eq!(
        listed
            .as_ref()
            .map_err(namestore::Error::kind)
            .map(Vec::len),
        Err(namestore::ErrorKind::Unavailable)
    );
    let counted: namestore::Result<Vec<_>> =
        futures_util::TryStreamExt::try_collect(namestore::Driver::namespaces(&driver)).await;
    assert_eq!(
        counted.map_err(|e| e.kind()).map(|found| found.len()),
        Err(namestore::ErrorKind::Unavailable)
    );
    assert_eq!(
        ns.clear().await.map_err(|e| e.kind()),
        Err(namestore::ErrorKind::Unavailable)
    );
    // With a slot uncovered the cluster refuses every key (`CLUSTERDOWN`), on the other
    // primaries too: a read is told so within its response bound (2 s), not retried by the
    // client library past it and reported as a `Timeout`, which says no answer came.
    let healthy = (0..)
        .map(|i| format!("k{i}"))
        .find(|key| !failed.serves(&url, &format!("app:listed:{key}")))
        .unwrap();
    let asked = std::time::Instant::now();
    let read = ns.get(&healthy).await;
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(namestore::ErrorKind::Unavailable)
    );
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
}

/// Primaries that may not take over from a primary of their own
/// (`cluster-replica-no-failover yes`, which some operators set on every node) carry the
/// `nofailover` flag in `CLUSTER NODES`: a listing walks them as any other primary. A check
/// for the `fail` flag that matched the word inside `nofailover` left them out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primaries_flagged_nofailover_are_listed() {
    let url = support::start_cluster();
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "flagged")
        .unwrap();
    ns.mset((0..60).map(|i| (format!("k{i}"), "v")), None)
        .await
        .unwrap();
    for node in support::nodes(&url) {
        config_set(&node, "cluster-replica-no-failover", "yes");
    }
    // Each node shows the flag on itself at once.
    for node in support::nodes(&url) {
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut node_connection(&node))
            .unwrap();
        assert!(nodes.contains("myself,master,nofailover"), "{nodes}");
    }
    assert_eq!(ns.keys("*").await.unwrap().len(), 60);
    assert_eq!(ns.clear().await.unwrap(), 60);
}

/// A cluster primary, found by a key it serves, to be killed.
struct Failed {
    address: String,
    slots: Vec<(u16, u16)>,
}

impl Failed {
    /// The primary serving the stored key `key`, once its replicas have every write so far.
    fn primary_of(url: &str, key: &str) -> Self {
        let slot = slot_of(url, key);
        let topology: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut node_connection(&support::nodes(url)[0]))
            .unwrap();
        let (address, slots) = topology
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .filter(|fields| fields[2].contains("master"))
            .map(|fields| {
                let slots: Vec<(u16, u16)> = fields[8..]
                    .iter()
                    .filter_map(|range| {
                        let (low, high) = range.split_once('-').unwrap_or((range, range));
                        Some((low.parse().ok()?, high.parse().ok()?))
                    })
                    .collect();
                (fields[1].split('@').next().unwrap().to_owned(), slots)
            })
            .find(|(_, slots)| {
                slots
                    .iter()
                    .any(|&(low, high)| (low..=high).contains(&slot))
            })
            .unwrap();
        let mut primary = node_connection(&format!("redis://{address}/"));
        let replication: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut primary)
            .unwrap();
        let replicas: i64 = replication
            .lines()
            .find_map(|line| line.strip_prefix("connected_slaves:"))
            .map_or(0, |count| count.trim().parse().unwrap());
        if replicas > 0 {
            let copied: i64 = redis::cmd("WAIT")
                .arg(replicas)
                .arg(5000)
                .query(&mut primary)
                .unwrap();
            assert_eq!(copied, replicas, "the replica of {address} is not there");
        }
        Failed { address, slots }
    }

    /// Whether this primary serves the stored key `key`.
    fn serves(&self, url: &str, key: &str) -> bool {
        let slot = slot_of(url, key);
        self.slots
            .iter()
            .any(|&(low, high)| (low..=high).contains(&slot))
    }

    /// `kill -9`: no goodbye to clients or to the other nodes.
    fn kill(&self) {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut node_connection(&format!("redis://{}/", self.address)))
            .unwrap();
        let pid = info
            .lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .unwrap()
            .trim()
            .to_owned();
        let killed = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status();
        assert!(killed.unwrap().success());
    }
}

fn node_connection(node: &str) -> redis::Connection {
    redis::Client::open(node).unwrap().get_connection().unwrap()
}

/// `CONFIG SET name value` on one node.
fn config_set(node: &str, name: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query(&mut node_connection(node))
        .unwrap();
}

fn slot_of(url: &str, key: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(&mut node_connection(&support::nodes(url)[0]))
        .unwrap()
}

/// Rounds of batches across every slot: each writes a batch of its own and deletes the last
/// batch written whole (every key of it is there, so a delete that succeeds counts them all).
#[derive(Default)]
struct Batches {
    rounds: usize,
    /// Rounds whose batch was reported written, and not deleted since.
    written: Vec<usize>,
    to_delete: Option<usize>,
    failures: Vec<(&'static str, namestore::ErrorKind)>,
    started: Option<std::time::Instant>,
}

impl Batches {
    fn batch(round: usize) -> Vec<String> {
        (0..60).map(|i| format!("r{round}:{i}")).collect()
    }

    /// Fails the test when the handle has not come back within a minute.
    fn in_time(&mut self) {
        let started = *self.started.get_or_insert_with(std::time::Instant::now);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the handle did not follow the failover; calls failed with {:?}",
            self.failures
        );
    }

    /// One round's `mget`, `mset` and `mdel`, at once.
    async fn round(
        &mut self,
        ns: &namestore::Namespace<String, RedisDriver>,
    ) -> Vec<(&'static str, namestore::Result<()>)> {
        let round = self.rounds;
        self.rounds += 1;
        let deleting_round = self.to_delete.take();
        let deleting = deleting_round.map(Self::batch).unwrap_or_default();
        let (mget, mset, mdel) = tokio::join!(
            ns.mget(Self::batch(round)),
            // Every other batch with a TTL: one transaction per slot.
            ns.mset(
                Self::batch(round).into_iter().map(|key| (key, "x")),
                (round % 2 == 1).then_some(Duration::from_secs(600)),
            ),
            ns.mdel(&deleting),
        );
        if mset.is_ok() {
            self.written.push(round);
            self.to_delete = Some(round);
        }
        // A failed delete may have deleted some: the batch is not checked whatever the outcome.
        self.written.retain(|&r| Some(r) != deleting_round);
        if let Ok(deleted) = mdel {
            assert_eq!(
                deleted,
                deleting.len() as u64,
                "a delete that counted only some keys"
            );
        }
        vec![
            ("mget", mget.map(drop)),
            ("mset", mset),
            ("mdel", mdel.map(drop)),
        ]
    }

    /// Whether every call of a round was served; a failure must be one a caller retries.
    fn served(
        &mut self,
        outcomes: impl IntoIterator<Item = (&'static str, namestore::Result<()>)>,
    ) -> bool {
        let mut served = true;
        for (call, outcome) in outcomes {
            if let Err(error) = outcome {
                served = false;
                assert!(
                    matches!(
                        error.kind(),
                        namestore::ErrorKind::Unavailable | namestore::ErrorKind::Timeout
                    ),
                    "{call} during the failover: {:?}: {error}",
                    error.kind()
                );
                self.failures.push((call, error.kind()));
            }
        }
        served
    }

    /// Every batch reported written was written whole.
    async fn check(&self, ns: &namestore::Namespace<String, RedisDriver>) {
        for &round in &self.written {
            let values = ns.mget(Self::batch(round)).await.unwrap();
            let missing = values.iter().filter(|value| value.is_none()).count();
            assert_eq!(
                missing, 0,
                "batch {round} was reported written, {missing} keys missing"
            );
        }
    }
}

/// An `mset` with a TTL is one transaction per slot (`MULTI` … `EXEC`); sent to a node whose
/// slot moved away since the client learned the map, the node discards it (`EXECABORT`, for the
/// `MOVED` inside), which the client library neither follows nor learns the new map from. The
/// driver teaches it the slot's new node and sends the transaction again (nothing of it ran):
/// the batch is written. Before, it was a `Backend` error (seen when a replica took over, in
/// the failover test), and so was every later batch touching that slot. A counter's
/// transaction with a TTL, sent once on the connection that follows redirections itself,
/// follows the `MOVED` inside the discarded transaction too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_sent_to_a_slot_that_moved_ran_nothing() {
    let url = support::start_cluster();
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "ttlmoved")
        .unwrap();
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    let ttl = Some(Duration::from_secs(60));
    ns.mset(keys.iter().map(|k| (k, "before")), ttl)
        .await
        .unwrap();

    // Move k0's slot, with its keys, to another primary behind the client's back.
    let slot = slot_of(&url, "app:ttlmoved:k0");
    let nodes = support::nodes(&url);
    let id = |node: &str| -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut node_connection(node))
            .unwrap()
    };
    let owner = nodes
        .iter()
        .find(|node| {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query(&mut node_connection(node))
                .unwrap();
            !keys.is_empty()
        })
        .unwrap()
        .clone();
    let target = nodes.iter().find(|node| **node != owner).unwrap().clone();
    let (owner_id, target_id) = (id(&owner), id(&target));
    let setslot = |node: &str, args: &[&str]| {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(args)
            .query(&mut node_connection(node))
            .unwrap();
    };
    setslot(&target, &["IMPORTING", &owner_id]);
    setslot(&owner, &["MIGRATING", &target_id]);
    let moving: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(100)
        .query(&mut node_connection(&owner))
        .unwrap();
    let port = target.trim_end_matches('/').rsplit(':').next().unwrap();
    let _: () = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(port)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(&moving)
        .query(&mut node_connection(&owner))
        .unwrap();
    for node in &nodes {
        setslot(node, &["NODE", &target_id]);
    }

    // A counter with a TTL (a rate limiter's) in the same slot (the hash tag): its transaction
    // is sent once, on the connection that follows redirections itself.
    let counter = "{app:ttlmoved:k0}n".to_owned();
    assert_eq!(
        ns.incr_with_ttl(&counter, 1, Duration::from_secs(60))
            .await
            .expect("the counter after the slot moved"),
        1
    );
    ns.mset(keys.iter().map(|k| (k, "after")), ttl)
        .await
        .expect("the batch after the slot moved");
    // And the client library knows the new map: the next batch goes straight to the slot's
    // new node.
    ns.mset(keys.iter().map(|k| (k, "after")), ttl)
        .await
        .unwrap();
    let read = ns.mget(&keys).await.unwrap();
    assert!(read.iter().all(|v| v.as_deref() == Some(&b"after"[..])));
}

/// `command` on `node` as a client with `password` (none: no `AUTH`).
fn on_node(node: &str, password: Option<&str>, command: &[&str]) -> redis::Value {
    let url = match password {
        Some(password) => node.replacen("redis://", &format!("redis://:{password}@"), 1),
        None => node.to_owned(),
    };
    let mut command_to_send = redis::cmd(command[0]);
    for arg in &command[1..] {
        command_to_send.arg(*arg);
    }
    command_to_send.query(&mut node_connection(&url)).unwrap()
}

/// A password rotated on disk (`password_file`) is used when the cluster is connected again:
/// every node moved to a new password and dropped its clients, the client library's own
/// reconnections (with the old password) fail, and the same handle, once no node has answered
/// for a while, makes its connections again with the file read anew; for a call that may be
/// sent again (`mset`) and one sent once (`incr`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_rotated_on_disk_is_used_when_the_cluster_is_connected_again() {
    let url = support::start_cluster();
    let nodes = support::nodes(&url);
    for node in &nodes {
        on_node(node, None, &["CONFIG", "SET", "requirepass", "first-pass"]);
    }
    let file = support::scratch_dir("cluster-password").join("password");
    std::fs::write(&file, "first-pass\n").unwrap();
    let ns = RedisDriver::from_url(&format!(
        "{url}?password_file={}&connect_timeout_ms=1000&response_timeout_ms=2000",
        file.display()
    ))
    .unwrap()
    .namespace::<String>("app", "rotated")
    .unwrap();
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    ns.mset(keys.iter().map(|k| (k, "before")), None)
        .await
        .unwrap();

    let rotate = |from: &str, to: &str| {
        for node in &nodes {
            on_node(node, Some(from), &["CONFIG", "SET", "requirepass", to]);
        }
        let staged = file.with_extension("new");
        std::fs::write(&staged, to).unwrap();
        std::fs::rename(&staged, &file).unwrap();
        for node in &nodes {
            on_node(node, Some(to), &["CLIENT", "KILL", "TYPE", "normal"]);
        }
    };
    rotate("first-pass", "second-pass");
    let written = support::until_ok(|| ns.mset(keys.iter().map(|k| (k, "after")), None)).await;
    assert_eq!(written, Ok(()), "the rotated password was not used");
    rotate("second-pass", "third-pass");
    let n = "n".to_owned();
    let counted = support::until_ok(|| ns.incr(&n, 1)).await;
    assert_eq!(counted, Ok(1), "rotated again, not used by incr");
    let read = ns.mget(&keys).await.unwrap();
    assert!(read.iter().all(|v| v.as_deref() == Some(&b"after"[..])));
}

/// SPEC 10.8 on a cluster without the hash tag: a batch with keys on a node at its
/// `maxmemory` (under `noeviction`) is `OutOfMemory`. Each node's part of a batch across
/// slots is a command of its own, so the other nodes' parts are written. The batch was
/// reported done: the cluster client hands a routed command's refusal back as a value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_hash_tag_a_full_node_fails_the_batch() {
    let url = support::start_cluster();
    let driver = RedisDriver::from_url(&url).unwrap();
    let ns = driver.namespace::<String>("app", "spread").unwrap();
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    ns.mset(keys.iter().map(|k| (k, "old")), None)
        .await
        .unwrap();
    // The first node full: it refuses every write.
    let node = &support::nodes(&url)[0];
    let mut connection = redis::Client::open(node.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query(&mut connection)
        .unwrap();
    let refused = ns
        .mset(keys.iter().map(|k| (k, "new")), None)
        .await
        .unwrap_err();
    assert_eq!(
        refused.kind(),
        namestore::ErrorKind::OutOfMemory,
        "{refused}"
    );
    // The full node's keys kept their values; the others' took the write.
    let values = ns.mget(&keys).await.unwrap();
    let old = |v: &Option<namestore::Bytes>| v.as_deref() == Some(&b"old"[..]);
    let kept = values.iter().filter(|v| old(v)).count();
    assert!(kept > 0 && kept < keys.len(), "{values:?}");
    let full = &keys[values.iter().position(old).unwrap()];
    let refused = ns.set(full, "x", None).await.unwrap_err();
    assert_eq!(
        refused.kind(),
        namestore::ErrorKind::OutOfMemory,
        "{refused}"
    );
    // Deleting frees memory: a full node allows it.
    assert_eq!(ns.mdel(&keys).await.unwrap(), 30);
}

/// A cluster whose nodes announce hostnames (`cluster-preferred-endpoint-type hostname`, as
/// managed and Kubernetes clusters often do): the client library connects to the names, and
/// a listing walks each primary at the address the library knows it by. It walked them at
/// the IPs of `CLUSTER NODES`, found no connection there, and every listing failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_reach_nodes_that_announce_hostnames() {
    let url = support::start_cluster();
    let nodes = support::nodes(&url);
    let connect = |node: &String| {
        redis::Client::open(node.as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    };
    for node in &nodes {
        let mut connection = connect(node);
        for (name, value) in [
            ("cluster-announce-hostname", "localhost"),
            ("cluster-preferred-endpoint-type", "hostname"),
        ] {
            let () = redis::cmd("CONFIG")
                .arg("SET")
                .arg(name)
                .arg(value)
                .query(&mut connection)
                .unwrap();
        }
    }
    // Until every node's slot map names every primary by its hostname (gossip).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for node in &nodes {
        loop {
            let slots: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query(&mut connect(node))
                .unwrap();
            // `[start, end, [host, port, id, …], …]`
            let named = |range: &Vec<redis::Value>| match range.get(2) {
                Some(redis::Value::Array(primary)) => {
                    primary.first() == Some(&redis::Value::BulkString(b"localhost".to_vec()))
                }
                _ => false,
            };
            if slots.len() == 3 && slots.iter().all(named) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{slots:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let driver = RedisDriver::from_url(&url).unwrap();
    let ns = driver.namespace::<String>("app", "named").unwrap();
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    ns.mset(keys.iter().map(|k| (k, "v")), None).await.unwrap();
    assert_eq!(ns.keys("*").await.unwrap().len(), 50);
    use futures_util::StreamExt;
    let listed: Vec<_> = std::pin::pin!(namestore::Driver::namespaces(&driver))
        .map(|info| info.unwrap())
        .collect()
        .await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].keys(), 50);
    assert_eq!(ns.clear().await.unwrap(), 50);
}
