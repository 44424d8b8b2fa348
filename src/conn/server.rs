//! The server's pure per-connection state: records in, decisions out.
//!
//! [`ServerConnection`] decodes calls from the read buffer and decides, for
//! each, without I/O: answer at once (NULL, RPC_MISMATCH, PROG_UNAVAIL,
//! PROG_MISMATCH, GARBAGE_ARGS for a call whose header is malformed), hand it
//! to a handler ([`Inbound::Dispatch`]), or drop it (anything that is not a
//! call). It counts the calls in progress, so the driver knows when to stop
//! reading and let TCP push back, and it keeps the connection's timers
//! (HELLO and idle), with time passed in: the driver arms one timer at
//! [`ServerConnection::next_timeout`] and calls
//! [`ServerConnection::timeout`] when it fires, whatever else the
//! connection is waiting for. With the server's identity, the HELLO gate
//! ([`super::hello_gate`]) stands before the registry ([`Registry`]).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::hello_gate::Gate;
use super::registry::Registry;
use crate::peer::Refusal;
use crate::peer::hello::NodeId;
use crate::proto::{
    AcceptStatus, AuthStat, DecodeError, Message, MessageBody, OpaqueAuth, RPC_VERSION,
    RecordDecoder, RecordLimits, Rejection, ReplyBody,
};

/// A call for a handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dispatch {
    /// The XID to answer with.
    pub xid: u32,
    /// The program.
    pub program: u32,
    /// The version.
    pub version: u32,
    /// The procedure (never 0: NULL is answered here).
    pub procedure: u32,
    /// The caller's credential.
    pub cred: OpaqueAuth,
    /// The arguments, undecoded.
    pub args: Bytes,
}

/// Why an incoming record was dropped without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// A reply: a server expects calls only.
    NotACall,
    /// Not even an XID and a message type could be read.
    Malformed(DecodeError),
}

/// What to do with one incoming record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Send this reply now.
    Reply(Message),
    /// Run a handler; answer with [`ServerConnection::complete`].
    Dispatch(Dispatch),
    /// Dropped, and counted.
    Dropped(Dropped),
    /// Send this AUTH_ERROR reply, then close the connection: the caller
    /// failed the handshake, or called before it.
    Refuse {
        /// The reply to send.
        reply: Message,
        /// The node ID the caller claimed, if it sent a HELLO.
        claimed: Option<NodeId>,
        /// Why its HELLO was refused; `None` for a call before HELLO.
        refusal: Option<Refusal>,
    },
}

/// Counters of one server connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Calls dispatched to handlers.
    pub dispatched: u64,
    /// Calls answered here (NULL and the error replies).
    pub answered_here: u64,
    /// Records dropped without an answer.
    pub dropped: u64,
}

/// A timer of the connection that ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    /// No successful HELLO within the handshake timeout.
    Handshake(Duration),
    /// No call in progress and no whole record received for the idle
    /// timeout.
    Idle(Duration),
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Timers {
    idle: Duration,
    idle_deadline: Instant,
    handshake: Duration,
    handshake_deadline: Instant,
}

/// One server connection's protocol state.
#[derive(Debug)]
pub struct ServerConnection {
    pub(super) records: RecordDecoder,
    /// The record limits once HELLO has succeeded (or without a gate).
    pub(super) limits: RecordLimits,
    /// The smaller record limits of a gated connection until its HELLO
    /// succeeds, if set.
    pub(super) limits_before_hello: Option<RecordLimits>,
    pub(super) in_progress: usize,
    pub(super) limit: usize,
    pub(super) stats: ServeStats,
    pub(super) gate: Option<Gate>,
    pub(super) timers: Option<Timers>,
    pub(super) max_args: usize,
    /// Over TLS: the CN of the peer's certificate, which a HELLO must
    /// claim as its node ID.
    pub(super) certificate_cn: Option<Option<String>>,
}

