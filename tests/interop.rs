//! Interoperability with real programs, no mocks: `rpcinfo` pings a
//! peerwire server, and a peerwire client talks to `rpcbind` (portmapper
//! v2) and to `glusterd` (GF-DUMP, over TCP and over its Unix socket
//! `/run/glusterd.socket`).
//!
//! The trials are in tests/interop/: rpcbind.rs (rpcinfo and rpcbind),
//! glusterd.rs (GF-DUMP over TCP and the Unix socket), and tls.rs,
//! tls_client.rs and starttls_capture.rs (glusterd with management TLS);
//! environment.rs makes the namespaces and runs the daemons. This file
//! holds `main` and the helpers the trials share.
//!
//! # How it runs
//!
//! This binary has its own `main` (`harness = false` in Cargo.toml). Before
//! any thread exists, `main` moves the whole process into a private network
//! and mount namespace (`unshare(CLONE_NEWNET | CLONE_NEWNS)`), brings up
//! `lo`, mounts private tmpfs over `/run`, `/var/lib/glusterd` and
//! `/var/log/glusterfs`, and starts `rpcbind -f` and `glusterd -N` as its
//! children. Every trial then runs in that namespace, on loopback only: the
//! host's ports 111 and 24007, its rpcbind and glusterd (if any) and their
//! state are never touched. The namespaces end with the process.
//!
//! A second glusterd, with management TLS, runs beside the first in a
//! mount namespace of its own and listens on port 24017: see
//! `tests/interop/tls.rs`.
//!
//! No user namespace: rpcbind switches to the user `_rpc` after binding,
//! which fails in a user namespace where only root is mapped. So the tests
//! need real root, as CI has.
//!
//! # Cleaning up
//!
//! Each daemon runs as `unshare --pid --fork --kill-child=SIGKILL -- sh -c
//! '"$@" & wait $!' sh DAEMON ARGS`: `sh` is the init of a PID namespace of
//! its own, and when a PID namespace's init dies the kernel kills everything
//! in it. `unshare` gets `PR_SET_PDEATHSIG` = SIGKILL from us and passes a
//! SIGKILL on to `sh` when it dies, so the daemons cannot outlive this
//! process, however it ends. A plain `PR_SET_PDEATHSIG` on rpcbind itself
//! would not do: the kernel clears it when rpcbind changes its uid to
//! `_rpc` (checked: rpcbind outlived a parent killed that way). At the end,
//! and on a panic in `main`, a drop guard kills each namespace's init and
//! reaps `unshare`.
//!
//! # When it cannot run
//!
//! Not root, a program missing, or a daemon that does not start: with
//! `PEERWIRE_REQUIRE_INTEROP=1` (CI sets it) the binary prints why and
//! exits 1; otherwise it prints a loud banner and reports every trial as
//! ignored. `--list` only lists, and starts nothing.

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod support {
    #[path = "../support/common.rs"]
    pub mod common;
    #[path = "../support/harness.rs"]
    pub mod harness;
    #[path = "../support/peerd.rs"]
    pub mod peerd;
    #[path = "../support/pki.rs"]
    pub mod pki;
}

#[path = "interop/environment.rs"]
mod environment;
#[path = "interop/glusterd.rs"]
mod glusterd;
#[path = "interop/rpcbind.rs"]
mod rpcbind;

#[path = "interop/tls.rs"]
mod tls;

#[cfg(feature = "tls")]
#[path = "interop/tls_client.rs"]
mod tls_client;

#[cfg(feature = "tls")]
#[path = "interop/starttls_capture.rs"]
mod starttls_capture;

use environment::{Daemon, Environment, Tools, command, describe, tail};
use libtest_mimic::Arguments;
use peerwire::programs::gf_dump::{self, GfDumpRequest, GfDumpResponse, GfDumpV1Client};
use peerwire::{
    CallContext, Client, ClientOptions, ConnectionState, Endpoint, Error, ProcError, RunningServer,
    ScopedIp, Server, Sources,
};
use support::harness::{Requirement, selected};

/// What the trials need: the real programs. `PEERWIRE_REQUIRE_INTEROP=1`
/// turns "cannot run them" from a skip into a failure.
const NEEDS: Requirement = Requirement {
    trials: "interop tests",
    env: "PEERWIRE_REQUIRE_INTEROP",
};

