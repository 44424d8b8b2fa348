//! Load generator: peerwire against the raw floor, on loopback, in one
//! process.
//!
//! The server and the client each run on their own single-threaded tokio
//! runtime, on their own thread. `--pin split` (the default) pins the
//! client's thread to CPU 1 and the server's to CPU 0: on a 2-vCPU machine,
//! unpinned runs swing by 2× with whether the two threads happen to share a
//! CPU (a cross-CPU wake-up costs about 20 µs).
//!
//! - `--mode peerwire`: a [`peerwire::Client`] calling an echo procedure of
//!   a [`peerwire::Server`].
//! - `--mode raw`: the floor. The same ONC RPC records (record marking,
//!   AUTH_NONE call and reply headers, the same payload echoed) and the same
//!   XID matching, written directly on tokio: callers append their call to a
//!   shared buffer and wait on a oneshot found by XID; one writer task per
//!   connection writes the buffer, one reader task matches replies. The raw
//!   server answers every call in the read buffer, then writes once. No
//!   deadlines, no handler tasks, no per-connection state machine.
//! - `--mode both`: raw and peerwire alternately, `--rounds` times each,
//!   then a summary line with the median ratio peerwire/raw.
//! - `--mode typed`: peerwire with typed calls ([`Client::call_proc`]): the
//!   arguments and results are a struct with one `opaque<>` field, whose
//!   data is 4 bytes shorter than `--payload` so that the same bytes go on
//!   the wire as in `--mode peerwire` (the field's length takes the 4).
//! - `--mode typed-both`: peerwire with `Bytes` calls and with typed calls
//!   alternately, `--rounds` times each, then a summary line with the
//!   median ratio typed/`Bytes` and the ratio of each round (the spread).
//!   The server is the same `Bytes` echo for both, unless `--typed-server`:
//!   then typed calls reach a typed [`peerwire::server::Program`] that
//!   decodes the struct and encodes it back.
//! - `--mode tls`: peerwire over mutual TLS (TLS 1.3, rustls on ring, from
//!   the first byte; `--starttls` for RFC 9289's upgrade), with a
//!   throwaway CA and certificates made at start (rcgen): the server's
//!   names 127.0.0.1, the client's too, and both sides check them.
//! - `--mode tls-both`: peerwire over plain TCP and over TLS alternately,
//!   `--rounds` times each, then a summary line with the median ratio
//!   TLS/plain and the ratio of each round (the spread).
//!
//! `--concurrency` callers run on each of `--connections` connections; each
//! loops over calls with `--payload` bytes of arguments, echoed back as the
//! results. Latency is per call, from the caller's view (hdrhistogram).
//! After `--warmup` seconds the next `--seconds` are measured.
//!
//! Allocator: both modes run with glibc's mmap threshold raised to 64 MiB
//! and its trim threshold to 512 MiB (see `bench_support`), so that freed
//! 1 MiB buffers are reused instead of returned to the kernel and faulted
//! in again; `--malloc default` keeps glibc's defaults.
//!
//! Wake-ups: the JSON line gives, for the client's thread and the
//! server's separately, the voluntary and involuntary context switches in
//! the measured window (`client_cs`, `server_cs`, from each thread's
//! `/proc` status, read by the client's thread at the window's start and
//! end, so that sampling never wakes the server) and, per call in the
//! window, the voluntary ones (`*_wakeups_per_call`: each is the thread
//! blocking, then being woken) and the involuntary ones
//! (`*_preemptions_per_call`).
//!
//! `--perf-ctl CTL --perf-ack ACK` are for `perf stat -D -1 --control
//! fifo:CTL,ACK -t ...` (see `benches/percall.sh`): the run prints its
//! client's and server's thread IDs to stderr when both have started, opens
//! the FIFOs before connecting, and sends perf `enable` at the window's
//! start and `disable` at its end, each time waiting for perf's ack, so
//! that perf counts the window only (and, of the run's own, only the
//! `disable` write and the ack read). Use it with one run per process (one
//! mode, one round).
//!
//! Prints one JSON line per run; exits with status 1 if any call failed.
//!
//! ```text
//! cargo run --release --example loadgen -- --mode both --concurrency 64 --payload 64
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use peerwire::proto::DecodeError;
use peerwire::proto::xdr::{XdrDecode, XdrEncode, XdrReader, XdrWriter};
use peerwire::server::{Call, Program};
use peerwire::{Client, ClientOptions, Endpoint, ProcError, Procedure, Server, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

#[path = "bench_support/mod.rs"]
mod bench_support;

const PROGRAM: u32 = 0x2000_7e57;
const VERSION: u32 = 1;
const ECHO: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Peerwire,
    Raw,
    Both,
    Tls,
    TlsBoth,
    Typed,
    TypedBoth,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Pin {
    /// Server on CPU 0, client on CPU 1.
    Split,
    /// Both on CPU 0.
    Same,
    /// No pinning.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Malloc {
    /// Keep freed memory (mmap threshold 64 MiB, trim threshold 512 MiB).
    Retain,
    /// glibc's defaults.
    Default,
}

#[derive(Parser, Debug, Clone)]
#[command(about = "peerwire against the raw floor, on loopback")]
struct Args {
    #[arg(long, value_enum, default_value = "both")]
    mode: Mode,
    /// Callers per connection, each with one call in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Argument bytes per call (echoed back as results).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Connections, each from its own client.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Unmeasured seconds before each run.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    #[arg(long, value_enum, default_value = "split")]
    pin: Pin,
    /// Runs of each mode with --mode both.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    #[arg(long, value_enum, default_value = "retain")]
    malloc: Malloc,
    /// A `perf stat --control` FIFO: `enable` at the window's start,
    /// `disable` at its end; thread IDs printed to stderr.
    #[arg(long)]
    perf_ctl: Option<std::path::PathBuf>,
    /// perf's ack FIFO, with --perf-ctl: each command waits for its ack.
    #[arg(long, requires = "perf_ctl")]
    perf_ack: Option<std::path::PathBuf>,
    /// With --mode tls or tls-both: the RFC 9289 STARTTLS upgrade instead
    /// of TLS from the first byte.
    #[arg(long)]
    starttls: bool,
    /// With --mode typed or typed-both: typed calls reach a typed program
    /// (decoding its arguments, encoding its results) instead of the
    /// `Bytes` echo.
    #[arg(long)]
    typed_server: bool,
}

struct Outcome {
    calls: u64,
    errors: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
    /// Context switches in the window: the client's thread, the server's.
    switches: (Switches, Switches),
}

/// A thread's context switches, from its `/proc` status.
#[derive(Clone, Copy, Debug, Default)]
struct Switches {
    /// The thread blocked (and was woken later).
    voluntary: u64,
    /// The thread was preempted.
    involuntary: u64,
}

impl Switches {
    fn read(status: &str) -> Switches {
        let text = std::fs::read_to_string(status).unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0)
        };
        Switches {
            voluntary: field("voluntary_ctxt_switches:"),
            involuntary: field("nonvoluntary_ctxt_switches:"),
        }
    }

    fn since(self, start: Switches) -> Switches {
        Switches {
            voluntary: self.voluntary - start.voluntary,
            involuntary: self.involuntary - start.involuntary,
        }
    }

    fn json(self, calls: u64) -> (serde_json::Value, f64, f64) {
        let per_call = |n: u64| (n as f64 / calls.max(1) as f64 * 1e4).round() / 1e4;
        (
            serde_json::json!({"voluntary": self.voluntary, "involuntary": self.involuntary}),
            per_call(self.voluntary),
            per_call(self.involuntary),
        )
    }
}

