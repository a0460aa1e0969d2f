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
use tracing::{Instrument, Level, Span};

use crate::Result;
use crate::driver::Driver;
use crate::glob::Pattern;
use crate::name::{NamespaceInfo, NamespaceName};
use crate::ttl::{Expiry, KeyTtl, Ttl};

/// The operations the layer observes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Set,
    SetNx,
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
}

impl Op {
    #[cfg(feature = "metrics")]
    pub(crate) const COUNT: usize = Op::Clear as usize + 1;

    /// The driver operation's name, as `db.operation.name` and the `operation` label.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Set => "set",
            Op::SetNx => "set_nx",
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
        }
    }
}

/// What a call measured for metrics: the namespace's keys, the operation, when it started.
#[cfg(feature = "metrics")]
type Meter = (Arc<meter::Meters>, Op, Instant);
#[cfg(not(feature = "metrics"))]
type Meter = std::convert::Infallible;

/// A driver whose every operation is traced; see the [module](self) for the fields.
///
/// ```
/// # async fn run() -> namestore::Result<()> {
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
}

impl<D: Driver> Instrumented<D> {
    /// Wraps `inner`.
    pub fn new(inner: D) -> Self {
        Instrumented { inner }
    }

    /// The wrapped driver.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The span of one operation, or a disabled span when nobody listens.
    #[cold]
    #[inline(never)]
    fn span(&self, s: &InstrumentedScope<D::Scope>, op: Op, key: Option<&str>) -> Span {
        let operation = op.name();
        let span = tracing::debug_span!(
            target: "namestore",
            "namestore",
            "db.system.name" = self.inner.system_name(),
            "db.operation.name" = operation,
            "db.namespace" = &*s.namespace,
            "otel.name" = Empty,
            "namestore.outcome" = Empty,
            "error.type" = Empty,
            "namestore.hit" = Empty,
            "namestore.key" = Empty,
        );
        if !span.is_disabled() {
            span.record(
                "otel.name",
                tracing::field::display(format_args!("{operation} {}", s.namespace)),
            );
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
    /// recorder is installed. An observed call is boxed, so an unobserved one stays the size
    /// of the driver's own future.
    #[inline(always)]
    fn traced<T, F: Future<Output = Result<T>>>(
        &self,
        s: &InstrumentedScope<D::Scope>,
        op: Op,
        key: Option<&str>,
        hit: fn(&T) -> Option<bool>,
        call: impl FnOnce() -> F,
    ) -> Traced<F, T> {
        let span = if tracing::level_enabled!(Level::DEBUG) {
            self.span(s, op, key)
        } else {
            Span::none()
        };
        #[cfg(feature = "metrics")]
        let meter: Option<Meter> =
            meter::recorder_listens().then(|| (Arc::clone(&s.meters), op, Instant::now()));
        #[cfg(not(feature = "metrics"))]
        let meter: Option<Meter> = None;
        if span.is_disabled() && meter.is_none() {
            return Traced::Bare { call: call() };
        }
        let recording = Recording {
            call: call(),
            span: span.clone(),
            hit,
            meter,
        };
        Traced::Spanned {
            call: Box::pin(recording.instrument(span)),
        }
    }
}

fn record<T>(span: &Span, result: &Result<T>, hit: fn(&T) -> Option<bool>) {
    if span.is_disabled() {
        return;
    }
    match result {
        Ok(value) => {
            span.record("namestore.outcome", "ok");
            if let Some(hit) = hit(value) {
                span.record("namestore.hit", hit);
            }
        }
        Err(error) => {
            span.record("namestore.outcome", "error");
            span.record("error.type", error.kind().name());
        }
    }
}

fn no_hit<T>(_: &T) -> Option<bool> {
    None
}

pin_project_lite::pin_project! {
    /// A call that records its outcome in its span when it completes.
    pub(crate) struct Recording<F, T> {
        #[pin]
        call: F,
        span: Span,
        hit: fn(&T) -> Option<bool>,
        meter: Option<Meter>,
    }
}

impl<T, F: Future<Output = Result<T>>> Future for Recording<F, T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.project();
        match this.call.poll(cx) {
            Poll::Ready(result) => {
                record(this.span, &result, *this.hit);
                #[cfg(feature = "metrics")]
                if let Some((meters, op, started)) = this.meter.take() {
                    meters.record(op, &result, *this.hit, started.elapsed());
                }
                Poll::Ready(result)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of an instrumented call: the driver's own, or it inside its span (boxed).
    #[project = TracedProj]
    pub(crate) enum Traced<F, T> {
        Bare { #[pin] call: F },
        Spanned { call: Pin<Box<tracing::instrument::Instrumented<Recording<F, T>>>> },
    }
}

impl<T, F: Future<Output = Result<T>>> Future for Traced<F, T> {
    type Output = Result<T>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        match self.project() {
            TracedProj::Bare { call } => call.poll(cx),
            TracedProj::Spanned { call } => call.as_mut().poll(cx),
        }
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

impl<D: Driver> Driver for Instrumented<D> {
    type Scope = InstrumentedScope<D::Scope>;

    #[inline]
    fn answers_at_once(&self) -> bool {
        self.inner.answers_at_once()
    }

    fn system_name(&self) -> &'static str {
        self.inner.system_name()
    }

    fn scope(&self, namespace: &NamespaceName) -> Result<Self::Scope> {
        let name = namespace.to_string();
        Ok(InstrumentedScope {
            inner: self.inner.scope(namespace)?,
            #[cfg(feature = "metrics")]
            meters: Arc::new(meter::Meters::new(&name, self.inner.system_name())),
            namespace: name.into(),
        })
    }

    #[inline]
    fn set(
        &self,
        s: &Self::Scope,
        key: &str,
        value: Bytes,
        expiry: Expiry,
    ) -> impl Future<Output = Result<()>> + Send {
        self.traced(s, Op::Set, Some(key), no_hit, || {
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
        self.traced(s, Op::SetNx, Some(key), no_hit, || {
            self.inner.set_nx(&s.inner, key, value, ttl)
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
            || self.inner.get(&s.inner, key),
        )
    }

    #[inline]
    fn exists(&self, s: &Self::Scope, key: &str) -> impl Future<Output = Result<bool>> + Send {
        self.traced(
            s,
            Op::Exists,
            Some(key),
            |hit: &bool| Some(*hit),
            || self.inner.exists(&s.inner, key),
        )
    }

    #[inline]
    fn delete(&self, s: &Self::Scope, key: &str) -> impl Future<Output = Result<bool>> + Send {
        self.traced(s, Op::Delete, Some(key), no_hit, || {
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
            || self.inner.ttl(&s.inner, key),
        )
    }

    #[inline]
    fn expire(
        &self,
        s: &Self::Scope,
        key: &str,
        ttl: Ttl,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.traced(s, Op::Expire, Some(key), no_hit, || {
            self.inner.expire(&s.inner, key, ttl)
        })
    }

    #[inline]
    fn persist(&self, s: &Self::Scope, key: &str) -> impl Future<Output = Result<bool>> + Send {
        self.traced(s, Op::Persist, Some(key), no_hit, || {
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
        self.traced(s, Op::Incr, Some(key), no_hit, || {
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
            || self.inner.get_set(&s.inner, key, value, ttl),
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
        self.traced(s, Op::Cas, Some(key), no_hit, || {
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
        self.traced(s, Op::Cad, Some(key), no_hit, || {
            self.inner.cad(&s.inner, key, expected)
        })
    }

    #[inline]
    fn mget(
        &self,
        s: &Self::Scope,
        keys: &[&str],
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>>> + Send {
        self.traced(s, Op::Mget, None, no_hit, || {
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
        self.traced(s, Op::Mset, None, no_hit, || {
            self.inner.mset(&s.inner, pairs, ttl)
        })
    }

    #[inline]
    fn mdel(&self, s: &Self::Scope, keys: &[&str]) -> impl Future<Output = Result<u64>> + Send {
        self.traced(s, Op::Mdel, None, no_hit, || {
            self.inner.mdel(&s.inner, keys)
        })
    }

    /// Listings pass through untraced.
    fn scan(
        &self,
        s: &Self::Scope,
        pattern: &Pattern,
    ) -> impl Stream<Item = Result<Vec<String>>> + Send + 'static {
        self.inner.scan(&s.inner, pattern)
    }

    #[inline]
    fn clear(&self, s: &Self::Scope) -> impl Future<Output = Result<u64>> + Send {
        self.traced(s, Op::Clear, None, no_hit, || self.inner.clear(&s.inner))
    }

    /// Listings pass through untraced.
    fn namespaces(&self) -> impl Stream<Item = Result<NamespaceInfo>> + Send + 'static {
        self.inner.namespaces()
    }
}
