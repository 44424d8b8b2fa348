//! The C client built from pwtest.x (libtirpc's `clnttcp_create` on IPv4,
//! `clnt_vc_create` on IPv6) against peerwire's server serving pwtest.x's
//! program.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use peerwire::proto::xdr::XdrReader;
use peerwire::proto::{AuthSys, Credential};
use peerwire::{CallContext, Endpoint, ProcError, RunningServer, Server, ServerOptions};

use super::tap::{Direction, Tap};
use super::{
    AUTH_SYS, CALLER, CREDS, ECHO, Ip, block_on, caller, creds, echo_call_len, echo_reply_len,
    libtirpc_fragments, pattern, run_c_client,
};
use crate::support::logs::Logs;

/// What the peerwire server saw of one call.
#[derive(Clone, Debug)]
struct Seen {
    procedure: u32,
    observed: SocketAddr,
    /// ECHO: the argument's length, and whether it is the pattern.
    echo: Option<(usize, bool)>,
    /// The credential, parsed.
    cred: Option<Credential>,
}

/// peerwire's server for pwtest.x on `ip`'s loopback, with default
/// options (its default limits), keeping what each call carried.
struct PeerwireServer {
    running: RunningServer,
    seen: Arc<Mutex<Vec<Seen>>>,
    logs: Logs,
    _logging: tracing::subscriber::DefaultGuard,
}