/// `perf stat --control`'s FIFOs.
struct PerfControl {
    ctl: std::fs::File,
    ack: Option<std::fs::File>,
}

impl PerfControl {
    /// Opens the FIFOs (each open waits for perf to open its end).
    fn open(args: &Args) -> Option<PerfControl> {
        let ctl = std::fs::OpenOptions::new()
            .write(true)
            .open(args.perf_ctl.as_ref()?)
            .expect("the perf control FIFO");
        let ack =
            (args.perf_ack.as_ref()).map(|ack| std::fs::File::open(ack).expect("the ack FIFO"));
        Some(PerfControl { ctl, ack })
    }

    /// Sends `command`; waits for perf's ack.
    fn send(&mut self, command: &str) {
        use std::io::{Read, Write};
        writeln!(self.ctl, "{command}").expect("perf's control FIFO");
        if let Some(ack) = &mut self.ack {
            let mut ok = [0u8; 4];
            ack.read_exact(&mut ok).expect("perf's ack");
        }
    }
}

fn main() {
    let args = Args::parse();
    let malloc_ok = match args.malloc {
        Malloc::Retain => bench_support::retain_freed_memory(),
        Malloc::Default => true,
    };
    if !malloc_ok {
        eprintln!("warning: mallopt failed; running with glibc's defaults");
    }
    if args.pin != Pin::None && bench_support::cpus() < 2 && args.pin == Pin::Split {
        eprintln!("warning: fewer than 2 CPUs; --pin split pins both to CPU 0");
    }
    let modes: Vec<Mode> = match args.mode {
        Mode::Both => (0..args.rounds.max(1))
            .flat_map(|_| [Mode::Raw, Mode::Peerwire])
            .collect(),
        Mode::TlsBoth => (0..args.rounds.max(1))
            .flat_map(|_| [Mode::Peerwire, Mode::Tls])
            .collect(),
        Mode::TypedBoth => (0..args.rounds.max(1))
            .flat_map(|_| [Mode::Peerwire, Mode::Typed])
            .collect(),
        mode => vec![mode],
    };
    let mut rates: HashMap<&'static str, Vec<f64>> = HashMap::new();
    let mut failed_calls = 0;
    for mode in modes {
        let outcome = run(mode, &args);
        let name = match mode {
            Mode::Raw => "raw",
            Mode::Tls => "tls",
            Mode::Typed => "typed",
            _ => "peerwire",
        };
        failed_calls += outcome.errors;
        let rate = outcome.calls as f64 / outcome.elapsed.as_secs_f64();
        rates.entry(name).or_default().push(rate);
        let q = |q: f64| outcome.latency.value_at_quantile(q) as f64 / 1000.0;
        let (client_cs, client_wakeups, client_preemptions) =
            outcome.switches.0.json(outcome.calls);
        let (server_cs, server_wakeups, server_preemptions) =
            outcome.switches.1.json(outcome.calls);
        let line = serde_json::json!({
            "mode": name,
            "concurrency": args.concurrency,
            "payload": args.payload,
            "connections": args.connections,
            "seconds": (outcome.elapsed.as_secs_f64() * 100.0).round() / 100.0,
            "pin": format!("{:?}", args.pin).to_lowercase(),
            "malloc": format!("{:?}", args.malloc).to_lowercase(),
            "calls": outcome.calls,
            "errors": outcome.errors,
            "calls_per_s": rate.round(),
            "p50_us": q(0.5),
            "p99_us": q(0.99),
            "p999_us": q(0.999),
            "client_cs": client_cs,
            "server_cs": server_cs,
            "client_wakeups_per_call": client_wakeups,
            "server_wakeups_per_call": server_wakeups,
            "client_preemptions_per_call": client_preemptions,
            "server_preemptions_per_call": server_preemptions,
        });
        println!("{line}");
    }
    if args.mode == Mode::Both {
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let raw = median(rates.get_mut("raw").unwrap());
        let peerwire = median(rates.get_mut("peerwire").unwrap());
        println!(
            "{}",
            serde_json::json!({
                "summary": "median calls/s over rounds",
                "concurrency": args.concurrency,
                "payload": args.payload,
                "connections": args.connections,
                "raw_calls_per_s": raw.round(),
                "peerwire_calls_per_s": peerwire.round(),
                "ratio": (peerwire / raw * 1000.0).round() / 1000.0,
            })
        );
    }
    if args.mode == Mode::TypedBoth {
        let raw_bytes = &rates["peerwire"];
        let typed = &rates["typed"];
        let mut ratios: Vec<f64> = raw_bytes.iter().zip(typed).map(|(b, t)| t / b).collect();
        ratios.sort_by(f64::total_cmp);
        let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
        let median = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "{}",
            serde_json::json!({
                "summary": "typed/Bytes calls/s, each round's ratio and the median",
                "typed_server": args.typed_server,
                "concurrency": args.concurrency,
                "payload": args.payload,
                "connections": args.connections,
                "bytes_calls_per_s": median(raw_bytes).round(),
                "typed_calls_per_s": median(typed).round(),
                "ratios": ratios.iter().map(|r| round3(*r)).collect::<Vec<_>>(),
                "ratio": round3(ratios[ratios.len() / 2]),
                "spread": round3(ratios[ratios.len() - 1] - ratios[0]),
            })
        );
    }
    if args.mode == Mode::TlsBoth {
        let plain = &rates["peerwire"];
        let tls = &rates["tls"];
        let mut ratios: Vec<f64> = plain.iter().zip(tls).map(|(p, t)| t / p).collect();
        ratios.sort_by(f64::total_cmp);
        let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
        println!(
            "{}",
            serde_json::json!({
                "summary": "TLS/plain calls/s, each round's ratio and the median",
                "concurrency": args.concurrency,
                "payload": args.payload,
                "connections": args.connections,
                "starttls": args.starttls,
                "ratios": ratios.iter().map(|r| round3(*r)).collect::<Vec<_>>(),
                "ratio": round3(ratios[ratios.len() / 2]),
                "spread": round3(ratios[ratios.len() - 1] - ratios[0]),
            })
        );
    }
    if failed_calls > 0 {
        eprintln!("{failed_calls} calls failed");
        std::process::exit(1);
    }
}

