//! Hostile bytes for every codec: whatever a namespace holds, a typed read answers a value or
//! `ErrorKind::Decode`, never panics, and leaves the stored bytes as they were (SPEC 11.2).

use namestore::codec::{Json, MessagePack, MessagePackNamed, Postcard};
use namestore::{Codec, ErrorKind, MemoryDriver, Namespace};
use proptest::prelude::*;

#[path = "support/ready.rs"]
mod support_ready;

use support_ready::ready;

type Record = (String, u64, Option<Vec<i32>>, bool);

fn read_back<C: Codec>(bytes: &Namespace<String, MemoryDriver>, codec: C, stored: &[u8]) {
    let key = "k".to_owned();
    ready(bytes.set(&key, stored.to_vec(), None)).unwrap();
    let typed = bytes.clone().with_codec(codec);
    if let Err(err) = ready(typed.get(&key)) {
        assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
        assert_eq!(err.key(), Some("k"));
    }
    assert_eq!(
        ready(bytes.get(&key)).unwrap().as_deref(),
        Some(stored),
        "a read changed the stored bytes"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_stored_bytes_decode_or_fail_cleanly(stored in prop::collection::vec(any::<u8>(), 0..96)) {
        let bytes = MemoryDriver::new().namespace::<String>("hostile", "codecs").unwrap();
        read_back(&bytes, Json::<Record>::new(), &stored);
        read_back(&bytes, Postcard::<Record>::new(), &stored);
        read_back(&bytes, MessagePack::<Record>::new(), &stored);
        read_back(&bytes, MessagePackNamed::<Record>::new(), &stored);
    }

    #[test]
    fn every_codec_round_trips_any_record(
        name in ".{0,40}",
        n in any::<u64>(),
        list in prop::option::of(prop::collection::vec(any::<i32>(), 0..20)),
        flag in any::<bool>(),
    ) {
        let record: Record = (name, n, list, flag);
        let key = "r".to_owned();
        let bytes = MemoryDriver::new().namespace::<String>("round", "trip").unwrap();
        let json = bytes.clone().with_codec(Json::<Record>::new());
        ready(json.set(&key, &record, None)).unwrap();
        prop_assert_eq!(ready(json.get(&key)).unwrap(), Some(record.clone()));
        let postcard = bytes.clone().with_codec(Postcard::<Record>::new());
        ready(postcard.set(&key, &record, None)).unwrap();
        prop_assert_eq!(ready(postcard.get(&key)).unwrap(), Some(record.clone()));
        let msgpack = bytes.clone().with_codec(MessagePack::<Record>::new());
        ready(msgpack.set(&key, &record, None)).unwrap();
        prop_assert_eq!(ready(msgpack.get(&key)).unwrap(), Some(record.clone()));
        let named = bytes.clone().with_codec(MessagePackNamed::<Record>::new());
        ready(named.set(&key, &record, None)).unwrap();
        prop_assert_eq!(ready(named.get(&key)).unwrap(), Some(record));
    }

    /// What the codecs store is exactly their format's encoding (SPEC 11.1): the checks that
    /// refuse what would not read back (`faithful.rs`) add nothing and leave out nothing,
    /// skipped fields (JSON), floats, enums and maps included.
    #[test]
    fn json_and_msgpack_store_exactly_their_encoding(
        name in prop::option::of(".{0,12}"),
        score in -1e9f64..1e9,
        shape in 0u8..3,
        tags in prop::collection::btree_map(".{0,6}", prop::option::of(any::<i16>()), 0..4),
    ) {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        enum Shape { Dot, Line(u8), Box { w: u8, h: Option<u8> } }
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Item {
            #[serde(skip_serializing_if = "Option::is_none", default)]
            name: Option<String>,
            score: f64,
            shape: Shape,
            tags: std::collections::BTreeMap<String, Option<i16>>,
        }
        let shape = match shape { 0 => Shape::Dot, 1 => Shape::Line(7), _ => Shape::Box { w: 2, h: None } };
        let item = Item { name, score, shape, tags };
        let key = "i".to_owned();
        let bytes = MemoryDriver::new().namespace::<String>("exact", "bytes").unwrap();
        ready(bytes.clone().with_codec(Json::<Item>::new()).set(&key, &item, None)).unwrap();
        prop_assert_eq!(ready(bytes.get(&key)).unwrap().unwrap(), serde_json::to_vec(&item).unwrap());
        // MessagePack writes fields by position and refuses a field left out (a test below).
        let compact = bytes.clone().with_codec(MessagePack::<Item>::new());
        let written = ready(compact.set(&key, &item, None));
        if item.name.is_some() {
            written.unwrap();
            let stored = ready(bytes.get(&key)).unwrap().unwrap();
            prop_assert_eq!(stored, rmp_serde::to_vec(&item).unwrap());
        } else {
            prop_assert_eq!(written.unwrap_err().kind(), ErrorKind::Encode);
        }
        // The named form writes maps, and keeps a field left out.
        let named = bytes.clone().with_codec(MessagePackNamed::<Item>::new());
        ready(named.set(&key, &item, None)).unwrap();
        let stored = ready(bytes.get(&key)).unwrap().unwrap();
        prop_assert_eq!(stored, rmp_serde::to_vec_named(&item).unwrap());
    }
}

/// A value that does not decode is named by its key, not quoted: serde's messages quote the
/// string (or number, or name) they found, whole, and a stored value may be a secret or
/// megabytes long. The error's message and `Debug` show neither; the codec's own error is its
/// `source()`, as it came.
#[test]
fn a_decode_error_does_not_quote_the_value() {
    let bytes = MemoryDriver::new()
        .namespace::<String>("hostile", "secrets")
        .unwrap();
    let key = "session:1".to_owned();
    let secret = format!("token-{}", "s3cr3t".repeat(100_000));
    // `quoted`: whether the codec's own error quotes the value (it is `codec_error`, kept
    // out of the chain of sources that error reporters print).
    fn check(err: namestore::Error, secret: &str, quoted: bool) {
        assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
        assert_eq!(err.key(), Some("session:1"));
        // What a reporter shows (anyhow's `{:?}` and `{:#}`): the error, and every source.
        let mut chain = vec![err.to_string(), format!("{err:?}")];
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            chain.push(cause.to_string());
            source = cause.source();
        }
        for shown in chain {
            assert!(
                !shown.contains("s3cr3t"),
                "{}",
                &shown[..shown.len().min(300)]
            );
            assert!(shown.len() < 400, "{} bytes: {shown}", shown.len());
            assert!(shown.contains("session:1"), "{shown}");
        }
        let codec = err.codec_error().expect("the codec's error").to_string();
        assert_eq!(codec.contains(&secret[..100]), quoted, "{}", &codec[..200]);
    }
    // A JSON string where a number is expected, and where an enum's variant is.
    ready(bytes.set(&key, format!("\"{secret}\""), None)).unwrap();
    let err = ready(bytes.clone().with_codec(Json::<u32>::new()).get(&key)).unwrap_err();
    check(err, &secret, true);
    #[derive(serde::Serialize, serde::Deserialize, Debug)]
    enum Role {
        Admin,
        User,
    }
    let err = ready(bytes.clone().with_codec(Json::<Role>::new()).get(&key)).unwrap_err();
    check(err, &secret, true);
    // MessagePack: a string where a number is expected (its message names the marker), and
    // where an enum's variant is (its message quotes the string).
    let packed = rmp_serde::to_vec(&secret).unwrap();
    ready(bytes.set(&key, packed, None)).unwrap();
    let packed = bytes.clone().with_codec(MessagePack::<u32>::new());
    check(ready(packed.get(&key)).unwrap_err(), &secret, false);
    let packed = bytes.with_codec(MessagePack::<Role>::new());
    check(ready(packed.get(&key)).unwrap_err(), &secret, true);
}

