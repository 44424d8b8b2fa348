//! Throwaway hosts built from Linux network namespaces.
//!
//! peerwire promises to use its configured source address and to check peer
//! identities against it. Loopback cannot show that; hosts with several
//! addresses, joined by links, in both address families, can. This module
//! makes such hosts out of network namespaces joined by veth pairs, without
//! root and without leaving anything on the machine. `/work/shared/NETNS.md`
//! (the project's guide) has the background and the address plan.
//!
//! # Shape of a scenario binary
//!
//! ```ignore
//! mod support {
//!     #[path = "../support/harness.rs"] // netns reports its trials through it
//!     pub mod harness;
//!     #[path = "../support/netns.rs"]
//!     pub mod netns;
//! }
//! use support::netns::{self, Host, link};
//!
//! fn main() {
//!     netns::run_harness(vec![
//!         ("my_scenario", my_scenario as fn()),
//!         // one entry per scenario function
//!     ]);
//! }
//!
//! fn my_scenario() {
//!     let server = Host::new("srv");
//!     let client = Host::new("cli");
//!     link(&server, "veth0", &client, "veth1");
//!     server.add_addr("veth0", "192.0.2.1/24");
//!     client.add_addr("veth1", "192.0.2.2/24");
//!     let seen = client.block_on(|| async { /* sockets made here live in `client` */ });
//! }
//! ```
//!
//! # Why `harness = false`
//!
//! The whole binary runs inside a private *sandbox*: a user namespace (in
//! which we are root, so no real privileges are needed), a mount namespace
//! and a network namespace, all made with one `unshare(2)`. The kernel refuses
//! `unshare(CLONE_NEWUSER)` in a process that already has several threads,
//! and libtest starts its threads before any test code runs. So the binary
//! has its own `main`: [`run_harness`] enters the sandbox while the process is
//! still single-threaded and only then hands the scenarios to
//! `libtest-mimic`, which gives the usual command line, the usual output and
//! the `test result:` line, and works under both `cargo test` and
//! `cargo nextest run` (nextest runs the binary once per test; each run makes
//! its own sandbox).
//!
//! If the sandbox cannot be made (for example where unprivileged user
//! namespaces are blocked), every scenario is reported as ignored and the
//! reason is printed loudly. With `PEERWIRE_REQUIRE_NETNS=1` (CI sets it) the
//! binary fails instead; it never skips silently.
//!
//! # Why one thread per host, joined with `setns`
//!
//! A network namespace is an attribute of a *thread*, and a socket belongs
//! for its whole life to the namespace of the thread that created it. A
//! [`Host`] therefore runs code on a fresh thread that first joins the host's
//! namespace with `setns(2)` and then drives its own current-thread tokio
//! runtime ([`Host::spawn`], [`Host::block_on`]), or plain blocking code
//! ([`Host::enter`]). Never create sockets for one host on a runtime whose
//! worker threads live elsewhere. The test's own thread stays in the
//! sandbox's root namespace, which has nothing but `lo`: traffic sent from
//! it to the hosts' addresses has no route, which is how a scenario can show
//! that traffic really crossed a veth link.
//!
//! Tokio's blocking pool threads are started from the host's thread and so
//! inherit its namespace; still, hand tokio `SocketAddr`s rather than names.
//!
//! # Why nothing is left behind
//!
//! Every namespace, interface and address belongs to this process. The
//! private mount namespace carries a tmpfs over `/run`, so `ip netns` keeps
//! its names (bind mounts that pin each host's namespace) there and never
//! touches the machine's `/run/netns`. When the process ends, however it
//! ends (pass, panic, `kill -9`), the mount namespace goes away, the pins go
//! with it, and the kernel destroys the hosts with their veths and
//! addresses. `Host`'s `Drop` deletes the host early only to keep long runs
//! lean. Programs started with [`Host::run`] are killed when their handle is
//! dropped and also get `PR_SET_PDEATHSIG`, so they cannot outlive the test.
//! [`Host::new`] refuses to run outside the sandbox, so a helper called from
//! the wrong place cannot create anything on the real machine.
//!
//! # sysctl
//!
//! Both ways work inside the user namespace on this project's machines:
//! `ip netns exec HOST sysctl -w` (ip remounts `/sys` in a mount namespace of
//! its own; allowed because our user namespace owns the host's network
//! namespace) and writing `/proc/sys/net/...` from a thread that joined the
//! host with `setns`, since `/proc/sys/net` shows the network namespace of
//! the *calling thread*. [`Host::sysctl`] uses the latter: no extra process,
//! no mount games, and no need for procps' `sysctl` to be on `PATH`.
//!
//! # Gotchas
//!
//! - `ip link add a ...` reads `a` as the keyword `address`: name devices
//!   `veth0`, `eth1` and so on.
//! - A new IPv6 address is tentative while duplicate address detection runs
//!   (about 1-2 s) and cannot be bound (EADDRNOTAVAIL). [`Host::add_addr`]
//!   uses `nodad`; [`link`] sets `addrgenmode none` so the kernel adds no
//!   tentative link-local address of its own. Add `fe80::` addresses yourself.
//! - Link-local addresses need a scope id (see [`Host::if_index`]) both to
//!   bind and to connect; a server sees a link-local peer with the scope id
//!   of its own receiving interface.
//! - Only use 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32,
//!   fe80::/64 and loopback.

