//! The RPC client: a cloneable handle to one peer.
//!
//! One task per client owns the connection: it connects (with backoff and
//! a circuit breaker), says HELLO, writes the records callers queue, reads
//! replies and hands each to its caller, and runs the deadlines and the
//! heartbeat from one timer. Callers do not hand their calls to it: each
//! encodes its record straight into the connection's outbox under one short
//! lock (see `core`), and waits on a slot that the task fills. Only whole
//! records are queued, so a caller that drops its future never leaves half
//! a record on the wire.
//!
//! The task is fair to the others on its runtime: each record it delivers
//! (like each read and write) costs a unit of tokio's cooperative budget
//! ([`tokio::task::coop`], 128 units a poll), and once the budget is spent
//! it yields, the records left waiting in its buffer in order. A server
//! that floods one client with replies delays no other client on the
//! runtime by more than one such poll at a time.

mod connection;
mod core;
mod handshake;
mod link;
mod options;
#[cfg(feature = "tls")]
mod starttls;
mod supervisor;
mod unix;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{Semaphore, TryAcquireError, watch};
use tokio::time::Instant;

use self::core::{CallArgs, CallInfo, Core, Counters, Inner, Typed};
use self::link::ConnectFn;
pub use self::link::{Link, LinkFuture};
pub use self::options::{CallOptions, ClientIdentity, ClientOptions, MismatchPolicy};
use crate::addr::{Address, Endpoint};
use crate::connect::Connector;
use crate::error::Error;
use crate::peer::hello::HelloReply;
use crate::procedure::Procedure;
use crate::proto::CallHeader;
use crate::proto::xdr::{XdrDecode, XdrEncode, check_bounds, from_shared};
pub use crate::stream::Io;

/// The program and version a client pings with NULL by default: peerwire's
/// handshake program (any reply proves the peer alive, even PROG_UNAVAIL).
pub const DEFAULT_PING_PROGRAM: (u32, u32) = (0x2050_5752, 1);

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
    /// Requests with a byte handed to the kernel.
    pub sent: u64,
    /// Results delivered to a waiting caller.
    pub succeeded: u64,
    /// Errors delivered to a waiting caller (any but a timeout).
    pub failed: u64,
    /// Timeouts delivered to a waiting caller.
    pub timed_out: u64,
    /// Replies that came after their call timed out or was abandoned.
    pub late_replies: u64,
    /// Replies matching no call, and malformed messages.
    pub unknown_replies: u64,
    /// CALL messages the server sent us (dropped; a client serves nothing).
    pub unexpected_calls: u64,
    /// Connections made after the first.
    pub reconnects: u64,
}

/// A handle to one peer. Cheap to clone; all clones share the connection.
/// The connection closes when the last clone is dropped or
/// [`Client::close`] is called.
///
/// Many calls run at once on the one connection, matched by XID, each
/// with a deadline and an in-flight slot; the client reconnects with
/// backoff, behind a circuit breaker. Every async method is cancel-safe.
/// The guide's [calls chapter](crate::guide::calls) explains the slot rule
/// and `sent`; the options are in [`ClientOptions`].
///
/// ```
/// use bytes::Bytes;
/// use peerwire::{Client, ClientOptions, Endpoint, ScopedIp, Server, ServerOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peerwire::Error> {
/// let server = Server::new(ServerOptions::default())
///     .service(0x2000_0001, 1, |_ctx, _procedure, args: Bytes| async move { Ok(args) })
///     .serve(&["127.0.0.1:0".parse()?])?;
/// let peer = Endpoint::from(server.local_addrs()[0]);
///
/// // Every connection to the peer is bound to the source 127.0.0.2.
/// let options = ClientOptions::default().with_source("127.0.0.2".parse::<ScopedIp>()?);
/// let client = Client::new(vec![peer], options)?;
/// let reply = client.call(0x2000_0001, 1, 1, Bytes::from_static(b"ping")).await?;
/// assert_eq!(&reply[..], b"ping");
/// let peerwire::ConnectionState::Connected { local, .. } = client.state() else { unreachable!() };
/// assert_eq!(local.ip().to_string(), "127.0.0.2");
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    handle: Arc<Handle>,
}

/// Closes the client when the last [`Client`] clone goes.
#[derive(Debug)]
struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.close();
    }
}

/// The TLS material built by a constructor, before the client starts.
#[cfg(feature = "tls")]
type Prebuilt = Option<Arc<crate::tls::ClientShared>>;
#[cfg(not(feature = "tls"))]
type Prebuilt = NoTls;

