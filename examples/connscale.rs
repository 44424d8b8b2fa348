//! Connection scale: N connections from one source IP to M listener ports.
//!
//! The server and the client are this program again, run as child
//! processes, so that the client's and the server's RSS are measured apart
//! (from /proc/<pid>/status): one server process per listener port, and as
//! many client processes as RLIMIT_NOFILE requires (`--processes`, or
//! automatic). Every process raises RLIMIT_NOFILE itself and says so when
//! it cannot; where the hard limit cannot be raised (no CAP_SYS_RESOURCE,
//! as in some containers) the connections are spread over more processes,
//! all binding the same one source IP, which is what the port space cares
//! about.
//!
//! The client opens `--connections` peerwire [`Client`]s, each bound to
//! `--source` (127.0.0.2 by default) by the crate's [`Connector`] with the
//! default [`PortPolicy::Ephemeral`], i.e. port 0 and
//! `IP_BIND_ADDRESS_NO_PORT`, spread round-robin over `--ports` listeners on
//! 127.0.0.1. Each client's first call (NULL) connects it; `--parallel`
//! connects are in flight at once. It then holds them all, idle, for
//! `--hold` seconds and measures RSS, and finally makes one more call on
//! each.
//!
//! `--no-bind-address-no-port` binds without `IP_BIND_ADDRESS_NO_PORT`:
//! `bind` must then find a port free for every destination, and the source
//! runs out after one ephemeral range (`net.ipv4.ip_local_port_range`,
//! 32768–60999 by default: 28,232 ports), near 28,000 connections.
//!
//! Prints one JSON line. Exits with status 1 when, with
//! `IP_BIND_ADDRESS_NO_PORT` on, fewer connections than asked were reached
//! or held.
//!
//! ```text
//! cargo run --release --example connscale -- --connections 60000 --ports 4
//! ```
//!
//! [`Connector`]: peerwire::Connector
//! [`PortPolicy::Ephemeral`]: peerwire::PortPolicy::Ephemeral

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use peerwire::{
    Client, ClientOptions, ConnectOptions, Connector, Endpoint, Server, ServerOptions, Sources,
};

#[path = "bench_support/mod.rs"]
mod bench_support;

const PROGRAM: u32 = 0x2000_7e57;

#[derive(Parser, Debug)]
#[command(about = "N connections from one source IP to M listener ports")]
struct Args {
    /// Connections to open.
    #[arg(long, default_value_t = 60_000)]
    connections: usize,
    /// Listener ports on 127.0.0.1.
    #[arg(long, default_value_t = 4)]
    ports: usize,
    /// The one source IP every connection binds.
    #[arg(long, default_value = "127.0.0.2")]
    source: IpAddr,
    /// Bind without IP_BIND_ADDRESS_NO_PORT (shows the ~28k limit).
    #[arg(long)]
    no_bind_address_no_port: bool,
    /// Connects in flight at once.
    #[arg(long, default_value_t = 256)]
    parallel: usize,
    /// Seconds to hold the connections idle before measuring RSS.
    #[arg(long, default_value_t = 2.0)]
    hold: f64,
    /// Stop after this many failed connects.
    #[arg(long, default_value_t = 200)]
    max_failures: usize,
    /// Client processes; 0: as many as RLIMIT_NOFILE requires.
    #[arg(long, default_value_t = 0)]
    processes: usize,
    /// Internal: run as a server child.
    #[arg(long, hide = true)]
    serve_child: bool,
    /// Internal: run as a client child, to these ports.
    #[arg(long, hide = true)]
    client_child: Option<String>,
}

fn main() {
    let args = Args::parse();
    // glibc's default allocator settings here: RSS is what is measured.
    if args.serve_child {
        serve_child(&args);
    } else if let Some(ports) = &args.client_child {
        let ports: Vec<u16> = ports.split(',').map(|p| p.parse().unwrap()).collect();
        client_child(&args, &ports);
    } else {
        parent(&args);
    }
}

/// A child process and its output lines.
struct Child {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Child {
    fn start(args: &[String]) -> Child {
        let exe = std::env::current_exe().expect("our own path");
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a child");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Child { child, lines }
    }

