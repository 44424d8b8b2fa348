//! Runtime scenarios: a peerwire `Server` and `Client` in two hosts joined
//! by a veth pair, with faults made on the link while calls are running.
//!
//! Each scenario asserts on observed facts: the error a caller gets and when,
//! the client's counters, and the address the server saw.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use peerwire::{
    CallContext, CallOptions, Client, ClientOptions, ConnectOptions, ConnectionState,
    DisconnectCause, Endpoint, Error, Keepalive, ProcError, ScopedIp, Server, ServerOptions,
    Sources,
};

use crate::STEP;
use crate::support::common::ip;
use crate::support::netns::{Host, join, link, stop_and_join};

/// The test program: procedure 1 sleeps for [`SLOW`], procedure 2 answers at
/// once with the caller's address as the server observed it (as text).
const PROGRAM: u32 = 0x2050_0001;
const VERSION: u32 = 1;
const PROC_SLOW: u32 = 1;
const PROC_OBSERVED: u32 = 2;
const SLOW: Duration = Duration::from_secs(30);

/// A peerwire server running in a host, on its own thread, until dropped.
struct RunningIn {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RunningIn {
    /// Serves the test program on `listen_on` (port 0 picks one) in `host`.
    fn start(host: &Host, listen_on: &str) -> RunningIn {
        let endpoint: Endpoint = listen_on.parse().unwrap();
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = host.spawn(move || async move {
            let options = ServerOptions {
                // The slow call left behind on the dead connection must not
                // hold up the end of the test.
                shutdown_grace: Duration::from_millis(200),
                ..ServerOptions::default()
            };
            let server = Server::new(options).service(
                PROGRAM,
                VERSION,
                |ctx: CallContext, procedure: u32, _args: Bytes| async move {
                    match procedure {
                        PROC_SLOW => {
                            tokio::time::sleep(SLOW).await;
                            Ok(Bytes::new())
                        }
                        PROC_OBSERVED => Ok(Bytes::from(ctx.observed.to_string())),
                        _ => Err(ProcError::ProcUnavail),
                    }
                },
            );
            let running = server
                .serve(&[endpoint])
                .unwrap_or_else(|e| panic!("the server cannot listen: {e}"));
            addr_tx.send(running.local_addrs()[0]).unwrap();
            let _ = stop_rx.await;
            running.shutdown().await;
        });
        let addr = addr_rx
            .recv_timeout(STEP)
            .expect("the server did not start");
        RunningIn {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::new(self.addr.ip(), self.addr.port())
    }
}

impl Drop for RunningIn {
    fn drop(&mut self) {
        stop_and_join(&mut self.stop, &mut self.thread);
    }
}

/// Calls procedure 2 and returns the address the server observed.
async fn observed(client: &Client, deadline: Duration) -> Result<SocketAddr, Error> {
    let options = CallOptions {
        deadline: Some(deadline),
        ..CallOptions::default()
    };
    let text = client
        .call_with(PROGRAM, VERSION, PROC_OBSERVED, Bytes::new(), &options)
        .await?;
    let text = std::str::from_utf8(&text).expect("procedure 2 answers with text");
    Ok(text.parse().expect("procedure 2 answers with an address"))
}

/// The client's local address on its current connection.
fn local_addr(client: &Client) -> SocketAddr {
    match client.state() {
        ConnectionState::Connected { local, .. } => local,
        other => panic!("the client should be connected, is {other:?}"),
    }
}

/// A slow call is running when the link goes down. TCP only retransmits
/// into the void, so no error comes from the kernel for a long while; the
/// client's liveness check must declare the connection dead within its ping
/// timeout (far before the call's deadline) and fail the call with
/// `PingTimeout`, saying it was sent. With the link back up, the next call
/// reconnects, from the configured source.
pub fn link_down_mid_call_declares_the_connection_dead_then_reconnects() {
    let server = Host::new("ls");
    let client_host = Host::new("lc");
    link(&server, "veth0", &client_host, "veth1");
    server.add_addr("veth0", "203.0.113.1/24");
    client_host.add_addr("veth1", "203.0.113.10/24");
    let source = ip("203.0.113.10");

    let running = RunningIn::start(&server, "203.0.113.1:0");
    let destination = running.endpoint();

    let ping_interval = Duration::from_millis(200);
    let ping_timeout = Duration::from_secs(1);
    let deadline = Duration::from_secs(20);
    let options = ClientOptions {
        connect: ConnectOptions {
            sources: Sources::new().with(ScopedIp::new(source)),
            ..ConnectOptions::default()
        },
        deadline,
        ping_interval,
        ping_timeout,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_millis(500),
        ..ClientOptions::default()
    };

    client_host.block_on(|| async {
        let client = Client::new(vec![destination], options).expect("a destination");

        // A healthy connection first, from the configured source.
        let seen = observed(&client, STEP)
            .await
            .expect("the first call failed");
        assert_eq!(seen.ip(), source, "the server saw the wrong source");
        assert_eq!(seen, local_addr(&client), "server and client disagree");
        assert_eq!(client.stats().reconnects, 0);

        // The slow call. On a healthy link it outlives the ping timeout:
        // the server answers the pings, so liveness has no reason to fire.
        let slow = tokio::spawn({
            let client = client.clone();
            async move { client.call(PROGRAM, VERSION, PROC_SLOW, Bytes::new()).await }
        });
        let sent_by = Instant::now() + STEP;
        while client.stats().sent < 2 {
            assert!(Instant::now() < sent_by, "the slow call was never sent");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(ping_timeout + ping_timeout / 2).await;
        assert!(
            !slow.is_finished(),
            "the slow call ended on a healthy link: {:?}",
            slow.await
        );

        // Carrier down on both ends of the veth.
        client_host.ip(&["link", "set", "dev", "veth1", "down"]);
        let down_at = Instant::now();
        let outcome = tokio::time::timeout(deadline, slow)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the slow call was still running {deadline:?} after the link went down \
                     (ping_timeout {ping_timeout:?}): liveness never fired"
                )
            })
            .expect("the slow call's task panicked");
        let elapsed = down_at.elapsed();
        assert!(
            matches!(
                outcome,
                Err(Error::Disconnected {
                    cause: DisconnectCause::PingTimeout,
                    sent: true,
                    ..
                })
            ),
            "after {elapsed:?} the slow call ended with {outcome:?}, expected \
             Disconnected {{ cause: PingTimeout, sent: true }}"
        );
        // The connection is dead `ping_timeout` after the last reply heard,
        // which came at most one ping interval (and a round trip) before
        // the link went down.
        let earliest = ping_timeout - ping_interval - Duration::from_millis(50);
        assert!(
            elapsed >= earliest,
            "declared dead {elapsed:?} after the link went down: sooner than \
             ping_timeout - ping_interval ({earliest:?})"
        );
        let latest = ping_timeout + Duration::from_secs(3);
        assert!(
            elapsed <= latest,
            "declared dead only {elapsed:?} after the link went down (ping_timeout \
             {ping_timeout:?})"
        );

        // Link up again: a new call reconnects, within a few backoffs.
        client_host.ip(&["link", "set", "dev", "veth1", "up"]);
        let up_at = Instant::now();
        let mut errors = Vec::new();
        let seen = loop {
            match observed(&client, Duration::from_secs(2)).await {
                Ok(seen) => break seen,
                Err(error) => {
                    errors.push(error.to_string());
                    assert!(
                        up_at.elapsed() < STEP,
                        "no call succeeded within {STEP:?} of the link coming back: {errors:#?}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        assert!(
            client.stats().reconnects >= 1,
            "the call succeeded without a reconnect: {:?}",
            client.stats()
        );
        assert_eq!(seen.ip(), source, "the server saw the wrong source");
        assert_eq!(seen, local_addr(&client), "server and client disagree");
        client.close();
    });
    drop(running);
}

/// A client vanishes without a word: its link goes down while its
/// connection to the server is idle, so nothing ever tells the server. The
/// server's keepalive and `TCP_USER_TIMEOUT`, configured to a few seconds,
/// find it: the connection leaves the server's list and is counted closed
/// within that time, not at the idle timeout (5 min by default, untouched
/// here).
pub fn partitioned_client_is_closed_by_the_servers_keepalive() {
    let server_host = Host::new("ks");
    let client_host = Host::new("kc");
    link(&server_host, "veth0", &client_host, "veth1");
    server_host.add_addr("veth0", "198.51.100.1/24");
    client_host.add_addr("veth1", "198.51.100.10/24");

    let keepalive = Keepalive {
        time: Duration::from_secs(1),
        interval: Duration::from_secs(1),
        count: 3,
    };
    let user_timeout = Duration::from_secs(4);
    // Healthy and idle for longer than the keepalive would take to close a
    // connection whose probes go unanswered.
    let healthy = user_timeout + Duration::from_secs(2);
    // The configured time is about keepalive.time + user_timeout (5 s);
    // the bound is far above it for a loaded machine, and far below the
    // idle timeout.
    let bound = Duration::from_secs(30);

    let (addr_tx, addr_rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (cut_tx, cut_rx) = tokio::sync::oneshot::channel::<Instant>();
    let server_thread = server_host.spawn(move || async move {
        let options = ServerOptions {
            keepalive: Some(keepalive),
            user_timeout: Some(user_timeout),
            shutdown_grace: Duration::from_millis(200),
            ..ServerOptions::default()
        };
        let running = Server::new(options)
            .service(PROGRAM, VERSION, |_: CallContext, _: u32, _: Bytes| async {
                Ok(Bytes::new())
            })
            .serve(&["198.51.100.1:0".parse().unwrap()])
            .unwrap_or_else(|e| panic!("the server cannot listen: {e}"));
        addr_tx.send(running.local_addrs()[0]).unwrap();
        let start = Instant::now();
        while running.connections().is_empty() {
            assert!(
                start.elapsed() < STEP,
                "the client's connection never arrived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let observed = running.connections()[0].observed;
        tokio::time::sleep(healthy).await;
        assert_eq!(
            running.connections().len(),
            1,
            "the idle connection of a healthy client was closed"
        );
        ready_tx.send(observed).unwrap();
        let cut_at = cut_rx
            .await
            .expect("the test gave up before cutting the link");
        while !running.connections().is_empty() && cut_at.elapsed() < bound {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let closed_after = cut_at.elapsed();
        let left = running.connections();
        let stats = running.stats();
        running.shutdown().await;
        (closed_after, left, stats)
    });
    let server_addr: SocketAddr = addr_rx
        .recv_timeout(STEP)
        .expect("the server did not start");

    let (local_tx, local_rx) = mpsc::channel();
    let (hold_tx, hold_rx) = tokio::sync::oneshot::channel::<()>();
    let client_thread = client_host.spawn(move || async move {
        let stream = tokio::time::timeout(STEP, tokio::net::TcpStream::connect(server_addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        local_tx.send(stream.local_addr().unwrap()).unwrap();
        // Held, idle, until the end: the client never closes it.
        let _ = hold_rx.await;
        drop(stream);
    });
    let local: SocketAddr = local_rx
        .recv_timeout(STEP)
        .expect("the client did not connect");
    let observed: SocketAddr = ready_rx
        .recv_timeout(STEP + healthy)
        .expect("the server did not see the connection");
    assert_eq!(observed, local, "the server saw another peer");

    // The client vanishes: carrier down on its end of the veth.
    client_host.ip(&["link", "set", "dev", "veth1", "down"]);
    cut_tx.send(Instant::now()).unwrap();
    let (closed_after, left, stats) = join(server_thread);
    let _ = hold_tx.send(());
    join(client_thread);
    assert!(
        left.is_empty(),
        "the server still holds the vanished client's connection {bound:?} after the \
         partition (keepalive {keepalive:?}, user timeout {user_timeout:?}): {left:?}"
    );
    assert_eq!(stats.closed, 1, "{stats:?}");
    assert!(
        closed_after >= Duration::from_secs(1),
        "closed {closed_after:?} after the partition: too soon for unanswered probes"
    );
    eprintln!("the vanished client's connection closed {closed_after:?} after the partition");
}
