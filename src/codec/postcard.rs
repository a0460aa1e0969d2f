//! postcard, the compact binary format.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::depth::Limited;
use super::faithful::{self, Faithful, Rules};
use super::{Codec, MAX_DEPTH, ValueType, codec_type};
use crate::BoxError;

/// postcard (`postcard`): the most compact encoding, for values read by Rust programs (it is
/// not self-describing: reader and writer must agree on the type). Cargo feature `postcard`.
///
/// A value nested over 128 deep (sequences, maps, enums, options and newtypes inside each
/// other) is a decode error, as in JSON and MessagePack: postcard sets no limit of its own,
/// and a recursive type (a tree of `Box`es) decoded from bytes someone else wrote nests as
/// deep as the bytes say, one byte a level, deeper than a thread's stack holds.
///
/// postcard writes a struct's fields by position, so a value with a field left out by
/// `#[serde(skip_serializing_if = …)]`, which would shift the fields after it, is refused
/// ([`ErrorKind::Encode`](crate::ErrorKind::Encode)), as in
/// [`MessagePack`](super::MessagePack#every-field-in-order).
///
/// Types whose `Deserialize` asks the format what comes next (serde's `deserialize_any`)
/// cannot be read from postcard, which never says: untagged, internally and adjacently
/// tagged enums (`#[serde(untagged)]`, `#[serde(tag = …)]`) and `serde_json::Value`. A value
/// of such a type is written, and every read of it is an
/// [`ErrorKind::Decode`](crate::ErrorKind::Decode) (nothing at writing tells those types
/// apart); store them as [`Json`](super::Json) or [`MessagePack`](super::MessagePack).
pub struct Postcard<T>(ValueType<T>);

codec_type!(Postcard, "Postcard");

impl<T: Serialize + DeserializeOwned + 'static> Codec for Postcard<T> {
    type Value = T;
    const NAME: &'static str = "postcard";

    /// Refuses a struct with a field left out (`skip_serializing_if`).
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
        let rules = Rules {
            finite_floats: false,
            some_not_null: false,
            every_field: true,
        };
        let taken = std::mem::take(out);
        faithful::take_skipped();
        *out = postcard::to_extend(&Faithful::new(value, rules), taken).map_err(|error| {
            // postcard's error keeps no message: say which field was refused.
            match faithful::take_skipped() {
                Some(refusal) => BoxError::from(refusal.to_string()),
                None => BoxError::from(error),
            }
        })?;
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, BoxError> {
        // A value must be the whole of the stored bytes: trailing bytes are not an encoding
        // of `T`.
        let mut decoder = postcard::Deserializer::from_bytes(bytes);
        let value = T::deserialize(Limited::new(&mut decoder, MAX_DEPTH))?;
        let rest = decoder.finalize()?;
        if !rest.is_empty() {
            return Err(format!("{} bytes after the value", rest.len()).into());
        }
        Ok(value)
    }
}
