//! Interoperability with C nobody here wrote: a server and a client that
//! `rpcgen -M` generates from `tests/rpcgen/pwtest.x`, with the small
//! hand-written mains beside it (`server.c`, `client.c`), on libtirpc.
//! peerwire's client calls the C server and the C client calls peerwire's
//! server, over IPv4 (127.0.0.1) and IPv6 (::1) on loopback, with no
//! rpcbind: the C server serves a `svc_vc_create` transport on an
//! ephemeral port and registers with a null netconfig; the C client
//! (`clnttcp_create` on IPv4, `clnt_vc_create` on IPv6) is given the port.
//!
//! The trials cover what real peers send and peerwire must take: records
//! in many fragments both ways (libtirpc cuts a record into fragments of
//! its buffer size less 4; 100-byte buffers and the 64 KiB default are
//! both tried), empty last fragments (libtirpc writes one when a record
//! fills its buffer exactly), the source address `svc_getcaller` sees and
//! the one peerwire's server observes, calls pipelined on one connection
//! to a server that answers one at a time, and AUTH_SYS credentials both
//! ways. `tests/rpcgen/tap.rs` relays a connection and records how its
//! records were cut, so a trial can assert the fragments it is named for.
//!
//! The same pwtest.x compiled by peerwire's own compiler
//! (`peerwire::xdrgen`) gives `tests/rpcgen/pwtest.rs`, committed so that
//! this binary builds without feature `xdrgen` (with it,
//! `generated_pwtest_matches_the_golden_file` checks it is current).
//! `tests/rpcgen/typed.rs` calls the C server through its generated typed
//! client: opaque of 0 B to 1 MB, strings that are not UTF-8, every union
//! arm, linked lists, arrays and optional values, the bound source and an
//! AUTH_SYS credential as generated structs.
//! `tests/rpcgen/generated_server.rs` is the other way: the C client
//! against peerwire's generated server (`PwtestVersServer`, served with
//! `Server::program`), whose handlers keep what they decoded so a trial
//! compares it with what the C side built: the same constructs, the
//! credential and the observed address through `CallContext`.
//! `tests/rpcgen/errors.rs` has the definite errors both ways:
//! PROG_MISMATCH with the version range, PROC_UNAVAIL and GARBAGE_ARGS as
//! `Error::CallRejected` from the C server, and as libtirpc's `clnt_stat`
//! from the generated server (the C client's `raw` calls), plus rpcinfo's
//! version probe of the generated server; each followed by a good call
//! on the same connection.
//!
//! peerwire's client and server write each record as one fragment, with
//! no option to cut smaller; peerwire's side of small fragments is its
//! codec (`RpcCodec` with `RecordEncoder::with_fragment_size`), and a
//! record that ends in an empty fragment, which no peerwire encoder
//! writes, is cut by hand.
//!
//! # How it runs
//!
//! This binary has its own `main` (`harness = false` in Cargo.toml): it
//! builds the two C programs once (`tests/rpcgen/programs.rs`), with
//! rpcgen and gcc, into a directory of its own under the temporary
//! directory (removed at the end), before any trial runs. Each trial
//! starts its own C server and kills it when it ends, also when it panics
//! (a drop guard); a C client is killed if its trial gives up on it.
//!
//! # When it cannot run
//!
//! rpcgen (Debian package `rpcsvc-proto`), gcc, the C library's headers
//! (`libc6-dev`) or libtirpc's (`libtirpc-dev`) missing, or no IPv6 on
//! loopback: with `PEERWIRE_REQUIRE_INTEROP=1` (CI sets it) the binary
//! prints why and exits 1; otherwise it prints a loud banner and reports
//! the trials that need them as ignored, with the reason. A C program
//! that fails to build, or builds with a warning, when everything is
//! there is a failure, never a skip. The trials that run rpcinfo
//! (Debian package `rpcbind`, as `rpcinfo -a UADDR -T tcp|tcp6`, which
//! asks no rpcbind) are ignored, or fail under
//! `PEERWIRE_REQUIRE_INTEROP=1`, when it is missing.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use libtest_mimic::Arguments;
use peerwire::proto::AuthSys;
use peerwire::proto::xdr::{XdrReader, XdrWriter};

mod support {
    #[path = "../support/harness.rs"]
    pub mod harness;
    #[path = "../support/logs.rs"]
    pub mod logs;
}

