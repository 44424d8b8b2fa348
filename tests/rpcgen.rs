//! Interoperability with C nobody here wrote: a server and a client that
//! `rpcgen -M` generates from `tests/rpcgen/pwtest.x`, with the small
//! hand-written mains beside it, on libtirpc. peerwire's client calls the
//! C server and the C client calls peerwire's server, over IPv4
//! (127.0.0.1) and IPv6 (::1) on loopback, with no rpcbind: the C server
//! listens on an ephemeral port made by `svc_vc_create` and registers
//! with a null netconfig; the C client is given the port.
//!
//! The trials cover what real peers do and peerwire must take: records in
//! many fragments both ways (libtirpc cuts a record into fragments of its
//! send buffer size less 4; 100-byte buffers and the 64 KiB default are
//! both tried), empty last fragments (libtirpc writes one when a record
//! fills its buffer exactly), the source address `svc_getcaller` sees,
//! calls pipelined on one connection to a server that answers one at a
//! time, and AUTH_SYS credentials both ways. `tests/rpcgen/tap.rs` relays
//! a connection and records how its records were cut, so a trial can
//! assert the fragments it is named for.
//!
//! # How it runs
//!
//! This binary has its own `main` (`harness = false` in Cargo.toml): it
//! builds the two C programs once, with gcc, into a directory of its own
//! under the temporary directory (removed at the end), before any trial
//! runs. Each trial starts its own C server and kills it when it ends,
//! also when it panics (a drop guard); a C client is killed if its trial
//! gives up on it.
//!
//! # When it cannot run
//!
//! rpcgen (Debian package `rpcsvc-proto`), gcc, or libtirpc's headers
//! (`libtirpc-dev`) missing, or no IPv6 on loopback: with
//! `PEERWIRE_REQUIRE_INTEROP=1` (CI sets it) the binary prints why and
//! exits 1; otherwise it prints a loud banner and reports the trials that
//! need them as ignored, with the reason. A C program that fails to build
//! when everything is there is a failure, never a skip.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use libtest_mimic::Arguments;
use peerwire::proto::AuthSys;
use peerwire::proto::xdr::{XdrReader, XdrWriter};

mod support;

#[path = "rpcgen/c_client.rs"]
mod c_client;
#[path = "rpcgen/c_server.rs"]
mod c_server;
#[path = "rpcgen/tap.rs"]
mod tap;

/// Turns "cannot build or run the C programs" from a skip into a failure.
const REQUIRE_ENV: &str = "PEERWIRE_REQUIRE_INTEROP";

/// pwtest.x's program and procedures.
const PROG: u32 = 0x2000_0777;
const VERS: u32 = 1;
const ECHO: u32 = 1;
const CALLER: u32 = 2;
const CREDS: u32 = 3;

/// AUTH_SYS's flavor number (RFC 5531 appendix A).
const AUTH_SYS: u32 = 1;

/// The bound on any one C client run and on a trial's peerwire calls:
/// only catches hangs.
const GENEROUS: Duration = Duration::from_secs(60);

/// The programs `main` built.
static PROGRAMS: OnceLock<Programs> = OnceLock::new();

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
    ];
    let always: Vec<(&'static str, fn())> =
        vec![("tap_parses_record_marking", tap::tap_parses_record_marking)];

    // Listing (as `cargo nextest` does) or a filter that selects none of
    // the C trials builds nothing.
    let wanted = !args.list && v4.iter().chain(&v6).any(|(name, _)| selected(&args, name));
    let mut build = None;
    let (mut skip_v4, mut skip_v6) = (None, None);
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
        for reason in reasons(&skip_v4, &skip_v6) {
            if required() {
                eprintln!(
                    "rpcgen interop tests cannot run: {reason}\n\
                     {REQUIRE_ENV}=1 is set, so this is a failure, not a skip."
                );
                // `exit` skips destructors: remove the build first.
                drop(build);
                std::process::exit(1);
            }
            print_skip_banner(reason);
        }
    }

    let mut trials = support::trials(always, None);
    trials.extend(support::trials(v4, skip_v4.as_deref()));
    trials.extend(support::trials(v6, skip_v6.as_deref()));
    let conclusion = libtest_mimic::run(&args, trials);
    // Removes the build directory; `exit` below would skip destructors.
    drop(build);
    for reason in reasons(&skip_v4, &skip_v6) {
        // Once more after the summary, where nobody can miss it.
        print_skip_banner(reason);
    }
    conclusion.exit()
}

