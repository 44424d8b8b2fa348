//! `peerd demo`: three nodes and an impostor in one process, on loopback.
//!
//! - node-1, node-2 and node-3 listen at 127.0.0.1, .2 and .3 (ports chosen
//!   by the OS) and bind those as their sources: a full mesh, six links.
//! - Where `::1` works, node-1 also listens on `[::1]`, and node-2 dials it
//!   there from the source `::1`. node-1's peer table allows `::1` for
//!   node-2 only: node-3 from `::1` would be refused.
//! - An impostor on node-3's host (source 127.0.0.3, which node-1 admits,
//!   for node-3) claims node-2's ID to node-1.
//!
//! The table is read from each node's admin listener, over peerwire. The
//! exit code is 0 only when every link is connected from its node's own
//! source, every peer observed exactly that source, and node-1 rejected the
//! impostor with a reason naming its address and the allowed ones.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use peerwire::peer::{HANDSHAKE_PROGRAM, HANDSHAKE_VERSION};
use peerwire::{
    Client, ClientIdentity, ClientOptions, ConnectOptions, Endpoint, NodeId, ScopedIp, Sources,
};

use crate::config::{Config, PeerConfig, Timeouts};
use crate::demo_tls::{DemoPki, IMPOSTOR_POSES_AS};
use crate::node::{self, Node};
use crate::status::{self, Status};

/// How long the mesh may take to connect.
const CONNECT_LIMIT: Duration = Duration::from_secs(8);

fn id(text: &str) -> NodeId {
    text.parse().expect("a valid node ID")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an IP")
}

/// One demo node's plan.
pub(crate) struct Plan {
    pub(crate) name: &'static str,
    pub(crate) v4: &'static str,
    /// Whether it listens on, or dials from, `::1`.
    pub(crate) v6: bool,
}

pub(crate) const PLANS: [Plan; 3] = [
    Plan {
        name: "node-1",
        v4: "127.0.0.1",
        v6: true,
    },
    Plan {
        name: "node-2",
        v4: "127.0.0.2",
        v6: true,
    },
    Plan {
        name: "node-3",
        v4: "127.0.0.3",
        v6: false,
    },
];

/// node-3's address: admitted by node-1 (for node-3), so the impostor gets
/// as far as its HELLO, where the claim of node-2 from it is refused.
pub(crate) const IMPOSTOR_SOURCE: &str = "127.0.0.3";

/// Whether `::1` can be bound here.
pub(crate) fn ipv6_loopback_works() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

fn config(index: usize, with_v6: bool, timeouts: Timeouts, pki: Option<&DemoPki>) -> Config {
    let plan = &PLANS[index];
    let v6 = with_v6 && plan.v6;
    let mut listen = vec![Endpoint::new(ip(plan.v4), 0)];
    // node-1 takes the IPv6 link's inbound end.
    if v6 && plan.name == "node-1" {
        listen.push(Endpoint::new(ip("::1"), 0));
    }
    let peers = PLANS
        .iter()
        .filter(|other| other.name != plan.name)
        .map(|other| {
            let mut allow = vec![other.v4.parse().unwrap()];
            if v6 && plan.name == "node-1" && other.name == "node-2" {
                allow.push("::1".parse().unwrap());
            }
            PeerConfig {
                id: id(other.name),
                dial: Vec::new(), // filled in once every node listens
                allow,
                source: None,
            }
        })
        .collect();
    Config {
        node_id: id(plan.name),
        listen,
        listen_unix: Vec::new(),
        unix_mode: 0o600,
        admin: Some("127.0.0.1:0".parse().unwrap()),
        source_v4: Some(ip(plan.v4).into()),
        source_v6: v6.then(|| ip("::1").into()),
        peers,
        timeouts,
        tls: pki.map(|pki| pki.node_tls(index)),
    }
}

/// The plain demo.
pub async fn run() -> Result<ExitCode, ExitCode> {
    run_with(None).await
}

