//! The API a dependent cluster peer relies on: connecting up front, errors
//! it can match, limits in its own terms, and a server it can wait on.

mod support {
    #[path = "../support/common.rs"]
    pub mod common;
}

use std::time::Duration;

use bytes::Bytes;
use peerwire::proto::{DecodeError, DecodeErrorKind};
use peerwire::{
    CallContext, CallStatus, Client, ClientIdentity, ClientOptions, ConnectionState,
    DisconnectCause, Endpoint, Error, HandshakeError, Limits, ProcError, RunningServer,
    ServerOptions,
};
use support::common::{GENEROUS, PROG, free_port, start};
use tokio::time::timeout;

async fn echo(_ctx: CallContext, procedure: u32, args: Bytes) -> Result<Bytes, ProcError> {
    match procedure {
        1 => Ok(args),
        // Answers with `args.len()` bytes times 4.
        2 => Ok(Bytes::from(vec![7u8; args.len() * 4])),
        _ => Err(ProcError::ProcUnavail),
    }
}

fn serve(options: ServerOptions) -> (RunningServer, Endpoint) {
    start(options, echo)
}

/// A port nothing listens on.
fn closed_port() -> Endpoint {
    Endpoint::from(std::net::SocketAddr::from((
        [127, 0, 0, 1],
        free_port("127.0.0.1"),
    )))
}

/// Options that can never connect are refused when the client is made,
/// not at each attempt (where every failure would trip the breaker).
#[tokio::test]
async fn connect_options_that_cannot_work_are_refused_by_client_new() {
    let destination = closed_port();
    for policy in [
        peerwire::PortPolicy::Range {
            low: 41_000,
            high: 40_000,
        },
        peerwire::PortPolicy::Range { low: 0, high: 10 },
    ] {
        let mut options = ClientOptions::default();
        options.connect.port_policy = policy;
        let error = Client::new(vec![destination.clone()], options).unwrap_err();
        assert!(error.is_config(), "{error}");
        assert!(error.to_string().contains("port range"), "{error}");
    }
    let mut options = ClientOptions::default();
    options.connect.connect_timeout = Duration::ZERO;
    let error = Client::new(vec![destination], options).unwrap_err();
    assert!(error.is_config(), "{error}");
}

#[tokio::test]
async fn a_client_without_destinations_is_an_error_not_a_panic() {
    let result = Client::new(Vec::new(), ClientOptions::default());
    assert!(
        matches!(result, Err(Error::NoDestinations(_))),
        "{result:?}"
    );
}

/// `connect()` connects before any call and says why it could not.
#[tokio::test]
async fn connect_up_front_returns_the_connect_error() {
    let client = Client::new(vec![closed_port()], ClientOptions::default()).unwrap();
    let result = timeout(GENEROUS, client.connect()).await.unwrap();
    let Err(Error::Unreachable { error, .. }) = result else {
        panic!("expected Unreachable, got {result:?}");
    };
    assert!(
        matches!(
            *error,
            Error::Connect { .. } | Error::AllAttemptsFailed { .. }
        ),
        "{error:?}"
    );
    assert!(client.last_connect_error().is_some());
    assert_eq!(client.stats().sent, 0);
}

#[tokio::test]
async fn connect_up_front_connects_and_says_hello() {
    let (server, addr) = serve(ServerOptions::default());
    let client = Client::new(vec![addr], ClientOptions::default()).unwrap();
    timeout(GENEROUS, client.connect()).await.unwrap().unwrap();
    assert!(
        matches!(client.state(), ConnectionState::Connected { .. }),
        "{:?}",
        client.state()
    );
    // Connected already: at once.
    client.connect().await.unwrap();
    let reply = client.call(PROG, 1, 1, Bytes::from_static(b"x")).await;
    assert_eq!(&reply.unwrap()[..], b"x");
    assert_eq!(server.stats().accepted, 1, "one connection for both");
    server.shutdown().await;
}

