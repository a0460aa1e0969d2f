//! SPEC 1: namespaces and keys.

use std::time::Duration;

use super::{Harness, assert_err, k};
use futures_core::Stream;

use crate::{Driver, Key, KeyBuf, MAX_KEY_LEN, Namespace};

/// SPEC 1.1: keys live under `root:domain:key`.
pub async fn namespace_layout<D: Driver>(h: &Harness<D>) {
    let domain = h.unique_name("layout");
    let ns = h.named::<String>("app", &domain);
    assert_eq!(ns.name().root(), "app");
    assert_eq!(ns.name().domain(), domain);
    assert_eq!(ns.name().prefix(), format!("app:{domain}:"));
    assert_eq!(
        ns.full_key(&k("user:1")).unwrap(),
        format!("app:{domain}:user:1")
    );
    assert_err!(ns.full_key(&k("")), InvalidKey, "full_key of an empty key");
}

/// SPEC 10.3: a namespace opened with its own eviction mode is the same namespace as one
/// opened without (the same keys through either handle), and its mode holds: it answers the
/// mode asked for, or `never` on a driver that evicts nothing on its own; a driver that applies
/// the mode refuses another for the same namespace, and a handle opened without a mode takes
/// the namespace's.
pub async fn namespace_eviction_modes<D: Driver>(h: &Harness<D>) {
    use crate::Eviction;
    let modes = [Eviction::Never, Eviction::Any, Eviction::WithTtl];
    for mode in modes {
        let domain = h.unique_name("mode");
        let asked = Namespace::<String, D>::with_eviction(h.driver().clone(), "app", &domain, mode)
            .unwrap();
        let answered = asked.eviction();
        assert!(
            answered == mode || answered == Eviction::Never,
            "asked for {mode}, the namespace answers {answered}"
        );
        let plain = h.named::<String>("app", &domain);
        assert_eq!(plain.name(), asked.name());
        assert_eq!(plain.eviction(), answered, "a handle opened without a mode");
        asked.set(&k("a"), "1", None).await.unwrap();
        assert_eq!(
            plain.get(&k("a")).await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
        plain.set(&k("b"), "2", None).await.unwrap();
        assert_eq!(
            asked.get(&k("b")).await.unwrap().as_deref(),
            Some(&b"2"[..])
        );
        let again = Namespace::<String, D>::with_eviction(h.driver().clone(), "app", &domain, mode)
            .unwrap();
        assert_eq!(again.eviction(), answered);
        if answered == mode && mode != Eviction::Never {
            for other in modes.into_iter().filter(|&other| other != mode) {
                assert_err!(
                    Namespace::<String, D>::with_eviction(
                        h.driver().clone(),
                        "app",
                        &domain,
                        other
                    ),
                    InvalidNamespace,
                    "{other} asked of a namespace in mode {mode}"
                );
            }
        }
        assert_eq!(asked.clear().await.unwrap(), 2);
    }
}

/// SPEC 1.2: `root` and `domain` are 1 to 64 bytes of `[A-Za-z0-9._-]`; anything else is an
/// invalid-namespace error naming the part.
pub async fn namespace_validation<D: Driver>(h: &Harness<D>) {
    let open =
        |root: &str, domain: &str| Namespace::<String, D>::new(h.driver().clone(), root, domain);
    for good in ["a", "A-z_0.9", &"x".repeat(64), "...", "-", "_"] {
        assert!(open(good, good).is_ok(), "{good:?} is a valid name");
    }
    let long = "x".repeat(65);
    for bad in [
        "", &long, "a:b", ":", "a*", "a?", "{a}", "a b", "é", "a/b", "a\n", "[a]", "a\\b", "a\0",
    ] {
        match open(bad, "ok") {
            Err(e)
                if e.kind() == crate::ErrorKind::InvalidNamespace
                    && e.argument() == Some("root") => {}
            other => panic!("root {bad:?}: expected InvalidNamespace naming root, got {other:?}"),
        }
        match open("ok", bad) {
            Err(e)
                if e.kind() == crate::ErrorKind::InvalidNamespace
                    && e.argument() == Some("domain") => {}
            other => {
                panic!("domain {bad:?}: expected InvalidNamespace naming domain, got {other:?}")
            }
        }
    }
}

/// A newtype key, as a user would write it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct OrderId(u32);

impl Key for OrderId {
    fn encode(&self, out: &mut KeyBuf) {
        out.push_str("order-");
        out.push_key(&self.0);
    }

    fn decode(key: &str) -> Option<Self> {
        u32::decode(key.strip_prefix("order-")?).map(OrderId)
    }
}

/// SPEC 1.3: typed keys round-trip through the store, listing included. (Passing the wrong
/// key type is a compile error, shown by a `compile_fail` doctest on `Namespace`.)
pub async fn typed_keys<D: Driver>(h: &Harness<D>) {
    let orders = h.namespace::<OrderId>();
    for id in [1, 22, 333] {
        orders
            .set(&OrderId(id), format!("o{id}"), None)
            .await
            .unwrap();
    }
    assert_eq!(
        orders.get(&OrderId(22)).await.unwrap().as_deref(),
        Some(&b"o22"[..])
    );
    let mut listed = orders.keys("*").await.unwrap();
    listed.sort();
    assert_eq!(listed, [OrderId(1), OrderId(22), OrderId(333)]);

    let numbers = h.namespace::<u64>();
    numbers.set(&u64::MAX, "max", None).await.unwrap();
    assert_eq!(numbers.keys("*").await.unwrap(), [u64::MAX]);

    // A stored key that does not decode as `K` is an error, not a silent skip.
    let shared = orders.name().domain().to_owned();
    let raw = h.named::<String>("conformance", &shared);
    raw.set(&k("not-an-order"), "x", None).await.unwrap();
    assert_err!(
        orders.keys("*").await,
        InvalidKey,
        "listing an undecodable key"
    );
}

/// SPEC 1.3, 1.4: a composite key (a tuple of keys) round-trips through every operation and
/// through listing, whatever its parts hold: `:`, `%`, glob characters, braces (a Redis Cluster
/// hash tag), backslashes. Patterns match the stored form, parts joined by `:` with `%` and
/// `:` escaped inside a part.
pub async fn composite_keys<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<(String, u64)>();
    let parts = [
        "plain", "a:b", ":", "::", "100%", "%3A", "*", "a*b?", "[x]", "{tag}", "\\", "é:ü", "",
    ];
    let keys: Vec<(String, u64)> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| (k(part), i as u64))
        .collect();
    for key in &keys {
        ns.set(key, format!("{}#{}", key.0, key.1), None)
            .await
            .unwrap();
    }
    for key in &keys {
        assert_eq!(
            ns.get(key).await.unwrap().as_deref(),
            Some(format!("{}#{}", key.0, key.1).as_bytes()),
            "get {key:?}"
        );
    }
    let mut listed = ns.keys("*").await.unwrap();
    listed.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(listed, expected, "keys(\"*\")");

    // The stored form, seen through a namespace of plain strings on the same name.
    let raw = h.named::<String>(ns.name().root(), ns.name().domain());
    let stored: std::collections::BTreeSet<String> =
        raw.keys("*").await.unwrap().into_iter().collect();
    for expected in [
        "plain:0", "a%3Ab:1", "%3A:2", "%3A%3A:3", "100%25:4", "%253A:5", "*:6",
    ] {
        assert!(stored.contains(expected), "{expected:?} not in {stored:?}");
    }
    assert!(stored.contains(":12"), "the empty part: {stored:?}");

    // Patterns over the stored form: a part with `:` matched literally, glob characters in a
    // part matched by escaping them.
    assert_eq!(ns.keys("a%3Ab:*").await.unwrap(), [(k("a:b"), 1)]);
    assert_eq!(ns.keys("\\*:*").await.unwrap(), [(k("*"), 6)]);
    assert_eq!(ns.keys("\\[x\\]:?").await.unwrap(), [(k("[x]"), 8)]);
    let mut by_number = ns.keys("*:1?").await.unwrap();
    by_number.sort();
    let mut tens = vec![(k("\\"), 10), (k("é:ü"), 11), (k(""), 12)];
    tens.sort();
    assert_eq!(by_number, tens, "keys(\"*:1?\")");
    let mut scanned: Vec<(String, u64)> = Vec::new();
    let mut stream = ns.scan("*%*").unwrap();
    while let Some(key) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await
    {
        scanned.push(key.unwrap());
    }
    scanned.sort();
    let mut escaped: Vec<(String, u64)> = keys
        .iter()
        .filter(|(part, _)| part.contains([':', '%']))
        .cloned()
        .collect();
    escaped.sort();
    assert_eq!(scanned, escaped, "scan(\"*%*\")");

    // Batches of computed keys.
    let batch: Vec<(String, u64)> = keys.iter().take(5).cloned().collect();
    ns.mset(batch.iter().map(|key| (key, "batched")), None)
        .await
        .unwrap();
    let values = ns.mget(&batch).await.unwrap();
    assert!(values.iter().all(|v| v.as_deref() == Some(&b"batched"[..])));
    assert_eq!(ns.mdel(&batch).await.unwrap(), 5);
    assert_eq!(ns.get(&keys[0]).await.unwrap(), None);

    // Integers, addresses and nested tuples as parts.
    let pairs = h.namespace::<((u64, u64), std::net::IpAddr)>();
    let pair = ((7, 8), "2001:db8::1".parse().unwrap());
    assert_eq!(pairs.incr(&pair, 5).await.unwrap(), 5);
    assert_eq!(
        pairs.full_key(&pair).unwrap(),
        format!("{}:7%3A8:2001%3Adb8%3A%3A1", pairs.name())
    );
    assert_eq!(pairs.keys("*").await.unwrap(), [pair]);
}

