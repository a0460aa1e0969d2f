//! postcard, the compact binary format.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::depth::Limited;
use super::{Codec, MAX_DEPTH, ValueType, codec_type};
use crate::BoxError;

/// postcard (`postcard`): the most compact encoding, for values read by Rust programs (it is
/// not self-describing: reader and writer must agree on the type). Cargo feature `postcard`.
///
/// A value nested over 128 deep (sequences, maps, enums, options and newtypes inside each
/// other) is a decode error, as in JSON and MessagePack: postcard sets no limit of its own,
/// and a recursive type (a tree of `Box`es) decoded from bytes someone else wrote nests as
/// deep as the bytes say, one byte a level, deeper than a thread's stack holds.
pub struct Postcard<T>(ValueType<T>);

codec_type!(Postcard, "Postcard");

impl<T: Serialize + DeserializeOwned + 'static> Codec for Postcard<T> {
    type Value = T;
    const NAME: &'static str = "postcard";

    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
        let taken = std::mem::take(out);
        *out = postcard::to_extend(value, taken)?;
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
