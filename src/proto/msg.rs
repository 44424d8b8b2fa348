//! ONC RPC v2 messages (RFC 5531 §9): call and reply headers.
//!
//! A [`Message`] is decoded from one whole record. The procedure's
//! arguments or results stay undecoded, as a `Bytes` slice of the record
//! (no copy); so do credential bodies.

use std::fmt;

use bytes::{Bytes, BytesMut};

use super::error::{DecodeError, DecodeErrorKind};
use super::xdr::{XdrReader, XdrWriter};

/// The RPC protocol version this crate speaks (RFC 5531 §8).
pub const RPC_VERSION: u32 = 2;

/// The bound on an `opaque_auth` body (RFC 5531 §8.2).
pub const MAX_AUTH_BYTES: u32 = 400;

/// Authentication flavors (RFC 5531 §8.2, and GlusterFS's own).
pub mod flavor {
    /// AUTH_NONE.
    pub const AUTH_NONE: u32 = 0;
    /// AUTH_SYS (also AUTH_UNIX).
    pub const AUTH_SYS: u32 = 1;
    /// GlusterFS's AUTH_GLUSTERFS_v2.
    pub const AUTH_GLUSTERFS_V2: u32 = 390_039;
    /// GlusterFS's AUTH_GLUSTERFS_v3.
    pub const AUTH_GLUSTERFS_V3: u32 = 390_040;
}

const CALL: u32 = 0;
const REPLY: u32 = 1;
const MSG_ACCEPTED: u32 = 0;
const MSG_DENIED: u32 = 1;
const RPC_MISMATCH: u32 = 0;
const AUTH_ERROR: u32 = 1;

/// A credential or verifier: a flavor and up to 400 bytes of body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpaqueAuth {
    /// The flavor (see [`flavor`]).
    pub flavor: u32,
    /// The body, undecoded; see [`Credential`](super::Credential).
    pub body: Bytes,
}

impl OpaqueAuth {
    /// AUTH_NONE with an empty body.
    pub fn none() -> OpaqueAuth {
        OpaqueAuth::default()
    }

    fn decode(r: &mut XdrReader<'_>, record: &Bytes) -> Result<OpaqueAuth, DecodeError> {
        let flavor = r.u32()?;
        let start = r.position() + 4;
        let body = r.opaque(MAX_AUTH_BYTES)?;
        let body = record.slice(start..start + body.len());
        Ok(OpaqueAuth { flavor, body })
    }

    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.u32(self.flavor);
        w.opaque(&self.body);
    }
}

/// The header of a call (everything before the arguments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallHeader {
    /// The RPC version; 2 for every valid call. Other values still decode,
    /// so that a server can answer RPC_MISMATCH.
    pub rpcvers: u32,
    /// The program number.
    pub program: u32,
    /// The program version.
    pub version: u32,
    /// The procedure number.
    pub procedure: u32,
    /// The caller's credential.
    pub cred: OpaqueAuth,
    /// The caller's verifier.
    pub verf: OpaqueAuth,
}

impl CallHeader {
    /// The call's header as its ten XDR words (xid, CALL, rpcvers,
    /// program, version, procedure, cred flavor, 0, verf flavor, 0), when
    /// neither credential nor verifier has a body: the encoders then write
    /// it in one copy.
    pub(crate) fn fixed_words(&self, xid: u32) -> Option<[u32; 10]> {
        if !self.cred.body.is_empty() || !self.verf.body.is_empty() {
            return None;
        }
        Some([
            xid,
            CALL,
            self.rpcvers,
            self.program,
            self.version,
            self.procedure,
            self.cred.flavor,
            0,
            self.verf.flavor,
            0,
        ])
    }

    /// Appends the header's XDR from `msg_type` (CALL) to the verifier:
    /// everything after the XID.
    pub(crate) fn encode_after_xid(&self, w: &mut XdrWriter<'_>) {
        w.u32(CALL);
        w.u32(self.rpcvers);
        w.u32(self.program);
        w.u32(self.version);
        w.u32(self.procedure);
        self.cred.encode(w);
        self.verf.encode(w);
    }

    /// A version-2 call header with AUTH_NONE credential and verifier.
    pub fn new(program: u32, version: u32, procedure: u32) -> CallHeader {
        CallHeader {
            rpcvers: RPC_VERSION,
            program,
            version,
            procedure,
            cred: OpaqueAuth::none(),
            verf: OpaqueAuth::none(),
        }
    }
}

