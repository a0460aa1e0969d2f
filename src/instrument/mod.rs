//! Telemetry as a layer over any driver (SPEC 12): [`Instrumented`] wraps a [`Driver`] and is
//! one, so every store, third-party drivers included, is traced the same way. Cargo feature
//! `tracing`.
//!
//! Each operation runs in a `tracing` span, target `namestore`, level DEBUG, with
//! OpenTelemetry's database-client fields:
//!
//! | field | value |
//! |---|---|
//! | `db.system.name` | the driver's [`Driver::system_name`]: `memory`, `redis`, `redb` |
//! | `db.operation.name` | the driver operation: `get`, `set`, `mget`, `incr`... |
//! | `db.namespace` | the namespace, `root:domain` |
//! | `otel.name` | `{operation} {namespace}`, the span name OpenTelemetry shows |
//! | `namestore.outcome` | `ok` or `error` |
//! | `error.type` | on an error, its [`ErrorKind::name`](crate::ErrorKind::name) (`timeout`...) |
//! | `namestore.hit` | on `get`, `exists`, `ttl` and `get_set`: whether the key was there |
//! | `namestore.key` | the key, shortened to 64 characters, only when TRACE is enabled for `namestore` |
//!
//! Listings (`scan`, and so `keys`; `namespaces`) are one span each, entered while each page
//! is fetched and recorded when the listing ends; `namespaces` has no `db.namespace`.
//!
//! Values are never recorded, and neither is anything from a store's URL. With no subscriber
//! interested in the span, the layer hands back the driver's own future: no span, no
//! allocation, one check of tracing's level filter per call.
//!
//! With the cargo feature `metrics` too, every call is also counted through the `metrics`
//! facade (labels `namespace`, `operation`, `driver`, and `outcome` = `ok` or the error kind;
//! never a key): [`OPERATIONS`](meter::OPERATIONS) and the latency histogram
//! [`DURATION`](meter::DURATION), and for reads [`HITS`](meter::HITS) and
//! [`MISSES`](meter::MISSES). With no recorder installed (the facade's no-op recorder), a
//! call pays one check and no clock read. The no-op recorder is recognised by being a
//! zero-sized type: a recorder of a zero-sized type of your own is treated the same way.
//! Under the global recorder (`metrics::set_global_recorder`, as a service installs its
//! exporter), each namespace registers each of its metrics once and counts through the
//! handle after (registering is the recorder's lookup of the metric's key: on every call it
//! tripled a call's cost with Prometheus's exporter); under a local recorder
//! (`metrics::with_local_recorder`, as tests install), on every call, so that a recorder made
//! later gets the calls made under it.
//!
//! Each namespace is a label value (SPEC 12.1), and a recorder keeps every series it was
//! given: a program that makes namespaces from its data (one a user, a tenant, a job) makes
//! as many series of each metric, which an exporter holds, and a Prometheus server stores,
//! for as long as they run. Open such namespaces without the layer (from the driver itself,
//! or a store opened without `telemetry=1`): they make no series. The memory driver exports
//! the evictions and expirations of the namespaces opened through the layer only; a
//! namespace opened through it once exports them through every handle while it lives.
//!
//! `namestore::open` applies the layer when the URL asks for it with `telemetry=1`
//! (`memory://?telemetry=1`, `redis://host?telemetry=1`).

#[cfg(feature = "metrics")]
pub mod meter;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
#[cfg(feature = "metrics")]
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;
use tracing::field::Empty;
use tracing::{Level, Span};

use crate::at_once::{Call, Lazy, at_once};
use crate::driver::Driver;
use crate::glob::Pattern;
use crate::name::{NamespaceInfo, NamespaceName};
use crate::ttl::{Expiry, KeyTtl, Ttl};
use crate::{ErrorKind, Result};

/// The operations the layer observes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Set,
    SetNx,
    Replace,
    Get,
    Exists,
    Delete,
    Ttl,
    Expire,
    Persist,
    Incr,
    GetSet,
    Cas,
    Cad,
    Mget,
    Mset,
    Mdel,
    Clear,
    Scan,
    Namespaces,
}

impl Op {
    #[cfg(feature = "metrics")]
    pub(crate) const COUNT: usize = Op::Namespaces as usize + 1;

    /// The driver operation's name, as `db.operation.name` and the `operation` label.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Set => "set",
            Op::SetNx => "set_nx",
            Op::Replace => "replace",
            Op::Get => "get",
            Op::Exists => "exists",
            Op::Delete => "delete",
            Op::Ttl => "ttl",
            Op::Expire => "expire",
            Op::Persist => "persist",
            Op::Incr => "incr",
            Op::GetSet => "get_set",
            Op::Cas => "cas",
            Op::Cad => "cad",
            Op::Mget => "mget",
            Op::Mset => "mset",
            Op::Mdel => "mdel",
            Op::Clear => "clear",
            Op::Scan => "scan",
            Op::Namespaces => "namespaces",
        }
    }
}

