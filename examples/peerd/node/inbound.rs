//! What the node's listener is made of, from the config: the addresses it
//! listens on, the peer table it checks identities against, and the
//! admission list applied at accept.

use ipnet::IpNet;
use peerwire::{Address, Admission, Endpoint, IdentityMode, PeerTable, ServerIdentity};

use crate::config::Config;

/// Every `listen` entry: the IP endpoints in config order (so
/// `local_addrs` lines up with them), then the Unix paths.
pub(super) fn all_listen(config: &Config) -> Vec<Address> {
    let inet = config.listen.iter().cloned().map(Address::from);
    let unix = config
        .listen_unix
        .iter()
        .map(|path| Address::Unix(path.clone()));
    inet.chain(unix).collect()
}

/// The node's identity and peer table.
pub(super) fn server_identity(config: &Config) -> ServerIdentity {
    let mut table = PeerTable::new();
    for peer in &config.peers {
        table = table.allow(peer.id.clone(), peer.allow.iter().cloned());
    }
    ServerIdentity {
        node: config.node_id.clone(),
        cluster: None,
        peers: table,
        mode: IdentityMode::Strict,
    }
}

/// Only addresses some peer's `allow` list covers are admitted; any other
/// connection is refused at accept, before a byte is read. (No peers: no
/// one is admitted.)
pub(super) fn admission(config: &Config) -> Admission {
    let allow: Vec<IpNet> = config
        .peers
        .iter()
        .flat_map(|peer| peer.allow.iter().map(|entry| entry.net()))
        .collect();
    if allow.is_empty() {
        return Admission {
            reject: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
            allow,
        };
    }
    Admission {
        reject: Vec::new(),
        allow,
    }
}

/// A `[::]:PORT` listen entry is one dual-stack socket (IPv4 callers too,
/// judged and shown as IPv4), unless `0.0.0.0:PORT` is also listed: then
/// `[::]` is IPv6-only and the IPv4 socket takes IPv4.
pub(super) fn dual_stack(listen: &[Endpoint]) -> bool {
    let unspecified_v4_ports: Vec<u16> = listen
        .iter()
        .filter(|e| e.ip() == std::net::IpAddr::from([0, 0, 0, 0]))
        .map(Endpoint::port)
        .collect();
    let unspecified_v6 = |e: &&Endpoint| e.ip() == std::net::IpAddr::from([0u16; 8]);
    listen.iter().any(|e| unspecified_v6(&e))
        && !listen
            .iter()
            .filter(unspecified_v6)
            .any(|e| unspecified_v4_ports.contains(&e.port()))
}
