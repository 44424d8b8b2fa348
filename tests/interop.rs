//! Interoperability with real programs, no mocks: `rpcinfo` pings a
//! peerwire server, and a peerwire client talks to `rpcbind` (portmapper
//! v2) and to `glusterd` (GF-DUMP, over TCP and over its Unix socket
//! `/run/glusterd.socket`).
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
use std::fs::{self, File};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
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

#[path = "interop/tls.rs"]
mod tls;

#[cfg(feature = "tls")]
#[path = "interop/tls_client.rs"]
mod tls_client;

#[cfg(feature = "tls")]
#[path = "interop/starttls_capture.rs"]
mod starttls_capture;

use libtest_mimic::Arguments;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::geteuid;
use peerwire::programs::gf_dump::{
    self, GfCommonResponse, GfDumpRequest, GfDumpResponse, GfDumpV1Client, GfProgram,
};
use peerwire::programs::portmap::{self, Mapping, PmapV2Client};
use peerwire::proto::AuthStat;
use peerwire::{
    CallContext, CallStatus, Client, ClientOptions, ConnectionState, Endpoint, Error, ProcError,
    RunningServer, ScopedIp, Server, Sources,
};

/// Turns "cannot run the real programs" from a skip into a failure.
const REQUIRE_ENV: &str = "PEERWIRE_REQUIRE_INTEROP";

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
            rpcinfo_pings_peerwire_server_over_ipv4,
        ),
        (
            "rpcinfo_pings_peerwire_server_over_ipv6",
            rpcinfo_pings_peerwire_server_over_ipv6,
        ),
        (
            "rpcinfo_sees_prog_mismatch_from_peerwire_server",
            rpcinfo_sees_prog_mismatch_from_peerwire_server,
        ),
        (
            "client_calls_rpcbind_null_and_dump_over_ipv4",
            client_calls_rpcbind_null_and_dump_over_ipv4,
        ),
        (
            "client_calls_rpcbind_null_and_dump_over_ipv6",
            client_calls_rpcbind_null_and_dump_over_ipv6,
        ),
        (
            "client_calls_glusterd_gf_dump_and_ping",
            client_calls_glusterd_gf_dump_and_ping,
        ),
        (
            "peerd_pings_rpcbind_from_a_chosen_source",
            peerd_pings_rpcbind_from_a_chosen_source,
        ),
        (
            "peerd_ping_to_a_closed_port_exits_1",
            peerd_ping_to_a_closed_port_exits_1,
        ),
        (
            "peerd_gluster_dump_lists_glusterds_programs",
            peerd_gluster_dump_lists_glusterds_programs,
        ),
        (
            "openssl_s_client_speaks_gf_dump_to_the_tls_glusterd",
            tls::openssl_s_client_speaks_gf_dump_to_the_tls_glusterd,
        ),
        (
            "client_calls_glusterd_gf_dump_over_its_unix_socket",
            client_calls_glusterd_gf_dump_over_its_unix_socket,
        ),
        (
            "listen_unix_never_takes_glusterds_live_socket",
            listen_unix_never_takes_glusterds_live_socket,
        ),
        (
            "peerd_gluster_dump_over_glusterds_unix_socket",
            peerd_gluster_dump_over_glusterds_unix_socket,
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
            Err(reason) if required() => {
                eprintln!(
                    "interop tests cannot run: {reason}\n\
                     {REQUIRE_ENV}=1 is set, so this is a failure, not a skip."
                );
                std::process::exit(1);
            }
            Err(reason) => {
                print_skip_banner(&reason);
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
        print_skip_banner(reason);
    }
    conclusion.exit()
}

fn required() -> bool {
    std::env::var_os(REQUIRE_ENV).is_some_and(|v| v == "1")
}

