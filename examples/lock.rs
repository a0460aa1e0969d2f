//! The library's lock: one holder at a time for a lease, a fencing token per acquisition,
//! release and renewal only by the holder (see `namestore::lock`).
//!
//! Run: `cargo run --example lock`

use std::time::Duration;

use namestore::lock::Lock;

#[tokio::main(flavor = "current_thread")]
async fn main() -> namestore::Result<()> {
    let store = namestore::MemoryDriver::new();
    let locks = Lock::new(
        store.namespace::<String>("jobs", "locks")?,
        Duration::from_millis(100),
    )?;
    let name = "nightly-report".to_owned();

    let a = locks
        .try_acquire(&name)
        .await?
        .expect("nobody holds it yet");
    println!("a holds the lock with token {}", a.token());
    println!(
        "b tries while a holds it: {:?}",
        locks.try_acquire(&name).await?.map(|g| g.token())
    );

    tokio::time::sleep(Duration::from_millis(150)).await; // a's lease runs out
    let b = locks.try_acquire(&name).await?.expect("a's lease ran out");
    println!("b holds the lock with token {}", b.token());
    println!("a renews (too late): {}", a.renew().await?);
    println!("a releases (too late): {}", a.release().await?);
    println!("b releases: {}", b.release().await?);
    Ok(())
}
