//! Keys another client filled with another Redis type than a string, on any Redis driver.

use std::time::Duration;

use namestore::ErrorKind;
use namestore::drivers::redis::RedisDriver;

/// A key another client filled with a list, a hash or a set (not a string value): a counter
/// call is "not an integer" (SPEC 4.4, as for a string that is not one), a read is a backend
/// error naming the key, and neither changes what the key holds. `raw` writes and reads the
/// server (or cluster) as another client; `hash_tag`: whether `driver` stores keys as
/// `{root:domain}:key`.
pub async fn are_named_and_left_alone(
    driver: &RedisDriver,
    raw: &mut dyn redis::ConnectionLike,
    hash_tag: bool,
) {
    let counters = driver.namespace::<String>("app", "counters").unwrap();
    for (kind, write) in [
        ("list", redis::cmd("RPUSH")),
        ("hash", redis::cmd("HSET")),
        ("set", redis::cmd("SADD")),
    ] {
        let key = format!("{kind}-key");
        let full = if hash_tag {
            format!("{{app:counters}}:{key}")
        } else {
            counters.full_key(&key).unwrap()
        };
        let mut write = write;
        write.arg(&full).arg("a");
        if kind == "hash" {
            write.arg("1");
        }
        write.query::<()>(raw).unwrap();

        for (call, result) in [
            ("incr", counters.incr(&key, 1).await.map(drop)),
            ("decr", counters.decr(&key, 1).await.map(drop)),
            (
                "incr_with_ttl",
                counters
                    .incr_with_ttl(&key, 1, Duration::from_secs(60))
                    .await
                    .map(drop),
            ),
        ] {
            let error = result.unwrap_err();
            assert_eq!(
                error.kind(),
                ErrorKind::NotAnInteger,
                "{kind}, {call}: {error}"
            );
            assert_eq!(error.key(), Some(key.as_str()));
        }
        for (call, result) in [
            ("get", counters.get(&key).await.map(drop)),
            ("get_set", counters.get_set(&key, "v", None).await.map(drop)),
            ("cas", counters.cas(&key, "a", "v", None).await.map(drop)),
            ("cad", counters.cad(&key, "a").await.map(drop)),
        ] {
            let error = result.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Backend, "{kind}, {call}: {error}");
            assert_eq!(error.key(), Some(key.as_str()), "{kind}, {call}: {error}");
            assert!(
                error.to_string().contains("another Redis type"),
                "{kind}, {call}: {error}"
            );
            assert!(std::error::Error::source(&error).is_some());
        }
        let held: String = redis::cmd("TYPE").arg(&full).query(raw).unwrap();
        assert_eq!(held, kind, "the key still holds its {kind}");
        let ttl: i64 = redis::cmd("PTTL").arg(&full).query(raw).unwrap();
        assert_eq!(ttl, -1, "no TTL given to the {kind}");
    }
}
