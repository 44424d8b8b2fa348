//! The RPC server: listeners, one task per connection, handlers.
//!
//! A connection's one task reads records while fewer than
//! [`ServerOptions::max_in_progress`] calls are in progress and its replies
//! are not piling up unwritten; otherwise it stops reading, so TCP pushes
//! back on the peer. Its timers (HELLO, idle, write stall, shutdown grace)
//! run in the same poll, whatever the peer does. A handler whose future is
//! ready at its first poll is answered inline, without a task; one that is
//! not is spawned, so calls on one connection run concurrently and may
//! finish in any order. A panicking handler (one whose future panics when
//! polled, or when dropped) is answered with SYSTEM_ERR, its slot is
//! freed, and the connection and its other calls live on. Replies are
//! encoded into one outbox and written in batches of whole records.
//!
//! A connection's task is fair to the others on its runtime: each record it
//! takes (like each read and write) costs a unit of tokio's cooperative
//! budget ([`tokio::task::coop`], 128 units a poll), and once the budget is
//! spent it yields, the records left waiting in its buffer in order. So one
//! connection answers at most 128 calls (inline answers included) per poll,
//! however fast its peer pipelines them, and a peer flooding NULL calls
//! delays the others by no more than one such poll at a time. What the
//! budget cannot bound is a handler that blocks its thread: see [`Service`].
//!
//! Shutdown order: stop accepting; stop reading new calls; let calls in
//! progress finish within the grace period; close.

mod accept;
mod connection;
mod handler;
mod program;
mod unix;
mod verdicts;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::warn;

use self::program::Handler;
pub use self::program::{Call, Program};
use crate::addr::Endpoint;
pub use crate::conn::ProcError;
use crate::conn::Registry;
use crate::error::Error;
use crate::limits::Limits;
use crate::listen::{ListenOptions, listen};
use crate::peer::{Admission, NodeId, PeerCredentials, ServerIdentity, UnixAdmission};
use crate::proto::OpaqueAuth;
use crate::sock::Keepalive;

/// What a handler learns about its call.
///
/// On a Unix socket, `observed` and `local` are the unspecified address
/// `0.0.0.0:0` (a Unix peer has no address) and `credentials` says who the
/// peer is.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// The peer's address as this server observed it (`0.0.0.0:0` on a
    /// Unix socket).
    pub observed: SocketAddr,
    /// The local address the call arrived on (`0.0.0.0:0` on a Unix
    /// socket).
    pub local: SocketAddr,
    /// The call's XID.
    pub xid: u32,
    /// The program.
    pub program: u32,
    /// The version.
    pub version: u32,
    /// The caller's credential.
    pub cred: OpaqueAuth,
    /// The peer's node ID, when the server has an identity and the peer's
    /// HELLO succeeded (always, for calls that reach a handler then, except
    /// on Unix sockets, which have no HELLO).
    pub peer: Option<NodeId>,
    /// On a Unix socket: the connecting process's credentials
    /// (`SO_PEERCRED`). `None` on TCP.
    pub credentials: Option<PeerCredentials>,
    /// Over TLS: the peer's certificate (already checked against the
    /// observed address and, with an identity, the node ID).
    pub tls: Option<Arc<crate::tls::TlsPeer>>,
}

/// The future a [`Service`] returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Bytes, ProcError>> + Send>>;