/// `accept_stat`, with the data that follows PROG_MISMATCH.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AcceptStatus {
    /// SUCCESS (0): the results follow.
    Success,
    /// PROG_UNAVAIL (1).
    ProgUnavail,
    /// PROG_MISMATCH (2): the versions the server supports.
    ProgMismatch {
        /// Lowest version supported.
        low: u32,
        /// Highest version supported.
        high: u32,
    },
    /// PROC_UNAVAIL (3).
    ProcUnavail,
    /// GARBAGE_ARGS (4).
    GarbageArgs,
    /// SYSTEM_ERR (5).
    SystemErr,
}

/// `auth_stat` (RFC 5531 §9): why a credential was refused. Values beyond
/// the named ones (RPCSEC_GSS and others) pass through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AuthStat(pub u32);

impl AuthStat {
    /// AUTH_OK.
    pub const OK: AuthStat = AuthStat(0);
    /// AUTH_BADCRED: bad credential (seal broken).
    pub const BAD_CRED: AuthStat = AuthStat(1);
    /// AUTH_REJECTEDCRED: the client must begin a new session.
    pub const REJECTED_CRED: AuthStat = AuthStat(2);
    /// AUTH_BADVERF: bad verifier.
    pub const BAD_VERF: AuthStat = AuthStat(3);
    /// AUTH_REJECTEDVERF: verifier expired or replayed.
    pub const REJECTED_VERF: AuthStat = AuthStat(4);
    /// AUTH_TOOWEAK: rejected for security reasons.
    pub const TOO_WEAK: AuthStat = AuthStat(5);
    /// AUTH_INVALIDRESP: bogus response verifier.
    pub const INVALID_RESP: AuthStat = AuthStat(6);
    /// AUTH_FAILED: some unknown reason.
    pub const FAILED: AuthStat = AuthStat(7);
}

impl fmt::Display for AuthStat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0 => "AUTH_OK",
            1 => "AUTH_BADCRED",
            2 => "AUTH_REJECTEDCRED",
            3 => "AUTH_BADVERF",
            4 => "AUTH_REJECTEDVERF",
            5 => "AUTH_TOOWEAK",
            6 => "AUTH_INVALIDRESP",
            7 => "AUTH_FAILED",
            other => return write!(f, "auth_stat {other}"),
        };
        f.write_str(name)
    }
}

/// `reject_stat`, with its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// RPC_MISMATCH (0): the RPC versions the server supports.
    RpcMismatch {
        /// Lowest version supported.
        low: u32,
        /// Highest version supported.
        high: u32,
    },
    /// AUTH_ERROR (1).
    AuthError(AuthStat),
}

/// The body of a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyBody {
    /// MSG_ACCEPTED (0).
    Accepted {
        /// The server's verifier.
        verf: OpaqueAuth,
        /// The outcome.
        status: AcceptStatus,
    },
    /// MSG_DENIED (1).
    Denied(Rejection),
}

impl ReplyBody {
    /// An accepted reply with an AUTH_NONE verifier.
    pub fn accepted(status: AcceptStatus) -> ReplyBody {
        ReplyBody::Accepted {
            verf: OpaqueAuth::none(),
            status,
        }
    }
}

/// What a message is: a call or a reply, with the bytes after its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// A call.
    Call {
        /// The header.
        header: CallHeader,
        /// The procedure's arguments, undecoded.
        args: Bytes,
    },
    /// A reply.
    Reply {
        /// The reply's status.
        body: ReplyBody,
        /// The procedure's results (for SUCCESS), undecoded; anything after
        /// the status for the others.
        results: Bytes,
    },
}

/// One RPC message: an XID and a call or reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The transaction id: it matches a reply to its call, and is not a
    /// sequence number (RFC 5531 §9).
    pub xid: u32,
    /// The call or reply.
    pub body: MessageBody,
}

impl Message {
    /// A call.
    pub fn call(xid: u32, header: CallHeader, args: Bytes) -> Message {
        Message {
            xid,
            body: MessageBody::Call { header, args },
        }
    }

    /// A reply.
    pub fn reply(xid: u32, body: ReplyBody, results: Bytes) -> Message {
        Message {
            xid,
            body: MessageBody::Reply { body, results },
        }
    }

    /// Decodes a message from one whole record. The arguments or results
    /// and the auth bodies are slices of `record`: nothing is copied.
    pub fn decode(record: Bytes) -> Result<Message, DecodeError> {
        match Message::decode_common(&record) {
            Some(message) => Ok(message),
            None => Message::decode_general(record),
        }
    }

