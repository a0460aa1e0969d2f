//! SPEC 3: expiry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_core::Stream;

use super::{Harness, assert_err, k};
use crate::{Driver, KeyTtl, Ttl};

fn expires_within(state: KeyTtl, at_most: Duration, what: &str) {
    match state {
        KeyTtl::ExpiresIn(left) => {
            assert!(
                !left.is_zero() && left <= at_most,
                "{what}: {left:?} left, expected in (0, {at_most:?}]"
            );
        }
        other => panic!("{what}: expected a TTL of at most {at_most:?}, got {other:?}"),
    }
}

/// SPEC 3.1: a zero TTL and a TTL over [`Ttl::MAX`] are invalid-TTL errors on every write,
/// and nothing is written; a non-zero TTL under 1 ms counts as 1 ms.
pub async fn ttl_validation<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    ns.set(&k("present"), "v", None).await.unwrap();
    let too_long = Ttl::MAX.as_duration() + Duration::from_millis(1);
    for bad in [Duration::ZERO, too_long, Duration::MAX] {
        let t = Some(bad);
        assert_err!(
            ns.set(&k("new"), "v", t).await,
            InvalidTtl,
            "set ttl {bad:?}"
        );
        assert_err!(
            ns.set_nx(&k("new"), "v", t).await,
            InvalidTtl,
            "set_nx ttl {bad:?}"
        );
        assert_err!(
            ns.get_set(&k("present"), "w", t).await,
            InvalidTtl,
            "get_set ttl {bad:?}"
        );
        assert_err!(
            ns.cas(&k("present"), "v", "w", t).await,
            InvalidTtl,
            "cas ttl {bad:?}"
        );
        assert_err!(
            ns.replace(&k("present"), "w", t).await,
            InvalidTtl,
            "replace ttl {bad:?}"
        );
        assert_err!(
            ns.mset([(k("new"), "v")], t).await,
            InvalidTtl,
            "mset ttl {bad:?}"
        );
        assert_err!(
            ns.incr_with_ttl(&k("new"), 1, bad).await,
            InvalidTtl,
            "incr ttl {bad:?}"
        );
    }
    assert_err!(
        ns.expire(&k("present"), too_long).await,
        InvalidTtl,
        "expire over the maximum"
    );
    assert!(
        !ns.exists(&k("new")).await.unwrap(),
        "a refused TTL wrote a key"
    );
    assert_eq!(
        ns.get(&k("present")).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(ns.ttl(&k("present")).await.unwrap(), KeyTtl::NoExpiry);

    // The longest TTL is accepted.
    ns.set(&k("longest"), "v", Some(Ttl::MAX.as_duration()))
        .await
        .unwrap();
    expires_within(
        ns.ttl(&k("longest")).await.unwrap(),
        Ttl::MAX.as_duration(),
        "longest TTL",
    );

    // Sub-millisecond TTLs count as 1 ms.
    ns.set(&k("tiny"), "v", Some(Duration::from_micros(1)))
        .await
        .unwrap();
    match ns.ttl(&k("tiny")).await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert_eq!(left, Duration::from_millis(1), "a 1 µs TTL is 1 ms"),
        // In real time the millisecond may be over before `ttl` runs.
        KeyTtl::Missing if !h.is_manual() => {}
        other => panic!("a 1 µs TTL: expected 1 ms left, got {other:?}"),
    }
    h.outlive(Duration::from_millis(1)).await;
    assert!(
        !ns.exists(&k("tiny")).await.unwrap(),
        "a 1 µs TTL key outlived 1 ms"
    );
    if h.is_manual() {
        ns.set(&k("fraction"), "v", Some(Duration::from_micros(2500)))
            .await
            .unwrap();
        assert_eq!(
            ns.ttl(&k("fraction")).await.unwrap(),
            KeyTtl::ExpiresIn(Duration::from_millis(2))
        );
    }
}

