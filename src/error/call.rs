//! Why a call failed once the client had it: its connection ended
//! ([`DisconnectCause`]), or the server answered without results
//! ([`CallStatus`]).

use std::fmt;

/// Why a client connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectCause {
    /// The peer closed the connection.
    Closed,
    /// Reading or writing failed (reset, timeout of TCP_USER_TIMEOUT, ...).
    Io(std::io::ErrorKind),
    /// No answer to a ping within the ping timeout.
    PingTimeout,
    /// A record from the peer broke our record limits (its fragment, its
    /// length, or its fragment count: see
    /// [`crate::proto::DecodeErrorKind::is_over_limit`]; the limits are
    /// [`crate::ClientOptions::limits`]), or its record marking broke
    /// otherwise. The error says which limit and its value.
    BadRecord(crate::proto::DecodeError),
    /// Too many calls timed out without a late reply: the peer is stuck.
    Clogged,
    /// The client was closed.
    ClientClosed,
    /// The server seems to expect TLS: it answered with TLS bytes, or
    /// reset the connection after our first record without a reply.
    ExpectsTls,
    /// The server refused our TLS session, usually our certificate: the
    /// first thing read on the new connection, before any reply, was this
    /// fatal alert. With TLS 1.3 the server judges our certificate after
    /// our side of the handshake is done, so its refusal arrives here
    /// rather than during the handshake. It ran none of our calls. Only an
    /// alert that judges a handshake counts (about our certificate,
    /// `handshake_failure`, `decrypt_error`); any other is
    /// [`DisconnectCause::TlsAlert`].
    TlsRefused(crate::tls::TlsAlert),
    /// The server ended the TLS session with this fatal alert, one that
    /// does not refuse our certificate (`bad_record_mac`, say: a record
    /// spoiled on the way). It may have run the calls written before, so
    /// they fail as sent.
    TlsAlert(crate::tls::TlsAlert),
    /// Our TLS material was updated
    /// ([`Client::update_tls`](crate::Client::update_tls)) and its
    /// revocation lists revoke the certificate the server presented on the
    /// connection: we closed it. The next connect fails at the handshake
    /// with [`CertError::Revoked`](crate::tls::CertError::Revoked).
    CertificateRevoked,
}

impl fmt::Display for DisconnectCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectCause::Closed => f.write_str("closed by the peer"),
            DisconnectCause::Io(kind) => write!(f, "i/o error: {kind}"),
            DisconnectCause::PingTimeout => {
                f.write_str("no answer to pings within the ping timeout")
            }
            DisconnectCause::BadRecord(error) => BadRecordText(*error).fmt(f),
            DisconnectCause::Clogged => f.write_str("too many calls left unanswered"),
            DisconnectCause::ClientClosed => f.write_str("client closed"),
            DisconnectCause::ExpectsTls => f.write_str(
                "the server seems to expect TLS (it answered with TLS bytes, or reset the connection after our first record without a reply; set ClientOptions::tls)",
            ),
            DisconnectCause::TlsRefused(alert) => {
                write!(f, "{}", crate::tls::Refusal(*alert))
            }
            DisconnectCause::TlsAlert(alert) => {
                write!(f, "the server ended the TLS session with the alert {alert}")
            }
            DisconnectCause::CertificateRevoked => f.write_str(
                "closed by us: our updated CRLs revoke the server's certificate (the server needs a new one)",
            ),
        }
    }
}

/// A record the client refused, in words that say whose limit it broke.
struct BadRecordText(crate::proto::DecodeError);

impl fmt::Display for BadRecordText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::proto::DecodeErrorKind;
        let at = self.0.offset;
        match self.0.kind {
            DecodeErrorKind::FragmentTooLong { len, max } => write!(
                f,
                "a fragment of {len} bytes from the peer exceeds our record limit of {max} bytes, at byte {at}; raise ClientOptions::limits"
            ),
            DecodeErrorKind::RecordTooLong { len, max } => write!(
                f,
                "a record of at least {len} bytes from the peer exceeds our record limit of {max} bytes, at byte {at}; raise ClientOptions::limits"
            ),
            DecodeErrorKind::TooManyFragments { max } => write!(
                f,
                "a record from the peer exceeds our fragment limit: more than the {max} fragments its data allows, at byte {at}; see Limits::with_max_fragments"
            ),
            _ => write!(f, "bad record marking from the peer: {}", self.0),
        }
    }
}

/// What a server answered instead of results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallStatus {
    /// PROG_UNAVAIL.
    ProgUnavail,
    /// PROG_MISMATCH, with the versions served.
    ProgMismatch {
        /// Lowest version served.
        low: u32,
        /// Highest version served.
        high: u32,
    },
    /// PROC_UNAVAIL.
    ProcUnavail,
    /// GARBAGE_ARGS.
    GarbageArgs,
    /// SYSTEM_ERR.
    SystemErr,
    /// MSG_DENIED with RPC_MISMATCH.
    RpcMismatch {
        /// Lowest RPC version served.
        low: u32,
        /// Highest RPC version served.
        high: u32,
    },
    /// MSG_DENIED with AUTH_ERROR.
    AuthError(crate::proto::AuthStat),
}

impl CallStatus {
    /// What a reply body says instead of results; `None` for SUCCESS.
    pub(crate) fn of(body: &crate::proto::ReplyBody) -> Option<CallStatus> {
        use crate::proto::{AcceptStatus, Rejection, ReplyBody};
        Some(match *body {
            ReplyBody::Accepted { ref status, .. } => match *status {
                AcceptStatus::Success => return None,
                AcceptStatus::ProgUnavail => CallStatus::ProgUnavail,
                AcceptStatus::ProgMismatch { low, high } => CallStatus::ProgMismatch { low, high },
                AcceptStatus::ProcUnavail => CallStatus::ProcUnavail,
                AcceptStatus::GarbageArgs => CallStatus::GarbageArgs,
                AcceptStatus::SystemErr => CallStatus::SystemErr,
            },
            ReplyBody::Denied(Rejection::RpcMismatch { low, high }) => {
                CallStatus::RpcMismatch { low, high }
            }
            ReplyBody::Denied(Rejection::AuthError(stat)) => CallStatus::AuthError(stat),
        })
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallStatus::ProgUnavail => f.write_str("program unavailable"),
            CallStatus::ProgMismatch { low, high } => {
                write!(f, "version mismatch (serves {low} to {high})")
            }
            CallStatus::ProcUnavail => f.write_str("procedure unavailable"),
            CallStatus::GarbageArgs => f.write_str("garbage arguments"),
            CallStatus::SystemErr => f.write_str("system error"),
            CallStatus::RpcMismatch { low, high } => {
                write!(f, "RPC version mismatch (serves {low} to {high})")
            }
            CallStatus::AuthError(stat) => write!(f, "authentication error: {stat}"),
        }
    }
}
