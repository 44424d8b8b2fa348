//! The wire format: record marking, XDR and ONC RPC v2 messages.
//!
//! Pure: bytes in, values or bytes out. No tokio, no sockets, no clocks.
//! Every decoder checks its bounds before it allocates, and returns a
//! [`DecodeError`] rather than panicking, whatever the input.
//!
//! # Record marking (RFC 5531 §11)
//!
//! On TCP, each RPC message is one *record*, sent as one or more
//! *fragments*. Each fragment has a 4-byte big-endian header:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-------------------------------------------------------------+
//! |L|              fragment length (31 bits, 0 to 2^31-1)         |
//! +-+-------------------------------------------------------------+
//! |                 fragment data (length bytes) ...              |
//! +---------------------------------------------------------------+
//!
//! L = 1 on the last fragment of the record
//! ```
//!
//! # Decoding a record and its message
//!
//! ```
//! use bytes::BytesMut;
//! use peerwire::proto::{Message, RecordDecoder, RecordLimits, MessageBody};
//!
//! // A NULL call to the portmapper (100000 v2), as rpcinfo sends it.
//! let mut wire = BytesMut::from(&[
//!     0x80, 0, 0, 40,             // last fragment, 40 bytes
//!     0x12, 0x34, 0x56, 0x78,     // xid
//!     0, 0, 0, 0,                 // CALL
//!     0, 0, 0, 2,                 // rpcvers 2
//!     0, 1, 0x86, 0xa0,           // program 100000
//!     0, 0, 0, 2,                 // version 2
//!     0, 0, 0, 0,                 // procedure 0 (NULL)
//!     0, 0, 0, 0, 0, 0, 0, 0,     // cred: AUTH_NONE, empty
//!     0, 0, 0, 0, 0, 0, 0, 0,     // verf: AUTH_NONE, empty
//! ][..]);
//! let mut records = RecordDecoder::new(RecordLimits::default());
//! let record = records.decode(&mut wire)?.expect("a whole record");
//! let message = Message::decode(record)?;
//! assert_eq!(message.xid, 0x1234_5678);
//! let MessageBody::Call { header, args } = &message.body else { panic!("not a call") };
//! assert_eq!((header.program, header.version, header.procedure), (100_000, 2, 0));
//! assert!(args.is_empty());
//! # Ok::<(), peerwire::proto::DecodeError>(())
//! ```

mod auth;
mod error;
mod msg;
mod record;
pub mod xdr;

pub use auth::{
    AuthGlusterfsV2, AuthGlusterfsV3, AuthSys, Credential, CredentialTooLarge, MAX_GROUPS,
    MAX_MACHINE_NAME,
};
pub use error::{DecodeError, DecodeErrorKind};
pub use msg::{
    AcceptStatus, AuthStat, CallHeader, MAX_AUTH_BYTES, Message, MessageBody, OpaqueAuth,
    RPC_VERSION, Rejection, ReplyBody, flavor,
};
pub use record::{
    InvalidLimits, MAX_FRAGMENT_LEN, MAX_RECORD_CEILING, RecordDecoder, RecordEncoder,
    RecordLimits, record_header,
};
