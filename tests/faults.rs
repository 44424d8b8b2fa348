//! Faults on loopback: real TCP on 127.0.0.1, real time, short timeouts.
//!
//! The machines that run these are shared and noisy, so nothing here
//! asserts speed. Lower bounds are deterministic (a timer never fires
//! early); upper bounds are generous and only catch hangs.

mod support {
    #[path = "../support/common.rs"]
    pub mod common;
}

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use peerwire::{
    CallContext, CallStatus, Client, ClientOptions, ConnectionState, DisconnectCause, Endpoint,
    Error, ProcError, Server, ServerOptions, Service,
};
use support::common::{PROG, echo, free_port, ms, quiet_client_options, start, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::{Instant, sleep, timeout};

/// Long enough to mean "hung" on the slowest machine.
const GENEROUS: Duration = Duration::from_secs(20);

/// Waits until `done()` holds, polling; panics after [`GENEROUS`].
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < GENEROUS, "gave up waiting: {what}");
        sleep(ms(10)).await;
    }
}

/// More bytes than the two socket buffers of a loopback connection can
/// hold when the receiver never reads: a write of this size cannot finish.
/// Each buffer is at most the larger of its `tcp_[rw]mem` maximum (autotuning)
/// and twice its `net.core` maximum (an explicit `SO_[RS]NDBUF`).
fn more_than_socket_buffers() -> usize {
    let max = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().last()?.parse::<usize>().ok())
    };
    let buffer = |tcp: &str, core: &str| Some(max(tcp)?.max(2 * max(core)?));
    match (
        buffer("/proc/sys/net/ipv4/tcp_rmem", "/proc/sys/net/core/rmem_max"),
        buffer("/proc/sys/net/ipv4/tcp_wmem", "/proc/sys/net/core/wmem_max"),
    ) {
        (Some(r), Some(w)) => r + w + (4 << 20),
        _ => 96 << 20,
    }
}

/// A raw listener whose connections are accepted and held, never read,
/// until the returned sender fires (or is dropped): then they are closed.
async fn deaf_server() -> (Endpoint, oneshot::Sender<()>, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = Endpoint::from(listener.local_addr().unwrap());
    let (close, closed) = oneshot::channel::<()>();
    let (accepted_tx, accepted) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        tokio::pin!(closed);
        loop {
            tokio::select! {
                Ok((stream, _)) = listener.accept() => {
                    held.push(stream);
                    let _ = accepted_tx.send(());
                }
                _ = &mut closed => break,
            }
        }
        drop(held);
    });
    (addr, close, accepted)
}

// ---------------------------------------------------------------------------
// The server dies
// ---------------------------------------------------------------------------

/// A raw server reads two whole calls, then closes the connection: both
/// calls fail at once, saying they were sent (they may have run).
#[tokio::test]
async fn server_closing_mid_call_fails_pending_calls_as_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = Endpoint::from(listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        use futures_util::StreamExt;
        let (stream, _) = listener.accept().await.unwrap();
        let mut calls =
            tokio_util::codec::FramedRead::new(stream, peerwire::codec::RpcCodec::default());
        for _ in 0..2 {
            let call = calls.next().await.unwrap().unwrap().unwrap();
            assert!(matches!(
                call.body,
                peerwire::proto::MessageBody::Call { .. }
            ));
        }
        // Both calls are read whole; close without answering.
    });
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let start = Instant::now();
    let (a, b) = tokio::join!(
        client.call(PROG, 1, 1, Bytes::from_static(b"a")),
        client.call(PROG, 1, 1, Bytes::from_static(b"b")),
    );
    server.await.unwrap();
    for result in [a, b] {
        assert!(
            matches!(
                result,
                Err(Error::Disconnected {
                    sent: true,
                    cause: DisconnectCause::Closed | DisconnectCause::Io(_),
                    ..
                })
            ),
            "{result:?}"
        );
    }
    assert!(start.elapsed() < GENEROUS);
    assert_eq!(client.stats().failed, 2);
}

