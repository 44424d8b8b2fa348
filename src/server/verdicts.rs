//! The server's lists: open connections and inbound verdicts, their
//! public types, and how the lists are kept.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::Shared;
#[cfg(doc)]
use super::{RunningServer, ServerOptions, ServerStats};
use crate::peer::{NodeId, PeerCredentials};
use crate::tls::TlsPeer;

/// How many inbound verdicts [`RunningServer::verdicts`] keeps.
pub const VERDICTS_KEPT: usize = 64;

/// How many of the [`VERDICTS_KEPT`] one source may hold: one IP address
/// (on a Unix socket, one user and group). Past it, the source's own
/// oldest entry makes room, so one address cannot push the others out.
pub const VERDICTS_PER_SOURCE: usize = 8;

/// Why an inbound connection was turned away before a successful HELLO.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerdictReason {
    /// Refused by the admission lists, closed before a byte was read.
    NotAdmitted,
    /// The record marking broke before a successful HELLO (a stream that
    /// ended inside a record, or a record over the connection's own
    /// limits).
    BadFraming(crate::proto::DecodeError),
    /// Before a successful HELLO, a fragment header or a record exceeded
    /// the pre-HELLO limit ([`ServerOptions::max_record_before_hello`]):
    /// closed. Counted with [`ServerStats::bad_framing`].
    OverLimitBeforeHello(crate::proto::DecodeError),
    /// The peer closed the connection before a successful HELLO.
    ClosedBeforeHello,
    /// No successful HELLO within the handshake timeout.
    HandshakeTimeout,
    /// The HELLO was refused.
    Refused(crate::peer::Refusal),
    /// A call other than NULL or HELLO came before HELLO.
    CallBeforeHello,
    /// A second HELLO claimed another node ID.
    SecondHello,
    /// Admitted and identified, but the admission lists or the peer table
    /// changed ([`RunningServer::update`]) and no longer allow it: closed.
    NoLongerAllowed(Option<crate::peer::Refusal>),
    /// Over TLS, established, but the TLS material changed
    /// ([`RunningServer::update_tls`]) and its revocation lists revoke the
    /// certificate the peer presented
    /// ([`CertError::Revoked`](crate::tls::CertError::Revoked), naming its
    /// serial and CN): closed. [`Verdict::tls`] holds the certificate's
    /// facts.
    NoLongerTrusted(crate::tls::CertError),
    /// On a Unix socket: the peer's credentials are not admitted by
    /// [`ServerOptions::unix_admission`]; closed before a byte was read.
    /// The verdict's `credentials` has the pid too.
    CredentialsNotAdmitted {
        /// The peer's user ID.
        uid: u32,
        /// The peer's group ID.
        gid: u32,
    },
    /// Over TLS, a certificate rule failed: the chain, the observed
    /// address against the IP SANs, or (with an identity) the claimed
    /// node ID against the CN. [`Verdict::tls`] holds the certificate's
    /// facts when it was read.
    Certificate(crate::tls::CertError),
    /// The TLS handshake (or, in STARTTLS mode, the probe before it)
    /// failed otherwise. (One that did not finish in time is
    /// [`VerdictReason::HandshakeTimeout`].)
    TlsHandshake(crate::tls::HandshakeFailure),
    /// TLS is required, and the peer spoke plain RPC (or, to a STARTTLS
    /// server, anything but the `AUTH_TLS` probe): closed.
    PlainTextRefused,
}

