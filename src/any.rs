//! The erased driver: one concrete type for a store chosen at run time (a URL in a config).
//!
//! [`AnyDriver`] wraps any [`Driver`] behind an `Arc<dyn …>`; each call boxes its future.
//! That costs one allocation per operation, which the statically dispatched
//! `Namespace<K, MemoryDriver>` does not pay.

use std::any::Any;
use std::fmt;
use std::future::{Future, ready};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_core::Stream;

use crate::driver::Driver;
use crate::eviction::Eviction;
use crate::glob::Pattern;
use crate::name::{NamespaceInfo, NamespaceName};
use crate::ttl::{Expiry, KeyTtl, Ttl};
use crate::{Error, Result};

/// A boxed, `Send` future, as returned by the erased driver.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A boxed stream of key pages, as returned by [`Driver::scan`] on [`AnyDriver`].
pub type PageStream = Pin<Box<dyn Stream<Item = Result<Vec<String>>> + Send>>;

/// The scope of an [`AnyDriver`]: the wrapped driver's scope, erased.
#[derive(Clone)]
pub struct AnyScope(Arc<dyn Any + Send + Sync>);

impl AnyScope {
    /// The wrapped driver's scope.
    #[cfg(feature = "metrics")]
    pub(crate) fn inner(&self) -> &(dyn Any + Send + Sync) {
        &*self.0
    }

    fn get<S: 'static>(&self) -> Result<&S> {
        self.0.downcast_ref::<S>().ok_or_else(|| {
            Error::backend("a namespace scope was used with a driver that did not create it")
        })
    }
}

impl fmt::Debug for AnyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnyScope")
    }
}

/// A driver chosen at run time, such as the one [`open`](crate::open()) returns.
///
/// Cheap to clone (one `Arc`), `Send + Sync`.
///
/// ```
/// use namestore::{AnyDriver, MemoryDriver};
///
/// let driver = AnyDriver::new(MemoryDriver::new());
/// assert!(driver.downcast_ref::<MemoryDriver>().is_some());
/// ```
#[derive(Clone)]
pub struct AnyDriver(Arc<dyn DynDriver>);

impl AnyDriver {
    /// Erases `driver`.
    pub fn new<D: Driver>(driver: D) -> Self {
        AnyDriver(Arc::new(driver))
    }

    /// The wrapped driver, if it is a `D`.
    pub fn downcast_ref<D: Driver>(&self) -> Option<&D> {
        self.0.as_any().downcast_ref::<D>()
    }

    /// Opens a namespace bound to key type `K`; see [`Namespace::new`](crate::Namespace::new).
    pub fn namespace<K: crate::Key>(
        &self,
        root: &str,
        domain: &str,
    ) -> Result<crate::Namespace<K, AnyDriver>> {
        crate::Namespace::new(self.clone(), root, domain)
    }

    /// Opens a namespace bound to key type `K` with its own eviction mode (SPEC 10.3), whatever
    /// the store's default; see [`Namespace::with_eviction`](crate::Namespace::with_eviction).
    ///
    /// ```
    /// # fn main() -> namestore::Result<()> {
    /// use namestore::Eviction;
    ///
    /// // One store for a cache and its locks: the URL makes it a cache ...
    /// let store = namestore::open("memory://?max_bytes=64MiB&eviction=any")?;
    /// // ... and the locks' namespace keeps its keys: a full store refuses writes there.
    /// let locks = store.namespace_with_eviction::<String>("app", "locks", Eviction::Never)?;
    /// let lock = namestore::lock::Lock::new(locks, std::time::Duration::from_secs(30))?;
    /// # let _ = lock;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`namespace`](Self::namespace);
    /// [`ErrorKind::InvalidNamespace`](crate::ErrorKind::InvalidNamespace) when the namespace is
    /// already open (or holds keys) with another mode.
    pub fn namespace_with_eviction<K: crate::Key>(
        &self,
        root: &str,
        domain: &str,
        mode: Eviction,
    ) -> Result<crate::Namespace<K, AnyDriver>> {
        crate::Namespace::with_eviction(self.clone(), root, domain, mode)
    }
}

impl fmt::Debug for AnyDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AnyDriver").field(&self.0.name()).finish()
    }
}

