//! The interop environment: the programs found on `PATH`, the private
//! network and mount namespaces, and the daemons (rpcbind, glusterd) in
//! PID namespaces of their own; see the binary's docs.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::geteuid;

use super::support::harness::thread_count;
use super::{
    GLUSTERD, GLUSTERD_VERSION, LOG_DIR, RPCBIND_V4, RPCBIND_V6, SECOND_V4, SECOND_V6, START_LIMIT,
    TOOLS, support, tls,
};

/// The programs the trials drive, by absolute path.
#[derive(Debug)]
pub struct Tools {
    pub rpcbind: PathBuf,
    pub rpcinfo: PathBuf,
    pub glusterd: PathBuf,
    pub unshare: PathBuf,
    pub ip: PathBuf,
    pub sh: PathBuf,
    /// `openssl s_client`, which checks the TLS glusterd on its own.
    pub openssl: PathBuf,
}

impl Tools {
    /// Finds every program, or says which are missing and what provides
    /// them (Debian packages).
    pub fn find() -> Result<Tools, String> {
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
pub fn find_program(name: &str) -> Option<PathBuf> {
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
pub struct Environment {
    // Dropped in this order: the glusterds first.
    glusterd_tls: Daemon,
    glusterd: Daemon,
    rpcbind: Daemon,
}

impl Environment {
    /// Checks the preconditions, enters the private namespaces and starts
    /// the daemons. Must run before any thread is started.
    pub fn set_up() -> Result<Environment, String> {
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

    pub fn print_logs(&self) {
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

/// Moves the process into private network and mount namespaces with `lo`
/// up, 127.0.0.2 usable, 2001:db8::1 on `lo`, and private tmpfs wherever
/// the daemons write.
pub fn enter_namespaces(tools: &Tools) -> Result<(), String> {
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

pub fn run_ip(tools: &Tools, args: &[&str]) -> Result<(), String> {
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
pub fn command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    support::harness::die_with_parent(&mut cmd);
    cmd
}

/// A daemon in a PID namespace of its own; see the module docs.
pub struct Daemon {
    name: &'static str,
    /// The `unshare` process.
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `program args` with its output in `LOG_DIR/<name>.out`.
    pub fn start(name: &'static str, program: &Path, args: &[&str]) -> Result<Daemon, String> {
        Daemon::spawn(name, program, args, &[], "")
    }

    /// Like [`Daemon::start`], in a mount namespace of its own as well,
    /// where the shell script `prelude` runs first (as the namespace's
    /// init, before the daemon starts; it should `set -e`).
    pub fn start_in_own_mounts(
        name: &'static str,
        program: &Path,
        args: &[&str],
        prelude: &str,
    ) -> Result<Daemon, String> {
        Daemon::spawn(name, program, args, &["--mount"], prelude)
    }

    pub fn spawn(
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
    pub fn wait_listening(&mut self, addresses: &[&str]) -> Result<Duration, String> {
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

    pub fn log_tail(&self) -> String {
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
pub fn children_of(pid: i32) -> Vec<i32> {
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

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}