impl std::fmt::Display for VerdictReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerdictReason::NotAdmitted => f.write_str("address not admitted"),
            VerdictReason::BadFraming(error) => write!(f, "bad framing before HELLO: {error}"),
            VerdictReason::OverLimitBeforeHello(error) => write!(
                f,
                "over the record limit before HELLO (ServerOptions::max_record_before_hello): {error}"
            ),
            VerdictReason::ClosedBeforeHello => f.write_str("closed before HELLO"),
            VerdictReason::HandshakeTimeout => f.write_str("no HELLO within the handshake timeout"),
            VerdictReason::Refused(refusal) => write!(f, "{refusal}"),
            VerdictReason::CallBeforeHello => f.write_str("a call before HELLO"),
            VerdictReason::SecondHello => f.write_str("a second HELLO with another node ID"),
            VerdictReason::NoLongerAllowed(None) => {
                f.write_str("no longer admitted after a policy change; closed")
            }
            VerdictReason::Certificate(error) => write!(f, "certificate refused: {error}"),
            VerdictReason::NoLongerTrusted(error) => {
                write!(f, "no longer trusted after a TLS update ({error}); closed")
            }
            VerdictReason::TlsHandshake(error) => write!(f, "TLS handshake failed: {error}"),
            VerdictReason::PlainTextRefused => {
                f.write_str("plain-text RPC refused: this server requires TLS")
            }
            VerdictReason::NoLongerAllowed(Some(refusal)) => {
                write!(
                    f,
                    "no longer allowed after a policy change ({refusal}); closed"
                )
            }
            VerdictReason::CredentialsNotAdmitted { uid, gid } => {
                write!(f, "credentials uid {uid} gid {gid} not admitted")
            }
        }
    }
}

/// What the server decided about inbound connections from one address.
///
/// Repeated verdicts from one IP address, for one node ID and one reason,
/// are one entry with a count and the first and last time, so that an
/// impostor retrying every 200 ms cannot push every other entry out of the
/// [`VERDICTS_KEPT`] kept. An address that claims a new node ID each time
/// makes a new entry each time, but holds at most [`VERDICTS_PER_SOURCE`]
/// entries: its new ones push out its own oldest; and when the list is
/// full, the address with the most entries gives up its oldest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The peer's address as observed (the latest connection's), in
    /// canonical form: an IPv4 caller on a dual-stack listener as IPv4.
    /// `0.0.0.0:0` for a connection on a Unix socket.
    pub observed: SocketAddr,
    /// The node ID it claimed, if it sent a valid HELLO.
    pub peer: Option<NodeId>,
    /// Accepted (admitted, and identified where the server has an identity).
    pub accepted: bool,
    /// Why it was turned away.
    pub reason: Option<VerdictReason>,
    /// How many connections this entry stands for.
    pub count: u64,
    /// When the first of them was decided.
    pub first: std::time::SystemTime,
    /// When the latest was.
    pub at: std::time::SystemTime,
    /// On a Unix socket: the peer's credentials (the latest connection's
    /// pid; entries coalesce by user and group). `None` on TCP.
    pub credentials: Option<PeerCredentials>,
    /// Over TLS: the peer's certificate (its CN and SANs) and the TLS
    /// version, when the handshake got that far.
    pub tls: Option<Arc<crate::tls::TlsPeer>>,
}

/// One open connection, as [`RunningServer::connections`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// A process-unique id for logs.
    pub id: u64,
    /// The peer's node ID, once its HELLO succeeded.
    pub peer: Option<NodeId>,
    /// The peer's address as observed (`0.0.0.0:0` on a Unix socket).
    pub observed: SocketAddr,
    /// The local address (`0.0.0.0:0` on a Unix socket).
    pub local: SocketAddr,
    /// On a Unix socket: the peer's credentials. `None` on TCP.
    pub credentials: Option<PeerCredentials>,
    /// Over TLS: the peer's certificate and the TLS version.
    pub tls: Option<Arc<crate::tls::TlsPeer>>,
}

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
/// address for the same node ID and reason (see [`keep`]).
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
    let verdict = Verdict {
        observed,
        peer,
        accepted: reason.is_none(),
        reason,
        count: 1,
        first: std::time::SystemTime::now(),
        at: std::time::SystemTime::now(),
        credentials,
        tls,
    };
    let mut list = shared.verdicts.lock().unwrap_or_else(|p| p.into_inner());
    keep(&mut list, verdict);
}

