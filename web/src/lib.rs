//! namestore in tower and axum services, on any namestore driver (memory, redb, Redis,
//! Redis Cluster):
//!
//! - [`SessionStore`]: a [`tower_sessions`](https://docs.rs/tower-sessions) session store.
//!   Records are MessagePack (what other tower-sessions stores write) in a namespace of
//!   your choosing, each keyed by the SHA-256 of its id (never the id, a credential), each
//!   session's expiry is its key's TTL; `create` never overwrites another session on an id
//!   collision, and `save` never brings back a session deleted meanwhile.
//! - [`RateLimitLayer`]: a tower layer applying a
//!   [`namestore::rate_limit::RateLimiter`] to requests: `429 Too Many Requests` with
//!   `Retry-After`, and the `RateLimit` / `RateLimit-Policy` fields of the IETF draft on
//!   every limited response. Instances of a service sharing a store share the limit.
//! - [`Sha256Key`]: a credential (an API key) as a namestore key, stored as its SHA-256
//!   digest, so that no listing, error or trace of the store shows it.
//! - [`client_network`](fn@client_network): a client's address as a rate limit key: an IPv6
//!   address as its /64 (a host may take any address of its /64; another prefix with
//!   [`client_network_with_prefix`]), one that carries an IPv4 address (IPv4-mapped, NAT64,
//!   6to4, Teredo) as that IPv4 address.
//!
//! Locks need nothing web-specific: [`namestore::lock::Lock`].
//!
//! The crate's `examples/service` is an axum service with all three:
//! `cargo run -p namestore-web --example service`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client_network;
mod rate_limit;
mod session_store;
mod sha256_key;

pub use client_network::{client_network, client_network_with_prefix};
pub use rate_limit::{OnStoreError, RateLimit, RateLimitLayer};
pub use session_store::{SessionKey, SessionStore};
pub use sha256_key::Sha256Key;
