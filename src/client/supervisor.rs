//! The client's supervisor: its one task, which connects with backoff
//! behind a circuit breaker, says HELLO, and hands each link to
//! [`super::connection`] until the client is closed or dropped. Calls that
//! arrive while no connection is up wait in the queue here, within their
//! deadlines.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use tokio::time::{Instant, Sleep};
use tracing::{debug, info, warn};

use super::ConnectionState;
use super::connection::{Ended, serve, timeout};
use super::core::{CallInfo, Core, Counters, Inner};
use super::handshake::handshake;
use super::link::{ConnectFn, Link};
use crate::conn::{Breaker, Reconnect};
use crate::error::{DisconnectCause, Error};

pub(super) fn set_state(inner: &Inner, state: ConnectionState) {
    inner.state.send_if_modified(|now| {
        let changed = *now != state;
        *now = state;
        changed
    });
}

pub(super) fn set_last_connect_error(inner: &Inner, error: Option<Arc<Error>>) {
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
            peer: Some(inner.peer.clone()),
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
        let starttls = settings.mode == crate::tls::TlsMode::StartTls;
        let handshake = async {
            let mut transport = transport;
            if starttls {
                super::starttls::probe(&mut transport, super::DEFAULT_PING_PROGRAM).await?;
            }
            crate::tls::handshake::connect(transport, remote.ip(), &material).await
        };
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
pub(super) fn tls_refused(inner: &Inner, alert: crate::tls::TlsAlert) -> Error {
    Error::Tls {
        peer: Some(inner.peer.clone()),
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
