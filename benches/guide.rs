//! Every table of the performance guide, measured: namestore (through the typed namespace API
//! and through the driver), a single-threaded `hashbrown` map (the floor), `RwLock<HashMap>`,
//! `dashmap`, `moka` (sync) and `quick_cache`, in one run.
//!
//! Run: `cargo bench --bench guide`. It prints a line per measurement as it goes
//! (`[12/171] basic/get/dashmap`), then every table with times, ratios to namestore,
//! allocations and bytes per operation, and writes the same tables as Markdown to
//! `target/guide-report.md`. `GUIDE_QUICK=1` shortens every measurement (a smoke run);
//! `GUIDE_ONLY='up front/set/|up front/get/'` measures only the ids (`table/row/store`)
//! containing one of the `|`-separated pieces.

// Keys are `&String` because that is what a `Namespace<String>` takes; converting from `&str`
// would add a copy to namestore's rows only.
#![allow(clippy::ptr_arg)]

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::Criterion;
use namestore::drivers::memory::MemoryScope;
use namestore::{Driver, MemoryDriver, Namespace, NamespaceName};

mod common;

use common::{ALLOCS, BYTES, Counting, LIVE_BYTES, ready};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One store under test. Optional operations return `None` where the store has no such
/// operation; their rows show a dash.
trait Store {
    fn set(&self, key: &String, value: Bytes);
    fn get(&self, key: &String) -> Option<Bytes>;
    fn delete(&self, key: &String) -> bool;
    fn set_nx(&self, key: &String, value: Bytes) -> bool;
    fn exists(&self, key: &String) -> bool;
    fn incr(&self, key: &String, delta: i64) -> i64;
    fn keys(&self) -> Vec<String>;
    fn clear(&self);
    fn get_set(&self, _key: &String, _value: Bytes) -> Option<Option<Bytes>> {
        None
    }
    fn cas(&self, _key: &String, _expected: &[u8], _new: Bytes) -> Option<bool> {
        None
    }
    fn cad(&self, _key: &String, _expected: &[u8]) -> Option<bool> {
        None
    }
    fn ttl(&self, _key: &String) -> Option<bool> {
        None
    }
    fn expire(&self, _key: &String) -> Option<bool> {
        None
    }
    fn persist(&self, _key: &String) -> Option<bool> {
        None
    }
    fn mget(&self, keys: &[&String]) -> Vec<Option<Bytes>> {
        keys.iter().map(|k| self.get(k)).collect()
    }
    fn mset(&self, pairs: &[(&String, Bytes)]) {
        for (k, v) in pairs {
            self.set(k, v.clone());
        }
    }
    fn mdel(&self, keys: &[&String]) -> usize {
        keys.iter().filter(|k| self.delete(k)).count()
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// namestore through the typed namespace API.
struct Ns {
    values: Namespace<String, MemoryDriver>,
}

impl Ns {
    fn new() -> Self {
        Ns {
            values: MemoryDriver::new().namespace("bench", "guide").unwrap(),
        }
    }
}

impl Store for Ns {
    fn set(&self, key: &String, value: Bytes) {
        ready(self.values.set(key, value, None)).unwrap()
    }
    fn get(&self, key: &String) -> Option<Bytes> {
        ready(self.values.get(key)).unwrap()
    }
    fn delete(&self, key: &String) -> bool {
        ready(self.values.delete(key)).unwrap()
    }
    fn set_nx(&self, key: &String, value: Bytes) -> bool {
        ready(self.values.set_nx(key, value, None)).unwrap()
    }
    fn exists(&self, key: &String) -> bool {
        ready(self.values.exists(key)).unwrap()
    }
    fn incr(&self, key: &String, delta: i64) -> i64 {
        ready(self.values.incr(key, delta)).unwrap()
    }
    fn keys(&self) -> Vec<String> {
        ready(self.values.keys("*")).unwrap()
    }
    fn clear(&self) {
        ready(self.values.clear()).unwrap();
    }
    fn get_set(&self, key: &String, value: Bytes) -> Option<Option<Bytes>> {
        Some(ready(self.values.get_set(key, value, None)).unwrap())
    }
    fn cas(&self, key: &String, expected: &[u8], new: Bytes) -> Option<bool> {
        Some(ready(self.values.cas(key, expected, new, None)).unwrap())
    }
    fn cad(&self, key: &String, expected: &[u8]) -> Option<bool> {
        Some(ready(self.values.cad(key, expected)).unwrap())
    }
    fn ttl(&self, key: &String) -> Option<bool> {
        Some(ready(self.values.ttl(key)).unwrap().exists())
    }
    fn expire(&self, key: &String) -> Option<bool> {
        Some(ready(self.values.expire(key, HOUR)).unwrap())
    }
    fn persist(&self, key: &String) -> Option<bool> {
        Some(ready(self.values.persist(key)).unwrap())
    }
    fn mget(&self, keys: &[&String]) -> Vec<Option<Bytes>> {
        ready(self.values.mget(keys.iter().copied())).unwrap()
    }
    fn mset(&self, pairs: &[(&String, Bytes)]) {
        ready(
            self.values
                .mset(pairs.iter().map(|(k, v)| (*k, v.clone())), None),
        )
        .unwrap()
    }
    fn mdel(&self, keys: &[&String]) -> usize {
        ready(self.values.mdel(keys.iter().copied())).unwrap() as usize
    }
}

/// namestore through the driver: what another layer over the `Driver` trait would pay.
struct Drv {
    driver: MemoryDriver,
    scope: MemoryScope,
}

impl Drv {
    fn new() -> Self {
        let driver = MemoryDriver::new();
        let scope = driver
            .scope(&NamespaceName::new("bench", "driver").unwrap())
            .unwrap();
        Drv { driver, scope }
    }
}

impl Store for Drv {
    fn set(&self, key: &String, value: Bytes) {
        ready(
            self.driver
                .set(&self.scope, key, value, namestore::Expiry::Never),
        )
        .unwrap()
    }
    fn get(&self, key: &String) -> Option<Bytes> {
        ready(self.driver.get(&self.scope, key)).unwrap()
    }
    fn delete(&self, key: &String) -> bool {
        ready(self.driver.delete(&self.scope, key)).unwrap()
    }
    fn set_nx(&self, key: &String, value: Bytes) -> bool {
        ready(self.driver.set_nx(&self.scope, key, value, None)).unwrap()
    }
    fn exists(&self, key: &String) -> bool {
        ready(self.driver.exists(&self.scope, key)).unwrap()
    }
    fn incr(&self, key: &String, delta: i64) -> i64 {
        ready(self.driver.incr(&self.scope, key, delta, None)).unwrap()
    }
    fn keys(&self) -> Vec<String> {
        let pattern = namestore::Pattern::new("*").unwrap();
        let mut stream = pin!(self.driver.scan(&self.scope, &pattern));
        let mut keys = Vec::new();
        let mut cx = Context::from_waker(Waker::noop());
        while let Poll::Ready(Some(page)) =
            futures_core::Stream::poll_next(stream.as_mut(), &mut cx)
        {
            keys.extend(page.unwrap());
        }
        keys
    }
    fn clear(&self) {
        ready(self.driver.clear(&self.scope)).unwrap();
    }
    fn get_set(&self, key: &String, value: Bytes) -> Option<Option<Bytes>> {
        Some(ready(self.driver.get_set(&self.scope, key, value, None)).unwrap())
    }
    fn cas(&self, key: &String, expected: &[u8], new: Bytes) -> Option<bool> {
        Some(ready(self.driver.cas(&self.scope, key, expected, new, None)).unwrap())
    }
    fn cad(&self, key: &String, expected: &[u8]) -> Option<bool> {
        Some(ready(self.driver.cad(&self.scope, key, expected)).unwrap())
    }
    fn ttl(&self, key: &String) -> Option<bool> {
        Some(ready(self.driver.ttl(&self.scope, key)).unwrap().exists())
    }
    fn expire(&self, key: &String) -> Option<bool> {
        let ttl = namestore::Ttl::new(HOUR).unwrap();
        Some(ready(self.driver.expire(&self.scope, key, ttl)).unwrap())
    }
    fn persist(&self, key: &String) -> Option<bool> {
        Some(ready(self.driver.persist(&self.scope, key)).unwrap())
    }
    fn mget(&self, keys: &[&String]) -> Vec<Option<Bytes>> {
        let keys: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        ready(self.driver.mget(&self.scope, &keys)).unwrap()
    }
    fn mset(&self, pairs: &[(&String, Bytes)]) {
        let mut pairs: Vec<(&str, Bytes)> =
            pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        ready(self.driver.mset(&self.scope, &mut pairs, None)).unwrap()
    }
    fn mdel(&self, keys: &[&String]) -> usize {
        let keys: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        ready(self.driver.mdel(&self.scope, &keys)).unwrap() as usize
    }
}

/// The floor: a plain `hashbrown` map, single-threaded (a `RefCell`, about 1 ns per call).
#[derive(Default)]
struct Floor {
    values: RefCell<hashbrown::HashMap<String, Bytes>>,
    counters: RefCell<hashbrown::HashMap<String, i64>>,
}

impl Store for Floor {
    fn set(&self, key: &String, value: Bytes) {
        let mut map = self.values.borrow_mut();
        match map.get_mut(key) {
            Some(slot) => *slot = value,
            None => {
                map.insert(key.to_owned(), value);
            }
        }
    }
    fn get(&self, key: &String) -> Option<Bytes> {
        self.values.borrow().get(key).cloned()
    }
    fn delete(&self, key: &String) -> bool {
        self.values.borrow_mut().remove(key).is_some()
    }
    fn set_nx(&self, key: &String, value: Bytes) -> bool {
        let mut map = self.values.borrow_mut();
        if map.contains_key(key) {
            return false;
        }
        map.insert(key.to_owned(), value);
        true
    }
    fn exists(&self, key: &String) -> bool {
        self.values.borrow().contains_key(key)
    }
    fn incr(&self, key: &String, delta: i64) -> i64 {
        let mut map = self.counters.borrow_mut();
        match map.get_mut(key) {
            Some(n) => {
                *n += delta;
                *n
            }
            None => {
                map.insert(key.to_owned(), delta);
                delta
            }
        }
    }
    fn keys(&self) -> Vec<String> {
        self.values.borrow().keys().cloned().collect()
    }
    fn clear(&self) {
        self.values.borrow_mut().clear();
    }
    fn get_set(&self, key: &String, value: Bytes) -> Option<Option<Bytes>> {
        let mut map = self.values.borrow_mut();
        Some(match map.get_mut(key) {
            Some(slot) => Some(std::mem::replace(slot, value)),
            None => map.insert(key.to_owned(), value),
        })
    }
    fn cas(&self, key: &String, expected: &[u8], new: Bytes) -> Option<bool> {
        let mut map = self.values.borrow_mut();
        Some(match map.get_mut(key) {
            Some(slot) if slot[..] == *expected => {
                *slot = new;
                true
            }
            _ => false,
        })
    }
    fn cad(&self, key: &String, expected: &[u8]) -> Option<bool> {
        let mut map = self.values.borrow_mut();
        let hit = map.get(key).is_some_and(|v| v[..] == *expected);
        if hit {
            map.remove(key);
        }
        Some(hit)
    }
}

/// `std::sync::RwLock<std::collections::HashMap>`: what many programs write by hand.
#[derive(Default)]
struct Locked {
    values: RwLock<HashMap<String, Bytes>>,
    counters: RwLock<HashMap<String, i64>>,
}

impl Store for Locked {
    fn set(&self, key: &String, value: Bytes) {
        let mut map = self.values.write().unwrap();
        match map.get_mut(key) {
            Some(slot) => *slot = value,
            None => {
                map.insert(key.to_owned(), value);
            }
        }
    }
    fn get(&self, key: &String) -> Option<Bytes> {
        self.values.read().unwrap().get(key).cloned()
    }
    fn delete(&self, key: &String) -> bool {
        self.values.write().unwrap().remove(key).is_some()
    }
    fn set_nx(&self, key: &String, value: Bytes) -> bool {
        let mut map = self.values.write().unwrap();
        if map.contains_key(key) {
            return false;
        }
        map.insert(key.to_owned(), value);
        true
    }
    fn exists(&self, key: &String) -> bool {
        self.values.read().unwrap().contains_key(key)
    }
    fn incr(&self, key: &String, delta: i64) -> i64 {
        let mut map = self.counters.write().unwrap();
        match map.get_mut(key) {
            Some(n) => {
                *n += delta;
                *n
            }
            None => {
                map.insert(key.to_owned(), delta);
                delta
            }
        }
    }
    fn keys(&self) -> Vec<String> {
        self.values.read().unwrap().keys().cloned().collect()
    }
    fn clear(&self) {
        self.values.write().unwrap().clear();
    }
    fn get_set(&self, key: &String, value: Bytes) -> Option<Option<Bytes>> {
        let mut map = self.values.write().unwrap();
        Some(match map.get_mut(key) {
            Some(slot) => Some(std::mem::replace(slot, value)),
            None => map.insert(key.to_owned(), value),
        })
    }
    fn cas(&self, key: &String, expected: &[u8], new: Bytes) -> Option<bool> {
        let mut map = self.values.write().unwrap();
        Some(match map.get_mut(key) {
            Some(slot) if slot[..] == *expected => {
                *slot = new;
                true
            }
            _ => false,
        })
    }
    fn cad(&self, key: &String, expected: &[u8]) -> Option<bool> {
        let mut map = self.values.write().unwrap();
        let hit = map.get(key).is_some_and(|v| v[..] == *expected);
        if hit {
            map.remove(key);
        }
        Some(hit)
    }
    fn mget(&self, keys: &[&String]) -> Vec<Option<Bytes>> {
        let map = self.values.read().unwrap();
        keys.iter().map(|k| map.get(*k).cloned()).collect()
    }
    fn mset(&self, pairs: &[(&String, Bytes)]) {
        let mut map = self.values.write().unwrap();
        for (k, v) in pairs {
            match map.get_mut(*k) {
                Some(slot) => *slot = v.clone(),
                None => {
                    map.insert((*k).to_owned(), v.clone());
                }
            }
        }
    }
    fn mdel(&self, keys: &[&String]) -> usize {
        let mut map = self.values.write().unwrap();
        keys.iter().filter(|k| map.remove(**k).is_some()).count()
    }
}

#[derive(Default)]
struct Dash {
    values: dashmap::DashMap<String, Bytes>,
    counters: dashmap::DashMap<String, i64>,
}

impl Store for Dash {
    fn set(&self, key: &String, value: Bytes) {
        match self.values.get_mut(key) {
            Some(mut slot) => *slot = value,
            None => {
                self.values.insert(key.to_owned(), value);
            }
        }
    }
    fn get(&self, key: &String) -> Option<Bytes> {
        self.values.get(key).map(|v| v.clone())
    }
    fn delete(&self, key: &String) -> bool {
        self.values.remove(key).is_some()
    }
    fn set_nx(&self, key: &String, value: Bytes) -> bool {
        match self.values.entry(key.to_owned()) {
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(slot) => {
                slot.insert(value);
                true
            }
        }
    }
    fn exists(&self, key: &String) -> bool {
        self.values.contains_key(key)
    }
    fn incr(&self, key: &String, delta: i64) -> i64 {
        if let Some(mut n) = self.counters.get_mut(key) {
            *n += delta;
            return *n;
        }
        *self
            .counters
            .entry(key.to_owned())
            .and_modify(|n| *n += delta)
            .or_insert(delta)
    }
    fn keys(&self) -> Vec<String> {
        self.values.iter().map(|e| e.key().clone()).collect()
    }
    fn clear(&self) {
        self.values.clear();
    }
    fn get_set(&self, key: &String, value: Bytes) -> Option<Option<Bytes>> {
        Some(match self.values.get_mut(key) {
            Some(mut slot) => Some(std::mem::replace(&mut *slot, value)),
            None => self.values.insert(key.to_owned(), value),
        })
    }
    fn cas(&self, key: &String, expected: &[u8], new: Bytes) -> Option<bool> {
        Some(match self.values.get_mut(key) {
            Some(mut slot) if slot[..] == *expected => {
                *slot = new;
                true
            }
            _ => false,
        })
    }
    fn cad(&self, key: &String, expected: &[u8]) -> Option<bool> {
        Some(
            self.values
                .remove_if(key, |_, v| v[..] == *expected)
                .is_some(),
        )
    }
}

/// moka's synchronous cache, with a capacity above every workload here.
struct Moka {
    values: moka::sync::Cache<String, Bytes>,
    counters: moka::sync::Cache<String, i64>,
}

impl Moka {
    fn new() -> Self {
        Moka {
            values: moka::sync::Cache::new(1 << 26),
            counters: moka::sync::Cache::new(1 << 26),
        }
    }
}

impl Store for Moka {
    fn set(&self, key: &String, value: Bytes) {
        self.values.insert(key.to_owned(), value);
    }
    fn get(&self, key: &String) -> Option<Bytes> {
        self.values.get(key)
    }
    fn delete(&self, key: &String) -> bool {
        self.values.remove(key).is_some()
    }
    fn set_nx(&self, key: &String, value: Bytes) -> bool {
        self.values.entry_by_ref(key).or_insert(value).is_fresh()
    }
    fn exists(&self, key: &String) -> bool {
        self.values.contains_key(key)
    }
    fn incr(&self, key: &String, delta: i64) -> i64 {
        self.counters
            .entry_by_ref(key)
            .and_upsert_with(|current| current.map_or(delta, |e| e.into_value() + delta))
            .into_value()
    }
    fn keys(&self) -> Vec<String> {
        self.values.iter().map(|(k, _)| (*k).clone()).collect()
    }
    fn clear(&self) {
        self.values.invalidate_all();
        self.values.run_pending_tasks();
    }
}

/// quick_cache's synchronous cache, with a capacity above every workload here.
struct Quick {
    values: quick_cache::sync::Cache<String, Bytes>,
    counters: quick_cache::sync::Cache<String, i64>,
}

impl Quick {
    fn new() -> Self {
        Quick {
            values: quick_cache::sync::Cache::new(1 << 25),
            counters: quick_cache::sync::Cache::new(1 << 25),
        }
    }
}

impl Store for Quick {
    fn set(&self, key: &String, value: Bytes) {
        self.values.insert(key.to_owned(), value);
    }
    fn get(&self, key: &String) -> Option<Bytes> {
        self.values.get(key)
    }
    fn delete(&self, key: &String) -> bool {
        self.values.remove(key).is_some()
    }
    fn set_nx(&self, key: &String, value: Bytes) -> bool {
        let mut fresh = false;
        let _ = self.values.get_or_insert_with(key, || {
            fresh = true;
            Ok::<_, ()>(value)
        });
        fresh
    }
    fn exists(&self, key: &String) -> bool {
        self.values.contains_key(key)
    }
    fn incr(&self, key: &String, delta: i64) -> i64 {
        match self.counters.entry(key, None, |_, n| {
            *n += delta;
            quick_cache::sync::EntryAction::Retain(*n)
        }) {
            quick_cache::sync::EntryResult::Retained(n) => n,
            _ => {
                self.counters.insert(key.to_owned(), delta);
                delta
            }
        }
    }
    fn keys(&self) -> Vec<String> {
        self.values.iter().map(|(k, _)| k).collect()
    }
    fn clear(&self) {
        self.values.clear();
    }
}

/// The Go toolkit's figures from the performance guide, ns/op.
fn go_reference(row: &str) -> Option<&'static str> {
    Some(match row {
        "set" => "373",
        "get" => "79",
        "delete" => "259",
        "set_nx" => "372",
        "exists" => "67",
        "incr" | "decr" => "30",
        "mget(10)" => "428",
        "mset(10)" => "263",
        "mdel(10)" => "2101",
        "reads" => "112",
        "writes" => "275",
        "mixed" => "169",
        "5 B" => "24",
        "1 KiB" => "97",
        "1 MiB" => "44000",
        _ => return None,
    })
}

const STORES: &[&str] = &[
    "namestore",
    "namestore driver",
    "floor",
    "RwLock<HashMap>",
    "dashmap",
    "moka",
    "quick_cache",
];
const SHARED: &[&str] = &[
    "namestore",
    "RwLock<HashMap>",
    "dashmap",
    "moka",
    "quick_cache",
];

/// Every store as one enum, so the measured loops dispatch with a predictable `match` whose
/// arms inline, rather than through a `dyn` call that would also force namestore's futures
/// out of registers.
macro_rules! store_enum {
    ($name:ident { $($variant:ident($ty:ty)),* }) => {
        enum $name { $($variant($ty)),* }

        impl Store for $name {
            fn set(&self, key: &String, value: Bytes) { match self { $($name::$variant(s) => s.set(key, value)),* } }
            fn get(&self, key: &String) -> Option<Bytes> { match self { $($name::$variant(s) => s.get(key)),* } }
            fn delete(&self, key: &String) -> bool { match self { $($name::$variant(s) => s.delete(key)),* } }
            fn set_nx(&self, key: &String, value: Bytes) -> bool { match self { $($name::$variant(s) => s.set_nx(key, value)),* } }
            fn exists(&self, key: &String) -> bool { match self { $($name::$variant(s) => s.exists(key)),* } }
            fn incr(&self, key: &String, delta: i64) -> i64 { match self { $($name::$variant(s) => s.incr(key, delta)),* } }
            fn keys(&self) -> Vec<String> { match self { $($name::$variant(s) => s.keys()),* } }
            fn clear(&self) { match self { $($name::$variant(s) => s.clear()),* } }
            fn get_set(&self, key: &String, value: Bytes) -> Option<Option<Bytes>> { match self { $($name::$variant(s) => s.get_set(key, value)),* } }
            fn cas(&self, key: &String, expected: &[u8], new: Bytes) -> Option<bool> { match self { $($name::$variant(s) => s.cas(key, expected, new)),* } }
            fn cad(&self, key: &String, expected: &[u8]) -> Option<bool> { match self { $($name::$variant(s) => s.cad(key, expected)),* } }
            fn ttl(&self, key: &String) -> Option<bool> { match self { $($name::$variant(s) => s.ttl(key)),* } }
            fn expire(&self, key: &String) -> Option<bool> { match self { $($name::$variant(s) => s.expire(key)),* } }
            fn persist(&self, key: &String) -> Option<bool> { match self { $($name::$variant(s) => s.persist(key)),* } }
            fn mget(&self, keys: &[&String]) -> Vec<Option<Bytes>> { match self { $($name::$variant(s) => s.mget(keys)),* } }
            fn mset(&self, pairs: &[(&String, Bytes)]) { match self { $($name::$variant(s) => s.mset(pairs)),* } }
            fn mdel(&self, keys: &[&String]) -> usize { match self { $($name::$variant(s) => s.mdel(keys)),* } }
        }
    };
}

store_enum!(AnyStore { Ns(Ns), Drv(Drv), Floor(Floor), Locked(Locked), Dash(Dash), Moka(Moka), Quick(Quick) });
store_enum!(SharedStore { Ns(Ns), Locked(Locked), Dash(Dash), Moka(Moka), Quick(Quick) });

fn build(name: &str) -> AnyStore {
    match name {
        "namestore" => AnyStore::Ns(Ns::new()),
        "namestore driver" => AnyStore::Drv(Drv::new()),
        "floor" => AnyStore::Floor(Floor::default()),
        "RwLock<HashMap>" => AnyStore::Locked(Locked::default()),
        "dashmap" => AnyStore::Dash(Dash::default()),
        "moka" => AnyStore::Moka(Moka::new()),
        "quick_cache" => AnyStore::Quick(Quick::new()),
        other => panic!("unknown store {other}"),
    }
}

/// Stores usable from many threads at once (the `RefCell` floor is not).
fn build_shared(name: &str) -> SharedStore {
    match name {
        "namestore" => SharedStore::Ns(Ns::new()),
        "RwLock<HashMap>" => SharedStore::Locked(Locked::default()),
        "dashmap" => SharedStore::Dash(Dash::default()),
        "moka" => SharedStore::Moka(Moka::new()),
        "quick_cache" => SharedStore::Quick(Quick::new()),
        other => panic!("unknown shared store {other}"),
    }
}

/// One result: median ns per operation, and allocations and bytes per operation.
#[derive(Clone, Copy)]
struct Measure {
    ns: f64,
    allocs: f64,
    bytes: f64,
}

/// A table's name, its rows in order, and its cells by (row, store).
type Table = (String, Vec<String>, BTreeMap<(String, String), Measure>);

/// Every result by table, row and store, in the order they were measured.
#[derive(Default)]
struct Report {
    tables: Vec<Table>,
    notes: Vec<(String, String)>,
}

struct Runner {
    criterion: Criterion,
    report: Report,
    done: usize,
    total: usize,
    started: Instant,
    quick: bool,
    /// `GUIDE_ONLY`: measure only the ids (`table/row/store`) containing one of these
    /// `|`-separated pieces.
    only: Option<Vec<String>>,
}

const LIVE: usize = 1000;

impl Runner {
    /// Measures `op(i)` with criterion and records the median and allocations per op.
    fn measure(&mut self, table: &str, row: &str, store: &str, mut op: impl FnMut(usize)) {
        self.done += 1;
        if !self.selected(table, row, store) {
            return;
        }
        eprintln!(
            "[{}/{}] {:>6.1?} {table} / {row} / {store}",
            self.done,
            self.total,
            self.started.elapsed()
        );
        // Allocations: a fixed number of operations after a warm pass.
        let rounds = if self.quick { 200 } else { 5000 };
        for i in 0..LIVE.min(rounds) {
            op(i);
        }
        let (a0, b0) = (
            ALLOCS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        );
        for i in 0..rounds {
            op(i);
        }
        let allocs = (ALLOCS.load(Ordering::Relaxed) - a0) as f64 / rounds as f64;
        let bytes = (BYTES.load(Ordering::Relaxed) - b0) as f64 / rounds as f64;

        let samples: RefCell<Vec<f64>> = RefCell::new(Vec::new());
        let mut next = 0usize;
        let id = format!("{table}/{row}/{store}");
        self.criterion.bench_function(&id, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    next = next.wrapping_add(1);
                    op(next);
                }
                let elapsed = start.elapsed();
                samples
                    .borrow_mut()
                    .push(elapsed.as_nanos() as f64 / iters as f64);
                elapsed
            })
        });
        let mut samples = samples.into_inner();
        // The last `sample_size` calls are the measurement; earlier ones are warm-up.
        let keep = samples.len().min(if self.quick { 10 } else { 30 });
        let mut measured = samples.split_off(samples.len() - keep);
        measured.sort_by(f64::total_cmp);
        let ns = measured[measured.len() / 2];
        self.record(table, row, store, Measure { ns, allocs, bytes });
    }

    /// Whether `GUIDE_ONLY` (if set) selects this measurement.
    fn selected(&self, table: &str, row: &str, store: &str) -> bool {
        let id = format!("{table}/{row}/{store}");
        self.only
            .as_ref()
            .is_none_or(|pieces| pieces.iter().any(|piece| id.contains(piece.as_str())))
    }

    /// Records a measurement taken outside criterion (threads, heap size).
    fn record(&mut self, table: &str, row: &str, store: &str, measure: Measure) {
        let entry = match self
            .report
            .tables
            .iter_mut()
            .position(|(t, _, _)| t == table)
        {
            Some(i) => &mut self.report.tables[i],
            None => {
                self.report
                    .tables
                    .push((table.to_owned(), Vec::new(), BTreeMap::new()));
                self.report.tables.last_mut().unwrap()
            }
        };
        if !entry.1.iter().any(|r| r == row) {
            entry.1.push(row.to_owned());
        }
        entry.2.insert((row.to_owned(), store.to_owned()), measure);
    }

    /// Measures `threads` threads together, each running `op` in a loop, as criterion
    /// samples of wall time per operation (aggregate throughput).
    fn measure_threads(
        &mut self,
        table: &str,
        row: &str,
        store: &str,
        threads: usize,
        op: &(dyn Fn(usize, usize) + Sync),
    ) {
        self.done += 1;
        if !self.selected(table, row, store) {
            return;
        }
        eprintln!(
            "[{}/{}] {:>6.1?} {table} / {row} / {store}",
            self.done,
            self.total,
            self.started.elapsed()
        );
        let samples: Mutex<Vec<f64>> = Mutex::new(Vec::new());
        let id = format!("{table}/{row}/{store}");
        self.criterion.bench_function(&id, |b| {
            b.iter_custom(|iters| {
                let per_thread = (iters as usize).div_ceil(threads).max(1);
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for t in 0..threads {
                        scope.spawn(move || {
                            for i in 0..per_thread {
                                op(t, i);
                            }
                        });
                    }
                });
                let elapsed = start.elapsed();
                samples
                    .lock()
                    .unwrap()
                    .push(elapsed.as_nanos() as f64 / (per_thread * threads) as f64);
                elapsed
            })
        });
        let mut samples = samples.into_inner().unwrap();
        let keep = samples.len().min(if self.quick { 10 } else { 30 });
        let mut measured = samples.split_off(samples.len() - keep);
        measured.sort_by(f64::total_cmp);
        let ns = measured[measured.len() / 2];
        self.record(
            table,
            row,
            store,
            Measure {
                ns,
                allocs: f64::NAN,
                bytes: f64::NAN,
            },
        );
    }
}

