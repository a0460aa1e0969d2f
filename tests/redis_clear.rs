//! SPEC 6.4 on Redis: clearing a namespace of 100,000 keys never blocks the server: no command
//! of `clear` takes over 5 ms on the server (its slow log). Alone in its binary: the slow log
//! measures wall time, so a server descheduled by tests running beside it on a 2-core machine
//! would log a command that did not block anything.
#![cfg(feature = "redis")]

use namestore::drivers::redis::RedisDriver;
use support::{free_port, start_server};

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_100_000_keys_never_blocks_the_server() {
    let port = free_port();
    let url = start_server(port, "");
    let ns = RedisDriver::from_url(&url)
        .unwrap()
        .namespace::<String>("app", "big")
        .unwrap();
    for chunk in 0..100 {
        ns.mset((0..1000).map(|i| (format!("k{chunk}-{i}"), "v")), None)
            .await
            .unwrap();
    }
    let mut connection = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    // Log every command slower than 5 ms.
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(5000)
        .query::<()>(&mut connection)
        .unwrap();
    redis::cmd("SLOWLOG")
        .arg("RESET")
        .query::<()>(&mut connection)
        .unwrap();
    assert_eq!(ns.clear().await.unwrap(), 100_000);
    let slow: usize = redis::cmd("SLOWLOG")
        .arg("LEN")
        .query(&mut connection)
        .unwrap();
    assert_eq!(slow, 0, "a command of clear took over 5 ms");
    let left: usize = redis::cmd("DBSIZE").query(&mut connection).unwrap();
    assert_eq!(left, 0);
}