#[path = "rpcgen/c_client.rs"]
mod c_client;
#[path = "rpcgen/c_server.rs"]
mod c_server;
#[path = "rpcgen/errors.rs"]
mod errors;
#[path = "rpcgen/generated_server.rs"]
mod generated_server;
#[path = "rpcgen/programs.rs"]
mod programs;
#[path = "rpcgen/tap.rs"]
mod tap;
#[path = "rpcgen/typed.rs"]
mod typed;

/// What `peerwire::xdrgen` generates from pwtest.x (checked by
/// `generated_pwtest_matches_the_golden_file` with feature `xdrgen`).
#[allow(dead_code)]
mod pwtest {
    include!("rpcgen/pwtest.rs");
}

use programs::{Build, CServer, Unavailable, run_c_client, run_rpcinfo};
use support::harness::{Requirement, selected};

/// What the C trials need: rpcgen, gcc and libtirpc.
/// `PEERWIRE_REQUIRE_INTEROP=1` turns "cannot build or run the C programs"
/// from a skip into a failure.
const NEEDS: Requirement = Requirement {
    trials: "rpcgen interop tests",
    env: "PEERWIRE_REQUIRE_INTEROP",
};

/// pwtest.x's program and procedures.
const PROG: u32 = 0x2000_0777;
const VERS: u32 = 1;
const ECHO: u32 = 1;
const CALLER: u32 = 2;
const CREDS: u32 = 3;

/// AUTH_SYS's flavor number (RFC 5531 appendix A).
const AUTH_SYS: u32 = 1;

/// The strings the NAME trials send, both ways: empty, UTF-8 beyond
/// ASCII, a lone 0xff, a sequence cut short, and Latin-1.
const NAMES: [&[u8]; 5] = [
    b"",
    "h\u{e9}llo, w\u{f6}rld".as_bytes(),
    b"\xff",
    b"ab\xc3",
    b"caf\xe9 \xfe\xfd\x80",
];

/// The bound on any one C client run and on a trial's peerwire calls:
/// only catches hangs.
const GENEROUS: Duration = Duration::from_secs(60);

