//! The wire layer against real bytes, arbitrary bytes and bad input.
//!
//! The `.bin` files in `tests/data/` were captured from rpcinfo, rpcbind
//! 1.2.6 and glusterd 10.3; `tests/data/README.md` has the commands.

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use peerwire::codec::{CodecError, RpcCodec};
use peerwire::proto::xdr::XdrReader;
use peerwire::proto::{
    AcceptStatus, AuthGlusterfsV2, AuthGlusterfsV3, AuthStat, AuthSys, CallHeader, Credential,
    DecodeError, DecodeErrorKind, Message, MessageBody, OpaqueAuth, RecordDecoder, RecordEncoder,
    RecordLimits, Rejection, ReplyBody, flavor,
};
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Decoder, FramedRead, FramedWrite};

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Decodes every record of a captured stream; the stream must be used up exactly.
fn records(bytes: &[u8]) -> Vec<Bytes> {
    let mut decoder = RecordDecoder::new(RecordLimits::default());
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(record) = decoder.decode_eof(&mut buf).unwrap() {
        out.push(record);
    }
    assert!(buf.is_empty() && decoder.is_idle());
    out
}

/// The one message of a captured file; re-encoding it gives the file back.
fn message(name: &str) -> Message {
    let bytes = data(name);
    let records = records(&bytes);
    assert_eq!(records.len(), 1, "{name} holds one record");
    let message = Message::decode(records[0].clone()).unwrap();
    assert_eq!(
        reencode(&message),
        bytes,
        "{name} re-encodes to the same bytes"
    );
    message
}

fn reencode(message: &Message) -> Vec<u8> {
    let mut out = BytesMut::new();
    let mut codec = RpcCodec::default();
    tokio_util::codec::Encoder::encode(&mut codec, message, &mut out).unwrap();
    out.to_vec()
}

fn call_of(message: &Message) -> (&CallHeader, &Bytes) {
    match &message.body {
        MessageBody::Call { header, args } => (header, args),
        other => panic!("not a call: {other:?}"),
    }
}

fn reply_of(message: &Message) -> (&ReplyBody, &Bytes) {
    match &message.body {
        MessageBody::Reply { body, results } => (body, results),
        other => panic!("not a reply: {other:?}"),
    }
}

fn success(status: AcceptStatus) -> ReplyBody {
    ReplyBody::Accepted {
        verf: OpaqueAuth::none(),
        status,
    }
}

#[test]
fn rpcinfo_null_call() {
    let m = message("rpcinfo_null_call.bin");
    assert_eq!(m.xid, 0x2b4b_0cde);
    let (header, args) = call_of(&m);
    assert_eq!(*header, CallHeader::new(100_000, 2, 0));
    assert!(args.is_empty());
}

#[test]
fn rpcbind_null_reply() {
    let m = message("rpcbind_null_reply.bin");
    assert_eq!(m.xid, 0x2b4b_0cde);
    let (body, results) = reply_of(&m);
    assert_eq!(*body, success(AcceptStatus::Success));
    assert!(results.is_empty());
}

#[test]
fn rpcbind_prog_mismatch_reply() {
    let call = message("rpcinfo_v5_null_call.bin");
    assert_eq!(*call_of(&call).0, CallHeader::new(100_000, 5, 0));
    let m = message("rpcbind_prog_mismatch_reply.bin");
    assert_eq!(m.xid, call.xid);
    assert_eq!(
        *reply_of(&m).0,
        success(AcceptStatus::ProgMismatch { low: 2, high: 4 })
    );
}

#[test]
fn rpcinfo_probe_stream_pairs_calls_and_replies_by_xid() {
    let calls = data("rpcinfo_probe_calls_stream.bin");
    let replies = data("rpcbind_probe_replies_stream.bin");
    let calls: Vec<Message> = records(&calls)
        .into_iter()
        .map(|r| Message::decode(r).unwrap())
        .collect();
    let replies: Vec<Message> = records(&replies)
        .into_iter()
        .map(|r| Message::decode(r).unwrap())
        .collect();
    let xids: Vec<u32> = calls.iter().map(|m| m.xid).collect();
    assert_eq!(xids, [0x7d55_529a, 0x7d55_5158, 0x7d55_5659, 0x7d55_56a8]);
    let versions: Vec<u32> = calls.iter().map(|m| call_of(m).0.version).collect();
    assert_eq!(versions, [0, 2, 3, 4]);
    assert_eq!(replies.iter().map(|m| m.xid).collect::<Vec<_>>(), xids);
    assert_eq!(
        *reply_of(&replies[0]).0,
        success(AcceptStatus::ProgMismatch { low: 2, high: 4 })
    );
    for reply in &replies[1..] {
        assert_eq!(*reply_of(reply).0, success(AcceptStatus::Success));
    }
}

