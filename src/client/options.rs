//! A client's settings: how it connects, its identity, its limits and
//! timeouts, and per-call settings.

use std::time::Duration;

#[cfg(doc)]
use super::Client;
use super::DEFAULT_PING_PROGRAM;
use crate::connect::ConnectOptions;
#[cfg(doc)]
use crate::error::Error;
use crate::limits::Limits;
use crate::peer::hello::NodeId;
use crate::proto::OpaqueAuth;

/// What to do when the server observed another source than we bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MismatchPolicy {
    /// Fail the connection with [`Error::ObservedMismatch`].
    #[default]
    Fail,
    /// Log a warning and go on (behind NAT, say).
    Warn,
}

/// A client's side of identity: who it is, and whom it means to reach.
/// With it, every connection starts with a HELLO (see [`crate::peer`]).
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    /// Our node ID.
    pub node: NodeId,
    /// Our cluster, if the servers require one.
    pub cluster: Option<String>,
    /// The node we mean to reach: any other answering is an error.
    pub expect: NodeId,
    /// What to do when the server saw another source than we bound.
    /// Default: fail.
    pub observed_mismatch: MismatchPolicy,
    /// How long the HELLO may take. Default 10 s.
    pub timeout: Duration,
}

impl ClientIdentity {
    /// We are `node`, and mean to reach `expect`.
    pub fn new(node: NodeId, expect: NodeId) -> ClientIdentity {
        ClientIdentity {
            node,
            cluster: None,
            expect,
            observed_mismatch: MismatchPolicy::Fail,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Client settings. The defaults are listed on each field.
///
/// ```
/// use std::time::Duration;
/// use peerwire::{Client, ClientOptions, ConnectionState, Endpoint, ScopedIp};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peerwire::Error> {
/// let options = ClientOptions {
///     deadline: Duration::from_secs(5),
///     max_in_flight: 16,
///     breaker_threshold: 3,
///     ..ClientOptions::default()
/// }
/// .with_source("127.0.0.2".parse::<ScopedIp>()?);
/// // Connects on the first call (or on `connect()`), from 127.0.0.2.
/// let client = Client::new(vec!["127.0.0.1:24007".parse::<Endpoint>()?], options)?;
/// assert_eq!(client.state(), ConnectionState::Idle);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// How to connect: sources, ports, timeouts. Default: [`ConnectOptions::default`].
    pub connect: ConnectOptions,
    /// A call's deadline unless it sets its own. Default 60 s.
    pub deadline: Duration,
    /// Slots for calls in flight on the connection; further callers wait
    /// (within their deadlines). A call holds its slot until its XID is
    /// free: a call that timed out, or whose caller went away, keeps its
    /// slot until its late reply comes or the connection closes. Default 64.
    pub max_in_flight: usize,
    /// Silence, with calls outstanding, before a ping. Default 10 s.
    pub ping_interval: Duration,
    /// Silence after which the connection is declared dead. Default 42 s.
    pub ping_timeout: Duration,
    /// The (program, version) whose NULL procedure is the ping.
    pub ping_program: (u32, u32),
    /// First reconnect delay. Default 200 ms.
    pub backoff_base: Duration,
    /// Largest reconnect delay. Default 15 s.
    pub backoff_max: Duration,
    /// Jitter on each delay, as a fraction (0.2 = ±20 %).
    pub backoff_jitter: f64,
    /// The first connection attempt waits a random delay up to this long,
    /// so that many clients made at once (a node starting with its list of
    /// peers) do not all dial in the same instant. An explicit
    /// [`Client::connect`] or a call waits for it too. Default: zero (the
    /// first attempt starts at once).
    ///
    /// After an established connection is lost, the next attempt always
    /// waits a random part of [`ClientOptions::backoff_base`] (up to 200 ms
    /// by default), for the same reason: every client of a peer that went
    /// away loses its connection at once.
    pub first_connect_spread: Duration,
    /// Consecutive connect failures that open the circuit breaker. Default 5.
    pub breaker_threshold: u32,
    /// The largest results accepted in a reply. Default 16 MiB.
    pub limits: Limits,
    /// Identity: when set, every connection and reconnection starts with a
    /// HELLO, and the server's node ID and the address it observed are
    /// checked. Default: none.
    pub identity: Option<ClientIdentity>,
    /// Mutual TLS: when set, every connection and reconnection runs TLS
    /// (from the first byte, or after the RFC 9289 probe; a server that
    /// does not answer the probe with STARTTLS fails the connect with
    /// [`crate::tls::TlsError::StartTlsRefused`], and nothing goes in
    /// plain text), the server's certificate is checked, and with an
    /// identity the HELLO answer's node ID must be its CN. Failures are
    /// [`Error::Tls`], counted as connect failures. Default: none. (The
    /// field is there without the `tls` feature too, always `None`.)
    pub tls: Option<crate::tls::ClientTls>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect: ConnectOptions::default(),
            deadline: Duration::from_secs(60),
            max_in_flight: 64,
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(42),
            ping_program: DEFAULT_PING_PROGRAM,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(15),
            backoff_jitter: 0.2,
            first_connect_spread: Duration::ZERO,
            breaker_threshold: 5,
            limits: Limits::default(),
            identity: None,
            tls: None,
        }
    }
}

impl ClientOptions {
    /// These options with `source` as the address every connection of its
    /// family is bound to (see [`Sources::with`](crate::Sources::with));
    /// one IPv4 and one IPv6 source may be set.
    ///
    /// ```
    /// use peerwire::ClientOptions;
    ///
    /// let options = ClientOptions::default()
    ///     .with_source("127.0.0.2".parse::<std::net::IpAddr>()?)
    ///     .with_source("::1".parse::<std::net::IpAddr>()?);
    /// let v4 = options.connect.sources.for_family(peerwire::Family::V4);
    /// assert_eq!(v4.unwrap().to_string(), "127.0.0.2");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_source(mut self, source: impl Into<crate::ScopedIp>) -> ClientOptions {
        self.connect.sources = self.connect.sources.with(source);
        self
    }
}

/// Per-call settings.
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    /// The deadline, instead of [`ClientOptions::deadline`].
    pub deadline: Option<Duration>,
    /// The credential. Default AUTH_NONE.
    pub cred: OpaqueAuth,
    /// The verifier. Default AUTH_NONE.
    pub verf: OpaqueAuth,
}
