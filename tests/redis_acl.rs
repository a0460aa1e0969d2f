//! The Redis driver signed in as a user whose ACL allows only the commands namestore sends (the
//! README's "A least-privilege Redis user"): the conformance suite passes under it, on a server
//! and on a Cluster, so a command the driver starts to send and the list leaves out fails here;
//! a key or a command the ACL forbids is a `Backend` error that says so.
#![cfg(feature = "redis")]

#[path = "support/acl.rs"]
mod acl;
mod support;

use std::time::Duration;

use namestore::ErrorKind;
use namestore::conformance::{Harness, Time};
use namestore::drivers::redis::RedisDriver;

use acl::{CLUSTER_COMMANDS, COMMANDS, add_user, as_user};

fn harness() -> Harness<RedisDriver> {
    let url = support::start_server(support::free_port(), "");
    add_user(&url, "app", &format!("~* -@all {COMMANDS}"));
    let driver = RedisDriver::from_url(&format!(
        "{}?response_timeout_ms=30000",
        as_user(&url, "app")
    ))
    .unwrap();
    Harness::new(driver, Time::Real).with_stored_entries(move |_, _| support::stored_keys(&url))
}

namestore::conformance_tests!(harness());

/// Every kind of call, in the namespace `app:x`: each must succeed.
async fn every_call(driver: &RedisDriver) {
    let ns = driver.namespace::<String>("app", "x").unwrap();
    let k = |i: u32| format!("k{i}");
    ns.set(&k(1), "a", None).await.unwrap();
    ns.set(&k(2), "b", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(ns.set_nx(&k(3), "c", None).await.unwrap());
    assert!(ns.replace(&k(3), "d", None).await.unwrap());
    assert_eq!(ns.get(&k(1)).await.unwrap().as_deref(), Some(&b"a"[..]));
    assert!(ns.exists(&k(2)).await.unwrap());
    assert!(ns.expire(&k(1), Duration::from_secs(60)).await.unwrap());
    assert!(ns.persist(&k(1)).await.unwrap());
    assert!(matches!(
        ns.ttl(&k(2)).await.unwrap(),
        namestore::KeyTtl::ExpiresIn(_)
    ));
    assert_eq!(ns.incr(&k(4), 5).await.unwrap(), 5);
    assert_eq!(
        ns.incr_with_ttl(&k(5), 1, Duration::from_secs(60))
            .await
            .unwrap(),
        1
    );
    assert!(ns.cas(&k(1), "a", "e", None).await.unwrap());
    assert!(ns.cad(&k(1), "e").await.unwrap());
    assert_eq!(
        ns.get_set(&k(3), "f", None).await.unwrap().as_deref(),
        Some(&b"d"[..])
    );
    ns.mset([(&k(6), "g"), (&k(7), "h")], None).await.unwrap();
    ns.mset([(&k(8), "i"), (&k(9), "j")], Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(ns.mget([&k(6), &k(9)]).await.unwrap().len(), 2);
    assert_eq!(ns.mdel([&k(6), &k(7)]).await.unwrap(), 2);
    assert_eq!(ns.keys("k*").await.unwrap().len(), 6);
    use futures_util::StreamExt;
    let listed: Vec<_> = std::pin::pin!(namestore::Driver::namespaces(driver))
        .collect()
        .await;
    assert!(
        listed
            .iter()
            .any(|info| info.as_ref().unwrap().name().to_string() == "app:x"),
        "{listed:?}"
    );
    assert_eq!(ns.clear().await.unwrap(), 6);
}

/// The error of a call the ACL forbids: `Backend`, saying so.
#[track_caller]
fn assert_forbidden(error: &namestore::Error, what: &str) {
    assert_eq!(error.kind(), ErrorKind::Backend, "{error}");
    let text = error.to_string();
    assert!(text.contains(what), "{text}");
    assert!(text.contains("has no permissions to"), "{text}");
    assert!(!text.contains("credentials"), "{text}");
    assert!(!text.contains("Incompatible type"), "{text}");
}

/// A user kept to its namespace's keys (`~app:*`) works there, and is refused elsewhere with
/// an error that names the key and the ACL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_kept_to_its_namespaces_keys() {
    let url = support::start_server(support::free_port(), "");
    add_user(&url, "app", &format!("~app:* -@all {COMMANDS}"));
    // Listing counts with `SCAN`, which Redis does not limit to the user's keys.
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let () = redis::cmd("SET")
        .arg("other:x:k")
        .arg("v")
        .query(&mut admin)
        .unwrap();
    let driver = RedisDriver::from_url(&as_user(&url, "app")).unwrap();
    every_call(&driver).await;
    use futures_util::StreamExt;
    let listed: Vec<String> = std::pin::pin!(namestore::Driver::namespaces(&driver))
        .map(|info| info.unwrap().name().to_string())
        .collect()
        .await;
    assert_eq!(listed, ["other:x"]);
    let other = driver.namespace::<String>("other", "x").unwrap();
    let error = other.set(&"k".to_owned(), "v", None).await.unwrap_err();
    assert_forbidden(&error, "may not run this command on key \"k\"");
    let error = other.get(&"k".to_owned()).await.unwrap_err();
    assert_forbidden(&error, "its ACL forbids the command or the key");
}

/// A user without the scripting commands cannot compare-and-swap (nor take a lock); one
/// without `SELECT` cannot connect to another database than 0. Neither is told its
/// credentials were refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_missing_a_command() {
    let url = support::start_server(support::free_port(), "");
    let without_scripts = COMMANDS.replace(" +evalsha +eval", "");
    add_user(&url, "app", &format!("~* -@all {without_scripts}"));
    let driver = RedisDriver::from_url(&as_user(&url, "app")).unwrap();
    let ns = driver.namespace::<String>("app", "x").unwrap();
    ns.set(&"k".to_owned(), "a", None).await.unwrap();
    let error = ns.cas(&"k".to_owned(), "a", "b", None).await.unwrap_err();
    assert_forbidden(&error, "its ACL forbids the command or the key");

    add_user(&url, "app", &format!("~* -@all {COMMANDS}"));
    let in_db_3 = as_user(&url, "app").replace("/0", "/3");
    let driver = RedisDriver::from_url(&in_db_3).unwrap();
    let ns = driver.namespace::<String>("app", "x").unwrap();
    let error = ns.set(&"k".to_owned(), "a", None).await.unwrap_err();
    assert_forbidden(&error, "may not run a command that connecting needs");
    add_user(&url, "app", &format!("~* -@all {COMMANDS} +select"));
    let driver = RedisDriver::from_url(&in_db_3).unwrap();
    every_call(&driver).await;
}

/// On a Cluster, with the cluster commands added, every call works, with the namespace hash
/// tag and without; a user who may not list the nodes gets the refusal itself when listing,
/// not a reply the driver could not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_user() {
    let url = support::start_cluster();
    let nodes = support::nodes(&url);
    for node in &nodes {
        add_user(
            node,
            "app",
            &format!("~* -@all {COMMANDS} {CLUSTER_COMMANDS}"),
        );
    }
    for url in [
        as_user(&url, "app"),
        format!("{}?hash_tag=1", as_user(&url, "app")),
    ] {
        every_call(&RedisDriver::from_url(&url).unwrap()).await;
    }
    for node in &nodes {
        let rules =
            format!("~* -@all {COMMANDS} {CLUSTER_COMMANDS}").replace(" +cluster|nodes", "");
        add_user(node, "app", &rules);
    }
    let driver = RedisDriver::from_url(&as_user(&url, "app")).unwrap();
    let ns = driver.namespace::<String>("app", "x").unwrap();
    let error = ns.keys("*").await.unwrap_err();
    assert_forbidden(&error, "its ACL forbids the command or the key");
}
