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
///
/// # Every field, in order
///
/// The compact form writes a struct's fields by position, not by name, so a reader takes
/// the first value for the first field, and so on. A field left out by
/// `#[serde(skip_serializing_if = …)]` would shift the fields after it, which would then be
/// read into the wrong fields, silently when their types accept each other's values (an
/// `Option<u32>` left out before a `u32`). A value with a field so left out is refused
/// ([`ErrorKind::Encode`](crate::ErrorKind::Encode), naming the field) and nothing is
/// written; store a type with `skip_serializing_if` as [`MessagePackNamed`] or
/// [`Json`](super::Json), which name their fields. A field never written
/// (`#[serde(skip_serializing)]`) gives no such sign to the serializer: skip it on both sides
/// (`#[serde(skip)]`), or not at all. Nor does an adjacently tagged enum
/// (`#[serde(tag = …, content = …)]`) whose variant has named fields: serde reads its content
/// back from a map only, so such a value is written and every read of it is an
/// [`ErrorKind::Decode`](crate::ErrorKind::Decode); store it as [`MessagePackNamed`] or
/// [`Json`](super::Json).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> namestore::Result<()> {
/// use namestore::ErrorKind;
/// use namestore::codec::MessagePack;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Profile {
///     #[serde(skip_serializing_if = "Option::is_none")]
///     nickname: Option<u32>,
///     age: u32,
/// }
///
/// let store = namestore::MemoryDriver::new();
/// let profiles = store
///     .namespace::<String>("app", "profiles")?
///     .with_codec(MessagePack::<Profile>::new());
/// let nameless = Profile { nickname: None, age: 7 };
/// let refused = profiles.set(&"ada".to_owned(), &nameless, None).await.unwrap_err();
/// assert_eq!(refused.kind(), ErrorKind::Encode);
/// # Ok(()) }
/// ```
pub struct MessagePack<T>(ValueType<T>);

codec_type!(MessagePack, "MessagePack");

impl<T: Serialize + DeserializeOwned + 'static> Codec for MessagePack<T> {
    type Value = T;
    const NAME: &'static str = "MessagePack";

    /// Refuses a `Some` of a value written as `nil` (`Some(None)`, `Some(())`), which would
    /// read back as `None`, and a struct with a field left out (`skip_serializing_if`).
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
        encode(value, out, Form::Compact)
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, BoxError> {
        decode(bytes)
    }
}

/// MessagePack (`rmp-serde`) in its named form: a struct is a map from its fields' names to
/// their values, as `rmp_serde::to_vec_named` writes it. Larger than [`MessagePack`]'s compact
/// form by the names, and read by name: a field left out by
/// `#[serde(skip_serializing_if = …)]` is simply absent (serde reads an absent `Option` as
/// `None`, and an absent field with `#[serde(default)]` as its default), an adjacently tagged
/// enum reads back, and a program in another language finds fields by name. Reads the
/// compact form too, so a namespace [`MessagePack`] wrote can move to it. A `Some` of a value
/// written as `nil` is refused, as by [`MessagePack`]. Cargo feature `msgpack`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> namestore::Result<()> {
/// use namestore::codec::MessagePackNamed;
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Profile {
///     #[serde(skip_serializing_if = "Option::is_none")]
///     nickname: Option<String>,
///     age: u32,
/// }
///
/// let store = namestore::MemoryDriver::new();
/// let profiles = store
///     .namespace::<String>("app", "profiles")?
///     .with_codec(MessagePackNamed::<Profile>::new());
/// let nameless = Profile { nickname: None, age: 7 };
/// profiles.set(&"ada".to_owned(), &nameless, None).await?;
/// assert_eq!(profiles.get(&"ada".to_owned()).await?, Some(nameless));
/// // A map of one entry: "age" → 7.
/// let raw = profiles.bytes().get(&"ada".to_owned()).await?.unwrap();
/// assert_eq!(&raw[..], b"\x81\xa3age\x07");
/// # Ok(()) }
/// ```
pub struct MessagePackNamed<T>(ValueType<T>);

codec_type!(MessagePackNamed, "MessagePackNamed");

impl<T: Serialize + DeserializeOwned + 'static> Codec for MessagePackNamed<T> {
    type Value = T;
    const NAME: &'static str = "MessagePack";

    /// Refuses a `Some` of a value written as `nil` (`Some(None)`, `Some(())`), which would
    /// read back as `None`.
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
        encode(value, out, Form::Named)
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, BoxError> {
        decode(bytes)
    }
}

/// How a struct is written.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    /// An array of its fields: every field must be written.
    Compact,
    /// A map of its fields' names to their values.
    Named,
}

/// Writes `value` in `form`, refusing what would not read back as written.
fn encode<T: Serialize>(value: &T, out: &mut Vec<u8>, form: Form) -> Result<(), BoxError> {
    let rules = Rules {
        finite_floats: false,
        some_not_null: true,
        every_field: form == Form::Compact,
    };
    let value = Faithful::new(value, rules);
    match form {
        Form::Compact => rmp_serde::encode::write(out, &value)?,
        Form::Named => rmp_serde::encode::write_named(out, &value)?,
    }
    Ok(())
}

/// Reads a value in either form, refusing nesting past [`MAX_DEPTH`] and bytes after it.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BoxError> {
    let mut read = bytes;
    let mut decoder = rmp_serde::Deserializer::new(&mut read);
    decoder.set_max_depth(MAX_DEPTH);
    let value = T::deserialize(&mut decoder)?;
    if !read.is_empty() {
        return Err(format!("{} bytes after the value", read.len()).into());
    }
    Ok(value)
}
