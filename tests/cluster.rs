//! A cluster on one machine: N namespace hosts on one bridge, each a real
//! `peerd run` with its own config, in a full mesh over IPv6-first,
//! IPv4-first, IPv4-only and link-local links, through the events a
//! cluster meets. `tests/cluster/mesh.rs` has the address plan and the
//! convergence check; NOTES-cluster.md the figures and why N stops where
//! it does on one machine.
//!
//! Under `cargo test` it runs at `PEERWIRE_CLUSTER_N` nodes (default 32)
//! and requires every check. As a benchmark,
//! `PEERWIRE_CLUSTER_BENCH=16,32,48,64 cargo test --test cluster` runs the
//! same scenario once per N and prints one JSON line of figures per N
//! instead (set `PEERWIRE_CLUSTER_PEERD` to a release peerd, from
//! `cargo build --release --example peerd`, for figures of the release
//! build). `PEERWIRE_CLUSTER_NEIGH=dynamic` leaves
//! neighbour resolution to ARP and NDP, to show the machine's limit.
//!
//! `tests/cluster/revoke.rs` has a second scenario, at five nodes over
//! mutual TLS: a CRL revoking one node's certificate, given to every other
//! node by one SIGHUP each, cuts that node off while the others keep
//! their connections.
//!
//! Like tests/netns.rs, the binary has its own `main` (it must enter its
//! private namespaces before any thread exists) and fails rather than
//! skips under `PEERWIRE_REQUIRE_NETNS=1` when namespaces cannot be made.

mod support {
    #[path = "../support/harness.rs"]
    pub mod harness;
    // The cluster runs peerd processes on the harness's hosts; most of the
    // harness's helpers for scenarios written in Rust go unused here.
    #[allow(dead_code)]
    #[path = "../support/netns.rs"]
    pub mod netns;
    #[path = "../support/peerd.rs"]
    pub mod peerd;
    #[path = "../support/pki.rs"]
    pub mod pki;
}

#[path = "cluster/check.rs"]
mod check;
#[path = "cluster/mesh.rs"]
mod mesh;
#[path = "cluster/revoke.rs"]
mod revoke;

use std::panic;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use check::Expect;
use mesh::{Cluster, IMPOSTOR, Kind, Neigh, ll, node_id, v4, v6};
use support::netns;

/// The scenario's N under `cargo test`, unless `PEERWIRE_CLUSTER_N` says.
const DEFAULT_N: usize = 32;

fn main() {
    if let Ok(list) = std::env::var("PEERWIRE_CLUSTER_BENCH") {
        bench(&list);
    }
    netns::run_harness(vec![
        (
            "cluster_mesh_converges_through_churn",
            cluster_mesh_converges_through_churn,
        ),
        (
            "cluster_killed_half_way_leaves_no_process",
            cluster_killed_half_way_leaves_no_process,
        ),
        (
            "cluster_revoked_node_is_cut_off_by_every_other_node_in_one_reload",
            revoke::cluster_revoked_node_is_cut_off_by_every_other_node_in_one_reload,
        ),
    ]);
}