/// The demo, over mutual TLS with `pki`'s certificates when given.
pub(crate) async fn run_with(pki: Option<DemoPki>) -> Result<ExitCode, ExitCode> {
    let pki = pki.as_ref();
    let started = Instant::now();
    let with_v6 = ipv6_loopback_works();
    let timeouts = Timeouts {
        connect: Duration::from_secs(2),
        call: Duration::from_secs(2),
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_secs(5),
        handshake: Duration::from_secs(2),
    };
    match pki {
        None => println!(
            "peerd demo: node-1, node-2 and node-3 at 127.0.0.1, .2 and .3, each binding its own source, in a full mesh"
        ),
        Some(pki) => {
            println!(
                "peerd demo --tls: node-1, node-2 and node-3 at 127.0.0.1, .2 and .3, each binding its own source, in a full mesh over mutual TLS"
            );
            println!("  certificates from a throwaway CA ({}):", pki.ca_name());
            for line in pki.describe() {
                println!("    {line}");
            }
        }
    }
    if with_v6 {
        println!(
            "  plus one IPv6 link: node-2 dials node-1 at [::1] from ::1 (node-1 allows ::1 for node-2 only)"
        );
    } else {
        println!("  ::1 cannot be bound here: no IPv6 link");
    }
    match pki {
        None => {
            println!("  and an impostor at {IMPOSTOR_SOURCE} that claims node-2's ID to node-1")
        }
        Some(_) => println!(
            "  and an impostor at {IMPOSTOR_SOURCE} that presents node-2's valid certificate and claims node-2's ID to node-1"
        ),
    }
    println!();

    let mut configs: Vec<Config> = (0..PLANS.len())
        .map(|i| config(i, with_v6, timeouts, pki))
        .collect();
    let mut nodes = Vec::new();
    for config in &configs {
        match Node::listen(config) {
            Ok(node) => nodes.push(node),
            Err(error) => {
                eprintln!("error: {} cannot listen: {error}", config.node_id);
                shutdown(nodes).await;
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    // Every node listens: fill in the dial lists, then dial.
    let listens: Vec<Vec<SocketAddr>> = nodes.iter().map(|n| n.listen_addrs()).collect();
    for (i, config) in configs.iter_mut().enumerate() {
        for peer in &mut config.peers {
            let j = PLANS
                .iter()
                .position(|p| p.name == peer.id.as_str())
                .unwrap();
            let v6_link = with_v6 && PLANS[i].name == "node-2" && PLANS[j].name == "node-1";
            let target = listens[j]
                .iter()
                .find(|a| a.is_ipv6() == v6_link)
                .expect("a listener of the family");
            peer.dial = vec![Endpoint::from(*target)];
        }
    }
    for (node, config) in nodes.iter_mut().zip(&configs) {
        node.dial(config);
    }

    // Wait until every link has answered two pings in a row (the second
    // one's round trip is a plain call on an open connection).
    let deadline = Instant::now() + CONNECT_LIMIT;
    while Instant::now() < deadline {
        let ready = nodes
            .iter()
            .all(|n| node::answered(n).iter().all(|(_, answered)| *answered >= 2));
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let impostor = impostor(&listens[0], pki).await;
    // node-1 records its verdict just after it answers: give it a moment.
    let is_impostor = |v: &status::InboundStatus| {
        v.observed.starts_with(&format!("{IMPOSTOR_SOURCE}:")) && v.verdict == "rejected"
    };
    let seen = |n: &Node| n.status().inbound.iter().any(is_impostor);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !seen(&nodes[0]) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Each node's view, through its admin listener.
    let mut statuses = Vec::new();
    for node in &nodes {
        let admin = Endpoint::from(
            node.admin_addr()
                .expect("demo nodes have an admin listener"),
        );
        match status::fetch(&admin, Duration::from_secs(2)).await {
            Ok(status) => statuses.push(status),
            Err(error) => {
                eprintln!("error: no status from {admin}: {error}");
                statuses.push(node.status());
            }
        }
    }
    shutdown(nodes).await;

    let tls = pki.is_some();
    let mut rows = vec![status::peer_header_with(tls)];
    for status in &statuses {
        rows.extend(status::peer_rows_with(status, tls));
    }
    status::print_table(&rows);
    println!();

    let mut problems = check_mesh(&statuses, &configs);
    if tls {
        problems.extend(check_tls(&statuses, &configs));
    }
    match pki {
        None => println!("impostor {IMPOSTOR_SOURCE} claiming node-2, to node-1:"),
        Some(_) => println!(
            "impostor {IMPOSTOR_SOURCE} with {IMPOSTOR_POSES_AS}'s certificate, claiming {IMPOSTOR_POSES_AS}, to node-1:"
        ),
    }
    match &impostor {
        Ok(()) => problems.push("node-1 accepted the impostor".into()),
        Err(error) => println!("  the impostor was told: {error}"),
    }
    let verdict = statuses[0].inbound.iter().find(|v| is_impostor(v));
    match verdict {
        Some(v) if tls => {
            let reason = v.reason.as_deref().unwrap_or("-");
            let cert = v.tls.as_ref().map_or("-".into(), ToString::to_string);
            println!(
                "  node-1's verdict: {} {} presenting {cert}: {reason}",
                v.verdict, v.observed
            );
            // Refused at the certificate, before HELLO: the address it
            // connects from is not in node-2's certificate.
            let expected = reason.contains("certificate")
                && reason.contains(IMPOSTOR_SOURCE)
                && reason.contains("127.0.0.2")
                && v.tls.as_ref().and_then(|t| t.cn.as_deref()) == Some(IMPOSTOR_POSES_AS);
            if v.verdict != "rejected" || !expected {
                problems.push(format!(
                    "node-1's verdict on the impostor is not the IP mismatch: {v:?}"
                ));
            }
        }
        Some(v) => {
            let reason = v.reason.as_deref().unwrap_or("-");
            println!(
                "  node-1's verdict: {} {} claiming {}: {reason}",
                v.verdict,
                v.observed,
                v.peer.as_deref().unwrap_or("-")
            );
            let expected = reason.contains("127.0.0.2");
            if v.verdict != "rejected" || v.peer.as_deref() != Some("node-2") || !expected {
                problems.push(format!(
                    "node-1's verdict on the impostor is unexpected: {v:?}"
                ));
            }
        }
        None => problems.push("node-1 recorded no verdict on the impostor".into()),
    }
    println!();
    let took = started.elapsed();
    if problems.is_empty() {
        let links: usize = statuses.iter().map(|s| s.peers.len()).sum();
        if tls {
            println!(
                "OK: all {links} links connected over mutual TLS from their own sources, each certificate's CN the peer's node ID, each observed as such by its peer; the impostor was rejected for the IP mismatch ({:.1} s)",
                took.as_secs_f64()
            );
        } else {
            println!(
                "OK: all {links} links connected from their own sources, each observed as such by its peer; the impostor was rejected ({:.1} s)",
                took.as_secs_f64()
            );
        }
        Ok(ExitCode::SUCCESS)
    } else {
        for problem in &problems {
            println!("FAIL: {problem}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// The impostor: binds node-3's address, says it is node-2, and calls
/// node-1.
async fn impostor(node1: &[SocketAddr], pki: Option<&DemoPki>) -> Result<(), String> {
    let target = node1
        .iter()
        .find(|a| a.is_ipv4())
        .expect("node-1 listens on IPv4");
    let options = ClientOptions {
        connect: ConnectOptions {
            sources: Sources::new().with(IMPOSTOR_SOURCE.parse::<ScopedIp>().unwrap()),
            ..ConnectOptions::default()
        },
        identity: Some(ClientIdentity::new(id("node-2"), id("node-1"))),
        tls: pki.map(|pki| {
            pki.impostor_tls()
                .client()
                .expect("the demo's own certificates")
        }),
        deadline: Duration::from_secs(2),
        breaker_threshold: 1,
        ..ClientOptions::default()
    };
    let client = Client::new(vec![Endpoint::from(*target)], options).expect("a destination");
    let result = client.null(HANDSHAKE_PROGRAM, HANDSHAKE_VERSION).await;
    // Over TLS the call fails on the circuit breaker; the connect error
    // behind it is what the impostor was told.
    let cause = client.last_connect_error().filter(|_| pki.is_some());
    client.close();
    result.map_err(|error| match cause {
        Some(cause) => cause.to_string(),
        None => error.to_string(),
    })
}

async fn shutdown(nodes: Vec<Node>) {
    for node in nodes {
        node.shutdown().await;
    }
}

/// Every link connected from its node's source, to the address dialled,
/// and observed by the peer as exactly that source.
fn check_mesh(statuses: &[Status], configs: &[Config]) -> Vec<String> {
    let mut problems = Vec::new();
    for (status, config) in statuses.iter().zip(configs) {
        for peer in &status.peers {
            let link = format!("{} → {}", status.node_id, peer.id);
            if peer.state != "connected" {
                problems.push(format!(
                    "{link} is {}: {}",
                    peer.state,
                    peer.last_error.as_deref().unwrap_or("no error recorded")
                ));
                continue;
            }
            let dialled = config
                .peers
                .iter()
                .find(|p| p.id.as_str() == peer.id)
                .map(|p| p.dial[0].clone());
            let remote = peer
                .remote
                .as_deref()
                .and_then(|r| r.parse::<SocketAddr>().ok());
            let local = peer
                .local
                .as_deref()
                .and_then(|r| r.parse::<SocketAddr>().ok());
            let observed = peer
                .observed_by_peer
                .as_deref()
                .and_then(|r| r.parse::<SocketAddr>().ok());
            let (Some(dialled), Some(remote), Some(local), Some(observed)) =
                (dialled, remote, local, observed)
            else {
                problems.push(format!("{link}: addresses missing: {peer:?}"));
                continue;
            };
            let source = if remote.is_ipv4() {
                config.source_v4.as_ref()
            } else {
                config.source_v6.as_ref()
            };
            if remote != SocketAddr::new(dialled.ip(), dialled.port()) {
                problems.push(format!("{link}: connected to {remote}, not {dialled}"));
            }
            if Some(local.ip()) != source.map(|s| s.ip()) {
                problems.push(format!("{link}: local {local} is not the node's source"));
            }
            if observed != local {
                problems.push(format!("{link}: the peer observed {observed}, not {local}"));
            }
        }
    }
    problems
}

/// Over TLS: every link's status shows the peer's certificate with its
/// node ID as CN, and every node accepted each peer's connection with a
/// certificate whose CN is that peer's ID.
fn check_tls(statuses: &[Status], configs: &[Config]) -> Vec<String> {
    let mut problems = Vec::new();
    for (status, config) in statuses.iter().zip(configs) {
        for peer in &status.peers {
            let link = format!("{} → {}", status.node_id, peer.id);
            match &peer.tls {
                Some(tls) if tls.cn.as_deref() == Some(peer.id.as_str()) => {}
                Some(tls) => problems.push(format!("{link}: the peer's certificate is {tls}")),
                None => problems.push(format!("{link}: not TLS")),
            }
        }
        for peer in &config.peers {
            let accepted = status.inbound.iter().any(|v| {
                v.verdict == "accepted"
                    && v.peer.as_deref() == Some(peer.id.as_str())
                    && v.tls.as_ref().and_then(|t| t.cn.as_deref()) == Some(peer.id.as_str())
            });
            if !accepted {
                problems.push(format!(
                    "{}: no accepted TLS connection from {} with its certificate",
                    status.node_id, peer.id
                ));
            }
        }
    }
    problems
}
