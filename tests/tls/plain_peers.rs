//! Plain peers meeting TLS peers, and the RFC 9289 STARTTLS probe on a raw
//! stream.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use peerwire::internals::starttls;
use peerwire::proto::{CallHeader, Message, MessageBody, RecordDecoder, RecordLimits, ReplyBody};
use peerwire::tls::{HandshakeFailure, TlsError, TlsMode};
use peerwire::{DisconnectCause, Endpoint, Error, VerdictReason};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{client_tls, identity_of, new_client, raw_client_config, server, verdict};
use crate::support::common::{PROG, framed, ip, verdict_where};
use crate::support::pki::Authority;

/// Reads one record from a raw stream.
async fn read_record(stream: &mut TcpStream) -> Option<Bytes> {
    let mut records = RecordDecoder::new(RecordLimits::default());
    let mut buf = BytesMut::new();
    loop {
        if let Some(record) = records.decode(&mut buf).unwrap() {
            return Some(record);
        }
        if stream.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
    }
}

#[tokio::test]
async fn a_starttls_client_against_a_plain_server_fails_without_sending_a_plain_call() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = Endpoint::from(listener.local_addr().unwrap());
    // A plain server: answers the probe as a NULL call, without the
    // STARTTLS token, then records whatever else arrives.
    let peer = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let record = read_record(&mut stream).await.expect("the probe");
        let probe = Message::decode(record).unwrap();
        let MessageBody::Call { header, .. } = &probe.body else {
            panic!("not a call")
        };
        assert!(starttls::is_probe(header), "{header:?}");
        let reply = Message::reply(
            probe.xid,
            ReplyBody::accepted(peerwire::proto::AcceptStatus::Success),
            Bytes::new(),
        );
        stream.write_all(&framed(&reply)).await.unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
        rest
    });
    let ca = Authority::new("test CA");
    let tls = client_tls(
        identity_of(&ca, Some("a"), &["127.0.0.1"]),
        TlsMode::StartTls,
    );
    let client = new_client(address, "127.0.0.1", Some(tls), None);
    let error = client
        .call(PROG, 1, 1, Bytes::from_static(b"secret"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Tls { error, .. } if **error == TlsError::StartTlsRefused),
        "{error}"
    );
    assert!(error.to_string().contains("STARTTLS"), "{error}");
    drop(client);
    let rest = peer.await.unwrap();
    assert!(
        rest.is_empty(),
        "sent in plain text after the probe: {rest:?}"
    );
}

#[tokio::test]
async fn a_plain_client_against_a_direct_tls_server_is_told_it_seems_to_expect_tls() {
    let ca = Authority::new("test CA");
    let (server, address) = server(&ca, TlsMode::Direct, false, &["127.0.0.1"]);
    let client = new_client(address, "127.0.0.1", None, None);
    let error = client
        .call(PROG, 1, 1, Bytes::from_static(b"plain"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Disconnected {
                cause: DisconnectCause::ExpectsTls,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("seems to expect TLS"), "{error}");
    let v = verdict(&server, true).await;
    assert_eq!(v.reason, Some(VerdictReason::PlainTextRefused));
    assert_eq!(server.stats().calls, 0);
    server.shutdown().await;
}

/// A peer that starts a TLS handshake and breaks it: its verdict says how,
/// as a matchable [`HandshakeFailure`].
#[tokio::test]
async fn a_broken_tls_handshake_is_a_typed_verdict() {
    let ca = Authority::new("test CA");
    let (server, address) = server(&ca, TlsMode::Direct, false, &["127.0.0.1"]);
    // A handshake record whose ClientHello is five bytes of nonsense.
    let mut stream = TcpStream::connect(address.to_string()).await.unwrap();
    stream
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 0, 0, 1, 0xff])
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    let v = verdict(&server, true).await;
    assert!(
        matches!(
            v.reason,
            Some(VerdictReason::TlsHandshake(
                HandshakeFailure::Misbehaved { .. }
            ))
        ),
        "{:?}",
        v.reason
    );
    // A handshake record cut short by the peer's close.
    let mut stream = TcpStream::connect(address.to_string()).await.unwrap();
    stream
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x40, 1, 0, 0])
        .await
        .unwrap();
    stream.shutdown().await.unwrap();
    let v = verdict_where(&server, |v| {
        matches!(
            v.reason,
            Some(VerdictReason::TlsHandshake(HandshakeFailure::Io { .. }))
        )
    })
    .await;
    assert!(
        matches!(
            v.reason,
            Some(VerdictReason::TlsHandshake(HandshakeFailure::Io {
                kind: std::io::ErrorKind::UnexpectedEof,
                ..
            }))
        ),
        "{:?}",
        v.reason
    );
    assert_eq!(server.stats().calls, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_plain_client_with_identity_that_gets_tls_bytes_is_told_it_seems_to_expect_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = Endpoint::from(listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let _ = read_record(&mut stream).await;
        // A TLS alert record: protocol_version.
        let _ = stream
            .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46])
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    let client = new_client(address, "127.0.0.1", None, Some("a"));
    let error = client.connect().await.unwrap_err();
    let Error::Unreachable { error, .. } = &error else {
        panic!("{error}")
    };
    assert!(matches!(**error, Error::ExpectsTls { .. }), "{error}");
    assert!(error.to_string().contains("seems to expect TLS"), "{error}");
}

