//! The server's lists: open connections and inbound verdicts.

use std::net::SocketAddr;
use std::sync::Arc;

use super::{ConnectionInfo, Shared, VERDICTS_KEPT, Verdict, VerdictReason};
use crate::peer::{NodeId, PeerCredentials};
use crate::tls::TlsPeer;

/// Keeps a connection in the server's list while it lives.
pub(super) struct Registered<'a> {
    shared: &'a Shared,
    id: u64,
}

impl<'a> Registered<'a> {
    pub(super) fn new(shared: &'a Shared, info: ConnectionInfo) -> Registered<'a> {
        let id = info.id;
        shared
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, info);
        Registered { shared, id }
    }

    /// Records the peer's node ID; true the first time.
    pub(super) fn identify(&self, peer: &NodeId) -> bool {
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

/// Records a verdict, coalescing it with an earlier one from the same IP
/// address for the same node ID and reason.
pub(super) fn record_verdict(
    shared: &Shared,
    observed: SocketAddr,
    peer: Option<NodeId>,
    reason: Option<VerdictReason>,
) {
    record(shared, observed, None, None, peer, reason);
}

/// [`record_verdict`] with a Unix peer's credentials. Entries coalesce by
/// user and group, not by pid: a process retrying from a new pid each time
/// is one entry, like an address retrying from a new port.
pub(super) fn record_verdict_with(
    shared: &Shared,
    observed: SocketAddr,
    credentials: Option<PeerCredentials>,
    peer: Option<NodeId>,
    reason: Option<VerdictReason>,
) {
    record(shared, observed, credentials, None, peer, reason);
}

/// [`record_verdict`] for a connection over TLS: the verdict shows the
/// peer's certificate (the latest, when coalesced).
pub(super) fn record_verdict_tls(
    shared: &Shared,
    observed: SocketAddr,
    peer: Option<NodeId>,
    reason: Option<VerdictReason>,
    tls: Option<Arc<TlsPeer>>,
) {
    record(shared, observed, None, tls, peer, reason);
}

fn record(
    shared: &Shared,
    observed: SocketAddr,
    credentials: Option<PeerCredentials>,
    tls: Option<Arc<TlsPeer>>,
    peer: Option<NodeId>,
    reason: Option<VerdictReason>,
) {
    let now = std::time::SystemTime::now();
    let mut list = shared.verdicts.lock().unwrap_or_else(|p| p.into_inner());
    let who = |c: &Option<PeerCredentials>| c.map(|c| (c.uid, c.gid));
    let same = list.iter().position(|v| {
        v.observed.ip() == observed.ip()
            && who(&v.credentials) == who(&credentials)
            && v.peer == peer
            && v.reason == reason
    });
    let verdict = match same.and_then(|i| list.remove(i)) {
        Some(mut earlier) => {
            earlier.count += 1;
            earlier.at = now;
            earlier.observed = observed;
            earlier.credentials = credentials;
            earlier.tls = tls;
            earlier
        }
        None => {
            if list.len() == VERDICTS_KEPT {
                list.pop_back();
            }
            Verdict {
                observed,
                peer,
                accepted: reason.is_none(),
                reason,
                count: 1,
                first: now,
                at: now,
                credentials,
                tls,
            }
        }
    };
    list.push_front(verdict);
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