#[test]
fn rpcbind_dump_reply_lists_its_registrations() {
    let call = message("portmap_dump_call.bin");
    assert_eq!(*call_of(&call).0, CallHeader::new(100_000, 2, 4));
    let m = message("rpcbind_dump_reply.bin");
    assert_eq!(m.xid, call.xid);
    let (body, results) = reply_of(&m);
    assert_eq!(*body, success(AcceptStatus::Success));
    // pmaplist: a linked list of {prog, vers, prot, port}.
    let mut r = XdrReader::new(results);
    let mut entries = Vec::new();
    while r.bool().unwrap() {
        entries.push((
            r.u32().unwrap(),
            r.u32().unwrap(),
            r.u32().unwrap(),
            r.u32().unwrap(),
        ));
    }
    assert!(r.is_empty());
    let expected: Vec<(u32, u32, u32, u32)> = [(4, 6), (3, 6), (2, 6), (4, 17), (3, 17), (2, 17)]
        .iter()
        .map(|&(vers, prot)| (100_000, vers, prot, 111))
        .collect();
    assert_eq!(entries, expected);
}

#[test]
fn glusterd_gf_dump_reply_lists_its_programs() {
    let call = message("glusterd_gf_dump_call.bin");
    let (header, args) = call_of(&call);
    assert_eq!(*header, CallHeader::new(123_451_501, 1, 1));
    assert_eq!(XdrReader::new(args).u64().unwrap(), 0xcafe);

    let m = message("glusterd_gf_dump_reply.bin");
    assert_eq!(m.xid, call.xid);
    let (body, results) = reply_of(&m);
    assert_eq!(*body, success(AcceptStatus::Success));
    let mut r = XdrReader::new(results);
    assert_eq!(r.u64().unwrap(), 0, "gfs_id");
    assert_eq!(r.i32().unwrap(), 0, "op_ret");
    assert_eq!(r.i32().unwrap(), 0, "op_errno");
    let mut programs = Vec::new();
    while r.bool().unwrap() {
        programs.push((
            r.string(1024).unwrap().to_owned(),
            r.u64().unwrap(),
            r.u64().unwrap(),
        ));
    }
    assert!(r.is_empty());
    let expected = [
        ("GF-DUMP", 123_451_501, 1),
        ("GlusterD svc peer", 1_238_437, 2),
        ("GlusterD svc cli read-only", 1_238_463, 2),
        ("GlusterD svc mgmt", 1_238_433, 2),
        ("GlusterD svc mgmt v3", 1_238_433, 3),
        ("Gluster Portmap", 34_123_456, 1),
        ("Gluster Handshake", 14_398_633, 2),
        ("Gluster MGMT Handshake", 1_239_873, 1),
    ];
    let expected: Vec<(String, u64, u64)> = expected
        .iter()
        .map(|(n, p, v)| (n.to_string(), *p, *v))
        .collect();
    assert_eq!(programs, expected);
}

#[test]
fn glusterd_ping_and_null_replies() {
    let call = message("glusterd_gf_ping_call.bin");
    assert_eq!(*call_of(&call).0, CallHeader::new(123_451_501, 1, 2));
    let m = message("glusterd_gf_ping_reply.bin");
    let (body, results) = reply_of(&m);
    assert_eq!(*body, success(AcceptStatus::Success));
    assert_eq!(
        &results[..],
        &[0u8; 12],
        "op_ret 0, op_errno 0, empty xdata"
    );

    let call = message("glusterd_null_call.bin");
    assert_eq!(*call_of(&call).0, CallHeader::new(123_451_501, 1, 0));
    let m = message("glusterd_null_reply.bin");
    assert_eq!(*reply_of(&m).0, success(AcceptStatus::ProcUnavail));
}