fn main() {
    let args = Arguments::from_args();
    // Trials per family: the same test over 127.0.0.1 and over ::1.
    macro_rules! per_family {
        ($($module:ident :: $test:ident),* $(,)?) => {
            (
                vec![$((concat!(stringify!($test), "_ipv4"), (|| $module::$test(Ip::V4)) as fn())),*],
                vec![$((concat!(stringify!($test), "_ipv6"), (|| $module::$test(Ip::V6)) as fn())),*],
            )
        };
    }
    let (v4, v6) = per_family![
        c_server::c_server_replies_in_96_byte_fragments,
        c_server::c_server_with_default_buffers_replies_in_64_kib_fragments,
        c_server::c_server_takes_100_byte_fragments_from_peerwire_codec,
        c_server::c_server_takes_a_call_ending_in_an_empty_fragment,
        c_server::c_server_sees_the_clients_bound_source,
        c_server::c_server_answers_200_pipelined_calls_each_to_its_caller,
        c_server::c_server_sees_the_clients_auth_sys_credential,
        c_client::server_takes_96_byte_fragments_from_c_client,
        c_client::server_takes_1_mb_in_64_kib_fragments_from_c_client,
        c_client::server_takes_1_mb_in_96_byte_fragments_from_c_client,
        c_client::server_observes_the_c_clients_bound_source,
        c_client::server_sees_the_c_clients_authunix_credential,
        typed::typed_client_echoes_opaque_of_every_size_from_c_server,
        typed::typed_client_gets_its_bound_source_from_c_server,
        typed::typed_client_gets_its_auth_sys_credential_from_c_server,
        typed::typed_client_echoes_non_utf8_strings_from_c_server,
        typed::typed_client_echoes_every_construct_from_c_server,
        generated_server::generated_server_echoes_opaque_of_every_size_from_c_client,
        generated_server::generated_server_echoes_non_utf8_names_from_c_client,
        generated_server::generated_server_echoes_every_construct_from_c_client,
        generated_server::generated_server_sees_the_c_clients_authunix_credential,
        generated_server::generated_server_observes_the_c_clients_bound_source,
        errors::typed_client_gets_prog_mismatch_from_c_server,
        errors::typed_client_gets_proc_unavail_from_c_server,
        errors::typed_client_gets_garbage_args_from_c_server,
        errors::c_client_gets_proc_unavail_from_generated_server,
        errors::c_client_gets_prog_mismatch_from_generated_server,
        errors::c_client_gets_garbage_args_from_generated_server,
    ];
    // Trials that also run rpcinfo (Debian package rpcbind).
    let (rpcinfo_v4, rpcinfo_v6) =
        per_family![errors::generated_server_answers_rpcinfo_with_its_version_range];
    #[allow(unused_mut)]
    let mut always: Vec<(&'static str, fn())> =
        vec![("tap_parses_record_marking", tap::tap_parses_record_marking)];
    #[cfg(feature = "xdrgen")]
    always.push((
        "generated_pwtest_matches_the_golden_file",
        typed::generated_pwtest_matches_the_golden_file,
    ));

    // Listing (as `cargo nextest` does) or a filter that selects none of
    // the C trials builds nothing.
    let wanted = !args.list
        && v4
            .iter()
            .chain(&v6)
            .chain(&rpcinfo_v4)
            .chain(&rpcinfo_v6)
            .any(|(name, _)| selected(&args, name));
    let mut build = None;
    let (mut skip_v4, mut skip_v6) = (None, None);
    let mut skip_rpcinfo: Option<String> = None;
    if wanted {
        match Build::make() {
            Ok(made) => build = Some(made),
            Err(Unavailable::Broken(why)) => {
                eprintln!("rpcgen interop: building the C programs failed:\n{why}");
                std::process::exit(1);
            }
            Err(Unavailable::Missing(why)) => {
                skip_v4 = Some(why.clone());
                skip_v6 = Some(why);
            }
        }
        if skip_v6.is_none()
            && let Err(e) = std::net::TcpListener::bind("[::1]:0")
        {
            skip_v6 = Some(format!("no IPv6 on loopback: binding [::1]:0 failed: {e}"));
        }
        // Only a selected trial that runs rpcinfo needs it.
        if rpcinfo_v4
            .iter()
            .chain(&rpcinfo_v6)
            .any(|(name, _)| selected(&args, name))
        {
            skip_rpcinfo = programs::rpcinfo_missing();
        }
        for reason in reasons(&skip_v4, &skip_v6).into_iter().chain(&skip_rpcinfo) {
            if NEEDS.required() {
                NEEDS.print_cannot_run(reason);
                // `exit` skips destructors: remove the build first.
                drop(build);
                std::process::exit(1);
            }
            NEEDS.print_skip_banner(reason);
        }
    }

    let mut trials = support::harness::trials(always, None);
    trials.extend(support::harness::trials(v4, skip_v4.as_deref()));
    trials.extend(support::harness::trials(v6, skip_v6.as_deref()));
    let skip_rpcinfo_v4 = skip_v4.as_deref().or(skip_rpcinfo.as_deref());
    let skip_rpcinfo_v6 = skip_v6.as_deref().or(skip_rpcinfo.as_deref());
    trials.extend(support::harness::trials(rpcinfo_v4, skip_rpcinfo_v4));
    trials.extend(support::harness::trials(rpcinfo_v6, skip_rpcinfo_v6));
    let conclusion = libtest_mimic::run(&args, trials);
    // Removes the build directory; `exit` below would skip destructors.
    drop(build);
    for reason in reasons(&skip_v4, &skip_v6).into_iter().chain(&skip_rpcinfo) {
        // Once more after the summary, where nobody can miss it.
        NEEDS.print_skip_banner(reason);
    }
    conclusion.exit()
}

/// The reasons to skip, each once.
fn reasons<'a>(v4: &'a Option<String>, v6: &'a Option<String>) -> Vec<&'a String> {
    let mut reasons: Vec<&String> = v4.iter().chain(v6).collect();
    reasons.dedup();
    reasons
}

// ─────────────────────────────── families ───────────────────────────────

/// The address family a trial runs over, on loopback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ip {
    V4,
    V6,
}

impl Ip {
    /// Where the servers listen.
    fn loopback(self) -> IpAddr {
        match self {
            Ip::V4 => "127.0.0.1".parse().unwrap(),
            Ip::V6 => "::1".parse().unwrap(),
        }
    }

    /// The source peerwire's client binds: not the listener's address on
    /// IPv4, so a server that saw the wrong one would show it. (127.0.0.0/8
    /// is all on `lo`; IPv6 loopback has only ::1.)
    fn peerwire_source(self) -> IpAddr {
        match self {
            Ip::V4 => "127.0.0.2".parse().unwrap(),
            Ip::V6 => "::1".parse().unwrap(),
        }
    }

    /// The source the C client binds.
    fn c_source(self) -> IpAddr {
        match self {
            Ip::V4 => "127.0.0.3".parse().unwrap(),
            Ip::V6 => "::1".parse().unwrap(),
        }
    }

