//! The HELLO gate of a server connection whose server has an identity:
//! until the peer's HELLO succeeds, only NULL and HELLO are answered, any
//! other call is refused, and records are held to the smaller pre-HELLO
//! limits. A HELLO is judged here: its node ID against the certificate's CN
//! over TLS, then against the peer table and the observed address
//! ([`ServerIdentity::decide`]); a second HELLO must not change who the
//! peer is.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use super::server::{Inbound, ServerConnection};
use crate::addr::CanonicalIp;
use crate::peer::hello::{
    HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO, Hello, HelloReply, NodeId,
    wire::{HelloArgs, HelloRes},
};
use crate::peer::{Refusal, ServerIdentity};
use crate::proto::xdr::{from_bytes, to_bytes};
use crate::proto::{AcceptStatus, AuthStat, CallHeader, Message, RecordLimits, ReplyBody};

/// The handshake gate of a connection whose server has an identity.
#[derive(Debug)]
pub(super) struct Gate {
    pub(super) identity: Arc<ServerIdentity>,
    pub(super) observed: SocketAddr,
    pub(super) peer: Option<NodeId>,
}

impl ServerConnection {
    /// The connection runs over TLS, and the peer's certificate has this
    /// subject CN (or none): with an identity, a HELLO is accepted only if
    /// its claimed node ID equals the CN ([`Refusal::CertificateCn`]).
    pub fn with_certificate_cn(mut self, cn: Option<String>) -> Self {
        self.certificate_cn = Some(cn);
        self
    }

    /// Requires a successful HELLO from the peer at `observed` before any
    /// call but NULL and HELLO is served.
    pub fn with_identity(
        mut self,
        identity: Arc<ServerIdentity>,
        observed: SocketAddr,
    ) -> ServerConnection {
        self.gate = Some(Gate {
            identity,
            observed,
            peer: None,
        });
        self.apply_limits();
        self
    }

    /// Until its HELLO succeeds, a connection with the HELLO gate reads
    /// records under `limits` (each capped at the connection's own): a
    /// peer that has not identified itself may send only what a HELLO
    /// needs, and a record over them ends the connection
    /// ([`ServerConnection::receive`] fails). Without the gate, nothing
    /// changes.
    pub fn with_limits_before_hello(mut self, limits: RecordLimits) -> Self {
        let capped = RecordLimits::new(
            limits.max_fragment().min(self.limits.max_fragment()),
            limits.max_record().min(self.limits.max_record()),
            limits.max_fragments().min(self.limits.max_fragments()),
        )
        .expect("the smaller of two valid limits is valid");
        self.limits_before_hello = Some(capped);
        self.apply_limits();
        self
    }

    /// True while the pre-HELLO limits are the ones in force: a record
    /// refused now was refused by them.
    pub fn limited_before_hello(&self) -> bool {
        self.awaiting_hello() && self.limits_before_hello.is_some()
    }

    /// Gives the decoder the limits the connection's state calls for.
    /// Called only between records: at set-up, and when HELLO succeeds
    /// (on a whole record).
    pub(super) fn apply_limits(&mut self) {
        let limits = match self.limits_before_hello {
            Some(limits) if self.awaiting_hello() => limits,
            _ => self.limits,
        };
        self.records.set_limits(limits);
    }

    /// Replaces the identity later HELLOs on this connection are judged by
    /// (the server's peer table changed). A connection without the HELLO
    /// gate stays without it.
    pub fn set_identity(&mut self, identity: Arc<ServerIdentity>) {
        if let Some(gate) = &mut self.gate {
            gate.identity = identity;
        }
    }

    /// The peer's node ID, once its HELLO succeeded.
    pub fn peer(&self) -> Option<&NodeId> {
        self.gate.as_ref()?.peer.as_ref()
    }

    /// True when the connection still waits for its HELLO.
    pub fn awaiting_hello(&self) -> bool {
        self.gate.as_ref().is_some_and(|g| g.peer.is_none())
    }

