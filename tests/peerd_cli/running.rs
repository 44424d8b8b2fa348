//! `peerd run` nodes: SIGHUP reloads that apply only the difference, a
//! peer's own source, and `unix:` listeners with their credentials in the
//! status.

use std::time::{Duration, Instant};

use super::{KillOnDrop, peer_of, run, spawn_node, status_json, wait_for, write_pair};
use crate::support::common::free_port;
use crate::support::temp::TempDir;

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
    let dir = TempDir::new("peerd-cli-reload");
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
    let (a_path, b_path) = write_pair(
        &dir,
        &config("node-a", A, a_port, a_admin, &[("node-b", B, b_port)]),
        &config("node-b", B, b_port, b_admin, &[("node-a", A, a_port)]),
    );
    let a_log = dir.join("a.log");
    let node_a = spawn_node(&a_path, Some(&a_log));
    let _node_b = spawn_node(&b_path, None);
    let admin_port = a_admin;
    let a_admin = format!("{A}:{admin_port}");
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
            admin_port,
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
        config("node-a", A, a_port, admin_port, &[("node-b", B, b_port)]),
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
    let dir = TempDir::new("peerd-cli-unix");
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
    let dir = TempDir::new("peerd-cli-peer-source");
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
}
