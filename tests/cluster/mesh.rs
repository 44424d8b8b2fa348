//! A cluster of `peerd run` processes on namespace hosts joined by one
//! bridge: the address plan, the configs and the processes. What
//! "converged" means, and the wait for it, is in `check.rs`.
//!
//! # Address plan (NETNS.md's ranges only)
//!
//! Host number `i` (members 1..=N, then a joiner, and an impostor at 250):
//! - IPv4 `198.51.100.i/24`, global IPv6 `2001:db8::i/64` (hex), link-local
//!   `fe80::i/64` (hex), all on `e0`;
//! - on every third member, decoys of both families on the same subnets,
//!   `198.51.100.(100+i)` (added first, so it is the kernel's preferred
//!   IPv4 source) and `2001:db8::d:i`: no link may ever use them.
//!
//! # Link kinds
//!
//! The link between members `i` and `j` is dialled by `(i + j) % 4`:
//! IPv6 first (IPv6 then IPv4), IPv4 first, link-local only (with a
//! per-peer `source = { v6 = "fe80::i%e0" }`), or IPv4 only. The kinds are
//! symmetric, so both directions of a pair use the same kind.
//!
//! # Neighbour entries
//!
//! The kernel's neighbour tables (ARP, NDP) are global across network
//! namespaces, with `gc_thresh3` = 1024 dynamic entries each, settable only
//! in the initial namespace. A full mesh of N hosts on one bridge needs
//! N × (N − 1) entries per family (plus as many link-local), so beyond
//! about 32 hosts resolution fails with "neighbour table overflow". Each
//! veth has a fixed MAC, so the harness programs every host's neighbours
//! as `nud permanent` entries, which the kernel exempts from those limits
//! (NOTES-cluster.md has the evidence). `Neigh::Dynamic` leaves resolution
//! to ARP/NDP, to show the limit.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::netns::{self, Host, link};
use crate::support::peerd;

/// The peerd port on every host.
const PORT: u16 = 24007;
/// Every node's admin listener (each host has its own loopback).
const ADMIN: &str = "127.0.0.1:24100";
/// The impostor's host number.
pub const IMPOSTOR: usize = 250;

/// How neighbours are resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Neigh {
    /// `nud permanent` entries for every other host (the default).
    Static,
    /// ARP and NDP, within the machine's global table limits.
    Dynamic,
}

/// How one link is dialled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    V6First,
    V4First,
    LinkLocal,
    V4Only,
}

impl Kind {
    pub fn of(i: usize, j: usize) -> Kind {
        match (i + j) % 4 {
            0 => Kind::V6First,
            1 => Kind::V4First,
            2 => Kind::LinkLocal,
            _ => Kind::V4Only,
        }
    }
}

pub fn v4(i: usize) -> String {
    format!("198.51.100.{i}")
}
pub fn v6(i: usize) -> String {
    format!("2001:db8::{i:x}")
}
pub fn ll(i: usize) -> String {
    format!("fe80::{i:x}")
}
pub fn decoys(i: usize) -> Option<(String, String)> {
    (i.is_multiple_of(3) && i < 100).then(|| {
        (
            format!("198.51.100.{}", 100 + i),
            format!("2001:db8::d:{i:x}"),
        )
    })
}
pub fn node_id(i: usize) -> String {
    format!("node-{i}")
}

/// One host of the cluster: its namespace, its MAC and its `e0` index.
pub struct Machine {
    pub host: Host,
    pub index: usize,
    pub mac: String,
    pub ifindex: u32,
}