impl ServerConnection {
    /// A connection with these record limits and at most `limit` calls in
    /// progress at once.
    pub fn new(limits: RecordLimits, limit: usize) -> ServerConnection {
        ServerConnection {
            records: RecordDecoder::new(limits),
            limits,
            limits_before_hello: None,
            in_progress: 0,
            limit: limit.max(1),
            stats: ServeStats::default(),
            gate: None,
            timers: None,
            max_args: usize::MAX,
            certificate_cn: None,
        }
    }

    /// Answers a call whose arguments are longer than `max_args` with
    /// GARBAGE_ARGS instead of handing it to a handler. (The record limit
    /// bounds what is read; this makes the limit exact in argument bytes.)
    pub fn with_max_args(mut self, max_args: usize) -> Self {
        self.max_args = max_args;
        self
    }

    /// Arms the idle timer and, with an identity, the HELLO timer, both
    /// counted from `now`.
    pub fn with_timeouts(mut self, now: Instant, idle: Duration, handshake: Duration) -> Self {
        self.timers = Some(Timers {
            idle,
            idle_deadline: now + idle,
            handshake,
            handshake_deadline: now + handshake,
        });
        self
    }

    /// When the driver must call [`ServerConnection::timeout`] next.
    pub fn next_timeout(&self) -> Option<Instant> {
        let timers = self.timers.as_ref()?;
        let idle = (self.in_progress == 0).then_some(timers.idle_deadline);
        let hello = self.awaiting_hello().then_some(timers.handshake_deadline);
        idle.into_iter().chain(hello).min()
    }

    /// Which timer, if any, has run out at `now`. The connection must then
    /// be closed.
    pub fn timeout(&self, now: Instant) -> Option<Expired> {
        let timers = self.timers.as_ref()?;
        if self.awaiting_hello() && now >= timers.handshake_deadline {
            return Some(Expired::Handshake(timers.handshake));
        }
        if self.in_progress == 0 && now >= timers.idle_deadline {
            return Some(Expired::Idle(timers.idle));
        }
        None
    }

    /// Something counted as activity happened at `now`: the idle timer
    /// starts again.
    pub(super) fn active(&mut self, now: Instant) {
        if let Some(timers) = &mut self.timers {
            timers.idle_deadline = now + timers.idle;
        }
    }

    /// True while another call may be read: at the limit, the driver stops
    /// reading and TCP pushes back on the peer.
    pub fn can_read(&self) -> bool {
        self.in_progress < self.limit
    }

    /// Calls handed to handlers and not yet completed.
    pub fn in_progress(&self) -> usize {
        self.in_progress
    }

    /// Bytes of a partial record held between reads.
    pub fn held_bytes(&self) -> usize {
        self.records.held_bytes()
    }

    /// True when no partial record is held.
    pub fn is_idle(&self) -> bool {
        self.records.is_idle()
    }

    /// The counters.
    pub fn stats(&self) -> ServeStats {
        self.stats
    }

    /// Takes the next record from `buf` and decides about it. `Ok(None)`:
    /// more bytes are needed. An error means the record marking is broken
    /// or over a limit: close the connection.
    ///
    /// Call it only while [`ServerConnection::can_read`] holds.
    /// Only a whole record counts as activity for the idle timer: a record
    /// trickled in a byte at a time does not keep the connection open.
    pub fn receive(
        &mut self,
        buf: &mut BytesMut,
        registry: &Registry,
        now: Instant,
    ) -> Result<Option<Inbound>, DecodeError> {
        let Some(record) = self.records.decode(buf)? else {
            return Ok(None);
        };
        self.active(now);
        Ok(Some(self.decide(record, registry)))
    }

    /// Like [`ServerConnection::receive`] once the peer has closed its
    /// side: a partial record is an error.
    pub fn receive_eof(
        &mut self,
        buf: &mut BytesMut,
        registry: &Registry,
        now: Instant,
    ) -> Result<Option<Inbound>, DecodeError> {
        let Some(record) = self.records.decode_eof(buf)? else {
            return Ok(None);
        };
        self.active(now);
        Ok(Some(self.decide(record, registry)))
    }

