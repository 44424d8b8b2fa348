//! Definite errors both ways between peerwire's typed layer and C: the
//! generated typed client against the rpcgen C server (PROG_MISMATCH with
//! its version range, PROC_UNAVAIL, GARBAGE_ARGS, each as the matching
//! `Error::CallRejected` status), and the generated server against
//! libtirpc callers (the C client's `clnt_call` with arguments of its own,
//! and rpcinfo's version probe). After each error the same connection
//! serves a good call.

use std::net::SocketAddr;

use bytes::Bytes;
use peerwire::proto::xdr::{XdrEncode, XdrWriter, to_bytes};
use peerwire::{CallStatus, Client, ClientOptions, Endpoint, Error, Procedure};

use super::generated_server::{GeneratedServer, Seen, hex};
use super::pwtest::{
    PWTEST_ECHO, PWTEST_PROG, PWTEST_RICH, PWTEST_VERS, PwtestBlob, PwtestName, PwtestNode,
    PwtestRich, PwtestValue, PwtestVersClient,
};
use super::{CServer, GENEROUS, Ip, block_on, pattern, run_c_client, run_rpcinfo};

fn typed_client(addr: SocketAddr) -> PwtestVersClient {
    let options = ClientOptions {
        deadline: GENEROUS,
        ping_interval: GENEROUS * 60,
        ping_timeout: GENEROUS * 120,
        breaker_threshold: 1,
        ..ClientOptions::default()
    };
    PwtestVersClient::new(Client::new(vec![Endpoint::from(addr)], options).unwrap())
}

/// The status of a call the server answered with an error; panics on
/// anything else (results, or another kind of error).
#[track_caller]
fn rejected<R: std::fmt::Debug>(result: Result<R, Error>, want: (u32, u32, u32)) -> CallStatus {
    match result {
        Err(Error::CallRejected {
            program,
            version,
            procedure,
            status,
            ..
        }) => {
            assert_eq!((program, version, procedure), want, "the call refused");
            status
        }
        other => panic!("not a refused call: {other:?}"),
    }
}

/// ECHO of 3 bytes succeeds on the client's one connection, which it has
/// not had to make again.
async fn assert_still_serves(client: &PwtestVersClient, after: &str) {
    let sent = PwtestBlob(Bytes::from(pattern(3)));
    let echoed = client
        .echo(&sent)
        .await
        .unwrap_or_else(|e| panic!("ECHO after {after} failed: {e}"));
    assert_eq!(echoed, sent, "ECHO after {after}");
    let stats = client.client().stats();
    assert_eq!(stats.reconnects, 0, "after {after}: {stats:?}");
}

/// Typed calls of versions 0 and 2 of pwtest.x's program, which the C
/// server does not serve: each fails with PROG_MISMATCH carrying the
/// versions it serves, 1 to 1; a program it lacks, with PROG_UNAVAIL.
pub fn typed_client_gets_prog_mismatch_from_c_server(ip: Ip) {
    let server = CServer::start(ip, 0, 0);
    block_on(async {
        let client = typed_client(server.addr());
        assert_still_serves(&client, "connecting").await;
        for version in [0, 2] {
            let echo: Procedure<PwtestBlob, PwtestBlob> =
                Procedure::new(PWTEST_PROG, version, 1, "PWTEST_ECHO");
            let result = client
                .client()
                .call_proc(&echo, &PwtestBlob(Bytes::from_static(b"abc")))
                .await;
            let status = rejected(result, (PWTEST_PROG, version, 1));
            assert_eq!(
                status,
                CallStatus::ProgMismatch { low: 1, high: 1 },
                "version {version}"
            );
            assert_still_serves(&client, &format!("version {version}")).await;
        }
        let other: Procedure<(), ()> = Procedure::new(PWTEST_PROG + 1, 1, 1, "OTHER");
        let status = rejected(
            client.client().call_proc(&other, &()).await,
            (PWTEST_PROG + 1, 1, 1),
        );
        assert_eq!(status, CallStatus::ProgUnavail, "another program");
        assert_still_serves(&client, "another program").await;
        client.client().close();
    });
}

/// Typed calls of procedures 6 and 0x7fff_ffff, which pwtest.x does not
/// define: each fails with PROC_UNAVAIL.
pub fn typed_client_gets_proc_unavail_from_c_server(ip: Ip) {
    let server = CServer::start(ip, 0, 0);
    block_on(async {
        let client = typed_client(server.addr());
        for procedure in [6, 0x7fff_ffff] {
            let missing: Procedure<(), ()> =
                Procedure::new(PWTEST_PROG, PWTEST_VERS, procedure, "MISSING");
            let status = rejected(
                client.client().call_proc(&missing, &()).await,
                (PWTEST_PROG, PWTEST_VERS, procedure),
            );
            assert_eq!(status, CallStatus::ProcUnavail, "procedure {procedure}");
            assert_still_serves(&client, &format!("procedure {procedure}")).await;
        }
        client.client().close();
    });
}

/// An opaque<> that claims 10 bytes and has 4: arguments cut short.
struct CutShort;

