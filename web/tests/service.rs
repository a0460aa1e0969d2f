//! The example service end to end, as its users see it: server processes started on free
//! loopback ports (this test binary re-run as the server, built from the example's own
//! `app.rs`), driven over real HTTP by `reqwest` with cookies.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "../examples/service/app.rs"]
#[allow(dead_code)]
mod app;
#[path = "../../tests/support/mod.rs"]
mod support;

/// Not a test of its own: the server process the other tests start. It does nothing unless
/// `NAMESTORE_WEB_SERVE` is set, which only those tests do.
#[test]
fn serve_child() {
    if std::env::var_os("NAMESTORE_WEB_SERVE").is_none() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = app::Config::from_env();
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .unwrap();
        let router = app::router(&config, Some(metrics)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        app::serve(listener, router).await.unwrap();
    });
}

/// A server process; killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["serve_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("NAMESTORE_WEB_SERVE", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (address, listening) = std::sync::mpsc::channel();
        // Reads the address, then keeps draining the output so the server never blocks on a
        // full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may print `test serve_child ... ` first, on the same line.
                if let Some((_, base)) = line.split_once("listening on ") {
                    let _ = address.send(base.trim().to_owned());
                }
            }
        });
        let Ok(base) = listening.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("the server did not start listening within 60 s");
        };
        Server { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn stop(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct Visits {
    user: Option<String>,
    visits: u64,
}

async fn visits(client: &reqwest::Client, server: &Server) -> Visits {
    let response = client.get(server.url("/visits")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn login(client: &reqwest::Client, server: &Server, user: &str) {
    let response = client
        .post(server.url(&format!("/login?user={user}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

fn alice(visits: u64) -> Visits {
    Visits {
        user: Some("alice".into()),
        visits,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_a_restart_of_the_server_on_redb() {
    let dir = std::env::temp_dir().join(format!("namestore-web-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("redb://{}/service.redb", dir.display());
    let client = browser();

    let first = Server::start(&[("NAMESTORE_URL", &url)]);
    login(&client, &first, "alice").await;
    assert_eq!(visits(&client, &first).await, alice(1));
    assert_eq!(visits(&client, &first).await, alice(2));
    first.stop();

    let second = Server::start(&[("NAMESTORE_URL", &url)]);
    assert_eq!(
        visits(&client, &second).await,
        alice(3),
        "the session did not survive"
    );
    second.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The example's rate limit key: an API key by its digest (never the key itself), else the
/// client's network: the addresses of one IPv6 /64 share a limit, so a client cannot escape it
/// by taking a new address for each request.
#[test]
fn the_example_limits_a_client_by_its_network() {
    let key_of = |peer: &str, api_key: Option<&str>| {
        let mut request = axum::extract::Request::new(axum::body::Body::empty());
        let peer: std::net::SocketAddr = peer.parse().unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        if let Some(api_key) = api_key {
            request
                .headers_mut()
                .insert("x-api-key", api_key.parse().unwrap());
        }
        app::rate_limit_key(&request).unwrap()
    };
    let one = key_of("[2001:db8:7:1:aaaa:bbbb:cccc:dddd]:40000", None);
    assert_eq!(one, key_of("[2001:db8:7:1::42]:40001", None));
    assert_ne!(one, key_of("[2001:db8:7:2::42]:40001", None));
    assert_eq!(key_of("192.0.2.7:1", None), "ip:192.0.2.7");
    assert_eq!(key_of("[::ffff:192.0.2.7]:1", None), "ip:192.0.2.7");
    let by_key = key_of("192.0.2.7:1", Some("s3cret-api-key"));
    assert!(
        by_key.starts_with("key:") && !by_key.contains("s3cret"),
        "{by_key}"
    );
    assert_eq!(by_key, key_of("192.0.2.8:1", Some("s3cret-api-key")));
}

/// On a memory store made a cache by its URL (any key evictable by default), the service
/// gives each namespace its own mode: a flood of rate-limit keys evicts old counters, never a
/// session or the job lock, and every flooded request is still counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_on_a_store_that_evicts() {
    let server = Server::start(&[("NAMESTORE_URL", "memory://?max_entries=40&eviction=any")]);
    let client = browser();
    login(&client, &server, "alice").await;
    assert_eq!(visits(&client, &server).await, alice(1));
    for n in 0..200 {
        let response = client
            .get(server.url("/api/ping"))
            .header("x-api-key", format!("key-{n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "request {n}");
        assert!(response.headers().contains_key("ratelimit"), "request {n}");
    }
    assert_eq!(
        visits(&client, &server).await,
        alice(2),
        "the session was evicted"
    );
    let job = client
        .post(server.url("/jobs/report?work_ms=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(job.status(), 200);
    assert_eq!(job.json::<Report>().await.unwrap().token, 1);
}

/// The rate limit layer lets requests through when the store does not answer (its default):
/// the limited route still answers, without a count, rather than fail for want of one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limited_route_answers_while_the_store_is_down() {
    let port = support::free_port();
    let url = support::start_server(port, "");
    let server = Server::start(&[(
        "NAMESTORE_URL",
        &format!("{url}?connect_timeout_ms=300&response_timeout_ms=300"),
    )]);
    let client = reqwest::Client::new();
    let counted = client.get(server.url("/api/ping")).send().await.unwrap();
    assert_eq!(counted.status(), 200);
    assert!(counted.headers().contains_key("ratelimit"));
    assert!(counted.text().await.unwrap().contains("remaining=9"));

    support::stop_server(port);
    let uncounted = client.get(server.url("/api/ping")).send().await.unwrap();
    assert_eq!(
        uncounted.status(),
        200,
        "the store's outage became the route's"
    );
    assert!(!uncounted.headers().contains_key("ratelimit"));
    assert!(uncounted.text().await.unwrap().contains("not counted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_shared_by_two_servers_on_redis() {
    let url = support::start_server(support::free_port(), "");
    let (a, b) = (
        Server::start(&[("NAMESTORE_URL", &url)]),
        Server::start(&[("NAMESTORE_URL", &url)]),
    );
    let client = browser();
    login(&client, &a, "alice").await;
    assert_eq!(visits(&client, &b).await, alice(1));
    assert_eq!(visits(&client, &a).await, alice(2));
    assert_eq!(visits(&client, &b).await, alice(3));
    // Another browser has its own session.
    assert_eq!(
        visits(&browser(), &b).await,
        Visits {
            user: None,
            visits: 1
        }
    );
    // Logging out ends it on both.
    let out = client.post(a.url("/logout")).send().await.unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(visits(&client, &b).await.user, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_gone() {
    let url = support::start_server(support::free_port(), "");
    let server = Server::start(&[("NAMESTORE_URL", &url), ("SESSION_TTL_SECS", "1")]);
    // No cookie store: the cookie is replayed by hand after it expired, as a client keeping
    // it past its Max-Age would, so only the store can end the session.
    let client = reqwest::Client::new();
    let response = client
        .post(server.url("/login?user=alice"))
        .send()
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let with_cookie = || {
        client
            .get(server.url("/visits"))
            .header(reqwest::header::COOKIE, &cookie)
    };
    let seen: Visits = with_cookie().send().await.unwrap().json().await.unwrap();
    assert_eq!(seen, alice(1));

    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let sessions = |redis: &mut redis::Connection| -> Vec<String> {
        redis::cmd("KEYS")
            .arg("demo:sessions:*")
            .query(redis)
            .unwrap()
    };
    assert_eq!(sessions(&mut redis).len(), 1);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        sessions(&mut redis),
        Vec::<String>::new(),
        "the session's key outlived it"
    );
    let after: Visits = with_cookie().send().await.unwrap().json().await.unwrap();
    assert_eq!(
        after,
        Visits {
            user: None,
            visits: 1
        },
        "an expired session came back"
    );
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One request to the rate-limited route, as the client saw it.
#[derive(Debug)]
struct Ping {
    sent_ms: u64,
    received_ms: u64,
    status: u16,
    window: Option<u64>,
    retry_after: Option<u64>,
    ratelimit: String,
}

/// 8 clients hammer one API key through two server processes sharing the store at `url`
/// for 4 windows: every window they covered whole allowed exactly the limit, and every
/// 429's `Retry-After` is the seconds to the window's end, rounded up.
async fn rate_limit_holds_across_two_servers(url: &str) {
    const LIMIT: usize = 25;
    const WINDOW_MS: u64 = 2_000;
    let env = [
        ("NAMESTORE_URL", url),
        ("RATE_LIMIT", "25"),
        ("RATE_WINDOW_SECS", "2"),
    ];
    let servers = [Server::start(&env), Server::start(&env)];
    let urls: Vec<String> = servers.iter().map(|s| s.url("/api/ping")).collect();
    let key = format!("hammer-{}", unix_ms());
    let until = Instant::now() + Duration::from_millis(4 * WINDOW_MS + 300);
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (urls, key) = (urls.clone(), key.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut pings = Vec::new();
                let mut n = c;
                while Instant::now() < until {
                    n += 1;
                    let sent_ms = unix_ms();
                    let response = client
                        .get(&urls[n % 2])
                        .header("x-api-key", &key)
                        .send()
                        .await
                        .unwrap();
                    let received_ms = unix_ms();
                    let header = |name: &str| {
                        response
                            .headers()
                            .get(name)
                            .map(|v| v.to_str().unwrap().to_owned())
                    };
                    let retry_after = header("retry-after").map(|v| v.parse().unwrap());
                    let ratelimit = header("ratelimit").expect("a RateLimit field");
                    assert_eq!(
                        header("ratelimit-policy").as_deref(),
                        Some("\"api\";q=25;w=2")
                    );
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap();
                    let window = body
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("window="))
                        .map(|w| w.parse().unwrap());
                    pings.push(Ping {
                        sent_ms,
                        received_ms,
                        status,
                        window,
                        retry_after,
                        ratelimit,
                    });
                }
                pings
            })
        })
        .collect();
    let mut pings = Vec::new();
    for client in clients {
        pings.extend(client.await.unwrap());
    }
    let first = pings.iter().map(|p| p.sent_ms).min().unwrap();
    let last = pings.iter().map(|p| p.sent_ms).max().unwrap();

    let mut allowed: BTreeMap<u64, usize> = BTreeMap::new();
    for ping in &pings {
        match ping.status {
            200 => *allowed.entry(ping.window.expect("a window")).or_default() += 1,
            429 => {
                // Right to the second: between the rounded-up waits at sending and receiving.
                let end = |t: u64| (t / WINDOW_MS + 1) * WINDOW_MS;
                let retry = ping.retry_after.expect("a 429 without Retry-After");
                assert!(
                    ping.ratelimit.ends_with(&format!(";r=0;t={retry}")),
                    "{ping:?}"
                );
                if end(ping.sent_ms) == end(ping.received_ms) {
                    let end = end(ping.sent_ms);
                    let up = |t: u64| (end - t).div_ceil(1000);
                    assert!(
                        (up(ping.received_ms)..=up(ping.sent_ms)).contains(&retry),
                        "Retry-After {retry} s, window ends {} ms after sending: {ping:?}",
                        end - ping.sent_ms
                    );
                }
            }
            other => panic!("status {other}: {ping:?}"),
        }
    }
    let whole: Vec<u64> = (first.div_ceil(WINDOW_MS)..(last / WINDOW_MS))
        .filter(|n| (n + 1) * WINDOW_MS <= last)
        .collect();
    assert!(whole.len() >= 3, "only {} whole windows", whole.len());
    for n in &whole {
        assert_eq!(
            allowed.get(n).copied().unwrap_or(0),
            LIMIT,
            "window {n}: {allowed:?} ({} requests in all)",
            pings.len()
        );
    }
    for (n, count) in &allowed {
        assert!(*count <= LIMIT, "window {n} allowed {count}");
    }
    let denied = pings.iter().filter(|p| p.status == 429).count();
    assert!(
        denied > whole.len() * LIMIT,
        "too few requests to test the limit: {denied} denied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_across_two_servers_on_redis() {
    let url = support::start_server(support::free_port(), "");
    rate_limit_holds_across_two_servers(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_across_two_servers_on_a_redis_cluster() {
    let url = support::start_cluster();
    rate_limit_holds_across_two_servers(&url).await;
}

#[derive(serde::Deserialize, Debug)]
struct Report {
    token: u64,
    started_ms: u64,
    finished_ms: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_lock_holds_across_two_servers_on_redis() {
    let url = support::start_server(support::free_port(), "");
    let servers = [
        Server::start(&[("NAMESTORE_URL", &url)]),
        Server::start(&[("NAMESTORE_URL", &url)]),
    ];
    let urls: Vec<String> = servers
        .iter()
        .map(|s| s.url("/jobs/report?work_ms=40"))
        .collect();
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let urls = urls.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let (mut done, mut refused) = (Vec::new(), 0);
                for n in 0..12 {
                    let response = client.post(&urls[(c + n) % 2]).send().await.unwrap();
                    match response.status().as_u16() {
                        200 => done.push(response.json::<Report>().await.unwrap()),
                        409 => refused += 1,
                        other => panic!("status {other}"),
                    }
                }
                (done, refused)
            })
        })
        .collect();
    let (mut done, mut refused) = (Vec::new(), 0);
    for client in clients {
        let (d, r) = client.await.unwrap();
        done.extend(d);
        refused += r;
    }
    assert!(
        done.len() >= 2 && refused > 0,
        "no contention: {} done, {refused} refused",
        done.len()
    );
    done.sort_by_key(|r| r.started_ms);
    for pair in done.windows(2) {
        assert!(
            pair[0].finished_ms <= pair[1].started_ms,
            "two jobs at once: {pair:?}"
        );
        assert!(
            pair[0].token < pair[1].token,
            "tokens out of order: {pair:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_per_namespace() {
    let server = Server::start(&[]);
    let client = browser();
    login(&client, &server, "alice").await;
    visits(&client, &server).await;
    let page = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("namestore_operations_total{namespace=\"demo:sessions\""),
        "{page}"
    );
}