/// Length prefixes that claim more than the bytes hold (a Vec of 2^60 elements) are refused
/// without trying to allocate for them.
#[test]
fn huge_length_prefixes_are_refused_without_allocating() {
    let bytes = MemoryDriver::new()
        .namespace::<String>("hostile", "lengths")
        .unwrap();
    let key = "k".to_owned();
    // postcard: a string of 2^60 bytes, then nothing.
    let mut postcard = vec![0xff; 8];
    postcard.push(0x0f);
    ready(bytes.set(&key, postcard, None)).unwrap();
    let typed = bytes.clone().with_codec(Postcard::<Vec<u64>>::new());
    assert_eq!(
        ready(typed.get(&key)).unwrap_err().kind(),
        ErrorKind::Decode
    );
    // MessagePack: an array32 of 2^32 - 1 elements, then nothing.
    ready(bytes.set(&key, vec![0xdd, 0xff, 0xff, 0xff, 0xff], None)).unwrap();
    let typed = bytes.with_codec(MessagePack::<Vec<u64>>::new());
    assert_eq!(
        ready(typed.get(&key)).unwrap_err().kind(),
        ErrorKind::Decode
    );
}

/// Values nested deeper than a thread's stack can decode (about 1,000 bytes of MessagePack
/// arrays read as a `serde_json::Value`, what a tower-sessions record holds, and 100,000
/// levels of a recursive type in postcard aborted the process with a stack overflow) are a
/// decode error in every codec; values nested 100 deep are read. On a thread with a 2 MiB
/// stack, the size of the test harness's and tokio's threads.
#[test]
fn deeply_nested_values_are_refused_not_a_stack_overflow() {
    let answers = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let bytes = MemoryDriver::new()
                .namespace::<String>("hostile", "depth")
                .unwrap();
            let key = "k".to_owned();
            let msgpack = bytes
                .clone()
                .with_codec(MessagePack::<serde_json::Value>::new());
            let json = bytes.clone().with_codec(Json::<serde_json::Value>::new());
            let postcard = bytes.clone().with_codec(Postcard::<Tree>::new());
            let mut answers = Vec::new();
            for depth in [100, 129, 1_000, 100_000] {
                // MessagePack: `depth` one-element arrays around a nil.
                let mut nested = vec![0x91; depth];
                nested.push(0xc0);
                ready(bytes.set(&key, nested, None)).unwrap();
                let read = ready(msgpack.get(&key)).map(|v| v.is_some());
                answers.push(("MessagePack", depth, read.map_err(|e| e.kind())));
                let nested = "[".repeat(depth) + &"]".repeat(depth);
                ready(bytes.set(&key, nested, None)).unwrap();
                let read = ready(json.get(&key)).map(|v| v.is_some());
                answers.push(("JSON", depth, read.map_err(|e| e.kind())));
                // postcard: `depth` nodes (variant 1) around a leaf (variant 0).
                let mut nested = vec![1u8; depth];
                nested.push(0);
                ready(bytes.set(&key, nested, None)).unwrap();
                let read = ready(postcard.get(&key)).map(|v| v.is_some());
                answers.push(("postcard", depth, read.map_err(|e| e.kind())));
            }
            answers
        })
        .unwrap()
        .join()
        .expect("decoding nested values panicked");
    for (codec, depth, answer) in answers {
        let expected = if depth <= 100 {
            Ok(true)
        } else {
            Err(ErrorKind::Decode)
        };
        assert_eq!(answer, expected, "{codec}, {depth} deep");
    }
}