/// A program version's procedures. NULL (procedure 0) is answered by the
/// server and never reaches the service.
///
/// Closures `Fn(CallContext, u32, Bytes) -> impl Future<Output =
/// Result<Bytes, ProcError>>` are services.
///
/// # Blocking
///
/// Handlers run on the server's runtime: a handler's future is polled
/// first on its connection's task (and answered inline if it is ready at
/// once), then, if it is not, as a task of its own. A handler that blocks
/// its thread (`std::thread::sleep`, blocking file or socket I/O, a long
/// computation, a `std::sync::Mutex` held while waiting) stalls that
/// runtime worker, and every connection and timer it runs, for as long as
/// it blocks: on a current-thread runtime, the whole server. Await tokio's
/// async equivalents (`tokio::time::sleep`, `tokio::fs`), or move the
/// blocking work to tokio's blocking pool with
/// [`tokio::task::spawn_blocking`] and await its handle:
///
/// ```
/// use bytes::Bytes;
/// use peerwire::{ProcError, Server, ServerOptions};
///
/// # fn checksum(data: &[u8]) -> Bytes { Bytes::copy_from_slice(&data[..data.len().min(4)]) }
/// let server = Server::new(ServerOptions::default()).service(
///     0x2000_0001,
///     1,
///     |_ctx, _procedure, args: Bytes| async move {
///         // Slow and blocking: off the runtime's workers.
///         tokio::task::spawn_blocking(move || checksum(&args))
///             .await
///             .map_err(|_| ProcError::SystemErr)
///     },
/// );
/// ```
pub trait Service: Send + Sync + 'static {
    /// Runs `procedure` with its undecoded `args`; returns the undecoded
    /// results. Return [`ProcError::ProcUnavail`] for an unknown procedure,
    /// and [`ProcError::AuthError`] to refuse the call's credentials.
    fn call(&self, ctx: CallContext, procedure: u32, args: Bytes) -> HandlerFuture;
}

impl<F, Fut> Service for F
where
    F: Fn(CallContext, u32, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes, ProcError>> + Send + 'static,
{
    fn call(&self, ctx: CallContext, procedure: u32, args: Bytes) -> HandlerFuture {
        Box::pin(self(ctx, procedure, args))
    }
}

/// Server limits and timeouts.
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
    #[cfg(feature = "tls")]
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
            #[cfg(feature = "tls")]
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
        Limits::HEADER_ALLOWANCE + crate::programs::hello::MAX_HELLO_ARGS;

    /// The record limits of a connection before its HELLO succeeds.
    fn record_limits_before_hello(&self) -> crate::proto::RecordLimits {
        let max = self.max_record_before_hello;
        crate::proto::RecordLimits::new(
            u32::try_from(max).unwrap_or(crate::proto::MAX_FRAGMENT_LEN),
            max,
            self.limits.max_fragments(),
        )
        .expect("checked when the server started")
    }
}

/// Counters of a running server.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    closed: AtomicU64,
    calls: AtomicU64,
    panics: AtomicU64,
    dropped: AtomicU64,
    refused: AtomicU64,
    rejected: AtomicU64,
    bad_framing: AtomicU64,
    closed_before_hello: AtomicU64,
    handshake_timeouts: AtomicU64,
}

/// A snapshot of a server's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed.
    pub closed: u64,
    /// Calls dispatched to handlers.
    pub calls: u64,
    /// Handlers that panicked, when called, polled or dropped (answered
    /// with SYSTEM_ERR).
    pub panics: u64,
    /// Records dropped without an answer.
    pub dropped: u64,
    /// Connections refused by admission, closed unread.
    pub refused: u64,
    /// Connections closed for failing the handshake: a refused HELLO, a
    /// call before HELLO, or a second HELLO with another node ID.
    pub rejected: u64,
    /// Connections closed because their record marking broke: a record
    /// over a limit (the pre-HELLO one included), or a stream that ended
    /// inside a record. Counted (and logged at warn) on every connection,
    /// with or without an identity.
    pub bad_framing: u64,
    /// Connections (with an identity) the peer closed before a successful
    /// HELLO.
    pub closed_before_hello: u64,
    /// Connections closed at the handshake timeout.
    pub handshake_timeouts: u64,
}

/// How many inbound verdicts [`RunningServer::verdicts`] keeps.
pub const VERDICTS_KEPT: usize = 64;

/// How many of the [`VERDICTS_KEPT`] one source may hold: one IP address
/// (on a Unix socket, one user and group). Past it, the source's own
/// oldest entry makes room, so one address cannot push the others out.
pub const VERDICTS_PER_SOURCE: usize = 8;

