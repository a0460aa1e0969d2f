//! A tower layer applying a namestore rate limiter to requests.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use namestore::rate_limit::{Decision, RateLimiter};
use namestore::{Driver, ErrorKind, Key};
use tower_layer::Layer;
use tower_service::Service;

static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// What the layer does with a request when the store cannot decide it (unreachable,
/// timed out). Either way the layer logs the failure (a `tracing` event at `WARN`, target
/// `namestore_web::rate_limit`, at most one a second, with how many failures it left out):
/// a store that stopped answering does not go unnoticed behind requests let through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnStoreError {
    /// Let it through, unlimited (the default: an outage of the store does not become an
    /// outage of the service). The request then carries no [`Decision`].
    #[default]
    Allow,
    /// Answer `503 Service Unavailable`.
    Reject,
}

/// Limits requests by a key taken from each request; see [`RateLimitLayer::new`].
pub struct RateLimitLayer<K, D: Driver, F> {
    shared: Arc<Shared<K, D, F>>,
}

struct Shared<K, D: Driver, F> {
    limiter: RateLimiter<K, D>,
    key: Arc<F>,
    policy: HeaderValue,
    on_error: OnStoreError,
    failures: Arc<Failures>,
}

impl<K, D: Driver, F> Clone for Shared<K, D, F> {
    fn clone(&self) -> Self {
        Shared {
            limiter: self.limiter.clone(),
            key: Arc::clone(&self.key),
            policy: self.policy.clone(),
            on_error: self.on_error,
            failures: Arc::clone(&self.failures),
        }
    }
}

/// The store's failures to decide a request, logged at most once a second: an outage met by
/// thousands of requests a second is one line a second, saying how many it stands for.
struct Failures {
    start: Instant,
    /// When the last line was logged: milliseconds since `start`, plus one (0: never).
    logged: AtomicU64,
    /// Failures since that line that no line has told of.
    untold: AtomicU64,
}

impl Failures {
    fn new() -> Self {
        Failures {
            start: Instant::now(),
            logged: AtomicU64::new(0),
            untold: AtomicU64::new(0),
        }
    }

    /// Logs `error` unless a line was logged less than a second ago (then counts it).
    fn log(&self, error: &namestore::Error, policy: &HeaderValue, outcome: OnStoreError) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let last = self.logged.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= 1000;
        if !due
            || self
                .logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.untold.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let untold = self.untold.swap(0, Ordering::Relaxed);
        let policy = policy.to_str().unwrap_or("default");
        match outcome {
            OnStoreError::Allow => tracing::warn!(
                policy,
                %error,
                failures_not_logged = untold,
                "the rate limiter's store failed: the request goes on unlimited"
            ),
            OnStoreError::Reject => tracing::warn!(
                policy,
                %error,
                failures_not_logged = untold,
                "the rate limiter's store failed: the request is answered 503"
            ),
        }
    }
}

impl<K, D: Driver, F> Clone for RateLimitLayer<K, D, F> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K, D: Driver, F> fmt::Debug for RateLimitLayer<K, D, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.shared.limiter)
            .field("policy", &self.shared.policy)
            .field("on_error", &self.shared.on_error)
            .finish_non_exhaustive()
    }
}

impl<K: Key + Clone, D: Driver, F> RateLimitLayer<K, D, F> {
    /// Applies `limiter` to every request `key` gives a key for (`None`: the request is not
    /// limited). The policy is named `default` in the header fields.
    ///
    /// On each limited request:
    /// - within the limit, the request goes on with its [`Decision`] in its extensions (an
    ///   axum handler takes it with `Option<Extension<Decision>>`: a request let through
    ///   because the store did not answer carries none, and a handler that required one would
    ///   turn the store's outage into its own), and the response gets
    ///   `RateLimit-Policy: "default";q=<limit>;w=<window seconds>` and
    ///   `RateLimit: "default";r=<remaining>;t=<seconds until the window ends>`;
    /// - over it, the answer is `429 Too Many Requests` with those fields and
    ///   `Retry-After: <seconds>`, the seconds until the window ends, rounded up (none with
    ///   a limit of 0: no window allows a request, [`Decision::retry_after`]);
    /// - a key the store refuses (longer than [`namestore::MAX_KEY_LEN`]) is answered
    ///   `400 Bad Request`: it comes from the request, and letting it through would let a
    ///   client escape the limit;
    /// - when the store cannot answer, [`on_store_error`](Self::on_store_error) decides, and
    ///   the failure is logged ([`OnStoreError`] says how).
    ///
    /// ```
    /// # fn main() -> namestore::Result<()> {
    /// use std::time::Duration;
    /// use namestore::rate_limit::RateLimiter;
    /// use namestore_web::{RateLimitLayer, Sha256Key};
    ///
    /// let store = namestore::open("memory://")?;
    /// let limiter = RateLimiter::new(store.namespace::<Sha256Key>("api", "rate")?, 100, Duration::from_secs(60))?;
    /// // One limit per API key, counted under its digest (an API key is a credential: see
    /// // `Sha256Key`); requests without one are not limited here.
    /// let layer = RateLimitLayer::new(limiter, |request: &http::Request<axum::body::Body>| {
    ///     Some(Sha256Key::of(request.headers().get("x-api-key")?.as_bytes()))
    /// });
    /// let app: axum::Router = axum::Router::new()
    ///     .route("/api", axum::routing::get(|| async { "ok" }))
    ///     .layer(layer);
    /// # let _ = app;
    /// # Ok(()) }
    /// ```
    pub fn new(limiter: RateLimiter<K, D>, key: F) -> Self {
        RateLimitLayer {
            shared: Arc::new(Shared {
                limiter,
                key: Arc::new(key),
                policy: HeaderValue::from_static("default"),
                on_error: OnStoreError::default(),
                failures: Arc::new(Failures::new()),
            }),
        }
    }

