//! glusterd with management TLS, and the trials against it.
//!
//! # The second glusterd
//!
//! A glusterd turns on TLS for its management port when the empty file
//! `/var/lib/glusterd/secure-access` exists at start, and then reads its
//! certificate, key and CA list from `/usr/lib/ssl/glusterfs.{pem,key,ca}`
//! (Debian's build; see shared/WIRE.md). The plain glusterd of the other
//! trials must not see either, so the TLS one runs in a mount namespace of
//! its own (and a PID namespace, as every daemon here), made by `unshare
//! --mount` from inside the interop namespace. Its start-up script mounts:
//!
//! - `TLS_DIR/ssl` over `/usr/lib/ssl`: the three files, made with rcgen in
//!   [`TlsMaterial::create`];
//! - a tmpfs over `/var/lib/glusterd`, with `secure-access` in it;
//! - `TLS_DIR/etc` over `/etc/glusterfs`: a `glusterd.vol` whose only
//!   change from Debian's is the port, 24017 (the plain glusterd has 24007);
//! - `TLS_DIR/log` over `/var/log/glusterfs`, so its log stays readable here;
//! - a tmpfs over `/run` (and `/var/run`), so its `glusterd.socket` does not
//!   replace the plain glusterd's.
//!
//! It shares the interop network namespace: the trials reach it at
//! `127.0.0.1:24017` from the same loopback sources as the plain one. Both
//! glusterds start together, so their warm-ups (1.5–2.7 s each) overlap
//! rather than add up.
//!
//! # Certificates
//!
//! One throwaway CA signs glusterd's certificate (CN `glusterd-tls` and no
//! SAN at all, as gluster certificates usually are) and the client's (CN
//! `peerwire-client`, IP SAN 127.0.0.2, the source the trials bind). A
//! second CA signs a client certificate glusterd must refuse.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use peerwire::programs::gf_dump::{self, GfDumpRequest, GfDumpResponse};
use peerwire::proto::xdr::{from_bytes, to_bytes};
use peerwire::proto::{AcceptStatus, CallHeader, Message, MessageBody, ReplyBody, record_header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::pki::{self, Authority, LeafFiles, LeafSpec};
use super::{Daemon, READY_LIMIT, SECOND_V4, TOOLS, assert_lists_glusterd_peer, block_on, tail};

/// Where the TLS glusterd listens (in the interop network namespace).
pub const GLUSTERD_TLS: &str = "127.0.0.1:24017";

/// Its files, on the interop namespace's private /run.
const TLS_DIR: &str = "/run/peerwire-interop/glusterd-tls";

/// glusterd's certificate CN.
pub const GLUSTERD_CN: &str = "glusterd-tls";
/// The trials' client certificate CN.
pub const CLIENT_CN: &str = "peerwire-client";

/// The certificates, made once in `main` before anything starts.
static MATERIAL: OnceLock<TlsMaterial> = OnceLock::new();

/// The PKI of the TLS trials, in memory and on disk.
pub struct TlsMaterial {
    /// The CA glusterd trusts.
    pub ca_file: PathBuf,
    /// A client certificate from that CA.
    pub client_files: LeafFiles,
    /// A client certificate from a CA glusterd does not know.
    pub foreign_files: LeafFiles,
}

impl TlsMaterial {
    /// Makes the CAs and certificates and writes every file the TLS
    /// glusterd and the trials read.
    fn create() -> Result<TlsMaterial, String> {
        let dir = Path::new(TLS_DIR);
        for sub in ["ssl", "etc", "log", "client"] {
            fs::create_dir_all(dir.join(sub))
                .map_err(|e| format!("creating {}/{sub}: {e}", dir.display()))?;
        }
        let io = |what: &str, e: std::io::Error| format!("writing {what} in {TLS_DIR}: {e}");

        let ca = Authority::new("peerwire interop CA");
        let glusterd = ca.issue_spec(&LeafSpec {
            cn: Some(GLUSTERD_CN.to_owned()),
            ..Default::default()
        });
        let source = SECOND_V4.parse().expect("an IP");
        let client = ca.issue(CLIENT_CN, &[source]);
        let other_ca = Authority::new("peerwire interop other CA");
        let foreign = other_ca.issue(CLIENT_CN, &[source]);

        // What glusterd reads from /usr/lib/ssl.
        let ssl = dir.join("ssl");
        fs::write(ssl.join("glusterfs.pem"), &glusterd.cert_pem).map_err(|e| io("pem", e))?;
        pki::write_private(&ssl.join("glusterfs.key"), &glusterd.key_pem)
            .map_err(|e| io("key", e))?;
        fs::write(ssl.join("glusterfs.ca"), ca.ca_pem()).map_err(|e| io("ca", e))?;
        fs::write(dir.join("etc/glusterd.vol"), VOLFILE).map_err(|e| io("glusterd.vol", e))?;

        let client_dir = dir.join("client");
        let ca_file = ca
            .write_ca(&client_dir.join("ca.pem"))
            .map_err(|e| io("ca.pem", e))?;
        let client_files = client
            .write(&client_dir, "client")
            .map_err(|e| io("client", e))?;
        let foreign_files = foreign
            .write(&client_dir, "foreign")
            .map_err(|e| io("foreign", e))?;
        Ok(TlsMaterial {
            ca_file,
            client_files,
            foreign_files,
        })
    }
}

/// The TLS trials' certificates.
pub fn material() -> &'static TlsMaterial {
    MATERIAL.get().expect("the TLS material is made in main")
}