/// A peer that does not speak the handshake program fails the HELLO with
/// an error a caller can match, keeping the status it answered.
#[tokio::test]
async fn a_handshake_failure_is_a_matchable_error() {
    let (server, addr) = serve(ServerOptions::default());
    let options = ClientOptions {
        identity: Some(ClientIdentity::new(
            "node-b".parse().unwrap(),
            "node-a".parse().unwrap(),
        )),
        ..ClientOptions::default()
    };
    let client = Client::new(vec![addr], options).unwrap();
    let result = timeout(GENEROUS, client.connect()).await.unwrap();
    let Err(Error::Unreachable { error, .. }) = result else {
        panic!("expected Unreachable, got {result:?}");
    };
    assert!(
        matches!(
            *error,
            Error::Handshake {
                error: HandshakeError::Unsupported(CallStatus::ProgUnavail),
                ..
            }
        ),
        "{error:?}"
    );
    server.shutdown().await;
}

/// The server's limit is on arguments, whatever the RPC header adds: a call
/// with exactly the limit's bytes is served; one XDR unit more is answered
/// GARBAGE_ARGS and the connection goes on; a record beyond the limit plus
/// the largest header breaks the connection before it is read.
#[tokio::test]
async fn the_server_limit_counts_argument_bytes() {
    let (server, addr) = serve(ServerOptions {
        limits: Limits::new(1024).unwrap(),
        ..ServerOptions::default()
    });
    let client = Client::new(vec![addr], ClientOptions::default()).unwrap();
    let exact = client.call(PROG, 1, 1, Bytes::from(vec![1u8; 1024])).await;
    assert_eq!(exact.map(|r| r.len()).ok(), Some(1024));
    let over = client.call(PROG, 1, 1, Bytes::from(vec![1u8; 1028])).await;
    assert!(
        matches!(
            over,
            Err(Error::CallRejected {
                status: CallStatus::GarbageArgs,
                ..
            })
        ),
        "{:?}",
        over.map(|r| r.len())
    );
    let far_over = Bytes::from(vec![1u8; 1024 + Limits::HEADER_ALLOWANCE]);
    let far_over = client.call(PROG, 1, 1, far_over).await;
    assert!(
        matches!(far_over, Err(Error::Disconnected { sent: true, .. })),
        "{:?}",
        far_over.map(|r| r.len())
    );
    assert_eq!(
        server.stats().calls,
        1,
        "only the call within the limit ran"
    );
    server.shutdown().await;
}

/// The client's limit is on results: a reply with more fails its call and
/// the connection goes on; a record beyond the limit plus the largest
/// header breaks the connection, never allocated.
#[tokio::test]
async fn the_client_limit_counts_result_bytes() {
    let (server, addr) = serve(ServerOptions::default());
    let options = ClientOptions {
        limits: Limits::new(4096).unwrap(),
        ..ClientOptions::default()
    };
    let client = Client::new(vec![addr], options).unwrap();
    let fits = client.call(PROG, 1, 2, Bytes::from(vec![0u8; 1024])).await;
    assert_eq!(fits.map(|r| r.len()).ok(), Some(4096));
    let over = client.call(PROG, 1, 2, Bytes::from(vec![0u8; 1025])).await;
    assert!(
        matches!(
            over,
            Err(Error::ResultsTooLarge {
                len: 4100,
                max: 4096,
                ..
            })
        ),
        "{:?}",
        over.map(|r| r.len())
    );
    // The connection goes on.
    client.null(PROG, 1).await.unwrap();
    let far_over = Bytes::from(vec![0u8; 2048]);
    let far_over = client.call(PROG, 1, 2, far_over).await;
    // Our limit, with its value: 4096 bytes of results and the largest
    // RPC header (840); the reply's one fragment is 24 + 8192 bytes.
    let limit = DecodeErrorKind::FragmentTooLong {
        len: 8216,
        max: 4936,
    };
    assert!(
        matches!(
            far_over,
            Err(Error::Disconnected {
                cause: DisconnectCause::BadRecord(DecodeError { kind, .. }),
                ..
            }) if kind == limit
        ),
        "{:?}",
        far_over.map(|r| r.len())
    );
    server.shutdown().await;
}

