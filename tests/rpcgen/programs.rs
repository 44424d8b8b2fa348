//! The C programs: building the server and the client from pwtest.x with
//! rpcgen and gcc, and running them.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use super::{GENEROUS, Ip, support};

/// The programs `main` built.
static PROGRAMS: OnceLock<Programs> = OnceLock::new();

/// Why the C programs are not there.
pub enum Unavailable {
    /// A tool or library is missing: a skip, unless required.
    Missing(String),
    /// Everything was there and the build failed: always a failure.
    Broken(String),
}

/// The built programs' paths, and rpcinfo's.
struct Programs {
    server: PathBuf,
    client: PathBuf,
    rpcinfo: Option<PathBuf>,
}

/// The build directory; dropping it removes it.
pub struct Build {
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
    pub fn make() -> Result<Build, Unavailable> {
        // Say everything that is missing at once.
        let rpcgen = find_program("rpcgen");
        let gcc = find_program("gcc");
        let header = Path::new(TIRPC_INCLUDE).join("rpc/rpc.h");
        let mut missing = Vec::new();
        if rpcgen.is_none() {
            missing.push("rpcgen (Debian package rpcsvc-proto)".to_owned());
        }
        if gcc.is_none() {
            missing.push("gcc (Debian package gcc)".to_owned());
        }
        if !Path::new(LIBC_HEADER).exists() {
            missing.push(format!("{LIBC_HEADER} (Debian package libc6-dev)"));
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
        let rpcinfo = find_program("rpcinfo");
        let _ = PROGRAMS.set(Programs {
            server,
            client,
            rpcinfo,
        });
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

/// Why the trials that run rpcinfo cannot, once the C programs are built.
pub fn rpcinfo_missing() -> Option<String> {
    let programs = PROGRAMS.get()?;
    programs
        .rpcinfo
        .is_none()
        .then(|| "missing rpcinfo (Debian package rpcbind)".to_owned())
}

fn programs() -> &'static Programs {
    PROGRAMS.get().expect("main builds the C programs first")
}

// ───────────────────────────── the C server ─────────────────────────────

/// A running C server; dropping it kills it.
pub struct CServer {
    child: Child,
    addr: SocketAddr,
}

impl CServer {
    /// Starts the C server on `ip`'s loopback with svc_vc_create's send and
    /// receive buffer sizes (0: libtirpc's default, 64 KiB), and waits for
    /// the port it prints.
    pub fn start(ip: Ip, sendsz: u32, recvsz: u32) -> CServer {
        let mut cmd = Command::new(&programs().server);
        cmd.arg(ip.loopback().to_string())
            .arg(sendsz.to_string())
            .arg(recvsz.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        support::harness::die_with_parent(&mut cmd);
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

    pub fn addr(&self) -> SocketAddr {
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

/// What a run of the C client or of rpcinfo printed.
pub struct Output {
    /// Which program it was, for messages.
    pub program: &'static str,
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}\n--- stdout\n{}--- stderr\n{}",
            self.program, self.status, self.stdout, self.stderr
        )
    }
}

impl Output {
    /// The line that starts with `prefix` and a space, without them.
    #[track_caller]
    pub fn line(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {prefix:?} line: {self}"))
    }

    /// Every line that starts with `prefix` and a space, without them.
    pub fn lines<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> {
        self.stdout
            .lines()
            .filter_map(move |l| l.strip_prefix(prefix)?.strip_prefix(' '))
    }
}

/// Runs the C client against `server`, bound to `ip`'s C source, with a
/// send buffer of `sendsz` (0: libtirpc's default), for the operation
/// `op`. Killed if it outlives [`GENEROUS`] (or the trial's future is
/// dropped).
pub async fn run_c_client(ip: Ip, server: SocketAddr, sendsz: u32, op: &[&str]) -> Output {
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
        program: "C client",
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ─────────────────────────────── rpcinfo ───────────────────────────────

/// Runs libtirpc's `rpcinfo -a UADDR -T tcp|tcp6 ARGS...` against `server`:
/// the server's universal address (RFC 5665: the host, then the port's
/// two bytes), so no rpcbind is asked. (`rpcinfo -n PORT -t HOST` still
/// asks rpcbind on port 111 first.) Killed if it outlives [`GENEROUS`].
pub async fn run_rpcinfo(server: SocketAddr, args: &[&str]) -> Output {
    let rpcinfo = programs().rpcinfo.as_ref().expect("main checked rpcinfo");
    let port = server.port();
    let uaddr = format!("{}.{}.{}", server.ip(), port >> 8, port & 0xff);
    let transport = if server.is_ipv4() { "tcp" } else { "tcp6" };
    let mut cmd = tokio::process::Command::new(rpcinfo);
    cmd.args(["-a", &uaddr, "-T", transport])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(GENEROUS, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("rpcinfo ran over {GENEROUS:?}: {args:?}"))
        .expect("running rpcinfo");
    Output {
        program: "rpcinfo",
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
