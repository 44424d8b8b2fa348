//! [`RunningServer`], the handle of a server that runs: its listeners,
//! live updates of its policy, its counters and lists, and shutdown; and
//! [`Stopper`], which starts the shutdown from anywhere.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::serve::{bind_all, resolve_identity};
use super::{ConnectionInfo, Policy, ServerStats, Shared, Verdict, accept};
#[cfg(doc)]
use super::{VERDICTS_KEPT, VERDICTS_PER_SOURCE, VerdictReason};
use crate::addr::Endpoint;
use crate::error::Error;
use crate::peer::{Admission, ServerIdentity};

/// A server that is running.
///
/// Dropping it does **not** stop the server: its tasks run on until
/// [`RunningServer::shutdown`] or a [`Stopper`] stops them, or the runtime
/// ends. [`RunningServer::wait`] waits for the server to stop.
#[derive(Debug)]
pub struct RunningServer {
    pub(super) local_addrs: Vec<SocketAddr>,
    /// Closes one listener (not its connections), by its address.
    pub(super) closers: Vec<(SocketAddr, watch::Sender<bool>)>,
    pub(super) shutdown: Arc<watch::Sender<bool>>,
    pub(super) shared: Arc<SharedHandle>,
    /// The connection limit, shared by every listener.
    pub(super) slots: Arc<Semaphore>,
    /// The accept loops. Held as plain handles: dropping one detaches the
    /// task, so dropping the RunningServer leaves the server running.
    pub(super) tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Closes one Unix listener (not its connections), by its path.
    pub(super) unix_closers: Vec<(std::path::PathBuf, watch::Sender<bool>)>,
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
pub(super) struct SharedHandle(pub(super) Arc<Shared>);

impl std::fmt::Debug for SharedHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedHandle")
    }
}

impl RunningServer {
    pub(super) fn spawn_accept_loops(&mut self, listeners: Vec<(TcpListener, SocketAddr)>) {
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
            return Err(crate::ConfigError::MappedNetwork { net }.into());
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
    ///   ([`Error::Tls`] without a peer, and
    ///   [`TlsError::Config`](crate::tls::TlsError::Config)) says why and
    ///   nothing changes. (A certificate and key that do not fit, or a CRL
    ///   that no trusted CA signed, are refused earlier, when the
    ///   [`TlsIdentity`](crate::tls::TlsIdentity) is made.) A server started
    ///   without TLS cannot take it on:
    ///   [`ConfigError::TlsOff`](crate::ConfigError::TlsOff).
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
            return Err(crate::ConfigError::TlsOff { peer: None }.into());
        }
        let tls = crate::tls::server_config(&tls).map_err(Error::from)?;
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
    ///
    /// Cancel-safe in this sense: the shutdown starts at the first poll and
    /// goes on without the future, so dropping it only stops the waiting
    /// (the handle is consumed either way; to start the shutdown in one
    /// place and wait in another, use a [`Stopper`] and
    /// [`RunningServer::wait`]).
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
