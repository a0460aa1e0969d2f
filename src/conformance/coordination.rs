//! The helpers built on the operations: the rate limiter ([`crate::rate_limit`]) and locks
//! ([`crate::lock`]). No SPEC section of their own: they rest on SPEC 4 (counters with a TTL
//! on creation), 5 (compare-and-swap, compare-and-delete) and 7 (atomicity); these tests hold
//! every driver to the promises their docs make.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use super::{Harness, assert_err, k};
use crate::eviction::Eviction;
use crate::lock::Lock;
use crate::rate_limit::RateLimiter;
use crate::{Driver, ErrorKind, KeyTtl};

/// The rate limiter allows exactly `limit` requests per window however many tasks ask at
/// once, tells the denied when the window ends, starts again in the next window, and leaves
/// counters that expire.
pub async fn rate_limiter<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let window = Duration::from_secs(10);
    // A window-aligned time of our own, so the test does not straddle a boundary.
    let now_ms = Arc::new(AtomicU64::new(1_700_000_000_000 + 2_500));
    let clock = {
        let now_ms = Arc::clone(&now_ms);
        move || UNIX_EPOCH + Duration::from_millis(now_ms.load(Ordering::SeqCst))
    };
    assert_err!(
        RateLimiter::new(ns.clone(), 5, Duration::ZERO),
        InvalidTtl,
        "a zero window"
    );
    assert_err!(
        RateLimiter::new(ns.clone(), 5, Duration::from_micros(1_500)),
        InvalidTtl,
        "a window of a fraction of a millisecond"
    );
    let limiter = RateLimiter::new(ns.clone(), 5, window)
        .unwrap()
        .with_clock(clock);

    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let mut decisions = Vec::new();
                for _ in 0..4 {
                    decisions.push(limiter.check(&k("client")).await.unwrap());
                }
                decisions
            })
        })
        .collect();
    let mut decisions = Vec::new();
    for task in tasks {
        decisions.extend(task.await.expect("a task panicked"));
    }
    let allowed: Vec<_> = decisions.iter().filter(|d| d.allowed).collect();
    assert_eq!(allowed.len(), 5, "exactly the limit allowed: {decisions:?}");
    let mut remaining: Vec<u64> = allowed.iter().map(|d| d.remaining).collect();
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        [0, 1, 2, 3, 4],
        "each allowed request saw its own count"
    );
    for d in &decisions {
        assert_eq!(d.limit, 5);
        assert_eq!(d.window, 170_000_000, "the window's number");
        assert_eq!(d.reset_after, Duration::from_millis(7_500), "{d:?}");
        if d.allowed {
            assert_eq!(d.retry_after, None);
        } else {
            assert_eq!(d.remaining, 0);
            assert_eq!(d.retry_after, Some(Duration::from_millis(7_500)));
        }
    }
    // Another key has its own count.
    assert!(limiter.check(&k("other")).await.unwrap().allowed);

    // The last millisecond of the window is still in it; the next one starts again.
    now_ms.fetch_add(7_499, Ordering::SeqCst);
    let last = limiter.check(&k("client")).await.unwrap();
    assert!(!last.allowed);
    assert_eq!(last.retry_after, Some(Duration::from_millis(1)));
    now_ms.fetch_add(1, Ordering::SeqCst);
    let next = limiter.check(&k("client")).await.unwrap();
    assert!(next.allowed, "a new window: {next:?}");
    assert_eq!((next.window, next.remaining), (170_000_001, 4));
    assert_eq!(next.reset_after, window);

    // A cost counts as that many requests, all or nothing.
    let batch = limiter.check_n(&k("batch"), 3).await.unwrap();
    assert!(batch.allowed);
    assert_eq!(batch.remaining, 2);
    assert!(!limiter.check_n(&k("batch"), 3).await.unwrap().allowed);

    // A cost over the limit is denied, counts nothing (the key's other requests keep what
    // is left of the window) and gets no `retry_after`: no window allows it. Nor is it an
    // error (which a caller letting requests through when the store fails would let
    // through), however large.
    let fits = limiter.check_n(&k("flood"), 2).await.unwrap();
    assert!(fits.allowed);
    for cost in [6, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX] {
        let over = limiter.check_n(&k("flood"), cost).await.unwrap();
        assert!(!over.allowed, "cost {cost}: {over:?}");
        assert_eq!(over.remaining, 3, "cost {cost}: nothing counted: {over:?}");
        assert_eq!(over.retry_after, None, "cost {cost}: {over:?}");
    }
    let rest = limiter.check_n(&k("flood"), 3).await.unwrap();
    assert!(rest.allowed, "what was left of the window: {rest:?}");
    let past = limiter.check(&k("flood")).await.unwrap();
    assert!(!past.allowed);
    assert_eq!(
        past.retry_after,
        Some(past.reset_after),
        "the next window will"
    );
    // A limit of 0 allows nothing, ever.
    let closed = RateLimiter::new(ns.clone(), 0, window)
        .unwrap()
        .check(&k("closed"))
        .await
        .unwrap();
    assert!(!closed.allowed);
    assert_eq!((closed.remaining, closed.retry_after), (0, None));
    // With a limit past what the count can hold, a cost taking it past `i64::MAX` is denied
    // and counts nothing.
    let vast = RateLimiter::new(ns.clone(), u64::MAX, window)
        .unwrap()
        .with_clock(move || UNIX_EPOCH + Duration::from_millis(1_700_000_010_000));
    assert!(
        vast.check_n(&k("vast"), i64::MAX as u64 - 1)
            .await
            .unwrap()
            .allowed
    );
    for cost in [2, i64::MAX as u64, u64::MAX] {
        let beyond = vast.check_n(&k("vast"), cost).await.unwrap();
        assert!(!beyond.allowed, "cost {cost}: {beyond:?}");
        assert_eq!(
            beyond.remaining,
            u64::MAX - (i64::MAX as u64 - 1),
            "cost {cost}"
        );
        assert_eq!(beyond.retry_after, Some(beyond.reset_after), "cost {cost}");
    }
    assert!(
        vast.check(&k("vast")).await.unwrap().allowed,
        "the last the count holds"
    );

    // The counters expire: at most two windows after they were created.
    let counters = h.named::<(String, u64)>(ns.name().root(), ns.name().domain());
    match counters.ttl(&(k("client"), 170_000_001)).await.unwrap() {
        KeyTtl::ExpiresIn(ttl) => assert!(ttl <= 2 * window && ttl > window, "{ttl:?}"),
        other => panic!("a window's counter without its TTL: {other:?}"),
    }

    // A request decided at a window's end can reach the store a while later: a window's
    // worth of the store's time after the count was full, it must still be counted in it.
    let window = h.ttl();
    let late = RateLimiter::new(h.namespace::<String>(), 2, window)
        .unwrap()
        .with_clock(|| UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    assert!(late.check(&k("client")).await.unwrap().allowed);
    assert!(late.check(&k("client")).await.unwrap().allowed);
    h.outlive(window).await;
    let decision = late.check(&k("client")).await.unwrap();
    assert!(
        !decision.allowed,
        "the window's count started again: {decision:?}"
    );
}

