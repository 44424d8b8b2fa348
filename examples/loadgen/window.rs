//! The client's side of one run: connect, then callers loop over echo
//! calls; the calls that start and finish inside the measured window count.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use peerwire::{Client, ClientOptions, Endpoint};

use crate::caller::Caller;
use crate::perf::PerfControl;
use crate::raw::RawClient;
use crate::switches::Switches;
use crate::typed::TypedClient;
use crate::{Args, Mode, PROGRAM, VERSION};

/// What one run measured.
pub struct Outcome {
    pub calls: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
    /// Context switches in the window: the client's thread, the server's.
    pub switches: (Switches, Switches),
}

/// Window of the run: calls finishing between `start` and `end` count.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

/// The client's side of one run of `mode` against the server at `addr`,
/// whose thread is `server_tid`.
pub async fn drive(mode: Mode, addr: SocketAddr, server_tid: i32, args: Args) -> Outcome {
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
                    tls: (mode == Mode::Tls).then(|| crate::tls::client(args.starttls)),
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