use std::fs::{self, File};
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::ops::{Deref, DerefMut};
use std::panic;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};

use libtest_mimic::Arguments;

use super::harness::{Requirement, thread_count};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use nix::unistd::{getgid, getuid};

/// What the scenarios need: the sandbox. `PEERWIRE_REQUIRE_NETNS=1` turns
/// "cannot build the sandbox" from a skip into a failure.
const NEEDS: Requirement = Requirement {
    trials: "netns scenarios",
    env: "PEERWIRE_REQUIRE_NETNS",
};

/// Set once [`enter_sandbox`] has succeeded in this process.
static SANDBOX: AtomicBool = AtomicBool::new(false);

/// Makes host names unique within the process (and so within the sandbox,
/// whose `/run/netns` nobody else sees).
static NEXT_HOST: AtomicUsize = AtomicUsize::new(0);

/// True once [`enter_sandbox`] has succeeded in this process.
pub fn sandbox_active() -> bool {
    SANDBOX.load(Ordering::SeqCst)
}

/// A fresh directory `/run/TAG-PID-RANDOM` on the sandbox's private /run:
/// gone with the sandbox, whatever way the process ends. Refuses to run
/// outside the sandbox, where /run is the machine's.
pub fn run_dir(tag: &str) -> PathBuf {
    assert!(sandbox_active(), "run_dir outside the netns sandbox");
    loop {
        // Each `RandomState` has keys of its own, so each try a name.
        let random = RandomState::new().hash_one(tag);
        let dir = PathBuf::from(format!("/run/{tag}-{}-{random:016x}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("creating {}: {e}", dir.display()),
        }
    }
}

/// Moves the whole process into a private user, mount and network namespace.
///
/// Must be called from `main` before any thread is started (the kernel
/// refuses a new user namespace to a multi-threaded process). Works as an
/// unprivileged user where user namespaces are allowed, and as real root.
/// Afterwards the process is root inside its own user namespace, `/run` is a
/// private tmpfs and the current network namespace holds only `lo` (up).
///
/// On failure the error says which step failed and why; the process may then
/// be half-way in (for example in a new user namespace but without a uid
/// map), so do not try to build hosts after an error.
pub fn enter_sandbox() -> Result<(), String> {
    if sandbox_active() {
        return Ok(());
    }
    match thread_count() {
        Some(n) if n > 1 => {
            return Err(format!(
                "enter_sandbox() was called with {n} threads running; it must run in main() \
                 before any thread is started, because unshare(CLONE_NEWUSER) needs a \
                 single-threaded process"
            ));
        }
        _ => {}
    }

    let uid = getuid();
    let gid = getgid();
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET)
        .map_err(|e| {
            format!(
                "unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET) failed: {e} (user namespaces \
                 are disabled or restricted here; see user.max_user_namespaces, \
                 kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns, \
                 or a seccomp filter of the container)"
            )
        })?;

    // Writing "deny" is required before an unprivileged gid_map; harmless as root.
    write_proc_file("/proc/self/setgroups", "deny")?;
    write_proc_file("/proc/self/uid_map", &format!("0 {uid} 1"))?;
    write_proc_file("/proc/self/gid_map", &format!("0 {gid} 1"))?;

    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| {
        format!("making the mount tree private (mount / MS_REC|MS_PRIVATE) failed: {e}")
    })?;

    mount(
        Some("tmpfs"),
        "/run",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(|e| format!("mounting a private tmpfs over /run failed: {e}"))?;

    run_ip(&["link", "set", "lo", "up"])
        .map_err(|e| format!("bringing up lo in the sandbox failed: {e}"))?;

    // Check that everything the hosts need works here, once, while nothing
    // runs concurrently: `ip netns add` (which also sets up the shared
    // /run/netns mount, so parallel tests never race to create it) and veth
    // pairs. The probe namespace and its veth vanish with `ip netns del`.
    let probe = "pw-probe";
    run_ip(&["netns", "add", probe])
        .map_err(|e| format!("`ip netns` does not work in the sandbox: {e}"))?;
    let veth = run_ip(&[
        "-n", probe, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
    ]);
    let del = run_ip(&["netns", "del", probe]);
    veth.map_err(|e| format!("cannot create veth pairs in the sandbox: {e}"))?;
    del.map_err(|e| format!("`ip netns del` does not work in the sandbox: {e}"))?;

    SANDBOX.store(true, Ordering::SeqCst);
    Ok(())
}