fn pin(which: usize, pin: Pin) {
    let cpu = match pin {
        Pin::None => return,
        Pin::Same => 0,
        Pin::Split => which.min(bench_support::cpus() - 1),
    };
    if let Err(error) = bench_support::pin_to(cpu) {
        eprintln!("warning: could not pin: {error}");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// One measured run: a server thread and a client thread.
fn run(mode: Mode, args: &Args) -> Outcome {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<(SocketAddr, i32)>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server_pin = args.pin;
    let max = args.concurrency.max(1);
    let starttls = args.starttls;
    let typed_server = args.typed_server && mode == Mode::Typed;
    #[cfg(not(feature = "tls"))]
    assert!(
        mode != Mode::Tls && !starttls,
        "built without the tls feature"
    );
    let server = std::thread::spawn(move || {
        pin(0, server_pin);
        let tid = nix::unistd::gettid().as_raw();
        runtime().block_on(async move {
            match mode {
                Mode::Raw => {
                    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    addr_tx.send((listener.local_addr().unwrap(), tid)).unwrap();
                    let accept = async {
                        loop {
                            let (stream, _) = listener.accept().await.unwrap();
                            tokio::spawn(raw_serve(stream));
                        }
                    };
                    tokio::select! {
                        () = accept => {}
                        _ = stop_rx => {}
                    }
                }
                _ => {
                    let options = ServerOptions {
                        max_in_progress: max,
                        #[cfg(feature = "tls")]
                        tls: (mode == Mode::Tls).then(|| tls::server(starttls)),
                        ..ServerOptions::default()
                    };
                    let server = Server::new(options);
                    let server = if typed_server {
                        server.program(TypedEchoServer)
                    } else {
                        server.service(
                            PROGRAM,
                            VERSION,
                            |_ctx, procedure, args: Bytes| async move {
                                match procedure {
                                    ECHO => Ok(args),
                                    _ => Err(ProcError::ProcUnavail),
                                }
                            },
                        )
                    };
                    let server = server.serve(&["127.0.0.1:0".parse().unwrap()]).unwrap();
                    addr_tx.send((server.local_addrs()[0], tid)).unwrap();
                    let _ = stop_rx.await;
                    drop(server);
                }
            }
        });
    });
    let (addr, server_tid) = addr_rx.recv().expect("the server started");
    let client_args = args.clone();
    let client = std::thread::spawn(move || {
        pin(1, client_args.pin);
        if client_args.perf_ctl.is_some() {
            let tid = nix::unistd::gettid().as_raw();
            eprintln!("loadgen: client_tid={tid} server_tid={server_tid}");
        }
        runtime().block_on(drive(mode, addr, server_tid, client_args))
    });
    let outcome = client.join().expect("the client thread");
    let _ = stop_tx.send(());
    server.join().expect("the server thread");
    outcome
}

/// Window of the run: calls finishing between `start` and `end` count.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

async fn drive(mode: Mode, addr: SocketAddr, server_tid: i32, args: Args) -> Outcome {
    let payload = Bytes::from((0..args.payload).map(|i| i as u8).collect::<Vec<u8>>());
    let mut perf = PerfControl::open(&args);
    // Connect everything before the clock starts.
    let mut callers: Vec<Arc<dyn Caller>> = Vec::new();
    for _ in 0..args.connections.max(1) {
        let caller: Arc<dyn Caller> = match mode {
            Mode::Raw => Arc::new(RawClient::connect(addr).await),
            _ => {
                let options = ClientOptions {
                    max_in_flight: args.concurrency.max(1),
                    #[cfg(feature = "tls")]
                    tls: (mode == Mode::Tls).then(|| tls::client(args.starttls)),
                    ..ClientOptions::default()
                };
                let client =
                    Client::new(vec![Endpoint::from(addr)], options).expect("a destination");
                client.null(PROGRAM, VERSION).await.expect("connected");
                if mode == Mode::Typed {
                    Arc::new(TypedClient(client))
                } else {
                    Arc::new(client)
                }
            }
        };
        callers.push(caller);
    }
    let now = Instant::now();
    let window = Window {
        start: now + Duration::from_secs_f64(args.warmup),
        end: now + Duration::from_secs_f64(args.warmup + args.seconds),
    };
    // Reads both threads' context switches, from this (the client's)
    // thread, at the window's start and end; turns perf on in between.
    let server_status = format!("/proc/self/task/{server_tid}/status");
    let sampler = tokio::spawn(async move {
        let read = || {
            let client = Switches::read("/proc/thread-self/status");
            (client, Switches::read(&server_status))
        };
        tokio::time::sleep_until(window.start.into()).await;
        let start = read();
        if let Some(perf) = &mut perf {
            perf.send("enable");
        }
        tokio::time::sleep_until(window.end.into()).await;
        if let Some(perf) = &mut perf {
            perf.send("disable");
        }
        let end = read();
        (end.0.since(start.0), end.1.since(start.1))
    });
    // Plain tokio tasks (not a LocalSet): a LocalSet task woken from
    // outside the set's own poll goes through its remote queue and an
    // eventfd write, which would tax both modes for nothing.
    let mut tasks = Vec::new();
    for caller in &callers {
        for _ in 0..args.concurrency.max(1) {
            let (caller, payload) = (caller.clone(), payload.clone());
            tasks.push(tokio::spawn(async move {
                let mut histogram =
                    Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
                let (mut calls, mut errors) = (0u64, 0u64);
                loop {
                    let started = Instant::now();
                    if started >= window.end {
                        break;
                    }
                    let ok = caller.call(payload.clone()).await;
                    let done = Instant::now();
                    if !ok {
                        errors += 1;
                    } else if started >= window.start && done <= window.end {
                        calls += 1;
                        let ns = (done - started).as_nanos() as u64;
                        let _ = histogram.record(ns.max(1));
                    }
                }
                (histogram, calls, errors)
            }));
        }
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let (mut calls, mut errors) = (0, 0);
    for task in tasks {
        let (histogram, c, e) = task.await.expect("a caller task");
        latency.add(histogram).unwrap();
        calls += c;
        errors += e;
    }
    Outcome {
        calls,
        errors,
        elapsed: window.end - window.start,
        latency,
        switches: sampler.await.expect("the sampler"),
    }
}

/// Something that makes an echo call; true when it succeeded with the
/// payload's length.
trait Caller: Send + Sync {
    fn call(&self, args: Bytes) -> CallFuture<'_>;
}

type CallFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>>;

impl Caller for Client {
    fn call(&self, args: Bytes) -> CallFuture<'_> {
        let len = args.len();
        Box::pin(async move {
            match Client::call(self, PROGRAM, VERSION, ECHO, args).await {
                Ok(results) => results.len() == len,
                Err(error) => {
                    eprintln!("call failed: {error}");
                    false
                }
            }
        })
    }
}

// ---- typed calls -----------------------------------------------------------

/// The typed echo's arguments and results: one `opaque<>` field, as a
/// generated `struct echo_args { opaque data<>; }` would be.
struct EchoArgs {
    data: Bytes,
}

impl XdrEncode for EchoArgs {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.opaque(&self.data);
    }
}

impl XdrDecode for EchoArgs {
    fn decode(r: &mut XdrReader<'_>) -> Result<Self, DecodeError> {
        Ok(EchoArgs {
            data: r.opaque_bytes(u32::MAX)?,
        })
    }
}

const TYPED_ECHO: Procedure<EchoArgs, EchoArgs> = Procedure::new(PROGRAM, VERSION, ECHO, "ECHO");

/// The typed echo as a program, as generated dispatch would be.
struct TypedEchoServer;

impl Program for TypedEchoServer {
    const PROGRAM: u32 = PROGRAM;
    const VERSION: u32 = VERSION;

    async fn dispatch(&self, call: Call) -> Result<Bytes, ProcError> {
        match call.procedure {
            ECHO => call.results(&call.args::<EchoArgs>()?),
            _ => Err(ProcError::ProcUnavail),
        }
    }
}

/// A client making typed calls. The data is 4 bytes shorter than the
/// payload: with its length, the same bytes go on the wire.
struct TypedClient(Client);

impl Caller for TypedClient {
    fn call(&self, args: Bytes) -> CallFuture<'_> {
        Box::pin(async move {
            let args = EchoArgs {
                data: args.slice(args.len().min(4)..),
            };
            match self.0.call_proc(&TYPED_ECHO, &args).await {
                Ok(results) => results.data.len() == args.data.len(),
                Err(error) => {
                    eprintln!("call failed: {error}");
                    false
                }
            }
        })
    }
}

