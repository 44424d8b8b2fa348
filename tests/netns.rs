//! Scenarios on throwaway hosts built from network namespaces.
//!
//! This binary has its own `main` (`harness = false` in Cargo.toml): it must
//! enter its private namespaces before any thread exists. See
//! `tests/support/netns.rs` for the design and `shared/NETNS.md` for the
//! address plan. To add a scenario, write one function below and list it in
//! `main`.

mod support {
    #[path = "../support/common.rs"]
    pub mod common;
    #[path = "../support/harness.rs"]
    pub mod harness;
    #[path = "../support/netns.rs"]
    pub mod netns;
    #[path = "../support/peerd.rs"]
    pub mod peerd;
    #[cfg(feature = "tls")]
    #[path = "../support/pki.rs"]
    pub mod pki;
    #[cfg(feature = "tls")]
    #[path = "../support/temp.rs"]
    pub mod temp;
}

#[path = "netns/binding.rs"]
mod binding;
#[path = "netns/identity.rs"]
mod identity;
#[path = "netns/peerd.rs"]
mod peerd;
#[path = "netns/runtime.rs"]
mod runtime;
#[cfg(feature = "tls")]
#[path = "netns/tls.rs"]
mod tls;

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use support::common::ip;
use support::netns::{self, Host, link};

/// Upper bound for any single step that should take milliseconds (the
/// scenarios' modules use it too).
const STEP: Duration = Duration::from_secs(10);

fn main() {
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    let mut scenarios: Vec<(&'static str, fn())> = vec![
        (
            "v4_multihomed_source_is_what_the_server_sees",
            binding::v4_multihomed_source_is_what_the_server_sees,
        ),
        (
            "v6_multihomed_source_is_what_the_server_sees",
            binding::v6_multihomed_source_is_what_the_server_sees,
        ),
        (
            "link_local_source_with_scope_by_name_and_index",
            binding::link_local_source_with_scope_by_name_and_index,
        ),
        (
            "tentative_source_fails_clearly_waits_or_freebinds",
            binding::tentative_source_fails_clearly_waits_or_freebinds,
        ),
        (
            "happy_eyeballs_uses_each_familys_source",
            binding::happy_eyeballs_uses_each_familys_source,
        ),
        (
            "removed_source_is_an_error_not_a_fallback",
            binding::removed_source_is_an_error_not_a_fallback,
        ),
        (
            "privileged_ports_count_down_from_1023",
            binding::privileged_ports_count_down_from_1023,
        ),
        (
            "unbound_client_is_refused_bound_client_is_accepted",
            identity::unbound_client_is_refused_bound_client_is_accepted,
        ),
        (
            "an_impostor_on_the_same_link_is_refused",
            identity::an_impostor_on_the_same_link_is_refused,
        ),
        (
            "dual_stack_listener_matches_ipv4_peers_by_their_ipv4_entry",
            identity::dual_stack_listener_matches_ipv4_peers_by_their_ipv4_entry,
        ),
        (
            "link_local_peers_are_identified_by_scoped_entries",
            identity::link_local_peers_are_identified_by_scoped_entries,
        ),
        (
            "link_down_mid_call_declares_the_connection_dead_then_reconnects",
            runtime::link_down_mid_call_declares_the_connection_dead_then_reconnects,
        ),
        (
            "partitioned_client_is_closed_by_the_servers_keepalive",
            runtime::partitioned_client_is_closed_by_the_servers_keepalive,
        ),
        (
            "peerd_nodes_connect_over_ipv4_and_ipv6_from_their_sources",
            peerd::peerd_nodes_connect_over_ipv4_and_ipv6_from_their_sources,
        ),
        (
            "peerd_nodes_connect_over_link_local",
            peerd::peerd_nodes_connect_over_link_local,
        ),
        (
            "peerd_peer_with_the_wrong_source_is_rejected",
            peerd::peerd_peer_with_the_wrong_source_is_rejected,
        ),
        (
            "peerd_dual_stack_listener_judges_and_shows_ipv4_callers_as_ipv4",
            peerd::peerd_dual_stack_listener_judges_and_shows_ipv4_callers_as_ipv4,
        ),
        (
            "peerd_reload_keeps_unchanged_links",
            peerd::peerd_reload_keeps_unchanged_links,
        ),
        ("support_hosts_talk_over_veth", support_hosts_talk_over_veth),
        (
            "support_tentative_address_becomes_usable",
            support_tentative_address_becomes_usable,
        ),
        ("support_sysctl_is_per_host", support_sysctl_is_per_host),
        (
            "support_run_starts_process_in_host",
            support_run_starts_process_in_host,
        ),
    ];
    #[cfg(feature = "tls")]
    scenarios.extend(tls::scenarios());
    netns::run_harness(scenarios);
}