/// A peerwire server whose process dies (its runtime is torn down) while a
/// handler runs: the pending call fails promptly with `sent: true`, long
/// before its deadline.
#[tokio::test]
async fn server_killed_mid_call_fails_the_call_as_sent() {
    let (entered_tx, mut entered) = mpsc::unbounded_channel::<()>();
    let (addr_tx, addr_rx) = oneshot::channel();
    let (kill, killed) = std::sync::mpsc::channel::<()>();
    let host = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let _server = runtime.block_on(async move {
            let (server, addr) = start(ServerOptions::default(), move |_, _, _| {
                let entered = entered_tx.clone();
                async move {
                    let _ = entered.send(());
                    std::future::pending::<Result<Bytes, ProcError>>().await
                }
            });
            addr_tx.send(addr).unwrap();
            server
        });
        killed.recv().unwrap();
        // Every task dies with the runtime; the sockets close.
        runtime.shutdown_background();
    });
    let addr = addr_rx.await.unwrap();
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call(PROG, 1, 1, Bytes::from_static(b"x")).await }
    });
    timeout(GENEROUS, entered.recv()).await.unwrap().unwrap();
    assert!(!call.is_finished());
    let killed_at = Instant::now();
    kill.send(()).unwrap();
    let result = timeout(GENEROUS, call).await.unwrap().unwrap();
    assert!(
        matches!(
            result,
            Err(Error::Disconnected {
                sent: true,
                cause: DisconnectCause::Closed | DisconnectCause::Io(_),
                ..
            })
        ),
        "{result:?}"
    );
    assert!(killed_at.elapsed() < GENEROUS);
    host.join().unwrap();
}

/// The server closes while the request is still half written (it never
/// read, and the request is larger than the socket buffers): the call whose
/// bytes partly reached the kernel fails with `sent: true` (bytes of it
/// left this host, so it may have run as far as we can know), and the one
/// queued behind it, none of whose bytes were written, with `sent: false`,
/// safe to retry.
#[tokio::test]
async fn server_gone_before_the_request_was_written_fails_as_not_sent() {
    let (addr, close, mut accepted) = deaf_server().await;
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let big = Bytes::from(vec![0x5a; more_than_socket_buffers()]);
    let calls = tokio::spawn({
        let client = client.clone();
        async move {
            tokio::join!(
                client.call(PROG, 1, 1, big),
                client.call(PROG, 1, 1, Bytes::from_static(b"small")),
            )
        }
    });
    timeout(GENEROUS, accepted.recv()).await.unwrap().unwrap();
    // Let the writer fill both buffers and block.
    sleep(ms(300)).await;
    assert!(!calls.is_finished());
    assert_eq!(client.stats().sent, 1, "only the big call has bytes out");
    drop(close);
    let (big, small) = timeout(GENEROUS, calls).await.unwrap().unwrap();
    assert!(
        matches!(big, Err(Error::Disconnected { sent: true, .. })),
        "{big:?}"
    );
    assert!(
        matches!(small, Err(Error::Disconnected { sent: false, .. })),
        "{small:?}"
    );
}

// ---------------------------------------------------------------------------
// The server is down
// ---------------------------------------------------------------------------

