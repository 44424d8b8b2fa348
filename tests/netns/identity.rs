//! Identity scenarios: a peer is who the address the server observed says
//! it is, on multi-homed, dual-stack and link-local hosts.

use std::time::Duration;

use bytes::Bytes;
use peerwire::{
    CallContext, Client, ClientIdentity, ClientOptions, ConnectOptions, Endpoint, Error,
    IdentityMode, ListenOptions, PeerTable, ProcError, ScopedIp, Server, ServerIdentity,
    ServerOptions, Sources,
};

use crate::support::common::{allowed, id};
use crate::support::netns::{Host, link};

const PROG: u32 = 0x2000_0051;

/// Procedure 1 answers "<peer node ID> <observed address>".
async fn whoami(ctx: CallContext, procedure: u32, _args: Bytes) -> Result<Bytes, ProcError> {
    match (procedure, ctx.peer) {
        (1, Some(peer)) => Ok(Bytes::from(format!("{peer} {}", ctx.observed))),
        _ => Err(ProcError::ProcUnavail),
    }
}

/// A server known as "srv" with `peers`, listening on `listen` in `host`.
/// Runs `client_side` (in `client`) against it, then stops it.
fn with_server<T: Send>(
    host: &Host,
    peers: PeerTable,
    listen: &str,
    listen_options: ListenOptions,
    client_side: impl FnOnce(Endpoint) -> T,
) -> T {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listen: Endpoint = listen.parse().unwrap();
    let server = host.spawn(move || async move {
        let options = ServerOptions {
            identity: Some(ServerIdentity {
                node: id("srv"),
                cluster: None,
                peers,
                mode: IdentityMode::Strict,
            }),
            listen: listen_options,
            ..ServerOptions::default()
        };
        let running = Server::new(options)
            .service(PROG, 1, whoami)
            .serve(&[listen])
            .unwrap();
        addr_tx.send(running.local_addrs()[0]).unwrap();
        let _ = stop_rx.await;
        running.shutdown().await;
    });
    let bound = addr_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server did not start");
    let out = client_side(Endpoint::from(bound));
    let _ = stop_tx.send(());
    crate::support::netns::join(server);
    out
}

/// Calls `whoami` from `client` as node `node`, bound to `source` (or the
/// kernel's choice). Returns the answer, or the error.
fn call_as(
    client: &Host,
    node: &str,
    source: Option<&str>,
    dest: &Endpoint,
) -> Result<String, Error> {
    let mut connect = ConnectOptions::default();
    if let Some(source) = source {
        connect.sources = Sources::new().with(source.parse::<ScopedIp>().unwrap());
    }
    let options = ClientOptions {
        connect,
        identity: Some(ClientIdentity::new(id(node), id("srv"))),
        deadline: Duration::from_secs(5),
        breaker_threshold: 1,
        ..ClientOptions::default()
    };
    client.block_on(|| async {
        let c = Client::new(vec![dest.clone()], options).expect("a destination");
        let answer = c.call(PROG, 1, 1, Bytes::new()).await?;
        if let Some(source) = source {
            // e. The server's view of us, as the client checked it.
            let hello = c.hello().expect("identity on: HELLO answered");
            let bound: std::net::IpAddr = source.split('%').next().unwrap().parse().unwrap();
            assert_eq!(
                hello.observed.ip(),
                bound,
                "the observed address the server reports equals the source we bound"
            );
        }
        Ok(String::from_utf8(answer.to_vec()).unwrap())
    })
}

/// a. A host with two addresses: the table allows the one the kernel does
/// *not* pick. Unbound, the client is refused; bound to the allowed source,
/// it is accepted. In IPv4 and in IPv6.
pub fn unbound_client_is_refused_bound_client_is_accepted() {
    let server = Host::new("ias");
    let client = Host::new("iac");
    link(&server, "veth0", &client, "veth1");
    for cidr in ["192.0.2.1/24", "2001:db8:6::1/64"] {
        server.add_addr("veth0", cidr);
    }
    for cidr in [
        "192.0.2.10/24",
        "192.0.2.11/24",
        "2001:db8:6::10/64",
        "2001:db8:6::11/64",
    ] {
        client.add_addr("veth1", cidr);
    }
    for (listen, dest_ip, candidates) in [
        ("192.0.2.1:0", "192.0.2.1", ["192.0.2.10", "192.0.2.11"]),
        (
            "[2001:db8:6::1]:0",
            "2001:db8:6::1",
            ["2001:db8:6::10", "2001:db8:6::11"],
        ),
    ] {
        let picked = client.kernel_source(dest_ip);
        let other = candidates
            .iter()
            .find(|c| **c != picked)
            .unwrap()
            .to_string();
        assert!(
            candidates.contains(&picked.as_str()),
            "kernel picked {picked}"
        );
        let peers = PeerTable::new().allow(id("c"), [allowed(&other)]);
        with_server(&server, peers, listen, ListenOptions::default(), |dest| {
            let err = call_as(&client, "c", None, &dest).unwrap_err();
            assert!(
                matches!(err, Error::IdentityRefused { .. }),
                "unbound from {picked}: {err:?}"
            );
            let answer = call_as(&client, "c", Some(&other), &dest).unwrap();
            assert!(answer.starts_with("c "), "{answer}");
            assert!(
                answer.contains(&other),
                "the server observed {answer}, not {other}"
            );
        });
    }
}

