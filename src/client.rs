//! The RPC client: a cloneable handle to one peer.
//!
//! One driver task per [`Client`] owns the connection and the pure
//! [`CallTable`]. Callers send it requests and await their own oneshot
//! answer; the driver matches replies by XID, fails calls at their deadline,
//! pings while calls are outstanding, and reconnects with backoff behind a
//! circuit breaker. One writer task per connection owns the socket's write
//! half and writes whole records only, so a caller that drops its future
//! never leaves half a record on the wire.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use crate::addr::{CanonicalIp, Endpoint};
use crate::codec::{CodecError, RpcCodec, encode_record};
use crate::connect::{ConnectOptions, Connected, Connector};
use crate::error::{CallStatus, DisconnectCause, Error};
use crate::peer::{
    HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO, Hello, HelloReply, NodeId, PROTOCOL_VERSIONS,
};
use crate::proto::RecordDecoder;
use crate::proto::calls::{Breaker, CallTable, Liveness, LivenessAction, Reconnect, ReplyFor};
use crate::proto::xdr::{XdrDecode, XdrEncode, from_bytes, to_bytes};
use crate::proto::{
    AcceptStatus, CallHeader, Message, MessageBody, OpaqueAuth, RecordEncoder, RecordLimits,
    Rejection, ReplyBody,
};

/// The program and version a client pings with NULL by default: peerwire's
/// handshake program (any reply proves the peer alive, even PROG_UNAVAIL).
pub const DEFAULT_PING_PROGRAM: (u32, u32) = (0x2050_5752, 1);

/// A byte stream a client can run over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A connected byte stream and the addresses it runs between.
pub struct Link {
    io: Box<dyn Io>,
    local: SocketAddr,
    remote: SocketAddr,
    /// Bytes read past the handshake reply, for the codec.
    leftover: BytesMut,
}

impl Link {
    /// A link over `io`, between `local` and `remote`.
    pub fn new(io: impl Io, local: SocketAddr, remote: SocketAddr) -> Link {
        Link {
            io: Box::new(io),
            local,
            remote,
            leftover: BytesMut::new(),
        }
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl From<Connected> for Link {
    fn from(connected: Connected) -> Link {
        let (local, remote) = (connected.local_addr(), connected.peer_addr());
        Link::new(connected.into_stream(), local, remote)
    }
}

/// The future a transport's connect function returns.
pub type LinkFuture = Pin<Box<dyn Future<Output = Result<Link, Error>> + Send>>;

type ConnectFn = Arc<dyn Fn() -> LinkFuture + Send + Sync>;

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
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// How to connect: sources, ports, timeouts. Default: [`ConnectOptions::new`].
    pub connect: ConnectOptions,
    /// A call's deadline unless it sets its own. Default 60 s.
    pub deadline: Duration,
    /// Calls in flight on the connection; further callers wait. Default 64.
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
    /// Consecutive connect failures that open the circuit breaker. Default 5.
    pub breaker_threshold: u32,
    /// Record limits for replies.
    pub limits: RecordLimits,
    /// XIDs of abandoned or timed-out calls kept reserved before the
    /// connection is considered stuck and closed. Default 1024.
    pub max_reserved: usize,
    /// Identity: when set, every connection and reconnection starts with a
    /// HELLO, and the server's node ID and the address it observed are
    /// checked. Default: none.
    pub identity: Option<ClientIdentity>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect: ConnectOptions::new(),
            deadline: Duration::from_secs(60),
            max_in_flight: 64,
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(42),
            ping_program: DEFAULT_PING_PROGRAM,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(15),
            backoff_jitter: 0.2,
            breaker_threshold: 5,
            limits: RecordLimits::default(),
            max_reserved: 1024,
            identity: None,
        }
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

/// Where the client's connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not connected, and no call needs it.
    Idle,
    /// A connect attempt is running.
    Connecting,
    /// Connected.
    Connected {
        /// Our address on the connection.
        local: std::net::SocketAddr,
        /// The peer's address.
        remote: std::net::SocketAddr,
    },
    /// Waiting to retry after a failure.
    Backoff {
        /// When the next attempt starts.
        until: std::time::Instant,
    },
    /// The circuit breaker is open: calls fail fast.
    Open {
        /// When the single probe may run.
        until: std::time::Instant,
    },
    /// The client was closed.
    Closed,
}