    /// The rest of the first line that starts with `prefix`.
    fn expect(&mut self, prefix: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.expect("a child's output");
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_string();
            }
        }
        panic!("a child ended without saying {prefix:?}");
    }

    fn say(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        let _ = writeln!(stdin, "{line}");
        let _ = stdin.flush();
    }

    fn finish(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn parent(args: &Args) {
    let (nofile, note) = bench_support::raise_nofile(args.connections as u64 + 1024);
    if let Some(note) = &note {
        eprintln!("warning: {note}; spreading connections over processes");
    }
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("-");
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open").unwrap_or_default();
    let budget = (nofile as usize).saturating_sub(512).max(1);
    let processes = match args.processes {
        0 => args.connections.div_ceil(budget).max(1),
        n => n,
    };
    let ports_n = args.ports.max(1);
    if args.connections.div_ceil(ports_n) > budget {
        eprintln!(
            "warning: {} connections per server process exceed its descriptor budget of {budget}; use more --ports",
            args.connections.div_ceil(ports_n)
        );
    }
    // One server process per port.
    let mut servers: Vec<Child> = (0..ports_n)
        .map(|_| {
            Child::start(&[
                "--serve-child".into(),
                "--connections".into(),
                args.connections.div_ceil(ports_n).to_string(),
            ])
        })
        .collect();
    let ports: Vec<String> = servers.iter_mut().map(|s| s.expect("PORTS ")).collect();
    let server_rss0: u64 = servers.iter().map(|s| rss_of(s.child.id())).sum();
    // Client processes, each with its share of the connections, to every port.
    let share = args.connections.div_ceil(processes);
    let started = Instant::now();
    let mut clients: Vec<Child> = (0..processes)
        .map(|i| {
            let n = share.min(args.connections - (i * share).min(args.connections));
            let mut argv = vec![
                "--client-child".to_string(),
                ports.join(","),
                "--connections".into(),
                n.to_string(),
                "--source".into(),
                args.source.to_string(),
                "--parallel".into(),
                args.parallel.div_ceil(processes).to_string(),
                "--max-failures".into(),
                args.max_failures.to_string(),
            ];
            if args.no_bind_address_no_port {
                argv.push("--no-bind-address-no-port".into());
            }
            Child::start(&argv)
        })
        .collect();
    let ready: Vec<serde_json::Value> = clients
        .iter_mut()
        .map(|c| serde_json::from_str(&c.expect("READY ")).unwrap())
        .collect();
    let setup = started.elapsed();
    let field = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    let reached: u64 = ready.iter().map(|v| field(v, "reached")).sum();
    let failures: u64 = ready.iter().map(|v| field(v, "failures")).sum();
    let client_rss0: u64 = ready.iter().map(|v| field(v, "rss0")).sum();
    let first_error = ready
        .iter()
        .find_map(|v| v["first_error"].as_str().map(String::from));
    eprintln!(
        "{reached} connections in {:.1} s over {processes} client process(es); holding {} s",
        setup.as_secs_f64(),
        args.hold
    );
    std::thread::sleep(Duration::from_secs_f64(args.hold));
    let client_rss: u64 = clients.iter().map(|c| rss_of(c.child.id())).sum();
    let server_rss: u64 = servers.iter().map(|s| rss_of(s.child.id())).sum();
    // One more call on each, all of them still open.
    for client in &mut clients {
        client.say("CALL");
    }
    let calls_ok: u64 = clients
        .iter_mut()
        .map(|c| c.expect("CALLED ").parse::<u64>().unwrap())
        .sum();
    for client in clients {
        client.finish();
    }
    for server in servers {
        server.finish();
    }
    let per = |after: u64, before: u64| after.saturating_sub(before) / reached.max(1);
    let report = serde_json::json!({
        "connections_wanted": args.connections,
        "connections_reached": reached,
        "failures": failures,
        "first_error": first_error,
        "ports": ports_n,
        "source": args.source.to_string(),
        "bind_address_no_port": !args.no_bind_address_no_port,
        "ip_local_port_range": range,
        "fs_nr_open": nr_open.trim(),
        "nofile": nofile,
        "nofile_note": note,
        "client_processes": processes,
        "server_processes": ports_n,
        "setup_seconds": (setup.as_secs_f64() * 100.0).round() / 100.0,
        "setup_per_s": (reached as f64 / setup.as_secs_f64()).round(),
        "second_calls_ok": calls_ok,
        "rss_client_mib": client_rss >> 20,
        "rss_server_mib": server_rss >> 20,
        "rss_client_per_conn_bytes": per(client_rss, client_rss0),
        "rss_server_per_conn_bytes": per(server_rss, server_rss0),
        "rss_pair_per_conn_bytes": per(client_rss, client_rss0) + per(server_rss, server_rss0),
    });
    println!("{report}");
    // Short of the goal with IP_BIND_ADDRESS_NO_PORT on is a failure; the
    // --no-bind-address-no-port run is expected to fall short.
    if (reached < args.connections as u64 && !args.no_bind_address_no_port) || calls_ok < reached {
        std::process::exit(1);
    }
}

fn client_child(args: &Args, ports: &[u16]) {
    let (_, note) = bench_support::raise_nofile(args.connections as u64 + 256);
    if let Some(note) = note {
        eprintln!("warning (client): {note}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rss0 = bench_support::rss_bytes();
    runtime.block_on(async {
        let connect = ConnectOptions {
            sources: Sources::new().with(args.source),
            bind_address_no_port: !args.no_bind_address_no_port,
            ..ConnectOptions::default()
        };
        let options = ClientOptions {
            connect,
            ..ClientOptions::default()
        };
        let mut clients = Vec::with_capacity(args.connections);
        let mut failures = 0usize;
        let mut first_error = None;
        let mut pending = FuturesUnordered::new();
        let mut next = 0usize;
        let mut stopped = false;
        loop {
            while !stopped && next < args.connections && pending.len() < args.parallel {
                let port = ports[next % ports.len()];
                let dest = Endpoint::from(SocketAddr::from(([127, 0, 0, 1], port)));
                let client = Client::new(vec![dest], options.clone()).expect("a destination");
                next += 1;
                pending.push(async move {
                    let result = client.null(PROGRAM, 1).await;
                    (client, result)
                });
            }
            let Some((client, result)) = pending.next().await else {
                break;
            };
            match result {
                Ok(()) => clients.push(client),
                Err(error) => {
                    client.close();
                    failures += 1;
                    if first_error.is_none() {
                        // The client's error after retries is the circuit
                        // breaker's; one direct connect shows the cause.
                        let dest = Endpoint::from(SocketAddr::from(([127, 0, 0, 1], ports[0])));
                        let cause = match Connector::new(options.connect.clone())
                            .connect_any(&[dest])
                            .await
                        {
                            Ok(_) => "a direct connect now succeeds".to_string(),
                            Err(e) => e.to_string(),
                        };
                        eprintln!(
                            "first failure after {} connections: {error}; cause: {cause}",
                            clients.len()
                        );
                        first_error = Some(format!("{error}; cause: {cause}"));
                    }
                    if failures >= args.max_failures {
                        stopped = true;
                    }
                }
            }
        }
        println!(
            "READY {}",
            serde_json::json!({
                "reached": clients.len(),
                "failures": failures,
                "first_error": first_error,
                "rss0": rss0,
            })
        );
        // Wait for the parent's CALL (read on a thread: stdin blocks).
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            let _ = tx.send(());
        });
        let _ = rx.await;
        let mut calls_ok = 0usize;
        let mut calls = FuturesUnordered::new();
        let mut iter = clients.iter();
        loop {
            while calls.len() < args.parallel {
                let Some(client) = iter.next() else { break };
                calls.push(client.null(PROGRAM, 1));
            }
            match calls.next().await {
                Some(Ok(())) => calls_ok += 1,
                Some(Err(_)) => {}
                None => break,
            }
        }
        drop(calls);
        println!("CALLED {calls_ok}");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            let _ = tx.send(());
        });
        let _ = rx.await;
        for client in &clients {
            client.close();
        }
    });
}

fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn serve_child(args: &Args) {
    let (nofile, note) = bench_support::raise_nofile(args.connections as u64 + 1024);
    if let Some(note) = note {
        eprintln!("warning (server): {note}");
    }
    let _ = nofile;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = ServerOptions {
            max_connections: args.connections + 1024,
            ..ServerOptions::default()
        };
        let server = Server::new(options).service(
            PROGRAM,
            1,
            |_ctx, _procedure, args| async move { Ok(args) },
        );
        let addresses = vec!["127.0.0.1:0".parse().unwrap()];
        let server = server.serve(&addresses).expect("listen");
        let ports: Vec<String> = server
            .local_addrs()
            .iter()
            .map(|a| a.port().to_string())
            .collect();
        println!("PORTS {}", ports.join(","));
        // Serve until the parent closes our stdin.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            let _ = tx.send(());
        });
        let _ = rx.await;
        drop(server);
    });
}
