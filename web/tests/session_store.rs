//! The `tower_sessions` store contract, on memory, redb and Redis: create, save, load,
//! delete, expiry, id collisions. tower-sessions publishes no conformance tests for stores;
//! these are the trait's documented cases.

use std::time::Duration;

use namestore::{AnyDriver, Driver};
use namestore_web::{SessionKey, SessionStore};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::SessionStore as _;

#[path = "../../tests/support/mod.rs"]
mod support;

fn record(expires_in: time::Duration) -> Record {
    let mut data = std::collections::HashMap::new();
    data.insert("user".to_owned(), serde_json::json!("alice"));
    data.insert("visits".to_owned(), serde_json::json!(3));
    Record {
        id: Id::default(),
        data,
        expiry_date: OffsetDateTime::now_utc() + expires_in,
    }
}

fn unique() -> String {
    format!(
        "s{}-{}",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp_nanos()
    )
}

async fn contract<D: Driver>(driver: D) {
    let domain = unique();
    let store = SessionStore::new(driver.clone(), "contract", &domain).unwrap();

    // create stores under the record's id; load gives back the same record.
    let mut first = record(time::Duration::hours(1));
    store.create(&mut first).await.unwrap();
    assert_eq!(store.load(&first.id).await.unwrap(), Some(first.clone()));

    // save replaces; the key's TTL follows the record's expiry.
    first.data.insert("visits".into(), serde_json::json!(4));
    first.expiry_date = OffsetDateTime::now_utc() + time::Duration::minutes(5);
    store.save(&first).await.unwrap();
    let loaded = store.load(&first.id).await.unwrap().unwrap();
    assert_eq!(loaded.data["visits"], 4);
    match store
        .namespace()
        .ttl(&SessionKey::of(&first.id))
        .await
        .unwrap()
    {
        namestore::KeyTtl::ExpiresIn(ttl) => {
            assert!(
                ttl <= Duration::from_secs(300) && ttl > Duration::from_secs(290),
                "{ttl:?}"
            )
        }
        other => panic!("a session without its expiry as TTL: {other:?}"),
    }

    // An id collision: create never overwrites the session already there.
    let mut colliding = record(time::Duration::hours(1));
    colliding.id = first.id;
    colliding
        .data
        .insert("user".into(), serde_json::json!("mallory"));
    store.create(&mut colliding).await.unwrap();
    assert_ne!(colliding.id, first.id, "create kept a taken id");
    assert_eq!(
        store.load(&first.id).await.unwrap().unwrap().data["user"],
        "alice"
    );
    assert_eq!(
        store.load(&colliding.id).await.unwrap().unwrap().data["user"],
        "mallory"
    );

    // A save never brings back a session deleted since it was loaded (a logout in another
    // request), nor one never created.
    let mut held = record(time::Duration::hours(1));
    store.create(&mut held).await.unwrap();
    let mut loaded = store.load(&held.id).await.unwrap().unwrap();
    store.delete(&held.id).await.unwrap();
    loaded.data.insert("visits".into(), serde_json::json!(5));
    store.save(&loaded).await.unwrap();
    assert_eq!(
        store.load(&held.id).await.unwrap(),
        None,
        "a save brought a deleted session back"
    );
    let stray = record(time::Duration::hours(1));
    store.save(&stray).await.unwrap();
    assert_eq!(
        store.load(&stray.id).await.unwrap(),
        None,
        "save created a session"
    );

    // The store never holds a session's id, only its digest: nothing that lists keys, logs
    // them or traces them shows a usable id.
    let listed = store.namespace().keys("*").await.unwrap();
    assert!(listed.contains(&SessionKey::of(&first.id)), "{listed:?}");
    let stored = namestore::Namespace::<String, D>::new(driver.clone(), "contract", &domain)
        .unwrap()
        .keys("*")
        .await
        .unwrap();
    assert_eq!(stored.len(), listed.len());
    for id in [first.id, colliding.id, held.id] {
        assert!(
            stored.iter().all(|key| !key.contains(&id.to_string())),
            "a session id is stored as it is: {stored:?}"
        );
    }

    // delete; loading a missing id is None, deleting it again is fine.
    store.delete(&first.id).await.unwrap();
    assert_eq!(store.load(&first.id).await.unwrap(), None);
    store.delete(&first.id).await.unwrap();
    assert_eq!(store.load(&Id::default()).await.unwrap(), None);

    // Expiry: a record saved with an expiry in the past is gone; a short one runs out.
    let mut past = colliding.clone();
    past.expiry_date = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    store.save(&past).await.unwrap();
    assert_eq!(store.load(&colliding.id).await.unwrap(), None);
    let mut short = record(time::Duration::milliseconds(300));
    store.create(&mut short).await.unwrap();
    assert!(store.load(&short.id).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(store.load(&short.id).await.unwrap(), None);
    assert!(
        !store
            .namespace()
            .exists(&SessionKey::of(&short.id))
            .await
            .unwrap(),
        "the key outlived the session"
    );

    // A session meant to last longer than the longest TTL a key can have (Ttl::MAX, 100
    // years) is kept with that TTL, not refused.
    let mut lasting = record(time::Duration::days(365 * 150));
    store.create(&mut lasting).await.unwrap();
    assert_eq!(
        store.load(&lasting.id).await.unwrap(),
        Some(lasting.clone())
    );
    store.save(&lasting).await.unwrap();
    match store
        .namespace()
        .ttl(&SessionKey::of(&lasting.id))
        .await
        .unwrap()
    {
        namestore::KeyTtl::ExpiresIn(ttl) => assert!(
            ttl <= namestore::Ttl::MAX.as_duration()
                && ttl > namestore::Ttl::MAX.as_duration() - Duration::from_secs(60),
            "{ttl:?}"
        ),
        other => panic!("a lasting session without the longest TTL: {other:?}"),
    }

    // Stored bytes are plain MessagePack of the record: what rmp-serde reads directly.
    let mut plain = record(time::Duration::hours(1));
    store.create(&mut plain).await.unwrap();
    let bytes = store
        .namespace()
        .bytes()
        .get(&SessionKey::of(&plain.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rmp_serde::from_slice::<Record>(&bytes).unwrap(), plain);

    // A record the codec cannot read (another version's shape, or damaged) is no session:
    // its user signs in again, rather than every request with its cookie failing until the
    // record expires. Before, `load` failed with `Decode` (tower-sessions answers such a
    // request with an error) for as long as the record lived.
    let stored_by_another_version = rmp_serde::to_vec(&(plain.id.to_string(), 7, "x")).unwrap();
    for unreadable in [stored_by_another_version, b"not msgpack".to_vec()] {
        store
            .namespace()
            .bytes()
            .set(&SessionKey::of(&plain.id), unreadable, None)
            .await
            .unwrap();
        assert_eq!(store.load(&plain.id).await.unwrap(), None);
    }
}

#[tokio::test]
async fn memory() {
    contract(namestore::MemoryDriver::new()).await;
}

#[tokio::test]
async fn memory_through_open() {
    contract::<AnyDriver>(namestore::open("memory://").unwrap()).await;
}

#[tokio::test]
async fn redb() {
    let dir = std::env::temp_dir().join(unique());
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("redb://{}/sessions.redb", dir.display());
    contract::<AnyDriver>(namestore::open(&url).unwrap()).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn redis() {
    let port = support::free_port();
    let url = support::start_server(port, "");
    contract::<AnyDriver>(namestore::open(&url).unwrap()).await;
}

#[tokio::test]
async fn redis_cluster() {
    let url = support::start_cluster();
    contract::<AnyDriver>(namestore::open(&url).unwrap()).await;
}

/// The stored key of a session is the SHA-256 of its cookie's value, in hex: what an operator
/// computes with `printf %s "$cookie" | sha256sum`.
#[test]
fn a_session_key_is_the_sha256_of_the_cookie_value() {
    use namestore::Key;
    let id: Id = "AAAAAAAAAAAAAAAAAAAAAA".parse().unwrap();
    assert_eq!(id.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
    let mut text = namestore::KeyBuf::new();
    SessionKey::of(&id).encode(&mut text);
    assert_eq!(
        text.as_str(),
        "8a5bdb4cc15164126c6ef2668de9dd240d299ce6397a42c95a9411b93d080ed8"
    );
    assert_eq!(SessionKey::decode(text.as_str()), Some(SessionKey::of(&id)));
    for bad in [
        "",
        "8a5b",
        &text.as_str().to_uppercase(),
        &format!("{}0", text.as_str()),
    ] {
        assert_eq!(SessionKey::decode(bad), None, "{bad}");
    }
}
