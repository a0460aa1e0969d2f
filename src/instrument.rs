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
//! `namestore::open` applies the layer when the URL asks for it with `telemetry=1`
//! (`memory://?telemetry=1`, `redis://host?telemetry=1`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use tracing::field::Empty;
use tracing::{Instrument, Level, Span};

use crate::driver::Driver;
use crate::glob::Pattern;
use crate::name::{NamespaceInfo, NamespaceName};
use crate::ttl::{Expiry, KeyTtl, Ttl};
use crate::{Error, Result};

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
    fn span(
        &self,
        s: &InstrumentedScope<D::Scope>,
        operation: &'static str,
        key: Option<&str>,
    ) -> Span {
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
}

/// Runs `call` in `span` and records its outcome there; hands back `call` itself when the
/// span is disabled.
///
/// The first check is tracing's global level filter, one relaxed load: with no subscriber (or
/// none at DEBUG) nothing else runs, not even the span's callsite lookup. A traced call is
/// boxed, so the untraced one stays the size of the driver's own future.
#[inline(always)]
fn traced<T, F: Future<Output = Result<T>>>(
    span: impl FnOnce() -> Span,
    hit: fn(&T) -> Option<bool>,
    call: impl FnOnce() -> F,
) -> Traced<F, T> {
    if !tracing::level_enabled!(Level::DEBUG) {
        return Traced::Bare { call: call() };
    }
    let span = span();
    if span.is_disabled() {
        return Traced::Bare { call: call() };
    }
    let recording = Recording {
        call: call(),
        span: span.clone(),
        hit,
    };
    Traced::Spanned {
        call: Box::pin(recording.instrument(span)),
    }
}

fn record<T>(span: &Span, result: &Result<T>, hit: fn(&T) -> Option<bool>) {
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
    }
}

impl<T, F: Future<Output = Result<T>>> Future for Recording<F, T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.project();
        match this.call.poll(cx) {
            Poll::Ready(result) => {
                record(this.span, &result, *this.hit);
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
        Ok(InstrumentedScope {
            inner: self.inner.scope(namespace)?,
            namespace: namespace.to_string().into(),
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
        traced(
            || self.span(s, "set", Some(key)),
            no_hit,
            || self.inner.set(&s.inner, key, value, expiry),
        )
    }

    #[inline]
    fn set_nx(
        &self,
        s: &Self::Scope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<bool>> + Send {
        traced(
            || self.span(s, "set_nx", Some(key)),
            no_hit,
            || self.inner.set_nx(&s.inner, key, value, ttl),
        )
    }

    #[inline]
    fn get(
        &self,
        s: &Self::Scope,
        key: &str,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        traced(
            || self.span(s, "get", Some(key)),
            |v: &Option<Bytes>| Some(v.is_some()),
            || self.inner.get(&s.inner, key),
        )
    }

    #[inline]
    fn exists(&self, s: &Self::Scope, key: &str) -> impl Future<Output = Result<bool>> + Send {
        traced(
            || self.span(s, "exists", Some(key)),
            |hit: &bool| Some(*hit),
            || self.inner.exists(&s.inner, key),
        )
    }

    #[inline]
    fn delete(&self, s: &Self::Scope, key: &str) -> impl Future<Output = Result<bool>> + Send {
        traced(
            || self.span(s, "delete", Some(key)),
            no_hit,
            || self.inner.delete(&s.inner, key),
        )
    }

    #[inline]
    fn ttl(&self, s: &Self::Scope, key: &str) -> impl Future<Output = Result<KeyTtl>> + Send {
        traced(
            || self.span(s, "ttl", Some(key)),
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
        traced(
            || self.span(s, "expire", Some(key)),
            no_hit,
            || self.inner.expire(&s.inner, key, ttl),
        )
    }

    #[inline]
    fn persist(&self, s: &Self::Scope, key: &str) -> impl Future<Output = Result<bool>> + Send {
        traced(
            || self.span(s, "persist", Some(key)),
            no_hit,
            || self.inner.persist(&s.inner, key),
        )
    }

    #[inline]
    fn incr(
        &self,
        s: &Self::Scope,
        key: &str,
        delta: i64,
        ttl_on_create: Option<Ttl>,
    ) -> impl Future<Output = Result<i64>> + Send {
        traced(
            || self.span(s, "incr", Some(key)),
            no_hit,
            || self.inner.incr(&s.inner, key, delta, ttl_on_create),
        )
    }

    #[inline]
    fn get_set(
        &self,
        s: &Self::Scope,
        key: &str,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        traced(
            || self.span(s, "get_set", Some(key)),
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
        traced(
            || self.span(s, "cas", Some(key)),
            no_hit,
            || self.inner.cas(&s.inner, key, expected, new, ttl),
        )
    }

    #[inline]
    fn cad(
        &self,
        s: &Self::Scope,
        key: &str,
        expected: &[u8],
    ) -> impl Future<Output = Result<bool>> + Send {
        traced(
            || self.span(s, "cad", Some(key)),
            no_hit,
            || self.inner.cad(&s.inner, key, expected),
        )
    }

    #[inline]
    fn mget(
        &self,
        s: &Self::Scope,
        keys: &[&str],
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>>> + Send {
        traced(
            || self.span(s, "mget", None),
            no_hit,
            || self.inner.mget(&s.inner, keys),
        )
    }

    #[inline]
    fn mset(
        &self,
        s: &Self::Scope,
        pairs: &mut [(&str, Bytes)],
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<()>> + Send {
        traced(
            || self.span(s, "mset", None),
            no_hit,
            || self.inner.mset(&s.inner, pairs, ttl),
        )
    }

    #[inline]
    fn mdel(&self, s: &Self::Scope, keys: &[&str]) -> impl Future<Output = Result<u64>> + Send {
        traced(
            || self.span(s, "mdel", None),
            no_hit,
            || self.inner.mdel(&s.inner, keys),
        )
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
        traced(
            || self.span(s, "clear", None),
            no_hit,
            || self.inner.clear(&s.inner),
        )
    }

    /// Listings pass through untraced.
    fn namespaces(&self) -> impl Stream<Item = Result<NamespaceInfo>> + Send + 'static {
        self.inner.namespaces()
    }
}

/// The error a store opened with `telemetry=1` reports when the `tracing` feature is off.
#[allow(dead_code)]
pub(crate) fn not_built() -> Error {
    Error::invalid_url("`telemetry=1` needs namestore's `tracing` cargo feature")
}
