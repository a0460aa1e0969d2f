//! SPEC 6: listing and clearing a namespace.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;

use super::{Harness, assert_err, k};
use crate::{Driver, Key, Namespace};

async fn collect<K: Key, D: Driver>(ns: &Namespace<K, D>, pattern: &str) -> Vec<K> {
    let mut stream = ns.scan(pattern).unwrap();
    let mut keys = Vec::new();
    while let Some(key) = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
        keys.push(key.unwrap());
    }
    keys
}

async fn listed<D: Driver>(ns: &Namespace<String, D>, pattern: &str) -> BTreeSet<String> {
    let keys = ns.keys(pattern).await.unwrap();
    let count = keys.len();
    let set: BTreeSet<String> = keys.into_iter().collect();
    assert_eq!(set.len(), count, "keys({pattern:?}) repeated a key");
    set
}

/// SPEC 6.1: `keys` lists the live business keys matching a Redis-style glob.
pub async fn keys_glob<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let all = [
        "user:1", "user:2", "user:10", "user:a", "users", "admin:1", "a*b", "a?b", "a[b", "a\\b",
        "aXb", "héllo", "hallo", "hello", "",
    ];
    for key in all.iter().filter(|k| !k.is_empty()) {
        ns.set(&k(key), "v", None).await.unwrap();
    }
    let cases: &[(&str, &[&str])] = &[
        ("user:*", &["user:1", "user:2", "user:10", "user:a"]),
        ("user:?", &["user:1", "user:2", "user:a"]),
        ("user:[0-9]", &["user:1", "user:2"]),
        ("user:[0-9]*", &["user:1", "user:2", "user:10"]),
        ("user:[^0-9]", &["user:a"]),
        ("user:[12]", &["user:1", "user:2"]),
        ("*:1", &["user:1", "admin:1"]),
        ("*:*", &["user:1", "user:2", "user:10", "user:a", "admin:1"]),
        ("user*", &["user:1", "user:2", "user:10", "user:a", "users"]),
        ("a\\*b", &["a*b"]),
        ("a\\?b", &["a?b"]),
        ("a\\[b", &["a[b"]),
        ("a\\\\b", &["a\\b"]),
        ("a?b", &["a*b", "a?b", "a[b", "a\\b", "aXb"]),
        ("a[*?]b", &["a*b", "a?b"]),
        ("h?llo", &["héllo", "hallo", "hello"]),
        ("h[a-e]llo", &["hallo", "hello"]),
        ("nothing*", &[]),
        ("user:1", &["user:1"]),
        ("USER:*", &[]),
    ];
    for (pattern, expected) in cases {
        let expected: BTreeSet<String> = expected.iter().map(|s| k(s)).collect();
        assert_eq!(listed(&ns, pattern).await, expected, "keys({pattern:?})");
    }
    assert_eq!(listed(&ns, "*").await.len(), all.len() - 1);
}

/// SPEC 6.2: a malformed pattern is an invalid-pattern error; a pathological one finishes in
/// time linear in its length per key.
pub async fn invalid_and_pathological_patterns<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    ns.set(&k("a"), "v", None).await.unwrap();
    for bad in ["[", "[abc", "user:[0-9", "a\\", "[a-\\", "[^"] {
        assert_err!(ns.keys(bad).await, InvalidPattern, "keys({bad:?})");
        assert_err!(ns.scan(bad).map(|_| ()), InvalidPattern, "scan({bad:?})");
    }
    let key = "a".repeat(4000);
    ns.set(&key, "v", None).await.unwrap();
    // Exponential with backtracking; linear per key here.
    let pathological = format!("{}b", "*a".repeat(3000));
    assert!(ns.keys(&pathological).await.unwrap().is_empty());
    let stars = format!("{}a", "*".repeat(10_000));
    assert_eq!(listed(&ns, &stars).await.len(), 2);
}

/// SPEC 6.3: `scan` yields the same keys as `keys`, each once.
pub async fn scan_matches_keys<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let count = 3000;
    ns.mset((0..count).map(|i| (format!("item:{i}"), "v")), None)
        .await
        .unwrap();
    ns.mset((0..100).map(|i| (format!("other:{i}"), "v")), None)
        .await
        .unwrap();
    for pattern in ["*", "item:*", "item:1*", "*:9?"] {
        let scanned = collect(&ns, pattern).await;
        let unique: BTreeSet<String> = scanned.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            scanned.len(),
            "scan({pattern:?}) repeated a key"
        );
        assert_eq!(
            unique,
            listed(&ns, pattern).await,
            "scan({pattern:?}) differs from keys"
        );
    }
    assert_eq!(collect(&ns, "item:*").await.len(), count);
}

/// SPEC 7.2 (listing): `keys` and `scan` never report a key deleted or expired before they
/// started.
pub async fn listing_skips_removed_keys<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let ttl = h.ttl();
    ns.mset((0..200).map(|i| (format!("gone{i}"), "v")), None)
        .await
        .unwrap();
    ns.mset((0..200).map(|i| (format!("timed{i}"), "v")), Some(ttl))
        .await
        .unwrap();
    ns.mset((0..50).map(|i| (format!("kept{i}"), "v")), None)
        .await
        .unwrap();
    ns.mdel((0..200).map(|i| format!("gone{i}"))).await.unwrap();
    h.outlive(ttl).await;
    let expected: BTreeSet<String> = (0..50).map(|i| format!("kept{i}")).collect();
    assert_eq!(listed(&ns, "*").await, expected);
    let scanned: BTreeSet<String> = collect(&ns, "*").await.into_iter().collect();
    assert_eq!(scanned, expected);
}

/// SPEC 6.4: `clear` deletes every key of the namespace and returns how many live keys it
/// deleted.
pub async fn clear_counts<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    assert_eq!(ns.clear().await.unwrap(), 0);
    let ttl = h.ttl();
    ns.mset((0..1500).map(|i| (format!("k{i}"), "v")), None)
        .await
        .unwrap();
    ns.mset((0..10).map(|i| (format!("t{i}"), "v")), Some(ttl))
        .await
        .unwrap();
    ns.incr(&k("counter"), 1).await.unwrap();
    h.outlive(ttl).await;
    assert_eq!(
        ns.clear().await.unwrap(),
        1501,
        "clear counts live keys only"
    );
    assert!(ns.keys("*").await.unwrap().is_empty());
    assert_eq!(ns.get(&k("k1")).await.unwrap(), None);
    assert_eq!(ns.clear().await.unwrap(), 0);
    ns.set(&k("again"), "v", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        ns.keys("*").await.unwrap(),
        [k("again")],
        "the namespace works after clear"
    );
}