fn n_from_env() -> usize {
    std::env::var("PEERWIRE_CLUSTER_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| (4..=96).contains(n))
        .unwrap_or(DEFAULT_N)
}

fn neigh_from_env() -> Neigh {
    match std::env::var("PEERWIRE_CLUSTER_NEIGH").as_deref() {
        Ok("dynamic") => Neigh::Dynamic,
        _ => Neigh::Static,
    }
}

/// N nodes converge at start and after each event, every link from a
/// configured source (never a decoy) that its peer observed as such. The
/// figures are printed, not asserted.
fn cluster_mesh_converges_through_churn() {
    let figures = scenario(n_from_env(), neigh_from_env());
    println!("{figures}");
}

/// Benchmark mode: the scenario once per N of `list`, one JSON line each.
fn bench(list: &str) -> ! {
    if let Err(reason) = netns::enter_sandbox() {
        eprintln!("cluster benchmark: no netns sandbox: {reason}");
        std::process::exit(1);
    }
    let mut failed = false;
    for n in list
        .split(',')
        .filter_map(|n| n.trim().parse::<usize>().ok())
    {
        let neigh = neigh_from_env();
        match panic::catch_unwind(|| scenario(n, neigh)) {
            Ok(figures) => println!("{figures}"),
            Err(payload) => {
                failed = true;
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let first = message.lines().take(6).collect::<Vec<_>>().join(" | ");
                println!(
                    "{}",
                    json!({ "n": n, "neigh": format!("{neigh:?}"), "error": first })
                );
            }
        }
    }
    std::process::exit(i32::from(failed));
}

/// The generous bound on any one convergence: the figure is what matters,
/// reported by the benchmark; this only turns a hang into a failure.
fn bound(n: usize) -> Duration {
    Duration::from_secs((3 * n as u64).max(90))
}

fn scenario(n: usize, neigh: Neigh) -> Value {
    let load_before = load_average();
    // Each peerd inherits this process's limit and needs about two
    // descriptors per peer plus a dozen; say so plainly if it cannot.
    let (soft, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    let needed = 4 * n as u64 + 64;
    assert!(
        soft >= needed,
        "the open-file limit ({soft}, hard {hard}) is below the {needed} a peerd of a \
         {n}-node mesh may need; raise it (ulimit -n) or lower PEERWIRE_CLUSTER_N"
    );
    let nofile = json!({ "soft": soft, "hard": hard });
    // Built (by the first call) before anything is timed.
    mesh::peerd_binary();
    let built = Instant::now();
    let mut c = Cluster::build(n, neigh);
    let build_s = built.elapsed().as_secs_f64();
    let bound = bound(n);
    let members = c.member_list();
    let mut times = serde_json::Map::new();
    let mut time = |name: &str, d: Duration| {
        times.insert(
            name.into(),
            json!((d.as_secs_f64() * 100.0).round() / 100.0),
        );
    };

    // Start: every node at once.
    let t = Instant::now();
    for &i in &members {
        let config = c.config(i, &members);
        c.start(i, &config);
    }
    check::converge(&c, "start", &Expect::default(), bound);
    time("start", t.elapsed());
    let rest = at_rest(&c, &members, Duration::from_secs(5));

    // 1. kill -9 a quarter; the others see their links go down; restart.
    let quarter: Vec<usize> = members
        .iter()
        .copied()
        .filter(|i| i.is_multiple_of(4))
        .collect();
    for &q in &quarter {
        c.kill9(q);
    }
    let lost = Expect {
        down: pairs_touching(&members, &quarter),
        removed: Vec::new(),
    };
    let t = Instant::now();
    converge_others(
        &c,
        &members,
        &quarter,
        "after kill -9 of a quarter",
        &lost,
        bound,
    );
    time("kill9_seen", t.elapsed());
    let t = Instant::now();
    for &q in &quarter {
        let config = c.config(q, &members);
        c.start(q, &config);
    }
    check::converge(
        &c,
        "after restarting the killed quarter",
        &Expect::default(),
        bound,
    );
    time("kill9_restart", t.elapsed());

    // 2. Remove a node's configured IPv4 source (a node with decoys).
    let x = 3;
    assert!(mesh::decoys(x).is_some(), "host {x} has decoys");
    let cidr = format!("{}/24", v4(x));
    c.machine(x).host.del_addr("e0", &cidr);
    let mut down = Vec::new();
    for &j in members.iter().filter(|&&j| j != x) {
        if Kind::of(x, j) == Kind::V4Only {
            // No other family to fail over to: the bind error names it.
            down.push(((x, j), Some(format!("failed to bind source {}", v4(x)))));
            down.push(((j, x), None));
        }
    }
    let removed = Expect {
        down,
        removed: vec![v4(x)],
    };
    let t = Instant::now();
    check::converge(&c, "after removing a source address", &removed, bound);
    time("source_removed", t.elapsed());
    c.machine(x).host.add_addr("e0", &cidr);
    let t = Instant::now();
    check::converge(
        &c,
        "after restoring the source address",
        &Expect::default(),
        bound,
    );
    time("source_restored", t.elapsed());

    // 3. Partition a quarter (their bridge ports down), then heal.
    let cut: Vec<usize> = members.iter().copied().filter(|i| i % 4 == 1).collect();
    for &p in &cut {
        c.switch.ip(&["link", "set", &format!("p{p}"), "down"]);
    }
    let partitioned = Expect {
        down: pairs_touching(&members, &cut),
        removed: Vec::new(),
    };
    let t = Instant::now();
    check::converge(&c, "with a quarter partitioned", &partitioned, bound);
    time("partition_seen", t.elapsed());
    for &p in &cut {
        c.switch.ip(&["link", "set", &format!("p{p}"), "up"]);
    }
    let t = Instant::now();
    check::converge(&c, "after healing the partition", &Expect::default(), bound);
    time("partition_healed", t.elapsed());

    // 4. An impostor claims node-2's ID from its own addresses: every
    // member it reaches refuses it (an inbound rejection from its address, never an
    // acceptance), and the mesh stays as it was.
    // It dials every member but the one it claims to be.
    let reached: Vec<usize> = members.iter().copied().filter(|&i| i != 2).collect();
    let t = Instant::now();
    let config = c.config_as(IMPOSTOR, &node_id(2), &reached);
    c.start(IMPOSTOR, &config);
    impostor_rejected_by_all(&c, &reached, bound);
    time("impostor_rejected", t.elapsed());
    check::converge(&c, "with the impostor around", &Expect::default(), bound);
    c.stop(IMPOSTOR);

    // 5. A node joins; the others learn it by SIGHUP, keeping their links.
    let before = check::locals(&c);
    let joiner = c.joiner();
    let all: Vec<usize> = members.iter().copied().chain([joiner]).collect();
    let t = Instant::now();
    let config = c.config(joiner, &all);
    c.start(joiner, &config);
    for &i in &members {
        c.reload(i, &c.config(i, &all));
    }
    c.members = joiner;
    check::converge(&c, "after a node joined", &Expect::default(), bound);
    time("join", t.elapsed());
    let after = check::locals(&c);
    let changed: Vec<_> = before.difference(&after).take(5).collect();
    assert!(
        changed.is_empty(),
        "links changed their connection across the reload (node, peer, local before): {changed:?}"
    );
    let generations = c.statuses(&members);
    for (&i, status) in members.iter().zip(&generations) {
        let generation = status.as_ref().map(|s| s["config_generation"].clone());
        assert_eq!(
            generation,
            Some(json!(2)),
            "{} did not apply the reload:\n{}",
            node_id(i),
            c.log_tail(i, 20)
        );
    }

    // File descriptors after all the churn, against those at rest: a
    // leak of sockets from failed or lost connections would show here.
    let fds_end = at_rest(&c, &all, Duration::from_secs(1))["fds"].clone();
    let sockets = tcp_states(&c, &all);
    // And once more after a quiet while: what the events left for good.
    std::thread::sleep(Duration::from_secs(20));
    let fds_later = at_rest(&c, &all, Duration::from_secs(1))["fds"].clone();
    let sockets_later = tcp_states(&c, &all);
    let (attempts, failures) = connect_counts(&c, &all);
    json!({
        "n": n,
        "links": n * (n - 1),
        "neigh": format!("{neigh:?}"),
        "build_s": (build_s * 10.0).round() / 10.0,
        "converge_s": times,
        "at_rest": rest,
        "fds_end": fds_end,
        // Each link is two established sockets, the client's and the
        // server's: more means connections the server still holds after
        // its client gave them up.
        "tcp_end": sockets,
        "fds_end_plus_20s": fds_later,
        "tcp_end_plus_20s": sockets_later,
        "tcp_established_expected": 2 * (n + 1) * n,
        "connect_attempts": attempts,
        "connect_failures": failures,
        "nofile_limit": nofile,
        "load_before": load_before,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    })
}

/// Every (a, b) and (b, a) link between a node of `some` and any other
/// member, each expected down.
fn pairs_touching(members: &[usize], some: &[usize]) -> Vec<((usize, usize), Option<String>)> {
    let mut down = Vec::new();
    for &a in members {
        for &b in members {
            if a != b && (some.contains(&a) || some.contains(&b)) {
                down.push(((a, b), None));
            }
        }
    }
    down
}

/// Like [`mesh::converge`], over the members not in `gone` (which do not
/// answer while they are dead).
fn converge_others(
    c: &Cluster,
    members: &[usize],
    gone: &[usize],
    what: &str,
    expect: &Expect,
    bound: Duration,
) {
    let start = Instant::now();
    let alive: Vec<usize> = members
        .iter()
        .copied()
        .filter(|i| !gone.contains(i))
        .collect();
    loop {
        let mut problems = Vec::new();
        for (&i, status) in alive.iter().zip(c.statuses(&alive)) {
            check::check_node(c, i, members, status.as_ref(), expect, &mut problems);
        }
        if problems.is_empty() {
            return;
        }
        if start.elapsed() > bound {
            let p = &problems[0];
            panic!(
                "{what}: {} problems after {bound:?}; first: node {} -> peer {}: state {}: {}\n--- {}'s log ---\n{}",
                problems.len(),
                node_id(p.node),
                p.peer,
                p.state,
                p.what,
                node_id(p.node),
                c.log_tail(p.node, 40)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until every member shows an inbound rejection from one of the
/// impostor's addresses; no member may ever show it accepted.
fn impostor_rejected_by_all(c: &Cluster, members: &[usize], bound: Duration) {
    let theirs = [v4(IMPOSTOR), v6(IMPOSTOR), ll(IMPOSTOR)];
    let from_impostor = |verdict: &Value| {
        verdict["observed"]
            .as_str()
            .and_then(check::split_addr)
            .is_some_and(|(ip, _, _)| theirs.contains(&ip))
    };
    let start = Instant::now();
    loop {
        let mut missing = Vec::new();
        for (&i, status) in members.iter().zip(c.statuses(members)) {
            let inbound: Vec<Value> = status
                .as_ref()
                .and_then(|s| s["inbound"].as_array().cloned())
                .unwrap_or_default();
            let accepted: Vec<&Value> = inbound
                .iter()
                .filter(|v| from_impostor(v) && v["verdict"] != "rejected")
                .collect();
            assert!(
                accepted.is_empty(),
                "{} accepted the impostor claiming node-2: {accepted:?}",
                node_id(i)
            );
            if !inbound
                .iter()
                .any(|v| from_impostor(v) && v["verdict"] == "rejected")
            {
                missing.push(i);
            }
        }
        if missing.is_empty() {
            return;
        }
        if start.elapsed() > bound {
            panic!(
                "the impostor's rejection never showed in the inbound of {:?}; {}'s log:\n{}\n--- the impostor's log ---\n{}",
                missing.iter().map(|&i| node_id(i)).collect::<Vec<_>>(),
                node_id(missing[0]),
                c.log_tail(missing[0], 30),
                c.log_tail(IMPOSTOR, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// RSS, CPU and file descriptors of every member's peerd over `window`
/// with nobody polling.
fn at_rest(c: &Cluster, members: &[usize], window: Duration) -> Value {
    let pids: Vec<i32> = members.iter().filter_map(|&i| c.pid(i)).collect();
    let before: Vec<_> = pids.iter().map(|&p| mesh::proc_figures(p)).collect();
    std::thread::sleep(window);
    let after: Vec<_> = pids.iter().map(|&p| mesh::proc_figures(p)).collect();
    let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let (mut rss, mut cpu, mut fds) = (Vec::new(), Vec::new(), Vec::new());
    for (b, a) in before.iter().zip(&after) {
        if let (Some(b), Some(a)) = (b, a) {
            rss.push(a.0 as f64 / 1024.0);
            cpu.push((a.1 - b.1) as f64 / tick / window.as_secs_f64() * 100.0);
            fds.push(a.2 as f64);
        }
    }
    let stats = |v: &[f64]| {
        let max = v.iter().copied().fold(0.0, f64::max);
        let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
        json!({ "mean": (mean * 10.0).round() / 10.0, "max": (max * 10.0).round() / 10.0 })
    };
    json!({ "rss_mib": stats(&rss), "cpu_pct": stats(&cpu), "fds": stats(&fds) })
}

/// Connection attempts of every link over the whole run, from the logs:
/// (attempts, failed ones by cause).
fn connect_counts(c: &Cluster, hosts: &[usize]) -> (usize, Value) {
    let (mut connected, mut failed) = (0, 0);
    let mut causes = std::collections::BTreeMap::new();
    for &i in hosts {
        let log = c.log(i);
        connected += log.matches("peerwire::client::driver: connected").count();
        for line in log.lines().filter(|l| l.contains("connect failed")) {
            failed += 1;
            let line = line.to_lowercase();
            let cause = [
                ("refused our identity", "identity"),
                ("refused", "refused"),
                ("timed out", "timed out"),
                ("failed to bind", "bind"),
                ("unreachable", "unreachable"),
                ("no route", "unreachable"),
                ("reset", "reset"),
            ]
            .iter()
            .find(|(text, _)| line.contains(text))
            .map_or("other", |(_, name)| name);
            *causes.entry(cause).or_insert(0usize) += 1;
        }
    }
    (
        connected + failed,
        json!({ "total": failed, "by_cause": causes }),
    )
}

/// TCP sockets by state over the hosts' namespaces (`ss -tan`).
fn tcp_states(c: &Cluster, hosts: &[usize]) -> Value {
    let mut states = std::collections::BTreeMap::new();
    for &i in hosts {
        let output = c
            .machine(i)
            .host
            .command("ss")
            .args(["-tan"])
            .stdin(Stdio::null())
            .output();
        let Ok(output) = output else { continue };
        for line in String::from_utf8_lossy(&output.stdout).lines().skip(1) {
            let mut words = line.split_whitespace();
            if let Some(state) = words.next() {
                // The status polls' own connections, to the admin port on
                // loopback, apart from the mesh's.
                let admin = words.any(|w| w.ends_with(":24100"));
                let key = if admin {
                    format!("{state} (admin)")
                } else {
                    state.to_owned()
                };
                *states.entry(key).or_insert(0usize) += 1;
            }
        }
    }
    json!(states)
}

fn load_average() -> Value {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .map_or(Value::Null, Value::from)
}

/// Runs this binary's scenario at 8 nodes as a child, kills it with
/// SIGKILL once its peerd processes run, and checks that every one of
/// them is gone: a test that fails half way leaves no process behind.
/// (Its namespaces and files belong to the child's own sandbox, a private
/// mount namespace with /run on a tmpfs, and go with it.)
fn cluster_killed_half_way_leaves_no_process() {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe);
    child
        .args([
            "--exact",
            "cluster_mesh_converges_through_churn",
            "--nocapture",
        ])
        .env("PEERWIRE_CLUSTER_N", "8")
        .env_remove("PEERWIRE_CLUSTER_BENCH")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    support::harness::die_with_parent(&mut child);
    let mut child = child.spawn().expect("re-running this test binary");
    let pid = child.id() as i32;
    let start = Instant::now();
    let daemons = loop {
        let found = peerd_descendants(pid);
        if found.len() >= 8 {
            break found;
        }
        if start.elapsed() > Duration::from_secs(120) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child scenario never had 8 peerd processes running (saw {found:?})");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let start = Instant::now();
    loop {
        let left: Vec<i32> = daemons.iter().copied().filter(|&p| is_peerd(p)).collect();
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "peerd processes {left:?} outlived the killed test process"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pids of the `peerd` processes whose parent is `parent`.
fn peerd_descendants(parent: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent) && head.ends_with("(peerd") {
            found.push(pid);
        }
    }
    found
}

/// True while `pid` is a live (not zombie) peerd.
fn is_peerd(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')').is_some_and(|(head, rest)| {
            head.ends_with("(peerd") && !rest.trim_start().starts_with('Z')
        })
    })
}
