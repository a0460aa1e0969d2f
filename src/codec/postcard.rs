//! postcard, the compact binary format.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Codec, ValueType, codec_type};
use crate::BoxError;

/// postcard (`postcard`): the most compact encoding, for values read by Rust programs (it is
/// not self-describing: reader and writer must agree on the type). Cargo feature `postcard`.
///
/// postcard sets no limit on nesting: a recursive type (a tree of `Box`es) decoded from bytes
/// someone else wrote nests as deep as the bytes say, one byte a level, and 100,000 levels
/// overflowed a 2 MiB thread stack in a test here (a debug build), which aborts the process.
/// Keep postcard for types that do not recurse, or for values only your program writes;
/// [`Json`](super::Json) and [`MessagePack`](super::MessagePack) refuse nesting over 128 deep
/// with a decode error.
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
        let (value, rest) = postcard::take_from_bytes(bytes)?;
        if !rest.is_empty() {
            return Err(format!("{} bytes after the value", rest.len()).into());
        }
        Ok(value)
    }
}
