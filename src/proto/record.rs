//! Record marking (RFC 5531 §11): a record is a sequence of fragments, each
//! with a 4-byte header whose top bit marks the last fragment and whose low
//! 31 bits are the fragment's length.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-------------------------------------------------------------+
//! |L|              fragment length (31 bits)                      |
//! +-+-------------------------------------------------------------+
//! |                fragment data (length bytes) ...               |
//! ```
//!
//! The decoder is a state machine over a `BytesMut` read buffer, in the
//! manner of tokio-util's codecs: it returns `Ok(None)` until a whole record
//! is there, and checks every limit on a fragment header before it takes
//! the fragment's data.
//!
//! Memory follows the bytes received, never the length a header claims: a
//! header alone reserves nothing, whatever it announces (the reader grows
//! its buffer as bytes arrive). Once 64 KiB of a record's only fragment are
//! there, the decoder sizes the buffer for more of it, exactly, but never
//! more than 16 times the bytes received, so a large record is not copied
//! over and over while its buffer doubles.
//!
//! - A record of one fragment is handed out without copying: a `Bytes` slice
//!   of the read buffer.
//! - A record of several fragments is copied, as its bytes arrive, into one
//!   buffer that grows with them (by doubling, so a large record is copied
//!   a bounded number of times); its fragments cost no memory of their own.
//! - The fragments of a record are bounded by their overhead, not by a flat
//!   count: any record may have [`RecordLimits::max_fragments`] fragments,
//!   and each [`BYTES_PER_EXTRA_FRAGMENT`] bytes of its data allow one more.
//!   libtirpc with its smallest buffer sends a 1 MB call as 10,418
//!   fragments of 96 bytes, which that allows; a flood of empty fragments
//!   is refused after `max_fragments` of them.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::{DecodeError, DecodeErrorKind};

/// The last-fragment bit of a fragment header.
pub const LAST_FRAGMENT: u32 = 0x8000_0000;

/// The longest fragment the header can express: 2^31 - 1 bytes.
pub const MAX_FRAGMENT_LEN: u32 = 0x7fff_ffff;

/// The highest record limit that may be configured: 1 GiB, where GlusterFS
/// fails a connection.
pub const MAX_RECORD_CEILING: usize = 1 << 30;

/// A fragment header: `len` with the last-fragment bit when `last`.
///
/// # Panics
///
/// If `len` exceeds [`MAX_FRAGMENT_LEN`].
pub fn record_header(len: u32, last: bool) -> [u8; 4] {
    assert!(
        len <= MAX_FRAGMENT_LEN,
        "fragment length {len} needs more than 31 bits"
    );
    (len | if last { LAST_FRAGMENT } else { 0 }).to_be_bytes()
}

/// Each this many bytes of a record's data allow it one fragment beyond
/// [`RecordLimits::max_fragments`]: the record's headers may cost at most 4
/// bytes per 64 of data (one sixteenth) on top of that base. A peer that
/// splits a large record into fragments of 64 bytes or more is never
/// refused for their number; a peer that sends headers without data is
/// refused after `max_fragments` of them.
pub const BYTES_PER_EXTRA_FRAGMENT: usize = 64;

/// Limits that bound what one record may cost.
///
/// - `max_fragment`: the longest fragment.
/// - `max_record`: the longest record (the sum of its fragments' data).
/// - `max_fragments`: the fragments any record may have, whatever their
///   size; a record may have one more for each [`BYTES_PER_EXTRA_FRAGMENT`]
///   bytes of data received before the fragment's header (see
///   [`RecordLimits::fragments_allowed`]).
///
/// No limit reserves memory: the decoder holds what has arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordLimits {
    max_fragment: u32,
    max_record: usize,
    max_fragments: u32,
}

/// Limits that are zero or above their ceiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidLimits(&'static str);

impl InvalidLimits {
    pub(crate) fn new(why: &'static str) -> InvalidLimits {
        InvalidLimits(why)
    }
}

impl std::fmt::Display for InvalidLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid record limits: {}", self.0)
    }
}

impl std::error::Error for InvalidLimits {}

