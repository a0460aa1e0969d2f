//! No input makes the library panic (SPEC 8.2): the parsers of what a program passes on from
//! its configuration or its users, fed random text heavy in the characters each gives a
//! meaning to. Store URLs (`open`, and each driver's parser, which for Redis and redb only
//! parses: nothing is connected to or created), sizes, namespace names, keys read back from a
//! store (each key type's `decode`, which must give back only what its `encode` writes) and
//! counters.
#![cfg(all(feature = "redis", feature = "redb", feature = "uuid"))]

use std::net::IpAddr;

use namestore::drivers::memory::MemoryConfig;
use namestore::drivers::redb::RedbConfig;
use namestore::drivers::redis::RedisConfig;
use namestore::{Key, KeyBuf, NamespaceName, Pattern};
use proptest::prelude::*;

/// Text of the characters URLs, sizes, globs and composite keys give meanings to, and a few
/// that nothing should take for them (a two-byte letter, a NUL, a space).
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            'a', 'z', 'A', '0', '1', '9', ':', '/', '?', '#', '@', '%', '&', '=', '+', '.', '-',
            '_', '[', ']', '*', '\\', '{', '}', ' ', 'é', '\u{0}', 'k', 'K', 'i', 'B', 'b', 'E',
            'f', 'F',
        ]),
        0..max,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// A URL: a scheme (or none, or a wrong one), then text, or parameters the drivers know
/// with values near their limits.
fn url() -> impl Strategy<Value = String> {
    let prefixes = vec![
        "",
        "memory://",
        "memory://?",
        "MEMORY://?",
        "redis://",
        "rediss://",
        "redis+cluster://",
        "rediss+cluster://",
        "redis://u:p@h:1/",
        "redb://",
        "redb:///",
        "redb:///tmp/x.redb?",
        "nosuch://",
        "memory",
    ];
    let names = vec![
        "max_bytes",
        "max_entries",
        "shards",
        "reap_interval_ms",
        "eviction",
        "policy",
        "telemetry",
        "connect_timeout_ms",
        "response_timeout_ms",
        "hash_tag",
        "durable",
        "create",
        "max%5Fbytes",
        "",
    ];
    let values = vec![
        "0",
        "1",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999",
        "15EiB",
        "16EiB",
        "1.5GiB",
        "0.000000000000000000001eib",
        "1_0",
        "_",
        "any",
        "never",
        "with-ttl",
        "s3-fifo",
        "sampled-lru",
        "%31",
        "%",
        "%zz",
        "true",
        "",
    ];
    let parameter = (prop::sample::select(names), prop::sample::select(values))
        .prop_map(|(name, value)| format!("{name}={value}"));
    let schemes = vec![
        "memory://",
        "redis://h",
        "redis+cluster://h:1,h:2",
        "redb:///tmp/x.redb",
    ];
    prop_oneof![
        (prop::sample::select(prefixes), text(48))
            .prop_map(|(prefix, tail)| prefix.to_owned() + &tail),
        (
            prop::sample::select(schemes),
            prop::collection::vec(parameter, 1..4)
        )
            .prop_map(|(scheme, parameters)| format!("{scheme}?{}", parameters.join("&"))),
    ]
}

/// A key type's `decode` gives back only what its `encode` writes: one stored key per value.
fn decodes_canonically<K: Key>(text: &str) -> Result<(), TestCaseError> {
    if let Some(key) = K::decode(text) {
        let mut buf = KeyBuf::new();
        key.encode(&mut buf);
        prop_assert_eq!(buf.as_str(), text);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_000, ..ProptestConfig::default() })]

    #[test]
    fn store_urls_are_parsed_or_refused(url in url()) {
        // Only what neither connects nor creates a file is opened: the memory store, and
        // what no driver takes.
        if url.to_ascii_lowercase().starts_with("memory") || url.starts_with("nosuch") || url.is_empty() {
            let _ = namestore::open(&url);
        }
        let _ = MemoryConfig::from_url(&url);
        let _ = RedisConfig::from_url(&url);
        let _ = RedbConfig::from_url(&url);
    }

    #[test]
    fn names_keys_patterns_and_counters(root in text(12), domain in text(12), key in text(40)) {
        let _ = NamespaceName::new(&root, &domain);
        let _ = Pattern::new(&key);
        decodes_canonically::<u64>(&key)?;
        decodes_canonically::<i8>(&key)?;
        decodes_canonically::<IpAddr>(&key)?;
        decodes_canonically::<uuid::Uuid>(&key)?;
        decodes_canonically::<(String, u64)>(&key)?;
        decodes_canonically::<(u64, String, IpAddr)>(&key)?;
        decodes_canonically::<(String, (String, i64))>(&key)?;
        if let Some(count) = namestore::counter::parse_canonical(key.as_bytes()) {
            prop_assert_eq!(count.to_string(), key);
        }
    }
}
