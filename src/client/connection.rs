//! One client connection's task: reads, writes, deadlines and the
//! heartbeat, from a single poll function with one timer, until the link
//! is lost or the client is closed. [`super::supervisor`] connects and
//! hands the link over.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;
use tracing::{Instrument, debug, info_span, warn};

use super::ConnectionState;
use super::core::{Answer, CallInfo, Counters, Inner, Live, Waiter};
use super::handshake::{FirstRead, first_read};
use super::link::Link;
use super::supervisor::{set_last_connect_error, set_state, tls_refused};
use crate::conn::{CallTable, Liveness, LivenessAction, Outbox, ReplyFor};
use crate::drive::{Quiet, QuietClock, Timer, poll_flush, poll_yield};
use crate::error::{CallStatus, DisconnectCause, Error};
use crate::proto::{CallHeader, Message, MessageBody, RecordDecoder};
use crate::stream::Transport;

/// Turns of the connection's poll loop before it yields to other tasks, if
/// tokio's cooperative budget has not made it yield first.
const TURNS: usize = 32;

/// How one connection ended, and whether the client is done.
pub(super) enum Ended {
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

/// Runs one connection until it ends.
pub(super) async fn serve(inner: &Arc<Inner>, link: Link) -> Ended {
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
            if inner.tls_epoch.load(std::sync::atomic::Ordering::Acquire) == *epoch {
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