/// [`Driver`] in object-safe form; implemented for every driver.
trait DynDriver: Send + Sync + 'static {
    fn as_any(&self) -> &dyn Any;
    fn name(&self) -> &'static str;
    fn answers_at_once(&self) -> bool;
    fn system_name(&self) -> &'static str;
    fn scope(&self, namespace: &NamespaceName) -> Result<AnyScope>;
    fn scope_with_eviction(&self, namespace: &NamespaceName, mode: Eviction) -> Result<AnyScope>;
    fn eviction(&self, s: &AnyScope) -> Eviction;
    fn set<'a>(
        &'a self,
        s: &'a AnyScope,
        key: &'a str,
        value: Bytes,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<()>>;
    fn set_nx<'a>(
        &'a self,
        s: &'a AnyScope,
        key: &'a str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> BoxFuture<'a, Result<bool>>;
    fn replace<'a>(
        &'a self,
        s: &'a AnyScope,
        key: &'a str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> BoxFuture<'a, Result<bool>>;
    fn get<'a>(&'a self, s: &'a AnyScope, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>>;
    fn exists<'a>(&'a self, s: &'a AnyScope, key: &'a str) -> BoxFuture<'a, Result<bool>>;
    fn delete<'a>(&'a self, s: &'a AnyScope, key: &'a str) -> BoxFuture<'a, Result<bool>>;
    fn ttl<'a>(&'a self, s: &'a AnyScope, key: &'a str) -> BoxFuture<'a, Result<KeyTtl>>;
    fn expire<'a>(&'a self, s: &'a AnyScope, key: &'a str, ttl: Ttl)
    -> BoxFuture<'a, Result<bool>>;
    fn persist<'a>(&'a self, s: &'a AnyScope, key: &'a str) -> BoxFuture<'a, Result<bool>>;
    fn incr<'a>(
        &'a self,
        s: &'a AnyScope,
        key: &'a str,
        delta: i64,
        ttl: Option<Ttl>,
    ) -> BoxFuture<'a, Result<i64>>;
    fn get_set<'a>(
        &'a self,
        s: &'a AnyScope,
        key: &'a str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> BoxFuture<'a, Result<Option<Bytes>>>;
    fn cas<'a>(
        &'a self,
        s: &'a AnyScope,
        key: &'a str,
        expected: &'a [u8],
        new: Bytes,
        ttl: Option<Ttl>,
    ) -> BoxFuture<'a, Result<bool>>;
    fn cad<'a>(
        &'a self,
        s: &'a AnyScope,
        key: &'a str,
        expected: &'a [u8],
    ) -> BoxFuture<'a, Result<bool>>;
    fn mget<'a>(
        &'a self,
        s: &'a AnyScope,
        keys: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<Bytes>>>>;
    fn mset<'a, 'k: 'a>(
        &'a self,
        s: &'a AnyScope,
        pairs: &'a mut [(&'k str, Bytes)],
        ttl: Option<Ttl>,
    ) -> BoxFuture<'a, Result<()>>;
    fn mdel<'a>(&'a self, s: &'a AnyScope, keys: &'a [&'a str]) -> BoxFuture<'a, Result<u64>>;
    fn scan(&self, s: &AnyScope, pattern: &Pattern) -> PageStream;
    fn clear<'a>(&'a self, s: &'a AnyScope) -> BoxFuture<'a, Result<u64>>;
    fn namespaces(&self) -> NamespaceStream;
}

type NamespaceStream = Pin<Box<dyn Stream<Item = Result<NamespaceInfo>> + Send>>;

/// Downcasts the scope, then boxes the driver's future; a foreign scope is an error.
macro_rules! erased {
    ($scope:expr, |$s:ident: $ty:ty| $call:expr) => {
        match $scope.get::<$ty>() {
            Ok($s) => Box::pin($call),
            Err(e) => Box::pin(ready(Err(e))),
        }
    };
}

