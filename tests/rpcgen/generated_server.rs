//! The C client built from pwtest.x against peerwire's GENERATED server:
//! `PwtestVersServer` (tests/rpcgen/pwtest.rs, what `peerwire::xdrgen`
//! makes of pwtest.x) implemented by [`Handlers`] and served with
//! `Server::program(PwtestVersProgram(handlers))`. The handlers keep what
//! each call decoded to, so a trial compares it with what the C side sent;
//! the C client compares the echo with what it sent.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use peerwire::proto::Credential;
use peerwire::proto::xdr::XdrString;
use peerwire::{CallContext, Endpoint, ProcError, RunningServer, Server, ServerOptions};

use super::pwtest::{
    PwtestBlob, PwtestCaller, PwtestCreds, PwtestKind, PwtestName, PwtestNode, PwtestRich,
    PwtestValue, PwtestVersProgram, PwtestVersServer,
};
use super::tap::{Direction, Tap};
use super::{
    AUTH_SYS, Ip, block_on, echo_call_len, echo_reply_len, libtirpc_fragments, pattern,
    run_c_client,
};
use crate::support::logs::Logs;

/// What one call gave a generated handler, as decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    /// ECHO: its argument's length, and whether it is the pattern.
    Echo {
        observed: SocketAddr,
        len: usize,
        pattern: bool,
    },
    /// CALLER.
    Caller { observed: SocketAddr },
    /// CREDS: the credential, parsed.
    Creds { cred: Option<Credential> },
    /// NAME: its argument's bytes.
    Name(Vec<u8>),
    /// RICH: its argument.
    Rich(PwtestRich),
}

/// pwtest.x's procedures as the C server answers them, written against
/// the generated trait, keeping what each call decoded to.
#[derive(Clone, Default)]
pub struct Handlers {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Handlers {
    fn keep(&self, seen: Seen) {
        self.seen.lock().unwrap().push(seen);
    }
}

impl PwtestVersServer for Handlers {
    async fn echo(&self, ctx: &CallContext, args: PwtestBlob) -> Result<PwtestBlob, ProcError> {
        self.keep(Seen::Echo {
            observed: ctx.observed,
            len: args.0.len(),
            pattern: args.0 == pattern(args.0.len()),
        });
        Ok(args)
    }

    async fn caller(&self, ctx: &CallContext) -> Result<PwtestCaller, ProcError> {
        self.keep(Seen::Caller {
            observed: ctx.observed,
        });
        Ok(PwtestCaller {
            addr: XdrString::from(ctx.observed.ip().to_string()),
            port: ctx.observed.port().into(),
        })
    }

    async fn creds(&self, ctx: &CallContext) -> Result<PwtestCreds, ProcError> {
        let cred = Credential::parse(&ctx.cred).ok();
        self.keep(Seen::Creds { cred: cred.clone() });
        Ok(match cred {
            Some(Credential::Sys(sys)) => PwtestCreds {
                flavor: AUTH_SYS,
                stamp: sys.stamp,
                machine: XdrString::from(sys.machine_name),
                uid: sys.uid,
                gid: sys.gid,
                gids: sys.gids,
            },
            _ => PwtestCreds {
                flavor: ctx.cred.flavor,
                stamp: 0,
                machine: XdrString::new(),
                uid: 0,
                gid: 0,
                gids: Vec::new(),
            },
        })
    }

    async fn name(&self, _ctx: &CallContext, args: PwtestName) -> Result<PwtestName, ProcError> {
        self.keep(Seen::Name(args.0.as_bytes().to_vec()));
        Ok(args)
    }

    async fn rich(&self, _ctx: &CallContext, args: PwtestRich) -> Result<PwtestRich, ProcError> {
        self.keep(Seen::Rich(args.clone()));
        Ok(args)
    }
}

/// peerwire's server on `ip`'s loopback with default options, serving
/// the generated program over [`Handlers`].
pub struct GeneratedServer {
    pub running: RunningServer,
    handlers: Handlers,
    logs: Logs,
    _logging: tracing::subscriber::DefaultGuard,
}

impl GeneratedServer {
    /// Serves version 1 only. Call inside a runtime.
    pub fn start(ip: Ip) -> GeneratedServer {
        GeneratedServer::start_with(ip, |server| server)
    }

