//! The model-based tests' operations, their strategies, a plain `BTreeMap` model of SPEC 1-9,
//! and how each operation runs on a namespace of any driver (the memory driver's clock steps
//! included on it).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use futures_util::FutureExt;
use namestore::drivers::memory::ManualClock;
use namestore::{Driver, Error, ErrorKind, KeyTtl, MemoryDriver, Namespace, Pattern};
use proptest::prelude::*;

/// Keys, plain and hostile: glob characters, a backslash, a Cluster hash tag, a space and a
/// character of two bytes (`?` matches it as one), each a key of its own (SPEC 1.4, 1.5).
pub const KEYS: &[&str] = &[
    "a", "b", "c", "user:1", "user:2", "*", "[a]", "a\\", "{t}", "\u{e9}", "a b", "x:*:y", "?",
];
/// Values, counters in and out of the canonical form among them (SPEC 4.4), and bytes that
/// are not ASCII.
pub const VALUES: &[&str] = &[
    "",
    "x",
    "0",
    "1",
    "-7",
    "007",
    "9223372036854775807",
    "-9223372036854775808",
    "-0",
    "+1",
    " 1",
    "hello",
    "\u{0}\u{ff}",
];
/// Patterns over those keys: escapes, sets holding `[`, `]` or `-`, ranges past ASCII.
pub const PATTERNS: &[&str] = &[
    "*",
    "user:*",
    "?",
    "[ab]",
    "*1",
    "[^a]*",
    "\\*",
    "[[]*",
    "*\\\\",
    "{*",
    "[\u{e0}-\u{ff}]",
    "a?b",
    "*:\\*:*",
    "\\?",
    "[\\]]",
    "[a-]*",
    "[]a]*",
    "*]",
];

#[derive(Debug, Clone)]
pub enum Op {
    Set(usize, usize, Option<u64>),
    SetKeepTtl(usize, usize),
    SetNx(usize, usize, Option<u64>),
    Replace(usize, usize, Option<u64>),
    Get(usize),
    Exists(usize),
    Delete(usize),
    Ttl(usize),
    Expire(usize, u64),
    Persist(usize),
    Incr(usize, i64),
    IncrWithTtl(usize, i64, u64),
    Decr(usize, i64),
    GetSet(usize, usize, Option<u64>),
    Cas(usize, usize, usize, Option<u64>),
    Cad(usize, usize),
    Mget(Vec<usize>),
    Mset(Vec<(usize, usize)>, Option<u64>),
    Mdel(Vec<usize>),
    Keys(usize),
    Clear,
    Advance(u64),
    Reclaim,
}

pub fn key() -> impl Strategy<Value = usize> {
    0..KEYS.len()
}

pub fn value() -> impl Strategy<Value = usize> {
    0..VALUES.len()
}

pub fn ttl_ms() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![Just(None), (1u64..3000).prop_map(Some)]
}