/// SPEC 3.2: from the instant a key expires every operation treats it as missing, and
/// nothing resurrects it.
pub async fn expired_is_missing<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let ttl = h.ttl();
    let names = [
        "get", "exists", "mget", "ttl", "keys", "set_nx", "replace", "incr", "cas", "cad",
        "delete", "expire", "persist", "get_set", "mdel",
    ];
    ns.mset(names.iter().map(|n| (k(n), "old")), Some(ttl))
        .await
        .unwrap();
    ns.set(&k("live"), "v", None).await.unwrap();
    if h.is_manual() {
        // One millisecond before the deadline, everything is still there.
        h.pass(ttl - Duration::from_millis(1)).await;
        assert_eq!(ns.keys("*").await.unwrap().len(), names.len() + 1);
        h.pass(Duration::from_millis(1)).await;
    } else {
        h.outlive(ttl).await;
    }

    assert_eq!(ns.get(&k("get")).await.unwrap(), None);
    assert!(!ns.exists(&k("exists")).await.unwrap());
    assert_eq!(ns.mget([k("mget"), k("live")]).await.unwrap()[0], None);
    assert_eq!(ns.ttl(&k("ttl")).await.unwrap(), KeyTtl::Missing);
    assert_eq!(ns.keys("*").await.unwrap(), [k("live")]);
    let mut scan = ns.scan("*").unwrap();
    let mut scanned = Vec::new();
    while let Some(key) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut scan).poll_next(cx)).await
    {
        scanned.push(key.unwrap());
    }
    assert_eq!(scanned, [k("live")]);
    assert!(ns.set_nx(&k("set_nx"), "new", None).await.unwrap());
    assert_eq!(
        ns.get(&k("set_nx")).await.unwrap().as_deref(),
        Some(&b"new"[..])
    );
    assert_eq!(
        ns.incr(&k("incr"), 5).await.unwrap(),
        5,
        "incr of an expired key starts from 0"
    );
    assert_eq!(
        ns.ttl(&k("incr")).await.unwrap(),
        KeyTtl::NoExpiry,
        "the recreated counter has no TTL"
    );
    assert!(!ns.replace(&k("replace"), "new", None).await.unwrap());
    assert!(
        !ns.exists(&k("replace")).await.unwrap(),
        "replace resurrected a key"
    );
    assert!(!ns.cas(&k("cas"), "old", "new", None).await.unwrap());
    assert!(!ns.exists(&k("cas")).await.unwrap());
    assert!(!ns.cad(&k("cad"), "old").await.unwrap());
    assert!(!ns.delete(&k("delete")).await.unwrap());
    assert!(
        !ns.expire(&k("expire"), Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(
        !ns.exists(&k("expire")).await.unwrap(),
        "expire resurrected a key"
    );
    assert!(!ns.expire(&k("expire"), Duration::ZERO).await.unwrap());
    assert!(!ns.persist(&k("persist")).await.unwrap());
    assert!(
        !ns.exists(&k("persist")).await.unwrap(),
        "persist resurrected a key"
    );
    assert_eq!(ns.get_set(&k("get_set"), "new", None).await.unwrap(), None);
    assert_eq!(ns.mdel([k("mdel"), k("mdel")]).await.unwrap(), 0);
}

/// SPEC 3.3: `set` replaces the TTL with the one given (none clears it), unless asked to keep
/// the existing TTL.
pub async fn set_replaces_ttl<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let ttl = h.ttl();
    ns.set(&k("a"), "1", Some(ttl)).await.unwrap();
    ns.set(&k("a"), "2", None).await.unwrap();
    assert_eq!(
        ns.ttl(&k("a")).await.unwrap(),
        KeyTtl::NoExpiry,
        "set without TTL clears the TTL"
    );

    ns.set(&k("b"), "1", Some(ttl)).await.unwrap();
    ns.set(&k("b"), "2", Some(ttl * 20)).await.unwrap();
    let left = ns
        .ttl(&k("b"))
        .await
        .unwrap()
        .remaining()
        .expect("b expires");
    assert!(
        left > ttl && left <= ttl * 20,
        "set replaced the TTL: {left:?} left"
    );

    ns.set(&k("keep"), "1", Some(ttl)).await.unwrap();
    ns.set_keep_ttl(&k("keep"), "2").await.unwrap();
    expires_within(ns.ttl(&k("keep")).await.unwrap(), ttl, "set_keep_ttl");
    ns.set(&k("keep-none"), "1", None).await.unwrap();
    ns.set_keep_ttl(&k("keep-none"), "2").await.unwrap();
    assert_eq!(ns.ttl(&k("keep-none")).await.unwrap(), KeyTtl::NoExpiry);
    ns.set_keep_ttl(&k("keep-new"), "1").await.unwrap();
    assert_eq!(
        ns.ttl(&k("keep-new")).await.unwrap(),
        KeyTtl::NoExpiry,
        "a new key has no TTL to keep"
    );
    assert_eq!(
        ns.get(&k("keep")).await.unwrap().as_deref(),
        Some(&b"2"[..])
    );

    h.outlive(ttl).await;
    assert!(
        !ns.exists(&k("keep")).await.unwrap(),
        "a kept TTL still expires at its deadline"
    );
    assert!(ns.exists(&k("a")).await.unwrap());
    assert!(ns.exists(&k("b")).await.unwrap());
    // Keeping the TTL of an expired key creates a new key without one.
    ns.set_keep_ttl(&k("keep"), "3").await.unwrap();
    assert_eq!(ns.ttl(&k("keep")).await.unwrap(), KeyTtl::NoExpiry);
}

