//! `peerd run` processes on namespace hosts, checked through
//! `peerd status --json`: peers connect from their configured sources over
//! IPv4, IPv6 and link-local IPv6, each sees what the other observed, and a
//! peer configured with the wrong source is rejected with a reason.

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::netns::{self, Host, link};
use crate::support::peerd;

/// How long peers may take to connect, or a verdict to show.
const SETTLE: Duration = Duration::from_secs(15);

/// A `peerd run` in a host; killed if still running when dropped.
struct Daemon {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Writes `config` and starts `peerd run` on it in `host`.
    fn start(host: &Host, dir: &std::path::Path, name: &str, config: &str) -> Daemon {
        let path = dir.join(format!("{name}.toml"));
        fs::write(&path, config).unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = host
            .command(peerd::binary().to_str().unwrap())
            .args(["run", "--config", path.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(File::create(&log).unwrap())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting peerd for {name}: {e}"));
        Daemon {
            name: name.to_owned(),
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Rewrites its config and sends SIGHUP.
    fn reload(&self, dir: &std::path::Path, config: &str) {
        fs::write(dir.join(format!("{}.toml", self.name)), config).unwrap();
        let child = self.child.as_ref().unwrap();
        kill(Pid::from_raw(child.id() as i32), Signal::SIGHUP).unwrap();
    }

    /// SIGTERM, then the exit must be clean and quick.
    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        // `ip netns exec` execs peerd in place: the child is peerd.
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not stop on SIGTERM:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "{} ended with {status} after SIGTERM:\n{}",
            self.name,
            self.log()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("--- {} log ---\n{}", self.name, self.log());
        }
    }
}

/// `peerd status --admin ADDR --json` in `host`.
fn status(host: &Host, admin: &str) -> Option<Value> {
    let output = host
        .command(peerd::binary().to_str().unwrap())
        .args(["status", "--admin", admin, "--json", "--timeout", "2"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if !output.status.success() {
        return None;
    }
    Some(serde_json::from_slice(&output.stdout).expect("status --json is JSON"))
}

/// Polls the status until `done` holds for it; panics with the last one
/// and the logs otherwise.
fn wait_status(
    host: &Host,
    admin: &str,
    daemons: &[&Daemon],
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < SETTLE {
        if let Some(status) = status(host, admin) {
            if done(&status) {
                return status;
            }
            last = Some(status);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let logs: Vec<String> = daemons
        .iter()
        .map(|d| format!("--- {} ---\n{}", d.name, d.log()))
        .collect();
    panic!(
        "status of {admin} in {} did not settle within {SETTLE:?}; last: {last:#?}\n{}",
        host.name(),
        logs.join("\n")
    );
}

fn peer<'a>(status: &'a Value, id: &str) -> &'a Value {
    find_peer(status, id).unwrap_or_else(|| panic!("no peer {id} in {status:#}"))
}

/// The peer `id` of a status, if listed: for polling predicates, which must
/// be total (a transient status is polled again, never a panic).
fn find_peer<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["peers"].as_array()?.iter().find(|p| p["id"] == id)
}

/// True when some inbound verdict satisfies `what` (false while there is
/// no inbound list).
fn any_inbound(status: &Value, what: impl Fn(&Value) -> bool) -> bool {
    status["inbound"]
        .as_array()
        .is_some_and(|list| list.iter().any(what))
}

fn all_connected(status: &Value) -> bool {
    status["peers"].as_array().is_some_and(|peers| {
        peers
            .iter()
            .all(|p| p["state"] == "connected" && p["rtt_us"].is_u64())
    })
}

/// The IP part of "ip:port", "[ip]:port" or "[ip%scope]:port".
fn host_part(addr: &Value) -> String {
    let text = addr
        .as_str()
        .unwrap_or_else(|| panic!("not an address: {addr}"));
    let (host, _port) = text.rsplit_once(':').unwrap();
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

fn node_config(
    id: &str,
    listen: &[&str],
    v4: Option<&str>,
    v6: Option<&str>,
    peer: (&str, &[&str], &[&str]),
) -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = format!(
        "node_id = \"{id}\"\nlisten = [{}]\nadmin = \"127.0.0.1:24100\"\n[source]\n",
        list(listen)
    );
    if let Some(v4) = v4 {
        text.push_str(&format!("v4 = \"{v4}\"\n"));
    }
    if let Some(v6) = v6 {
        text.push_str(&format!("v6 = \"{v6}\"\n"));
    }
    let (peer_id, dial, allow) = peer;
    text.push_str(&format!(
        "[[peer]]\nid = \"{peer_id}\"\ndial = [{}]\nallow = [{}]\n[timeouts]\nping_interval = 0.2\nconnect = 2\ncall = 2\n",
        list(dial),
        list(allow)
    ));
    text
}

/// Two multi-homed hosts: a dials b over IPv6 from its second IPv6
/// address, b dials a over IPv4 from its own. Each side's status shows the
/// link connected from the configured source, and the other side observed
/// exactly that source.
pub fn peerd_nodes_connect_over_ipv4_and_ipv6_from_their_sources() {
    let a = Host::new("pda");
    let b = Host::new("pdb");
    link(&a, "veth0", &b, "veth0");
    for cidr in [
        "192.0.2.10/24",
        "192.0.2.11/24",
        "2001:db8:1::10/64",
        "2001:db8:1::11/64",
    ] {
        a.add_addr("veth0", cidr);
    }
    b.add_addr("veth0", "192.0.2.20/24");
    b.add_addr("veth0", "2001:db8:1::20/64");
    let dir = netns::run_dir("peerd");
    let da = Daemon::start(
        &a,
        &dir,
        "node-a",
        &node_config(
            "node-a",
            &["192.0.2.10:24007", "[2001:db8:1::10]:24007"],
            Some("192.0.2.11"),
            Some("2001:db8:1::11"),
            (
                "node-b",
                &["[2001:db8:1::20]:24007"],
                &["192.0.2.20/32", "2001:db8:1::20/128"],
            ),
        ),
    );
    let db = Daemon::start(
        &b,
        &dir,
        "node-b",
        &node_config(
            "node-b",
            &["192.0.2.20:24007", "[2001:db8:1::20]:24007"],
            Some("192.0.2.20"),
            Some("2001:db8:1::20"),
            (
                "node-a",
                &["192.0.2.10:24007"],
                &["192.0.2.11", "2001:db8:1::11"],
            ),
        ),
    );
    let sa = wait_status(&a, "127.0.0.1:24100", &[&da, &db], all_connected);
    let sb = wait_status(&b, "127.0.0.1:24100", &[&da, &db], all_connected);

    assert_eq!(sa["node_id"], "node-a");
    assert_eq!(
        sa["listen"],
        serde_json::json!(["192.0.2.10:24007", "[2001:db8:1::10]:24007"])
    );
    let ab = peer(&sa, "node-b");
    assert_eq!(ab["remote"], "[2001:db8:1::20]:24007", "{sa:#}");
    assert_eq!(host_part(&ab["local"]), "2001:db8:1::11", "{sa:#}");
    assert_eq!(ab["observed_by_peer"], ab["local"], "{sa:#}");
    assert!(ab["last_error"].is_null(), "{sa:#}");

    let ba = peer(&sb, "node-a");
    assert_eq!(ba["remote"], "192.0.2.10:24007", "{sb:#}");
    assert_eq!(host_part(&ba["local"]), "192.0.2.20", "{sb:#}");
    assert_eq!(ba["observed_by_peer"], ba["local"], "{sb:#}");

    // Each side's inbound verdicts: the other accepted, from its source.
    // Each status was read once its own links were up, maybe before the
    // other side's link had connected: read again until the verdict shows
    // (the HELLO answer goes out just before the verdict is recorded).
    let accepted = |from: &Value, id: &str| {
        let (from, id) = (from.clone(), id.to_owned());
        move |status: &Value| {
            any_inbound(status, |v| {
                v["observed"] == from
                    && v["peer"] == id.as_str()
                    && v["verdict"] == "accepted"
                    && v["reason"].is_null()
            })
        }
    };
    wait_status(
        &b,
        "127.0.0.1:24100",
        &[&da, &db],
        accepted(&ab["local"], "node-a"),
    );
    wait_status(
        &a,
        "127.0.0.1:24100",
        &[&da, &db],
        accepted(&ba["local"], "node-b"),
    );
    da.stop();
    db.stop();
}

/// Two hosts joined only by link-local addresses: sources, listeners and
/// allow entries all carry the interface, and the status writes them as
/// the config does.
pub fn peerd_nodes_connect_over_link_local() {
    let a = Host::new("pla");
    let b = Host::new("plb");
    link(&a, "veth0", &b, "veth1");
    a.add_addr("veth0", "fe80::a/64");
    b.add_addr("veth1", "fe80::b/64");
    let dir = netns::run_dir("peerd");
    let da = Daemon::start(
        &a,
        &dir,
        "node-a",
        &node_config(
            "node-a",
            &["[fe80::a%veth0]:24007"],
            None,
            Some("fe80::a%veth0"),
            ("node-b", &["[fe80::b%veth0]:24007"], &["fe80::b%veth0"]),
        ),
    );
    let db = Daemon::start(
        &b,
        &dir,
        "node-b",
        &node_config(
            "node-b",
            &["[fe80::b%veth1]:24007"],
            None,
            Some("fe80::b%veth1"),
            ("node-a", &["[fe80::a%veth1]:24007"], &["fe80::a%veth1"]),
        ),
    );
    let sa = wait_status(&a, "127.0.0.1:24100", &[&da, &db], all_connected);
    let sb = wait_status(&b, "127.0.0.1:24100", &[&da, &db], all_connected);
    assert_eq!(sa["listen"], serde_json::json!(["[fe80::a%veth0]:24007"]));

    let ab = peer(&sa, "node-b");
    assert_eq!(ab["remote"], "[fe80::b%veth0]:24007", "{sa:#}");
    assert_eq!(host_part(&ab["local"]), "fe80::a%veth0", "{sa:#}");
    // b saw us on its own interface, written by index (a's host has no
    // way to name b's interfaces).
    let port = ab["local"].as_str().unwrap().rsplit_once(':').unwrap().1;
    let b_index = b.if_index("veth1");
    assert_eq!(
        ab["observed_by_peer"],
        format!("[fe80::a%{b_index}]:{port}"),
        "{sa:#}"
    );

    let ba = peer(&sb, "node-a");
    assert_eq!(ba["remote"], "[fe80::a%veth1]:24007", "{sb:#}");
    assert_eq!(host_part(&ba["local"]), "fe80::b%veth1", "{sb:#}");
    let port = ba["local"].as_str().unwrap().rsplit_once(':').unwrap().1;
    let a_index = a.if_index("veth0");
    assert_eq!(
        ba["observed_by_peer"],
        format!("[fe80::b%{a_index}]:{port}"),
        "{sb:#}"
    );
    // b's inbound verdict names a's address with b's interface (read
    // again until it shows: see the IPv4/IPv6 scenario).
    let expected = ab["local"].as_str().unwrap().replace("%veth0", "%veth1");
    wait_status(&b, "127.0.0.1:24100", &[&da, &db], |s| {
        any_inbound(s, |v| {
            v["peer"] == "node-a"
                && v["verdict"] == "accepted"
                && v["observed"] == expected.as_str()
        })
    });
    da.stop();
    db.stop();
}

/// b is configured with a source no peer of a's allow list covers: a
/// refuses it at admission, before a byte is read, and shows the inbound
/// rejection ("address not admitted", from the observed address); b's
/// status shows its link to a down, with the error.
pub fn peerd_peer_with_the_wrong_source_is_rejected() {
    let a = Host::new("pwa");
    let b = Host::new("pwb");
    link(&a, "veth0", &b, "veth0");
    a.add_addr("veth0", "192.0.2.10/24");
    b.add_addr("veth0", "192.0.2.20/24");
    b.add_addr("veth0", "192.0.2.21/24");
    let dir = netns::run_dir("peerd");
    let da = Daemon::start(
        &a,
        &dir,
        "node-a",
        &node_config(
            "node-a",
            &["192.0.2.10:24007"],
            Some("192.0.2.10"),
            None,
            ("node-b", &["192.0.2.20:24007"], &["192.0.2.20"]),
        ),
    );
    let db = Daemon::start(
        &b,
        &dir,
        "node-b",
        &node_config(
            "node-b",
            &["192.0.2.20:24007"],
            Some("192.0.2.21"), // wrong: a allows node-b only from .20
            None,
            ("node-a", &["192.0.2.10:24007"], &["192.0.2.10"]),
        ),
    );
    // a admits only what some peer's allow list covers: b's wrong source
    // is refused at accept, before a byte is read, and shown as such.
    let sb = wait_status(&b, "127.0.0.1:24100", &[&da, &db], |s| {
        find_peer(s, "node-a").is_some_and(|p| p["last_error"].is_string())
    });
    let ba = peer(&sb, "node-a");
    assert!(ba["local"].is_null() && ba["rtt_us"].is_null(), "{sb:#}");
    assert_ne!(ba["state"], "connected", "{sb:#}");

    let sa = wait_status(&a, "127.0.0.1:24100", &[&da, &db], |s| {
        all_connected(s) && any_inbound(s, |v| v["verdict"] == "rejected")
    });
    let verdict = sa["inbound"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["verdict"] == "rejected")
        .unwrap();
    assert!(verdict["peer"].is_null(), "nothing was read: {sa:#}");
    assert_eq!(host_part(&verdict["observed"]), "192.0.2.21", "{sa:#}");
    assert_eq!(verdict["reason"], "address not admitted", "{sa:#}");
    assert!(verdict["count"].as_u64().is_some_and(|n| n >= 1), "{sa:#}");
    // a's own link to b is fine: b allows a's source.
    assert_eq!(peer(&sa, "node-b")["state"], "connected", "{sa:#}");
    da.stop();
    db.stop();
}

/// A node listening only on `[::]` (one dual-stack socket): its IPv4 peer
/// connects over IPv4 and is judged and shown as IPv4, its IPv6 link works,
/// and an IPv4 caller from an address no allow list covers is refused at
/// admission and shown as IPv4 (never `::ffff:…`).
pub fn peerd_dual_stack_listener_judges_and_shows_ipv4_callers_as_ipv4() {
    let a = Host::new("pxa");
    let b = Host::new("pxb");
    link(&a, "veth0", &b, "veth0");
    a.add_addr("veth0", "192.0.2.10/24");
    a.add_addr("veth0", "2001:db8:1::10/64");
    b.add_addr("veth0", "192.0.2.20/24");
    b.add_addr("veth0", "192.0.2.29/24"); // the impostor's
    b.add_addr("veth0", "2001:db8:1::20/64");
    let dir = netns::run_dir("peerd");
    let da = Daemon::start(
        &a,
        &dir,
        "node-a",
        &node_config(
            "node-a",
            &["[::]:24007"],
            Some("192.0.2.10"),
            Some("2001:db8:1::10"),
            (
                "node-b",
                &["[2001:db8:1::20]:24007"],
                &["192.0.2.20", "2001:db8:1::20"],
            ),
        ),
    );
    let db = Daemon::start(
        &b,
        &dir,
        "node-b",
        &node_config(
            "node-b",
            &["192.0.2.20:24007", "[2001:db8:1::20]:24007"],
            Some("192.0.2.20"),
            Some("2001:db8:1::20"),
            ("node-a", &["192.0.2.10:24007"], &["2001:db8:1::10"]),
        ),
    );
    wait_status(&a, "127.0.0.1:24100", &[&da, &db], all_connected);
    let sb = wait_status(&b, "127.0.0.1:24100", &[&da, &db], all_connected);
    // b reached a's [::] socket over IPv4, and a saw it as IPv4.
    let ba = peer(&sb, "node-a");
    assert_eq!(host_part(&ba["local"]), "192.0.2.20", "{sb:#}");
    assert_eq!(ba["observed_by_peer"], ba["local"], "{sb:#}");
    let from = ba["local"].clone();
    wait_status(&a, "127.0.0.1:24100", &[&da, &db], |s| {
        any_inbound(s, |v| {
            v["observed"] == from && v["peer"] == "node-b" && v["verdict"] == "accepted"
        })
    });

    // The impostor: a NULL call to a from 192.0.2.29, over IPv4.
    let output = b
        .command(peerd::binary().to_str().unwrap())
        .args([
            "ping",
            "192.0.2.10:24007",
            "--prog",
            "542136146",
            "--vers",
            "1",
            "--source",
            "192.0.2.29",
            "--timeout",
            "2",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success(), "the impostor got an answer");
    let sa = wait_status(&a, "127.0.0.1:24100", &[&da, &db], |s| {
        any_inbound(s, |v| v["reason"] == "address not admitted")
    });
    let verdict = sa["inbound"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["reason"] == "address not admitted")
        .unwrap();
    let observed = verdict["observed"].as_str().unwrap();
    assert!(observed.starts_with("192.0.2.29:"), "shown as IPv4: {sa:#}");
    assert_eq!(verdict["verdict"], "rejected", "{sa:#}");
    da.stop();
    db.stop();
}

/// SIGHUP on multi-homed hosts: adding a peer, changing the allow list and
/// removing the peer again keep the unchanged link's connection (the same
/// local port before and after); a bad config is refused and the running
/// one stays.
pub fn peerd_reload_keeps_unchanged_links() {
    let a = Host::new("pra");
    let b = Host::new("prb");
    link(&a, "veth0", &b, "veth0");
    a.add_addr("veth0", "192.0.2.10/24");
    a.add_addr("veth0", "2001:db8:1::10/64");
    b.add_addr("veth0", "192.0.2.20/24");
    b.add_addr("veth0", "2001:db8:1::20/64");
    let dir = netns::run_dir("peerd");
    let a_config = |extra: &str| {
        node_config(
            "node-a",
            &["192.0.2.10:24007"],
            Some("192.0.2.10"),
            Some("2001:db8:1::10"),
            (
                "node-b",
                &["[2001:db8:1::20]:24007"],
                &["2001:db8:1::20", "192.0.2.20"],
            ),
        )
        .replace("[timeouts]", &format!("{extra}[timeouts]"))
    };
    let da = Daemon::start(&a, &dir, "node-a", &a_config(""));
    let db = Daemon::start(
        &b,
        &dir,
        "node-b",
        &node_config(
            "node-b",
            &["[2001:db8:1::20]:24007"],
            Some("192.0.2.20"),
            Some("2001:db8:1::20"),
            (
                "node-a",
                &["192.0.2.10:24007"],
                &["192.0.2.10", "2001:db8:1::10"],
            ),
        ),
    );
    let admin = "127.0.0.1:24100";
    let before = wait_status(&a, admin, &[&da, &db], all_connected);
    let port = peer(&before, "node-b")["local"].clone();
    assert_eq!(before["config_generation"], 1, "{before:#}");

    // Add node-c (nobody there) with an allow entry of its own.
    let with_c =
        "[[peer]]\nid = \"node-c\"\ndial = [\"192.0.2.30:24007\"]\nallow = [\"192.0.2.30\"]\n";
    da.reload(&dir, &a_config(with_c));
    let added = wait_status(&a, admin, &[&da, &db], |s| {
        s["config_generation"] == 2 && find_peer(s, "node-c").is_some()
    });
    assert_eq!(peer(&added, "node-b")["local"], port, "{added:#}");

    // A bad config: refused, the running one stays.
    da.reload(
        &dir,
        "node_id = \"node-a\"\nlisten = [\"192.0.2.10:24007\"]\n[[peer]]\nid = \"\"\n",
    );
    let start = Instant::now();
    while !da.log().contains("reload refused") && start.elapsed() < SETTLE {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(da.log().contains("reload refused"), "{}", da.log());
    let still = status(&a, admin).expect("still running");
    assert_eq!(still["config_generation"], 2, "{still:#}");

    // Remove node-c: node-b's link is still the same connection.
    da.reload(&dir, &a_config(""));
    let removed = wait_status(&a, admin, &[&da, &db], |s| {
        s["config_generation"] == 3 && find_peer(s, "node-c").is_none() && all_connected(s)
    });
    assert_eq!(peer(&removed, "node-b")["local"], port, "{removed:#}");
    da.stop();
    db.stop();
}
