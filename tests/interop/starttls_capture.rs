//! RPC-with-TLS (RFC 9289) on the wire: a capture with tshark on `lo` of
//! our client upgrading a connection to our server, dissected by
//! Wireshark's own RPC dissector, independent of peerwire's codec.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use peerwire::tls::{ClientTls, ServerCheck, ServerTls, TlsIdentity, TlsMode};
use peerwire::{CallContext, ClientOptions, Endpoint, ProcError, Server, ServerOptions};

use super::environment::find_program;
use super::support::pki::Authority;
use super::{LOG_DIR, NEEDS, PROG, SECOND_V4, block_on, client_with};

/// The capture file, on the interop namespace's private /run.
fn capture_file() -> PathBuf {
    Path::new(LOG_DIR).join("starttls.pcapng")
}

/// One RPC frame as tshark dissected it.
#[derive(Debug)]
struct RpcFrame {
    number: String,
    xid: String,
    /// 0 CALL, 1 REPLY.
    msgtyp: String,
    procedure: String,
    /// Every `rpc.auth.flavor` in the frame: credential then verifier for a
    /// call, the verifier for a reply.
    flavors: Vec<String>,
    replystat: String,
    state_accept: String,
    malformed: String,
}

/// Runs tshark over the capture with `proto` decoded on `port`.
fn dissect(tshark: &Path, port: u16, proto: &str, args: &[&str]) -> String {
    let out = Command::new(tshark)
        .arg("-r")
        .arg(capture_file())
        .args(["-d", &format!("tcp.port=={port},{proto}")])
        // Our program numbers are not Wireshark's: without this it shows
        // every message as "Continuation".
        .args(["-o", "rpc.dissect_unknown_programs:TRUE"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The client sends a NULL call with credential flavor 7 (AUTH_TLS), the
/// server answers MSG_ACCEPTED / SUCCESS with an AUTH_NONE verifier whose
/// body is `STARTTLS`, and the TLS handshake follows on the same
/// connection; Wireshark dissects both RPC messages without a malformed
/// mark. Skipped (loudly) without tshark, failed under
/// PEERWIRE_REQUIRE_INTEROP=1.
pub fn starttls_probe_and_reply_are_well_formed_rpc_in_a_capture() {
    let Some(tshark) = find_program("tshark") else {
        let reason = "tshark is not installed (Debian package tshark): the STARTTLS capture \
                      cannot be checked";
        assert!(!NEEDS.required(), "{reason}");
        NEEDS.print_skip_banner(reason);
        return;
    };
    // Certificates for the two ends, in memory.
    let ca = Authority::new("peerwire capture CA");
    let server_leaf = ca.issue("capture-server", &["127.0.0.1".parse().unwrap()]);
    let client_leaf = ca.issue("capture-client", &[SECOND_V4.parse().unwrap()]);
    let identity = |leaf: &super::support::pki::Leaf| {
        TlsIdentity::from_pem(
            leaf.cert_pem.as_bytes(),
            leaf.key_pem.as_bytes(),
            ca.ca_pem().as_bytes(),
        )
        .expect("the capture's certificates load")
    };
    let (server_identity, client_identity) = (identity(&server_leaf), identity(&client_leaf));

    block_on(async move {
        async fn service(_: CallContext, _: u32, _: Bytes) -> Result<Bytes, ProcError> {
            Ok(Bytes::new())
        }
        let server = Server::new(ServerOptions {
            tls: Some(ServerTls {
                identity: server_identity,
                mode: TlsMode::StartTls,
            }),
            ..ServerOptions::default()
        })
        .service(PROG, 1, service)
        .serve(&["127.0.0.1:0".parse::<Endpoint>().unwrap()])
        .expect("the STARTTLS server listens");
        let addr: SocketAddr = server.local_addrs()[0];
        let port = addr.port();

        // Start capturing, and wait until dumpcap says it is: "Capturing
        // on" comes before the capture runs, "Capture started" once it
        // does.
        let file = capture_file();
        let _ = std::fs::remove_file(&file);
        let mut capture = tokio::process::Command::new(&tshark)
            .args(["-i", "lo", "-f", &format!("tcp port {port}"), "-w"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("tshark starts");
        let mut stderr = capture.stderr.take().expect("piped");
        let mut said = Vec::new();
        let start = Instant::now();
        loop {
            use tokio::io::AsyncReadExt;
            let mut chunk = [0u8; 512];
            let n = tokio::time::timeout(Duration::from_secs(10), stderr.read(&mut chunk))
                .await
                .expect("tshark says something within 10 s")
                .expect("reading tshark's stderr");
            said.extend_from_slice(&chunk[..n]);
            if String::from_utf8_lossy(&said).contains("Capture started") {
                break;
            }
            assert!(
                n > 0 && start.elapsed() < Duration::from_secs(10),
                "tshark did not start capturing: {}",
                String::from_utf8_lossy(&said)
            );
        }

        tokio::time::sleep(Duration::from_millis(200)).await;
        let client = client_with(
            SECOND_V4,
            &addr.to_string(),
            ClientOptions {
                tls: Some(ClientTls {
                    identity: client_identity,
                    mode: TlsMode::StartTls,
                    server: ServerCheck::DialledIp,
                }),
                deadline: Duration::from_secs(10),
                breaker_threshold: 1,
                ..ClientOptions::default()
            },
        );
        client
            .null(PROG, 1)
            .await
            .unwrap_or_else(|e| panic!("NULL over STARTTLS failed: {e}"));
        let peer = client.tls_peer().expect("the link runs TLS");
        assert_eq!(peer.cn.as_deref(), Some("capture-server"));
        client.close();
        server.shutdown().await;
        // Let the last segments reach dumpcap, then stop it (SIGINT: it
        // finishes the file).
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(pid) = capture.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGINT,
            );
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), capture.wait()).await;
        let _ = capture.start_kill();

        let tshark = tshark.clone();
        tokio::task::spawn_blocking(move || check_capture(&tshark, port))
            .await
            .expect("the capture check");
    });
}

fn check_capture(tshark: &Path, port: u16) {
    let fields = dissect(
        tshark,
        port,
        "rpc",
        &[
            "-Y",
            "rpc",
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
            "-e",
            "frame.number",
            "-e",
            "rpc.xid",
            "-e",
            "rpc.msgtyp",
            "-e",
            "rpc.procedure",
            "-e",
            "rpc.auth.flavor",
            "-e",
            "rpc.replystat",
            "-e",
            "rpc.state_accept",
            "-e",
            "_ws.malformed",
        ],
    );
    eprintln!("tshark, RPC frames on port {port}:\n{fields}");
    if fields.trim().is_empty() {
        let all = dissect(tshark, port, "rpc", &[]);
        panic!("no RPC frame in the capture; all frames:\n{all}");
    }
    let frames: Vec<RpcFrame> = fields
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let at = |i: usize| f.get(i).copied().unwrap_or("").to_owned();
            RpcFrame {
                number: at(0),
                xid: at(1),
                msgtyp: at(2),
                // A reply repeats its call's procedure: the first is the
                // message's own.
                procedure: at(3).split(',').next().unwrap_or("").to_owned(),
                flavors: at(4)
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                replystat: at(5),
                state_accept: at(6),
                malformed: at(7),
            }
        })
        .collect();
    // The probe is the connection's first RPC message.
    let call = frames
        .first()
        .unwrap_or_else(|| panic!("no RPC frame in the capture:\n{fields}"));
    assert_eq!(
        call.msgtyp, "0",
        "the first RPC message is not a CALL: {call:?}"
    );
    assert_eq!(call.procedure, "0", "the probe is not NULL: {call:?}");
    assert_eq!(
        call.flavors.first().map(String::as_str),
        Some("7"),
        "the probe's credential flavor is not AUTH_TLS (7): {call:?}"
    );
    assert_eq!(
        call.flavors.get(1).map(String::as_str),
        Some("0"),
        "the probe's verifier is not AUTH_NONE: {call:?}"
    );
    assert!(
        call.malformed.is_empty(),
        "the probe is malformed: {call:?}"
    );
    let reply = frames
        .iter()
        .find(|f| f.msgtyp == "1" && f.xid == call.xid)
        .unwrap_or_else(|| panic!("no reply to the probe (xid {}):\n{fields}", call.xid));
    assert_eq!(reply.replystat, "0", "not MSG_ACCEPTED: {reply:?}");
    assert_eq!(reply.state_accept, "0", "not SUCCESS: {reply:?}");
    assert_eq!(
        reply.flavors,
        ["0"],
        "the reply's verifier is not AUTH_NONE: {reply:?}"
    );
    assert!(
        reply.malformed.is_empty(),
        "the reply is malformed: {reply:?}"
    );

    // The verifier's body, in Wireshark's full dissection of the reply.
    let detail = dissect(
        tshark,
        port,
        "rpc",
        &[
            "-Y",
            &format!("frame.number == {}", reply.number),
            "-V",
            "-x",
        ],
    );
    let rpc = detail
        .find("Remote Procedure Call")
        .map(|at| &detail[at..])
        .unwrap_or_else(|| panic!("no RPC in frame {}:\n{detail}", reply.number));
    eprintln!("the reply, dissected:\n{rpc}");
    // Wireshark shows the verifier's body as hex: "STARTTLS" is
    // 53 54 41 52 54 54 4c 53.
    let verifier = rpc
        .find("Verifier")
        .map(|at| &rpc[at..])
        .unwrap_or_else(|| panic!("no verifier in the reply:\n{rpc}"));
    let body = verifier
        .lines()
        .find_map(|l| l.trim().strip_prefix("opaque data: "))
        .unwrap_or_else(|| panic!("the verifier has no body:\n{verifier}"));
    let bytes: Vec<u8> = (0..body.len() / 2)
        .map(|i| u8::from_str_radix(&body[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        "STARTTLS",
        "the verifier body is not STARTTLS:\n{verifier}"
    );
    assert!(
        verifier.contains("Flavor: AUTH_NULL (0)") && verifier.contains("Length: 8"),
        "{verifier}"
    );
    assert!(!rpc.contains("Malformed"), "{rpc}");

    // After the reply, the same TCP connection carries a TLS handshake.
    let tls = dissect(
        tshark,
        port,
        "tls",
        &[
            "-Y",
            "tls.handshake.type == 1",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "tcp.stream",
        ],
    );
    let hello = tls
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no TLS ClientHello after the probe:\n{tls}"));
    let hello_frame: u64 = hello.split('\t').next().unwrap().parse().unwrap();
    assert!(
        hello_frame > reply.number.parse::<u64>().unwrap(),
        "the ClientHello ({hello}) does not follow the STARTTLS reply (frame {})",
        reply.number
    );
}