/// SPEC 3.4: `incr`/`decr` keep the key's TTL; `get_set`, `cas` (and `replace`) store the
/// TTL they are given.
pub async fn ttl_of_counters_and_swaps<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let ttl = h.ttl();
    ns.set(&k("n"), "1", Some(ttl)).await.unwrap();
    ns.incr(&k("n"), 1).await.unwrap();
    ns.decr(&k("n"), 5).await.unwrap();
    expires_within(ns.ttl(&k("n")).await.unwrap(), ttl, "incr keeps the TTL");
    ns.set(&k("plain"), "1", None).await.unwrap();
    ns.incr_with_ttl(&k("plain"), 1, ttl).await.unwrap();
    assert_eq!(
        ns.ttl(&k("plain")).await.unwrap(),
        KeyTtl::NoExpiry,
        "incr on an existing key adds no TTL"
    );

    ns.set(&k("gs"), "1", Some(ttl)).await.unwrap();
    ns.get_set(&k("gs"), "2", None).await.unwrap();
    assert_eq!(
        ns.ttl(&k("gs")).await.unwrap(),
        KeyTtl::NoExpiry,
        "get_set without TTL clears it"
    );
    ns.get_set(&k("gs"), "3", Some(ttl)).await.unwrap();
    expires_within(
        ns.ttl(&k("gs")).await.unwrap(),
        ttl,
        "get_set stores its TTL",
    );

    ns.set(&k("cas"), "1", Some(ttl)).await.unwrap();
    assert!(ns.cas(&k("cas"), "1", "2", None).await.unwrap());
    assert_eq!(
        ns.ttl(&k("cas")).await.unwrap(),
        KeyTtl::NoExpiry,
        "cas without TTL clears it"
    );
    assert!(ns.cas(&k("cas"), "2", "3", Some(ttl)).await.unwrap());
    expires_within(ns.ttl(&k("cas")).await.unwrap(), ttl, "cas stores its TTL");

    ns.set(&k("replace"), "1", Some(ttl)).await.unwrap();
    assert!(ns.replace(&k("replace"), "2", None).await.unwrap());
    assert_eq!(
        ns.ttl(&k("replace")).await.unwrap(),
        KeyTtl::NoExpiry,
        "replace without TTL clears it"
    );
    assert!(ns.replace(&k("replace"), "3", Some(ttl)).await.unwrap());
    expires_within(
        ns.ttl(&k("replace")).await.unwrap(),
        ttl,
        "replace stores its TTL",
    );

    h.outlive(ttl).await;
    for key in ["n", "gs", "cas", "replace"] {
        assert!(!ns.exists(&k(key)).await.unwrap(), "{key} outlived its TTL");
    }
    assert!(ns.exists(&k("plain")).await.unwrap());
}

/// SPEC 3.5: `ttl` tells missing, present without expiry, and the time left, which is more
/// than zero and at most the TTL set.
pub async fn ttl_answers<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let ttl = h.ttl();
    assert_eq!(ns.ttl(&k("missing")).await.unwrap(), KeyTtl::Missing);
    ns.set(&k("forever"), "v", None).await.unwrap();
    assert_eq!(ns.ttl(&k("forever")).await.unwrap(), KeyTtl::NoExpiry);
    ns.set(&k("timed"), "v", Some(ttl)).await.unwrap();
    // The server started the TTL no later than this.
    let set_done = Instant::now();
    expires_within(ns.ttl(&k("timed")).await.unwrap(), ttl, "fresh TTL");
    h.pass(ttl / 2).await;
    // ...and reads the time left no earlier than this.
    let asked = Instant::now();
    let left = ns.ttl(&k("timed")).await.unwrap();
    if h.is_manual() {
        assert_eq!(left, KeyTtl::ExpiresIn(ttl / 2), "the TTL counts down");
    } else if let KeyTtl::ExpiresIn(left) = left {
        let bound = ttl.saturating_sub(asked - set_done) + Duration::from_millis(1);
        assert!(left <= bound, "{left:?} left after half the TTL");
    }
    assert!(KeyTtl::NoExpiry.exists() && !KeyTtl::Missing.exists());
}

