//! The RPC server: listeners, one task per connection, handlers.
//!
//! A connection's task reads records while fewer than
//! [`ServerOptions::max_in_progress`] calls are in progress; at the limit it
//! stops reading, so TCP pushes back on the peer. Handlers run as their own
//! tasks and may finish in any order; a panicking handler is answered with
//! SYSTEM_ERR and the server lives on. One writer task owns each socket's
//! write half and writes whole records only, batching what is queued.
//!
//! Shutdown order: stop accepting; stop reading new calls; let calls in
//! progress finish within the grace period; close.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::addr::{CanonicalIp, Endpoint};
use crate::error::Error;
use crate::listen::{ListenOptions, listen};
use crate::peer::{Admission, NodeId, ServerIdentity};
use crate::proto::serve::{Dispatch, Inbound, ProcError, Registry, ServerConnection};
use crate::proto::{Message, OpaqueAuth, RecordLimits};

/// What a handler learns about its call.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// The peer's address as this server observed it.
    pub observed: SocketAddr,
    /// The local address the call arrived on.
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
    /// HELLO succeeded (always, for calls that reach a handler then).
    pub peer: Option<NodeId>,
}

/// The future a [`Service`] returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Bytes, ProcError>> + Send>>;

/// A program version's procedures. NULL (procedure 0) is answered by the
/// server and never reaches the service.
///
/// Closures `Fn(CallContext, u32, Bytes) -> impl Future<Output =
/// Result<Bytes, ProcError>>` are services.
pub trait Service: Send + Sync + 'static {
    /// Runs `procedure` with its undecoded `args`; returns the undecoded
    /// results. Return [`ProcError::ProcUnavail`] for an unknown procedure.
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
    /// Record limits for incoming calls.
    pub limits: RecordLimits,
    /// Options for the listening sockets.
    pub listen: ListenOptions,
    /// Address admission, applied before a byte is read. Default: admit all.
    pub admission: Admission,
    /// Who this server is and whom it accepts. With an identity, every
    /// connection must complete a HELLO before any other call. Default: none.
    pub identity: Option<ServerIdentity>,
    /// A connection that has not completed its HELLO in this time is
    /// closed. Default 10 s.
    pub handshake_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            max_connections: 1024,
            max_in_progress: 64,
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            limits: RecordLimits::default(),
            listen: ListenOptions::default(),
            admission: Admission::default(),
            identity: None,
            handshake_timeout: Duration::from_secs(10),
        }
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
    /// Handlers that panicked (answered with SYSTEM_ERR).
    pub panics: u64,
    /// Records dropped without an answer.
    pub dropped: u64,
    /// Connections refused by admission, closed unread.
    pub refused: u64,
    /// Connections closed for failing the handshake.
    pub rejected: u64,
}

/// How many inbound verdicts [`RunningServer::verdicts`] keeps.
pub const VERDICTS_KEPT: usize = 64;

/// What the server decided about one inbound connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The peer's address as observed.
    pub observed: SocketAddr,
    /// The node ID it claimed, if it sent a HELLO.
    pub peer: Option<NodeId>,
    /// Accepted (admitted, and identified where the server has an identity).
    pub accepted: bool,
    /// Why it was refused.
    pub reason: Option<String>,
    /// When.
    pub at: std::time::SystemTime,
}

/// One open connection, as [`RunningServer::connections`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// A process-unique id for logs.
    pub id: u64,
    /// The peer's node ID, once its HELLO succeeded.
    pub peer: Option<NodeId>,
    /// The peer's address as observed.
    pub observed: SocketAddr,
    /// The local address.
    pub local: SocketAddr,
}

/// Registers services, then [`Server::serve`]s them.
pub struct Server {
    registry: Registry,
    services: HashMap<(u32, u32), Arc<dyn Service>>,
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

struct Shared {
    registry: Registry,
    services: HashMap<(u32, u32), Arc<dyn Service>>,
    options: ServerOptions,
    identity: Option<Arc<ServerIdentity>>,
    counters: Counters,
    connections: std::sync::Mutex<HashMap<u64, ConnectionInfo>>,
    verdicts: std::sync::Mutex<std::collections::VecDeque<Verdict>>,
    /// Connection ids: a random start, then a counter, so ids from two
    /// servers (or two runs) are not easily confused in logs.
    next_id: AtomicU64,
}

/// A server that is running. Dropping it does not stop the server: call
/// [`RunningServer::shutdown`].
#[derive(Debug)]
pub struct RunningServer {
    local_addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    shared: Arc<SharedHandle>,
    /// The accept loops. Held as plain handles: dropping one detaches the
    /// task, so dropping the RunningServer leaves the server running.
    tasks: Vec<tokio::task::JoinHandle<()>>,
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
    pub fn service(mut self, program: u32, version: u32, service: impl Service) -> Server {
        self.registry.add(program, version);
        self.services.insert((program, version), Arc::new(service));
        self
    }

