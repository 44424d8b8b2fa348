//! The `peerd` example as a user meets it: the demo, config errors, and
//! the CLI's exit codes. The demo is here; configs and arguments are in
//! peerd_cli/config.rs, running nodes (reload, sources, Unix listeners) in
//! peerd_cli/running.rs, and `[tls]` in peerd_cli/tls.rs. Namespace scenarios with several `peerd run`
//! processes are in tests/netns/peerd.rs; `ping` and `gluster-dump` against
//! real rpcbind and glusterd are in tests/interop.rs.

mod support {
    #[path = "../support/common.rs"]
    pub mod common;
    #[path = "../support/peerd.rs"]
    pub mod peerd;
    #[path = "../support/pki.rs"]
    pub mod pki;
    #[path = "../support/temp.rs"]
    pub mod temp;
}

#[path = "peerd_cli/config.rs"]
mod config;
#[path = "peerd_cli/running.rs"]
mod running;
#[path = "peerd_cli/tls.rs"]
mod tls;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::peerd;

/// Runs peerd with `args`, killing it after `limit`.
fn run(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(peerd::binary())
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start peerd");
    let start = Instant::now();
    while child.try_wait().expect("wait for peerd").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().expect("peerd's output");
            panic!(
                "`peerd {}` did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("peerd's output")
}

#[test]
fn demo_exits_0_with_every_verdict_as_expected() {
    let start = Instant::now();
    let output = run(&["demo"], Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    for expected in [
        "node-1  node-2  127.0.0.1:",
        "node-3  node-2  127.0.0.3:",
        "connected",
        "rejected 127.0.0.3:",
        "claiming node-2: address not allowed for this node ID; expected 127.0.0.2",
        "OK: all",
    ] {
        assert!(
            stdout.contains(expected),
            "no {expected:?} in the demo's output:\n{stdout}"
        );
    }
}

/// A child that is killed and reaped if the test panics before it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The status of the node whose admin listener is at `admin`, as JSON.
fn status_json(admin: &str) -> Option<serde_json::Value> {
    let output = run(
        &["status", "--admin", admin, "--json", "--timeout", "2"],
        Duration::from_secs(10),
    );
    output
        .status
        .success()
        .then(|| serde_json::from_slice(&output.stdout).expect("status --json is JSON"))
}

/// Polls `admin`'s status until `done` holds (total: a transient status is
/// polled again); panics with the last one after 15 s.
fn wait_for(admin: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < Duration::from_secs(15) {
        if let Some(status) = status_json(admin) {
            if done(&status) {
                return status;
            }
            last = Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("status of {admin} did not settle: {last:#?}");
}

fn peer_of<'a>(status: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    status["peers"].as_array()?.iter().find(|p| p["id"] == id)
}

/// `peerd demo --tls` exits 0: every link over TLS with its peer's CN, and
/// node-1 refused the impostor (node-2's certificate from 127.0.0.3) for
/// the IP mismatch.
#[test]
fn demo_tls_exits_0_with_the_impostor_refused_for_the_ip_mismatch() {
    let output = run(&["demo", "--tls"], Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("OK: all 6 links connected over mutual TLS"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "certificate with CN \"node-2\" names IP SANs [127.0.0.2] but the address is 127.0.0.3"
        ),
        "{stdout}"
    );
    assert_eq!(stdout.matches("TLSv1.3 CN node-").count(), 7, "{stdout}");
}

/// Writes two nodes' configurations into `dir` as `a.toml` and `b.toml`;
/// their paths.
fn write_pair(dir: &std::path::Path, a: &str, b: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (a_path, b_path) = (dir.join("a.toml"), dir.join("b.toml"));
    std::fs::write(&a_path, a).unwrap();
    std::fs::write(&b_path, b).unwrap();
    (a_path, b_path)
}

/// What is wrong with how peerd refused the config case `name`: it must
/// exit 2 with each of `wants` in its stderr. `None` when it did.
fn not_refused_as_wanted(name: &str, output: &Output, wants: &[String]) -> Option<String> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    (output.status.code() != Some(2) || !wants.iter().all(|w| stderr.contains(w.as_str()))).then(
        || {
            format!(
                "{name}: exit {:?}, wanted 2 and {wants:?} in: {}",
                output.status.code(),
                stderr.trim()
            )
        },
    )
}

/// `peerd run` with the config at `path`, its log (at `info`) written to
/// `log` when given; killed when dropped.
fn spawn_node(path: &std::path::Path, log: Option<&std::path::Path>) -> KillOnDrop {
    let stderr = match log {
        Some(log) => Stdio::from(std::fs::File::create(log).unwrap()),
        None => Stdio::null(),
    };
    KillOnDrop(
        Command::new(peerd::binary())
            .args(["run", "--config", path.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    )
}