/// The reasons to skip, each once.
fn reasons<'a>(v4: &'a Option<String>, v6: &'a Option<String>) -> Vec<&'a String> {
    let mut reasons: Vec<&String> = v4.iter().chain(v6).collect();
    reasons.dedup();
    reasons
}

fn required() -> bool {
    std::env::var_os(REQUIRE_ENV).is_some_and(|v| v == "1")
}

fn print_skip_banner(reason: &str) {
    let rule = "!".repeat(78);
    eprintln!(
        "{rule}\nrpcgen interop tests skipped: {reason} \
         (set {REQUIRE_ENV}=1 to make this fatal)\n{rule}"
    );
}

/// Whether libtest's filter and `--skip` select `name`.
fn selected(args: &Arguments, name: &str) -> bool {
    let matches = |pattern: &str| {
        if args.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    };
    args.filter.as_deref().is_none_or(matches) && !args.skip.iter().any(|s| matches(s))
}

// ───────────────────────────── the C programs ─────────────────────────────

/// Why the C programs are not there.
enum Unavailable {
    /// A tool or library is missing: a skip, unless required.
    Missing(String),
    /// Everything was there and the build failed: always a failure.
    Broken(String),
}

/// The built programs' paths.
struct Programs {
    server: PathBuf,
    client: PathBuf,
}

/// The build directory; dropping it removes it.
struct Build {
    dir: PathBuf,
}

