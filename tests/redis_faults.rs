//! The Redis driver under server faults: an unreachable server, a restart, and secrets.
//! Needs `redis-server` on the PATH (`apt-get install redis-server`); `.ci/run` installs it.
#![cfg(feature = "redis")]

use std::time::{Duration, Instant};

use namestore::ErrorKind;
use namestore::drivers::redis::{RedisConfig, RedisDriver};
use support::{command_calls, free_port, start_server, stop_server};

#[path = "support/events.rs"]
mod events;
mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_within_the_bound() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/0?connect_timeout_ms=300&response_timeout_ms=300");
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "down")
        .unwrap();
    let started = Instant::now();
    // Nothing was sent: unavailable, for reads and writes alike.
    let error = ns.get(&"k".to_owned()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error:?}");
    let error = ns.incr(&"k".to_owned(), 1).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error:?}");
    // The bound is connect + response timeouts; allow scheduling slack.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

/// The same handle works again after the server restarts; it reported the lost connection,
/// the failure to connect and the connection made again once each (`tracing` events), however
/// many calls failed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_handle_works_again_after_a_restart() {
    let events = events::captured();
    let port = free_port();
    start_server(port, "");
    let url = format!("redis://127.0.0.1:{port}/0?connect_timeout_ms=500&response_timeout_ms=500");
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "restart")
        .unwrap();
    let key = "k".to_owned();
    ns.set(&key, "before", None).await.unwrap();

    stop_server(port);
    for _ in 0..5 {
        let error = ns.get(&key).await.unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
            "{error:?}"
        );
    }
    let server = format!("server=redis://127.0.0.1:{port}/0");
    let reported = |what: &str| events.lines_with(&[&server, "namestore::redis", what]);
    let lost = reported("the connection to Redis failed");
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(lost[0].contains("WARN"), "{lost:?}");
    assert_eq!(reported("cannot connect to Redis").len(), 1);
    assert_eq!(reported("connected to Redis again").len(), 0);

    start_server(port, "");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match ns.set(&key, "after", None).await {
            Ok(()) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "the handle did not reconnect: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ns.get(&key).await.unwrap().as_deref(), Some(&b"after"[..]));
    let again = reported("connected to Redis again");
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(again[0].contains("INFO"), "{again:?}");
    assert_eq!(reported("cannot connect to Redis").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_never_appears_in_errors_or_debug() {
    let port = free_port();
    start_server(port, "--requirepass hunter2secret");
    let wrong =
        format!("redis://:wrongpass-hunter2secret@127.0.0.1:{port}/0?connect_timeout_ms=500");
    let driver = RedisDriver::from_url(&wrong).unwrap();
    for shown in [format!("{driver:?}"), format!("{:?}", driver.config())] {
        assert!(!shown.contains("hunter2secret"), "{shown}");
    }
    let error = driver
        .namespace::<String>("app", "auth")
        .unwrap()
        .get(&"k".to_owned())
        .await
        .unwrap_err();
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains("hunter2secret"), "{shown}");
    }
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        assert!(!cause.to_string().contains("hunter2secret"), "{cause}");
        source = cause.source();
    }

    let right = format!("redis://:hunter2secret@127.0.0.1:{port}/0");
    let ns = namestore::open(&right)
        .unwrap()
        .namespace::<String>("app", "auth")
        .unwrap();
    ns.set(&"k".to_owned(), "v", None).await.unwrap();
    assert!(!format!("{:?}", RedisConfig::from_url(&right).unwrap()).contains("hunter2secret"));
    for bad in [
        "redis://:hunter2secret@",
        "redis://:hunter2secret@host:notaport",
        "redis://u:hunter2secret@h/x?bogus=1",
    ] {
        let error = namestore::open(bad).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidUrl, "{bad}");
        assert!(!error.to_string().contains("hunter2secret"), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_when_the_server_stops_all_answer_within_the_bound() {
    let port = free_port();
    start_server(port, "");
    let url = format!("redis://127.0.0.1:{port}/0?connect_timeout_ms=300&response_timeout_ms=300");
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "inflight")
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let (ns, stop) = (ns.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut slowest, mut failures) = (Duration::ZERO, 0);
                for i in 0u64.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let started = Instant::now();
                    let result = if i % 2 == 0 {
                        ns.set(&format!("k{t}"), i.to_string(), None).await
                    } else {
                        ns.get(&format!("k{t}")).await.map(|_| ())
                    };
                    slowest = slowest.max(started.elapsed());
                    if let Err(e) = result {
                        assert!(
                            matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
                            "{e:?}"
                        );
                        failures += 1;
                    }
                }
                (slowest, failures)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::task::spawn_blocking(move || stop_server(port))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut failed = 0;
    for task in tasks {
        let (slowest, failures) = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("a call hung after the server stopped")
            .unwrap();
        // The bound is 600 ms (connect + response); allow scheduling slack on a loaded machine.
        assert!(slowest < Duration::from_secs(3), "a call took {slowest:?}");
        failed += failures;
    }
    assert!(failed > 0, "no call saw the server go away");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_crash_with_appendfsync_always() {
    let dir = std::env::temp_dir().join(format!(
        "namestore-aof-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let durable = format!(
        "--appendonly yes --appendfsync always --dir {}",
        dir.display()
    );
    let url = start_server(port, &durable);
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "durable")
        .unwrap();
    for i in 0..500 {
        ns.set(&format!("k{i}"), i.to_string(), None).await.unwrap();
    }
    ns.incr(&"counter".to_owned(), 41).await.unwrap();
    ns.incr(&"counter".to_owned(), 1).await.unwrap();

    // Crash: SIGKILL, no chance to flush anything that was not already on disk.
    let pid: u32 = {
        let mut connection = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut connection)
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert!(
        std::process::Command::new("kill")
            .arg("-9")
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "redis-server survived SIGKILL");
        std::thread::sleep(Duration::from_millis(10));
    }

    start_server(port, &durable);
    let deadline = Instant::now() + Duration::from_secs(15);
    let counter = loop {
        match ns.get(&"counter".to_owned()).await {
            Ok(value) => break value,
            Err(e) => assert!(Instant::now() < deadline, "no answer after restart: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(counter.as_deref(), Some(&b"42"[..]));
    for i in 0..500 {
        let value = ns.get(&format!("k{i}")).await.unwrap();
        assert_eq!(
            value.as_deref(),
            Some(i.to_string().as_bytes()),
            "acknowledged write k{i} lost"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_ten_is_one_round_trip() {
    let url = start_server(free_port(), "");
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "batch")
        .unwrap();
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    ns.mset(keys.iter().map(|k| (k, "v")), None).await.unwrap();
    let (mget, get) = (command_calls(&url, "mget"), command_calls(&url, "get"));
    ns.mget(&keys).await.unwrap();
    assert_eq!(
        (
            command_calls(&url, "mget") - mget,
            command_calls(&url, "get") - get
        ),
        (1, 0)
    );
    let (mset, set) = (command_calls(&url, "mset"), command_calls(&url, "set"));
    ns.mset(keys.iter().map(|k| (k, "w")), None).await.unwrap();
    assert_eq!(
        (
            command_calls(&url, "mset") - mset,
            command_calls(&url, "set") - set
        ),
        (1, 0)
    );
    // With a TTL: one MULTI/EXEC transaction, sent as one pipeline.
    let exec = command_calls(&url, "exec");
    ns.mset(keys.iter().map(|k| (k, "x")), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(command_calls(&url, "exec") - exec, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_decision_is_one_transaction() {
    use namestore::rate_limit::RateLimiter;

    let url = start_server(free_port(), "");
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "rate")
        .unwrap();
    let limiter = RateLimiter::new(ns, 3, Duration::from_secs(60)).unwrap();
    let client = "client".to_owned();
    limiter.check(&client).await.unwrap();
    let calls = |name: &str| command_calls(&url, name);
    let before = (calls("exec"), calls("incrby"), calls("get"), calls("ttl"));
    for _ in 0..10 {
        limiter.check(&client).await.unwrap();
    }
    let after = (calls("exec"), calls("incrby"), calls("get"), calls("ttl"));
    assert_eq!(
        (
            after.0 - before.0,
            after.1 - before.1,
            after.2 - before.2,
            after.3 - before.3
        ),
        (10, 10, 0, 0),
        "one MULTI/EXEC with one INCRBY per decision, no reads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_increment_is_applied_at_most_once() {
    let port = free_port();
    let url = start_server(port, "");
    let ns = RedisDriver::from_url(&format!(
        "{url}?connect_timeout_ms=300&response_timeout_ms=300"
    ))
    .unwrap()
    .namespace::<String>("app", "once")
    .unwrap();
    let key = "n".to_owned();
    ns.incr(&key, 1).await.unwrap();
    // Writes wait for 1.5 s on the server: the next increment times out on our side, then the
    // server applies it once the pause ends. A retrying client would apply it twice.
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("WRITE")
        .query::<()>(&mut admin)
        .unwrap();
    // Sent, and no answer in time: a timeout, outcome unknown.
    let error = ns.incr(&key, 1).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:?}");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let value: i64 = redis::cmd("GET")
        .arg("app:once:n")
        .query(&mut admin)
        .unwrap();
    assert_eq!(
        value,
        2,
        "the timed-out increment was applied {} times",
        value - 1
    );
    assert_eq!(
        command_calls(&url, "incrby"),
        2,
        "the driver resent an increment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_and_a_database_number_from_the_url() {
    let port = free_port();
    start_server(
        port,
        "--user alice on '>s3cret-pass' '~*' '&*' '+@all' --user default off",
    );
    let url = format!("redis://alice:s3cret-pass@127.0.0.1:{port}/3");
    let ns = namestore::open(&url)
        .unwrap()
        .namespace::<String>("app", "acl")
        .unwrap();
    ns.set(&"k".to_owned(), "v", None).await.unwrap();
    let mut connection = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let in_db3: Option<String> = redis::cmd("GET")
        .arg("app:acl:k")
        .query(&mut connection)
        .unwrap();
    assert_eq!(in_db3.as_deref(), Some("v"), "the key is not in database 3");
    redis::cmd("SELECT")
        .arg(0)
        .query::<()>(&mut connection)
        .unwrap();
    let in_db0: Option<String> = redis::cmd("GET")
        .arg("app:acl:k")
        .query(&mut connection)
        .unwrap();
    assert_eq!(in_db0, None);

    let wrong = format!("redis://alice:wrong@127.0.0.1:{port}/3?connect_timeout_ms=500");
    let error = namestore::open(&wrong)
        .unwrap()
        .namespace::<String>("app", "acl")
        .unwrap()
        .get(&"k".to_owned())
        .await;
    assert!(error.is_err(), "a wrong password was accepted");
}

/// The process id of the server on `port`.
fn server_pid(port: u16) -> u32 {
    let mut connection = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut connection)
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .expect("INFO server names the process id")
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// `Unavailable` means the call was not sent (safe to retry); `Timeout` that it was sent and no
/// answer came. A server stopped with SIGSTOP while a handle is connected: a call on that
/// connection is a timeout. A new handle cannot even finish connecting: unavailable. After
/// SIGCONT, the timed-out write was applied once, and both handles work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_paused_mid_call_is_a_timeout_and_one_never_reached_is_unavailable() {
    let port = free_port();
    let url = start_server(port, "");
    let bounds = "connect_timeout_ms=300&response_timeout_ms=300";
    let connected = RedisDriver::from_url(&format!("{url}?{bounds}"))
        .unwrap()
        .namespace::<String>("app", "paused")
        .unwrap();
    let key = "n".to_owned();
    connected.incr(&key, 1).await.unwrap();
    let pid = server_pid(port);
    signal(pid, "STOP");
    let outcome = async {
        let sent = connected.incr(&key, 1).await.unwrap_err();
        let read = connected.get(&key).await.unwrap_err();
        let fresh = RedisDriver::from_url(&format!("{url}?{bounds}"))
            .unwrap()
            .namespace::<String>("app", "paused")
            .unwrap();
        let unsent = fresh.incr(&key, 1).await.unwrap_err();
        (sent, read, unsent, fresh)
    }
    .await;
    signal(pid, "CONT");
    let (sent, read, unsent, fresh) = outcome;
    assert_eq!(sent.kind(), ErrorKind::Timeout, "{sent:?}");
    assert_eq!(read.kind(), ErrorKind::Timeout, "{read:?}");
    assert_eq!(unsent.kind(), ErrorKind::Unavailable, "{unsent:?}");
    // The paused increment ran once the server went on; the unsent one never did.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match fresh.get(&key).await {
            Ok(value) => {
                assert_eq!(value.as_deref(), Some(&b"2"[..]));
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "no recovery: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(connected.incr(&key, 1).await.unwrap(), 3);
}

/// A call resent after its connection was lost has been sent once already: when connecting
/// again fails too, it is a timeout (outcome unknown), never `Unavailable` (which promises
/// the call was not sent). A `set` is in flight to a stopped server that is then killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_lost_in_flight_that_cannot_be_resent_is_a_timeout() {
    let port = free_port();
    let url = start_server(port, "");
    let ns = RedisDriver::from_url(&format!(
        "{url}?connect_timeout_ms=500&response_timeout_ms=5000"
    ))
    .unwrap()
    .namespace::<String>("app", "lost")
    .unwrap();
    ns.set(&"k".to_owned(), "before", None).await.unwrap();
    let pid = server_pid(port);
    signal(pid, "STOP");
    let in_flight = tokio::spawn({
        let ns = ns.clone();
        async move { ns.set(&"k".to_owned(), "after", None).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !in_flight.is_finished(),
        "the set answered a stopped server"
    );
    signal(pid, "KILL");
    let error = in_flight.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error:?}");
    assert!(
        error
            .to_string()
            .contains("may or may not have been applied"),
        "{error}"
    );
    // A call that never had a connection is unavailable, as before.
    let unsent = ns.get(&"k".to_owned()).await.unwrap_err();
    assert_eq!(unsent.kind(), ErrorKind::Unavailable, "{unsent:?}");
}

/// Stops the server on `port` that requires `password`.
fn stop_server_with_password(port: u16, password: &str) {
    let status = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--no-auth-warning", "-a", password])
        .args(["SHUTDOWN", "NOSAVE"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    let _ = status;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "redis-server did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A server restarted with a new password refuses the handle (right); restarted again with
/// the old one, the same handle connects again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handle_reconnects_once_the_server_accepts_its_password_again() {
    let port = free_port();
    start_server(port, "--requirepass old-pass");
    let url = format!(
        "redis://:old-pass@127.0.0.1:{port}/0?connect_timeout_ms=500&response_timeout_ms=500"
    );
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "auth")
        .unwrap();
    let key = "k".to_owned();
    ns.set(&key, "v", None).await.unwrap();

    stop_server_with_password(port, "old-pass");
    start_server(port, "--requirepass new-pass");
    for _ in 0..20 {
        let error = ns.get(&key).await.unwrap_err();
        assert!(!error.to_string().contains("old-pass"), "{error}");
    }
    let refused = ns.set(&key, "w", None).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Backend, "{refused:?}");
    assert!(
        refused.to_string().contains("refused the credentials"),
        "{refused}"
    );

    stop_server_with_password(port, "new-pass");
    start_server(port, "--requirepass old-pass");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ns.set(&key, "again", None).await {
            Ok(()) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "the handle never reconnected: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ns.get(&key).await.unwrap().as_deref(), Some(&b"again"[..]));
}

/// SPEC 10.8: a write refused by a server at `maxmemory` with `noeviction` is
/// `ErrorKind::OutOfMemory`, on every write path (plain commands, `MULTI`/`EXEC`, scripts);
/// nothing is written, reads and deletions still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_out_of_memory_refuses_writes_with_out_of_memory() {
    let port = free_port();
    let url = start_server(port, "--maxmemory 2mb --maxmemory-policy noeviction");
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "full")
        .unwrap();
    let value = vec![b'x'; 64 * 1024];
    let mut stored = 0;
    let refused = loop {
        match ns.set(&format!("k{stored}"), value.clone(), None).await {
            Ok(()) => stored += 1,
            Err(error) => break error,
        }
        assert!(stored < 1000, "2 MiB held 64 MB");
    };
    assert_eq!(refused.kind(), ErrorKind::OutOfMemory, "{refused:?}");
    assert!(stored > 0);
    // Well over the limit from here on (the server checks its usage before each write, so
    // right at the limit a small write may still fit): the limit drops under the data held.
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1mb")
        .query::<()>(&mut admin)
        .unwrap();
    let key = "new".to_owned();
    let ttl = Some(Duration::from_secs(60));
    let outcomes = [
        ("set", ns.set(&key, "v", None).await.map(drop)),
        ("set_nx", ns.set_nx(&key, "v", ttl).await.map(drop)),
        ("incr", ns.incr(&key, 1).await.map(drop)),
        (
            "incr_with_ttl",
            ns.incr_with_ttl(&key, 1, Duration::from_secs(60))
                .await
                .map(drop),
        ),
        ("get_set", ns.get_set(&key, "v", ttl).await.map(drop)),
        (
            "cas",
            ns.cas(&"k0".to_owned(), value.clone(), "v", ttl)
                .await
                .map(drop),
        ),
        ("mset", ns.mset([(key.clone(), "v")], None).await),
        ("mset with a TTL", ns.mset([(key.clone(), "v")], ttl).await),
    ];
    for (what, outcome) in outcomes {
        match outcome {
            Err(e) => assert_eq!(e.kind(), ErrorKind::OutOfMemory, "{what}: {e:?}"),
            Ok(()) => panic!("{what} was accepted by a full server"),
        }
    }
    assert!(
        !ns.exists(&key).await.unwrap(),
        "a refused write left a key"
    );
    assert_eq!(
        ns.get(&"k0".to_owned()).await.unwrap().as_deref(),
        Some(&value[..])
    );
    assert!(ns.delete(&"k0".to_owned()).await.unwrap());
}

/// A server that is up but runs no command for now answers the call `Unavailable` (nothing
/// ran; the same call may succeed later), reads and writes alike: busy with another client's
/// script past `busy-reply-threshold` (`BUSY`), and a replica cut off from its primary that
/// serves no stale data (`MASTERDOWN`). Once the script is killed, the calls work and nothing
/// refused was applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_runs_nothing_for_now_is_unavailable() {
    let url = start_server(free_port(), "--busy-reply-threshold 100");
    let ns = RedisDriver::from_url(&format!("{url}?response_timeout_ms=5000"))
        .unwrap()
        .namespace::<String>("app", "busy")
        .unwrap();
    let key = "k".to_owned();
    ns.set(&key, "1", None).await.unwrap();
    let blocker = std::thread::spawn({
        let url = url.clone();
        move || {
            let mut raw = redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            redis::cmd("EVAL")
                .arg("while true do end")
                .arg(0)
                .query::<()>(&mut raw)
                .unwrap_err()
        }
    });
    // Past the threshold, the server answers every other client BUSY.
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis::cmd("GET")
        .arg("x")
        .query::<Option<String>>(&mut admin)
        .is_ok()
    {
        assert!(
            Instant::now() < deadline,
            "the script never made the server busy"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = [
        ("get", ns.get(&key).await.map(drop)),
        ("set", ns.set(&key, "2", None).await.map(drop)),
        ("incr", ns.incr(&key, 1).await.map(drop)),
        (
            "incr_with_ttl",
            ns.incr_with_ttl(&key, 1, Duration::from_secs(60))
                .await
                .map(drop),
        ),
        ("cas", ns.cas(&key, "1", "2", None).await.map(drop)),
        ("mset", ns.mset([(key.clone(), "2")], None).await.map(drop)),
    ];
    for (call, result) in refused {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Unavailable, "{call}: {error}");
        assert!(error.to_string().contains("BUSY"), "{call}: {error}");
    }
    redis::cmd("SCRIPT")
        .arg("KILL")
        .query::<()>(&mut admin)
        .unwrap();
    blocker.join().unwrap();
    assert_eq!(ns.get(&key).await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(ns.incr(&key, 1).await.unwrap(), 2);

    // A replica told to serve no stale data, whose primary never answers: a port held open
    // here for the whole test, so that no other test's server can take it and be one.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let replica = start_server(
        free_port(),
        &format!(
            "--replicaof 127.0.0.1 {} --replica-serve-stale-data no",
            silent.local_addr().unwrap().port()
        ),
    );
    let ns = RedisDriver::from_url(&format!("{replica}?response_timeout_ms=5000"))
        .unwrap()
        .namespace::<String>("app", "stale")
        .unwrap();
    for (call, result) in [
        ("get", ns.get(&key).await.map(drop)),
        ("mget", ns.mget(std::slice::from_ref(&key)).await.map(drop)),
        ("ttl", ns.ttl(&key).await.map(drop)),
    ] {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Unavailable, "{call}: {error}");
        assert!(
            error.to_string().contains("Link with MASTER is down"),
            "{call}: {error}"
        );
    }
    drop(silent);
}

/// A server loading its data set after a restart answers `LOADING` until it has: the calls
/// made meanwhile are `Unavailable` and change nothing, and the same handle works once it
/// has loaded. (Loading made slow and observable with Redis's own test settings: a delay for
/// each key, and events handled every kilobyte read.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_loading_its_data_is_unavailable_until_it_has() {
    let dir = support::scratch_dir("redis-loading").join(free_port().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let files = format!(
        "--dir {} --dbfilename dump.rdb --enable-debug-command local",
        dir.display()
    );
    let url = start_server(port, &files);
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("DEBUG")
        .arg(&["POPULATE", "20000", "filler", "100"])
        .query::<()>(&mut raw)
        .unwrap();
    redis::cmd("SAVE").query::<()>(&mut raw).unwrap();
    stop_server(port);
    let url = start_server(
        port,
        &format!("{files} --key-load-delay 100 --loading-process-events-interval-bytes 1024"),
    );
    let ns = RedisDriver::from_url(&format!("{url}?response_timeout_ms=5000"))
        .unwrap()
        .namespace::<String>("app", "loading")
        .unwrap();
    let key = "n".to_owned();
    for (call, result) in [
        ("incr", ns.incr(&key, 1).await.map(drop)),
        ("get", ns.get(&key).await.map(drop)),
        ("set", ns.set(&key, "7", None).await.map(drop)),
    ] {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Unavailable, "{call}: {error}");
        assert!(error.to_string().contains("loading"), "{call}: {error}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(error) = ns.get(&key).await {
        assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
        assert!(Instant::now() < deadline, "still loading: {error}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ns.incr(&key, 1).await.unwrap(), 1, "a refused call ran");
}

/// Timeouts as long as a `Duration` holds (`Duration::MAX`, a program's "no bound") are taken
/// as they are, without a panic from adding them to the clock: calls to a server that answers
/// are answered, a standalone server's and a cluster's, and a call to a server that accepts
/// the connection and never answers waits. The URL's longest is as long as its milliseconds go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_timeouts_wait_without_a_panic() {
    let unbounded = |url: &str| {
        let mut config = RedisConfig::from_url(url).unwrap();
        config.connect_timeout = Duration::MAX;
        config.response_timeout = Duration::MAX;
        RedisDriver::new(config)
            .unwrap()
            .namespace::<String>("app", "long")
            .unwrap()
    };
    let key = "k".to_owned();
    let port = free_port();
    let url = start_server(port, "");
    let ns = unbounded(&url);
    ns.set(&key, "v", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(ns.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
    let longest = format!(
        "{url}?connect_timeout_ms={0}&response_timeout_ms={0}",
        u64::MAX
    );
    let ns = RedisDriver::from_url(&longest)
        .unwrap()
        .namespace::<String>("app", "long")
        .unwrap();
    assert_eq!(ns.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));

    let cluster = unbounded(&support::start_cluster());
    cluster.set(&key, "c", None).await.unwrap();
    assert_eq!(cluster.incr(&"n".to_owned(), 2).await.unwrap(), 2);

    // A server that takes connections and answers nothing (a listener no one reads).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!(
        "redis://127.0.0.1:{}/0",
        silent.local_addr().unwrap().port()
    );
    let waiting = unbounded(&silent_url);
    let call = tokio::time::timeout(Duration::from_millis(500), waiting.get(&key)).await;
    assert!(call.is_err(), "answered: {call:?}");
}

/// A database number the server does not have (`SELECT` refused while connecting) is a
/// `Backend` error naming the refusal, at once: it was `Unavailable` ("cannot reach the Redis
/// server"), which tells a caller to retry a call that can never succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_the_server_does_not_have_is_a_backend_error() {
    let port = free_port();
    start_server(port, "--databases 4");
    let ns = RedisDriver::from_url(&format!("redis://127.0.0.1:{port}/9"))
        .unwrap()
        .namespace::<String>("app", "db")
        .unwrap();
    let started = Instant::now();
    let error = ns.get(&"k".to_owned()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Backend, "{error}");
    assert!(error.to_string().contains("database"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The server's last database is there.
    let ns = RedisDriver::from_url(&format!("redis://127.0.0.1:{port}/3"))
        .unwrap()
        .namespace::<String>("app", "db")
        .unwrap();
    ns.set(&"k".to_owned(), "v", None).await.unwrap();
}

/// Polls `future` on this thread, outside any tokio runtime, as another executor would.
fn poll_outside_tokio<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        assert!(Instant::now() < deadline, "no answer outside tokio");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SPEC 8.2: a call made outside a tokio runtime (another executor) is an error that says so,
/// not tokio's panic; the same handle works from a runtime after.
#[test]
fn a_call_outside_a_tokio_runtime_is_an_error() {
    let port = free_port();
    let url = start_server(port, "");
    let store = namestore::open(&url).unwrap();
    let ns = store.namespace::<String>("app", "outside").unwrap();
    let error = poll_outside_tokio(ns.set(&"k".to_owned(), "v", None)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Backend, "{error}");
    assert!(error.to_string().contains("tokio runtime"), "{error}");
    let error = poll_outside_tokio(ns.keys("*")).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Backend, "{error}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        ns.set(&"k".to_owned(), "v", None).await.unwrap();
        assert_eq!(
            ns.get(&"k".to_owned()).await.unwrap().as_deref(),
            Some(&b"v"[..])
        );
    });
    drop(runtime);
    // A connection made in a runtime since dropped: still an error outside one.
    let error = poll_outside_tokio(ns.get(&"k".to_owned())).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Backend, "{error}");
    // And in another runtime, the handle connects again there.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let value = runtime.block_on(ns.get(&"k".to_owned())).unwrap();
    assert_eq!(value.as_deref(), Some(&b"v"[..]));
}

/// A TCP forwarder on a free port that sends each new connection to the port `target` holds
/// when it comes, as a managed service's endpoint (a DNS name) leads to whichever node is the
/// primary; connections already made stay where they went. Threads end with the process.
fn endpoint(target: std::sync::Arc<std::sync::atomic::AtomicU16>) -> u16 {
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) =
                std::net::TcpStream::connect(("127.0.0.1", target.load(Ordering::SeqCst)))
            else {
                continue;
            };
            let pipe = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            };
            pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
            pipe(server, client);
        }
    });
    port
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// After a failover behind one address (the old primary made a replica, the address leading
/// to the new one), a write answered `READONLY` on the old connection is sent once more on a
/// new one and lands on the new primary; the handle did not stay on the replica, failing every
/// write until restarted. A server that stays a replica is `Unavailable`: nothing ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_writes_reach_the_new_primary() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU16, Ordering};
    let (old, new) = (free_port(), free_port());
    // Replication writes an RDB file: in a scratch directory, not the working one.
    let dir = support::scratch_dir("failover");
    for port in [old, new] {
        let own = dir.join(port.to_string());
        std::fs::create_dir_all(&own).unwrap();
        start_server(port, &format!("--dir {}", own.display()));
    }
    let target = Arc::new(AtomicU16::new(old));
    let address = endpoint(Arc::clone(&target));
    let url =
        format!("redis://127.0.0.1:{address}/0?connect_timeout_ms=2000&response_timeout_ms=5000");
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "failover")
        .unwrap();
    let key = "k".to_owned();
    ns.set(&key, "1", None).await.unwrap();
    assert_eq!(redis_cli(old, &["GET", "app:failover:k"]), "1");

    assert_eq!(
        redis_cli(old, &["REPLICAOF", "127.0.0.1", &new.to_string()]),
        "OK"
    );
    target.store(new, Ordering::SeqCst);
    // Every kind of write, the ones never resent after a lost connection included.
    ns.set(&key, "2", None).await.unwrap();
    assert_eq!(redis_cli(new, &["GET", "app:failover:k"]), "2");
    assert_eq!(ns.incr(&"n".to_owned(), 5).await.unwrap(), 5);
    assert_eq!(ns.get(&key).await.unwrap().as_deref(), Some(&b"2"[..]));

    // An address that leads to a replica only.
    target.store(old, Ordering::SeqCst);
    let replica = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "failover")
        .unwrap();
    let before = redis_cli(new, &["GET", "app:failover:n"]);
    for error in [
        replica.set(&key, "3", None).await.unwrap_err(),
        replica.incr(&"n".to_owned(), 1).await.unwrap_err(),
    ] {
        assert_eq!(error.kind(), ErrorKind::Unavailable, "{error:?}");
        assert!(error.to_string().contains("replica"), "{error}");
    }
    assert_eq!(redis_cli(new, &["GET", "app:failover:n"]), before);
    // Reads are served by the replica.
    let deadline = Instant::now() + Duration::from_secs(10);
    while replica.get(&key).await.unwrap().as_deref() != Some(&b"2"[..]) {
        assert!(Instant::now() < deadline, "the replica never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the server on `port` reports its last snapshot as `status` (`ok`, `err`).
fn wait_for_snapshot(port: u16, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let wanted = format!("rdb_last_bgsave_status:{status}");
    loop {
        let info = redis_cli(port, &["INFO", "persistence"]);
        let saving = info.contains("rdb_bgsave_in_progress:1");
        if !saving && info.contains(&wanted) {
            return;
        }
        assert!(Instant::now() < deadline, "no snapshot {status}: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server that cannot save its snapshot (its disk full or gone) refuses writes with
/// `MISCONF` until it can again: `Unavailable` (nothing ran, and the same call succeeds once
/// the disk is back), not a `Backend` error that tells a caller a retry cannot help.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_cannot_save_refuses_writes_for_now() {
    let port = free_port();
    let dir = support::scratch_dir("misconf").join(port.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    // (`dir` is set again below: a protected setting.)
    start_server(
        port,
        &format!("--dir {} --enable-protected-configs yes", dir.display()),
    );
    let ns = RedisDriver::from_url(&format!("redis://127.0.0.1:{port}/0"))
        .unwrap()
        .namespace::<String>("app", "misconf")
        .unwrap();
    let key = "k".to_owned();
    ns.set(&key, "1", None).await.unwrap();
    // The snapshot's directory goes, with a save point configured.
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(redis_cli(port, &["CONFIG", "SET", "save", "3600 1"]), "OK");
    redis_cli(port, &["BGSAVE"]);
    wait_for_snapshot(port, "err");
    let ttl = Some(Duration::from_secs(60));
    for error in [
        ns.set(&key, "2", None).await.unwrap_err(),
        ns.incr(&"n".to_owned(), 1).await.unwrap_err(),
        ns.mset([("a".to_owned(), "1"), ("b".to_owned(), "2")], ttl)
            .await
            .unwrap_err(),
        ns.delete(&key).await.map(drop).unwrap_err(),
    ] {
        assert_eq!(error.kind(), ErrorKind::Unavailable, "{error:?}");
        assert!(error.to_string().contains("MISCONF"), "{error}");
    }
    // Reads go on, and nothing was written.
    assert_eq!(ns.get(&key).await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(ns.get(&"n".to_owned()).await.unwrap(), None);
    // The disk back, the same call succeeds.
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.display().to_string();
    assert_eq!(redis_cli(port, &["CONFIG", "SET", "dir", &dir]), "OK");
    redis_cli(port, &["BGSAVE"]);
    wait_for_snapshot(port, "ok");
    ns.set(&key, "2", None).await.unwrap();
    assert_eq!(ns.get(&key).await.unwrap().as_deref(), Some(&b"2"[..]));
}

/// A server that closes quiet connections (`timeout`, as a load balancer's or NAT's idle limit
/// does): the first call after a quiet spell, even one never resent (`incr`, `set_nx`, `cas`),
/// runs on a new connection, where it failed as `Timeout` ("may or may not have been applied")
/// though it was never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_while_quiet_is_made_again_before_a_call() {
    let port = free_port();
    start_server(port, "--timeout 1");
    let ns = RedisDriver::from_url(&format!("redis://127.0.0.1:{port}/0"))
        .unwrap()
        .namespace::<String>("app", "quiet")
        .unwrap();
    let n = "n".to_owned();
    assert_eq!(ns.incr(&n, 1).await.unwrap(), 1);
    for expected in 2..=4 {
        // Past the server's timeout (checked once a second): the connection is closed.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(ns.incr(&n, 1).await.unwrap(), expected);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(ns.set_nx(&"once".to_owned(), "v", None).await.unwrap());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(ns.cas(&"once".to_owned(), b"v", "w", None).await.unwrap());
}

/// Replaces the file at `path` with `content` as a secrets agent does: written beside it, then
/// renamed over it.
fn replace_file(path: &std::path::Path, content: &str) {
    let staged = path.with_extension("new");
    std::fs::write(&staged, content).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// Calls `set` until it succeeds, within 10 s; the last error otherwise.
async fn set_within(ns: &namestore::Namespace<String, RedisDriver>, value: &'static str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ns.set(&"k".to_owned(), value, None).await {
            Ok(()) => return String::new(),
            Err(e) if Instant::now() > deadline => return e.to_string(),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// A password rotated on disk (`password_file`) is used from the next connection on, without
/// a new handle: the server restarted on a new password refuses the old one until the file
/// holds the new one, and the same handle connects again as soon as it does. A file caught
/// empty (replaced half way) is passed over for the last password read. Before, a password
/// could only come in the URL, and a rotation needed a restart of the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_rotated_on_disk_is_used_from_the_next_connection() {
    let port = free_port();
    start_server(port, "--requirepass old-pass");
    let file = support::scratch_dir("password-file").join(format!("{port}.password"));
    replace_file(&file, "old-pass\n");
    let url = format!(
        "redis://127.0.0.1:{port}/0?password_file={}&connect_timeout_ms=500\
         &response_timeout_ms=500",
        file.display()
    );
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "rotated")
        .unwrap();
    ns.set(&"k".to_owned(), "before", None).await.unwrap();

    stop_server_with_password(port, "old-pass");
    start_server(port, "--requirepass new-pass");
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        // The first call may meet the lost connection; the next connects, and is refused.
        let error = ns.set(&"k".to_owned(), "v", None).await.unwrap_err();
        if error.kind() == ErrorKind::Backend || Instant::now() > deadline {
            break error.to_string();
        }
    };
    assert!(
        refused.contains("refused the credentials") && !refused.contains("old-pass"),
        "{refused}"
    );
    replace_file(&file, "new-pass\n");
    let last = set_within(&ns, "after").await;
    assert!(last.is_empty(), "the rotated password was not used: {last}");

    // Emptied mid-rotation: the last password read is kept.
    replace_file(&file, "");
    stop_server_with_password(port, "new-pass");
    start_server(port, "--requirepass new-pass");
    let last = set_within(&ns, "again").await;
    assert!(
        last.is_empty(),
        "an empty file replaced the password: {last}"
    );
    assert_eq!(
        ns.get(&"k".to_owned()).await.unwrap().as_deref(),
        Some(&b"again"[..])
    );
}

/// A server past its `maxclients` turns a new connection away, saying so, and closes it: the
/// call is `Unavailable` with the server's words (it said only "broken pipe"), and the same
/// handle connects once a client has gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_past_its_maxclients_says_so() {
    use std::io::{Read, Write};
    let port = free_port();
    let url = start_server(port, "--maxclients 3");
    let holders: Vec<std::net::TcpStream> = (0..3)
        .map(|_| {
            let mut holder = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            holder.write_all(b"PING\r\n").unwrap();
            let mut pong = [0u8; 7];
            holder.read_exact(&mut pong).unwrap();
            assert_eq!(&pong, b"+PONG\r\n");
            holder
        })
        .collect();
    let driver = RedisDriver::from_url(&url).unwrap();
    let ns = driver.namespace::<String>("app", "x").unwrap();
    let error = ns.get(&"k".to_owned()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
    assert!(
        error
            .to_string()
            .contains("turned the connection away: ERR max number of clients reached"),
        "{error}"
    );
    drop(holders);
    let key = "k".to_owned();
    let answer = support::until_ok(|| ns.get(&key)).await;
    assert_eq!(answer, Ok(None));
}

/// A server in protected mode turns away a client that is not on the loopback interface:
/// `Backend` (its settings must change), with the server's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_in_protected_mode_says_so() {
    let port = free_port();
    start_server(port, "--bind 0.0.0.0 --protected-mode yes");
    // This machine's address on its network (no packet is sent: a UDP socket is only bound).
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    probe.connect("192.0.2.200:9").unwrap();
    let address = probe.local_addr().unwrap().ip();
    assert!(!address.is_loopback(), "{address}");
    let driver = RedisDriver::from_url(&format!("redis://{address}:{port}")).unwrap();
    let ns = driver.namespace::<String>("app", "x").unwrap();
    let error = ns.get(&"k".to_owned()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Backend, "{error}");
    assert!(
        error
            .to_string()
            .contains("turned the connection away: DENIED Redis is running in protected mode"),
        "{error}"
    );
}