/// What a call measured for metrics: the namespace's keys, the operation, when it started.
#[cfg(feature = "metrics")]
type Meter = (Arc<meter::Meters>, Op, Instant);

/// A driver whose every operation is traced; see the [module](self) for the fields.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> namestore::Result<()> {
/// use namestore::{Instrumented, MemoryDriver, Namespace};
///
/// let store = Instrumented::new(MemoryDriver::new());
/// let ns: Namespace<String, _> = Namespace::new(store, "app", "sessions")?;
/// ns.set(&"k".to_owned(), "v", None).await?; // a `set app:sessions` span, when someone listens
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Instrumented<D> {
    inner: D,
    /// The store-wide listing's meters (namespace label empty).
    #[cfg(feature = "metrics")]
    listing: Arc<meter::Meters>,
}

impl<D: Driver> Instrumented<D> {
    /// Wraps `inner`.
    pub fn new(inner: D) -> Self {
        Instrumented {
            #[cfg(feature = "metrics")]
            listing: Arc::new(meter::Meters::new("", inner.system_name())),
            inner,
        }
    }

    /// The wrapped driver.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    fn listing(&self) -> &Meters {
        #[cfg(feature = "metrics")]
        return &self.listing;
        #[cfg(not(feature = "metrics"))]
        &()
    }

    /// The layer's scope around the wrapped driver's scope of `namespace`.
    fn wrap_scope(
        &self,
        namespace: &NamespaceName,
        inner: D::Scope,
    ) -> InstrumentedScope<D::Scope> {
        let name = namespace.to_string();
        #[cfg(feature = "metrics")]
        export_removals(&inner);
        InstrumentedScope {
            inner,
            #[cfg(feature = "metrics")]
            meters: Arc::new(meter::Meters::new(&name, self.inner.system_name())),
            namespace: name.into(),
        }
    }

    /// The span of one operation, or a disabled span when nobody listens.
    #[cold]
    #[inline(never)]
    fn span(&self, namespace: &str, op: Op, key: Option<&str>) -> Span {
        let operation = op.name();
        let span = tracing::debug_span!(
            target: "namestore",
            "namestore",
            "db.system.name" = self.inner.system_name(),
            "db.operation.name" = operation,
            "db.namespace" = (!namespace.is_empty()).then_some(namespace),
            "otel.name" = Empty,
            "namestore.outcome" = Empty,
            "error.type" = Empty,
            "namestore.hit" = Empty,
            "namestore.key" = Empty,
        );
        if !span.is_disabled() {
            if namespace.is_empty() {
                span.record("otel.name", operation);
            } else {
                span.record(
                    "otel.name",
                    tracing::field::display(format_args!("{operation} {namespace}")),
                );
            }
            if let Some(key) = key
                && tracing::enabled!(target: "namestore", Level::TRACE)
            {
                span.record("namestore.key", crate::error::shorten(key));
            }
        }
        span
    }

    /// Runs `call` in the operation's span and records its outcome there and in metrics;
    /// hands back `call` itself when nobody listens.
    ///
    /// The checks: tracing's global level filter (one relaxed load; with no subscriber at
    /// DEBUG not even the span's callsite is looked up) and, with `metrics`, whether a
    /// recorder is installed. The observed path is out of line.
    ///
    /// On a driver that answers at once the checks run on first poll, and an unobserved call
    /// builds and polls the driver's future in place there, exactly as without the layer; an
    /// observed one moves the call into a box first, so that the call's arguments stay out of
    /// memory on the unobserved path (an argument moved through memory, a `Bytes` value in a
    /// future, cost a `set` 5 ns of stalled loads). On any other driver an unobserved call is
    /// the driver's future in one arm of an enum, and an observed one is boxed.
    #[inline(always)]
    fn traced<T, F: Future<Output = Result<T>>>(
        &self,
        s: &InstrumentedScope<D::Scope>,
        op: Op,
        key: Option<&str>,
        hit: fn(&T) -> Option<bool>,
        call: impl FnOnce() -> F,
    ) -> Call<impl FnOnce() -> Result<T>, Traced<F, T>> {
        if self.inner.answers_at_once() {
            return Call::Now {
                now: Lazy(Some(
                    #[inline(always)]
                    move || {
                        if !observed() {
                            return at_once(call());
                        }
                        at_once(self.observe(s, op, key, hit, Box::new(call)))
                    },
                )),
            };
        }
        Call::Later {
            later: if observed() {
                self.observe(s, op, key, hit, Box::new(call))
            } else {
                Traced::Bare { call: call() }
            },
        }
    }

    /// The observed half of [`traced`](Self::traced), out of the unobserved call's way.
    #[inline(never)]
    fn observe<T, F: Future<Output = Result<T>>>(
        &self,
        s: &InstrumentedScope<D::Scope>,
        op: Op,
        key: Option<&str>,
        hit: fn(&T) -> Option<bool>,
        call: Box<impl FnOnce() -> F>,
    ) -> Traced<F, T> {
        match self.observer(&s.namespace, s.meters(), op, key, hit) {
            None => Traced::Bare { call: call() },
            Some(observer) => Traced::Observed {
                call: Box::pin(Recording {
                    call: call(),
                    observer,
                }),
            },
        }
    }

    /// What watches one call: its span (when a subscriber wants it) and its meter (when a
    /// recorder is installed); `None` when neither listens after all.
    fn observer<T>(
        &self,
        namespace: &str,
        meters: &Meters,
        op: Op,
        key: Option<&str>,
        hit: fn(&T) -> Option<bool>,
    ) -> Option<Observer<T>> {
        let span = if tracing::level_enabled!(Level::DEBUG) {
            self.span(namespace, op, key)
        } else {
            Span::none()
        };
        #[cfg(feature = "metrics")]
        let meter: Option<Meter> =
            meter::recorder_listens().then(|| (Arc::clone(meters), op, Instant::now()));
        #[cfg(feature = "metrics")]
        let unmetered = meter.is_none();
        #[cfg(not(feature = "metrics"))]
        let unmetered = {
            let _ = meters;
            true
        };
        if span.is_disabled() && unmetered {
            return None;
        }
        Some(Observer {
            span,
            hit,
            #[cfg(feature = "metrics")]
            meter,
        })
    }
}