impl<D: Driver> DynDriver for D {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &'static str {
        std::any::type_name::<D>()
    }

    fn answers_at_once(&self) -> bool {
        Driver::answers_at_once(self)
    }

    fn system_name(&self) -> &'static str {
        Driver::system_name(self)
    }

    fn scope(&self, namespace: &NamespaceName) -> Result<AnyScope> {
        Ok(AnyScope(Arc::new(Driver::scope(self, namespace)?)))
    }

    fn scope_with_eviction(&self, namespace: &NamespaceName, mode: Eviction) -> Result<AnyScope> {
        Ok(AnyScope(Arc::new(Driver::scope_with_eviction(
            self, namespace, mode,
        )?)))
    }

    fn eviction(&self, s: &AnyScope) -> Eviction {
        // A scope of another driver: it cannot be used for anything, and evicts nothing.
        s.get::<D::Scope>()
            .map_or(Eviction::Never, |s| Driver::eviction(self, s))
    }

    fn set<'a>(
        &'a self,
        s: &'a AnyScope,
        key: &'a str,
        value: Bytes,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<()>> {
        erased!(s, |s: D::Scope| Driver::set(self, s, key, value, expiry))
    }

    fn set_nx<'a>(
        &'a self,
        s: &'a AnyScope,
        key: &'a str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> BoxFuture<'a, Result<bool>> {
        erased!(s, |s: D::Scope| Driver::set_nx(self, s, key, value, ttl))
    }

    fn replace<'a>(
        &'a self,
        s: &'a AnyScope,
        key: &'a str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> BoxFuture<'a, Result<bool>> {
        erased!(s, |s: D::Scope| Driver::replace(self, s, key, value, ttl))
    }

    fn get<'a>(&'a self, s: &'a AnyScope, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>> {
        erased!(s, |s: D::Scope| Driver::get(self, s, key))
    }

    fn exists<'a>(&'a self, s: &'a AnyScope, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        erased!(s, |s: D::Scope| Driver::exists(self, s, key))
    }

    fn delete<'a>(&'a self, s: &'a AnyScope, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        erased!(s, |s: D::Scope| Driver::delete(self, s, key))
    }

    fn ttl<'a>(&'a self, s: &'a AnyScope, key: &'a str) -> BoxFuture<'a, Result<KeyTtl>> {
        erased!(s, |s: D::Scope| Driver::ttl(self, s, key))
    }

    fn expire<'a>(
        &'a self,
        s: &'a AnyScope,
        key: &'a str,
        ttl: Ttl,
    ) -> BoxFuture<'a, Result<bool>> {
        erased!(s, |s: D::Scope| Driver::expire(self, s, key, ttl))
    }

    fn persist<'a>(&'a self, s: &'a AnyScope, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        erased!(s, |s: D::Scope| Driver::persist(self, s, key))
    }

    fn incr<'a>(
        &'a self,
        s: &'a AnyScope,
        key: &'a str,
        delta: i64,
        ttl: Option<Ttl>,
    ) -> BoxFuture<'a, Result<i64>> {
        erased!(s, |s: D::Scope| Driver::incr(self, s, key, delta, ttl))
    }

    fn get_set<'a>(
        &'a self,
        s: &'a AnyScope,
        key: &'a str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> BoxFuture<'a, Result<Option<Bytes>>> {
        erased!(s, |s: D::Scope| Driver::get_set(self, s, key, value, ttl))
    }

    fn cas<'a>(
        &'a self,
        s: &'a AnyScope,
        key: &'a str,
        expected: &'a [u8],
        new: Bytes,
        ttl: Option<Ttl>,
    ) -> BoxFuture<'a, Result<bool>> {
        erased!(s, |s: D::Scope| Driver::cas(
            self, s, key, expected, new, ttl
        ))
    }

    fn cad<'a>(
        &'a self,
        s: &'a AnyScope,
        key: &'a str,
        expected: &'a [u8],
    ) -> BoxFuture<'a, Result<bool>> {
        erased!(s, |s: D::Scope| Driver::cad(self, s, key, expected))
    }

    fn mget<'a>(
        &'a self,
        s: &'a AnyScope,
        keys: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<Bytes>>>> {
        erased!(s, |s: D::Scope| Driver::mget(self, s, keys))
    }

    fn mset<'a, 'k: 'a>(
        &'a self,
        s: &'a AnyScope,
        pairs: &'a mut [(&'k str, Bytes)],
        ttl: Option<Ttl>,
    ) -> BoxFuture<'a, Result<()>> {
        erased!(s, |s: D::Scope| Driver::mset(self, s, pairs, ttl))
    }

    fn mdel<'a>(&'a self, s: &'a AnyScope, keys: &'a [&'a str]) -> BoxFuture<'a, Result<u64>> {
        erased!(s, |s: D::Scope| Driver::mdel(self, s, keys))
    }

    fn scan(&self, s: &AnyScope, pattern: &Pattern) -> PageStream {
        match s.get::<D::Scope>() {
            Ok(s) => Box::pin(Driver::scan(self, s, pattern)),
            Err(e) => Box::pin(Once(Some(Err(e)))),
        }
    }

    fn clear<'a>(&'a self, s: &'a AnyScope) -> BoxFuture<'a, Result<u64>> {
        erased!(s, |s: D::Scope| Driver::clear(self, s))
    }

    fn namespaces(&self) -> NamespaceStream {
        Box::pin(Driver::namespaces(self))
    }
}

