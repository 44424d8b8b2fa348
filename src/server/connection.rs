//! One server connection's task: reads, dispatches, writes and keeps its
//! timers in one poll function, so no wait on one side can hold up another
//! (a peer that floods calls and never reads still meets every timer).
//! What is done with each record read (the request pipeline) is in
//! [`pipeline`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

mod pipeline;
#[cfg(feature = "tls")]
mod starttls;

use super::accept::stopped;
use super::handler::Handlers;
#[cfg(feature = "tls")]
use super::verdicts::record_verdict_tls;
use super::verdicts::{Registered, record_verdict, record_verdict_with};
use super::{ConnectionInfo, Policy, ProcError, Shared, VerdictReason};
use crate::addr::CanonicalIp;
use crate::conn::{Expired, Outbox, ServerConnection};
use crate::drive::{Quiet, QuietClock, Timer, poll_flush, poll_yield};
use crate::peer::PeerCredentials;
use crate::proto::DecodeError;
use crate::stream::Transport;
#[cfg(feature = "tls")]
use crate::tls::Cn;
use crate::tls::TlsPeer;

/// Turns of the poll loop before the task yields to others, if tokio's
/// cooperative budget has not made it yield first.
const TURNS: usize = 32;

/// Replies waiting to be written beyond which the connection stops reading
/// new calls: a peer that does not read its replies is pushed back by TCP.
const OUTBOX_HIGH_WATER: usize = 1024 * 1024;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectionEnd {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("bad record: {0}")]
    Record(DecodeError),
    #[error("idle for {0:?}")]
    Idle(Duration),
    #[error("peer stopped reading for {0:?}")]
    WriteStalled(Duration),
    #[error("no HELLO within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("handshake refused")]
    Refused,
    #[error("shutdown grace period over")]
    GraceOver,
    #[error("no longer allowed after a policy change")]
    NoLongerAllowed,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    #[error("the peer's certificate is revoked by the updated CRLs")]
    NoLongerTrusted,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    #[error("TLS refused")]
    Tls,
}