fn keys(count: usize, prefix: &str) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i}")).collect()
}

fn fill(store: &impl Store, keys: &[String], value: &Bytes) {
    for key in keys {
        store.set(key, value.clone());
    }
}

const BASIC_ROWS: &[&str] = &[
    "set", "get", "delete", "set_nx", "exists", "incr", "decr", "ttl", "expire", "persist",
    "get_set", "cas", "cad",
];

fn supports(store: &impl Store, row: &str) -> bool {
    let probe = &"probe-key".to_owned();
    store.set(probe, Bytes::from_static(b"v"));
    let answer = match row {
        "ttl" => store.ttl(probe).is_some(),
        "expire" => store.expire(probe).is_some(),
        "persist" => store.persist(probe).is_some(),
        "get_set" => store.get_set(probe, Bytes::from_static(b"v")).is_some(),
        "cas" => store.cas(probe, b"v", Bytes::from_static(b"v")).is_some(),
        "cad" => store.cad(probe, b"nothing").is_some(),
        _ => true,
    };
    store.delete(probe);
    answer
}

/// One basic operation on key `i`: each leaves the store as it found it, so a row can run for
/// any number of iterations (delete and set_nx are paired with the set that restores the key).
#[inline(always)]
fn basic_op(store: &impl Store, row: &str, key: &String, counter: &String, value: &Bytes) {
    match row {
        "set" => store.set(key, value.clone()),
        "get" => {
            black_box(store.get(key));
        }
        "delete" => {
            black_box(store.delete(key));
            store.set(key, value.clone());
        }
        "set_nx" => {
            store.delete(key);
            black_box(store.set_nx(key, value.clone()));
        }
        "exists" => {
            black_box(store.exists(key));
        }
        "incr" => {
            black_box(store.incr(counter, 1));
        }
        "decr" => {
            black_box(store.incr(counter, -1));
        }
        "ttl" => {
            black_box(store.ttl(key));
        }
        "expire" => {
            black_box(store.expire(key));
        }
        "persist" => {
            black_box(store.persist(key));
        }
        "get_set" => {
            black_box(store.get_set(key, value.clone()));
        }
        "cas" => {
            black_box(store.cas(key, value, value.clone()));
        }
        "cad" => {
            black_box(store.cad(key, value));
            store.set(key, value.clone());
        }
        other => panic!("unknown row {other}"),
    }
}