/// Debian's glusterd.vol with the management port moved to 24017.
const VOLFILE: &str = "\
volume management
    type mgmt/glusterd
    option working-directory /var/lib/glusterd
    option transport-type socket
    option transport.socket.keepalive-time 10
    option transport.socket.keepalive-interval 2
    option transport.socket.read-fail-log off
    option transport.socket.listen-port 24017
    option ping-timeout 0
    option event-threads 1
end-volume
";

/// The directories the TLS glusterd's script mounts over must exist on
/// the host. /etc/glusterfs comes with glusterd; /usr/lib/ssl with
/// OpenSSL, whose library glusterd links. Missing ones are named.
pub fn check_mount_points() -> Result<(), String> {
    let missing: Vec<&str> = ["/usr/lib/ssl", "/etc/glusterfs"]
        .into_iter()
        .filter(|dir| !Path::new(dir).is_dir())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "missing directories {missing:?}: the TLS glusterd reads its certificates from \
             /usr/lib/ssl (Debian's build) and its glusterd.vol from /etc/glusterfs"
        ))
    }
}

/// Makes the certificates and starts the TLS glusterd; see the module docs.
/// Called in the interop namespace, while the process is single-threaded.
pub fn start_glusterd() -> Result<Daemon, String> {
    let material = TlsMaterial::create()?;
    let _ = MATERIAL.set(material);
    let tools = TOOLS.get().expect("tools are found first");
    let mut prelude = format!(
        "set -e\n\
         mount --bind {TLS_DIR}/ssl /usr/lib/ssl\n\
         mount --bind {TLS_DIR}/etc /etc/glusterfs\n\
         mount --bind {TLS_DIR}/log /var/log/glusterfs\n\
         mount -t tmpfs -o mode=0755 tmpfs /var/lib/glusterd\n\
         : > /var/lib/glusterd/secure-access\n\
         mount -t tmpfs -o mode=0755 tmpfs /run\n"
    );
    if fs::canonicalize("/var/run").is_ok_and(|p| p != Path::new("/run")) {
        prelude.push_str("mount -t tmpfs -o mode=0755 tmpfs /var/run\n");
    }
    let log_file = "--log-file=/var/log/glusterfs/glusterd.log";
    Daemon::start_in_own_mounts("glusterd-tls", &tools.glusterd, &["-N", log_file], &prelude)
}

/// The TLS glusterd's log file, as seen from the interop namespace.
pub fn glusterd_log() -> PathBuf {
    Path::new(TLS_DIR).join("log/glusterd.log")
}

/// The last `lines` of the TLS glusterd's log (empty if there is none).
pub fn glusterd_log_tail(lines: usize) -> String {
    tail(
        &fs::read_to_string(glusterd_log()).unwrap_or_default(),
        lines,
    )
}

// ─────────────────────────── openssl → TLS glusterd ───────────────────────────

/// What `openssl s_client` got for one GF-DUMP DUMP call.
struct SClient {
    /// The reply record's body, if a whole one came.
    reply: Option<Bytes>,
    /// Whether the server closed the connection (EOF on s_client's output).
    closed: bool,
    /// s_client's summary (`-brief`) and errors.
    stderr: String,
}