/// A snapshot of a client's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Requests written to the socket.
    pub sent: u64,
    /// Calls answered with results.
    pub succeeded: u64,
    /// Calls that failed (any error but a timeout).
    pub failed: u64,
    /// Calls failed by their deadline.
    pub timed_out: u64,
    /// Replies that came after their call timed out or was abandoned.
    pub late_replies: u64,
    /// Replies matching no call.
    pub unknown_replies: u64,
    /// Connections made after the first.
    pub reconnects: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    late_replies: AtomicU64,
    unknown_replies: AtomicU64,
    reconnects: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    peer: Endpoint,
    options: ClientOptions,
    counters: Counters,
    state: watch::Sender<ConnectionState>,
    next_id: AtomicU64,
    /// The last HELLO answer: who the peer is, and how it saw us.
    hello: std::sync::Mutex<Option<HelloReply>>,
    /// Why the last connect attempt failed; cleared when one succeeds.
    last_connect_error: std::sync::Mutex<Option<Arc<Error>>>,
}

type Answer = Result<Bytes, Error>;

struct Request {
    id: u64,
    header: CallHeader,
    args: Bytes,
    deadline: Instant,
    timeout: Duration,
    answer: oneshot::Sender<Answer>,
    _permit: OwnedSemaphorePermit,
}

enum Command {
    Call(Request),
    /// The caller of call `id` dropped its future.
    Abandon(u64),
    /// [`Client::close`].
    Close,
}

/// A handle to one peer. Cheap to clone; all clones share the connection.
/// The connection closes when the last clone is dropped or
/// [`Client::close`] is called.
#[derive(Clone, Debug)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    permits: Arc<Semaphore>,
    shared: Arc<Shared>,
}

impl Client {
    /// A client for the peer at `destinations` (tried by Happy Eyeballs).
    /// It connects on the first call. Must be called inside a tokio runtime.
    ///
    /// # Panics
    ///
    /// If `destinations` is empty.
    pub fn new(destinations: Vec<Endpoint>, options: ClientOptions) -> Client {
        assert!(
            !destinations.is_empty(),
            "a client needs at least one destination"
        );
        let connector = Connector::new(options.connect.clone());
        let peer = destinations[0].clone();
        let connect: ConnectFn = Arc::new(move || {
            let (connector, destinations) = (connector.clone(), destinations.clone());
            Box::pin(async move { connector.connect_any(&destinations).await.map(Link::from) })
        });
        Client::start(peer, options, connect)
    }

    /// A client over a transport of your own: `connect` is called for each
    /// connection attempt. `peer` names the peer in errors. Useful for
    /// tunnels, Unix sockets and tests; [`ClientOptions::connect`] is unused.
    /// Must be called inside a tokio runtime.
    pub fn with_transport<F, Fut>(peer: Endpoint, options: ClientOptions, connect: F) -> Client
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Link, Error>> + Send + 'static,
    {
        Client::start(peer, options, Arc::new(move || Box::pin(connect())))
    }

    fn start(peer: Endpoint, options: ClientOptions, connect: ConnectFn) -> Client {
        let (state, _) = watch::channel(ConnectionState::Idle);
        let shared = Arc::new(Shared {
            peer,
            options,
            counters: Counters::default(),
            state,
            next_id: AtomicU64::new(0),
            hello: std::sync::Mutex::new(None),
            last_connect_error: std::sync::Mutex::new(None),
        });
        let permits = Arc::new(Semaphore::new(shared.options.max_in_flight.max(1)));
        let (commands, rx) = mpsc::unbounded_channel();
        tokio::spawn(Driver::new(connect, shared.clone(), rx).run());
        Client {
            commands,
            permits,
            shared,
        }
    }

    /// The peer this client serves (its first destination).
    pub fn peer(&self) -> &Endpoint {
        &self.shared.peer
    }