pub fn delta() -> impl Strategy<Value = i64> {
    prop_oneof![-5i64..5, Just(i64::MAX), Just(i64::MIN), Just(i64::MIN + 1)]
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (key(), value(), ttl_ms()).prop_map(|(k, v, t)| Op::Set(k, v, t)),
        (key(), value()).prop_map(|(k, v)| Op::SetKeepTtl(k, v)),
        (key(), value(), ttl_ms()).prop_map(|(k, v, t)| Op::SetNx(k, v, t)),
        (key(), value(), ttl_ms()).prop_map(|(k, v, t)| Op::Replace(k, v, t)),
        key().prop_map(Op::Get),
        key().prop_map(Op::Exists),
        key().prop_map(Op::Delete),
        key().prop_map(Op::Ttl),
        (key(), 0u64..3000).prop_map(|(k, t)| Op::Expire(k, t)),
        key().prop_map(Op::Persist),
        (key(), delta()).prop_map(|(k, d)| Op::Incr(k, d)),
        (key(), delta(), 1u64..3000).prop_map(|(k, d, t)| Op::IncrWithTtl(k, d, t)),
        (key(), delta()).prop_map(|(k, d)| Op::Decr(k, d)),
        (key(), value(), ttl_ms()).prop_map(|(k, v, t)| Op::GetSet(k, v, t)),
        (key(), value(), value(), ttl_ms()).prop_map(|(k, e, v, t)| Op::Cas(k, e, v, t)),
        (key(), value()).prop_map(|(k, v)| Op::Cad(k, v)),
        prop::collection::vec(key(), 0..6).prop_map(Op::Mget),
        (prop::collection::vec((key(), value()), 0..6), ttl_ms()).prop_map(|(p, t)| Op::Mset(p, t)),
        prop::collection::vec(key(), 0..6).prop_map(Op::Mdel),
        (0..PATTERNS.len()).prop_map(Op::Keys),
        Just(Op::Clear),
        (0u64..2500).prop_map(Op::Advance),
        Just(Op::Reclaim),
    ]
}

/// Every answer, in one comparable shape; errors compare by kind.
#[derive(Debug, PartialEq)]
pub enum Answer {
    Unit,
    Bool(bool),
    Int(i64),
    Value(Option<Vec<u8>>),
    Values(Vec<Option<Vec<u8>>>),
    Count(u64),
    Ttl(KeyTtl),
    Keys(BTreeSet<String>),
    Error(&'static str),
}

pub fn error_kind(error: &Error) -> &'static str {
    match error.kind() {
        ErrorKind::NotAnInteger => "not an integer",
        ErrorKind::Overflow => "overflow",
        ErrorKind::OutOfMemory => "out of memory",
        _ => panic!("unexpected error {error}"),
    }
}

pub fn ready<T>(future: impl Future<Output = T>) -> T {
    future
        .now_or_never()
        .expect("memory driver futures are ready at once")
}

/// The model: values and absolute deadlines in milliseconds, and the time now.
#[derive(Default)]
pub struct Model {
    pub now: u64,
    pub map: BTreeMap<String, (Vec<u8>, Option<u64>)>,
}

impl Model {
    pub fn purge(&mut self) {
        let now = self.now;
        self.map
            .retain(|_, (_, deadline)| deadline.is_none_or(|d| now < d));
    }

    pub fn deadline(&self, ttl: Option<u64>) -> Option<u64> {
        ttl.map(|t| self.now + t)
    }

