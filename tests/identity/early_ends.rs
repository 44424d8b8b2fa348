//! Connections that end before a successful HELLO: the pre-HELLO record
//! limit, bad framing, the handshake timeout, and the verdicts each leaves.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use peerwire::codec::RpcCodec;
use peerwire::peer::hello::wire::HelloArgs;
use peerwire::peer::{HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO};
use peerwire::proto::xdr::to_bytes;
use peerwire::proto::{AcceptStatus, CallHeader, Message, MessageBody, ReplyBody};
use peerwire::{
    Admission, ConfigError, Endpoint, Error, IdentityMode, PeerTable, Server, ServerIdentity,
    ServerOptions,
};
use tokio_util::codec::Framed;

use super::{client, server};
use crate::support::common::{PROG, id};
use crate::support::logs::Logs;

/// A raw connection from `source` that has passed HELLO as `node`.
async fn hello_from(address: &Endpoint, source: &str, node: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let stream = socket
        .connect(address.to_string().parse().unwrap())
        .await
        .unwrap();
    let mut framed = Framed::new(stream, RpcCodec::default());
    let hello = peerwire::peer::Hello {
        node: id(node),
        versions: vec![1],
        cluster: Some("c1".into()),
    };
    let call = Message::call(
        3,
        CallHeader::new(HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO),
        to_bytes(&HelloArgs::from(&hello)),
    );
    framed.send(&call).await.unwrap();
    let reply = framed.next().await.unwrap().unwrap().unwrap();
    assert!(
        matches!(
            reply.body,
            MessageBody::Reply {
                body: ReplyBody::Accepted {
                    status: AcceptStatus::Success,
                    ..
                },
                ..
            }
        ),
        "{reply:?}"
    );
    framed.into_inner()
}

/// Reads until the server closes `stream`; false if it does not within
/// five seconds.
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .is_ok()
}

/// Before HELLO a connection may send only what a HELLO can need (4 KiB by
/// default): a fragment header announcing 8 KiB (well within the 16 MiB
/// record limit) closes it at once, with a verdict that says so, counted
/// as bad framing. After HELLO the full limit applies.
#[tokio::test(flavor = "current_thread")]
async fn a_record_over_the_pre_hello_limit_closes_the_connection_with_a_verdict() {
    use peerwire::VerdictReason;
    use peerwire::proto::{DecodeError, DecodeErrorKind, record_header};
    use tokio::io::AsyncWriteExt;
    assert_eq!(ServerOptions::MIN_RECORD_BEFORE_HELLO, 1432);
    let (server, address) = server(Admission::default(), Arc::new(AtomicUsize::new(0)));
    let mut stranger = tokio::net::TcpStream::connect(address.to_string())
        .await
        .unwrap();
    stranger
        .write_all(&record_header(8192, false))
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut stranger).await,
        "still open after a header over the pre-HELLO limit"
    );
    let stats = server.stats();
    assert_eq!(stats.bad_framing, 1, "{stats:?}");
    let verdicts = server.verdicts();
    let over = DecodeError::new(
        DecodeErrorKind::FragmentTooLong {
            len: 8192,
            max: 4096,
        },
        0,
    );
    assert_eq!(
        verdicts
            .iter()
            .map(|v| v.reason.clone())
            .collect::<Vec<_>>(),
        vec![Some(VerdictReason::OverLimitBeforeHello(over))],
        "{verdicts:#?}"
    );
    assert!(
        verdicts[0]
            .reason
            .as_ref()
            .unwrap()
            .to_string()
            .contains("ServerOptions::max_record_before_hello"),
        "{}",
        verdicts[0].reason.as_ref().unwrap()
    );

    // Once identified, the peer's calls may be as large as the limits say.
    let a = client(&address, "127.0.0.2", "a", "srv");
    let answer = a.call(PROG, 1, 1, Bytes::from(vec![0u8; 64 << 10])).await;
    assert_eq!(answer.unwrap(), Bytes::from_static(b"a"));
    assert_eq!(server.stats().bad_framing, 1);

    // A limit below the largest HELLO is a configuration error.
    let small = ServerOptions {
        max_record_before_hello: 1431,
        ..ServerOptions::default()
    };
    let refused = Server::new(small).serve(&["127.0.0.1:0".parse().unwrap()]);
    assert!(
        matches!(
            &refused,
            Err(Error::Config(ConfigError::RecordBeforeHello {
                bytes: 1431,
                min: 1432
            }))
        ),
        "{refused:?}"
    );
    server.shutdown().await;
}

