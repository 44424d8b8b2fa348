//! Binding on this host's loopback: what a listener observes is the source
//! we configured. Multi-homed and link-local cases are in `netns.rs`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use peerwire::{
    CanonicalIp, ConnectOptions, Connector, Endpoint, Error, Family, FamilyPolicy, ListenOptions,
    PortPolicy, Role, ScopedIp, Sources, listen,
};
use tokio::net::TcpListener;

fn ip(text: &str) -> ScopedIp {
    text.parse().unwrap()
}

fn endpoint_of(listener: &TcpListener) -> Endpoint {
    Endpoint::from(listener.local_addr().unwrap())
}

/// Accepts one connection and returns the address the listener observed.
async fn observe(listener: &TcpListener) -> SocketAddr {
    let (_stream, observed) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("no connection arrived")
        .unwrap();
    observed
}

/// Asserts that nothing connects within a short while.
async fn assert_no_connection(listener: &TcpListener) {
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(
        accepted.is_err(),
        "a connection arrived: {:?}",
        accepted.unwrap().map(|(_, a)| a)
    );
}

#[tokio::test]
async fn listener_observes_each_configured_v4_source() {
    let listener = listen(&"127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
    let dest = endpoint_of(&listener);
    for source in ["127.0.0.2", "127.0.0.3"] {
        let connector = Connector::new(ConnectOptions {
            sources: Sources::new().with(ip(source)),
            ..ConnectOptions::default()
        });
        let connected = connector.connect(&dest).await.unwrap();
        let observed = observe(&listener).await;
        assert_eq!(observed.ip().to_string(), source);
        assert_eq!(observed, connected.local_addr());
        assert_eq!(connected.source(), Some(&ip(source)));
    }
}

#[tokio::test]
async fn listener_observes_v6_loopback_source() {
    let listener = listen(&"[::1]:0".parse().unwrap(), &ListenOptions::default()).unwrap();
    let connector = Connector::new(ConnectOptions {
        sources: Sources::new().with(ip("::1")),
        ..ConnectOptions::default()
    });
    let connected = connector.connect(&endpoint_of(&listener)).await.unwrap();
    let observed = observe(&listener).await;
    assert_eq!(observed.ip(), "::1".parse::<IpAddr>().unwrap());
    assert_eq!(observed, connected.local_addr());
}

#[tokio::test]
async fn destination_family_without_source_is_refused_by_default() {
    let listener = listen(&"[::1]:0".parse().unwrap(), &ListenOptions::default()).unwrap();
    let dest = endpoint_of(&listener);
    let strict = Connector::new(ConnectOptions {
        sources: Sources::new().with(ip("127.0.0.2")),
        ..ConnectOptions::default()
    });
    let err = strict.connect(&dest).await.unwrap_err();
    assert!(
        matches!(&err, Error::NoSourceForFamily { family: Family::V6, configured: Family::V4, destination } if *destination == dest),
        "{err:?}"
    );
    assert!(err.is_config());
    assert_no_connection(&listener).await;

    // The explicit opt-in lets the kernel choose.
    let lenient = Connector::new(ConnectOptions {
        sources: Sources::new().with(ip("127.0.0.2")),
        family_policy: FamilyPolicy::KernelChooses,
        ..ConnectOptions::default()
    });
    let connected = lenient.connect(&dest).await.unwrap();
    assert_eq!(observe(&listener).await, connected.local_addr());
    assert_eq!(connected.source(), None);
}

#[tokio::test]
async fn ephemeral_policy_reserves_no_port_before_connect() {
    let listener = listen(&"127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
    let connector = Connector::new(ConnectOptions {
        sources: Sources::new().with(ip("127.0.0.2")),
        ..ConnectOptions::default()
    });
    let prepared = connector.prepare(&endpoint_of(&listener)).await.unwrap();
    let bound = prepared.local_addr().unwrap();
    assert_eq!(
        bound,
        "127.0.0.2:0".parse().unwrap(),
        "IP bound, port not yet chosen"
    );
    let connected = prepared.connect().await.unwrap();
    assert_eq!(connected.local_addr().ip(), bound.ip());
    assert_ne!(connected.local_addr().port(), 0);
    assert_eq!(observe(&listener).await, connected.local_addr());
}

#[tokio::test]
async fn port_range_is_honoured() {
    let listener = listen(&"127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
    let dest = endpoint_of(&listener);
    // A range of the ephemeral area that other tests here do not ask for.
    let (low, high) = (47_100, 47_131);
    let connector = Connector::new(ConnectOptions {
        sources: Sources::new().with(ip("127.0.0.4")),
        port_policy: PortPolicy::Range { low, high },
        ..ConnectOptions::default()
    });
    let mut held = Vec::new();
    for _ in 0..8 {
        let connected = connector.connect(&dest).await.unwrap();
        let port = connected.local_addr().port();
        assert!(
            (low..=high).contains(&port),
            "port {port} outside {low}-{high}"
        );
        let observed = observe(&listener).await;
        assert_eq!(observed, connected.local_addr());
        held.push(connected);
    }
}

/// Connects from `source` with a two-port range until it fails; holds
/// every connection made. Returns the ports used and the error.
async fn exhaust_two_ports(
    source: &str,
    (low, high): (u16, u16),
    bind_address_no_port: bool,
) -> (Vec<u16>, Error) {
    let listener = listen(&"127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
    let dest = endpoint_of(&listener);
    let connector = Connector::new(ConnectOptions {
        sources: Sources::new().with(ip(source)),
        port_policy: PortPolicy::Range { low, high },
        bind_address_no_port,
        ..ConnectOptions::default()
    });
    let mut held = Vec::new();
    // At most two connections fit; a third attempt must fail.
    for _ in 0..3 {
        match connector.connect(&dest).await {
            Ok(connected) => {
                let port = connected.local_addr().port();
                assert!(
                    (low..=high).contains(&port),
                    "port {port} outside {low}-{high}"
                );
                assert_eq!(observe(&listener).await, connected.local_addr());
                held.push(connected);
            }
            Err(error) => {
                return (held.iter().map(|c| c.local_addr().port()).collect(), error);
            }
        }
    }
    panic!("three connections from a two-port range {low}-{high}");
}

fn assert_exhausted(error: &Error, source: &str, (low, high): (u16, u16)) {
    match error {
        Error::PortsExhausted {
            source_addr,
            low: l,
            high: h,
            ..
        } => {
            assert_eq!((*l, *h), (low, high), "{error}");
            assert_eq!(source_addr.to_string(), source, "{error}");
        }
        other => panic!("expected PortsExhausted for {low}-{high}, got {other:?}: {other}"),
    }
    let text = error.to_string();
    assert!(text.contains(&format!("{low}-{high}")), "{text}");
    assert!(text.contains(source), "{text}");
}

/// The kernel picks the port at connect (`IP_LOCAL_PORT_RANGE` with
/// `IP_BIND_ADDRESS_NO_PORT`) and reports an exhausted range as
/// `EADDRNOTAVAIL`: the caller gets `PortsExhausted` naming the range.
/// (The range lies inside the host's ephemeral range, 32768–60999 by
/// default: the kernel ignores a socket range outside it.)
#[tokio::test]
async fn exhausted_port_range_names_the_range() {
    let range = (47_140, 47_141);
    let (ports, error) = exhaust_two_ports("127.0.0.5", range, true).await;
    assert_eq!(
        ports.len(),
        2,
        "both ports of the range were used: {ports:?}"
    );
    assert_exhausted(&error, "127.0.0.5", range);
}

/// Without `IP_BIND_ADDRESS_NO_PORT`, bind picks the port from the range,
/// and an exhausted range is `EADDRINUSE` at bind: the same error.
#[tokio::test]
async fn exhausted_port_range_at_bind_names_the_range() {
    let range = (47_150, 47_151);
    // A port bound this way must be free of every other socket, so another
    // program's connection that happens to use one of the two ports may
    // leave only one here.
    let (ports, error) = exhaust_two_ports("127.0.0.16", range, false).await;
    assert!(!ports.is_empty(), "no port of the range was used");
    assert_exhausted(&error, "127.0.0.16", range);
}

/// A range below the host's ephemeral range, which `IP_LOCAL_PORT_RANGE`
/// would silently ignore (the kernel then picks any ephemeral port): it is
/// honoured port by port, and exhausting it names the range too.
#[tokio::test]
async fn port_range_outside_the_ephemeral_range_is_honoured_and_exhausts() {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let host_low: u16 = text.split_whitespace().next().unwrap().parse().unwrap();
    assert!(host_low > 2_000, "ephemeral range starts at {host_low}");
    let range = (host_low - 1_000, host_low - 999);
    let (ports, error) = exhaust_two_ports("127.0.0.7", range, true).await;
    assert_eq!(
        ports.len(),
        2,
        "both ports of the range were used: {ports:?}"
    );
    assert_exhausted(&error, "127.0.0.7", range);
}

#[tokio::test]
async fn invalid_port_range_is_a_config_error() {
    let connector = Connector::new(ConnectOptions {
        port_policy: PortPolicy::Range { low: 9, high: 3 },
        ..ConnectOptions::default()
    });
    let err = connector
        .connect(&"127.0.0.1:1".parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Config(peerwire::ConfigError::PortRange { low: 9, high: 3 })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn source_not_on_this_host_fails_to_bind_and_never_connects() {
    let listener = listen(&"127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
    // A documentation address that no interface of this host carries.
    let connector = Connector::new(ConnectOptions {
        sources: Sources::new().with(ip("192.0.2.99")),
        ..ConnectOptions::default()
    });
    let err = connector
        .connect(&endpoint_of(&listener))
        .await
        .unwrap_err();
    match &err {
        Error::Bind {
            source_addr, error, ..
        } => {
            assert_eq!(*source_addr, ip("192.0.2.99"));
            assert_eq!(error.kind(), std::io::ErrorKind::AddrNotAvailable);
        }
        other => panic!("expected a bind error, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("192.0.2.99"), "{msg}");
    assert!(
        msg.contains("not assigned to this host, or still tentative"),
        "{msg}"
    );
    assert!(msg.contains("wait_tentative"), "{msg}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the OS error is the source"
    );
    assert_no_connection(&listener).await;
}

#[tokio::test]
async fn freebind_binds_an_address_not_on_this_host() {
    let connector = Connector::new(ConnectOptions {
        sources: Sources::new().with(ip("192.0.2.99")),
        freebind: true,
        ..ConnectOptions::default()
    });
    // Bind only: a SYN from an address that is not ours must not be sent.
    let prepared = connector
        .prepare(&"127.0.0.1:9".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        prepared.local_addr().unwrap().ip(),
        "192.0.2.99".parse::<IpAddr>().unwrap()
    );
}

#[tokio::test]
async fn connect_error_names_source_and_destination() {
    // Listen, learn the port, close: the port now refuses.
    let listener = listen(&"127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
    let dest = endpoint_of(&listener);
    drop(listener);
    let connector = Connector::new(ConnectOptions {
        sources: Sources::new().with(ip("127.0.0.2")),
        ..ConnectOptions::default()
    });
    let err = connector.connect(&dest).await.unwrap_err();
    match &err {
        Error::Connect {
            source_addr,
            destination,
            error,
        } => {
            assert_eq!(
                source_addr.unwrap().ip(),
                "127.0.0.2".parse::<IpAddr>().unwrap()
            );
            assert_eq!(*destination, dest);
            assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert!(err.to_string().contains(&dest.to_string()));
}

#[tokio::test]
async fn unknown_interface_is_named() {
    let connector = Connector::new(ConnectOptions {
        sources: Sources::new().with(ip("fe80::a%nosuchif0")),
        ..ConnectOptions::default()
    });
    let err = connector
        .connect(&"[fe80::b%1]:1".parse().unwrap())
        .await
        .unwrap_err();
    match &err {
        Error::UnknownInterface {
            name,
            role: Role::Source,
            ..
        } => assert_eq!(name, "nosuchif0"),
        other => panic!("expected an unknown-interface error, got {other:?}"),
    }
    assert!(err.to_string().contains("\"nosuchif0\""), "{err}");
    assert!(err.is_config());

    let connector = Connector::new(ConnectOptions::default());
    let err = connector
        .connect(&"[fe80::b%nosuchif1]:1".parse().unwrap())
        .await
        .unwrap_err();
    match &err {
        Error::UnknownInterface {
            name,
            role: Role::Destination,
            ..
        } => assert_eq!(name, "nosuchif1"),
        other => panic!("expected an unknown-interface error, got {other:?}"),
    }
}

#[tokio::test]
async fn happy_eyeballs_falls_back_to_the_family_that_answers() {
    let listener = listen(&"127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
    let port = endpoint_of(&listener).port();
    // Nothing listens on [::1] at this port: the v6 attempt is refused.
    let connector = Connector::new(ConnectOptions {
        sources: Sources::new().with(ip("127.0.0.5")).with(ip("::1")),
        ..ConnectOptions::default()
    });
    let destinations = [
        Endpoint::new(ip("::1"), port),
        Endpoint::new(ip("127.0.0.1"), port),
    ];
    let connected = connector.connect_any(&destinations).await.unwrap();
    assert_eq!(
        connected.local_addr().ip(),
        "127.0.0.5".parse::<IpAddr>().unwrap()
    );
    assert_eq!(observe(&listener).await, connected.local_addr());
}

#[tokio::test]
async fn happy_eyeballs_lists_every_failed_attempt() {
    let closed = listen(&"127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
    let port = endpoint_of(&closed).port();
    drop(closed);
    let connector = Connector::new(ConnectOptions {
        sources: Sources::new().with(ip("127.0.0.6")).with(ip("::1")),
        ..ConnectOptions::default()
    });
    let destinations = [
        Endpoint::new(ip("127.0.0.1"), port),
        Endpoint::new(ip("::1"), port),
    ];
    let err = connector.connect_any(&destinations).await.unwrap_err();
    let Error::AllAttemptsFailed { attempts } = &err else {
        panic!("expected every attempt listed, got {err:?}");
    };
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].destination, destinations[0]);
    assert_eq!(attempts[0].source, Some(ip("127.0.0.6")));
    assert_eq!(attempts[1].destination, destinations[1]);
    assert_eq!(attempts[1].source, Some(ip("::1")));
    for attempt in attempts {
        assert!(
            matches!(attempt.error, Error::Connect { .. }),
            "{:?}",
            attempt.error
        );
    }
    let msg = err.to_string();
    assert!(
        msg.contains("127.0.0.6") && msg.contains(&format!("[::1]:{port}")),
        "{msg}"
    );
}

#[tokio::test]
async fn v6_listener_is_v6_only_unless_dual_stack_is_asked_for() {
    let v6_only = listen(&"[::]:0".parse().unwrap(), &ListenOptions::default()).unwrap();
    let port = endpoint_of(&v6_only).port();
    let v4 = Connector::new(ConnectOptions::default());
    let err = v4
        .connect(&Endpoint::new(ip("127.0.0.1"), port))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");

    let dual = listen(
        &"[::]:0".parse().unwrap(),
        &ListenOptions {
            dual_stack: true,
            ..ListenOptions::default()
        },
    )
    .unwrap();
    let port = endpoint_of(&dual).port();
    let connector = Connector::new(ConnectOptions {
        sources: Sources::new().with(ip("127.0.0.7")),
        ..ConnectOptions::default()
    });
    connector
        .connect(&Endpoint::new(ip("127.0.0.1"), port))
        .await
        .unwrap();
    let observed = observe(&dual).await;
    assert!(
        observed.is_ipv6(),
        "a dual-stack socket sees IPv4-mapped addresses"
    );
    assert_eq!(
        CanonicalIp::from(observed).ip(),
        "127.0.0.7".parse::<IpAddr>().unwrap()
    );

    let err = listen(
        &"[::1]:0".parse().unwrap(),
        &ListenOptions {
            dual_stack: true,
            ..ListenOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Config(peerwire::ConfigError::DualStack { address })
                if *address == "[::1]:0".parse().unwrap()
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn link_local_listen_address_needs_a_scope() {
    let err = listen(&"[fe80::1]:0".parse().unwrap(), &ListenOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MissingScope {
                role: Role::Listen,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn listening_twice_on_one_port_names_the_address() {
    let first = listen(&"127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
    let address = endpoint_of(&first);
    let err = listen(&address, &ListenOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::Listen { address: a, .. } if *a == address),
        "{err:?}"
    );
    assert!(err.to_string().contains(&address.to_string()));
}

#[tokio::test]
async fn connect_timeout_names_the_destination() {
    // A listener with a full backlog never completes the handshake: the
    // kernel drops further SYNs. Backlog 0 admits one queued connection.
    let listener = listen(
        &"127.0.0.1:0".parse().unwrap(),
        &ListenOptions {
            backlog: 0,
            ..ListenOptions::default()
        },
    )
    .unwrap();
    let dest = endpoint_of(&listener);
    let connector = Connector::new(ConnectOptions {
        connect_timeout: Duration::from_millis(300),
        ..ConnectOptions::default()
    });
    let mut held = Vec::new();
    let err = loop {
        match connector.connect(&dest).await {
            Ok(c) => held.push(c),
            Err(err) => break err,
        }
        assert!(held.len() < 16, "the backlog never filled");
    };
    assert!(
        matches!(&err, Error::ConnectTimeout { destination, timeout, .. } if *destination == dest && *timeout == Duration::from_millis(300)),
        "{err:?}"
    );
}
