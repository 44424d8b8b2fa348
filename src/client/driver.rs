//! The client's one task: connect with backoff behind a circuit breaker,
//! then run the connection — read, write, deadlines, heartbeat — from a
//! single poll function with one timer.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::time::{Instant, Sleep};
use tracing::{Instrument, debug, info, info_span, warn};

use super::ConnectionState;
use super::core::{Answer, CallInfo, Core, Counters, Inner, Live, Waiter};
use super::handshake::{FirstRead, first_read, handshake};
use super::link::{ConnectFn, Link};
use crate::conn::{Breaker, CallTable, Liveness, LivenessAction, Outbox, Reconnect, ReplyFor};
use crate::error::{CallStatus, DisconnectCause, Error};
use crate::proto::{CallHeader, Message, MessageBody, RecordDecoder};
use crate::stream::{Quiet, QuietClock, Timer, Transport, poll_flush, poll_yield};

/// Turns of the connection's poll loop before it yields to other tasks, if
/// tokio's cooperative budget has not made it yield first.
const TURNS: usize = 32;

/// How one connection ended, and whether the client is done.
enum Ended {
    Lost(DisconnectCause),
    Closed,
}

/// The error of a call whose deadline passed.
pub(super) fn timeout(inner: &Inner, info: CallInfo, sent: bool) -> Error {
    Error::CallTimeout {
        peer: inner.peer.clone(),
        program: info.program,
        version: info.version,
        procedure: info.procedure,
        after: info.timeout,
        sent,
    }
}

fn set_state(inner: &Inner, state: ConnectionState) {
    inner.state.send_if_modified(|now| {
        let changed = *now != state;
        *now = state;
        changed
    });
}

fn set_last_connect_error(inner: &Inner, error: Option<Arc<Error>>) {
    *inner
        .last_connect_error
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = error;
}

/// The state while no call waits: what a call arriving now would meet.
fn resting_state(reconnect: &Reconnect) -> ConnectionState {
    let now = std::time::Instant::now();
    match reconnect.breaker(now) {
        Breaker::Open { next_attempt } => ConnectionState::Open {
            until: next_attempt,
        },
        _ => match reconnect.next_attempt() {
            Some(until) if until > now => ConnectionState::Backoff { until },
            _ => ConnectionState::Idle,
        },
    }
}

/// Fails every queued call with `error()`, returning their permits.
fn fail_queue(inner: &Inner, core: &mut Core, mut error: impl FnMut(CallInfo) -> Error) {
    let mut wakers = Vec::new();
    let mut released = 0;
    while let Some(queued) = core.queue.pop_front() {
        let answer = Err(error(core.slots.info(queued.slot)));
        wakers.extend(core.slots.finish(queued.slot, answer));
        released += 1;
    }
    inner.permits.add_permits(released);
    wakers.into_iter().for_each(|w| w.wake());
}

/// Fails queued calls whose deadline has passed.
fn expire_queue(inner: &Inner, core: &mut Core, now: Instant) {
    if core.queue.iter().all(|q| q.deadline > now) {
        return;
    }
    let mut released = 0;
    let queue = std::mem::take(&mut core.queue);
    for queued in queue {
        if queued.deadline > now {
            core.queue.push_back(queued);
            continue;
        }
        let error = timeout(inner, core.slots.info(queued.slot), false);
        if let Some(waker) = core.slots.finish(queued.slot, Err(error)) {
            waker.wake();
        }
        released += 1;
    }
    inner.permits.add_permits(released);
}

