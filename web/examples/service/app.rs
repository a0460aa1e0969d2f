//! The service: an axum router with sessions, a rate-limited API route, a lock-protected job
//! route and the metrics endpoint, all on one namestore store. Shared by the example's `main`
//! and by the end-to-end tests, which run it as separate processes.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use namestore::lock::Lock;
use namestore::rate_limit::{Decision, RateLimiter};
use namestore::{AnyDriver, Eviction, Instrumented, Namespace};
use namestore_web::{RateLimitLayer, SessionStore, Sha256Key, client_network};
use serde::{Deserialize, Serialize};
use tower_sessions::{Expiry, Session, SessionManagerLayer};

/// The service's settings, from the environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// `NAMESTORE_URL`: the store (`memory://` by default; `redb:///path`, `redis://host`;
    /// `memory://?max_bytes=64MiB&eviction=any`, a store that evicts to keep a budget).
    pub store_url: String,
    /// `SESSION_TTL_SECS`: a session ends after this long without a request (default 3600).
    pub session_ttl: Duration,
    /// `RATE_LIMIT` requests per `RATE_WINDOW_SECS` on `/api/ping`, per client (10 per 60 s).
    pub rate_limit: u64,
    /// See `rate_limit`.
    pub rate_window: Duration,
    /// `JOB_LEASE_SECS`: the job lock's lease (default 30).
    pub job_lease: Duration,
}