/// A recursive type, as postcard decodes one.
#[derive(serde::Serialize, serde::Deserialize)]
enum Tree {
    Leaf,
    Node(Box<Tree>),
}

/// Every shape serde has, read back whole through postcard's depth limit.
#[test]
fn postcard_reads_every_shape_through_its_depth_limit() {
    use std::collections::BTreeMap;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Unit;
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Newtype(u32);
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Pair(i8, String);
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    enum Shape {
        Empty,
        Wrapped(Newtype),
        Tuple(u16, char),
        Named { a: Option<Box<Shape>>, b: Vec<u8> },
    }
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct All {
        unit: Unit,
        unit_value: (),
        flag: bool,
        small: (i16, i32, i64, i128),
        unsigned: (u8, u16, u32, u64, u128),
        floats: (f32, f64),
        text: String,
        letter: char,
        #[serde(with = "serde_bytes_as_seq")]
        raw: Vec<u8>,
        pair: Pair,
        shapes: Vec<Shape>,
        map: BTreeMap<String, Option<Newtype>>,
    }
    // Bytes as postcard's byte string (serialize_bytes / deserialize_byte_buf).
    mod serde_bytes_as_seq {
        pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            struct Bytes;
            impl serde::de::Visitor<'_> for Bytes {
                type Value = Vec<u8>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                    Ok(v.to_vec())
                }
                fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                    Ok(v.to_vec())
                }
            }
            d.deserialize_byte_buf(Bytes)
        }
    }

    let value = All {
        unit: Unit,
        unit_value: (),
        flag: true,
        small: (-2, -3, i64::MIN, i128::MIN),
        unsigned: (1, 2, 3, u64::MAX, u128::MAX),
        floats: (1.5, -0.25),
        text: "héllo".to_owned(),
        letter: 'ß',
        raw: vec![0, 255, 7],
        pair: Pair(-1, "p".to_owned()),
        shapes: vec![
            Shape::Empty,
            Shape::Wrapped(Newtype(9)),
            Shape::Tuple(7, 'x'),
            Shape::Named {
                a: Some(Box::new(Shape::Named {
                    a: None,
                    b: vec![1, 2],
                })),
                b: vec![],
            },
        ],
        map: [("k".to_owned(), Some(Newtype(1))), ("n".to_owned(), None)].into(),
    };
    let codec = Postcard::<All>::new();
    let mut bytes = Vec::new();
    codec.encode(&value, &mut bytes).unwrap();
    assert_eq!(
        bytes,
        postcard::to_allocvec(&value).unwrap(),
        "plain postcard"
    );
    assert_eq!(codec.decode(&bytes).unwrap(), value);
    // Trailing bytes are still refused.
    bytes.push(0);
    assert!(codec.decode(&bytes).is_err());
}

