//! SPEC 12 through `tracing`: one span per operation with OpenTelemetry's database fields,
//! outcome and error kind; keys only at TRACE, shortened; values and secrets never.
#![cfg(feature = "tracing")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use namestore::{Instrumented, MemoryDriver, Namespace};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

#[path = "support/ready.rs"]
mod support_ready;

use support_ready::ready;

/// One span's fields by name.
type SpanFields = HashMap<String, String>;

/// Every span's fields, in the order the spans were created.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<(Id, SpanFields)>>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = HashMap::new();
        fields.insert("target".to_owned(), attrs.metadata().target().to_owned());
        fields.insert("level".to_owned(), attrs.metadata().level().to_string());
        attrs.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push((id.clone(), fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some((_, fields)) = spans.iter_mut().rev().find(|(span, _)| span == id) {
            values.record(&mut Fields(fields));
        }
    }
}

impl Spans {
    fn take(&self) -> Vec<HashMap<String, String>> {
        self.0.lock().unwrap().drain(..).map(|(_, f)| f).collect()
    }
}

/// Runs `work` with a subscriber that records spans up to `level`.
/// Runs this file's tests one at a time. `tracing` caches each callsite's interest once for
/// the whole process, from the subscribers alive at that moment: a test installing its
/// subscriber while another registered a callsite (`enabled!` for TRACE, say) could leave
/// that callsite's interest as the other test's subscriber wanted it, and a TRACE field went
/// unrecorded (1 run in 300, more on a loaded machine). Serialized, each test's subscriber is
/// the only one while it runs. (A service installs one subscriber, at start.)
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn captured(level: Level, work: impl FnOnce()) -> Vec<HashMap<String, String>> {
    let spans = Spans::default();
    let subscriber = Registry::default()
        .with(spans.clone())
        .with(tracing_subscriber::filter::LevelFilter::from_level(level));
    tracing::subscriber::with_default(subscriber, work);
    spans.take()
}

fn field<'a>(span: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    span.get(name).map(String::as_str)
}

#[test]
fn every_operation_is_a_span_with_the_database_fields() {
    let _serial = serial();
    let ns =
        Namespace::<String, _>::new(Instrumented::new(MemoryDriver::new()), "app", "t").unwrap();
    let spans = captured(Level::DEBUG, || {
        ready(ns.set(&"k".to_owned(), "secret-value-1", None)).unwrap();
        ready(ns.get(&"k".to_owned())).unwrap();
        ready(ns.get(&"absent".to_owned())).unwrap();
        ready(ns.exists(&"k".to_owned())).unwrap();
        ready(ns.incr(&"k".to_owned(), 1)).unwrap_err();
        ready(ns.mset([("a".to_owned(), "secret-value-2")], None)).unwrap();
        ready(ns.mget(["a".to_owned()])).unwrap();
    });
    let ops: Vec<&str> = spans
        .iter()
        .map(|s| field(s, "db.operation.name").unwrap())
        .collect();
    assert_eq!(ops, ["set", "get", "get", "exists", "incr", "mset", "mget"]);
    for span in &spans {
        assert_eq!(field(span, "target"), Some("namestore"));
        assert_eq!(field(span, "level"), Some("DEBUG"));
        assert_eq!(field(span, "db.system.name"), Some("memory"));
        assert_eq!(field(span, "db.namespace"), Some("app:t"));
        let op = field(span, "db.operation.name").unwrap();
        assert_eq!(
            field(span, "otel.name"),
            Some(format!("{op} app:t").as_str())
        );
        assert_eq!(
            field(span, "namestore.key"),
            None,
            "a key recorded below TRACE"
        );
        for value in span.values() {
            assert!(
                !value.contains("secret-value"),
                "a value was recorded: {span:?}"
            );
        }
    }
    assert_eq!(field(&spans[0], "namestore.outcome"), Some("ok"));
    assert_eq!(field(&spans[1], "namestore.hit"), Some("true"));
    assert_eq!(field(&spans[2], "namestore.hit"), Some("false"));
    assert_eq!(field(&spans[3], "namestore.hit"), Some("true"));
    assert_eq!(field(&spans[4], "namestore.outcome"), Some("error"));
    assert_eq!(field(&spans[4], "error.type"), Some("not_an_integer"));
    assert_eq!(field(&spans[0], "error.type"), None);
}

