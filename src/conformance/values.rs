//! SPEC 2: values.

use bytes::Bytes;

use super::{Harness, assert_err, k};
use crate::{Driver, MAX_VALUE_LEN};

/// SPEC 2.1: the empty value is a value; a value over 512 MiB is a value-too-large error for
/// every write, and nothing is written.
pub async fn empty_and_oversized_values<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    ns.set(&k("empty"), Bytes::new(), None).await.unwrap();
    assert_eq!(ns.get(&k("empty")).await.unwrap(), Some(Bytes::new()));
    assert!(ns.exists(&k("empty")).await.unwrap());
    assert_eq!(ns.mget([k("empty")]).await.unwrap(), [Some(Bytes::new())]);
    assert!(
        ns.cas(&k("empty"), b"", "now full", None).await.unwrap(),
        "cas from the empty value"
    );
    assert!(ns.set_nx(&k("empty2"), "", None).await.unwrap());
    assert!(
        !ns.set_nx(&k("empty2"), "x", None).await.unwrap(),
        "an empty value is present"
    );
    assert!(ns.cad(&k("empty2"), "").await.unwrap());

    // Zeroed memory from the allocator is mapped lazily: this costs no 512 MiB of RAM.
    let oversized = Bytes::from(vec![0u8; MAX_VALUE_LEN + 1]);
    ns.set(&k("kept"), "before", None).await.unwrap();
    assert_err!(
        ns.set(&k("big"), oversized.clone(), None).await,
        ValueTooLarge,
        "set"
    );
    assert_err!(
        ns.set_keep_ttl(&k("big"), oversized.clone()).await,
        ValueTooLarge,
        "set_keep_ttl"
    );
    assert_err!(
        ns.set_nx(&k("big"), oversized.clone(), None).await,
        ValueTooLarge,
        "set_nx"
    );
    assert_err!(
        ns.get_set(&k("kept"), oversized.clone(), None).await,
        ValueTooLarge,
        "get_set"
    );
    assert_err!(
        ns.cas(&k("kept"), "before", oversized.clone(), None).await,
        ValueTooLarge,
        "cas"
    );
    assert_err!(
        ns.mset(
            [
                (k("big"), oversized.clone()),
                (k("small"), Bytes::from_static(b"s"))
            ],
            None
        )
        .await,
        ValueTooLarge,
        "mset"
    );
    assert!(!ns.exists(&k("big")).await.unwrap());
    assert!(
        !ns.exists(&k("small")).await.unwrap(),
        "mset wrote part of a refused batch"
    );
    assert_eq!(
        ns.get(&k("kept")).await.unwrap().as_deref(),
        Some(&b"before"[..])
    );
}

/// SPEC 2.1: a value of exactly 512 MiB is accepted and reads back whole.
pub async fn largest_value<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let mut value = vec![0u8; MAX_VALUE_LEN];
    value[0] = 1;
    value[MAX_VALUE_LEN - 1] = 2;
    ns.set(&k("largest"), value, None).await.unwrap();
    let back = ns
        .get(&k("largest"))
        .await
        .unwrap()
        .expect("the largest value is stored");
    assert_eq!(back.len(), MAX_VALUE_LEN);
    assert_eq!((back[0], back[MAX_VALUE_LEN - 1]), (1, 2));
    drop(back);
    ns.delete(&k("largest")).await.unwrap();
}

/// SPEC 2.2: a value reads back as exactly the bytes written, and neither the caller's
/// buffers nor a value returned by `get` can change what is stored.
pub async fn values_round_trip<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let every_byte: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    ns.set(&k("binary"), every_byte.clone(), None)
        .await
        .unwrap();
    assert_eq!(
        ns.get(&k("binary")).await.unwrap().as_deref(),
        Some(&every_byte[..])
    );

    let utf8 = "héllo wörld ✓ 🦀";
    ns.set(&k("text"), utf8, None).await.unwrap();
    assert_eq!(
        ns.get(&k("text")).await.unwrap().as_deref(),
        Some(utf8.as_bytes())
    );

    // A buffer the caller keeps mutating after `set` does not reach the store.
    let mut buffer = bytes::BytesMut::from(&b"original"[..]);
    ns.set(&k("owned"), buffer.clone().freeze(), None)
        .await
        .unwrap();
    buffer[0] = b'X';
    buffer.extend_from_slice(b"-more");
    assert_eq!(
        ns.get(&k("owned")).await.unwrap().as_deref(),
        Some(&b"original"[..])
    );

    // A value handed out by `get` cannot be turned into a mutable buffer over the stored one.
    let read = ns.get(&k("owned")).await.unwrap().unwrap();
    if let Ok(mut unique) = read.try_into_mut() {
        unique[0] = b'Y';
    }
    assert_eq!(
        ns.get(&k("owned")).await.unwrap().as_deref(),
        Some(&b"original"[..])
    );

    // The same holds for every read path.
    let (via_mget, via_get_set) = (
        ns.mget([k("owned")])
            .await
            .unwrap()
            .pop()
            .flatten()
            .unwrap(),
        ns.get_set(&k("owned"), "next", None)
            .await
            .unwrap()
            .unwrap(),
    );
    assert_eq!(
        (&via_mget[..], &via_get_set[..]),
        (&b"original"[..], &b"original"[..])
    );
    assert_eq!(
        ns.get(&k("owned")).await.unwrap().as_deref(),
        Some(&b"next"[..])
    );
}
