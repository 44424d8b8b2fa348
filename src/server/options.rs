//! The server's limits, timeouts and policies, set when it starts.

use std::time::Duration;

#[cfg(doc)]
use super::VerdictReason;
use crate::limits::Limits;
use crate::listen::ListenOptions;
use crate::peer::{Admission, ServerIdentity, UnixAdmission};
use crate::sock::Keepalive;

/// Server limits and timeouts.
///
/// ```
/// use std::time::Duration;
/// use peerwire::{Server, ServerOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peerwire::Error> {
/// let options = ServerOptions {
///     max_connections: 256,
///     idle_timeout: Duration::from_secs(60),
///     shutdown_grace: Duration::from_secs(2),
///     ..ServerOptions::default()
/// };
/// let server = Server::new(options).serve(&["127.0.0.1:0".parse()?])?;
/// assert_eq!(server.stats().accepted, 0);
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Connections served at once; accepting pauses at the limit. Default 1024.
    pub max_connections: usize,
    /// Calls in progress per connection; reading pauses at the limit. Default 64.
    pub max_in_progress: usize,
    /// A connection with no calls in progress that completes no record for
    /// this long is closed, so a record trickled in a byte at a time cannot
    /// hold a connection open. Default 5 min.
    pub idle_timeout: Duration,
    /// A write that cannot finish in this time (the peer stopped reading)
    /// closes the connection. Default 30 s.
    pub write_timeout: Duration,
    /// How long calls in progress may run after shutdown starts. Default 10 s.
    pub shutdown_grace: Duration,
    /// TCP keepalive on accepted connections, or `None` for off. It finds a
    /// peer that vanished without a word (power lost, cable pulled, a
    /// partition) while its connection is idle, and closes the connection
    /// long before the [`ServerOptions::idle_timeout`]. Set right after
    /// accept; a failure to set it is a logged warning. Default: as
    /// [`ConnectOptions::keepalive`](crate::ConnectOptions::keepalive),
    /// 20 s idle, 2 s between probes, 9 probes.
    pub keepalive: Option<Keepalive>,
    /// `TCP_USER_TIMEOUT` on accepted connections, or `None` for the
    /// kernel's default: how long sent data (or keepalive probes) may go
    /// unacknowledged before the connection is closed. Set right after
    /// accept; a failure to set it is a logged warning. Default: as
    /// [`ConnectOptions::user_timeout`](crate::ConnectOptions::user_timeout),
    /// 42 s.
    pub user_timeout: Option<Duration>,
    /// The largest arguments accepted in a call. Default 16 MiB.
    pub limits: Limits,
    /// With an identity: the longest record, in bytes (RPC header and
    /// arguments; record marking not counted), that a TCP connection may
    /// send before its HELLO succeeds. A peer that has not identified
    /// itself may send only what a HELLO can need; a fragment header or a
    /// record over this closes the connection with a verdict
    /// ([`VerdictReason::OverLimitBeforeHello`]), so an unauthenticated
    /// connection costs the server a few KiB whatever it claims. From
    /// [`ServerOptions::MIN_RECORD_BEFORE_HELLO`] to 1 GiB; capped at the
    /// record limit of [`ServerOptions::limits`]. Without an identity, and
    /// on Unix sockets, it does not apply. Default 4 KiB.
    pub max_record_before_hello: usize,
    /// Options for the listening sockets. `dual_stack` applies to the
    /// `[::]` addresses among them only.
    pub listen: ListenOptions,
    /// Address admission, applied before a byte is read. Default: admit all.
    pub admission: Admission,
    /// Who this server is and whom it accepts. With an identity, every
    /// TCP connection must complete a HELLO before any other call. The
    /// HELLO gate does not apply on Unix sockets, where the peer is known
    /// by its credentials (see [`ServerOptions::unix_admission`]) and the
    /// peer table's addresses mean nothing. Default: none.
    pub identity: Option<ServerIdentity>,
    /// Admission by credentials for connections on Unix sockets, applied
    /// before a byte is read (the address admission applies to TCP only).
    /// Default: admit every process the socket file's mode
    /// ([`ListenOptions::unix_mode`]) lets connect.
    pub unix_admission: UnixAdmission,
    /// A connection that has not completed its HELLO in this time is
    /// closed. Default 10 s. With TLS, the TLS handshake (and the STARTTLS
    /// probe) must finish within it too.
    pub handshake_timeout: Duration,
    /// Mutual TLS: with it, every connection runs TLS (from the first
    /// byte, or after the RFC 9289 probe) after admission and before any
    /// RPC byte; the client's certificate must chain to the roots and name
    /// the observed source IP, and with an identity the HELLO's node ID
    /// must be its CN. Plain RPC is refused. TLS applies to TCP listeners;
    /// a Unix socket's peer is judged by its credentials. Default: none.
    /// (The field is there without the `tls` feature too, always `None`.)
    pub tls: Option<crate::tls::ServerTls>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            max_connections: 1024,
            max_in_progress: 64,
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            keepalive: Some(Keepalive {
                time: Duration::from_secs(20),
                interval: Duration::from_secs(2),
                count: 9,
            }),
            user_timeout: Some(Duration::from_secs(42)),
            limits: Limits::default(),
            max_record_before_hello: 4096,
            listen: ListenOptions::default(),
            admission: Admission::default(),
            identity: None,
            unix_admission: UnixAdmission::default(),
            handshake_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

impl ServerOptions {
    /// The smallest [`ServerOptions::max_record_before_hello`]: the
    /// longest HELLO call (1432 bytes: an RPC header with a credential and
    /// a verifier of 400 bytes each, a node ID and a cluster ID of 255
    /// bytes, 16 versions).
    pub const MIN_RECORD_BEFORE_HELLO: usize =
        Limits::HEADER_ALLOWANCE + crate::peer::hello::MAX_HELLO_ARGS;

    /// The record limits of a connection before its HELLO succeeds.
    pub(super) fn record_limits_before_hello(&self) -> crate::proto::RecordLimits {
        let max = self.max_record_before_hello;
        crate::proto::RecordLimits::new(
            u32::try_from(max).unwrap_or(crate::proto::MAX_FRAGMENT_LEN),
            max,
            self.limits.max_fragments(),
        )
        .expect("checked when the server started")
    }
}
