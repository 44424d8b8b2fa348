//! The client's side of the handshake: its checks of the server's answer
//! (node ID, observed address), backoff after a refusal, and the last
//! connect error.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use peerwire::codec::RpcCodec;
use peerwire::peer::hello::wire::HelloRes;
use peerwire::peer::{HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO, HelloReply};
use peerwire::proto::xdr::to_bytes;
use peerwire::proto::{AcceptStatus, Message, MessageBody, ReplyBody};
use peerwire::{
    Admission, Client, ClientIdentity, ClientOptions, ConnectOptions, Endpoint, Error,
    MismatchPolicy, ScopedIp, Sources,
};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

use super::{client, server};
use crate::support::common::{PROG, id};
use crate::support::logs::Logs;

/// A peer that refuses our identity is retried with growing backoff up to
/// the maximum, however often calls come: callers pinging every 20 ms for
/// 3 s make a handful of attempts, not one per ping.
#[tokio::test(flavor = "current_thread")]
async fn a_refused_identity_is_retried_with_growing_backoff() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (server, address) = server(Admission::default(), calls);
    let mut identity = ClientIdentity::new(id("a"), id("srv"));
    identity.cluster = Some("c1".into());
    let options = ClientOptions {
        connect: ConnectOptions {
            // "a" is allowed only from 127.0.0.2.
            sources: Sources::new().with("127.0.0.9".parse::<ScopedIp>().unwrap()),
            ..ConnectOptions::default()
        },
        identity: Some(identity),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_millis(1600),
        backoff_jitter: 0.0,
        ..ClientOptions::default()
    };
    let refused = Client::new(vec![address], options).unwrap();
    let start = std::time::Instant::now();
    let mut failures = 0;
    while start.elapsed() < Duration::from_secs(3) {
        let result = refused.null(PROG, 1).await;
        assert!(result.is_err(), "{result:?}");
        failures += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let attempts = server.stats().rejected;
    // 100 + 200 + 400 + 800 ms, then every 1.6 s: about 6 in 3 s.
    assert!(
        (3..=9).contains(&attempts),
        "{attempts} HELLO attempts for {failures} pings in 3 s"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_client_catches_a_server_with_another_node_id() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (server, address) = server(Admission::default(), calls.clone());
    let c = client(&address, "127.0.0.2", "a", "someone-else");
    let err = c.call(PROG, 1, 1, Bytes::new()).await.unwrap_err();
    match err {
        Error::WrongPeer {
            expected, answered, ..
        } => {
            assert_eq!(
                (expected.as_str(), answered.as_str()),
                ("someone-else", "srv")
            );
        }
        other => panic!("expected a wrong-peer error, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    server.shutdown().await;
}

/// A scripted server that answers HELLO claiming to have seen 192.0.2.99,
/// then echoes calls.
async fn lying_server() -> (Endpoint, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = Endpoint::from(listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut framed = Framed::new(stream, RpcCodec::default());
                while let Some(Ok(Ok(message))) = framed.next().await {
                    let MessageBody::Call { header, args } = message.body else {
                        continue;
                    };
                    let results = if (header.program, header.version, header.procedure)
                        == (HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO)
                    {
                        to_bytes(&HelloRes::from(&HelloReply {
                            node: "srv".parse().unwrap(),
                            observed: "192.0.2.99:4000".parse().unwrap(),
                            version: 1,
                        }))
                    } else {
                        args
                    };
                    let reply = Message::reply(
                        message.xid,
                        ReplyBody::accepted(AcceptStatus::Success),
                        results,
                    );
                    if framed.send(&reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (address, task)
}

#[tokio::test(flavor = "current_thread")]
async fn an_observed_address_other_than_our_source_is_an_error_or_a_warning() {
    let (logs, _guard) = Logs::capture();
    let (address, task) = lying_server().await;
    let strict = client(&address, "127.0.0.2", "a", "srv");
    match strict.call(PROG, 1, 1, Bytes::new()).await.unwrap_err() {
        Error::ObservedMismatch {
            bound, observed, ..
        } => {
            assert_eq!(bound.ip().to_string(), "127.0.0.2");
            assert_eq!(observed.to_string(), "192.0.2.99:4000");
        }
        other => panic!("expected an observed-address mismatch, got {other:?}"),
    }

    let mut identity = ClientIdentity::new(id("a"), id("srv"));
    identity.observed_mismatch = MismatchPolicy::Warn;
    let lenient = Client::new(
        vec![address.clone()],
        ClientOptions {
            connect: ConnectOptions {
                sources: Sources::new().with("127.0.0.2".parse::<ScopedIp>().unwrap()),
                ..ConnectOptions::default()
            },
            identity: Some(identity),
            ..ClientOptions::default()
        },
    )
    .expect("a destination");
    let out = lenient
        .call(PROG, 1, 1, Bytes::from_static(b"hi"))
        .await
        .unwrap();
    assert_eq!(&out[..], b"hi");
    assert!(logs.text().contains("192.0.2.99"), "{}", logs.text());
    task.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn last_connect_error_names_the_cause_until_a_connect_succeeds() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (server, address) = server(Admission::default(), calls);

    // Nothing listens here: the cause is the connect error, not the timeout.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Endpoint::from(listener.local_addr().unwrap())
    };
    let options = ClientOptions {
        deadline: Duration::from_millis(300),
        breaker_threshold: 1,
        ..ClientOptions::default()
    };
    let nobody = Client::new(vec![closed], options).expect("a destination");
    assert!(nobody.last_connect_error().is_none());
    assert!(nobody.null(PROG, 1).await.is_err());
    let cause = nobody.last_connect_error().expect("a failed connect");
    assert!(matches!(*cause, Error::Connect { .. }), "{cause:?}");

    // An identity refusal is kept as such.
    let impostor = client(&address, "127.0.0.9", "a", "srv");
    assert!(impostor.null(PROG, 1).await.is_err());
    let cause = impostor.last_connect_error().expect("a refused HELLO");
    assert!(matches!(*cause, Error::IdentityRefused { .. }), "{cause:?}");

    // A successful connect clears it.
    let a = client(&address, "127.0.0.2", "a", "srv");
    a.null(PROG, 1).await.unwrap();
    assert!(a.last_connect_error().is_none());
    server.shutdown().await;
}
