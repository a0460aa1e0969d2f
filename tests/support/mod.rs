//! Real `redis-server` processes for the Redis tests, on free loopback ports.

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Makes sure `redis-server` is installed: on a machine without it, installs Debian's
/// package (as the CI does), so the test command needs no set-up; fails with the command to
/// run when that is not possible.
fn ensure_redis_server() {
    static READY: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let ready = READY.get_or_init(|| {
        let installed = || Command::new("redis-server").arg("--version").output().is_ok_and(|o| o.status.success());
        if installed() {
            return Ok(());
        }
        let _ = Command::new("apt-get").arg("update").arg("-qq").status();
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "redis-server"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
        if installed() {
            Ok(())
        } else {
            Err("redis-server is not installed and could not be installed: run `apt-get install redis-server`".into())
        }
    });
    if let Err(message) = ready {
        panic!("{message}");
    }
}

/// Starts `redis-server` on `port` with `extra` arguments and waits until it accepts
/// connections. A shell wrapper stops the server once this test process is gone, so no server
/// outlives the run; the wrapper is not waited for, by design.
#[allow(clippy::zombie_processes)]
pub fn start_server(port: u16, extra: &str) -> String {
    ensure_redis_server();
    let script = format!(
        "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --loglevel warning {extra} & \
         server=$!; while kill -0 $PPID 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 1; done; \
         kill $server 2>/dev/null"
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("a shell to start redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not start on port {port}: is it installed? (apt-get install redis-server)"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    format!("redis://127.0.0.1:{port}/0")
}

/// Stops the server on `port` (`SHUTDOWN NOSAVE`) and waits until the port is closed.
#[allow(dead_code)]
pub fn stop_server(port: u16) {
    let url = format!("redis://127.0.0.1:{port}/");
    let mut connection = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _ = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query::<()>(&mut connection);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "redis-server did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
}
