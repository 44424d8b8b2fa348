//! peerwire's client and peerd's `gluster-dump` against glusterd, over TCP
//! and over glusterd's Unix socket.

use std::path::Path;
use std::time::{Duration, Instant};

use peerwire::programs::gf_dump::{
    self, GfCommonResponse, GfDumpResponse, GfDumpV1Client, GfProgram,
};
use peerwire::{CallStatus, Client, ClientOptions, Error};

use super::{
    GLUSTERD, GLUSTERD_SOCKET, GLUSTERD_VERSION, Output, PEERD_GF_DUMP_LINE, PEERD_PEER_LINE,
    READY_LIMIT, SECOND_V4, TOOL_LIMIT, assert_connected_from, assert_dump_succeeded,
    assert_lists_glusterd_peer, assert_peerd_printed, block_on, call_gf_dump, client_from, peerd,
};

pub fn client_calls_glusterd_gf_dump_and_ping() {
    block_on(async {
        let client = client_from(SECOND_V4, GLUSTERD);
        wait_for_null(&client, gf_dump::PROGRAM, gf_dump::VERSION, GLUSTERD).await;
        assert_connected_from(&client, SECOND_V4, GLUSTERD);

        let start = Instant::now();
        let dump = call_gf_dump(&client)
            .await
            .unwrap_or_else(|e| panic!("GF-DUMP DUMP failed: {e}"));
        eprintln!("GF-DUMP DUMP took {:?}:", start.elapsed());
        assert_dump_succeeded(&dump);
        assert_lists_glusterd_peer(&dump);
        // The list recorded in WIRE.md, in glusterd's order.
        assert_programs_of_10_3(
            &dump,
            &[
                ("GF-DUMP", 123_451_501, 1),
                ("GlusterD svc peer", 1_238_437, 2),
                ("GlusterD svc cli read-only", 1_238_463, 2),
                ("GlusterD svc mgmt", 1_238_433, 2),
                ("GlusterD svc mgmt v3", 1_238_433, 3),
                ("Gluster Portmap", 34_123_456, 1),
                ("Gluster Handshake", 14_398_633, 2),
                ("Gluster MGMT Handshake", 1_239_873, 1),
            ],
        );

        let start = Instant::now();
        let ping = GfDumpV1Client::new(client.clone())
            .ping()
            .await
            .unwrap_or_else(|e| panic!("GF-DUMP PING failed: {e}"));
        eprintln!("GF-DUMP PING took {:?}: {ping:?}", start.elapsed());
        assert_eq!(ping, GfCommonResponse::default());

        assert_connected_from(&client, SECOND_V4, GLUSTERD);
        let stats = client.stats();
        assert_eq!(stats.succeeded, 2, "DUMP and PING: {stats:?}");
        client.close();
    });
}

