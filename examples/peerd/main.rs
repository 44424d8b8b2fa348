//! peerd: peerwire's example peer daemon and diagnostic CLI.
//!
//! ```text
//! cargo run --example peerd -- demo                    # three nodes and an impostor, on loopback
//! cargo run --example peerd -- demo --tls              # the same over mutual TLS
//! peerd run --config node.toml                         # one node
//! peerd status --admin 127.0.0.1:24100 [--json]        # a running node's view
//! peerd ping 192.0.2.20:111 --prog 100000 --vers 2 --source 192.0.2.10
//! peerd gluster-dump 192.0.2.20:24007 --source 192.0.2.10
//! peerd gluster-dump 192.0.2.20:24007 --cert c.pem --key c.key --ca ca.pem --server-cn glusterd
//! peerd gluster-dump unix:/run/glusterd.socket          # glusterd's CLI socket
//! ```
//!
//! It uses only peerwire's public API. See examples/peerd/README.md for the
//! config reference and the status JSON schema.

mod config;
mod demo;
mod demo_tls;
mod node;
// Shared with the tests (tests/support/pki.rs includes it), which also
// use its file helpers, CRLs and chosen serials and validity windows.
#[allow(dead_code)]
mod pki;
mod status;
// Parsed and validated now; handed to the client and server once peerd is
// built with peerwire's TLS.
#[allow(dead_code)]
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use peerwire::programs::gf_dump::{GfDumpRequest, GfDumpV1Client};
use peerwire::{
    Address, Client, ClientOptions, ConnectOptions, Connector, Endpoint, Error, Link, ScopedIp,
    Sources,
};
use tracing_subscriber::EnvFilter;

/// Exit code for a bad configuration or command line.
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "peerd",
    version,
    about = "peerwire's example peer daemon and diagnostic CLI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Three nodes at 127.0.0.1-3 in a full mesh (plus an IPv6 link over ::1
    /// where it works) and an impostor on node-3's address (127.0.0.3) claiming node-2's ID.
    /// Exits 0 when every verdict is as expected.
    Demo {
        /// Every link over mutual TLS, with a throwaway CA made in memory;
        /// the impostor holds a valid certificate for node-2's address.
        #[arg(long)]
        tls: bool,
    },
    /// Runs one node from a TOML config until SIGINT or SIGTERM.
    Run {
        /// The node's config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Shows a running node's view, from its admin listener.
    Status {
        /// The node's admin address (its `admin` key).
        #[arg(long)]
        admin: Endpoint,
        /// Print the JSON (the schema is in examples/peerd/README.md) instead of tables.
        #[arg(long)]
        json: bool,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
    },
    /// Calls NULL of a program version from a chosen source, like rpcinfo
    /// over TCP. Exits 0 when it succeeds, 1 otherwise.
    Ping {
        /// The server, e.g. 192.0.2.20:111, [fe80::b%eth0]:24007 or
        /// unix:/run/glusterd.socket.
        addr: Address,
        /// The program number.
        #[arg(long)]
        prog: u32,
        /// The version.
        #[arg(long)]
        vers: u32,
        /// The source to bind, e.g. 192.0.2.10 or fe80::a%eth0.
        #[arg(long)]
        source: Option<ScopedIp>,
        /// Seconds to wait for the connection and the answer.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
        #[command(flatten)]
        tls: tls::TlsArgs,
    },
    /// Calls GF-DUMP on a glusterd (or brick) and prints its programs.
    GlusterDump {
        /// The glusterd, e.g. 192.0.2.20:24007 or unix:/run/glusterd.socket.
        addr: Address,
        /// The source to bind.
        #[arg(long)]
        source: Option<ScopedIp>,
        /// Seconds to wait for the connection and the answer.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        #[command(flatten)]
        tls: tls::TlsArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Command::Run { .. } => "info",
        _ => "error",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Demo { tls: false } => demo::run().await,
            Command::Demo { tls: true } => demo_tls::run().await,
            Command::Run { config } => run(config).await,
            Command::Status {
                admin,
                json,
                timeout,
            } => status_command(admin, json, seconds(timeout)?).await,
            Command::Ping {
                addr,
                prog,
                vers,
                source,
                timeout,
                tls,
            } => {
                let tls = probe_tls(&tls)?;
                ping(addr, prog, vers, source, seconds(timeout)?, tls).await
            }
            Command::GlusterDump {
                addr,
                source,
                timeout,
                tls,
            } => {
                let tls = probe_tls(&tls)?;
                gluster_dump(addr, source, seconds(timeout)?, tls).await
            }
        }
    });
    // Dropping the runtime ends every task: nothing is left running.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code.unwrap_or_else(|code| code)
}

