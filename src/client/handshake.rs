//! The client's side of HELLO, said on every fresh link before any call.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, warn};

use super::link::Link;
use super::{ClientIdentity, MismatchPolicy};
use crate::addr::Address;
use crate::conn::{HelloExpected, HelloFault, judge_hello_reply, starttls};
use crate::error::{CallStatus, DisconnectCause, Error, HandshakeError};
use crate::peer::hello::{
    HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO, Hello, HelloReply, PROTOCOL_VERSIONS,
    wire::HelloArgs,
};
use crate::proto::xdr::to_bytes;
use crate::proto::{CallHeader, Message, RecordDecoder, RecordLimits};
use crate::tls::{CertError, TlsAlert, TlsError, TlsPeer};

/// What a server that expects TLS did, for [`Error::ExpectsTls`].
const ANSWERED_TLS: &str = "it answered our first record with TLS bytes";
/// See [`ANSWERED_TLS`].
const RESET_AFTER_FIRST: &str =
    "it reset the connection right after our first record, without a reply";

/// What a fresh connection's read says about the server before any reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FirstRead {
    /// A plain client met a server that expects TLS; how it showed.
    ExpectsTls(&'static str),
    /// The TLS server refused our session with this fatal alert.
    Refused(TlsAlert),
}

impl FirstRead {
    /// The connect error it makes.
    pub(super) fn error(self, peer: &Address) -> Error {
        match self {
            FirstRead::ExpectsTls(how) => Error::ExpectsTls {
                peer: peer.clone(),
                how,
            },
            FirstRead::Refused(alert) => Error::Tls {
                peer: Some(peer.clone()),
                error: Box::new(TlsError::Refused { alert }),
            },
        }
    }

    /// The cause it gives a connection that had calls on it.
    pub(super) fn cause(self) -> DisconnectCause {
        match self {
            FirstRead::ExpectsTls(_) => DisconnectCause::ExpectsTls,
            FirstRead::Refused(alert) => DisconnectCause::TlsRefused(alert),
        }
    }
}

/// Judges a `read` on a connection that has heard nothing (`unheard`: no
/// reply, not a byte before this read); `buf` holds what was read, and
/// `wrote` says a record of ours went out.
///
/// - Plain (`tls` false): TLS bytes in place of record marking, or a reset
///   right after our first record, mean the server expects TLS (glusterd
///   with management TLS resets a plain connection after its first record).
/// - TLS: a fatal alert that judges a handshake (about our certificate,
///   `handshake_failure`, `decrypt_error`) means the server refused our
///   session. With TLS 1.3 it judges our certificate after our side of the
///   handshake is done, so its refusal is the first thing we read; a server
///   that refuses our certificate fails the handshake and so read none of
///   our calls. Any other alert (`bad_record_mac`, say) may end a session
///   in which the server ran our calls: an ordinary loss, however early.
///
/// `None`: an ordinary read, or an ordinary loss (after any byte was read,
/// an alert or a reset is one).
pub(super) fn first_read(
    unheard: bool,
    tls: bool,
    wrote: bool,
    buf: &[u8],
    read: &std::io::Result<usize>,
) -> Option<FirstRead> {
    if !unheard {
        return None;
    }
    match read {
        Ok(n) if *n > 0 && !tls && starttls::looks_like_tls(buf) => {
            Some(FirstRead::ExpectsTls(ANSWERED_TLS))
        }
        Ok(_) => None,
        Err(error) if tls => crate::tls::received_alert(error)
            .filter(|alert| alert.judges_handshake())
            .map(FirstRead::Refused),
        Err(error) if wrote && error.kind() == std::io::ErrorKind::ConnectionReset => {
            Some(FirstRead::ExpectsTls(RESET_AFTER_FIRST))
        }
        Err(_) => None,
    }
}

