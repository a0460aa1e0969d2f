//! An axum service on namestore: sessions (log in, count your visits), a rate-limited API
//! route, a lock-protected job route and Prometheus metrics, all on the store
//! `NAMESTORE_URL` names (memory by default; a redb file or a Redis server to keep sessions
//! across restarts and share them between instances).
//!
//! Run: `cargo run -p namestore-web --example service` (`BIND=127.0.0.1:3000` by default), then
//!
//! ```text
//! curl -c jar -b jar -X POST 'localhost:3000/login?user=alice'
//! curl -c jar -b jar localhost:3000/visits          # {"user":"alice","visits":1}, 2, 3...
//! curl -i -H 'x-api-key: k' localhost:3000/api/ping # 10 a minute, then 429 + Retry-After
//! curl -X POST 'localhost:3000/jobs/report?work_ms=2000' # one at a time, else 409
//! curl localhost:3000/metrics
//! ```

mod app;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = app::Config::from_env();
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    let router = app::router(&config, Some(metrics))?;
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    app::serve(listener, router).await?;
    Ok(())
}