/// Waits until `ready(core)` holds (true) or until `until` or a queued
/// call's deadline (false). Expired queued calls are failed on the way.
async fn wait(inner: &Inner, until: Option<Instant>, ready: impl Fn(&Core) -> bool) -> bool {
    let mut sleep: Option<std::pin::Pin<Box<Sleep>>> = None;
    std::future::poll_fn(|cx| {
        inner.task.register(cx.waker());
        let now = Instant::now();
        let wake = {
            let mut core = inner.lock();
            core.woken = false;
            expire_queue(inner, &mut core, now);
            if ready(&core) {
                return Poll::Ready(true);
            }
            let queued = core.queue.iter().map(|q| q.deadline).min();
            let wake = until.into_iter().chain(queued).min();
            core.timer = wake;
            wake
        };
        let Some(wake) = wake else {
            return Poll::Pending;
        };
        if wake <= now {
            return Poll::Ready(false);
        }
        let timer = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(wake)));
        if timer.deadline() != wake {
            timer.as_mut().reset(wake);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(false),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Connects, then says HELLO when the client has an identity.
async fn attempt(inner: Arc<Inner>, connect: ConnectFn) -> Result<Link, Error> {
    let link = connect().await?;
    let (link, tls) = start_tls(&inner, link).await?;
    *inner.tls_peer.lock().unwrap_or_else(|p| p.into_inner()) = tls.clone();
    match &inner.options.identity {
        Some(identity) => {
            let limits = inner.options.limits.record_limits();
            let (link, answer) =
                handshake(link, identity, &inner.peer, limits, tls.as_deref()).await?;
            *inner.hello.lock().unwrap_or_else(|p| p.into_inner()) = Some(answer);
            Ok(link)
        }
        None => Ok(link),
    }
}

/// Runs TLS on a fresh link when the client has it: the probe (STARTTLS),
/// the handshake and the server rule, within the connect timeout.
async fn start_tls(
    inner: &Inner,
    link: Link,
) -> Result<(Link, Option<Arc<crate::tls::TlsPeer>>), Error> {
    #[cfg(not(feature = "tls"))]
    {
        let _ = inner;
        Ok((link, None))
    }
    #[cfg(feature = "tls")]
    {
        use crate::tls::TlsError;
        let Some(settings) = &inner.options.tls else {
            return Ok((link, None));
        };
        let failed = |error: TlsError| Error::Tls {
            peer: inner.peer.clone(),
            error: Box::new(error),
        };
        let (material, epoch) = inner.tls_material(settings);
        let material = material.map_err(failed)?;
        let timeout = inner.options.connect.connect_timeout;
        let Link {
            transport,
            local,
            remote,
            leftover: _,
        } = link;
        let probe = super::DEFAULT_PING_PROGRAM;
        let handshake = crate::tls::handshake::connect(transport, remote.ip(), &material, probe);
        match tokio::time::timeout(timeout, handshake).await {
            Ok(Ok((transport, peer, presented))) => {
                *inner.presented.lock().unwrap_or_else(|p| p.into_inner()) =
                    presented.map(|presented| (presented, epoch));
                let link = Link {
                    transport,
                    local,
                    remote,
                    leftover: bytes::BytesMut::new(),
                };
                debug!(peer = %inner.peer, cn = %crate::tls::Cn(&peer.cn), version = %peer.version, "TLS established");
                Ok((link, Some(peer)))
            }
            Ok(Err(error)) => Err(failed(error)),
            Err(_) => Err(failed(TlsError::Timeout(timeout))),
        }
    }
}

/// The client's task: runs until the client is closed or dropped.
pub(super) async fn run(inner: Arc<Inner>, connect: ConnectFn) {
    let o = &inner.options;
    let mut reconnect = Reconnect::new(
        o.backoff_base,
        o.backoff_max,
        o.backoff_jitter,
        o.breaker_threshold,
    );
    reconnect.delay_first(
        Instant::now().into_std(),
        o.first_connect_spread,
        rand::random::<f64>(),
    );
    let mut connections = 0u64;
    loop {
        let now = Instant::now();
        let demand = {
            let mut core = inner.lock();
            core.woken = false;
            expire_queue(&inner, &mut core, now);
            if core.closed {
                break;
            }
            core.want_connect || !core.queue.is_empty()
        };
        if !demand {
            set_state(&inner, resting_state(&reconnect));
            wait(&inner, None, |core| {
                core.closed || core.want_connect || !core.queue.is_empty()
            })
            .await;
            continue;
        }
        match reconnect.breaker(now.into_std()) {
            Breaker::Open { next_attempt } => {
                set_state(
                    &inner,
                    ConnectionState::Open {
                        until: next_attempt,
                    },
                );
                fail_fast(&inner, &reconnect, next_attempt);
                continue;
            }
            Breaker::HalfOpen => {
                reconnect.start_probe();
            }
            Breaker::Closed => {
                if let Some(next) = reconnect.next_attempt()
                    && next > now.into_std()
                {
                    set_state(&inner, ConnectionState::Backoff { until: next });
                    wait(&inner, Some(Instant::from_std(next)), |core| core.closed).await;
                    continue;
                }
            }
        }
        set_state(&inner, ConnectionState::Connecting);
        // Boxed: the attempt (connect, HELLO) is large and short-lived, and
        // an idle client's task should not carry its space.
        let mut connecting = Box::pin(attempt(inner.clone(), connect.clone()));
        let result = loop {
            tokio::select! {
                result = &mut connecting => break Some(result),
                closed = wait(&inner, None, |core| core.closed) => if closed { break None },
            }
        };
        let Some(result) = result else { break };
        let finished = |inner: &Inner| {
            inner.lock().want_connect = false;
            attempt_finished(inner, true);
        };
        match result {
            Ok(link) => {
                let prior = reconnect.failures();
                reconnect.succeeded();
                inner.failures.store(0, Ordering::Release);
                set_last_connect_error(&inner, None);
                if connections > 0 {
                    Counters::bump(&inner.counters.reconnects, 1);
                }
                connections += 1;
                finished(&inner);
                match serve(&inner, link).await {
                    Ended::Lost(DisconnectCause::TlsRefused(alert)) => {
                        refused_after_connect(&inner, &mut reconnect, prior, alert);
                    }
                    Ended::Lost(cause) => {
                        info!(peer = %inner.peer, %cause, "connection lost");
                        // Every client of a peer that went away loses it
                        // now: spread the next attempts.
                        reconnect.lost(Instant::now().into_std(), rand::random::<f64>());
                    }
                    Ended::Closed => break,
                }
            }
            Err(error) => {
                let next = reconnect.failed(Instant::now().into_std(), rand::random::<f64>());
                inner
                    .failures
                    .store(reconnect.failures(), Ordering::Release);
                warn!(peer = %inner.peer, %error, failures = reconnect.failures(), "connect failed");
                let error = Arc::new(error);
                set_last_connect_error(&inner, Some(error.clone()));
                if error.is_definite() {
                    // A definite answer: waiting will not change it.
                    let mut core = inner.lock();
                    fail_queue(&inner, &mut core, |_| (*error).clone());
                } else if let Breaker::Open { .. } = reconnect.breaker(Instant::now().into_std()) {
                    fail_fast(&inner, &reconnect, next);
                } else {
                    // The calls keep waiting, within their deadlines, for
                    // the next attempt; their error names the cause.
                    debug!(peer = %inner.peer, "calls wait for the next attempt");
                }
                finished(&inner);
            }
        }
    }
    // Closed: fail whatever still waits.
    set_state(&inner, ConnectionState::Closed);
    let mut core = inner.lock();
    fail_queue(&inner, &mut core, |_| Error::Disconnected {
        peer: inner.peer.clone(),
        cause: DisconnectCause::ClientClosed,
        sent: false,
    });
}

/// The connect error of a TLS session the server refused with `alert`.
fn tls_refused(inner: &Inner, alert: crate::tls::TlsAlert) -> Error {
    Error::Tls {
        peer: inner.peer.clone(),
        error: Box::new(crate::tls::TlsError::Refused { alert }),
    }
}

/// The server refused our TLS session on its first read (no HELLO): a
/// connect failure after all, with the backoff and the breaker counting it
/// after the `prior` failures; calls queued meanwhile fail with the
/// refusal at once. (The refusal became the last connect error in
/// [`serve`], before the calls on the connection were failed.)
fn refused_after_connect(
    inner: &Inner,
    reconnect: &mut Reconnect,
    prior: u32,
    alert: crate::tls::TlsAlert,
) {
    reconnect.refused_after_connect(prior, Instant::now().into_std(), rand::random::<f64>());
    inner
        .failures
        .store(reconnect.failures(), Ordering::Release);
    let error = tls_refused(inner, alert);
    warn!(peer = %inner.peer, %error, failures = reconnect.failures(), "connect failed");
    let mut core = inner.lock();
    fail_queue(inner, &mut core, |_| error.clone());
}

/// The breaker is open: queued calls fail at once, and so does a waiting
/// [`super::Client::connect`].
fn fail_fast(inner: &Inner, reconnect: &Reconnect, next_attempt: std::time::Instant) {
    let mut core = inner.lock();
    fail_queue(inner, &mut core, |_| Error::CircuitOpen {
        peer: inner.peer.clone(),
        failures: reconnect.failures(),
        next_attempt,
    });
    if std::mem::take(&mut core.want_connect) {
        drop(core);
        attempt_finished(inner, false);
    }
}

/// Counts a finished connection attempt (`tried`: or a wish to connect
/// refused by the open breaker) and wakes every [`super::Client::connect`]
/// waiting on the state, whether the state changed or not.
fn attempt_finished(inner: &Inner, tried: bool) {
    inner.last_attempt_tried.store(tried, Ordering::Release);
    inner.attempts.fetch_add(1, Ordering::Release);
    inner.state.send_modify(|_| {});
}

/// Runs one connection until it ends.
async fn serve(inner: &Arc<Inner>, link: Link) -> Ended {
    let Link {
        transport,
        local,
        remote,
        leftover,
    } = link;
    let o = &inner.options;
    let now = Instant::now();
    {
        let mut core = inner.lock();
        let core = &mut *core;
        let mut live = Live {
            table: CallTable::new(rand::random()),
            outbox: Outbox::new(),
        };
        // Calls that waited for the connection go out first, in order.
        while let Some(queued) = core.queue.pop_front() {
            let xid = live
                .table
                .start(queued.deadline.into_std(), Waiter::Call(queued.slot), true);
            core.slots.set_xid(queued.slot, xid);
            live.outbox
                .push_call(xid, xid, &queued.header, &queued.args);
        }
        core.live = Some(live);
    }
    set_state(inner, ConnectionState::Connected { local, remote });
    debug!(%local, %remote, "connected");
    let tls = inner
        .tls_peer
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_some();
    #[cfg(feature = "tls")]
    let judged = inner
        .presented
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    // Bytes that came after the HELLO reply.
    let undelivered = !leftover.is_empty();
    let mut conn = Connection {
        inner,
        transport,
        read: leftover,
        records: RecordDecoder::new(o.limits.record_limits()),
        out: Outbox::new(),
        liveness: Liveness::new(o.ping_interval, o.ping_timeout, now.into_std()),
        timer: Timer::new(),
        sent: Vec::new(),
        wakers: Vec::new(),
        records_read: Vec::new(),
        live_calls: 0,
        quiet: QuietClock::default(),
        // With an identity, the HELLO reply came already.
        unheard: o.identity.is_none(),
        tls,
        wrote: false,
        undelivered,
        #[cfg(feature = "tls")]
        judged,
    };
    // The connection's span: every event of it carries the peer, both
    // addresses, and how the peer observed us (with identity on).
    let observed = inner
        .hello
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|hello| hello.observed);
    let span = info_span!(
        "conn",
        peer = %inner.peer,
        local = %local,
        remote = %remote,
        observed = observed.map(tracing::field::display),
    );
    let ended = std::future::poll_fn(|cx| conn.poll(cx))
        .instrument(span)
        .await;
    let cause = match ended {
        Ended::Lost(cause) => cause,
        Ended::Closed => DisconnectCause::ClientClosed,
    };
    if let DisconnectCause::TlsRefused(alert) = cause {
        // The refusal is the last connect error before any call learns of
        // it (see `refused_after_connect`).
        set_last_connect_error(inner, Some(Arc::new(tls_refused(inner, alert))));
    }
    conn.close(cause);
    ended
}

/// One connection's task-side state.
struct Connection<'a> {
    inner: &'a Inner,
    transport: Transport,
    /// Allocated when bytes arrive; given back while no call is live.
    read: BytesMut,
    records: RecordDecoder,
    /// Records taken from the shared outbox, being written.
    out: Outbox<u32>,
    liveness: Liveness,
    /// Deadlines, pings, buffer release.
    timer: Timer,
    /// Reused buffers.
    sent: Vec<u32>,
    wakers: Vec<std::task::Waker>,
    records_read: Vec<Bytes>,
    /// Live calls at the last look under the lock.
    live_calls: usize,
    /// When the buffers go back.
    quiet: QuietClock,
    /// Nothing read on the link yet (no HELLO reply either): a plain
    /// client's TLS server, or a TLS server refusing our certificate after
    /// the handshake, shows itself here (see [`first_read`]).
    unheard: bool,
    /// The link runs TLS.
    tls: bool,
    /// Some record was written.
    wrote: bool,
    /// Bytes were read that may hold records not yet delivered (the
    /// budget ran out): they go before any new read.
    undelivered: bool,
    /// Over TLS: the server's chain as presented, and the epoch of the
    /// TLS material it last passed.
    #[cfg(feature = "tls")]
    judged: Option<(crate::tls::Presented, u64)>,
}