fn basic(runner: &mut Runner) {
    let value = Bytes::from(b"value-0123456789".to_vec());
    for (table, formatted) in [
        ("basic, keys built up front", false),
        ("basic, key formatted per operation", true),
    ] {
        for &name in STORES {
            let store = build(name);
            let keys = keys(LIVE, "key:");
            let counters = keys.iter().map(|k| format!("n{k}")).collect::<Vec<_>>();
            fill(&store, &keys, &value);
            for counter in &counters {
                store.incr(counter, 1);
            }
            for &row in BASIC_ROWS {
                if !supports(&store, row) || (formatted && go_reference(row).is_none()) {
                    continue;
                }
                if formatted {
                    let prefix = if matches!(row, "incr" | "decr") {
                        "nkey:"
                    } else {
                        "key:"
                    };
                    runner.measure(table, row, name, |i| {
                        let key = format!("{prefix}{}", i % LIVE);
                        basic_op(&store, row, &key, &key, &value);
                    });
                } else {
                    runner.measure(table, row, name, |i| {
                        basic_op(&store, row, &keys[i % LIVE], &counters[i % LIVE], &value);
                    });
                }
            }
        }
    }
}

fn batches(runner: &mut Runner) {
    let value = Bytes::from(b"value-0123456789".to_vec());
    for &name in STORES {
        if name == "namestore driver" {
            continue;
        }
        let store = build(name);
        let keys = keys(LIVE, "key:");
        fill(&store, &keys, &value);
        let batch = |i: usize| -> Vec<&String> {
            let start = (i * 10) % (LIVE - 10);
            keys[start..start + 10].iter().collect()
        };
        runner.measure("batches of 10", "mget(10)", name, |i| {
            black_box(store.mget(&batch(i)));
        });
        runner.measure("batches of 10", "mset(10)", name, |i| {
            let pairs: Vec<(&String, Bytes)> =
                batch(i).into_iter().map(|k| (k, value.clone())).collect();
            store.mset(&pairs);
        });
        runner.measure("batches of 10", "mdel(10)", name, |i| {
            let keys = batch(i);
            black_box(store.mdel(&keys));
            let pairs: Vec<(&String, Bytes)> =
                keys.into_iter().map(|k| (k, value.clone())).collect();
            store.mset(&pairs);
        });
    }
    runner.report.notes.push((
        "batches of 10".into(),
        "mdel(10) restores its keys with an mset(10) each time, so it reads as mdel + mset. Only namestore's \
         and RwLock<HashMap>'s batches are atomic; the others are 10 single operations."
            .into(),
    ));
}