impl Config {
    /// Reads the settings, with their defaults.
    pub fn from_env() -> Self {
        let number = |name: &str, default: u64| -> u64 {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Config {
            store_url: std::env::var("NAMESTORE_URL").unwrap_or_else(|_| "memory://".into()),
            session_ttl: Duration::from_secs(number("SESSION_TTL_SECS", 3600)),
            rate_limit: number("RATE_LIMIT", 10),
            rate_window: Duration::from_secs(number("RATE_WINDOW_SECS", 60)),
            job_lease: Duration::from_secs(number("JOB_LEASE_SECS", 30)),
        }
    }
}

type Store = Instrumented<AnyDriver>;

#[derive(Clone)]
struct App {
    jobs: Lock<String, Store>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// The service's namespace `demo:<domain>`, in eviction mode `mode`.
fn namespace<K: namestore::Key>(
    store: &Store,
    domain: &str,
    mode: Eviction,
) -> namestore::Result<Namespace<K, Store>> {
    Namespace::with_eviction(store.clone(), "demo", domain, mode)
}

/// What `/api/ping` is limited by: the API key, else the client's network. An API key is a
/// credential: it is counted under its digest, so no listing, error or trace of the store shows
/// it. A client address is counted by its network (an IPv6 client's /64, any address of which
/// its host may take for each request). A request without the peer's address (a router served
/// without `into_make_service_with_connect_info`) would not be limited: `serve` provides it.
pub fn rate_limit_key(request: &axum::extract::Request) -> Option<String> {
    if let Some(key) = request.headers().get("x-api-key") {
        return Some(format!("key:{}", Sha256Key::of(key.as_bytes())));
    }
    let ConnectInfo(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>()?;
    Some(format!("ip:{}", client_network(peer.ip())))
}

/// Builds the router on the store `config` names. `metrics` renders the Prometheus page at
/// `/metrics` (the process installs the recorder once; `None` leaves the route out).
pub fn router(
    config: &Config,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> namestore::Result<Router> {
    let store = Instrumented::new(namestore::open(&config.store_url)?);
    // Each namespace says what a memory budget may evict from it, whatever the URL's default:
    // no session (its user would be signed out) and no lock, but old rate limit counters
    // (each has a TTL) rather than refuse new clients' counts. A store that evicts nothing on
    // its own (redb; Redis, whose `maxmemory-policy` rules) keeps them all alike.
    let sessions = SessionStore::from_namespace(namespace(&store, "sessions", Eviction::Never)?);
    let session_layer = SessionManagerLayer::new(sessions)
        // The example serves plain HTTP on loopback; a service behind TLS keeps the default
        // (`Secure` cookies), so the session id never crosses the network in clear.
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(
            time::Duration::try_from(config.session_ttl).expect("a session TTL in range"),
        ));

    let limiter = RateLimiter::new(
        namespace(&store, "rate", Eviction::WithTtl)?,
        config.rate_limit,
        config.rate_window,
    )?;
    let rate_limit = RateLimitLayer::new(limiter, rate_limit_key).with_policy_name("api");

    let app = App {
        jobs: Lock::new(
            namespace(&store, "locks", Eviction::Never)?,
            config.job_lease,
        )?,
        metrics,
    };
    let api = Router::new()
        .route("/api/ping", get(ping))
        .layer(rate_limit);
    let mut router = Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/visits", get(visits))
        .route("/jobs/report", post(report))
        .layer(session_layer)
        .merge(api);
    if app.metrics.is_some() {
        router = router.route("/metrics", get(render_metrics));
    }
    Ok(router.with_state(app))
}

#[derive(Deserialize)]
struct Login {
    user: String,
}

#[derive(Serialize)]
struct Visits {
    user: Option<String>,
    visits: u64,
}

async fn login(session: Session, Query(login): Query<Login>) -> Result<String, StatusCode> {
    // A new id on login keeps a session id fixed before it from carrying over.
    session
        .cycle_id()
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    session
        .insert("user", &login.user)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(format!("hello {}\n", login.user))
}

async fn logout(session: Session) -> Result<StatusCode, StatusCode> {
    session
        .flush()
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Counts the session's visits to this page.
async fn visits(session: Session) -> Result<Json<Visits>, StatusCode> {
    let failed = |_| StatusCode::INTERNAL_SERVER_ERROR;
    let visits: u64 = session.get("visits").await.map_err(failed)?.unwrap_or(0) + 1;
    session.insert("visits", visits).await.map_err(failed)?;
    let user = session.get("user").await.map_err(failed)?;
    Ok(Json(Visits { user, visits }))
}

/// The rate-limited route: answers with the window it was counted in and what is left. A
/// request the layer let through because the store did not answer (`OnStoreError::Allow`, the
/// default) carries no `Decision`: the route still answers, as the layer meant it to.
async fn ping(decision: Option<Extension<Decision>>) -> String {
    match decision {
        Some(Extension(decision)) => format!(
            "pong window={} remaining={}\n",
            decision.window, decision.remaining
        ),
        None => "pong (not counted: the rate limit's store did not answer)\n".to_owned(),
    }
}

#[derive(Deserialize)]
struct Job {
    #[serde(default)]
    work_ms: u64,
}

#[derive(Serialize)]
struct Report {
    token: u64,
    started_ms: u64,
    finished_ms: u64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// A job one instance at a time may run: `409 Conflict` while another holds its lock.
async fn report(
    State(app): State<App>,
    Query(job): Query<Job>,
) -> Result<Json<Report>, StatusCode> {
    let unavailable = |_| StatusCode::SERVICE_UNAVAILABLE;
    let Some(guard) = app
        .jobs
        .try_acquire(&"report".to_owned())
        .await
        .map_err(unavailable)?
    else {
        return Err(StatusCode::CONFLICT);
    };
    let token = guard.token();
    let started_ms = unix_ms();
    tokio::time::sleep(Duration::from_millis(job.work_ms)).await;
    let finished_ms = unix_ms();
    // A holder whose lease ran out must not report the work as done under the lock.
    if !guard.release().await.map_err(unavailable)? {
        return Err(StatusCode::CONFLICT);
    }
    Ok(Json(Report {
        token,
        started_ms,
        finished_ms,
    }))
}

async fn render_metrics(State(app): State<App>) -> String {
    app.metrics.as_ref().map(|m| m.render()).unwrap_or_default()
}

/// Serves the router on `listener` until the process is stopped; prints the address first.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