impl XdrEncode for CutShort {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.u32(10);
        w.u32(0x4141_4141);
    }
}

/// A pwtest_rich whose union says arm 9, which pwtest_kind lacks, with
/// the rest of a valid pwtest_rich after it.
struct UnknownArm;

impl XdrEncode for UnknownArm {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.i32(9);
        // nodes (none), fixed[3], many<> (none), maybe (absent), flag, real.
        for word in [0, 1, 2, 3, 0, 0, 0, 0, 0] {
            w.u32(word);
        }
    }
}

/// A pwtest_rich of the generated type with 101 values in `many<100>`:
/// a typed call refuses to send it (`Error::BadArgs`).
fn over_bound() -> PwtestRich {
    PwtestRich {
        value: PwtestValue::PwtestNone,
        nodes: vec![PwtestNode { id: 1 }],
        fixed: [1, 2, 3],
        many: (0..101).collect(),
        maybe: Some(PwtestName(b"x"[..].into())),
        flag: true,
        real: 0.5,
    }
}

/// A value written as it is, past the bound checks of typed calls: its
/// encoding from `to_bytes`, which writes items over their bounds.
struct Unchecked<T>(T);

impl<T: XdrEncode> XdrEncode for Unchecked<T> {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.raw(&peerwire::proto::xdr::to_bytes(&self.0));
    }
}

/// Asserts `result` is GARBAGE_ARGS for `procedure` and the connection
/// still serves.
async fn assert_garbage(
    client: &PwtestVersClient,
    what: &str,
    procedure: u32,
    result: Result<(), Error>,
) {
    let status = rejected(result, (PWTEST_PROG, PWTEST_VERS, procedure));
    assert_eq!(status, CallStatus::GarbageArgs, "{what}");
    assert_still_serves(client, what).await;
}

/// Typed procedures whose argument types do not decode as the C server's
/// (ECHO's opaque cut short, RICH with an unknown union arm, RICH with a
/// variable array over its bound): each fails with GARBAGE_ARGS.
pub fn typed_client_gets_garbage_args_from_c_server(ip: Ip) {
    let server = CServer::start(ip, 0, 0);
    block_on(async {
        let client = typed_client(server.addr());
        let c = client.client();
        let echo_cut: Procedure<CutShort, PwtestBlob> = Procedure::new(
            PWTEST_PROG,
            PWTEST_VERS,
            PWTEST_ECHO.procedure,
            "PWTEST_ECHO",
        );
        let rich_arm: Procedure<UnknownArm, PwtestRich> = Procedure::new(
            PWTEST_PROG,
            PWTEST_VERS,
            PWTEST_RICH.procedure,
            "PWTEST_RICH",
        );
        let result = c.call_proc(&echo_cut, &CutShort).await;
        assert_garbage(&client, "ECHO cut short", 1, result.map(drop)).await;
        let result = c.call_proc(&rich_arm, &UnknownArm).await;
        assert_garbage(&client, "RICH with arm 9", 5, result.map(drop)).await;
        match c.call_proc(&PWTEST_RICH, &over_bound()).await {
            Err(Error::BadArgs { error, .. }) => assert_eq!((error.len, error.max), (101, 100)),
            other => panic!("RICH with 101 of <100> is not sent, got {other:?}"),
        }
        assert_still_serves(&client, "RICH with 101 of <100>, refused").await;
        let rich_unchecked: Procedure<Unchecked<PwtestRich>, PwtestRich> = Procedure::new(
            PWTEST_PROG,
            PWTEST_VERS,
            PWTEST_RICH.procedure,
            "PWTEST_RICH",
        );
        let result = c.call_proc(&rich_unchecked, &Unchecked(over_bound())).await;
        assert_garbage(&client, "RICH with 101 of <100>", 5, result.map(drop)).await;
        client.client().close();
    });
}

// ───────────────────── libtirpc callers, peerwire's server ─────────────────────

/// libtirpc's `enum clnt_stat` values (rpc/clnt_stat.h).
const RPC_PROGUNAVAIL: u32 = 8;
const RPC_PROGVERSMISMATCH: u32 = 9;
const RPC_PROCUNAVAIL: u32 = 10;
const RPC_CANTDECODEARGS: u32 = 11;

/// The C client's `raw` call of `prog`/`vers`/`proc` with `args` to the
/// generated server, then its ECHO of 3 bytes on the same connection.
/// Asserts the clnt_stat is `status`, the echo came back, and of the two
/// calls only the echo reached a handler. Returns the C client's output.
async fn raw_call(
    ip: Ip,
    server: &GeneratedServer,
    (prog, vers, proc): (u32, u32, u32),
    args: &[u8],
    status: u32,
) -> super::programs::Output {
    let before = server.seen().len();
    let op = [
        "raw",
        &prog.to_string(),
        &vers.to_string(),
        &proc.to_string(),
        &hex(args),
    ];
    let out = run_c_client(ip, server.addr(), 0, &op).await;
    let what = format!("{prog}/{vers}/{proc} with {}", hex(args));
    assert!(
        out.status.success(),
        "{what}: {out}\nserver log:\n{}",
        server.log()
    );
    assert_eq!(out.line("status"), status.to_string(), "{what}: {out}");
    assert_eq!(
        out.line("then echo"),
        "sent 3 received 3 equal",
        "{what}: {out}"
    );
    let seen = server.seen();
    assert_eq!(seen.len(), before + 1, "{what}: handlers ran for {seen:?}");
    assert!(
        matches!(
            seen[before],
            Seen::Echo {
                len: 3,
                pattern: true,
                ..
            }
        ),
        "{what}: {seen:?}"
    );
    out
}