fn concurrency(runner: &mut Runner) {
    let value = Bytes::from(b"value-0123456789".to_vec());
    for &name in SHARED {
        let store = build_shared(name);
        let keys = keys(LIVE, "key:");
        fill(&store, &keys, &value);
        for threads in [1, 2, 4, 8] {
            for row in ["reads", "writes", "mixed"] {
                let (store, keys, value) = (&store, &keys, &value);
                let op = move |t: usize, i: usize| {
                    let key = &keys[(i * 7 + t * 131) % LIVE];
                    let write = match row {
                        "reads" => false,
                        "writes" => true,
                        _ => i.is_multiple_of(2),
                    };
                    if write {
                        store.set(key, value.clone());
                    } else {
                        black_box(store.get(key));
                    }
                };
                runner.measure_threads(
                    "concurrency",
                    &format!("{row}, {threads} threads"),
                    name,
                    threads,
                    &op,
                );
            }
        }
    }
    runner.report.notes.push((
        "concurrency".into(),
        "Wall time per operation across all threads (lower is more throughput). This machine has 2 cores: \
         4 and 8 threads oversubscribe it."
            .into(),
    ));
}

fn value_sizes(runner: &mut Runner) {
    for (row, size) in [("5 B", 5), ("1 KiB", 1024), ("1 MiB", 1 << 20)] {
        let value = Bytes::from(vec![7u8; size]);
        for &name in STORES {
            let store = build(name);
            let keys = keys(100, "key:");
            fill(&store, &keys, &value);
            runner.measure("value sizes", &format!("set {row}"), name, |i| {
                store.set(&keys[i % 100], value.clone())
            });
            runner.measure("value sizes", &format!("get {row}"), name, |i| {
                black_box(store.get(&keys[i % 100]));
            });
        }
    }
    runner.report.notes.push((
        "value sizes".into(),
        "Every store here holds `Bytes`, so neither set nor get copies the value: the cost does not grow \
         with the size. The Go toolkit copies on both."
            .into(),
    ));
}

