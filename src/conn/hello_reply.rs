//! The client's verdict on a server's HELLO reply: one record in, accepted
//! or a matchable fault out. No I/O: the client's driver sends the HELLO,
//! reads one record within its timeout, and asks [`judge_hello_reply`]
//! what it means.
//!
//! The checks, in order (the first that fails is the verdict):
//!
//! 1. the record is a well-formed RPC message ([`HelloFault::MalformedReply`]);
//! 2. it answers our HELLO's XID ([`HelloFault::WrongXid`]);
//! 3. it is a reply ([`HelloFault::NotAReply`]);
//! 4. it is accepted with SUCCESS: AUTH_ERROR is the server refusing our
//!    identity ([`HelloFault::IdentityRefused`]), any other status a server
//!    that does not speak the handshake ([`HelloFault::Unsupported`]);
//! 5. its results decode as a HELLO answer ([`HelloFault::MalformedResults`]);
//! 6. the answering node is the one we mean to reach ([`HelloFault::WrongPeer`]);
//! 7. over TLS, that node ID is the server certificate's subject CN
//!    ([`HelloFault::CertificateCn`]);
//! 8. the server observed the source we bound, compared by IP only (the
//!    scope of a link-local address is the server's own interface):
//!    a fault ([`HelloFault::ObservedMismatch`]) when it must match,
//!    otherwise [`HelloAccepted::observed_differs`] says so.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::addr::CanonicalIp;
use crate::peer::hello::{HelloReply, NodeId, wire::HelloRes};
use crate::proto::xdr::from_bytes;
use crate::proto::{
    AcceptStatus, AuthStat, DecodeError, Message, MessageBody, Rejection, ReplyBody,
};

/// What the client expects of the reply to its HELLO.
#[derive(Clone, Copy, Debug)]
pub struct HelloExpected<'a> {
    /// The XID our HELLO call carried.
    pub xid: u32,
    /// The node we mean to reach.
    pub node: &'a NodeId,
    /// Over TLS, the subject CN of the server's certificate (`Some(None)`:
    /// it has none), which the answering node ID must equal. `None` on a
    /// plain link.
    pub certificate_cn: Option<Option<&'a str>>,
    /// The source address the link is bound to.
    pub bound: SocketAddr,
    /// True: an observed address other than [`HelloExpected::bound`] is a
    /// fault. False: it is reported in [`HelloAccepted::observed_differs`].
    pub observed_must_match: bool,
}

/// A HELLO reply that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelloAccepted {
    /// The server's answer.
    pub reply: HelloReply,
    /// The server observed another IP than the one bound, and the
    /// expectation allowed it (behind NAT, say): the caller warns.
    pub observed_differs: bool,
}

/// Why the client refuses a HELLO reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HelloFault {
    /// The record is not a well-formed RPC message.
    MalformedReply(DecodeError),
    /// The reply is for another XID.
    WrongXid {
        /// The XID of our HELLO.
        sent: u32,
        /// The XID of the reply.
        got: u32,
    },
    /// The server sent a call instead of a reply.
    NotAReply,
    /// The server refused our identity: MSG_DENIED with AUTH_ERROR.
    IdentityRefused(AuthStat),
    /// A reply with a status other than SUCCESS or AUTH_ERROR: the server
    /// does not speak the handshake program. The body says how.
    Unsupported(ReplyBody),
    /// The results do not decode as a HELLO answer.
    MalformedResults(DecodeError),
    /// Another node answered.
    WrongPeer {
        /// The node we meant to reach.
        expected: NodeId,
        /// The node that answered.
        answered: NodeId,
    },
    /// Over TLS, the answering node ID is not the certificate's CN.
    CertificateCn {
        /// The node ID that answered.
        answered: NodeId,
        /// The certificate's subject CN, if it has one.
        cn: Option<String>,
    },
    /// The server observed another source IP than the one bound, and it
    /// had to match.
    ObservedMismatch {
        /// The source bound.
        bound: SocketAddr,
        /// The source the server observed.
        observed: SocketAddr,
    },
}

