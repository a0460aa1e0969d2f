//! SPEC 11: typed values.

use std::time::Duration;

use super::{Harness, assert_err, k};
use crate::{BoxError, Codec, Driver};

/// A codec written by hand, so the rules are checked without any serde codec compiled in: a
/// point `(i64, i64)` stored as `x,y`; anything else refuses to decode, and `i64::MIN` as
/// `x` refuses to encode (a stand-in for a value a format cannot represent).
struct Points;

impl Codec for Points {
    type Value = (i64, i64);
    const NAME: &'static str = "a point";

    fn encode(&self, &(x, y): &(i64, i64), out: &mut Vec<u8>) -> Result<(), BoxError> {
        if x == i64::MIN {
            return Err("x is out of range".into());
        }
        out.extend_from_slice(format!("{x},{y}").as_bytes());
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<(i64, i64), BoxError> {
        let (x, y) = std::str::from_utf8(bytes)?
            .split_once(',')
            .ok_or("no comma")?;
        Ok((x.parse()?, y.parse()?))
    }
}

/// SPEC 11.1–11.3 on every value operation: values round-trip through the codec; the stored
/// bytes are exactly its encoding; a value that does not decode is a decode error naming the
/// key, and stays as it was; a value that does not encode writes nothing; counters stay
/// decimal text; compare-and-swap compares encodings.
pub async fn typed_values<D: Driver>(h: &Harness<D>) {
    let bytes = h.namespace::<String>();
    let ns = bytes.clone().with_codec(Points);

    // Round trips, and the stored bytes are the codec's encoding, nothing more.
    ns.set(&k("p"), &(1, -2), None).await.unwrap();
    assert_eq!(ns.get(&k("p")).await.unwrap(), Some((1, -2)));
    assert_eq!(
        bytes.get(&k("p")).await.unwrap().as_deref(),
        Some(&b"1,-2"[..])
    );
    assert_eq!(ns.get(&k("absent")).await.unwrap(), None);
    assert!(ns.set_nx(&k("q"), &(3, 4), None).await.unwrap());
    assert!(!ns.set_nx(&k("q"), &(5, 6), None).await.unwrap());
    assert_eq!(ns.get(&k("q")).await.unwrap(), Some((3, 4)));
    assert!(!ns.replace(&k("r"), &(5, 6), None).await.unwrap());
    assert_eq!(
        ns.get(&k("r")).await.unwrap(),
        None,
        "replace created a key"
    );
    ns.set(&k("r"), &(1, 1), None).await.unwrap();
    assert!(ns.replace(&k("r"), &(5, 6), None).await.unwrap());
    assert_eq!(
        bytes.get(&k("r")).await.unwrap().as_deref(),
        Some(&b"5,6"[..])
    );
    assert_eq!(
        ns.get_set(&k("q"), &(7, 8), None).await.unwrap(),
        Some((3, 4))
    );
    assert_eq!(ns.get_set(&k("new"), &(0, 0), None).await.unwrap(), None);
    ns.mset([(k("m1"), (10, 11)), (k("m2"), (12, 13))], None)
        .await
        .unwrap();
    assert_eq!(
        ns.mget([k("m1"), k("absent"), k("m2")]).await.unwrap(),
        [Some((10, 11)), None, Some((12, 13))]
    );

    // A TTL is the byte API's TTL.
    ns.set(&k("t"), &(1, 1), Some(h.ttl())).await.unwrap();
    assert!(matches!(
        ns.ttl(&k("t")).await.unwrap(),
        crate::KeyTtl::ExpiresIn(_)
    ));
    ns.set_keep_ttl(&k("t"), &(2, 2)).await.unwrap();
    assert!(matches!(
        ns.ttl(&k("t")).await.unwrap(),
        crate::KeyTtl::ExpiresIn(_)
    ));
    assert_eq!(ns.get(&k("t")).await.unwrap(), Some((2, 2)));

    // cas and cad compare encodings.
    assert!(ns.cas(&k("p"), &(1, -2), &(9, 9), None).await.unwrap());
    assert!(!ns.cas(&k("p"), &(1, -2), &(0, 0), None).await.unwrap());
    assert_eq!(ns.get(&k("p")).await.unwrap(), Some((9, 9)));
    // The same point written by another client as `09,9` is a different encoding.
    bytes.set(&k("p"), "09,9", None).await.unwrap();
    assert_eq!(ns.get(&k("p")).await.unwrap(), Some((9, 9)));
    assert!(
        !ns.cas(&k("p"), &(9, 9), &(1, 1), None).await.unwrap(),
        "cas matched a value by meaning, not by its bytes"
    );
    assert!(!ns.cad(&k("p"), &(9, 9)).await.unwrap());
    assert!(ns.cad(&k("new"), &(0, 0)).await.unwrap());
    assert!(!ns.exists(&k("new")).await.unwrap());

    // SPEC 11.2: a value that does not decode is an error naming the key, never a panic or
    // a `None`, and the value stays as it was.
    bytes.set(&k("bad"), "not a point", None).await.unwrap();
    let err = ns.get(&k("bad")).await.unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::Decode, "{err}");
    assert_eq!(err.key(), Some("bad"), "{err}");
    assert!(err.to_string().contains("bad"), "{err}");
    // The codec's own error is there for a program to read, and out of the chain of sources
    // error reporters print: it may quote the stored value (SPEC 8.4).
    assert!(err.codec_error().is_some(), "{err}");
    assert!(std::error::Error::source(&err).is_none(), "{err}");
    assert_err!(
        ns.mget([k("m1"), k("bad")]).await,
        Decode,
        "mget of a batch holding an undecodable value"
    );
    assert_eq!(
        bytes.get(&k("bad")).await.unwrap().as_deref(),
        Some(&b"not a point"[..]),
        "a failed decode changed the stored value"
    );
    // get_set writes, then fails to decode what it replaced: the new value is stored.
    assert_err!(
        ns.get_set(&k("bad"), &(5, 5), None).await,
        Decode,
        "get_set"
    );
    assert_eq!(ns.get(&k("bad")).await.unwrap(), Some((5, 5)));

