//! Throughput of the wire layer: record marking and RPC message decoding.
//!
//! Every figure is meant to be read against the `memcpy` group of the same
//! run: a plain copy of the same number of bytes into a reused buffer. Speed
//! is compared here, as a ratio to that baseline; it is never asserted in a
//! timed test.
//!
//! - `record_encode/{1,16}_fragment(s)/<len>`: [`RecordEncoder::encode`] of a
//!   `len`-byte record into a cleared, reused `BytesMut`.
//! - `record_decode/{1,16}_fragment(s)/<len>`: [`RecordDecoder::decode`] of
//!   one whole record by a fresh decoder. The encoded bytes are copied into
//!   a new `BytesMut` in an untimed setup, and that buffer is dropped
//!   untimed; dropping the decoded record is timed.
//! - `memcpy/<len>`: `extend_from_slice` of `len` bytes into a cleared,
//!   pre-reserved `BytesMut`.
//! - `codec_decode/call/<len>`: [`RpcCodec`]'s `Decoder::decode` of a call
//!   with `len` bytes of arguments (AUTH_NONE, one fragment), set up like
//!   `record_decode`.
//!
//! Throughput is counted in payload bytes (the record's length, or the
//! call's arguments), not in bytes on the wire, so that the groups compare
//! directly.
//!
//! Run with `cargo bench --bench wire`; the configuration below keeps the
//! whole run to a few minutes.

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use peerwire::codec::RpcCodec;
use peerwire::proto::{
    CallHeader, Message, MessageBody, RecordDecoder, RecordEncoder, RecordLimits,
};
use tokio_util::codec::{Decoder, Encoder};

/// Record (or argument) lengths: 64 B, 4 KiB, 1 MiB.
const SIZES: [usize; 3] = [64, 4 << 10, 1 << 20];

/// The fragment counts compared: one, and sixteen equal-sized ones.
const FRAGMENTS: [usize; 2] = [1, 16];

/// Large enough for the largest record, with room to spare.
const MAX_RECORD: usize = 2 << 20;

/// A deterministic, not all-zero payload.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) + 7) as u8).collect()
}

/// The page size that copy speed depends on, and where in a page a copy's
/// destination sits relative to its source (see [`placed_source`]).
const PAGE: usize = 4096;
const SKEW: usize = PAGE / 2;

/// A `len`-byte payload for copying into `dst`, placed so that the
/// destination lies [`SKEW`] bytes past the source, modulo a page.
///
/// On this machine's memmove a 4 KiB copy takes 55 ns at most relative
/// offsets but 128 ns when the destination lies just past the source
/// (16 bytes, modulo 4096), which is where glibc puts the second of two
/// back-to-back 4 KiB allocations. Left to the allocator, the baseline
/// flipped between the two from one run to the next; pinned, it does not.
/// Returns the buffer and the payload's range in it.
fn placed_source(dst: *const u8, len: usize) -> (Vec<u8>, std::ops::Range<usize>) {
    let buf = payload(len + PAGE);
    let want = (dst as usize).wrapping_sub(SKEW) % PAGE;
    let start = (want + PAGE - buf.as_ptr() as usize % PAGE) % PAGE;
    (buf, start..start + len)
}

/// The encoder that writes a `len`-byte record as `fragments` fragments.
fn encoder(len: usize, fragments: usize) -> RecordEncoder {
    if fragments == 1 {
        RecordEncoder::default()
    } else {
        let size = len.div_ceil(fragments);
        RecordEncoder::with_fragment_size(u32::try_from(size).expect("fragment size fits u32"))
    }
}

fn limits() -> RecordLimits {
    RecordLimits::with_max_record(MAX_RECORD).expect("valid limits")
}

fn label(fragments: usize) -> &'static str {
    if fragments == 1 {
        "1_fragment"
    } else {
        "16_fragments"
    }
}

/// How many setup inputs one timed batch may hold, in bytes.
const BATCH_BYTES: usize = 8 << 20;

/// Batches of at most 256 inputs and at most [`BATCH_BYTES`] in all: few
/// enough that the inputs written by the setup are still in cache, as a
/// read buffer just filled by the kernel would be, and many enough that the
/// clock is read rarely compared with the routine. (Criterion's
/// `SmallInput`, a tenth of the iterations per batch, would hold hundreds
/// of MiB of 1 MiB buffers and measure DRAM rather than the decoder.)
fn batch_size(len: usize) -> BatchSize {
    BatchSize::NumIterations((BATCH_BYTES / len).clamp(1, 256) as u64)
}