/// Nothing listens: attempts back off, doubling within ±20 % jitter; after
/// three failures the breaker opens and calls fail fast. A server comes up
/// on the port and the breaker's probe closes it.
#[tokio::test]
async fn backoff_then_breaker_then_recovery() {
    let port = free_port("127.0.0.1");
    let addr: Endpoint = format!("127.0.0.1:{port}").parse().unwrap();
    let base = ms(100);
    let options = ClientOptions {
        backoff_base: base,
        backoff_max: Duration::from_secs(10),
        backoff_jitter: 0.2,
        breaker_threshold: 3,
        ..quiet_client_options()
    };
    let client = Client::new(vec![addr.clone()], options).expect("a destination");

    // Record every state with when it was seen. On this current-thread
    // runtime the recorder runs whenever the driver waits, so it sees each
    // backoff (the driver sleeps through it).
    let seen: Arc<Mutex<Vec<(std::time::Instant, ConnectionState)>>> = Arc::default();
    let mut states = client.watch_state();
    let recorder = tokio::spawn({
        let seen = seen.clone();
        async move {
            while states.changed().await.is_ok() {
                let state = *states.borrow_and_update();
                seen.lock()
                    .unwrap()
                    .push((std::time::Instant::now(), state));
            }
        }
    });

    let t0 = std::time::Instant::now();
    let result = client.call(PROG, 1, 1, Bytes::from_static(b"x")).await;
    let Err(Error::CircuitOpen {
        failures,
        next_attempt,
        ..
    }) = result
    else {
        panic!("expected the breaker to open: {result:?}")
    };
    assert_eq!(failures, 3);
    assert!(t0.elapsed() < GENEROUS);

    let backoffs: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|&(at, state)| match state {
            ConnectionState::Backoff { until } => Some((at, until)),
            _ => None,
        })
        .collect();
    assert_eq!(backoffs.len(), 2, "{:?}", seen.lock().unwrap());
    let slack = ms(1);
    let lower = |n: u32| base.mul_f64(0.8) * n;
    let upper = |n: u32| base.mul_f64(1.2) * n + slack;
    // Each delay is counted from a failure that came after the previous
    // delay ended: a lower bound. The state is seen after its failure: the
    // rest of the delay at that moment is an upper bound.
    let (seen1, until1) = backoffs[0];
    let (seen2, until2) = backoffs[1];
    assert!(until1 >= t0 + lower(1), "{backoffs:?}");
    assert!(until2 >= until1 + lower(2), "{backoffs:?}");
    assert!(next_attempt >= until2 + lower(4), "{backoffs:?}");
    assert!(until1.saturating_duration_since(seen1) <= upper(1));
    assert!(until2.saturating_duration_since(seen2) <= upper(2));

    // Open: calls fail fast, without waiting for their deadline.
    let asked = Instant::now();
    let result = client
        .call_with(PROG, 1, 1, Bytes::from_static(b"x"), &within(GENEROUS))
        .await;
    assert!(
        matches!(result, Err(Error::CircuitOpen { .. })),
        "{result:?}"
    );
    assert!(asked.elapsed() < GENEROUS);
    // The state shows the open breaker until its next attempt.
    let state = client.state();
    let Err(Error::CircuitOpen { next_attempt, .. }) = result else {
        unreachable!()
    };
    assert!(
        state
            == ConnectionState::Open {
                until: next_attempt
            }
            || std::time::Instant::now() >= next_attempt,
        "{state:?}"
    );

    // A server comes up on the port: the next probe closes the breaker.
    let server = Server::new(ServerOptions::default())
        .service(PROG, 1, echo)
        .serve(&[addr])
        .unwrap();
    let up = Instant::now();
    loop {
        match client.call(PROG, 1, 1, Bytes::from_static(b"x")).await {
            Ok(out) => {
                assert_eq!(&out[..], b"x");
                break;
            }
            Err(Error::CircuitOpen { next_attempt, .. }) => {
                assert!(up.elapsed() < GENEROUS, "the breaker stays open");
                tokio::time::sleep_until(next_attempt.into()).await;
            }
            Err(error) => panic!("{error}"),
        }
    }
    assert!(
        matches!(client.state(), ConnectionState::Connected { .. }),
        "{:?}",
        client.state()
    );
    client
        .call(PROG, 1, 1, Bytes::from_static(b"y"))
        .await
        .unwrap();
    client.close();
    recorder.abort();
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// The server misbehaves
// ---------------------------------------------------------------------------

/// The server accepts and never reads; the request is larger than the
/// socket buffers, so the write cannot finish. The deadline still fires;
/// the request's first bytes did reach the kernel, so it says `sent`.
#[tokio::test]
async fn a_server_that_stops_reading_cannot_hold_a_call_past_its_deadline() {
    let (addr, _close, mut accepted) = deaf_server().await;
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let big = Bytes::from(vec![0xa5; more_than_socket_buffers()]);
    let start = Instant::now();
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call_with(PROG, 1, 1, big, &within(ms(500))).await }
    });
    timeout(GENEROUS, accepted.recv()).await.unwrap().unwrap();
    let result = timeout(GENEROUS, call).await.unwrap().unwrap();
    let elapsed = start.elapsed();
    assert!(
        matches!(
            result,
            Err(Error::CallTimeout {
                sent: true,
                after,
                ..
            }) if after == ms(500)
        ),
        "{result:?}"
    );
    assert!(elapsed >= ms(500), "{elapsed:?}");
    assert!(elapsed < GENEROUS);
    assert_eq!(client.stats().timed_out, 1);
}