fn print_skip_banner(reason: &str) {
    let rule = "!".repeat(78);
    eprintln!(
        "{rule}\ninterop tests skipped: {reason} \
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

// ───────────────────────────── the environment ─────────────────────────────

/// The programs the trials drive, by absolute path.
#[derive(Debug)]
struct Tools {
    rpcbind: PathBuf,
    rpcinfo: PathBuf,
    glusterd: PathBuf,
    unshare: PathBuf,
    ip: PathBuf,
    sh: PathBuf,
    /// `openssl s_client`, which checks the TLS glusterd on its own.
    openssl: PathBuf,
}

impl Tools {
    /// Finds every program, or says which are missing and what provides
    /// them (Debian packages).
    fn find() -> Result<Tools, String> {
        let mut missing = Vec::new();
        let mut find = |name: &str, package: &str| {
            find_program(name).unwrap_or_else(|| {
                missing.push(format!("{name} (Debian package {package})"));
                PathBuf::new()
            })
        };
        let tools = Tools {
            rpcbind: find("rpcbind", "rpcbind"),
            rpcinfo: find("rpcinfo", "rpcbind"),
            glusterd: find("glusterd", "glusterfs-server"),
            unshare: find("unshare", "util-linux"),
            ip: find("ip", "iproute2"),
            sh: find("sh", "dash"),
            openssl: find("openssl", "openssl"),
        };
        if missing.is_empty() {
            Ok(tools)
        } else {
            Err(format!("missing programs: {}", missing.join(", ")))
        }
    }
}

/// `name` on `PATH`, or in the sbin directories a non-root `PATH` lacks.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The namespace and the daemons in it. Dropping it stops the daemons.
struct Environment {
    // Dropped in this order: the glusterds first.
    glusterd_tls: Daemon,
    glusterd: Daemon,
    rpcbind: Daemon,
}

impl Environment {
    /// Checks the preconditions, enters the private namespaces and starts
    /// the daemons. Must run before any thread is started.
    fn set_up() -> Result<Environment, String> {
        if let Some(n) = thread_count().filter(|&n| n > 1) {
            return Err(format!(
                "{n} threads are running; the namespaces must be entered while the process \
                 is single-threaded (unshare(CLONE_NEWNS) refuses a shared filesystem context)"
            ));
        }
        // Say everything that is missing at once.
        let mut problems = Vec::new();
        let euid = geteuid();
        let uid_map = fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        if !euid.is_root() {
            problems.push(format!(
                "not running as root (euid {euid}): the tests start rpcbind, which must run \
                 as real root in private network and mount namespaces (it switches to the \
                 user _rpc after binding)"
            ));
        } else if uid_map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"] {
            problems.push(format!(
                "running as root of a user namespace (uid_map {:?}), not as real root: \
                 rpcbind's switch to the user _rpc fails there",
                uid_map.trim()
            ));
        }
        match Tools::find() {
            Ok(tools) => {
                let _ = TOOLS.set(tools);
            }
            Err(missing) => problems.push(missing),
        }
        if let Err(missing) = tls::check_mount_points() {
            problems.push(missing);
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let tools = TOOLS.get().expect("set above");
        enter_namespaces(tools)?;

        let version = Command::new(&tools.glusterd)
            .arg("--version")
            .output()
            .map_err(|e| format!("running `glusterd --version`: {e}"))?;
        let version = String::from_utf8_lossy(&version.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        let _ = GLUSTERD_VERSION.set(version);

        fs::create_dir_all(LOG_DIR).map_err(|e| format!("creating {LOG_DIR}: {e}"))?;
        fs::create_dir_all("/run/rpcbind").map_err(|e| format!("creating /run/rpcbind: {e}"))?;

        let mut rpcbind = Daemon::start("rpcbind", &tools.rpcbind, &["-f"])?;
        let took = rpcbind.wait_listening(&[RPCBIND_V4, RPCBIND_V6])?;
        eprintln!("interop: rpcbind listens on {RPCBIND_V4} and {RPCBIND_V6} after {took:?}");

        let log_file = format!("--log-file={LOG_DIR}/glusterd.log");
        let mut glusterd = Daemon::start("glusterd", &tools.glusterd, &["-N", &log_file])?;
        // The TLS glusterd starts at once, so the two warm up together.
        let mut glusterd_tls = tls::start_glusterd()?;
        let took = glusterd.wait_listening(&[GLUSTERD])?;
        eprintln!(
            "interop: glusterd ({}) listens on {GLUSTERD} after {took:?}",
            GLUSTERD_VERSION.get().map_or("?", String::as_str)
        );
        let took = glusterd_tls.wait_listening(&[tls::GLUSTERD_TLS])?;
        eprintln!(
            "interop: glusterd with management TLS listens on {} after {took:?}",
            tls::GLUSTERD_TLS
        );
        Ok(Environment {
            glusterd_tls,
            glusterd,
            rpcbind,
        })
    }

    fn print_logs(&self) {
        for daemon in [&self.rpcbind, &self.glusterd, &self.glusterd_tls] {
            eprintln!("---- {} output ----\n{}", daemon.name, daemon.log_tail());
        }
        for glusterd_log in [Path::new(LOG_DIR).join("glusterd.log"), tls::glusterd_log()] {
            eprintln!(
                "---- {} ----\n{}",
                glusterd_log.display(),
                tail(&fs::read_to_string(&glusterd_log).unwrap_or_default(), 40)
            );
        }
    }
}

/// The threads of this process, from /proc/self/status.
fn thread_count() -> Option<usize> {
    fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Moves the process into private network and mount namespaces with `lo`
/// up, 127.0.0.2 usable, 2001:db8::1 on `lo`, and private tmpfs wherever
/// the daemons write.
fn enter_namespaces(tools: &Tools) -> Result<(), String> {
    // Directories to hide behind a tmpfs. A missing one must exist on the
    // host to be mounted over: it is created there, empty, before entering
    // the namespace (the only change this binary can make to the host).
    let mut private = vec![PathBuf::from("/run")];
    if fs::canonicalize("/var/run").is_ok_and(|p| p != Path::new("/run")) {
        private.push(PathBuf::from("/var/run"));
    }
    for dir in ["/var/lib/glusterd", "/var/log/glusterfs"] {
        if !Path::new(dir).is_dir() {
            fs::create_dir_all(dir)
                .map_err(|e| format!("creating the mount point {dir} on the host: {e}"))?;
            eprintln!("interop: created the empty directory {dir} on the host to mount over it");
        }
        private.push(PathBuf::from(dir));
    }

    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare(CLONE_NEWNET | CLONE_NEWNS) failed: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making the mount tree private failed: {e}"))?;
    for dir in &private {
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755"),
        )
        .map_err(|e| {
            format!(
                "mounting a private tmpfs over {} failed: {e}",
                dir.display()
            )
        })?;
    }

    run_ip(tools, &["link", "set", "lo", "up"])?;
    // 127.0.0.0/8 is local on `lo`: 127.0.0.2 binds without being added.
    // Should a kernel disagree, add it.
    if TcpListener::bind((SECOND_V4, 0)).is_err() {
        run_ip(
            tools,
            &["addr", "add", &format!("{SECOND_V4}/8"), "dev", "lo"],
        )?;
    }
    run_ip(
        tools,
        &[
            "-6",
            "addr",
            "add",
            &format!("{SECOND_V6}/128"),
            "dev",
            "lo",
            "nodad",
        ],
    )?;
    for source in [SECOND_V4, SECOND_V6, "127.0.0.1", "::1"] {
        TcpListener::bind((source, 0))
            .map_err(|e| format!("cannot bind {source} in the namespace: {e}"))?;
    }
    Ok(())
}

fn run_ip(tools: &Tools, args: &[&str]) -> Result<(), String> {
    let out = Command::new(&tools.ip)
        .args(args)
        .output()
        .map_err(|e| format!("running ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A [`Command`] whose process gets SIGKILL when the thread that spawned it
/// ends (`PR_SET_PDEATHSIG`).
fn command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    support::harness::die_with_parent(&mut cmd);
    cmd
}

/// A daemon in a PID namespace of its own; see the module docs.
struct Daemon {
    name: &'static str,
    /// The `unshare` process.
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `program args` with its output in `LOG_DIR/<name>.out`.
    fn start(name: &'static str, program: &Path, args: &[&str]) -> Result<Daemon, String> {
        Daemon::spawn(name, program, args, &[], "")
    }

    /// Like [`Daemon::start`], in a mount namespace of its own as well,
    /// where the shell script `prelude` runs first (as the namespace's
    /// init, before the daemon starts; it should `set -e`).
    fn start_in_own_mounts(
        name: &'static str,
        program: &Path,
        args: &[&str],
        prelude: &str,
    ) -> Result<Daemon, String> {
        Daemon::spawn(name, program, args, &["--mount"], prelude)
    }

    fn spawn(
        name: &'static str,
        program: &Path,
        args: &[&str],
        namespaces: &[&str],
        prelude: &str,
    ) -> Result<Daemon, String> {
        let tools = TOOLS.get().expect("tools are found first");
        let log = Path::new(LOG_DIR).join(format!("{name}.out"));
        let out = File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("duplicating {}: {e}", log.display()))?;
        let child = command(&tools.unshare)
            .args(namespaces)
            .args(["--pid", "--fork", "--kill-child=SIGKILL", "--"])
            .arg(&tools.sh)
            .args(["-c", &format!("{prelude}\"$@\" & wait $!"), "sh"])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting {name} ({}): {e}", program.display()))?;
        Ok(Daemon { name, child, log })
    }

    /// Waits until every address accepts a TCP connection. Fails early if
    /// the daemon exits.
    fn wait_listening(&mut self, addresses: &[&str]) -> Result<Duration, String> {
        let addresses: Vec<SocketAddr> = addresses
            .iter()
            .map(|a| a.parse().expect("a socket address"))
            .collect();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited during start-up ({}); its output:\n{}",
                    self.name,
                    describe(status),
                    self.log_tail()
                ));
            }
            let up = addresses
                .iter()
                .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok());
            if up {
                return Ok(start.elapsed());
            }
            if start.elapsed() > START_LIMIT {
                return Err(format!(
                    "{} did not listen on {addresses:?} within {START_LIMIT:?}; its output:\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        tail(&fs::read_to_string(&self.log).unwrap_or_default(), 40)
    }
}

impl Drop for Daemon {
    /// Kills the namespace's init (`sh`): the kernel then kills the daemon
    /// and everything else in the namespace, and `unshare` exits. If `sh`
    /// cannot be found, kill `unshare`, whose `--kill-child` does the same.
    fn drop(&mut self) {
        let Ok(unshare_pid) = i32::try_from(self.child.id()) else {
            return;
        };
        let inits = children_of(unshare_pid);
        for &pid in &inits {
            // SAFETY: kill(2) takes no pointers; `pid` is a child of our own
            // `unshare` process, which has not been reaped yet, so the pid
            // cannot have been reused by an unrelated process.
            unsafe {
                nix::libc::kill(pid, nix::libc::SIGKILL);
            }
        }
        if inits.is_empty() {
            let _ = self.child.kill();
        }
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if start.elapsed() > Duration::from_secs(10) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

/// The processes whose parent is `pid`, from /proc/*/stat.
fn children_of(pid: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let child: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces and ')'.
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid: i32 = after.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
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

// ───────────────────────── rpcinfo → peerwire server ─────────────────────────

fn rpcinfo_pings_peerwire_server_over_ipv4() {
    rpcinfo_pings_peerwire_server("127.0.0.1:0", "tcp");
}

fn rpcinfo_pings_peerwire_server_over_ipv6() {
    rpcinfo_pings_peerwire_server("[::1]:0", "tcp6");
}

fn rpcinfo_pings_peerwire_server(listen: &str, netid: &str) {
    block_on(async {
        let server = peerwire_server(listen);
        let addr = server.local_addrs()[0];
        let uaddr = universal_address(addr);
        for version in ["1", "2"] {
            let out = rpcinfo(&["-T", netid, "-a", &uaddr, &PROG.to_string(), version]).await;
            eprintln!("{out}");
            assert!(out.status.success(), "{out}");
            assert_eq!(
                out.stdout,
                format!("program {PROG} version {version} ready and waiting\n"),
                "{out}"
            );
        }
        // The answers came from this server: one connection per rpcinfo
        // run, and NULL is answered without reaching the service.
        let stats = server.stats();
        assert_eq!((stats.accepted, stats.calls), (2, 0), "{stats:?}");
        server.shutdown().await;
    });
}

fn rpcinfo_sees_prog_mismatch_from_peerwire_server() {
    block_on(async {
        let server = peerwire_server("127.0.0.1:0");
        let uaddr = universal_address(server.local_addrs()[0]);
        let prog = PROG.to_string();

        // A version the server does not serve: PROG_MISMATCH with 1..2.
        let out = rpcinfo(&["-T", "tcp", "-a", &uaddr, &prog, "5"]).await;
        eprintln!("{out}");
        assert_eq!(out.status.code(), Some(1), "{out}");
        assert_eq!(
            out.stdout,
            format!("program {PROG} version 5 is not available\n"),
            "{out}"
        );
        assert!(
            out.stderr
                .contains("RPC: Program/version mismatch; low version = 1, high version = 2"),
            "{out}"
        );

        // No version: rpcinfo asks version 0 for the range, then pings each.
        let out = rpcinfo(&["-T", "tcp", "-a", &uaddr, &prog]).await;
        eprintln!("{out}");
        assert!(out.status.success(), "{out}");
        assert_eq!(
            out.stdout,
            format!(
                "program {PROG} version 1 ready and waiting\n\
                 program {PROG} version 2 ready and waiting\n"
            ),
            "{out}"
        );

        // A program the server does not serve: PROG_UNAVAIL.
        let other = (PROG + 1).to_string();
        let out = rpcinfo(&["-T", "tcp", "-a", &uaddr, &other, "1"]).await;
        eprintln!("{out}");
        assert_eq!(out.status.code(), Some(1), "{out}");
        assert_eq!(
            out.stdout,
            format!("program {other} version 1 is not available\n"),
            "{out}"
        );
        assert!(out.stderr.contains("RPC: Program unavailable"), "{out}");

        assert_eq!(server.stats().accepted, 3, "{:?}", server.stats());
        server.shutdown().await;
    });
}

// ──────────────────────────── client → rpcbind ────────────────────────────

fn client_calls_rpcbind_null_and_dump_over_ipv4() {
    // 127.0.0.2 is the source under test; rpcbind accepts SET only from
    // 127.0.0.1, which makes its view of our source visible.
    client_calls_rpcbind(RPCBIND_V4, SECOND_V4, "127.0.0.1", 0x2000_0104);
}

fn client_calls_rpcbind_null_and_dump_over_ipv6() {
    // ::1 is the source under test; rpcbind accepts SET only from ::1, so
    // 2001:db8::1 (on lo) is the contrast.
    client_calls_rpcbind(RPCBIND_V6, "::1", SECOND_V6, 0x2000_0106);
}

/// rpcbind's own registrations: portmapper v4, v3, v2 over TCP and UDP.
fn rpcbind_self_mappings() -> Vec<Mapping> {
    let mut out = Vec::new();
    for protocol in [portmap::IPPROTO_TCP, portmap::IPPROTO_UDP] {
        for version in [4, 3, 2] {
            out.push(Mapping {
                prog: portmap::PROGRAM,
                vers: version,
                prot: protocol,
                port: portmap::PORT.into(),
            });
        }
    }
    out
}

/// rpcbind's test for SET and UNSET (its `is_loopback`): the caller's
/// address is exactly 127.0.0.1 or ::1, not just any loopback address.
fn rpcbind_takes_for_local(ip: &str) -> bool {
    let ip: IpAddr = ip.parse().expect("an IP");
    ip == Ipv4Addr::LOCALHOST || ip == Ipv6Addr::LOCALHOST
}

async fn dump(client: &Client) -> Vec<Mapping> {
    PmapV2Client::new(client.clone())
        .dump()
        .await
        .unwrap_or_else(|e| panic!("portmapper DUMP failed: {e}"))
        .mappings()
        .cloned()
        .collect()
}

fn client_calls_rpcbind(
    server: &'static str,
    source: &'static str,
    other: &'static str,
    program: u32,
) {
    block_on(async move {
        // NULL and DUMP from the configured source.
        let client = client_from(source, server);
        client
            .null(portmap::PROGRAM, portmap::VERSION)
            .await
            .unwrap_or_else(|e| panic!("portmapper NULL failed: {e}"));
        let local = assert_connected_from(&client, source, server);
        let list = dump(&client).await;
        eprintln!(
            "rpcbind at {server}, called from {local}, has {} mappings: {list:?}",
            list.len()
        );
        for mapping in rpcbind_self_mappings() {
            assert!(list.contains(&mapping), "{mapping:?} missing from {list:?}");
        }
        assert_connected_from(&client, source, server);
        let stats = client.stats();
        assert_eq!((stats.succeeded, stats.reconnects), (2, 0), "{stats:?}");

        // rpcbind's view of the source: it refuses SET (AUTH_TOOWEAK)
        // unless the caller's address is exactly 127.0.0.1 or ::1. Exactly
        // one of `source` and `other` is that address.
        let mapping = Mapping {
            prog: program,
            vers: 1,
            prot: portmap::IPPROTO_TCP,
            port: 4711,
        };
        let other_client = client_from(other, server);
        for (client, ip) in [(&client, source), (&other_client, other)] {
            let portmapper = PmapV2Client::new((*client).clone());
            let set = portmapper.set(&mapping).await;
            assert_connected_from(client, ip, server);
            if rpcbind_takes_for_local(ip) {
                // rpcbind took us for a local caller.
                assert!(matches!(set, Ok(true)), "SET from {ip}: {set:?}");
                assert!(
                    dump(client).await.contains(&mapping),
                    "SET from {ip} did not register"
                );
                let unset = portmapper.unset(&mapping).await;
                assert!(matches!(unset, Ok(true)), "UNSET from {ip}: {unset:?}");
                eprintln!("rpcbind accepted SET and UNSET from {ip}");
            } else {
                match set {
                    Err(Error::CallRejected {
                        status: CallStatus::AuthError(AuthStat::TOO_WEAK),
                        ..
                    }) => {
                        eprintln!("rpcbind refused SET from {ip}, a non-local sender: AUTH_TOOWEAK")
                    }
                    other => panic!("SET from {ip}: expected AUTH_TOOWEAK, got {other:?}"),
                }
            }
            assert!(!dump(client).await.contains(&mapping));
        }
        client.close();
        other_client.close();
    });
}

// ──────────────────────────── client → glusterd ────────────────────────────

fn client_calls_glusterd_gf_dump_and_ping() {
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

// ─────────────────────── the peerd example's CLI ───────────────────────

/// Runs the peerd example with `args`.
fn peerd(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    run_tool(support::peerd::binary(), &args)
}

fn peerd_pings_rpcbind_from_a_chosen_source() {
    let out = peerd(&[
        "ping", RPCBIND_V4, "--prog", "100000", "--vers", "2", "--source", SECOND_V4,
    ]);
    assert!(out.status.success(), "{out}");
    assert!(
        out.stdout.contains(&format!("local {SECOND_V4}:")),
        "the local address used is not printed: {out}"
    );
    let rtt_us: u64 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("rtt_us "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no round-trip time: {out}"));
    assert!(rtt_us < TOOL_LIMIT.as_micros() as u64, "{out}");

    // A version rpcbind does not serve: an answer, but not a success.
    let out = peerd(&[
        "ping", RPCBIND_V4, "--prog", "100000", "--vers", "9", "--source", SECOND_V4,
    ]);
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains("PROG_MISMATCH") || out.stderr.contains("mismatch"),
        "{out}"
    );
}

fn peerd_ping_to_a_closed_port_exits_1() {
    // A port that was free a moment ago, on loopback in this namespace.
    let port = support::common::free_port("127.0.0.1");
    let addr = format!("127.0.0.1:{port}");
    let out = peerd(&[
        "ping",
        &addr,
        "--prog",
        "100000",
        "--vers",
        "2",
        "--source",
        SECOND_V4,
        "--timeout",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains("refused") && out.stderr.contains(SECOND_V4),
        "the error should name the refusal and the source: {out}"
    );
}

/// How `peerd gluster-dump` prints glusterd's peer program and GF-DUMP.
const PEERD_PEER_LINE: &str = "\"GlusterD svc peer\" 1238437 v2";
const PEERD_GF_DUMP_LINE: &str = "\"GF-DUMP\" 123451501 v1";

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

/// Asserts peerd succeeded and printed each of `lines`.
#[track_caller]
fn assert_peerd_printed(out: &Output, lines: &[&str]) {
    assert!(out.status.success(), "{out}");
    for line in lines {
        assert!(out.stdout.contains(line), "{line:?} is missing: {out}");
    }
}

fn peerd_gluster_dump_lists_glusterds_programs() {
    let out = peerd_gluster_dump_until_ready(&[GLUSTERD, "--source", SECOND_V4]);
    assert_peerd_printed(&out, &[PEERD_PEER_LINE, PEERD_GF_DUMP_LINE]);
    assert!(
        out.stdout.contains(&format!("from {SECOND_V4}:")),
        "the source used is not printed: {out}"
    );
}

// ─────────────────────── glusterd's Unix socket ───────────────────────

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

fn client_calls_glusterd_gf_dump_over_its_unix_socket() {
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
fn listen_unix_never_takes_glusterds_live_socket() {
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

fn peerd_gluster_dump_over_glusterds_unix_socket() {
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