#[tokio::test]
async fn a_hello_less_probe_to_a_starttls_server_is_answered_per_rfc_9289_then_tls_runs() {
    let ca = Authority::new("test CA");
    let (server, address) = server(&ca, TlsMode::StartTls, false, &["127.0.0.1"]);
    let mut stream = TcpStream::connect(address.to_string()).await.unwrap();
    stream
        .write_all(&starttls::probe(0xabcd, 100_003, 4))
        .await
        .unwrap();
    let record = read_record(&mut stream).await.expect("an answer");
    // MSG_ACCEPTED, AUTH_NONE verifier with body "STARTTLS".
    let reply = Message::decode(record.clone()).unwrap();
    assert_eq!(reply.xid, 0xabcd);
    let MessageBody::Reply {
        body: ReplyBody::Accepted { verf, .. },
        ..
    } = &reply.body
    else {
        panic!("{reply:?}")
    };
    assert_eq!((verf.flavor, &verf.body[..]), (0, &b"STARTTLS"[..]));
    assert!(starttls::answers_starttls(record, 0xabcd));
    // Then TLS on the same connection, and RPC inside it.
    let config = raw_client_config(&ca, "a", &["127.0.0.1"]);
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(
            rustls::pki_types::ServerName::IpAddress(ip("127.0.0.1").into()),
            stream,
        )
        .await
        .unwrap();
    let call = Message::call(
        7,
        CallHeader::new(PROG, 1, 1),
        Bytes::from_static(b"inside"),
    );
    tls.write_all(&framed(&call)).await.unwrap();
    let mut buf = BytesMut::new();
    let mut records = RecordDecoder::new(RecordLimits::default());
    let record = loop {
        if let Some(record) = records.decode(&mut buf).unwrap() {
            break record;
        }
        assert!(tls.read_buf(&mut buf).await.unwrap() > 0, "closed");
    };
    let reply = Message::decode(record).unwrap();
    assert!(
        matches!(reply.body, MessageBody::Reply { ref results, .. } if &results[..] == b"inside")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn tls_servers_survive_garbage_and_plain_calls() {
    let ca = Authority::new("test CA");
    for mode in [TlsMode::Direct, TlsMode::StartTls] {
        let (server, address) = server(&ca, mode, false, &["127.0.0.1"]);
        let garbage: [&[u8]; 4] = [
            b"\x00\x01\x02garbage\xff\xfe",
            b"\x16\x03\x01\x00\x05hello",
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
            &framed(&Message::call(
                1,
                CallHeader::new(PROG, 1, 1),
                Bytes::from_static(b"x"),
            )),
        ];
        for bytes in garbage {
            let mut stream = TcpStream::connect(address.to_string()).await.unwrap();
            let _ = stream.write_all(bytes).await;
            let _ = stream.shutdown().await;
            let mut sink = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
        }
        assert!(
            server
                .verdicts()
                .iter()
                .any(|v| v.reason == Some(VerdictReason::PlainTextRefused)),
            "{:?}",
            server.verdicts()
        );
        assert_eq!(server.stats().calls, 0);
        // And it still serves a proper client.
        let tls = client_tls(identity_of(&ca, Some("a"), &["127.0.0.1"]), mode);
        let client = new_client(address, "127.0.0.1", Some(tls), None);
        let reply = client
            .call(PROG, 1, 1, Bytes::from_static(b"still here"))
            .await
            .unwrap();
        assert_eq!(&reply[..], b"still here");
        server.shutdown().await;
    }
}
