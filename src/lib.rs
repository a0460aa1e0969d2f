#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod any;
mod at_once;
pub mod codec;
pub mod counter;
mod driver;
pub mod drivers;
mod error;
mod eviction;
mod glob;
#[cfg(feature = "tracing")]
pub mod instrument;
mod key;
pub mod load;
pub mod lock;
mod name;
mod namespace;
mod open;
mod query;
pub mod rate_limit;
mod size;
mod ttl;
mod typed;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use any::{AnyDriver, AnyScope, BoxFuture, PageStream};
pub use codec::Codec;
pub use driver::Driver;
pub use drivers::memory::MemoryDriver;
pub use error::{BoxError, Error, ErrorKind, Result};
pub use eviction::Eviction;
pub use glob::Pattern;
#[cfg(feature = "tracing")]
pub use instrument::Instrumented;
pub use key::{Key, KeyBuf, MAX_KEY_LEN};
pub use name::{MAX_NAME_LEN, NamespaceInfo, NamespaceName};
pub use namespace::{KeyStream, MAX_VALUE_LEN, Namespace};
pub use open::open;
pub use ttl::{Expiry, KeyTtl, Ttl};
pub use typed::TypedNamespace;

/// Re-exported so drivers and callers name the same `Bytes`.
pub use bytes::Bytes;
