//! The `peerd` example as a user meets it: the demo, config errors, and
//! the CLI's exit codes. Namespace scenarios with several `peerd run`
//! processes are in tests/netns/peerd.rs; `ping` and `gluster-dump` against
//! real rpcbind and glusterd are in tests/interop.rs.

mod support {
    #[path = "../support/common.rs"]
    pub mod common;
    #[path = "../support/peerd.rs"]
    pub mod peerd;
    #[path = "../support/pki.rs"]
    pub mod pki;
}

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::common::free_port;
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

const GOOD: &str = r#"node_id = "node-a"
listen = ["127.0.0.1:24007"]
admin = "127.0.0.1:24100"
[source]
v4 = "127.0.0.1"
[[peer]]
id = "node-b"
dial = ["127.0.0.2:24007"]
allow = ["127.0.0.2/32"]
"#;

/// Bad configs: (name, the config, the key the message must name, its line).
const BAD: &[(&str, &str, &str, usize)] = &[
    (
        "a ping interval that rounds to nothing",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"]\n[timeouts]\nping_interval = 1e-10\n",
        "timeouts.ping_interval",
        4,
    ),
    (
        "a call timeout under a millisecond",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"]\n[timeouts]\ncall = 0.0009\n",
        "timeouts.call",
        4,
    ),
    (
        "a handshake timeout over a day",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"]\n[timeouts]\nhandshake = 86401\n",
        "timeouts.handshake",
        4,
    ),
    (
        "unknown key",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"]\nlisten_on = 3\n",
        "listen_on",
        3,
    ),
    (
        "unknown key in a peer",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"]\n[[peer]]\nid = \"b\"\ndial = [\"127.0.0.2:1\"]\nalow = [\"127.0.0.2\"]\n",
        "peer[0].alow",
        6,
    ),
    (
        "bad listen address",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\", \"300.1.1.1:5\"]\n",
        "listen[1]",
        2,
    ),
    (
        "bad dial address",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"]\n[[peer]]\nid = \"b\"\ndial = [\"127.0.0.2\"]\nallow = [\"127.0.0.2\"]\n",
        "peer[0].dial[0]",
        5,
    ),
    (
        "link-local source without a scope",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"]\n[source]\nv6 = \"fe80::a\"\n",
        "source.v6",
        4,
    ),
    (
        "source of the wrong family",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"]\n[source]\nv4 = \"2001:db8::1\"\n",
        "source.v4",
        4,
    ),
    (
        "empty node id",
        "node_id = \"\"\nlisten = [\"127.0.0.1:1\"]\n",
        "node_id",
        1,
    ),
    (
        "bad peer id",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"]\n[[peer]]\nid = \"\"\ndial = [\"127.0.0.2:1\"]\nallow = [\"127.0.0.2\"]\n",
        "peer[0].id",
        4,
    ),
    (
        "non-loopback admin",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"]\nadmin = \"192.0.2.1:24100\"\n",
        "admin",
        3,
    ),
    (
        "missing node_id",
        "listen = [\"127.0.0.1:1\"]\n",
        "node_id",
        1,
    ),
    (
        "duplicate peer id",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"]\n[[peer]]\nid = \"b\"\ndial = [\"127.0.0.2:1\"]\nallow = [\"127.0.0.2\"]\n[[peer]]\nid = \"b\"\ndial = [\"127.0.0.3:1\"]\nallow = [\"127.0.0.3\"]\n",
        "peer[1].id",
        8,
    ),
    (
        "peer with our own id",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"]\n[[peer]]\nid = \"a\"\ndial = [\"127.0.0.2:1\"]\nallow = [\"127.0.0.2\"]\n",
        "peer[0].id",
        4,
    ),
    (
        "bad allow network",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"]\n[[peer]]\nid = \"b\"\ndial = [\"127.0.0.2:1\"]\nallow = [\"127.0.0.2\", \"127.0.0.0/33\"]\n",
        "peer[0].allow[1]",
        6,
    ),
    (
        "wrong type",
        "node_id = \"a\"\nlisten = \"127.0.0.1:1\"\n",
        "listen",
        2,
    ),
    (
        "wrong type of timeout",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"]\n[timeouts]\ncall = \"fast\"\n",
        "timeouts.call",
        4,
    ),
    (
        "negative timeout",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"]\n[timeouts]\n\nping_interval = -1\n",
        "timeouts.ping_interval",
        5,
    ),
    (
        "unknown timeout",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"]\n[timeouts]\nconnnect = 1\n",
        "timeouts.connnect",
        4,
    ),
    (
        "no listen address",
        "node_id = \"a\"\nlisten = []\n",
        "listen",
        2,
    ),
    (
        "not TOML",
        "node_id = \"a\"\nlisten = [\"127.0.0.1:1\"\n",
        "listen",
        2,
    ),
];

