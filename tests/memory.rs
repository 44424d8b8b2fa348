//! What a connection that has sent nothing but a record header costs the
//! server: memory follows the bytes received, never what a header claims.
//!
//! 1,000 connections each send one fragment header announcing the largest
//! record the server accepts (16 MiB) and nothing else. The server's
//! address space (`VmSize`) and resident memory (`VmRSS`, both from
//! `/proc/self/status`) are read before and after; each connection must
//! cost less than 64 KiB of either. Without an identity the connections
//! stay open, waiting for data that never comes; with one, each is closed
//! at its header, over the pre-HELLO limit, with a verdict.
//!
//! The server runs in this process on a runtime of its own (one worker
//! thread); the connections are blocking sockets of the test's thread,
//! which cost the process file descriptors and kernel memory only. The two
//! tests take turns (a lock), so that neither measures the other.

mod support {
    #[path = "../support/common.rs"]
    pub mod common;
}

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use peerwire::proto::{CallHeader, Message, record_header};
use peerwire::{
    IdentityMode, NodeId, PeerTable, RunningServer, Server, ServerIdentity, ServerOptions,
    VerdictReason,
};
use support::common::{PROG, echo, framed};

const CONNECTIONS: u64 = 1000;
/// The most one connection may cost, in address space and in RSS.
const MAX_COST: u64 = 64 * 1024;
/// Warm-up connections, made and closed before the first reading: the
/// server's tables and the allocator's arenas grow on the first ones.
const WARM_UP: u64 = 100;

/// One test at a time: each reads the whole process's memory.
static TURN: Mutex<()> = Mutex::new(());

/// A field of `/proc/self/status`, in bytes.
fn status(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable line {line:?}"));
    kib * 1024
}

#[derive(Clone, Copy, Debug)]
struct Memory {
    size: u64,
    rss: u64,
}

fn memory() -> Memory {
    Memory {
        size: status("VmSize:"),
        rss: status("VmRSS:"),
    }
}

/// Room for the connections' two ends and the warm-up's: the soft limit
/// raised towards the hard one.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let need = 2 * (CONNECTIONS + WARM_UP) + 256;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard >= need,
        "the open-file hard limit is {hard}; this test needs {need} descriptors"
    );
    if soft < need {
        setrlimit(Resource::RLIMIT_NOFILE, need, hard).unwrap();
    }
}

/// A server on its own one-worker runtime, on 127.0.0.1.
fn start(options: ServerOptions) -> (tokio::runtime::Runtime, RunningServer, SocketAddr) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = {
        let _in = runtime.enter();
        Server::new(options)
            .service(PROG, 1, echo)
            .serve(&["127.0.0.1:0".parse().unwrap()])
            .unwrap()
    };
    let address = server.local_addrs()[0];
    (runtime, server, address)
}

fn options() -> ServerOptions {
    ServerOptions {
        max_connections: 4096,
        ..ServerOptions::default()
    }
}

fn identity() -> ServerIdentity {
    ServerIdentity {
        node: NodeId::new("srv").unwrap(),
        cluster: None,
        peers: PeerTable::new().allow(NodeId::new("a").unwrap(), ["127.0.0.2".parse().unwrap()]),
        mode: IdentityMode::Strict,
    }
}

/// The header of a first fragment as long as the server accepts: the
/// largest record it could be asked to hold.
fn maximal_header(options: &ServerOptions) -> [u8; 4] {
    record_header(options.limits.record_limits().max_fragment(), false)
}

/// Connections that each send `header` and nothing else, kept open.
fn headers_only(address: SocketAddr, header: [u8; 4], n: u64) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut stream = TcpStream::connect(address).unwrap();
            stream.write_all(&header).unwrap();
            stream
        })
        .collect()
}

/// A NULL call on a fresh connection, answered: the server is up and has
/// run, and every connection made before this one has had its bytes
/// reported readable to it.
fn null_call(address: SocketAddr) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let wire = framed(&Message::call(1, CallHeader::new(PROG, 1, 0), Bytes::new()));
    stream.write_all(&wire).unwrap();
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).unwrap();
    let len = u32::from_be_bytes(header) & 0x7fff_ffff;
    let mut reply = vec![0u8; len as usize];
    stream.read_exact(&mut reply).unwrap();
}

