//! Soak: many connections with sustained calls; RSS, file descriptors and
//! tasks must be flat after warm-up, with no errors.
//!
//! A peerwire server and `--connections` clients run in one process, on
//! one multi-threaded runtime, over loopback. Every client runs
//! `--callers` callers making echo calls of `--payload` bytes without
//! pause for `--seconds`. Every second the soak samples RSS
//! (/proc/self/status), open file descriptors (/proc/self/fd) and live tokio
//! tasks (`RuntimeMetrics::num_alive_tasks`). After the run every client
//! is closed and the server shut down, and the descriptors and tasks must
//! come back to where they were before the first connection.
//!
//! Verdict (printed as JSON, exit status 1 on failure):
//! - no call failed;
//! - RSS after warm-up (the first quarter of the run, at least 2 samples)
//!   grew by at most `--rss-slack` percent from its post-warm-up median
//!   to the median of the last quarter;
//! - descriptors constant during the run; tasks within the calls in
//!   progress (at most two handler tasks per caller) of their minimum;
//! - descriptors and tasks back to the baseline after shutdown (nothing
//!   leaked).
//!
//! ```text
//! cargo run --release --example soak -- --connections 1000 --seconds 60
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use peerwire::{Client, ClientOptions, Endpoint, Server, ServerOptions};

#[path = "bench_support/mod.rs"]
mod bench_support;

const PROGRAM: u32 = 0x2000_7e57;

#[derive(Parser, Debug)]
#[command(about = "Many connections, sustained calls: flat RSS, no leaks")]
struct Args {
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Callers per connection.
    #[arg(long, default_value_t = 2)]
    callers: usize,
    /// Argument bytes per call (echoed).
    #[arg(long, default_value_t = 256)]
    payload: usize,
    /// Allowed RSS growth after warm-up, in percent.
    #[arg(long, default_value_t = 5.0)]
    rss_slack: f64,
}

#[derive(Clone, Copy, Debug, serde::Serialize)]
struct Sample {
    t: f64,
    rss_kib: u64,
    fds: usize,
    tasks: usize,
    calls: u64,
}

fn main() {
    let args = Args::parse();
    bench_support::retain_freed_memory();
    let (nofile, note) = bench_support::raise_nofile(2 * args.connections as u64 + 1024);
    if let Some(note) = note {
        eprintln!("warning: {note}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let metrics = runtime.metrics();
    let base_fds = bench_support::fd_count().unwrap_or(0);
    let base_tasks = metrics.num_alive_tasks();
    let verdict = runtime.block_on(async {
        let server = Server::new(ServerOptions {
            max_connections: args.connections + 16,
            ..ServerOptions::default()
        })
        .service(PROGRAM, 1, |_ctx, _procedure, args: Bytes| async move {
            Ok(args)
        })
        .serve(&["127.0.0.1:0".parse().unwrap()])
        .expect("listen");
        let addr = server.local_addrs()[0];
        let payload = Bytes::from(vec![0x5a; args.payload]);
        let calls = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        let mut callers = Vec::new();
        for _ in 0..args.connections {
            let client = Client::new(vec![Endpoint::from(addr)], ClientOptions::default())
                .expect("a destination");
            for _ in 0..args.callers.max(1) {
                let (client, payload) = (client.clone(), payload.clone());
                let (calls, errors, stop) = (calls.clone(), errors.clone(), stop.clone());
                callers.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match client.call(PROGRAM, 1, 1, payload.clone()).await {
                            Ok(r) if r.len() == payload.len() => {
                                calls.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(_) | Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }));
            }
            clients.push(client);
        }
        let started = Instant::now();
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let t = started.elapsed().as_secs_f64();
            let sample = Sample {
                t: (t * 10.0).round() / 10.0,
                rss_kib: bench_support::rss_bytes() >> 10,
                fds: bench_support::fd_count().unwrap_or(0),
                tasks: tokio::runtime::Handle::current()
                    .metrics()
                    .num_alive_tasks(),
                calls: calls.load(Ordering::Relaxed),
            };
            eprintln!("{}", serde_json::to_string(&sample).unwrap());
            samples.push(sample);
            if t >= args.seconds {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for caller in callers {
            let _ = caller.await;
        }
        for client in &clients {
            client.close();
        }
        drop(clients);
        server.shutdown().await;
        // Let closed connections' tasks finish.
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut end_fds, mut end_tasks);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            end_fds = bench_support::fd_count().unwrap_or(0);
            end_tasks = tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks();
            // The block_on future itself is not a task.
            if (end_fds <= base_fds && end_tasks <= base_tasks) || Instant::now() > deadline {
                break;
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        judge(
            &args,
            &samples,
            errors.load(Ordering::Relaxed),
            calls.load(Ordering::Relaxed),
            elapsed,
            (base_fds, end_fds),
            (base_tasks, end_tasks),
            nofile,
        )
    });
    println!("{verdict}");
    if verdict["pass"] != serde_json::Value::Bool(true) {
        std::process::exit(1);
    }
}

#[allow(clippy::too_many_arguments)]
fn judge(
    args: &Args,
    samples: &[Sample],
    errors: u64,
    calls: u64,
    elapsed: f64,
    fds: (usize, usize),
    tasks: (usize, usize),
    nofile: u64,
) -> serde_json::Value {
    let n = samples.len();
    let warm = (n / 4).max(2).min(n.saturating_sub(1));
    let after: Vec<&Sample> = samples[warm..].iter().collect();
    let median = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let quarter = (after.len() / 4).max(1);
    let early = median(&mut after[..quarter].iter().map(|s| s.rss_kib).collect());
    let late = median(
        &mut after[after.len() - quarter..]
            .iter()
            .map(|s| s.rss_kib)
            .collect(),
    );
    let growth = (late as f64 - early as f64) / early.max(1) as f64 * 100.0;
    let fds_run: Vec<usize> = after.iter().map(|s| s.fds).collect();
    let tasks_run: Vec<usize> = after.iter().map(|s| s.tasks).collect();
    let steady = |v: &[usize]| v.iter().min() == v.iter().max();
    let rss_flat = growth <= args.rss_slack;
    let no_leak = fds.1 <= fds.0 && tasks.1 <= tasks.0;
    // Tasks vary with the calls in progress (each has a handler task, and
    // its inner task, on the server): at most two per caller.
    let in_flight = 2 * args.connections * args.callers.max(1);
    let tasks_bounded = tasks_run
        .iter()
        .max()
        .zip(tasks_run.iter().min())
        .is_some_and(|(max, min)| max - min <= in_flight);
    let pass = errors == 0 && rss_flat && no_leak && steady(&fds_run) && tasks_bounded;
    serde_json::json!({
        "pass": pass,
        "connections": args.connections,
        "callers_per_connection": args.callers,
        "payload": args.payload,
        "seconds": (elapsed * 10.0).round() / 10.0,
        "calls": calls,
        "calls_per_s": (calls as f64 / args.seconds).round(),
        "errors": errors,
        "rss_kib_after_warmup": early,
        "rss_kib_at_end": late,
        "rss_growth_percent": (growth * 100.0).round() / 100.0,
        "rss_flat": rss_flat,
        "fds_during_run": [fds_run.iter().min(), fds_run.iter().max()],
        "tasks_during_run": [tasks_run.iter().min(), tasks_run.iter().max()],
        "fds_before_after": [fds.0, fds.1],
        "tasks_before_after": [tasks.0, tasks.1],
        "leaked": !no_leak,
        "nofile": nofile,
    })
}