// ---------------------------------------------------------------------------
// Clients misbehave
// ---------------------------------------------------------------------------

/// Slowloris: two bytes of a record header, then nothing. The server closes
/// the connection at its idle timeout, and not before.
#[tokio::test]
async fn a_partial_record_header_is_closed_at_the_idle_timeout() {
    let idle = ms(300);
    let (server, addr) = start(
        ServerOptions {
            idle_timeout: idle,
            ..ServerOptions::default()
        },
        echo,
    );
    // The server's idle clock starts when it takes the connection, after
    // this instant; the two bytes restart it.
    let start = Instant::now();
    let mut stream = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    stream.write_all(&[0x80, 0x00]).await.unwrap();
    let mut buf = [0u8; 64];
    let read = timeout(GENEROUS, stream.read(&mut buf))
        .await
        .expect("the server never closed the connection");
    let elapsed = start.elapsed();
    match read {
        Ok(0) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
    assert!(elapsed >= idle, "closed after {elapsed:?}");
    eventually("the server counts the closed connection", || {
        server.stats().closed == 1
    })
    .await;
    // The server still serves others.
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    client
        .call(PROG, 1, 1, Bytes::from_static(b"ok"))
        .await
        .unwrap();
    server.shutdown().await;
}

/// A record trickled a byte at a time does not hold the connection open:
/// the idle clock counts from the last whole record, not the last byte.
#[tokio::test]
async fn a_record_trickled_byte_by_byte_is_closed_at_the_idle_timeout() {
    let idle = ms(300);
    let (server, _addr) = start(
        ServerOptions {
            idle_timeout: idle,
            ..ServerOptions::default()
        },
        echo,
    );
    let start = Instant::now();
    let mut stream = TcpStream::connect(server.local_addrs()[0]).await.unwrap();
    stream.write_all(&[0x80, 0x00, 0x03, 0xe8]).await.unwrap(); // 1000 bytes announced
    let mut buf = [0u8; 64];
    let closed = loop {
        // One byte every 100 ms: well inside the idle timeout each time.
        tokio::select! {
            read = stream.read(&mut buf) => break read,
            () = tokio::time::sleep(ms(100)) => {
                if stream.write_all(&[0]).await.is_err() {
                    break Ok(0);
                }
            }
        }
        assert!(
            start.elapsed() < GENEROUS,
            "the trickle kept the connection open"
        );
    };
    match closed {
        Ok(0) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
    assert!(
        start.elapsed() >= idle,
        "closed after {:?}",
        start.elapsed()
    );
    server.shutdown().await;
}

/// With `max_connections = 2`, a third connection waits in the kernel's
/// backlog: its call is answered only after one of the first two closes.
#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let (server, addr) = start(
        ServerOptions {
            max_connections: 2,
            ..ServerOptions::default()
        },
        echo,
    );
    let first = Client::new(vec![addr.clone()], quiet_client_options()).expect("a destination");
    let second = Client::new(vec![addr.clone()], quiet_client_options()).expect("a destination");
    first
        .call(PROG, 1, 1, Bytes::from_static(b"1"))
        .await
        .unwrap();
    second
        .call(PROG, 1, 1, Bytes::from_static(b"2"))
        .await
        .unwrap();
    let third = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let call = tokio::spawn({
        let third = third.clone();
        async move { third.call(PROG, 1, 1, Bytes::from_static(b"3")).await }
    });
    // The third connects (the kernel completes the handshake) and sends.
    eventually("the third call is written", || third.stats().sent == 1).await;
    sleep(ms(300)).await;
    assert!(!call.is_finished(), "served beyond the connection limit");
    assert_eq!(server.stats().accepted, 2);
    first.close();
    let out = timeout(GENEROUS, call).await.unwrap().unwrap().unwrap();
    assert_eq!(&out[..], b"3");
    assert_eq!(server.stats().accepted, 3);
    // The second connection was served throughout.
    second
        .call(PROG, 1, 1, Bytes::from_static(b"2"))
        .await
        .unwrap();
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// Handlers misbehave
// ---------------------------------------------------------------------------

/// A handler that panics is answered with SYSTEM_ERR; the other calls on
/// the same connection, in progress at the time or made later, are served.
#[tokio::test]
async fn a_panicking_handler_gets_system_err_and_the_connection_lives_on() {
    let (server, addr) = start(ServerOptions::default(), echo);
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    client
        .call(PROG, 1, 1, Bytes::from_static(b"warm"))
        .await
        .unwrap();
    let ConnectionState::Connected { local, .. } = client.state() else {
        panic!("{:?}", client.state())
    };
    let (slow, panicked, quick) = tokio::join!(
        client.call(PROG, 1, 3, Bytes::from_static(&[20])),
        client.call(PROG, 1, 4, Bytes::new()),
        client.call(PROG, 1, 1, Bytes::from_static(b"quick")),
    );
    assert!(
        matches!(
            panicked,
            Err(Error::CallRejected {
                status: CallStatus::SystemErr,
                procedure: 4,
                ..
            })
        ),
        "{panicked:?}"
    );
    assert_eq!(&slow.unwrap()[..], &[20]);
    assert_eq!(&quick.unwrap()[..], b"quick");
    for i in 0..10u8 {
        let out = client.call(PROG, 1, 1, Bytes::from(vec![i])).await.unwrap();
        assert_eq!(&out[..], &[i]);
    }
    assert_eq!(
        client.state(),
        ConnectionState::Connected {
            local,
            remote: server.local_addrs()[0]
        },
        "the same connection"
    );
    assert_eq!(client.stats().reconnects, 0);
    let stats = server.stats();
    assert_eq!((stats.panics, stats.accepted), (1, 1), "{stats:?}");
    server.shutdown().await;
}

/// A handler future that is ready at its poll after `pending` pending
/// ones (answering "ran"), and panics when it is dropped.
struct PanicsWhenDropped {
    pending: usize,
}

impl std::future::Future for PanicsWhenDropped {
    type Output = Result<Bytes, ProcError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        if self.pending == 0 {
            return std::task::Poll::Ready(Ok(Bytes::from_static(b"ran")));
        }
        self.pending -= 1;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

impl Drop for PanicsWhenDropped {
    fn drop(&mut self) {
        panic!("a handler future panics when dropped, on purpose");
    }
}

/// [`echo`], plus procedure 5: a future ready at once (answered inline)
/// that panics when dropped; and 6: the same, pending once first (so it
/// runs as a task of its own).
struct DropPanics;

impl Service for DropPanics {
    fn call(
        &self,
        ctx: CallContext,
        procedure: u32,
        args: Bytes,
    ) -> peerwire::server::HandlerFuture {
        match procedure {
            5 => Box::pin(PanicsWhenDropped { pending: 0 }),
            6 => Box::pin(PanicsWhenDropped { pending: 1 }),
            _ => Box::pin(echo(ctx, procedure, args)),
        }
    }
}

fn is_system_err(result: &Result<Bytes, Error>) -> bool {
    matches!(
        result,
        Err(Error::CallRejected {
            status: CallStatus::SystemErr,
            ..
        })
    )
}

/// A handler future answered inline whose drop panics: its call gets
/// SYSTEM_ERR; the calls in progress beside it on the same connection and
/// the later ones are served; the connection lives on, and when it ends it
/// is counted closed.
#[tokio::test]
async fn an_inline_handler_future_that_panics_when_dropped_harms_only_its_own_call() {
    let (server, addr) = start(ServerOptions::default(), DropPanics);
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    client
        .call(PROG, 1, 1, Bytes::from_static(b"warm"))
        .await
        .unwrap();
    let generous = within(GENEROUS);
    let (slow, dropped, quick) = tokio::join!(
        client.call_with(PROG, 1, 3, Bytes::from_static(&[20]), &generous),
        client.call_with(PROG, 1, 5, Bytes::new(), &generous),
        client.call_with(PROG, 1, 1, Bytes::from_static(b"quick"), &generous),
    );
    assert!(is_system_err(&dropped), "{dropped:?}");
    assert_eq!(&slow.unwrap()[..], &[20]);
    assert_eq!(&quick.unwrap()[..], b"quick");
    assert_eq!(
        &client
            .call(PROG, 1, 1, Bytes::from_static(b"after"))
            .await
            .unwrap()[..],
        b"after"
    );
    assert_eq!(client.stats().reconnects, 0);
    let stats = server.stats();
    assert_eq!(
        (stats.panics, stats.accepted, stats.closed),
        (1, 1, 0),
        "{stats:?}"
    );
    client.close();
    eventually("the connection counted closed", || {
        server.stats().closed == 1
    })
    .await;
    server.shutdown().await;
}

/// A handler future run as a task of its own whose drop panics: its call
/// gets SYSTEM_ERR, and its slot is freed: with one call in progress
/// allowed, the next call is served.
#[tokio::test]
async fn a_spawned_handler_future_that_panics_when_dropped_gets_system_err_and_frees_its_slot() {
    let options = ServerOptions {
        max_in_progress: 1,
        ..ServerOptions::default()
    };
    let (server, addr) = start(options, DropPanics);
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let dropped = client
        .call_with(PROG, 1, 6, Bytes::new(), &within(GENEROUS))
        .await;
    assert!(is_system_err(&dropped), "{dropped:?}");
    let next = client
        .call_with(PROG, 1, 1, Bytes::from_static(b"next"), &within(GENEROUS))
        .await;
    assert_eq!(&next.unwrap()[..], b"next");
    assert_eq!(client.stats().reconnects, 0);
    assert_eq!(server.stats().panics, 1);
    server.shutdown().await;
}

/// With `max_in_progress = 2` and handlers that wait for a permit, a third
/// call on the connection is not dispatched until one of the two completes.
#[tokio::test]
async fn calls_beyond_the_in_progress_limit_wait_for_a_handler_to_finish() {
    let dispatched = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let (server, addr) = start(
        ServerOptions {
            max_in_progress: 2,
            ..ServerOptions::default()
        },
        {
            let (dispatched, gate) = (dispatched.clone(), gate.clone());
            move |_: CallContext, _: u32, args: Bytes| {
                let (dispatched, gate) = (dispatched.clone(), gate.clone());
                async move {
                    dispatched.fetch_add(1, Ordering::SeqCst);
                    gate.acquire().await.unwrap().forget();
                    Ok(args)
                }
            }
        },
    );
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let calls: Vec<_> = (0..3u8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.call(PROG, 1, 1, Bytes::from(vec![i])).await })
        })
        .collect();
    eventually("two calls dispatched", || {
        dispatched.load(Ordering::SeqCst) == 2
    })
    .await;
    eventually("all three calls written", || client.stats().sent == 3).await;
    sleep(ms(300)).await;
    assert_eq!(
        dispatched.load(Ordering::SeqCst),
        2,
        "dispatched beyond the limit"
    );
    assert_eq!(server.stats().calls, 2);
    assert!(calls.iter().all(|call| !call.is_finished()));
    gate.add_permits(1);
    eventually("the third call dispatched", || {
        dispatched.load(Ordering::SeqCst) == 3
    })
    .await;
    eventually("one call answered", || {
        calls.iter().filter(|call| call.is_finished()).count() == 1
    })
    .await;
    sleep(ms(100)).await;
    assert_eq!(calls.iter().filter(|call| call.is_finished()).count(), 1);
    gate.add_permits(2);
    let mut outs = Vec::new();
    for call in calls {
        outs.push(timeout(GENEROUS, call).await.unwrap().unwrap().unwrap()[0]);
    }
    assert_eq!(outs, [0, 1, 2]);
    assert_eq!(server.stats().calls, 3);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------