#[test]
fn keys_appear_only_at_trace_and_shortened() {
    let _serial = serial();
    let ns =
        Namespace::<String, _>::new(Instrumented::new(MemoryDriver::new()), "app", "t").unwrap();
    let long = "x".repeat(500);
    let at_info = captured(Level::INFO, || {
        ready(ns.set(&long, "v", None)).unwrap();
    });
    assert!(at_info.is_empty(), "operation spans are DEBUG: {at_info:?}");
    let at_trace = captured(Level::TRACE, || {
        ready(ns.get(&"session-17".to_owned())).unwrap();
        ready(ns.get(&long)).unwrap();
    });
    assert_eq!(field(&at_trace[0], "namestore.key"), Some("session-17"));
    let shown = field(&at_trace[1], "namestore.key").unwrap();
    assert_eq!(shown, format!("{}…", "x".repeat(64)));
}

#[test]
fn open_applies_the_layer_from_the_url() {
    let _serial = serial();
    let store = namestore::open("memory://?max_entries=100&telemetry=1").unwrap();
    let ns = store.namespace::<String>("app", "url").unwrap();
    let spans = captured(Level::DEBUG, || {
        ready(ns.set(&"k".to_owned(), "v", None)).unwrap();
    });
    assert_eq!(spans.len(), 1);
    assert_eq!(field(&spans[0], "db.system.name"), Some("memory"));
    let plain = namestore::open("memory://?telemetry=0").unwrap();
    let ns = plain.namespace::<String>("app", "url").unwrap();
    let spans = captured(Level::TRACE, || {
        ready(ns.set(&"k".to_owned(), "v", None)).unwrap();
    });
    assert!(spans.is_empty());
    let err = namestore::open("memory://?telemetry=yes").unwrap_err();
    assert_eq!(err.kind(), namestore::ErrorKind::InvalidUrl);
    // The driver's own parameters still go to the driver, and are still checked.
    assert!(namestore::open("memory://?telemetry=1&nosuch=1").is_err());
}

#[test]
fn without_a_subscriber_calls_answer_as_the_plain_store() {
    let _serial = serial();
    let ns =
        Namespace::<String, _>::new(Instrumented::new(MemoryDriver::new()), "app", "n").unwrap();
    ready(ns.set(&"k".to_owned(), "v", None)).unwrap();
    assert_eq!(
        ready(ns.get(&"k".to_owned())).unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(ready(ns.incr(&"n".to_owned(), 5)).unwrap(), 5);
}

#[test]
fn listings_are_one_span_each_recorded_when_they_end() {
    let _serial = serial();
    use futures_util::StreamExt;
    use namestore::Driver;

    let store = Instrumented::new(MemoryDriver::new());
    let ns = Namespace::<String, _>::new(store.clone(), "app", "l").unwrap();
    for key in ["a", "b", "c"] {
        ready(ns.set(&key.to_owned(), "v", None)).unwrap();
    }
    let spans = captured(Level::DEBUG, || {
        let mut keys = ready(ns.keys("*")).unwrap();
        keys.sort();
        assert_eq!(keys, ["a", "b", "c"]);
        let listed: Vec<_> = ready(store.namespaces().collect::<Vec<_>>());
        assert_eq!(listed.len(), 1);
    });
    let ops: Vec<&str> = spans
        .iter()
        .map(|s| field(s, "db.operation.name").unwrap())
        .collect();
    assert_eq!(ops, ["scan", "namespaces"]);
    assert_eq!(field(&spans[0], "db.namespace"), Some("app:l"));
    assert_eq!(field(&spans[0], "otel.name"), Some("scan app:l"));
    assert_eq!(field(&spans[0], "namestore.outcome"), Some("ok"));
    assert_eq!(field(&spans[1], "db.namespace"), None);
    assert_eq!(field(&spans[1], "otel.name"), Some("namespaces"));
    assert_eq!(field(&spans[1], "namestore.outcome"), Some("ok"));
}