    pub fn apply(&mut self, op: &Op) -> Answer {
        self.purge();
        let key = |i: &usize| KEYS[*i].to_owned();
        let value = |i: &usize| VALUES[*i].as_bytes().to_vec();
        match op {
            Op::Set(k, v, t) => {
                self.map.insert(key(k), (value(v), self.deadline(*t)));
                Answer::Unit
            }
            Op::SetKeepTtl(k, v) => {
                let deadline = self.map.get(&key(k)).and_then(|(_, d)| *d);
                self.map.insert(key(k), (value(v), deadline));
                Answer::Unit
            }
            Op::SetNx(k, v, t) => {
                if self.map.contains_key(&key(k)) {
                    return Answer::Bool(false);
                }
                self.map.insert(key(k), (value(v), self.deadline(*t)));
                Answer::Bool(true)
            }
            Op::Replace(k, v, t) => {
                let deadline = self.deadline(*t);
                match self.map.get_mut(&key(k)) {
                    Some(entry) => {
                        *entry = (value(v), deadline);
                        Answer::Bool(true)
                    }
                    None => Answer::Bool(false),
                }
            }
            Op::Get(k) => Answer::Value(self.map.get(&key(k)).map(|(v, _)| v.clone())),
            Op::Exists(k) => Answer::Bool(self.map.contains_key(&key(k))),
            Op::Delete(k) => Answer::Bool(self.map.remove(&key(k)).is_some()),
            Op::Ttl(k) => Answer::Ttl(match self.map.get(&key(k)) {
                None => KeyTtl::Missing,
                Some((_, None)) => KeyTtl::NoExpiry,
                Some((_, Some(d))) => KeyTtl::ExpiresIn(Duration::from_millis(d - self.now)),
            }),
            Op::Expire(k, t) => {
                let present = self.map.contains_key(&key(k));
                if *t == 0 {
                    self.map.remove(&key(k));
                } else if let Some(entry) = self.map.get_mut(&key(k)) {
                    entry.1 = Some(self.now + t);
                }
                Answer::Bool(present)
            }
            Op::Persist(k) => match self.map.get_mut(&key(k)) {
                Some((_, d @ Some(_))) => {
                    *d = None;
                    Answer::Bool(true)
                }
                _ => Answer::Bool(false),
            },
            Op::Incr(k, d) => self.incr(key(k), Some(*d), None),
            Op::IncrWithTtl(k, d, t) => self.incr(key(k), Some(*d), Some(*t)),
            Op::Decr(k, d) => self.incr(key(k), d.checked_neg(), None),
            Op::GetSet(k, v, t) => {
                let deadline = self.deadline(*t);
                Answer::Value(
                    self.map
                        .insert(key(k), (value(v), deadline))
                        .map(|(v, _)| v),
                )
            }
            Op::Cas(k, e, v, t) => {
                let deadline = self.deadline(*t);
                match self.map.get_mut(&key(k)) {
                    Some(entry) if entry.0 == value(e) => {
                        *entry = (value(v), deadline);
                        Answer::Bool(true)
                    }
                    _ => Answer::Bool(false),
                }
            }
            Op::Cad(k, e) => {
                if self.map.get(&key(k)).is_some_and(|(v, _)| *v == value(e)) {
                    self.map.remove(&key(k));
                    return Answer::Bool(true);
                }
                Answer::Bool(false)
            }
            Op::Mget(keys) => Answer::Values(
                keys.iter()
                    .map(|k| self.map.get(&key(k)).map(|(v, _)| v.clone()))
                    .collect(),
            ),
            Op::Mset(pairs, t) => {
                let deadline = self.deadline(*t);
                for (k, v) in pairs {
                    self.map.insert(key(k), (value(v), deadline));
                }
                Answer::Unit
            }
            Op::Mdel(keys) => Answer::Count(
                keys.iter()
                    .filter(|k| self.map.remove(&key(k)).is_some())
                    .count() as u64,
            ),
            Op::Keys(p) => {
                let pattern = Pattern::new(PATTERNS[*p]).unwrap();
                Answer::Keys(
                    self.map
                        .keys()
                        .filter(|k| pattern.matches(k))
                        .cloned()
                        .collect(),
                )
            }
            Op::Clear => {
                let count = self.map.len() as u64;
                self.map.clear();
                Answer::Count(count)
            }
            Op::Advance(by) => {
                self.now += by;
                Answer::Unit
            }
            Op::Reclaim => Answer::Unit,
        }
    }

    fn incr(&mut self, key: String, delta: Option<i64>, ttl: Option<u64>) -> Answer {
        let Some(delta) = delta else {
            return Answer::Error("overflow");
        };
        let deadline = self.deadline(ttl);
        let (current, deadline) = match self.map.get(&key) {
            None => (0, deadline),
            Some((value, d)) => match namestore::counter::parse_canonical(value) {
                Some(n) => (n, *d),
                None => return Answer::Error("not an integer"),
            },
        };
        match current.checked_add(delta) {
            Some(next) => {
                self.map
                    .insert(key, (next.to_string().into_bytes(), deadline));
                Answer::Int(next)
            }
            None => Answer::Error("overflow"),
        }
    }
}

