//! Fairness probe: one flooding connection must not hold the runtime it
//! runs on.
//!
//! Each scenario runs flooding peers, each on its own thread and tokio
//! runtime, against the side under test; on the side under test's runtime
//! run a 1 ms ticker task and an honest client making one call at a time.
//!
//! - `--side server`: a [`peerwire::Server`] with a handler that is ready
//!   at once (answered inline). The flooders pipeline small calls to it
//!   without end (`calls`), or, with an identity configured, NULL calls of
//!   the HELLO program before any HELLO, which any admitted address may send
//!   (`null`). The honest client is a [`peerwire::Client`] of that server.
//! - `--side client`: each flooded [`peerwire::Client`] is connected to a
//!   hostile server that sends records without end: every reply repeated
//!   (`replies`: the client keeps calling; the first copy answers the call,
//!   the rest are late), or replies to XIDs the client never used
//!   (`unrequested`). The honest client calls an honest server on its own
//!   thread.
//!
//! The runtime under test is current-thread with one flooder
//! (`--runtime current`: the ticker's worst gap is the figure), or has 2
//! workers, as peerd's, with two flooders (`--runtime multi`: the honest
//! client's latency is). Goals: a current-thread ticker's worst gap at
//! most 25 ms; on 2 workers an honest p99 at most 25 ms and worst at most
//! 150 ms. Each scenario prints one JSON line, with `goal` "met" or
//! "missed"; `--check` exits with status 1 if any goal was missed.
//!
//! ```text
//! cargo run --release --example fairness -- --side both --runtime both
//! ```
//!
//! The files: `scenario.rs` sets up one scenario's side under test and its
//! flooders and prints its line, `measure.rs` runs the ticker and the
//! honest client through the measured window, and `flood.rs` is what the
//! flooders send.

mod flood;
mod measure;
mod scenario;

use clap::{Parser, ValueEnum};

const PROGRAM: u32 = 0x2000_fa17;
const VERSION: u32 = 1;
const ECHO: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Side {
    Server,
    Client,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Runtime {
    /// Current-thread, one flooder.
    Current,
    /// Two workers, two flooders.
    Multi,
    Both,
}

/// What the flooders send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Flood {
    /// Server side: pipelined small calls to a ready handler.
    Calls,
    /// Server side: NULL calls before HELLO, with an identity configured.
    Null,
    /// Client side: every reply repeated without end.
    Replies,
    /// Client side: replies to XIDs never used.
    Unrequested,
}

#[derive(Parser, Debug, Clone)]
#[command(about = "one flooding connection must not hold its runtime")]
struct Args {
    #[arg(long, value_enum, default_value = "both")]
    side: Side,
    #[arg(long, value_enum, default_value = "both")]
    runtime: Runtime,
    /// Floods to run (default: both of the side's).
    #[arg(long, value_enum)]
    flood: Vec<Flood>,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Unmeasured seconds before each.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Argument bytes of the honest client's calls.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Exit with status 1 if any goal is missed.
    #[arg(long)]
    check: bool,
}

fn main() {
    let args = Args::parse();
    let sides: &[Side] = match args.side {
        Side::Both => &[Side::Server, Side::Client],
        Side::Server => &[Side::Server],
        Side::Client => &[Side::Client],
    };
    let runtimes: &[Runtime] = match args.runtime {
        Runtime::Both => &[Runtime::Current, Runtime::Multi],
        Runtime::Current => &[Runtime::Current],
        Runtime::Multi => &[Runtime::Multi],
    };
    let mut missed = 0;
    for &side in sides {
        let floods: Vec<Flood> = match side {
            Side::Server => [Flood::Calls, Flood::Null].into(),
            _ => [Flood::Replies, Flood::Unrequested].into(),
        };
        for flood in floods {
            if !args.flood.is_empty() && !args.flood.contains(&flood) {
                continue;
            }
            for &runtime in runtimes {
                if !scenario::scenario(side, flood, runtime, &args) {
                    missed += 1;
                }
            }
        }
    }
    if args.check && missed > 0 {
        eprintln!("{missed} scenarios missed their goal");
        std::process::exit(1);
    }
}