/// Two linked hosts reach each other over the veth in both families, the
/// server sees the client's address, and the sandbox's own namespace cannot
/// reach the server at all.
fn support_hosts_talk_over_veth() {
    let server = Host::new("srv");
    let client = Host::new("cli");
    link(&server, "veth0", &client, "veth1");
    server.add_addr("veth0", "192.0.2.1/24");
    client.add_addr("veth1", "192.0.2.2/24");
    server.add_addr("veth0", "2001:db8:1::1/64");
    client.add_addr("veth1", "2001:db8:1::2/64");

    let (addr_tx, addr_rx) = mpsc::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let server_thread = server.spawn(move || async move {
        let v4 = TcpListener::bind("192.0.2.1:0")
            .await
            .expect("bind 192.0.2.1");
        let v6 = TcpListener::bind("[2001:db8:1::1]:0")
            .await
            .expect("bind 2001:db8:1::1");
        addr_tx
            .send((v4.local_addr().unwrap(), v6.local_addr().unwrap()))
            .unwrap();
        let (_conn4, peer4) = timeout(STEP, v4.accept())
            .await
            .expect("no IPv4 connection arrived")
            .expect("accept IPv4");
        let (_conn6, peer6) = timeout(STEP, v6.accept())
            .await
            .expect("no IPv6 connection arrived")
            .expect("accept IPv6");
        // Keep listening until the test has probed from the sandbox's root
        // namespace (or has given up: then the sender is dropped).
        let _ = done_rx.await;
        (peer4, peer6)
    });
    let (addr4, addr6): (SocketAddr, SocketAddr) = addr_rx
        .recv_timeout(STEP)
        .expect("the server did not report its addresses");

    let (local4, local6) = client.block_on(|| async move {
        let s4 = timeout(STEP, TcpStream::connect(addr4))
            .await
            .expect("IPv4 connect timed out")
            .expect("IPv4 connect");
        let s6 = timeout(STEP, TcpStream::connect(addr6))
            .await
            .expect("IPv6 connect timed out")
            .expect("IPv6 connect");
        (s4.local_addr().unwrap(), s6.local_addr().unwrap())
    });
    assert_eq!(local4.ip(), ip("192.0.2.2"), "client's IPv4 source");
    assert_eq!(local6.ip(), ip("2001:db8:1::2"), "client's IPv6 source");

    // This thread is in the sandbox's root namespace, which has only lo: the
    // listeners, still open, must be out of reach from here.
    for addr in [addr4, addr6] {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(_) => panic!("{addr} is reachable from the sandbox's root namespace"),
            Err(e) => assert_ne!(
                e.kind(),
                io::ErrorKind::ConnectionRefused,
                "{addr} answered from the sandbox's root namespace"
            ),
        }
    }
    done_tx.send(()).unwrap();

    let (peer4, peer6) = netns::join(server_thread);
    assert_eq!(peer4, local4, "server's view of the IPv4 client");
    assert_eq!(peer6, local6, "server's view of the IPv6 client");
    assert_eq!(peer4.ip(), ip("192.0.2.2"));
    assert_eq!(peer6.ip(), ip("2001:db8:1::2"));
}