#[test]
fn single_fragment_record_is_not_copied() {
    let mut buf = BytesMut::from(&data("glusterd_gf_dump_reply.bin")[..]);
    let payload_at = buf.as_ptr() as usize + 4;
    let record = RecordDecoder::new(RecordLimits::default())
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    assert_eq!(
        record.as_ptr() as usize,
        payload_at,
        "the record is a slice of the read buffer"
    );
    // And the message's results are a slice of the record.
    let results_at = record.as_ptr() as usize + 24;
    let m = Message::decode(record).unwrap();
    assert_eq!(reply_of(&m).1.as_ptr() as usize, results_at);
}

#[test]
fn multi_fragment_record_is_reassembled_contiguously() {
    let payload: Vec<u8> = (0..=255).collect();
    let mut wire = BytesMut::new();
    RecordEncoder::with_fragment_size(10).encode(&payload, &mut wire);
    let record = RecordDecoder::new(RecordLimits::default())
        .decode(&mut wire)
        .unwrap()
        .unwrap();
    assert_eq!(&record[..], &payload[..]);
    assert!(wire.is_empty());
}

// --- Bad input, one test each -------------------------------------------------

fn small_limits() -> RecordLimits {
    RecordLimits::new(1024, 4096, 8).unwrap()
}

#[test]
fn fragment_longer_than_the_limit_is_refused_before_reserving() {
    let mut decoder = RecordDecoder::new(small_limits());
    let mut buf = BytesMut::from(&b"\x80\x00\x04\x01"[..]); // 1025 bytes announced
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        DecodeError::new(
            DecodeErrorKind::FragmentTooLong {
                len: 1025,
                max: 1024
            },
            0
        )
    );
    assert!(
        buf.capacity() < 1025,
        "nothing reserved for the refused fragment"
    );
    // A GiB-sized announcement costs nothing either.
    let mut buf = BytesMut::from(&b"\xff\xff\xff\xff"[..]);
    assert!(RecordDecoder::new(small_limits()).decode(&mut buf).is_err());
    assert!(buf.capacity() < 1024);
}

#[test]
fn record_past_its_limit_across_fragments_is_refused() {
    let mut decoder = RecordDecoder::new(small_limits());
    let mut buf = BytesMut::new();
    for _ in 0..4 {
        buf.extend_from_slice(b"\x00\x00\x04\x00"); // 1024 bytes, not last
        buf.extend_from_slice(&[7u8; 1024]);
    }
    buf.extend_from_slice(b"\x80\x00\x00\x01"); // one more byte: 4097 in all
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        DecodeError::new(
            DecodeErrorKind::RecordTooLong {
                len: 4097,
                max: 4096
            },
            4 * 1028
        )
    );
    assert!(decoder.held_bytes() <= 4096);
}

#[test]
fn flood_of_empty_fragments_is_refused() {
    let mut decoder = RecordDecoder::new(small_limits());
    let mut buf = BytesMut::new();
    for _ in 0..10_000 {
        buf.extend_from_slice(b"\x00\x00\x00\x00");
    }
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        DecodeError::new(DecodeErrorKind::TooManyFragments { max: 8 }, 8 * 4)
    );
}

/// Fragments are bounded by their overhead, not by a flat count: a
/// fragment allowance is earned with data. With 8 fragments free, one of
/// 64 bytes earns a ninth; the tenth, empty, is refused, and nothing is
/// held but the 64 bytes sent.
#[test]
fn empty_fragments_earn_no_allowance() {
    let mut decoder = RecordDecoder::new(small_limits());
    let mut buf = BytesMut::new();
    buf.extend_from_slice(b"\x00\x00\x00\x40"); // 64 bytes, not last
    buf.extend_from_slice(&[1u8; 64]);
    for _ in 0..100 {
        buf.extend_from_slice(b"\x00\x00\x00\x00");
    }
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        DecodeError::new(DecodeErrorKind::TooManyFragments { max: 9 }, 68 + 8 * 4)
    );
    assert_eq!(decoder.held_bytes(), 64);
}

/// libtirpc with its smallest send buffer (100 bytes) writes 96 bytes of
/// data per fragment: a 1 MB call is 10,418 fragments. The default limits
/// (and a server's or client's, from [`peerwire::Limits`]) take it.
#[test]
fn a_megabyte_in_96_byte_fragments_decodes_with_default_limits() {
    let payload: Vec<u8> = (0..1_000_040u32).map(|i| (i % 251) as u8).collect();
    let mut wire = BytesMut::new();
    RecordEncoder::with_fragment_size(96).encode(&payload, &mut wire);
    assert_eq!(wire.len(), payload.len() + 4 * 10_418);
    for limits in [
        RecordLimits::default(),
        peerwire::Limits::default().record_limits(),
    ] {
        let mut buf = BytesMut::from(&wire[..]);
        let record = RecordDecoder::new(limits).decode(&mut buf).unwrap();
        assert_eq!(record.as_deref(), Some(&payload[..]));
        assert!(buf.is_empty());
    }
}