    fn decide(&mut self, record: Bytes, registry: &Registry) -> Inbound {
        // XID and type, in case the rest of the header is malformed.
        let head = (record.len() >= 8).then(|| {
            let xid = u32::from_be_bytes([record[0], record[1], record[2], record[3]]);
            (xid, record[4..8] == [0, 0, 0, 0])
        });
        let message = match Message::decode(record) {
            Ok(message) => message,
            Err(error) => {
                // A call whose header is malformed still gets an answer, if
                // its XID and type can be read.
                if let Some((xid, true)) = head {
                    if self.awaiting_hello() {
                        return self.refuse(xid, AuthStat::TOO_WEAK, None, None);
                    }
                    return self.answer(xid, ReplyBody::accepted(AcceptStatus::GarbageArgs));
                }
                self.stats.dropped += 1;
                return Inbound::Dropped(Dropped::Malformed(error));
            }
        };
        let MessageBody::Call { header, args } = message.body else {
            self.stats.dropped += 1;
            return Inbound::Dropped(Dropped::NotACall);
        };
        let xid = message.xid;
        if header.rpcvers != RPC_VERSION {
            let low_high = Rejection::RpcMismatch {
                low: RPC_VERSION,
                high: RPC_VERSION,
            };
            return self.answer(xid, ReplyBody::Denied(low_high));
        }
        if super::starttls::is_probe(&header) {
            // RFC 9289's AUTH_TLS probe, to a connection already past it
            // (or a server without TLS): answered as any NULL call, with an
            // empty AUTH_NONE verifier and no STARTTLS token, so the caller
            // knows no upgrade follows.
            return self.answer(xid, ReplyBody::accepted(AcceptStatus::Success));
        }
        if let Some(inbound) = self.gate_call(xid, &header, &args) {
            return inbound;
        }
        let Some((low, high)) = registry.versions(header.program) else {
            return self.answer(xid, ReplyBody::accepted(AcceptStatus::ProgUnavail));
        };
        if !registry.contains(header.program, header.version) {
            return self.answer(
                xid,
                ReplyBody::accepted(AcceptStatus::ProgMismatch { low, high }),
            );
        }
        if header.procedure == 0 {
            return self.answer(xid, ReplyBody::accepted(AcceptStatus::Success));
        }
        if args.len() > self.max_args {
            return self.answer(xid, ReplyBody::accepted(AcceptStatus::GarbageArgs));
        }
        self.in_progress += 1;
        self.stats.dispatched += 1;
        Inbound::Dispatch(Dispatch {
            xid,
            program: header.program,
            version: header.version,
            procedure: header.procedure,
            cred: header.cred,
            args,
        })
    }

    pub(super) fn refuse(
        &mut self,
        xid: u32,
        stat: AuthStat,
        claimed: Option<NodeId>,
        refusal: Option<Refusal>,
    ) -> Inbound {
        self.stats.answered_here += 1;
        let reply = Message::reply(
            xid,
            ReplyBody::Denied(Rejection::AuthError(stat)),
            Bytes::new(),
        );
        Inbound::Refuse {
            reply,
            claimed,
            refusal,
        }
    }

    pub(super) fn answer(&mut self, xid: u32, body: ReplyBody) -> Inbound {
        self.stats.answered_here += 1;
        Inbound::Reply(Message::reply(xid, body, Bytes::new()))
    }