    /// Names the policy in the header fields (`"api"` gives `RateLimit: "api";r=…`).
    ///
    /// # Panics
    ///
    /// When `name` is not a token of letters, digits, `-`, `_` and `.`.
    pub fn with_policy_name(self, name: &str) -> Self {
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "a rate limit policy name is letters, digits, `-`, `_` and `.`: {name:?}"
        );
        self.map(|shared| Shared {
            policy: HeaderValue::from_str(name).expect("checked above"),
            ..shared
        })
    }

    /// What to do when the store cannot decide a request; [`OnStoreError::Allow`] by
    /// default.
    pub fn on_store_error(self, on_error: OnStoreError) -> Self {
        self.map(|shared| Shared { on_error, ..shared })
    }

    fn map(self, change: impl FnOnce(Shared<K, D, F>) -> Shared<K, D, F>) -> Self {
        let changed = change(Arc::unwrap_or_clone(self.shared));
        // A layer configured apart logs its failures apart.
        RateLimitLayer {
            shared: Arc::new(Shared {
                failures: Arc::new(Failures::new()),
                ..changed
            }),
        }
    }
}

impl<K, D: Driver, F, S> Layer<S> for RateLimitLayer<K, D, F> {
    type Service = RateLimit<K, D, F, S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            shared: Arc::clone(&self.shared),
            inner,
        }
    }
}

/// The service [`RateLimitLayer`] wraps around another.
pub struct RateLimit<K, D: Driver, F, S> {
    shared: Arc<Shared<K, D, F>>,
    inner: S,
}

impl<K, D: Driver, F, S: Clone> Clone for RateLimit<K, D, F, S> {
    fn clone(&self) -> Self {
        RateLimit {
            shared: Arc::clone(&self.shared),
            inner: self.inner.clone(),
        }
    }
}

impl<K, D: Driver, F, S: fmt::Debug> fmt::Debug for RateLimit<K, D, F, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("limiter", &self.shared.limiter)
            .field("inner", &self.inner)
            .finish()
    }
}

fn status<R: Default>(status: StatusCode) -> Response<R> {
    let mut response = Response::new(R::default());
    *response.status_mut() = status;
    response
}

/// Whole seconds, rounded up: a client waiting this long is past the window's end.
fn seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn header_fields(
    policy: &HeaderValue,
    decision: &Decision,
    window: Duration,
) -> [(HeaderName, HeaderValue); 2] {
    let policy = policy.to_str().unwrap_or("default");
    let number = |text: String| HeaderValue::from_str(&text).expect("ASCII");
    [
        (
            RATELIMIT_POLICY.clone(),
            number(format!(
                "\"{policy}\";q={};w={}",
                decision.limit,
                seconds_up(window)
            )),
        ),
        (
            RATELIMIT.clone(),
            number(format!(
                "\"{policy}\";r={};t={}",
                decision.remaining,
                seconds_up(decision.reset_after)
            )),
        ),
    ]
}

impl<K, D, F, S, B, R> Service<Request<B>> for RateLimit<K, D, F, S>
where
    K: Key + Clone,
    D: Driver,
    F: Fn(&Request<B>) -> Option<K> + Send + Sync + 'static,
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone takes the place of the service that was made ready (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let Some(key) = (*shared.key)(&request) else {
                return inner.call(request).await;
            };
            let decision = match shared.limiter.check(&key).await {
                Ok(decision) => decision,
                // A key the store refuses (too long, SPEC 1.4) came from the request itself:
                // letting it through unlimited would let any client opt out of the limit.
                Err(error) if error.kind() == ErrorKind::InvalidKey => {
                    return Ok(status(StatusCode::BAD_REQUEST));
                }
                Err(error) => {
                    shared.failures.log(&error, &shared.policy, shared.on_error);
                    if shared.on_error == OnStoreError::Allow {
                        return inner.call(request).await;
                    }
                    return Ok(status(StatusCode::SERVICE_UNAVAILABLE));
                }
            };
            let fields = header_fields(&shared.policy, &decision, shared.limiter.window());
            let mut response = if decision.allowed {
                request.extensions_mut().insert(decision);
                inner.call(request).await?
            } else {
                let mut response = status(StatusCode::TOO_MANY_REQUESTS);
                if let Some(wait) = decision.retry_after {
                    response
                        .headers_mut()
                        .insert(RETRY_AFTER, HeaderValue::from(seconds_up(wait)));
                }
                response
            };
            for (name, value) in fields {
                response.headers_mut().insert(name, value);
            }
            Ok(response)
        })
    }
}