/// An IPv6 address added with DAD cannot be bound at first (EADDRNOTAVAIL)
/// and can be within seconds.
fn support_tentative_address_becomes_usable() {
    let host = Host::new("dad");
    let peer = Host::new("dadp");
    link(&host, "veth0", &peer, "veth1");
    host.add_addr_tentative("veth0", "2001:db8:2::1/64");
    let addr: SocketAddr = "[2001:db8:2::1]:0".parse().unwrap();

    let first = host.enter(|| std::net::TcpListener::bind(addr).map(drop));
    let err = first.expect_err("a tentative address could be bound at once");
    assert_eq!(
        err.raw_os_error(),
        Some(Errno::EADDRNOTAVAIL as i32),
        "binding a tentative address: {err}"
    );
    let shown = host.ip(&["-6", "addr", "show", "dev", "veth0"]);
    assert!(
        shown.contains("tentative"),
        "the address should still be tentative:\n{shown}"
    );

    let waited = host.enter(|| {
        let start = Instant::now();
        loop {
            match std::net::TcpListener::bind(addr) {
                Ok(_) => return Ok(start.elapsed()),
                Err(e) if e.raw_os_error() == Some(Errno::EADDRNOTAVAIL as i32) => {
                    if start.elapsed() > STEP {
                        return Err(e);
                    }
                    thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        }
    });
    if let Err(e) = waited {
        panic!(
            "2001:db8:2::1 never became bindable: {e}\n{}",
            host.ip(&["-6", "addr", "show", "dev", "veth0"])
        );
    }
    let shown = host.ip(&["-6", "addr", "show", "dev", "veth0"]);
    assert!(
        shown.contains("2001:db8:2::1/64") && !shown.contains("tentative"),
        "the address should be usable now:\n{shown}"
    );
}

/// `Host::sysctl` changes the host it is called on and nothing else, and
/// `ip netns exec` sees the same value.
fn support_sysctl_is_per_host() {
    let a = Host::new("sya");
    let b = Host::new("syb");
    let key = "net.ipv4.ip_forward";
    let before = b.sysctl_get(key);
    let root_before = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let flipped = if before == "0" { "1" } else { "0" };

    a.sysctl(key, flipped);
    assert_eq!(a.sysctl_get(key), flipped, "host a after sysctl");
    assert_eq!(b.sysctl_get(key), before, "host b must not change");
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        root_before,
        "the sandbox's root namespace must not change"
    );
    let seen = a
        .command("cat")
        .arg("/proc/sys/net/ipv4/ip_forward")
        .output()
        .expect("ip netns exec cat");
    assert!(seen.status.success(), "ip netns exec cat: {seen:?}");
    assert_eq!(String::from_utf8_lossy(&seen.stdout).trim(), flipped);
}

/// `Host::run` starts the program in the host's namespace, and stopping the
/// handle kills it.
fn support_run_starts_process_in_host() {
    let host = Host::new("run");
    let want = format!("net:[{}]", fs::metadata(host.ns_path()).unwrap().ino());
    let child = host.run("sleep", &["60"]);
    let pid = child.id();

    // `ip netns exec` joins the namespace and then execs `sleep` in place.
    let start = Instant::now();
    loop {
        let got = fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
        if got.to_string_lossy() == want {
            break;
        }
        assert!(
            start.elapsed() < STEP,
            "process {pid} is in {got:?}, not in host {} ({want})",
            host.name()
        );
        thread::sleep(Duration::from_millis(10));
    }

    let status = child.stop().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc_sigkill()),
        "sleep ended by {status}"
    );
}

fn libc_sigkill() -> i32 {
    nix::sys::signal::Signal::SIGKILL as i32
}
