//! namestore's telemetry in a service: spans logged by `tracing-subscriber`, metrics served in
//! Prometheus's text format by `metrics-exporter-prometheus`.
//!
//! ```sh
//! cargo run --example telemetry --features metrics
//! curl -s http://127.0.0.1:9000/metrics | grep namestore_
//! ```
//!
//! `NAMESTORE_URL` picks the store (`memory://` by default; `telemetry=1` is added),
//! `NAMESTORE_METRICS_ADDR` the address (`127.0.0.1:9000`), `NAMESTORE_EXAMPLE_SECONDS` how
//! long to keep serving (until Ctrl-C by default).

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use tracing_subscriber::fmt::format::FmtSpan;

#[tokio::main]
async fn main() -> namestore::Result<()> {
    // Spans at DEBUG for namestore, logged when they close (with their fields and timing).
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .init();

    let addr: SocketAddr = std::env::var("NAMESTORE_METRICS_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:9000".to_owned())
        .parse()
        .expect("NAMESTORE_METRICS_ADDR is host:port");
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .expect("the metrics listener starts");

    let url = std::env::var("NAMESTORE_URL").unwrap_or_else(|_| "memory://".to_owned());
    let separator = if url.contains('?') { '&' } else { '?' };
    let store = namestore::open(&format!("{url}{separator}telemetry=1"))?;
    let sessions = store.namespace::<String>("app", "sessions")?;
    let visits = store.namespace::<String>("app", "visits")?;

    for i in 0..20 {
        let id = format!("session-{i}");
        sessions
            .set(&id, "user=7", Some(Duration::from_secs(600)))
            .await?;
        sessions.get(&id).await?;
        sessions.get(&format!("missing-{i}")).await?;
        visits.incr(&"home".to_owned(), 1).await?;
    }
    // An error, counted by its kind.
    let _ = visits.incr(&"home-page".to_owned(), 1).await;
    sessions
        .set(&"text".to_owned(), "not a number", None)
        .await?;
    let _ = sessions.incr(&"text".to_owned(), 1).await;

    println!("serving metrics on http://{addr}/metrics");
    match std::env::var("NAMESTORE_EXAMPLE_SECONDS") {
        Ok(seconds) => {
            let seconds = seconds
                .parse()
                .expect("NAMESTORE_EXAMPLE_SECONDS is a number");
            tokio::time::sleep(Duration::from_secs(seconds)).await;
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    Ok(())
}
