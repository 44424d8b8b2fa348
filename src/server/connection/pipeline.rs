//! The connection's request pipeline: each whole record read is decided
//! about by the pure connection state, under tokio's cooperative budget,
//! and what it says is carried out: a reply queued, a call handed to its
//! handler (answered inline when it is ready at once), a refused HELLO
//! recorded as a verdict before the connection closes, a record dropped.

use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use tokio::time::Instant;
use tracing::{debug, warn};

use super::super::VerdictReason;
use super::super::handler::Origin;
use super::super::verdicts::record_verdict_tls;
use super::{Connection, OUTBOX_HIGH_WATER, ProcError};
use crate::conn::Inbound;
use crate::peer::Refusal;
use crate::tls::{CertError, Cn};

impl Connection<'_> {
    /// Adds the calls dispatched since the last time to the server's
    /// counter: one atomic add per batch, not per call.
    pub(super) fn publish(&mut self) {
        if self.dispatched > 0 {
            let n = std::mem::take(&mut self.dispatched);
            self.shared.counters.calls.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Decides about every whole record buffered, while calls may be read,
    /// each record charged to the task's cooperative budget. `Ready(true)`
    /// when it decided about any; `Pending` when the budget ran out first
    /// (the records left wait in the buffer, in order, for the next poll).
    pub(super) fn dispatch(&mut self, cx: &mut Context<'_>, now: Instant) -> Poll<bool> {
        let mut any = false;
        while !self.stopping && self.state.can_read() && self.out.len() < OUTBOX_HIGH_WATER {
            let budget = ready!(tokio::task::coop::poll_proceed(cx));
            let registry = &self.shared.registry;
            let inbound = if self.eof {
                self.state
                    .receive_eof(&mut self.read, registry, now.into_std())
            } else {
                self.state.receive(&mut self.read, registry, now.into_std())
            };
            match inbound {
                Ok(Some(inbound)) => {
                    budget.made_progress();
                    self.handle(inbound, cx, now);
                    any = true;
                }
                Ok(None) => break,
                Err(error) => {
                    if self.handlers.running() > 0 {
                        warn!(conn = self.id, observed = %self.observed, %error, "bad record; closing once calls in progress finish");
                    }
                    self.broken = Some(error);
                    self.stopping = true;
                    self.grace
                        .get_or_insert(now + self.shared.options.shutdown_grace);
                    return Poll::Ready(true);
                }
            }
        }
        Poll::Ready(any)
    }

    fn handle(&mut self, inbound: Inbound, cx: &mut Context<'_>, now: Instant) {
        let shared = self.shared;
        match inbound {
            Inbound::Reply(message) => {
                self.out.push((), &message);
                if let Some(peer) = self.state.peer()
                    && self.registered.identify(peer)
                {
                    tracing::Span::current().record("peer", tracing::field::display(peer));
                    let tls = self.tls.clone();
                    record_verdict_tls(shared, self.observed, Some(peer.clone()), None, tls);
                }
            }
            Inbound::Dispatch(call) => {
                self.dispatched += 1;
                let origin = Origin {
                    observed: self.observed,
                    local: self.local,
                    peer: self.state.peer(),
                    credentials: self.credentials,
                    tls: self.tls.as_ref(),
                };
                if let Some((xid, outcome)) = self.handlers.start(shared, call, origin, cx) {
                    let reply =
                        self.state
                            .complete(xid, outcome.map_err(ProcError::body), now.into_std());
                    self.out.push((), &reply);
                }
            }
            Inbound::Refuse {
                reply,
                claimed,
                refusal,
            } => {
                self.out.push((), &reply);
                shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
                let reason = match &refusal {
                    // The certificate rule, as the certificate errors say it.
                    Some(Refusal::CertificateCn { cn }) => {
                        VerdictReason::Certificate(CertError::CnMismatch {
                            expected: claimed.as_ref().map(|c| c.to_string()).unwrap_or_default(),
                            cn: cn.clone(),
                        })
                    }
                    Some(refusal) => VerdictReason::Refused(refusal.clone()),
                    None if claimed.is_some() => VerdictReason::SecondHello,
                    None => VerdictReason::CallBeforeHello,
                };
                if let (Some(peer), VerdictReason::Certificate(rule)) = (&self.tls, &reason) {
                    warn!(conn = self.id, observed = %self.observed, cn = %Cn(&peer.cn), sans = ?peer.ip_sans, %rule, "HELLO refused: the claimed node ID is not the certificate's CN; closing");
                }
                let tls = self.tls.clone();
                record_verdict_tls(shared, self.observed, claimed.clone(), Some(reason), tls);
                self.verdict_given = true;
                let (id, observed) = (self.id, self.observed);
                match (&claimed, &refusal) {
                    (Some(claimed), Some(refusal)) => {
                        warn!(conn = id, %observed, %claimed, %refusal, "HELLO refused; closing")
                    }
                    (Some(claimed), None) => {
                        warn!(conn = id, %observed, %claimed, "second HELLO with another node ID; closing")
                    }
                    (None, Some(refusal)) => {
                        warn!(conn = id, %observed, %refusal, "HELLO refused; closing")
                    }
                    _ => warn!(conn = id, %observed, "call before HELLO; closing"),
                }
                self.stopping = true;
                self.refused = true;
                // The refusal is written, then the connection closes; a
                // peer that does not read it is cut off at the grace period.
                self.grace
                    .get_or_insert(now + shared.options.shutdown_grace);
            }
            Inbound::Dropped(why) => {
                shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                debug!(conn = self.id, observed = %self.observed, ?why, "record dropped");
            }
        }
    }
}
