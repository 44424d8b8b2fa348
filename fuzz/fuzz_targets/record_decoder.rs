//! Record marking: one `RecordDecoder` fed a stream in reads of fuzzed sizes.
//!
//! Input: see `peerwire_fuzz::StreamInput` (control byte, read sizes, stream).
//!
//! Checked:
//! - invariants after every call: no record over the limit, nothing held
//!   over the limit, an idle decoder waits only for a header, buffer growth
//!   bounded by the bytes fed (never by what a header announces);
//! - the outcome (records, then the first error or the end-of-stream state
//!   and `decode_eof`'s verdict) is the same whether the stream comes in
//!   these reads or all at once;
//! - and it is what a plain model of RFC 5531 §11 record marking over the
//!   whole stream gives, error kinds and offsets included.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use peerwire::proto::{DecodeError, DecodeErrorKind, RecordDecoder, RecordLimits};
use peerwire_fuzz::StreamInput;

/// Small limits, so that every one of them is reached.
fn limits() -> RecordLimits {
    RecordLimits::new(4096, 16384, 64).expect("valid limits")
}

#[derive(Debug, PartialEq)]
struct Outcome {
    /// The records, in order, up to the first error.
    records: Vec<Bytes>,
    end: End,
}

#[derive(Debug, PartialEq)]
enum End {
    /// `decode` failed: the stream is out of sync and is fed no further.
    Failed(DecodeError),
    /// The whole stream was fed without error.
    Eof {
        /// Bytes taken out of the read buffer.
        consumed: u64,
        /// `held_bytes()` then.
        held: usize,
        /// `is_idle()` then.
        idle: bool,
        /// What `decode_eof` said.
        verdict: Result<(), DecodeError>,
    },
}

fuzz_target!(|data: &[u8]| {
    let input = StreamInput::parse(data);
    let chunked = run(input.chunks(), input.payload.len());
    let whole = run(std::iter::once(input.payload), input.payload.len());
    assert_eq!(chunked, whole, "reads of other sizes changed the outcome");
    let expected = model(input.payload);
    assert!(
        matches_model(&chunked, &expected),
        "decoder: {chunked:?}\nmodel: {expected:?}"
    );
});

fn run<'a>(chunks: impl Iterator<Item = &'a [u8]>, total: usize) -> Outcome {
    let limits = limits();
    // What the buffer may grow to: the bytes fed, with slack for BytesMut's
    // growth policy. The decoder reserves nothing for what a header
    // announces.
    let capacity_bound = 2 * total + (128 << 10);
    let mut decoder = RecordDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut fed = 0u64;
    let mut records = Vec::new();
    let mut record_bytes = 0u64;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        fed += chunk.len() as u64;
        loop {
            let before = buf.len();
            let result = decoder.decode(&mut buf);
            assert!(buf.len() <= before, "decode added bytes to the buffer");
            match result {
                Ok(Some(record)) => {
                    assert!(record.len() <= limits.max_record(), "record over the limit");
                    assert!(decoder.is_idle(), "a record was returned mid-record");
                    assert_eq!(decoder.held_bytes(), 0);
                    record_bytes += record.len() as u64;
                    records.push(record);
                    // Each record took at least its data and one header.
                    let consumed = fed - buf.len() as u64;
                    assert!(consumed >= record_bytes + 4 * records.len() as u64);
                }
                Ok(None) => {
                    assert!(decoder.held_bytes() <= limits.max_record());
                    if decoder.is_idle() {
                        assert!(buf.len() < 4, "an idle decoder left a whole header unread");
                    }
                    break;
                }
                Err(error) => {
                    return Outcome {
                        records,
                        end: End::Failed(error),
                    };
                }
            }
            assert!(
                buf.capacity() <= capacity_bound,
                "read buffer grew to {}",
                buf.capacity()
            );
        }
        assert!(
            buf.capacity() <= capacity_bound,
            "read buffer grew to {}",
            buf.capacity()
        );
    }
    let consumed = fed - buf.len() as u64;
    let held = decoder.held_bytes();
    let idle = decoder.is_idle();
    let verdict = match decoder.decode_eof(&mut buf) {
        Ok(None) => {
            assert!(
                idle && buf.is_empty(),
                "decode_eof accepted a partial record"
            );
            Ok(())
        }
        Ok(Some(record)) => panic!("decode_eof found a record that decode did not: {record:?}"),
        Err(error) => {
            assert_eq!(error.kind, DecodeErrorKind::TruncatedRecord);
            assert!(!idle || consumed < fed, "decode_eof refused a clean end");
            Err(error)
        }
    };
    Outcome {
        records,
        end: End::Eof {
            consumed,
            held,
            idle,
            verdict,
        },
    }
}