/// SPEC 3.6: `expire` sets a TTL on a present key and says whether it existed; a zero
/// duration deletes at once. `persist` removes a TTL and says whether one was removed.
pub async fn expire_and_persist<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let ttl = h.ttl();
    ns.set(&k("a"), "v", None).await.unwrap();
    assert!(ns.expire(&k("a"), ttl).await.unwrap());
    expires_within(ns.ttl(&k("a")).await.unwrap(), ttl, "expire");
    assert!(!ns.expire(&k("missing"), ttl).await.unwrap());
    assert!(
        !ns.exists(&k("missing")).await.unwrap(),
        "expire created a key"
    );

    ns.set(&k("zero"), "v", Some(ttl)).await.unwrap();
    assert!(
        ns.expire(&k("zero"), Duration::ZERO).await.unwrap(),
        "expire 0 reports the key existed"
    );
    assert!(
        !ns.exists(&k("zero")).await.unwrap(),
        "expire 0 deletes at once"
    );
    assert!(!ns.expire(&k("zero"), Duration::ZERO).await.unwrap());

    assert!(ns.persist(&k("a")).await.unwrap());
    assert_eq!(ns.ttl(&k("a")).await.unwrap(), KeyTtl::NoExpiry);
    assert!(!ns.persist(&k("a")).await.unwrap(), "no TTL left to remove");
    assert!(!ns.persist(&k("missing")).await.unwrap());

    ns.set(&k("b"), "v", Some(ttl)).await.unwrap();
    h.outlive(ttl).await;
    assert!(ns.exists(&k("a")).await.unwrap(), "persist kept the key");
    assert!(!ns.expire(&k("b"), ttl).await.unwrap());
    assert!(!ns.persist(&k("b")).await.unwrap());
    assert!(
        !ns.exists(&k("b")).await.unwrap(),
        "an expired key came back"
    );
}

/// SPEC 3.7: expired entries are reclaimed in the background even if nobody touches them;
/// keys without a TTL, and keys not yet expired, stay.
pub async fn background_reclamation<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let ttl = h.ttl();
    let before = h.stored_entries(ns.name());
    let count = 2000;
    ns.mset((0..count).map(|i| (format!("short{i}"), "v")), Some(ttl))
        .await
        .unwrap();
    ns.mset((0..10).map(|i| (format!("long{i}"), "v")), Some(ttl * 1000))
        .await
        .unwrap();
    ns.mset((0..10).map(|i| (format!("kept{i}"), "v")), None)
        .await
        .unwrap();
    assert!(h.stored_entries(ns.name()) >= before + count + 20);
    h.outlive(ttl).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.stored_entries(ns.name()) > before + 20 {
        assert!(
            Instant::now() < deadline,
            "{} entries still stored 20 s after they expired",
            h.stored_entries(ns.name()) - before - 20
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        h.stored_entries(ns.name()),
        before + 20,
        "a live key was reclaimed"
    );
    assert_eq!(ns.keys("*").await.unwrap().len(), 20);
}

/// SPEC 3.2, 7.1: an expired key never comes back. A key with a short TTL is read over and
/// over while another task keeps giving it a new short TTL with `expire` (and, in odd rounds,
/// ends with `persist`), so that writes keep deciding whether the key is still live just as
/// it expires: once a read has answered "missing", no read may see the key again, whichever
/// way each racing write decided. 200 rounds.
pub async fn expired_stays_expired<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let ttl = Duration::from_millis(20);
    let short = Duration::from_millis(2);
    for round in 0..200u32 {
        let key = format!("k{round}");
        ns.set(&key, "v", Some(ttl)).await.unwrap();
        h.pass(ttl - Duration::from_millis(3)).await;
        let racing = Arc::new(AtomicBool::new(true));
        let racer = {
            let (ns, key, racing) = (ns.clone(), key.clone(), Arc::clone(&racing));
            tokio::spawn(async move {
                for n in 0..40 {
                    let live = if round % 2 == 1 && n == 4 + round % 7 {
                        ns.persist(&key).await.unwrap()
                    } else {
                        ns.expire(&key, short).await.unwrap()
                    };
                    if !live {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                racing.store(false, Ordering::SeqCst);
            })
        };
        let mut gone = false;
        let mut reads = 0u32;
        let mut quiet_since = None;
        // Read while the writes race, then until the last TTL they set is well past.
        loop {
            let present = match reads % 3 {
                0 => ns.get(&key).await.unwrap().is_some(),
                1 => ns.exists(&key).await.unwrap(),
                _ => ns.ttl(&key).await.unwrap().exists(),
            };
            match (present, gone) {
                (false, _) => gone = true,
                (true, true) => panic!(
                    "round {round}: key {key:?} was seen again after a read found it expired"
                ),
                (true, false) => {}
            }
            reads += 1;
            if h.is_manual() {
                h.pass(Duration::from_micros(100)).await;
            }
            if !racing.load(Ordering::SeqCst) {
                let since = *quiet_since.get_or_insert(h.elapsed());
                if reads >= 50 && h.elapsed() > since + short * 2 + h.clock_slack() {
                    break;
                }
            }
            tokio::task::yield_now().await;
        }
        racer.await.expect("the racing task panicked");
        ns.delete(&key).await.unwrap();
    }
}
