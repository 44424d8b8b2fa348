//! XDR (RFC 4506): big-endian, every item padded to a multiple of 4 bytes.
//!
//! [`XdrReader`] never panics and never allocates more than the remaining
//! input could hold: a length is checked against its bound and against the
//! bytes left before anything is reserved. Padding is written as zeros;
//! non-zero padding is accepted on input, as libtirpc does.
//!
//! [`XdrEncode`] and [`XdrDecode`] give typed arguments and results.
//!
//! A reader made with [`XdrReader::from_shared`] over a received record
//! hands out `opaque` and `string` data as [`Bytes`] slices of that record
//! ([`XdrReader::opaque_bytes`], [`XdrReader::string_bytes`]): no copy, and
//! no allocation. A reader made with [`XdrReader::new`] over a plain slice
//! copies them.

mod string;

use bytes::{BufMut, Bytes, BytesMut};

pub use self::string::XdrString;
use super::error::{DecodeError, DecodeErrorKind};

/// Bytes of padding after `len` bytes of data (RFC 4506 §3).
pub fn padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Reads XDR items from a byte slice.
#[derive(Clone, Debug)]
pub struct XdrReader<'a> {
    buf: &'a [u8],
    /// The `Bytes` that `buf` is all of, when made by `from_shared`.
    shared: Option<&'a Bytes>,
    pos: usize,
    /// Offset of `buf[0]` in the record, for error offsets.
    base: u64,
}

impl<'a> XdrReader<'a> {
    /// A reader over `buf`.
    /// [`Bytes`] it hands out are copies.
    pub fn new(buf: &'a [u8]) -> XdrReader<'a> {
        XdrReader::with_base(buf, 0)
    }

    /// A reader over `buf`, which starts `base` bytes into its record (so
    /// that error offsets count from the record's start).
    pub fn with_base(buf: &'a [u8], base: u64) -> XdrReader<'a> {
        XdrReader {
            buf,
            shared: None,
            pos: 0,
            base,
        }
    }

    /// A reader over `buf` whose [`Bytes`] and [`XdrString`] items are
    /// slices of `buf` ([`Bytes::slice`]): no copy, no allocation.
    pub fn from_shared(buf: &'a Bytes) -> XdrReader<'a> {
        XdrReader::from_shared_with_base(buf, 0)
    }

    /// [`XdrReader::from_shared`] for `buf` that starts `base` bytes into
    /// its record (so that error offsets count from the record's start).
    pub fn from_shared_with_base(buf: &'a Bytes, base: u64) -> XdrReader<'a> {
        XdrReader {
            buf,
            shared: Some(buf),
            pos: 0,
            base,
        }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not yet read.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// True when everything has been read.
    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// An error of `kind` at the current position.
    pub fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::new(kind, self.base + self.pos as u64)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let left = self.buf.len() - self.pos;
        if n > left {
            let needed = u32::try_from(n - left).unwrap_or(u32::MAX);
            return Err(self.error(DecodeErrorKind::UnexpectedEnd { needed }));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// An unsigned int.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An int.
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        self.u32().map(|v| v as i32)
    }

    /// An unsigned hyper.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A hyper.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        self.u64().map(|v| v as i64)
    }

    /// A bool: 0 or 1, anything else is an error.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        let at = self.clone();
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(at.error(DecodeErrorKind::InvalidBool(v))),
        }
    }

    /// An enum's discriminant (a signed int); the caller maps it.
    pub fn enumeration(&mut self) -> Result<i32, DecodeError> {
        self.i32()
    }

    /// Fixed-length opaque data of `len` bytes, and its padding.
    pub fn opaque_fixed(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let data = self.take(len)?;
        self.take(padding(len))?;
        Ok(data)
    }

    /// Variable-length opaque data of at most `max` bytes (`opaque<max>`).
    pub fn opaque(&mut self, max: u32) -> Result<&'a [u8], DecodeError> {
        let len = self.length(max)?;
        self.opaque_fixed(len)
    }

    /// Fixed-length opaque data of `len` bytes (`opaque[len]`), and its
    /// padding, as [`Bytes`]: a slice of the input when the reader was made
    /// by [`XdrReader::from_shared`], a copy otherwise. The length is
    /// checked against the bytes left before anything is allocated.
    pub fn opaque_fixed_bytes(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        let data = self.opaque_fixed(len)?;
        Ok(match self.shared {
            Some(shared) => shared.slice(start..start + len),
            None => Bytes::copy_from_slice(data),
        })
    }

    /// Variable-length opaque data of at most `max` bytes (`opaque<max>`)
    /// as [`Bytes`], zero-copy as for [`XdrReader::opaque_fixed_bytes`].
    /// The length is checked against `max` and the bytes left first.
    pub fn opaque_bytes(&mut self, max: u32) -> Result<Bytes, DecodeError> {
        let len = self.length(max)?;
        self.opaque_fixed_bytes(len)
    }

    /// A string of at most `max` bytes (`string<max>`) kept as the bytes on
    /// the wire, whatever they are (see [`XdrString`]); zero-copy as for
    /// [`XdrReader::opaque_fixed_bytes`].
    pub fn string_bytes(&mut self, max: u32) -> Result<XdrString, DecodeError> {
        self.opaque_bytes(max).map(XdrString::from)
    }

    /// A string of at most `max` bytes (`string<max>`), as UTF-8: a string
    /// that is not is [`DecodeErrorKind::InvalidUtf8`]. For peer text that
    /// may hold any byte, use [`XdrReader::string_bytes`].
    pub fn string(&mut self, max: u32) -> Result<&'a str, DecodeError> {
        let start = self.clone();
        let bytes = self.opaque(max)?;
        std::str::from_utf8(bytes).map_err(|_| start.error(DecodeErrorKind::InvalidUtf8))
    }