/// A `peerd run` on a machine; killed when dropped.
pub struct Daemon {
    pub child: Option<Child>,
    pub log: PathBuf,
    pub config: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The whole cluster: the switch, the machines and their daemons.
pub struct Cluster {
    pub n: usize,
    pub switch: Host,
    /// Members 1..=N at `machines[i - 1]`, then the joiner (N + 1), then
    /// the impostor.
    pub machines: Vec<Machine>,
    pub daemons: Vec<Option<Daemon>>,
    pub dir: PathBuf,
    /// The members whose config lists the joiner (after it joined).
    pub members: usize,
}

impl Cluster {
    /// Builds N member hosts, the joiner's and the impostor's, on one
    /// bridge, with their addresses and (for `Neigh::Static`) every
    /// neighbour entry. Starts nothing.
    pub fn build(n: usize, neigh: Neigh) -> Cluster {
        let switch = Host::new("sw");
        switch.ip(&["link", "add", "br0", "type", "bridge"]);
        // No STP (ports forward at once) and no multicast snooping to learn.
        switch.ip(&["link", "set", "br0", "type", "bridge", "stp_state", "0"]);
        switch.ip(&["link", "set", "br0", "up"]);
        let numbers: Vec<usize> = (1..=n + 1).chain([IMPOSTOR]).collect();
        let mut machines = Vec::new();
        for &i in &numbers {
            let host = Host::new("cn");
            let port = format!("p{i}");
            link(&host, "e0", &switch, &port);
            switch.ip(&["link", "set", &port, "master", "br0"]);
            if let Some((d4, d6)) = decoys(i) {
                host.add_addr("e0", &format!("{d4}/24"));
                host.add_addr("e0", &format!("{d6}/64"));
            }
            host.add_addr("e0", &format!("{}/24", v4(i)));
            host.add_addr("e0", &format!("{}/64", v6(i)));
            host.add_addr("e0", &format!("{}/64", ll(i)));
            let mac = mac_of(&host, "e0");
            let ifindex = host.if_index("e0");
            machines.push(Machine {
                host,
                index: i,
                mac,
                ifindex,
            });
        }
        let dir = netns::run_dir("cluster");
        if neigh == Neigh::Static {
            for m in &machines {
                let mut batch = String::new();
                for other in machines.iter().filter(|o| o.index != m.index) {
                    let mut addrs = vec![v4(other.index), v6(other.index), ll(other.index)];
                    if let Some((d4, d6)) = decoys(other.index) {
                        addrs.extend([d4, d6]);
                    }
                    for addr in addrs {
                        let _ = writeln!(
                            batch,
                            "neigh replace {addr} lladdr {} dev e0 nud permanent",
                            other.mac
                        );
                    }
                }
                let file = dir.join(format!("neigh-{}", m.index));
                fs::write(&file, batch).unwrap();
                let result = m.host.try_ip(&["-batch", file.to_str().unwrap()]);
                let _ = fs::remove_file(&file);
                if let Err(e) = result {
                    panic!("programming the neighbours of host {}: {e}", m.index);
                }
            }
        }
        let count = machines.len();
        Cluster {
            n,
            switch,
            machines,
            daemons: (0..count).map(|_| None).collect(),
            dir,
            members: n,
        }
    }

    /// The machine of host number `i`.
    pub fn machine(&self, i: usize) -> &Machine {
        self.machines
            .iter()
            .find(|m| m.index == i)
            .unwrap_or_else(|| panic!("no host {i}"))
    }

    fn slot(&self, i: usize) -> usize {
        self.machines.iter().position(|m| m.index == i).unwrap()
    }

    /// The joiner's host number.
    pub fn joiner(&self) -> usize {
        self.n + 1
    }

    /// The config of member (or joiner) `i`, whose peers are `peers`.
    pub fn config(&self, i: usize, peers: &[usize]) -> String {
        self.config_as(i, &node_id(i), peers)
    }

    /// A config for host `i` that claims `id` (the impostor's uses another
    /// node's ID).
    pub fn config_as(&self, i: usize, id: &str, peers: &[usize]) -> String {
        let mut text = format!(
            "node_id = \"{id}\"\n\
             listen = [\"{}:{PORT}\", \"[{}]:{PORT}\", \"[{}%e0]:{PORT}\"]\n\
             admin = \"{ADMIN}\"\n\
             [source]\nv4 = \"{}\"\nv6 = \"{}\"\n",
            v4(i),
            v6(i),
            ll(i),
            v4(i),
            v6(i)
        );
        for &j in peers.iter().filter(|&&j| j != i) {
            let (dial, source) = match Kind::of(i, j) {
                Kind::V6First => (
                    format!("\"[{}]:{PORT}\", \"{}:{PORT}\"", v6(j), v4(j)),
                    String::new(),
                ),
                Kind::V4First => (
                    format!("\"{}:{PORT}\", \"[{}]:{PORT}\"", v4(j), v6(j)),
                    String::new(),
                ),
                Kind::LinkLocal => (
                    format!("\"[{}%e0]:{PORT}\"", ll(j)),
                    format!("source = {{ v6 = \"{}%e0\" }}\n", ll(i)),
                ),
                Kind::V4Only => (format!("\"{}:{PORT}\"", v4(j)), String::new()),
            };
            let _ = write!(
                text,
                "[[peer]]\nid = \"{}\"\ndial = [{dial}]\nallow = [\"{}\", \"{}\", \"{}%e0\"]\n{source}",
                node_id(j),
                v4(j),
                v6(j),
                ll(j)
            );
        }
        text.push_str("[timeouts]\nconnect = 5\ncall = 5\nping_interval = 1\nping_timeout = 6\n");
        text
    }