/// Judges `record`, the first record the server sent after our HELLO,
/// against `expected` (see the module docs for the checks and their order).
pub fn judge_hello_reply(
    record: Bytes,
    expected: &HelloExpected<'_>,
) -> Result<HelloAccepted, HelloFault> {
    let reply = Message::decode(record).map_err(HelloFault::MalformedReply)?;
    if reply.xid != expected.xid {
        return Err(HelloFault::WrongXid {
            sent: expected.xid,
            got: reply.xid,
        });
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
        } => return Err(HelloFault::IdentityRefused(stat)),
        MessageBody::Reply { body, .. } => return Err(HelloFault::Unsupported(body)),
        MessageBody::Call { .. } => return Err(HelloFault::NotAReply),
    };
    let reply = from_bytes::<HelloRes>(&results)
        .and_then(HelloReply::try_from)
        .map_err(HelloFault::MalformedResults)?;
    if reply.node != *expected.node {
        return Err(HelloFault::WrongPeer {
            expected: expected.node.clone(),
            answered: reply.node,
        });
    }
    if let Some(cn) = expected.certificate_cn
        && cn != Some(reply.node.as_str())
    {
        return Err(HelloFault::CertificateCn {
            answered: reply.node,
            cn: cn.map(str::to_owned),
        });
    }
    let observed_differs =
        CanonicalIp::from(reply.observed).ip() != CanonicalIp::from(expected.bound).ip();
    if observed_differs && expected.observed_must_match {
        return Err(HelloFault::ObservedMismatch {
            bound: expected.bound,
            observed: reply.observed,
        });
    }
    Ok(HelloAccepted {
        reply,
        observed_differs,
    })
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::peer::hello::{HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO};
    use crate::proto::xdr::to_bytes;
    use crate::proto::{CallHeader, DecodeErrorKind};

    const XID: u32 = 0x5eed;

    fn node(name: &str) -> NodeId {
        NodeId::new(name).unwrap()
    }

    fn bytes(message: &Message) -> Bytes {
        let mut out = BytesMut::new();
        message.encode(&mut out);
        out.freeze()
    }

    /// A SUCCESS reply to `xid` from `from`, which observed `observed`.
    fn answer(xid: u32, from: &str, observed: &str) -> Bytes {
        let reply = HelloReply {
            node: node(from),
            observed: observed.parse().unwrap(),
            version: 1,
        };
        let body = ReplyBody::accepted(AcceptStatus::Success);
        bytes(&Message::reply(
            xid,
            body,
            to_bytes(&HelloRes::from(&reply)),
        ))
    }

    /// Judges `record` as a client bound to 192.0.2.10:40000 that means to
    /// reach "server", over TLS when `cn` is given.
    fn judge(
        record: Bytes,
        cn: Option<Option<&str>>,
        strict: bool,
    ) -> Result<HelloAccepted, HelloFault> {
        let expect = node("server");
        let expected = HelloExpected {
            xid: XID,
            node: &expect,
            certificate_cn: cn,
            bound: "192.0.2.10:40000".parse().unwrap(),
            observed_must_match: strict,
        };
        judge_hello_reply(record, &expected)
    }

    #[test]
    fn a_reply_that_passes_every_check_is_accepted() {
        let accepted = judge(answer(XID, "server", "192.0.2.10:40000"), None, true).unwrap();
        assert_eq!(accepted.reply.node, node("server"));
        assert_eq!(
            accepted.reply.observed,
            "192.0.2.10:40000".parse::<SocketAddr>().unwrap()
        );
        assert!(!accepted.observed_differs);
        // Over TLS, with the CN the answering node's ID.
        let accepted = judge(
            answer(XID, "server", "192.0.2.10:40000"),
            Some(Some("server")),
            true,
        );
        assert!(accepted.is_ok(), "{accepted:?}");
    }

    #[test]
    fn a_record_that_is_no_rpc_message_is_a_malformed_reply() {
        let verdict = judge(Bytes::from_static(b"\0\0\x5e"), None, true);
        assert!(
            matches!(verdict, Err(HelloFault::MalformedReply(_))),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_reply_to_another_xid_is_refused_naming_both() {
        assert_eq!(
            judge(answer(XID + 1, "server", "192.0.2.10:40000"), None, true),
            Err(HelloFault::WrongXid {
                sent: XID,
                got: XID + 1
            })
        );
    }

    #[test]
    fn a_call_is_not_a_reply() {
        let call = Message::call(
            XID,
            CallHeader::new(HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO),
            Bytes::new(),
        );
        assert_eq!(judge(bytes(&call), None, true), Err(HelloFault::NotAReply));
    }

    #[test]
    fn auth_error_is_the_server_refusing_our_identity() {
        let denied = Message::reply(
            XID,
            ReplyBody::Denied(Rejection::AuthError(AuthStat::REJECTED_CRED)),
            Bytes::new(),
        );
        assert_eq!(
            judge(bytes(&denied), None, true),
            Err(HelloFault::IdentityRefused(AuthStat::REJECTED_CRED))
        );
    }

    #[test]
    fn any_other_status_is_a_server_without_the_handshake_program() {
        for body in [
            ReplyBody::accepted(AcceptStatus::ProgUnavail),
            ReplyBody::accepted(AcceptStatus::GarbageArgs),
            ReplyBody::Denied(Rejection::RpcMismatch { low: 2, high: 2 }),
        ] {
            let reply = Message::reply(XID, body.clone(), Bytes::new());
            assert_eq!(
                judge(bytes(&reply), None, true),
                Err(HelloFault::Unsupported(body))
            );
        }
    }

    #[test]
    fn results_that_are_no_hello_answer_are_malformed_results() {
        let body = ReplyBody::accepted(AcceptStatus::Success);
        let reply = Message::reply(XID, body, Bytes::from_static(b"\0\0\0\x07node"));
        let verdict = judge(bytes(&reply), None, true);
        assert!(
            matches!(verdict, Err(HelloFault::MalformedResults(_))),
            "{verdict:?}"
        );
        // Empty results too, at their first byte.
        let body = ReplyBody::accepted(AcceptStatus::Success);
        let empty = Message::reply(XID, body, Bytes::new());
        match judge(bytes(&empty), None, true) {
            Err(HelloFault::MalformedResults(error)) => {
                assert!(
                    matches!(error.kind, DecodeErrorKind::UnexpectedEnd { .. }),
                    "{error:?}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn another_node_answering_is_the_wrong_peer() {
        assert_eq!(
            judge(answer(XID, "impostor", "192.0.2.10:40000"), None, true),
            Err(HelloFault::WrongPeer {
                expected: node("server"),
                answered: node("impostor"),
            })
        );
    }

    #[test]
    fn over_tls_the_answering_node_must_be_the_certificate_cn() {
        let record = answer(XID, "server", "192.0.2.10:40000");
        assert_eq!(
            judge(record.clone(), Some(Some("other")), true),
            Err(HelloFault::CertificateCn {
                answered: node("server"),
                cn: Some("other".into()),
            })
        );
        assert_eq!(
            judge(record, Some(None), true),
            Err(HelloFault::CertificateCn {
                answered: node("server"),
                cn: None,
            })
        );
    }

    #[test]
    fn another_observed_ip_fails_when_it_must_match_and_is_reported_otherwise() {
        let record = answer(XID, "server", "198.51.100.7:40000");
        assert_eq!(
            judge(record.clone(), None, true),
            Err(HelloFault::ObservedMismatch {
                bound: "192.0.2.10:40000".parse().unwrap(),
                observed: "198.51.100.7:40000".parse().unwrap(),
            })
        );
        let accepted = judge(record, None, false).unwrap();
        assert!(accepted.observed_differs);
        assert_eq!(accepted.reply.node, node("server"));
    }

    #[test]
    fn only_the_observed_ip_counts_not_the_port_nor_a_mapped_form() {
        // A port rewritten on the way (or a mapped IPv4 form) is the same
        // source.
        let port = judge(answer(XID, "server", "192.0.2.10:1"), None, true).unwrap();
        assert!(!port.observed_differs);
        let mapped = judge(
            answer(XID, "server", "[::ffff:192.0.2.10]:40000"),
            None,
            true,
        );
        assert!(
            matches!(&mapped, Ok(a) if !a.observed_differs),
            "{mapped:?}"
        );
    }

    #[test]
    fn the_checks_run_in_order_the_first_failure_is_the_verdict() {
        // Wrong XID and wrong peer: the XID is judged first.
        assert!(matches!(
            judge(answer(XID + 1, "impostor", "198.51.100.7:1"), None, true),
            Err(HelloFault::WrongXid { .. })
        ));
        // Wrong peer, wrong CN and another observed IP: the peer first.
        assert!(matches!(
            judge(
                answer(XID, "impostor", "198.51.100.7:1"),
                Some(Some("x")),
                true
            ),
            Err(HelloFault::WrongPeer { .. })
        ));
        // Wrong CN and another observed IP: the CN first.
        assert!(matches!(
            judge(
                answer(XID, "server", "198.51.100.7:1"),
                Some(Some("x")),
                true
            ),
            Err(HelloFault::CertificateCn { .. })
        ));
    }
}
