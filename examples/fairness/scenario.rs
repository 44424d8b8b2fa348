//! One scenario: the runtime under test, the flooders and the honest
//! side's peers on threads of their own, and the scenario's JSON line.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use peerwire::{
    Client, ClientIdentity, ClientOptions, Endpoint, IdentityMode, NodeId, PeerTable, ProcError,
    Server, ServerIdentity, ServerOptions,
};
use tokio::net::TcpListener;

use crate::flood::{flood_calls, flood_records};
use crate::measure::{Measured, Window, measure};
use crate::{Args, ECHO, Flood, PROGRAM, Runtime, Side, VERSION};

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

/// Runs one scenario and prints its line; true when it met its goal.
pub fn scenario(side: Side, flood: Flood, runtime: Runtime, args: &Args) -> bool {
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
