//! Peer identity on loopback: admission, HELLO verdicts, and the client's
//! checks of the answer. Admission is here; connections that end before a
//! successful HELLO are in identity/early_ends.rs, and the client's side in
//! identity/client_checks.rs.

mod support {
    #[path = "../support/common.rs"]
    pub mod common;
    #[path = "../support/logs.rs"]
    pub mod logs;
}

#[path = "identity/client_checks.rs"]
mod client_checks;
#[path = "identity/early_ends.rs"]
mod early_ends;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use peerwire::codec::RpcCodec;
use peerwire::peer::{HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO};
use peerwire::proto::{AuthStat, CallHeader, Message, MessageBody, Rejection, ReplyBody};
use peerwire::{
    Admission, CallContext, Client, ClientIdentity, ClientOptions, ConnectOptions, Endpoint, Error,
    IdentityMode, NodeId, PeerTable, ProcError, RunningServer, ScopedIp, Server, ServerIdentity,
    ServerOptions, Sources,
};
use support::common::{PROG, id, start};
use support::logs::Logs;
use tokio_util::codec::Framed;

/// A server known as "srv" that accepts "a" from 127.0.0.2 and "b" from
/// 127.0.0.3; procedure 1 returns the caller's node ID.
fn server(admission: Admission, calls: Arc<AtomicUsize>) -> (RunningServer, Endpoint) {
    let peers = PeerTable::new()
        .allow(id("a"), ["127.0.0.2".parse().unwrap()])
        .allow(id("b"), ["127.0.0.3".parse().unwrap()]);
    let options = ServerOptions {
        identity: Some(ServerIdentity {
            node: id("srv"),
            cluster: Some("c1".into()),
            peers,
            mode: IdentityMode::Strict,
        }),
        admission,
        ..ServerOptions::default()
    };
    let service = move |ctx: CallContext, procedure: u32, _args: Bytes| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            match (procedure, ctx.peer) {
                (1, Some(peer)) => Ok(Bytes::from(peer.to_string())),
                _ => Err(ProcError::ProcUnavail),
            }
        }
    };
    start(options, service)
}