/// A stream of at most one item.
struct Once<T>(Option<T>);

impl<T: Unpin> Stream for Once<T> {
    type Item = T;

    fn poll_next(
        mut self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        std::task::Poll::Ready(self.0.take())
    }
}

impl Driver for AnyDriver {
    type Scope = AnyScope;

    /// As the wrapped driver: a boxed future of the memory driver is still ready at once.
    #[inline]
    fn answers_at_once(&self) -> bool {
        self.0.answers_at_once()
    }

    /// As the wrapped driver.
    fn system_name(&self) -> &'static str {
        self.0.system_name()
    }

    fn scope(&self, namespace: &NamespaceName) -> Result<AnyScope> {
        self.0.scope(namespace)
    }

    /// As the wrapped driver.
    fn scope_with_eviction(&self, namespace: &NamespaceName, mode: Eviction) -> Result<AnyScope> {
        self.0.scope_with_eviction(namespace, mode)
    }

    /// As the wrapped driver.
    fn eviction(&self, scope: &AnyScope) -> Eviction {
        self.0.eviction(scope)
    }

    async fn set(&self, s: &AnyScope, key: &str, value: Bytes, expiry: Expiry) -> Result<()> {
        self.0.set(s, key, value, expiry).await
    }

    async fn set_nx(
        &self,
        s: &AnyScope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<bool> {
        self.0.set_nx(s, key, value, ttl).await
    }

    async fn replace(
        &self,
        s: &AnyScope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<bool> {
        self.0.replace(s, key, value, ttl).await
    }

    async fn get(&self, s: &AnyScope, key: &str) -> Result<Option<Bytes>> {
        self.0.get(s, key).await
    }

    async fn exists(&self, s: &AnyScope, key: &str) -> Result<bool> {
        self.0.exists(s, key).await
    }

    async fn delete(&self, s: &AnyScope, key: &str) -> Result<bool> {
        self.0.delete(s, key).await
    }

    async fn ttl(&self, s: &AnyScope, key: &str) -> Result<KeyTtl> {
        self.0.ttl(s, key).await
    }

    async fn expire(&self, s: &AnyScope, key: &str, ttl: Ttl) -> Result<bool> {
        self.0.expire(s, key, ttl).await
    }

    async fn persist(&self, s: &AnyScope, key: &str) -> Result<bool> {
        self.0.persist(s, key).await
    }

    async fn incr(&self, s: &AnyScope, key: &str, delta: i64, ttl: Option<Ttl>) -> Result<i64> {
        self.0.incr(s, key, delta, ttl).await
    }

    async fn get_set(
        &self,
        s: &AnyScope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<Option<Bytes>> {
        self.0.get_set(s, key, value, ttl).await
    }

    async fn cas(
        &self,
        s: &AnyScope,
        key: &str,
        expected: &[u8],
        new: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<bool> {
        self.0.cas(s, key, expected, new, ttl).await
    }

    async fn cad(&self, s: &AnyScope, key: &str, expected: &[u8]) -> Result<bool> {
        self.0.cad(s, key, expected).await
    }

    async fn mget(&self, s: &AnyScope, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        self.0.mget(s, keys).await
    }

    async fn mset(
        &self,
        s: &AnyScope,
        pairs: &mut [(&str, Bytes)],
        ttl: Option<Ttl>,
    ) -> Result<()> {
        self.0.mset(s, pairs, ttl).await
    }

    async fn mdel(&self, s: &AnyScope, keys: &[&str]) -> Result<u64> {
        self.0.mdel(s, keys).await
    }

    fn scan(
        &self,
        s: &AnyScope,
        pattern: &Pattern,
    ) -> impl Stream<Item = Result<Vec<String>>> + Send + 'static {
        self.0.scan(s, pattern)
    }

    async fn clear(&self, s: &AnyScope) -> Result<u64> {
        self.0.clear(s).await
    }

    fn namespaces(&self) -> impl Stream<Item = Result<NamespaceInfo>> + Send + 'static {
        self.0.namespaces()
    }
}
