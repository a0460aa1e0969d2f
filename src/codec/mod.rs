//! Codecs: how a typed namespace turns its values into the bytes it stores, and back
//! (SPEC 11).
//!
//! A [`Codec`] is bound to one value type. The bytes stored are exactly the codec's encoding,
//! with no header of namestore's own, so any other client of the same store reads them with
//! the same codec: a [`Json`] namespace on Redis is plain JSON to `redis-cli`.
//!
//! Four codecs come with namestore, each behind a cargo feature (all on `serde`):
//!
//! | codec | feature | format | choose it for |
//! |---|---|---|---|
//! | [`Json`] | `json` | JSON (`serde_json`) | values other programs and people read: the interop choice |
//! | [`Postcard`] | `postcard` | postcard (`postcard`) | the most compact bytes, read by Rust programs |
//! | [`MessagePack`] | `msgpack` | MessagePack (`rmp-serde`, compact: structs as arrays) | what other Rust session stores write |
//! | [`MessagePackNamed`] | `msgpack` | MessagePack (`rmp-serde`, structs as maps of their field names) | compact bytes other languages read by field name; structs with `skip_serializing_if` |
//!
//! Any other format is a few lines: implement [`Codec`].
//!
//! ```
//! use namestore::{BoxError, Codec};
//!
//! /// A point stored as `x,y`.
//! struct PointCodec;
//!
//! impl Codec for PointCodec {
//!     type Value = (i32, i32);
//!     const NAME: &'static str = "a point";
//!
//!     fn encode(&self, &(x, y): &(i32, i32), out: &mut Vec<u8>) -> Result<(), BoxError> {
//!         out.extend_from_slice(format!("{x},{y}").as_bytes());
//!         Ok(())
//!     }
//!
//!     fn decode(&self, bytes: &[u8]) -> Result<(i32, i32), BoxError> {
//!         let (x, y) = std::str::from_utf8(bytes)?
//!             .split_once(',')
//!             .ok_or("no comma")?;
//!         Ok((x.parse()?, y.parse()?))
//!     }
//! }
//! ```

#[cfg(feature = "postcard")]
mod depth;
#[cfg(any(feature = "json", feature = "msgpack", feature = "postcard"))]
mod faithful;
#[cfg(feature = "json")]
mod json;
#[cfg(feature = "msgpack")]
mod msgpack;
#[cfg(feature = "postcard")]
mod postcard;

#[cfg(feature = "json")]
pub use json::Json;
#[cfg(feature = "msgpack")]
pub use msgpack::{MessagePack, MessagePackNamed};
#[cfg(feature = "postcard")]
pub use postcard::Postcard;

use crate::BoxError;

/// How deep a decoded value may nest, in the codecs that decode recursively: serde_json's own
/// limit. rmp-serde's (1,024) is deeper than a thread's stack holds for a recursive type such
/// as `serde_json::Value` (what a `tower-sessions` record holds): about 1,000 bytes of nested
/// arrays in a stored value aborted the process with a stack overflow on a 2 MiB stack (a
/// debug build), and postcard sets no limit at all.
#[cfg(any(feature = "msgpack", feature = "postcard"))]
const MAX_DEPTH: usize = 128;

/// Turns values of one type into bytes and back: what a
/// [`TypedNamespace`](crate::TypedNamespace) stores.
///
/// `encode` appends to a buffer the namespace provides, and those bytes become the stored
/// value as they are (no copy, no header): other clients read them with the same format.
/// `decode` must accept what `encode` writes and should refuse anything else with an error:
/// the namespace reports it as [`ErrorKind::Decode`](crate::ErrorKind::Decode), naming the
/// key, and leaves the stored value alone.
pub trait Codec: Send + Sync + 'static {
    /// The values this codec stores.
    type Value;

    /// The format's name, for error messages (`"JSON"`).
    const NAME: &'static str;

    /// Appends the encoding of `value` to `out`.
    ///
    /// # Errors
    ///
    /// When the value has no encoding in this format (reported as
    /// [`ErrorKind::Encode`](crate::ErrorKind::Encode); nothing is written).
    fn encode(&self, value: &Self::Value, out: &mut Vec<u8>) -> Result<(), BoxError>;

    /// Builds a value back from stored bytes.
    ///
    /// # Errors
    ///
    /// When `bytes` is not an encoding of a `Value` (reported as
    /// [`ErrorKind::Decode`](crate::ErrorKind::Decode)).
    fn decode(&self, bytes: &[u8]) -> Result<Self::Value, BoxError>;
}

#[cfg(any(feature = "json", feature = "postcard", feature = "msgpack"))]
/// The marker every serde codec carries: which type it is for. `fn() -> T` keeps the codec
/// `Send + Sync` whatever `T` is, as it never holds a `T`.
pub(crate) type ValueType<T> = std::marker::PhantomData<fn() -> T>;

/// Implements the traits a serde codec needs without bounds on `T` (derives would require
/// `T: Clone`, `T: Debug`...).
#[cfg(any(feature = "json", feature = "postcard", feature = "msgpack"))]
macro_rules! codec_type {
    ($name:ident, $shown:literal) => {
        impl<T> $name<T> {
            /// The codec for values of type `T`.
            pub const fn new() -> Self {
                $name(std::marker::PhantomData)
            }
        }

        impl<T> Default for $name<T> {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<T> Copy for $name<T> {}

        impl<T> std::fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}<{}>", $shown, std::any::type_name::<T>())
            }
        }
    };
}

#[cfg(any(feature = "json", feature = "postcard", feature = "msgpack"))]
pub(crate) use codec_type;