/// Cache-aside reads ([`crate::load`]): a hit never loads; concurrent misses of one key load
/// it once and all get the value, stored with its TTL; a failed load stores nothing and the
/// next caller loads; an invalid TTL is refused before anything is loaded.
pub async fn get_or_load<D: Driver>(h: &Harness<D>) {
    use crate::load::LoadError;
    use bytes::Bytes;

    let ns = h.namespace::<String>();
    let ttl = h.ttl();
    let loads = Arc::new(AtomicUsize::new(0));
    let load = |value: &'static str| {
        let loads = Arc::clone(&loads);
        move || async move {
            loads.fetch_add(1, Ordering::SeqCst);
            // Long enough for every task to miss and wait.
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, std::io::Error>(Bytes::from_static(value.as_bytes()))
        }
    };

    // A hit: the stored value, no load.
    ns.set(&k("hit"), "stored", None).await.unwrap();
    let hit = ns.get_or_load(&k("hit"), Some(ttl), load("loaded")).await;
    assert_eq!(hit.unwrap(), "stored");
    assert_eq!(loads.load(Ordering::SeqCst), 0, "a hit loaded");

    // Eight tasks miss one key at once: one load, the same value for all, stored with `ttl`.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let ns = ns.clone();
            let load = load("loaded");
            tokio::spawn(async move { ns.get_or_load(&k("herd"), Some(ttl), load).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("a task panicked").unwrap(), "loaded");
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "the misses were not coalesced"
    );
    assert_eq!(ns.get(&k("herd")).await.unwrap().unwrap(), "loaded");
    match ns.ttl(&k("herd")).await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(left <= ttl, "{left:?}"),
        other => panic!("a loaded value without its TTL: {other:?}"),
    }

    // A failed load: its error, nothing stored; the next caller loads.
    let failed = ns
        .get_or_load(&k("failing"), None, || async {
            Err::<Bytes, _>(std::io::Error::other("the database is down"))
        })
        .await;
    match failed {
        Err(LoadError::Load(e)) => assert_eq!(e.to_string(), "the database is down"),
        other => panic!("expected the load's error, got {other:?}"),
    }
    assert_eq!(ns.get(&k("failing")).await.unwrap(), None);
    let again = ns.get_or_load(&k("failing"), None, load("back")).await;
    assert_eq!(again.unwrap(), "back");
    assert_eq!(loads.load(Ordering::SeqCst), 2);

    // An invalid TTL is refused before the load runs.
    match ns
        .get_or_load(&k("bad ttl"), Some(Duration::ZERO), load("never"))
        .await
    {
        Err(LoadError::Store(e)) => assert_eq!(e.kind(), ErrorKind::InvalidTtl, "{e}"),
        other => panic!("expected InvalidTtl, got {other:?}"),
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        2,
        "loaded for a write that cannot be"
    );
}