    /// Port 0 on loopback.
    fn any_port(self) -> SocketAddr {
        SocketAddr::new(self.loopback(), 0)
    }
}

// ───────────────────────── pwtest.x's XDR, by hand ─────────────────────────

/// The echo payload of `len` bytes both sides use: byte i is
/// (i * 7 + 3) mod 256, as client.c makes it.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(7) + 3) as u8).collect()
}

/// `pwtest_blob`: opaque<>.
fn blob(data: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    XdrWriter::new(&mut buf).opaque(data);
    buf.freeze()
}

#[track_caller]
fn unblob(results: &[u8]) -> Vec<u8> {
    let mut r = XdrReader::new(results);
    let data = r.opaque(u32::MAX).expect("a pwtest_blob").to_vec();
    assert!(r.is_empty(), "bytes after the pwtest_blob");
    data
}

/// `pwtest_caller`: the caller's address.
fn caller(addr: SocketAddr) -> Bytes {
    let mut buf = BytesMut::new();
    let mut w = XdrWriter::new(&mut buf);
    w.string(&addr.ip().to_string());
    w.u32(addr.port().into());
    buf.freeze()
}

#[track_caller]
fn uncaller(results: &[u8]) -> (String, u32) {
    let mut r = XdrReader::new(results);
    let addr = r.string(u32::MAX).expect("pwtest_caller.addr").to_owned();
    let port = r.u32().expect("pwtest_caller.port");
    assert!(r.is_empty(), "bytes after the pwtest_caller");
    (addr, port)
}

/// `pwtest_creds`: a flavor, and for AUTH_SYS its body.
fn creds(flavor: u32, sys: &AuthSys) -> Bytes {
    let mut buf = BytesMut::new();
    let mut w = XdrWriter::new(&mut buf);
    w.u32(flavor);
    w.u32(sys.stamp);
    w.string(&sys.machine_name);
    w.u32(sys.uid);
    w.u32(sys.gid);
    w.array(&sys.gids, |w, g| w.u32(*g));
    buf.freeze()
}

#[track_caller]
fn uncreds(results: &[u8]) -> (u32, AuthSys) {
    let mut r = XdrReader::new(results);
    let mut field = |name: &str| {
        r.u32()
            .unwrap_or_else(|e| panic!("pwtest_creds.{name}: {e}"))
    };
    let flavor = field("flavor");
    let stamp = field("stamp");
    let machine_name = r.string(255).expect("pwtest_creds.machine").to_owned();
    let uid = r.u32().expect("pwtest_creds.uid");
    let gid = r.u32().expect("pwtest_creds.gid");
    let gids = r.array(16, XdrReader::u32).expect("pwtest_creds.gids");
    assert!(r.is_empty(), "bytes after the pwtest_creds");
    (
        flavor,
        AuthSys {
            stamp,
            machine_name,
            uid,
            gid,
            gids,
        },
    )
}

// ─────────────────────────────── fragments ───────────────────────────────

/// How libtirpc's record stream (`xdrrec`) cuts a record of `len` bytes
/// with a buffer of `buffer` bytes: fragments of `buffer - 4` bytes of
/// data, the last one shorter; and when the record fills its last buffer
/// exactly with bytes written by `putbytes` (opaque data, as every record
/// here ends), that full buffer goes out as it is filled and the record
/// ends with an empty last fragment.
fn libtirpc_fragments(len: usize, buffer: usize) -> Vec<u32> {
    let data = buffer - 4;
    let mut fragments = vec![data as u32; len / data];
    fragments.push((len % data) as u32);
    fragments
}

/// A reply to ECHO of `n` bytes: the accepted reply's header (xid,
/// REPLY, MSG_ACCEPTED, an empty AUTH_NONE verifier, SUCCESS: 24 bytes),
/// then the opaque's length and its padded bytes.
fn echo_reply_len(n: usize) -> usize {
    24 + 4 + n.next_multiple_of(4)
}

/// A call to ECHO of `n` bytes with AUTH_NONE: the call header (xid,
/// CALL, rpcvers, prog, vers, proc: 24 bytes), two empty opaque_auths (16),
/// then the opaque.
fn echo_call_len(n: usize) -> usize {
    24 + 16 + 4 + n.next_multiple_of(4)
}

/// Runs `test` on a current-thread runtime: the peerwire side, the tap and
/// the C client's wait all share one thread.
fn block_on<F: Future>(test: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(test)
}
