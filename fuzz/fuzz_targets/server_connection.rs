//! A whole server connection's pure state: one `ServerConnection` fed a
//! stream in reads of fuzzed sizes by a model of the server's driver, whose
//! handlers finish after fuzzed delays, in any order, with fuzzed outcomes.
//!
//! Input: `peerwire_fuzz::StreamInput` (control byte, read sizes, the rest),
//! and the rest starts with a schedule: one length byte `m`, then `m`
//! schedule bytes (used in turn, over and over; none means all zero), then
//! the stream. Flags (high 4 bits of byte 0): bits 0-1 are the in-progress
//! limit less one (1 to 4); bit 2 selects the tighter record limits; bit 3
//! puts a STARTTLS server's gate (RFC 9289) in front: the stream must open
//! with the `AUTH_TLS` probe.
//!
//! The STARTTLS gate, driven as the server drives it (reads of the fuzzed
//! sizes, but never past what `judge_first_record` asks for): it must
//! refuse exactly what a plain model of the probe rules refuses, for the
//! same reason, never ask for more than the longest probe, and answer a
//! probe with exactly the `STARTTLS` reply, having read exactly the probe.
//! After an upgrade the rest of the stream stands for what TLS decrypts,
//! and goes to the connection below as usual.
//!
//! Each dispatched call takes the next schedule byte: its low 2 bits pick the
//! handler's outcome (0 = Ok, echoing the arguments; 1 = PROC_UNAVAIL;
//! 2 = GARBAGE_ARGS; 3 = SYSTEM_ERR, or AUTH_ERROR with AUTH_TOOWEAK when
//! bit 2 is set too), the high 6 bits how many driver steps
//! it runs (0 to 63). The driver, like the server's: receives only while
//! `can_read()`; reads the next chunk only when `receive` wants more bytes;
//! completes every handler whose time has come before anything else; when
//! it may not read and no handler is due, lets time pass to the next one; at
//! the end of the stream uses `receive_eof`; after a record error reads no
//! more and lets the handlers finish.
//!
//! Checked, besides "no panic":
//! - after every step: `in_progress()` is the number of handlers running and
//!   never over the limit, `can_read()` is exactly "under the limit",
//!   `held_bytes()` is within the record limit, the read buffer holds at most
//!   one fragment's worth plus one read, and its capacity stays bounded;
//! - the records the connection decides about are exactly those a plain
//!   model of RFC 5531 §11 record marking finds in the stream, up to its
//!   first error, and the connection ends on that same error (kind and
//!   offset), or cleanly and idle;
//! - each record gets what a plain model of the server's rules says: a call
//!   exactly one reply with its XID (an immediate `Inbound::Reply` for NULL,
//!   RPC_MISMATCH, PROG_UNAVAIL, PROG_MISMATCH with the served range, and
//!   GARBAGE_ARGS for a malformed header whose XID and CALL type can be
//!   read; or a `Dispatch` with exactly its header and arguments, answered
//!   by `complete` with the handler's outcome), anything else is dropped
//!   without an answer, with the reason;
//! - every reply encodes and decodes back equal, and carries the XID of a
//!   call; the counters agree with the model;
//! - the replies, queued in an `Outbox` and drained in fuzzed chunks as a
//!   socket would take them, come out as exactly those records in order,
//!   each reported sent once, in order, as soon as its first byte is taken;
//! - the idle timer (time advances one millisecond per step) is armed
//!   exactly while no call is in progress, and expires exactly at its
//!   deadline.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::time::{Duration, Instant};

use peerwire::internals::starttls::{
    self, MAX_PROBE_RECORD, NotAProbe, ProbeStep, judge_first_record,
};
use peerwire::internals::{
    Dispatch, Dropped, Expired, Inbound, Outbox, Registry, ServeStats, ServerConnection,
};
use peerwire::proto::{
    AcceptStatus, AuthStat, DecodeError, DecodeErrorKind, Message, MessageBody, RPC_VERSION,
    RecordLimits, Rejection, ReplyBody,
};
use peerwire_fuzz::StreamInput;

