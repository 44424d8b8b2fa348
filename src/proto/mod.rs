//! The wire format: record marking, XDR and ONC RPC v2 messages.
//!
//! Pure: bytes in, values or bytes out. No tokio, no sockets, no clocks.
//! Every decoder checks its bounds before it allocates, and returns a
//! [`DecodeError`] rather than panicking, whatever the input.
//!
//! The record header and a decode example are in the [crate docs](crate).
//!
//! - [`RecordDecoder`] and [`RecordEncoder`]: record marking (RFC 5531 §11).
//! - [`xdr`]: XDR (RFC 4506) reading and writing, and typed values.
//! - [`Message`]: call and reply headers (RFC 5531 §9), arguments and
//!   results left as `Bytes`.
//! - [`Credential`]: AUTH_SYS and GlusterFS credential bodies.

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
    BYTES_PER_EXTRA_FRAGMENT, InvalidLimits, MAX_FRAGMENT_LEN, MAX_RECORD_CEILING, RecordDecoder,
    RecordEncoder, RecordLimits, record_header,
};
pub use xdr::XdrString;