// ---- TLS -------------------------------------------------------------------

/// A throwaway CA and the two certificates, made once per process.
#[cfg(feature = "tls")]
mod tls {
    use std::sync::OnceLock;

    use peerwire::tls::{ClientTls, ServerCheck, ServerTls, TlsIdentity, TlsMode};
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType,
    };

    struct Pair {
        server: TlsIdentity,
        client: TlsIdentity,
    }

    fn pair() -> &'static Pair {
        static PAIR: OnceLock<Pair> = OnceLock::new();
        PAIR.get_or_init(|| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, "loadgen CA");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            let leaf = |cn: &str| {
                let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
                params.distinguished_name.push(DnType::CommonName, cn);
                params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
                let key = KeyPair::generate().unwrap();
                let cert = params.signed_by(&key, &ca).unwrap();
                TlsIdentity::from_pem(
                    cert.pem().as_bytes(),
                    key.serialize_pem().as_bytes(),
                    ca.pem().as_bytes(),
                )
                .unwrap()
            };
            Pair {
                server: leaf("server"),
                client: leaf("loadgen"),
            }
        })
    }

    fn mode(starttls: bool) -> TlsMode {
        if starttls {
            TlsMode::StartTls
        } else {
            TlsMode::Direct
        }
    }

    pub(super) fn server(starttls: bool) -> ServerTls {
        ServerTls {
            identity: pair().server.clone(),
            mode: mode(starttls),
        }
    }

    pub(super) fn client(starttls: bool) -> ClientTls {
        ClientTls {
            identity: pair().client.clone(),
            mode: mode(starttls),
            server: ServerCheck::DialledIp,
        }
    }
}

