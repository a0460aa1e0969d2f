//! A lock held by one owner at a time: `set_nx` with a lease TTL takes it, `cad` (compare and
//! delete) releases it only if this owner still holds it, so a holder whose lease expired
//! cannot release a lock someone else took since.
//!
//! Run: `cargo run --example lock`

use std::time::Duration;

use namestore::{Driver, Namespace};

struct Lock<D: Driver> {
    locks: Namespace<String, D>,
    name: String,
    owner: String,
}

impl<D: Driver> Lock<D> {
    async fn try_acquire(&self, lease: Duration) -> namestore::Result<bool> {
        self.locks
            .set_nx(&self.name, self.owner.clone(), Some(lease))
            .await
    }

    async fn release(&self) -> namestore::Result<bool> {
        self.locks.cad(&self.name, &self.owner).await
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> namestore::Result<()> {
    let locks = namestore::MemoryDriver::new().namespace::<String>("jobs", "locks")?;
    let worker = |owner: &str| Lock {
        locks: locks.clone(),
        name: "nightly-report".into(),
        owner: owner.into(),
    };
    let (a, b) = (worker("worker-a"), worker("worker-b"));

    println!(
        "a acquires: {}",
        a.try_acquire(Duration::from_millis(100)).await?
    );
    println!(
        "b acquires: {}",
        b.try_acquire(Duration::from_millis(100)).await?
    );
    println!("b releases a's lock: {}", b.release().await?);

    tokio::time::sleep(Duration::from_millis(150)).await; // a's lease runs out
    println!(
        "b acquires after a's lease: {}",
        b.try_acquire(Duration::from_secs(10)).await?
    );
    println!("a releases (too late): {}", a.release().await?);
    println!("b releases: {}", b.release().await?);
    Ok(())
}