impl PeerwireServer {
    fn start(ip: Ip) -> PeerwireServer {
        // Debug and up: enough for a failure to show why peerwire closed a
        // connection (on the trial's current-thread runtime, every task's).
        let (logs, _logging) = Logs::capture_at(tracing::Level::DEBUG);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let service = {
            let seen = seen.clone();
            move |ctx: CallContext, procedure: u32, args: Bytes| {
                let seen = seen.clone();
                async move { serve(&seen, ctx, procedure, args) }
            }
        };
        let running = Server::new(ServerOptions::default())
            .service(super::PROG, super::VERS, service)
            .serve(&[Endpoint::from(ip.any_port())])
            .unwrap();
        PeerwireServer {
            running,
            seen,
            logs,
            _logging,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.running.local_addrs()[0]
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// pwtest.x's procedures, as the C server answers them.
fn serve(
    seen: &Mutex<Vec<Seen>>,
    ctx: CallContext,
    procedure: u32,
    args: Bytes,
) -> Result<Bytes, ProcError> {
    let cred = Credential::parse(&ctx.cred).ok();
    let mut record = Seen {
        procedure,
        observed: ctx.observed,
        echo: None,
        cred: cred.clone(),
    };
    let results = match procedure {
        ECHO => {
            let mut r = XdrReader::new(&args);
            let data = r.opaque(u32::MAX).map_err(|_| ProcError::GarbageArgs)?;
            if !r.is_empty() {
                return Err(ProcError::GarbageArgs);
            }
            record.echo = Some((data.len(), data == pattern(data.len())));
            super::blob(data)
        }
        CALLER => caller(ctx.observed),
        CREDS => match cred {
            Some(Credential::Sys(sys)) => creds(AUTH_SYS, &sys),
            _ => creds(
                ctx.cred.flavor,
                &AuthSys {
                    stamp: 0,
                    machine_name: String::new(),
                    uid: 0,
                    gid: 0,
                    gids: Vec::new(),
                },
            ),
        },
        _ => return Err(ProcError::ProcUnavail),
    };
    seen.lock().unwrap().push(record);
    Ok(results)
}

/// Runs the C client's echo of `n` bytes with a send buffer of `sendsz`
/// through a tap; asserts it got its bytes back and the server saw them
/// once. Returns the tap, to look at the fragments.
async fn c_echo(ip: Ip, server: &PeerwireServer, sendsz: u32, n: usize) -> Tap {
    let tap = Tap::start(ip.any_port(), server.addr()).await;
    let before = server.seen().len();
    let out = run_c_client(ip, tap.addr(), sendsz, &["echo", &n.to_string()]).await;
    let stats = server.running.stats();
    assert!(
        out.status.success() && out.line("echo") == format!("sent {n} received {n} equal"),
        "echo of {n} bytes with a {sendsz}-byte send buffer: {out}\npeerwire server: {stats:?}\n\
         its log:\n{}",
        server.logs.text()
    );
    let seen = server.seen();
    assert_eq!(seen.len(), before + 1, "{seen:?}");
    assert_eq!(seen[before].procedure, ECHO);
    assert_eq!(seen[before].echo, Some((n, true)), "what the server got");
    tap
}

/// The C client with 100-byte send buffers calls in fragments of 96
/// bytes, and a call of exactly 96 bytes (an echo of 52) with a full
/// fragment and an empty last one: peerwire's server takes them all.
pub fn server_takes_96_byte_fragments_from_c_client(ip: Ip) {
    block_on(async {
        let server = PeerwireServer::start(ip);
        for n in [0, 52, 1000, 100_000] {
            let tap = c_echo(ip, &server, 100, n).await;
            let calls = tap.records(Direction::Calls);
            assert_eq!(calls.len(), 1);
            assert_eq!(
                calls[0],
                libtirpc_fragments(echo_call_len(n), 100),
                "echo of {n}"
            );
            if n == 52 {
                assert_eq!(calls[0], [96, 0], "libtirpc's empty last fragment");
            }
            // peerwire's reply: one fragment.
            assert_eq!(
                tap.records(Direction::Replies),
                [[echo_reply_len(n) as u32]]
            );
        }
        server.running.shutdown().await;
    });
}

/// With libtirpc's default buffers the C client's 1 MB call comes in 17
/// fragments of up to 65,532 bytes.
pub fn server_takes_1_mb_in_64_kib_fragments_from_c_client(ip: Ip) {
    block_on(async {
        let server = PeerwireServer::start(ip);
        let tap = c_echo(ip, &server, 0, 1 << 20).await;
        let calls = tap.records(Direction::Calls);
        assert_eq!(
            calls,
            [libtirpc_fragments(echo_call_len(1 << 20), 64 * 1024)]
        );
        assert_eq!(calls[0].len(), 17);
        server.running.shutdown().await;
    });
}

/// The C client's 1 MB call with a 100-byte send buffer: 10,924 fragments
/// of 96 bytes or less, which libtirpc's own server takes, and so must
/// peerwire's, well within its 16 MiB payload limit.
pub fn server_takes_1_mb_in_96_byte_fragments_from_c_client(ip: Ip) {
    block_on(async {
        let server = PeerwireServer::start(ip);
        let tap = c_echo(ip, &server, 100, 1 << 20).await;
        let calls = tap.records(Direction::Calls);
        assert_eq!(calls, [libtirpc_fragments(echo_call_len(1 << 20), 100)]);
        assert_eq!(calls[0].len(), 10_924);
        server.running.shutdown().await;
    });
}

/// The C client bound to a source (127.0.0.3; ::1 on IPv6): peerwire's
/// server observes that address and port, the same the C client's socket
/// reports for itself.
pub fn server_observes_the_c_clients_bound_source(ip: Ip) {
    block_on(async {
        let server = PeerwireServer::start(ip);
        let out = run_c_client(ip, server.addr(), 0, &["caller"]).await;
        assert!(out.status.success(), "{out}");
        let local = out.line("local");
        let (host, port) = local.split_once(' ').expect("local HOST PORT");
        assert_eq!(
            host,
            ip.c_source().to_string(),
            "the C client's own address"
        );
        assert_eq!(
            out.line("caller saw"),
            local,
            "what peerwire's server answered"
        );
        let seen = server.seen();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(
            seen[0].observed,
            SocketAddr::new(ip.c_source(), port.parse().unwrap()),
            "CallContext::observed"
        );
        server.running.shutdown().await;
    });
}

/// `authunix_create`'s credential from the C client reaches peerwire's
/// handler whole, and the handler's account of it reaches the C client.
pub fn server_sees_the_c_clients_authunix_credential(ip: Ip) {
    block_on(async {
        let server = PeerwireServer::start(ip);
        let out = run_c_client(
            ip,
            server.addr(),
            0,
            &["creds", "rpcgen-client", "4321", "8765", "10", "20", "30"],
        )
        .await;
        assert!(out.status.success(), "{out}");
        let seen = server.seen();
        assert_eq!(seen.len(), 1, "{seen:?}");
        let Some(Credential::Sys(sys)) = &seen[0].cred else {
            panic!("not AUTH_SYS: {:?}", seen[0]);
        };
        assert_eq!(sys.machine_name, "rpcgen-client");
        assert_eq!((sys.uid, sys.gid), (4321, 8765));
        assert_eq!(sys.gids, [10, 20, 30]);
        // The C client prints the server's answer; its stamp is the time
        // libtirpc put in, which only the two sides know.
        assert_eq!(
            out.line("creds"),
            format!(
                "flavor {AUTH_SYS} stamp {} machine rpcgen-client uid 4321 gid 8765 gids 10,20,30",
                sys.stamp
            )
        );
        server.running.shutdown().await;
    });
}