fn listing(runner: &mut Runner) {
    for count in [10, 100, 1000, 10_000] {
        for &name in STORES {
            let store = build(name);
            fill(&store, &keys(count, "key:"), &Bytes::from_static(b"v"));
            runner.measure(
                "keys() and clear()",
                &format!("keys of {count}"),
                name,
                |_| {
                    black_box(store.keys());
                },
            );
        }
    }
    for count in [100, 10_000] {
        for &name in STORES {
            let store = build(name);
            let keys = keys(count, "key:");
            let value = Bytes::from_static(b"v");
            runner.measure(
                "keys() and clear()",
                &format!("fill + clear of {count}"),
                name,
                |_| {
                    fill(&store, &keys, &value);
                    store.clear();
                },
            );
        }
    }
    runner.report.notes.push((
        "keys() and clear()".into(),
        "clear is measured with the fill that precedes it (a clear of an empty store measures nothing).".into(),
    ));
}

fn scaling(runner: &mut Runner) {
    let value = Bytes::from(b"value-0123456789".to_vec());
    let sizes: &[usize] = if runner.quick {
        &[1000, 100_000]
    } else {
        &[1000, 1_000_000, 10_000_000]
    };
    for &size in sizes {
        let keys = keys(size, "key:");
        for name in [
            "namestore",
            "floor",
            "RwLock<HashMap>",
            "dashmap",
            "quick_cache",
        ] {
            let store = build(name);
            fill(&store, &keys, &value);
            let mut rng = 0x9E37_79B9_7F4A_7C15u64;
            let mut pick = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as usize % size
            };
            runner.measure("scaling", &format!("get, {size} keys"), name, |_| {
                black_box(store.get(&keys[pick()]));
            });
            runner.measure("scaling", &format!("set, {size} keys"), name, |_| {
                store.set(&keys[pick()], value.clone());
            });
        }
    }
    runner.report.notes.push((
        "scaling".into(),
        "Random keys (xorshift) over the whole store, so large stores miss the CPU caches.".into(),
    ));
}