impl Default for RecordLimits {
    /// 16 MiB per record and per fragment; 4096 fragments per record, plus
    /// one per [`BYTES_PER_EXTRA_FRAGMENT`] bytes of data.
    fn default() -> RecordLimits {
        RecordLimits {
            max_fragment: 16 << 20,
            max_record: 16 << 20,
            max_fragments: 4096,
        }
    }
}

impl RecordLimits {
    /// Limits on one fragment's length, one record's length (at most
    /// [`MAX_RECORD_CEILING`]) and the fragments any record may have (more
    /// with its data: see [`RecordLimits::fragments_allowed`]). The
    /// fragment limit is capped at the record limit.
    pub fn new(
        max_fragment: u32,
        max_record: usize,
        max_fragments: u32,
    ) -> Result<RecordLimits, InvalidLimits> {
        if max_record == 0 || max_record > MAX_RECORD_CEILING {
            return Err(InvalidLimits(
                "the record limit must be from 1 byte to 1 GiB",
            ));
        }
        if max_fragment == 0 || max_fragment > MAX_FRAGMENT_LEN {
            return Err(InvalidLimits(
                "the fragment limit must be from 1 byte to 2^31-1",
            ));
        }
        if max_fragments == 0 {
            return Err(InvalidLimits("a record needs at least one fragment"));
        }
        Ok(RecordLimits {
            max_fragment: max_fragment.min(max_record as u32),
            max_record,
            max_fragments,
        })
    }

    /// The default limits with another record limit (the fragment limit
    /// follows it).
    pub fn with_max_record(max_record: usize) -> Result<RecordLimits, InvalidLimits> {
        let fragment = u32::try_from(max_record).unwrap_or(MAX_FRAGMENT_LEN);
        RecordLimits::new(fragment, max_record, RecordLimits::default().max_fragments)
    }

    /// The longest fragment accepted.
    pub fn max_fragment(&self) -> u32 {
        self.max_fragment
    }

    /// The longest record accepted.
    pub fn max_record(&self) -> usize {
        self.max_record
    }

    /// The fragments any record may have, whatever their size (see
    /// [`RecordLimits::fragments_allowed`] for records with data).
    pub fn max_fragments(&self) -> u32 {
        self.max_fragments
    }

    /// The fragments a record may have once `data` bytes of it have
    /// arrived: [`RecordLimits::max_fragments`] plus one per
    /// [`BYTES_PER_EXTRA_FRAGMENT`] bytes. A fragment's header is checked
    /// against the allowance of the data before it, so every fragment
    /// costs at least its 4-byte header and an allowance is earned only
    /// with bytes actually sent. At most
    /// `max_fragments + max_record / 64` (266,240 with the defaults).
    pub fn fragments_allowed(&self, data: usize) -> u64 {
        u64::from(self.max_fragments) + (data / BYTES_PER_EXTRA_FRAGMENT) as u64
    }
}

/// Bytes of a record's only fragment that must have arrived before the
/// decoder sizes the read buffer for more of it; below this the reader's own
/// chunks (up to 64 KiB) do.
const GROW_AFTER: usize = 64 * 1024;

/// How far ahead of the bytes received the read buffer may be sized for a
/// record's only fragment: at most this many times the bytes of it already
/// there (and never past its end). Memory still follows bytes received, to
/// within this factor, and a large record is copied at most a small
/// fraction of its size while its buffer grows (about 1/16 of a 1 MiB
/// record, instead of once or twice over with the buffer's own doubling).
const GROW_FACTOR: usize = 16;

/// Room kept past a fragment's end when the buffer is sized for it: the
/// next header and the start of what follows, so the reader never needs to
/// grow (and double) the buffer just before the fragment completes.
const GROW_SLACK: usize = 64 * 1024;

/// Sizes `buf`, which holds the first bytes of a record's only fragment of
/// `len` bytes, for more of it, exactly: never past the fragment's end plus
/// [`GROW_SLACK`], never more than [`GROW_FACTOR`] times what arrived.
fn grow_for(buf: &mut BytesMut, len: usize) {
    let have = buf.len();
    if have < GROW_AFTER {
        return;
    }
    let target = len.min(have.saturating_mul(GROW_FACTOR)) + GROW_SLACK;
    // Only when the reader would otherwise have to grow it soon.
    if buf.capacity() - have >= GROW_SLACK / 2 || buf.capacity() >= target {
        return;
    }
    let mut sized = BytesMut::with_capacity(target);
    sized.extend_from_slice(buf);
    *buf = sized;
}

