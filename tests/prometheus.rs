//! The telemetry example as a user runs it: a real process serving metrics over HTTP, scraped
//! by a plain HTTP request; its per-namespace series are there, its span log lines carry the
//! database fields, and no key appears in either.
#![cfg(feature = "metrics")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The example's binary, built by `cargo test` beside this test (`target/<profile>/examples`).
fn example() -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop(); // deps
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples")
        .join(format!("telemetry{}", std::env::consts::EXE_SUFFIX))
}

fn scrape(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.starts_with("HTTP/1.1 200").then_some(response)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_example_serves_per_namespace_series_over_http() {
    let binary = example();
    assert!(
        binary.exists(),
        "{} is missing: `cargo test --all-features` builds it",
        binary.display()
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&binary)
        .env("NAMESTORE_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("NAMESTORE_EXAMPLE_SECONDS", "30")
        .env_remove("NAMESTORE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Killed(child);

    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        if let Some(body) = scrape(port)
            && body.contains("namestore_hits_total")
        {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no metrics served on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for series in [
        r#"namestore_operations_total{namespace="app:sessions",operation="get",driver="memory",outcome="ok"} 40"#,
        r#"namestore_operations_total{namespace="app:sessions",operation="set",driver="memory",outcome="ok"} 21"#,
        r#"namestore_operations_total{namespace="app:visits",operation="incr",driver="memory",outcome="ok"}"#,
        r#"namestore_operations_total{namespace="app:sessions",operation="incr",driver="memory",outcome="not_an_integer"} 1"#,
        r#"namestore_hits_total{namespace="app:sessions",operation="get",driver="memory"} 20"#,
        r#"namestore_misses_total{namespace="app:sessions",operation="get",driver="memory"} 20"#,
        r#"namestore_operation_duration_seconds_count{namespace="app:sessions",operation="get",driver="memory",outcome="ok"} 40"#,
    ] {
        assert!(body.contains(series), "missing {series} in:\n{body}");
    }
    assert!(!body.contains("session-"), "a key in the metrics:\n{body}");

    // The span log: DEBUG lines with the database fields, and no key below TRACE.
    let _ = child.0.kill();
    let mut log = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains(r#"db.operation.name="get" db.namespace="app:sessions""#),
        "{log}"
    );
    assert!(log.contains("namestore.hit=false"), "{log}");
    assert!(!log.contains("session-1"), "a key in the span log:\n{log}");
}