/// Record marking over the whole stream, written from RFC 5531 §11 and the
/// documented limits: a header is checked (fragment length, then record
/// length, then fragment count against what the data before it allows) at
/// its offset before it is consumed. The data of a record's only fragment
/// is consumed when all of it is there; the data of a record of several is
/// consumed (and held) as it arrives. A stream that ends inside a record
/// is truncated at the offset where that record began.
fn model(stream: &[u8]) -> Outcome {
    let limits = limits();
    let mut records = Vec::new();
    let mut pos = 0usize;
    let mut parts: Vec<u8> = Vec::new();
    let mut fragments = 0u32;
    let mut record_start = 0usize;
    loop {
        let left = stream.len() - pos;
        let idle = fragments == 0;
        let start = if idle { pos } else { record_start };
        let end_here = |idle: bool, held: usize| End::Eof {
            consumed: pos as u64,
            held,
            idle,
            verdict: if idle && left == 0 {
                Ok(())
            } else {
                Err(DecodeError::new(
                    DecodeErrorKind::TruncatedRecord,
                    start as u64,
                ))
            },
        };
        if left < 4 {
            let end = end_here(idle, parts.len());
            return Outcome { records, end };
        }
        let raw = u32::from_be_bytes([
            stream[pos],
            stream[pos + 1],
            stream[pos + 2],
            stream[pos + 3],
        ]);
        let len = raw & 0x7fff_ffff;
        let last = raw & 0x8000_0000 != 0;
        let total = parts.len() as u64 + u64::from(len);
        let failure = if len > limits.max_fragment() {
            Some(DecodeErrorKind::FragmentTooLong {
                len,
                max: limits.max_fragment(),
            })
        } else if total > limits.max_record() as u64 {
            Some(DecodeErrorKind::RecordTooLong {
                len: total,
                max: limits.max_record() as u64,
            })
        } else if u64::from(fragments) + 1 > limits.fragments_allowed(parts.len()) {
            Some(DecodeErrorKind::TooManyFragments {
                max: u32::try_from(limits.fragments_allowed(parts.len())).unwrap(),
            })
        } else {
            None
        };
        if let Some(kind) = failure {
            let end = End::Failed(DecodeError::new(kind, pos as u64));
            return Outcome { records, end };
        }
        if idle {
            record_start = pos;
        }
        let len = len as usize;
        if left - 4 < len {
            // The header is taken; its data is awaited: in the read buffer
            // for a record's only fragment, else taken and held as it came.
            let whole = last && idle;
            let taken = if whole { 0 } else { left - 4 };
            return Outcome {
                records,
                end: End::Eof {
                    consumed: (pos + 4 + taken) as u64,
                    held: parts.len() + taken,
                    idle: false,
                    verdict: Err(DecodeError::new(
                        DecodeErrorKind::TruncatedRecord,
                        record_start as u64,
                    )),
                },
            };
        }
        pos += 4;
        parts.extend_from_slice(&stream[pos..pos + len]);
        pos += len;
        fragments += 1;
        if last {
            records.push(Bytes::from(std::mem::take(&mut parts)));
            fragments = 0;
        }
    }
}

/// The decoder's outcome against the model's: identical, error offsets
/// included.
fn matches_model(actual: &Outcome, model: &Outcome) -> bool {
    actual == model
}
