//! peerd with `[tls]`: its config errors and CLI flags, the expiry warning,
//! two nodes linked over mutual TLS, and live renewal and revocation on
//! SIGHUP.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{
    KillOnDrop, not_refused_as_wanted, peer_of, run, spawn_node, status_json, wait_for, write_pair,
};
use crate::support::common::free_port;
use crate::support::peerd;
use crate::support::temp::TempDir;

/// `[tls]` errors: exit 2, naming the file (where one is involved), the
/// key and the line. Paths are relative to the config file, wherever peerd
/// is started from.
#[test]
fn tls_config_errors_exit_2_naming_the_key() {
    use crate::support::pki::Authority;
    let dir = TempDir::new("peerd-cli-tls");
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
        failures.extend(not_refused_as_wanted(
            name,
            &output,
            &[format!("line {line}"), format!("`{key}`"), says.clone()],
        ));
    }
    drop(dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A node whose certificate expires within `tls.expiry_warning_days`
/// warns in its log and its status, and the status gives the certificate's
/// `notAfter`; one outside the window does not warn.
#[test]
fn a_certificate_near_its_expiry_is_warned_of() {
    use crate::support::pki::{Authority, LeafSpec, Validity};
    const HOST: &str = "127.79.2.1";
    let dir = TempDir::new("peerd-cli-tls-expiry");
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
    use crate::support::pki::Authority;
    const A: &str = "127.79.1.1";
    const B: &str = "127.79.1.2";
    let (a_port, a_admin, b_port, b_admin) =
        (free_port(A), free_port(A), free_port(B), free_port(B));
    let dir = TempDir::new("peerd-cli-tls-link");
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
    let (a_path, b_path) = write_pair(
        &dir,
        &config(
            "node-a",
            A,
            a_port,
            a_admin,
            ("node-b", B, b_port),
            "direct",
        ),
        &config(
            "node-b",
            B,
            b_port,
            b_admin,
            ("node-a", A, a_port),
            "direct",
        ),
    );
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
    use crate::support::pki::{Authority, LeafSpec, Validity};
    const A: &str = "127.79.2.1";
    const B: &str = "127.79.2.2";
    let (a_port, a_admin, b_port, b_admin) =
        (free_port(A), free_port(A), free_port(B), free_port(B));
    let dir = TempDir::new("peerd-cli-tls-renew");
    let ca = Authority::new("peerd-cli renew CA");
    ca.write_ca(&dir.join("ca.pem")).unwrap();
    let a_old = ca.issue("node-a", &[A.parse().unwrap()]);
    a_old.write(&dir, "node-a").unwrap();
    ca.issue("node-b", &[B.parse().unwrap()])
        .write(&dir, "node-b")
        .unwrap();
    let config = tls_pair_config;
    let (a_path, b_path) = write_pair(
        &dir,
        &config(
            "node-a",
            A,
            a_port,
            a_admin,
            ("node-b", B, b_port),
            "expiry_warning_days = 60\n",
        ),
        &config("node-b", B, b_port, b_admin, ("node-a", A, a_port), ""),
    );
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
}