/// Who a verdict is from, for fairness: its IP address, and on a Unix
/// socket the user and group (the pid changes with every retry).
fn source(verdict: &Verdict) -> (IpAddr, Option<(u32, u32)>) {
    (
        verdict.observed.ip(),
        verdict.credentials.map(|c| (c.uid, c.gid)),
    )
}

/// Puts `verdict` at the front of `list` (newest first), which holds at
/// most [`VERDICTS_KEPT`] entries and at most [`VERDICTS_PER_SOURCE`] from
/// one source.
///
/// - An entry from the same source for the same node ID and reason is
///   coalesced: its count goes up, its time and latest details are
///   `verdict`'s, and it moves to the front.
/// - Otherwise, a source at its cap loses its own oldest entry; and when
///   the list is full, the source with the most entries loses its oldest
///   one (of two sources with as many, the one whose oldest entry is
///   older). So one address retrying with a new claimed node ID each time
///   pushes out only its own entries, never another address's.
pub(super) fn keep(list: &mut VecDeque<Verdict>, verdict: Verdict) {
    let from = source(&verdict);
    let same = list
        .iter()
        .position(|v| source(v) == from && v.peer == verdict.peer && v.reason == verdict.reason);
    let verdict = match same.and_then(|i| list.remove(i)) {
        Some(mut earlier) => {
            earlier.count += 1;
            earlier.at = verdict.at;
            earlier.observed = verdict.observed;
            earlier.credentials = verdict.credentials;
            earlier.tls = verdict.tls;
            earlier
        }
        None => {
            let own = list.iter().filter(|v| source(v) == from).count();
            if own >= VERDICTS_PER_SOURCE {
                evict_oldest_of(list, from);
            } else if list.len() >= VERDICTS_KEPT {
                let crowded = most_entries(list);
                evict_oldest_of(list, crowded);
            }
            verdict
        }
    };
    list.push_front(verdict);
}

/// The source with the most entries in `list`; of those with as many, the
/// one whose oldest entry sits furthest back. `list` is not empty.
fn most_entries(list: &VecDeque<Verdict>) -> (IpAddr, Option<(u32, u32)>) {
    let mut counts: HashMap<(IpAddr, Option<(u32, u32)>), usize> = HashMap::new();
    for v in list {
        *counts.entry(source(v)).or_default() += 1;
    }
    let most = counts.values().copied().max().unwrap_or(0);
    // From the back (oldest first): the first source with `most` entries.
    list.iter()
        .rev()
        .map(source)
        .find(|s| counts.get(s) == Some(&most))
        .expect("the list is not empty")
}

