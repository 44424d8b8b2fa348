//! The server side of a connection: `RpcCodec` (a tokio-util `Decoder`) fed
//! a stream in reads of fuzzed sizes, as `FramedRead` would: `decode` until
//! it wants more, the next read, and `decode_eof` at the end; a stream error
//! ends the connection, an item's error does not.
//!
//! Input: see `peerwire_fuzz::StreamInput`. Flags (high 4 bits of byte 0):
//! bit 0 selects the default limits instead of small ones; bits 1-2 the
//! fragment size used to write each decoded message back (whole, 1, 7, 64).
//!
//! Checked: no panic; the same items and end whatever the read sizes; every
//! message decoded writes back through the codec's `Encoder` within the
//! limit, and reads back equal.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use peerwire::codec::{CodecError, RpcCodec};
use peerwire::proto::{DecodeError, MAX_FRAGMENT_LEN, Message, RecordEncoder, RecordLimits};
use peerwire_fuzz::StreamInput;
use tokio_util::codec::{Decoder, Encoder};

#[derive(Debug, PartialEq)]
struct Outcome {
    items: Vec<Result<Message, DecodeError>>,
    /// The stream's error, if it ended on one.
    end: Result<(), DecodeError>,
}

fuzz_target!(|data: &[u8]| {
    let input = StreamInput::parse(data);
    let limits = if input.flags & 1 == 0 {
        RecordLimits::new(4096, 16384, 64).expect("valid limits")
    } else {
        RecordLimits::default()
    };
    let chunked = run(limits, input.chunks());
    let whole = run(limits, std::iter::once(input.payload));
    assert_eq!(chunked, whole, "reads of other sizes changed the outcome");

    let encoder = match (input.flags >> 1) & 3 {
        0 => RecordEncoder::default(),
        1 => RecordEncoder::with_fragment_size(1),
        2 => RecordEncoder::with_fragment_size(7),
        _ => RecordEncoder::with_fragment_size(64),
    };
    for message in chunked.items.iter().filter_map(|item| item.as_ref().ok()) {
        write_back(limits, encoder, message);
    }
});

fn run<'a>(limits: RecordLimits, chunks: impl Iterator<Item = &'a [u8]>) -> Outcome {
    let mut codec = RpcCodec::new(limits, RecordEncoder::default());
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(error) => {
                    return Outcome {
                        items,
                        end: Err(record_error(error)),
                    };
                }
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(item)) => items.push(item),
            Ok(None) => {
                assert!(buf.is_empty(), "decode_eof left bytes behind");
                return Outcome { items, end: Ok(()) };
            }
            Err(error) => {
                return Outcome {
                    items,
                    end: Err(record_error(error)),
                };
            }
        }
    }
}

fn record_error(error: CodecError) -> DecodeError {
    match error {
        CodecError::Record(error) => error,
        other => panic!("decoding gave a stream error other than a record one: {other:?}"),
    }
}

/// Writes `message` with the codec's `Encoder` and reads it back.
fn write_back(limits: RecordLimits, encoder: RecordEncoder, message: &Message) {
    // The decoded message came in one record within `limits`, so it must
    // go out under the same record limit; reading it back allows any
    // number of fragments, since `encoder` may cut it small.
    let back_limits =
        RecordLimits::new(MAX_FRAGMENT_LEN, limits.max_record(), u32::MAX).expect("valid limits");
    let mut codec = RpcCodec::new(back_limits, encoder);
    let mut wire = BytesMut::new();
    Encoder::<&Message>::encode(&mut codec, message, &mut wire)
        .unwrap_or_else(|e| panic!("a decoded message must encode ({e}): {message:?}"));
    assert_eq!(wire.len(), encoder.encoded_len(message.encoded_len()));
    let back = codec
        .decode_eof(&mut wire)
        .unwrap_or_else(|e| panic!("our own record must decode ({e}): {message:?}"));
    assert_eq!(back, Some(Ok(message.clone())));
    assert!(wire.is_empty());
}