/// What a constructor builds of the TLS material without the `tls`
/// feature: nothing.
#[cfg(not(feature = "tls"))]
#[derive(Default)]
struct NoTls;

/// Builds the TLS material of `options` now, so that an unusable one is
/// the constructor's error ([`Error::Tls`] with
/// [`TlsError::Config`](crate::tls::TlsError::Config)), not each
/// connect's.
fn prebuild_tls(peer: &Address, options: &ClientOptions) -> Result<Prebuilt, Error> {
    #[cfg(feature = "tls")]
    {
        options
            .tls
            .as_ref()
            .map(crate::tls::client_config)
            .transpose()
            .map_err(|error| Error::Tls {
                peer: Some(peer.clone()),
                error: Box::new(error),
            })
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = (peer, options);
        Ok(NoTls)
    }
}

impl Client {
    /// A client for the peer at `destinations` (tried by Happy Eyeballs).
    /// It connects on the first call or on [`Client::connect`]. Must be
    /// called inside a tokio runtime.
    ///
    /// An empty `destinations` is [`Error::NoDestinations`]. Bad
    /// [`ClientOptions::connect`] is [`Error::Config`]; unusable TLS
    /// material in [`ClientOptions::tls`] is [`Error::Tls`] with
    /// [`TlsError::Config`](crate::tls::TlsError::Config).
    pub fn new(destinations: Vec<Endpoint>, options: ClientOptions) -> Result<Client, Error> {
        let Some(peer) = destinations.first().cloned() else {
            return Err(Error::NoDestinations(
                "a client needs at least one destination".into(),
            ));
        };
        options.connect.validate()?;
        let peer = Address::from(peer);
        let prebuilt = prebuild_tls(&peer, &options)?;
        let connector = Connector::new(options.connect.clone());
        let connect: ConnectFn = Arc::new(move || {
            let (connector, destinations) = (connector.clone(), destinations.clone());
            Box::pin(async move { connector.connect_any(&destinations).await.map(Link::from) })
        });
        Ok(Client::start(peer, options, connect, prebuilt))
    }

    /// A client over a transport of your own: `connect` is called for each
    /// connection attempt. `peer` names the peer in errors. Useful for
    /// tunnels, Unix sockets and tests; [`ClientOptions::connect`] is unused.
    /// Must be called inside a tokio runtime.
    ///
    /// Unusable TLS material in [`ClientOptions::tls`] fails each connect
    /// here (there is no constructor error to report it), where
    /// [`Client::new`] refuses it at once.
    pub fn with_transport<F, Fut>(
        peer: impl Into<Address>,
        options: ClientOptions,
        connect: F,
    ) -> Client
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Link, Error>> + Send + 'static,
    {
        let connect: ConnectFn = Arc::new(move || Box::pin(connect()));
        Client::start(peer.into(), options, connect, Prebuilt::default())
    }

    fn start(
        peer: Address,
        options: ClientOptions,
        connect: ConnectFn,
        prebuilt: Prebuilt,
    ) -> Client {
        #[cfg(not(feature = "tls"))]
        let NoTls = prebuilt;
        let (state, _) = watch::channel(ConnectionState::Idle);
        let permits = Semaphore::new(options.max_in_flight.clamp(1, Semaphore::MAX_PERMITS));
        let inner = Arc::new(Inner {
            peer,
            options,
            counters: Counters::default(),
            state,
            attempts: AtomicU64::new(0),
            last_attempt_tried: AtomicBool::new(false),
            failures: AtomicU32::new(0),
            hello: Mutex::new(None),
            tls_peer: Mutex::new(None),
            #[cfg(feature = "tls")]
            tls: Mutex::new(self::core::TlsMaterial {
                material: prebuilt.map(Ok),
                epoch: 0,
            }),
            #[cfg(feature = "tls")]
            tls_epoch: AtomicU64::new(0),
            #[cfg(feature = "tls")]
            presented: Mutex::new(None),
            last_connect_error: Mutex::new(None),
            permits,
            core: Mutex::new(Core::default()),
            task: Default::default(),
        });
        tokio::spawn(supervisor::run(inner.clone(), connect));
        Client {
            handle: Arc::new(Handle { inner }),
        }
    }

    fn inner(&self) -> &Inner {
        &self.handle.inner
    }

    /// The peer this client serves (its first destination, or its Unix
    /// socket path).
    pub fn peer(&self) -> &Address {
        &self.inner().peer
    }

