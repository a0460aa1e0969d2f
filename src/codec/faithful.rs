//! A serde adapter that refuses values a format writes in a form that reads back as another
//! value, for the JSON, MessagePack and postcard codecs:
//!
//! - in JSON, a NaN or an infinity, which `serde_json` writes as `null` (a decode error for an
//!   `f64`, `None` for `Some(f64::NAN)`);
//! - in JSON and MessagePack, a `Some` of a value written as null (`nil`): `Some(None)` and
//!   `Some(())` are written as `None` is, and read back as `None`;
//! - in the formats that write a struct's fields by position (MessagePack's compact form,
//!   postcard), a field left out by `#[serde(skip_serializing_if = …)]`: the fields after it
//!   would be read one place early, into the wrong fields (silently, when their types accept
//!   each other's values).
//!
//! [`Faithful`] wraps a value, and serializing it wraps the serializer, and every sequence,
//! map, struct and element below it, so that the whole value is checked on its way out;
//! everything else is handed on as it is.

use std::cell::Cell;
use std::fmt;

use serde::ser::{
    self, Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant,
    SerializeTuple, SerializeTupleStruct, SerializeTupleVariant, Serializer,
};

/// The message of a refused float.
const NOT_FINITE: &str = "JSON holds no NaN or infinity (serde_json would write `null`, which does not read back as the value written)";
/// The message of a refused `Some`.
const NULL_IN_SOME: &str = "`Some` of a value written as null (`Some(None)`, `Some(())`) is written as `None` is, and would read back as `None`";

/// Fails a field left out of a struct whose fields the format writes by position.
fn not_skipped<E: ser::Error>(rules: Rules, field: &'static str) -> Result<(), E> {
    if rules.every_field {
        SKIPPED.set(Some(field));
        return Err(E::custom(SkippedField(field)));
    }
    Ok(())
}

thread_local! {
    /// The field [`not_skipped`] last refused on this thread: postcard's error type keeps no
    /// message of its own (`Serde Serialization Error`).
    static SKIPPED: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// The refusal of a field left out, for a format whose error drops the message: the field
/// [`not_skipped`] refused on this thread since the last call, if any.
#[cfg(feature = "postcard")]
pub(super) fn take_skipped() -> Option<SkippedField> {
    SKIPPED.take().map(SkippedField)
}

/// A field left out of a struct whose fields the format writes by position.
pub(super) struct SkippedField(&'static str);

impl fmt::Display for SkippedField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "field `{}` is left out (`skip_serializing_if`), and this format writes a \
             struct's fields by position: the fields after it would be read into the wrong \
             places. Write every field (drop `skip_serializing_if`), or use a codec that \
             names fields (Json, MessagePackNamed)",
            self.0
        )
    }
}

/// What is checked.
#[derive(Clone, Copy)]
pub(super) struct Rules {
    /// Refuse NaN and the infinities (JSON).
    pub(super) finite_floats: bool,
    /// Refuse a `Some` of a value written as null (JSON, MessagePack).
    pub(super) some_not_null: bool,
    /// Refuse a struct field left out (MessagePack's compact form, postcard).
    pub(super) every_field: bool,
}

/// A value checked as it is serialized.
pub(super) struct Faithful<'a, T: ?Sized> {
    value: &'a T,
    rules: Rules,
    /// The value is a `Some`'s: it may not be written as null.
    in_some: bool,
}

impl<'a, T: ?Sized> Faithful<'a, T> {
    pub(super) fn new(value: &'a T, rules: Rules) -> Self {
        Faithful {
            value,
            rules,
            in_some: false,
        }
    }
}

impl<T: Serialize + ?Sized> Serialize for Faithful<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Checked {
            inner: serializer,
            rules: self.rules,
            in_some: self.in_some,
        })
    }
}

/// A serializer, or one of its compound serializers, that checks what it is given.
struct Checked<S> {
    inner: S,
    rules: Rules,
    in_some: bool,
}