/// A header alone reserves nothing, whatever it announces: the read
/// buffer and the decoder hold what has arrived, for a record of one
/// fragment (which waits in the read buffer) and of several (copied out as
/// its bytes come).
#[test]
fn a_header_claiming_the_largest_record_reserves_nothing() {
    let limits = RecordLimits::default();
    let max = limits.max_fragment();
    for last in [true, false] {
        let mut decoder = RecordDecoder::new(limits);
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(&peerwire::proto::record_header(max, last));
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert!(
            buf.capacity() <= 64,
            "last={last}: {} bytes reserved for a header",
            buf.capacity()
        );
        assert!(!decoder.is_idle());
        buf.extend_from_slice(&[9u8; 1000]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert!(buf.capacity() < 4096, "last={last}: {}", buf.capacity());
        if !last {
            assert_eq!(decoder.held_bytes(), 1000);
            assert!(buf.is_empty(), "copied out as it arrived");
        }
    }
}

#[test]
fn eof_inside_a_fragment_is_an_error() {
    let mut decoder = RecordDecoder::new(small_limits());
    let mut buf = BytesMut::from(&b"\x00\x00\x00\x02ab\x80\x00\x00\x08abc"[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    let err = decoder.decode_eof(&mut buf).unwrap_err();
    assert_eq!(err, DecodeError::new(DecodeErrorKind::TruncatedRecord, 0));
    // EOF inside a header too.
    let mut buf = BytesMut::from(&b"\x80\x00"[..]);
    assert_eq!(
        RecordDecoder::new(small_limits())
            .decode_eof(&mut buf)
            .unwrap_err()
            .kind,
        DecodeErrorKind::TruncatedRecord
    );
}

fn call_bytes(rpcvers: u32, cred_len: u32) -> Bytes {
    let mut b = Vec::new();
    for v in [
        0xabcd_u32,
        0,
        rpcvers,
        100_000,
        2,
        0,
        flavor::AUTH_SYS,
        cred_len,
    ] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend(std::iter::repeat_n(0u8, cred_len as usize));
    b.extend_from_slice(&[0; 8]); // verf
    Bytes::from(b)
}

#[test]
fn other_rpc_version_still_decodes() {
    let m = Message::decode(call_bytes(3, 0)).unwrap();
    let (header, _) = call_of(&m);
    assert_eq!(
        header.rpcvers, 3,
        "decoded, so a server can answer RPC_MISMATCH"
    );
    assert_eq!(m.xid, 0xabcd);
}

#[test]
fn credential_over_400_bytes_is_refused() {
    assert!(Message::decode(call_bytes(2, 400)).is_ok());
    let err = Message::decode(call_bytes(2, 404)).unwrap_err();
    assert_eq!(
        err,
        DecodeError::new(DecodeErrorKind::LengthOverBound { len: 404, max: 400 }, 28)
    );
}

#[test]
fn unknown_message_type_is_refused() {
    let err = Message::decode(Bytes::from_static(b"\x00\x00\x00\x01\x00\x00\x00\x02")).unwrap_err();
    assert_eq!(
        err,
        DecodeError::new(DecodeErrorKind::UnknownMessageType(2), 4)
    );
}

#[test]
fn length_beyond_the_input_is_refused() {
    // A credential claiming 100 bytes with 8 present.
    let mut bytes = call_bytes(2, 0).to_vec();
    bytes.truncate(28);
    bytes.extend_from_slice(&100u32.to_be_bytes());
    bytes.extend_from_slice(&[0; 8]);
    let err = Message::decode(Bytes::from(bytes)).unwrap_err();
    assert_eq!(
        err,
        DecodeError::new(DecodeErrorKind::UnexpectedEnd { needed: 92 }, 32)
    );
    // A string in XDR claiming more than is there.
    let err = XdrReader::new(b"\x00\x00\x01\x00abcd")
        .string(u32::MAX)
        .unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::UnexpectedEnd { needed: 252 });
}

#[test]
fn every_reply_shape_decodes() {
    let shapes = [
        success(AcceptStatus::ProgUnavail),
        success(AcceptStatus::ProcUnavail),
        success(AcceptStatus::GarbageArgs),
        success(AcceptStatus::SystemErr),
        ReplyBody::Denied(Rejection::RpcMismatch { low: 2, high: 2 }),
        ReplyBody::Denied(Rejection::AuthError(AuthStat::TOO_WEAK)),
        ReplyBody::Denied(Rejection::AuthError(AuthStat(13))),
    ];
    for body in shapes {
        let m = Message::reply(9, body.clone(), Bytes::new());
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        assert_eq!(Message::decode(buf.freeze()).unwrap(), m);
    }
    // Unknown stats are errors at their offset.
    let err = Message::decode(Bytes::from_static(b"\0\0\0\x09\0\0\0\x01\0\0\0\x02")).unwrap_err();
    assert_eq!(
        err,
        DecodeError::new(DecodeErrorKind::UnknownReplyStat(2), 8)
    );
    let err = Message::decode(Bytes::from_static(
        b"\0\0\0\x09\0\0\0\x01\0\0\0\x00\0\0\0\0\0\0\0\0\0\0\0\x06",
    ))
    .unwrap_err();
    assert_eq!(
        err,
        DecodeError::new(DecodeErrorKind::UnknownAcceptStat(6), 20)
    );
    let err = Message::decode(Bytes::from_static(
        b"\0\0\0\x09\0\0\0\x01\0\0\0\x01\0\0\0\x07",
    ))
    .unwrap_err();
    assert_eq!(
        err,
        DecodeError::new(DecodeErrorKind::UnknownRejectStat(7), 12)
    );
}

#[test]
fn auth_bodies_parse_and_build() {
    let sys = Credential::Sys(AuthSys {
        stamp: 7,
        machine_name: "node-a".into(),
        uid: 1000,
        gid: 100,
        gids: vec![4, 24, 27],
    });
    let auth = sys.to_opaque_auth().unwrap();
    assert_eq!(auth.flavor, flavor::AUTH_SYS);
    assert_eq!(
        &auth.body[..],
        b"\0\0\0\x07\0\0\0\x06node-a\0\0\0\0\x03\xe8\0\0\0\x64\0\0\0\x03\0\0\0\x04\0\0\0\x18\0\0\0\x1b"
    );
    assert_eq!(Credential::parse(&auth).unwrap(), sys);

    let v2 = Credential::GlusterfsV2(AuthGlusterfsV2 {
        pid: -2,
        uid: 0,
        gid: 0,
        groups: vec![1, 2],
        lk_owner: Bytes::from_static(b"\x01\x02\x03\x04\x05\x06\x07\x08"),
    });
    assert_eq!(
        Credential::parse(&v2.to_opaque_auth().unwrap()).unwrap(),
        v2
    );
    let v3 = Credential::GlusterfsV3(AuthGlusterfsV3 {
        pid: 42,
        uid: 1,
        gid: 2,
        flags: 1,
        ctime_nsec: 999,
        ctime_sec: 1_700_000_000,
        groups: vec![],
        lk_owner: Bytes::new(),
    });
    assert_eq!(
        Credential::parse(&v3.to_opaque_auth().unwrap()).unwrap(),
        v3
    );

    let other = OpaqueAuth {
        flavor: 6,
        body: Bytes::from_static(b"gss"),
    };
    assert_eq!(
        Credential::parse(&other).unwrap(),
        Credential::Other(other.clone())
    );
    assert_eq!(
        Credential::Other(other.clone()).to_opaque_auth().unwrap(),
        other
    );

    let too_many = Credential::Sys(AuthSys {
        stamp: 0,
        machine_name: String::new(),
        uid: 0,
        gid: 0,
        gids: vec![0; 17],
    });
    assert!(too_many.to_opaque_auth().is_err());
    let err = Credential::parse(&OpaqueAuth {
        flavor: flavor::AUTH_SYS,
        body: Bytes::from_static(b"\0\0\0\0\0\0\x01\0"),
    })
    .unwrap_err();
    assert_eq!(
        err.kind,
        DecodeErrorKind::LengthOverBound { len: 256, max: 255 }
    );
}

// --- The codec over a stream -------------------------------------------------

#[tokio::test]
async fn codec_reads_a_stream_in_small_pieces() {
    let (mut tx, rx) = tokio::io::duplex(7);
    let stream = data("rpcinfo_probe_calls_stream.bin");
    let writer = tokio::spawn(async move {
        for chunk in stream.chunks(5) {
            tx.write_all(chunk).await.unwrap();
        }
    });
    let mut reader = FramedRead::new(rx, RpcCodec::default());
    let mut xids = Vec::new();
    while let Some(item) = reader.next().await {
        xids.push(item.unwrap().unwrap().xid);
    }
    writer.await.unwrap();
    assert_eq!(xids, [0x7d55_529a, 0x7d55_5158, 0x7d55_5659, 0x7d55_56a8]);
}

#[tokio::test]
async fn a_bad_message_in_an_intact_record_does_not_end_the_stream() {
    let mut wire = BytesMut::new();
    RecordEncoder::default().encode(b"\0\0\0\x01\0\0\0\x07", &mut wire); // msg_type 7
    wire.extend_from_slice(&data("rpcinfo_null_call.bin"));
    let mut reader = FramedRead::new(&wire[..], RpcCodec::default());
    let first = reader.next().await.unwrap().unwrap();
    assert_eq!(
        first.unwrap_err().kind,
        DecodeErrorKind::UnknownMessageType(7)
    );
    let second = reader.next().await.unwrap().unwrap().unwrap();
    assert_eq!(second.xid, 0x2b4b_0cde);
    assert!(reader.next().await.is_none());
}

#[tokio::test]
async fn codec_stream_error_is_fatal_and_says_why() {
    let mut wire = data("rpcinfo_null_call.bin");
    wire.extend_from_slice(b"\x80\x00\x00\x10abc"); // truncated record
    let mut reader = FramedRead::new(&wire[..], RpcCodec::default());
    assert!(reader.next().await.unwrap().unwrap().is_ok());
    let err = reader.next().await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::Record(DecodeError {
                kind: DecodeErrorKind::TruncatedRecord,
                offset: 44
            })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn codec_writes_fragments_on_request_and_refuses_oversized_messages() {
    let message = Message::call(5, CallHeader::new(1, 2, 3), Bytes::from(vec![9u8; 100]));
    let mut out = Vec::new();
    let codec = RpcCodec::new(
        RecordLimits::default(),
        RecordEncoder::with_fragment_size(64),
    );
    let mut writer = FramedWrite::new(&mut out, codec);
    writer.send(&message).await.unwrap();
    drop(writer);
    // 140 bytes of message in fragments of 64, 64, 12.
    assert_eq!(out.len(), 140 + 3 * 4);
    assert_eq!(&out[..4], b"\x00\x00\x00\x40");
    assert_eq!(&out[68..72], b"\x00\x00\x00\x40");
    assert_eq!(&out[136..140], b"\x80\x00\x00\x0c");
    let mut buf = BytesMut::from(&out[..]);
    let decoded = RpcCodec::default()
        .decode(&mut buf)
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(decoded, message);

    let small = RpcCodec::new(
        RecordLimits::with_max_record(64).unwrap(),
        RecordEncoder::default(),
    );
    let mut writer = FramedWrite::new(Vec::new(), small);
    let err = writer.send(&message).await.unwrap_err();
    assert!(
        matches!(err, CodecError::TooLong { len: 140, max: 64 }),
        "{err:?}"
    );
}

// --- Properties -----------------------------------------------------------

fn arb_auth() -> impl Strategy<Value = OpaqueAuth> {
    (
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..=400),
    )
        .prop_map(|(flavor, body)| OpaqueAuth {
            flavor,
            body: Bytes::from(body),
        })
}

fn arb_reply_body() -> impl Strategy<Value = ReplyBody> {
    let status = prop_oneof![
        Just(AcceptStatus::Success),
        Just(AcceptStatus::ProgUnavail),
        (any::<u32>(), any::<u32>())
            .prop_map(|(low, high)| AcceptStatus::ProgMismatch { low, high }),
        Just(AcceptStatus::ProcUnavail),
        Just(AcceptStatus::GarbageArgs),
        Just(AcceptStatus::SystemErr),
    ];
    prop_oneof![
        (arb_auth(), status).prop_map(|(verf, status)| ReplyBody::Accepted { verf, status }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(low, high)| ReplyBody::Denied(Rejection::RpcMismatch { low, high })),
        any::<u32>().prop_map(|s| ReplyBody::Denied(Rejection::AuthError(AuthStat(s)))),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    let body = proptest::collection::vec(any::<u8>(), 0..200).prop_map(Bytes::from);
    prop_oneof![
        (
            any::<u32>(),
            any::<[u32; 4]>(),
            arb_auth(),
            arb_auth(),
            body.clone()
        )
            .prop_map(|(xid, h, cred, verf, args)| {
                let header = CallHeader {
                    rpcvers: h[0],
                    program: h[1],
                    version: h[2],
                    procedure: h[3],
                    cred,
                    verf,
                };
                Message::call(xid, header, args)
            }),
        (any::<u32>(), arb_reply_body(), body)
            .prop_map(|(xid, b, results)| Message::reply(xid, b, results)),
    ]
}

/// Feeds `wire` to a decoder in chunks of the given sizes (cycled).
fn feed(wire: &[u8], chunks: &[usize], limits: RecordLimits) -> (Vec<Bytes>, Option<DecodeError>) {
    let mut decoder = RecordDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = wire;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(record)) => out.push(record),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
        assert!(decoder.held_bytes() <= limits.max_record());
        // Memory follows the bytes fed, never what a header announces.
        assert!(
            buf.capacity() <= 2 * wire.len() + 64,
            "buffer grew past what the input allows"
        );
    }
    match decoder.decode_eof(&mut buf) {
        Ok(Some(record)) => out.push(record),
        Ok(None) => {}
        Err(e) => return (out, Some(e)),
    }
    (out, None)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn messages_round_trip(message in arb_message()) {
        let mut buf = BytesMut::new();
        message.encode(&mut buf);
        prop_assert_eq!(buf.len(), message.encoded_len());
        prop_assert_eq!(Message::decode(buf.freeze()).unwrap(), message);
    }

    #[test]
    fn records_survive_any_fragmentation_and_chunking(
        records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..5),
        fragment in 1u32..64,
        chunks in proptest::collection::vec(1usize..50, 1..8),
    ) {
        let mut wire = BytesMut::new();
        for record in &records {
            RecordEncoder::with_fragment_size(fragment).encode(record, &mut wire);
        }
        let (out, err) = feed(&wire, &chunks, RecordLimits::new(4096, 4096, 512).unwrap());
        prop_assert_eq!(err, None);
        let out: Vec<Vec<u8>> = out.iter().map(|b| b.to_vec()).collect();
        prop_assert_eq!(out, records);
    }

    /// Fragments of 64 bytes or more (the last of any size) earn their own
    /// allowance: however many there are, a record in them is never
    /// refused for their number, even with one fragment free.
    #[test]
    fn fragments_of_64_bytes_or_more_are_never_too_many(
        record in proptest::collection::vec(any::<u8>(), 0..3000),
        fragment in 64u32..200,
        chunks in proptest::collection::vec(1usize..500, 1..8),
    ) {
        let mut wire = BytesMut::new();
        RecordEncoder::with_fragment_size(fragment).encode(&record, &mut wire);
        let (out, err) = feed(&wire, &chunks, RecordLimits::new(4096, 4096, 1).unwrap());
        prop_assert_eq!(err, None);
        prop_assert_eq!(out, vec![Bytes::from(record)]);
    }

    #[test]
    fn arbitrary_bytes_give_records_need_more_or_an_error(
        wire in proptest::collection::vec(any::<u8>(), 0..600),
        chunks in proptest::collection::vec(1usize..64, 1..6),
    ) {
        let limits = RecordLimits::new(64, 128, 4).unwrap();
        let (out, err) = feed(&wire, &chunks, limits);
        for record in &out {
            prop_assert!(record.len() <= 128);
            let _ = Message::decode(record.clone());
        }
        // Chunking never changes the outcome.
        let (whole, whole_err) = feed(&wire, &[wire.len().max(1)], limits);
        prop_assert_eq!(out, whole);
        prop_assert_eq!(err, whole_err);
    }

    #[test]
    fn arbitrary_messages_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(m) = Message::decode(Bytes::from(bytes)) {
            if let MessageBody::Call { header, .. } = &m.body {
                let _ = Credential::parse(&header.cred);
            }
            let mut buf = BytesMut::new();
            m.encode(&mut buf);
            prop_assert_eq!(Message::decode(buf.freeze()).unwrap(), m);
        }
    }
}
