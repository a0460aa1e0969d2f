//! SPEC 8: errors, and no panics on any input.

use std::time::Duration;

use bytes::Bytes;

use super::{Harness, k};
use crate::{Driver, ErrorKind};

/// SPEC 8.1, 8.2: bad input of every kind gets its own error variant, a message naming the
/// argument, and leaves the store unchanged; odd but valid input works; nothing panics.
pub async fn bad_input_leaves_store_unchanged<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    ns.set(&k("a"), "kept", None).await.unwrap();
    ns.set(&k("t"), "text", None).await.unwrap();

    let e = ns.set(&String::new(), "v", None).await.unwrap_err();
    assert!(
        e.kind() == ErrorKind::InvalidKey && e.to_string().contains("key"),
        "{e}"
    );
    let e = ns.keys("[oops").await.unwrap_err();
    assert!(
        e.kind() == ErrorKind::InvalidPattern && e.to_string().contains("[oops"),
        "{e}"
    );
    let e = ns
        .set(&k("a"), "v", Some(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(
        e.kind() == ErrorKind::InvalidTtl && e.to_string().contains("TTL"),
        "{e}"
    );
    let e = ns.incr(&k("t"), 1).await.unwrap_err();
    assert!(
        e.kind() == ErrorKind::NotAnInteger && e.to_string().contains("\"t\""),
        "{e}"
    );
    ns.set(&k("max"), i64::MAX.to_string(), None).await.unwrap();
    let e = ns.incr(&k("max"), 1).await.unwrap_err();
    assert!(
        e.kind() == ErrorKind::Overflow && e.to_string().contains("\"max\""),
        "{e}"
    );
    let e = crate::Namespace::<String, D>::new(h.driver().clone(), "ok", "bad:domain").unwrap_err();
    assert!(e.to_string().contains("domain"), "{e}");
    let huge = Bytes::from(vec![0u8; crate::MAX_VALUE_LEN + 1]);
    let e = ns.set(&k("a"), huge, None).await.unwrap_err();
    assert!(
        e.kind() == ErrorKind::ValueTooLarge && e.to_string().contains("\"a\""),
        "{e}"
    );
    let long_key = "é".repeat(3000);
    let e = ns.get(&long_key).await.unwrap_err();
    assert!(
        e.to_string().len() < 400,
        "an error message repeats a 6 KB key: {} bytes",
        e.to_string().len()
    );

    // A battery of odd input: each call returns, with a value or an error.
    let crabs = "🦀".repeat(1024);
    let odd_keys = [
        "\0",
        "\u{10FFFF}",
        "\u{FEFF}",
        "*?[]\\{}",
        "\r\n",
        crabs.as_str(),
    ];
    let odd_patterns = [
        "", "\\", "[", "]", "[]", "[^]", "[\\", "***", "?*?*", "[z-a]", "[--]", "[]]", "\\\\",
    ];
    for key in odd_keys {
        let key = k(key);
        let _ = ns.set(&key, "v", Some(Duration::from_nanos(1))).await;
        let _ = ns.incr(&key, i64::MIN).await;
        let _ = ns.decr(&key, i64::MIN).await;
        let _ = ns.expire(&key, Duration::MAX).await;
        let _ = ns
            .cas(&key, [0xffu8; 3], Bytes::new(), Some(Duration::MAX))
            .await;
        let _ = ns.delete(&key).await;
    }
    for pattern in odd_patterns {
        let _ = ns.keys(pattern).await;
        let _ = ns.scan(pattern);
    }
    assert_eq!(
        ns.get(&k("a")).await.unwrap().as_deref(),
        Some(&b"kept"[..]),
        "bad input changed the store"
    );
    assert_eq!(
        ns.get(&k("t")).await.unwrap().as_deref(),
        Some(&b"text"[..])
    );
}
