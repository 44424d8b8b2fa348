//! The client's side of HELLO, said on every fresh link before any call.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, warn};

use super::link::Link;
use super::{ClientIdentity, MismatchPolicy};
use crate::addr::{Address, CanonicalIp};
use crate::conn::starttls;
use crate::error::{CallStatus, Error, HandshakeError};
use crate::programs::hello::{
    HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO, Hello, HelloReply, PROTOCOL_VERSIONS,
};
use crate::proto::xdr::{from_bytes, to_bytes};
use crate::proto::{
    AcceptStatus, CallHeader, Message, MessageBody, RecordDecoder, RecordLimits, Rejection,
    ReplyBody,
};
use crate::tls::{CertError, TlsError, TlsPeer};

/// What a server that expects TLS did, for [`Error::ExpectsTls`].
pub(super) const ANSWERED_TLS: &str = "it answered our first record with TLS bytes";
/// See [`ANSWERED_TLS`].
pub(super) const RESET_AFTER_FIRST: &str =
    "it reset the connection right after our first record, without a reply";

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
    let plain = tls.is_none();
    let expects_tls = |how| Error::ExpectsTls {
        peer: peer.clone(),
        how,
    };
    let io_error = |error: std::io::Error| match peer {
        Address::Inet(destination) => Error::Connect {
            source_addr: Some(link.local),
            destination: destination.clone(),
            error,
        },
        Address::Unix(path) => Error::UnixConnect {
            path: path.clone(),
            error,
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
        to_bytes(&hello),
    );
    let exchange = async {
        let mut out = BytesMut::new();
        crate::codec::encode_record(&call, &mut out);
        link.transport.write_all(&out).await.map_err(io_error)?;
        link.transport.flush().await.map_err(io_error)?;
        let mut records = RecordDecoder::new(limits);
        let mut buf = BytesMut::new();
        let record = loop {
            // A plain client to a TLS server: its first bytes are a TLS
            // alert or handshake record, not record marking.
            if plain && starttls::looks_like_tls(&buf) {
                return Err(expects_tls(ANSWERED_TLS));
            }
            if let Some(record) = records
                .decode(&mut buf)
                .map_err(|e| broken(HandshakeError::BadRecord(e)))?
            {
                break record;
            }
            match link.transport.read_buf(&mut buf).await {
                Ok(0) => return Err(broken(HandshakeError::Closed)),
                Ok(_) => {}
                Err(error)
                    if plain
                        && buf.is_empty()
                        && error.kind() == std::io::ErrorKind::ConnectionReset =>
                {
                    return Err(expects_tls(RESET_AFTER_FIRST));
                }
                // Over TLS 1.3 the server judges our certificate after our
                // side of the handshake is done: its refusal is a fatal
                // alert, the first thing this fresh connection reads. A
                // definite refusal, not a lost connection.
                Err(error) if !plain && buf.is_empty() => {
                    return Err(match crate::tls::received_alert(&error) {
                        Some(alert) => Error::Tls {
                            peer: peer.clone(),
                            error: Box::new(TlsError::Refused { alert }),
                        },
                        None => io_error(error),
                    });
                }
                Err(error) => return Err(io_error(error)),
            }
        };
        Ok((record, buf))
    };
    let (record, leftover) = tokio::time::timeout(identity.timeout, exchange)
        .await
        .map_err(|_| broken(HandshakeError::Timeout(identity.timeout)))??;
    let reply = Message::decode(record).map_err(|e| broken(HandshakeError::MalformedReply(e)))?;
    if reply.xid != xid {
        return Err(broken(HandshakeError::WrongXid {
            sent: xid,
            got: reply.xid,
        }));
    }
    let results = match reply.body {
        MessageBody::Reply {
            body:
                ReplyBody::Accepted {
                    status: AcceptStatus::Success,
                    ..
                },
            results,
        } => results,
        MessageBody::Reply {
            body: ReplyBody::Denied(Rejection::AuthError(stat)),
            ..
        } => {
            return Err(Error::IdentityRefused {
                peer: peer.clone(),
                stat,
            });
        }
        MessageBody::Reply { body, .. } => {
            let status = CallStatus::of(&body).expect("success was matched above");
            return Err(broken(HandshakeError::Unsupported(status)));
        }
        MessageBody::Call { .. } => return Err(broken(HandshakeError::NotAReply)),
    };
    let answer: HelloReply =
        from_bytes(&results).map_err(|e| broken(HandshakeError::MalformedResults(e)))?;
    if answer.node != identity.expect {
        return Err(Error::WrongPeer {
            peer: peer.clone(),
            expected: identity.expect.clone(),
            answered: answer.node,
        });
    }
    if let Some(tls) = tls
        && tls.cn.as_deref() != Some(answer.node.as_str())
    {
        return Err(Error::Tls {
            peer: peer.clone(),
            error: Box::new(TlsError::Certificate(CertError::CnMismatch {
                expected: answer.node.to_string(),
                cn: tls.cn.clone(),
            })),
        });
    }
    // The scope of a link-local address is the server's own interface, so
    // only the IPs compare.
    if CanonicalIp::from(answer.observed).ip() != CanonicalIp::from(link.local).ip() {
        match identity.observed_mismatch {
            MismatchPolicy::Fail => {
                return Err(Error::ObservedMismatch {
                    remote: link.remote,
                    bound: link.local,
                    observed: answer.observed,
                });
            }
            MismatchPolicy::Warn => {
                warn!(%peer, bound = %link.local, observed = %answer.observed, "the server saw another source than we bound");
            }
        }
    }
    debug!(%peer, node = %answer.node, observed = %answer.observed, "HELLO accepted");
    link.leftover = leftover;
    Ok((link, answer))
}