/// Reassembles records from a byte stream.
#[derive(Debug)]
pub struct RecordDecoder {
    limits: RecordLimits,
    /// The fragment whose data we wait for.
    pending: Option<Fragment>,
    /// The data of a record of several fragments, copied as it arrives.
    assembly: BytesMut,
    /// Fragments of the current record whose headers were taken; 0 between
    /// records.
    fragments: u64,
    /// Stream offset of the read buffer's first byte.
    offset: u64,
    /// Stream offset where the current record began.
    record_start: u64,
}

#[derive(Clone, Copy, Debug)]
struct Fragment {
    /// Bytes of its data still to come.
    left: usize,
    last: bool,
    /// The record's first fragment and its last: the whole record, handed
    /// out as a slice of the read buffer once all of it is there.
    whole: bool,
}

impl RecordDecoder {
    /// A decoder with these limits.
    pub fn new(limits: RecordLimits) -> RecordDecoder {
        RecordDecoder {
            limits,
            pending: None,
            assembly: BytesMut::new(),
            fragments: 0,
            offset: 0,
            record_start: 0,
        }
    }

    /// The limits.
    pub fn limits(&self) -> &RecordLimits {
        &self.limits
    }

    /// Replaces the limits. Call it between records
    /// ([`RecordDecoder::is_idle`]): they apply to the next record's
    /// headers (a server lifts its pre-HELLO limits once HELLO succeeds).
    /// Mid-record they apply from the next fragment header on.
    pub fn set_limits(&mut self, limits: RecordLimits) {
        self.limits = limits;
    }

    /// Bytes of a record of several fragments copied so far; never more
    /// than the record limit. (A record's only fragment waits in the read
    /// buffer instead, and is not counted.)
    pub fn held_bytes(&self) -> usize {
        self.assembly.len()
    }

    /// True when no partial record is held: the stream may end here.
    pub fn is_idle(&self) -> bool {
        self.fragments == 0
    }

    /// Takes the next whole record from the front of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed; the bytes seen so far
    /// are consumed or kept as needed, and nothing is reserved in `buf` for
    /// what a header announces. An error leaves the stream out of sync: the
    /// connection must be closed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, DecodeError> {
        loop {
            let mut fragment = match self.pending.take() {
                Some(fragment) => fragment,
                None => {
                    if buf.len() < 4 {
                        return Ok(None);
                    }
                    let fragment =
                        self.check_header(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]))?;
                    if self.fragments == 0 {
                        self.record_start = self.offset;
                    }
                    self.fragments += 1;
                    buf.advance(4);
                    self.offset += 4;
                    fragment
                }
            };
            if fragment.whole {
                // One fragment: it stays in the read buffer, which the
                // reader grows as its bytes arrive, and leaves as a slice.
                if buf.len() < fragment.left {
                    grow_for(buf, fragment.left);
                    self.pending = Some(fragment);
                    return Ok(None);
                }
                self.offset += fragment.left as u64;
                self.fragments = 0;
                return Ok(Some(buf.split_to(fragment.left).freeze()));
            }
            // Several: what has arrived is copied out at once, so the read
            // buffer stays small and no slice per fragment is kept.
            let take = fragment.left.min(buf.len());
            self.assembly.extend_from_slice(&buf[..take]);
            buf.advance(take);
            self.offset += take as u64;
            fragment.left -= take;
            if fragment.left > 0 {
                self.pending = Some(fragment);
                return Ok(None);
            }
            if fragment.last {
                self.fragments = 0;
                return Ok(Some(std::mem::take(&mut self.assembly).freeze()));
            }
        }
    }

    /// Like [`RecordDecoder::decode`], at the end of the stream: a partial
    /// record left over is an error.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, DecodeError> {
        match self.decode(buf)? {
            Some(record) => Ok(Some(record)),
            None if buf.is_empty() && self.is_idle() => Ok(None),
            None => {
                // A partial header of a new record starts at the unread
                // bytes; otherwise the record began at `record_start`.
                let at = if self.is_idle() {
                    self.offset
                } else {
                    self.record_start
                };
                Err(DecodeError::new(DecodeErrorKind::TruncatedRecord, at))
            }
        }
    }

    /// Checks a fragment header against the limits, before any of its data
    /// is taken.
    fn check_header(&self, raw: u32) -> Result<Fragment, DecodeError> {
        let len = raw & MAX_FRAGMENT_LEN;
        let last = raw & LAST_FRAGMENT != 0;
        let fail = |kind| Err(DecodeError::new(kind, self.offset));
        if len > self.limits.max_fragment {
            return fail(DecodeErrorKind::FragmentTooLong {
                len,
                max: self.limits.max_fragment,
            });
        }
        let held = self.assembly.len();
        let total = held as u64 + u64::from(len);
        if total > self.limits.max_record as u64 {
            return fail(DecodeErrorKind::RecordTooLong {
                len: total,
                max: self.limits.max_record as u64,
            });
        }
        // This one and those before it, against what the data before it
        // allows: an empty fragment is counted too, so a flood of them
        // cannot spin for ever.
        let allowed = self.limits.fragments_allowed(held);
        if self.fragments + 1 > allowed {
            return fail(DecodeErrorKind::TooManyFragments {
                max: u32::try_from(allowed).unwrap_or(u32::MAX),
            });
        }
        Ok(Fragment {
            left: len as usize,
            last,
            whole: last && self.fragments == 0,
        })
    }
}