/// Whether anyone may observe a call: tracing's global level filter lets DEBUG through (one
/// relaxed load), or, with `metrics`, a recorder is installed.
#[inline(always)]
fn observed() -> bool {
    if tracing::level_enabled!(Level::DEBUG) {
        return true;
    }
    #[cfg(feature = "metrics")]
    if meter::recorder_listens() {
        return true;
    }
    false
}

fn no_hit<T>(_: &T) -> Option<bool> {
    None
}

/// A namespace's metric keys: with `metrics`, the real ones; without, nothing.
#[cfg(feature = "metrics")]
type Meters = Arc<meter::Meters>;
#[cfg(not(feature = "metrics"))]
type Meters = ();

/// The span and meter of one observed call.
pub(crate) struct Observer<T> {
    span: Span,
    hit: fn(&T) -> Option<bool>,
    #[cfg(feature = "metrics")]
    meter: Option<Meter>,
}

impl<T> Observer<T> {
    /// Records how the call ended, in its span and its meter.
    fn finish(&mut self, outcome: std::result::Result<&T, ErrorKind>) {
        if !self.span.is_disabled() {
            match outcome {
                Ok(value) => {
                    self.span.record("namestore.outcome", "ok");
                    if let Some(hit) = (self.hit)(value) {
                        self.span.record("namestore.hit", hit);
                    }
                }
                Err(kind) => {
                    self.span.record("namestore.outcome", "error");
                    self.span.record("error.type", kind.name());
                }
            }
        }
        #[cfg(feature = "metrics")]
        if let Some((meters, op, started)) = self.meter.take() {
            meters.record(op, outcome, self.hit, started.elapsed());
        }
    }
}

pin_project_lite::pin_project! {
    /// A call polled inside its span, recording its outcome when it completes.
    pub(crate) struct Recording<F, T> {
        #[pin]
        call: F,
        observer: Observer<T>,
    }
}

impl<T, F: Future<Output = Result<T>>> Future for Recording<F, T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.project();
        let polled = this.observer.span.in_scope(|| this.call.poll(cx));
        if let Poll::Ready(result) = &polled {
            this.observer
                .finish(result.as_ref().map_err(|error| error.kind()));
        }
        polled
    }
}

pin_project_lite::pin_project! {
    /// The future of an instrumented call: the driver's own, or it inside its span (boxed).
    #[project = TracedProj]
    pub(crate) enum Traced<F, T> {
        Bare { #[pin] call: F },
        Observed { call: Pin<Box<Recording<F, T>>> },
    }
}

impl<T, F: Future<Output = Result<T>>> Future for Traced<F, T> {
    type Output = Result<T>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        match self.project() {
            TracedProj::Bare { call } => call.poll(cx),
            TracedProj::Observed { call } => call.as_mut().poll(cx),
        }
    }
}

