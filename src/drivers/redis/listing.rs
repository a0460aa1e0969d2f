//! Listing on Redis: `SCAN` walks of a namespace (`keys`, `scan`, `clear`) and of the whole
//! keyspace (`namespaces`), on the standalone server or on every primary of a cluster.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, FromRedisValue, RedisError};

use super::connection::{Connection, Resend, route};
use super::{RedisDriver, RedisScope};
use crate::Result;
use crate::glob::Pattern;
use crate::name::{NamespaceInfo, NamespaceName, split_full_key};

/// How many keys one `SCAN` call asks for, and at most how many keys one `UNLINK` deletes.
pub(super) const SCAN_COUNT: usize = 1000;

/// The keys a `SCAN` walk has already yielded, as 128-bit fingerprints (two independently
/// seeded hashes): 16 bytes a key instead of the key itself, and a chance of two keys
/// colliding below 10^-20 for a billion keys.
#[derive(Default)]
pub(super) struct Seen {
    fingerprints: HashSet<u128>,
    hashers: (RandomState, RandomState),
}

impl Seen {
    /// Whether `key` is new to the walk; remembers it.
    pub(super) fn insert(&mut self, key: &[u8]) -> bool {
        let (a, b) = &self.hashers;
        let fingerprint = (u128::from(a.hash_one(key)) << 64) | u128::from(b.hash_one(key));
        self.fingerprints.insert(fingerprint)
    }
}

/// How many slots a cluster has.
const SLOTS: u32 = 16384;

/// How many slots a slot field of `CLUSTER NODES` gives its node: `5461-10922`, `42`, or none
/// for a slot on its way in or out (`[42->-id]`, `[42-<-id]`: still served where it was).
fn slots_in(range: &str) -> u32 {
    if range.starts_with('[') {
        return 0;
    }
    let (low, high) = range.split_once('-').unwrap_or((range, range));
    match (low.parse::<u32>(), high.parse::<u32>()) {
        (Ok(low), Ok(high)) if low <= high => high - low + 1,
        _ => 0,
    }
}

/// The endpoint each primary announces in a `CLUSTER SLOTS` answer, by node id: what the
/// client library connects to (it reads the same answer). Left out: a primary with no usable
/// endpoint there (empty, `?`, a wildcard address: the library then uses another), whose IP
/// from `CLUSTER NODES` is taken instead.
fn announced_endpoints(slots: redis::Value) -> HashMap<String, (String, u16)> {
    use redis::Value;
    let text = |value: &Value| match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    };
    let mut endpoints = HashMap::new();
    let Value::Array(ranges) = slots else {
        return endpoints;
    };
    for range in ranges {
        let Value::Array(range) = range else { continue };
        // `[start, end, primary, replicas…]`, a node being `[host, port, id, …]`.
        let Some(Value::Array(primary)) = range.get(2) else {
            continue;
        };
        let (Some(host), Some(Value::Int(port)), Some(id)) = (
            primary.first().and_then(text),
            primary.get(1),
            primary.get(2).and_then(text),
        ) else {
            continue;
        };
        let usable = !host.is_empty() && host != "?" && host != "0.0.0.0" && host != "::";
        if let (true, Ok(port)) = (usable, u16::try_from(*port)) {
            endpoints.insert(id, (host, port));
        }
    }
    endpoints
}

/// Where one `SCAN` walk runs: the standalone server, or one cluster node.
#[derive(Clone, Debug)]
pub(super) enum Target {
    Server,
    Node(RoutingInfo),
}

impl RedisDriver {
    /// Where a walk of `scope` runs: the standalone server; on a cluster with the hash tag,
    /// the primary of the namespace's slot; on a cluster without it, every primary.
    pub(super) async fn targets(&self, scope: &RedisScope) -> Result<Vec<Target>> {
        let config = self.config();
        if !config.is_cluster() {
            return Ok(vec![Target::Server]);
        }
        if config.hash_tag {
            let route = Route::with_key(scope.0.as_bytes(), SlotAddr::Master);
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
            return Ok(vec![Target::Node(routing)]);
        }
        self.primaries().await
    }

