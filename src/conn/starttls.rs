//! RPC-with-TLS (RFC 9289 §4.1), pure: the `AUTH_TLS` probe and its
//! answer, bytes in, bytes or a refusal out.
//!
//! The client opens with a NULL call whose credential is `AUTH_TLS` (7)
//! with an empty body and whose verifier is an empty `AUTH_NONE`. A server
//! that offers TLS answers `MSG_ACCEPTED` with an `AUTH_NONE` verifier
//! whose body is the 8 ASCII bytes `STARTTLS`, and the client's next bytes
//! are its TLS ClientHello on the same connection. Any other answer means
//! "no TLS here": the client must not start TLS, and (when TLS is required,
//! as ours always is) must not go on in plain text either.
//!
//! A server *requiring* STARTTLS accepts nothing else as the first record:
//! [`judge_first_record`] reads at most [`MAX_PROBE_RECORD`] bytes of it,
//! checked before anything is buffered. A server *without* TLS answers the
//! probe like any NULL call, with an empty `AUTH_NONE` verifier, so it
//! never pretends to upgrade (see `ServerConnection`).
//!
//! ```text
//!  probe (call)                         answer (reply)
//!  xid | 0 CALL | 2 | prog | vers | 0   xid | 1 REPLY | 0 MSG_ACCEPTED
//!  cred: 7 AUTH_TLS, length 0           verf: 0 AUTH_NONE, length 8, "STARTTLS"
//!  verf: 0 AUTH_NONE, length 0          0 SUCCESS
//! ```

use bytes::{Bytes, BytesMut};

use crate::proto::{
    AcceptStatus, CallHeader, DecodeError, Message, MessageBody, OpaqueAuth, RPC_VERSION,
    RecordEncoder, ReplyBody,
};

/// The `AUTH_TLS` credential flavor (RFC 9289 §8.1; IANA RPC
/// authentication flavor 7).
pub const AUTH_TLS: u32 = 7;

/// The verifier body of a server that upgrades (RFC 9289 §4.1).
pub const STARTTLS: &[u8; 8] = b"STARTTLS";

/// The longest first record a STARTTLS server reads: a probe is 40 bytes,
/// and an `AUTH_NONE` verifier may carry at most 400 more.
pub const MAX_PROBE_RECORD: usize = 512;

/// Why a first record is not an acceptable probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotAProbe {
    /// The bytes are a TLS record (a client speaking TLS from the first
    /// byte to a STARTTLS server).
    LooksLikeTls,
    /// The record is longer than [`MAX_PROBE_RECORD`], or in several
    /// fragments.
    TooLong(u32),
    /// Not an RPC message.
    Malformed(DecodeError),
    /// A reply, or a call of another RPC version.
    NotACall,
    /// A call, but not a NULL call with an empty `AUTH_TLS` credential and
    /// an empty `AUTH_NONE` verifier: plain-text RPC.
    PlainCall {
        /// Its program.
        program: u32,
        /// Its procedure.
        procedure: u32,
        /// Its credential flavor.
        flavor: u32,
    },
}

impl std::fmt::Display for NotAProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotAProbe::LooksLikeTls => {
                f.write_str("TLS from the first byte, without the AUTH_TLS probe")
            }
            NotAProbe::TooLong(len) => {
                write!(f, "a first record of {len} bytes, too long for a probe")
            }
            NotAProbe::Malformed(error) => write!(f, "a malformed first record: {error}"),
            NotAProbe::NotACall => f.write_str("a first record that is not an RPC v2 call"),
            NotAProbe::PlainCall {
                program,
                procedure,
                flavor,
            } => write!(
                f,
                "a plain-text call (program {program}, procedure {procedure}, credential flavor {flavor}) instead of the AUTH_TLS probe"
            ),
        }
    }
}