// ---- the raw floor -------------------------------------------------------

/// Bytes of a call header with AUTH_NONE: xid, type, rpcvers, program,
/// version, procedure, cred (flavor, length), verf (flavor, length).
const CALL_HEADER: usize = 40;
/// Bytes of an accepted SUCCESS reply header with AUTH_NONE: xid, type,
/// reply_stat, verf (flavor, length), accept_stat.
const REPLY_HEADER: usize = 24;

/// Takes one whole single-fragment record off the front of `buf`.
fn take_record(buf: &mut BytesMut) -> Option<BytesMut> {
    if buf.len() < 4 {
        return None;
    }
    let header = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    assert!(header & 0x8000_0000 != 0, "raw mode expects one fragment");
    let len = (header & 0x7fff_ffff) as usize;
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return None;
    }
    buf.advance(4);
    Some(buf.split_to(len))
}

async fn raw_serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut output = BytesMut::with_capacity(64 * 1024);
    loop {
        match reader.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while let Some(record) = take_record(&mut input) {
            let xid = &record[..4];
            let args = &record[CALL_HEADER..];
            output.put_u32(0x8000_0000 | (REPLY_HEADER + args.len()) as u32);
            output.put_slice(xid);
            output.put_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            output.put_slice(args);
        }
        if !output.is_empty() {
            if writer.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
    }
}

