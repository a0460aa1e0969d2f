//! The main job on the embedded default: typed namespaces, TTLs, counters, batches, listing.
//!
//! Run: `cargo run --example quickstart`

use std::time::Duration;

use namestore::KeyTtl;

/// A user id: a namespace of `UserId`s takes no other key type.
#[derive(Debug, Clone, PartialEq)]
struct UserId(u64);

namestore::newtype_key!(UserId);

#[tokio::main(flavor = "current_thread")]
async fn main() -> namestore::Result<()> {
    // The embedded default; `namestore::open("redis://…")` is the same API on a server.
    let store = namestore::open("memory://")?;

    let profiles = store.namespace::<UserId>("app", "profiles")?;
    let sessions = store.namespace::<String>("app", "sessions")?;
    let visits = store.namespace::<String>("app", "visits")?;

    profiles.set(&UserId(42), r#"{"name":"Ada"}"#, None).await?;
    let profile = profiles.get(&UserId(42)).await?.expect("just stored");
    println!("profile 42      = {}", String::from_utf8_lossy(&profile));
    println!("stored as       = {}", profiles.full_key(&UserId(42))?);

    let token = "s-7f3a".to_owned();
    sessions
        .set(&token, "user=42", Some(Duration::from_secs(30 * 60)))
        .await?;
    if let KeyTtl::ExpiresIn(left) = sessions.ttl(&token).await? {
        println!("session expires in {}s", left.as_secs());
    }

    for page in ["/", "/docs", "/"] {
        visits.incr(&page.to_owned(), 1).await?;
    }
    let counts = visits
        .mget(["/".to_owned(), "/docs".to_owned(), "/missing".to_owned()])
        .await?;
    println!("visits          = {counts:?}");

    profiles
        .mset(
            [(UserId(1), "{}"), (UserId(2), "{}"), (UserId(3), "{}")],
            Some(Duration::from_secs(60)),
        )
        .await?;
    let mut ids: Vec<u64> = profiles
        .keys("*")
        .await?
        .into_iter()
        .map(|id| id.0)
        .collect();
    ids.sort_unstable();
    println!("profile ids     = {ids:?}");
    println!("cleared         = {} keys", profiles.clear().await?);
    println!("sessions intact = {}", sessions.exists(&token).await?);
    Ok(())
}