/// The programs served, with their versions (lowest first): rpcbind's and
/// GlusterFS's GF_DUMP, so that the captured calls in `tests/data` are
/// dispatched, answered here, or refused.
const SERVED: &[(u32, &[u32])] = &[(100_000, &[2, 3, 4]), (123_451_501, &[1])];

/// The largest read `StreamInput` makes.
const MAX_READ: usize = 255;

fn registry() -> Registry {
    let mut registry = Registry::new();
    for &(program, versions) in SERVED {
        for &version in versions {
            registry.add(program, version);
        }
    }
    registry
}

fn limits(tight: bool) -> RecordLimits {
    if tight {
        RecordLimits::new(64, 160, 4).expect("valid limits")
    } else {
        RecordLimits::new(256, 1024, 8).expect("valid limits")
    }
}

/// What the server must do with one record.
#[derive(Debug)]
enum Expected {
    /// Answer at once with this reply.
    Answer(Message),
    /// Hand exactly this to a handler.
    Dispatch(Dispatch),
    /// Drop it, for this reason.
    Drop(Dropped),
}

/// Schedule bytes, used in turn.
struct Schedule<'a> {
    bytes: &'a [u8],
    next: usize,
}

impl Schedule<'_> {
    fn next(&mut self) -> u8 {
        if self.bytes.is_empty() {
            return 0;
        }
        let byte = self.bytes[self.next % self.bytes.len()];
        self.next += 1;
        byte
    }
}

/// A handler running.
#[derive(Debug)]
struct Running {
    /// The index of its record in the stream.
    record: usize,
    xid: u32,
    /// The step at which it finishes.
    due: u64,
    /// The results, or the error reply body the server makes of the
    /// handler's `ProcError`.
    outcome: Result<Bytes, ReplyBody>,
}

