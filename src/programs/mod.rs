//! Typed arguments and results for well-known ONC RPC programs.
//!
//! Each submodule gives one program's numbers (program, version,
//! procedures) and the XDR types of the procedures peerwire uses, as
//! [`XdrEncode`] and [`XdrDecode`] values for [`Client::call_xdr`]:
//!
//! - [`portmap`]: the portmapper, program 100000 version 2 (RFC 1833),
//!   as served by rpcbind on port 111.
//! - [`gf_dump`]: GlusterFS's GF-DUMP, program 123451501 version 1, which
//!   every glusterd serves on port 24007: the list of programs a peer
//!   speaks, and a ping.
//!
//! ```
//! use peerwire::programs::portmap::{self, Mapping, MappingList};
//! use peerwire::proto::xdr::{from_bytes, to_bytes};
//!
//! let list = MappingList(vec![Mapping {
//!     program: portmap::PROGRAM,
//!     version: portmap::VERSION,
//!     protocol: portmap::IPPROTO_TCP,
//!     port: portmap::PORT.into(),
//! }]);
//! let wire = to_bytes(&list);
//! // bool 1, the entry (4 × u32), bool 0.
//! assert_eq!(wire.len(), 4 + 16 + 4);
//! assert_eq!(from_bytes::<MappingList>(&wire)?, list);
//! # Ok::<(), peerwire::proto::DecodeError>(())
//! ```
//!
//! # Linked lists
//!
//! Both programs answer with XDR *linked lists*: an optional pointer to
//! `struct entry { T item; entry *next; }`. On the wire that is a bool
//! before every item and a final bool 0: `1, item, 1, item, …, 0`.
//! [`read_list`] decodes one with a loop, never by recursion, so a long
//! list cannot exhaust the stack; every item costs at least the 4 bytes of
//! its bool, so the list ends with the input, and the decoded vector never
//! holds more items than a quarter of the input's length.
//!
//! [`XdrEncode`]: crate::proto::xdr::XdrEncode
//! [`XdrDecode`]: crate::proto::xdr::XdrDecode
//! [`Client::call_xdr`]: crate::Client::call_xdr

pub mod gf_dump;
pub mod hello;
pub mod portmap;

use crate::proto::xdr::{XdrReader, XdrWriter};
use crate::proto::{DecodeError, DecodeErrorKind};