/// Why an inbound connection was turned away before a successful HELLO.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerdictReason {
    /// Refused by the admission lists, closed before a byte was read.
    NotAdmitted,
    /// The record marking broke before a successful HELLO (a stream that
    /// ended inside a record, or a record over the connection's own
    /// limits).
    BadFraming(crate::proto::DecodeError),
    /// Before a successful HELLO, a fragment header or a record exceeded
    /// the pre-HELLO limit ([`ServerOptions::max_record_before_hello`]):
    /// closed. Counted with [`ServerStats::bad_framing`].
    OverLimitBeforeHello(crate::proto::DecodeError),
    /// The peer closed the connection before a successful HELLO.
    ClosedBeforeHello,
    /// No successful HELLO within the handshake timeout.
    HandshakeTimeout,
    /// The HELLO was refused.
    Refused(crate::peer::Refusal),
    /// A call other than NULL or HELLO came before HELLO.
    CallBeforeHello,
    /// A second HELLO claimed another node ID.
    SecondHello,
    /// Admitted and identified, but the admission lists or the peer table
    /// changed ([`RunningServer::update`]) and no longer allow it: closed.
    NoLongerAllowed(Option<crate::peer::Refusal>),
    /// Over TLS, established, but the TLS material changed
    /// ([`RunningServer::update_tls`]) and its revocation lists revoke the
    /// certificate the peer presented
    /// ([`CertError::Revoked`](crate::tls::CertError::Revoked), naming its
    /// serial and CN): closed. [`Verdict::tls`] holds the certificate's
    /// facts.
    NoLongerTrusted(crate::tls::CertError),
    /// On a Unix socket: the peer's credentials are not admitted by
    /// [`ServerOptions::unix_admission`]; closed before a byte was read.
    /// The verdict's `credentials` has the pid too.
    CredentialsNotAdmitted {
        /// The peer's user ID.
        uid: u32,
        /// The peer's group ID.
        gid: u32,
    },
    /// Over TLS, a certificate rule failed: the chain, the observed
    /// address against the IP SANs, or (with an identity) the claimed
    /// node ID against the CN. [`Verdict::tls`] holds the certificate's
    /// facts when it was read.
    Certificate(crate::tls::CertError),
    /// The TLS handshake failed otherwise (or did not finish).
    TlsHandshake(String),
    /// TLS is required, and the peer spoke plain RPC (or, to a STARTTLS
    /// server, anything but the `AUTH_TLS` probe): closed.
    PlainTextRefused,
}

impl std::fmt::Display for VerdictReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerdictReason::NotAdmitted => f.write_str("address not admitted"),
            VerdictReason::BadFraming(error) => write!(f, "bad framing before HELLO: {error}"),
            VerdictReason::OverLimitBeforeHello(error) => write!(
                f,
                "over the record limit before HELLO (ServerOptions::max_record_before_hello): {error}"
            ),
            VerdictReason::ClosedBeforeHello => f.write_str("closed before HELLO"),
            VerdictReason::HandshakeTimeout => f.write_str("no HELLO within the handshake timeout"),
            VerdictReason::Refused(refusal) => write!(f, "{refusal}"),
            VerdictReason::CallBeforeHello => f.write_str("a call before HELLO"),
            VerdictReason::SecondHello => f.write_str("a second HELLO with another node ID"),
            VerdictReason::NoLongerAllowed(None) => {
                f.write_str("no longer admitted after a policy change; closed")
            }
            VerdictReason::Certificate(error) => write!(f, "certificate refused: {error}"),
            VerdictReason::NoLongerTrusted(error) => {
                write!(f, "no longer trusted after a TLS update ({error}); closed")
            }
            VerdictReason::TlsHandshake(error) => write!(f, "TLS handshake failed: {error}"),
            VerdictReason::PlainTextRefused => {
                f.write_str("plain-text RPC refused: this server requires TLS")
            }
            VerdictReason::NoLongerAllowed(Some(refusal)) => {
                write!(
                    f,
                    "no longer allowed after a policy change ({refusal}); closed"
                )
            }
            VerdictReason::CredentialsNotAdmitted { uid, gid } => {
                write!(f, "credentials uid {uid} gid {gid} not admitted")
            }
        }
    }
}

