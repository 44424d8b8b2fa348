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
//!
//! The files: `run.rs` starts the two threads of a run, `window.rs` drives
//! the client's callers through the measured window, `caller.rs`,
//! `typed.rs` and `raw.rs` are what they call (and `raw.rs` the raw
//! server), `tls.rs` makes the certificates, `switches.rs` and `perf.rs`
//! count the window, and `report.rs` prints the JSON lines.

use std::collections::HashMap;

use clap::{Parser, ValueEnum};

#[path = "../bench_support/mod.rs"]
mod bench_support;
mod caller;
mod perf;
mod raw;
mod report;
mod run;
mod switches;
#[cfg(feature = "tls")]
mod tls;
mod typed;
mod window;

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
        let outcome = run::run(mode, &args);
        let name = match mode {
            Mode::Raw => "raw",
            Mode::Tls => "tls",
            Mode::Typed => "typed",
            _ => "peerwire",
        };
        failed_calls += outcome.errors;
        let rate = outcome.calls as f64 / outcome.elapsed.as_secs_f64();
        rates.entry(name).or_default().push(rate);
        println!("{}", report::run_line(name, &args, &outcome, rate));
    }
    if let Some(summary) = report::summary(&args, &mut rates) {
        println!("{summary}");
    }
    if failed_calls > 0 {
        eprintln!("{failed_calls} calls failed");
        std::process::exit(1);
    }
}
