//! The drivers that ship with namestore, one module each.

pub mod memory;

#[cfg(feature = "redis")]
pub mod redis;

#[cfg(feature = "redb")]
pub mod redb;