    // A value that does not encode writes nothing, not even the rest of its batch.
    assert_err!(ns.set(&k("e"), &(i64::MIN, 0), None).await, Encode, "set");
    assert_err!(
        ns.mset([(k("e1"), (1, 1)), (k("e2"), (i64::MIN, 0))], None)
            .await,
        Encode,
        "mset"
    );
    assert_err!(
        ns.cas(&k("m1"), &(10, 11), &(i64::MIN, 0), None).await,
        Encode,
        "cas"
    );
    assert!(!ns.exists(&k("e")).await.unwrap());
    assert!(
        !ns.exists(&k("e1")).await.unwrap(),
        "mset wrote part of a refused batch"
    );
    assert_eq!(ns.get(&k("m1")).await.unwrap(), Some((10, 11)));

    // SPEC 11.3: counters are decimal text through the byte namespace, whatever the codec.
    assert_eq!(ns.bytes().incr(&k("n"), 41).await.unwrap(), 41);
    assert_eq!(ns.bytes().incr(&k("n"), 1).await.unwrap(), 42);
    assert_eq!(
        bytes.get(&k("n")).await.unwrap().as_deref(),
        Some(&b"42"[..])
    );

    // The rest of the API passes through.
    let mut keys = ns.keys("m*").await.unwrap();
    keys.sort();
    assert_eq!(keys, [k("m1"), k("m2")]);
    assert!(
        ns.expire(&k("m1"), Duration::from_secs(3600))
            .await
            .unwrap()
    );
    assert!(ns.persist(&k("m1")).await.unwrap());
    assert!(ns.delete(&k("m1")).await.unwrap());
    assert_eq!(ns.mdel([k("m2"), k("q")]).await.unwrap(), 2);
    assert!(ns.clear().await.unwrap() > 0);
    assert_eq!(ns.get(&k("t")).await.unwrap(), None);
}

