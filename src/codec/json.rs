//! JSON, with `serde_json`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::faithful::{Faithful, Rules};
use super::{Codec, ValueType, codec_type};
use crate::BoxError;

/// JSON (`serde_json`): values any other client reads, `redis-cli` included. Cargo feature
/// `json`.
///
/// A value reads back as it was written: one holding a NaN or an infinity, which JSON has no
/// form for, is refused ([`ErrorKind::Encode`](crate::ErrorKind::Encode); `serde_json` would
/// write `null`), as is a `Some` of a value written as `null` (`Some(None)` of an
/// `Option<Option<T>>`, which would read back as `None`); floats are parsed exactly
/// (`serde_json`'s `float_roundtrip` feature, which namestore turns on).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> namestore::Result<()> {
/// use namestore::codec::Json;
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Flag { on: bool }
///
/// let store = namestore::MemoryDriver::new();
/// let flags = store.namespace::<String>("app", "flags")?.with_codec(Json::<Flag>::new());
/// flags.set(&"beta".to_owned(), &Flag { on: true }, None).await?;
/// // The stored bytes are plain JSON.
/// let raw = flags.bytes().get(&"beta".to_owned()).await?.unwrap();
/// assert_eq!(&raw[..], br#"{"on":true}"#);
/// # Ok(()) }
/// ```
pub struct Json<T>(ValueType<T>);

codec_type!(Json, "Json");

impl<T: Serialize + DeserializeOwned + 'static> Codec for Json<T> {
    type Value = T;
    const NAME: &'static str = "JSON";

    /// Refuses a value that would not read back as written: one holding a NaN or an
    /// infinity, which JSON has no form for (`serde_json` writes `null`), or a `Some` of a
    /// value written as `null` (`Some(None)`, `Some(())`: read back as `None`).
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
        let rules = Rules {
            finite_floats: true,
            some_not_null: true,
            every_field: false,
        };
        Ok(serde_json::to_writer(out, &Faithful::new(value, rules))?)
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, BoxError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}