/// Calls NULL of `program` `version` until glusterd answers at `at`: it
/// accepts before it is ready, and answers NULL with PROC_UNAVAIL, which
/// proves it up.
async fn wait_for_null(client: &Client, program: u32, version: u32, at: &str) {
    let start = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match client.null(program, version).await {
            Err(Error::CallRejected {
                status: CallStatus::ProcUnavail,
                ..
            })
            | Ok(()) => break,
            Err(e) if start.elapsed() < READY_LIMIT => {
                eprintln!(
                    "glusterd at {at} not ready after {:?}: {e}",
                    start.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("glusterd did not answer at {at} within {READY_LIMIT:?}: {e}"),
        }
    }
    eprintln!(
        "glusterd at {at} answered NULL (attempt {attempts}) after {:?}",
        start.elapsed()
    );
}

/// With glusterd 10.3, asserts the answer lists exactly `expected` (name,
/// number, version), in that order; with another version, says that the
/// list is not compared.
#[track_caller]
fn assert_programs_of_10_3(dump: &GfDumpResponse, expected: &[(&str, u64, u64)]) {
    let version = GLUSTERD_VERSION.get().map_or("", String::as_str);
    if version == "glusterfs 10.3" {
        let expected: Vec<GfProgram> = expected
            .iter()
            .map(|&(name, number, version)| GfProgram {
                progname: name.into(),
                prognum: number,
                progver: version,
            })
            .collect();
        assert_eq!(dump.programs, expected);
    } else {
        eprintln!("glusterd is {version:?}, not 10.3: the full list is not compared");
    }
}

/// Runs `peerd gluster-dump args` until it succeeds or [`READY_LIMIT`]
/// passes: glusterd accepts before it is ready.
fn peerd_gluster_dump_until_ready(args: &[&str]) -> Output {
    let args: Vec<&str> = ["gluster-dump"].iter().chain(args).copied().collect();
    let start = Instant::now();
    loop {
        let out = peerd(&args);
        if out.status.success() || start.elapsed() > READY_LIMIT {
            return out;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn peerd_gluster_dump_lists_glusterds_programs() {
    let out = peerd_gluster_dump_until_ready(&[GLUSTERD, "--source", SECOND_V4]);
    assert_peerd_printed(&out, &[PEERD_PEER_LINE, PEERD_GF_DUMP_LINE]);
    assert!(
        out.stdout.contains(&format!("from {SECOND_V4}:")),
        "the source used is not printed: {out}"
    );
}

/// Waits until glusterd's socket file exists (it makes it after its TCP
/// listener).
fn wait_for_glusterd_socket() {
    let start = Instant::now();
    while !Path::new(GLUSTERD_SOCKET).exists() {
        assert!(
            start.elapsed() < READY_LIMIT,
            "glusterd made no {GLUSTERD_SOCKET} within {READY_LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn client_calls_glusterd_gf_dump_over_its_unix_socket() {
    wait_for_glusterd_socket();
    block_on(async {
        let options = ClientOptions {
            deadline: TOOL_LIMIT,
            backoff_base: Duration::from_millis(100),
            breaker_threshold: 1000,
            ..ClientOptions::default()
        };
        let client = Client::unix(GLUSTERD_SOCKET, options).unwrap();
        assert_eq!(client.peer().to_string(), format!("unix:{GLUSTERD_SOCKET}"));

        // NULL of the CLI program answers PROC_UNAVAIL there (WIRE.md):
        // an RPC answer over the Unix socket. Retry while glusterd starts.
        wait_for_null(&client, 1_238_463, 2, GLUSTERD_SOCKET).await;

        let dump = call_gf_dump(&client)
            .await
            .unwrap_or_else(|e| panic!("GF-DUMP DUMP over {GLUSTERD_SOCKET} failed: {e}"));
        assert_dump_succeeded(&dump);
        // The CLI listener registers its own programs: the CLI program
        // (read-write here, where TCP has the read-only one) and the CLI
        // getspec handshake; not the peer and mgmt programs of TCP.
        assert!(
            dump.program(1_238_463, 2)
                .is_some_and(|p| p.progname == "GlusterD svc cli"),
            "{dump:?}"
        );
        assert_programs_of_10_3(
            &dump,
            &[
                ("GF-DUMP", 123_451_501, 1),
                ("GlusterD svc cli", 1_238_463, 2),
                ("Gluster Handshake (CLI Getspec)", 14_398_633, 2),
            ],
        );
        client.close();
    });
}

/// glusterd's socket is live: our listener refuses to replace it, and
/// glusterd still answers on it afterwards.
pub fn listen_unix_never_takes_glusterds_live_socket() {
    wait_for_glusterd_socket();
    block_on(async {
        let err = peerwire::listen_unix(
            Path::new(GLUSTERD_SOCKET),
            &peerwire::ListenOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::UnixInUse {
                    holder: peerwire::UnixHolder::LiveServer,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(GLUSTERD_SOCKET), "{err}");
        assert!(
            !Path::new(&format!("{GLUSTERD_SOCKET}.lock")).exists(),
            "the lock file was left behind"
        );
        let client = Client::unix(GLUSTERD_SOCKET, ClientOptions::default()).unwrap();
        let dump = call_gf_dump(&client)
            .await
            .unwrap_or_else(|e| panic!("glusterd stopped answering on its socket: {e}"));
        assert_eq!(dump.op_ret, 0, "{dump:?}");
        client.close();
    });
}

pub fn peerd_gluster_dump_over_glusterds_unix_socket() {
    wait_for_glusterd_socket();
    let address = format!("unix:{GLUSTERD_SOCKET}");
    let out = peerd_gluster_dump_until_ready(&[&address]);
    assert_peerd_printed(
        &out,
        &[
            &format!("GF-DUMP of {address}: op_ret 0"),
            "\"GlusterD svc cli\" 1238463 v2",
            PEERD_GF_DUMP_LINE,
        ],
    );
}