/// SPEC 11.1 for each serde codec compiled in (`json`, `postcard`, `msgpack`): a value with
/// nested, optional, numeric-edge and non-ASCII fields round-trips, and the stored bytes are
/// exactly the format library's own encoding of it.
pub async fn codec_round_trips<D: Driver>(h: &Harness<D>) {
    #[cfg(any(feature = "json", feature = "postcard", feature = "msgpack"))]
    {
        type Record = (String, i64, u64, Option<Vec<u16>>, bool, Vec<(String, f64)>);
        let record: Record = (
            "héllo \"wörld\" ✓ \u{0}".to_owned(),
            i64::MIN,
            u64::MAX,
            Some(vec![0, 1, u16::MAX]),
            true,
            vec![("half".to_owned(), 1.5), (String::new(), -0.25)],
        );
        let other: Record = (String::new(), 0, 0, None, false, vec![]);
        let bytes = h.namespace::<String>();

        #[cfg(feature = "json")]
        {
            let ns = bytes
                .clone()
                .with_codec(crate::codec::Json::<Record>::new());
            ns.set(&k("json"), &record, None).await.unwrap();
            assert_eq!(ns.get(&k("json")).await.unwrap().as_ref(), Some(&record));
            assert_eq!(
                bytes.get(&k("json")).await.unwrap().unwrap(),
                serde_json::to_vec(&record).unwrap(),
                "JSON stored with something added"
            );
            ns.mset([(k("json2"), &other)], None).await.unwrap();
            assert_eq!(ns.get(&k("json2")).await.unwrap(), Some(other.clone()));
            bytes
                .set(&k("json3"), "{\"not\": \"a record\"}", None)
                .await
                .unwrap();
            assert_err!(ns.get(&k("json3")).await, Decode, "JSON of another type");
        }
        #[cfg(feature = "postcard")]
        {
            let ns = bytes
                .clone()
                .with_codec(crate::codec::Postcard::<Record>::new());
            ns.set(&k("postcard"), &record, None).await.unwrap();
            assert_eq!(
                ns.get(&k("postcard")).await.unwrap().as_ref(),
                Some(&record)
            );
            assert_eq!(
                bytes.get(&k("postcard")).await.unwrap().unwrap(),
                postcard::to_allocvec(&record).unwrap(),
                "postcard stored with something added"
            );
            // Trailing bytes after a whole value are not a value.
            let mut longer = postcard::to_allocvec(&other).unwrap();
            longer.push(0);
            bytes.set(&k("postcard2"), longer, None).await.unwrap();
            assert_err!(
                ns.get(&k("postcard2")).await,
                Decode,
                "postcard with trailing bytes"
            );
            bytes.set(&k("postcard3"), "", None).await.unwrap();
            assert_err!(ns.get(&k("postcard3")).await, Decode, "empty postcard");
        }
        #[cfg(feature = "msgpack")]
        {
            let ns = bytes
                .clone()
                .with_codec(crate::codec::MessagePack::<Record>::new());
            ns.set(&k("msgpack"), &record, None).await.unwrap();
            assert_eq!(ns.get(&k("msgpack")).await.unwrap().as_ref(), Some(&record));
            assert_eq!(
                bytes.get(&k("msgpack")).await.unwrap().unwrap(),
                rmp_serde::to_vec(&record).unwrap(),
                "MessagePack stored with something added"
            );
            let mut longer = rmp_serde::to_vec(&other).unwrap();
            longer.push(0xc0);
            bytes.set(&k("msgpack2"), longer, None).await.unwrap();
            assert_err!(
                ns.get(&k("msgpack2")).await,
                Decode,
                "MessagePack with trailing bytes"
            );
        }
    }
    #[cfg(not(any(feature = "json", feature = "postcard", feature = "msgpack")))]
    let _ = h;
}
