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

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use peerwire::programs::hello::HANDSHAKE_PROGRAM;
use peerwire::proto::{AcceptStatus, CallHeader, Message, ReplyBody, record_header};
use peerwire::{
    Client, ClientIdentity, ClientOptions, Endpoint, IdentityMode, NodeId, PeerTable, ProcError,
    Server, ServerIdentity, ServerOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PROGRAM: u32 = 0x2000_fa17;
const VERSION: u32 = 1;
const ECHO: u32 = 1;

/// Records in one write of a flooder.
const BATCH: u32 = 1024;

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

/// The measured window.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    /// True for a gap that ends in the window (a long one that began
    /// before it counts too).
    fn holds(&self, end: Instant) -> bool {
        end > self.start && end <= self.end
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("a histogram")
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
                if !scenario(side, flood, runtime, &args) {
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

fn runtime_under_test(runtime: Runtime) -> tokio::runtime::Runtime {
    let mut builder = match runtime {
        Runtime::Current => tokio::runtime::Builder::new_current_thread(),
        _ => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(2);
            builder
        }
    };
    builder.enable_all().build().expect("a runtime")
}

/// A thread with a current-thread runtime of its own, running `task`.
fn own_thread<F>(task: impl FnOnce() -> F + Send + 'static) -> std::thread::JoinHandle<()>
where
    F: std::future::Future<Output = ()>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(task())
    })
}

fn id(name: &str) -> NodeId {
    NodeId::new(name).expect("a node ID")
}

fn echo_server(options: ServerOptions) -> Server {
    Server::new(options).service(
        PROGRAM,
        VERSION,
        |_ctx, procedure, args: Bytes| async move {
            match procedure {
                ECHO => Ok(args),
                _ => Err(ProcError::ProcUnavail),
            }
        },
    )
}

/// Appends `message` with its record mark.
fn push_record(out: &mut BytesMut, message: &Message) {
    let mut body = BytesMut::new();
    message.encode(&mut body);
    out.extend_from_slice(&record_header(body.len() as u32, true));
    out.extend_from_slice(&body);
}