/// What to do with the bytes read so far on a STARTTLS server's fresh
/// connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeStep {
    /// Read until `buf` holds this many bytes in all, then judge again.
    Need(usize),
    /// The probe was well-formed: write `reply` (record-marked), then run
    /// the TLS handshake. `consumed` bytes of `buf` were the probe.
    Upgrade {
        /// The record-marked answer.
        reply: Bytes,
        /// The probe's length, header included.
        consumed: usize,
    },
    /// Not a probe: close, refusing plain text.
    Refuse(NotAProbe),
}

/// True when `bytes` start like a TLS record: a content type of
/// change_cipher_spec, alert, handshake or application data, then major
/// version 3. Record marking never starts so for a probe-sized record.
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x14..=0x17, 0x03, ..])
}

/// Judges the start of a STARTTLS server's connection: `buf` holds the
/// bytes read so far (the driver reads no more than [`ProbeStep::Need`]
/// asks, so nothing past the probe is ever read in plain text).
pub fn judge_first_record(buf: &[u8]) -> ProbeStep {
    if buf.len() >= 2 && looks_like_tls(buf) {
        return ProbeStep::Refuse(NotAProbe::LooksLikeTls);
    }
    let Some(header) = buf.first_chunk::<4>() else {
        return ProbeStep::Need(4);
    };
    let header = u32::from_be_bytes(*header);
    let (last, len) = (header & 0x8000_0000 != 0, header & 0x7fff_ffff);
    if !last || len as usize > MAX_PROBE_RECORD {
        return ProbeStep::Refuse(NotAProbe::TooLong(len));
    }
    let total = 4 + len as usize;
    if buf.len() < total {
        return ProbeStep::Need(total);
    }
    let record = Bytes::copy_from_slice(&buf[4..total]);
    let message = match Message::decode(record) {
        Ok(message) => message,
        Err(error) => return ProbeStep::Refuse(NotAProbe::Malformed(error)),
    };
    let MessageBody::Call { header, .. } = &message.body else {
        return ProbeStep::Refuse(NotAProbe::NotACall);
    };
    if header.rpcvers != RPC_VERSION {
        return ProbeStep::Refuse(NotAProbe::NotACall);
    }
    if !is_probe(header) {
        return ProbeStep::Refuse(NotAProbe::PlainCall {
            program: header.program,
            procedure: header.procedure,
            flavor: header.cred.flavor,
        });
    }
    ProbeStep::Upgrade {
        reply: record_marked(&upgrade_reply(message.xid)),
        consumed: total,
    }
}

/// True for a well-formed probe: NULL, an empty `AUTH_TLS` credential and
/// an empty `AUTH_NONE` verifier.
pub fn is_probe(header: &CallHeader) -> bool {
    header.procedure == 0
        && header.cred.flavor == AUTH_TLS
        && header.cred.body.is_empty()
        && header.verf == OpaqueAuth::none()
}

/// The answer of a server that upgrades.
pub fn upgrade_reply(xid: u32) -> Message {
    let body = ReplyBody::Accepted {
        verf: OpaqueAuth {
            flavor: crate::proto::flavor::AUTH_NONE,
            body: Bytes::from_static(STARTTLS),
        },
        status: AcceptStatus::Success,
    };
    Message::reply(xid, body, Bytes::new())
}

/// The probe a client sends, record-marked, to `program`/`version`.
pub fn probe(xid: u32, program: u32, version: u32) -> Bytes {
    let header = CallHeader {
        cred: OpaqueAuth {
            flavor: AUTH_TLS,
            body: Bytes::new(),
        },
        ..CallHeader::new(program, version, 0)
    };
    record_marked(&Message::call(xid, header, Bytes::new()))
}

/// True when `record` (one whole record, without its header) is the
/// answer to the probe `xid` that lets the client start TLS: a reply to
/// it, `MSG_ACCEPTED` (any accept status, as RFC 9289 allows), with an
/// `AUTH_NONE` verifier whose body is `STARTTLS`.
pub fn answers_starttls(record: Bytes, xid: u32) -> bool {
    let Ok(message) = Message::decode(record) else {
        return false;
    };
    match message.body {
        MessageBody::Reply {
            body: ReplyBody::Accepted { verf, .. },
            ..
        } => {
            message.xid == xid
                && verf.flavor == crate::proto::flavor::AUTH_NONE
                && verf.body[..] == STARTTLS[..]
        }
        _ => false,
    }
}