    fn hello(&mut self, xid: u32, args: &Bytes) -> Inbound {
        let Ok(hello) = from_bytes::<HelloArgs>(args).and_then(Hello::try_from) else {
            // A node ID with a control character is a refusal with a
            // verdict, not merely bad arguments: it is an attempt to forge
            // log lines or drive a terminal.
            if let Some(claimed) = invalid_claimed_id(args) {
                let refusal = Refusal::InvalidNodeId { claimed };
                return self.refuse(xid, AuthStat::REJECTED_CRED, None, Some(refusal));
            }
            return self.answer(xid, ReplyBody::accepted(AcceptStatus::GarbageArgs));
        };
        // Over TLS the certificate says who the peer is; the claim must
        // agree before the peer table is asked.
        if let Some(cn) = &self.certificate_cn
            && cn.as_deref() != Some(hello.node.as_str())
        {
            let refusal = Refusal::CertificateCn { cn: cn.clone() };
            return self.refuse(
                xid,
                AuthStat::REJECTED_CRED,
                Some(hello.node),
                Some(refusal),
            );
        }
        let gate = self
            .gate
            .as_mut()
            .expect("hello is only called with a gate");
        let verdict = gate
            .identity
            .decide(&hello, CanonicalIp::from(gate.observed));
        match verdict {
            // A second HELLO must not change who the peer is.
            Ok(_) if gate.peer.as_ref().is_some_and(|p| *p != hello.node) => {
                self.refuse(xid, AuthStat::REJECTED_CRED, Some(hello.node), None)
            }
            Ok(version) => {
                let reply = HelloReply {
                    node: gate.identity.node.clone(),
                    observed: crate::addr::canonical_socket_addr(gate.observed),
                    version,
                };
                gate.peer = Some(hello.node);
                self.apply_limits();
                self.stats.answered_here += 1;
                let body = ReplyBody::accepted(AcceptStatus::Success);
                Inbound::Reply(Message::reply(xid, body, to_bytes(&HelloRes::from(&reply))))
            }
            Err(refusal) => self.refuse(
                xid,
                AuthStat::REJECTED_CRED,
                Some(hello.node),
                Some(refusal),
            ),
        }
    }

    /// Judges a call on a connection with the HELLO gate: the handshake
    /// program's calls (NULL and HELLO) are answered here, and any other
    /// call before a successful HELLO is refused with AUTH_TOOWEAK. `None`:
    /// no gate, or past it; the call goes on to the registry.
    pub(super) fn gate_call(
        &mut self,
        xid: u32,
        header: &CallHeader,
        args: &Bytes,
    ) -> Option<Inbound> {
        let awaiting = self.gate.as_ref()?.peer.is_none();
        if header.program == HANDSHAKE_PROGRAM {
            if header.version != HANDSHAKE_VERSION {
                let status = AcceptStatus::ProgMismatch {
                    low: HANDSHAKE_VERSION,
                    high: HANDSHAKE_VERSION,
                };
                return Some(self.answer(xid, ReplyBody::accepted(status)));
            }
            return Some(match header.procedure {
                0 => self.answer(xid, ReplyBody::accepted(AcceptStatus::Success)),
                HELLO => self.hello(xid, args),
                _ => self.answer(xid, ReplyBody::accepted(AcceptStatus::ProcUnavail)),
            });
        }
        awaiting.then(|| self.refuse(xid, AuthStat::TOO_WEAK, None, None))
    }
}