/// JSON has no NaN or infinity: `serde_json` writes `null` for them, which reads back as a
/// decode error (a plain `f64`) or as a different value (`Some(NaN)` as `None`). The JSON
/// codec refuses such a value when it is written (`ErrorKind::Encode`, nothing stored),
/// wherever the float sits; finite floats, and the other codecs, keep every float.
#[test]
fn json_refuses_floats_it_cannot_read_back() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Reading {
        sensor: String,
        value: f64,
        history: Vec<Option<f32>>,
    }

    let reading = |value: f64, last: f32| Reading {
        sensor: "s1".to_owned(),
        value,
        history: vec![Some(1.5), None, Some(last)],
    };
    let ns = MemoryDriver::new()
        .namespace::<String>("app", "readings")
        .unwrap();
    let json = ns.clone().with_codec(Json::<Reading>::new());
    let key = "r".to_owned();
    for (value, last) in [
        (f64::NAN, 0.0),
        (f64::INFINITY, 0.0),
        (1.0, f32::NEG_INFINITY),
        (1.0, f32::NAN),
    ] {
        let refused = ready(json.set(&key, &reading(value, last), None)).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Encode, "{refused}");
        assert!(refused.to_string().contains("JSON"), "{refused}");
        assert_eq!(ready(ns.get(&key)).unwrap(), None, "something was stored");
    }
    let optional = ns.clone().with_codec(Json::<Option<f64>>::new());
    let refused = ready(optional.set(&key, &Some(f64::NAN), None)).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Encode, "{refused}");
    let nested = ns
        .clone()
        .with_codec(Json::<std::collections::BTreeMap<String, (u8, [f64; 2])>>::new());
    let map = [("a".to_owned(), (1, [0.5, f64::INFINITY]))].into();
    assert_eq!(
        ready(nested.set(&key, &map, None)).unwrap_err().kind(),
        ErrorKind::Encode
    );

    // Finite floats (the extremes, negative zero, subnormals) go through and read back.
    let finite = reading(-0.0, f32::MIN_POSITIVE / 2.0);
    ready(json.set(&key, &finite, None)).unwrap();
    assert_eq!(ready(json.get(&key)).unwrap(), Some(finite));
    ready(optional.set(&key, &Some(f64::MAX), None)).unwrap();
    assert_eq!(ready(optional.get(&key)).unwrap(), Some(Some(f64::MAX)));
    // The binary codecs keep a NaN as it is.
    let postcard = ns.clone().with_codec(Postcard::<Reading>::new());
    ready(postcard.set(&key, &reading(f64::NAN, f32::INFINITY), None)).unwrap();
    let back = ready(postcard.get(&key)).unwrap().unwrap();
    assert!(back.value.is_nan() && back.history[2] == Some(f32::INFINITY));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, ..ProptestConfig::default() })]

    /// Every finite float reads back bit for bit, through every codec: JSON's text too
    /// (`serde_json` parses floats to the nearest value only with its `float_roundtrip`
    /// feature, which namestore turns on: without it, 1.7538749263289158e174 read back one
    /// unit in the last place off).
    #[test]
    fn every_finite_float_reads_back_exactly(bits in any::<u64>(), small in any::<u32>()) {
        let (x, y) = (f64::from_bits(bits), f32::from_bits(small));
        prop_assume!(x.is_finite() && y.is_finite());
        let ns = MemoryDriver::new().namespace::<String>("floats", "exact").unwrap();
        let key = "k".to_owned();
        let json = ns.clone().with_codec(Json::<(f64, f32)>::new());
        ready(json.set(&key, &(x, y), None)).unwrap();
        let back = ready(json.get(&key)).unwrap().unwrap();
        prop_assert_eq!((back.0.to_bits(), back.1.to_bits()), (x.to_bits(), y.to_bits()));
        let postcard = ns.clone().with_codec(Postcard::<(f64, f32)>::new());
        ready(postcard.set(&key, &(x, y), None)).unwrap();
        let back = ready(postcard.get(&key)).unwrap().unwrap();
        prop_assert_eq!((back.0.to_bits(), back.1.to_bits()), (x.to_bits(), y.to_bits()));
        let msgpack = ns.with_codec(MessagePack::<(f64, f32)>::new());
        ready(msgpack.set(&key, &(x, y), None)).unwrap();
        let back = ready(msgpack.get(&key)).unwrap().unwrap();
        prop_assert_eq!((back.0.to_bits(), back.1.to_bits()), (x.to_bits(), y.to_bits()));
    }
}