/// b. Three hosts on one link (a bridge): C claims A's ID and is refused;
/// A is accepted.
pub fn an_impostor_on_the_same_link_is_refused() {
    let switch = Host::new("sw");
    switch.ip(&["link", "add", "br0", "type", "bridge"]);
    switch.ip(&["link", "set", "br0", "up"]);
    let hosts: Vec<(Host, &str)> = [
        ("ibs", "192.0.2.1/24"),
        ("iba", "192.0.2.10/24"),
        ("ibc", "192.0.2.30/24"),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (name, cidr))| {
        let host = Host::new(name);
        let port = format!("p{i}");
        link(&host, "eth0", &switch, &port);
        switch.ip(&["link", "set", &port, "master", "br0"]);
        host.add_addr("eth0", cidr);
        (host, cidr)
    })
    .collect();
    let (server, a, c) = (&hosts[0].0, &hosts[1].0, &hosts[2].0);
    let peers = PeerTable::new().allow(id("a"), [allowed("192.0.2.10")]);
    with_server(
        server,
        peers,
        "192.0.2.1:0",
        ListenOptions::default(),
        |dest| {
            let err = call_as(c, "a", Some("192.0.2.30"), &dest).unwrap_err();
            assert!(
                matches!(err, Error::IdentityRefused { .. }),
                "impostor: {err:?}"
            );
            let answer = call_as(a, "a", Some("192.0.2.10"), &dest).unwrap();
            assert!(answer.starts_with("a 192.0.2.10:"), "{answer}");
        },
    );
}

/// c. A dual-stack `[::]` listener (`IPV6_V6ONLY` off): an IPv4 client
/// arrives as an IPv4-mapped address, is matched against its IPv4 entry,
/// and is shown to handlers (and in verdicts and logs) as IPv4.
pub fn dual_stack_listener_matches_ipv4_peers_by_their_ipv4_entry() {
    let server = Host::new("ics");
    let client = Host::new("icc");
    link(&server, "veth0", &client, "veth1");
    server.add_addr("veth0", "198.51.100.1/24");
    client.add_addr("veth1", "198.51.100.10/24");
    let peers = PeerTable::new().allow(id("c"), [allowed("198.51.100.10")]);
    with_server(
        &server,
        peers,
        "[::]:0",
        ListenOptions {
            dual_stack: true,
            ..ListenOptions::default()
        },
        |dest| {
            let dest = Endpoint::new("198.51.100.1".parse::<ScopedIp>().unwrap(), dest.port());
            let answer = call_as(&client, "c", Some("198.51.100.10"), &dest).unwrap();
            assert!(
                answer.starts_with("c 198.51.100.10:"),
                "observed in canonical IPv4 form: {answer}"
            );
        },
    );
}

/// d. Link-local peers identified by `fe80::` entries with a scope.
pub fn link_local_peers_are_identified_by_scoped_entries() {
    let server = Host::new("ids");
    let client = Host::new("idc");
    link(&server, "veth0", &client, "veth1");
    server.add_addr("veth0", "fe80::1/64");
    client.add_addr("veth1", "fe80::a/64");
    client.add_addr("veth1", "fe80::b/64");
    // The scope is the server's own interface.
    let peers = PeerTable::new().allow(id("ll"), [allowed("fe80::a%veth0")]);
    with_server(
        &server,
        peers,
        "[fe80::1%veth0]:0",
        ListenOptions::default(),
        |dest| {
            let dest: Endpoint = format!("[fe80::1%veth1]:{}", dest.port()).parse().unwrap();
            let answer = call_as(&client, "ll", Some("fe80::a%veth1"), &dest).unwrap();
            let index = server.if_index("veth0");
            assert!(
                answer.starts_with(&format!("ll [fe80::a%{index}]:")),
                "{answer}"
            );
            let err = call_as(&client, "ll", Some("fe80::b%veth1"), &dest).unwrap_err();
            assert!(
                matches!(err, Error::IdentityRefused { .. }),
                "other link-local address: {err:?}"
            );
        },
    );
}