/// The node ID a HELLO claims, when it is readable text that is not a
/// valid node ID because of a control character.
/// (The arguments start with the node ID, `hello_id` of hello.x.)
fn invalid_claimed_id(args: &Bytes) -> Option<String> {
    use crate::proto::xdr::XdrDecode;
    let mut r = crate::proto::xdr::XdrReader::new(args);
    let id = crate::peer::hello::wire::HelloId::decode(&mut r).ok()?;
    let text = id.0.to_str().ok()?;
    match NodeId::new(text) {
        Err(e) if e.has_control_character() => Some(text.to_owned()),
        _ => None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::conn::server::tests::{now, registry, wire};
    use crate::proto::{DecodeError, OpaqueAuth};

    fn hello_call(node: &str) -> Message {
        let hello = Hello {
            node: NodeId::new(node).unwrap(),
            versions: crate::peer::hello::PROTOCOL_VERSIONS.to_vec(),
            cluster: None,
        };
        Message::call(
            11,
            CallHeader::new(HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO),
            to_bytes(&HelloArgs::from(&hello)),
        )
    }

    pub(in crate::conn) fn gated(cn: Option<&str>) -> ServerConnection {
        gated_plain().with_certificate_cn(cn.map(str::to_owned))
    }

    /// With the HELLO gate, over plain TCP.
    fn gated_plain() -> ServerConnection {
        let identity = ServerIdentity {
            node: NodeId::new("server").unwrap(),
            cluster: None,
            peers: crate::peer::PeerTable::new().allow(
                NodeId::new("node-a").unwrap(),
                ["192.0.2.10".parse().unwrap()],
            ),
            mode: crate::peer::IdentityMode::Strict,
        };
        ServerConnection::new(RecordLimits::default(), 4)
            .with_identity(Arc::new(identity), "192.0.2.10:999".parse().unwrap())
    }

    #[test]
    fn over_tls_a_hello_must_claim_the_certificate_cn() {
        let mut conn = gated(Some("node-a"));
        let inbound = conn.receive(&mut wire(&hello_call("node-a")), &registry(), now());
        assert!(
            matches!(inbound, Ok(Some(Inbound::Reply(_)))),
            "{inbound:?}"
        );
        assert_eq!(conn.peer().map(NodeId::as_str), Some("node-a"));

        // The table allows node-a from this address, but the certificate
        // says node-b: refused for the certificate, before the table.
        let mut conn = gated(Some("node-b"));
        let inbound = conn.receive(&mut wire(&hello_call("node-a")), &registry(), now());
        match inbound {
            Ok(Some(Inbound::Refuse {
                claimed, refusal, ..
            })) => {
                assert_eq!(claimed.as_ref().map(NodeId::as_str), Some("node-a"));
                assert_eq!(
                    refusal,
                    Some(Refusal::CertificateCn {
                        cn: Some("node-b".into())
                    })
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(conn.peer(), None);

        // A certificate without a CN names nobody.
        let mut conn = gated(None);
        let inbound = conn.receive(&mut wire(&hello_call("node-a")), &registry(), now());
        assert!(matches!(
            inbound,
            Ok(Some(Inbound::Refuse {
                refusal: Some(Refusal::CertificateCn { cn: None }),
                ..
            }))
        ));
    }

    /// The largest HELLO a peer can send: a 255-byte node ID and cluster
    /// ID, 16 versions, a credential and a verifier of 400 bytes each.
    fn largest_hello(node: &str) -> Message {
        let mut args = BytesMut::new();
        {
            let mut w = crate::proto::xdr::XdrWriter::new(&mut args);
            w.string(node);
            w.array(&[1u32; 16], |w, v| w.u32(*v));
            w.optional(Some(&"c".repeat(255)), |w, c| w.string(c));
        }
        let mut header = CallHeader::new(HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO);
        let auth = |flavor| OpaqueAuth {
            flavor,
            body: Bytes::from(vec![0u8; 400]),
        };
        header.cred = auth(1);
        header.verf = auth(0);
        Message::call(12, header, args.freeze())
    }

    #[test]
    fn before_hello_records_are_held_to_the_small_limits() {
        let before = RecordLimits::with_max_record(1432).unwrap();
        let mut conn = gated_plain().with_limits_before_hello(before);
        assert!(conn.limited_before_hello());
        // A header over the pre-HELLO limit fails at once, nothing read.
        let mut buf = BytesMut::from(&crate::proto::record_header(1433, false)[..]);
        let refused = conn.receive(&mut buf, &registry(), now());
        assert_eq!(
            refused,
            Err(DecodeError::new(
                crate::proto::DecodeErrorKind::FragmentTooLong {
                    len: 1433,
                    max: 1432
                },
                0
            ))
        );

        // The largest HELLO fits it exactly, and is judged (here refused:
        // its 255-byte node ID is unknown).
        let mut conn = gated_plain().with_limits_before_hello(before);
        let largest = wire(&largest_hello(&"n".repeat(255)));
        assert_eq!(
            largest.len() - 4,
            crate::limits::Limits::HEADER_ALLOWANCE + crate::peer::hello::MAX_HELLO_ARGS
        );
        assert_eq!(largest.len() - 4, 1432);
        let judged = conn.receive(&mut largest.clone(), &registry(), now());
        assert!(
            matches!(judged, Ok(Some(Inbound::Refuse { .. }))),
            "{judged:?}"
        );

        // After a successful HELLO the connection's own limits apply.
        let mut conn = gated_plain().with_limits_before_hello(before);
        let inbound = conn.receive(&mut wire(&hello_call("node-a")), &registry(), now());
        assert!(
            matches!(inbound, Ok(Some(Inbound::Reply(_)))),
            "{inbound:?}"
        );
        assert!(!conn.limited_before_hello());
        let big = Message::call(
            8,
            CallHeader::new(100, 1, 5),
            Bytes::from(vec![0u8; 64 << 10]),
        );
        let inbound = conn.receive(&mut wire(&big), &registry(), now());
        assert!(
            matches!(inbound, Ok(Some(Inbound::Dispatch(_)))),
            "{inbound:?}"
        );

        // Without the gate the pre-HELLO limits do not apply.
        let mut conn =
            ServerConnection::new(RecordLimits::default(), 4).with_limits_before_hello(before);
        assert!(!conn.limited_before_hello());
        let inbound = conn.receive(&mut wire(&big), &registry(), now());
        assert!(
            matches!(inbound, Ok(Some(Inbound::Dispatch(_)))),
            "{inbound:?}"
        );
    }
}