    /// Listens on each address and serves. Must be called inside a tokio
    /// runtime. Port 0 picks a free port; see [`RunningServer::local_addrs`].
    pub fn serve(self, addresses: &[Endpoint]) -> Result<RunningServer, Error> {
        let mut listeners = Vec::new();
        for address in addresses {
            listeners.push(listen(address, &self.options.listen)?);
        }
        let local_addrs = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<io::Result<Vec<_>>>()
            .map_err(|error| Error::Listen {
                address: addresses[0].clone(),
                error,
            })?;
        let identity = self.options.identity.clone().map(|mut identity| {
            let missing = identity.peers.resolve_scopes(|name| nix::net::if_::if_nametoindex(name).ok());
            for name in missing {
                warn!(interface = %name, "peer table names an interface this host lacks; its entries match nothing");
            }
            Arc::new(identity)
        });
        let shared = Arc::new(Shared {
            registry: self.registry,
            services: self.services,
            counters: Counters::default(),
            options: self.options,
            identity,
            connections: std::sync::Mutex::new(HashMap::new()),
            verdicts: std::sync::Mutex::new(std::collections::VecDeque::new()),
            next_id: AtomicU64::new(rand::random::<u64>() >> 16),
        });
        let (shutdown, watch) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(shared.options.max_connections));
        let mut tasks = Vec::new();
        for listener in listeners {
            tasks.push(tokio::spawn(accept_loop(
                listener,
                shared.clone(),
                slots.clone(),
                watch.clone(),
            )));
        }
        Ok(RunningServer {
            local_addrs,
            shutdown,
            shared: Arc::new(SharedHandle(shared)),
            tasks,
        })
    }
}

impl RunningServer {
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
        }
    }

    /// The last [`VERDICTS_KEPT`] inbound verdicts, newest first.
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

    /// Graceful shutdown: stop accepting, stop reading new calls, let calls
    /// in progress finish within the grace period, then close everything.
    /// Returns when every connection is closed.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        // Take a slot first: at the connection limit, accepting pauses and
        // the kernel's backlog holds new peers.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = stopped(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut shutdown) => break,
        };
        let (stream, observed) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Admission runs before a single byte is read.
        if !shared.options.admission.admits(CanonicalIp::from(observed)) {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            warn!(%observed, "connection refused by admission; closed unread");
            record_verdict(&shared, observed, None, Some("address not admitted".into()));
            drop(stream);
            continue;
        }
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        if shared.identity.is_none() {
            // Admission is the whole verdict; with an identity, HELLO is.
            record_verdict(&shared, observed, None, None);
        }
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let local = stream.local_addr().ok();
            if let Err(error) = serve_connection(stream, observed, shared.clone(), shutdown).await {
                debug!(%observed, ?local, %error, "connection ended with an error");
            }
            shared.counters.closed.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum ConnectionEnd {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("bad record: {0}")]
    Record(crate::proto::DecodeError),
    #[error("idle for {0:?}")]
    Idle(Duration),
    #[error("peer stopped reading")]
    WriteStalled,
    #[error("no HELLO within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("handshake refused")]
    Refused,
}