/// Sends one GF-DUMP DUMP call through `openssl s_client` (TLS 1.3 only,
/// the server's chain verified against our CA) with the client
/// certificate `cert`, and reads what comes back within `limit`.
async fn s_client_gf_dump(cert: Option<&LeafFiles>, limit: Duration) -> SClient {
    let tools = TOOLS.get().expect("tools are found first");
    let material = material();
    let mut command = tokio::process::Command::new(&tools.openssl);
    command
        .args(["s_client", "-connect", GLUSTERD_TLS, "-tls1_3", "-brief"])
        .args(["-verify_return_error", "-CAfile"])
        .arg(&material.ca_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(cert) = cert {
        command
            .arg("-cert")
            .arg(&cert.cert)
            .arg("-key")
            .arg(&cert.key);
    }
    let mut child = command.spawn().expect("openssl s_client starts");
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");

    let mut call = BytesMut::new();
    Message::call(
        0x5eed_0001,
        CallHeader::new(
            gf_dump::PROGRAM,
            gf_dump::VERSION,
            gf_dump::GF_DUMP_DUMP.procedure,
        ),
        to_bytes(&GfDumpRequest::default()),
    )
    .encode(&mut call);
    let mut record = record_header(call.len() as u32, true).to_vec();
    record.extend_from_slice(&call);
    // s_client may already have exited (a refused handshake): a failed
    // write shows in what it printed.
    let _ = stdin.write_all(&record).await;
    let _ = stdin.flush().await;

    let read_reply = async {
        let mut header = [0u8; 4];
        stdout.read_exact(&mut header).await.ok()?;
        let word = u32::from_be_bytes(header);
        let mut body = vec![0u8; (word & 0x7fff_ffff) as usize];
        stdout.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    };
    let (reply, closed) = match tokio::time::timeout(limit, read_reply).await {
        Ok(Some(reply)) => (Some(reply), false),
        Ok(None) => (None, true),
        Err(_) => (None, false),
    };
    let _ = child.start_kill();
    let _ = child.wait().await;
    drop(stdin);
    let mut text = String::new();
    let _ = stderr.read_to_string(&mut text).await;
    SClient {
        reply,
        closed,
        stderr: text,
    }
}

/// The programs a GF-DUMP DUMP reply lists.
fn decode_dump(reply: Bytes) -> GfDumpResponse {
    let message = Message::decode(reply).expect("an RPC message");
    let MessageBody::Reply {
        body:
            ReplyBody::Accepted {
                status: AcceptStatus::Success,
                ..
            },
        results,
    } = message.body
    else {
        panic!("not a successful reply: {message:?}");
    };
    assert_eq!(message.xid, 0x5eed_0001);
    from_bytes(&results).expect("a GF-DUMP DUMP reply")
}

/// The environment itself, before any peerwire TLS is involved: OpenSSL's
/// own client completes a TLS 1.3 handshake with the TLS glusterd (its
/// chain verified against our CA, our client certificate presented) and
/// gets the GF-DUMP DUMP answer through it. Without a client certificate,
/// or with one from another CA, glusterd hangs up without an answer.
pub fn openssl_s_client_speaks_gf_dump_to_the_tls_glusterd() {
    block_on(async {
        let material = material();
        // glusterd accepts before it is ready: retry until it answers.
        let start = Instant::now();
        let mut attempts = 0;
        let answered = loop {
            attempts += 1;
            let out = s_client_gf_dump(Some(&material.client_files), Duration::from_secs(5)).await;
            if out.reply.is_some() {
                break out;
            }
            assert!(
                start.elapsed() < READY_LIMIT,
                "the TLS glusterd did not answer within {READY_LIMIT:?}; s_client said:\n{}\n\
                 glusterd's log:\n{}",
                out.stderr,
                glusterd_log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        eprintln!(
            "openssl s_client got an answer (attempt {attempts}) after {:?}:\n{}",
            start.elapsed(),
            answered.stderr.trim()
        );
        assert!(
            answered.stderr.contains("Protocol version: TLSv1.3"),
            "{}",
            answered.stderr
        );
        assert!(
            answered.stderr.contains("Verification: OK"),
            "{}",
            answered.stderr
        );
        assert!(
            answered.stderr.contains(&format!("CN = {GLUSTERD_CN}")),
            "{}",
            answered.stderr
        );
        let reply = answered.reply.expect("checked above");
        assert_eq!(reply.len(), 392, "the same reply as in plain text");
        let dump = decode_dump(reply);
        assert_eq!((dump.op_ret, dump.op_errno), (0, 0), "{dump:?}");
        assert_lists_glusterd_peer(&dump);

        // The controls: glusterd requires a client certificate from its
        // CA. TLS 1.3 finishes the client's side of the handshake before
        // the server has judged its certificate, so the refusal comes
        // after: an `unknown_ca` alert for a stranger's certificate, and a
        // bare close (no alert) when there is none, which s_client reports
        // as an unexpected EOF or, when its read loop sees the close first,
        // as CONNECTION CLOSED BY SERVER (a race inside s_client).
        let cases: [(&str, Option<&LeafFiles>, &[&str]); 2] = [
            (
                "no client certificate",
                None,
                &["unexpected eof", "CONNECTION CLOSED BY SERVER"],
            ),
            (
                "a client certificate from another CA",
                Some(&material.foreign_files),
                &["alert unknown ca"],
            ),
        ];
        for (what, cert, says) in cases {
            let out = s_client_gf_dump(cert, Duration::from_secs(10)).await;
            eprintln!("with {what}: s_client said:\n{}", out.stderr.trim());
            assert!(
                out.reply.is_none(),
                "glusterd answered a client with {what}"
            );
            assert!(
                out.closed && says.iter().any(|s| out.stderr.contains(s)),
                "glusterd did not hang up on a client with {what} ({says:?}):\n{}",
                out.stderr
            );
        }
        let log = fs::read_to_string(glusterd_log()).unwrap_or_default();
        assert!(
            log.contains("SSL support for MGMT is ENABLED"),
            "{}",
            tail(&log, 20)
        );
    });
}