/// Runs `op` on a memory namespace whose clock is `clock`, TTLs in milliseconds.
pub fn run(ns: &Namespace<String, MemoryDriver>, clock: &ManualClock, op: &Op) -> Answer {
    match op {
        Op::Advance(by) => {
            clock.advance(Duration::from_millis(*by));
            Answer::Unit
        }
        Op::Reclaim => {
            ns.driver().purge_expired();
            Answer::Unit
        }
        op => ready(answer(ns, op, Duration::from_millis(1))),
    }
}

/// Runs `op` on any driver's namespace, each TTL's model milliseconds taken as that many
/// `unit`s; `Advance` and `Reclaim`, which need the memory driver's clock, change nothing.
pub async fn answer<D: Driver>(ns: &Namespace<String, D>, op: &Op, unit: Duration) -> Answer {
    let key = |i: &usize| KEYS[*i].to_owned();
    let value = |i: &usize| VALUES[*i];
    let bytes = |v: Option<namestore::Bytes>| v.map(|b| b.to_vec());
    let ttl = |ms: &u64| unit * u32::try_from(*ms).unwrap();
    let ttls = |ms: &Option<u64>| ms.as_ref().map(ttl);
    let answered = match op {
        Op::Set(k, v, t) => ns
            .set(&key(k), value(v), ttls(t))
            .await
            .map(|()| Answer::Unit),
        Op::SetKeepTtl(k, v) => ns
            .set_keep_ttl(&key(k), value(v))
            .await
            .map(|()| Answer::Unit),
        Op::SetNx(k, v, t) => ns
            .set_nx(&key(k), value(v), ttls(t))
            .await
            .map(Answer::Bool),
        Op::Replace(k, v, t) => ns
            .replace(&key(k), value(v), ttls(t))
            .await
            .map(Answer::Bool),
        Op::Get(k) => ns.get(&key(k)).await.map(|v| Answer::Value(bytes(v))),
        Op::Exists(k) => ns.exists(&key(k)).await.map(Answer::Bool),
        Op::Delete(k) => ns.delete(&key(k)).await.map(Answer::Bool),
        Op::Ttl(k) => ns.ttl(&key(k)).await.map(Answer::Ttl),
        Op::Expire(k, t) => ns.expire(&key(k), ttl(t)).await.map(Answer::Bool),
        Op::Persist(k) => ns.persist(&key(k)).await.map(Answer::Bool),
        Op::Incr(k, d) => ns.incr(&key(k), *d).await.map(Answer::Int),
        Op::IncrWithTtl(k, d, t) => ns.incr_with_ttl(&key(k), *d, ttl(t)).await.map(Answer::Int),
        Op::Decr(k, d) => ns.decr(&key(k), *d).await.map(Answer::Int),
        Op::GetSet(k, v, t) => ns
            .get_set(&key(k), value(v), ttls(t))
            .await
            .map(|v| Answer::Value(bytes(v))),
        Op::Cas(k, e, v, t) => ns
            .cas(&key(k), value(e), value(v), ttls(t))
            .await
            .map(Answer::Bool),
        Op::Cad(k, e) => ns.cad(&key(k), value(e)).await.map(Answer::Bool),
        Op::Mget(keys) => ns
            .mget(keys.iter().map(key))
            .await
            .map(|values| Answer::Values(values.into_iter().map(bytes).collect())),
        Op::Mset(pairs, t) => ns
            .mset(pairs.iter().map(|(k, v)| (key(k), value(v))), ttls(t))
            .await
            .map(|()| Answer::Unit),
        Op::Mdel(keys) => ns.mdel(keys.iter().map(key)).await.map(Answer::Count),
        Op::Keys(p) => ns
            .keys(PATTERNS[*p])
            .await
            .map(|keys| Answer::Keys(keys.into_iter().collect())),
        Op::Clear => ns.clear().await.map(Answer::Count),
        Op::Advance(_) | Op::Reclaim => Ok(Answer::Unit),
    };
    answered.unwrap_or_else(|e| Answer::Error(error_kind(&e)))
}
