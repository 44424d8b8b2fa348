//! Source-binding scenarios on multi-homed, dual-stack hosts.
//!
//! Each scenario builds a server host and a client host joined by a veth
//! pair, gives the client more than one address per family, so that a wrong
//! source would be visible, and asserts on observed facts: the address the
//! server saw, the client's local address, and the exact error kind.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use peerwire::{
    ConnectOptions, Connector, Endpoint, Error, ListenOptions, PortPolicy, Role, ScopedIp, Sources,
    listen,
};

use crate::STEP;
use crate::support::common::ip;
use crate::support::netns::{Host, link, stop_and_join};

fn scoped(text: &str) -> ScopedIp {
    text.parse().unwrap()
}

/// A server in one host that accepts on its listen addresses and reports
/// every address it observes.
struct Observer {
    bound: Vec<SocketAddr>,
    observed: mpsc::Receiver<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Observer {
    /// Listens on each endpoint (port 0 picks one) inside `host`.
    fn start(host: &Host, listen_on: &[&str]) -> Observer {
        let endpoints: Vec<Endpoint> = listen_on.iter().map(|t| t.parse().unwrap()).collect();
        let (bound_tx, bound_rx) = mpsc::channel();
        let (seen_tx, seen_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = host.spawn(move || async move {
            let mut bound = Vec::new();
            let mut tasks = tokio::task::JoinSet::new();
            for endpoint in &endpoints {
                let listener = listen(endpoint, &ListenOptions::default())
                    .unwrap_or_else(|e| panic!("observer cannot listen: {e}"));
                bound.push(listener.local_addr().unwrap());
                let seen = seen_tx.clone();
                tasks.spawn(async move {
                    let mut held = Vec::new();
                    while let Ok((stream, observed)) = listener.accept().await {
                        held.push(stream);
                        if seen.send(observed).is_err() {
                            break;
                        }
                    }
                });
            }
            bound_tx.send(bound).unwrap();
            let _ = stop_rx.await;
        });
        let bound = bound_rx.recv_timeout(STEP).expect("observer did not start");
        Observer {
            bound,
            observed: seen_rx,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The endpoint of listen address `i`, as a client would dial it.
    fn endpoint(&self, i: usize, scope: Option<&str>) -> Endpoint {
        let addr = self.bound[i];
        match scope {
            Some(scope) => format!("[{}%{scope}]:{}", addr.ip(), addr.port())
                .parse()
                .unwrap(),
            None => Endpoint::new(addr.ip(), addr.port()),
        }
    }

    /// The next observed address.
    #[track_caller]
    fn next(&self) -> SocketAddr {
        self.observed
            .recv_timeout(STEP)
            .expect("the server observed no connection")
    }

    /// Fails if the server observes a connection within a short while.
    #[track_caller]
    fn assert_none(&self) {
        if let Ok(addr) = self.observed.recv_timeout(Duration::from_millis(300)) {
            panic!("the server observed an unexpected connection from {addr}");
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        stop_and_join(&mut self.stop, &mut self.thread);
    }
}

/// Connects from `client` with `options`; returns the local address or the error.
fn connect_from(
    client: &Host,
    options: ConnectOptions,
    destination: &Endpoint,
) -> Result<SocketAddr, Error> {
    client.block_on(|| async {
        let connector = Connector::new(options);
        let connected = connector.connect(destination).await?;
        // Keep the connection open until the server has accepted it.
        let local = connected.local_addr();
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(local)
    })
}

/// Server and client joined by a veth pair (server `veth0`, client `veth1`),
/// with these addresses (IPv6 ones usable at once: no DAD).
fn pair(tag: &str, server_addrs: &[&str], client_addrs: &[&str]) -> (Host, Host) {
    let server = Host::new(&format!("{tag}s"));
    let client = Host::new(&format!("{tag}c"));
    link(&server, "veth0", &client, "veth1");
    for cidr in server_addrs {
        server.add_addr("veth0", cidr);
    }
    for cidr in client_addrs {
        client.add_addr("veth1", cidr);
    }
    (server, client)
}

/// a. IPv4, two addresses on one interface: the configured source is what
/// the server sees; with none, the kernel's choice (the primary address).
pub fn v4_multihomed_source_is_what_the_server_sees() {
    let (server, client) = pair("a", &["192.0.2.1/24"], &["192.0.2.10/24", "192.0.2.11/24"]);
    let observer = Observer::start(&server, &["192.0.2.1:0"]);
    let dest = observer.endpoint(0, None);

    for source in ["192.0.2.11", "192.0.2.10"] {
        let local = connect_from(
            &client,
            ConnectOptions {
                sources: Sources::new().with(scoped(source)),
                ..ConnectOptions::default()
            },
            &dest,
        )
        .unwrap();
        let observed = observer.next();
        assert_eq!(observed.ip(), ip(source), "server saw the wrong source");
        assert_eq!(observed, local, "server and client disagree on the source");
    }

    let local = connect_from(&client, ConnectOptions::default(), &dest).unwrap();
    let observed = observer.next();
    assert_eq!(observed, local);
    assert_eq!(
        observed.ip(),
        ip("192.0.2.10"),
        "unbound, the kernel picks the primary address"
    );
}

/// b. IPv6, two global addresses on one interface (the GlusterFS #4365
/// situation): each configured source is what the server sees.
pub fn v6_multihomed_source_is_what_the_server_sees() {
    let (server, client) = pair(
        "b",
        &["2001:db8:1::1/64"],
        &["2001:db8:1::10/64", "2001:db8:1::11/64"],
    );
    let observer = Observer::start(&server, &["[2001:db8:1::1]:0"]);
    let dest = observer.endpoint(0, None);

    for source in ["2001:db8:1::11", "2001:db8:1::10", "2001:db8:1::11"] {
        let local = connect_from(
            &client,
            ConnectOptions {
                sources: Sources::new().with(scoped(source)),
                ..ConnectOptions::default()
            },
            &dest,
        )
        .unwrap();
        let observed = observer.next();
        assert_eq!(observed.ip(), ip(source), "server saw the wrong source");
        assert_eq!(observed, local);
    }

    let local = connect_from(&client, ConnectOptions::default(), &dest).unwrap();
    let observed = observer.next();
    assert_eq!(
        observed, local,
        "unbound, the server sees the kernel's choice"
    );
    assert!(
        [ip("2001:db8:1::10"), ip("2001:db8:1::11")].contains(&observed.ip()),
        "kernel chose {observed}"
    );
}

/// c. Link-local source and destination, scope by name and by index; the
/// server sees the source with its own interface's scope. Missing and
/// mismatched scopes fail before a socket exists.
pub fn link_local_source_with_scope_by_name_and_index() {
    let (server, client) = pair("c", &["fe80::1/64"], &["fe80::a/64", "fe80::b/64"]);
    let server_index = server.if_index("veth0");
    let client_index = client.if_index("veth1");
    let observer = Observer::start(&server, &["[fe80::1%veth0]:0"]);
    let port = observer.bound[0].port();
    assert_eq!(
        observer.bound[0].to_string(),
        format!("[fe80::1%{server_index}]:{port}")
    );

    let cases = [
        ("fe80::b%veth1".to_owned(), "veth1".to_owned()),
        (format!("fe80::a%{client_index}"), client_index.to_string()),
        ("fe80::b%veth1".to_owned(), client_index.to_string()),
    ];
    for (source, dest_scope) in &cases {
        let source = scoped(source);
        let dest = observer.endpoint(0, Some(dest_scope));
        let local = connect_from(
            &client,
            ConnectOptions {
                sources: Sources::new().with(source.clone()),
                ..ConnectOptions::default()
            },
            &dest,
        )
        .unwrap();
        let observed = observer.next();
        assert_eq!(observed.ip(), source.ip());
        assert_eq!(observed.port(), local.port());
        let SocketAddr::V6(observed) = observed else {
            panic!("{observed} is not IPv6")
        };
        let SocketAddr::V6(local) = local else {
            panic!("{local} is not IPv6")
        };
        assert_eq!(
            observed.scope_id(),
            server_index,
            "the server sees its own interface's scope"
        );
        assert_eq!(
            local.scope_id(),
            client_index,
            "the client's socket is on its own interface"
        );
    }

    let dest = observer.endpoint(0, Some("veth1"));
    let unscoped_dest = observer.endpoint(0, None);
    let err = connect_from(
        &client,
        ConnectOptions {
            sources: Sources::new().with(scoped("fe80::a")),
            ..ConnectOptions::default()
        },
        &dest,
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::MissingScope { role: Role::Source, address } if *address == scoped("fe80::a")),
        "{err:?}"
    );
    let err = connect_from(
        &client,
        ConnectOptions {
            sources: Sources::new().with(scoped("fe80::a%veth1")),
            ..ConnectOptions::default()
        },
        &unscoped_dest,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::MissingScope {
                role: Role::Destination,
                ..
            }
        ),
        "{err:?}"
    );
    let err = connect_from(&client, ConnectOptions::default(), &unscoped_dest).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MissingScope {
                role: Role::Destination,
                ..
            }
        ),
        "{err:?}"
    );
    let err = connect_from(
        &client,
        ConnectOptions {
            sources: Sources::new().with(scoped("fe80::a%veth1")),
            ..ConnectOptions::default()
        },
        &observer.endpoint(0, Some("lo")),
    )
    .unwrap_err();
    assert!(matches!(err, Error::ScopeMismatch { .. }), "{err:?}");
    // A name against an index: compared once the name is resolved.
    let err = connect_from(
        &client,
        ConnectOptions {
            sources: Sources::new().with(scoped("fe80::a%veth1")),
            ..ConnectOptions::default()
        },
        &observer.endpoint(0, Some("1")),
    )
    .unwrap_err();
    assert!(matches!(err, Error::ScopeMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("fe80::a%veth1"), "{err}");
    observer.assert_none();
}

/// d. A tentative source (added without `nodad`): the bind fails with the
/// DAD hint; with freebind the bind succeeds; with wait-and-retry the
/// connect succeeds once DAD completes.
pub fn tentative_source_fails_clearly_waits_or_freebinds() {
    let (server, client) = pair("d", &["2001:db8:2::1/64"], &[]);
    client.add_addr_tentative("veth1", "2001:db8:2::10/64");
    let observer = Observer::start(&server, &["[2001:db8:2::1]:0"]);
    let dest = observer.endpoint(0, None);
    let source = scoped("2001:db8:2::10");
    let shown = client.ip(&["-6", "addr", "show", "dev", "veth1"]);
    assert!(
        shown.contains("tentative"),
        "the address must still be tentative here:\n{shown}"
    );

    let err = connect_from(
        &client,
        ConnectOptions {
            sources: Sources::new().with(source.clone()),
            ..ConnectOptions::default()
        },
        &dest,
    )
    .unwrap_err();
    match &err {
        Error::Bind {
            source_addr, error, ..
        } => {
            assert_eq!(*source_addr, source);
            assert_eq!(error.kind(), std::io::ErrorKind::AddrNotAvailable);
        }
        other => panic!("expected a bind error, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("still tentative during DAD") && msg.contains("wait_tentative"),
        "{msg}"
    );

    let bound = client.block_on(|| async {
        let connector = Connector::new(ConnectOptions {
            sources: Sources::new().with(source.clone()),
            freebind: true,
            ..ConnectOptions::default()
        });
        connector
            .prepare(&dest)
            .await
            .map(|p| p.local_addr().unwrap())
    });
    assert_eq!(
        bound.expect("freebind binds a tentative address").ip(),
        source.ip()
    );
    observer.assert_none();

    let options = ConnectOptions {
        sources: Sources::new().with(source.clone()),
        wait_tentative: Some(Duration::from_secs(15)),
        ..ConnectOptions::default()
    };
    let local = connect_from(&client, options, &dest)
        .expect("the source becomes usable once DAD completes");
    assert_eq!(observer.next(), local);
    assert_eq!(local.ip(), source.ip());
}

/// e. Dual-stack Happy Eyeballs: with both families reachable the preferred
/// family wins with its own source; with the IPv6 path blackholed the IPv4
/// attempt wins after the delay, with the IPv4 source.
pub fn happy_eyeballs_uses_each_familys_source() {
    let (server, client) = pair(
        "e",
        &["192.0.2.1/24", "2001:db8:3::1/64"],
        &[
            "192.0.2.20/24",
            "192.0.2.21/24",
            "2001:db8:3::20/64",
            "2001:db8:3::21/64",
        ],
    );
    let observer = Observer::start(&server, &["192.0.2.1:0", "[2001:db8:3::1]:0"]);
    let (v4, v6) = (observer.endpoint(0, None), observer.endpoint(1, None));
    let delay = Duration::from_millis(250);
    let options = || ConnectOptions {
        sources: Sources::new()
            .with(scoped("192.0.2.21"))
            .with(scoped("2001:db8:3::21")),
        happy_eyeballs_delay: delay,
        ..ConnectOptions::default()
    };
    let race = |order: Vec<Endpoint>| {
        client.block_on(|| async {
            let connector = Connector::new(options());
            let started = Instant::now();
            let connected = connector
                .connect_any(&order)
                .await
                .expect("happy eyeballs failed");
            let local = connected.local_addr();
            tokio::time::sleep(Duration::from_millis(20)).await;
            (local, started.elapsed())
        })
    };

    let (local, _) = race(vec![v6.clone(), v4.clone()]);
    assert_eq!(local.ip(), ip("2001:db8:3::21"));
    assert_eq!(observer.next(), local);
    let (local, _) = race(vec![v4.clone(), v6.clone()]);
    assert_eq!(local.ip(), ip("192.0.2.21"));
    assert_eq!(observer.next(), local);
    observer.assert_none();

    // The server can no longer answer the client's IPv6 source: SYNs arrive,
    // SYN-ACKs are dropped, and the IPv6 attempt hangs.
    server.ip(&["-6", "route", "add", "blackhole", "2001:db8:3::21/128"]);
    let (local, elapsed) = race(vec![v6.clone(), v4.clone()]);
    assert_eq!(
        local.ip(),
        ip("192.0.2.21"),
        "the IPv4 attempt wins, from the IPv4 source"
    );
    assert!(
        elapsed >= delay,
        "IPv4 started before the delay: {elapsed:?}"
    );
    assert_eq!(
        observer.next(),
        local,
        "only the IPv4 connection reaches the server"
    );
    observer.assert_none();
}

/// f. The source is removed between two connects: the second fails with a
/// bind error naming it, and nothing reaches the server from another address.
pub fn removed_source_is_an_error_not_a_fallback() {
    let (server, client) = pair(
        "f",
        &["192.0.2.1/24", "2001:db8:4::1/64"],
        &[
            "192.0.2.30/24",
            "192.0.2.31/24",
            "2001:db8:4::30/64",
            "2001:db8:4::31/64",
        ],
    );
    let observer = Observer::start(&server, &["192.0.2.1:0", "[2001:db8:4::1]:0"]);
    for (i, source, cidr) in [
        (0, "192.0.2.31", "192.0.2.31/24"),
        (1, "2001:db8:4::31", "2001:db8:4::31/64"),
    ] {
        let dest = observer.endpoint(i, None);
        let options = || ConnectOptions {
            sources: Sources::new().with(scoped(source)),
            ..ConnectOptions::default()
        };
        let local = connect_from(&client, options(), &dest).unwrap();
        assert_eq!(observer.next(), local);
        assert_eq!(local.ip(), ip(source));

        client.del_addr("veth1", cidr);
        let err = connect_from(&client, options(), &dest).unwrap_err();
        match &err {
            Error::Bind {
                source_addr, error, ..
            } => {
                assert_eq!(*source_addr, scoped(source));
                assert_eq!(error.kind(), std::io::ErrorKind::AddrNotAvailable);
            }
            other => panic!("expected a bind error, got {other:?}"),
        }
        assert!(err.to_string().contains(source), "{err}");
        observer.assert_none();
    }
}

/// Privileged ports, as root of the sandbox: 1023 first, then downward.
pub fn privileged_ports_count_down_from_1023() {
    let (server, client) = pair("g", &["198.51.100.1/24"], &["198.51.100.10/24"]);
    let observer = Observer::start(&server, &["198.51.100.1:0"]);
    let dest = observer.endpoint(0, None);
    let ports = client.block_on(|| async {
        let connector = Connector::new(ConnectOptions {
            sources: Sources::new().with(scoped("198.51.100.10")),
            port_policy: PortPolicy::Privileged,
            ..ConnectOptions::default()
        });
        let first = connector.connect(&dest).await.unwrap();
        let second = connector.connect(&dest).await.unwrap();
        let ports = (first.local_addr(), second.local_addr());
        tokio::time::sleep(Duration::from_millis(20)).await;
        ports
    });
    assert_eq!(ports.0.port(), 1023);
    assert_eq!(ports.1.port(), 1022, "1023 is held by the first connection");
    assert_eq!(observer.next(), ports.0);
    assert_eq!(observer.next(), ports.1);
}
