//! Revocation across the cluster: N nodes in a full mesh over mutual TLS
//! (one CA; each certificate's CN is its node ID and its IP SANs are its
//! three addresses); a CRL revoking one node's certificate is given to
//! every other node with one SIGHUP each. Every other node must cut the
//! revoked node off (its links to it down, its connections from it
//! refused for the revocation), while the links among the others go on
//! on the very same connections.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::check::{self, Expect};
use crate::mesh::{Cluster, Neigh, ll, node_id, v4, v6};
use crate::support::pki::Authority;

/// Five nodes: the revoked one's four links are one of each kind (IPv6
/// first, IPv4 first, link-local, IPv4 only), and the other four keep
/// twelve links that must not move.
const N: usize = 5;
/// The revoked node: (1 + j) % 4 for j = 2..=5 gives every link kind.
const REVOKED: usize = 1;

/// The `[tls]` table of host `i`, files relative to its config (all in
/// the cluster's directory), with `crl = "revoked.pem"` when `crl`.
fn tls_table(i: usize, crl: bool) -> String {
    let mut text =
        format!("[tls]\ncert = \"node-{i}.pem\"\nkey = \"node-{i}.key\"\nca = \"ca.pem\"\n");
    if crl {
        text.push_str("crl = \"revoked.pem\"\n");
    }
    text
}

/// The link of `status` to `peer`, if listed.
fn link(status: &Value, peer: usize) -> Option<&Value> {
    status["peers"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == node_id(peer).as_str())
}

/// Whether an inbound verdict came from one of host `i`'s addresses.
fn from_host(verdict: &Value, i: usize) -> bool {
    let theirs = [v4(i), v6(i), ll(i)];
    verdict["observed"]
        .as_str()
        .and_then(check::split_addr)
        .is_some_and(|(ip, _, _)| theirs.contains(&ip))
}

/// How many connections from host `r` `status` accepted, over all its
/// inbound entries.
fn accepted_from(status: &Value, r: usize) -> u64 {
    status["inbound"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| from_host(v, r) && v["verdict"] == "accepted")
        .map(|v| v["count"].as_u64().unwrap_or(1))
        .sum()
}