fn record_marked(message: &Message) -> Bytes {
    let mut body = BytesMut::new();
    message.encode(&mut body);
    let mut out = BytesMut::new();
    RecordEncoder::default().encode(&body, &mut out);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_is_answered_starttls_and_the_answer_is_recognised() {
        let wire = probe(0x1234, 0x2050_5752, 1);
        // Fed a byte at a time, it asks for exactly the probe, never more.
        let mut need = 0;
        for end in 0..wire.len() {
            match judge_first_record(&wire[..end]) {
                ProbeStep::Need(n) => {
                    assert!(n > end && n <= wire.len());
                    need = n;
                }
                other => panic!("{other:?} at {end}"),
            }
        }
        assert_eq!(need, wire.len());
        let ProbeStep::Upgrade { reply, consumed } = judge_first_record(&wire) else {
            panic!("not upgraded")
        };
        assert_eq!(consumed, wire.len());
        // The reply: xid, REPLY, MSG_ACCEPTED, AUTH_NONE, 8, "STARTTLS", SUCCESS.
        let mut expected = vec![0x80, 0, 0, 32, 0, 0, 0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0];
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 8]);
        expected.extend_from_slice(b"STARTTLS");
        expected.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(&reply[..], &expected[..]);
        assert!(answers_starttls(reply.slice(4..), 0x1234));
        assert!(!answers_starttls(reply.slice(4..), 0x1235), "another xid");
    }

    #[test]
    fn a_plain_call_or_tls_bytes_are_refused() {
        let plain = record_marked(&Message::call(
            9,
            CallHeader::new(0x2050_5752, 1, 1),
            Bytes::from_static(b"hello"),
        ));
        assert!(matches!(
            judge_first_record(&plain),
            ProbeStep::Refuse(NotAProbe::PlainCall {
                procedure: 1,
                flavor: 0,
                ..
            })
        ));
        // A TLS ClientHello record.
        assert_eq!(
            judge_first_record(&[0x16, 0x03, 0x01, 0x02, 0x00]),
            ProbeStep::Refuse(NotAProbe::LooksLikeTls)
        );
        // A huge or fragmented first record is refused before any of it is
        // buffered.
        assert_eq!(
            judge_first_record(&[0x80, 0x10, 0, 0]),
            ProbeStep::Refuse(NotAProbe::TooLong(0x0010_0000))
        );
        assert!(matches!(
            judge_first_record(&[0x00, 0, 0, 40]),
            ProbeStep::Refuse(NotAProbe::TooLong(40))
        ));
    }

    #[test]
    fn a_probe_with_a_credential_body_is_not_a_probe() {
        let header = CallHeader {
            cred: OpaqueAuth {
                flavor: AUTH_TLS,
                body: Bytes::from_static(b"abcd"),
            },
            ..CallHeader::new(100_000, 2, 0)
        };
        let wire = record_marked(&Message::call(1, header, Bytes::new()));
        assert!(matches!(
            judge_first_record(&wire),
            ProbeStep::Refuse(NotAProbe::PlainCall {
                flavor: AUTH_TLS,
                ..
            })
        ));
    }

    #[test]
    fn an_answer_without_the_token_does_not_start_tls() {
        let plain = Message::reply(5, ReplyBody::accepted(AcceptStatus::Success), Bytes::new());
        assert!(!answers_starttls(record_marked(&plain).slice(4..), 5));
        let denied = Message::reply(
            5,
            ReplyBody::Denied(crate::proto::Rejection::AuthError(
                crate::proto::AuthStat::BAD_CRED,
            )),
            Bytes::new(),
        );
        assert!(!answers_starttls(record_marked(&denied).slice(4..), 5));
        assert!(!answers_starttls(Bytes::from_static(b"junk"), 5));
    }
}