/// Reads an XDR linked list of at most `max` items: `bool 1, item, bool 1,
/// item, …, bool 0`. More than `max` items is an error of kind
/// [`DecodeErrorKind::LengthOverBound`] at the bool that starts the first
/// item too many; a bool other than 0 or 1 is [`DecodeErrorKind::InvalidBool`].
///
/// Iterative, and bounded by the input: see the [module docs](self).
pub fn read_list<T>(
    r: &mut XdrReader<'_>,
    max: u32,
    mut item: impl FnMut(&mut XdrReader<'_>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut items = Vec::new();
    loop {
        let at = r.clone();
        if !r.bool()? {
            return Ok(items);
        }
        if items.len() >= max as usize {
            return Err(at.error(DecodeErrorKind::LengthOverBound {
                len: max.saturating_add(1),
                max,
            }));
        }
        items.push(item(r)?);
    }
}

/// Writes `items` as an XDR linked list: `bool 1, item` for each, then
/// `bool 0`. An empty list is the single bool 0 (a null pointer).
pub fn write_list<T>(
    w: &mut XdrWriter<'_>,
    items: &[T],
    mut item: impl FnMut(&mut XdrWriter<'_>, &T),
) {
    for v in items {
        w.bool(true);
        item(w, v);
    }
    w.bool(false);
}

/// Splits one captured record (4-byte record mark, then an accepted,
/// successful reply) into its XID and results, for the submodules' tests.
#[cfg(test)]
pub(crate) fn captured_reply(wire: &'static [u8]) -> (u32, bytes::Bytes) {
    use crate::proto::{
        AcceptStatus, Message, MessageBody, RecordDecoder, RecordLimits, ReplyBody,
    };
    let mut buf = bytes::BytesMut::from(wire);
    let record = RecordDecoder::new(RecordLimits::default())
        .decode(&mut buf)
        .expect("a valid record")
        .expect("a whole record");
    assert!(buf.is_empty(), "one record per capture");
    let message = Message::decode(record).expect("a valid message");
    let MessageBody::Reply {
        body:
            ReplyBody::Accepted {
                status: AcceptStatus::Success,
                ..
            },
        results,
    } = message.body
    else {
        panic!("not a successful reply: {message:?}");
    };
    (message.xid, results)
}

/// Splits one captured call record into its header numbers and arguments.
#[cfg(test)]
pub(crate) fn captured_call(wire: &'static [u8]) -> ((u32, u32, u32), bytes::Bytes) {
    use crate::proto::{Message, MessageBody, RecordDecoder, RecordLimits};
    let mut buf = bytes::BytesMut::from(wire);
    let record = RecordDecoder::new(RecordLimits::default())
        .decode(&mut buf)
        .expect("a valid record")
        .expect("a whole record");
    let message = Message::decode(record).expect("a valid message");
    let MessageBody::Call { header, args } = message.body else {
        panic!("not a call: {message:?}");
    };
    ((header.program, header.version, header.procedure), args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use proptest::prelude::*;

    fn list(bytes: &[u8], max: u32) -> Result<Vec<u32>, DecodeError> {
        let mut r = XdrReader::new(bytes);
        let out = read_list(&mut r, max, |r| r.u32())?;
        assert!(r.is_empty(), "the list must end where its input does");
        Ok(out)
    }

    #[test]
    fn empty_list_is_one_false() {
        assert_eq!(list(&[0, 0, 0, 0], 10).unwrap(), Vec::<u32>::new());
        let mut buf = BytesMut::new();
        write_list::<u32>(&mut XdrWriter::new(&mut buf), &[], |w, v| w.u32(*v));
        assert_eq!(&buf[..], [0, 0, 0, 0]);
    }

    #[test]
    fn items_round_trip() {
        let mut buf = BytesMut::new();
        write_list(&mut XdrWriter::new(&mut buf), &[7u32, 9], |w, v| w.u32(*v));
        assert_eq!(
            &buf[..],
            [0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 0]
        );
        assert_eq!(list(&buf, 2).unwrap(), [7, 9]);
    }

    #[test]
    fn too_many_items_is_an_error_at_the_extra_bool() {
        let bytes = [0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 0];
        let err = list(&bytes, 1).unwrap_err();
        assert_eq!(
            err,
            DecodeError::new(DecodeErrorKind::LengthOverBound { len: 2, max: 1 }, 8)
        );
    }

    #[test]
    fn missing_terminator_and_bad_bool_are_errors() {
        let err = list(&[0, 0, 0, 1, 0, 0, 0, 7], 10).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::UnexpectedEnd { needed: 4 });
        assert_eq!(err.offset, 8);
        let err = list(&[0, 0, 0, 2], 10).unwrap_err();
        assert_eq!(err, DecodeError::new(DecodeErrorKind::InvalidBool(2), 0));
    }

    #[test]
    fn a_long_list_of_empty_items_is_bounded_by_the_input() {
        // 100 000 items of nothing but their bool: no recursion, and the
        // vector holds exactly a quarter of the input, minus the end.
        let mut bytes = vec![0u8; 4 * 100_001];
        for chunk in bytes.chunks_mut(4).take(100_000) {
            chunk[3] = 1;
        }
        let mut r = XdrReader::new(&bytes);
        let items = read_list(&mut r, u32::MAX, |_| Ok(())).unwrap();
        assert_eq!(items.len(), 100_000);
        assert!(r.is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut r = XdrReader::new(&bytes);
            if let Ok(items) = read_list(&mut r, u32::MAX, |r| r.string(64).map(str::to_owned)) {
                prop_assert!(items.len() <= bytes.len() / 4);
            }
        }

        #[test]
        fn lists_round_trip(items in proptest::collection::vec(any::<u64>(), 0..40)) {
            let mut buf = BytesMut::new();
            write_list(&mut XdrWriter::new(&mut buf), &items, |w, v| w.u64(*v));
            prop_assert_eq!(buf.len(), items.len() * 12 + 4);
            let mut r = XdrReader::new(&buf);
            prop_assert_eq!(read_list(&mut r, u32::MAX, |r| r.u64()).unwrap(), items);
            prop_assert!(r.is_empty());
        }
    }
}