fuzz_target!(|data: &[u8]| {
    let mut input = StreamInput::parse(data);
    let (schedule, stream) = match input.payload.split_first() {
        Some((&m, rest)) => rest.split_at(usize::from(m).min(rest.len())),
        None => (&[][..], &[][..]),
    };
    let stream = if input.flags & 8 != 0 {
        match starttls_gate(stream, &input) {
            Some(rest) => rest,
            None => return,
        }
    } else {
        stream
    };
    input.payload = stream;
    let limit = usize::from(input.flags & 3) + 1;
    let limits = limits(input.flags & 4 != 0);
    let registry = registry();

    // The model, over the whole stream at once.
    let (records, model_error) = split_records(stream, &limits);
    let expected: Vec<Expected> = records.iter().map(expect).collect();
    let call_xids: Vec<u32> = records
        .iter()
        .filter(|r| r.len() >= 8 && r[4..8] == [0, 0, 0, 0])
        .map(|r| xid_of(r))
        .collect();

    // The driver.
    let buffer_bound = limits.max_fragment() as usize + 4 + MAX_READ;
    let capacity_bound = 2 * buffer_bound + (128 << 10);
    let mut schedule = Schedule {
        bytes: schedule,
        next: 0,
    };
    let t0 = Instant::now();
    let clock = |step: u64| t0 + Duration::from_millis(step);
    let idle = Duration::from_millis(40);
    let mut conn = ServerConnection::new(limits, limit).with_timeouts(t0, idle, idle);
    // Shared with the reply checker below.
    let out: RefCell<Outbox<u32>> = RefCell::new(Outbox::new());
    let queued: RefCell<Vec<u32>> = RefCell::new(Vec::new());
    let mut sent: Vec<u32> = Vec::new();
    let mut wire = BytesMut::new();
    let mut chunks = input.chunks();
    let mut buf = BytesMut::new();
    let mut now = 0u64;
    let mut eof = false;
    let mut drained = false;
    let mut closed: Option<DecodeError> = None;
    let mut running: Vec<Running> = Vec::new();
    let mut decided = 0usize;
    let mut answers = vec![0u32; records.len()];
    let mut stats = ServeStats::default();

    let mut check_reply = |record: usize, reply: &Message, expected: &Message| {
        assert_eq!(reply, expected, "record {record}: wrong reply");
        assert!(
            call_xids.contains(&reply.xid),
            "reply with XID {:#x}, which no call carried",
            reply.xid
        );
        let mut wire = BytesMut::new();
        reply.encode(&mut wire);
        assert_eq!(wire.len(), reply.encoded_len());
        let back = Message::decode(wire.freeze())
            .unwrap_or_else(|e| panic!("our own reply must decode ({e}): {reply:?}"));
        assert_eq!(&back, reply);
        answers[record] += 1;
        out.borrow_mut().push(reply.xid, reply);
        queued.borrow_mut().push(reply.xid);
    };

    loop {
        // Invariants between steps.
        assert_eq!(conn.in_progress(), running.len(), "in_progress() is off");
        assert!(conn.in_progress() <= limit, "over the in-progress limit");
        assert_eq!(conn.can_read(), running.len() < limit);
        assert!(
            conn.held_bytes() <= limits.max_record(),
            "held over the limit"
        );
        assert!(
            buf.len() <= buffer_bound,
            "read buffer holds {} bytes: more than a fragment and a read",
            buf.len()
        );
        assert!(
            buf.capacity() <= capacity_bound,
            "read buffer grew to {}",
            buf.capacity()
        );
        assert_eq!(conn.stats(), stats, "counters");
        let next = conn.next_timeout();
        assert_eq!(next.is_some(), conn.in_progress() == 0, "idle timer armed");
        if let Some(at) = next {
            let fired = conn.timeout(clock(now));
            assert_eq!(fired.is_some(), clock(now) >= at, "idle timer at {now}");
            assert!(fired.is_none_or(|f| f == Expired::Idle(idle)));
        }

        // The socket takes some of the replies queued.
        {
            let mut out = out.borrow_mut();
            if !out.is_empty() {
                let take = (usize::from(schedule.next()) * 13).min(out.len()).max(1);
                wire.extend_from_slice(&out.pending()[..take]);
                out.consumed(take, |xid| sent.push(xid));
            }
        }

        // Handlers whose time has come finish first, earliest first (then
        // in the order they started).
        if let Some(i) = earliest(&running).filter(|&i| running[i].due <= now) {
            let done = running.remove(i);
            let reply = conn.complete(done.xid, done.outcome.clone(), clock(now));
            let expected = match done.outcome {
                Ok(results) => Message::reply(
                    done.xid,
                    ReplyBody::accepted(AcceptStatus::Success),
                    results,
                ),
                Err(body) => Message::reply(done.xid, body, Bytes::new()),
            };
            check_reply(done.record, &reply, &expected);
            continue;
        }
        if closed.is_some() || drained || !conn.can_read() {
            // No more reading (for now): time passes to the next handler.
            match earliest(&running) {
                Some(i) => {
                    now = running[i].due;
                    continue;
                }
                None if closed.is_some() || drained => break,
                None => unreachable!("at the limit with no handler running"),
            }
        }

        let result = if eof {
            conn.receive_eof(&mut buf, &registry, clock(now))
        } else {
            conn.receive(&mut buf, &registry, clock(now))
        };
        now += 1;
        let inbound = match result {
            Ok(Some(inbound)) => inbound,
            Ok(None) if eof => {
                drained = true;
                continue;
            }
            Ok(None) => {
                match chunks.next() {
                    Some(chunk) => buf.extend_from_slice(chunk),
                    None => eof = true,
                }
                continue;
            }
            Err(error) => {
                closed = Some(error);
                continue;
            }
        };

        let record = decided;
        decided += 1;
        assert!(
            record < records.len(),
            "a record the model does not see: {inbound:?}"
        );
        assert!(conn.is_idle(), "a record was decided mid-record");
        assert_eq!(conn.held_bytes(), 0);
        match (inbound, &expected[record]) {
            (Inbound::Reply(reply), Expected::Answer(want)) => {
                stats.answered_here += 1;
                check_reply(record, &reply, want);
            }
            (Inbound::Dispatch(call), Expected::Dispatch(want)) => {
                assert_eq!(&call, want, "record {record}: wrong dispatch");
                stats.dispatched += 1;
                let byte = schedule.next();
                let outcome = match byte & 7 {
                    0 | 4 => Ok(call.args.clone()),
                    1 | 5 => Err(ReplyBody::accepted(AcceptStatus::ProcUnavail)),
                    2 | 6 => Err(ReplyBody::accepted(AcceptStatus::GarbageArgs)),
                    3 => Err(ReplyBody::accepted(AcceptStatus::SystemErr)),
                    _ => Err(ReplyBody::Denied(Rejection::AuthError(AuthStat::TOO_WEAK))),
                };
                running.push(Running {
                    record,
                    xid: call.xid,
                    due: now + u64::from(byte >> 2),
                    outcome,
                });
            }
            (Inbound::Dropped(why), Expected::Drop(want)) => {
                assert_eq!(&why, want, "record {record}: dropped for another reason");
                stats.dropped += 1;
            }
            (inbound, want) => panic!("record {record}: got {inbound:?}, expected {want:?}"),
        }
    }

    // Every record the model found was decided about, and the connection
    // ended where the model's stream ends.
    assert_eq!(decided, records.len(), "records left undecided");
    assert_eq!(closed, model_error, "the connection ended otherwise");
    if closed.is_none() {
        assert!(conn.is_idle() && buf.is_empty(), "a clean end left bytes");
    }
    assert_eq!(conn.in_progress(), 0);
    assert!(conn.can_read());
    assert_eq!(conn.stats(), stats, "counters");
    // The outbox gives out exactly the replies queued, whole and in order,
    // each reported sent once.
    let queued = queued.into_inner();
    let mut out = out.into_inner();
    let rest = out.len();
    wire.extend_from_slice(out.pending());
    out.consumed(rest, |xid| sent.push(xid));
    assert_eq!(sent, queued, "sent reports");
    let mut decoder = peerwire::proto::RecordDecoder::new(RecordLimits::default());
    let mut written = Vec::new();
    while let Some(record) = decoder.decode(&mut wire).expect("our own records") {
        written.push(Message::decode(record).expect("our own replies").xid);
    }
    assert!(
        wire.is_empty() && decoder.is_idle(),
        "a partial record left"
    );
    assert_eq!(written, queued, "records written");
    // Exactly one answer per call, none for anything else.
    for (record, (answered, expected)) in answers.iter().zip(&expected).enumerate() {
        let want = u32::from(!matches!(expected, Expected::Drop(_)));
        assert_eq!(
            *answered, want,
            "record {record} ({expected:?}) got {answered} answers"
        );
    }
});