/// The program the peerwire server serves to rpcinfo (user-defined range).
const PROG: u32 = 0x2000_0099;

/// A second IPv4 loopback source. 127.0.0.0/8 is routed to `lo`, so it can
/// be bound without adding it; rpcbind treats only 127.0.0.1 as local.
const SECOND_V4: &str = "127.0.0.2";
/// A second IPv6 source, added to `lo` (documentation range; never leaves
/// the namespace). rpcbind treats only `::1` as local.
const SECOND_V6: &str = "2001:db8::1";

/// Where rpcbind and glusterd listen inside the namespace.
const RPCBIND_V4: &str = "127.0.0.1:111";
const RPCBIND_V6: &str = "[::1]:111";
const GLUSTERD: &str = "127.0.0.1:24007";
/// glusterd's CLI socket (under the namespace's private /run).
const GLUSTERD_SOCKET: &str = "/run/glusterd.socket";

/// Logs of the daemons, on the private tmpfs over /run.
const LOG_DIR: &str = "/run/peerwire-interop";

/// Bound on one trial, and on any one program run.
const TRIAL_LIMIT: Duration = Duration::from_secs(120);
const TOOL_LIMIT: Duration = Duration::from_secs(30);
/// How long a daemon may take to listen, and glusterd to answer.
const START_LIMIT: Duration = Duration::from_secs(30);
const READY_LIMIT: Duration = Duration::from_secs(60);

/// The programs, found once in `main` before anything starts.
static TOOLS: OnceLock<Tools> = OnceLock::new();
/// `glusterd --version`'s first line, e.g. "glusterfs 10.3".
static GLUSTERD_VERSION: OnceLock<String> = OnceLock::new();

fn main() {
    let args = Arguments::from_args();
    #[allow(unused_mut)]
    let mut tests: Vec<(&'static str, fn())> = vec![
        (
            "rpcinfo_pings_peerwire_server_over_ipv4",
            rpcbind::rpcinfo_pings_peerwire_server_over_ipv4,
        ),
        (
            "rpcinfo_pings_peerwire_server_over_ipv6",
            rpcbind::rpcinfo_pings_peerwire_server_over_ipv6,
        ),
        (
            "rpcinfo_sees_prog_mismatch_from_peerwire_server",
            rpcbind::rpcinfo_sees_prog_mismatch_from_peerwire_server,
        ),
        (
            "client_calls_rpcbind_null_and_dump_over_ipv4",
            rpcbind::client_calls_rpcbind_null_and_dump_over_ipv4,
        ),
        (
            "client_calls_rpcbind_null_and_dump_over_ipv6",
            rpcbind::client_calls_rpcbind_null_and_dump_over_ipv6,
        ),
        (
            "client_calls_glusterd_gf_dump_and_ping",
            glusterd::client_calls_glusterd_gf_dump_and_ping,
        ),
        (
            "peerd_pings_rpcbind_from_a_chosen_source",
            rpcbind::peerd_pings_rpcbind_from_a_chosen_source,
        ),
        (
            "peerd_ping_to_a_closed_port_exits_1",
            rpcbind::peerd_ping_to_a_closed_port_exits_1,
        ),
        (
            "peerd_gluster_dump_lists_glusterds_programs",
            glusterd::peerd_gluster_dump_lists_glusterds_programs,
        ),
        (
            "openssl_s_client_speaks_gf_dump_to_the_tls_glusterd",
            tls::openssl_s_client_speaks_gf_dump_to_the_tls_glusterd,
        ),
        (
            "client_calls_glusterd_gf_dump_over_its_unix_socket",
            glusterd::client_calls_glusterd_gf_dump_over_its_unix_socket,
        ),
        (
            "listen_unix_never_takes_glusterds_live_socket",
            glusterd::listen_unix_never_takes_glusterds_live_socket,
        ),
        (
            "peerd_gluster_dump_over_glusterds_unix_socket",
            glusterd::peerd_gluster_dump_over_glusterds_unix_socket,
        ),
    ];
    // peerwire's own TLS (the crate's `tls` feature) against the TLS
    // glusterd; openssl's trial above needs no feature.
    #[cfg(feature = "tls")]
    tests.extend::<[(&'static str, fn()); 6]>([
        (
            "client_gf_dump_over_tls_to_glusterd_by_cn",
            tls_client::client_gf_dump_over_tls_to_glusterd_by_cn,
        ),
        (
            "peerd_gluster_dump_over_tls_to_glusterd",
            tls_client::peerd_gluster_dump_over_tls_to_glusterd,
        ),
        (
            "client_without_server_cn_refuses_glusterds_certificate",
            tls_client::client_without_server_cn_refuses_glusterds_certificate,
        ),
        (
            "glusterd_refuses_a_client_certificate_from_another_ca",
            tls_client::glusterd_refuses_a_client_certificate_from_another_ca,
        ),
        (
            "plain_client_to_tls_glusterd_is_told_it_expects_tls",
            tls_client::plain_client_to_tls_glusterd_is_told_it_expects_tls,
        ),
        (
            "starttls_probe_and_reply_are_well_formed_rpc_in_a_capture",
            starttls_capture::starttls_probe_and_reply_are_well_formed_rpc_in_a_capture,
        ),
    ]);

    // Listing (as `cargo nextest` does) or a filter that selects none of
    // these trials starts nothing.
    let wanted = !args.list && tests.iter().any(|(name, _)| selected(&args, name));
    let (environment, skipped) = if !wanted {
        (None, None)
    } else {
        match Environment::set_up() {
            Ok(environment) => (Some(environment), None),
            Err(reason) if NEEDS.required() => {
                NEEDS.print_cannot_run(&reason);
                std::process::exit(1);
            }
            Err(reason) => {
                NEEDS.print_skip_banner(&reason);
                (None, Some(reason))
            }
        }
    };

    let skipped_why = skipped
        .as_ref()
        .map(|r| format!("interop environment unavailable: {r}"));
    let trials = support::harness::trials(tests, skipped_why.as_deref());

    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(environment) = environment {
        if conclusion.has_failed() {
            environment.print_logs();
        }
        // Stops the daemons; `exit` below would skip destructors.
        drop(environment);
    }
    if let Some(reason) = &skipped {
        // Once more after the summary, where nobody can miss it.
        NEEDS.print_skip_banner(reason);
    }
    conclusion.exit()
}