/// SPEC 1.4: a key is 1 to 4096 bytes of UTF-8, any character allowed; an empty or longer
/// key is an invalid-key error for every operation, and nothing is written.
pub async fn key_validation<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let ttl = Some(Duration::from_secs(60));
    for bad in [String::new(), "k".repeat(MAX_KEY_LEN + 1)] {
        let what = format!("key of {} bytes", bad.len());
        assert_err!(ns.set(&bad, "v", None).await, InvalidKey, "set {what}");
        assert_err!(
            ns.set_keep_ttl(&bad, "v").await,
            InvalidKey,
            "set_keep_ttl {what}"
        );
        assert_err!(ns.set_nx(&bad, "v", ttl).await, InvalidKey, "set_nx {what}");
        assert_err!(ns.get(&bad).await, InvalidKey, "get {what}");
        assert_err!(ns.exists(&bad).await, InvalidKey, "exists {what}");
        assert_err!(ns.delete(&bad).await, InvalidKey, "delete {what}");
        assert_err!(ns.ttl(&bad).await, InvalidKey, "ttl {what}");
        assert_err!(
            ns.expire(&bad, Duration::from_secs(1)).await,
            InvalidKey,
            "expire {what}"
        );
        assert_err!(
            ns.expire(&bad, Duration::ZERO).await,
            InvalidKey,
            "expire 0 {what}"
        );
        assert_err!(ns.persist(&bad).await, InvalidKey, "persist {what}");
        assert_err!(ns.incr(&bad, 1).await, InvalidKey, "incr {what}");
        assert_err!(
            ns.incr_with_ttl(&bad, 1, Duration::from_secs(1)).await,
            InvalidKey,
            "incr_with_ttl {what}"
        );
        assert_err!(ns.decr(&bad, 1).await, InvalidKey, "decr {what}");
        assert_err!(
            ns.get_set(&bad, "v", None).await,
            InvalidKey,
            "get_set {what}"
        );
        assert_err!(ns.cas(&bad, "v", "w", None).await, InvalidKey, "cas {what}");
        assert_err!(ns.cad(&bad, "v").await, InvalidKey, "cad {what}");
        assert_err!(ns.mget([&bad]).await, InvalidKey, "mget {what}");
        assert_err!(
            ns.mset([(&bad, "v")], None).await,
            InvalidKey,
            "mset {what}"
        );
        assert_err!(ns.mdel([&bad]).await, InvalidKey, "mdel {what}");
    }
    assert!(
        ns.keys("*").await.unwrap().is_empty(),
        "an invalid key wrote something"
    );

    let longest = "k".repeat(MAX_KEY_LEN);
    let unusual = [
        longest.as_str(),
        "a:b:c",
        ":",
        "*",
        "?",
        "[abc]",
        "\\",
        "{tag}",
        " spaced key ",
        "é✓🦀",
        "tab\tnewline\n",
        "nul\0byte",
    ];
    for key in unusual {
        let key = k(key);
        ns.set(&key, key.clone(), None).await.unwrap();
        assert_eq!(
            ns.get(&key).await.unwrap().as_deref(),
            Some(key.as_bytes()),
            "key {key:?}"
        );
    }
    let mut listed = ns.keys("*").await.unwrap();
    listed.sort();
    let mut expected: Vec<String> = unusual.iter().map(|s| k(s)).collect();
    expected.sort();
    assert_eq!(listed, expected);
}

