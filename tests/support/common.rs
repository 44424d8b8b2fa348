//! Helpers of the loopback test binaries: one program number, an echo
//! service and a server of it on 127.0.0.1, client options without pings,
//! call options with a deadline, and free ports.
//!
//! Each module of tests/support stands alone (netns.rs reports through
//! harness.rs), and a binary names the ones it uses:
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

use std::time::Duration;

use bytes::Bytes;
use peerwire::proto::AuthStat;
use peerwire::{
    CallContext, CallOptions, ClientOptions, Endpoint, ProcError, RunningServer, Server,
    ServerOptions, Service,
};
use tokio::time::sleep;

/// The program the tests serve (from the range RFC 5531 leaves to users).
pub const PROG: u32 = 0x2000_0001;

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