fn heap_per_entry(runner: &mut Runner) {
    let count = if runner.quick { 100_000 } else { 1_000_000 };
    let keys: Vec<String> = (0..count).map(|i| format!("key-{i:012}")).collect(); // 16 bytes
    for ttl in [false, true] {
        for name in [
            "namestore",
            "floor",
            "RwLock<HashMap>",
            "dashmap",
            "moka",
            "quick_cache",
        ] {
            runner.done += 1;
            if !runner.selected("heap per entry", "", name) {
                continue;
            }
            eprintln!("[{}/{}] heap per entry / {name}", runner.done, runner.total);
            let before = LIVE_BYTES.load(Ordering::Relaxed);
            let store: AnyStore = match (name, ttl) {
                ("namestore", true) => {
                    let ns = Ns::new();
                    for key in &keys {
                        ready(ns.values.set(
                            key,
                            Bytes::copy_from_slice(b"value-0123456789"),
                            Some(HOUR),
                        ))
                        .unwrap();
                    }
                    AnyStore::Ns(ns)
                }
                ("moka", true) => {
                    let values = moka::sync::Cache::builder()
                        .max_capacity(1 << 26)
                        .time_to_live(HOUR)
                        .build();
                    let moka = Moka {
                        values,
                        counters: moka::sync::Cache::new(16),
                    };
                    for key in &keys {
                        moka.set(key, Bytes::copy_from_slice(b"value-0123456789"));
                    }
                    AnyStore::Moka(moka)
                }
                (_, true) => continue,
                _ => {
                    let store = build(name);
                    for key in &keys {
                        store.set(key, Bytes::copy_from_slice(b"value-0123456789"));
                    }
                    store
                }
            };
            let per_entry = (LIVE_BYTES.load(Ordering::Relaxed) - before) as f64 / count as f64;
            let row = if ttl {
                "16 B keys and values, with a TTL"
            } else {
                "16 B keys and values, no TTL"
            };
            runner.record(
                "heap per entry",
                row,
                name,
                Measure {
                    ns: per_entry,
                    allocs: f64::NAN,
                    bytes: f64::NAN,
                },
            );
            drop(store);
        }
    }
    runner.report.notes.push((
        "heap per entry".into(),
        format!(
            "Heap bytes per entry with {count} live entries (the allocator's live bytes after minus before, \
             value buffers included), shown in the time column. Stores without per-key expiry have no TTL row; \
             moka's TTL is cache-wide."
        ),
    ));
}

