//! A fixed-window rate limiter in one atomic call per request: `incr_with_ttl` creates the
//! window's counter with its TTL, and later increments keep it.
//!
//! Run: `cargo run --example rate_limiter`

use std::time::Duration;

use namestore::{Driver, Namespace};

/// Allows `limit` requests per client per `window`.
struct RateLimiter<D: Driver> {
    hits: Namespace<String, D>,
    limit: i64,
    window: Duration,
}

impl<D: Driver> RateLimiter<D> {
    async fn allow(&self, client: &str) -> namestore::Result<bool> {
        let count = self
            .hits
            .incr_with_ttl(&client.to_owned(), 1, self.window)
            .await?;
        Ok(count <= self.limit)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> namestore::Result<()> {
    let store = namestore::MemoryDriver::new();
    let limiter = RateLimiter {
        hits: store.namespace("api", "rate-limit")?,
        limit: 3,
        window: Duration::from_millis(200),
    };
    for request in 1..=5 {
        println!(
            "request {request}: allowed = {}",
            limiter.allow("client-a").await?
        );
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    println!(
        "next window: allowed = {}",
        limiter.allow("client-a").await?
    );
    Ok(())
}