/// Has a memory namespace opened through the layer export its evictions and expirations (the
/// driver counts them, and only for namespaces the program instruments): its scope as the
/// memory driver made it, or inside an [`AnyDriver`](crate::AnyDriver)'s.
#[cfg(feature = "metrics")]
fn export_removals(scope: &(dyn std::any::Any + Send + Sync)) {
    use crate::drivers::memory::MemoryScope;

    let memory = scope.downcast_ref::<MemoryScope>().or_else(|| {
        scope
            .downcast_ref::<crate::AnyScope>()
            .and_then(|any| any.inner().downcast_ref::<MemoryScope>())
    });
    if let Some(memory) = memory {
        memory.export_removals();
    }
}

/// A namespace of an [`Instrumented`] driver: the wrapped driver's scope and the
/// namespace's name for telemetry.
#[derive(Clone, Debug)]
pub struct InstrumentedScope<S> {
    inner: S,
    namespace: Arc<str>,
    #[cfg(feature = "metrics")]
    meters: Arc<meter::Meters>,
}

impl<S> InstrumentedScope<S> {
    fn meters(&self) -> &Meters {
        #[cfg(feature = "metrics")]
        return &self.meters;
        #[cfg(not(feature = "metrics"))]
        &()
    }
}

impl<D: Driver> Driver for Instrumented<D> {
    type Scope = InstrumentedScope<D::Scope>;

    #[inline]
    fn answers_at_once(&self) -> bool {
        self.inner.answers_at_once()
    }