/// Storing `value` through `codec` is refused (`Encode`, saying `mentions`), and nothing is
/// stored.
fn refused_saying<C: Codec>(
    ns: &Namespace<String, MemoryDriver>,
    codec: C,
    value: &C::Value,
    mentions: &str,
) {
    let typed = ns.clone().with_codec(codec);
    let error = ready(typed.set(&"k".to_owned(), value, None)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Encode, "{error}");
    assert!(error.to_string().contains(mentions), "{error}");
    assert_eq!(ready(ns.get(&"k".to_owned())).unwrap(), None);
}

/// Refused as a `Some` that would read back as `None`.
fn refused_as_none<C: Codec>(ns: &Namespace<String, MemoryDriver>, codec: C, value: &C::Value) {
    refused_saying(ns, codec, value, "Some");
}

/// Refused as a struct with a field left out.
fn refused_with_a_field_left_out<C: Codec>(
    ns: &Namespace<String, MemoryDriver>,
    codec: C,
    value: &C::Value,
) {
    refused_saying(ns, codec, value, "skip_serializing_if");
}

/// `value` stored through `codec` reads back equal (then is deleted).
fn kept<C: Codec>(ns: &Namespace<String, MemoryDriver>, codec: C, value: C::Value)
where
    C::Value: PartialEq + std::fmt::Debug,
{
    let typed = ns.clone().with_codec(codec);
    ready(typed.set(&"k".to_owned(), &value, None)).unwrap();
    assert_eq!(ready(typed.get(&"k".to_owned())).unwrap(), Some(value));
    ready(ns.delete(&"k".to_owned())).unwrap();
}

/// JSON and MessagePack write `Some` of a value written as null the way they write `None`:
/// `Some(None)` of an `Option<Option<T>>`, `Some(())`, `Some` of a newtype around `None` all
/// read back as `None`. Those codecs refuse such a value when it is written (`Encode`,
/// nothing stored); `None` itself, `Some` of anything else, a null inside a `Some`'s struct or
/// list, and serde_with-style fields that write `None` themselves go through. Postcard tags
/// every `Option` and keeps `Some(None)`.
#[test]
fn json_and_msgpack_refuse_some_that_reads_back_as_none() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Wrapped(Option<u8>);
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Patch {
        name: Option<Option<String>>,
        tags: Option<Vec<Option<u8>>>,
    }

    let ns = MemoryDriver::new()
        .namespace::<String>("app", "options")
        .unwrap();
    let patch = |name| Patch {
        name,
        tags: Some(vec![None, Some(1)]),
    };
    refused_as_none(&ns, Json::<Option<Option<u8>>>::new(), &Some(None));
    refused_as_none(&ns, MessagePack::<Option<Option<u8>>>::new(), &Some(None));
    refused_as_none(
        &ns,
        MessagePackNamed::<Option<Option<u8>>>::new(),
        &Some(None),
    );
    refused_as_none(&ns, Json::<Option<()>>::new(), &Some(()));
    refused_as_none(&ns, MessagePack::<Option<()>>::new(), &Some(()));
    refused_as_none(&ns, Json::<Option<Wrapped>>::new(), &Some(Wrapped(None)));
    refused_as_none(&ns, Json::<Patch>::new(), &patch(Some(None)));
    refused_as_none(&ns, MessagePack::<Patch>::new(), &patch(Some(None)));
    for value in [None, Some(None), Some(Some(7))] {
        kept(&ns, Postcard::<Option<Option<u8>>>::new(), value);
    }
    for name in [None, Some(Some("ada".to_owned()))] {
        kept(&ns, Json::<Patch>::new(), patch(name.clone()));
        kept(&ns, MessagePack::<Patch>::new(), patch(name));
    }
    kept(&ns, Json::<Option<Wrapped>>::new(), Some(Wrapped(Some(3))));
    kept(&ns, Json::<Option<Option<u8>>>::new(), None);
    kept(&ns, MessagePack::<Option<Option<u8>>>::new(), Some(Some(0)));
}