/// The running handler that finishes first (the earliest started among
/// those due at the same step).
fn earliest(running: &[Running]) -> Option<usize> {
    (0..running.len()).min_by_key(|&i| (running[i].due, i))
}

fn xid_of(record: &[u8]) -> u32 {
    u32::from_be_bytes([record[0], record[1], record[2], record[3]])
}

/// Record marking over the whole stream, from RFC 5531 §11 and the
/// documented limits: the records up to the first error, and that error. A
/// header is checked (fragment length, record length, fragment count
/// against what the data before it allows) at its offset; a stream that ends inside a record is truncated where that
/// record began (or where the unread bytes begin, between records).
fn split_records(stream: &[u8], limits: &RecordLimits) -> (Vec<Bytes>, Option<DecodeError>) {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut fragments = 0u32;
    let mut pos = 0usize;
    let mut start = 0usize;
    loop {
        if fragments == 0 {
            start = pos;
        }
        let rest = &stream[pos..];
        let truncated = Some(DecodeError::new(
            DecodeErrorKind::TruncatedRecord,
            start as u64,
        ));
        if rest.len() < 4 {
            let clean = rest.is_empty() && fragments == 0;
            return (records, if clean { None } else { truncated });
        }
        let raw = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let (len, last) = (raw & 0x7fff_ffff, raw & 0x8000_0000 != 0);
        let total = record.len() as u64 + u64::from(len);
        let broken = if len > limits.max_fragment() {
            Some(DecodeErrorKind::FragmentTooLong {
                len,
                max: limits.max_fragment(),
            })
        } else if total > limits.max_record() as u64 {
            Some(DecodeErrorKind::RecordTooLong {
                len: total,
                max: limits.max_record() as u64,
            })
        } else if u64::from(fragments) + 1 > limits.fragments_allowed(record.len()) {
            Some(DecodeErrorKind::TooManyFragments {
                max: u32::try_from(limits.fragments_allowed(record.len())).unwrap(),
            })
        } else {
            None
        };
        if let Some(kind) = broken {
            return (records, Some(DecodeError::new(kind, pos as u64)));
        }
        let len = len as usize;
        if rest.len() - 4 < len {
            return (records, truncated);
        }
        record.extend_from_slice(&rest[4..4 + len]);
        pos += 4 + len;
        fragments += 1;
        if last {
            records.push(Bytes::from(std::mem::take(&mut record)));
            fragments = 0;
        }
    }
}

