//! SPEC 5: batches.

use bytes::Bytes;

use super::{Harness, assert_err, k};
use crate::{Driver, KeyTtl, MAX_KEY_LEN, MAX_VALUE_LEN};

/// SPEC 5.1: `mget` answers once per key, in the caller's order, duplicates included.
pub async fn mget_order<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    ns.set(&k("a"), "1", None).await.unwrap();
    ns.set(&k("b"), "2", None).await.unwrap();
    ns.incr(&k("n"), 3).await.unwrap();
    let answers = ns
        .mget([k("b"), k("missing"), k("a"), k("b"), k("n")])
        .await
        .unwrap();
    let answers: Vec<Option<&[u8]>> = answers.iter().map(|v| v.as_deref()).collect();
    assert_eq!(
        answers,
        [Some(&b"2"[..]), None, Some(b"1"), Some(b"2"), Some(b"3")]
    );
    assert!(ns.mget(Vec::<String>::new()).await.unwrap().is_empty());
    let many: Vec<String> = (0..500).map(|i| format!("k{i}")).collect();
    ns.mset(many.iter().map(|key| (key, key.clone())), None)
        .await
        .unwrap();
    let back = ns.mget(many.iter().rev()).await.unwrap();
    for (key, value) in many.iter().rev().zip(back) {
        assert_eq!(value.as_deref(), Some(key.as_bytes()));
    }
}

/// SPEC 5.2: `mset` writes every pair with the same TTL; an empty batch is a no-op; for a key
/// given twice, the last pair wins.
pub async fn mset_batch<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let ttl = h.ttl();
    ns.set(&k("old"), "0", None).await.unwrap();
    ns.set(&k("timed"), "0", Some(ttl * 100)).await.unwrap();
    ns.mset([(k("a"), "1"), (k("b"), "2"), (k("old"), "3")], Some(ttl))
        .await
        .unwrap();
    for key in ["a", "b", "old"] {
        assert!(
            ns.ttl(&k(key))
                .await
                .unwrap()
                .remaining()
                .is_some_and(|left| left <= ttl),
            "{key} TTL"
        );
    }
    ns.mset(
        [(k("timed"), "4"), (k("dup"), "first"), (k("dup"), "last")],
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        ns.ttl(&k("timed")).await.unwrap(),
        KeyTtl::NoExpiry,
        "mset without TTL clears it"
    );
    assert_eq!(
        ns.get(&k("dup")).await.unwrap().as_deref(),
        Some(&b"last"[..])
    );
    ns.mset(Vec::<(String, Bytes)>::new(), None).await.unwrap();
    ns.mset(Vec::<(String, Bytes)>::new(), Some(ttl))
        .await
        .unwrap();
    assert_eq!(ns.keys("*").await.unwrap().len(), 5);
    h.outlive(ttl).await;
    let left = ns
        .mget([k("a"), k("b"), k("old"), k("timed")])
        .await
        .unwrap();
    assert_eq!(left[..3], [None, None, None]);
    assert!(left[3].is_some());
}

/// SPEC 5.3: `mdel` deletes the keys and counts the distinct keys that were present.
pub async fn mdel_counts_distinct<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    ns.mset([(k("a"), "1"), (k("b"), "2"), (k("c"), "3")], None)
        .await
        .unwrap();
    assert_eq!(
        ns.mdel([k("a"), k("a"), k("b"), k("missing")])
            .await
            .unwrap(),
        2
    );
    assert_eq!(ns.keys("*").await.unwrap(), [k("c")]);
    assert_eq!(ns.mdel([k("a"), k("b")]).await.unwrap(), 0);
    assert_eq!(ns.mdel(Vec::<String>::new()).await.unwrap(), 0);
}

/// SPEC 5.4: a batch checks every key (and value) before touching anything: one bad item
/// fails the whole batch and nothing is written.
pub async fn batches_validate_first<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    ns.set(&k("a"), "old", None).await.unwrap();
    let long = "x".repeat(MAX_KEY_LEN + 1);
    for bad in [String::new(), long] {
        assert_err!(
            ns.mset(
                [(k("a"), "new"), (k("b"), "new"), (bad.clone(), "new")],
                None
            )
            .await,
            InvalidKey,
            "mset with a bad key last"
        );
        assert_err!(
            ns.mset([(bad.clone(), "new"), (k("a"), "new")], None).await,
            InvalidKey,
            "mset with a bad key first"
        );
        assert_err!(ns.mdel([k("a"), bad.clone()]).await, InvalidKey, "mdel");
        assert_err!(ns.mget([k("a"), bad.clone()]).await, InvalidKey, "mget");
    }
    let oversized = Bytes::from(vec![0u8; MAX_VALUE_LEN + 1]);
    assert_err!(
        ns.mset(
            [(k("a"), Bytes::from_static(b"new")), (k("c"), oversized)],
            None
        )
        .await,
        ValueTooLarge,
        "mset with an oversized value"
    );
    assert_eq!(
        ns.get(&k("a")).await.unwrap().as_deref(),
        Some(&b"old"[..]),
        "a refused batch wrote"
    );
    assert_eq!(
        ns.keys("*").await.unwrap(),
        [k("a")],
        "a refused batch wrote or deleted"
    );
}
