//! Real `redis-server` processes for the Redis tests, on free loopback ports. Each test
//! binary uses some of these helpers, not all.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub mod read_only;
mod scratch;
pub use scratch::scratch_dir;

/// Calls `call` until it succeeds, 30 times at most, 200 ms apart (a handle finding its way
/// back after a change on the servers): what it gave, or the text of its last error.
pub async fn until_ok<T, F, Fut>(mut call: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = namestore::Result<T>>,
{
    let mut last = String::new();
    for _ in 0..30 {
        match call().await {
            Ok(value) => return Ok(value),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last)
}

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
/// outlives the run; the wrapper is not waited for, by design. What the server prints goes to
/// a log in a scratch directory (not to the test's output, which the server would hold open
/// past the test), quoted when it does not start.
pub fn start_server(port: u16, extra: &str) -> String {
    spawn_server(
        port,
        &format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no \
             --loglevel warning {extra}"
        ),
    );
    format!("redis://127.0.0.1:{port}/0")
}

/// Starts a Redis Sentinel on `port` (`redis-server --sentinel`) monitoring the primary on
/// `primary_port` as `master`, with quorum 1 and the primary taken as down after 500 ms (a
/// failover within a few seconds); `extra` lines are added to its configuration file.
pub fn start_sentinel(port: u16, master: &str, primary_port: u16, extra: &str) {
    let config = scratch_dir("redis-sentinels").join(format!("{port}.conf"));
    std::fs::write(
        &config,
        format!(
            "port {port}\nbind 127.0.0.1\nloglevel warning\n\
             sentinel monitor {master} 127.0.0.1 {primary_port} 1\n\
             sentinel down-after-milliseconds {master} 500\n\
             sentinel failover-timeout {master} 5000\n{extra}\n"
        ),
    )
    .unwrap();
    spawn_server(
        port,
        &format!("redis-server '{}' --sentinel", config.display()),
    );
}

/// Runs `command` (a `redis-server`) in a shell wrapper that stops it once this test process is
/// gone, and waits until it accepts connections on `port`.
#[allow(clippy::zombie_processes)]
fn spawn_server(port: u16, command: &str) {
    ensure_redis_server();
    let log = scratch_dir("redis-logs").join(format!("{port}.log"));
    let script = format!(
        "{command} >'{log}' 2>&1 & \
         server=$!; while kill -0 $PPID 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 1; done; \
         kill $server 2>/dev/null",
        log = log.display()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("a shell to start redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not start on port {port} (apt-get install redis-server, if it is \
             not installed); it printed:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stops the server on `port` (`SHUTDOWN NOSAVE`) and waits until the port is closed.
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

/// Starts a Redis Cluster of three primaries on free loopback ports (`redis-cli --cluster
/// create`) and waits until it serves every slot; returns its `redis+cluster://` seed URL.
pub fn start_cluster() -> String {
    start_cluster_with(None, false, 0)
}

/// As [`start_cluster`], the nodes speaking TLS only, to clients and to each other, with the
/// test certificate of [`certificates`]; returns its `rediss+cluster://` seed URL (whose
/// clients must trust `ca.crt` in that directory).
pub fn start_tls_cluster() -> String {
    start_cluster_with(Some(certificates()), false, 0)
}

/// As [`start_tls_cluster`], every node requiring clients to present a certificate the CA
/// signed (`tls-auth-clients yes`, Redis's default): `client.crt` and `client.key`.
pub fn start_tls_cluster_requiring_clients() -> String {
    start_cluster_with(Some(certificates()), true, 0)
}

/// As [`start_cluster`], each primary with a replica (six nodes), which takes over a second
/// after its primary stops answering (`cluster-node-timeout 1000`); returns once every replica
/// has its primary's data.
pub fn start_cluster_with_replicas() -> String {
    start_cluster_with(None, false, 1)
}

fn start_cluster_with(
    tls: Option<&std::path::Path>,
    auth_clients: bool,
    replicas: usize,
) -> String {
    let ports: Vec<u16> = (0..3 * (1 + replicas)).map(|_| cluster_port()).collect();
    // Replicas synchronise at once, and take over soon after their primary fails.
    let failover = if replicas > 0 {
        " --cluster-node-timeout 1000 --repl-diskless-sync-delay 0"
    } else {
        ""
    };
    let dir = scratch_dir("cluster").join(ports[0].to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let tls_server = |port: u16| match tls {
        Some(certificates) => format!(
            " --port 0 --tls-port {port} --tls-cluster yes --tls-cert-file {d}/server.crt \
             --tls-key-file {d}/server.key --tls-ca-cert-file {d}/ca.crt \
             --tls-auth-clients {}",
            if auth_clients { "yes" } else { "no" },
            d = certificates.display()
        ),
        None => String::new(),
    };
    let tls_cli: Vec<String> = tls.map(tls_cli_args).unwrap_or_default();
    for port in &ports {
        start_server(
            *port,
            &format!(
                "--cluster-enabled yes --cluster-config-file nodes-{port}.conf --dir {}{}{}",
                dir.display(),
                tls_server(*port),
                failover
            ),
        );
    }
    let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let created = Command::new("redis-cli")
        .args(&tls_cli)
        .arg("--cluster")
        .arg("create")
        .args(&nodes)
        .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("redis-cli (from the redis-tools package, installed with redis-server)");
    assert!(created.success(), "redis-cli --cluster create failed");
    let ask = |port: u16, args: &[&str]| {
        Command::new("redis-cli")
            .args(&tls_cli)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let wait_for_every_node = |args: &[&str], ready: &dyn Fn(&str) -> bool, what: &str| {
        for port in &ports {
            while !ready(&ask(*port, args)) {
                assert!(Instant::now() < deadline, "{what}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    wait_for_every_node(
        &["CLUSTER", "INFO"],
        &|out| out.contains("cluster_state:ok"),
        "the cluster did not come up",
    );
    // A replica takes over only once it has its primary's data.
    if replicas > 0 {
        wait_for_every_node(
            &["INFO", "replication"],
            &|out| out.contains("role:master") || out.contains("master_link_status:up"),
            "the replicas did not synchronise",
        );
    }
    let scheme = if tls.is_some() {
        "rediss+cluster"
    } else {
        "redis+cluster"
    };
    format!("{scheme}://{}", nodes.join(","))
}

/// `redis-cli`'s flags to speak TLS with the CA and client certificate in `certificates`.
pub fn tls_cli_args(certificates: &std::path::Path) -> Vec<String> {
    let file = |name: &str| certificates.join(name).display().to_string();
    [
        "--tls".to_owned(),
        "--cacert".to_owned(),
        file("ca.crt"),
        "--cert".to_owned(),
        file("client.crt"),
        "--key".to_owned(),
        file("client.key"),
    ]
    .into()
}

/// A port for a cluster node: the node also listens on port + 10000 (the cluster bus), which
/// must be free and below 65536, so ports come from 11000–19999, below the ephemeral range,
/// handed out once each by this process.
fn cluster_port() -> u16 {
    static NEXT: std::sync::Mutex<u16> = std::sync::Mutex::new(0);
    let mut next = NEXT.lock().unwrap();
    if *next == 0 {
        *next = 11000 + (std::process::id() % 80) as u16 * 100;
    }
    loop {
        let port = *next;
        *next = if *next >= 19999 { 11000 } else { *next + 1 };
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10000) {
            return port;
        }
    }
}

/// The plain `redis://host:port/` URL of every node a `redis://` or `redis+cluster://` URL
/// names (without credentials or parameters).
pub fn nodes(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let hosts = rest.split(['/', '?']).next().unwrap_or(rest);
    hosts
        .split(',')
        .map(|host| format!("redis://{host}/"))
        .collect()
}

/// Runs `query` on a blocking connection to every node `url` names and sums the answers.
fn sum_over_nodes(url: &str, query: impl Fn(&mut redis::Connection) -> u64) -> u64 {
    nodes(url)
        .iter()
        .map(|node| {
            query(
                &mut redis::Client::open(node.as_str())
                    .unwrap()
                    .get_connection()
                    .unwrap(),
            )
        })
        .sum()
}

/// Keys held by the nodes `url` names, expired ones not reclaimed yet included.
pub fn stored_keys(url: &str) -> usize {
    sum_over_nodes(url, |connection| {
        redis::cmd("DBSIZE").query::<u64>(connection).unwrap()
    }) as usize
}

/// How many times the nodes `url` names have run `command` (from `INFO commandstats`).
pub fn command_calls(url: &str, command: &str) -> u64 {
    sum_over_nodes(url, |connection| {
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(connection)
            .unwrap();
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .map_or(0, |rest| {
                rest.split(',').next().unwrap().parse::<u64>().unwrap()
            })
    })
}

/// A CA, a server certificate for 127.0.0.1 (`server.crt`, `server.key`) and a client
/// certificate (`client.crt`, `client.key`) it signed, made once per run.
pub fn certificates() -> &'static std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| make_certificates("tls"))
}

/// Another CA and the same certificates signed by it (a CA renewed), made once per run.
pub fn other_certificates() -> &'static std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| make_certificates("tls-other"))
}

fn make_certificates(name: &str) -> std::path::PathBuf {
    {
        let dir = scratch_dir(name);
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        std::fs::write(dir.join("client.cnf"), "extendedKeyUsage=clientAuth\n").unwrap();
        let steps: [&[&str]; 5] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=namestore test CA",
            ],
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "client.key",
                "-out",
                "client.csr",
                "-subj",
                "/CN=namestore test client",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "client.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "client.crt",
                "-days",
                "2",
                // With an extension, the certificate is X.509 v3 (rustls takes no older).
                "-extfile",
                "client.cnf",
            ],
        ];
        for args in steps {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("openssl (apt-get install openssl)");
            assert!(status.success(), "openssl {args:?} failed");
        }
        dir
    }
}

/// Starts a TLS-only `redis-server` with the test certificate; returns its port.
pub fn start_tls_server(dir: &std::path::Path) -> u16 {
    start_tls_server_with(dir, "no")
}

/// Starts a TLS-only `redis-server` with the test certificate that requires every client to
/// present a certificate its CA signed (`tls-auth-clients yes`, Redis's default); returns its
/// port.
pub fn start_tls_server_requiring_clients(dir: &std::path::Path) -> u16 {
    start_tls_server_with(dir, "yes")
}

fn start_tls_server_with(dir: &std::path::Path, auth_clients: &str) -> u16 {
    let port = free_port();
    start_server(
        port,
        &format!(
            "--port 0 --tls-port {port} --tls-cert-file {d}/server.crt --tls-key-file {d}/server.key \
             --tls-ca-cert-file {d}/ca.crt --tls-auth-clients {auth_clients}",
            d = dir.display()
        ),
    );
    port
}