/// Runs one scenario and prints its line; true when it met its goal.
fn scenario(side: Side, flood: Flood, runtime: Runtime, args: &Args) -> bool {
    let flooders = if runtime == Runtime::Current { 1 } else { 2 };
    let stop = Arc::new(AtomicBool::new(false));
    let flooded = Arc::new(AtomicU64::new(0));
    let rt = runtime_under_test(runtime);
    let mut threads = Vec::new();
    let now = Instant::now();
    let window = Window {
        start: now + Duration::from_secs_f64(args.warmup),
        end: now + Duration::from_secs_f64(args.warmup + args.seconds),
    };
    let payload = Bytes::from(vec![7u8; args.payload]);
    let measured = match side {
        Side::Server => {
            let identity = flood == Flood::Null;
            let options = ServerOptions {
                identity: identity.then(|| ServerIdentity {
                    node: id("probe-server"),
                    cluster: None,
                    peers: PeerTable::new().allow(id("honest"), ["127.0.0.1".parse().unwrap()]),
                    mode: IdentityMode::Strict,
                }),
                ..ServerOptions::default()
            };
            let server = {
                let _entered = rt.enter();
                echo_server(options)
                    .serve(&["127.0.0.1:0".parse().unwrap()])
                    .expect("the server under test")
            };
            let address = server.local_addrs()[0];
            for _ in 0..flooders {
                let (stop, flooded) = (stop.clone(), flooded.clone());
                threads.push(own_thread(move || {
                    flood_calls(address, flood, stop, flooded)
                }));
            }
            let honest = ClientOptions {
                identity: identity.then(|| ClientIdentity::new(id("honest"), id("probe-server"))),
                ..ClientOptions::default()
            };
            let measured = rt.block_on(measure(address, honest, payload, window));
            drop(server);
            measured
        }
        _ => {
            let (addr_tx, addr_rx) = std::sync::mpsc::channel();
            let honest_stop = stop.clone();
            threads.push(own_thread(move || async move {
                let server = echo_server(ServerOptions::default())
                    .serve(&["127.0.0.1:0".parse().unwrap()])
                    .expect("the honest server");
                addr_tx.send(server.local_addrs()[0]).unwrap();
                while !honest_stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }));
            let honest_address = addr_rx.recv().expect("the honest server started");
            let (addr_tx, addr_rx) = std::sync::mpsc::channel();
            let hostile_stop = stop.clone();
            threads.push(own_thread(move || async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                while !hostile_stop.load(Ordering::Relaxed) {
                    let tick = tokio::time::sleep(Duration::from_millis(50));
                    tokio::select! {
                        accepted = listener.accept() => {
                            let (stream, _) = accepted.unwrap();
                            tokio::spawn(flood_records(stream, flood, hostile_stop.clone()));
                        }
                        () = tick => {}
                    }
                }
            }));
            let hostile = addr_rx.recv().expect("the hostile server started");
            rt.block_on(async {
                // The flooded clients, each on a connection of its own.
                let mut victims = Vec::new();
                for _ in 0..flooders {
                    let client =
                        Client::new(vec![Endpoint::from(hostile)], ClientOptions::default())
                            .expect("a destination");
                    client
                        .connect()
                        .await
                        .expect("connected to the hostile server");
                    if flood == Flood::Replies {
                        let client = client.clone();
                        tokio::spawn(async move {
                            while Instant::now() < window.end {
                                let _ = client.call(PROGRAM, VERSION, ECHO, Bytes::new()).await;
                            }
                        });
                    }
                    victims.push(client);
                }
                let measured =
                    measure(honest_address, ClientOptions::default(), payload, window).await;
                for victim in &victims {
                    flooded.fetch_add(
                        victim.stats().late_replies + victim.stats().unknown_replies,
                        Ordering::Relaxed,
                    );
                    victim.close();
                }
                measured
            })
        }
    };
    stop.store(true, Ordering::Relaxed);
    rt.shutdown_timeout(Duration::from_secs(1));
    for thread in threads {
        let _ = thread.join();
    }
    let Measured {
        gaps,
        latency,
        calls,
        errors,
    } = measured;
    let ms = |us: u64| us as f64 / 1000.0;
    let ticker_worst = ms(gaps.max());
    let (p50, p99, worst) = (
        ms(latency.value_at_quantile(0.5)),
        ms(latency.value_at_quantile(0.99)),
        ms(latency.max()),
    );
    let met = match runtime {
        Runtime::Current => ticker_worst <= 25.0,
        _ => p99 <= 25.0 && worst <= 150.0 && calls > 0,
    };
    let line = serde_json::json!({
        "side": format!("{side:?}").to_lowercase(),
        "flood": format!("{flood:?}").to_lowercase(),
        "runtime": format!("{runtime:?}").to_lowercase(),
        "flooders": flooders,
        "seconds": args.seconds,
        "ticker_ticks": gaps.len(),
        "ticker_p99_gap_ms": ms(gaps.value_at_quantile(0.99)),
        "ticker_worst_gap_ms": ticker_worst,
        "honest_calls": calls,
        "honest_errors": errors,
        "honest_p50_ms": p50,
        "honest_p99_ms": p99,
        "honest_worst_ms": worst,
        "flood_records": flooded.load(Ordering::Relaxed),
        "goal": if met { "met" } else { "missed" },
    });
    println!("{line}");
    met
}

/// What the side under test saw in the window.
struct Measured {
    /// The ticker's gaps between ticks, µs.
    gaps: Histogram<u64>,
    /// The honest client's calls, µs.
    latency: Histogram<u64>,
    calls: u64,
    errors: u64,
}

