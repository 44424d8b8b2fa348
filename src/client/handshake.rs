//! The client's side of HELLO, said on every fresh link before any call.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, warn};

use super::link::Link;
use super::{ClientIdentity, MismatchPolicy};
use crate::addr::{Address, CanonicalIp};
use crate::error::{CallStatus, Error, HandshakeError};
use crate::programs::hello::{
    HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO, Hello, HelloReply, PROTOCOL_VERSIONS,
};
use crate::proto::xdr::{from_bytes, to_bytes};
use crate::proto::{
    AcceptStatus, CallHeader, Message, MessageBody, RecordDecoder, RecordLimits, Rejection,
    ReplyBody,
};

/// Says HELLO on a fresh link and checks the answer: the node that answers
/// must be the one we mean to reach, and it must have seen the source we
/// bound.
pub(super) async fn handshake(
    mut link: Link,
    identity: &ClientIdentity,
    peer: &Address,
    limits: RecordLimits,
) -> Result<(Link, HelloReply), Error> {
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
        let mut records = RecordDecoder::new(limits);
        let mut buf = BytesMut::new();
        let record = loop {
            if let Some(record) = records
                .decode(&mut buf)
                .map_err(|e| broken(HandshakeError::BadRecord(e)))?
            {
                break record;
            }
            if link.transport.read_buf(&mut buf).await.map_err(io_error)? == 0 {
                return Err(broken(HandshakeError::Closed));
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