/// A revoked node is cut off by every other node within one reload each,
/// and the others keep their links (same local ports: no redial).
pub fn cluster_revoked_node_is_cut_off_by_every_other_node_in_one_reload() {
    let r = REVOKED;
    // Built (by the first call) before anything is timed.
    crate::mesh::peerd_binary();
    let mut c = Cluster::build(N, Neigh::Static);
    let members = c.member_list();
    let others: Vec<usize> = members.iter().copied().filter(|&i| i != r).collect();
    // Namespaces on a shared 2-core machine, five debug peerds doing TLS
    // handshakes while other builds run: a minute and a half only turns a
    // hang into a failure (a run here takes seconds).
    let bound = Duration::from_secs(90);

    let ca = Authority::new("cluster revocation CA");
    ca.write_ca(&c.dir.join("ca.pem")).unwrap();
    let mut serials = BTreeMap::new();
    for &i in &members {
        let ips = [v4(i), v6(i), ll(i)].map(|a| a.parse().unwrap());
        let leaf = ca.issue(&node_id(i), &ips);
        leaf.write(&c.dir, &format!("node-{i}")).unwrap();
        serials.insert(i, leaf.serial);
    }
    let config = |c: &Cluster, i: usize, crl: bool| c.config(i, &members) + &tls_table(i, crl);

    for &i in &members {
        let text = config(&c, i, false);
        c.start(i, &text);
    }
    check::converge(&c, "start over mutual TLS", &Expect::default(), bound);
    // Every link runs TLS, with the peer's certificate (CN = its ID).
    let before: Vec<Value> = c
        .statuses(&members)
        .into_iter()
        .map(|s| s.expect("a status after converging"))
        .collect();
    for (&i, status) in members.iter().zip(&before) {
        for &j in members.iter().filter(|&&j| j != i) {
            let tls = &link(status, j).expect("listed")["tls"];
            assert!(
                tls["cn"] == node_id(j).as_str() && tls["serial"] == serials[&j].as_str(),
                "{} -> {}: not over TLS with {}'s certificate: {tls}",
                node_id(i),
                node_id(j),
                node_id(j)
            );
        }
    }
    let locals_before = check::locals(&c);
    let accepted_before: Vec<u64> = others
        .iter()
        .map(|&i| accepted_from(&before[i - 1], r))
        .collect();

    // The CRL, and one SIGHUP for each other node.
    fs::write(c.dir.join("revoked.pem"), ca.crl_pem(&[&serials[&r]])).unwrap();
    let t = Instant::now();
    for &i in &others {
        c.reload(i, &config(&c, i, true));
    }
    let revoked_text = format!("serial {} is revoked", serials[&r]);
    let after = loop {
        let statuses = c.statuses(&members);
        let mut problems = Vec::new();
        for (&i, status) in members.iter().zip(&statuses) {
            let Some(status) = status else {
                problems.push((i, format!("{}: no status", node_id(i))));
                continue;
            };
            if i == r {
                // Cut off from every side: not one link left.
                for &j in &others {
                    let state =
                        link(status, j).map_or("missing", |l| l["state"].as_str().unwrap_or("?"));
                    if state == "connected" {
                        problems.push((
                            r,
                            format!("{} -> {}: still connected", node_id(r), node_id(j)),
                        ));
                    }
                }
                continue;
            }
            if status["config_generation"] != 2 {
                problems.push((
                    i,
                    format!(
                        "{}: config_generation {}",
                        node_id(i),
                        status["config_generation"]
                    ),
                ));
            }
            match link(status, r) {
                Some(l) if l["state"] == "connected" => problems.push((
                    i,
                    format!("{} -> {}: still connected", node_id(i), node_id(r)),
                )),
                Some(l)
                    if !l["last_error"]
                        .as_str()
                        .unwrap_or("")
                        .contains(&revoked_text) =>
                {
                    problems.push((
                        i,
                        format!(
                            "{} -> {}: last_error {} does not name the revocation",
                            node_id(i),
                            node_id(r),
                            l["last_error"]
                        ),
                    ))
                }
                Some(_) => {}
                None => problems.push((i, format!("{}: {} not listed", node_id(i), node_id(r)))),
            }
            let refused = status["inbound"].as_array().into_iter().flatten().any(|v| {
                from_host(v, r)
                    && v["verdict"] == "rejected"
                    && v["reason"].as_str().unwrap_or("").contains(&revoked_text)
            });
            if !refused {
                problems.push((
                    i,
                    format!(
                        "{}: no inbound from {} rejected for the revocation",
                        node_id(i),
                        node_id(r)
                    ),
                ));
            }
        }
        if problems.is_empty() {
            break statuses;
        }
        if t.elapsed() > bound {
            let first = problems[0].0;
            let mut text = format!(
                "after the CRL reload, {} problems within {bound:?}:\n",
                problems.len()
            );
            for (_, p) in problems.iter().take(12) {
                let _ = writeln!(text, "  {p}");
            }
            let _ = write!(
                text,
                "--- last lines of {}'s log ---\n{}",
                node_id(first),
                c.log_tail(first, 30)
            );
            panic!("{text}");
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    println!(
        "{} cut off by the other {} nodes {:.2} s after their SIGHUPs",
        node_id(r),
        others.len(),
        t.elapsed().as_secs_f64()
    );

    // No connection from the revoked node was accepted after the reload.
    for ((&i, status), before) in others
        .iter()
        .zip(others.iter().map(|&i| after[i - 1].as_ref().unwrap()))
        .zip(&accepted_before)
    {
        assert_eq!(
            accepted_from(status, r),
            *before,
            "{} accepted a connection from the revoked {}:\n{status:#}",
            node_id(i),
            node_id(r)
        );
    }
    // The others' links: all connected as converged requires, on the same
    // connections as before (the same local address and port each).
    let down = members
        .iter()
        .flat_map(|&j| [((r, j), None), ((j, r), None)])
        .filter(|((a, b), _)| a != b)
        .collect();
    check::converge(
        &c,
        "the others after the revocation",
        &Expect {
            down,
            removed: Vec::new(),
        },
        bound,
    );
    let locals_after = check::locals(&c);
    let kept: Vec<_> = locals_before
        .iter()
        .filter(|(i, peer, _)| *i != r && *peer != node_id(r))
        .collect();
    assert_eq!(kept.len(), (N - 1) * (N - 2), "{locals_before:?}");
    let moved: Vec<_> = kept
        .into_iter()
        .filter(|entry| !locals_after.contains(entry))
        .collect();
    assert!(
        moved.is_empty(),
        "links among the non-revoked nodes were redialled (node, peer, local before): {moved:?}\n\
         after: {locals_after:?}"
    );
}
