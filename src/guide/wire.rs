//! # The wire format
//!
//! [`peerwire::proto`](crate::proto) is the pure wire layer: record marking
//! (RFC 5531 §11) with the fragment length, record length (default 16 MiB,
//! up to GlusterFS's 1 GiB) and fragment overhead checked on each header,
//! and memory that follows the bytes received, never the length a header
//! claims; XDR (RFC 4506) that never allocates more than its input could
//! hold; ONC RPC v2 calls and every reply shape; AUTH_SYS and GlusterFS
//! credential bodies. [`codec::RpcCodec`](crate::codec::RpcCodec) is the
//! tokio-util codec over it. A single-fragment record is a `Bytes` slice of
//! the read buffer (no copy); a multi-fragment record is copied exactly
//! once, as it arrives. The crate docs draw the record header and decode a
//! captured call.
//!
//! It is checked against bytes captured from rpcinfo, rpcbind 1.2.6 and
//! glusterd 10.3 (`tests/data/`), by property tests, by the cargo-fuzz
//! targets in `fuzz/`, and against C that nobody here wrote:
//! `tests/rpcgen.rs` builds a server and a client from
//! `tests/rpcgen/pwtest.x` with `rpcgen -M` and libtirpc (Debian's
//! `rpcsvc-proto`, `libtirpc-dev`) and runs peerwire against them both ways
//! over 127.0.0.1 and ::1, without rpcbind: libtirpc's 96-byte and 64 KiB
//! fragments and its empty last fragments, a 1 MiB call in 10,924
//! fragments, the bound source `svc_getcaller` reports, 200 calls
//! pipelined on one connection to the sequential C server, and AUTH_SYS
//! credentials both ways.
//!
//! Encoding a record and reading it back, in three fragments:
//!
//! ```
//! use bytes::BytesMut;
//! use peerwire::proto::{RecordDecoder, RecordEncoder, RecordLimits};
//!
//! let mut wire = BytesMut::new();
//! RecordEncoder::with_fragment_size(4).encode(b"ten bytes!", &mut wire);
//! assert_eq!(wire.len(), 10 + 3 * 4); // three fragment headers
//!
//! let mut records = RecordDecoder::new(RecordLimits::default());
//! let record = records.decode(&mut wire)?.expect("a whole record");
//! assert_eq!(&record[..], b"ten bytes!");
//! # Ok::<(), peerwire::proto::DecodeError>(())
//! ```
//!
//! Its speed, against `memcpy` in the same run, is in `BENCHMARKS.md`.