    /// Writes host `i`'s config and starts `peerd run` on it.
    pub fn start(&mut self, i: usize, config: &str) {
        let slot = self.slot(i);
        let path = self.dir.join(format!("host-{i}.toml"));
        fs::write(&path, config).unwrap();
        let log = self.dir.join(format!("host-{i}.log"));
        let file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = self.machines[slot]
            .host
            .command(&peerd_binary())
            .args(["run", "--config", path.to_str().unwrap()])
            .env("RUST_LOG", "info,peerwire::client::driver=debug")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting peerd on host {i}: {e}"));
        self.daemons[slot] = Some(Daemon {
            child: Some(child),
            log,
            config: path,
        });
    }

    /// `kill -9` host `i`'s peerd and reaps it.
    pub fn kill9(&mut self, i: usize) {
        let slot = self.slot(i);
        let daemon = self.daemons[slot].as_mut().expect("running");
        let mut child = daemon.child.take().unwrap();
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "host {i}'s peerd survived kill -9");
    }

    /// Rewrites host `i`'s config and sends SIGHUP.
    pub fn reload(&self, i: usize, config: &str) {
        let daemon = self.daemons[self.slot(i)].as_ref().expect("running");
        fs::write(&daemon.config, config).unwrap();
        kill(Pid::from_raw(daemon.pid().unwrap()), Signal::SIGHUP).unwrap();
    }

    /// Stops host `i`'s peerd (SIGKILL).
    pub fn stop(&mut self, i: usize) {
        let slot = self.slot(i);
        self.daemons[slot] = None;
    }

    /// The last `lines` lines of host `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let Some(daemon) = &self.daemons[self.slot(i)] else {
            return String::from("(not running)");
        };
        let text = fs::read_to_string(&daemon.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The whole log of host `i`.
    pub fn log(&self, i: usize) -> String {
        match &self.daemons[self.slot(i)] {
            Some(daemon) => fs::read_to_string(&daemon.log).unwrap_or_default(),
            None => String::new(),
        }
    }

    /// The pid of host `i`'s peerd.
    pub fn pid(&self, i: usize) -> Option<i32> {
        self.daemons[self.slot(i)].as_ref().and_then(Daemon::pid)
    }

    /// `peerd status --json` of each of `hosts`, run side by side; `None`
    /// for a node that did not answer.
    pub fn statuses(&self, hosts: &[usize]) -> Vec<Option<Value>> {
        let children: Vec<Option<Child>> = hosts
            .iter()
            .map(|&i| {
                self.machine(i)
                    .host
                    .command(&peerd_binary())
                    .args(["status", "--admin", ADMIN, "--json", "--timeout", "3"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .ok()
            })
            .collect();
        children
            .into_iter()
            .map(|child| {
                let output = child?.wait_with_output().ok()?;
                if !output.status.success() {
                    return None;
                }
                serde_json::from_slice(&output.stdout).ok()
            })
            .collect()
    }

    /// Member numbers 1..=members.
    pub fn member_list(&self) -> Vec<usize> {
        (1..=self.members).collect()
    }
}

/// The peerd binary: `PEERWIRE_CLUSTER_PEERD` (e.g. a release build, for
/// figures), else the debug build the tests make.
pub fn peerd_binary() -> String {
    match std::env::var("PEERWIRE_CLUSTER_PEERD") {
        Ok(path) if !path.is_empty() => path,
        _ => peerd::binary().to_str().unwrap().to_owned(),
    }
}

/// What a stuck host's kernel says: its sockets (`ss -s`), and its
/// neighbour entries that are not permanent, by state.
pub fn host_summary(host: &Host) -> String {
    let sockets = host
        .command("ss")
        .arg("-s")
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let neigh = host.try_ip(&["neigh", "show"]).unwrap_or_default();
    let mut states = std::collections::BTreeMap::new();
    for line in neigh.lines() {
        let state = line.split_whitespace().last().unwrap_or("?").to_owned();
        *states.entry(state).or_insert(0usize) += 1;
    }
    format!("{sockets}neighbour entries by state: {states:?}")
}

fn mac_of(host: &Host, dev: &str) -> String {
    let out = host.ip(&["-o", "link", "show", "dev", dev]);
    // "... link/ether 02:..:.. brd ff:ff:ff:ff:ff:ff ..."
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC for {dev} in {}: {out}", host.name()))
        .to_owned()
}

/// Reads `/proc/PID/...` figures of a process: (RSS in KiB, CPU ticks
/// user+system, open file descriptors).
pub fn proc_figures(pid: i32) -> Option<(u64, u64, usize)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the ")" of the command name: utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, ticks, fds))
}

/// Removes the work directory (the sandbox's /run goes anyway).
impl Drop for Cluster {
    fn drop(&mut self) {
        for daemon in &mut self.daemons {
            *daemon = None;
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