// ──────────────────────────────── helpers ─────────────────────────────────

/// Runs `test` on a multi-thread runtime of its own, within [`TRIAL_LIMIT`].
fn block_on<F: Future>(test: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        tokio::time::timeout(TRIAL_LIMIT, test)
            .await
            .unwrap_or_else(|_| panic!("the trial did not finish within {TRIAL_LIMIT:?}"))
    })
}

/// What a program printed.
struct Output {
    command: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` ended with {} after {:?}\nstdout: {:?}\nstderr: {:?}",
            self.command,
            describe(self.status),
            self.took,
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `rpcinfo args` on the blocking pool (the runtime's workers keep
/// serving meanwhile), within [`TOOL_LIMIT`].
async fn rpcinfo(args: &[&str]) -> Output {
    let program = TOOLS.get().expect("tools are found first").rpcinfo.clone();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || run_tool(&program, &args))
        .await
        .expect("the rpcinfo thread")
}

fn run_tool(program: &Path, args: &[String]) -> Output {
    let line = format!("{} {}", program.display(), args.join(" "));
    let start = Instant::now();
    let mut child = command(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            break status;
        }
        if start.elapsed() > TOOL_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{line}` did not finish within {TOOL_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // The output is a few lines: it fits the pipes, so reading after the
    // exit cannot deadlock.
    let mut stdout = String::new();
    let mut stderr = String::new();
    let _ = child
        .stdout
        .take()
        .map(|mut s| s.read_to_string(&mut stdout));
    let _ = child
        .stderr
        .take()
        .map(|mut s| s.read_to_string(&mut stderr));
    Output {
        command: line,
        status,
        stdout,
        stderr,
        took: start.elapsed(),
    }
}

/// A universal address (RFC 5665 §5.2.3): the IP, then the port's two
/// bytes in decimal, e.g. `127.0.0.1.16.15` or `::1.16.15` for port 4111.
fn universal_address(addr: SocketAddr) -> String {
    let port = addr.port();
    format!("{}.{}.{}", addr.ip(), port >> 8, port & 0xff)
}

/// A peerwire server of [`PROG`] versions 1 and 2, listening on `listen`.
fn peerwire_server(listen: &str) -> RunningServer {
    async fn service(
        _: CallContext,
        procedure: u32,
        args: bytes::Bytes,
    ) -> Result<bytes::Bytes, ProcError> {
        match procedure {
            1 => Ok(args),
            _ => Err(ProcError::ProcUnavail),
        }
    }
    Server::default()
        .service(PROG, 1, service)
        .service(PROG, 2, service)
        .serve(&[listen.parse().expect("an endpoint")])
        .expect("the peerwire server listens")
}

/// A client of `server` that binds `source`.
fn client_from(source: &str, server: &str) -> Client {
    let options = ClientOptions {
        deadline: Duration::from_secs(30),
        ..ClientOptions::default()
    };
    client_with(source, server, options)
}

/// A client of `server` with `options`, bound to `source` (which replaces
/// any sources in `options`).
fn client_with(source: &str, server: &str, mut options: ClientOptions) -> Client {
    let source: ScopedIp = source.parse().expect("a source address");
    options.connect.sources = Sources::new().with(source);
    Client::new(
        vec![server.parse::<Endpoint>().expect("an endpoint")],
        options,
    )
    .expect("a destination")
}

/// Asserts the client is connected from `source` to `server`, and returns
/// its local address.
#[track_caller]
fn assert_connected_from(client: &Client, source: &str, server: &str) -> SocketAddr {
    let ConnectionState::Connected { local, remote } = client.state() else {
        panic!("the client is not connected: {:?}", client.state());
    };
    let source: IpAddr = source.parse().expect("an IP");
    assert_eq!(
        local.ip(),
        source,
        "the client's socket is not bound to the configured source (local {local})"
    );
    assert_eq!(
        remote,
        server.parse::<SocketAddr>().expect("a socket address")
    );
    local
}

/// GF-DUMP DUMP: the programs the server lists.
async fn call_gf_dump(client: &Client) -> Result<GfDumpResponse, Error> {
    GfDumpV1Client::new(client.clone())
        .dump(&GfDumpRequest::default())
        .await
}

/// Prints the programs of a GF-DUMP DUMP answer, and asserts it is a
/// success that lists GF-DUMP itself.
#[track_caller]
fn assert_dump_succeeded(dump: &GfDumpResponse) {
    for p in &dump.programs {
        eprintln!("  {:?} {} v{}", p.progname, p.prognum, p.progver);
    }
    assert_eq!((dump.op_ret, dump.op_errno), (0, 0), "{dump:?}");
    assert!(
        dump.program(gf_dump::PROGRAM.into(), gf_dump::VERSION.into())
            .is_some_and(|p| p.progname == "GF-DUMP"),
        "{dump:?}"
    );
}

/// Asserts a GF-DUMP DUMP answer lists glusterd's peer program.
#[track_caller]
fn assert_lists_glusterd_peer(dump: &GfDumpResponse) {
    assert!(
        dump.program(
            gf_dump::GLUSTERD_PEER_PROGRAM,
            gf_dump::GLUSTERD_PEER_VERSION
        )
        .is_some_and(|p| p.progname == "GlusterD svc peer"),
        "no GlusterD svc peer in {dump:?}"
    );
}

// ─────────────────────── the peerd example's CLI ───────────────────────

/// Runs the peerd example with `args`.
fn peerd(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    run_tool(support::peerd::binary(), &args)
}

/// How `peerd gluster-dump` prints glusterd's peer program and GF-DUMP.
const PEERD_PEER_LINE: &str = "\"GlusterD svc peer\" 1238437 v2";
const PEERD_GF_DUMP_LINE: &str = "\"GF-DUMP\" 123451501 v1";

/// Asserts peerd succeeded and printed each of `lines`.
#[track_caller]
fn assert_peerd_printed(out: &Output, lines: &[&str]) {
    assert!(out.status.success(), "{out}");
    for line in lines {
        assert!(out.stdout.contains(line), "{line:?} is missing: {out}");
    }
}
