//! SPEC 4: single-key operations.

use std::time::Duration;

use super::{Harness, assert_err, k};
use crate::{Driver, KeyTtl};

/// SPEC 4.1: `set` stores; `set_nx` stores only if the key is missing and says whether it did.
pub async fn set_and_set_nx<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    ns.set(&k("a"), "1", None).await.unwrap();
    ns.set(&k("a"), "2", None).await.unwrap();
    assert_eq!(
        ns.get(&k("a")).await.unwrap().as_deref(),
        Some(&b"2"[..]),
        "set overwrites"
    );
    assert!(!ns.set_nx(&k("a"), "3", None).await.unwrap());
    assert_eq!(
        ns.get(&k("a")).await.unwrap().as_deref(),
        Some(&b"2"[..]),
        "a losing set_nx wrote"
    );
    assert!(ns.set_nx(&k("b"), "1", Some(h.ttl())).await.unwrap());
    assert_eq!(ns.get(&k("b")).await.unwrap().as_deref(), Some(&b"1"[..]));
    assert!(
        ns.ttl(&k("b")).await.unwrap().remaining().is_some(),
        "set_nx stores its TTL"
    );
    assert!(!ns.set_nx(&k("b"), "2", None).await.unwrap());
    ns.delete(&k("b")).await.unwrap();
    assert!(
        ns.set_nx(&k("b"), "3", None).await.unwrap(),
        "set_nx after delete"
    );
}

/// `replace` (Redis `SET … XX`), by analogy with SPEC 4.1: stores only if the key is
/// present and says whether it did; a key missing, deleted or expired is never created.
pub async fn replace_only_present<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    assert!(
        !ns.replace(&k("a"), "1", None).await.unwrap(),
        "replace of a missing key"
    );
    assert!(!ns.exists(&k("a")).await.unwrap(), "replace created a key");
    ns.set(&k("a"), "1", None).await.unwrap();
    assert!(ns.replace(&k("a"), "2", None).await.unwrap());
    assert_eq!(ns.get(&k("a")).await.unwrap().as_deref(), Some(&b"2"[..]));
    assert!(
        ns.replace(&k("a"), "", None).await.unwrap(),
        "replace with the empty value"
    );
    assert_eq!(ns.get(&k("a")).await.unwrap().as_deref(), Some(&b""[..]));
    ns.incr(&k("n"), 7).await.unwrap();
    assert!(ns.replace(&k("n"), "x", None).await.unwrap());
    assert_eq!(
        ns.get(&k("n")).await.unwrap().as_deref(),
        Some(&b"x"[..]),
        "a counter is replaced like any value"
    );
    ns.delete(&k("a")).await.unwrap();
    assert!(
        !ns.replace(&k("a"), "3", Some(h.ttl())).await.unwrap(),
        "replace after delete"
    );
    assert_eq!(
        ns.get(&k("a")).await.unwrap(),
        None,
        "replace brought back a deleted key"
    );
}

/// SPEC 4.2: `get` returns the value or `None`; SPEC 4.3: `exists` says whether the key is
/// present.
pub async fn get_and_exists<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    assert_eq!(ns.get(&k("missing")).await.unwrap(), None);
    assert!(!ns.exists(&k("missing")).await.unwrap());
    ns.set(&k("a"), "value", None).await.unwrap();
    assert_eq!(
        ns.get(&k("a")).await.unwrap().as_deref(),
        Some(&b"value"[..])
    );
    assert!(ns.exists(&k("a")).await.unwrap());
    assert!(
        !ns.exists(&k("A")).await.unwrap(),
        "keys are case-sensitive"
    );
}

/// SPEC 4.3: `delete` says whether it removed a present key.
pub async fn delete_reports_presence<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    ns.set(&k("a"), "v", None).await.unwrap();
    assert!(ns.delete(&k("a")).await.unwrap());
    assert!(!ns.exists(&k("a")).await.unwrap());
    assert!(
        !ns.delete(&k("a")).await.unwrap(),
        "a second delete finds nothing"
    );
    assert!(!ns.delete(&k("never")).await.unwrap());
}

