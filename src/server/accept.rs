//! The accept loop: the connection limit, admission before a byte is read,
//! and one task per admitted connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info_span, warn};

use super::connection::{ConnectionEnd, serve_connection};
use super::verdicts::record_verdict;
use super::{Shared, VerdictReason};
use crate::addr::{CanonicalIp, canonical_socket_addr};
use crate::sock;

pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
    mut close: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accept = || listener.accept();
        let next = next_connection(&slots, &mut shutdown, &mut close, &mut connections, accept);
        let Some((permit, (stream, observed))) = next.await else {
            break;
        };
        // Canonical from here on: an IPv4 caller on a dual-stack listener
        // is judged, logged and shown as IPv4.
        let observed = canonical_socket_addr(observed);
        // Admission runs before a single byte is read. The receiver marks
        // the lists it was judged by: the connection judges itself again
        // if they change before it reads anything (see `serve_transport`).
        let mut policy = shared.policy.subscribe();
        let admitted = policy
            .borrow_and_update()
            .admission
            .admits(CanonicalIp::from(observed));
        if !admitted {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            warn!(%observed, "connection refused by admission; closed unread");
            record_verdict(&shared, observed, None, Some(VerdictReason::NotAdmitted));
            drop(stream);
            continue;
        }
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        // Tuning, not identity: a failure is logged and the connection
        // goes on.
        sock::tune_accepted(
            &stream,
            shared.options.keepalive,
            shared.options.user_timeout,
        );
        if shared.policy.borrow().identity.is_none() && !shared.tls_on() {
            // Admission is the whole verdict; with TLS, the handshake is;
            // with an identity, HELLO is.
            record_verdict(&shared, observed, None, None);
        }
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        // The connection's span: every event of it carries the connection
        // id, the observed and local addresses, and the peer's node ID once
        // its HELLO succeeded.
        let local = stream.local_addr().ok();
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let span = info_span!(
            "conn",
            id,
            observed = %observed,
            local = local.map(tracing::field::display),
            peer = tracing::field::Empty,
        );
        let serve = serve_connection(stream, observed, id, shared.clone(), policy, shutdown);
        spawn_connection(&mut connections, permit, shared, span, serve);
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Waits for a connection slot, then for a connection from `accept`;
/// `None` once the server or this listener stops. Finished connection
/// tasks are reaped meanwhile. At the connection limit accepting pauses and
/// the kernel's backlog holds new peers; a failed accept (EMFILE and
/// friends) is logged and retried after a short pause instead of spinning.
pub(super) async fn next_connection<T, F, Fut>(
    slots: &Arc<Semaphore>,
    shutdown: &mut watch::Receiver<bool>,
    close: &mut watch::Receiver<bool>,
    connections: &mut JoinSet<()>,
    accept: F,
) -> Option<(OwnedSemaphorePermit, T)>
where
    F: Fn() -> Fut,
    Fut: Future<Output = std::io::Result<T>>,
{
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = stopped(shutdown) => return None,
            // This listener alone is closed: its connections go on.
            () = stopped(close) => return None,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let accepted = tokio::select! {
            accepted = accept() => accepted,
            () = stopped(shutdown) => return None,
            () = stopped(close) => return None,
        };
        match accepted {
            Ok(accepted) => return Some((permit, accepted)),
            Err(error) => {
                warn!(%error, "accept failed");
                drop(permit);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Runs one connection's task in `span`: logs how it ended, counts it
/// closed and gives its slot back.
pub(super) fn spawn_connection(
    connections: &mut JoinSet<()>,
    permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
    span: tracing::Span,
    serve: impl Future<Output = Result<(), ConnectionEnd>> + Send + 'static,
) {
    connections.spawn(
        async move {
            if let Err(error) = serve.await {
                debug!(%error, "connection ended with an error");
            }
            shared.counters.closed.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        }
        .instrument(span),
    );
}

/// Resolves once shutdown has been asked for. A dropped RunningServer
/// asks nothing: the server runs on until the runtime ends.
pub(super) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}