fn render(report: &Report) -> String {
    let mut out = String::new();
    for (table, rows, cells) in &report.tables {
        let stores: Vec<&str> = STORES
            .iter()
            .copied()
            .filter(|s| cells.keys().any(|(_, st)| st == s))
            .collect();
        let heap = table == "heap per entry";
        let with_go = ["basic", "batches", "value sizes", "concurrency"]
            .iter()
            .any(|t| table.starts_with(t));
        let _ = writeln!(out, "### {table}\n");
        let _ = write!(out, "| row |");
        for s in &stores {
            let _ = write!(out, " {s} |");
        }
        let _ = writeln!(out, "{}", if with_go { " Go guide |" } else { "" });
        let _ = write!(out, "|---|");
        for _ in &stores {
            let _ = write!(out, "---|");
        }
        let _ = writeln!(out, "{}", if with_go { "---|" } else { "" });
        for row in rows {
            let ours = cells
                .get(&(row.clone(), "namestore".to_owned()))
                .map(|m| m.ns);
            let _ = write!(out, "| {row} |");
            for s in &stores {
                let cell = match cells.get(&(row.clone(), (*s).to_owned())) {
                    None => "—".to_owned(),
                    Some(m) if heap => format!("{:.0} B", m.ns),
                    Some(m) => {
                        let mut text = format_ns(m.ns);
                        if let Some(ours) = ours.filter(|_| *s != "namestore") {
                            let _ = write!(text, " ({:.2}×)", m.ns / ours);
                        }
                        if m.allocs.is_finite() {
                            let _ = write!(text, "<br>{:.1} alloc, {:.0} B", m.allocs, m.bytes);
                        }
                        text
                    }
                };
                let _ = write!(out, " {cell} |");
            }
            if with_go {
                let op = row.split(',').next().unwrap_or(row);
                let op = op.trim_start_matches("get ").trim_start_matches("set ");
                let _ = write!(out, " {} |", go_reference(op).unwrap_or("—"));
            }
            let _ = writeln!(out);
        }
        if let Some((_, note)) = report.notes.iter().find(|(t, _)| t == table) {
            let _ = writeln!(out, "\n{note}");
        }
        let _ = writeln!(out);
    }
    out
}