/// Says HELLO on a fresh link and checks the answer: the node that answers
/// must be the one we mean to reach, and it must have seen the source we
/// bound; over TLS (`tls`: the server's certificate), its node ID must be
/// the certificate's CN.
pub(super) async fn handshake(
    mut link: Link,
    identity: &ClientIdentity,
    peer: &Address,
    limits: RecordLimits,
    tls: Option<&TlsPeer>,
) -> Result<(Link, HelloReply), Error> {
    let io_error = |error: std::io::Error| match peer {
        Address::Inet(destination) => Error::Connect {
            source_addr: Some(link.local),
            destination: destination.clone(),
            error: Arc::new(error),
        },
        Address::Unix(path) => Error::UnixConnect {
            path: path.clone(),
            error: Arc::new(error),
        },
    };
    let broken = |error| Error::Handshake {
        peer: peer.clone(),
        error,
    };
    let xid: u32 = rand::random();
    let hello = Hello {
        node: identity.node.clone(),
        versions: PROTOCOL_VERSIONS.to_vec(),
        cluster: identity.cluster.clone(),
    };
    let call = Message::call(
        xid,
        CallHeader::new(HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO),
        to_bytes(&HelloArgs::from(&hello)),
    );
    let exchange = async {
        let mut out = BytesMut::new();
        crate::codec::encode_record(&call, &mut out);
        link.transport.write_all(&out).await.map_err(io_error)?;
        link.transport.flush().await.map_err(io_error)?;
        let mut records = RecordDecoder::new(limits);
        let mut buf = BytesMut::new();
        let record = loop {
            if let Some(record) = records
                .decode(&mut buf)
                .map_err(|e| broken(HandshakeError::BadRecord(e)))?
            {
                break record;
            }
            let read = link.transport.read_buf(&mut buf).await;
            // No reply has come (the loop ends at the first record): what
            // has been read may show a TLS server; an error counts only
            // before any byte.
            let unheard = read.is_ok() || buf.is_empty();
            if let Some(first) = first_read(unheard, tls.is_some(), true, &buf, &read) {
                return Err(first.error(peer));
            }
            match read {
                Ok(0) => return Err(broken(HandshakeError::Closed)),
                Ok(_) => {}
                Err(error) => return Err(io_error(error)),
            }
        };
        Ok((record, buf))
    };
    let (record, leftover) = tokio::time::timeout(identity.timeout, exchange)
        .await
        .map_err(|_| broken(HandshakeError::Timeout(identity.timeout)))??;
    let expected = HelloExpected {
        xid,
        node: &identity.expect,
        certificate_cn: tls.map(|tls| tls.cn.as_deref()),
        bound: link.local,
        observed_must_match: identity.observed_mismatch == MismatchPolicy::Fail,
    };
    let accepted = judge_hello_reply(record, &expected).map_err(|fault| match fault {
        HelloFault::MalformedReply(e) => broken(HandshakeError::MalformedReply(e)),
        HelloFault::WrongXid { sent, got } => broken(HandshakeError::WrongXid { sent, got }),
        HelloFault::NotAReply => broken(HandshakeError::NotAReply),
        HelloFault::IdentityRefused(stat) => Error::IdentityRefused {
            peer: peer.clone(),
            stat,
        },
        HelloFault::Unsupported(body) => {
            let status = CallStatus::of(&body).expect("a SUCCESS reply is no fault");
            broken(HandshakeError::Unsupported(status))
        }
        HelloFault::MalformedResults(e) => broken(HandshakeError::MalformedResults(e)),
        HelloFault::WrongPeer { expected, answered } => Error::WrongPeer {
            peer: peer.clone(),
            expected,
            answered,
        },
        HelloFault::CertificateCn { answered, cn } => Error::Tls {
            peer: Some(peer.clone()),
            error: Box::new(TlsError::Certificate(CertError::CnMismatch {
                expected: answered.as_str().to_owned(),
                cn,
            })),
        },
        HelloFault::ObservedMismatch { bound, observed } => Error::ObservedMismatch {
            remote: link.remote,
            bound,
            observed,
        },
    })?;
    let answer = accepted.reply;
    if accepted.observed_differs {
        warn!(%peer, bound = %link.local, observed = %answer.observed, "the server saw another source than we bound");
    }
    debug!(%peer, node = %answer.node, observed = %answer.observed, "HELLO accepted");
    link.leftover = leftover;
    Ok((link, answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "tls")]
    fn alert(description: rustls::AlertDescription) -> std::io::Result<usize> {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(description),
        ))
    }

    /// A TLS link's read before any byte.
    fn tls_read(unheard: bool, read: &std::io::Result<usize>) -> Option<FirstRead> {
        first_read(unheard, true, true, &[], read)
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_fatal_alert_before_any_byte_is_a_refusal_naming_the_alert() {
        assert_eq!(
            tls_read(true, &alert(rustls::AlertDescription::UnknownCA)),
            Some(FirstRead::Refused(TlsAlert::UNKNOWN_CA))
        );
        assert_eq!(
            tls_read(true, &alert(rustls::AlertDescription::AccessDenied)),
            Some(FirstRead::Refused(TlsAlert::ACCESS_DENIED))
        );
    }

    #[cfg(feature = "tls")]
    #[test]
    fn an_alert_that_judges_no_handshake_is_no_refusal_even_before_any_byte() {
        for description in [
            rustls::AlertDescription::BadRecordMac,
            rustls::AlertDescription::RecordOverflow,
            rustls::AlertDescription::UnexpectedMessage,
            rustls::AlertDescription::InternalError,
        ] {
            assert_eq!(tls_read(true, &alert(description)), None, "{description:?}");
        }
        assert_eq!(
            tls_read(true, &alert(rustls::AlertDescription::DecryptError)),
            Some(FirstRead::Refused(TlsAlert::from_code(51)))
        );
    }

    #[cfg(feature = "tls")]
    #[test]
    fn after_a_reply_an_alert_is_an_ordinary_loss() {
        assert_eq!(
            tls_read(false, &alert(rustls::AlertDescription::UnknownCA)),
            None
        );
    }

    #[test]
    fn other_errors_and_a_bare_close_are_not_refusals() {
        let reset = Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(tls_read(true, &reset), None);
        let eof = Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify",
        ));
        assert_eq!(tls_read(true, &eof), None);
        #[cfg(feature = "tls")]
        {
            let other = Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::DecryptError,
            ));
            assert_eq!(tls_read(true, &other), None);
        }
        assert_eq!(tls_read(true, &Ok(0)), None);
        assert_eq!(tls_read(true, &Ok(12)), None);
    }

    #[test]
    fn a_plain_link_sees_a_tls_server_in_tls_bytes_or_a_reset_after_our_record() {
        let alert_record = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46];
        assert_eq!(
            first_read(true, false, true, &alert_record, &Ok(7)),
            Some(FirstRead::ExpectsTls(ANSWERED_TLS))
        );
        let reset = Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(
            first_read(true, false, true, &[], &reset),
            Some(FirstRead::ExpectsTls(RESET_AFTER_FIRST))
        );
        // Before we wrote anything, or once the server has spoken, a reset
        // or such bytes are an ordinary loss or read.
        assert_eq!(first_read(true, false, false, &[], &reset), None);
        assert_eq!(first_read(false, false, true, &alert_record, &Ok(7)), None);
        let marking = [0x80, 0x00, 0x00, 0x1c];
        assert_eq!(first_read(true, false, true, &marking, &Ok(4)), None);
    }
}