/// MessagePack's compact form and postcard write a struct's fields by position: a field left
/// out by `skip_serializing_if` would shift the rest, so that MessagePack read
/// `{ nickname: None, age: 5, score: Some(7) }` back as `{ nickname: Some(5), age: 7, score:
/// None }`, with no error. Both refuse such a value when it is written (`Encode`, naming the
/// field, nothing stored, not even the rest of an `mset`), at any depth; Json and
/// MessagePackNamed name their fields and keep it; the same struct with the field present goes
/// through every codec.
#[test]
fn positional_codecs_refuse_a_struct_with_a_field_left_out() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Profile {
        #[serde(skip_serializing_if = "Option::is_none")]
        nickname: Option<u32>,
        age: u32,
        #[serde(default)]
        score: Option<u32>,
    }
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    enum Event {
        Seen {
            #[serde(skip_serializing_if = "Vec::is_empty", default)]
            tags: Vec<u8>,
            at: u64,
        },
    }
    type Team = Vec<(String, Profile)>;

    let ns = MemoryDriver::new()
        .namespace::<String>("app", "fields")
        .unwrap();
    let nameless = Profile {
        nickname: None,
        age: 5,
        score: Some(7),
    };
    let named = Profile {
        nickname: Some(3),
        ..nameless.clone()
    };
    let untagged = Event::Seen {
        tags: Vec::new(),
        at: 9,
    };
    let tagged = Event::Seen {
        tags: vec![1, 2],
        at: 9,
    };
    let team = |member: &Profile| vec![("ada".to_owned(), member.clone())];

    refused_with_a_field_left_out(&ns, MessagePack::<Profile>::new(), &nameless);
    refused_with_a_field_left_out(&ns, Postcard::<Profile>::new(), &nameless);
    refused_with_a_field_left_out(&ns, MessagePack::<Event>::new(), &untagged);
    refused_with_a_field_left_out(&ns, Postcard::<Event>::new(), &untagged);
    refused_with_a_field_left_out(&ns, MessagePack::<Team>::new(), &team(&nameless));
    refused_with_a_field_left_out(&ns, Postcard::<Team>::new(), &team(&nameless));
    let error = ready(ns.clone().with_codec(MessagePack::<Profile>::new()).set(
        &"k".to_owned(),
        &nameless,
        None,
    ))
    .unwrap_err();
    assert!(error.to_string().contains("`nickname`"), "{error}");

    // One refused value fails the whole batch.
    let batch = ns.clone().with_codec(Postcard::<Profile>::new());
    let pairs = [
        ("a".to_owned(), named.clone()),
        ("b".to_owned(), nameless.clone()),
    ];
    let error = ready(batch.mset(pairs.iter().map(|(k, v)| (k, v)), None)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Encode, "{error}");
    assert_eq!(ready(ns.keys("*")).unwrap(), Vec::<String>::new());

    kept(&ns, Json::<Profile>::new(), nameless.clone());
    kept(&ns, Json::<Event>::new(), untagged.clone());
    kept(&ns, Json::<Team>::new(), team(&nameless));
    kept(&ns, MessagePackNamed::<Profile>::new(), nameless.clone());
    kept(&ns, MessagePackNamed::<Event>::new(), untagged);
    kept(&ns, MessagePackNamed::<Team>::new(), team(&nameless));
    kept(&ns, MessagePack::<Profile>::new(), named.clone());
    kept(&ns, Postcard::<Profile>::new(), named.clone());
    kept(&ns, MessagePack::<Event>::new(), tagged.clone());
    kept(&ns, Postcard::<Event>::new(), tagged);
    kept(&ns, MessagePack::<Team>::new(), team(&named));
    kept(&ns, Postcard::<Team>::new(), team(&named));
}