    /// Connects now, HELLO included, unless already connected, and returns
    /// the error if that fails ([`Error::Unreachable`] with the cause, or
    /// [`Error::CircuitOpen`] while the breaker is open). Calls do not need
    /// it: they connect on demand. Cancel-safe.
    pub async fn connect(&self) -> Result<(), Error> {
        let inner = self.inner();
        let mut state = inner.state.subscribe();
        let before = inner.attempts.load(Ordering::Acquire);
        if let ConnectionState::Connected { .. } = *state.borrow_and_update() {
            return Ok(());
        }
        {
            let mut core = inner.lock();
            if core.closed {
                return Err(self.closed());
            }
            core.want_connect = true;
            core.woken = true;
        }
        inner.wake_task();
        loop {
            let now = *state.borrow_and_update();
            let finished = inner.attempts.load(Ordering::Acquire) > before;
            let tried = inner.last_attempt_tried.load(Ordering::Acquire);
            match now {
                ConnectionState::Connected { .. } => return Ok(()),
                ConnectionState::Closed => return Err(self.closed()),
                ConnectionState::Open { until } if finished && !tried => {
                    return Err(Error::CircuitOpen {
                        peer: inner.peer.clone(),
                        failures: inner.failures.load(Ordering::Acquire),
                        next_attempt: until,
                    });
                }
                _ if finished => {
                    if let Some(error) = self.last_connect_error() {
                        return Err(Error::Unreachable {
                            peer: inner.peer.clone(),
                            error,
                        });
                    }
                }
                _ => {}
            }
            if state.changed().await.is_err() {
                return Err(self.closed());
            }
        }
    }