/// A handler that runs until `gate` has a permit; `entered` hears each call.
fn gated(gate: Arc<Semaphore>, entered: mpsc::UnboundedSender<()>) -> impl Service {
    move |_: CallContext, _: u32, args: Bytes| {
        let (gate, entered) = (gate.clone(), entered.clone());
        async move {
            let _ = entered.send(());
            gate.acquire().await.unwrap().forget();
            Ok(args)
        }
    }
}

async fn refused(addr: std::net::SocketAddr) -> bool {
    matches!(
        TcpStream::connect(addr).await,
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Shutdown stops accepting at once; the call in progress completes within
/// the grace period and gets its reply; then everything is closed.
#[tokio::test]
async fn graceful_shutdown_lets_the_call_in_progress_finish() {
    let gate = Arc::new(Semaphore::new(0));
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let (server, addr) = start(
        ServerOptions {
            shutdown_grace: Duration::from_secs(30),
            ..ServerOptions::default()
        },
        gated(gate.clone(), entered_tx),
    );
    let listen_addr = server.local_addrs()[0];
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let call = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .call(PROG, 1, 1, Bytes::from_static(b"in progress"))
                .await
        }
    });
    timeout(GENEROUS, entered.recv()).await.unwrap().unwrap();
    let shutdown = tokio::spawn(server.shutdown());
    // New connections are refused once the listener is closed.
    let asked = Instant::now();
    while !refused(listen_addr).await {
        assert!(asked.elapsed() < GENEROUS, "still accepting after shutdown");
        sleep(ms(20)).await;
    }
    assert!(!call.is_finished());
    assert!(
        !shutdown.is_finished(),
        "shutdown did not wait for the call"
    );
    gate.add_permits(1);
    let out = timeout(GENEROUS, call).await.unwrap().unwrap().unwrap();
    assert_eq!(&out[..], b"in progress");
    timeout(GENEROUS, shutdown).await.unwrap().unwrap();
    assert!(refused(listen_addr).await);
    // The client's next call cannot reach the server.
    let result = client
        .call_with(PROG, 1, 1, Bytes::new(), &within(ms(500)))
        .await;
    assert!(result.is_err(), "{result:?}");
}