/// What the server decided about inbound connections from one address.
///
/// Repeated verdicts from one IP address, for one node ID and one reason,
/// are one entry with a count and the first and last time, so that an
/// impostor retrying every 200 ms cannot push every other entry out of the
/// [`VERDICTS_KEPT`] kept. An address that claims a new node ID each time
/// makes a new entry each time, but holds at most [`VERDICTS_PER_SOURCE`]
/// entries: its new ones push out its own oldest; and when the list is
/// full, the address with the most entries gives up its oldest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The peer's address as observed (the latest connection's), in
    /// canonical form: an IPv4 caller on a dual-stack listener as IPv4.
    /// `0.0.0.0:0` for a connection on a Unix socket.
    pub observed: SocketAddr,
    /// The node ID it claimed, if it sent a valid HELLO.
    pub peer: Option<NodeId>,
    /// Accepted (admitted, and identified where the server has an identity).
    pub accepted: bool,
    /// Why it was turned away.
    pub reason: Option<VerdictReason>,
    /// How many connections this entry stands for.
    pub count: u64,
    /// When the first of them was decided.
    pub first: std::time::SystemTime,
    /// When the latest was.
    pub at: std::time::SystemTime,
    /// On a Unix socket: the peer's credentials (the latest connection's
    /// pid; entries coalesce by user and group). `None` on TCP.
    pub credentials: Option<PeerCredentials>,
    /// Over TLS: the peer's certificate (its CN and SANs) and the TLS
    /// version, when the handshake got that far.
    pub tls: Option<Arc<crate::tls::TlsPeer>>,
}

/// One open connection, as [`RunningServer::connections`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// A process-unique id for logs.
    pub id: u64,
    /// The peer's node ID, once its HELLO succeeded.
    pub peer: Option<NodeId>,
    /// The peer's address as observed (`0.0.0.0:0` on a Unix socket).
    pub observed: SocketAddr,
    /// The local address (`0.0.0.0:0` on a Unix socket).
    pub local: SocketAddr,
    /// On a Unix socket: the peer's credentials. `None` on TCP.
    pub credentials: Option<PeerCredentials>,
    /// Over TLS: the peer's certificate and the TLS version.
    pub tls: Option<Arc<crate::tls::TlsPeer>>,
}

/// Registers services, then [`Server::serve`]s them.
pub struct Server {
    registry: Registry,
    services: HashMap<(u32, u32), Handler>,
    options: ServerOptions,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("registry", &self.registry)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Who may connect and as whom: what [`RunningServer::update`] (and
/// [`RunningServer::update_tls`]) replace.
#[derive(Debug)]
struct Policy {
    admission: Admission,
    identity: Option<Arc<ServerIdentity>>,
    unix_admission: UnixAdmission,
    /// What every connection's rustls configuration shares, built from
    /// [`ServerOptions::tls`] or the latest [`RunningServer::update_tls`].
    #[cfg(feature = "tls")]
    tls: Option<Arc<crate::tls::ServerShared>>,
}

struct Shared {
    registry: Registry,
    /// Few enough to search in order, faster per call than a map.
    services: Vec<((u32, u32), Handler)>,
    options: ServerOptions,
    /// The admission lists and identity now; connections watch it.
    policy: watch::Sender<Arc<Policy>>,
    counters: Counters,
    connections: std::sync::Mutex<HashMap<u64, ConnectionInfo>>,
    verdicts: std::sync::Mutex<std::collections::VecDeque<Verdict>>,
    /// Connection ids: a random start, then a counter, so ids from two
    /// servers (or two runs) are not easily confused in logs.
    next_id: AtomicU64,
    /// Connections run TLS before any RPC (fixed for the server's life;
    /// the material itself is in the policy).
    tls_on: bool,
}

impl Shared {
    /// True when connections run TLS before any RPC.
    fn tls_on(&self) -> bool {
        self.tls_on
    }
}

/// A server that is running.
///
/// Dropping it does **not** stop the server: its tasks run on until
/// [`RunningServer::shutdown`] or a [`Stopper`] stops them, or the runtime
/// ends. [`RunningServer::wait`] waits for the server to stop.
#[derive(Debug)]
pub struct RunningServer {
    local_addrs: Vec<SocketAddr>,
    /// Closes one listener (not its connections), by its address.
    closers: Vec<(SocketAddr, watch::Sender<bool>)>,
    shutdown: Arc<watch::Sender<bool>>,
    shared: Arc<SharedHandle>,
    /// The connection limit, shared by every listener.
    slots: Arc<Semaphore>,
    /// The accept loops. Held as plain handles: dropping one detaches the
    /// task, so dropping the RunningServer leaves the server running.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Closes one Unix listener (not its connections), by its path.
    unix_closers: Vec<(std::path::PathBuf, watch::Sender<bool>)>,
}

/// Starts a running server's graceful shutdown from anywhere (a signal
/// handler, say) while another task waits on [`RunningServer::wait`].
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Stopper {
    shutdown: Arc<watch::Sender<bool>>,
}

impl Stopper {
    /// Starts the graceful shutdown (see [`RunningServer::shutdown`]);
    /// returns at once. Stopping twice is harmless.
    pub fn stop(&self) {
        self.shutdown.send_replace(true);
    }
}

/// The part of [`Shared`] the handle reads.
struct SharedHandle(Arc<Shared>);

impl std::fmt::Debug for SharedHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedHandle")
    }
}