impl Connection<'_> {
    /// Judges a read while the link is unheard (see [`first_read`]).
    fn first_read(&mut self, read: &std::io::Result<usize>) -> Option<FirstRead> {
        let first = first_read(self.unheard, self.tls, self.wrote, &self.read, read);
        if matches!(read, Ok(n) if *n > 0) {
            self.unheard = false;
        }
        match first {
            Some(FirstRead::ExpectsTls(_)) => {
                warn!(peer = %self.inner.peer, "the server seems to expect TLS (set ClientOptions::tls)");
            }
            Some(FirstRead::Refused(alert)) => {
                warn!(peer = %self.inner.peer, %alert, "the server refused our TLS session before any reply");
            }
            None => {}
        }
        first
    }

    /// Judges the server's certificate again when our TLS material changed
    /// ([`super::Client::update_tls`]): the connection ends when the new
    /// CRLs revoke it. One atomic load when nothing changed.
    fn rejudge(&mut self) -> Option<DisconnectCause> {
        #[cfg(feature = "tls")]
        {
            let (presented, epoch) = self.judged.as_mut()?;
            let inner = self.inner;
            if inner.tls_epoch.load(Ordering::Acquire) == *epoch {
                return None;
            }
            let (material, current) = {
                let tls = inner.tls.lock().unwrap_or_else(|p| p.into_inner());
                (tls.material.clone(), tls.epoch)
            };
            *epoch = current;
            let Some(Ok(material)) = material else {
                return None;
            };
            let error = presented.revoked(material.revocation())?;
            warn!(peer = %inner.peer, %error, "the server's certificate is revoked by our updated CRLs; closing");
            Some(DisconnectCause::CertificateRevoked)
        }
        #[cfg(not(feature = "tls"))]
        None
    }

    /// Runs the connection until it must wait. Each record delivered costs
    /// a unit of tokio's cooperative budget (as each read and write does):
    /// once it is spent, the records left stay buffered, and the task
    /// yields until tokio has run the drivers and the other tasks.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Ended> {
        self.inner.task.register(cx.waker());
        for _ in 0..TURNS {
            if let Some(cause) = self.rejudge() {
                return Poll::Ready(Ended::Lost(cause));
            }
            let mut progress = false;
            let now = Instant::now();
            // Calls left from the last poll first: replies waiting for the
            // budget must not hold them back.
            if let Err(ended) = self.write(cx, &mut progress) {
                return Poll::Ready(ended);
            }
            // Read, unless records read before still wait; deliver.
            let read = if self.undelivered {
                Poll::Pending
            } else {
                self.transport.poll_read_into(cx, &mut self.read)
            };
            if let Poll::Ready(result) = &read
                && let Some(first) = self.first_read(result)
            {
                return Poll::Ready(Ended::Lost(first.cause()));
            }
            match read {
                Poll::Ready(Ok(0)) => {
                    let _ = self.deliver(cx, true, now);
                    return Poll::Ready(Ended::Lost(DisconnectCause::Closed));
                }
                Poll::Ready(Ok(_)) => self.undelivered = true,
                Poll::Ready(Err(error)) => {
                    // A fatal alert that is no refusal (see `first_read`).
                    let cause = crate::tls::received_alert(&error)
                        .map_or(DisconnectCause::Io(error.kind()), DisconnectCause::TlsAlert);
                    return Poll::Ready(Ended::Lost(cause));
                }
                Poll::Pending => {}
            }
            if self.undelivered {
                if let Err(error) = self.deliver(cx, false, now) {
                    return Poll::Ready(Ended::Lost(DisconnectCause::BadRecord(error)));
                }
                progress = true;
            }
            // The budget ran out with records left.
            let spent = self.undelivered;
            // Take what callers queued, and run the timers.
            let wake = match self.look(&mut progress, now) {
                Ok(wake) => wake,
                Err(ended) => return Poll::Ready(ended),
            };
            if !spent && let Err(ended) = self.write(cx, &mut progress) {
                return Poll::Ready(ended);
            }
            // The timer.
            progress |= self.timer.poll_at(wake, cx);
            // Spent: tokio wakes the task once the others have run.
            if spent || !progress {
                return Poll::Pending;
            }
        }
        poll_yield(cx)
    }

    /// Writes the records taken from callers; sets `progress` when some
    /// went out.
    fn write(&mut self, cx: &mut Context<'_>, progress: &mut bool) -> Result<(), Ended> {
        if self.out.is_empty() && !self.transport.unflushed() {
            return Ok(());
        }
        let before = self.out.len();
        let sent = &mut self.sent;
        let flushed = poll_flush(&mut self.transport, cx, &mut self.out, |xid| sent.push(xid));
        if let Poll::Ready(Err(error)) = flushed {
            return Err(Ended::Lost(DisconnectCause::Io(error.kind())));
        }
        *progress |= self.out.len() != before;
        self.wrote |= self.out.len() != before;
        self.mark_sent();
        Ok(())
    }

    /// Under the lock: takes the callers' records for writing, fails calls
    /// past their deadline, checks for a clogged connection, and decides
    /// about pings. Returns when the timer must fire next.
    fn look(&mut self, progress: &mut bool, now: Instant) -> Result<Option<Instant>, Ended> {
        let inner = self.inner;
        let o = &inner.options;
        let mut guard = inner.lock();
        let core = &mut *guard;
        core.woken = false;
        if core.closed {
            return Err(Ended::Closed);
        }
        let live = core.live.as_mut().expect("connected");
        if self.out.is_empty() && !live.outbox.is_empty() {
            std::mem::swap(&mut self.out, &mut live.outbox);
        }
        let wakers = &mut self.wakers;
        let slots = &mut core.slots;
        live.table.expire(now.into_std(), |failed| {
            if let Waiter::Call(slot) = failed.waiter {
                let error = timeout(inner, slots.info(slot), failed.sent);
                wakers.extend(slots.finish(slot, Err(error)));
            }
        });
        let clogged = live
            .table
            .clogged_at(o.max_in_flight, o.ping_timeout)
            .map(Instant::from_std);
        if clogged.is_some_and(|at| at <= now) {
            return Err(Ended::Lost(DisconnectCause::Clogged));
        }
        let ping = match self.liveness.poll(now.into_std(), live.table.live() > 0) {
            LivenessAction::Dead => return Err(Ended::Lost(DisconnectCause::PingTimeout)),
            LivenessAction::Ping => {
                let (program, version) = o.ping_program;
                let deadline = now + o.ping_timeout;
                let xid = live.table.start(deadline.into_std(), Waiter::Ping, false);
                let header = CallHeader::new(program, version, 0);
                live.outbox
                    .push(xid, &Message::call(xid, header, Bytes::new()));
                *progress = true;
                None
            }
            LivenessAction::Wait(at) => at.map(Instant::from_std),
        };
        let deadline = live.table.next_deadline().map(Instant::from_std);
        // Buffers go back once the connection has been quiet for a while,
        // not at every pause, so a steady trickle of calls reuses them.
        self.live_calls = live.table.live();
        let quiet = self.live_calls == 0
            && self.read.is_empty()
            && self.records.is_idle()
            && self.out.is_empty()
            && live.outbox.is_empty();
        let holding = self.read.capacity() + self.out.capacity() + live.outbox.capacity() > 0;
        let release = match self.quiet.check(quiet, holding, now) {
            Quiet::No => None,
            Quiet::At(at) => Some(at),
            Quiet::Release => {
                if self.transport.reads_by_readiness() {
                    self.read = BytesMut::new();
                }
                self.transport.quiet();
                self.out.release();
                live.outbox.release();
                None
            }
        };
        let wake = [ping, deadline, clogged, release]
            .into_iter()
            .flatten()
            .min();
        core.timer = wake;
        drop(guard);
        self.wakers.drain(..).for_each(|w| w.wake());
        Ok(wake)
    }

    /// Records the calls whose first byte the kernel took.
    fn mark_sent(&mut self) {
        if self.sent.is_empty() {
            return;
        }
        let mut core = self.inner.lock();
        if let Some(live) = &mut core.live {
            for xid in &self.sent {
                live.table.mark_sent(*xid);
            }
        }
        drop(core);
        Counters::bump(&self.inner.counters.sent, self.sent.len() as u64);
        self.sent.clear();
    }

    /// Decodes the records read and hands each reply to its caller, each
    /// record charged to the task's cooperative budget: when it runs out,
    /// the records left wait in the buffer, in order, and
    /// [`Connection::undelivered`] stays set. At the end of the stream
    /// (`eof`) every record left (at most one read's worth) is delivered.
    fn deliver(
        &mut self,
        cx: &mut Context<'_>,
        eof: bool,
        now: Instant,
    ) -> Result<(), crate::proto::DecodeError> {
        let mut broken = Ok(());
        self.undelivered = false;
        loop {
            let budget = match tokio::task::coop::poll_proceed(cx) {
                Poll::Ready(budget) => Some(budget),
                Poll::Pending if eof => None,
                Poll::Pending => {
                    self.undelivered = true;
                    break;
                }
            };
            let record = if eof {
                self.records.decode_eof(&mut self.read)
            } else {
                self.records.decode(&mut self.read)
            };
            match record {
                Ok(Some(record)) => {
                    if let Some(budget) = &budget {
                        budget.made_progress();
                    }
                    self.records_read.push(record);
                }
                Ok(None) => break,
                Err(error) => {
                    broken = Err(error);
                    break;
                }
            }
        }
        if self.records_read.is_empty() {
            return broken;
        }
        let inner = self.inner;
        let counters = &inner.counters;
        let (mut released, mut heard) = (0, false);
        let (mut late, mut unknown, mut calls) = (0, 0, 0);
        {
            let mut core = inner.lock();
            let core = &mut *core;
            let live = core.live.as_mut().expect("connected");
            for record in self.records_read.drain(..) {
                let message = match Message::decode(record) {
                    Ok(message) => message,
                    Err(error) => {
                        debug!(%error, "malformed message from the server; dropped");
                        unknown += 1;
                        continue;
                    }
                };
                let MessageBody::Reply { body, results } = message.body else {
                    debug!(xid = message.xid, "a call from the server; dropped");
                    calls += 1;
                    continue;
                };
                heard = true;
                match live.table.reply(message.xid) {
                    ReplyFor::Caller(Waiter::Call(slot)) => {
                        released += 1;
                        let info = core.slots.info(slot);
                        let max = inner.options.limits.max_payload();
                        let answer: Answer = match CallStatus::of(&body) {
                            None if results.len() > max => Err(Error::ResultsTooLarge {
                                peer: inner.peer.clone(),
                                len: results.len(),
                                max,
                            }),
                            None => Ok(results),
                            Some(status) => Err(Error::CallRejected {
                                peer: inner.peer.clone(),
                                program: info.program,
                                version: info.version,
                                procedure: info.procedure,
                                status,
                            }),
                        };
                        self.wakers.extend(core.slots.finish(slot, answer));
                    }
                    ReplyFor::Caller(Waiter::Ping) => {}
                    ReplyFor::Late { freed_slot } => {
                        late += 1;
                        released += usize::from(freed_slot);
                    }
                    ReplyFor::Unknown => unknown += 1,
                }
            }
            self.live_calls = live.table.live();
        }
        if heard {
            self.liveness.heard(now.into_std());
        }
        self.wakers.drain(..).for_each(|w| w.wake());
        inner.permits.add_permits(released);
        Counters::bump(&counters.late_replies, late);
        Counters::bump(&counters.unknown_replies, unknown);
        Counters::bump(&counters.unexpected_calls, calls);
        broken
    }

    /// The connection ended: every live call fails at once, saying whether
    /// it was sent, and every slot is freed.
    fn close(&mut self, cause: DisconnectCause) {
        let inner = self.inner;
        let mut guard = inner.lock();
        let core = &mut *guard;
        let Some(mut live) = core.live.take() else {
            return;
        };
        let wakers = &mut self.wakers;
        let slots = &mut core.slots;
        // A TLS refusal is only ever the cause when nothing was read on the
        // connection (no reply, no byte), and a server that refuses our
        // certificate fails the TLS handshake: with TLS 1.3 our calls left
        // behind our Finished, but the server, refusing at our
        // Certificate, never reached the application data, so it read and
        // ran none of them. "Not sent" is the honest answer there.
        let refused = matches!(cause, DisconnectCause::TlsRefused(_));
        let released = live.table.close(|failed| {
            if let Waiter::Call(slot) = failed.waiter {
                let error = Error::Disconnected {
                    peer: inner.peer.clone(),
                    cause,
                    sent: failed.sent && !refused,
                };
                wakers.extend(slots.finish(slot, Err(error)));
            }
        });
        core.timer = None;
        drop(guard);
        self.wakers.drain(..).for_each(|w| w.wake());
        inner.permits.add_permits(released);
    }
}