    fn system_name(&self) -> &'static str {
        self.inner.system_name()
    }

    fn eviction(&self, scope: &Self::Scope) -> crate::Eviction {
        self.inner.eviction(&scope.inner)
    }

    fn scope(&self, namespace: &NamespaceName) -> Result<Self::Scope> {
        Ok(self.wrap_scope(namespace, self.inner.scope(namespace)?))
    }

    fn scope_with_eviction(
        &self,
        namespace: &NamespaceName,
        mode: crate::Eviction,
    ) -> Result<Self::Scope> {
        let inner = self.inner.scope_with_eviction(namespace, mode)?;
        Ok(self.wrap_scope(namespace, inner))
    }

    #[inline]
    fn set(
        &self,
        s: &Self::Scope,
        key: &str,
        value: Bytes,
        expiry: Expiry,
    ) -> impl Future<Output = Result<()>> + Send {
        self.traced(s, Op::Set, Some(key), no_hit, move || {
            self.inner.set(&s.inner, key, value, expiry)
        })
    }

    #[inline]
    fn set_nx(
        &self,
        s: &Self::Scope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.traced(s, Op::SetNx, Some(key), no_hit, move || {
            self.inner.set_nx(&s.inner, key, value, ttl)
        })
    }

    #[inline]
    fn replace(
        &self,
        s: &Self::Scope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.traced(s, Op::Replace, Some(key), no_hit, move || {
            self.inner.replace(&s.inner, key, value, ttl)
        })
    }

    #[inline]
    fn get(
        &self,
        s: &Self::Scope,
        key: &str,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        self.traced(
            s,
            Op::Get,
            Some(key),
            |v: &Option<Bytes>| Some(v.is_some()),
            move || self.inner.get(&s.inner, key),
        )
    }

    #[inline]
    fn exists(&self, s: &Self::Scope, key: &str) -> impl Future<Output = Result<bool>> + Send {
        self.traced(
            s,
            Op::Exists,
            Some(key),
            |hit: &bool| Some(*hit),
            move || self.inner.exists(&s.inner, key),
        )
    }

    #[inline]
    fn delete(&self, s: &Self::Scope, key: &str) -> impl Future<Output = Result<bool>> + Send {
        self.traced(s, Op::Delete, Some(key), no_hit, move || {
            self.inner.delete(&s.inner, key)
        })
    }

    #[inline]
    fn ttl(&self, s: &Self::Scope, key: &str) -> impl Future<Output = Result<KeyTtl>> + Send {
        self.traced(
            s,
            Op::Ttl,
            Some(key),
            |t: &KeyTtl| Some(*t != KeyTtl::Missing),
            move || self.inner.ttl(&s.inner, key),
        )
    }

    #[inline]
    fn expire(
        &self,
        s: &Self::Scope,
        key: &str,
        ttl: Ttl,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.traced(s, Op::Expire, Some(key), no_hit, move || {
            self.inner.expire(&s.inner, key, ttl)
        })
    }

    #[inline]
    fn persist(&self, s: &Self::Scope, key: &str) -> impl Future<Output = Result<bool>> + Send {
        self.traced(s, Op::Persist, Some(key), no_hit, move || {
            self.inner.persist(&s.inner, key)
        })
    }

    #[inline]
    fn incr(
        &self,
        s: &Self::Scope,
        key: &str,
        delta: i64,
        ttl_on_create: Option<Ttl>,
    ) -> impl Future<Output = Result<i64>> + Send {
        self.traced(s, Op::Incr, Some(key), no_hit, move || {
            self.inner.incr(&s.inner, key, delta, ttl_on_create)
        })
    }

    #[inline]
    fn get_set(
        &self,
        s: &Self::Scope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        self.traced(
            s,
            Op::GetSet,
            Some(key),
            |v: &Option<Bytes>| Some(v.is_some()),
            move || self.inner.get_set(&s.inner, key, value, ttl),
        )
    }

    #[inline]
    fn cas(
        &self,
        s: &Self::Scope,
        key: &str,
        expected: &[u8],
        new: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.traced(s, Op::Cas, Some(key), no_hit, move || {
            self.inner.cas(&s.inner, key, expected, new, ttl)
        })
    }

    #[inline]
    fn cad(
        &self,
        s: &Self::Scope,
        key: &str,
        expected: &[u8],
    ) -> impl Future<Output = Result<bool>> + Send {
        self.traced(s, Op::Cad, Some(key), no_hit, move || {
            self.inner.cad(&s.inner, key, expected)
        })
    }

    #[inline]
    fn mget(
        &self,
        s: &Self::Scope,
        keys: &[&str],
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>>> + Send {
        self.traced(s, Op::Mget, None, no_hit, move || {
            self.inner.mget(&s.inner, keys)
        })
    }

    #[inline]
    fn mset(
        &self,
        s: &Self::Scope,
        pairs: &mut [(&str, Bytes)],
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<()>> + Send {
        self.traced(s, Op::Mset, None, no_hit, move || {
            self.inner.mset(&s.inner, pairs, ttl)
        })
    }

    #[inline]
    fn mdel(&self, s: &Self::Scope, keys: &[&str]) -> impl Future<Output = Result<u64>> + Send {
        self.traced(s, Op::Mdel, None, no_hit, move || {
            self.inner.mdel(&s.inner, keys)
        })
    }

    /// One span for the whole listing, entered while a page is fetched; counted once, when
    /// the listing ends (with its first error, or exhausted), not when it is dropped early.
    fn scan(
        &self,
        s: &Self::Scope,
        pattern: &Pattern,
    ) -> impl Stream<Item = Result<Vec<String>>> + Send + 'static {
        let observer = if observed() {
            self.observer(&s.namespace, s.meters(), Op::Scan, None, no_hit)
        } else {
            None
        };
        TracedStream {
            pages: self.inner.scan(&s.inner, pattern),
            observer: observer.map(Box::new),
        }
    }

    #[inline]
    fn clear(&self, s: &Self::Scope) -> impl Future<Output = Result<u64>> + Send {
        self.traced(s, Op::Clear, None, no_hit, move || {
            self.inner.clear(&s.inner)
        })
    }

    /// Like [`scan`](Driver::scan): one span for the whole listing, with no `db.namespace`;
    /// its metrics carry an empty `namespace` label.
    fn namespaces(&self) -> impl Stream<Item = Result<NamespaceInfo>> + Send + 'static {
        let observer = if observed() {
            self.observer("", self.listing(), Op::Namespaces, None, no_hit)
        } else {
            None
        };
        TracedStream {
            pages: self.inner.namespaces(),
            observer: observer.map(Box::new),
        }
    }
}

pin_project_lite::pin_project! {
    /// A listing under its span: entered while each item is fetched, recorded when the
    /// listing ends.
    pub(crate) struct TracedStream<S> {
        #[pin]
        pages: S,
        observer: Option<Box<Observer<()>>>,
    }
}

impl<I, S: Stream<Item = Result<I>>> Stream for TracedStream<S> {
    type Item = Result<I>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<I>>> {
        let this = self.project();
        let Some(observer) = this.observer else {
            return this.pages.poll_next(cx);
        };
        let polled = observer.span.in_scope(|| this.pages.poll_next(cx));
        match &polled {
            Poll::Ready(None) => observer.finish(Ok(&())),
            Poll::Ready(Some(Err(error))) => observer.finish(Err(error.kind())),
            _ => return polled,
        }
        *this.observer = None;
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.pages.size_hint()
    }
}
