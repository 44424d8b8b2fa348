//! peerd's configuration and command line: bad configs and arguments exit 2
//! naming the key and the line, and the documented shape is accepted.

use std::time::{Duration, Instant};

use super::{not_refused_as_wanted, run, spawn_node};
use crate::support::temp::TempDir;

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
    let dir = TempDir::new("peerd-cli-bad");
    let mut failures = Vec::new();
    for (i, (name, text, key, line)) in BAD.iter().enumerate() {
        let path = dir.join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let output = run(
            &["run", "--config", path.to_str().unwrap()],
            Duration::from_secs(10),
        );
        failures.extend(not_refused_as_wanted(
            name,
            &output,
            &[format!("line {line}"), format!("`{key}`")],
        ));
    }
    drop(dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_documented_config_shape_is_accepted() {
    // A good config gets past loading: the node starts, and a missing file
    // (not a bad config) is also exit 2, naming the file.
    let dir = TempDir::new("peerd-cli-good");
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