impl Default for Server {
    fn default() -> Server {
        Server::new(ServerOptions::default())
    }
}

impl Server {
    /// A server with these options and no services.
    pub fn new(options: ServerOptions) -> Server {
        Server {
            registry: Registry::new(),
            services: HashMap::new(),
            options,
        }
    }

    /// Serves `service` as `program` version `version`.
    pub fn service(self, program: u32, version: u32, service: impl Service) -> Server {
        self.handler(program, version, Handler::Service(Arc::new(service)))
    }

    fn handler(mut self, program: u32, version: u32, handler: Handler) -> Server {
        self.registry.add(program, version);
        self.services.insert((program, version), handler);
        self
    }

    /// Serves a typed [`Program`] as its program number and version
    /// ([`Program::PROGRAM`], [`Program::VERSION`]): decode failures of
    /// its arguments answer GARBAGE_ARGS, unknown procedures PROC_UNAVAIL.
    /// Registering the same program and version again replaces it.
    pub fn program<P: Program>(self, program: P) -> Server {
        self.handler(P::PROGRAM, P::VERSION, Handler::program(program))
    }

    /// Listens on each address and serves. Must be called inside a tokio
    /// runtime. Port 0 picks a free port; see [`RunningServer::local_addrs`].
    pub fn serve(self, addresses: &[Endpoint]) -> Result<RunningServer, Error> {
        let before_hello = self.options.max_record_before_hello;
        if !(ServerOptions::MIN_RECORD_BEFORE_HELLO..=crate::proto::MAX_RECORD_CEILING)
            .contains(&before_hello)
        {
            return Err(Error::Config(format!(
                "ServerOptions::max_record_before_hello is {before_hello} bytes: it must be from {} (the longest HELLO) to 1 GiB",
                ServerOptions::MIN_RECORD_BEFORE_HELLO
            )));
        }
        if let Err(net) = self.options.admission.check() {
            return Err(Error::Config(format!(
                "admission network {net} is IPv4-mapped but shorter than /96: it has no IPv4 form"
            )));
        }
        #[cfg(feature = "tls")]
        let tls = match &self.options.tls {
            Some(tls) => Some(Arc::new(
                crate::tls::server_config(tls)
                    .map_err(|error| Error::Config(format!("server TLS: {error}")))?,
            )),
            None => None,
        };
        #[cfg(feature = "tls")]
        let tls_on = tls.is_some();
        #[cfg(not(feature = "tls"))]
        let tls_on = false;
        let listeners = bind_all(addresses, &self.options.listen)?;
        let identity = self.options.identity.clone().map(resolve_identity);
        let policy = Policy {
            admission: self.options.admission.clone(),
            identity,
            unix_admission: self.options.unix_admission.clone(),
            #[cfg(feature = "tls")]
            tls,
        };
        let shared = Arc::new(Shared {
            registry: self.registry,
            services: self.services.into_iter().collect(),
            counters: Counters::default(),
            options: self.options,
            policy: watch::Sender::new(Arc::new(policy)),
            connections: std::sync::Mutex::new(HashMap::new()),
            verdicts: std::sync::Mutex::new(std::collections::VecDeque::new()),
            next_id: AtomicU64::new(rand::random::<u64>() >> 16),
            tls_on,
        });
        let (shutdown, _) = watch::channel(false);
        let mut running = RunningServer {
            local_addrs: Vec::new(),
            closers: Vec::new(),
            shutdown: Arc::new(shutdown),
            slots: Arc::new(Semaphore::new(shared.options.max_connections)),
            shared: Arc::new(SharedHandle(shared)),
            tasks: Vec::new(),
            unix_closers: Vec::new(),
        };
        running.spawn_accept_loops(listeners);
        Ok(running)
    }
}