/// Runs `tests` (name, scenario function) as a libtest-compatible harness
/// inside the sandbox, and exits the process with libtest's status.
///
/// Call it first thing in `main`. A scenario fails when it panics; the panic
/// message becomes the failure message. If the sandbox cannot be built, every
/// scenario is reported as ignored and the reason is printed to stderr, or,
/// with `PEERWIRE_REQUIRE_NETNS=1`, the reason is printed and the process
/// exits with status 1.
pub fn run_harness(tests: Vec<(&'static str, fn())>) -> ! {
    let args = Arguments::from_args();

    let skipped = match enter_sandbox() {
        Ok(()) => None,
        Err(reason) if NEEDS.required() => {
            NEEDS.print_cannot_run(&reason);
            std::process::exit(1);
        }
        Err(reason) => {
            NEEDS.print_skip_banner(&reason);
            Some(reason)
        }
    };

    let skipped_why = skipped.as_ref().map(|r| format!("no netns sandbox: {r}"));
    let trials = super::harness::trials(tests, skipped_why.as_deref());

    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(reason) = &skipped {
        // Once more after the summary, where nobody can miss it.
        NEEDS.print_skip_banner(reason);
    }
    conclusion.exit()
}

/// Stops a server thread from its `Drop`: signals `stop`, then joins the
/// thread. While the test is already panicking, the thread's own panic is
/// swallowed rather than raised a second time (which would abort).
pub fn stop_and_join(
    stop: &mut Option<tokio::sync::oneshot::Sender<()>>,
    thread: &mut Option<JoinHandle<()>>,
) {
    if let Some(stop) = stop.take() {
        let _ = stop.send(());
    }
    if let Some(thread) = thread.take() {
        if thread::panicking() {
            let _ = thread.join();
        } else {
            join(thread);
        }
    }
}

/// Waits for a thread made by [`Host::spawn`] and returns its result. If the
/// thread panicked, the panic continues here with its original message.
#[track_caller]
pub fn join<T>(handle: JoinHandle<T>) -> T {
    match handle.join() {
        Ok(value) => value,
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// One throwaway host: a named network namespace inside the sandbox.
///
/// Dropping it deletes the namespace (best effort). Sockets still open on a
/// host's threads keep its namespace alive until they close.
#[derive(Debug)]
pub struct Host {
    name: String,
    ns_path: PathBuf,
}

impl Host {
    /// Creates a host named `prefix` plus a process-wide counter, with `lo`
    /// up and nothing else. Panics outside the sandbox.
    #[track_caller]
    pub fn new(prefix: &str) -> Host {
        assert!(
            sandbox_active(),
            "Host::new({prefix:?}) outside the netns sandbox: run the scenario through \
             netns::run_harness (or call enter_sandbox first); refusing to touch the \
             machine's real network namespaces"
        );
        let name = format!("{prefix}{}", NEXT_HOST.fetch_add(1, Ordering::SeqCst));
        if let Err(e) = run_ip(&["netns", "add", &name]) {
            panic!("creating host {name}: {e}");
        }
        let host = Host {
            ns_path: Path::new("/run/netns").join(&name),
            name,
        };
        host.ip(&["link", "set", "lo", "up"]);
        host
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file that pins the namespace (`/run/netns/<name>`, private to the
    /// sandbox).
    pub fn ns_path(&self) -> &Path {
        &self.ns_path
    }

    /// Runs `ip -n <name> <args>` and returns its stdout. Panics with the
    /// command line and ip's stderr if it fails.
    #[track_caller]
    pub fn ip(&self, args: &[&str]) -> String {
        match self.try_ip(args) {
            Ok(stdout) => stdout,
            Err(e) => panic!("{e}"),
        }
    }

    /// The source address the kernel picks toward `dest` from this host
    /// (`ip route get`).
    pub fn kernel_source(&self, dest: &str) -> String {
        let route = self.ip(&["route", "get", dest]);
        let mut words = route.split_whitespace();
        while let Some(word) = words.next() {
            if word == "src" {
                return words.next().unwrap().to_owned();
            }
        }
        panic!("no src in `ip route get {dest}`: {route}")
    }

    /// Runs `ip -n <name> <args>`: stdout on success, otherwise a message with
    /// the command line, exit status and ip's stderr.
    pub fn try_ip(&self, args: &[&str]) -> Result<String, String> {
        let mut full = Vec::with_capacity(args.len() + 2);
        full.extend_from_slice(&["-n", self.name.as_str()]);
        full.extend_from_slice(args);
        run_ip(&full)
    }

    /// Adds `cidr` (e.g. `192.0.2.1/24`, `2001:db8::1/64`, `fe80::1/64`) to
    /// `dev`. IPv6 addresses are added with `nodad`, so they can be bound at
    /// once.
    #[track_caller]
    pub fn add_addr(&self, dev: &str, cidr: &str) {
        if is_ipv6(cidr) {
            self.ip(&["-6", "addr", "add", cidr, "dev", dev, "nodad"]);
        } else {
            self.ip(&["addr", "add", cidr, "dev", dev]);
        }
    }

    /// Adds the IPv6 address `cidr` to `dev` *with* duplicate address
    /// detection: the address stays tentative (unbindable, EADDRNOTAVAIL)
    /// for a second or two. DAD only starts once the link has carrier, so
    /// `dev` should be a [`link`]ed veth end.
    #[track_caller]
    pub fn add_addr_tentative(&self, dev: &str, cidr: &str) {
        assert!(
            is_ipv6(cidr),
            "add_addr_tentative({cidr:?}): only IPv6 addresses are ever tentative"
        );
        self.ip(&["-6", "addr", "add", cidr, "dev", dev]);
    }

    /// Removes `cidr` from `dev`.
    #[track_caller]
    pub fn del_addr(&self, dev: &str, cidr: &str) {
        self.ip(&["addr", "del", cidr, "dev", dev]);
    }

    /// The interface index of `dev` in this host: the scope id for
    /// link-local addresses on it.
    #[track_caller]
    pub fn if_index(&self, dev: &str) -> u32 {
        let out = self.ip(&["-o", "link", "show", "dev", dev]);
        // "7: veth0@if6: <BROADCAST,...> ..."
        match out.split(':').next().map(str::trim).map(str::parse) {
            Some(Ok(index)) => index,
            _ => panic!(
                "cannot read the interface index of {dev} in host {} from: {out:?}",
                self.name
            ),
        }
    }

    /// Starts a thread inside this host, with its own current-thread tokio
    /// runtime (all drivers enabled), and runs `f()` to completion on it.
    /// Every socket the future makes lives in this host. Use [`join`] to wait
    /// for it with the thread's panic re-raised.
    #[track_caller]
    pub fn spawn<F, Fut, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        // Opened here, so the thread joins this host even if the `Host` is
        // dropped before the thread gets going.
        let ns = self.open_ns();
        let name = self.name.clone();
        thread::Builder::new()
            .name(self.name.clone())
            .spawn(move || {
                join_netns(&ns, &name);
                drop(ns);
                current_thread_runtime(&name).block_on(f())
            })
            .unwrap_or_else(|e| panic!("cannot start a thread for host {}: {e}", self.name))
    }

    /// Like [`Host::spawn`], then waits for the result. A panic on the host's
    /// thread continues on the caller's thread with its original message.
    /// `f` may borrow from the caller.
    #[track_caller]
    pub fn block_on<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = T>,
        T: Send,
    {
        self.enter(move || current_thread_runtime(&self.name).block_on(f()))
    }

    /// Runs the blocking closure `f` on a fresh thread inside this host and
    /// returns its result (std sockets, `/proc/sys/net`, ...). A panic in `f`
    /// continues on the caller's thread with its original message. `f` may
    /// borrow from the caller.
    #[track_caller]
    pub fn enter<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let ns = self.open_ns();
        let name = self.name.as_str();
        let result = thread::scope(|scope| {
            thread::Builder::new()
                .name(self.name.clone())
                .spawn_scoped(scope, move || {
                    join_netns(&ns, name);
                    drop(ns);
                    f()
                })
                .unwrap_or_else(|e| panic!("cannot start a thread for host {name}: {e}"))
                .join()
        });
        match result {
            Ok(value) => value,
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Sets a sysctl in this host, e.g. `sysctl("net.ipv6.conf.veth0.accept_dad", "0")`.
    /// Keys use dots, or slashes (needed when a device name contains a dot).
    #[track_caller]
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = sysctl_path(key);
        let result = self.enter(|| fs::write(&path, value));
        if let Err(e) = result {
            panic!(
                "sysctl {key}={value} in host {}: writing {}: {e}",
                self.name,
                path.display()
            );
        }
    }

    /// Reads a sysctl in this host (trimmed).
    #[track_caller]
    pub fn sysctl_get(&self, key: &str) -> String {
        let path = sysctl_path(key);
        match self.enter(|| fs::read_to_string(&path)) {
            Ok(value) => value.trim().to_owned(),
            Err(e) => panic!(
                "sysctl {key} in host {}: reading {}: {e}",
                self.name,
                path.display()
            ),
        }
    }

    /// A [`Command`] for `ip netns exec <name> <program>`: the program runs
    /// in this host (with a `/sys` that matches it). Add arguments and stdio
    /// as needed. The child gets `PR_SET_PDEATHSIG` = SIGKILL, so it dies
    /// when the thread that spawned it ends; spawn long-lived programs from
    /// the test's own thread, not from a [`Host::spawn`] thread that ends
    /// earlier.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.name.as_str(), program]);
        super::harness::die_with_parent(&mut cmd);
        cmd
    }

    /// Starts `program args...` inside this host (stdin from /dev/null,
    /// stdout and stderr inherited). The returned handle derefs to
    /// [`Child`]; dropping it kills the program and reaps it. See
    /// [`Host::command`] for more control and for the PDEATHSIG caveat.
    #[track_caller]
    pub fn run(&self, program: &str, args: &[&str]) -> HostProcess {
        let mut cmd = self.command(program);
        cmd.args(args).stdin(Stdio::null());
        match cmd.spawn() {
            Ok(child) => HostProcess { child: Some(child) },
            Err(e) => panic!(
                "cannot start `ip netns exec {} {program} {}`: {e}",
                self.name,
                args.join(" ")
            ),
        }
    }

    #[track_caller]
    fn open_ns(&self) -> File {
        File::open(&self.ns_path).unwrap_or_else(|e| {
            panic!(
                "cannot open the namespace of host {} ({}): {e}",
                self.name,
                self.ns_path.display()
            )
        })
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Best effort: the process's exit tears everything down anyway.
        let _ = run_ip(&["netns", "del", &self.name]);
    }
}

/// A program started in a host with [`Host::run`]. Derefs to [`Child`].
/// Dropping it kills (SIGKILL) and reaps the program.
#[derive(Debug)]
pub struct HostProcess {
    child: Option<Child>,
}

impl HostProcess {
    /// Kills the program (SIGKILL) and returns how it ended. If it had already
    /// exited, that exit status is returned.
    pub fn stop(mut self) -> io::Result<ExitStatus> {
        let mut child = self.child.take().expect("HostProcess without a child");
        // Fails only if it was already reaped; wait() then reports its status.
        let _ = child.kill();
        child.wait()
    }
}

impl Deref for HostProcess {
    type Target = Child;

    fn deref(&self) -> &Child {
        self.child.as_ref().expect("HostProcess without a child")
    }
}

impl DerefMut for HostProcess {
    fn deref_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("HostProcess without a child")
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Joins hosts `a` and `b` with a veth pair: `a_dev` in `a`, `b_dev` in `b`.
///
/// Both ends are created directly in their namespaces, so the same device
/// names can be used for many host pairs at once. Both get
/// `addrgenmode none` before they go up (no kernel-made, tentative fe80::
/// address; add your own with [`Host::add_addr`]) and are then brought up.
/// Do not name a device `a` (see the module docs).
#[track_caller]
pub fn link(a: &Host, a_dev: &str, b: &Host, b_dev: &str) {
    assert_ne!(
        a.name, b.name,
        "link(): both ends in one host would send the traffic over lo and prove nothing"
    );
    let created = run_ip(&[
        "link", "add", a_dev, "netns", &a.name, "type", "veth", "peer", "name", b_dev, "netns",
        &b.name,
    ]);
    if let Err(e) = created {
        panic!("linking {}:{a_dev} to {}:{b_dev}: {e}", a.name, b.name);
    }
    a.ip(&["link", "set", "dev", a_dev, "addrgenmode", "none"]);
    b.ip(&["link", "set", "dev", b_dev, "addrgenmode", "none"]);
    a.ip(&["link", "set", "dev", a_dev, "up"]);
    b.ip(&["link", "set", "dev", b_dev, "up"]);
}

/// Runs `ip <args>` in the calling thread's network namespace.
fn run_ip(args: &[&str]) -> Result<String, String> {
    let line = format!("ip {}", args.join(" "));
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`{line}`: cannot run `ip` (is iproute2 installed?): {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`{line}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Moves the calling thread into the network namespace `ns`.
#[track_caller]
fn join_netns(ns: &File, host: &str) {
    if let Err(e) = setns(ns, CloneFlags::CLONE_NEWNET) {
        panic!("setns into the network namespace of host {host} failed: {e}");
    }
}

#[track_caller]
fn current_thread_runtime(host: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot build a tokio runtime for host {host}: {e}"))
}

fn write_proc_file(path: &str, contents: &str) -> Result<(), String> {
    fs::write(path, contents).map_err(|e| format!("writing {contents:?} to {path} failed: {e}"))
}

fn sysctl_path(key: &str) -> PathBuf {
    let relative = if key.contains('/') {
        key.trim_start_matches('/').to_owned()
    } else {
        key.replace('.', "/")
    };
    Path::new("/proc/sys").join(relative)
}

fn is_ipv6(cidr: &str) -> bool {
    cidr.contains(':')
}
