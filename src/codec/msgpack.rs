//! MessagePack, with `rmp-serde`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::faithful::{Faithful, Rules};
use super::{Codec, MAX_DEPTH, ValueType, codec_type};
use crate::BoxError;

/// MessagePack (`rmp-serde`), in its compact form: a struct is an array of its fields, as
/// `rmp_serde::to_vec` writes it (what other Rust session stores write). Reads the named
/// form (structs as maps) too. Arrays and maps nested over 128 deep are a decode error, as
/// in JSON (`serde_json`'s limit), not a stack overflow. A `Some` of a value written as `nil`
/// (`Some(None)` of an `Option<Option<T>>`), which would read back as `None`, is refused
/// ([`ErrorKind::Encode`](crate::ErrorKind::Encode)). Cargo feature `msgpack`.
pub struct MessagePack<T>(ValueType<T>);

codec_type!(MessagePack, "MessagePack");

impl<T: Serialize + DeserializeOwned + 'static> Codec for MessagePack<T> {
    type Value = T;
    const NAME: &'static str = "MessagePack";

    /// Refuses a `Some` of a value written as `nil` (`Some(None)`, `Some(())`), which would
    /// read back as `None`.
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
        let rules = Rules {
            finite_floats: false,
        };
        Ok(rmp_serde::encode::write(out, &Faithful::new(value, rules))?)
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, BoxError> {
        let mut read = bytes;
        let mut decoder = rmp_serde::Deserializer::new(&mut read);
        decoder.set_max_depth(MAX_DEPTH);
        let value = T::deserialize(&mut decoder)?;
        if !read.is_empty() {
            return Err(format!("{} bytes after the value", read.len()).into());
        }
        Ok(value)
    }
}