fn format_ns(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.1} ns")
    }
}

fn main() {
    let quick = std::env::var_os("GUIDE_QUICK").is_some();
    let (warm, measure, samples) = if quick {
        (Duration::from_millis(20), Duration::from_millis(50), 10)
    } else {
        (Duration::from_millis(300), Duration::from_millis(800), 30)
    };
    let criterion = Criterion::default()
        .warm_up_time(warm)
        .measurement_time(measure)
        .sample_size(samples)
        .without_plots()
        .configure_from_args();
    // Measurements per table, for the progress counter: basic (70 rows with keys built up
    // front, 49 with formatted keys), batches, concurrency, value sizes, keys/clear, scaling,
    // heap per entry.
    let total = 119 + 18 + 60 + 42 + 42 + if quick { 20 } else { 30 } + 12;
    let mut runner = Runner {
        criterion,
        report: Report::default(),
        done: 0,
        total,
        started: Instant::now(),
        quick,
        only: std::env::var("GUIDE_ONLY")
            .ok()
            .map(|only| only.split('|').map(str::to_owned).collect()),
    };
    basic(&mut runner);
    batches(&mut runner);
    concurrency(&mut runner);
    value_sizes(&mut runner);
    listing(&mut runner);
    scaling(&mut runner);
    heap_per_entry(&mut runner);

    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    let header = format!(
        "Measured {} with `cargo bench --bench guide`: {} CPU threads, criterion medians.\n\
         Cells: median time per operation (ratio to namestore), allocations and bytes allocated per operation.\n",
        if quick {
            "(quick run: GUIDE_QUICK=1)"
        } else {
            ""
        },
        threads
    );
    let markdown = format!("{header}\n{}", render(&runner.report));
    println!("\n{markdown}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/guide-report.md");
    if let Err(e) = std::fs::write(&path, markdown) {
        eprintln!("could not write {}: {e}", path.display());
    } else {
        eprintln!("wrote {}", path.display());
    }
}