    /// The shapes nearly every message has, read word by word: a call whose
    /// credential and verifier have empty bodies, and a successful reply
    /// with an empty verifier. The result is exactly what the general
    /// decoder makes of the same bytes; anything else is left to it.
    fn decode_common(record: &Bytes) -> Option<Message> {
        let word = |i: usize| -> Option<u32> {
            let b = record.get(4 * i..4 * i + 4)?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let auth = |flavor| OpaqueAuth {
            flavor,
            body: Bytes::new(),
        };
        let xid = word(0)?;
        let body = match word(1)? {
            CALL if record.len() >= 40 && word(7)? == 0 && word(9)? == 0 => MessageBody::Call {
                header: CallHeader {
                    rpcvers: word(2)?,
                    program: word(3)?,
                    version: word(4)?,
                    procedure: word(5)?,
                    cred: auth(word(6)?),
                    verf: auth(word(8)?),
                },
                args: record.slice(40..),
            },
            REPLY
                if record.len() >= 24
                    && word(2)? == MSG_ACCEPTED
                    && word(4)? == 0
                    && word(5)? == 0 =>
            {
                MessageBody::Reply {
                    body: ReplyBody::Accepted {
                        verf: auth(word(3)?),
                        status: AcceptStatus::Success,
                    },
                    results: record.slice(24..),
                }
            }
            _ => return None,
        };
        Some(Message { xid, body })
    }

    /// Every shape, field by field.
    fn decode_general(record: Bytes) -> Result<Message, DecodeError> {
        let mut r = XdrReader::new(&record);
        let xid = r.u32()?;
        let at = r.position();
        let body = match r.u32()? {
            CALL => {
                let rpcvers = r.u32()?;
                let program = r.u32()?;
                let version = r.u32()?;
                let procedure = r.u32()?;
                let cred = OpaqueAuth::decode(&mut r, &record)?;
                let verf = OpaqueAuth::decode(&mut r, &record)?;
                let header = CallHeader {
                    rpcvers,
                    program,
                    version,
                    procedure,
                    cred,
                    verf,
                };
                MessageBody::Call {
                    header,
                    args: record.slice(r.position()..),
                }
            }
            REPLY => {
                let body = decode_reply_body(&mut r, &record)?;
                MessageBody::Reply {
                    body,
                    results: record.slice(r.position()..),
                }
            }
            other => {
                return Err(DecodeError::new(
                    DecodeErrorKind::UnknownMessageType(other),
                    at as u64,
                ));
            }
        };
        Ok(Message { xid, body })
    }

    /// Appends the message's XDR (without record marking) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        let mut w = XdrWriter::new(dst);
        w.u32(self.xid);
        match &self.body {
            MessageBody::Call { header, args } => {
                header.encode_after_xid(&mut w);
                w.raw(args);
            }
            MessageBody::Reply { body, results } => {
                w.u32(REPLY);
                match body {
                    ReplyBody::Accepted { verf, status } => {
                        w.u32(MSG_ACCEPTED);
                        verf.encode(&mut w);
                        match *status {
                            AcceptStatus::Success => w.u32(0),
                            AcceptStatus::ProgUnavail => w.u32(1),
                            AcceptStatus::ProgMismatch { low, high } => {
                                w.u32(2);
                                w.u32(low);
                                w.u32(high);
                            }
                            AcceptStatus::ProcUnavail => w.u32(3),
                            AcceptStatus::GarbageArgs => w.u32(4),
                            AcceptStatus::SystemErr => w.u32(5),
                        }
                    }
                    ReplyBody::Denied(rejection) => {
                        w.u32(MSG_DENIED);
                        match *rejection {
                            Rejection::RpcMismatch { low, high } => {
                                w.u32(RPC_MISMATCH);
                                w.u32(low);
                                w.u32(high);
                            }
                            Rejection::AuthError(stat) => {
                                w.u32(AUTH_ERROR);
                                w.u32(stat.0);
                            }
                        }
                    }
                }
                w.raw(results);
            }
        }
    }

    /// The arguments of a call or the results of a reply.
    pub(crate) fn payload(&self) -> &Bytes {
        match &self.body {
            MessageBody::Call { args, .. } => args,
            MessageBody::Reply { results, .. } => results,
        }
    }

