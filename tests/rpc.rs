//! The client and server together on loopback.

mod support {
    #[path = "../support/common.rs"]
    pub mod common;
}

use std::time::Duration;

use bytes::Bytes;
use peerwire::{
    CallContext, CallStatus, Client, ClientOptions, Endpoint, Error, ProcError, Server,
    ServerOptions,
};
use support::common::{PROG, echo};

fn start(options: ServerOptions) -> (peerwire::RunningServer, Endpoint) {
    let server = Server::new(options)
        .service(PROG, 1, echo)
        .service(PROG, 3, echo);
    let running = server.serve(&["127.0.0.1:0".parse().unwrap()]).unwrap();
    let addr = Endpoint::from(running.local_addrs()[0]);
    (running, addr)
}

#[tokio::test]
async fn calls_round_trip_and_see_the_observed_address() {
    let (server, addr) = start(ServerOptions::default());
    let client = Client::new(vec![addr], ClientOptions::default()).expect("a destination");
    let out = client
        .call(PROG, 1, 1, Bytes::from_static(b"abcd"))
        .await
        .unwrap();
    assert_eq!(&out[..], b"abcd");
    let observed = client.call(PROG, 1, 2, Bytes::new()).await.unwrap();
    let peerwire::ConnectionState::Connected { local, .. } = client.state() else {
        panic!("not connected: {:?}", client.state())
    };
    assert_eq!(std::str::from_utf8(&observed).unwrap(), local.to_string());
    client.null(PROG, 3).await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn server_error_replies_reach_the_caller() {
    let (server, addr) = start(ServerOptions::default());
    let client = Client::new(vec![addr], ClientOptions::default()).expect("a destination");
    let status = |r: Result<Bytes, Error>| match r {
        Err(Error::CallRejected { status, .. }) => status,
        other => panic!("expected a rejection, got {other:?}"),
    };
    assert_eq!(
        status(client.call(PROG + 1, 1, 1, Bytes::new()).await),
        CallStatus::ProgUnavail
    );
    assert_eq!(
        status(client.call(PROG, 2, 1, Bytes::new()).await),
        CallStatus::ProgMismatch { low: 1, high: 3 }
    );
    assert_eq!(
        status(client.call(PROG, 1, 9, Bytes::new()).await),
        CallStatus::ProcUnavail
    );
    assert_eq!(
        status(client.call(PROG, 1, 5, Bytes::new()).await),
        CallStatus::GarbageArgs
    );
    assert_eq!(
        status(client.call(PROG, 1, 4, Bytes::new()).await),
        CallStatus::SystemErr
    );
    // The server lives on after the panic.
    client
        .call(PROG, 1, 1, Bytes::from_static(b"ok"))
        .await
        .unwrap();
    assert_eq!(server.stats().panics, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_service_refusing_credentials_fails_the_call_with_its_auth_stat() {
    let (server, addr) = start(ServerOptions::default());
    let client = Client::new(vec![addr], ClientOptions::default()).expect("a destination");
    match client.call(PROG, 1, 6, Bytes::new()).await {
        Err(Error::CallRejected {
            status: CallStatus::AuthError(stat),
            procedure: 6,
            ..
        }) => assert_eq!(stat, peerwire::proto::AuthStat::TOO_WEAK),
        other => panic!("expected AUTH_ERROR with AUTH_TOOWEAK, got {other:?}"),
    }
    // A refused credential ends the call, not the connection.
    let out = client
        .call(PROG, 1, 1, Bytes::from_static(b"ok"))
        .await
        .unwrap();
    assert_eq!(&out[..], b"ok");
    assert_eq!(server.stats().closed, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn concurrent_calls_complete_out_of_order() {
    let (server, addr) = start(ServerOptions::default());
    let client = Client::new(vec![addr], ClientOptions::default()).expect("a destination");
    let mut tasks = Vec::new();
    for i in 0..40u8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let delay = 40 - i;
            let out = client
                .call(PROG, 1, 3, Bytes::from(vec![delay, i]))
                .await
                .unwrap();
            assert_eq!(&out[..], &[delay, i]);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(client.stats().succeeded, 40);
    server.shutdown().await;
}

#[tokio::test]
async fn a_handler_that_panics_before_returning_its_future_gets_system_err() {
    let eager = |_ctx: CallContext, procedure: u32, args: Bytes| {
        assert_ne!(procedure, 6, "panics while building its future");
        async move { Ok::<Bytes, ProcError>(args) }
    };
    let server = Server::new(ServerOptions::default())
        .service(PROG, 1, eager)
        .serve(&["127.0.0.1:0".parse().unwrap()])
        .unwrap();
    let client = Client::new(
        vec![Endpoint::from(server.local_addrs()[0])],
        ClientOptions::default(),
    )
    .expect("a destination");
    let err = client.call(PROG, 1, 6, Bytes::new()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::CallRejected {
                status: CallStatus::SystemErr,
                ..
            }
        ),
        "{err:?}"
    );
    let out = client
        .call(PROG, 1, 1, Bytes::from_static(b"after"))
        .await
        .unwrap();
    assert_eq!(&out[..], b"after");
    assert_eq!(server.stats().panics, 1);
    server.shutdown().await;
}

/// The kernel's timer on the server's side of a loopback connection, from
/// `/proc/net/tcp`: its `tr` field (0 none, 1 retransmit, 2 keepalive,
/// 4 zero-window probe) and `tm->when` in clock ticks (USER_HZ, 100 a
/// second). `server` is the listener's address, `client` the peer's.
fn server_side_timer(server: std::net::SocketAddr, client: std::net::SocketAddr) -> (u32, u64) {
    let hex = |addr: std::net::SocketAddr| {
        let std::net::IpAddr::V4(ip) = addr.ip() else {
            panic!("IPv4 only: {addr}")
        };
        format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(ip.octets()),
            addr.port()
        )
    };
    let (local, remote) = (hex(server), hex(client));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields[1] == local && fields[2] == remote {
            let (tr, when) = fields[5].split_once(':').unwrap();
            return (
                u32::from_str_radix(tr, 16).unwrap(),
                u64::from_str_radix(when, 16).unwrap(),
            );
        }
    }
    panic!("no connection {local} -> {remote} in /proc/net/tcp:\n{table}");
}

/// An accepted connection gets the server's keepalive at once: the kernel
/// runs a keepalive timer on it, due within the configured idle time, so a
/// peer that vanishes is found without waiting for the idle timeout.
/// With keepalive off, no timer runs.
#[tokio::test]
async fn accepted_connections_get_the_servers_keepalive() {
    for keepalive in [
        Some(peerwire::Keepalive {
            time: Duration::from_secs(7),
            interval: Duration::from_secs(3),
            count: 4,
        }),
        None,
    ] {
        let (server, addr) = start(ServerOptions {
            keepalive,
            user_timeout: Some(Duration::from_secs(11)),
            ..ServerOptions::default()
        });
        let stream = tokio::net::TcpStream::connect(addr.to_string())
            .await
            .unwrap();
        let start = std::time::Instant::now();
        while server.connections().is_empty() && start.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(server.connections().len(), 1);
        let (timer, when) =
            server_side_timer(server.local_addrs()[0], stream.local_addr().unwrap());
        match keepalive {
            Some(_) => {
                assert_eq!(timer, 2, "no keepalive timer on the accepted socket");
                assert!(when <= 700, "due in {when} ticks, over the 7 s idle time");
            }
            None => assert_eq!(timer, 0, "a timer runs with keepalive off"),
        }
        drop(stream);
        server.shutdown().await;
    }
}

/// A typed value with a string and opaque data, as generated code has.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    key: peerwire::proto::xdr::XdrString,
    value: Bytes,
    version: u64,
}

impl peerwire::proto::xdr::XdrEncode for Entry {
    fn encode(&self, w: &mut peerwire::proto::xdr::XdrWriter<'_>) {
        w.string_bytes(&self.key);
        w.opaque(&self.value);
        w.u64(self.version);
    }
}

impl peerwire::proto::xdr::XdrDecode for Entry {
    fn decode(
        r: &mut peerwire::proto::xdr::XdrReader<'_>,
    ) -> Result<Self, peerwire::proto::DecodeError> {
        Ok(Entry {
            key: r.string_bytes(255)?,
            value: r.opaque_bytes(u32::MAX)?,
            version: r.u64()?,
        })
    }
}

#[tokio::test]
async fn typed_calls_round_trip_any_string_bytes_and_bad_results_are_errors() {
    use peerwire::Procedure;
    const ECHO: Procedure<Entry, Entry> = Procedure::new(PROG, 1, 1, "ECHO");
    // The server echoes 4 bytes back: too few for a u64, too many for ().
    const SHORT: Procedure<u32, u64> = Procedure::new(PROG, 1, 1, "ECHO");
    const LONG: Procedure<u32, ()> = Procedure::new(PROG, 1, 1, "ECHO");

    let (server, addr) = start(ServerOptions::default());
    let client = Client::new(vec![addr], ClientOptions::default()).expect("a destination");
    let entry = Entry {
        key: b"k\xff\x00y".to_vec().into(),
        value: Bytes::from(vec![7u8; 4001]),
        version: u64::MAX - 1,
    };
    let back = client.call_proc(&ECHO, &entry).await.unwrap();
    assert_eq!(back, entry);
    assert!(back.key.to_str().is_err());

    let options = peerwire::CallOptions::default();
    let err = client
        .call_proc_with(&SHORT, &1, &options)
        .await
        .unwrap_err();
    let Error::BadResults { error, .. } = err else {
        panic!("not BadResults: {err}")
    };
    assert_eq!(
        error.kind,
        peerwire::proto::DecodeErrorKind::UnexpectedEnd { needed: 4 }
    );
    let err = client.call_proc(&LONG, &1).await.unwrap_err();
    let Error::BadResults { error, .. } = err else {
        panic!("not BadResults: {err}")
    };
    assert_eq!(
        error.kind,
        peerwire::proto::DecodeErrorKind::TrailingBytes { len: 4 }
    );
    server.shutdown().await;
}

/// Arguments whose encoder panics (as `XdrWriter::opaque` does for data of
/// 4 GiB or more).
struct Unencodable;

impl peerwire::proto::xdr::XdrEncode for Unencodable {
    fn encode(&self, w: &mut peerwire::proto::xdr::XdrWriter<'_>) {
        w.u32(1);
        panic!("arguments that cannot be encoded");
    }
}

/// A caller whose arguments panic while being encoded into the outbox
/// leaves no part of a record behind and gives its slot back: with one
/// slot, the next calls go through on the same connection, before and
/// after the connection is made.
#[tokio::test]
async fn a_panicking_argument_encoder_leaves_the_client_usable() {
    use futures_util::FutureExt;
    use peerwire::Procedure;
    const BAD: Procedure<Unencodable, ()> = Procedure::new(PROG, 1, 1, "ECHO");
    const ECHO: Procedure<u32, u32> = Procedure::new(PROG, 1, 1, "ECHO");

    let (server, addr) = start(ServerOptions::default());
    let options = ClientOptions {
        max_in_flight: 1,
        // Generous: a call that found no free slot would wait this long.
        deadline: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    let client = Client::new(vec![addr], options).expect("a destination");
    for round in 0..2 {
        // Round 0 before the connection (the call would be queued), round
        // 1 on it (the record would go straight into the outbox).
        let bad = std::panic::AssertUnwindSafe(client.call_proc(&BAD, &Unencodable));
        assert!(bad.catch_unwind().await.is_err(), "round {round}");
        for n in 0..3 {
            assert_eq!(
                client.call_proc(&ECHO, &n).await.unwrap(),
                n,
                "round {round}"
            );
        }
    }
    let stats = client.stats();
    assert_eq!((stats.sent, stats.succeeded, stats.reconnects), (6, 6, 0));
    server.shutdown().await;
}

/// A key-value store, the user's own state.
struct Kv {
    entries: std::sync::Mutex<std::collections::HashMap<Bytes, Bytes>>,
}

/// Version 1 of a key-value program over a shared store: a type of the
/// user's own, so the impl below meets no orphan rule.
struct KvV1(std::sync::Arc<Kv>);

const KV: u32 = 0x2000_0200;
const KV_PUT: peerwire::Procedure<Entry, ()> = peerwire::Procedure::new(KV, 1, 1, "PUT");
const KV_GET: peerwire::Procedure<peerwire::proto::xdr::XdrString, Bytes> =
    peerwire::Procedure::new(KV, 1, 2, "GET");
const KV_WHO: peerwire::Procedure<(), peerwire::proto::xdr::XdrString> =
    peerwire::Procedure::new(KV, 1, 3, "WHO");

impl peerwire::server::Program for KvV1 {
    const PROGRAM: u32 = KV;
    const VERSION: u32 = 1;

    async fn dispatch(&self, call: peerwire::server::Call) -> Result<Bytes, ProcError> {
        use peerwire::proto::xdr::{XdrString, to_bytes};
        match call.procedure {
            1 => {
                let entry: Entry = call.args()?;
                let key = entry.key.into_bytes();
                self.0.entries.lock().unwrap().insert(key, entry.value);
                Ok(Bytes::new())
            }
            2 => {
                let key: XdrString = call.args()?;
                let entries = self.0.entries.lock().unwrap();
                let value = entries.get(key.as_bytes()).cloned().unwrap_or_default();
                Ok(to_bytes(&value))
            }
            3 => {
                call.args::<()>()?;
                Ok(to_bytes(&XdrString::from(call.ctx.observed.to_string())))
            }
            4 => {
                // Waits: runs as a task of its own.
                let ms: u32 = call.args()?;
                tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
                Ok(to_bytes(&ms))
            }
            5 => panic!("a procedure panics on purpose"),
            _ => Err(ProcError::ProcUnavail),
        }
    }
}

/// A typed program registered with one call: its procedures reached by
/// typed calls, with the call's context; arguments that do not decode
/// answered GARBAGE_ARGS and unknown procedures PROC_UNAVAIL, with no
/// code of the program's for either.
#[tokio::test]
async fn a_typed_program_serves_typed_calls_and_answers_rpc_errors() {
    let kv = std::sync::Arc::new(Kv {
        entries: Default::default(),
    });
    let server = Server::new(ServerOptions::default())
        .program(KvV1(kv.clone()))
        .serve(&["127.0.0.1:0".parse().unwrap()])
        .unwrap();
    let addr = Endpoint::from(server.local_addrs()[0]);
    let client = Client::new(vec![addr], ClientOptions::default()).expect("a destination");

    let entry = Entry {
        key: b"k\xff".to_vec().into(),
        value: Bytes::from_static(b"v1"),
        version: 1,
    };
    client.call_proc(&KV_PUT, &entry).await.unwrap();
    let value = client.call_proc(&KV_GET, &entry.key).await.unwrap();
    assert_eq!(value, Bytes::from_static(b"v1"));
    assert_eq!(kv.entries.lock().unwrap().len(), 1);
    let observed = client.call_proc(&KV_WHO, &()).await.unwrap();
    let peerwire::ConnectionState::Connected { local, .. } = client.state() else {
        panic!("not connected: {:?}", client.state())
    };
    assert_eq!(observed, local.to_string().as_str());

    let status = |r: Result<Bytes, Error>| match r {
        Err(Error::CallRejected { status, .. }) => status,
        other => panic!("expected a rejection, got {other:?}"),
    };
    // A string announced longer than the arguments; trailing bytes.
    let garbage = [&b"\0\0\0\x09abc\0"[..], &b"\0\0\0\x01a\0\0\0\0\0\0\0"[..]];
    for args in garbage {
        let r = client.call(KV, 1, 2, Bytes::from_static(args)).await;
        assert_eq!(status(r), CallStatus::GarbageArgs, "{args:?}");
    }
    let r = client.call(KV, 1, 9, Bytes::new()).await;
    assert_eq!(status(r), CallStatus::ProcUnavail);
    let r = client.call(KV, 2, 1, Bytes::new()).await;
    assert_eq!(status(r), CallStatus::ProgMismatch { low: 1, high: 1 });
    client.null(KV, 1).await.unwrap();

    // Procedures that wait run concurrently and finish in their order.
    const KV_WAIT: peerwire::Procedure<u32, u32> = peerwire::Procedure::new(KV, 1, 4, "WAIT");
    let (slow, fast) = tokio::join!(client.call_proc(&KV_WAIT, &60), async {
        let fast = client.call_proc(&KV_WAIT, &1).await;
        (fast, client.stats().succeeded)
    });
    assert_eq!((slow.unwrap(), fast.0.unwrap()), (60, 1));
    let done_before_slow = fast.1;
    assert_eq!(client.stats().succeeded, done_before_slow + 1);
    // A panicking procedure is SYSTEM_ERR; the program serves on.
    let r = client.call(KV, 1, 5, Bytes::new()).await;
    assert_eq!(status(r), CallStatus::SystemErr);
    assert_eq!(server.stats().panics, 1);
    let value = client.call_proc(&KV_GET, &entry.key).await.unwrap();
    assert_eq!(value, Bytes::from_static(b"v1"));
    server.shutdown().await;
}
