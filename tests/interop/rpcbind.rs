//! rpcinfo against a peerwire server, and peerwire's client and peerd's
//! `ping` against rpcbind.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use peerwire::programs::portmap::{self, Mapping, PmapV2Client};
use peerwire::proto::AuthStat;
use peerwire::{CallStatus, Client, Error};

use super::{
    PROG, RPCBIND_V4, RPCBIND_V6, SECOND_V4, SECOND_V6, TOOL_LIMIT, assert_connected_from,
    block_on, client_from, peerd, peerwire_server, rpcinfo, support, universal_address,
};

pub fn rpcinfo_pings_peerwire_server_over_ipv4() {
    rpcinfo_pings_peerwire_server("127.0.0.1:0", "tcp");
}

pub fn rpcinfo_pings_peerwire_server_over_ipv6() {
    rpcinfo_pings_peerwire_server("[::1]:0", "tcp6");
}

fn rpcinfo_pings_peerwire_server(listen: &str, netid: &str) {
    block_on(async {
        let server = peerwire_server(listen);
        let addr = server.local_addrs()[0];
        let uaddr = universal_address(addr);
        for version in ["1", "2"] {
            let out = rpcinfo(&["-T", netid, "-a", &uaddr, &PROG.to_string(), version]).await;
            eprintln!("{out}");
            assert!(out.status.success(), "{out}");
            assert_eq!(
                out.stdout,
                format!("program {PROG} version {version} ready and waiting\n"),
                "{out}"
            );
        }
        // The answers came from this server: one connection per rpcinfo
        // run, and NULL is answered without reaching the service.
        let stats = server.stats();
        assert_eq!((stats.accepted, stats.calls), (2, 0), "{stats:?}");
        server.shutdown().await;
    });
}

pub fn rpcinfo_sees_prog_mismatch_from_peerwire_server() {
    block_on(async {
        let server = peerwire_server("127.0.0.1:0");
        let uaddr = universal_address(server.local_addrs()[0]);
        let prog = PROG.to_string();

        // A version the server does not serve: PROG_MISMATCH with 1..2.
        let out = rpcinfo(&["-T", "tcp", "-a", &uaddr, &prog, "5"]).await;
        eprintln!("{out}");
        assert_eq!(out.status.code(), Some(1), "{out}");
        assert_eq!(
            out.stdout,
            format!("program {PROG} version 5 is not available\n"),
            "{out}"
        );
        assert!(
            out.stderr
                .contains("RPC: Program/version mismatch; low version = 1, high version = 2"),
            "{out}"
        );

        // No version: rpcinfo asks version 0 for the range, then pings each.
        let out = rpcinfo(&["-T", "tcp", "-a", &uaddr, &prog]).await;
        eprintln!("{out}");
        assert!(out.status.success(), "{out}");
        assert_eq!(
            out.stdout,
            format!(
                "program {PROG} version 1 ready and waiting\n\
                 program {PROG} version 2 ready and waiting\n"
            ),
            "{out}"
        );

        // A program the server does not serve: PROG_UNAVAIL.
        let other = (PROG + 1).to_string();
        let out = rpcinfo(&["-T", "tcp", "-a", &uaddr, &other, "1"]).await;
        eprintln!("{out}");
        assert_eq!(out.status.code(), Some(1), "{out}");
        assert_eq!(
            out.stdout,
            format!("program {other} version 1 is not available\n"),
            "{out}"
        );
        assert!(out.stderr.contains("RPC: Program unavailable"), "{out}");

        assert_eq!(server.stats().accepted, 3, "{:?}", server.stats());
        server.shutdown().await;
    });
}

pub fn client_calls_rpcbind_null_and_dump_over_ipv4() {
    // 127.0.0.2 is the source under test; rpcbind accepts SET only from
    // 127.0.0.1, which makes its view of our source visible.
    client_calls_rpcbind(RPCBIND_V4, SECOND_V4, "127.0.0.1", 0x2000_0104);
}

pub fn client_calls_rpcbind_null_and_dump_over_ipv6() {
    // ::1 is the source under test; rpcbind accepts SET only from ::1, so
    // 2001:db8::1 (on lo) is the contrast.
    client_calls_rpcbind(RPCBIND_V6, "::1", SECOND_V6, 0x2000_0106);
}

/// rpcbind's own registrations: portmapper v4, v3, v2 over TCP and UDP.
fn rpcbind_self_mappings() -> Vec<Mapping> {
    let mut out = Vec::new();
    for protocol in [portmap::IPPROTO_TCP, portmap::IPPROTO_UDP] {
        for version in [4, 3, 2] {
            out.push(Mapping {
                prog: portmap::PROGRAM,
                vers: version,
                prot: protocol,
                port: portmap::PORT.into(),
            });
        }
    }
    out
}

