//! The rate-limiting layer on its own, over a plain tower service: the status codes and
//! header fields it answers with, requests it does not limit, keys the store refuses, and a
//! store that cannot answer.

use std::convert::Infallible;
use std::time::{Duration, UNIX_EPOCH};

use http::{Request, Response, StatusCode};
use namestore::rate_limit::{Decision, RateLimiter};
use namestore::{AnyDriver, Namespace};
use namestore_web::{OnStoreError, RateLimitLayer};
use tower::{Layer, Service, ServiceExt};

/// The inner service: echoes the decision it was given.
fn echo()
-> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    tower::service_fn(|request: Request<String>| async move {
        let remaining = request.extensions().get::<Decision>().map(|d| d.remaining);
        Ok::<_, Infallible>(Response::new(format!("{remaining:?}")))
    })
}

fn request(key: Option<&str>) -> Request<String> {
    let mut builder = Request::builder().uri("/api");
    if let Some(key) = key {
        builder = builder.header("x-api-key", key);
    }
    builder.body(String::new()).unwrap()
}

fn by_api_key(request: &Request<String>) -> Option<String> {
    Some(String::from_utf8_lossy(request.headers().get("x-api-key")?.as_bytes()).into_owned())
}

/// A limiter of 2 per 10 s whose clock reads 2.5 s into a window.
fn limiter(store: AnyDriver) -> RateLimiter<String, AnyDriver> {
    RateLimiter::new(
        Namespace::new(store, "api", "rate").unwrap(),
        2,
        Duration::from_secs(10),
    )
    .unwrap()
    .with_clock(|| UNIX_EPOCH + Duration::from_millis(1_700_000_002_500))
}

fn header<'a>(response: &'a Response<String>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn within_and_over_the_limit() {
    let layer = RateLimitLayer::new(limiter(namestore::open("memory://").unwrap()), by_api_key)
        .with_policy_name("api");
    let service = layer.layer(echo());

    for remaining in [1, 0] {
        let response = service.clone().oneshot(request(Some("k"))).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body(), &format!("Some({remaining})"));
        assert_eq!(
            header(&response, "ratelimit-policy"),
            Some("\"api\";q=2;w=10")
        );
        assert_eq!(
            header(&response, "ratelimit"),
            Some(format!("\"api\";r={remaining};t=8").as_str())
        );
        assert_eq!(header(&response, "retry-after"), None);
    }
    let denied = service.clone().oneshot(request(Some("k"))).await.unwrap();
    assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(denied.body(), "", "the inner service ran");
    // 7.5 s to the window's end: 8 whole seconds.
    assert_eq!(header(&denied, "retry-after"), Some("8"));
    assert_eq!(header(&denied, "ratelimit"), Some("\"api\";r=0;t=8"));

    // Another key has its own count; a request without a key is not limited.
    let other = service.clone().oneshot(request(Some("k2"))).await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    for _ in 0..5 {
        let free = service.clone().oneshot(request(None)).await.unwrap();
        assert_eq!(free.status(), StatusCode::OK);
        assert_eq!(free.body(), "None");
        assert_eq!(header(&free, "ratelimit"), None);
    }
}

/// A limit of 0 denies every request, with no `Retry-After`: waiting will not help.
#[tokio::test]
async fn a_limit_of_zero_tells_no_time_to_retry() {
    let limiter = RateLimiter::new(
        Namespace::new(namestore::open("memory://").unwrap(), "api", "closed").unwrap(),
        0,
        Duration::from_secs(10),
    )
    .unwrap();
    let service = RateLimitLayer::new(limiter, by_api_key).layer(echo());
    let denied = service.oneshot(request(Some("k"))).await.unwrap();
    assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&denied, "retry-after"), None);
    assert!(header(&denied, "ratelimit").is_some_and(|v| v.contains(";r=0;")));
}

#[tokio::test]
async fn a_key_the_store_refuses_does_not_escape_the_limit() {
    let service = RateLimitLayer::new(limiter(namestore::open("memory://").unwrap()), by_api_key)
        .layer(echo());
    let long = "k".repeat(namestore::MAX_KEY_LEN + 1);
    for _ in 0..3 {
        let response = service.clone().oneshot(request(Some(&long))).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}

/// A Redis store on a port nothing listens on.
fn unreachable_store() -> AnyDriver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/?connect_timeout_ms=200&response_timeout_ms=200");
    namestore::open(&url).unwrap()
}