/// SPEC 1.5: no operation on one namespace reads, lists, changes or deletes a key of another,
/// whatever the keys and patterns hold.
pub async fn namespace_isolation<D: Driver>(h: &Harness<D>) {
    let root = h.unique_name("iso");
    // Prefix-sharing names: `r:a:` vs `r:ab:` vs `r:a.b:`, and the root/domain swap.
    let a = h.named::<String>(&root, "a");
    let others = [
        h.named::<String>(&root, "ab"),
        h.named::<String>(&root, "a.b"),
        h.named::<String>("a", &root),
        h.named::<String>(&format!("{root}x"), "a"),
    ];
    let tricky = ["x", "b:x", "*", "a:x", ":", "\\", "[a]", "{a}", "?"];
    for other in &others {
        for key in tricky {
            other.set(&k(key), "other", None).await.unwrap();
        }
    }

    for key in tricky {
        assert_eq!(
            a.get(&k(key)).await.unwrap(),
            None,
            "get {key:?} read another namespace"
        );
        assert!(!a.exists(&k(key)).await.unwrap(), "exists {key:?}");
        assert!(!a.delete(&k(key)).await.unwrap(), "delete {key:?}");
        assert_eq!(
            a.ttl(&k(key)).await.unwrap(),
            crate::KeyTtl::Missing,
            "ttl {key:?}"
        );
        assert!(
            !a.expire(&k(key), Duration::from_secs(5)).await.unwrap(),
            "expire {key:?}"
        );
        assert!(!a.persist(&k(key)).await.unwrap(), "persist {key:?}");
        assert!(!a.cad(&k(key), "other").await.unwrap(), "cad {key:?}");
        assert!(
            !a.cas(&k(key), "other", "a", None).await.unwrap(),
            "cas {key:?}"
        );
    }
    let all: Vec<String> = tricky.iter().map(|s| k(s)).collect();
    assert_eq!(a.mget(&all).await.unwrap(), vec![None; all.len()]);
    assert_eq!(a.mdel(&all).await.unwrap(), 0);
    for pattern in [
        "*", "*:*", "?", "\\*", "[*]", "*x", "a*", "b:*", "{*}", "*\\\\*", "[^z]*",
    ] {
        assert!(
            a.keys(pattern).await.unwrap().is_empty(),
            "keys({pattern:?}) listed another namespace"
        );
    }
    assert_eq!(a.clear().await.unwrap(), 0);

    // Writes to `a` leave the others alone.
    for key in tricky {
        a.set(&k(key), "a", None).await.unwrap();
        a.incr(&k(&format!("{key}n")), 1).await.unwrap();
    }
    a.mset(tricky.iter().map(|key| (k(key), "a2")), None)
        .await
        .unwrap();
    assert_eq!(a.mdel(&all).await.unwrap(), all.len() as u64);
    a.clear().await.unwrap();
    for other in &others {
        for key in tricky {
            assert_eq!(
                other.get(&k(key)).await.unwrap().as_deref(),
                Some(&b"other"[..]),
                "{key:?} in {} changed",
                other.name()
            );
        }
        assert_eq!(other.keys("*").await.unwrap().len(), tricky.len());
        other.clear().await.unwrap();
    }
}