fn client(address: &Endpoint, source: &str, node: &str, expect: &str) -> Client {
    let mut identity = ClientIdentity::new(id(node), id(expect));
    identity.cluster = Some("c1".into());
    let options = ClientOptions {
        connect: ConnectOptions {
            sources: Sources::new().with(source.parse::<ScopedIp>().unwrap()),
            ..ConnectOptions::default()
        },
        identity: Some(identity),
        deadline: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    Client::new(vec![address.clone()], options).expect("a destination")
}

#[tokio::test(flavor = "current_thread")]
async fn known_peers_from_their_addresses_are_accepted() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (server, address) = server(Admission::default(), calls.clone());
    let a = client(&address, "127.0.0.2", "a", "srv");
    let b = client(&address, "127.0.0.3", "b", "srv");
    assert_eq!(&a.call(PROG, 1, 1, Bytes::new()).await.unwrap()[..], b"a");
    assert_eq!(&b.call(PROG, 1, 1, Bytes::new()).await.unwrap()[..], b"b");
    // Each client sees how the server saw it: exactly its bound source.
    let hello = a.hello().expect("HELLO answered");
    assert_eq!(
        (hello.node.as_str(), hello.observed.ip().to_string()),
        ("srv", "127.0.0.2".into())
    );
    assert_eq!(b.hello().unwrap().observed.ip().to_string(), "127.0.0.3");
    let mut peers: Vec<(String, String)> = server
        .connections()
        .iter()
        .map(|c| {
            (
                c.peer.as_ref().unwrap().to_string(),
                c.observed.ip().to_string(),
            )
        })
        .collect();
    peers.sort();
    assert_eq!(
        peers,
        [
            ("a".into(), "127.0.0.2".into()),
            ("b".into(), "127.0.0.3".into())
        ]
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_impostor_is_refused_and_the_log_names_both_addresses() {
    let (logs, _guard) = Logs::capture();
    let calls = Arc::new(AtomicUsize::new(0));
    let (server, address) = server(Admission::default(), calls.clone());
    let impostor = client(&address, "127.0.0.9", "a", "srv");
    let err = impostor.call(PROG, 1, 1, Bytes::new()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::IdentityRefused {
                stat: AuthStat::REJECTED_CRED,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no handler ran");
    let log = logs.text();
    assert!(log.contains("claimed=a"), "{log}");
    assert!(log.contains("127.0.0.9"), "the observed address: {log}");
    assert!(log.contains("127.0.0.2"), "the expected address: {log}");
    assert_eq!(server.stats().rejected, 1);
    let verdicts = server.verdicts();
    let last = &verdicts[0];
    assert!(!last.accepted);
    assert_eq!(last.peer.as_ref().map(NodeId::as_str), Some("a"));
    assert_eq!(last.observed.ip().to_string(), "127.0.0.9");
    let reason = last.reason.as_ref().unwrap().to_string();
    assert!(
        reason.contains("127.0.0.2"),
        "the reason names the expected address: {reason}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_unknown_id_and_our_own_id_are_refused() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (server, address) = server(Admission::default(), calls.clone());
    for node in ["stranger", "srv"] {
        let c = client(&address, "127.0.0.2", node, "srv");
        let err = c.call(PROG, 1, 1, Bytes::new()).await.unwrap_err();
        assert!(
            matches!(err, Error::IdentityRefused { .. }),
            "{node}: {err:?}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_rejected_address_is_closed_unread_and_no_handler_runs() {
    let (logs, _guard) = Logs::capture();
    let calls = Arc::new(AtomicUsize::new(0));
    let admission = Admission {
        reject: vec!["127.0.0.8/32".parse().unwrap()],
        allow: vec![],
    };
    let (server, address) = server(admission, calls.clone());
    let refused = client(&address, "127.0.0.8", "a", "srv");
    let err = refused.call(PROG, 1, 1, Bytes::new()).await.unwrap_err();
    // Each attempt is closed during HELLO; the breaker then opens (or,
    // on a very slow machine, the deadline passes first).
    assert!(
        matches!(
            err,
            Error::CircuitOpen { failures: 5, .. } | Error::CallTimeout { sent: false, .. }
        ),
        "{err:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(server.stats().refused >= 1);
    assert_eq!(server.stats().accepted, 0, "never admitted");
    assert!(logs.text().contains("127.0.0.8"), "{}", logs.text());
    // Others still get in.
    let a = client(&address, "127.0.0.2", "a", "srv");
    a.call(PROG, 1, 1, Bytes::new()).await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn calls_before_hello_are_refused_and_the_connection_closes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (server, address) = server(Admission::default(), calls.clone());
    let stream = tokio::net::TcpStream::connect(address.to_string())
        .await
        .unwrap();
    let mut framed = Framed::new(stream, RpcCodec::default());
    let call = Message::call(77, CallHeader::new(PROG, 1, 1), Bytes::new());
    framed.send(&call).await.unwrap();
    let reply = framed.next().await.unwrap().unwrap().unwrap();
    assert_eq!(reply.xid, 77);
    assert!(matches!(
        reply.body,
        MessageBody::Reply {
            body: ReplyBody::Denied(Rejection::AuthError(AuthStat::TOO_WEAK)),
            ..
        }
    ));
    assert!(
        framed.next().await.is_none(),
        "the server closed the connection"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    server.shutdown().await;
}

/// A HELLO whose node ID carries a newline and terminal escapes is refused
/// with a verdict (not served, not merely GARBAGE_ARGS), and the verdict
/// shows the claimed text escaped: no raw control character reaches a log
/// line or an operator's terminal.
#[tokio::test(flavor = "current_thread")]
async fn a_node_id_with_control_characters_is_refused_and_printed_escaped() {
    assert!("a\nb".parse::<NodeId>().is_err());
    assert!("\u{1b}[31mred".parse::<NodeId>().is_err());
    let calls = Arc::new(AtomicUsize::new(0));
    let (server, address) = server(Admission::default(), calls.clone());
    let stream = tokio::net::TcpStream::connect(address.to_string())
        .await
        .unwrap();
    let mut framed = Framed::new(stream, RpcCodec::default());
    // HELLO's arguments by hand: string node_id, unsigned versions<>,
    // optional cluster (absent).
    let mut args = BytesMut::new();
    let forged = "b\n2026-01-01 INFO accepted node-a\u{1b}[2J\u{7}";
    {
        let mut w = peerwire::proto::xdr::XdrWriter::new(&mut args);
        w.string(forged);
        w.array(&[1u32], |w, v| w.u32(*v));
        w.optional(None::<&String>, |w, c| w.string(c));
    }
    let hello = Message::call(
        5,
        CallHeader::new(HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO),
        args.freeze(),
    );
    framed.send(&hello).await.unwrap();
    let reply = framed.next().await.unwrap().unwrap().unwrap();
    assert!(
        matches!(
            reply.body,
            MessageBody::Reply {
                body: ReplyBody::Denied(Rejection::AuthError(AuthStat::REJECTED_CRED)),
                ..
            }
        ),
        "{reply:?}"
    );
    assert!(framed.next().await.is_none(), "the server closed");
    let verdict = server.verdicts().into_iter().next().expect("a verdict");
    assert!(!verdict.accepted);
    assert_eq!(verdict.peer, None, "an invalid ID is no NodeId");
    let reason = verdict.reason.expect("a reason").to_string();
    assert!(
        !reason.chars().any(char::is_control),
        "raw control characters in the verdict: {reason:?}"
    );
    assert!(
        reason.contains("b\\n2026") && reason.contains("\\u{1b}[2J"),
        "{reason}"
    );
    assert_eq!(server.stats().rejected, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    server.shutdown().await;
}

/// On a dual-stack `[::]` listener an IPv4 caller is judged, recorded and
/// shown as IPv4: a reject list written in IPv4-mapped form refuses it, and
/// the verdict names `127.0.0.2`, never `::ffff:127.0.0.2`.
#[tokio::test(flavor = "current_thread")]
async fn ipv4_callers_on_a_dual_stack_listener_are_judged_and_shown_as_ipv4() {
    let options = ServerOptions {
        admission: Admission {
            reject: vec!["::ffff:127.0.0.0/104".parse().unwrap()],
            allow: vec![],
        },
        listen: peerwire::ListenOptions {
            dual_stack: true,
            ..peerwire::ListenOptions::default()
        },
        ..ServerOptions::default()
    };
    let server = Server::new(options)
        .serve(&["[::]:0".parse().unwrap()])
        .unwrap();
    let port = server.local_addrs()[0].port();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut stream = socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 1];
    use tokio::io::AsyncReadExt;
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("refused connections are closed at once");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let verdict = server.verdicts().into_iter().next().expect("a verdict");
    assert!(!verdict.accepted);
    assert!(
        verdict.observed.is_ipv4() && verdict.observed.ip().to_string() == "127.0.0.2",
        "{verdict:?}"
    );
    assert_eq!(server.stats().refused, 1);

    // A mapped network shorter than /96 has no IPv4 form: a config error.
    let bad = ServerOptions {
        admission: Admission {
            reject: vec![],
            allow: vec!["::ffff:0.0.0.0/80".parse().unwrap()],
        },
        ..ServerOptions::default()
    };
    let refused = Server::new(bad).serve(&["127.0.0.1:0".parse().unwrap()]);
    assert!(
        matches!(
            &refused,
            Err(Error::Config(peerwire::ConfigError::MappedNetwork { net }))
                if *net == "::ffff:0.0.0.0/80".parse::<ipnet::IpNet>().unwrap()
        ),
        "{refused:?}"
    );
    server.shutdown().await;
}

/// One address claiming a new node ID on every connection makes a new
/// verdict each time, but it cannot push another address's verdict out:
/// the impostor from 127.0.0.9 stays listed for the operator.
#[tokio::test(flavor = "current_thread")]
async fn a_flood_of_claimed_ids_from_one_address_keeps_the_impostors_verdict() {
    use peerwire::server::{VERDICTS_KEPT, VERDICTS_PER_SOURCE};
    let calls = Arc::new(AtomicUsize::new(0));
    let (server, address) = server(Admission::default(), calls);
    let impostor = client(&address, "127.0.0.9", "a", "srv");
    assert!(impostor.connect().await.is_err());
    let flood = VERDICTS_KEPT + 16;
    for i in 0..flood {
        let stranger = client(&address, "127.0.0.8", &format!("x{i}"), "srv");
        assert!(stranger.connect().await.is_err());
    }
    let start = std::time::Instant::now();
    while server.stats().rejected < 1 + flood as u64 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.stats().rejected, 1 + flood as u64);
    let verdicts = server.verdicts();
    let from = |ip: &str| {
        verdicts
            .iter()
            .filter(|v| v.observed.ip().to_string() == ip)
            .collect::<Vec<_>>()
    };
    let impostor = from("127.0.0.9");
    assert_eq!(impostor.len(), 1, "{verdicts:#?}");
    assert_eq!(impostor[0].peer.as_ref().map(NodeId::as_str), Some("a"));
    assert!(
        matches!(
            impostor[0].reason,
            Some(peerwire::VerdictReason::Refused(_))
        ),
        "{:?}",
        impostor[0]
    );
    // The flood keeps only its newest few.
    let flooded = from("127.0.0.8");
    assert_eq!(flooded.len(), VERDICTS_PER_SOURCE);
    let last = format!("x{}", flood - 1);
    assert_eq!(
        flooded[0].peer.as_ref().map(NodeId::as_str),
        Some(last.as_str())
    );
    server.shutdown().await;
}

/// A handler's events carry the connection's span (id, observed and local
/// address, and the peer's node ID once its HELLO succeeded) and the call's
/// (xid, program, version, procedure).
#[tokio::test(flavor = "current_thread")]
async fn handler_events_carry_the_connection_and_call_spans() {
    let (logs, _guard) = Logs::capture_at(tracing::Level::DEBUG);
    let peers = PeerTable::new().allow(id("a"), ["127.0.0.2".parse().unwrap()]);
    let options = ServerOptions {
        identity: Some(ServerIdentity {
            node: id("srv"),
            cluster: Some("c1".into()),
            peers,
            mode: IdentityMode::Strict,
        }),
        ..ServerOptions::default()
    };
    let service = |_ctx: CallContext, _procedure: u32, args: Bytes| async move {
        tracing::warn!("handler ran");
        Ok(args)
    };
    let (server, address) = start(options, service);
    let a = client(&address, "127.0.0.2", "a", "srv");
    a.call(PROG, 1, 7, Bytes::from_static(b"x")).await.unwrap();
    let log = logs.text();
    let line = log
        .lines()
        .find(|l| l.contains("handler ran"))
        .unwrap_or_else(|| panic!("no handler event: {log}"));
    for field in [
        "conn{",
        "observed=127.0.0.2:",
        "local=127.0.0.1:",
        "peer=a",
        "call{",
        "xid=",
        &format!("program={PROG}"),
        "version=1",
        "procedure=7",
    ] {
        assert!(line.contains(field), "no {field:?} in {line}");
    }
    server.shutdown().await;
}

/// `RunningServer::update` replaces the peer table while the server runs:
/// a connection whose node is no longer allowed from its address is closed
/// with a verdict, and its next attempt refused; a connection still
/// allowed goes on untouched (same local port).
#[tokio::test(flavor = "current_thread")]
async fn an_updated_peer_table_closes_only_what_it_no_longer_allows() {
    use peerwire::{ConnectionState, VerdictReason};
    let calls = Arc::new(AtomicUsize::new(0));
    let (server, address) = server(Admission::default(), calls);
    let a = client(&address, "127.0.0.2", "a", "srv");
    let b = client(&address, "127.0.0.3", "b", "srv");
    a.null(PROG, 1).await.unwrap();
    b.null(PROG, 1).await.unwrap();
    let local = |c: &Client| match c.state() {
        ConnectionState::Connected { local, .. } => Some(local),
        _ => None,
    };
    let b_before = local(&b).expect("b connected");
    // "a" is now allowed only from 127.0.0.4; "b" as before.
    let peers = PeerTable::new()
        .allow(id("a"), ["127.0.0.4".parse().unwrap()])
        .allow(id("b"), ["127.0.0.3".parse().unwrap()]);
    server
        .update(
            Admission::default(),
            Some(ServerIdentity {
                node: id("srv"),
                cluster: Some("c1".into()),
                peers,
                mode: IdentityMode::Strict,
            }),
        )
        .unwrap();
    let closed = |v: &peerwire::Verdict| {
        matches!(v.reason, Some(VerdictReason::NoLongerAllowed(_)))
            && v.peer.as_ref().map(NodeId::as_str) == Some("a")
    };
    let start = std::time::Instant::now();
    while !server.verdicts().iter().any(closed) && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        server.verdicts().iter().any(closed),
        "{:#?}",
        server.verdicts()
    );
    let again = a.null(PROG, 1).await;
    assert!(
        matches!(again, Err(Error::IdentityRefused { .. })),
        "{again:?}"
    );
    b.null(PROG, 1).await.unwrap();
    assert_eq!(local(&b), Some(b_before), "b's connection was kept");
    assert_eq!(
        server.connections().len(),
        1,
        "only b's connection is open: {:?}",
        server.connections()
    );
    server.shutdown().await;
}
