//! What "converged" means for the cluster, checked over every node's
//! `peerd status --json`, and the wait for it with a failure that names
//! the node, the peer and the state.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::mesh::{Cluster, Kind, decoys, host_summary, ll, node_id, v4, v6};

/// What a converged link must show, beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// Links (from, to) that must *not* be connected now, with a text
    /// their `last_error` must contain (from's side), if any.
    pub down: Vec<((usize, usize), Option<String>)>,
    /// Addresses no connected link may use as its local address now.
    pub removed: Vec<String>,
}

impl Expect {
    fn down(&self, from: usize, to: usize) -> Option<&Option<String>> {
        self.down
            .iter()
            .find(|((a, b), _)| *a == from && *b == to)
            .map(|(_, text)| text)
    }
}

/// One thing that is not as converged requires.
pub struct Problem {
    pub node: usize,
    pub peer: String,
    pub state: String,
    pub what: String,
}

/// Checks one node's status against the converged state: every peer of
/// its config listed; each link `connected` (or down where `expect` says),
/// its `local` one of the node's configured sources for that link (never
/// a decoy, never a removed address), and `observed_by_peer` equal to
/// `local` (for link-local: the same address and port, scoped by the
/// peer's own interface index).
pub fn check_node(
    cluster: &Cluster,
    i: usize,
    peers: &[usize],
    status: Option<&Value>,
    expect: &Expect,
    problems: &mut Vec<Problem>,
) {
    let Some(status) = status else {
        problems.push(Problem {
            node: i,
            peer: "-".into(),
            state: "no status".into(),
            what: "peerd status --json did not answer".into(),
        });
        return;
    };
    for &j in peers.iter().filter(|&&j| j != i) {
        let id = node_id(j);
        let Some(link) = status["peers"]
            .as_array()
            .and_then(|list| list.iter().find(|p| p["id"] == id.as_str()))
        else {
            problems.push(Problem {
                node: i,
                peer: id,
                state: "missing".into(),
                what: "not in the status".into(),
            });
            continue;
        };
        let state = link["state"].as_str().unwrap_or("?").to_owned();
        let mut fail = |what: String| {
            problems.push(Problem {
                node: i,
                peer: node_id(j),
                state: state.clone(),
                what,
            })
        };
        if let Some(text) = expect.down(i, j) {
            if state == "connected" {
                fail("connected, but should be down now".into());
            } else if let Some(text) = text {
                let error = link["last_error"].as_str().unwrap_or("");
                if !error.contains(text.as_str()) {
                    fail(format!("last_error {error:?} does not name {text:?}"));
                }
            }
            continue;
        }
        if state != "connected" {
            fail(format!(
                "last_error: {}",
                link["last_error"].as_str().unwrap_or("null")
            ));
            continue;
        }
        let Some((ip, scope, port)) = link["local"].as_str().and_then(split_addr) else {
            fail(format!("connected without a local address: {link}"));
            continue;
        };
        let allowed: Vec<(String, Option<String>)> = match Kind::of(i, j) {
            Kind::LinkLocal => vec![(ll(i), Some("e0".into()))],
            Kind::V4Only => vec![(v4(i), None)],
            Kind::V4First | Kind::V6First => vec![(v4(i), None), (v6(i), None)],
        };
        if !allowed.contains(&(ip.clone(), scope.clone())) {
            fail(format!(
                "local {} is not a configured source for this link ({allowed:?})",
                link["local"]
            ));
            continue;
        }
        if decoys(i).is_some_and(|(d4, d6)| ip == d4 || ip == d6) {
            fail(format!("local {} is a decoy", link["local"]));
            continue;
        }
        if expect.removed.contains(&ip) {
            fail(format!("local {} was removed from the host", link["local"]));
            continue;
        }
        let observed = link["observed_by_peer"].as_str().and_then(split_addr);
        let want_scope = scope
            .as_ref()
            .map(|_| cluster.machine(j).ifindex.to_string());
        if observed != Some((ip.clone(), want_scope, port)) {
            fail(format!(
                "observed_by_peer {} is not local {}",
                link["observed_by_peer"], link["local"]
            ));
        }
    }
}

/// "ip:port", "[ip]:port", "[ip%scope]:port" → (ip, scope, port).
pub fn split_addr(text: &str) -> Option<(String, Option<String>, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let (ip, scope) = match host.split_once('%') {
        Some((ip, scope)) => (ip.to_owned(), Some(scope.to_owned())),
        None => (host.to_owned(), None),
    };
    Some((ip, scope, port.parse().ok()?))
}

/// Polls every member's status until all pass [`check_node`] with
/// `expect`; returns how long that took. Past `bound`, panics naming the
/// node, peer and state that did not converge (the first dozen), with the
/// tail of the first such node's log.
pub fn converge(cluster: &Cluster, what: &str, expect: &Expect, bound: Duration) -> Duration {
    let start = Instant::now();
    let members = cluster.member_list();
    loop {
        let statuses = cluster.statuses(&members);
        let mut problems = Vec::new();
        for (&i, status) in members.iter().zip(&statuses) {
            check_node(cluster, i, &members, status.as_ref(), expect, &mut problems);
        }
        if problems.is_empty() {
            return start.elapsed();
        }
        if start.elapsed() > bound {
            let mut text = format!(
                "{what}: {} links of {} nodes did not converge within {bound:?}; the first:\n",
                problems.len(),
                members.len()
            );
            for p in problems.iter().take(12) {
                let _ = writeln!(
                    text,
                    "  node {} -> peer {}: state {}: {}",
                    node_id(p.node),
                    p.peer,
                    p.state,
                    p.what
                );
            }
            let first = problems[0].node;
            let _ = write!(
                text,
                "--- last lines of {}'s log ---\n{}\n--- its host: {} ---",
                node_id(first),
                cluster.log_tail(first, 40),
                host_summary(&cluster.machine(first).host)
            );
            panic!("{text}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The `local` of every link of every member, keyed by (node, peer).
pub fn locals(cluster: &Cluster) -> BTreeSet<(usize, String, String)> {
    let members = cluster.member_list();
    let mut set = BTreeSet::new();
    for (&i, status) in members.iter().zip(cluster.statuses(&members)) {
        let Some(status) = status else { continue };
        for link in status["peers"].as_array().into_iter().flatten() {
            if let (Some(id), Some(local)) = (link["id"].as_str(), link["local"].as_str()) {
                set.insert((i, id.to_owned(), local.to_owned()));
            }
        }
    }
    set
}
