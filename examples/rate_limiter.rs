//! The library's rate limiter: 3 requests per client per window, decided in one atomic call
//! to the store (fixed windows; see `namestore::rate_limit`).
//!
//! Run: `cargo run --example rate_limiter`

use std::time::Duration;

use namestore::rate_limit::RateLimiter;

#[tokio::main(flavor = "current_thread")]
async fn main() -> namestore::Result<()> {
    let store = namestore::MemoryDriver::new();
    let limiter = RateLimiter::new(
        store.namespace::<String>("api", "rate-limit")?,
        3,
        Duration::from_secs(1),
    )?;
    let client = "client-a".to_owned();
    let mut last = None;
    for request in 1..=5 {
        let decision = limiter.check(&client).await?;
        println!(
            "request {request}: allowed = {}, remaining = {}, retry after = {:?}",
            decision.allowed, decision.remaining, decision.retry_after
        );
        last = Some(decision);
    }
    if let Some(wait) = last.and_then(|d| d.retry_after) {
        tokio::time::sleep(wait).await;
    }
    println!(
        "next window: allowed = {}",
        limiter.check(&client).await?.allowed
    );
    Ok(())
}