impl<S> Checked<S> {
    /// `value`, below this serializer: in a `Some` if `in_some`.
    fn below<'a, T: ?Sized>(&self, value: &'a T, in_some: bool) -> Faithful<'a, T> {
        Faithful {
            value,
            rules: self.rules,
            in_some,
        }
    }

    /// A compound serializer under `rules`.
    fn compound(inner: S, rules: Rules) -> Self {
        Checked {
            inner,
            rules,
            in_some: false,
        }
    }

    /// Fails a value written as null in a `Some`.
    fn not_null<E: ser::Error>(&self) -> Result<(), E> {
        if self.rules.some_not_null && self.in_some {
            return Err(E::custom(NULL_IN_SOME));
        }
        Ok(())
    }

    /// Fails a float the rules refuse.
    fn float<E: ser::Error>(&self, finite: bool) -> Result<(), E> {
        if self.rules.finite_floats && !finite {
            return Err(E::custom(NOT_FINITE));
        }
        Ok(())
    }
}

/// Serializer methods handed on as they are.
macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> {
            self.inner.$method($($arg),*)
        }
    )*};
}

impl<S: Serializer> Serializer for Checked<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Checked<S::SerializeSeq>;
    type SerializeTuple = Checked<S::SerializeTuple>;
    type SerializeTupleStruct = Checked<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Checked<S::SerializeTupleVariant>;
    type SerializeMap = Checked<S::SerializeMap>;
    type SerializeStruct = Checked<S::SerializeStruct>;
    type SerializeStructVariant = Checked<S::SerializeStructVariant>;

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        self.float(v.is_finite())?;
        self.inner.serialize_f32(v)
    }

    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        self.float(v.is_finite())?;
        self.inner.serialize_f64(v)
    }

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.not_null()?;
        self.inner.serialize_none()
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.not_null()?;
        self.inner.serialize_unit()
    }

    fn serialize_unit_struct(self, name: &'static str) -> Result<S::Ok, S::Error> {
        self.not_null()?;
        self.inner.serialize_unit_struct(name)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let value = self.below(value, true);
        self.inner.serialize_some(&value)
    }

    /// A newtype is written as what it wraps, so what it wraps may not be null in a `Some`
    /// either.
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let value = self.below(value, self.in_some);
        self.inner.serialize_newtype_struct(name, &value)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let value = self.below(value, false);
        self.inner
            .serialize_newtype_variant(name, index, variant, &value)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let rules = self.rules;
        self.inner
            .serialize_seq(len)
            .map(|inner| Checked::compound(inner, rules))
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let rules = self.rules;
        self.inner
            .serialize_tuple(len)
            .map(|inner| Checked::compound(inner, rules))
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let rules = self.rules;
        self.inner
            .serialize_tuple_struct(name, len)
            .map(|inner| Checked::compound(inner, rules))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let rules = self.rules;
        self.inner
            .serialize_tuple_variant(name, index, variant, len)
            .map(|inner| Checked::compound(inner, rules))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let rules = self.rules;
        self.inner
            .serialize_map(len)
            .map(|inner| Checked::compound(inner, rules))
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let rules = self.rules;
        self.inner
            .serialize_struct(name, len)
            .map(|inner| Checked::compound(inner, rules))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let rules = self.rules;
        self.inner
            .serialize_struct_variant(name, index, variant, len)
            .map(|inner| Checked::compound(inner, rules))
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// Compound serializers: each element, field, key and value checked.
macro_rules! compound {
    ($($trait:ident { $($method:ident($($name:ident: $ty:ty),*);)* } $({ $($skip:tt)* })?)*) => {$(
        impl<S: $trait> $trait for Checked<S> {
            type Ok = S::Ok;
            type Error = S::Error;

            $(
                fn $method<T: Serialize + ?Sized>(
                    &mut self,
                    $($name: $ty,)*
                    value: &T,
                ) -> Result<(), S::Error> {
                    let value = self.below(value, false);
                    self.inner.$method($($name,)* &value)
                }
            )*

            $($($skip)*)?

            fn end(self) -> Result<S::Ok, S::Error> {
                self.inner.end()
            }
        }
    )*};
}

compound! {
    SerializeSeq { serialize_element(); }
    SerializeTuple { serialize_element(); }
    SerializeTupleStruct { serialize_field(); }
    SerializeTupleVariant { serialize_field(); }
    SerializeMap { serialize_key(); serialize_value(); }
    SerializeStruct { serialize_field(key: &'static str); } {
        fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
            not_skipped(self.rules, key)?;
            self.inner.skip_field(key)
        }
    }
    SerializeStructVariant { serialize_field(key: &'static str); } {
        fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
            not_skipped(self.rules, key)?;
            self.inner.skip_field(key)
        }
    }
}