    /// A handler finished at `now`: builds its reply and frees its slot.
    /// `outcome` is the results, or the reply body that says why there
    /// are none.
    pub fn complete(
        &mut self,
        xid: u32,
        outcome: Result<Bytes, ReplyBody>,
        now: Instant,
    ) -> Message {
        self.in_progress = self.in_progress.saturating_sub(1);
        if self.in_progress == 0 {
            self.active(now);
        }
        match outcome {
            Ok(results) => Message::reply(xid, ReplyBody::accepted(AcceptStatus::Success), results),
            Err(body) => Message::reply(xid, body, Bytes::new()),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::conn::hello_gate::tests::gated;
    use crate::proto::{CallHeader, RecordEncoder};

    pub(in crate::conn) fn now() -> Instant {
        Instant::now()
    }

    pub(in crate::conn) fn registry() -> Registry {
        let mut r = Registry::new();
        r.add(100, 1);
        r.add(100, 3);
        r
    }

    pub(in crate::conn) fn wire(message: &Message) -> BytesMut {
        let mut body = BytesMut::new();
        message.encode(&mut body);
        let mut out = BytesMut::new();
        RecordEncoder::default().encode(&body, &mut out);
        out
    }

    fn decide(message: &Message) -> Inbound {
        let mut conn = ServerConnection::new(RecordLimits::default(), 4);
        conn.receive(&mut wire(message), &registry(), now())
            .unwrap()
            .unwrap()
    }

    fn reply_status(inbound: Inbound) -> ReplyBody {
        match inbound {
            Inbound::Reply(Message {
                body: MessageBody::Reply { body, .. },
                ..
            }) => body,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn call(program: u32, version: u32, procedure: u32) -> Message {
        Message::call(
            7,
            CallHeader::new(program, version, procedure),
            Bytes::from_static(b"args"),
        )
    }

    #[test]
    fn null_is_answered_for_every_registered_version() {
        assert_eq!(
            reply_status(decide(&call(100, 3, 0))),
            ReplyBody::accepted(AcceptStatus::Success)
        );
    }

    #[test]
    fn unknown_program_and_version() {
        assert_eq!(
            reply_status(decide(&call(200, 1, 1))),
            ReplyBody::accepted(AcceptStatus::ProgUnavail)
        );
        assert_eq!(
            reply_status(decide(&call(100, 2, 1))),
            ReplyBody::accepted(AcceptStatus::ProgMismatch { low: 1, high: 3 })
        );
    }

    #[test]
    fn other_rpc_version_gets_rpc_mismatch() {
        let mut m = call(100, 1, 1);
        if let MessageBody::Call { header, .. } = &mut m.body {
            header.rpcvers = 3;
        }
        assert_eq!(
            reply_status(decide(&m)),
            ReplyBody::Denied(Rejection::RpcMismatch { low: 2, high: 2 })
        );
    }

    #[test]
    fn calls_are_dispatched_until_the_limit() {
        let mut conn = ServerConnection::new(RecordLimits::default(), 2);
        let mut buf = BytesMut::new();
        for _ in 0..3 {
            buf.extend_from_slice(&wire(&call(100, 1, 5)));
        }
        for _ in 0..2 {
            assert!(conn.can_read());
            let inbound = conn.receive(&mut buf, &registry(), now()).unwrap().unwrap();
            assert!(matches!(
                inbound,
                Inbound::Dispatch(Dispatch { procedure: 5, .. })
            ));
        }
        assert!(!conn.can_read(), "at the limit the driver stops reading");
        let reply = conn.complete(7, Err(ReplyBody::accepted(AcceptStatus::SystemErr)), now());
        assert!(matches!(
            reply.body,
            MessageBody::Reply {
                body: ReplyBody::Accepted {
                    status: AcceptStatus::SystemErr,
                    ..
                },
                ..
            }
        ));
        assert!(conn.can_read());
    }

    #[test]
    fn auth_error_from_a_handler_is_denied_with_its_auth_stat() {
        let mut conn = ServerConnection::new(RecordLimits::default(), 2);
        let mut buf = wire(&call(100, 1, 5));
        let inbound = conn.receive(&mut buf, &registry(), now()).unwrap().unwrap();
        assert!(matches!(inbound, Inbound::Dispatch(_)));
        let reply = conn.complete(
            7,
            Err(ReplyBody::Denied(Rejection::AuthError(AuthStat::TOO_WEAK))),
            now(),
        );
        assert_eq!(reply.xid, 7);
        assert!(matches!(
            reply.body,
            MessageBody::Reply {
                body: ReplyBody::Denied(Rejection::AuthError(AuthStat::TOO_WEAK)),
                ..
            }
        ));
        assert!(
            conn.can_read(),
            "the slot is freed and the connection goes on"
        );
    }

    #[test]
    fn malformed_call_header_gets_garbage_args_and_replies_are_dropped() {
        let mut conn = ServerConnection::new(RecordLimits::default(), 2);
        let mut buf = BytesMut::new();
        // xid 9, CALL, then a truncated header.
        RecordEncoder::default().encode(b"\0\0\0\x09\0\0\0\0\0\0\0\x02", &mut buf);
        let reply = conn.receive(&mut buf, &registry(), now()).unwrap().unwrap();
        assert_eq!(
            reply,
            Inbound::Reply(Message::reply(
                9,
                ReplyBody::accepted(AcceptStatus::GarbageArgs),
                Bytes::new()
            ))
        );
        let mut buf = wire(&Message::reply(
            3,
            ReplyBody::accepted(AcceptStatus::Success),
            Bytes::new(),
        ));
        assert_eq!(
            conn.receive(&mut buf, &registry(), now()).unwrap().unwrap(),
            Inbound::Dropped(Dropped::NotACall)
        );
        assert_eq!(conn.stats().dropped, 1);
    }

    #[test]
    fn the_idle_timer_runs_only_while_no_call_is_in_progress() {
        let t0 = now();
        let idle = std::time::Duration::from_secs(5);
        let mut conn =
            ServerConnection::new(RecordLimits::default(), 4).with_timeouts(t0, idle, idle);
        assert_eq!(conn.next_timeout(), Some(t0 + idle));
        assert_eq!(conn.timeout(t0 + idle), Some(Expired::Idle(idle)));
        // A whole record at t1 restarts it; a dispatched call stops it.
        let t1 = t0 + std::time::Duration::from_secs(1);
        let inbound = conn.receive(&mut wire(&call(100, 1, 5)), &registry(), t1);
        assert!(matches!(inbound, Ok(Some(Inbound::Dispatch(_)))));
        assert_eq!(conn.next_timeout(), None);
        assert_eq!(conn.timeout(t1 + idle * 10), None);
        // The call completes at t2: idle counts from there.
        let t2 = t1 + std::time::Duration::from_secs(60);
        conn.complete(7, Ok(Bytes::new()), t2);
        assert_eq!(conn.next_timeout(), Some(t2 + idle));
        assert_eq!(conn.timeout(t2 + idle / 2), None);
    }

    #[test]
    fn arguments_over_the_limit_get_garbage_args() {
        let mut conn = ServerConnection::new(RecordLimits::default(), 4).with_max_args(3);
        let reply = conn.receive(&mut wire(&call(100, 1, 5)), &registry(), now());
        assert_eq!(
            reply_status(reply.unwrap().unwrap()),
            ReplyBody::accepted(AcceptStatus::GarbageArgs),
            "4 bytes of arguments, limit 3"
        );
        assert_eq!(conn.in_progress(), 0);
    }

    #[test]
    fn the_auth_tls_probe_is_answered_without_the_starttls_token() {
        // A server without TLS (here, with the HELLO gate up, too) answers
        // the RFC 9289 probe like a NULL call: accepted, an empty
        // AUTH_NONE verifier, so the client knows no upgrade follows.
        let probe = super::super::starttls::probe(5, 0x2050_5752, 1);
        for mut conn in [
            ServerConnection::new(RecordLimits::default(), 4),
            gated(Some("x")),
        ] {
            let mut buf = BytesMut::from(&probe[..]);
            let inbound = conn.receive(&mut buf, &registry(), now()).unwrap().unwrap();
            let Inbound::Reply(reply) = inbound else {
                panic!("{inbound:?}")
            };
            assert_eq!(reply.xid, 5);
            let MessageBody::Reply { body, .. } = &reply.body else {
                panic!()
            };
            assert_eq!(*body, ReplyBody::accepted(AcceptStatus::Success));
            let mut bytes = BytesMut::new();
            reply.encode(&mut bytes);
            assert!(!super::super::starttls::answers_starttls(bytes.freeze(), 5));
        }
    }
}