/// What the codecs' docs say cannot be read back, and is not refused when written (nothing
/// at writing tells those types apart): postcard cannot read a type that asks the format what
/// comes next (an untagged or internally tagged enum, `serde_json::Value`), nor MessagePack's
/// compact form an adjacently tagged enum's variant with named fields. Each read is a
/// `Decode` error naming the key, and the stored bytes stay as written. (If a release of
/// either crate reads them, this fails, and the docs change with it.)
#[test]
fn values_the_codecs_cannot_read_back_are_decode_errors() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    #[serde(untagged)]
    enum Untagged {
        Number(u32),
    }
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    #[serde(tag = "type")]
    enum Internal {
        Dot { x: u8 },
    }
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    #[serde(tag = "t", content = "c")]
    enum Adjacent {
        Named { y: u8 },
    }

    let ns = MemoryDriver::new()
        .namespace::<String>("app", "unreadable")
        .unwrap();
    fn unreadable<C: Codec>(ns: &Namespace<String, MemoryDriver>, codec: C, value: &C::Value)
    where
        C::Value: std::fmt::Debug,
    {
        let typed = ns.clone().with_codec(codec);
        let key = "k".to_owned();
        ready(typed.set(&key, value, None)).unwrap();
        let written = ready(ns.get(&key)).unwrap();
        let error = ready(typed.get(&key)).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Decode, "{error}");
        assert_eq!(error.key(), Some("k"));
        assert_eq!(ready(ns.get(&key)).unwrap(), written);
    }
    unreadable(&ns, Postcard::<Untagged>::new(), &Untagged::Number(3));
    unreadable(&ns, Postcard::<Internal>::new(), &Internal::Dot { x: 1 });
    let value = serde_json::json!({ "a": [1, "x", null] });
    unreadable(&ns, Postcard::<serde_json::Value>::new(), &value);
    unreadable(
        &ns,
        MessagePack::<Adjacent>::new(),
        &Adjacent::Named { y: 2 },
    );
    // The same values through the codecs the docs point to.
    let json = ns.clone().with_codec(Json::<Adjacent>::new());
    ready(json.set(&"j".to_owned(), &Adjacent::Named { y: 2 }, None)).unwrap();
    assert_eq!(
        ready(json.get(&"j".to_owned())).unwrap(),
        Some(Adjacent::Named { y: 2 })
    );
    let named = ns.clone().with_codec(MessagePackNamed::<Adjacent>::new());
    ready(named.set(&"n".to_owned(), &Adjacent::Named { y: 2 }, None)).unwrap();
    assert_eq!(
        ready(named.get(&"n".to_owned())).unwrap(),
        Some(Adjacent::Named { y: 2 })
    );
    let msgpack = ns.clone().with_codec(MessagePack::<Internal>::new());
    ready(msgpack.set(&"m".to_owned(), &Internal::Dot { x: 1 }, None)).unwrap();
    assert_eq!(
        ready(msgpack.get(&"m".to_owned())).unwrap(),
        Some(Internal::Dot { x: 1 })
    );
}

/// `MessagePackNamed` reads what `MessagePack` wrote (a namespace can move from one to the
/// other), and `MessagePack` what `MessagePackNamed` wrote; each writes its own form.
#[test]
fn both_messagepack_forms_read_each_other() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Session {
        user: u64,
        roles: Vec<String>,
    }
    let session = Session {
        user: 7,
        roles: vec!["admin".to_owned()],
    };
    let ns = MemoryDriver::new()
        .namespace::<String>("app", "forms")
        .unwrap();
    let compact = ns.clone().with_codec(MessagePack::<Session>::new());
    let named = ns.clone().with_codec(MessagePackNamed::<Session>::new());
    let key = "s".to_owned();

    ready(compact.set(&key, &session, None)).unwrap();
    let stored = ready(ns.get(&key)).unwrap().unwrap();
    assert_eq!(stored, rmp_serde::to_vec(&session).unwrap());
    assert_eq!(ready(named.get(&key)).unwrap(), Some(session.clone()));

    ready(named.set(&key, &session, None)).unwrap();
    let stored = ready(ns.get(&key)).unwrap().unwrap();
    assert_eq!(stored, rmp_serde::to_vec_named(&session).unwrap());
    assert_eq!(ready(compact.get(&key)).unwrap(), Some(session));
}