    /// Every place keys live: the standalone server, or each primary of the cluster.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) when some slots have no
    /// primary that is up (one failed, and its replica has not taken over yet): a walk of the
    /// others would miss those slots' keys, and say nothing of it.
    async fn primaries(&self) -> Result<Vec<Target>> {
        if !self.config().is_cluster() {
            return Ok(vec![Target::Server]);
        }
        let any = Target::Node(RoutingInfo::SingleNode(
            SingleNodeRoutingInfo::RandomPrimary,
        ));
        let mut command = redis::cmd("CLUSTER");
        command.arg("NODES");
        let nodes: String = self.routed("", command, &any).await?;
        let mut command = redis::cmd("CLUSTER");
        command.arg("SLOTS");
        let endpoints = announced_endpoints(self.routed("", command, &any).await?);
        let mut covered = 0;
        let primaries = nodes
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let (address, flags) = (fields.get(1)?, fields.get(2)?);
                // `fail` and `fail?`: a primary known or suspected to be down (and not
                // `nofailover`, the flag of a node that may not take over from its primary).
                let flagged = |flag: &str| flags.split(',').any(|f| f == flag);
                if !flagged("master") || flagged("fail") || flagged("fail?") {
                    return None;
                }
                covered += fields
                    .get(8..)
                    .unwrap_or_default()
                    .iter()
                    .map(|range| slots_in(range))
                    .sum::<u32>();
                // The address the client library connected to: the endpoint the node
                // announces (a hostname, with `cluster-preferred-endpoint-type hostname`),
                // else its IP. Routed to an address it has no connection to, a command finds
                // none, and every listing failed.
                let (host, port) = match endpoints.get(*fields.first()?) {
                    Some((host, port)) => (host.clone(), *port),
                    None => {
                        let (host, port) = address.split(['@', ',']).next()?.rsplit_once(':')?;
                        (host.to_owned(), port.parse().ok()?)
                    }
                };
                Some(Target::Node(RoutingInfo::SingleNode(
                    SingleNodeRoutingInfo::ByAddress { host, port },
                )))
            })
            .collect();
        if covered < SLOTS {
            return Err(crate::Error::unavailable(
                format!(
                    "{} of the cluster's {SLOTS} slots have no primary that is up (a node \
                     failing over): a listing would miss their keys",
                    SLOTS - covered.min(SLOTS)
                ),
                None,
            ));
        }
        Ok(primaries)
    }

    /// Sends a read-only `command` to `target`.
    pub(super) async fn routed<T: FromRedisValue>(
        &self,
        key: &str,
        command: Cmd,
        target: &Target,
    ) -> Result<T> {
        let command = &command;
        self.call(key, Resend::Allowed, |connection| async move {
            match (connection, target) {
                (
                    Connection::Cluster {
                        main: mut cluster, ..
                    },
                    Target::Node(routing),
                ) => {
                    let value = route(&mut cluster, command.clone(), routing.clone()).await?;
                    T::from_redis_value(value).map_err(RedisError::from)
                }
                (mut connection, _) => command.query_async(&mut connection).await,
            }
        })
        .await
    }

    /// The namespace of a stored key in this driver's layout (`root:domain:key`, or
    /// `{root:domain}:key` with the hash tag), if namestore could have written it.
    fn namespace_of(&self, full: &[u8]) -> Option<NamespaceName> {
        let full = std::str::from_utf8(full).ok()?;
        let (name, key) = if self.config().hash_tag {
            let (tag, key) = full.strip_prefix('{')?.split_once("}:")?;
            let (root, domain) = tag.split_once(':')?;
            (NamespaceName::new(root, domain).ok()?, key)
        } else {
            split_full_key(full)?
        };
        (!key.is_empty()).then_some(name)
    }

    /// Counts the keys of every namespace with `SCAN` over the whole keyspace of each primary.
    /// A key `SCAN` returns twice (it may, while the server rehashes) is counted once: the
    /// walk remembers a [`Seen`] fingerprint of every key it has counted.
    pub(super) async fn count_namespaces(&self) -> Result<Vec<NamespaceInfo>> {
        let mut counts: HashMap<NamespaceName, u64> = HashMap::new();
        let mut seen = Seen::default();
        for target in self.primaries().await? {
            let mut cursor = 0;
            loop {
                let mut command = redis::cmd("SCAN");
                command.arg(cursor).arg("COUNT").arg(SCAN_COUNT);
                let (next, raw): (u64, Vec<Vec<u8>>) = self.routed("", command, &target).await?;
                for full in raw {
                    if let Some(name) = self.namespace_of(&full)
                        && seen.insert(&full)
                    {
                        *counts.entry(name).or_default() += 1;
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        let mut listed: Vec<NamespaceInfo> = counts
            .into_iter()
            .map(|(name, keys)| NamespaceInfo::new(name, keys))
            .collect();
        listed.sort_by(|a, b| {
            (a.name().root(), a.name().domain()).cmp(&(b.name().root(), b.name().domain()))
        });
        Ok(listed)
    }

    /// One step of a namespace walk: `SCAN` from `cursor` on `target`, keeping the business
    /// keys that match.
    pub(super) async fn scan_step(
        &self,
        scope: &RedisScope,
        target: &Target,
        cursor: u64,
        pattern: Option<&Pattern>,
    ) -> Result<(u64, Vec<String>)> {
        let mut command = redis::cmd("SCAN");
        command
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{}*", scope.0))
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let (next, raw): (u64, Vec<Vec<u8>>) = self.routed("", command, target).await?;
        let keys = raw
            .into_iter()
            .filter_map(|full| {
                let key = full.strip_prefix(scope.0.as_bytes())?;
                let key = std::str::from_utf8(key).ok()?;
                (!key.is_empty() && pattern.is_none_or(|p| p.matches(key))).then(|| key.to_owned())
            })
            .collect();
        Ok((next, keys))
    }
}

#[cfg(test)]
mod tests {
    use super::{Seen, announced_endpoints};

    #[test]
    fn a_key_is_seen_once() {
        let mut seen = Seen::default();
        assert!(seen.insert(b"app:s:a"));
        assert!(seen.insert(b"app:s:b"));
        assert!(!seen.insert(b"app:s:a"));
        assert!(seen.insert(b""));
        assert!(!seen.insert(b""));
        let fresh = (0..10_000)
            .filter(|i| seen.insert(format!("k{i}").as_bytes()))
            .count();
        assert_eq!(fresh, 10_000);
        assert_eq!(
            (0..10_000)
                .filter(|i| seen.insert(format!("k{i}").as_bytes()))
                .count(),
            0
        );
    }

    /// Each primary's announced endpoint by node id; one with none usable (empty, `?`, a
    /// wildcard) is left out, to be reached at its IP; replicas are not primaries.
    #[test]
    fn endpoints_the_primaries_announce() {
        use redis::Value;
        let text = |t: &str| Value::BulkString(t.as_bytes().to_vec());
        let node = |host: &str, port: i64, id: &str| {
            Value::Array(vec![text(host), Value::Int(port), text(id)])
        };
        let range = |start: i64, nodes: Vec<Value>| {
            let mut range = vec![Value::Int(start), Value::Int(start + 1)];
            range.extend(nodes);
            Value::Array(range)
        };
        let slots = Value::Array(vec![
            range(
                0,
                vec![node("cache-0.local", 6379, "a"), node("replica", 1, "r")],
            ),
            range(2, vec![node("10.0.0.2", 6380, "b")]),
            range(4, vec![node("", 6381, "c")]),
            range(6, vec![node("?", 6382, "d")]),
            range(8, vec![node("0.0.0.0", 6383, "e")]),
            range(10, vec![text("not a node")]),
        ]);
        let endpoints = announced_endpoints(slots);
        assert_eq!(endpoints.len(), 2, "{endpoints:?}");
        assert_eq!(endpoints["a"], ("cache-0.local".to_owned(), 6379));
        assert_eq!(endpoints["b"], ("10.0.0.2".to_owned(), 6380));
        assert!(announced_endpoints(Value::Nil).is_empty());
    }
}
