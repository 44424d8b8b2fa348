//! Helpers of the loopback test binaries: one program number, an echo
//! service and a server of it on 127.0.0.1, client options without pings,
//! call options with a deadline, free ports, the bound that means "hung"
//! and polls up to it (a condition, a verdict), raw NULL calls, the TLS
//! error inside a client's error, and parsers of node IDs and addresses
//! (which the netns scenarios take too).
//!
//! Each module of tests/support stands alone (netns.rs reports through
//! harness.rs): common.rs; harness.rs, the `main` of binaries that prepare
//! an environment first; netns.rs, hosts from network namespaces; peerd.rs,
//! the built example; pki.rs, the certificate authority; temp.rs, temporary
//! directories; logs.rs, captured log lines. A binary names the ones it
//! uses:
//!
//! ```ignore
//! mod support {
//!     #[path = "../support/common.rs"]
//!     pub mod common;
//! }
//! ```
//!
//! The `../support/` path lands on the file both for rustc, which reads it
//! from tests/support/ (the inline module's folder), and for rustfmt, which
//! reads it from tests/<binary>/ when the binary has such a folder.

// Each binary uses some of these helpers, and a helper one binary does not
// use would warn there; the module is small, so the allow covers all of it.
#![allow(dead_code)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use peerwire::proto::{AuthStat, CallHeader, Message, RecordDecoder, RecordEncoder, RecordLimits};
use peerwire::{
    AllowedAddress, CallContext, CallOptions, ClientOptions, Endpoint, NodeId, ProcError,
    RunningServer, Server, ServerOptions, Service, Verdict,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::sleep;

/// The program the tests serve (from the range RFC 5531 leaves to users).
pub const PROG: u32 = 0x2000_0001;

/// Long enough to mean "hung" on the slowest machine: the bound of a wait
/// that only ends a failing run, never one that a passing run comes near.
pub const GENEROUS: Duration = Duration::from_secs(20);

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Call options with this deadline.
pub fn within(deadline: Duration) -> CallOptions {
    CallOptions {
        deadline: Some(deadline),
        ..CallOptions::default()
    }
}

/// Client options with no pings to get in the way, and a deadline of 30 s
/// (longer than any test waits for a call that should finish).
pub fn quiet_client_options() -> ClientOptions {
    ClientOptions {
        deadline: Duration::from_secs(30),
        ping_interval: Duration::from_secs(3600),
        ping_timeout: Duration::from_secs(7200),
        ..ClientOptions::default()
    }
}

/// Procedures: 1 echoes; 2 returns the address the server observed the
/// caller at; 3 sleeps `args[0]` × 10 ms and echoes; 4 panics; 5 answers
/// GARBAGE_ARGS; 6 answers AUTH_ERROR (too weak); any other is PROC_UNAVAIL.
pub async fn echo(ctx: CallContext, procedure: u32, args: Bytes) -> Result<Bytes, ProcError> {
    match procedure {
        1 => Ok(args),
        2 => Ok(Bytes::from(ctx.observed.to_string())),
        3 => {
            sleep(ms(u64::from(args[0]) * 10)).await;
            Ok(args)
        }
        4 => panic!("handler panics on purpose"),
        5 => Err(ProcError::GarbageArgs),
        6 => Err(ProcError::AuthError(AuthStat::TOO_WEAK)),
        _ => Err(ProcError::ProcUnavail),
    }
}

/// A server of `service` as [`PROG`] version 1 on 127.0.0.1, and its
/// address.
pub fn start(options: ServerOptions, service: impl Service) -> (RunningServer, Endpoint) {
    let running = Server::new(options)
        .service(PROG, 1, service)
        .serve(&["127.0.0.1:0".parse().unwrap()])
        .unwrap();
    let addr = Endpoint::from(running.local_addrs()[0]);
    (running, addr)
}

/// A port free on `host` now (the kernel's pick for a listener that is
/// closed at once): nothing listens on it.
pub fn free_port(host: &str) -> u16 {
    std::net::TcpListener::bind((host, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `done()` holds, polling it every 10 ms; panics naming `what`
/// once [`GENEROUS`] has passed on the wall clock.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < GENEROUS, "gave up waiting: {what}");
        sleep(ms(10)).await;
    }
}

/// `message`, record-marked as one fragment.
pub fn framed(message: &Message) -> Bytes {
    let mut body = BytesMut::new();
    message.encode(&mut body);
    let mut out = BytesMut::new();
    RecordEncoder::default().encode(&body, &mut out);
    out.freeze()
}

/// Sends a NULL call of [`PROG`] version 1 on a raw stream; true when it is
/// answered, false when the stream ends or fails first (the server closed
/// or reset the connection, or a TLS stream never got through its
/// handshake). Panics when neither comes within [`GENEROUS`].
pub async fn null_answered<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> bool {
    let call = framed(&Message::call(7, CallHeader::new(PROG, 1, 0), Bytes::new()));
    // A TLS stream holds written bytes until it is flushed.
    if stream.write_all(&call).await.is_err() || stream.flush().await.is_err() {
        return false;
    }
    let mut records = RecordDecoder::new(RecordLimits::default());
    let mut buf = BytesMut::new();
    let read = async {
        loop {
            if let Ok(Some(_)) = records.decode(&mut buf) {
                return true;
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(GENEROUS, read)
        .await
        .expect("neither an answer nor a close")
}

/// The node ID `s`.
pub fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

/// The IP address `s`.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The allowed address (an address or a network) `s`.
pub fn allowed(s: &str) -> AllowedAddress {
    s.parse().unwrap()
}

/// The newest of `server`'s verdicts that `wanted`, once there is one;
/// panics with them all after [`GENEROUS`].
pub async fn verdict_where(server: &RunningServer, wanted: impl Fn(&Verdict) -> bool) -> Verdict {
    let start = Instant::now();
    loop {
        if let Some(v) = server.verdicts().into_iter().find(&wanted) {
            return v;
        }
        assert!(
            start.elapsed() < GENEROUS,
            "no such verdict: {:#?}",
            server.verdicts()
        );
        sleep(ms(10)).await;
    }
}

/// The TLS error inside a client's connect or call error.
#[cfg(feature = "tls")]
pub fn tls_error(error: &peerwire::Error) -> peerwire::tls::TlsError {
    match error {
        peerwire::Error::Unreachable { error, .. } => tls_error(error),
        peerwire::Error::Tls { error, .. } => (**error).clone(),
        other => panic!("not a TLS error: {other}"),
    }
}