/// The store-wide listing, [`Driver::namespaces`] (added for the `namestore namespaces`
/// command; SPEC has no rule for it): every namespace with live keys, once, with its count of
/// live keys. Expired, deleted and cleared keys are not counted, a namespace left without
/// keys is not listed, and a root that extends another root is a different namespace.
pub async fn namespace_listing<D: Driver>(h: &Harness<D>) {
    let root = h.unique_name("ls");
    let longer_root = format!("{root}x");
    let one = h.named::<String>(&root, "one");
    let two = h.named::<String>(&root, "two");
    let gone = h.named::<String>(&root, "gone");
    let cleared = h.named::<String>(&root, "cleared");
    let other = h.named::<String>(&longer_root, "one");

    for key in ["a", "b", "c", "x:y"] {
        one.set(&k(key), "v", None).await.unwrap();
    }
    one.incr(&k("counter"), 5).await.unwrap();
    two.set(&k("p"), "v", None).await.unwrap();
    two.set(&k("q"), "v", Some(h.ttl())).await.unwrap();
    gone.set(&k("g"), "v", None).await.unwrap();
    assert!(gone.delete(&k("g")).await.unwrap());
    cleared
        .mset([(k("1"), "v"), (k("2"), "v"), (k("3"), "v")], None)
        .await
        .unwrap();
    assert_eq!(cleared.clear().await.unwrap(), 3);
    other.set(&k("o"), "v", None).await.unwrap();
    h.outlive(h.ttl()).await;

    let mut listed = Vec::new();
    let mut stream = std::pin::pin!(h.driver().namespaces());
    while let Some(item) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        let info = item.expect("namespaces() item");
        assert!(
            info.keys() > 0,
            "{info:?}: a listed namespace has live keys"
        );
        listed.push(info);
    }
    let mut names: Vec<String> = listed.iter().map(|i| i.name().to_string()).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "each namespace is listed once");

    let mut ours: Vec<(String, String, u64)> = listed
        .iter()
        .filter(|i| i.name().root() == root || i.name().root() == longer_root)
        .map(|i| {
            (
                i.name().root().to_owned(),
                i.name().domain().to_owned(),
                i.keys(),
            )
        })
        .collect();
    ours.sort();
    assert_eq!(
        ours,
        vec![
            (root.clone(), "one".to_owned(), 5),
            (root.clone(), "two".to_owned(), 1),
            (longer_root.clone(), "one".to_owned(), 1),
        ]
    );
}