    /// The header as XDR words, when neither credential nor verifier has a
    /// body (nearly every message): the encoder then writes the header in
    /// one copy. Returns the words and how many are used.
    pub(crate) fn fixed_header(&self) -> Option<([u32; 10], usize)> {
        let mut words = [0u32; 10];
        let mut n = 0;
        let mut push = |v: u32| {
            words[n] = v;
            n += 1;
        };
        push(self.xid);
        match &self.body {
            MessageBody::Call { header, .. } => {
                return header.fixed_words(self.xid).map(|words| (words, 10));
            }
            MessageBody::Reply { body, .. } => {
                push(REPLY);
                match body {
                    ReplyBody::Accepted { verf, status } => {
                        if !verf.body.is_empty() {
                            return None;
                        }
                        push(MSG_ACCEPTED);
                        push(verf.flavor);
                        push(0);
                        match *status {
                            AcceptStatus::Success => push(0),
                            AcceptStatus::ProgUnavail => push(1),
                            AcceptStatus::ProgMismatch { low, high } => {
                                push(2);
                                push(low);
                                push(high);
                            }
                            AcceptStatus::ProcUnavail => push(3),
                            AcceptStatus::GarbageArgs => push(4),
                            AcceptStatus::SystemErr => push(5),
                        }
                    }
                    ReplyBody::Denied(Rejection::RpcMismatch { low, high }) => {
                        push(MSG_DENIED);
                        push(RPC_MISMATCH);
                        push(*low);
                        push(*high);
                    }
                    ReplyBody::Denied(Rejection::AuthError(stat)) => {
                        push(MSG_DENIED);
                        push(AUTH_ERROR);
                        push(stat.0);
                    }
                }
            }
        }
        Some((words, n))
    }

    /// The length of [`Message::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        let auth = |a: &OpaqueAuth| 8 + a.body.len() + super::xdr::padding(a.body.len());
        8 + match &self.body {
            MessageBody::Call { header, args } => {
                16 + auth(&header.cred) + auth(&header.verf) + args.len()
            }
            MessageBody::Reply { body, results } => {
                4 + results.len()
                    + match body {
                        ReplyBody::Accepted { verf, status } => {
                            auth(verf)
                                + match status {
                                    AcceptStatus::ProgMismatch { .. } => 12,
                                    _ => 4,
                                }
                        }
                        ReplyBody::Denied(Rejection::RpcMismatch { .. }) => 12,
                        ReplyBody::Denied(Rejection::AuthError(_)) => 8,
                    }
            }
        }
    }
}

fn decode_reply_body(r: &mut XdrReader<'_>, record: &Bytes) -> Result<ReplyBody, DecodeError> {
    let at = r.position() as u64;
    match r.u32()? {
        MSG_ACCEPTED => {
            let verf = OpaqueAuth::decode(r, record)?;
            let at = r.position() as u64;
            let status = match r.u32()? {
                0 => AcceptStatus::Success,
                1 => AcceptStatus::ProgUnavail,
                2 => AcceptStatus::ProgMismatch {
                    low: r.u32()?,
                    high: r.u32()?,
                },
                3 => AcceptStatus::ProcUnavail,
                4 => AcceptStatus::GarbageArgs,
                5 => AcceptStatus::SystemErr,
                other => {
                    return Err(DecodeError::new(
                        DecodeErrorKind::UnknownAcceptStat(other),
                        at,
                    ));
                }
            };
            Ok(ReplyBody::Accepted { verf, status })
        }
        MSG_DENIED => {
            let at = r.position() as u64;
            let rejection = match r.u32()? {
                RPC_MISMATCH => Rejection::RpcMismatch {
                    low: r.u32()?,
                    high: r.u32()?,
                },
                AUTH_ERROR => Rejection::AuthError(AuthStat(r.u32()?)),
                other => {
                    return Err(DecodeError::new(
                        DecodeErrorKind::UnknownRejectStat(other),
                        at,
                    ));
                }
            };
            Ok(ReplyBody::Denied(rejection))
        }
        other => Err(DecodeError::new(
            DecodeErrorKind::UnknownReplyStat(other),
            at,
        )),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Words that often hit the common shapes: the message types, zero
    /// lengths and statuses, and anything else.
    fn word() -> impl Strategy<Value = u32> {
        prop_oneof![
            4 => Just(0u32),
            2 => Just(1u32),
            1 => Just(2u32),
            1 => Just(400u32),
            2 => any::<u32>(),
        ]
    }

    proptest! {
        /// The common-shape decoder gives exactly what the general one
        /// gives, on any input it accepts.
        #[test]
        fn the_common_shapes_decode_as_the_general_decoder_does(
            words in prop::collection::vec(word(), 0..14),
            tail in prop::collection::vec(any::<u8>(), 0..9),
        ) {
            let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            bytes.extend_from_slice(&tail);
            let record = Bytes::from(bytes);
            if let Some(fast) = Message::decode_common(&record) {
                prop_assert_eq!(Ok(fast), Message::decode_general(record));
            }
        }
    }
}