/// A call still running when the grace period ends is abandoned: the
/// client hears of it at once, as sent.
#[tokio::test]
async fn shutdown_abandons_calls_still_running_after_the_grace_period() {
    let gate = Arc::new(Semaphore::new(0));
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let grace = ms(300);
    let (server, addr) = start(
        ServerOptions {
            shutdown_grace: grace,
            ..ServerOptions::default()
        },
        gated(gate, entered_tx),
    );
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let call = tokio::spawn({
        let client = client.clone();
        async move { client.call(PROG, 1, 1, Bytes::from_static(b"stuck")).await }
    });
    timeout(GENEROUS, entered.recv()).await.unwrap().unwrap();
    let start = Instant::now();
    timeout(GENEROUS, server.shutdown()).await.unwrap();
    assert!(start.elapsed() >= grace);
    let result = timeout(GENEROUS, call).await.unwrap().unwrap();
    assert!(
        matches!(result, Err(Error::Disconnected { sent: true, .. })),
        "{result:?}"
    );
}

/// Dropping the `RunningServer` handle does not stop the server, as its
/// documentation says: only `shutdown` does.
#[tokio::test]
async fn dropping_the_running_server_handle_does_not_stop_it() {
    let (server, addr) = start(ServerOptions::default(), echo);
    let listen_addr = server.local_addrs()[0];
    drop(server);
    sleep(ms(100)).await;
    assert!(
        !refused(listen_addr).await,
        "the listener closed when the handle was dropped"
    );
    let client = Client::new(vec![addr], quiet_client_options()).expect("a destination");
    let result = client
        .call_with(PROG, 1, 1, Bytes::from_static(b"x"), &within(ms(5_000)))
        .await;
    assert_eq!(&result.expect("the server stopped")[..], b"x");
}
