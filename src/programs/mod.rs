//! Typed arguments and results for well-known ONC RPC programs, and
//! peerwire's own.
//!
//! Each program is written in the XDR language as a `.x` file next to its
//! module, and its Rust is generated from it by `peerwire::xdrgen`
//! (feature `xdrgen`): types with [`XdrEncode`] and [`XdrDecode`], the
//! program, version and [`Procedure`] constants, and a typed client. (The
//! generated files are committed, in src/programs/generated/, because the
//! library is built without the generator; tests/xdrgen.rs checks that
//! they are what the `.x` files generate.)
//!
//! These modules sit above the client, as a user's generated program
//! does: their typed clients wrap a [`Client`](crate::Client), and nothing
//! below the drivers imports them.
//!
//! - [`portmap`]: the portmapper, program 100000 version 2 (RFC 1833),
//!   as served by rpcbind on port 111 (portmap.x).
//! - [`gf_dump`]: GlusterFS's GF-DUMP, program 123451501 version 1, which
//!   every glusterd serves on port 24007: the list of programs a peer
//!   speaks, and a ping (gf_dump.x).
//! - [`hello`]: peerwire's handshake, HELLO (hello.x), and the node ID;
//!   it lives in [`crate::peer::hello`], below the connection state that
//!   reads it, and is re-exported here.
//!
//! ```
//! use peerwire::programs::portmap::{self, Mapping, MappingList};
//! use peerwire::proto::xdr::{from_bytes, to_bytes};
//!
//! let list = MappingList::from_iter([Mapping {
//!     prog: portmap::PROGRAM,
//!     vers: portmap::VERSION,
//!     prot: portmap::IPPROTO_TCP,
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
//! Both portmap and GF-DUMP answer with XDR *linked lists*: an optional
//! pointer to `struct entry { T item; entry *next; }`. On the wire that is
//! a bool before every item and a final bool 0: `1, item, 1, item, …, 0`.
//! The generated code holds one as a `Vec` and decodes it with a loop,
//! never by recursion, so a long list cannot exhaust the stack; every item
//! costs at least the 4 bytes of its bool, so the list ends with the
//! input, and it refuses more than 1,048,576 items.
//!
//! [`XdrEncode`]: crate::proto::xdr::XdrEncode
//! [`XdrDecode`]: crate::proto::xdr::XdrDecode
//! [`Procedure`]: crate::Procedure

pub mod gf_dump;
pub mod portmap;

/// HELLO's module, [`crate::peer::hello`], where the identity layer keeps
/// it (the connection state below the drivers reads its types), under its
/// old path.
pub use crate::peer::hello;

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