impl Drop for Build {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// libtirpc's headers, where Debian's `libtirpc-dev` puts them.
const TIRPC_INCLUDE: &str = "/usr/include/tirpc";
/// The C library's headers (`libc6-dev`), which gcc alone lacks.
const LIBC_HEADER: &str = "/usr/include/stdio.h";

impl Build {
    /// Generates the C from pwtest.x and builds the server and the client.
    fn make() -> Result<Build, Unavailable> {
        // Say everything that is missing at once.
        let rpcgen = find_program("rpcgen");
        let gcc = find_program("gcc");
        let header = Path::new(TIRPC_INCLUDE).join("rpc/rpc.h");
        let mut missing = Vec::new();
        if rpcgen.is_none() {
            missing.push("rpcgen (Debian package rpcsvc-proto)".to_owned());
        }
        if gcc.is_none() {
            missing.push("gcc (Debian packages gcc and libc6-dev)".to_owned());
        }
        if !header.exists() {
            missing.push(format!(
                "{} (Debian package libtirpc-dev)",
                header.display()
            ));
        }
        let (Some(rpcgen), Some(gcc), true) = (rpcgen, gcc, missing.is_empty()) else {
            return Err(Unavailable::Missing(format!(
                "missing {}",
                missing.join(", ")
            )));
        };

        // A directory of our own: the pid and a random part, made
        // atomically (create_dir fails if it exists).
        let dir = std::env::temp_dir().join(format!(
            "peerwire-rpcgen-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        fs::create_dir(&dir)
            .map_err(|e| Unavailable::Broken(format!("creating {}: {e}", dir.display())))?;
        let build = Build { dir };
        let dir = &build.dir;
        let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rpcgen");
        let broken = |e: String| Unavailable::Broken(e);

        // rpcgen names the header it includes after its input file, so it
        // runs on a copy in the build directory.
        fs::copy(sources.join("pwtest.x"), dir.join("pwtest.x"))
            .map_err(|e| broken(format!("copying pwtest.x: {e}")))?;
        for (flag, output) in [
            ("-h", "pwtest.h"),
            ("-c", "pwtest_xdr.c"),
            ("-l", "pwtest_clnt.c"),
            ("-m", "pwtest_svc.c"),
        ] {
            run(Command::new(&rpcgen)
                .current_dir(dir)
                .args(["-M", flag, "pwtest.x", "-o", output]))
            .map_err(broken)?;
        }

        let include = [format!("-I{}", dir.display()), format!("-I{TIRPC_INCLUDE}")];
        // Our own C: every warning is an error.
        let ours = ["-Wall", "-Wextra", "-Werror"];
        // rpcgen's: -Wall as errors too, except the `register int32_t *buf`
        // it declares, unused, in every XDR routine. (-Wextra would add
        // the function casts its stubs make for xdr_void.)
        let generated = ["-Wall", "-Werror", "-Wno-unused-variable"];
        let compile = |source: &Path, flags: &[&str]| -> Result<PathBuf, Unavailable> {
            let stem = source.file_stem().unwrap().to_string_lossy().into_owned();
            let object = dir.join(format!("{stem}.o"));
            run(Command::new(&gcc)
                .args(flags)
                .args(&include)
                .arg("-c")
                .arg(source)
                .arg("-o")
                .arg(&object))
            .map_err(broken)?;
            Ok(object)
        };
        let server_main = compile(&sources.join("server.c"), &ours)?;
        let client_main = compile(&sources.join("client.c"), &ours)?;
        let xdr = compile(&dir.join("pwtest_xdr.c"), &generated)?;
        let svc = compile(&dir.join("pwtest_svc.c"), &generated)?;
        let clnt = compile(&dir.join("pwtest_clnt.c"), &generated)?;
        let link = |output: &str, objects: &[&PathBuf]| -> Result<PathBuf, Unavailable> {
            let program = dir.join(output);
            run(Command::new(&gcc)
                .args(objects)
                .arg("-o")
                .arg(&program)
                .arg("-ltirpc"))
            .map_err(broken)?;
            Ok(program)
        };
        let server = link("server", &[&server_main, &svc, &xdr])?;
        let client = link("client", &[&client_main, &clnt, &xdr])?;
        let _ = PROGRAMS.set(Programs { server, client });
        Ok(build)
    }
}

/// Runs a build step; its output becomes the error when it fails or warns.
fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.trim().is_empty() {
        return Err(format!(
            "{cmd:?}: {}\n{}{stderr}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(())
}

/// `name` on `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn programs() -> &'static Programs {
    PROGRAMS.get().expect("main builds the C programs first")
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

// ───────────────────────────── the C server ─────────────────────────────

/// A running C server; dropping it kills it.
struct CServer {
    child: Child,
    addr: SocketAddr,
}

impl CServer {
    /// Starts the C server on `ip`'s loopback with svc_vc_create's send and
    /// receive buffer sizes (0: libtirpc's default, 64 KiB), and waits for
    /// the port it prints.
    fn start(ip: Ip, sendsz: u32, recvsz: u32) -> CServer {
        let mut cmd = Command::new(&programs().server);
        cmd.arg(ip.loopback().to_string())
            .arg(sendsz.to_string())
            .arg(recvsz.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        support::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("starting the C server");
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        // The guard owns the child from here: a panic below still kills it.
        let mut server = CServer {
            child,
            addr: ip.any_port(),
        };
        read.expect("reading the C server's port");
        let port: u16 = line
            .strip_prefix("port ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "the C server printed {line:?} instead of its port (exit status {:?})",
                    server.child.try_wait()
                )
            });
        server.addr.set_port(port);
        server
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for CServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ───────────────────────────── the C client ─────────────────────────────

/// What a C client run printed.
struct Output {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "C client {}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

impl Output {
    /// The line that starts with `prefix` and a space, without them.
    #[track_caller]
    fn line(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {prefix:?} line: {self}"))
    }
}

/// Runs the C client against `server`, bound to `ip`'s C source, with a
/// send buffer of `sendsz` (0: libtirpc's default), for the operation
/// `op`. Killed if it outlives [`GENEROUS`] (or the trial's future is
/// dropped).
async fn run_c_client(ip: Ip, server: SocketAddr, sendsz: u32, op: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(&programs().client);
    cmd.arg(server.ip().to_string())
        .arg(server.port().to_string())
        .arg(ip.c_source().to_string())
        .arg(sendsz.to_string())
        .args(op)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(GENEROUS, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("the C client ran over {GENEROUS:?}: {op:?}"))
        .expect("running the C client");
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
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

/// peerwire's log lines on this thread (debug and up): on a current-thread
/// runtime that is every task of the trial, so a failure can show why
/// peerwire closed a connection.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures until the guard is dropped.
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
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
