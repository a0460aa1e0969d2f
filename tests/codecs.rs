//! Hostile bytes for every codec: whatever a namespace holds, a typed read answers a value or
//! `ErrorKind::Decode`, never panics, and leaves the stored bytes as they were (SPEC 11.2).

use namestore::codec::{Json, MessagePack, Postcard};
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
        let msgpack = bytes.with_codec(MessagePack::<Record>::new());
        ready(msgpack.set(&key, &record, None)).unwrap();
        prop_assert_eq!(ready(msgpack.get(&key)).unwrap(), Some(record));
    }
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

/// Arrays nested deeper than a thread's stack can decode (about 1,000 bytes of them, read as
/// a `serde_json::Value`, what a tower-sessions record holds, aborted the process with a
/// stack overflow) are a decode error, in MessagePack as in JSON; values nested 100 deep are
/// read. On a thread with a 2 MiB stack, the size of the test harness's and tokio's threads.
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