    /// Optional data (`T *`): a bool, then `T` when it is 1.
    pub fn optional<T>(
        &mut self,
        item: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        if self.bool()? {
            item(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A variable-length array of at most `max` items (`T<max>`). Each item
    /// takes at least 4 bytes on the wire, so the count is also checked
    /// against the bytes left before the vector is allocated.
    pub fn array<T>(
        &mut self,
        max: u32,
        item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let at = self.clone();
        let count = self.u32()?;
        if count > max {
            return Err(at.error(DecodeErrorKind::LengthOverBound { len: count, max }));
        }
        self.fixed_array(count as usize, item)
    }

    /// A fixed-length array of `count` items (`T[count]`), checked against
    /// the bytes left before the vector is allocated.
    pub fn fixed_array<T>(
        &mut self,
        count: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let left = (self.buf.len() - self.pos) / 4;
        if count > left {
            let needed = u32::try_from((count - left).saturating_mul(4)).unwrap_or(u32::MAX);
            return Err(self.error(DecodeErrorKind::UnexpectedEnd { needed }));
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(item(self)?);
        }
        Ok(out)
    }

    /// A length prefix, checked against `max` and against the bytes left.
    fn length(&mut self, max: u32) -> Result<usize, DecodeError> {
        let at = self.clone();
        let len = self.u32()?;
        if len > max {
            return Err(at.error(DecodeErrorKind::LengthOverBound { len, max }));
        }
        Ok(len as usize)
    }
}

/// Appends XDR items to a buffer, or counts the bytes they would take
/// ([`encoded_len`]).
#[derive(Debug)]
pub struct XdrWriter<'a> {
    sink: Sink<'a>,
    /// The first item over its bound ([`XdrWriter::bound`]).
    over: Option<EncodeError>,
}

/// Where a writer's bytes go.
#[derive(Debug)]
enum Sink<'a> {
    Buf(&'a mut BytesMut),
    /// Nowhere: only their number is kept.
    Count(usize),
}

impl<'a> XdrWriter<'a> {
    /// A writer appending to `buf`.
    pub fn new(buf: &'a mut BytesMut) -> XdrWriter<'a> {
        XdrWriter {
            sink: Sink::Buf(buf),
            over: None,
        }
    }

    /// Notes a variable-length item of `len` bytes or items whose type
    /// allows at most `max`: one over its bound is kept as this writer's
    /// [`XdrWriter::over_bound`] (the first such), as a peer would refuse
    /// to decode it. Generated encoders call this before every bounded
    /// `opaque<N>`, `string<N>`, `T<N>` and linked list; [`try_to_bytes`]
    /// and typed calls refuse a value that is over.
    pub fn bound(&mut self, len: usize, max: u32) {
        if len > max as usize && self.over.is_none() {
            self.over = Some(EncodeError { len, max });
        }
    }

    /// The first item written over its bound, if any.
    pub fn over_bound(&self) -> Option<EncodeError> {
        self.over
    }

    /// An unsigned int.
    pub fn u32(&mut self, v: u32) {
        match &mut self.sink {
            Sink::Buf(buf) => buf.put_u32(v),
            Sink::Count(n) => *n += 4,
        }
    }

    /// An int.
    pub fn i32(&mut self, v: i32) {
        self.u32(v as u32);
    }

    /// An unsigned hyper.
    pub fn u64(&mut self, v: u64) {
        match &mut self.sink {
            Sink::Buf(buf) => buf.put_u64(v),
            Sink::Count(n) => *n += 8,
        }
    }

    /// A hyper.
    pub fn i64(&mut self, v: i64) {
        self.u64(v as u64);
    }

    /// A bool.
    pub fn bool(&mut self, v: bool) {
        self.u32(u32::from(v));
    }

    /// Fixed-length opaque data, then zero padding.
    pub fn opaque_fixed(&mut self, data: &[u8]) {
        match &mut self.sink {
            Sink::Buf(buf) => {
                buf.put_slice(data);
                buf.put_bytes(0, padding(data.len()));
            }
            Sink::Count(n) => *n += data.len() + padding(data.len()),
        }
    }

    /// Variable-length opaque data: length, data, zero padding.
    ///
    /// # Panics
    ///
    /// If `data` is 4 GiB or longer, which XDR cannot express.
    pub fn opaque(&mut self, data: &[u8]) {
        let len = u32::try_from(data.len()).expect("XDR opaque data is shorter than 4 GiB");
        self.u32(len);
        self.opaque_fixed(data);
    }

    /// A string: length, bytes, zero padding.
    pub fn string(&mut self, s: &str) {
        self.opaque(s.as_bytes());
    }

    /// A string kept as bytes: length, bytes, zero padding.
    pub fn string_bytes(&mut self, s: &XdrString) {
        self.opaque(s.as_bytes());
    }

    /// Optional data: a bool, then the item when present.
    pub fn optional<T>(&mut self, value: Option<&T>, item: impl FnOnce(&mut Self, &T)) {
        self.bool(value.is_some());
        if let Some(v) = value {
            item(self, v);
        }
    }

    /// A variable-length array: count, then each item.
    pub fn array<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        let count = u32::try_from(items.len()).expect("XDR arrays have fewer than 2^32 items");
        self.u32(count);
        for v in items {
            item(self, v);
        }
    }

    /// A fixed-length array: each item, no count.
    pub fn fixed_array<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        for v in items {
            item(self, v);
        }
    }

    /// Raw bytes, already in XDR form.
    pub fn raw(&mut self, bytes: &[u8]) {
        match &mut self.sink {
            Sink::Buf(buf) => buf.put_slice(bytes),
            Sink::Count(n) => *n += bytes.len(),
        }
    }
}

/// A value with an XDR encoding.
pub trait XdrEncode {
    /// Appends the value.
    fn encode(&self, w: &mut XdrWriter<'_>);
}

/// A value that can be read from XDR.
pub trait XdrDecode: Sized {
    /// Reads the value.
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, DecodeError>;
}

/// A variable-length item over the bound its XDR type sets (`opaque<N>`,
/// `string<N>`, `T<N>`, a linked list longer than the generator's cap):
/// a peer would refuse to decode it, so it is not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("an item of {len} bytes or elements over its XDR bound of {max}")]
pub struct EncodeError {
    /// The item's length, in bytes or elements.
    pub len: usize,
    /// Its bound.
    pub max: u32,
}

/// Runs `value`'s encoder without writing anything: its length in bytes,
/// and the first item over its bound.
fn measure<T: XdrEncode + ?Sized>(value: &T) -> (usize, Option<EncodeError>) {
    let mut w = XdrWriter {
        sink: Sink::Count(0),
        over: None,
    };
    value.encode(&mut w);
    match w.sink {
        Sink::Count(n) => (n, w.over),
        Sink::Buf(_) => unreachable!("made as a counter above"),
    }
}

/// The number of bytes `value` encodes to. It runs the value's encoder
/// without writing anything: opaque data and strings are counted, not
/// copied.
pub fn encoded_len<T: XdrEncode + ?Sized>(value: &T) -> usize {
    measure(value).0
}

/// Checks that no item of `value` is over its bound (see
/// [`XdrWriter::bound`]), without writing anything.
pub fn check_bounds<T: XdrEncode + ?Sized>(value: &T) -> Result<(), EncodeError> {
    match measure(value).1 {
        Some(over) => Err(over),
        None => Ok(()),
    }
}

/// Encodes `value` into a new buffer of exactly its size: one allocation
/// (a buffer with room to spare would cost a second, for the shared
/// header `Bytes` puts on it when it is frozen). Items over their bounds
/// are written as they are; [`try_to_bytes`] refuses them.
pub fn to_bytes<T: XdrEncode + ?Sized>(value: &T) -> Bytes {
    encode_exact(value, encoded_len(value))
}

/// [`to_bytes`], refusing a value with an item over its bound. The check
/// comes with the sizing pass `to_bytes` makes anyway: it costs nothing
/// more.
pub fn try_to_bytes<T: XdrEncode + ?Sized>(value: &T) -> Result<Bytes, EncodeError> {
    match measure(value) {
        (_, Some(over)) => Err(over),
        (len, None) => Ok(encode_exact(value, len)),
    }
}

/// `value` encoded into a new buffer of `len` bytes, its encoded length.
fn encode_exact<T: XdrEncode + ?Sized>(value: &T, len: usize) -> Bytes {
    let mut buf = BytesMut::with_capacity(len);
    value.encode(&mut XdrWriter::new(&mut buf));
    buf.freeze()
}

/// Decodes a `T` that must take all of `bytes`. Trailing bytes are an
/// error of kind [`DecodeErrorKind::TrailingBytes`] at their offset.
pub fn from_bytes<T: XdrDecode>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut r = XdrReader::new(bytes);
    let value = T::decode(&mut r)?;
    if !r.is_empty() {
        let len = u32::try_from(r.remaining().len()).unwrap_or(u32::MAX);
        return Err(r.error(DecodeErrorKind::TrailingBytes { len }));
    }
    Ok(value)
}

/// [`from_bytes`] over a shared buffer: [`Bytes`] and [`XdrString`] items
/// in the value are slices of `bytes`, not copies.
pub fn from_shared<T: XdrDecode>(bytes: &Bytes) -> Result<T, DecodeError> {
    let mut r = XdrReader::from_shared(bytes);
    let value = T::decode(&mut r)?;
    if !r.is_empty() {
        let len = u32::try_from(r.remaining().len()).unwrap_or(u32::MAX);
        return Err(r.error(DecodeErrorKind::TrailingBytes { len }));
    }
    Ok(value)
}

macro_rules! xdr_int {
    ($($t:ty => $m:ident),*) => {$(
        impl XdrEncode for $t {
            fn encode(&self, w: &mut XdrWriter<'_>) { w.$m(*self) }
        }
        impl XdrDecode for $t {
            fn decode(r: &mut XdrReader<'_>) -> Result<Self, DecodeError> { r.$m() }
        }
    )*};
}

xdr_int!(u32 => u32, i32 => i32, u64 => u64, i64 => i64, bool => bool);

impl XdrEncode for () {
    fn encode(&self, _: &mut XdrWriter<'_>) {}
}

impl XdrDecode for () {
    fn decode(_: &mut XdrReader<'_>) -> Result<Self, DecodeError> {
        Ok(())
    }
}

impl XdrEncode for str {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.string(self)
    }
}

impl XdrEncode for String {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.string(self)
    }
}

impl XdrDecode for String {
    /// `string<>`: bounded only by the input.
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, DecodeError> {
        r.string(u32::MAX).map(str::to_owned)
    }
}

impl XdrEncode for Bytes {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.opaque(self)
    }
}

impl XdrDecode for Bytes {
    /// `opaque<>`: bounded only by the input; a slice of it when the
    /// reader was made by [`XdrReader::from_shared`].
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, DecodeError> {
        r.opaque_bytes(u32::MAX)
    }
}

impl XdrEncode for XdrString {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.string_bytes(self)
    }
}