/// Runs the 1 ms ticker and the honest client (one call at a time) on
/// this runtime through the window.
async fn measure(
    address: SocketAddr,
    options: ClientOptions,
    payload: Bytes,
    window: Window,
) -> Measured {
    let ticker = tokio::spawn(async move {
        let mut gaps = histogram();
        let mut last = Instant::now();
        while last < window.end {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let now = Instant::now();
            if window.holds(now) {
                let _ = gaps.record((now - last).as_micros() as u64);
            }
            last = now;
        }
        gaps
    });
    let honest = tokio::spawn(async move {
        let client = Client::new(vec![Endpoint::from(address)], options).expect("a destination");
        let (mut latency, mut calls, mut errors) = (histogram(), 0, 0);
        loop {
            let started = Instant::now();
            if started >= window.end {
                break;
            }
            let result = client.call(PROGRAM, VERSION, ECHO, payload.clone()).await;
            let done = Instant::now();
            match result {
                // A call running at the window's end counts too.
                Ok(_) if done > window.start => {
                    calls += 1;
                    let _ = latency.record((done - started).as_micros().max(1) as u64);
                }
                Ok(_) => {}
                Err(error) => {
                    errors += 1;
                    if errors <= 3 {
                        eprintln!("honest call failed: {error}");
                    }
                }
            }
        }
        client.close();
        (latency, calls, errors)
    });
    let gaps = ticker.await.expect("the ticker");
    let (latency, calls, errors) = honest.await.expect("the honest client");
    Measured {
        gaps,
        latency,
        calls,
        errors,
    }
}

/// A flooding client of the server under test: writes batches of calls
/// (`Calls`: to the echo procedure; `Null`: the HELLO program's NULL,
/// before any HELLO) until stopped, and reads the replies, counting them.
async fn flood_calls(
    address: SocketAddr,
    flood: Flood,
    stop: Arc<AtomicBool>,
    counter: Arc<AtomicU64>,
) {
    let header = match flood {
        Flood::Null => CallHeader::new(HANDSHAKE_PROGRAM, 1, 0),
        _ => CallHeader::new(PROGRAM, VERSION, ECHO),
    };
    let mut batch = BytesMut::new();
    for xid in 0..BATCH {
        push_record(
            &mut batch,
            &Message::call(xid, header.clone(), Bytes::new()),
        );
    }
    let stream = TcpStream::connect(address)
        .await
        .expect("connected to the server under test");
    let (mut reader, mut writer) = stream.into_split();
    let reading = tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut held = 0usize;
        loop {
            buf.clear();
            match reader.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    // Replies to these calls are 28 bytes with their mark.
                    held += n;
                    counter.fetch_add((held / 28) as u64, Ordering::Relaxed);
                    held %= 28;
                }
            }
        }
    });
    while !stop.load(Ordering::Relaxed) {
        if writer.write_all(&batch).await.is_err() {
            break;
        }
    }
    drop(writer);
    reading.abort();
}

/// The hostile server's side of one connection: sends records without end
/// (see [`Flood::Replies`] and [`Flood::Unrequested`]) until stopped.
async fn flood_records(stream: TcpStream, flood: Flood, stop: Arc<AtomicBool>) {
    let (mut reader, mut writer) = stream.into_split();
    // The XID of the client's latest call, read from its records.
    let latest = Arc::new(AtomicU32::new(0));
    let seen = latest.clone();
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            match reader.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            while buf.len() >= 8 {
                let len =
                    (u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) & 0x7fff_ffff) as usize;
                if buf.len() < 4 + len {
                    break;
                }
                seen.store(
                    u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                    Ordering::Relaxed,
                );
                buf.advance(4 + len);
            }
        }
    });
    let body = || ReplyBody::accepted(AcceptStatus::Success);
    let mut batch = BytesMut::new();
    let mut next = 0x4000_0000u32;
    while !stop.load(Ordering::Relaxed) {
        batch.clear();
        for _ in 0..BATCH {
            let xid = match flood {
                Flood::Replies => latest.load(Ordering::Relaxed),
                _ => {
                    next = next.wrapping_add(1);
                    next
                }
            };
            push_record(&mut batch, &Message::reply(xid, body(), Bytes::new()));
        }
        if writer.write_all(&batch).await.is_err() {
            return;
        }
    }
}