async fn serve_connection(
    stream: TcpStream,
    observed: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConnectionEnd> {
    let local = stream.local_addr()?;
    let opts = &shared.options;
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    // Replies go to the writer unencoded: it encodes each straight into its
    // batch buffer.
    let (out_tx, out_rx) = mpsc::channel::<Message>(opts.max_in_progress.max(1) * 2);
    let mut writer_task = tokio::spawn(write_loop(writer, out_rx, opts.write_timeout));
    let mut conn = ServerConnection::new(opts.limits, opts.max_in_progress);
    if let Some(identity) = &shared.identity {
        conn = conn.with_identity(identity.clone(), observed);
    }
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let _registered = Registered::new(
        &shared,
        ConnectionInfo {
            id,
            peer: None,
            observed,
            local,
        },
    );
    let handshake = tokio::time::sleep(opts.handshake_timeout);
    tokio::pin!(handshake);
    let mut refused = false;
    let mut handlers: JoinSet<(u32, Result<Bytes, ProcError>)> = JoinSet::new();
    // The read buffer is allocated when bytes arrive and given back when
    // the connection goes quiet, so an idle connection holds none.
    let mut buf = BytesMut::new();
    let mut eof = false;
    let mut stopping = false;
    let idle = tokio::time::sleep(opts.idle_timeout);
    tokio::pin!(idle);
    let grace = tokio::time::sleep(Duration::MAX.min(Duration::from_secs(86_400 * 365)));
    tokio::pin!(grace);

    let result = loop {
        // Decide about everything already buffered, while there is room.
        while conn.can_read() && !stopping {
            let inbound = if eof {
                conn.receive_eof(&mut buf, &shared.registry)
            } else {
                conn.receive(&mut buf, &shared.registry)
            };
            if let Ok(Some(_)) = &inbound {
                // Only a whole record is progress: a record trickled in a
                // byte at a time does not keep the connection open.
                idle.as_mut()
                    .reset(tokio::time::Instant::now() + opts.idle_timeout);
            }
            match inbound {
                Ok(Some(Inbound::Reply(message))) => {
                    send(&out_tx, message).await;
                    if let Some(peer) = conn.peer()
                        && _registered.identify(peer)
                    {
                        record_verdict(&shared, observed, Some(peer.clone()), None);
                    }
                }
                Ok(Some(Inbound::Dispatch(call))) => {
                    shared.counters.calls.fetch_add(1, Ordering::Relaxed);
                    let peer = conn.peer().cloned();
                    spawn_handler(&mut handlers, &shared, call, observed, local, peer);
                }
                Ok(Some(Inbound::Refuse {
                    reply,
                    claimed,
                    refusal,
                })) => {
                    send(&out_tx, reply).await;
                    shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    let reason = match &refusal {
                        Some(refusal) => refusal.to_string(),
                        None if claimed.is_some() => "a second HELLO with another node ID".into(),
                        None => "a call before HELLO".into(),
                    };
                    record_verdict(&shared, observed, claimed.clone(), Some(reason));
                    match (&claimed, &refusal) {
                        (Some(claimed), Some(refusal)) => warn!(
                            conn = id, %observed, %claimed, %refusal,
                            "HELLO refused; closing"
                        ),
                        (Some(claimed), None) => {
                            warn!(conn = id, %observed, %claimed, "second HELLO with another node ID; closing")
                        }
                        _ => warn!(conn = id, %observed, "call before HELLO; closing"),
                    }
                    stopping = true;
                    refused = true;
                }
                Ok(Some(Inbound::Dropped(why))) => {
                    shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    debug!(%observed, ?why, "record dropped");
                }
                Ok(None) => break,
                Err(error) => {
                    stopping = true;
                    if handlers.is_empty() {
                        drop(out_tx);
                        let _ = writer_task.await;
                        return Err(ConnectionEnd::Record(error));
                    }
                    warn!(%observed, %error, "bad record; closing once calls in progress finish");
                }
            }
        }
        if (eof || stopping) && handlers.is_empty() {
            break Ok(());
        }
        let reading = conn.can_read() && !eof && !stopping;
        if buf.is_empty() && handlers.is_empty() && conn.is_idle() {
            buf = BytesMut::new();
        }
        tokio::select! {
            ready = reader.readable(), if reading => {
                if let Err(error) = ready {
                    break Err(error.into());
                }
                if buf.capacity() - buf.len() < READ_CHUNK / 2 {
                    buf.reserve(READ_CHUNK);
                }
                match reader.try_read_buf(&mut buf) {
                    Ok(0) => eof = true,
                    Ok(_) => {}
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => break Err(error.into()),
                }
            }
            Some(done) = handlers.join_next(), if !handlers.is_empty() => {
                let (xid, outcome) = match done {
                    Ok(done) => done,
                    Err(join) => {
                        // The task's id is the only trace of its XID here,
                        // so handlers carry their XID; a panic loses it. See
                        // spawn_handler, which catches panics itself.
                        warn!(%observed, error = %join, "handler task failed");
                        continue;
                    }
                };
                let reply = conn.complete(xid, outcome);
                send(&out_tx, reply).await;
                if handlers.is_empty() {
                    idle.as_mut().reset(tokio::time::Instant::now() + opts.idle_timeout);
                }
            }
            () = &mut handshake, if conn.awaiting_hello() && !stopping => {
                warn!(conn = id, %observed, "no HELLO within the handshake timeout; closing");
                record_verdict(&shared, observed, None, Some("no HELLO within the handshake timeout".into()));
                break Err(ConnectionEnd::HandshakeTimeout(opts.handshake_timeout));
            }
            () = &mut idle, if handlers.is_empty() && !stopping => {
                break Err(ConnectionEnd::Idle(opts.idle_timeout));
            }
            () = stopped(&mut shutdown), if !stopping => {
                stopping = true;
                grace.as_mut().reset(tokio::time::Instant::now() + opts.shutdown_grace);
            }
            () = &mut grace, if stopping => {
                warn!(%observed, left = handlers.len(), "shutdown grace period over; abandoning calls in progress");
                handlers.abort_all();
                break Ok(());
            }
            _ = &mut writer_task => break Err(ConnectionEnd::WriteStalled),
        }
    };
    // Let queued replies out, then close.
    drop(out_tx);
    if !writer_task.is_finished() {
        let _ = writer_task.await;
    }
    if refused {
        return Err(ConnectionEnd::Refused);
    }
    result
}

/// Bytes reserved for a read when the buffer runs low.
const READ_CHUNK: usize = 8 * 1024;

/// Keeps a connection in the server's list while it lives.
struct Registered<'a> {
    shared: &'a Shared,
    id: u64,
}