impl XdrDecode for XdrString {
    /// `string<>`: bounded only by the input; a slice of it when the
    /// reader was made by [`XdrReader::from_shared`].
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, DecodeError> {
        r.string_bytes(u32::MAX)
    }
}

impl<T: XdrEncode> XdrEncode for Option<T> {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.optional(self.as_ref(), |w, v| v.encode(w))
    }
}

impl<T: XdrDecode> XdrDecode for Option<T> {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, DecodeError> {
        r.optional(T::decode)
    }
}

impl<T: XdrEncode> XdrEncode for Vec<T> {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.array(self, |w, v| v.encode(w))
    }
}

impl<T: XdrDecode> XdrDecode for Vec<T> {
    /// `T<>`: bounded only by the input.
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, DecodeError> {
        r.array(u32::MAX, T::decode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn written(f: impl FnOnce(&mut XdrWriter<'_>)) -> Vec<u8> {
        let mut buf = BytesMut::new();
        f(&mut XdrWriter::new(&mut buf));
        buf.to_vec()
    }

    #[test]
    fn integers_are_big_endian() {
        assert_eq!(written(|w| w.u32(0x0102_0304)), [1, 2, 3, 4]);
        assert_eq!(written(|w| w.i32(-2)), [0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(written(|w| w.u64(0xcafe)), [0, 0, 0, 0, 0, 0, 0xca, 0xfe]);
        assert_eq!(written(|w| w.bool(true)), [0, 0, 0, 1]);
    }

    #[test]
    fn opaque_and_string_are_padded_with_zeros() {
        assert_eq!(written(|w| w.string("abcde")), b"\0\0\0\x05abcde\0\0\0");
        assert_eq!(written(|w| w.opaque(b"")), b"\0\0\0\0");
        assert_eq!(written(|w| w.opaque_fixed(b"ab")), b"ab\0\0");
    }

    #[test]
    fn nonzero_padding_is_accepted() {
        let mut r = XdrReader::new(b"\0\0\0\x01a\xff\xff\xff");
        assert_eq!(r.string(10).unwrap(), "a");
        assert!(r.is_empty());
    }

    #[test]
    fn length_beyond_input_is_an_error_at_its_offset() {
        let mut r = XdrReader::with_base(b"\0\0\0\x08abc", 100);
        let err = r.opaque(u32::MAX).unwrap_err();
        assert_eq!(
            err,
            DecodeError::new(DecodeErrorKind::UnexpectedEnd { needed: 5 }, 104)
        );
    }

    #[test]
    fn length_over_bound_is_an_error() {
        let mut r = XdrReader::new(b"\0\0\0\x05abcde\0\0\0");
        let err = r.string(4).unwrap_err();
        assert_eq!(
            err.kind,
            DecodeErrorKind::LengthOverBound { len: 5, max: 4 }
        );
        assert_eq!(err.offset, 0);
    }

    #[test]
    fn huge_array_count_does_not_allocate() {
        // 2^32-1 items announced, 8 bytes present.
        let mut r = XdrReader::new(b"\xff\xff\xff\xff\0\0\0\x01\0\0\0\x02");
        let err = r.array(u32::MAX, |r| r.u32()).unwrap_err();
        assert!(
            matches!(err.kind, DecodeErrorKind::UnexpectedEnd { .. }),
            "{err}"
        );
    }

    #[test]
    fn fixed_array_round_trips_and_is_bounded() {
        let bytes = written(|w| w.fixed_array(&[1u32, 2, 3], |w, v| w.u32(*v)));
        assert_eq!(bytes.len(), 12);
        assert_eq!(
            XdrReader::new(&bytes).fixed_array(3, |r| r.u32()).unwrap(),
            [1, 2, 3]
        );
        let err = XdrReader::new(&bytes)
            .fixed_array(usize::MAX, |r| r.u32())
            .unwrap_err();
        assert!(matches!(err.kind, DecodeErrorKind::UnexpectedEnd { .. }));
    }

    #[test]
    fn bool_other_than_0_or_1_is_an_error() {
        let err = XdrReader::new(b"\0\0\0\x02").bool().unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::InvalidBool(2));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let err = XdrReader::new(b"\0\0\0\x01\xff\0\0\0")
            .string(8)
            .unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::InvalidUtf8);
    }

    #[test]
    fn trailing_bytes_are_an_error_for_from_bytes() {
        let err = from_bytes::<u32>(b"\0\0\0\x01\0\0\0\x02").unwrap_err();
        assert_eq!(
            err,
            DecodeError::new(DecodeErrorKind::TrailingBytes { len: 4 }, 4)
        );
    }

    #[test]
    fn shared_reader_hands_out_slices_of_its_input() {
        let buf = Bytes::from(written(|w| {
            w.opaque(b"abc");
            w.opaque_fixed(b"defgh");
            w.string("ij");
        }));
        let range = buf.as_ptr_range();
        let mut r = XdrReader::from_shared(&buf);
        let a = r.opaque_bytes(3).unwrap();
        let b = r.opaque_fixed_bytes(5).unwrap();
        let c = r.string_bytes(2).unwrap();
        assert!(r.is_empty());
        assert_eq!(
            (&a[..], &b[..], c.as_bytes()),
            (&b"abc"[..], &b"defgh"[..], &b"ij"[..])
        );
        for slice in [&a[..], &b[..], c.as_bytes()] {
            assert!(range.contains(&slice.as_ptr()), "not a slice of the input");
        }
        // A plain reader copies.
        let mut r = XdrReader::new(&buf);
        let a = r.opaque_bytes(3).unwrap();
        assert_eq!(&a[..], b"abc");
        assert!(!range.contains(&a.as_ptr()));
    }

    #[test]
    fn opaque_bytes_checks_its_bound_and_the_input_first() {
        let buf = Bytes::from_static(b"\0\0\0\x05abcde\0\0\0");
        let err = XdrReader::from_shared(&buf).opaque_bytes(4).unwrap_err();
        assert_eq!(
            err,
            DecodeError::new(DecodeErrorKind::LengthOverBound { len: 5, max: 4 }, 0)
        );
        let buf = Bytes::from_static(b"\xff\xff\xff\xf0ab");
        let err = XdrReader::from_shared(&buf)
            .opaque_bytes(u32::MAX)
            .unwrap_err();
        assert!(
            matches!(err.kind, DecodeErrorKind::UnexpectedEnd { .. }),
            "{err}"
        );
        let err = XdrReader::from_shared(&buf)
            .opaque_fixed_bytes(usize::MAX)
            .unwrap_err();
        assert!(
            matches!(err.kind, DecodeErrorKind::UnexpectedEnd { .. }),
            "{err}"
        );
        // Missing padding is an error too.
        let buf = Bytes::from_static(b"\0\0\0\x01a");
        let err = XdrReader::from_shared(&buf).opaque_bytes(8).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::UnexpectedEnd { needed: 3 });
    }

    #[test]
    fn non_utf8_string_decodes_as_xdr_string() {
        let buf = Bytes::from_static(b"\0\0\0\x02\xff\xfe\0\0");
        let s: XdrString = from_shared(&buf).unwrap();
        assert_eq!(s.as_bytes(), b"\xff\xfe");
        assert!(s.to_str().is_err());
        assert_eq!(to_bytes(&s), buf);
        let err = XdrReader::from_shared(&buf).string_bytes(1).unwrap_err();
        assert_eq!(
            err.kind,
            DecodeErrorKind::LengthOverBound { len: 2, max: 1 }
        );
    }

    #[test]
    fn from_shared_refuses_trailing_bytes() {
        let buf = Bytes::from_static(b"\0\0\0\0\0\0\0\x02");
        let err = from_shared::<Bytes>(&buf).unwrap_err();
        assert_eq!(
            err,
            DecodeError::new(DecodeErrorKind::TrailingBytes { len: 4 }, 4)
        );
    }

    #[test]
    fn an_item_over_its_bound_is_refused_by_try_to_bytes_and_check_bounds() {
        struct Bounded(Vec<u8>, u32);
        impl XdrEncode for Bounded {
            fn encode(&self, w: &mut XdrWriter<'_>) {
                w.bound(3, 5);
                w.bound(self.0.len(), self.1);
                w.opaque(&self.0);
                w.bound(9, 1);
            }
        }
        let within = Bounded(vec![1; 4], 4);
        assert_eq!(check_bounds(&within), Err(EncodeError { len: 9, max: 1 }));
        let over = Bounded(vec![1; 5], 4);
        let err = EncodeError { len: 5, max: 4 };
        assert_eq!(check_bounds(&over), Err(err), "the first item over is kept");
        assert_eq!(try_to_bytes(&over), Err(err));
        assert_eq!(to_bytes(&over).len(), 12, "to_bytes writes it as it is");
        assert_eq!(
            err.to_string(),
            "an item of 5 bytes or elements over its XDR bound of 4"
        );

        let mut buf = BytesMut::new();
        let mut w = XdrWriter::new(&mut buf);
        w.bound(2, 2);
        assert_eq!(w.over_bound(), None);
        assert_eq!(try_to_bytes(&7u32).unwrap()[..], [0, 0, 0, 7]);
    }

    proptest! {
        #[test]
        fn typed_values_round_trip(
            a in any::<u32>(), b in any::<i64>(), s in ".{0,40}",
            v in proptest::collection::vec(any::<u64>(), 0..20),
            o in proptest::option::of(any::<i32>()),
            data in proptest::collection::vec(any::<u8>(), 0..50),
        ) {
            let value = (a, b, s.clone(), v.clone(), o, Bytes::from(data.clone()));
            let mut buf = BytesMut::new();
            let mut w = XdrWriter::new(&mut buf);
            value.0.encode(&mut w); value.1.encode(&mut w); value.2.encode(&mut w);
            value.3.encode(&mut w); value.4.encode(&mut w); value.5.encode(&mut w);
            prop_assert_eq!(buf.len() % 4, 0);
            let mut r = XdrReader::new(&buf);
            prop_assert_eq!(u32::decode(&mut r).unwrap(), a);
            prop_assert_eq!(i64::decode(&mut r).unwrap(), b);
            prop_assert_eq!(String::decode(&mut r).unwrap(), s);
            prop_assert_eq!(Vec::<u64>::decode(&mut r).unwrap(), v);
            prop_assert_eq!(Option::<i32>::decode(&mut r).unwrap(), o);
            prop_assert_eq!(Bytes::decode(&mut r).unwrap(), Bytes::from(data));
            prop_assert!(r.is_empty());
        }

        #[test]
        fn encoded_len_is_the_length_to_bytes_writes(
            a in any::<u32>(), s in ".{0,40}",
            v in proptest::collection::vec(any::<u64>(), 0..20),
            o in proptest::option::of(any::<i32>()),
            data in proptest::collection::vec(any::<u8>(), 0..50),
            fixed in proptest::collection::vec(any::<u8>(), 0..9),
        ) {
            struct All(u32, String, Vec<u64>, Option<i32>, Bytes, Vec<u8>);
            impl XdrEncode for All {
                fn encode(&self, w: &mut XdrWriter<'_>) {
                    w.u32(self.0);
                    self.1.encode(w);
                    self.2.encode(w);
                    self.3.encode(w);
                    self.4.encode(w);
                    w.opaque_fixed(&self.5);
                    w.bool(true);
                    w.i64(-1);
                    w.raw(&self.5);
                }
            }
            let value = All(a, s, v, o, Bytes::from(data), fixed);
            let bytes = to_bytes(&value);
            prop_assert_eq!(encoded_len(&value), bytes.len());
            prop_assert_eq!(written(|w| value.encode(w)), bytes.to_vec());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = XdrReader::new(&bytes);
            let _ = r.string(16);
            let _ = r.array(8, |r| r.opaque(8).map(<[u8]>::to_vec));
            let _ = r.optional(|r| r.u64());
            let _ = Vec::<String>::decode(&mut XdrReader::new(&bytes));
        }
    }
}