/// The server's rules for one record, written out: what is not a readable
/// call is dropped, except a call whose header is malformed but whose XID
/// and CALL type can be read (GARBAGE_ARGS); then RPC version, program,
/// version and NULL are answered here; anything else goes to a handler.
fn expect(record: &Bytes) -> Expected {
    let message = match Message::decode(record.clone()) {
        Ok(message) => message,
        Err(error) => {
            if record.len() >= 8 && record[4..8] == [0, 0, 0, 0] {
                return answer(xid_of(record), AcceptStatus::GarbageArgs);
            }
            return Expected::Drop(Dropped::Malformed(error));
        }
    };
    let xid = message.xid;
    let MessageBody::Call { header, args } = message.body else {
        return Expected::Drop(Dropped::NotACall);
    };
    if header.rpcvers != RPC_VERSION {
        return Expected::Answer(Message::reply(
            xid,
            ReplyBody::Denied(Rejection::RpcMismatch { low: 2, high: 2 }),
            Bytes::new(),
        ));
    }
    // RFC 9289's probe, past the gate (or to a server without TLS): a NULL
    // answer without the STARTTLS token, whatever the program.
    if header.procedure == 0
        && header.cred.flavor == 7
        && header.cred.body.is_empty()
        && header.verf.flavor == 0
        && header.verf.body.is_empty()
    {
        return answer(xid, AcceptStatus::Success);
    }
    let Some(&(_, versions)) = SERVED.iter().find(|(p, _)| *p == header.program) else {
        return answer(xid, AcceptStatus::ProgUnavail);
    };
    if !versions.contains(&header.version) {
        let (low, high) = (versions[0], versions[versions.len() - 1]);
        return answer(xid, AcceptStatus::ProgMismatch { low, high });
    }
    if header.procedure == 0 {
        return answer(xid, AcceptStatus::Success);
    }
    Expected::Dispatch(Dispatch {
        xid,
        program: header.program,
        version: header.version,
        procedure: header.procedure,
        cred: header.cred,
        args,
    })
}

fn answer(xid: u32, status: AcceptStatus) -> Expected {
    Expected::Answer(Message::reply(
        xid,
        ReplyBody::accepted(status),
        Bytes::new(),
    ))
}

/// What the STARTTLS gate must do with a stream, by RFC 9289 §4.1 and the
/// documented bound, written out.
#[derive(Debug, PartialEq, Eq)]
enum ProbeModel {
    /// The stream ends before a whole first record.
    Closed,
    Refuse(NotAProbe),
    /// Upgrade, answering this XID, after this many bytes.
    Upgrade(u32, usize),
}