struct RawClient {
    shared: Arc<RawShared>,
}

struct RawShared {
    // Uncontended: every task runs on the client's one thread.
    pending: Mutex<HashMap<u32, oneshot::Sender<Bytes>>>,
    out: Mutex<BytesMut>,
    wake: Notify,
    next_xid: std::sync::atomic::AtomicU32,
}

impl RawClient {
    async fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let shared = Arc::new(RawShared {
            pending: Mutex::new(HashMap::new()),
            out: Mutex::new(BytesMut::with_capacity(64 * 1024)),
            wake: Notify::new(),
            next_xid: std::sync::atomic::AtomicU32::new(rand_xid()),
        });
        let s = shared.clone();
        tokio::spawn(async move {
            let mut spare = BytesMut::with_capacity(64 * 1024);
            loop {
                s.wake.notified().await;
                std::mem::swap(&mut *s.out.lock().unwrap(), &mut spare);
                if spare.is_empty() {
                    continue;
                }
                if writer.write_all(&spare).await.is_err() {
                    return;
                }
                spare.clear();
            }
        });
        let s = shared.clone();
        tokio::spawn(async move {
            let mut input = BytesMut::with_capacity(64 * 1024);
            loop {
                match reader.read_buf(&mut input).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                while let Some(record) = take_record(&mut input) {
                    let xid = u32::from_be_bytes([record[0], record[1], record[2], record[3]]);
                    let results = record.freeze().slice(REPLY_HEADER..);
                    if let Some(answer) = s.pending.lock().unwrap().remove(&xid) {
                        let _ = answer.send(results);
                    }
                }
            }
        });
        RawClient { shared }
    }
}

fn rand_xid() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.subsec_nanos())
}

impl Caller for RawClient {
    fn call(&self, args: Bytes) -> CallFuture<'_> {
        Box::pin(async move {
            let s = &self.shared;
            let xid = s
                .next_xid
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            s.pending.lock().unwrap().insert(xid, tx);
            {
                let mut out = s.out.lock().unwrap();
                out.reserve(4 + CALL_HEADER + args.len());
                out.put_u32(0x8000_0000 | (CALL_HEADER + args.len()) as u32);
                out.put_u32(xid);
                for word in [0, 2, PROGRAM, VERSION, ECHO, 0, 0, 0, 0] {
                    out.put_u32(word);
                }
                out.put_slice(&args);
            }
            s.wake.notify_one();
            match rx.await {
                Ok(results) => results.len() == args.len(),
                Err(_) => false,
            }
        })
    }
}