#[tokio::test]
async fn a_store_that_cannot_answer() {
    let store = unreachable_store();

    let open = RateLimitLayer::new(limiter(store.clone()), by_api_key).layer(echo());
    let response = open.oneshot(request(Some("k"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "fails open by default");
    assert_eq!(response.body(), "None");

    let closed = RateLimitLayer::new(limiter(store), by_api_key)
        .on_store_error(OnStoreError::Reject)
        .layer(echo());
    let response = closed.oneshot(request(Some("k"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
#[should_panic(expected = "policy name")]
fn a_policy_name_that_is_not_a_token() {
    let _ = RateLimitLayer::new(
        limiter(AnyDriver::new(namestore::MemoryDriver::new())),
        by_api_key,
    )
    .with_policy_name("a\"b");
}

#[tokio::test]
async fn keys_with_separators_are_counted_apart() {
    let service = RateLimitLayer::new(limiter(namestore::open("memory://").unwrap()), by_api_key)
        .layer(echo());
    // `:` and `%` are escaped in the stored key: "a:b" is neither "a" nor "a%3Ab".
    for key in ["a:b", "a", "a%3Ab", "a:b:170000000"] {
        for remaining in [1, 0] {
            let response = service.clone().oneshot(request(Some(key))).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{key}");
            assert_eq!(response.body(), &format!("Some({remaining})"), "{key}");
        }
        let denied = service.clone().oneshot(request(Some(key))).await.unwrap();
        assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS, "{key}");
    }
}

#[tokio::test]
async fn a_clone_is_configured_apart() {
    let first = RateLimitLayer::new(limiter(namestore::open("memory://").unwrap()), by_api_key)
        .with_policy_name("first");
    let second = first.clone().with_policy_name("second");
    for (layer, name, remaining) in [(first, "first", 1), (second, "second", 0)] {
        // Both share the limiter's counts; each names its own policy.
        let response = layer
            .layer(echo())
            .oneshot(request(Some("k")))
            .await
            .unwrap();
        assert_eq!(
            header(&response, "ratelimit"),
            Some(format!("\"{name}\";r={remaining};t=8").as_str())
        );
    }
}

/// Limited by client address through `client_network`: the addresses of one IPv6 /64 share a
/// limit, and IPv4 clients of a dual-stack listener (IPv4-mapped addresses) each have their
/// own.
#[tokio::test]
async fn clients_by_network() {
    use std::net::{IpAddr, SocketAddr};

    let limiter = RateLimiter::new(
        Namespace::new(namestore::open("memory://").unwrap(), "api", "rate").unwrap(),
        2,
        Duration::from_secs(10),
    )
    .unwrap()
    .with_clock(|| UNIX_EPOCH + Duration::from_millis(1_700_000_002_500));
    let layer = RateLimitLayer::new(limiter, |request: &Request<String>| {
        let peer = request.extensions().get::<SocketAddr>()?;
        Some(namestore_web::client_network(peer.ip()))
    });
    let service = layer.layer(echo());
    let from = |address: &str| {
        let mut request = request(None);
        let ip: IpAddr = address.parse().unwrap();
        request.extensions_mut().insert(SocketAddr::new(ip, 40_000));
        request
    };
    for (address, status) in [
        ("2001:db8:7:1::1", StatusCode::OK),
        ("2001:db8:7:1:ffff::2", StatusCode::OK),
        (
            "2001:db8:7:1:1234:5678:9abc:def0",
            StatusCode::TOO_MANY_REQUESTS,
        ),
        ("2001:db8:7:2::1", StatusCode::OK),
        ("::ffff:192.0.2.1", StatusCode::OK),
        ("::ffff:192.0.2.2", StatusCode::OK),
        ("::ffff:192.0.2.2", StatusCode::OK),
        ("192.0.2.2", StatusCode::TOO_MANY_REQUESTS),
        // The same IPv4 client through a translator (NAT64's prefix) and over 6to4, from any
        // of its 6to4 /48's 65,536 /64s: one limit, spent.
        ("64:ff9b::c000:202", StatusCode::TOO_MANY_REQUESTS),
        ("2002:c000:202:1::1", StatusCode::TOO_MANY_REQUESTS),
        ("2002:c000:202:ffff::1", StatusCode::TOO_MANY_REQUESTS),
        ("2002:c000:203:1::1", StatusCode::OK),
        ("2002:c000:203:2::1", StatusCode::OK),
        ("203.0.113.1", StatusCode::OK),
        ("2002:c000:203:3::1", StatusCode::TOO_MANY_REQUESTS),
    ] {
        let response = service.clone().oneshot(from(address)).await.unwrap();
        assert_eq!(response.status(), status, "{address}");
    }
}

/// What a `tracing` subscriber wrote, for the test to read.
#[derive(Clone, Default)]
struct Written(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Written {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Written {
    /// The lines the layer wrote (the Redis driver reports its connection's failures on its
    /// own, under `namestore::redis`).
    fn layer_lines(&self) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|line| line.contains("namestore_web::rate_limit"))
            .map(str::to_owned)
            .collect()
    }
}

/// A store that stops answering is logged, not only let through: one warning at once, then at
/// most one a second, saying how many failures it left out (an outage met by every request
/// would otherwise flood the log, or, as before, leave none).
#[tokio::test]
async fn a_store_that_cannot_answer_is_logged_once_a_second() {
    let written = Written::default();
    let sink = written.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let service = RateLimitLayer::new(limiter(unreachable_store()), by_api_key)
        .with_policy_name("api")
        .layer(echo());
    for _ in 0..5 {
        let response = service.clone().oneshot(request(Some("k"))).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let lines = written.layer_lines();
    assert_eq!(lines.len(), 1, "five failures within a second: {lines:#?}");
    let line = &lines[0];
    for part in [
        "WARN",
        "policy=\"api\"",
        "Redis",
        "failures_not_logged=0",
        "unlimited",
    ] {
        assert!(line.contains(part), "no {part:?} in {line}");
    }

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = service.clone().oneshot(request(Some("k"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let lines = written.layer_lines();
    assert_eq!(lines.len(), 2, "a failure a second later: {lines:#?}");
    assert!(
        lines[1].contains("failures_not_logged=4"),
        "the four failures left out are not counted: {}",
        lines[1]
    );
}