    /// The peer's last HELLO answer, with identity on: its node ID and the
    /// address it observed for us (already checked against our source).
    pub fn hello(&self) -> Option<HelloReply> {
        self.inner()
            .hello
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The server's certificate on the current (or last) link, over TLS:
    /// its CN, SANs and the TLS version. `None` without TLS.
    pub fn tls_peer(&self) -> Option<Arc<crate::tls::TlsPeer>> {
        self.inner()
            .tls_peer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the client's TLS material while it runs: its certificate
    /// and key, the CAs it trusts, their revocation lists
    /// ([`TlsIdentity::with_crls`](crate::tls::TlsIdentity::with_crls)),
    /// the mode and the rule for the server's certificate.
    ///
    /// - The new material is checked first; if it is unusable, the error
    ///   ([`Error::Tls`] with the client's peer and
    ///   [`TlsError::Config`](crate::tls::TlsError::Config)) says why and
    ///   nothing changes. (A certificate and key that do not fit, or a CRL
    ///   that no trusted CA signed, are refused earlier, when the
    ///   [`TlsIdentity`](crate::tls::TlsIdentity) is made.) A client made
    ///   without [`ClientOptions::tls`] cannot take it on:
    ///   [`ConfigError::TlsOff`](crate::ConfigError::TlsOff).
    /// - Every connection made after it returns uses the new material.
    /// - The established connection goes on untouched, whatever changed,
    ///   with one exception: when the new CRLs revoke the certificate the
    ///   server presented on it (judged as at its handshake: against the
    ///   roots and at the time of then), it is closed at once, its calls
    ///   in flight failing with [`crate::DisconnectCause::CertificateRevoked`];
    ///   the next call connects again and fails at the handshake with
    ///   [`CertError::Revoked`](crate::tls::CertError::Revoked) in an
    ///   [`Error::Tls`].
    #[cfg(feature = "tls")]
    pub fn update_tls(&self, tls: crate::tls::ClientTls) -> Result<(), Error> {
        let inner = self.inner();
        if inner.options.tls.is_none() {
            return Err(crate::ConfigError::TlsOff {
                peer: Some(inner.peer.clone()),
            }
            .into());
        }
        let material = crate::tls::client_config(&tls).map_err(|error| Error::Tls {
            peer: Some(inner.peer.clone()),
            error: Box::new(error),
        })?;
        {
            let mut state = inner.tls.lock().unwrap_or_else(|p| p.into_inner());
            state.material = Some(Ok(material));
            state.epoch += 1;
            inner.tls_epoch.store(state.epoch, Ordering::Release);
        }
        // A live connection judges its server's certificate again now.
        inner.wake_task();
        Ok(())
    }

    /// Why the last connection attempt failed (connect, source binding or
    /// HELLO), or `None` once an attempt has succeeded. Calls waiting for a
    /// connection fail with a timeout or [`Error::CircuitOpen`]; this is
    /// the cause behind them.
    pub fn last_connect_error(&self) -> Option<Arc<Error>> {
        self.inner()
            .last_connect_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The connection's state now.
    pub fn state(&self) -> ConnectionState {
        *self.inner().state.borrow()
    }

    /// A receiver that sees every change of state.
    pub fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.inner().state.subscribe()
    }

    /// The counters.
    pub fn stats(&self) -> ClientStats {
        let outcomes = self.inner().lock().outcomes;
        self.inner().counters.snapshot(outcomes)
    }

    /// Calls `procedure` of `program` version `version` with XDR-encoded
    /// `args`; returns the undecoded results.
    ///
    /// Cancel-safe: dropping the future at any point leaves the connection
    /// in sync. A request already queued is still written whole, and its
    /// XID (and its in-flight slot) stay reserved until its reply arrives
    /// or the connection closes.
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

    /// [`Client::call`] with per-call options: a deadline of its own, a
    /// credential and a verifier.
    ///
    /// Cancel-safe, as [`Client::call`]: a dropped call's record is written
    /// whole or not at all, and its slot stays held until its XID is free.
    ///
    /// ```
    /// # use bytes::Bytes;
    /// # use peerwire::{Client, ClientOptions, Endpoint, Server, ServerOptions};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peerwire::Error> {
    /// # let server = Server::new(ServerOptions::default())
    /// #     .service(0x2000_0001, 1, |_ctx, _procedure, args: Bytes| async move { Ok(args) })
    /// #     .serve(&["127.0.0.1:0".parse()?])?;
    /// # let client = Client::new(vec![Endpoint::from(server.local_addrs()[0])], ClientOptions::default())?;
    /// use std::time::Duration;
    /// use peerwire::CallOptions;
    ///
    /// let options = CallOptions { deadline: Some(Duration::from_secs(2)), ..CallOptions::default() };
    /// let reply = client.call_with(0x2000_0001, 1, 1, Bytes::from_static(b"hi"), &options).await?;
    /// assert_eq!(&reply[..], b"hi");
    /// # server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn call_with(
        &self,
        program: u32,
        version: u32,
        procedure: u32,
        args: Bytes,
        options: &CallOptions,
    ) -> Result<Bytes, Error> {
        self.call_args(program, version, procedure, args, options)
            .await
    }

    /// The one call path, for raw and typed arguments: the arguments are
    /// encoded into the connection's outbox under the lock, and the
    /// results come back as a slice of the reply's record.
    async fn call_args(
        &self,
        program: u32,
        version: u32,
        procedure: u32,
        args: impl CallArgs,
        options: &CallOptions,
    ) -> Result<Bytes, Error> {
        let inner = self.inner();
        let timeout = options.deadline.unwrap_or(inner.options.deadline);
        let deadline = Instant::now() + timeout;
        let info = CallInfo {
            program,
            version,
            procedure,
            timeout,
        };
        // Take a slot; the permit is given back by hand when the call's XID
        // is freed. When none is free, wait within the deadline (a boxed
        // future, so the common path's future stays small). Cancel-safe: a
        // dropped acquire takes nothing.
        match inner.permits.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(TryAcquireError::Closed) => return Err(self.closed()),
            Err(TryAcquireError::NoPermits) => {
                let wait = Box::pin(tokio::time::timeout_at(deadline, inner.permits.acquire()));
                match wait.await {
                    Ok(Ok(permit)) => permit.forget(),
                    Ok(Err(_)) => return Err(self.closed()),
                    Err(_) => {
                        inner.lock().outcomes.timed_out += 1;
                        return Err(connection::timeout(inner, info, false));
                    }
                }
            }
        }
        let header = CallHeader {
            cred: options.cred.clone(),
            verf: options.verf.clone(),
            ..CallHeader::new(program, version, procedure)
        };
        // The first poll registers the call with this task's waker (no
        // second look under the lock just to leave the waker); later polls
        // look for the outcome. Dropping the future between the two leaves
        // the call to the guard.
        let mut args = Some(args);
        let mut guard = Abandon { inner, key: None };
        std::future::poll_fn(|cx| match guard.key {
            Some(key) => {
                let answer = std::task::ready!(inner.poll_answer(key, cx));
                guard.key = None;
                std::task::Poll::Ready(answer)
            }
            None => {
                let args = args.take().expect("registered once");
                match inner.register(info, &header, args, deadline, cx.waker()) {
                    Ok(registered) => {
                        guard.key = Some(registered.key);
                        inner.kick(&registered);
                        std::task::Poll::Pending
                    }
                    Err(error) => std::task::Poll::Ready(Err(error)),
                }
            }
        })
        .await
    }