    /// The peer's last HELLO answer, with identity on: its node ID and the
    /// address it observed for us (already checked against our source).
    pub fn hello(&self) -> Option<HelloReply> {
        self.shared
            .hello
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Why the last connection attempt failed (connect, source binding or
    /// HELLO), or `None` once an attempt has succeeded. Calls waiting for a
    /// connection fail with a timeout or [`Error::CircuitOpen`]; this is
    /// the cause behind them.
    pub fn last_connect_error(&self) -> Option<Arc<Error>> {
        self.shared
            .last_connect_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The connection's state now.
    pub fn state(&self) -> ConnectionState {
        *self.shared.state.borrow()
    }

    /// A receiver that sees every change of state.
    pub fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.shared.state.subscribe()
    }

    /// The counters.
    pub fn stats(&self) -> ClientStats {
        let c = &self.shared.counters;
        ClientStats {
            sent: c.sent.load(Ordering::Relaxed),
            succeeded: c.succeeded.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            timed_out: c.timed_out.load(Ordering::Relaxed),
            late_replies: c.late_replies.load(Ordering::Relaxed),
            unknown_replies: c.unknown_replies.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
        }
    }

    /// Calls `procedure` of `program` version `version` with XDR-encoded
    /// `args`; returns the undecoded results.
    ///
    /// Cancel-safe: dropping the future at any point leaves the connection
    /// in sync. A request already queued is still written whole, and its
    /// XID stays reserved until its reply arrives or the connection closes.
    pub async fn call(
        &self,
        program: u32,
        version: u32,
        procedure: u32,
        args: Bytes,
    ) -> Result<Bytes, Error> {
        self.call_with(program, version, procedure, args, &CallOptions::default())
            .await
    }

    /// [`Client::call`] with per-call options.
    pub async fn call_with(
        &self,
        program: u32,
        version: u32,
        procedure: u32,
        args: Bytes,
        options: &CallOptions,
    ) -> Result<Bytes, Error> {
        let timeout = options.deadline.unwrap_or(self.shared.options.deadline);
        let deadline = Instant::now() + timeout;
        let timed_out = || Error::CallTimeout {
            peer: self.shared.peer.clone(),
            program,
            version,
            procedure,
            after: timeout,
            sent: false,
        };
        // Wait for a slot, within the deadline. Cancel-safe: a dropped
        // acquire takes nothing.
        let permit =
            match tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return Err(self.closed()),
                Err(_) => {
                    self.shared
                        .counters
                        .timed_out
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(timed_out());
                }
            };
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        let header = CallHeader {
            cred: options.cred.clone(),
            verf: options.verf.clone(),
            ..CallHeader::new(program, version, procedure)
        };
        let request = Request {
            id,
            header,
            args,
            deadline,
            timeout,
            answer,
            _permit: permit,
        };
        if self.commands.send(Command::Call(request)).is_err() {
            return Err(self.closed());
        }
        let mut guard = AbandonGuard {
            id,
            commands: &self.commands,
            armed: true,
        };
        // The driver answers every request (its deadline included); if the
        // driver is gone, the sender is dropped and we say so.
        let answer = answered.await.unwrap_or_else(|_| Err(self.closed()));
        guard.armed = false;
        answer
    }

    /// Calls with typed arguments and results.
    pub async fn call_xdr<A, R>(
        &self,
        program: u32,
        version: u32,
        procedure: u32,
        args: &A,
    ) -> Result<R, Error>
    where
        A: XdrEncode + ?Sized,
        R: XdrDecode,
    {
        let results = self
            .call(program, version, procedure, to_bytes(args))
            .await?;
        from_bytes(&results).map_err(|error| Error::BadResults {
            peer: self.shared.peer.clone(),
            error,
        })
    }

    /// Calls NULL (procedure 0): a round trip that checks the peer serves
    /// this program version.
    pub async fn null(&self, program: u32, version: u32) -> Result<(), Error> {
        self.call(program, version, 0, Bytes::new()).await.map(drop)
    }

    /// Closes the connection; pending calls fail with
    /// [`DisconnectCause::ClientClosed`], and later calls with
    /// [`Error::ClientClosed`].
    pub fn close(&self) {
        self.permits.close();
        let _ = self.commands.send(Command::Close);
    }

    fn closed(&self) -> Error {
        Error::ClientClosed {
            peer: self.shared.peer.clone(),
        }
    }
}

/// Tells the driver when a caller drops its future mid-call.
struct AbandonGuard<'a> {
    id: u64,
    commands: &'a mpsc::UnboundedSender<Command>,
    armed: bool,
}