fn memcpy(c: &mut Criterion) {
    let mut group = c.benchmark_group("memcpy");
    for len in SIZES {
        let mut dst = BytesMut::with_capacity(len);
        let (buf, range) = placed_source(dst.as_ptr(), len);
        let src = &buf[range];
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(len), src, |b, src| {
            b.iter(|| {
                dst.clear();
                dst.extend_from_slice(black_box(src));
                black_box(&dst);
            });
        });
    }
    group.finish();
}

fn record_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_encode");
    for fragments in FRAGMENTS {
        for len in SIZES {
            let enc = encoder(len, fragments);
            let mut dst = BytesMut::with_capacity(enc.encoded_len(len));
            let at = dst.as_ptr();
            let (buf, range) = placed_source(at, len);
            let src = &buf[range];

            // Untimed: the encoding has the intended shape, and clearing
            // keeps the destination where `placed_source` assumed.
            enc.encode(src, &mut dst);
            assert_eq!(
                dst.len(),
                len + 4 * fragments,
                "{fragments} fragments of {len} bytes"
            );
            dst.clear();
            enc.encode(src, &mut dst);
            assert_eq!(dst.as_ptr(), at, "the destination stays put");

            group.throughput(Throughput::Bytes(len as u64));
            group.bench_with_input(BenchmarkId::new(label(fragments), len), src, |b, src| {
                b.iter(|| {
                    dst.clear();
                    enc.encode(black_box(src), &mut dst);
                    black_box(&dst);
                });
            });
        }
    }
    group.finish();
}

fn record_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_decode");
    for fragments in FRAGMENTS {
        for len in SIZES {
            let src = payload(len);
            let mut wire = BytesMut::new();
            encoder(len, fragments).encode(&src, &mut wire);
            let wire = wire.freeze();

            // Untimed: the bytes decode to the payload, consumed exactly.
            let mut check = BytesMut::from(&wire[..]);
            let record = RecordDecoder::new(limits())
                .decode(&mut check)
                .expect("valid record");
            assert_eq!(record.as_deref(), Some(&src[..]));
            assert!(check.is_empty());

            group.throughput(Throughput::Bytes(len as u64));
            group.bench_with_input(BenchmarkId::new(label(fragments), len), &wire, |b, wire| {
                b.iter_batched(
                    || BytesMut::from(&wire[..]),
                    |mut buf| {
                        let record = RecordDecoder::new(limits()).decode(&mut buf);
                        // The record is dropped here, timed, as a
                        // connection frees each record in turn: records
                        // held to the end of the batch would have every
                        // reassembled one fault in a fresh page per 4 KiB,
                        // measuring the kernel rather than the decoder.
                        // The read buffer is returned, and dropped untimed.
                        drop(black_box(record));
                        buf
                    },
                    batch_size(len),
                );
            });
        }
    }
    group.finish();
}

fn codec_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec_decode");
    for len in SIZES {
        let args = Bytes::from(payload(len));
        let call = Message::call(0x1234_5678, CallHeader::new(100_000, 2, 0), args.clone());
        let mut wire = BytesMut::new();
        RpcCodec::new(limits(), RecordEncoder::default())
            .encode(&call, &mut wire)
            .expect("encodable call");
        let wire = wire.freeze();

        // Untimed: the bytes decode to the call, consumed exactly.
        let mut check = BytesMut::from(&wire[..]);
        let decoded = RpcCodec::new(limits(), RecordEncoder::default())
            .decode(&mut check)
            .expect("valid record")
            .expect("a whole record")
            .expect("a valid call");
        assert_eq!(decoded, call);
        assert!(matches!(&decoded.body, MessageBody::Call { args: a, .. } if *a == args));
        assert!(check.is_empty());

        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("call", len), &wire, |b, wire| {
            b.iter_batched(
                || BytesMut::from(&wire[..]),
                |mut buf| {
                    let message =
                        RpcCodec::new(limits(), RecordEncoder::default()).decode(&mut buf);
                    drop(black_box(message));
                    buf
                },
                batch_size(len),
            );
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20)
}

criterion_group! {
    name = wire;
    config = config();
    targets = memcpy, record_encode, record_decode, codec_decode
}
criterion_main!(wire);