/// SPEC 4.4: counters are signed 64-bit integers in base-10 ASCII; a missing key counts as 0;
/// overflow is an error that leaves the value untouched.
pub async fn counters<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    assert_eq!(ns.incr(&k("n"), 1).await.unwrap(), 1);
    assert_eq!(ns.incr(&k("n"), 41).await.unwrap(), 42);
    assert_eq!(
        ns.get(&k("n")).await.unwrap().as_deref(),
        Some(&b"42"[..]),
        "a counter reads as ASCII"
    );
    assert_eq!(
        ns.mget([k("n")]).await.unwrap()[0].as_deref(),
        Some(&b"42"[..])
    );
    assert_eq!(ns.decr(&k("n"), 50).await.unwrap(), -8);
    assert_eq!(ns.get(&k("n")).await.unwrap().as_deref(), Some(&b"-8"[..]));
    assert_eq!(ns.incr(&k("n"), 0).await.unwrap(), -8);
    assert_eq!(
        ns.decr(&k("d"), 3).await.unwrap(),
        -3,
        "decr of a missing key starts from 0"
    );

    ns.set(&k("text"), "17", None).await.unwrap();
    assert_eq!(
        ns.incr(&k("text"), 3).await.unwrap(),
        20,
        "a value set as text counts"
    );
    assert!(
        ns.cas(&k("text"), "20", "21", None).await.unwrap(),
        "a counter compares as ASCII"
    );
    assert_eq!(
        ns.get_set(&k("text"), "5", None).await.unwrap().as_deref(),
        Some(&b"21"[..])
    );

    ns.set(&k("max"), i64::MAX.to_string(), None).await.unwrap();
    assert_err!(ns.incr(&k("max"), 1).await, Overflow, "i64::MAX + 1");
    assert_eq!(
        ns.get(&k("max")).await.unwrap().map(|v| v.to_vec()),
        Some(i64::MAX.to_string().into_bytes())
    );
    ns.set(&k("min"), i64::MIN.to_string(), None).await.unwrap();
    assert_err!(ns.decr(&k("min"), 1).await, Overflow, "i64::MIN - 1");
    assert_err!(ns.incr(&k("min"), -1).await, Overflow, "i64::MIN + -1");
    assert_eq!(ns.incr(&k("min"), i64::MAX).await.unwrap(), -1);
    assert_err!(
        ns.decr(&k("zero"), i64::MIN).await,
        Overflow,
        "decr by i64::MIN"
    );
    assert!(
        !ns.exists(&k("zero")).await.unwrap(),
        "an overflowing decr created the key"
    );
    assert_eq!(ns.incr(&k("big"), i64::MAX).await.unwrap(), i64::MAX);
    assert_err!(ns.incr(&k("big"), i64::MAX).await, Overflow, "MAX + MAX");
    assert_eq!(
        ns.get(&k("big")).await.unwrap().map(|v| v.to_vec()),
        Some(i64::MAX.to_string().into_bytes())
    );
}

/// SPEC 4.4: only the canonical form counts as an integer; anything else is a
/// not-an-integer error that leaves the value untouched.
pub async fn counter_canonical_form<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let bad = [
        "+1",
        " 1",
        "1 ",
        "007",
        "00",
        "-0",
        "1.5",
        "1e3",
        "",
        "-",
        "0x10",
        "abc",
        "１",
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999",
        "1\n",
    ];
    for (i, text) in bad.iter().enumerate() {
        let key = format!("bad{i}");
        ns.set(&key, *text, Some(h.ttl() * 100)).await.unwrap();
        assert_err!(ns.incr(&key, 1).await, NotAnInteger, "incr of {text:?}");
        assert_err!(ns.decr(&key, 1).await, NotAnInteger, "decr of {text:?}");
        assert_eq!(
            ns.get(&key).await.unwrap().as_deref(),
            Some(text.as_bytes()),
            "{text:?} was changed"
        );
        assert!(
            ns.ttl(&key).await.unwrap().remaining().is_some(),
            "{text:?} lost its TTL"
        );
    }
    ns.set(&k("binary"), vec![0xff, 0x00], None).await.unwrap();
    assert_err!(
        ns.incr(&k("binary"), 1).await,
        NotAnInteger,
        "incr of binary"
    );
    for (i, text) in [
        "0",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "10",
    ]
    .iter()
    .enumerate()
    {
        let key = format!("good{i}");
        ns.set(&key, *text, None).await.unwrap();
        let value: i64 = text.parse().unwrap();
        assert_eq!(
            ns.incr(&key, 0).await.unwrap(),
            value,
            "{text:?} is canonical"
        );
    }
}