    /// Calls with typed arguments and results, by number:
    /// [`Client::call_proc`] with a [`Procedure`] made on the spot. The
    /// result type is named at the call. Arguments over an XDR bound are
    /// [`Error::BadArgs`] (nothing sent); results that do not decode as `R`
    /// are [`Error::BadResults`].
    ///
    /// Cancel-safe, as [`Client::call`].
    ///
    /// ```
    /// # use bytes::Bytes;
    /// # use peerwire::{Client, ClientOptions, Endpoint, Server, ServerOptions};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peerwire::Error> {
    /// # let server = Server::new(ServerOptions::default())
    /// #     .service(0x2000_0001, 1, |_ctx, _procedure, args: Bytes| async move { Ok(args) })
    /// #     .serve(&["127.0.0.1:0".parse()?])?;
    /// # let client = Client::new(vec![Endpoint::from(server.local_addrs()[0])], ClientOptions::default())?;
    /// use peerwire::proto::xdr::XdrString;
    ///
    /// // The echo server hands the XDR string back as it came.
    /// let echoed: XdrString = client.call_xdr(0x2000_0001, 1, 1, &XdrString::from("colour")).await?;
    /// assert_eq!(echoed.to_str().ok(), Some("colour"));
    /// # server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
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
        let proc = Procedure::new(program, version, procedure, "");
        self.call_proc(&proc, args).await
    }

    /// Calls `proc` with typed arguments and results, with the default
    /// [`CallOptions`]. Arguments with an item over its XDR bound are
    /// [`Error::BadArgs`], and nothing is sent; results that do not decode
    /// as `R` (or leave bytes over) are [`Error::BadResults`]. Cancel-safe,
    /// as [`Client::call`].
    ///
    /// As fast as a raw call: the arguments are encoded straight into the
    /// connection's write buffer (no buffer of their own), and `Bytes` and
    /// [`XdrString`](crate::proto::xdr::XdrString) fields of the results
    /// are slices of the reply as received (no copy).
    pub async fn call_proc<A, R>(&self, proc: &Procedure<A, R>, args: &A) -> Result<R, Error>
    where
        A: XdrEncode + ?Sized,
        R: XdrDecode,
    {
        self.call_proc_with(proc, args, &CallOptions::default())
            .await
    }

    /// [`Client::call_proc`] with per-call options. Cancel-safe, as
    /// [`Client::call`].
    pub async fn call_proc_with<A, R>(
        &self,
        proc: &Procedure<A, R>,
        args: &A,
        options: &CallOptions,
    ) -> Result<R, Error>
    where
        A: XdrEncode + ?Sized,
        R: XdrDecode,
    {
        let (program, version, procedure) = (proc.program, proc.version, proc.procedure);
        check_bounds(args).map_err(|error| Error::BadArgs {
            peer: self.inner().peer.clone(),
            error,
        })?;
        let results = self
            .call_args(program, version, procedure, Typed(args), options)
            .await?;
        from_shared(&results).map_err(|error| Error::BadResults {
            peer: self.inner().peer.clone(),
            error,
        })
    }

    /// Calls NULL (procedure 0): a round trip that checks the peer serves
    /// this program version (a peerwire server answers NULL for every
    /// program version it serves). A program it does not serve is
    /// [`Error::CallRejected`].
    ///
    /// Cancel-safe, as [`Client::call`].
    ///
    /// ```
    /// # use bytes::Bytes;
    /// # use peerwire::{Client, ClientOptions, Endpoint, Server, ServerOptions};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peerwire::Error> {
    /// # let server = Server::new(ServerOptions::default())
    /// #     .service(0x2000_0001, 1, |_ctx, _procedure, args: Bytes| async move { Ok(args) })
    /// #     .serve(&["127.0.0.1:0".parse()?])?;
    /// # let client = Client::new(vec![Endpoint::from(server.local_addrs()[0])], ClientOptions::default())?;
    /// client.null(0x2000_0001, 1).await?;
    /// assert!(matches!(client.null(0x2000_0002, 1).await, Err(peerwire::Error::CallRejected { .. })));
    /// # server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn null(&self, program: u32, version: u32) -> Result<(), Error> {
        self.call(program, version, 0, Bytes::new()).await.map(drop)
    }

    /// Closes the connection; pending calls fail with
    /// [`crate::DisconnectCause::ClientClosed`], and later calls with
    /// [`Error::ClientClosed`].
    pub fn close(&self) {
        self.inner().close();
    }

    fn closed(&self) -> Error {
        Error::ClientClosed {
            peer: self.inner().peer.clone(),
        }
    }
}

/// Tells the connection when a caller drops its future mid-call.
struct Abandon<'a> {
    inner: &'a Inner,
    key: Option<self::core::Key>,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.inner.abandon(key);
        }
    }
}