    /// Serves version 1 and what `more` adds. Call inside a runtime.
    pub fn start_with(ip: Ip, more: impl FnOnce(Server) -> Server) -> GeneratedServer {
        // Debug and up: enough for a failure to show why peerwire closed a
        // connection (on the trial's current-thread runtime, every task's).
        let (logs, _logging) = Logs::capture_at(tracing::Level::DEBUG);
        let handlers = Handlers::default();
        let server =
            Server::new(ServerOptions::default()).program(PwtestVersProgram(handlers.clone()));
        let running = more(server)
            .serve(&[Endpoint::from(ip.any_port())])
            .unwrap();
        GeneratedServer {
            running,
            handlers,
            logs,
            _logging,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.local_addrs()[0]
    }

    /// What the handlers decoded, in call order.
    pub fn seen(&self) -> Vec<Seen> {
        self.handlers.seen.lock().unwrap().clone()
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        self.logs.text()
    }
}

/// `bytes` in lower-case hex, as the C client takes and prints them.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The C client's ECHO of 0, 1, 3, 4,000 and 1,000,000 bytes with a
/// 100-byte send buffer: every call of more than 96 bytes comes in many
/// fragments (10,4xx for the largest), the generated handler decodes each
/// exactly (length and pattern), and the C client gets its bytes back.
pub fn generated_server_echoes_opaque_of_every_size_from_c_client(ip: Ip) {
    block_on(async {
        let server = GeneratedServer::start(ip);
        let sizes = [0, 1, 3, 4_000, 1_000_000];
        for n in sizes {
            let tap = Tap::start(ip.any_port(), server.addr()).await;
            let out = run_c_client(ip, tap.addr(), 100, &["echo", &n.to_string()]).await;
            assert!(
                out.status.success() && out.line("echo") == format!("sent {n} received {n} equal"),
                "echo of {n} bytes: {out}\nserver log:\n{}",
                server.log()
            );
            let Some(Seen::Echo { len, pattern, .. }) = server.seen().pop() else {
                panic!("the handler saw no ECHO of {n} bytes: {:?}", server.seen());
            };
            assert_eq!((len, pattern), (n, true), "what the handler decoded");
            let calls = tap.records(Direction::Calls);
            assert_eq!(
                calls,
                [libtirpc_fragments(echo_call_len(n), 100)],
                "echo of {n}"
            );
            if n >= 4_000 {
                assert!(calls[0].len() > 40, "{} fragments", calls[0].len());
            }
            assert_eq!(
                tap.records(Direction::Replies),
                [[echo_reply_len(n) as u32]]
            );
        }
        assert_eq!(server.seen().len(), sizes.len(), "{:?}", server.seen());
        server.running.shutdown().await;
    });
}

/// The C client's NAME of strings that are not UTF-8 (a lone 0xff, a
/// truncated sequence, Latin-1 text), an empty and a UTF-8 one: the
/// generated handler decodes each to its bytes, and the C client gets
/// them back.
pub fn generated_server_echoes_non_utf8_names_from_c_client(ip: Ip) {
    block_on(async {
        let server = GeneratedServer::start(ip);
        let names = super::NAMES;
        let hexes: Vec<String> = names.iter().map(|n| hex(n)).collect();
        let mut op = vec!["name"];
        op.extend(hexes.iter().map(String::as_str));
        let out = run_c_client(ip, server.addr(), 0, &op).await;
        assert!(out.status.success(), "{out}\nserver log:\n{}", server.log());
        let echoed: Vec<&str> = out.lines("name").collect();
        let expected: Vec<String> = hexes
            .iter()
            .map(|h| format!("sent {h} received {h}"))
            .collect();
        assert_eq!(echoed, expected, "{out}");
        let seen: Vec<Seen> = names.iter().map(|n| Seen::Name(n.to_vec())).collect();
        assert_eq!(server.seen(), seen, "what the handler decoded");
        server.running.shutdown().await;
    });
}

/// The node counts client.c's `rich` tries, in its order.
const RICH_LISTS: [u32; 3] = [0, 1, 100];

/// The pwtest_rich client.c's `rich_value(arm, list)` builds (see there).
fn rich_value(arm: u32, list: usize) -> PwtestRich {
    let nodes = RICH_LISTS[list];
    let value = match arm {
        0 => PwtestValue::PwtestNone,
        1 => PwtestValue::PwtestNumber(-0x1234_5678_9abc),
        2 => PwtestValue::PwtestText(b"t\xe9xt"[..].into()),
        3 => PwtestValue::PwtestPoint([-7, i32::MAX]),
        _ => unreachable!("pwtest_kind has 4 arms"),
    };
    let many = (arm as usize * 33 + list).min(100) as u64;
    PwtestRich {
        value,
        nodes: (0..nodes).map(|i| PwtestNode { id: i * 3 + 1 }).collect(),
        fixed: [arm, nodes, u32::MAX],
        many: (0..many).map(|k| k << 40 | (k + u64::from(arm))).collect(),
        maybe: ((arm as usize + list) % 2 == 1).then(|| PwtestName(b"\xffmaybe"[..].into())),
        flag: list == 2,
        real: -1.5 * f64::from(arm) + 0.25 * list as f64,
    }
}

/// The C client's RICH, with a 100-byte send buffer, of every arm of the
/// union with linked lists of 0, 1 and 100 nodes, a fixed array, a
/// variable array of 0 to 100 (its bound) values, an optional string
/// absent and present, a bool and a double: the generated handler
/// decodes exactly what client.c built, and the C client's XDR of the echo
/// is byte for byte what it sent.
pub fn generated_server_echoes_every_construct_from_c_client(ip: Ip) {
    block_on(async {
        let server = GeneratedServer::start(ip);
        let out = run_c_client(ip, server.addr(), 100, &["rich"]).await;
        assert!(out.status.success(), "{out}\nserver log:\n{}", server.log());
        let mut expected_lines = Vec::new();
        let mut expected_seen = Vec::new();
        for arm in [
            PwtestKind::PwtestNone,
            PwtestKind::PwtestNumber,
            PwtestKind::PwtestText,
            PwtestKind::PwtestPoint,
        ] {
            for (list, nodes) in RICH_LISTS.into_iter().enumerate() {
                expected_lines.push(format!("{} {nodes} equal", arm as u32));
                expected_seen.push(Seen::Rich(rich_value(arm as u32, list)));
            }
        }
        let lines: Vec<&str> = out.lines("rich").collect();
        assert_eq!(lines, expected_lines, "{out}");
        let seen = server.seen();
        assert_eq!(seen.len(), expected_seen.len(), "{seen:?}");
        for (got, want) in seen.iter().zip(&expected_seen) {
            assert_eq!(got, want, "what the handler decoded");
        }
        server.running.shutdown().await;
    });
}

/// `authunix_create`'s credential from the C client reaches the generated
/// handler's `CallContext` whole, and the handler's account of it, as the
/// generated struct, reaches the C client.
pub fn generated_server_sees_the_c_clients_authunix_credential(ip: Ip) {
    block_on(async {
        let server = GeneratedServer::start(ip);
        let out = run_c_client(
            ip,
            server.addr(),
            0,
            &["creds", "rpcgen-client", "4321", "8765", "10", "20", "30"],
        )
        .await;
        assert!(out.status.success(), "{out}\nserver log:\n{}", server.log());
        let seen = server.seen();
        let [
            Seen::Creds {
                cred: Some(Credential::Sys(sys)),
            },
        ] = &seen[..]
        else {
            panic!("not one AUTH_SYS call: {seen:?}");
        };
        assert_eq!(sys.machine_name, "rpcgen-client");
        assert_eq!((sys.uid, sys.gid), (4321, 8765));
        assert_eq!(sys.gids, [10, 20, 30]);
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

/// The C client bound to a source (127.0.0.3; ::1 on IPv6): the generated
/// handler's `CallContext::observed` is that address and the port the C
/// client's socket reports for itself, and so is what the C client hears.
pub fn generated_server_observes_the_c_clients_bound_source(ip: Ip) {
    block_on(async {
        let server = GeneratedServer::start(ip);
        let out = run_c_client(ip, server.addr(), 0, &["caller"]).await;
        assert!(out.status.success(), "{out}\nserver log:\n{}", server.log());
        let local = out.line("local");
        let (host, port) = local.split_once(' ').expect("local HOST PORT");
        assert_eq!(
            host,
            ip.c_source().to_string(),
            "the C client's own address"
        );
        assert_eq!(out.line("caller saw"), local, "what the handler answered");
        let observed = SocketAddr::new(ip.c_source(), port.parse().unwrap());
        assert_eq!(server.seen(), [Seen::Caller { observed }]);
        server.running.shutdown().await;
    });
}