/// The C client calls procedures the generated server lacks (6, and one
/// past any pwtest.x has): libtirpc reports PROC_UNAVAIL.
pub fn c_client_gets_proc_unavail_from_generated_server(ip: Ip) {
    block_on(async {
        let server = GeneratedServer::start(ip);
        for proc in [6, 0x7fff_ffff] {
            raw_call(
                ip,
                &server,
                (PWTEST_PROG, PWTEST_VERS, proc),
                &[],
                RPC_PROCUNAVAIL,
            )
            .await;
        }
        server.running.shutdown().await;
    });
}

/// The C client calls versions 0 and 2 of the generated server's program:
/// libtirpc reports PROG_MISMATCH with the server's range, 1 to 1; and a
/// program the server lacks: PROG_UNAVAIL.
pub fn c_client_gets_prog_mismatch_from_generated_server(ip: Ip) {
    block_on(async {
        let server = GeneratedServer::start(ip);
        for vers in [0, 2] {
            let out = raw_call(
                ip,
                &server,
                (PWTEST_PROG, vers, 1),
                &[0; 4],
                RPC_PROGVERSMISMATCH,
            )
            .await;
            assert_eq!(out.line("versions"), "1 1", "version {vers}: {out}");
        }
        raw_call(
            ip,
            &server,
            (PWTEST_PROG + 1, 1, 1),
            &[0; 4],
            RPC_PROGUNAVAIL,
        )
        .await;
        server.running.shutdown().await;
    });
}

/// The C client sends arguments the generated decoders refuse: ECHO's
/// opaque cut short, ECHO with a word after its opaque, RICH with an
/// unknown union arm, RICH with 101 values in `many<100>`: libtirpc
/// reports GARBAGE_ARGS for each, and no handler runs.
pub fn c_client_gets_garbage_args_from_generated_server(ip: Ip) {
    block_on(async {
        let server = GeneratedServer::start(ip);
        let cases = [
            (1, to_bytes(&CutShort)),
            (1, Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 7])),
            (5, to_bytes(&UnknownArm)),
            (5, to_bytes(&over_bound())),
        ];
        for (proc, args) in cases {
            raw_call(
                ip,
                &server,
                (PWTEST_PROG, PWTEST_VERS, proc),
                &args,
                RPC_CANTDECODEARGS,
            )
            .await;
        }
        server.running.shutdown().await;
    });
}

/// rpcinfo, given no version, probes the generated server's program for
/// its version range (a call of version 0, answered PROG_MISMATCH) and
/// NULL-calls each version in it; given version 2 it reports the
/// mismatch with the range, and given 1 the NULL call succeeds. With a
/// version 3 served too, the probe finds 1 to 3 and reports 2 missing.
pub fn generated_server_answers_rpcinfo_with_its_version_range(ip: Ip) {
    block_on(async {
        let prog = PWTEST_PROG.to_string();
        let ready = |v: u32| format!("program {prog} version {v} ready and waiting");
        let missing = |v: u32| format!("program {prog} version {v} is not available");

        let server = GeneratedServer::start(ip);
        let out = run_rpcinfo(server.addr(), &[&prog]).await;
        assert!(out.status.success(), "{out}");
        assert_eq!(out.stdout.lines().collect::<Vec<_>>(), [ready(1)], "{out}");
        let out = run_rpcinfo(server.addr(), &[&prog, "1"]).await;
        assert!(out.status.success(), "{out}");
        assert_eq!(out.stdout.trim_end(), ready(1), "{out}");
        let out = run_rpcinfo(server.addr(), &[&prog, "2"]).await;
        assert!(!out.status.success(), "{out}");
        assert_eq!(out.stdout.trim_end(), missing(2), "{out}");
        assert!(
            out.stderr
                .contains("Program/version mismatch; low version = 1, high version = 1"),
            "{out}"
        );
        assert!(server.seen().is_empty(), "{:?}", server.seen());
        server.running.shutdown().await;

        let server = GeneratedServer::start_with(ip, |server| {
            server.service(PWTEST_PROG, 3, |_ctx, _proc, _args: Bytes| async {
                Err::<Bytes, _>(peerwire::ProcError::ProcUnavail)
            })
        });
        let out = run_rpcinfo(server.addr(), &[&prog]).await;
        assert_eq!(
            out.stdout.lines().collect::<Vec<_>>(),
            [ready(1), missing(2), ready(3)],
            "{out}"
        );
        server.running.shutdown().await;
    });
}