/// A connection closed for bad framing is counted and logged at warn
/// whether or not the server has an identity: on a server without one, and
/// on a server with one after the peer's HELLO succeeded.
#[tokio::test(flavor = "current_thread")]
async fn bad_framing_is_counted_and_logged_with_or_without_an_identity() {
    use tokio::io::AsyncWriteExt;
    let (logs, _guard) = Logs::capture();
    // No identity.
    let plain = Server::new(ServerOptions::default())
        .serve(&["127.0.0.1:0".parse().unwrap()])
        .unwrap();
    let mut stream = tokio::net::TcpStream::connect(plain.local_addrs()[0])
        .await
        .unwrap();
    stream.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
    assert!(closed_by_server(&mut stream).await);
    assert_eq!(plain.stats().bad_framing, 1, "{:?}", plain.stats());
    let text = logs.text();
    assert!(
        text.contains("WARN") && text.contains("bad record marking"),
        "{text}"
    );
    assert!(text.contains("exceeds the limit of 16778056"), "{text}");
    plain.shutdown().await;

    // With an identity, after a successful HELLO.
    let (server, address) = server(Admission::default(), Arc::new(AtomicUsize::new(0)));
    let mut identified = hello_from(&address, "127.0.0.2", "a").await;
    identified
        .write_all(&[0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    assert!(closed_by_server(&mut identified).await);
    assert_eq!(server.stats().bad_framing, 1, "{:?}", server.stats());
    let text = logs.text();
    assert_eq!(text.matches("bad record marking").count(), 2, "{text}");
    assert!(text.contains("peer=a"), "{text}");
    server.shutdown().await;
}

/// Every connection that ends before a successful HELLO leaves a verdict
/// with a matchable reason, counted by kind: closed before HELLO, bad
/// framing; and an impostor retrying again and again is one entry with a
/// count, not a flood that pushes every other verdict out.
#[tokio::test(flavor = "current_thread")]
async fn verdicts_cover_every_early_end_and_coalesce_repeats() {
    use peerwire::VerdictReason;
    use tokio::io::AsyncWriteExt;
    let calls = Arc::new(AtomicUsize::new(0));
    let (server, address) = server(Admission::default(), calls);
    let connect = || async {
        tokio::net::TcpStream::connect(address.to_string())
            .await
            .unwrap()
    };
    // Closed before HELLO.
    drop(connect().await);
    // Bad framing: a record cut short by the close.
    let mut framing = connect().await;
    framing.write_all(b"\x80\x00\x00\x10abc").await.unwrap();
    framing.shutdown().await.unwrap();
    // An impostor from 127.0.0.9 claiming "a", ten times.
    for _ in 0..10 {
        let impostor = client(&address, "127.0.0.9", "a", "srv");
        assert!(impostor.connect().await.is_err());
    }
    let settled = || {
        let stats = server.stats();
        stats.closed_before_hello == 1 && stats.bad_framing == 1 && stats.rejected == 10
    };
    let start = std::time::Instant::now();
    while !settled() && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(settled(), "{:?}", server.stats());
    let verdicts = server.verdicts();
    let closed: Vec<_> = verdicts
        .iter()
        .filter(|v| v.reason == Some(VerdictReason::ClosedBeforeHello))
        .collect();
    assert_eq!(closed.len(), 1, "{verdicts:#?}");
    assert!(
        verdicts
            .iter()
            .any(|v| matches!(v.reason, Some(VerdictReason::BadFraming(_)))),
        "{verdicts:#?}"
    );
    let impostor: Vec<_> = verdicts
        .iter()
        .filter(|v| matches!(v.reason, Some(VerdictReason::Refused(_))))
        .collect();
    assert_eq!(impostor.len(), 1, "coalesced: {verdicts:#?}");
    assert_eq!(impostor[0].count, 10);
    assert_eq!(impostor[0].observed.ip().to_string(), "127.0.0.9");
    assert!(impostor[0].first <= impostor[0].at);
    drop(framing);
    server.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_silent_connection_is_closed_at_the_handshake_timeout() {
    let peers = PeerTable::new();
    let options = ServerOptions {
        identity: Some(ServerIdentity {
            node: id("srv"),
            cluster: None,
            peers,
            mode: IdentityMode::Open,
        }),
        handshake_timeout: Duration::from_millis(200),
        ..ServerOptions::default()
    };
    let server = Server::new(options)
        .serve(&["127.0.0.1:0".parse().unwrap()])
        .unwrap();
    let mut stream = tokio::net::TcpStream::connect(server.local_addrs()[0])
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = BytesMut::new();
    let n = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf),
    )
    .await
    .expect("the server never closed the silent connection")
    .unwrap();
    assert_eq!(n, 0, "closed without a word");
    assert!(started.elapsed() >= Duration::from_millis(190));
    server.shutdown().await;
}