#[test]
fn bad_configs_exit_2_naming_the_key_and_the_line() {
    let dir = temp_dir("bad");
    let mut failures = Vec::new();
    for (i, (name, text, key, line)) in BAD.iter().enumerate() {
        let path = dir.join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let output = run(
            &["run", "--config", path.to_str().unwrap()],
            Duration::from_secs(10),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        let wants = [format!("line {line}"), format!("`{key}`")];
        if output.status.code() != Some(2) || !wants.iter().all(|w| stderr.contains(w.as_str())) {
            failures.push(format!(
                "{name}: exit {:?}, wanted 2 and {wants:?} in: {}",
                output.status.code(),
                stderr.trim()
            ));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A fresh directory of our own: the pid plus a random part, created
/// atomically (never a name from a clock).
fn temp_dir(tag: &str) -> std::path::PathBuf {
    use std::hash::{BuildHasher, RandomState};
    loop {
        let random = RandomState::new().hash_one(tag);
        let dir = std::env::temp_dir().join(format!(
            "peerd-cli-{tag}-{}-{random:016x}",
            std::process::id()
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("creating {}: {e}", dir.display()),
        }
    }
}

#[test]
fn the_documented_config_shape_is_accepted() {
    // A good config gets past loading: the node starts, and a missing file
    // (not a bad config) is also exit 2, naming the file.
    let dir = temp_dir("good");
    let missing = dir.join("missing.toml");
    let output = run(
        &["run", "--config", missing.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml"));

    // An address of its own on loopback, which nothing else here uses (the
    // demo, running alongside, takes ports on 127.0.0.1-3), so the port
    // found free stays free.
    const HOST: &str = "127.77.0.1";
    let admin = std::net::TcpListener::bind((HOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = GOOD
        .replace("127.0.0.1:24007", &format!("{HOST}:0"))
        .replace("127.0.0.1:24100", &format!("{HOST}:{admin}"))
        .replace("v4 = \"127.0.0.1\"", &format!("v4 = \"{HOST}\""))
        + "[[peer]]\nid = \"node-c\"\ndial = [\"127.0.0.3:24007\"]\nallow = [\"127.0.0.3\"]\n";
    let path = dir.join("good.toml");
    std::fs::write(&path, text).unwrap();
    let mut child = spawn_node(&path, None);
    // The status answers once the node runs.
    let start = Instant::now();
    let status = loop {
        let output = run(
            &["status", "--admin", &format!("{HOST}:{admin}"), "--json"],
            Duration::from_secs(10),
        );
        if output.status.success() {
            break String::from_utf8_lossy(&output.stdout).into_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no status: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["node_id"], "node-a");
    assert!(
        status["listen"][0]
            .as_str()
            .is_some_and(|l| l.starts_with(&format!("{HOST}:"))),
        "{status:#}"
    );
    // The very first answer lists every configured peer, in config order,
    // each with a state (`starting` until its link exists).
    let peers = status["peers"].as_array().expect("a peer list");
    let ids: Vec<&str> = peers.iter().filter_map(|p| p["id"].as_str()).collect();
    assert_eq!(ids, ["node-b", "node-c"], "{status:#}");
    for peer in peers {
        // Plain TCP: the `tls` key is there, and null.
        assert_eq!(
            peer.get("tls"),
            Some(&serde_json::Value::Null),
            "{status:#}"
        );
        let state = peer["state"].as_str().unwrap_or_default();
        assert!(
            [
                "starting",
                "connecting",
                "backoff",
                "circuit_open",
                "rejected",
                "connected"
            ]
            .contains(&state),
            "{status:#}"
        );
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let start = Instant::now();
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        if start.elapsed() > Duration::from_secs(10) {
            panic!("peerd did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "peerd ended with {exit} after SIGTERM");
    std::fs::remove_dir_all(&dir).unwrap();
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

#[test]
fn status_of_nothing_and_bad_arguments() {
    // Nothing listens on port 1 of 127.0.0.1 (a privileged port).
    let output = run(
        &["status", "--admin", "127.0.0.1:1", "--timeout", "2"],
        Duration::from_secs(10),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("127.0.0.1:1"));

    let output = run(
        &["ping", "not-an-address", "--prog", "1", "--vers", "1"],
        Duration::from_secs(10),
    );
    assert_eq!(output.status.code(), Some(2));
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

/// SIGHUP re-reads the config and applies only the difference: the
/// unchanged peer keeps its connection (the same local port), an added one
/// is dialled, a removed one closed; a bad config is refused with its file,
/// line and key in the log, and the running config stays.
#[test]
fn sighup_reload_applies_only_the_difference() {
    // Addresses of their own on loopback, which nothing else here uses.
    const A: &str = "127.79.0.1";
    const B: &str = "127.79.0.2";
    let (a_port, a_admin, b_port, b_admin) =
        (free_port(A), free_port(A), free_port(B), free_port(B));
    let dir = temp_dir("reload");
    let config = |node: &str, host: &str, port: u16, admin: u16, peers: &[(&str, &str, u16)]| {
        let mut text = format!(
            "node_id = \"{node}\"\nlisten = [\"{host}:{port}\"]\nadmin = \"{host}:{admin}\"\n[source]\nv4 = \"{host}\"\n"
        );
        for (id, peer_host, peer_port) in peers {
            text.push_str(&format!(
                "[[peer]]\nid = \"{id}\"\ndial = [\"{peer_host}:{peer_port}\"]\nallow = [\"{peer_host}\"]\n"
            ));
        }
        text.push_str("[timeouts]\nping_interval = 0.1\n");
        text
    };
    let a_path = dir.join("a.toml");
    let b_path = dir.join("b.toml");
    std::fs::write(
        &a_path,
        config("node-a", A, a_port, a_admin, &[("node-b", B, b_port)]),
    )
    .unwrap();
    std::fs::write(
        &b_path,
        config("node-b", B, b_port, b_admin, &[("node-a", A, a_port)]),
    )
    .unwrap();
    let a_log = dir.join("a.log");
    let node_a = spawn_node(&a_path, Some(&a_log));
    let _node_b = spawn_node(&b_path, None);
    let a_admin = format!("{A}:{a_admin}");
    let connected = |id: &str| {
        let id = id.to_owned();
        move |s: &serde_json::Value| peer_of(s, &id).is_some_and(|p| p["state"] == "connected")
    };
    let before = wait_for(&a_admin, connected("node-b"));
    assert_eq!(before["config_generation"], 1, "{before:#}");
    let local_before = peer_of(&before, "node-b").unwrap()["local"].clone();
    let hup = |child: &KillOnDrop| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.0.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap();
    };

    // Add node-c (nothing listens there): b is kept, c is dialled.
    std::fs::write(
        &a_path,
        config(
            "node-a",
            A,
            a_port,
            a_admin.rsplit_once(':').unwrap().1.parse().unwrap(),
            &[("node-b", B, b_port), ("node-c", "127.79.0.3", 9)],
        ),
    )
    .unwrap();
    hup(&node_a);
    let after = wait_for(&a_admin, |s| {
        s["config_generation"] == 2 && peer_of(s, "node-c").is_some()
    });
    let ids: Vec<&str> = after["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, ["node-b", "node-c"], "{after:#}");
    let kept = wait_for(&a_admin, connected("node-b"));
    assert_eq!(
        peer_of(&kept, "node-b").unwrap()["local"],
        local_before,
        "node-b's link kept its connection: {kept:#}"
    );

    // A bad config is refused: the running config stays, and the log says
    // where the error is.
    std::fs::write(
        &a_path,
        "node_id = \"node-a\"\nlisten = [\"300.1.1.1:5\"]\n",
    )
    .unwrap();
    hup(&node_a);
    let start = Instant::now();
    let log = loop {
        let log = std::fs::read_to_string(&a_log).unwrap_or_default();
        if log.contains("reload refused") || start.elapsed() > Duration::from_secs(10) {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(log.contains("reload refused"), "{log}");
    assert!(log.contains("listen[0]") && log.contains("a.toml"), "{log}");
    let still = status_json(&a_admin).expect("still running");
    assert_eq!(still["config_generation"], 2, "{still:#}");
    assert!(peer_of(&still, "node-c").is_some(), "{still:#}");

    // Remove node-c.
    std::fs::write(
        &a_path,
        config(
            "node-a",
            A,
            a_port,
            a_admin.rsplit_once(':').unwrap().1.parse().unwrap(),
            &[("node-b", B, b_port)],
        ),
    )
    .unwrap();
    hup(&node_a);
    let last = wait_for(&a_admin, |s| {
        s["config_generation"] == 3 && peer_of(s, "node-c").is_none()
    });
    assert_eq!(
        peer_of(&last, "node-b").unwrap()["local"],
        local_before,
        "{last:#}"
    );

    // A second listen entry: opened; the link to node-b untouched. Then
    // removed again: closed, and the first listener never touched.
    let extra = free_port(A);
    let admin_port: u16 = a_admin.rsplit_once(':').unwrap().1.parse().unwrap();
    let two = config("node-a", A, a_port, admin_port, &[("node-b", B, b_port)]).replace(
        &format!("listen = [\"{A}:{a_port}\"]"),
        &format!("listen = [\"{A}:{a_port}\", \"{A}:{extra}\"]"),
    );
    std::fs::write(&a_path, two).unwrap();
    hup(&node_a);
    let opened = wait_for(&a_admin, |s| s["config_generation"] == 4);
    assert_eq!(
        opened["listen"],
        serde_json::json!([format!("{A}:{a_port}"), format!("{A}:{extra}")]),
        "{opened:#}"
    );
    assert!(
        std::net::TcpStream::connect((A, extra)).is_ok(),
        "the new listener"
    );
    std::fs::write(
        &a_path,
        config("node-a", A, a_port, admin_port, &[("node-b", B, b_port)]),
    )
    .unwrap();
    hup(&node_a);
    let closed = wait_for(&a_admin, |s| s["config_generation"] == 5);
    assert_eq!(
        closed["listen"],
        serde_json::json!([format!("{A}:{a_port}")]),
        "{closed:#}"
    );
    let start = Instant::now();
    while std::net::TcpStream::connect((A, extra)).is_ok() {
        assert!(start.elapsed() < Duration::from_secs(5), "still listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    let end = wait_for(&a_admin, connected("node-b"));
    assert_eq!(
        peer_of(&end, "node-b").unwrap()["local"],
        local_before,
        "{end:#}"
    );
    drop(node_a);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `[tls]` errors: exit 2, naming the file (where one is involved), the
/// key and the line. Paths are relative to the config file, wherever peerd
/// is started from.
#[test]
fn tls_config_errors_exit_2_naming_the_key() {
    use support::pki::Authority;
    let dir = temp_dir("tls");
    let ca = Authority::new("peerd-cli test CA");
    ca.write_ca(&dir.join("ca.pem")).unwrap();
    let ip = "127.0.0.1".parse().unwrap();
    ca.issue("node-a", &[ip]).write(&dir, "node-a").unwrap();
    // Another node's certificate and key: a CN that is not node_id, and a
    // key that does not fit node-a's certificate.
    ca.issue("node-b", &[ip]).write(&dir, "node-b").unwrap();

    let head = "node_id = \"node-a\"\nlisten = [\"127.0.0.1:1\"]\n[tls]\n";
    let tls = |lines: &str| format!("{head}{lines}");
    let good = "cert = \"node-a.pem\"\nkey = \"node-a.key\"\nca = \"ca.pem\"\n";
    // (name, config, key, line, text the message must hold)
    let cases: Vec<(&str, String, &str, usize, String)> = vec![
        (
            "a certificate file that does not exist",
            tls(&good.replace("node-a.pem", "gone.pem")),
            "tls.cert",
            4,
            format!("cannot read {}", dir.join("gone.pem").display()),
        ),
        (
            "a key file that holds a certificate",
            tls(&good.replace("node-a.key", "node-a.pem")),
            "tls.key",
            5,
            "holds no PEM private key".into(),
        ),
        (
            "a CA file that holds a key",
            tls(&good.replace("ca.pem", "node-a.key")),
            "tls.ca",
            6,
            "holds no PEM certificate".into(),
        ),
        (
            "a certificate whose CN is not node_id",
            tls(&good
                .replace("node-a.pem", "node-b.pem")
                .replace("node-a.key", "node-b.key")),
            "tls.cert",
            4,
            "has \"node-b\", but node_id is \"node-a\"".into(),
        ),
        (
            "a key that does not fit the certificate",
            tls(&good.replace("node-a.key", "node-b.key")),
            "tls.key",
            5,
            format!("{} does not fit", dir.join("node-b.key").display()),
        ),
        (
            "an unknown mode",
            tls(&format!("{good}mode = \"tls13\"\n")),
            "tls.mode",
            7,
            "\"direct\"".into(),
        ),
        (
            "an unknown key",
            tls(&format!("{good}verify = false\n")),
            "tls.verify",
            7,
            "unknown field".into(),
        ),
        (
            "no key file",
            tls("cert = \"node-a.pem\"\nca = \"ca.pem\"\n"),
            "tls.key",
            3,
            "missing field".into(),
        ),
        (
            "an empty file name",
            tls(&good.replace("\"ca.pem\"", "\"\"")),
            "tls.ca",
            6,
            "a file name is needed".into(),
        ),
        (
            "a warning window over ten years",
            tls(&format!("{good}expiry_warning_days = 3651\n")),
            "tls.expiry_warning_days",
            7,
            "3651 is not a number of days from 0 to 3650".into(),
        ),
        (
            "not a table",
            format!("{}tls = \"on\"\n", head.trim_end_matches("[tls]\n")),
            "tls",
            3,
            "expected a table".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (i, (name, text, key, line, says)) in cases.iter().enumerate() {
        let path = dir.join(format!("tls{i}.toml"));
        std::fs::write(&path, text).unwrap();
        // From another directory: relative paths must not follow the cwd.
        let output = Command::new(peerd::binary())
            .args(["run", "--config", path.to_str().unwrap()])
            .current_dir("/")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let wants = [format!("line {line}"), format!("`{key}`"), says.clone()];
        if output.status.code() != Some(2) || !wants.iter().all(|w| stderr.contains(w.as_str())) {
            failures.push(format!(
                "{name}: exit {:?}, wanted 2 and {wants:?} in: {}",
                output.status.code(),
                stderr.trim()
            ));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A node whose certificate expires within `tls.expiry_warning_days`
/// warns in its log and its status, and the status gives the certificate's
/// `notAfter`; one outside the window does not warn.
#[test]
fn a_certificate_near_its_expiry_is_warned_of() {
    use support::pki::{Authority, LeafSpec, Validity};
    const HOST: &str = "127.79.2.1";
    let dir = temp_dir("tls-expiry");
    let ca = Authority::new("peerd-cli expiry CA");
    ca.write_ca(&dir.join("ca.pem")).unwrap();
    let five_days = 5 * 86_400;
    let spec = LeafSpec {
        valid: Validity::FromNow(-3600, five_days),
        ..LeafSpec::node("node-a", &[HOST.parse().unwrap()])
    };
    ca.issue_spec(&spec).write(&dir, "node-a").unwrap();
    let config = |days: u32, admin: u16| {
        format!(
            "node_id = \"node-a\"\nlisten = [\"{HOST}:0\"]\nadmin = \"{HOST}:{admin}\"\n\
             [tls]\ncert = \"node-a.pem\"\nkey = \"node-a.key\"\nca = \"ca.pem\"\n\
             expiry_warning_days = {days}\n"
        )
    };
    let expected_ms = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + five_days as u64)
        * 1000;

    // Within the window (30 days): a warning in the log and the status.
    let admin = free_port(HOST);
    let path = dir.join("warn.toml");
    std::fs::write(&path, config(30, admin)).unwrap();
    let log = dir.join("warn.log");
    let node = spawn_node(&path, Some(&log));
    let status = wait_for(&format!("{HOST}:{admin}"), |_| true);
    let not_after = status["tls_not_after_ms"].as_u64().expect("notAfter");
    assert!(not_after.abs_diff(expected_ms) < 120_000, "{status:#}");
    let warnings = status["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{status:#}");
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.contains("node-a.pem expires in 4 day(s)") && warning.contains("renew it"),
        "{warning}"
    );
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("expires in 4 day(s)")
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no warning in the log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let human = run(
        &[
            "status",
            "--admin",
            &format!("{HOST}:{admin}"),
            "--timeout",
            "2",
        ],
        Duration::from_secs(10),
    );
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("warning: our certificate"), "{text}");
    drop(node);

    // Outside the window (3 days): no warning, the expiry still shown.
    let admin = free_port(HOST);
    let path = dir.join("quiet.toml");
    std::fs::write(&path, config(3, admin)).unwrap();
    let _node = spawn_node(&path, None);
    let status = wait_for(&format!("{HOST}:{admin}"), |_| true);
    assert_eq!(status["warnings"], serde_json::json!([]), "{status:#}");
    assert!(status["tls_not_after_ms"].as_u64().is_some(), "{status:#}");
}

/// The TLS flags of `ping` and `gluster-dump` go together, and a file that
/// cannot be read is a usage error (exit 2) naming the flag and the file.
#[test]
fn tls_flags_come_together_and_name_a_bad_file() {
    for command in ["ping", "gluster-dump"] {
        let mut args = vec![command, "127.0.0.1:1"];
        if command == "ping" {
            args.extend(["--prog", "1", "--vers", "1"]);
        }
        let alone = [args.clone(), vec!["--cert", "c.pem"]].concat();
        let output = run(&alone, Duration::from_secs(10));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("--key") && stderr.contains("--ca"),
            "{command}: {stderr}"
        );

        let cn_alone = [args.clone(), vec!["--server-cn", "glusterd"]].concat();
        let output = run(&cn_alone, Duration::from_secs(10));
        assert_eq!(output.status.code(), Some(2), "{command}");

        let missing = [
            args.clone(),
            vec!["--cert", "/nonexistent/c.pem", "--key", "k", "--ca", "ca"],
        ]
        .concat();
        let output = run(&missing, Duration::from_secs(10));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("--cert") && stderr.contains("/nonexistent/c.pem"),
            "{command}: {stderr}"
        );
    }
}

/// A `unix:` listen entry, relative to the config file's directory: the
/// socket file gets `unix_mode`; `peerd ping`
/// reaches it by path (the node serves no program there, so the NULL is
/// answered PROG_UNAVAIL: a round trip all the same); the status lists the
/// path and an inbound verdict with our credentials; SIGTERM removes the
/// file. `ping` of a missing path names it; `--source` with a path is a
/// command-line error.
#[test]
fn unix_listen_ping_and_status_credentials() {
    use std::os::unix::fs::PermissionsExt;
    // An address of its own on loopback, which nothing else here uses.
    const HOST: &str = "127.81.0.1";
    let (port, admin) = (free_port(HOST), free_port(HOST));
    let dir = temp_dir("unix");
    let socket = dir.join("node.socket");
    let socket_addr = format!("unix:{}", socket.display());
    // Written relative: it is taken from the config file's directory (as
    // the TLS files are), not from peerd's working directory.
    let text = format!(
        "node_id = \"node-u\"\nlisten = [\"{HOST}:{port}\", \"unix:node.socket\"]\n\
         unix_mode = 0o660\nadmin = \"{HOST}:{admin}\"\n"
    );
    let path = dir.join("unix.toml");
    std::fs::write(&path, text).unwrap();
    let mut child = spawn_node(&path, None);
    let admin = format!("{HOST}:{admin}");
    wait_for(&admin, |s| {
        s["listen"].as_array().is_some_and(|l| l.len() == 2)
    });
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);

    let output = run(
        &["ping", &socket_addr, "--prog", "542136146", "--vers", "1"],
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&socket_addr), "{stderr}");
    assert!(stderr.contains("program unavailable"), "{stderr}");

    let uid = nix::unistd::getuid().as_raw();
    let status = wait_for(&admin, |s| {
        s["inbound"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| !v["credentials"].is_null()))
    });
    assert_eq!(status["listen"][1], socket_addr.as_str(), "{status:#}");
    let inbound = status["inbound"].as_array().unwrap();
    let unix = inbound
        .iter()
        .find(|v| !v["credentials"].is_null())
        .unwrap();
    assert_eq!(unix["observed"], "unix", "{status:#}");
    assert_eq!(unix["verdict"], "accepted", "{status:#}");
    assert_eq!(unix["credentials"]["uid"], uid, "{status:#}");
    assert!(unix["credentials"]["pid"].as_i64().is_some(), "{status:#}");

    let absent = format!("unix:{}", dir.join("absent.socket").display());
    let output = run(
        &[
            "ping",
            &absent,
            "--prog",
            "1",
            "--vers",
            "1",
            "--timeout",
            "2",
        ],
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&absent), "{stderr}");
    let output = run(
        &[
            "ping",
            &socket_addr,
            "--prog",
            "1",
            "--vers",
            "1",
            "--source",
            "127.0.0.1",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(output.status.code(), Some(2));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let start = Instant::now();
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!socket.exists(), "the socket file outlived peerd");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The config of a `peerd run` node on `host` with one peer, `(id, host,
/// port)`, over mutual TLS: its certificate `NODE.pem` and key `NODE.key`
/// and the CA `ca.pem` beside the config, a ping every 0.1 s, and
/// `tls_extra` (whole lines) added to `[tls]`.
fn tls_pair_config(
    node: &str,
    host: &str,
    port: u16,
    admin: u16,
    peer: (&str, &str, u16),
    tls_extra: &str,
) -> String {
    let (id, peer_host, peer_port) = peer;
    format!(
        "node_id = \"{node}\"\nlisten = [\"{host}:{port}\"]\nadmin = \"{host}:{admin}\"\n\
         [source]\nv4 = \"{host}\"\n\
         [[peer]]\nid = \"{id}\"\ndial = [\"{peer_host}:{peer_port}\"]\nallow = [\"{peer_host}\"]\n\
         [timeouts]\nping_interval = 0.1\n\
         [tls]\ncert = \"{node}.pem\"\nkey = \"{node}.key\"\nca = \"ca.pem\"\n{tls_extra}"
    )
}

/// Two `peerd run` processes with `[tls]`: each links to the other over
/// mutual TLS, and `status --json` shows the peer's certificate CN and the
/// TLS version on the link and on the inbound verdict; the human status
/// has a tls column. A SIGHUP with a changed `[tls]` is refused (restart
/// needed), and the link stays.
#[test]
fn tls_link_between_two_peerd_processes() {
    use support::pki::Authority;
    const A: &str = "127.79.1.1";
    const B: &str = "127.79.1.2";
    let (a_port, a_admin, b_port, b_admin) =
        (free_port(A), free_port(A), free_port(B), free_port(B));
    let dir = temp_dir("tls-link");
    let ca = Authority::new("peerd-cli link CA");
    ca.write_ca(&dir.join("ca.pem")).unwrap();
    ca.issue("node-a", &[A.parse().unwrap()])
        .write(&dir, "node-a")
        .unwrap();
    ca.issue("node-b", &[B.parse().unwrap()])
        .write(&dir, "node-b")
        .unwrap();
    let config =
        |node: &str, host: &str, port: u16, admin: u16, peer: (&str, &str, u16), mode: &str| {
            tls_pair_config(
                node,
                host,
                port,
                admin,
                peer,
                &format!("mode = \"{mode}\"\n"),
            )
        };
    let a_path = dir.join("a.toml");
    let b_path = dir.join("b.toml");
    std::fs::write(
        &a_path,
        config(
            "node-a",
            A,
            a_port,
            a_admin,
            ("node-b", B, b_port),
            "direct",
        ),
    )
    .unwrap();
    std::fs::write(
        &b_path,
        config(
            "node-b",
            B,
            b_port,
            b_admin,
            ("node-a", A, a_port),
            "direct",
        ),
    )
    .unwrap();
    let a_log = dir.join("a.log");
    let node_a = spawn_node(&a_path, Some(&a_log));
    let _node_b = spawn_node(&b_path, None);
    let a_admin = format!("{A}:{a_admin}");
    let status = wait_for(&a_admin, |s| {
        peer_of(s, "node-b").is_some_and(|p| p["state"] == "connected" && !p["tls"].is_null())
            && s["inbound"].as_array().is_some_and(|v| {
                v.iter()
                    .any(|v| v["verdict"] == "accepted" && !v["tls"].is_null())
            })
    });
    let link = peer_of(&status, "node-b").unwrap();
    assert_eq!(link["tls"]["cn"], "node-b", "{status:#}");
    assert_eq!(link["tls"]["version"], "TLSv1.3", "{status:#}");
    assert!(link["tls"]["not_after_ms"].as_u64().is_some(), "{status:#}");
    assert!(
        link["local"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{A}:")),
        "{status:#}"
    );
    let inbound = status["inbound"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["verdict"] == "accepted" && v["peer"] == "node-b")
        .unwrap_or_else(|| panic!("no accepted verdict for node-b: {status:#}"));
    assert_eq!(inbound["tls"]["cn"], "node-b", "{status:#}");
    assert_eq!(inbound["tls"]["version"], "TLSv1.3", "{status:#}");
    assert!(
        inbound["observed"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{B}:")),
        "{status:#}"
    );

    let human = run(
        &["status", "--admin", &a_admin, "--timeout", "2"],
        Duration::from_secs(10),
    );
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(human.status.success(), "{text}");
    assert!(text.contains("TLSv1.3 CN node-b"), "no tls column: {text}");

    // A changed [tls] (mode) is refused by SIGHUP; the link stays.
    std::fs::write(
        &a_path,
        config(
            "node-a",
            A,
            a_port,
            a_admin.rsplit_once(':').unwrap().1.parse().unwrap(),
            ("node-b", B, b_port),
            "starttls",
        ),
    )
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(node_a.0.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let start = Instant::now();
    let log = loop {
        let log = std::fs::read_to_string(&a_log).unwrap_or_default();
        if log.contains("reload refused") || start.elapsed() > Duration::from_secs(10) {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        log.contains("reload refused") && log.contains("restart peerd"),
        "{log}"
    );
    let after = status_json(&a_admin).expect("a status");
    assert_eq!(after["config_generation"], 1, "{after:#}");
    assert_eq!(
        peer_of(&after, "node-b").unwrap()["state"],
        "connected",
        "{after:#}"
    );
    drop(node_a);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Waits (10 s at most) until the log at `path` holds `needle` `times`
/// times; returns the log.
fn wait_log(path: &std::path::Path, needle: &str, times: usize) -> String {
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.matches(needle).count() >= times {
            return log;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{needle:?} not logged {times} times: {log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The accepted inbound verdict for `peer` in `status`.
fn accepted_from<'a>(status: &'a serde_json::Value, peer: &str) -> &'a serde_json::Value {
    status["inbound"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["verdict"] == "accepted" && v["peer"] == peer)
        .unwrap_or_else(|| panic!("no accepted verdict for {peer}: {status:#}"))
}

/// SIGHUP renews a node's certificate and key without a restart: no link
/// is redialled and no ping fails (the links keep their local ports, the
/// peer still sees the old certificate on the live link, one accepted
/// connection each way). A key that does not fit is refused, naming the
/// file and the key, and the running material stays. A new `crl` on the
/// other node revokes the old certificate: that node cuts both links that
/// presented it (its own, and the inbound one, with a verdict), and both
/// are redialled with the renewed certificate.
#[test]
fn sighup_renews_tls_material_live_and_a_new_crl_cuts_the_revoked_link() {
    use support::pki::{Authority, LeafSpec, Validity};
    const A: &str = "127.79.2.1";
    const B: &str = "127.79.2.2";
    let (a_port, a_admin, b_port, b_admin) =
        (free_port(A), free_port(A), free_port(B), free_port(B));
    let dir = temp_dir("tls-renew");
    let ca = Authority::new("peerd-cli renew CA");
    ca.write_ca(&dir.join("ca.pem")).unwrap();
    let a_old = ca.issue("node-a", &[A.parse().unwrap()]);
    a_old.write(&dir, "node-a").unwrap();
    ca.issue("node-b", &[B.parse().unwrap()])
        .write(&dir, "node-b")
        .unwrap();
    let config = tls_pair_config;
    let a_path = dir.join("a.toml");
    let b_path = dir.join("b.toml");
    std::fs::write(
        &a_path,
        config(
            "node-a",
            A,
            a_port,
            a_admin,
            ("node-b", B, b_port),
            "expiry_warning_days = 60\n",
        ),
    )
    .unwrap();
    std::fs::write(
        &b_path,
        config("node-b", B, b_port, b_admin, ("node-a", A, a_port), ""),
    )
    .unwrap();
    let (a_log, b_log) = (dir.join("a.log"), dir.join("b.log"));
    let node_a = spawn_node(&a_path, Some(&a_log));
    let node_b = spawn_node(&b_path, Some(&b_log));
    let (a_admin, b_admin) = (format!("{A}:{a_admin}"), format!("{B}:{b_admin}"));
    let linked = |s: &serde_json::Value, peer: &str| {
        peer_of(s, peer).is_some_and(|p| p["state"] == "connected" && !p["tls"].is_null())
            && s["inbound"].as_array().is_some_and(|v| {
                v.iter()
                    .any(|v| v["verdict"] == "accepted" && v["peer"] == peer)
            })
    };
    let a_before = wait_for(&a_admin, |s| linked(s, "node-b"));
    let b_before = wait_for(&b_admin, |s| linked(s, "node-a"));
    assert_eq!(
        peer_of(&b_before, "node-a").unwrap()["tls"]["serial"],
        a_old.serial.as_str()
    );
    assert!(
        peer_of(&b_before, "node-a").unwrap()["tls"]["not_after_ms"].is_u64(),
        "{b_before:#}"
    );

    // Renew node-a's certificate and key, and SIGHUP it.
    // node-a warns: its certificate (30 days) expires within its window of
    // 60 days. The renewed one runs 90 days.
    let warned = &a_before["warnings"];
    assert_eq!(warned.as_array().map(Vec::len), Some(1), "{a_before:#}");
    let not_after_before = a_before["tls_not_after_ms"].as_u64().unwrap();
    let a_new = ca.issue_spec(&LeafSpec {
        valid: Validity::FromNow(-3600, 90 * 86_400),
        ..LeafSpec::node("node-a", &[A.parse().unwrap()])
    });
    a_new.write(&dir, "node-a").unwrap();
    let hup = |node: &KillOnDrop| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(node.0.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap()
    };
    hup(&node_a);
    let log = wait_log(&a_log, "reloaded", 1);
    assert!(
        log.contains(&format!("TLS renewed (certificate serial {}", a_new.serial)),
        "{log}"
    );
    // A few pings later: the same links, no failure.
    std::thread::sleep(Duration::from_millis(500));
    let a_after = wait_for(&a_admin, |s| s["config_generation"] == 2);
    let b_after = status_json(&b_admin).expect("a status");
    for (before, after, peer) in [
        (&a_before, &a_after, "node-b"),
        (&b_before, &b_after, "node-a"),
    ] {
        let (link_before, link_after) = (
            peer_of(before, peer).unwrap(),
            peer_of(after, peer).unwrap(),
        );
        assert_eq!(link_after["state"], "connected", "{after:#}");
        assert_eq!(
            link_after["local"], link_before["local"],
            "the link to {peer} was redialled: {after:#}"
        );
        assert!(link_after["last_error"].is_null(), "{after:#}");
        assert_eq!(accepted_from(after, peer)["count"], 1, "{after:#}");
    }
    // The status shows the renewed certificate, out of the warning window.
    let not_after = a_after["tls_not_after_ms"].as_u64().unwrap();
    assert!(
        not_after > not_after_before + 50 * 86_400_000,
        "{a_after:#}"
    );
    assert_eq!(a_after["warnings"], serde_json::json!([]), "{a_after:#}");
    // node-b's live link still runs on the certificate of its handshake.
    assert_eq!(
        peer_of(&b_after, "node-a").unwrap()["tls"]["serial"],
        a_old.serial.as_str()
    );
    for log in [&a_log, &b_log] {
        let log = std::fs::read_to_string(log).unwrap();
        assert!(
            !log.contains("ping failed") && !log.contains("connection lost"),
            "{log}"
        );
    }

    // A key that does not fit the certificate: refused, the file and the
    // key named; the running material stays.
    let stray = ca.issue("node-a", &[A.parse().unwrap()]);
    std::fs::write(dir.join("node-a.key"), &stray.key_pem).unwrap();
    hup(&node_a);
    let log = wait_log(&a_log, "reload refused", 1);
    assert!(
        log.contains("tls.key") && log.contains("node-a.key") && log.contains("does not fit"),
        "{log}"
    );
    let refused = status_json(&a_admin).expect("a status");
    assert_eq!(refused["config_generation"], 2, "{refused:#}");
    a_new.write(&dir, "node-a").unwrap();

    // node-b takes a CRL revoking node-a's old certificate: it cuts its
    // live link (which presented that certificate) and redials, meeting the
    // renewed one; node-a's own link to node-b goes on.
    std::fs::write(dir.join("revoked.pem"), ca.crl_pem(&[&a_old.serial])).unwrap();
    std::fs::write(
        &b_path,
        config(
            "node-b",
            B,
            b_port,
            b_admin.rsplit_once(':').unwrap().1.parse().unwrap(),
            ("node-a", A, a_port),
            "crl = [\"revoked.pem\"]\n",
        ),
    )
    .unwrap();
    hup(&node_b);
    let log = wait_log(&b_log, "reloaded", 1);
    assert!(log.contains("1 CRLs"), "{log}");
    let b_revoked = wait_for(&b_admin, |s| {
        peer_of(s, "node-a").is_some_and(|p| {
            p["state"] == "connected" && p["tls"]["serial"] == a_new.serial.as_str()
        })
    });
    assert_ne!(
        peer_of(&b_revoked, "node-a").unwrap()["local"],
        peer_of(&b_before, "node-a").unwrap()["local"],
        "{b_revoked:#}"
    );
    let log = wait_log(&b_log, "revoked", 1);
    assert!(log.contains(&a_old.serial), "{log}");
    // node-a's link to node-b presented the old certificate too (it was
    // made before the renewal): node-b cut it as well, with a verdict, and
    // node-a redialled with the renewed one.
    let b_last = wait_for(&b_admin, |s| {
        s["inbound"].as_array().is_some_and(|v| {
            v.iter().any(|v| {
                v["verdict"] == "accepted"
                    && v["peer"] == "node-a"
                    && v["tls"]["serial"] == a_new.serial.as_str()
            })
        })
    });
    let cut = b_last["inbound"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["verdict"] == "rejected")
        .unwrap_or_else(|| panic!("no verdict for the cut link: {b_last:#}"));
    let reason = cut["reason"].as_str().unwrap();
    assert!(
        reason.contains("no longer trusted") && reason.contains(&a_old.serial),
        "{b_last:#}"
    );
    let a_last = wait_for(&a_admin, |s| {
        peer_of(s, "node-b").is_some_and(|p| p["state"] == "connected")
    });
    assert_ne!(
        peer_of(&a_last, "node-b").unwrap()["local"],
        peer_of(&a_before, "node-b").unwrap()["local"],
        "{a_last:#}"
    );
    drop((node_a, node_b));
    std::fs::remove_dir_all(&dir).unwrap();
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

/// A `[[peer]]`'s own `source` replaces `[source]` for that peer only: a's
/// link to b binds b's override, its link to c binds `[source]`, and each
/// peer observed exactly that. A SIGHUP that drops the override moves b's
/// link to `[source]` (a new connection) and keeps c's (the same port).
#[test]
fn a_peers_own_source_replaces_the_sources_for_that_peer_and_reloads() {
    // Addresses of their own on loopback, which nothing else here uses.
    const A: &str = "127.82.0.1";
    const A_FOR_B: &str = "127.82.0.9";
    const B: &str = "127.82.0.2";
    const C: &str = "127.82.0.3";
    let (a_port, a_admin, b_port, c_port) =
        (free_port(A), free_port(A), free_port(B), free_port(C));
    let dir = temp_dir("peer-source");
    let node = |id: &str, host: &str, port: u16, peers: &str| {
        format!(
            "node_id = \"{id}\"\nlisten = [\"{host}:{port}\"]\n[source]\nv4 = \"{host}\"\n{peers}\
             [timeouts]\nping_interval = 0.1\n"
        )
    };
    let a_config = |b_source: &str| {
        node(
            "node-a",
            A,
            a_port,
            &format!(
                "[[peer]]\nid = \"node-b\"\ndial = [\"{B}:{b_port}\"]\nallow = [\"{B}\"]\n{b_source}\
                 [[peer]]\nid = \"node-c\"\ndial = [\"{C}:{c_port}\"]\nallow = [\"{C}\"]\n"
            ),
        )
        .replace("[source]", &format!("admin = \"{A}:{a_admin}\"\n[source]"))
    };
    // b admits a from both addresses; c only from `[source]`.
    let peer_a = |allow: &str| {
        format!("[[peer]]\nid = \"node-a\"\ndial = [\"{A}:{a_port}\"]\nallow = [{allow}]\n")
    };
    let paths = ["a", "b", "c"].map(|n| dir.join(format!("{n}.toml")));
    let override_b = format!("source = {{ v4 = \"{A_FOR_B}\" }}\n");
    std::fs::write(&paths[0], a_config(&override_b)).unwrap();
    std::fs::write(
        &paths[1],
        node(
            "node-b",
            B,
            b_port,
            &peer_a(&format!("\"{A}\", \"{A_FOR_B}\"")),
        ),
    )
    .unwrap();
    std::fs::write(
        &paths[2],
        node("node-c", C, c_port, &peer_a(&format!("\"{A}\""))),
    )
    .unwrap();
    let node_a = spawn_node(&paths[0], None);
    let _node_b = spawn_node(&paths[1], None);
    let _node_c = spawn_node(&paths[2], None);
    let admin = format!("{A}:{a_admin}");
    let both = |s: &serde_json::Value| {
        ["node-b", "node-c"]
            .iter()
            .all(|id| peer_of(s, id).is_some_and(|p| p["state"] == "connected"))
    };
    let ip_of = |v: &serde_json::Value| v.as_str().unwrap().rsplit_once(':').unwrap().0.to_owned();
    let before = wait_for(&admin, both);
    let (to_b, to_c) = (
        peer_of(&before, "node-b").unwrap(),
        peer_of(&before, "node-c").unwrap(),
    );
    assert_eq!(ip_of(&to_b["local"]), A_FOR_B, "{before:#}");
    assert_eq!(to_b["observed_by_peer"], to_b["local"], "{before:#}");
    assert_eq!(ip_of(&to_c["local"]), A, "{before:#}");
    assert_eq!(to_c["observed_by_peer"], to_c["local"], "{before:#}");
    let c_port_before = to_c["local"].clone();

    // Drop b's override: b's link now binds `[source]`; c's is untouched.
    std::fs::write(&paths[0], a_config("")).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(node_a.0.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let after = wait_for(&admin, |s| {
        s["config_generation"] == 2
            && both(s)
            && peer_of(s, "node-b").is_some_and(|p| {
                p["local"]
                    .as_str()
                    .is_some_and(|l| l.starts_with(&format!("{A}:")))
            })
    });
    let to_b = peer_of(&after, "node-b").unwrap();
    assert_eq!(to_b["observed_by_peer"], to_b["local"], "{after:#}");
    assert_eq!(
        peer_of(&after, "node-c").unwrap()["local"],
        c_port_before,
        "node-c's link must be kept: {after:#}"
    );
    drop(node_a);
    std::fs::remove_dir_all(&dir).unwrap();
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