/// SPEC 4.4: counters are exact over the whole i64 range: every operation that answers a
/// number answers exactly the stored integer, at and around 2^53 (where a double stops
/// counting every integer) and at the i64 bounds, whether it creates the key or not, with a
/// TTL on creation or without.
pub async fn counter_edge_values<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let p53 = 1i64 << 53;
    let edges = [
        p53 - 1,
        p53,
        p53 + 1,
        -p53 - 1,
        -p53,
        -p53 + 1,
        i64::MAX,
        i64::MAX - 1,
        i64::MIN,
        i64::MIN + 1,
        9_007_199_254_740_993,
        -9_007_199_254_740_993,
    ];
    let window = Duration::from_secs(600);
    for (i, &v) in edges.iter().enumerate() {
        let text = v.to_string();
        // Created by the increment itself, with and without a TTL.
        assert_eq!(ns.incr(&format!("new{i}"), v).await.unwrap(), v, "incr {v}");
        assert_eq!(
            ns.incr_with_ttl(&format!("ttl{i}"), v, window)
                .await
                .unwrap(),
            v,
            "incr_with_ttl {v} creating the key"
        );
        for key in [format!("new{i}"), format!("ttl{i}")] {
            assert_eq!(
                ns.get(&key).await.unwrap().as_deref(),
                Some(text.as_bytes()),
                "stored {v}"
            );
        }
        // Reached by a step from a stored neighbour, on each path.
        let step = if v > 0 { 1 } else { -1 };
        let from = (v - step).to_string();
        for (n, path) in ["incr", "incr_with_ttl", "decr"].iter().enumerate() {
            let key = format!("step{i}-{n}");
            ns.set(&key, from.clone(), None).await.unwrap();
            let got = match *path {
                "incr" => ns.incr(&key, step).await,
                "incr_with_ttl" => ns.incr_with_ttl(&key, step, window).await,
                _ => ns.decr(&key, -step).await,
            };
            assert_eq!(got.unwrap(), v, "{path} from {from} by {step}");
            assert_eq!(
                ns.get(&key).await.unwrap().as_deref(),
                Some(text.as_bytes()),
                "{path} stored {v}"
            );
        }
    }
    // One past the bounds is an overflow on every path, and changes nothing.
    ns.set(&k("max"), i64::MAX.to_string(), None).await.unwrap();
    ns.set(&k("min"), i64::MIN.to_string(), None).await.unwrap();
    assert_err!(ns.incr(&k("max"), 1).await, Overflow, "incr past i64::MAX");
    assert_err!(
        ns.incr_with_ttl(&k("max"), 1, window).await,
        Overflow,
        "incr_with_ttl past i64::MAX"
    );
    assert_err!(ns.decr(&k("min"), 1).await, Overflow, "decr past i64::MIN");
    assert_err!(
        ns.incr_with_ttl(&k("min"), -1, window).await,
        Overflow,
        "incr_with_ttl past i64::MIN"
    );
    assert_eq!(
        ns.get(&k("max")).await.unwrap().as_deref(),
        Some(i64::MAX.to_string().as_bytes())
    );
    assert_eq!(
        ns.get(&k("min")).await.unwrap().as_deref(),
        Some(i64::MIN.to_string().as_bytes())
    );
    assert_eq!(ns.ttl(&k("max")).await.unwrap(), KeyTtl::NoExpiry);
}

