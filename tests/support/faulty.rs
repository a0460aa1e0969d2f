//! A driver that fails the calls it is told to: a layer over a real driver, for the error
//! paths of what is built on the operations (locks, the rate limiter). A planned fault fails
//! the next call of its operation with a timeout, either before the call reaches the store or
//! after the store applied it (a reply lost on the way back).

#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use namestore::{
    Driver, Error, Expiry, KeyTtl, NamespaceInfo, NamespaceName, Pattern, Result, Ttl,
};

/// When a planned fault strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The call fails without reaching the store.
    Before,
    /// The store applies the call, and the caller gets a timeout.
    After,
}

/// The calls whose answers wait for a gate, with their gates.
type Held = Vec<(&'static str, Arc<tokio::sync::Notify>)>;

#[derive(Clone)]
pub struct Faulty<D> {
    inner: D,
    plan: Arc<Mutex<Vec<(&'static str, Fault)>>>,
    held: Arc<Mutex<Held>>,
}

impl<D: Driver> Faulty<D> {
    pub fn new(inner: D) -> Self {
        Faulty {
            inner,
            plan: Arc::default(),
            held: Arc::default(),
        }
    }

    /// Fails the next call of `op` (`"cas"`, `"set_nx"`, …) as `fault` says.
    pub fn fail_next(&self, op: &'static str, fault: Fault) {
        self.plan.lock().unwrap().push((op, fault));
    }

    /// Holds the answer of the next call of `op`: the store runs it at once, and its caller
    /// gets the answer only once the returned gate is opened (`notify_one`), as from a slow
    /// network.
    pub fn hold_next(&self, op: &'static str) -> Arc<tokio::sync::Notify> {
        let gate = Arc::new(tokio::sync::Notify::new());
        self.held.lock().unwrap().push((op, Arc::clone(&gate)));
        gate
    }

    /// Whether every planned fault struck.
    pub fn all_struck(&self) -> bool {
        self.plan.lock().unwrap().is_empty()
    }

    fn take(&self, op: &'static str) -> Option<Fault> {
        let mut plan = self.plan.lock().unwrap();
        let at = plan.iter().position(|(planned, _)| *planned == op)?;
        Some(plan.remove(at).1)
    }

    async fn call<T>(&self, op: &'static str, call: impl Future<Output = Result<T>>) -> Result<T> {
        let held = {
            let mut held = self.held.lock().unwrap();
            let at = held.iter().position(|(planned, _)| *planned == op);
            at.map(|at| held.remove(at).1)
        };
        if let Some(gate) = held {
            let answer = call.await;
            gate.notified().await;
            return answer;
        }
        match self.take(op) {
            None => call.await,
            Some(Fault::Before) => Err(Error::timeout(Duration::from_millis(1))),
            Some(Fault::After) => {
                let _ = call.await;
                Err(Error::timeout(Duration::from_millis(1)))
            }
        }
    }
}

impl<D: Driver> Driver for Faulty<D> {
    type Scope = D::Scope;

    fn scope(&self, namespace: &NamespaceName) -> Result<Self::Scope> {
        self.inner.scope(namespace)
    }

    fn scope_with_eviction(
        &self,
        namespace: &NamespaceName,
        mode: namestore::Eviction,
    ) -> Result<Self::Scope> {
        self.inner.scope_with_eviction(namespace, mode)
    }

    fn eviction(&self, scope: &Self::Scope) -> namestore::Eviction {
        self.inner.eviction(scope)
    }

    fn set(
        &self,
        scope: &Self::Scope,
        key: &str,
        value: Bytes,
        expiry: Expiry,
    ) -> impl Future<Output = Result<()>> + Send {
        self.call("set", self.inner.set(scope, key, value, expiry))
    }

    fn set_nx(
        &self,
        scope: &Self::Scope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.call("set_nx", self.inner.set_nx(scope, key, value, ttl))
    }

    fn replace(
        &self,
        scope: &Self::Scope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.call("replace", self.inner.replace(scope, key, value, ttl))
    }

    fn get(
        &self,
        scope: &Self::Scope,
        key: &str,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        self.call("get", self.inner.get(scope, key))
    }

    fn exists(&self, scope: &Self::Scope, key: &str) -> impl Future<Output = Result<bool>> + Send {
        self.call("exists", self.inner.exists(scope, key))
    }

    fn delete(&self, scope: &Self::Scope, key: &str) -> impl Future<Output = Result<bool>> + Send {
        self.call("delete", self.inner.delete(scope, key))
    }

    fn ttl(&self, scope: &Self::Scope, key: &str) -> impl Future<Output = Result<KeyTtl>> + Send {
        self.call("ttl", self.inner.ttl(scope, key))
    }

    fn expire(
        &self,
        scope: &Self::Scope,
        key: &str,
        ttl: Ttl,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.call("expire", self.inner.expire(scope, key, ttl))
    }

    fn persist(&self, scope: &Self::Scope, key: &str) -> impl Future<Output = Result<bool>> + Send {
        self.call("persist", self.inner.persist(scope, key))
    }

    fn incr(
        &self,
        scope: &Self::Scope,
        key: &str,
        delta: i64,
        ttl_on_create: Option<Ttl>,
    ) -> impl Future<Output = Result<i64>> + Send {
        self.call("incr", self.inner.incr(scope, key, delta, ttl_on_create))
    }

    fn get_set(
        &self,
        scope: &Self::Scope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        self.call("get_set", self.inner.get_set(scope, key, value, ttl))
    }

    fn cas(
        &self,
        scope: &Self::Scope,
        key: &str,
        expected: &[u8],
        new: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.call("cas", self.inner.cas(scope, key, expected, new, ttl))
    }

    fn cad(
        &self,
        scope: &Self::Scope,
        key: &str,
        expected: &[u8],
    ) -> impl Future<Output = Result<bool>> + Send {
        self.call("cad", self.inner.cad(scope, key, expected))
    }

    fn mget(
        &self,
        scope: &Self::Scope,
        keys: &[&str],
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>>> + Send {
        self.call("mget", self.inner.mget(scope, keys))
    }

    fn mset(
        &self,
        scope: &Self::Scope,
        pairs: &mut [(&str, Bytes)],
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<()>> + Send {
        self.call("mset", self.inner.mset(scope, pairs, ttl))
    }

    fn mdel(&self, scope: &Self::Scope, keys: &[&str]) -> impl Future<Output = Result<u64>> + Send {
        self.call("mdel", self.inner.mdel(scope, keys))
    }

    fn scan(
        &self,
        scope: &Self::Scope,
        pattern: &Pattern,
    ) -> impl Stream<Item = Result<Vec<String>>> + Send + 'static {
        self.inner.scan(scope, pattern)
    }

    fn clear(&self, scope: &Self::Scope) -> impl Future<Output = Result<u64>> + Send {
        self.call("clear", self.inner.clear(scope))
    }

    fn namespaces(&self) -> impl Stream<Item = Result<NamespaceInfo>> + Send + 'static {
        self.inner.namespaces()
    }
}