/// Waits until `done` holds, for at most `limit`.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Connections made and closed before the first reading, and a NULL call.
fn warm_up(server: &RunningServer, address: SocketAddr, header: [u8; 4]) {
    drop(headers_only(address, header, WARM_UP));
    null_call(address);
    let closed = wait_for(Duration::from_secs(30), || server.stats().closed > WARM_UP);
    assert!(
        closed,
        "warm-up connections not closed: {:?}",
        server.stats()
    );
}

fn per_connection(before: Memory, after: Memory) -> (u64, u64) {
    (
        after.size.saturating_sub(before.size) / CONNECTIONS,
        after.rss.saturating_sub(before.rss) / CONNECTIONS,
    )
}

/// Prints what the connections cost and checks each cost under
/// [`MAX_COST`].
fn report_and_check(case: &str, before: Memory, after: Memory) {
    let (size, rss) = per_connection(before, after);
    eprintln!(
        "{CONNECTIONS} connections, a {} MiB header each, {case}: VmSize {} -> {} KiB, VmRSS {} -> {} KiB; per connection {size} B of address space, {rss} B resident",
        options_max_mib(),
        before.size / 1024,
        after.size / 1024,
        before.rss / 1024,
        after.rss / 1024,
    );
    assert!(size < MAX_COST, "{size} bytes of address space each");
    assert!(rss < MAX_COST, "{rss} resident bytes each");
}

/// Without an identity the connections stay open, each waiting for the
/// 16 MiB its header announced; each costs less than 64 KiB of address
/// space and of RSS (today's decoder reserved the whole record: 16 GiB of
/// address space for the thousand).
#[test]
fn a_thousand_headers_claiming_the_largest_record_cost_little() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    raise_fd_limit();
    let options = options();
    let header = maximal_header(&options);
    let (runtime, server, address) = start(options);
    warm_up(&server, address, header);
    let before = memory();

    let open = headers_only(address, header, CONNECTIONS);
    // The server has accepted them all, and (a NULL call made after them
    // answered, then a generous pause: reading 4 bytes from each takes the
    // server well under a millisecond per connection) read their headers.
    let accepted = WARM_UP + 1 + CONNECTIONS + 1;
    null_call(address);
    assert!(
        wait_for(Duration::from_secs(30), || server.stats().accepted
            >= accepted),
        "{:?}",
        server.stats()
    );
    std::thread::sleep(Duration::from_millis(500));
    let after = memory();
    let open_now = server.connections().len() as u64;
    assert!(
        open_now >= CONNECTIONS,
        "{open_now} connections open: {:?}",
        server.stats()
    );
    report_and_check("no identity", before, after);
    drop(open);
    runtime.block_on(server.shutdown());
}

/// With an identity, each connection is closed at its header (over the
/// 4 KiB pre-HELLO limit) with a verdict, counted as bad framing, and
/// costs less than 64 KiB.
#[test]
fn with_an_identity_a_thousand_oversized_headers_are_closed_with_verdicts() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    raise_fd_limit();
    let options = ServerOptions {
        identity: Some(identity()),
        ..options()
    };
    let header = maximal_header(&options);
    let (runtime, server, address) = start(options);
    // Warm-up: these are closed as bad framing too.
    warm_up(&server, address, header);
    let before = memory();
    let open = headers_only(address, header, CONNECTIONS);
    let all = WARM_UP + CONNECTIONS;
    let closed = wait_for(Duration::from_secs(30), || {
        server.stats().bad_framing >= all
    });
    let after = memory();
    assert!(closed, "not closed at the header: {:?}", server.stats());
    let verdicts = server.verdicts();
    let over: u64 = verdicts
        .iter()
        .filter(|v| matches!(v.reason, Some(VerdictReason::OverLimitBeforeHello(_))))
        .map(|v| v.count)
        .sum();
    assert_eq!(over, all, "{verdicts:#?}");
    report_and_check("with an identity: closed with verdicts", before, after);
    drop(open);
    runtime.block_on(server.shutdown());
}

/// The record limit the headers announce, in MiB (for the printed line).
fn options_max_mib() -> u64 {
    u64::from(options().limits.record_limits().max_fragment()) >> 20
}