/// Writes records: one fragment by default, or fragments of at most a
/// given size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordEncoder {
    fragment_size: u32,
}

impl Default for RecordEncoder {
    /// One fragment per record (GlusterFS and libtirpc peers expect no
    /// more, and accept many).
    fn default() -> RecordEncoder {
        RecordEncoder {
            fragment_size: MAX_FRAGMENT_LEN,
        }
    }
}

impl RecordEncoder {
    /// Splits records into fragments of at most `fragment_size` bytes
    /// (1 to 2^31-1; 0 is read as 1).
    pub fn with_fragment_size(fragment_size: u32) -> RecordEncoder {
        RecordEncoder {
            fragment_size: fragment_size.clamp(1, MAX_FRAGMENT_LEN),
        }
    }

    /// The largest fragment written.
    pub fn fragment_size(&self) -> u32 {
        self.fragment_size
    }

    /// The bytes `encode` writes for a record of `len` bytes.
    pub fn encoded_len(&self, len: usize) -> usize {
        let fragments = len.div_ceil(self.fragment_size as usize).max(1);
        len + 4 * fragments
    }

    /// Appends `record` to `dst` as one or more fragments. An empty record
    /// is one empty last fragment.
    pub fn encode(&self, record: &[u8], dst: &mut BytesMut) {
        dst.reserve(self.encoded_len(record.len()));
        let mut chunks = record.chunks(self.fragment_size as usize).peekable();
        if chunks.peek().is_none() {
            dst.put_slice(&record_header(0, true));
            return;
        }
        while let Some(chunk) = chunks.next() {
            // A chunk is at most fragment_size <= 2^31-1 bytes.
            dst.put_slice(&record_header(chunk.len() as u32, chunks.peek().is_none()));
            dst.put_slice(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(frag: u32, record: usize, count: u32) -> RecordLimits {
        RecordLimits::new(frag, record, count).unwrap()
    }

    /// Feeds `record` (one fragment of `len` bytes) the way a reader
    /// does, in 64 KiB reads into the buffer's spare room; returns the
    /// largest capacity the buffer reached and the record.
    fn read_like_a_reader(len: usize, sent: usize) -> (usize, Option<Bytes>) {
        let mut decoder = RecordDecoder::new(RecordLimits::default());
        let mut wire = Vec::from(record_header(len as u32, true));
        wire.extend(std::iter::repeat_n(7u8, sent));
        let mut buf = BytesMut::new();
        let mut largest = 0;
        let mut out = None;
        for chunk in wire.chunks(64 * 1024) {
            if buf.capacity() - buf.len() < 32 * 1024 {
                buf.reserve(64 * 1024);
            }
            buf.extend_from_slice(chunk);
            largest = largest.max(buf.capacity());
            if let Some(record) = decoder.decode(&mut buf).unwrap() {
                out = Some(record);
            }
            largest = largest.max(buf.capacity());
        }
        (largest, out)
    }

    #[test]
    fn a_large_fragment_is_sized_exactly_not_doubled_past_its_end() {
        let len = 1 << 20;
        let (largest, record) = read_like_a_reader(len, len);
        assert_eq!(record.map(|r| r.len()), Some(len));
        // The fragment plus the slack, not the 2 MiB a doubling reaches.
        assert!(largest <= len + 2 * GROW_SLACK, "{largest}");
    }

    #[test]
    fn a_claimed_fragment_is_sized_by_the_bytes_received() {
        // 16 MiB claimed, 128 KiB sent.
        let (largest, record) = read_like_a_reader(16 << 20, 128 * 1024);
        assert!(record.is_none());
        assert!(
            largest <= 128 * 1024 * GROW_FACTOR + 2 * GROW_SLACK,
            "{largest}"
        );
        assert!(largest < 4 << 20, "{largest}");
    }

    #[test]
    fn header_layout() {
        assert_eq!(record_header(40, true), [0x80, 0, 0, 40]);
        assert_eq!(record_header(0x7fff_ffff, false), [0x7f, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn limits_are_validated() {
        assert!(RecordLimits::with_max_record(MAX_RECORD_CEILING).is_ok());
        assert!(RecordLimits::with_max_record(MAX_RECORD_CEILING + 1).is_err());
        assert!(RecordLimits::new(0, 10, 1).is_err());
        assert!(RecordLimits::new(10, 10, 0).is_err());
        assert_eq!(
            limits(100, 10, 1).max_fragment(),
            10,
            "fragment limit capped at record limit"
        );
    }

    #[test]
    fn encodes_one_fragment_by_default_and_splits_on_request() {
        let mut out = BytesMut::new();
        RecordEncoder::default().encode(b"abcdefgh", &mut out);
        assert_eq!(&out[..], b"\x80\x00\x00\x08abcdefgh");

        let mut out = BytesMut::new();
        RecordEncoder::with_fragment_size(3).encode(b"abcdefgh", &mut out);
        assert_eq!(
            &out[..],
            b"\x00\x00\x00\x03abc\x00\x00\x00\x03def\x80\x00\x00\x02gh"
        );
        assert_eq!(
            RecordEncoder::with_fragment_size(3).encoded_len(8),
            out.len()
        );

        let mut out = BytesMut::new();
        RecordEncoder::default().encode(b"", &mut out);
        assert_eq!(&out[..], b"\x80\x00\x00\x00");
    }

    #[test]
    fn waits_for_the_whole_record_then_consumes_it_exactly() {
        let mut dec = RecordDecoder::new(RecordLimits::default());
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x02ab\x80\x00"[..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"\x00\x01cXYZ");
        assert_eq!(
            dec.decode(&mut buf).unwrap().unwrap(),
            Bytes::from_static(b"abc")
        );
        assert_eq!(
            &buf[..],
            b"XYZ",
            "bytes after the record stay in the buffer"
        );
    }

    #[test]
    fn truncated_header_after_a_record_is_reported_where_it_starts() {
        let mut dec = RecordDecoder::new(RecordLimits::default());
        let mut buf = BytesMut::from(&b"\x80\x00\x00\x00\x01"[..]);
        assert_eq!(dec.decode_eof(&mut buf).unwrap(), Some(Bytes::new()));
        let err = dec.decode_eof(&mut buf).unwrap_err();
        assert_eq!(err, DecodeError::new(DecodeErrorKind::TruncatedRecord, 4));
    }

    #[test]
    fn empty_record_is_a_record() {
        let mut dec = RecordDecoder::new(RecordLimits::default());
        let mut buf = BytesMut::from(&b"\x80\x00\x00\x00"[..]);
        assert_eq!(dec.decode(&mut buf).unwrap().unwrap(), Bytes::new());
        assert!(dec.is_idle());
    }
}