/// rpcbind's test for SET and UNSET (its `is_loopback`): the caller's
/// address is exactly 127.0.0.1 or ::1, not just any loopback address.
fn rpcbind_takes_for_local(ip: &str) -> bool {
    let ip: IpAddr = ip.parse().expect("an IP");
    ip == Ipv4Addr::LOCALHOST || ip == Ipv6Addr::LOCALHOST
}

async fn dump(client: &Client) -> Vec<Mapping> {
    PmapV2Client::new(client.clone())
        .dump()
        .await
        .unwrap_or_else(|e| panic!("portmapper DUMP failed: {e}"))
        .mappings()
        .cloned()
        .collect()
}

fn client_calls_rpcbind(
    server: &'static str,
    source: &'static str,
    other: &'static str,
    program: u32,
) {
    block_on(async move {
        // NULL and DUMP from the configured source.
        let client = client_from(source, server);
        client
            .null(portmap::PROGRAM, portmap::VERSION)
            .await
            .unwrap_or_else(|e| panic!("portmapper NULL failed: {e}"));
        let local = assert_connected_from(&client, source, server);
        let list = dump(&client).await;
        eprintln!(
            "rpcbind at {server}, called from {local}, has {} mappings: {list:?}",
            list.len()
        );
        for mapping in rpcbind_self_mappings() {
            assert!(list.contains(&mapping), "{mapping:?} missing from {list:?}");
        }
        assert_connected_from(&client, source, server);
        let stats = client.stats();
        assert_eq!((stats.succeeded, stats.reconnects), (2, 0), "{stats:?}");

        // rpcbind's view of the source: it refuses SET (AUTH_TOOWEAK)
        // unless the caller's address is exactly 127.0.0.1 or ::1. Exactly
        // one of `source` and `other` is that address.
        let mapping = Mapping {
            prog: program,
            vers: 1,
            prot: portmap::IPPROTO_TCP,
            port: 4711,
        };
        let other_client = client_from(other, server);
        for (client, ip) in [(&client, source), (&other_client, other)] {
            let portmapper = PmapV2Client::new((*client).clone());
            let set = portmapper.set(&mapping).await;
            assert_connected_from(client, ip, server);
            if rpcbind_takes_for_local(ip) {
                // rpcbind took us for a local caller.
                assert!(matches!(set, Ok(true)), "SET from {ip}: {set:?}");
                assert!(
                    dump(client).await.contains(&mapping),
                    "SET from {ip} did not register"
                );
                let unset = portmapper.unset(&mapping).await;
                assert!(matches!(unset, Ok(true)), "UNSET from {ip}: {unset:?}");
                eprintln!("rpcbind accepted SET and UNSET from {ip}");
            } else {
                match set {
                    Err(Error::CallRejected {
                        status: CallStatus::AuthError(AuthStat::TOO_WEAK),
                        ..
                    }) => {
                        eprintln!("rpcbind refused SET from {ip}, a non-local sender: AUTH_TOOWEAK")
                    }
                    other => panic!("SET from {ip}: expected AUTH_TOOWEAK, got {other:?}"),
                }
            }
            assert!(!dump(client).await.contains(&mapping));
        }
        client.close();
        other_client.close();
    });
}

pub fn peerd_pings_rpcbind_from_a_chosen_source() {
    let out = peerd(&[
        "ping", RPCBIND_V4, "--prog", "100000", "--vers", "2", "--source", SECOND_V4,
    ]);
    assert!(out.status.success(), "{out}");
    assert!(
        out.stdout.contains(&format!("local {SECOND_V4}:")),
        "the local address used is not printed: {out}"
    );
    let rtt_us: u64 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("rtt_us "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no round-trip time: {out}"));
    assert!(rtt_us < TOOL_LIMIT.as_micros() as u64, "{out}");

    // A version rpcbind does not serve: an answer, but not a success.
    let out = peerd(&[
        "ping", RPCBIND_V4, "--prog", "100000", "--vers", "9", "--source", SECOND_V4,
    ]);
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains("PROG_MISMATCH") || out.stderr.contains("mismatch"),
        "{out}"
    );
}

pub fn peerd_ping_to_a_closed_port_exits_1() {
    // A port that was free a moment ago, on loopback in this namespace.
    let port = support::common::free_port("127.0.0.1");
    let addr = format!("127.0.0.1:{port}");
    let out = peerd(&[
        "ping",
        &addr,
        "--prog",
        "100000",
        "--vers",
        "2",
        "--source",
        SECOND_V4,
        "--timeout",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains("refused") && out.stderr.contains(SECOND_V4),
        "the error should name the refusal and the source: {out}"
    );
}
