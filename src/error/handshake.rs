//! [`HandshakeError`]: how a peer broke the HELLO exchange.

use std::time::Duration;

use super::CallStatus;

/// How a peer broke the HELLO exchange (see [`crate::peer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The reply's record marking is broken or over a limit.
    #[error("bad record: {0}")]
    BadRecord(#[source] crate::proto::DecodeError),
    /// The server closed the connection before answering.
    #[error("the server closed the connection during HELLO")]
    Closed,
    /// No answer within the identity's timeout.
    #[error("no answer to HELLO within {0:?}")]
    Timeout(Duration),
    /// The reply is not a well-formed RPC message.
    #[error("malformed HELLO reply: {0}")]
    MalformedReply(#[source] crate::proto::DecodeError),
    /// The server sent a call instead of a reply.
    #[error("the server answered HELLO with a call")]
    NotAReply,
    /// The reply is for another call.
    #[error("the HELLO reply has XID {got:#x}, not {sent:#x}")]
    WrongXid {
        /// The XID of our HELLO.
        sent: u32,
        /// The XID of the reply.
        got: u32,
    },
    /// The server does not serve the handshake program.
    #[error("the server does not speak the handshake program: {0}")]
    Unsupported(CallStatus),
    /// The results do not decode as a HELLO answer.
    #[error("malformed HELLO results: {0}")]
    MalformedResults(#[source] crate::proto::DecodeError),
}