/// Serves an accepted TCP connection; `policy` has seen the lists it was
/// admitted by.
pub(super) async fn serve_connection(
    stream: TcpStream,
    observed: SocketAddr,
    id: u64,
    shared: Arc<Shared>,
    policy: watch::Receiver<Arc<Policy>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConnectionEnd> {
    let local = stream.local_addr()?;
    let _ = stream.set_nodelay(true);
    // The HELLO timer counts from the accept, TLS handshake included.
    let accepted = Instant::now();
    let (transport, tls, trusted) = match open(stream, observed, id, &shared, &mut shutdown).await {
        Some(Ok(opened)) => opened,
        Some(Err(end)) => return Err(end),
        None => return Ok(()),
    };
    let peer = Peer {
        observed,
        local,
        credentials: None,
        tls,
        trusted,
    };
    serve_transport(transport, peer, accepted, id, shared, policy, shutdown).await
}

/// What a connection's transport says about its peer.
pub(super) struct Peer {
    pub(super) observed: SocketAddr,
    pub(super) local: SocketAddr,
    /// A Unix socket's peer: judged by these, not by `observed`.
    pub(super) credentials: Option<PeerCredentials>,
    /// The peer's certificate, over TLS.
    pub(super) tls: Option<Arc<TlsPeer>>,
    /// The peer's certificate chain as presented, over TLS.
    pub(super) trusted: Option<Trusted>,
}

/// A TLS peer's certificate chain as presented, and the revocation check
/// it last passed: to judge it again when the CRLs change.
#[derive(Debug)]
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(super) struct Trusted {
    #[cfg(feature = "tls")]
    presented: crate::tls::Presented,
    #[cfg(feature = "tls")]
    passed: Arc<crate::tls::Revocation>,
}

/// Serves a connection over any transport, accepted at `accepted`.
/// `peer.credentials` is set for a Unix socket: the HELLO gate does not
/// apply there (see `super::unix`).
///
/// `policy` has seen the lists the connection was admitted by, at accept.
/// They may have changed since (while the task was being spawned, or
/// during the TLS handshake), and may change at any time: the connection
/// judges itself again before it decides about anything it has read
/// whenever they have ([`Connection::catch_up`]), so nothing it reads
/// after [`super::RunningServer::update`] returns is served under the old
/// lists.
pub(super) async fn serve_transport(
    transport: Transport,
    peer: Peer,
    accepted: Instant,
    id: u64,
    shared: Arc<Shared>,
    policy: watch::Receiver<Arc<Policy>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConnectionEnd> {
    let Peer {
        observed,
        local,
        credentials,
        tls,
        trusted,
    } = peer;
    let opts = &shared.options;
    let mut state = ServerConnection::new(opts.limits.record_limits(), opts.max_in_progress)
        .with_timeouts(
            accepted.into_std(),
            opts.idle_timeout,
            opts.handshake_timeout,
        )
        .with_max_args(opts.limits.max_payload());
    if let Some(peer) = &tls {
        state = state.with_certificate_cn(peer.cn.clone());
    }
    // Wakes the task when the lists change, so that an idle connection
    // is judged again at once; a clone has seen what `policy` has.
    let mut changes = policy.clone();
    let current = policy.borrow().clone();
    if let Some(identity) = &current.identity
        && credentials.is_none()
    {
        state = state
            .with_identity(identity.clone(), observed)
            .with_limits_before_hello(opts.record_limits_before_hello());
    }
    let registered = Registered::new(
        &shared,
        ConnectionInfo {
            id,
            peer: None,
            observed,
            local,
            credentials,
            tls: tls.clone(),
        },
    );
    let mut conn = Connection {
        shared: &shared,
        registered,
        id,
        observed,
        local,
        credentials,
        transport,
        tls,
        trusted,
        state,
        read: BytesMut::new(),
        eof: false,
        out: Outbox::new(),
        handlers: Handlers::new(),
        timer: Timer::new(),
        stalled_since: None,
        stopping: false,
        grace: None,
        refused: false,
        broken: None,
        quiet: QuietClock::default(),
        dispatched: 0,
        verdict_given: false,
        shutting_down: false,
        policy,
    };
    if let Some(end) = conn.catch_up() {
        conn.last_verdict();
        return Err(end);
    }
    let mut watching = true;
    let end = loop {
        tokio::select! {
            end = std::future::poll_fn(|cx| conn.poll(cx)) => break end,
            () = stopped(&mut shutdown), if !conn.stopping => {
                conn.stop(Instant::now());
            }
            changed = changes.changed(), if watching => {
                if changed.is_err() {
                    watching = false;
                    continue;
                }
                changes.borrow_and_update();
                if let Some(end) = conn.catch_up() {
                    break Err(end);
                }
            }
        }
    };
    conn.last_verdict();
    end
}

/// The connection's byte stream, and what it says about the peer.
type Opened = (Transport, Option<Arc<TlsPeer>>, Option<Trusted>);

/// Makes the connection's byte stream: plain TCP, or TLS (after the probe
/// in STARTTLS mode) checked against the observed address, with the TLS
/// material in force when the handshake starts. `None`: the server shut
/// down meanwhile.
async fn open(
    stream: TcpStream,
    observed: SocketAddr,
    id: u64,
    shared: &Arc<Shared>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Result<Opened, ConnectionEnd>> {
    #[cfg(not(feature = "tls"))]
    {
        let _ = (observed, id, shared, shutdown);
        Some(Ok((Transport::tcp(stream), None, None)))
    }
    #[cfg(feature = "tls")]
    {
        use self::starttls::{BeforeTls, before_tls};
        use crate::tls::handshake::{Refused, accept};
        let material = shared.policy.borrow().tls.clone();
        let Some(config) = material else {
            return Some(Ok((Transport::tcp(stream), None, None)));
        };
        let opts = &shared.options;
        /// How the opening ended, before or in the handshake.
        enum Failed {
            Before(BeforeTls),
            Tls(Refused),
        }
        let handshake = async {
            let mut stream = stream;
            before_tls(&mut stream, config.mode())
                .await
                .map_err(Failed::Before)?;
            accept(Transport::tcp(stream), &config, observed.ip())
                .await
                .map_err(Failed::Tls)
        };
        let result = tokio::select! {
            result = tokio::time::timeout(opts.handshake_timeout, handshake) => result,
            () = stopped(shutdown) => return None,
        };
        let counters = &shared.counters;
        let (reason, peer) = match result {
            Ok(Ok((transport, peer, presented))) => {
                debug!(conn = id, %observed, cn = %Cn(&peer.cn), serial = %peer.serial, version = %peer.version, "TLS established");
                if shared.policy.borrow().identity.is_none() {
                    // The certificate is the whole verdict here; with an
                    // identity, HELLO is.
                    record_verdict_tls(shared, observed, None, None, Some(peer.clone()));
                }
                let trusted = presented.map(|presented| Trusted {
                    presented,
                    passed: config.revocation().clone(),
                });
                return Some(Ok((transport, Some(peer), trusted)));
            }
            Err(_) => {
                counters.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
                warn!(conn = id, %observed, "no TLS handshake within the handshake timeout; closing");
                (VerdictReason::HandshakeTimeout, None)
            }
            Ok(Err(Failed::Before(BeforeTls::PlainText(why)))) => {
                warn!(conn = id, %observed, %why, "plain text refused: TLS required; closing");
                (VerdictReason::PlainTextRefused, None)
            }
            Ok(Err(Failed::Tls(Refused::Certificate(rule, Some(peer))))) => {
                warn!(conn = id, %observed, cn = %Cn(&peer.cn), sans = ?peer.ip_sans, %rule, "certificate refused; closing");
                (VerdictReason::Certificate(rule), Some(Arc::new(peer)))
            }
            Ok(Err(Failed::Tls(Refused::Certificate(rule, None)))) => {
                warn!(conn = id, %observed, %rule, "certificate refused; closing");
                (VerdictReason::Certificate(rule), None)
            }
            Ok(Err(Failed::Tls(Refused::Handshake(error)))) => {
                warn!(conn = id, %observed, %error, "TLS handshake failed; closing");
                (VerdictReason::TlsHandshake(error), None)
            }
            Ok(Err(Failed::Before(BeforeTls::Io(error)))) => {
                warn!(conn = id, %observed, %error, "TLS handshake failed; closing");
                (VerdictReason::TlsHandshake(error), None)
            }
            Ok(Err(Failed::Before(BeforeTls::Closed))) => {
                debug!(conn = id, %observed, "closed before the TLS handshake");
                counters.closed_before_hello.fetch_add(1, Ordering::Relaxed);
                (VerdictReason::ClosedBeforeHello, None)
            }
        };
        if !matches!(
            reason,
            VerdictReason::ClosedBeforeHello | VerdictReason::HandshakeTimeout
        ) {
            counters.rejected.fetch_add(1, Ordering::Relaxed);
        }
        record_verdict_tls(shared, observed, None, Some(reason), peer);
        Some(Err(ConnectionEnd::Tls))
    }
}

struct Connection<'a> {
    shared: &'a Arc<Shared>,
    registered: Registered<'a>,
    id: u64,
    observed: SocketAddr,
    local: SocketAddr,
    /// A Unix socket's peer: judged by these, not by `observed`.
    credentials: Option<PeerCredentials>,
    transport: Transport,
    /// The peer's certificate, over TLS.
    tls: Option<Arc<TlsPeer>>,
    /// Its chain as presented, and the revocation check it last passed.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    trusted: Option<Trusted>,
    state: ServerConnection,
    /// Allocated when bytes arrive; given back when the connection is quiet.
    read: BytesMut,
    eof: bool,
    out: Outbox<()>,
    handlers: Handlers,
    /// One timer for every deadline: HELLO, idle, write stall, grace.
    timer: Timer,
    /// Since when replies have waited for a peer that does not read.
    stalled_since: Option<Instant>,
    /// No new calls are read: shutdown, a refused HELLO, or a bad record.
    stopping: bool,
    grace: Option<Instant>,
    refused: bool,
    /// The record marking broke: close once calls in progress finish.
    broken: Option<DecodeError>,
    /// When the buffers go back.
    quiet: QuietClock,
    /// Calls dispatched, not yet added to the server's counter.
    dispatched: u64,
    /// A verdict was recorded for a connection that never passed HELLO.
    verdict_given: bool,
    /// The server is shutting down (our close, not the peer's fault).
    shutting_down: bool,
    /// Has seen the lists this connection was last judged by.
    policy: watch::Receiver<Arc<Policy>>,
}

impl Connection<'_> {
    /// Shutdown began: read no new calls, let those in progress finish
    /// within the grace period.
    fn stop(&mut self, now: Instant) {
        self.stopping = true;
        self.shutting_down = true;
        self.grace = Some(now + self.shared.options.shutdown_grace);
    }

    fn reading(&self) -> bool {
        !self.stopping && !self.eof && self.state.can_read() && self.out.len() < OUTBOX_HIGH_WATER
    }

    /// Runs the connection until it must wait. Each record costs a unit of
    /// tokio's cooperative budget (as each read and write does): once it is
    /// spent, the records left stay buffered, and the task yields until
    /// tokio has run the drivers and the other tasks.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectionEnd>> {
        for _ in 0..TURNS {
            // Before deciding about anything read so far (see `catch_up`).
            if let Some(end) = self.catch_up() {
                return Poll::Ready(Err(end));
            }
            let mut progress = false;
            let now = Instant::now();
            // Handlers that finished.
            while let Poll::Ready(Some((xid, outcome))) = self.handlers.poll_finished(cx) {
                let reply =
                    self.state
                        .complete(xid, outcome.map_err(ProcError::body), now.into_std());
                self.out.push((), &reply);
                progress = true;
            }
            // Replies left from the last poll first: calls waiting for
            // the budget must not hold them back.
            progress |= self.write(cx, now)?;
            // Calls already buffered, then more bytes.
            let mut spent = false;
            match self.dispatch(cx, now) {
                Poll::Ready(any) => progress |= any,
                Poll::Pending => spent = true,
            }
            self.publish();
            if !spent && self.reading() {
                match self.transport.poll_read_into(cx, &mut self.read) {
                    Poll::Ready(Ok(0)) => {
                        self.eof = true;
                        spent = self.dispatch(cx, now).is_pending();
                        self.publish();
                        progress = true;
                    }
                    Poll::Ready(Ok(_)) => progress = true,
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                    Poll::Pending => {}
                }
            }
            if !spent {
                progress |= self.write(cx, now)?;
            }
            // Done?
            let settled =
                self.handlers.running() == 0 && self.out.is_empty() && !self.transport.unflushed();
            if settled && !spent && (self.eof || self.stopping) {
                return Poll::Ready(self.ending());
            }
            // Timers.
            if let Err(end) = self.check_timers(now) {
                return Poll::Ready(end);
            }
            let release = self.release_when_quiet(now);
            let wake = self.next_wake().into_iter().chain(release).min();
            progress |= self.timer.poll_at(wake, cx);
            // Spent: tokio wakes the task once the others have run.
            if spent || !progress {
                return Poll::Pending;
            }
        }
        poll_yield(cx)
    }

    /// Writes the replies queued. True when some went out.
    fn write(&mut self, cx: &mut Context<'_>, now: Instant) -> Result<bool, ConnectionEnd> {
        if self.out.is_empty() && !self.transport.unflushed() {
            return Ok(false);
        }
        let before = self.out.len();
        match poll_flush(&mut self.transport, cx, &mut self.out, |()| {}) {
            Poll::Ready(Err(error)) => return Err(error.into()),
            Poll::Ready(Ok(())) => self.stalled_since = None,
            Poll::Pending if self.out.len() != before => self.stalled_since = Some(now),
            Poll::Pending => {
                self.stalled_since.get_or_insert(now);
            }
        }
        Ok(self.out.len() != before)
    }

    /// Judges this connection again if the server's lists changed since it
    /// was last judged; returns why it must close, if it must. One atomic
    /// load when they did not.
    ///
    /// Called before every turn of the poll loop, so before any record is
    /// decided about: a record read after [`super::RunningServer::update`]
    /// returned is decided about in a later turn (or, at the end of the
    /// stream, after this turn's check), and that turn's check sees the
    /// new lists. Hence an update is exact for what a connection reads
    /// after it, without `update` waiting for the connections.
    fn catch_up(&mut self) -> Option<ConnectionEnd> {
        if !self.policy.has_changed().unwrap_or(false) {
            return None;
        }
        let policy = self.policy.borrow_and_update().clone();
        self.rejudge(&policy)
    }

    /// The server's admission lists, peer table or TLS material changed:
    /// judges this connection again. Returns why it must close, if it
    /// must.
    fn rejudge(&mut self, policy: &Policy) -> Option<ConnectionEnd> {
        #[cfg(feature = "tls")]
        if let Some(end) = self.rejudge_certificate(policy) {
            return Some(end);
        }
        if let Some(credentials) = self.credentials {
            if policy.unix_admission.admits(&credentials) {
                return None;
            }
            let reason = VerdictReason::NoLongerAllowed(None);
            warn!(%reason, %credentials, "closing");
            record_verdict_with(
                self.shared,
                self.observed,
                Some(credentials),
                None,
                Some(reason),
            );
            self.verdict_given = true;
            return Some(ConnectionEnd::NoLongerAllowed);
        }
        if let Some(identity) = &policy.identity {
            self.state.set_identity(identity.clone());
        }
        let observed = CanonicalIp::from(self.observed);
        let refusal = if !policy.admission.admits(observed) {
            Some(None)
        } else {
            match (&policy.identity, self.state.peer()) {
                (Some(identity), Some(peer)) => {
                    identity.still_allows(peer, observed).err().map(Some)
                }
                _ => None,
            }
        }?;
        let peer = self.state.peer().cloned();
        let reason = VerdictReason::NoLongerAllowed(refusal);
        warn!(%reason, "closing");
        record_verdict(self.shared, self.observed, peer, Some(reason));
        self.verdict_given = true;
        Some(ConnectionEnd::NoLongerAllowed)
    }

    /// The TLS material changed: when its revocation lists are new, and
    /// they revoke the certificate the peer presented (judged as at the
    /// handshake), the connection must close. A path check only when the
    /// lists changed; a pointer comparison otherwise.
    #[cfg(feature = "tls")]
    fn rejudge_certificate(&mut self, policy: &Policy) -> Option<ConnectionEnd> {
        let (Some(trusted), Some(tls)) = (&mut self.trusted, &policy.tls) else {
            return None;
        };
        let revocation = tls.revocation();
        if Arc::ptr_eq(&trusted.passed, revocation) {
            return None;
        }
        trusted.passed = revocation.clone();
        let error = trusted.presented.revoked(revocation)?;
        let peer = self.state.peer().cloned();
        let reason = VerdictReason::NoLongerTrusted(error);
        warn!(%reason, "closing");
        let tls = self.tls.clone();
        record_verdict_tls(self.shared, self.observed, peer, Some(reason), tls);
        self.verdict_given = true;
        Some(ConnectionEnd::NoLongerTrusted)
    }

    /// A connection closed for bad framing is counted and logged, with or
    /// without an identity. A connection that ends before a successful
    /// HELLO always leaves a verdict: the ones recorded on the way
    /// (refusal, timeout), or here bad framing (over the pre-HELLO limit,
    /// or otherwise) or a close before HELLO.
    fn last_verdict(&mut self) {
        let counters = &self.shared.counters;
        if let Some(error) = self.broken {
            counters.bad_framing.fetch_add(1, Ordering::Relaxed);
            let (id, observed) = (self.id, self.observed);
            match (self.state.peer(), self.credentials) {
                (Some(peer), _) => {
                    warn!(conn = id, %observed, %peer, %error, "bad record marking; closed")
                }
                (None, Some(credentials)) => {
                    warn!(conn = id, %credentials, %error, "bad record marking; closed")
                }
                (None, None) => warn!(conn = id, %observed, %error, "bad record marking; closed"),
            }
        }
        if self.verdict_given || self.shutting_down || !self.state.awaiting_hello() {
            return;
        }
        let reason = match self.broken {
            Some(error) if error.kind.is_over_limit() && self.state.limited_before_hello() => {
                VerdictReason::OverLimitBeforeHello(error)
            }
            Some(error) => VerdictReason::BadFraming(error),
            None => {
                counters.closed_before_hello.fetch_add(1, Ordering::Relaxed);
                VerdictReason::ClosedBeforeHello
            }
        };
        debug!(conn = self.id, observed = %self.observed, %reason, "closed before a successful HELLO");
        record_verdict(self.shared, self.observed, None, Some(reason));
        self.verdict_given = true;
    }

    fn ending(&self) -> Result<(), ConnectionEnd> {
        match self.broken {
            Some(error) => Err(ConnectionEnd::Record(error)),
            None if self.refused => Err(ConnectionEnd::Refused),
            None => Ok(()),
        }
    }

    fn check_timers(&mut self, now: Instant) -> Result<(), Result<(), ConnectionEnd>> {
        let opts = &self.shared.options;
        if !self.stopping {
            match self.state.timeout(now.into_std()) {
                Some(Expired::Handshake(after)) => {
                    warn!(conn = self.id, observed = %self.observed, "no HELLO within the handshake timeout; closing");
                    self.shared
                        .counters
                        .handshake_timeouts
                        .fetch_add(1, Ordering::Relaxed);
                    record_verdict(
                        self.shared,
                        self.observed,
                        None,
                        Some(VerdictReason::HandshakeTimeout),
                    );
                    self.verdict_given = true;
                    return Err(Err(ConnectionEnd::HandshakeTimeout(after)));
                }
                Some(Expired::Idle(after)) => return Err(Err(ConnectionEnd::Idle(after))),
                None => {}
            }
        }
        if let Some(since) = self.stalled_since
            && now >= since + opts.write_timeout
        {
            debug!(conn = self.id, observed = %self.observed, "peer stopped reading; closing");
            return Err(Err(ConnectionEnd::WriteStalled(opts.write_timeout)));
        }
        if let Some(grace) = self.grace
            && now >= grace
        {
            if self.handlers.running() > 0 {
                warn!(conn = self.id, observed = %self.observed, left = self.handlers.running(), "shutdown grace period over; abandoning calls in progress");
            }
            self.handlers.abort_all();
            return Err(if let Some(error) = self.broken {
                Err(ConnectionEnd::Record(error))
            } else if self.refused {
                Err(ConnectionEnd::Refused)
            } else if self.out.is_empty() {
                Ok(())
            } else {
                Err(ConnectionEnd::GraceOver)
            });
        }
        Ok(())
    }

    /// Gives the buffers back once the connection has been quiet for a
    /// while (not at every pause, so a steady trickle of calls reuses
    /// them); returns when to look again.
    fn release_when_quiet(&mut self, now: Instant) -> Option<Instant> {
        let quiet = self.handlers.running() == 0
            && self.state.in_progress() == 0
            && self.read.is_empty()
            && self.state.is_idle()
            && self.out.is_empty();
        let holding = self.read.capacity() + self.out.capacity() > 0;
        match self.quiet.check(quiet, holding, now) {
            Quiet::No => None,
            Quiet::At(at) => Some(at),
            Quiet::Release => {
                self.read = BytesMut::new();
                self.transport.quiet();
                self.out.release();
                self.handlers.release();
                None
            }
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        let opts = &self.shared.options;
        let state = if self.stopping {
            None
        } else {
            self.state.next_timeout().map(Instant::from_std)
        };
        let stall = self.stalled_since.map(|since| since + opts.write_timeout);
        [state, stall, self.grace].into_iter().flatten().min()
    }
}