/// SPEC 4.4: the TTL given to an increment applies only when it creates the key.
pub async fn counter_ttl_on_create<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let window = h.ttl();
    assert_eq!(ns.incr_with_ttl(&k("hits"), 1, window).await.unwrap(), 1);
    let first = ns
        .ttl(&k("hits"))
        .await
        .unwrap()
        .remaining()
        .expect("the new counter expires");
    assert!(first <= window);
    h.pass(window / 2).await;
    assert_eq!(ns.incr_with_ttl(&k("hits"), 1, window).await.unwrap(), 2);
    let later = ns
        .ttl(&k("hits"))
        .await
        .unwrap()
        .remaining()
        .expect("the counter still expires");
    assert!(
        later < first,
        "an increment of an existing key reset its TTL: {later:?} >= {first:?}"
    );
    h.outlive(window / 2).await;
    assert_eq!(ns.get(&k("hits")).await.unwrap(), None, "the window ended");
    assert_eq!(
        ns.incr_with_ttl(&k("hits"), 1, window).await.unwrap(),
        1,
        "a new window starts"
    );
    assert!(ns.ttl(&k("hits")).await.unwrap().remaining().is_some());

    ns.set(&k("plain"), "5", None).await.unwrap();
    assert_eq!(ns.incr_with_ttl(&k("plain"), 1, window).await.unwrap(), 6);
    assert_eq!(ns.ttl(&k("plain")).await.unwrap(), KeyTtl::NoExpiry);
    assert_err!(
        ns.incr_with_ttl(&k("x"), 1, Duration::ZERO).await,
        InvalidTtl,
        "zero window"
    );
}

/// SPEC 4.5: `get_set` stores the new value and returns the previous one.
pub async fn get_set_returns_previous<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    assert_eq!(ns.get_set(&k("a"), "1", None).await.unwrap(), None);
    assert_eq!(
        ns.get_set(&k("a"), "2", None).await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(ns.get(&k("a")).await.unwrap().as_deref(), Some(&b"2"[..]));
    ns.incr(&k("n"), 7).await.unwrap();
    assert_eq!(
        ns.get_set(&k("n"), "x", None).await.unwrap().as_deref(),
        Some(&b"7"[..])
    );
}

/// SPEC 4.6: `cas` replaces only a present key whose value equals the expected bytes.
pub async fn compare_and_swap<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    assert!(
        !ns.cas(&k("a"), "", "1", None).await.unwrap(),
        "cas on a missing key"
    );
    assert!(!ns.exists(&k("a")).await.unwrap(), "cas created a key");
    ns.set(&k("a"), "1", None).await.unwrap();
    assert!(!ns.cas(&k("a"), "2", "3", None).await.unwrap());
    assert!(
        !ns.cas(&k("a"), "1 ", "3", None).await.unwrap(),
        "cas compares byte for byte"
    );
    assert!(!ns.cas(&k("a"), "", "3", None).await.unwrap());
    assert_eq!(ns.get(&k("a")).await.unwrap().as_deref(), Some(&b"1"[..]));
    assert!(ns.cas(&k("a"), "1", "3", None).await.unwrap());
    assert_eq!(ns.get(&k("a")).await.unwrap().as_deref(), Some(&b"3"[..]));
    ns.set(&k("bin"), vec![0u8, 255, 1], None).await.unwrap();
    assert!(
        ns.cas(&k("bin"), [0u8, 255, 1], vec![2u8], None)
            .await
            .unwrap()
    );
    assert_eq!(
        ns.get(&k("bin")).await.unwrap().as_deref(),
        Some(&[2u8][..])
    );
}

/// SPEC 4.6: `cad` deletes only a key whose value equals the expected bytes: the safe release
/// of a lock.
pub async fn compare_and_delete<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let lease = h.ttl();
    assert!(ns.set_nx(&k("lock"), "owner-1", Some(lease)).await.unwrap());
    assert!(!ns.set_nx(&k("lock"), "owner-2", Some(lease)).await.unwrap());
    assert!(
        !ns.cad(&k("lock"), "owner-2").await.unwrap(),
        "a non-owner released the lock"
    );
    assert!(ns.exists(&k("lock")).await.unwrap());
    assert!(ns.cad(&k("lock"), "owner-1").await.unwrap());
    assert!(!ns.exists(&k("lock")).await.unwrap());
    assert!(
        !ns.cad(&k("lock"), "owner-1").await.unwrap(),
        "cad on a missing key"
    );
    ns.incr(&k("n"), 12).await.unwrap();
    assert!(!ns.cad(&k("n"), "13").await.unwrap());
    assert!(
        ns.cad(&k("n"), "12").await.unwrap(),
        "a counter compares as ASCII"
    );
}