fn probe_model(stream: &[u8]) -> ProbeModel {
    if stream.len() >= 2 && (0x14..=0x17).contains(&stream[0]) && stream[1] == 3 {
        return ProbeModel::Refuse(NotAProbe::LooksLikeTls);
    }
    if stream.len() < 4 {
        return ProbeModel::Closed;
    }
    let raw = u32::from_be_bytes([stream[0], stream[1], stream[2], stream[3]]);
    let (last, len) = (raw & 0x8000_0000 != 0, raw & 0x7fff_ffff);
    if !last || len as usize > MAX_PROBE_RECORD {
        return ProbeModel::Refuse(NotAProbe::TooLong(len));
    }
    let end = 4 + len as usize;
    if stream.len() < end {
        return ProbeModel::Closed;
    }
    let message = match Message::decode(Bytes::copy_from_slice(&stream[4..end])) {
        Ok(message) => message,
        Err(error) => return ProbeModel::Refuse(NotAProbe::Malformed(error)),
    };
    let MessageBody::Call { header, .. } = &message.body else {
        return ProbeModel::Refuse(NotAProbe::NotACall);
    };
    if header.rpcvers != RPC_VERSION {
        return ProbeModel::Refuse(NotAProbe::NotACall);
    }
    let probe = header.procedure == 0
        && header.cred.flavor == 7
        && header.cred.body.is_empty()
        && header.verf.flavor == 0
        && header.verf.body.is_empty();
    if !probe {
        return ProbeModel::Refuse(NotAProbe::PlainCall {
            program: header.program,
            procedure: header.procedure,
            flavor: header.cred.flavor,
        });
    }
    ProbeModel::Upgrade(message.xid, end)
}

/// Drives the STARTTLS gate over `stream` in the fuzzed reads, checks it
/// against [`probe_model`], and returns what follows the probe when it
/// upgrades.
fn starttls_gate<'a>(stream: &'a [u8], input: &StreamInput<'_>) -> Option<&'a [u8]> {
    let model = probe_model(stream);
    let mut reads = input.clone();
    reads.payload = stream;
    let mut chunks = reads.chunks();
    let mut pending: &[u8] = &[];
    let mut buf: Vec<u8> = Vec::new();
    loop {
        match judge_first_record(&buf) {
            ProbeStep::Need(total) => {
                assert!(total > buf.len(), "asked for nothing more");
                assert!(
                    total <= 4 + MAX_PROBE_RECORD,
                    "asked past the longest probe"
                );
                if pending.is_empty() {
                    match chunks.next() {
                        Some(chunk) => pending = chunk,
                        None => {
                            assert_eq!(model, ProbeModel::Closed, "gave up early");
                            return None;
                        }
                    }
                }
                let take = pending.len().min(total - buf.len());
                buf.extend_from_slice(&pending[..take]);
                pending = &pending[take..];
            }
            ProbeStep::Upgrade { reply, consumed } => {
                let ProbeModel::Upgrade(xid, end) = model else {
                    panic!("upgraded, but the model says {model:?}");
                };
                assert_eq!((consumed, buf.len()), (end, end), "read past the probe");
                let mut want = BytesMut::new();
                starttls::upgrade_reply(xid).encode(&mut want);
                assert_eq!(&reply[4..], &want[..], "the STARTTLS reply");
                assert_eq!(
                    u32::from_be_bytes([reply[0], reply[1], reply[2], reply[3]]),
                    0x8000_0000 | want.len() as u32
                );
                assert!(starttls::answers_starttls(reply.slice(4..), xid));
                return Some(&stream[end..]);
            }
            ProbeStep::Refuse(why) => {
                assert_eq!(model, ProbeModel::Refuse(why), "refused for another reason");
                assert!(buf.len() <= 4 + MAX_PROBE_RECORD);
                return None;
            }
        }
    }
}