/// Binds every address. `dual_stack` is for `[::]` listeners; the others
/// take the rest of the options as they are.
fn bind_all(
    addresses: &[Endpoint],
    options: &ListenOptions,
) -> Result<Vec<(TcpListener, SocketAddr)>, Error> {
    let mut listeners = Vec::new();
    for address in addresses {
        let unspecified_v6 = address.ip() == std::net::IpAddr::from([0u16; 8]);
        let options = ListenOptions {
            dual_stack: options.dual_stack && unspecified_v6,
            ..options.clone()
        };
        let listener = listen(address, &options)?;
        let local = listener.local_addr().map_err(|error| Error::Listen {
            address: address.clone(),
            error: Arc::new(error),
        })?;
        listeners.push((listener, local));
    }
    Ok(listeners)
}

/// Resolves the interface names of a peer table's scoped entries.
fn resolve_identity(mut identity: ServerIdentity) -> Arc<ServerIdentity> {
    let missing = identity
        .peers
        .resolve_scopes(|name| crate::sock::interface_index(name).ok());
    for name in missing {
        warn!(interface = %name, "peer table names an interface this host lacks; its entries match nothing");
    }
    Arc::new(identity)
}

impl RunningServer {
    fn spawn_accept_loops(&mut self, listeners: Vec<(TcpListener, SocketAddr)>) {
        let shared = &self.shared.0;
        for (listener, local) in listeners {
            let (close, closed) = watch::channel(false);
            self.tasks.push(tokio::spawn(accept::accept_loop(
                listener,
                shared.clone(),
                self.slots.clone(),
                self.shutdown.subscribe(),
                closed,
            )));
            self.local_addrs.push(local);
            self.closers.push((local, close));
        }
    }

    /// Listens on more addresses, serving them like the others. Returns
    /// the addresses bound (with the ports chosen). Nothing is bound when
    /// one of them fails.
    pub fn listen_also(&mut self, addresses: &[Endpoint]) -> Result<Vec<SocketAddr>, Error> {
        let listeners = bind_all(addresses, &self.shared.0.options.listen)?;
        let bound = listeners.iter().map(|(_, local)| *local).collect();
        self.spawn_accept_loops(listeners);
        Ok(bound)
    }

    /// Stops listening on `address` (one of [`RunningServer::local_addrs`]).
    /// The connections it accepted go on. False when no listener has that
    /// address.
    pub fn stop_listening(&mut self, address: SocketAddr) -> bool {
        let Some(at) = self.closers.iter().position(|(a, _)| *a == address) else {
            return false;
        };
        let (_, close) = self.closers.remove(at);
        close.send_replace(true);
        self.local_addrs.retain(|a| *a != address);
        true
    }

    /// Replaces the admission lists and the identity (the peer table) while
    /// the server runs. New connections meet the new ones at once. Open
    /// connections are judged again: one from an address no longer
    /// admitted, or whose node ID is no longer allowed from its address, is
    /// closed, with a verdict ([`VerdictReason::NoLongerAllowed`]); the
    /// others go on untouched.
    ///
    /// Exact once it returns: no connection answers a call it reads after
    /// that unless the new lists allow it. This holds for every connection,
    /// whatever it was doing: one accepted (and judged by the old lists) a
    /// moment before, one still in its TLS handshake, one whose HELLO is on
    /// the wire. Each connection remembers which lists it was judged by
    /// and, before it decides about anything it has read, judges itself
    /// again if they have changed since; an idle connection is judged (and
    /// closed) as soon as its task runs. `update` itself does not wait for
    /// connections: a reply to a call read before it returned may still go
    /// out. Concurrent calls of `update` and
    /// [`RunningServer::update_unix_admission`] apply one after the other;
    /// none is lost.
    pub fn update(
        &self,
        admission: Admission,
        identity: Option<ServerIdentity>,
    ) -> Result<(), Error> {
        if let Err(net) = admission.check() {
            return Err(Error::Config(format!(
                "admission network {net} is IPv4-mapped but shorter than /96: it has no IPv4 form"
            )));
        }
        let identity = identity.map(resolve_identity);
        // Read, modify and write under the channel's lock, so that a
        // concurrent update of the Unix admission is not lost.
        self.shared.0.policy.send_modify(|policy| {
            *policy = Arc::new(Policy {
                admission,
                identity,
                unix_admission: policy.unix_admission.clone(),
                #[cfg(feature = "tls")]
                tls: policy.tls.clone(),
            });
        });
        Ok(())
    }