/// Removes the oldest (rearmost) entry from `from`.
fn evict_oldest_of(list: &mut VecDeque<Verdict>, from: (IpAddr, Option<(u32, u32)>)) {
    if let Some(i) = list.iter().rposition(|v| source(v) == from) {
        list.remove(i);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::Refusal;
    use std::time::{Duration, SystemTime};

    fn verdict(from: &str, claimed: &str, at: u64) -> Verdict {
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(at);
        Verdict {
            observed: format!("{from}:4000").parse().unwrap(),
            peer: Some(claimed.parse().unwrap()),
            accepted: false,
            reason: Some(VerdictReason::Refused(Refusal::UnknownNode)),
            count: 1,
            first: time,
            at: time,
            credentials: None,
            tls: None,
        }
    }

    fn from<'a>(list: &'a VecDeque<Verdict>, ip: &str) -> Vec<&'a Verdict> {
        list.iter()
            .filter(|v| v.observed.ip().to_string() == ip)
            .collect()
    }

    #[test]
    fn a_flood_of_new_claimed_ids_from_one_address_keeps_the_others() {
        let mut list = VecDeque::new();
        keep(&mut list, verdict("192.0.2.7", "impostor", 0));
        for i in 0..1000 {
            keep(&mut list, verdict("192.0.2.66", &format!("x{i}"), 1 + i));
        }
        let impostor = from(&list, "192.0.2.7");
        assert_eq!(impostor.len(), 1, "{list:#?}");
        assert_eq!(impostor[0].peer.as_ref().unwrap().as_str(), "impostor");
        let flood = from(&list, "192.0.2.66");
        assert_eq!(flood.len(), VERDICTS_PER_SOURCE);
        // The flood keeps its newest entries, newest first.
        assert_eq!(flood[0].peer.as_ref().unwrap().as_str(), "x999");
        assert_eq!(
            flood[VERDICTS_PER_SOURCE - 1]
                .peer
                .as_ref()
                .unwrap()
                .as_str(),
            format!("x{}", 1000 - VERDICTS_PER_SOURCE)
        );
    }

    #[test]
    fn repeats_coalesce_and_move_to_the_front() {
        let mut list = VecDeque::new();
        keep(&mut list, verdict("192.0.2.7", "a", 0));
        keep(&mut list, verdict("192.0.2.8", "b", 1));
        keep(&mut list, verdict("192.0.2.7", "a", 2));
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].observed.ip().to_string(), "192.0.2.7");
        assert_eq!(list[0].count, 2);
        assert_eq!(list[0].first, SystemTime::UNIX_EPOCH);
        assert_eq!(list[0].at, SystemTime::UNIX_EPOCH + Duration::from_secs(2));
    }

    fn claims(list: &VecDeque<Verdict>, ip: &str) -> Vec<String> {
        from(list, ip)
            .iter()
            .map(|v| v.peer.as_ref().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_full_list_evicts_from_the_address_with_the_most_entries() {
        let mut list = VecDeque::new();
        // .1 and .2 with two entries each (.1's older), 60 others with one:
        // the list is full.
        keep(&mut list, verdict("192.0.2.1", "n0", 0));
        keep(&mut list, verdict("192.0.2.1", "n1", 1));
        keep(&mut list, verdict("192.0.2.2", "n2", 2));
        keep(&mut list, verdict("192.0.2.2", "n3", 3));
        for host in 10..70 {
            keep(&mut list, verdict(&format!("192.0.2.{host}"), "n", host));
        }
        assert_eq!(list.len(), VERDICTS_KEPT);
        // A tie: the address whose oldest entry is older gives way.
        keep(&mut list, verdict("192.0.2.100", "n", 100));
        assert_eq!(list.len(), VERDICTS_KEPT);
        assert_eq!(claims(&list, "192.0.2.1"), ["n1"]);
        assert_eq!(claims(&list, "192.0.2.2"), ["n3", "n2"]);
        // Now .2 alone has the most.
        keep(&mut list, verdict("192.0.2.101", "n", 101));
        assert_eq!(claims(&list, "192.0.2.2"), ["n3"]);
        assert_eq!(claims(&list, "192.0.2.1"), ["n1"]);
        assert_eq!(list.len(), VERDICTS_KEPT);
        // With one entry each, the oldest entry of all goes.
        keep(&mut list, verdict("192.0.2.102", "n", 102));
        assert!(claims(&list, "192.0.2.1").is_empty(), "{list:#?}");
    }

    #[test]
    fn unix_peers_are_sources_by_user_and_group() {
        let mut list = VecDeque::new();
        let unix = |uid: u32, claimed: &str, at: u64| Verdict {
            observed: "0.0.0.0:0".parse().unwrap(),
            credentials: Some(PeerCredentials {
                uid,
                gid: uid,
                pid: Some(at as i32 + 1),
            }),
            ..verdict("0.0.0.0", claimed, at)
        };
        keep(&mut list, unix(1000, "victim", 0));
        for i in 0..100 {
            keep(&mut list, unix(2000, &format!("x{i}"), 1 + i));
        }
        assert_eq!(list.len(), 1 + VERDICTS_PER_SOURCE);
        assert!(
            list.iter()
                .any(|v| v.credentials.map(|c| c.uid) == Some(1000))
        );
    }
}
