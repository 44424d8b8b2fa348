//! Serving on Unix stream sockets: the listeners, and their accept loop
//! with admission by credentials before a byte is read.
//!
//! A connection on a Unix socket runs through the same connection task as
//! a TCP one (record marking, limits, timers, handlers), with two
//! differences:
//! - its identity is the peer's credentials (`SO_PEERCRED`), judged by
//!   [`ServerOptions::unix_admission`](super::ServerOptions::unix_admission)
//!   at accept; the address admission does not apply;
//! - the HELLO gate does not apply, even when the server has an identity:
//!   the peer table binds node IDs to addresses, and a Unix peer has none.
//!   Calls reach handlers with `peer: None` and the credentials set. A
//!   HELLO sent on a Unix connection is answered PROG_UNAVAIL unless the
//!   program is served.
//!
//! `observed` and `local` of such a connection are `0.0.0.0:0`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{info_span, warn};

use super::accept::{next_connection, spawn_connection};
use super::connection::{Peer, serve_transport};
use super::verdicts::record_verdict_with;
use super::{Policy, RunningServer, Server, Shared, VerdictReason};
use crate::addr::{Address, Endpoint};
use crate::error::Error;
use crate::listen::{ListenOptions, UnixSocketListener, listen_unix};
use crate::peer::UnixAdmission;
use crate::stream::Transport;

/// What a connection on a Unix socket shows as its observed and local
/// address.
const UNIX_ADDR: SocketAddr = crate::addr::UNIX_NO_ADDR;

impl Server {
    /// Listens on each address, IP endpoints and Unix socket paths alike,
    /// and serves. Unix socket files are placed as [`listen_unix`]
    /// describes, with [`ListenOptions::unix_mode`]. Nothing is left bound
    /// when one address fails. Must be called inside a tokio runtime.
    pub fn serve_on(self, addresses: &[Address]) -> Result<RunningServer, Error> {
        let (inet, unix) = split(addresses);
        let listeners = bind_unix(&unix, &self.options.listen)?;
        let mut running = self.serve(&inet)?;
        running.spawn_unix_loops(listeners);
        Ok(running)
    }
}

fn split(addresses: &[Address]) -> (Vec<Endpoint>, Vec<PathBuf>) {
    let mut inet = Vec::new();
    let mut unix = Vec::new();
    for address in addresses {
        match address {
            Address::Inet(endpoint) => inet.push(endpoint.clone()),
            Address::Unix(path) => unix.push(path.clone()),
        }
    }
    (inet, unix)
}

fn bind_unix(paths: &[PathBuf], options: &ListenOptions) -> Result<Vec<UnixSocketListener>, Error> {
    // On an error, the listeners made so far are dropped: their files go.
    paths
        .iter()
        .map(|path| listen_unix(path, options))
        .collect()
}

impl RunningServer {
    fn spawn_unix_loops(&mut self, listeners: Vec<UnixSocketListener>) {
        let shared = &self.shared.0;
        for listener in listeners {
            let (close, closed) = watch::channel(false);
            self.unix_closers
                .push((listener.path().to_path_buf(), close));
            self.tasks.push(tokio::spawn(unix_accept_loop(
                listener,
                shared.clone(),
                self.slots.clone(),
                self.shutdown.subscribe(),
                closed,
            )));
        }
    }

    /// Listens on more addresses, IP endpoints and Unix socket paths
    /// alike. Nothing is bound when one of them fails. Returns the IP
    /// addresses bound (with the ports chosen); see
    /// [`RunningServer::unix_paths`] for the Unix ones.
    pub fn listen_also_on(&mut self, addresses: &[Address]) -> Result<Vec<SocketAddr>, Error> {
        let (inet, unix) = split(addresses);
        let listeners = bind_unix(&unix, &self.shared.0.options.listen)?;
        let bound = self.listen_also(&inet)?;
        self.spawn_unix_loops(listeners);
        Ok(bound)
    }

    /// The Unix socket paths listened on.
    pub fn unix_paths(&self) -> Vec<PathBuf> {
        self.unix_closers.iter().map(|(p, _)| p.clone()).collect()
    }

    /// Stops listening on the Unix socket `path` and removes its file (if
    /// still ours). The connections it accepted go on. False when no
    /// listener has that path.
    pub fn stop_listening_unix(&mut self, path: &Path) -> bool {
        let Some(at) = self.unix_closers.iter().position(|(p, _)| p == path) else {
            return false;
        };
        let (_, close) = self.unix_closers.remove(at);
        close.send_replace(true);
        true
    }

    /// Replaces the admission by credentials while the server runs. New
    /// Unix connections meet it at once; open ones are judged again and
    /// those no longer admitted are closed, with a verdict
    /// ([`VerdictReason::NoLongerAllowed`]).
    ///
    /// Exact once it returns, like [`RunningServer::update`]; concurrent
    /// updates apply one after the other.
    pub fn update_unix_admission(&self, unix_admission: UnixAdmission) {
        // Read, modify and write under the channel's lock (see `update`).
        self.shared.0.policy.send_modify(|policy| {
            *policy = Arc::new(Policy {
                admission: policy.admission.clone(),
                identity: policy.identity.clone(),
                unix_admission,
                #[cfg(feature = "tls")]
                tls: policy.tls.clone(),
            });
        });
    }
}

async fn unix_accept_loop(
    listener: UnixSocketListener,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
    mut close: watch::Receiver<bool>,
) {
    let path = listener.path().to_path_buf();
    let mut connections = JoinSet::new();
    loop {
        // As on TCP: a slot first, then the connection.
        let accept = || listener.accept();
        let next = next_connection(&slots, &mut shutdown, &mut close, &mut connections, accept);
        let Some((permit, (stream, credentials))) = next.await else {
            break;
        };
        // Admission by credentials, before a single byte is read; the
        // receiver marks the lists it was judged by (as on TCP).
        let mut policy = shared.policy.subscribe();
        if !policy
            .borrow_and_update()
            .unix_admission
            .admits(&credentials)
        {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            warn!(path = %path.display(), %credentials, "connection refused by credentials; closed unread");
            let reason = VerdictReason::CredentialsNotAdmitted {
                uid: credentials.uid,
                gid: credentials.gid,
            };
            record_verdict_with(&shared, UNIX_ADDR, Some(credentials), None, Some(reason));
            drop(stream);
            continue;
        }
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        // The credentials are the whole verdict: no HELLO on Unix sockets.
        record_verdict_with(&shared, UNIX_ADDR, Some(credentials), None, None);
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let span = info_span!(
            "conn",
            id,
            path = %path.display(),
            uid = credentials.uid,
            gid = credentials.gid,
            pid = credentials.pid,
        );
        let peer = Peer {
            observed: UNIX_ADDR,
            local: UNIX_ADDR,
            credentials: Some(credentials),
            tls: None,
            trusted: None,
        };
        let serve = serve_transport(
            Transport::unix(stream),
            peer,
            tokio::time::Instant::now(),
            id,
            shared.clone(),
            policy,
            shutdown,
        );
        spawn_connection(&mut connections, permit, shared, span, serve);
    }
    // The file goes first, so new clients fail at once; then the
    // connections finish.
    drop(listener);
    while connections.join_next().await.is_some() {}
}