/// Locks: one holder at a time among contending tasks, tokens strictly increasing from one
/// holder to the next, and a holder whose lease ran out can neither renew nor release the
/// next holder's lock. On a driver whose namespaces may be evicted (a memory store with a
/// budget, in `any` or `with-ttl` mode), only that a lock refuses such a namespace.
pub async fn locks<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    let name = k("job");
    if ns.eviction() != Eviction::Never {
        let refused = Lock::new(ns, Duration::from_secs(60)).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::InvalidNamespace, "{refused}");
        return;
    }

    // Taken, refused while held, released, taken again with a higher token.
    let locks = Lock::new(ns.clone(), Duration::from_secs(60)).unwrap();
    assert_eq!(locks.last_token(&name).await.unwrap(), 0);
    let first = locks.try_acquire(&name).await.unwrap().expect("free");
    assert_eq!(first.token(), 1);
    assert_eq!(locks.last_token(&name).await.unwrap(), 1);
    assert!(locks.try_acquire(&name).await.unwrap().is_none(), "held");
    assert!(first.is_held().await.unwrap());
    assert!(first.renew().await.unwrap());
    assert!(first.release().await.unwrap());
    let second = locks.try_acquire(&name).await.unwrap().expect("released");
    assert!(second.token() > 1);
    assert!(second.release().await.unwrap());
    // Another name is another lock.
    let other = locks.try_acquire(&k("other")).await.unwrap().expect("free");
    assert_eq!(other.token(), 1);

    // A lease that runs out ends the hold; the stale holder cannot touch the next one's lock.
    let lease = h.ttl();
    let short = Lock::new(ns.clone(), lease).unwrap();
    let stale = short
        .try_acquire(&k("leased"))
        .await
        .unwrap()
        .expect("free");
    h.outlive(lease).await;
    let fresh = short
        .try_acquire(&k("leased"))
        .await
        .unwrap()
        .expect("the lease ran out");
    assert!(fresh.token() > stale.token());
    assert!(!stale.is_held().await.unwrap());
    assert!(!stale.renew().await.unwrap(), "a stale holder renewed");
    assert!(!stale.release().await.unwrap(), "a stale holder released");
    assert!(
        fresh.is_held().await.unwrap(),
        "the next holder lost its lock"
    );
    assert!(fresh.release().await.unwrap());

    // A fence counter something else overwrote: an error, and the lock is not left held.
    ns.set(&k("damaged:fence"), "not a counter", None)
        .await
        .unwrap();
    assert_err!(
        locks.try_acquire(&k("damaged")).await,
        NotAnInteger,
        "a damaged fence counter"
    );
    assert!(
        !ns.exists(&k("damaged:lock")).await.unwrap(),
        "a failed acquisition left the lock held"
    );
    assert_err!(
        locks.last_token(&k("damaged")).await,
        NotAnInteger,
        "the last token of a damaged fence counter"
    );
    // One counted below zero (a `decr`): each count it gives up to 0 is no token (each was
    // handed out as 0), and the last token is none either.
    ns.set(&k("decremented:fence"), "-3", None).await.unwrap();
    let error = locks.last_token(&k("decremented")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotAnInteger, "{error}");
    assert_eq!(
        error.key(),
        Some(k("decremented:fence").as_str()),
        "{error}"
    );
    for _ in 0..3 {
        assert_err!(
            locks.try_acquire(&k("decremented")).await,
            NotAnInteger,
            "a fence counter below zero"
        );
        assert!(
            !ns.exists(&k("decremented:lock")).await.unwrap(),
            "a failed acquisition left the lock held"
        );
    }
    assert_eq!(locks.last_token(&k("decremented")).await.unwrap(), 0);

    // Contention: at most one holder at any instant; tokens in hold order strictly rise.
    let holders = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (locks, holders, tokens) = (locks.clone(), holders.clone(), tokens.clone());
            tokio::spawn(async move {
                let mut held = 0;
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                while held < 10 {
                    assert!(std::time::Instant::now() < deadline, "starved");
                    let Some(guard) = locks.try_acquire(&k("contended")).await.unwrap() else {
                        tokio::task::yield_now().await;
                        continue;
                    };
                    assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    tokens.lock().unwrap().push(guard.token());
                    tokio::task::yield_now().await;
                    assert_eq!(holders.fetch_sub(1, Ordering::SeqCst), 1);
                    assert!(
                        guard.release().await.unwrap(),
                        "the holder could not release"
                    );
                    held += 1;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a task panicked");
    }
    let tokens = tokens.lock().unwrap();
    assert_eq!(tokens.len(), 80);
    assert!(
        tokens.windows(2).all(|pair| pair[0] < pair[1]),
        "tokens not strictly rising: {tokens:?}"
    );
}

/// `Lock::acquire` waits for a held lock: nothing when it is held for the whole wait; the lock
/// once its holder releases it, or once its lease ends, long before the wait would end; a wait
/// of zero is one try.
pub async fn lock_waits<D: Driver>(h: &Harness<D>) {
    let ns = h.namespace::<String>();
    if ns.eviction() != Eviction::Never {
        return; // a lock refuses such a namespace (see `locks`)
    }
    let locks = Lock::new(ns.clone(), Duration::from_secs(60)).unwrap();
    let name = k("job");
    let held = locks.try_acquire(&name).await.unwrap().expect("free");
    assert!(
        locks
            .acquire(&name, Duration::ZERO)
            .await
            .unwrap()
            .is_none()
    );
    let wait = Duration::from_millis(300);
    let started = std::time::Instant::now();
    assert!(locks.acquire(&name, wait).await.unwrap().is_none(), "held");
    assert!(
        started.elapsed() >= wait,
        "gave up early: {:?}",
        started.elapsed()
    );

    // Released while another waits: it takes the lock, without waiting out its wait.
    let long = Duration::from_secs(30);
    let started = std::time::Instant::now();
    let (taken, ()) = futures_util::future::join(locks.acquire(&name, long), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(held.release().await.unwrap());
    })
    .await;
    let taken = taken.unwrap().expect("released during the wait");
    assert!(started.elapsed() < long / 3, "{:?}", started.elapsed());
    assert!(taken.token() > 1);

    // A holder that never releases: its lease ends, and the waiter takes the lock.
    let lease = h.ttl();
    let leased = Lock::new(ns.clone(), lease).unwrap();
    let stale = leased
        .try_acquire(&k("leased"))
        .await
        .unwrap()
        .expect("free");
    let (taken, ()) =
        futures_util::future::join(leased.acquire(&k("leased"), lease * 6), h.outlive(lease)).await;
    let taken = taken.unwrap().expect("the lease ran out during the wait");
    assert!(taken.token() > stale.token());
    assert!(!stale.is_held().await.unwrap());
}