impl Drop for AbandonGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.commands.send(Command::Abandon(self.id));
        }
    }
}

/// What waits on an XID: a caller's request, or our own ping.
enum Waiter {
    Caller(Request),
    Ping,
}

struct Driver {
    connect: ConnectFn,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Requests waiting for a connection.
    queue: VecDeque<Request>,
    reconnect: Reconnect,
    connections: u64,
}

/// How one connection ended, and whether the client is done.
enum Ended {
    Lost(DisconnectCause),
    Closed,
}

impl Driver {
    fn new(
        connect: ConnectFn,
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Driver {
        let o = &shared.options;
        let reconnect = Reconnect::new(
            o.backoff_base,
            o.backoff_max,
            o.backoff_jitter,
            o.breaker_threshold,
        );
        Driver {
            connect,
            shared,
            commands,
            queue: VecDeque::new(),
            reconnect,
            connections: 0,
        }
    }

    /// The state while no call waits: what a call arriving now would meet.
    fn resting_state(&self) -> ConnectionState {
        let now = Instant::now().into_std();
        match self.reconnect.breaker(now) {
            Breaker::Open { next_attempt } => ConnectionState::Open {
                until: next_attempt,
            },
            _ => match self.reconnect.next_attempt() {
                Some(until) if until > now => ConnectionState::Backoff { until },
                _ => ConnectionState::Idle,
            },
        }
    }

    fn set_state(&self, state: ConnectionState) {
        self.shared.state.send_replace(state);
    }

    fn set_last_connect_error(&self, error: Option<Arc<Error>>) {
        *self
            .shared
            .last_connect_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = error;
    }

    async fn run(mut self) {
        loop {
            // Idle: wait for something to do.
            self.expire_queue();
            if self.queue.is_empty() {
                self.set_state(self.resting_state());
                match self.commands.recv().await {
                    Some(command) => {
                        if !self.accept(command) {
                            break;
                        }
                        continue;
                    }
                    None => break,
                }
            }
            // Calls wait: connect, unless the breaker says to fail fast.
            let now = Instant::now();
            match self.reconnect.breaker(now.into_std()) {
                Breaker::Open { next_attempt } => {
                    self.set_state(ConnectionState::Open {
                        until: next_attempt,
                    });
                    self.fail_queue_fast(next_attempt);
                    continue;
                }
                Breaker::HalfOpen => {
                    self.reconnect.start_probe();
                }
                Breaker::Closed => {
                    if let Some(next) = self.reconnect.next_attempt()
                        && next > now.into_std()
                    {
                        self.set_state(ConnectionState::Backoff { until: next });
                        if !self.wait_until(Instant::from_std(next)).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            self.set_state(ConnectionState::Connecting);
            let connected = {
                let link = (self.connect)();
                let (shared, limits) = (self.shared.clone(), self.shared.options.limits);
                let attempt = async move {
                    let link = link.await?;
                    match &shared.options.identity {
                        Some(identity) => {
                            let (link, answer) =
                                handshake(link, identity, &shared.peer, limits).await?;
                            *shared.hello.lock().unwrap_or_else(|p| p.into_inner()) = Some(answer);
                            Ok::<Link, Error>(link)
                        }
                        None => Ok(link),
                    }
                };
                tokio::pin!(attempt);
                loop {
                    let deadline = self.queue.iter().map(|r| r.deadline).min();
                    tokio::select! {
                        result = &mut attempt => break Some(result),
                        command = self.commands.recv() => match command {
                            Some(command) => if !self.accept_during_connect(command) { break None },
                            None => break None,
                        },
                        () = sleep_until(deadline) => self.expire_queue(),
                    }
                }
            };
            let Some(connected) = connected else { break };
            match connected {
                Ok(connected) => {
                    self.reconnect.succeeded();
                    self.set_last_connect_error(None);
                    if self.connections > 0 {
                        self.shared
                            .counters
                            .reconnects
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    self.connections += 1;
                    match self.serve(connected).await {
                        Ended::Lost(cause) => {
                            info!(peer = %self.shared.peer, %cause, "connection lost")
                        }
                        Ended::Closed => break,
                    }
                }
                Err(error) => {
                    let next = self
                        .reconnect
                        .failed(Instant::now().into_std(), rand::random::<f64>());
                    warn!(peer = %self.shared.peer, %error, failures = self.reconnect.failures(), "connect failed");
                    let error = Arc::new(error);
                    self.set_last_connect_error(Some(error.clone()));
                    if error.identity_copy().is_some() {
                        // A definite answer: waiting will not change it.
                        for request in std::mem::take(&mut self.queue) {
                            let copy = error.identity_copy().expect("checked above");
                            self.answer_failed(request, copy);
                        }
                    } else if let Breaker::Open { .. } =
                        self.reconnect.breaker(Instant::now().into_std())
                    {
                        self.fail_queue_fast(next);
                    } else {
                        // The calls keep waiting, within their deadlines,
                        // for the next attempt; their error names the cause.
                        debug!(queued = self.queue.len(), "calls wait for the next attempt");
                    }
                }
            }
        }
        // Closed: fail whatever still waits.
        self.set_state(ConnectionState::Closed);
        self.commands.close();
        while let Ok(Command::Call(request)) = self.commands.try_recv() {
            self.queue.push_back(request);
        }
        for request in std::mem::take(&mut self.queue) {
            self.answer_failed(
                request,
                self.disconnected(DisconnectCause::ClientClosed, false),
            );
        }
    }

    /// Takes a command while idle or waiting. Returns false when the client is closed.
    fn accept(&mut self, command: Command) -> bool {
        match command {
            Command::Call(request) => self.queue.push_back(request),
            Command::Close => return false,
            Command::Abandon(id) => self.queue.retain(|r| r.id != id),
        }
        true
    }

    fn accept_during_connect(&mut self, command: Command) -> bool {
        self.accept(command)
    }

    /// Waits until `until`, taking commands and expiring deadlines.
    /// Returns false when the client is closed.
    async fn wait_until(&mut self, until: Instant) -> bool {
        loop {
            let deadline = self.queue.iter().map(|r| r.deadline).min();
            tokio::select! {
                () = tokio::time::sleep_until(until) => return true,
                command = self.commands.recv() => match command {
                    Some(command) => if !self.accept(command) { return false },
                    None => return false,
                },
                () = sleep_until(deadline) => self.expire_queue(),
            }
        }
    }

    fn expire_queue(&mut self) {
        let now = Instant::now();
        let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|r| r.deadline <= now);
        self.queue = kept.into();
        for request in expired {
            let error = self.timeout(&request, false);
            self.shared
                .counters
                .timed_out
                .fetch_add(1, Ordering::Relaxed);
            let _ = request.answer.send(Err(error));
        }
    }

    fn fail_queue_fast(&mut self, next_attempt: std::time::Instant) {
        for request in std::mem::take(&mut self.queue) {
            let error = Error::CircuitOpen {
                peer: self.shared.peer.clone(),
                failures: self.reconnect.failures(),
                next_attempt,
            };
            self.answer_failed(request, error);
        }
    }

    fn answer_failed(&self, request: Request, error: Error) {
        self.shared.counters.failed.fetch_add(1, Ordering::Relaxed);
        let _ = request.answer.send(Err(error));
    }

    fn timeout(&self, request: &Request, sent: bool) -> Error {
        Error::CallTimeout {
            peer: self.shared.peer.clone(),
            program: request.header.program,
            version: request.header.version,
            procedure: request.header.procedure,
            after: request.timeout,
            sent,
        }
    }

    fn disconnected(&self, cause: DisconnectCause, sent: bool) -> Error {
        Error::Disconnected {
            peer: self.shared.peer.clone(),
            cause,
            sent,
        }
    }

    /// Runs one connection until it ends.
    async fn serve(&mut self, link: Link) -> Ended {
        let (local, remote) = (link.local, link.remote);
        self.set_state(ConnectionState::Connected { local, remote });
        debug!(%local, %remote, "connected");
        let o = self.shared.options.clone();
        let (read_half, write_half) = tokio::io::split(link.io);
        let mut reader =
            FramedRead::new(read_half, RpcCodec::new(o.limits, RecordEncoder::default()));
        reader.read_buffer_mut().extend_from_slice(&link.leftover);
        // Messages go to the writer unencoded: it encodes each straight
        // into its batch buffer (one copy of the arguments, no buffer of
        // the call's own), and reports each XID written.
        let (records, records_rx) = mpsc::unbounded_channel::<(u32, Message)>();
        let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<u32>();
        let mut sent_xids = Vec::new();
        let mut writer = tokio::spawn(write_loop(write_half, records_rx, sent_tx));
        let mut table: CallTable<Waiter> =
            CallTable::new(rand::random(), usize::MAX, o.max_reserved);
        let mut ids: HashMap<u64, u32> = HashMap::new();
        let mut liveness =
            Liveness::new(o.ping_interval, o.ping_timeout, Instant::now().into_std());
        let mut stats_seen = table.stats();
        // One timer for the connection, moved only earlier: when the next
        // wake moves later (every reply pushes the ping back), the timer
        // fires early once and is re-armed. A fresh timer per loop turn
        // cost a timer-wheel insert and removal and, its deadline being
        // the earliest, a self-wake of the runtime (an eventfd write) per
        // event: 0.43 `write(eventfd)` per call at 64 calls in flight.
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;

        let start =
            |request: Request, table: &mut CallTable<Waiter>, ids: &mut HashMap<u64, u32>| {
                let (id, deadline) = (request.id, request.deadline);
                let message_header = request.header.clone();
                let args = request.args.clone();
                match table.start(deadline.into_std(), Waiter::Caller(request)) {
                    Ok(xid) => {
                        ids.insert(id, xid);
                        let _ = records.send((xid, Message::call(xid, message_header, args)));
                    }
                    Err(_) => unreachable!("the table has no limit of its own; permits bound it"),
                }
            };
        for request in std::mem::take(&mut self.queue) {
            start(request, &mut table, &mut ids);
        }

        let ended = loop {
            let now = Instant::now();
            for failed in table.expire(now.into_std()) {
                if let Waiter::Caller(request) = failed.waiter {
                    ids.remove(&request.id);
                    self.shared
                        .counters
                        .timed_out
                        .fetch_add(1, Ordering::Relaxed);
                    let error = self.timeout(&request, failed.sent);
                    let _ = request.answer.send(Err(error));
                }
            }
            if table.is_clogged() {
                break Ended::Lost(DisconnectCause::Clogged);
            }
            let wake = match liveness.poll(now.into_std(), table.live() > 0) {
                LivenessAction::Dead => break Ended::Lost(DisconnectCause::PingTimeout),
                LivenessAction::Ping => {
                    let (program, version) = o.ping_program;
                    let deadline = now + o.ping_timeout;
                    if let Ok(xid) = table.start(deadline.into_std(), Waiter::Ping) {
                        let _ = records.send((
                            xid,
                            Message::call(xid, CallHeader::new(program, version, 0), Bytes::new()),
                        ));
                    }
                    continue;
                }
                LivenessAction::Wait(at) => at,
            };
            let wake = [wake, table.next_deadline()]
                .into_iter()
                .flatten()
                .min()
                .map(Instant::from_std);
            self.publish(&table, &mut stats_seen);
            if let Some(wake) = wake
                && armed.is_none_or(|at| wake < at)
            {
                timer.as_mut().reset(wake);
                armed = Some(wake);
            }
            tokio::select! {
                item = reader.next() => match item {
                    Some(Ok(Ok(message))) => {
                        liveness.heard(Instant::now().into_std());
                        self.deliver(message, &mut table, &mut ids);
                    }
                    Some(Ok(Err(error))) => {
                        liveness.heard(Instant::now().into_std());
                        debug!(%error, "malformed reply dropped");
                        self.shared.counters.unknown_replies.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Err(CodecError::Io(error))) => break Ended::Lost(DisconnectCause::Io(error.kind())),
                    Some(Err(_)) => break Ended::Lost(DisconnectCause::BadRecord),
                    None => break Ended::Lost(DisconnectCause::Closed),
                },
                1.. = sent_rx.recv_many(&mut sent_xids, 1024) => {
                    for xid in sent_xids.drain(..) {
                        table.mark_sent(xid);
                        self.shared.counters.sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                command = self.commands.recv() => match command {
                    Some(Command::Call(request)) => start(request, &mut table, &mut ids),
                    Some(Command::Close) | None => break Ended::Closed,
                    Some(Command::Abandon(id)) => {
                        if let Some(xid) = ids.remove(&id) {
                            // The request is queued or sent: keep its XID.
                            drop(table.abandon(xid, true));
                        }
                    }
                },
                result = &mut writer => {
                    let kind = match result {
                        Ok(Err(error)) => error.kind(),
                        _ => std::io::ErrorKind::BrokenPipe,
                    };
                    break Ended::Lost(DisconnectCause::Io(kind));
                }
                () = &mut timer, if armed.is_some() => armed = None,
            }
        };
        // Every live call fails at once, saying whether it was sent.
        drop(records);
        writer.abort();
        while let Ok(xid) = sent_rx.try_recv() {
            table.mark_sent(xid);
        }
        let cause = match ended {
            Ended::Lost(cause) => cause,
            Ended::Closed => DisconnectCause::ClientClosed,
        };
        for failed in table.close() {
            if let Waiter::Caller(request) = failed.waiter {
                let error = self.disconnected(cause, failed.sent);
                self.answer_failed(request, error);
            }
        }
        self.publish(&table, &mut stats_seen);
        ended
    }

    /// Hands a reply to its caller.
    fn deliver(
        &self,
        message: Message,
        table: &mut CallTable<Waiter>,
        ids: &mut HashMap<u64, u32>,
    ) {
        let MessageBody::Reply { body, results } = message.body else {
            debug!(xid = message.xid, "a call from the server; dropped");
            return;
        };
        match table.reply(message.xid) {
            ReplyFor::Caller(Waiter::Caller(request)) => {
                ids.remove(&request.id);
                let header = &request.header;
                let answer = match CallStatus::of(&body) {
                    None => {
                        self.shared
                            .counters
                            .succeeded
                            .fetch_add(1, Ordering::Relaxed);
                        Ok(results)
                    }
                    Some(status) => {
                        self.shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                        Err(Error::CallRejected {
                            peer: self.shared.peer.clone(),
                            program: header.program,
                            version: header.version,
                            procedure: header.procedure,
                            status,
                        })
                    }
                };
                let _ = request.answer.send(answer);
            }
            ReplyFor::Caller(Waiter::Ping) => {}
            ReplyFor::Late | ReplyFor::Unknown => {}
        }
    }

    /// Copies the table's reply counters into the shared ones.
    fn publish(&self, table: &CallTable<Waiter>, seen: &mut crate::proto::calls::CallStats) {
        let now = table.stats();
        let c = &self.shared.counters;
        c.late_replies
            .fetch_add(now.late_replies - seen.late_replies, Ordering::Relaxed);
        c.unknown_replies.fetch_add(
            now.unknown_replies - seen.unknown_replies,
            Ordering::Relaxed,
        );
        *seen = now;
    }
}

/// Says HELLO on a fresh link and checks the answer: the node that answers
/// must be the one we mean to reach, and it must have seen the source we
/// bound.
async fn handshake(
    mut link: Link,
    identity: &ClientIdentity,
    peer: &Endpoint,
    limits: RecordLimits,
) -> Result<(Link, HelloReply), Error> {
    let io_error = |error: std::io::Error| Error::Connect {
        source_addr: Some(link.local),
        destination: peer.clone(),
        error,
    };
    let broken = |reason| Error::Handshake {
        peer: peer.clone(),
        reason,
    };
    let xid: u32 = rand::random();
    let hello = Hello {
        node: identity.node.clone(),
        versions: PROTOCOL_VERSIONS.to_vec(),
        cluster: identity.cluster.clone(),
    };
    let call = Message::call(
        xid,
        CallHeader::new(HANDSHAKE_PROGRAM, HANDSHAKE_VERSION, HELLO),
        to_bytes(&hello),
    );
    let exchange = async {
        link.io.write_all(&encode(call)).await.map_err(io_error)?;
        let mut records = RecordDecoder::new(limits);
        let mut buf = BytesMut::new();
        let record = loop {
            if let Some(record) = records.decode(&mut buf).map_err(|_| broken("bad record"))? {
                break record;
            }
            if link.io.read_buf(&mut buf).await.map_err(io_error)? == 0 {
                return Err(broken("the server closed the connection during HELLO"));
            }
        };
        Ok((record, buf))
    };
    let (record, leftover) = tokio::time::timeout(identity.timeout, exchange)
        .await
        .map_err(|_| broken("no answer to HELLO within the timeout"))??;
    let reply = Message::decode(record).map_err(|_| broken("malformed HELLO reply"))?;
    if reply.xid != xid {
        return Err(broken("the HELLO reply has another XID"));
    }
    let results = match reply.body {
        MessageBody::Reply {
            body:
                ReplyBody::Accepted {
                    status: AcceptStatus::Success,
                    ..
                },
            results,
        } => results,
        MessageBody::Reply {
            body: ReplyBody::Denied(Rejection::AuthError(stat)),
            ..
        } => {
            return Err(Error::IdentityRefused {
                peer: peer.clone(),
                stat,
            });
        }
        _ => return Err(broken("the server does not speak the handshake program")),
    };
    let answer: HelloReply = from_bytes(&results).map_err(|_| broken("malformed HELLO results"))?;
    if answer.node != identity.expect {
        return Err(Error::WrongPeer {
            peer: peer.clone(),
            expected: identity.expect.clone(),
            answered: answer.node,
        });
    }
    // The scope of a link-local address is the server's own interface, so
    // only the IPs compare.
    if CanonicalIp::from(answer.observed).ip() != CanonicalIp::from(link.local).ip() {
        match identity.observed_mismatch {
            MismatchPolicy::Fail => {
                return Err(Error::ObservedMismatch {
                    remote: link.remote,
                    bound: link.local,
                    observed: answer.observed,
                });
            }
            MismatchPolicy::Warn => {
                warn!(%peer, bound = %link.local, observed = %answer.observed, "the server saw another source than we bound");
            }
        }
    }
    debug!(%peer, node = %answer.node, observed = %answer.observed, "HELLO accepted");
    link.leftover = leftover;
    Ok((link, answer))
}

fn encode(message: Message) -> Bytes {
    let mut out = BytesMut::new();
    encode_record(&message, &mut out);
    out.freeze()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Owns the write half: encodes queued messages into one batch of whole
/// records, writes it, and reports the XIDs written. The batch buffer and
/// the XID list are reused from batch to batch.
async fn write_loop(
    mut writer: WriteHalf<Box<dyn Io>>,
    mut records: mpsc::UnboundedReceiver<(u32, Message)>,
    sent: mpsc::UnboundedSender<u32>,
) -> std::io::Result<()> {
    let mut batch = BytesMut::new();
    let mut xids = Vec::new();
    while let Some((xid, message)) = records.recv().await {
        batch.clear();
        encode_record(&message, &mut batch);
        drop(message);
        xids.push(xid);
        while batch.len() < 64 * 1024 {
            match records.try_recv() {
                Ok((xid, message)) => {
                    encode_record(&message, &mut batch);
                    xids.push(xid);
                }
                Err(_) => break,
            }
        }
        writer.write_all(&batch).await?;
        for xid in xids.drain(..) {
            let _ = sent.send(xid);
        }
    }
    writer.shutdown().await
}