    /// Replaces the server's TLS material while it runs: its certificate
    /// and key, the CAs it trusts, their revocation lists
    /// ([`TlsIdentity::with_crls`](crate::tls::TlsIdentity::with_crls))
    /// and the mode. Certificates expire; renewing them this way loses no
    /// connection.
    ///
    /// - The new material is checked first; if it is unusable, the error
    ///   ([`Error::Config`]) says why and nothing changes. (A certificate
    ///   and key that do not fit, or a CRL that no trusted CA signed, are
    ///   refused earlier, when the [`TlsIdentity`](crate::tls::TlsIdentity)
    ///   is made.) A server started without TLS cannot take it on:
    ///   [`Error::Config`].
    /// - Every handshake that starts after it returns uses the new
    ///   material: our new certificate, the new roots and CRLs.
    /// - Established connections go on untouched, whatever changed (our
    ///   certificate, the roots), with one exception: a connection whose
    ///   client presented a certificate that the new CRLs revoke is closed,
    ///   with a verdict ([`VerdictReason::NoLongerTrusted`] holding
    ///   [`CertError::Revoked`](crate::tls::CertError::Revoked)). It is
    ///   judged as at its handshake (against the roots and at the time of
    ///   then), so only the revocation counts. As with
    ///   [`RunningServer::update`], this is exact for whatever a
    ///   connection reads after `update_tls` returns, and an idle
    ///   connection is closed as soon as its task runs.
    ///
    /// Concurrent calls of this, [`RunningServer::update`] and
    /// [`RunningServer::update_unix_admission`] apply one after the other;
    /// none is lost.
    #[cfg(feature = "tls")]
    pub fn update_tls(&self, tls: crate::tls::ServerTls) -> Result<(), Error> {
        if !self.shared.0.tls_on {
            return Err(Error::Config(
                "this server runs without TLS: it cannot be switched on while it runs (set ServerOptions::tls and restart)".into(),
            ));
        }
        let tls = crate::tls::server_config(&tls).map_err(|error| {
            Error::Config(format!("server TLS: {error}; the old TLS material stays"))
        })?;
        let tls = Some(Arc::new(tls));
        self.shared.0.policy.send_modify(|policy| {
            *policy = Arc::new(Policy {
                admission: policy.admission.clone(),
                identity: policy.identity.clone(),
                unix_admission: policy.unix_admission.clone(),
                tls,
            });
        });
        Ok(())
    }

    /// The addresses listened on, with the ports chosen.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The counters.
    pub fn stats(&self) -> ServerStats {
        let c = &self.shared.0.counters;
        ServerStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            closed: c.closed.load(Ordering::Relaxed),
            calls: c.calls.load(Ordering::Relaxed),
            panics: c.panics.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            bad_framing: c.bad_framing.load(Ordering::Relaxed),
            closed_before_hello: c.closed_before_hello.load(Ordering::Relaxed),
            handshake_timeouts: c.handshake_timeouts.load(Ordering::Relaxed),
        }
    }

    /// The last [`VERDICTS_KEPT`] inbound verdicts, newest first, at most
    /// [`VERDICTS_PER_SOURCE`] of them from one address (see [`Verdict`]).
    pub fn verdicts(&self) -> Vec<Verdict> {
        let list = self
            .shared
            .0
            .verdicts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        list.iter().cloned().collect()
    }

    /// The open connections, with each peer's node ID and addresses.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let map = self
            .shared
            .0
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<ConnectionInfo> = map.values().cloned().collect();
        list.sort_by_key(|c| c.id);
        list
    }

    /// A handle that starts the graceful shutdown.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            shutdown: self.shutdown.clone(),
        }
    }

    /// Graceful shutdown: stop accepting, stop reading new calls, let calls
    /// in progress finish within the grace period, then close everything.
    /// Returns when every connection is closed.
    pub async fn shutdown(self) {
        self.shutdown.send_replace(true);
        self.wait().await;
    }

    /// Waits until the server has stopped: after a [`Stopper::stop`], once
    /// every connection is closed. Cancel-safe only in the sense that the
    /// server is unaffected; the handle is consumed.
    pub async fn wait(mut self) {
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}