impl<'a> Registered<'a> {
    fn new(shared: &'a Shared, info: ConnectionInfo) -> Registered<'a> {
        let id = info.id;
        shared
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, info);
        Registered { shared, id }
    }

    /// Records the peer's node ID; true the first time.
    fn identify(&self, peer: &NodeId) -> bool {
        let mut map = self
            .shared
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match map.get_mut(&self.id) {
            Some(info) if info.peer.as_ref() != Some(peer) => {
                info.peer = Some(peer.clone());
                true
            }
            _ => false,
        }
    }
}

fn record_verdict(
    shared: &Shared,
    observed: SocketAddr,
    peer: Option<NodeId>,
    reason: Option<String>,
) {
    let mut list = shared.verdicts.lock().unwrap_or_else(|p| p.into_inner());
    if list.len() == VERDICTS_KEPT {
        list.pop_back();
    }
    list.push_front(Verdict {
        observed,
        peer,
        accepted: reason.is_none(),
        reason,
        at: std::time::SystemTime::now(),
    });
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.shared
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Resolves once shutdown has been asked for. A dropped RunningServer
/// asks nothing: the server runs on until the runtime ends.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn spawn_handler(
    handlers: &mut JoinSet<(u32, Result<Bytes, ProcError>)>,
    shared: &Arc<Shared>,
    call: Dispatch,
    observed: SocketAddr,
    local: SocketAddr,
    peer: Option<NodeId>,
) {
    let Dispatch {
        xid,
        program,
        version,
        procedure,
        cred,
        args,
    } = call;
    let Some(service) = shared.services.get(&(program, version)).cloned() else {
        handlers.spawn(async move { (xid, Err(ProcError::ProcUnavail)) });
        return;
    };
    let ctx = CallContext {
        observed,
        local,
        xid,
        program,
        version,
        cred,
        peer,
    };
    let shared = shared.clone();
    handlers.spawn(async move {
        // A panic is caught here, inside the handler's task, so that it is
        // answered with SYSTEM_ERR with the XID still known. The call is
        // made inside the guarded future: a handler that panics before
        // returning its future is caught too.
        let guarded = AssertUnwindSafe(async move { service.call(ctx, procedure, args).await });
        match guarded.catch_unwind().await {
            Ok(outcome) => (xid, outcome),
            Err(_) => {
                shared.counters.panics.fetch_add(1, Ordering::Relaxed);
                warn!(
                    xid,
                    program, version, procedure, "handler panicked; answered SYSTEM_ERR"
                );
                (xid, Err(ProcError::SystemErr))
            }
        }
    });
}

async fn send(out: &mpsc::Sender<Message>, message: Message) {
    // A closed channel means the writer has stopped; the loop notices.
    let _ = out.send(message).await;
}

/// Owns the write half: encodes queued replies into one batch of whole
/// records (reusing the buffer), each write bounded by `timeout`.
async fn write_loop(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::Receiver<Message>,
    timeout: Duration,
) {
    let mut batch = BytesMut::new();
    while let Some(first) = rx.recv().await {
        batch.clear();
        crate::codec::encode_record(&first, &mut batch);
        drop(first);
        while batch.len() < 64 * 1024 {
            match rx.try_recv() {
                Ok(more) => crate::codec::encode_record(&more, &mut batch),
                Err(_) => break,
            }
        }
        match tokio::time::timeout(timeout, writer.write_all(&batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                debug!(%error, "write failed");
                return;
            }
            Err(_) => {
                info!(?timeout, "peer stopped reading; closing");
                return;
            }
        }
    }
    let _ = writer.shutdown().await;
}