/// libtirpc with its smallest send buffer writes a 1 MB call as 10,418
/// fragments of 96 bytes; the server's default limits take it, as
/// libtirpc's own server does.
#[tokio::test]
async fn a_megabyte_call_in_96_byte_fragments_is_served() {
    use futures_util::{SinkExt, StreamExt};
    use peerwire::codec::RpcCodec;
    use peerwire::proto::{CallHeader, Message, MessageBody, RecordEncoder};
    let (server, _) = serve(ServerOptions::default());
    let stream = tokio::net::TcpStream::connect(server.local_addrs()[0])
        .await
        .unwrap();
    let codec = RpcCodec::new(
        Limits::default().record_limits(),
        RecordEncoder::with_fragment_size(96),
    );
    let mut framed = tokio_util::codec::Framed::new(stream, codec);
    let args = Bytes::from(vec![5u8; 1_000_000]);
    let call = Message::call(9, CallHeader::new(PROG, 1, 1), args.clone());
    framed.send(&call).await.unwrap();
    let reply = timeout(GENEROUS, framed.next())
        .await
        .expect("answered")
        .expect("a record")
        .expect("well framed")
        .expect("a message");
    assert_eq!(reply.xid, 9);
    let MessageBody::Reply { results, .. } = reply.body else {
        panic!("{reply:?}")
    };
    assert_eq!(results, args, "echoed");
    assert_eq!(server.stats().bad_framing, 0);
    server.shutdown().await;
}

/// A reply refused by the client's own record limit fails its call with
/// words that say so: our limit, its value and the option that sets it,
/// not "a bad record from the peer".
#[tokio::test]
async fn a_reply_over_our_record_limit_says_it_is_our_limit() {
    let (server, addr) = serve(ServerOptions::default());
    let options = ClientOptions {
        limits: Limits::new(4096).unwrap(),
        ..ClientOptions::default()
    };
    let client = Client::new(vec![addr], options).unwrap();
    let far_over = client.call(PROG, 1, 2, Bytes::from(vec![0u8; 2048])).await;
    let error = far_over.expect_err("8 KiB of results over a 4 KiB limit");
    assert!(matches!(error, Error::Disconnected { .. }), "{error:?}");
    let text = error.to_string();
    assert!(
        text.contains("exceeds our record limit of 4936 bytes")
            && text.contains("ClientOptions::limits"),
        "{text}"
    );
    server.shutdown().await;
}

/// `wait()` returns once a `Stopper` has stopped the server, with every
/// connection closed; dropping the handle alone would not stop it.
#[tokio::test]
async fn a_running_server_can_be_awaited_and_stopped_from_elsewhere() {
    let (server, addr) = serve(ServerOptions {
        shutdown_grace: Duration::from_secs(1),
        ..ServerOptions::default()
    });
    let stopper = server.stopper();
    let client = Client::new(vec![addr.clone()], ClientOptions::default()).unwrap();
    client.null(PROG, 1).await.unwrap();
    let waiting = tokio::spawn(server.wait());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "wait() returned before any stop");
    stopper.stop();
    timeout(GENEROUS, waiting).await.unwrap().unwrap();
    let after = Client::new(vec![addr], ClientOptions::default()).unwrap();
    assert!(
        timeout(GENEROUS, after.connect()).await.unwrap().is_err(),
        "still accepting after wait() returned"
    );
}

/// With the breaker open, `connect()` answers at once with `CircuitOpen`
/// (and when the single probe may run), not after a timeout.
#[tokio::test]
async fn connect_with_the_breaker_open_fails_fast() {
    let options = ClientOptions {
        breaker_threshold: 1,
        backoff_base: Duration::from_secs(30),
        backoff_max: Duration::from_secs(30),
        ..ClientOptions::default()
    };
    let client = Client::new(vec![closed_port()], options).unwrap();
    let first = timeout(GENEROUS, client.connect()).await.unwrap();
    assert!(matches!(first, Err(Error::Unreachable { .. })), "{first:?}");
    for _ in 0..3 {
        let again = timeout(Duration::from_secs(2), client.connect())
            .await
            .expect("connect() with the breaker open must not wait");
        assert!(
            matches!(again, Err(Error::CircuitOpen { failures: 1, .. })),
            "{again:?}"
        );
    }
}