fn seconds(secs: f64) -> Result<Duration, ExitCode> {
    if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        eprintln!("error: --timeout {secs} is not a number of seconds above 0");
        Err(ExitCode::from(EXIT_CONFIG))
    }
}

/// The files of the TLS flags, read; a bad one is a usage error.
fn probe_tls(args: &tls::TlsArgs) -> Result<Option<tls::ProbeTls>, ExitCode> {
    args.load().map_err(|error| {
        eprintln!("error: {error}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// `peerd run --config FILE`.
async fn run(path: PathBuf) -> Result<ExitCode, ExitCode> {
    let config = match config::Config::load(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    use tokio::signal::unix::{SignalKind, signal};
    // Installed first, so a signal during start-up is not lost.
    let (mut interrupt, mut terminate, mut hangup) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(i), Ok(t), Ok(h)) => (i, t, h),
        _ => {
            eprintln!("error: cannot install the SIGINT, SIGTERM and SIGHUP handlers");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut node = match node::Node::start(&config) {
        Ok(node) => node,
        Err(error) => {
            eprintln!("error: node {} cannot start: {error}", config.node_id);
            return Ok(ExitCode::FAILURE);
        }
    };
    let which = loop {
        tokio::select! {
            _ = interrupt.recv() => break "SIGINT",
            _ = terminate.recv() => break "SIGTERM",
            _ = hangup.recv() => {
                // SIGHUP: re-read the config and apply only the difference.
                // A bad one is refused, and the running config stays.
                match config::Config::load(&path).map_err(|e| e.to_string()).and_then(|new| node.reload(&new)) {
                    Ok(summary) => tracing::info!(config = %path.display(), "reloaded: {summary}"),
                    Err(error) => tracing::error!(
                        config = %path.display(),
                        "reload refused, the running config stays: {error}"
                    ),
                }
            }
        }
    };
    tracing::info!(signal = which, "shutting down");
    node.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// `peerd status`.
async fn status_command(
    admin: Endpoint,
    json: bool,
    timeout: Duration,
) -> Result<ExitCode, ExitCode> {
    match status::fetch(&admin, timeout).await {
        Ok(status) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&status).expect("status serialises")
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(status) => {
            status::print_human(&status);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: no status from {admin}: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The (local, remote) addresses of a probe's last connection.
type Seen = Arc<Mutex<Option<(std::net::SocketAddr, std::net::SocketAddr)>>>;

/// A client that binds `source` and reports the addresses of each
/// connection it makes, and fails at once when connecting fails.
fn probe_client(
    addr: &Endpoint,
    source: Option<ScopedIp>,
    timeout: Duration,
    tls: Option<tls::ProbeTls>,
) -> Result<(Client, Seen), ExitCode> {
    let tls = match tls.map(|tls| tls.client()).transpose() {
        Ok(tls) => tls,
        Err(error) => {
            eprintln!("error: {error}");
            return Err(ExitCode::from(EXIT_CONFIG));
        }
    };
    let mut connect = ConnectOptions {
        connect_timeout: timeout,
        ..ConnectOptions::default()
    };
    if let Some(source) = source {
        connect.sources = Sources::new().with(source);
    }
    let options = ClientOptions {
        deadline: timeout,
        breaker_threshold: 1,
        connect: ConnectOptions {
            connect_timeout: timeout,
            ..ConnectOptions::default()
        },
        tls,
        ..ClientOptions::default()
    };
    let connector = Connector::new(connect);
    let seen = Arc::new(Mutex::new(None));
    let (seen_by_connect, destination) = (seen.clone(), addr.clone());
    let client = Client::with_transport(addr.clone(), options, move || {
        let (connector, destination, seen) = (
            connector.clone(),
            destination.clone(),
            seen_by_connect.clone(),
        );
        async move {
            let connected = connector.connect(&destination).await?;
            *seen.lock().unwrap() = Some((connected.local_addr(), connected.peer_addr()));
            Ok(Link::from(connected))
        }
    });
    Ok((client, seen))
}

/// A probe client for any address: TCP through [`probe_client`], a Unix
/// socket directly (no source to bind: `--source` is refused, exit 2).
fn probe_client_for(
    addr: &Address,
    source: Option<ScopedIp>,
    timeout: Duration,
    tls: Option<tls::ProbeTls>,
) -> Result<(Client, Seen), ExitCode> {
    let path = match addr {
        Address::Inet(endpoint) => return probe_client(endpoint, source, timeout, tls),
        Address::Unix(path) => path,
    };
    if tls.is_some() {
        eprintln!(
            "error: --cert: TLS over a Unix socket is not supported ({addr}); the socket file's mode and the peer's credentials identify it"
        );
        return Err(ExitCode::from(EXIT_CONFIG));
    }
    if source.is_some() {
        eprintln!("error: --source does not apply to a Unix socket ({addr})");
        return Err(ExitCode::from(EXIT_CONFIG));
    }
    let options = ClientOptions {
        deadline: timeout,
        breaker_threshold: 1,
        connect: ConnectOptions {
            connect_timeout: timeout,
            ..ConnectOptions::default()
        },
        ..ClientOptions::default()
    };
    match Client::unix(path, options) {
        Ok(client) => Ok((client, Arc::new(Mutex::new(None)))),
        Err(error) => {
            eprintln!("error: {error}");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

/// Explains a failed call, with the connect error behind it.
fn explain(error: &Error, client: &Client) -> String {
    match client.last_connect_error() {
        Some(cause) => format!("{cause}"),
        None => error.to_string(),
    }
}

/// `tls TLSv1.3 CN "glusterd-tls" IP SANs [...]`: the server's certificate,
/// when the probe ran TLS.
fn print_tls(client: &Client) {
    if let Some(peer) = client.tls_peer() {
        println!("tls {}", peer);
    }
}

/// `peerd ping`.
async fn ping(
    addr: Address,
    prog: u32,
    vers: u32,
    source: Option<ScopedIp>,
    timeout: Duration,
    tls: Option<tls::ProbeTls>,
) -> Result<ExitCode, ExitCode> {
    let (client, seen) = probe_client_for(&addr, source, timeout, tls)?;
    let start = Instant::now();
    let result = client.null(prog, vers).await;
    let rtt = start.elapsed();
    let addresses = *seen.lock().unwrap();
    let code = match (result, addresses) {
        (Ok(()), Some((local, remote))) => {
            println!(
                "program {prog} version {vers} at {} answered NULL from {} in {:.3} ms",
                status::fmt_addr(remote),
                status::fmt_addr(local),
                rtt.as_secs_f64() * 1000.0
            );
            println!("local {}", status::fmt_addr(local));
            println!("rtt_us {}", rtt.as_micros());
            print_tls(&client);
            ExitCode::SUCCESS
        }
        (Ok(()), None) if addr.is_unix() => {
            println!(
                "program {prog} version {vers} at {addr} answered NULL in {:.3} ms",
                rtt.as_secs_f64() * 1000.0
            );
            println!("rtt_us {}", rtt.as_micros());
            print_tls(&client);
            ExitCode::SUCCESS
        }
        (Ok(()), None) => unreachable!("a call answered without a connection"),
        (Err(error), addresses) => {
            if let Some((local, _)) = addresses {
                println!("local {}", status::fmt_addr(local));
            }
            eprintln!(
                "error: program {prog} version {vers} at {addr}: {}",
                explain(&error, &client)
            );
            ExitCode::FAILURE
        }
    };
    client.close();
    Ok(code)
}

/// `peerd gluster-dump`.
async fn gluster_dump(
    addr: Address,
    source: Option<ScopedIp>,
    timeout: Duration,
    tls: Option<tls::ProbeTls>,
) -> Result<ExitCode, ExitCode> {
    let (client, seen) = probe_client_for(&addr, source, timeout, tls)?;
    let result = GfDumpV1Client::new(client.clone())
        .dump(&GfDumpRequest::default())
        .await;
    let addresses = *seen.lock().unwrap();
    let code = match result {
        Ok(dump) => {
            if let Some((local, remote)) = addresses {
                println!(
                    "GF-DUMP of {} from {}: op_ret {}, op_errno {}, {} programs",
                    status::fmt_addr(remote),
                    status::fmt_addr(local),
                    dump.op_ret,
                    dump.op_errno,
                    dump.programs.len()
                );
            } else if addr.is_unix() {
                println!(
                    "GF-DUMP of {addr}: op_ret {}, op_errno {}, {} programs",
                    dump.op_ret,
                    dump.op_errno,
                    dump.programs.len()
                );
            }
            print_tls(&client);
            for p in &dump.programs {
                println!("{:?} {} v{}", p.progname, p.prognum, p.progver);
            }
            if dump.op_ret == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("error: GF-DUMP at {addr}: {}", explain(&error, &client));
            ExitCode::FAILURE
        }
    };
    client.close();
    Ok(code)
}
